#include "kclpp/pipeline/store_reader.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::pipeline {
namespace {

using std::chrono::sys_days;
using std::chrono::year_month_day;

// Listing and ranged GETs are idempotent: transient failures are retried.
RetryPolicy s3_retry() {
  RetryPolicy policy;
  policy.max_attempts = 5;
  return policy;
}

// "YYYYMMDD" as a UTC day (go-triton parses it as UTC midnight, docs/triton.md §3.3).
sys_days parse_day(const std::string& text, const std::string& what) {
  const auto bad = [&] { return ConfigError(what + " '" + text + "' is not a date YYYYMMDD"); };
  if (text.size() != 8 || text.find_first_not_of("0123456789") != std::string::npos) throw bad();
  const int y = std::stoi(text.substr(0, 4));
  const auto m = static_cast<unsigned>(std::stoi(text.substr(4, 2)));
  const auto d = static_cast<unsigned>(std::stoi(text.substr(6, 2)));
  const year_month_day ymd{std::chrono::year{y}, std::chrono::month{m}, std::chrono::day{d}};
  if (!ymd.ok()) throw bad();
  return sys_days(ymd);
}

std::string folder_of(sys_days day) {
  return day_folder(std::chrono::system_clock::time_point(day));
}

}  // namespace

std::vector<ArchiveEntry> list_archives(aws::S3Client& s3, const StoreReaderOptions& options) {
  if (options.bucket.empty()) throw ConfigError("archive reader: no bucket");
  check_key_part(options.stream, "stream");
  if (!options.client.empty()) check_key_part(options.client, "client");
  const sys_days start = parse_day(options.start_day, "start date");
  const sys_days end = options.end_day.empty() ? start : parse_day(options.end_day, "end date");
  if (end < start) {
    throw ConfigError("end date " + options.end_day + " is before start date " + options.start_day);
  }

  std::vector<ArchiveEntry> entries;
  std::set<std::string> clients;
  for (sys_days day = start; day <= end; day += std::chrono::days(1)) {
    const std::string folder = folder_of(day);
    // "<stream>-" cannot match another stream's keys wrongly: names have no '-', so a
    // longer stream name sharing the start ("a" and "a_b") does not share "a-".
    std::string prefix = folder + "/" + options.stream + "-";
    if (!options.client.empty()) prefix += options.client + "-";
    // Paginated (go-triton read only the first 1,000 keys of a day, docs/triton.md §3.3).
    const auto objects = retry(s3_retry(), [&] {
      return s3.list_objects(options.bucket, prefix, options.list_page_size);
    });
    for (const aws::S3Object& object : objects) {
      auto key = ArchiveKey::parse(object.key);
      if (!key || key->stream != options.stream) continue;  // .metadata, legacy keys, ...
      if (!options.client.empty() && key->client != options.client) continue;
      clients.insert(key->client);
      entries.push_back({std::move(*key), object.key, object.size});
    }
  }
  if (options.client.empty() && clients.size() > 1) {
    std::string names;
    for (const auto& c : clients) names += (names.empty() ? "" : ", ") + c;
    throw ConfigError("multiple clients found for stream '" + options.stream + "' from " +
                      options.start_day + " to " +
                      (options.end_day.empty() ? options.start_day : options.end_day) + ": " +
                      names + " (choose one with --client)");
  }
  std::sort(entries.begin(), entries.end(), [](const ArchiveEntry& a, const ArchiveEntry& b) {
    return std::tie(a.key.folder, a.key.unix_seconds, a.s3_key) <
           std::tie(b.key.folder, b.key.unix_seconds, b.s3_key);
  });
  return entries;
}

struct StoreReader::Impl {
  StoreReaderOptions options;
  aws::S3Client s3;
  std::vector<ArchiveEntry> archives;
  std::size_t next_archive = 0;   // index of the archive to open next
  std::size_t current = 0;        // index of the archive the last record came from
  bool have_current = false;
  std::optional<ArchiveReader> reader;

  // The pulling source of one archive: the bytes of the last ranged GET and where the
  // next one starts. Shared with the ByteSource through a pointer: it lives in Impl,
  // which does not move while a reader uses it (StoreReader holds Impl by unique_ptr).
  std::string chunk;
  std::size_t chunk_pos = 0;
  std::uint64_t offset = 0;  // where the next range starts (after the pending one, if any)
  bool eof = false;
  // The next range, being fetched by a helper (std::async: its future joins it when it
  // is waited for or destroyed). Only one thread uses `s3` at a time: the helper while
  // this is valid, the caller's thread otherwise.
  std::future<std::string> pending;

  explicit Impl(StoreReaderOptions o) : options(std::move(o)), s3(options.s3) {
    if (options.read_size == 0) throw ConfigError("archive reader: read_size must be positive");
    archives = list_archives(s3, options);
  }

  std::string fetch(const std::string& s3_key, std::uint64_t at) {
    return retry(s3_retry(), [&] { return s3.get_object_range(options.bucket, s3_key, at, options.read_size); });
  }

  std::size_t pull(const ArchiveEntry& entry, char* buffer, std::size_t size) {
    if (chunk_pos == chunk.size()) {
      if (eof) return 0;
      if (pending.valid()) {
        chunk = pending.get();  // rethrows the helper's failure, here where the range is needed
      } else {
        chunk = fetch(entry.s3_key, offset);
      }
      chunk_pos = 0;
      offset += chunk.size();
      // A short answer is the end of the object: no request past it.
      if (chunk.size() < options.read_size) eof = true;
      if (chunk.empty()) return 0;
      if (!eof && options.prefetch) {
        pending = std::async(std::launch::async, [this, key = entry.s3_key, at = offset] { return fetch(key, at); });
      }
    }
    const std::size_t n = std::min(size, chunk.size() - chunk_pos);
    std::memcpy(buffer, chunk.data() + chunk_pos, n);
    chunk_pos += n;
    return n;
  }

  // Waits for a range still being fetched and drops it (its failure too).
  void drop_pending() noexcept {
    if (!pending.valid()) return;
    try {
      (void)pending.get();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a range nobody will read
    }
  }

  void open(std::size_t index) {
    drop_pending();
    chunk.clear();
    chunk.shrink_to_fit();
    chunk_pos = 0;
    offset = 0;
    eof = false;
    const ArchiveEntry* entry = &archives[index];
    // The name goes into every ProtocolError the reader throws: a corrupt archive is
    // reported by its key.
    reader.emplace([this, entry](char* buffer, std::size_t size) { return pull(*entry, buffer, size); },
                   "s3://" + options.bucket + "/" + entry->s3_key);
  }

  std::optional<DecodedRecord> next() {
    for (;;) {
      if (!reader) {
        if (next_archive >= archives.size()) return std::nullopt;
        open(next_archive);
        current = next_archive++;
        have_current = true;
      }
      auto record = reader->next();
      if (record) return record;
      reader.reset();  // at the archive's end: no range is pending (none starts after the last)
      chunk.clear();
      chunk.shrink_to_fit();
    }
  }
};

StoreReader::StoreReader(StoreReaderOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
StoreReader::~StoreReader() = default;
StoreReader::StoreReader(StoreReader&&) noexcept = default;
StoreReader& StoreReader::operator=(StoreReader&&) noexcept = default;

std::optional<DecodedRecord> StoreReader::next() { return impl_->next(); }

const ArchiveEntry* StoreReader::current() const noexcept {
  return impl_->have_current ? &impl_->archives[impl_->current] : nullptr;
}

const std::vector<ArchiveEntry>& StoreReader::archives() const noexcept { return impl_->archives; }

}  // namespace kclpp::pipeline
