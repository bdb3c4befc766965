#include "kclpp/pipeline/store.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>

#include "kclpp/internal/hex.hpp"
#include "kclpp/internal/openssl_error.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/pipeline/metrics.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "notify.hpp"

namespace kclpp::pipeline {

namespace {

using Clock = std::chrono::system_clock;

// Test-only crash points (KCLPP_STORE_TEST_CRASH, read once per store): the integration
// tests SIGKILL the store between spool, upload, metadata and checkpoint to prove that no
// record is lost (issue #4 §4). Never set in production.
enum class CrashPoint { None, BeforeUpload, AfterUpload, AfterMetadata };

CrashPoint crash_point_from_env() {
  const char* value = std::getenv("KCLPP_STORE_TEST_CRASH");
  if (value == nullptr || *value == '\0') return CrashPoint::None;
  const std::string text(value);
  if (text == "before_upload") return CrashPoint::BeforeUpload;
  if (text == "after_upload") return CrashPoint::AfterUpload;
  if (text == "after_metadata") return CrashPoint::AfterMetadata;
  log_warn("KCLPP_STORE_TEST_CRASH='", text, "' is not before_upload, after_upload or after_metadata: ignored");
  return CrashPoint::None;
}

void maybe_crash(CrashPoint configured, CrashPoint here, const char* name) {
  if (configured != here) return;
  log_error("KCLPP_STORE_TEST_CRASH=", name, ": killing the store (test hook)");
  ::kill(::getpid(), SIGKILL);
}

struct EvpCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// Hex SHA-256 of a file, and its size.
std::string sha256_file(const std::string& path, std::uint64_t& size) {
  std::unique_ptr<EVP_MD_CTX, EvpCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    kclpp::detail::throw_openssl_error("store: SHA-256 of " + path + ": initialising the digest");
  ByteSource source = file_source(path);
  std::array<char, 1 << 16> buffer{};
  size = 0;
  for (;;) {
    const std::size_t n = source(buffer.data(), buffer.size());
    if (n == 0) break;
    size += n;
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), n) != 1)
      kclpp::detail::throw_openssl_error("store: SHA-256 of " + path);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) != 1)
    kclpp::detail::throw_openssl_error("store: SHA-256 of " + path);
  return kclpp::detail::to_hex({reinterpret_cast<const char*>(digest.data()), length});
}

std::int64_t epoch_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// An owned file descriptor.
class FdHandle {
 public:
  FdHandle() = default;
  ~FdHandle() { reset(); }
  FdHandle(const FdHandle&) = delete;
  FdHandle& operator=(const FdHandle&) = delete;
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Where a shard stands in the spool. `appended`: the last record of the shard handed to
// the spool (spooled, or skipped as bad); `uploaded`: the last one known to be in an
// uploaded archive (or skipped while nothing was pending), the only position a processor
// may checkpoint. `generation` tells the current processor of the shard from a previous
// one (after a restart the positions of the old processor mean nothing to the new one's
// Checkpointer). `failed`: an archive holding records of this processor could not be
// uploaded, so it must restart from its checkpoint.
struct ShardState {
  std::uint64_t generation = 0;
  std::optional<ExtendedSequenceNumber> appended;
  std::optional<ExtendedSequenceNumber> uploaded;
  std::string failure;  // non-empty: failed
};

}  // namespace

struct ArchiveStore::Impl {
  explicit Impl(ArchiveStoreOptions o);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::uint64_t begin_shard(const std::string& shard_id);
  void end_shard(const std::string& shard_id, std::uint64_t generation);
  void append(const std::string& shard_id, std::uint64_t generation, const RecordBatch& batch);
  // The position the shard's processor may checkpoint now (nullopt: none). Throws
  // TransportError when an upload holding its records failed.
  std::optional<ExtendedSequenceNumber> uploaded(const std::string& shard_id, std::uint64_t generation);
  void rotate();

  void check_shard_locked(const ShardState& state, std::uint64_t generation, const std::string& shard_id) const;
  void open_spool_locked();
  void rotate_locked(const char* why);
  void upload_locked(const std::string& key, std::uint64_t size, const std::string& sha256);
  void discard_spool_locked();
  void mark_all_uploaded_locked();
  void timer_loop(const std::stop_token& stop);
  void register_metrics(MetricsRegistry& registry);
  std::string take_key_locked();

  class Processor;

  ArchiveStoreOptions options;
  std::string spool_path;
  std::string key_clock_path;  // the last key time taken by any store of this spool dir
  FdHandle spool_lock;  // flock held while the store lives
  CrashPoint crash = CrashPoint::None;
  Statsd statsd;
  // The registry's twins of the statsd metrics (ArchiveStoreOptions::metrics).
  struct Metrics {
    Counter records, bytes, bad_records, uploads, upload_failures;
    Histogram upload_seconds;
  } metrics;

  // The spool, the shards' positions and the S3 client (not thread-safe) are guarded by
  // `mutex`. A rotation holds it for the whole upload: appends wait, as in Triton's store
  // (docs/triton.md §6), which keeps one file per stream and the ordering simple.
  mutable std::mutex mutex;
  std::optional<aws::S3Client> s3;
  std::unique_ptr<FileSink> sink;
  std::unique_ptr<ArchiveWriter> writer;
  Clock::time_point opened{};
  ArchiveMetadata metadata;  // shards, records of the open spool
  std::map<std::string, ShardState> shards;
  std::uint64_t next_generation = 0;
  std::int64_t last_key_seconds = 0;

  mutable std::mutex stats_mutex;
  ArchiveStoreStats stats;

  std::jthread timer;  // last: started after everything above, stopped first
};

ArchiveStore::Impl::Impl(ArchiveStoreOptions o) : options(std::move(o)) {
  check_key_part(options.stream, "stream");
  check_key_part(options.client, "client");
  if (options.bucket.empty()) throw ConfigError("store: the bucket must not be empty");
  if (options.rotate_interval < std::chrono::seconds{1})
    throw ConfigError("store: rotate_interval must be at least 1 second");
  if (options.max_file_bytes == 0) throw ConfigError("store: max_file_bytes must be positive");
  if (options.upload_retry.max_attempts < 1) throw ConfigError("store: upload_retry.max_attempts must be >= 1");
  if (options.spool_dir.empty()) options.spool_dir = ".";
  crash = crash_point_from_env();
  if (crash != CrashPoint::None) log_warn("KCLPP_STORE_TEST_CRASH is set: this store kills itself (test hook)");

  std::error_code ec;
  if (!std::filesystem::is_directory(options.spool_dir, ec))
    throw TransportError("store: spool dir '" + options.spool_dir + "' is not a directory", Retry::No);
  if (::access(options.spool_dir.c_str(), W_OK | X_OK) != 0)
    throw TransportError("store: spool dir '" + options.spool_dir + "' is not writable: " +
                             std::strerror(errno),
                         Retry::No);
  if (options.spool_name.empty()) options.spool_name = options.stream + "-" + options.client + ".tri";
  if (options.spool_name.find('/') != std::string::npos || options.spool_name == "." || options.spool_name == "..")
    throw ConfigError("store: spool_name '" + options.spool_name + "' is not a file name");
  spool_path = (std::filesystem::path(options.spool_dir) / options.spool_name).string();
  key_clock_path =
      (std::filesystem::path(options.spool_dir) / (options.stream + "-" + options.client + ".keys")).string();
  // One store per spool file: a second one would discard the first one's spool below.
  // The lock goes with the process, even on SIGKILL.
  const std::string lock_path = spool_path + ".lock";
  spool_lock.reset(::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
  if (!spool_lock)
    throw TransportError("store: cannot open " + lock_path + ": " + std::strerror(errno), Retry::No);
  if (::flock(spool_lock.get(), LOCK_EX | LOCK_NB) != 0)
    throw TransportError("store: another store is using the spool " + spool_path + " (" + lock_path + " is locked)",
                         Retry::No);
  // A leftover spool is from a run that died before uploading it: none of its records
  // were checkpointed, so they come again from Kinesis (docs/triton.md §6 does the same by
  // truncating it).
  if (std::filesystem::exists(spool_path, ec)) {
    log_warn("store: discarding the leftover spool file ", spool_path, " (",
             std::filesystem::file_size(spool_path, ec),
             " bytes) of an earlier run: its records were not checkpointed and are read again");
    std::filesystem::remove(spool_path, ec);
    if (ec) throw TransportError("store: cannot remove " + spool_path + ": " + ec.message(), Retry::No);
  }
  if (!options.statsd.empty()) statsd = Statsd(options.statsd, options.statsd_prefix);
  if (options.metrics) register_metrics(*options.metrics);
  aws::S3Options s3_options = options.s3;
  s3_options.retry = options.upload_retry;  // put_file's own retries (upload_locked)
  s3.emplace(std::move(s3_options));
  timer = std::jthread([this](const std::stop_token& stop) { timer_loop(stop); });
}

void ArchiveStore::Impl::register_metrics(MetricsRegistry& registry) {
  metrics.records = registry.counter("kclpp_store_records_total", "Records spooled into archives");
  metrics.bytes = registry.counter("kclpp_store_bytes_total", "Data bytes of the records spooled");
  metrics.bad_records =
      registry.counter("kclpp_store_bad_records_total", "Records skipped: not a Triton (msgpack map) record");
  metrics.uploads = registry.counter("kclpp_store_uploads_total", "Archives uploaded to S3");
  metrics.upload_failures =
      registry.counter("kclpp_store_upload_failures_total", "Archive uploads that failed (their shards restart)");
  metrics.upload_seconds = registry.histogram("kclpp_store_upload_seconds", "Time to upload one archive to S3");
}

ArchiveStore::Impl::~Impl() {
  timer.request_stop();
  if (timer.joinable()) timer.join();
  std::lock_guard lock(mutex);
  if (writer && writer->records() > 0) {
    // Processors rotate at shutdown and shard end; records still here were never
    // checkpointed and will be read again.
    log_warn("store: closing with ", writer->records(),
             " records not uploaded (not checkpointed either: they are read again next time)");
  }
  writer.reset();
  sink.reset();
}

void ArchiveStore::Impl::timer_loop(const std::stop_token& stop) {
  // Process signals are for the application's threads (the CLI takes SIGTERM with
  // sigtimedwait in a thread of its own): a library thread must never receive one.
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
  std::mutex wait_mutex;
  std::condition_variable_any cv;
  const std::int64_t interval_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.rotate_interval).count();
  for (;;) {
    {
      std::unique_lock wait_lock(wait_mutex);
      // Wake just after the next whole second so a boundary is seen at most ~1 s late.
      const auto now = Clock::now();
      const auto next = std::chrono::milliseconds{1'000 - epoch_ms(now) % 1'000 + 5};
      cv.wait_for(wait_lock, stop, next, [] { return false; });
    }
    if (stop.stop_requested()) return;
    std::lock_guard lock(mutex);
    if (!writer || writer->records() == 0) continue;
    if (epoch_ms(Clock::now()) / interval_ms == epoch_ms(opened) / interval_ms) continue;
    try {
      rotate_locked("interval boundary");
    } catch (const std::exception& e) {
      // rotate_locked logged it and marked the shards concerned as failed: their
      // processors throw at their next call and restart from their checkpoints.
      (void)e;
    }
  }
}

std::uint64_t ArchiveStore::Impl::begin_shard(const std::string& shard_id) {
  std::lock_guard lock(mutex);
  ShardState& state = shards[shard_id];
  state = ShardState{};
  state.generation = ++next_generation;
  return state.generation;
}

void ArchiveStore::Impl::end_shard(const std::string& shard_id, std::uint64_t generation) {
  std::lock_guard lock(mutex);
  const auto it = shards.find(shard_id);
  if (it != shards.end() && it->second.generation == generation) shards.erase(it);
}

void ArchiveStore::Impl::check_shard_locked(const ShardState& state, std::uint64_t generation,
                                            const std::string& shard_id) const {
  if (state.generation != generation)
    throw TransportError("store: shard " + shard_id + " has a newer processor", Retry::No);
  if (!state.failure.empty())
    throw TransportError("store: shard " + shard_id + " restarts from its checkpoint: " + state.failure);
}

void ArchiveStore::Impl::open_spool_locked() {
  sink = std::make_unique<FileSink>(spool_path);
  writer = std::make_unique<ArchiveWriter>(sink->sink());
  metadata = ArchiveMetadata{};
  opened = Clock::now();
}

void ArchiveStore::Impl::append(const std::string& shard_id, std::uint64_t generation,
                                const RecordBatch& batch) {
  std::uint64_t good = 0;
  std::uint64_t bad = 0;
  std::uint64_t bytes = 0;
  {
    std::lock_guard lock(mutex);
    ShardState& state = shards[shard_id];
    check_shard_locked(state, generation, shard_id);
    for (const Record& record : batch.records) {
      std::string problem = record.data_error;
      if (problem.empty()) problem = validate_record(record.data);
      if (!problem.empty()) {
        // Not a Triton record (docs/triton.md §2): Triton's reader drops it too. Logged so that
        // it can be found in the stream; its position still counts as processed.
        log_warn("store: skipping record ", record.sequence_number.str(), " (sub ", record.sub_sequence_number,
                 ") of ", shard_id, ": ", problem);
        ++bad;
        state.appended = record.position();
        // Nothing pending in a spool: every earlier record of the shard is uploaded.
        if (!writer) state.uploaded = state.appended;
        continue;
      }
      if (!writer) open_spool_locked();
      writer->append(record.data);
      metadata.add(shard_id, record.sequence_number.str());
      state.appended = record.position();
      ++good;
      bytes += record.data.size();
    }
    // The writer holds at most one chunk (65,536 uncompressed bytes) beyond what reached
    // the file: count it, so that the limit is never overshot by more than a batch.
    if (writer && writer->compressed_bytes() + writer->uncompressed_bytes() % 65'536 >= options.max_file_bytes)
      rotate_locked("size limit");
  }
  {
    std::lock_guard lock(stats_mutex);
    stats.records += good;
    stats.bad_records += bad;
  }
  metrics.records.add(good);
  metrics.bytes.add(bytes);
  metrics.bad_records.add(bad);
  if (statsd.enabled()) {
    if (good > 0) statsd.count("records", static_cast<std::int64_t>(good));
    if (bytes > 0) statsd.count("bytes", static_cast<std::int64_t>(bytes));
    if (bad > 0) statsd.count("bad_records", static_cast<std::int64_t>(bad));
  }
}

std::optional<ExtendedSequenceNumber> ArchiveStore::Impl::uploaded(const std::string& shard_id,
                                                                   std::uint64_t generation) {
  std::lock_guard lock(mutex);
  ShardState& state = shards[shard_id];
  check_shard_locked(state, generation, shard_id);
  return state.uploaded;
}

void ArchiveStore::Impl::rotate() {
  std::lock_guard lock(mutex);
  rotate_locked("requested");
}

void ArchiveStore::Impl::mark_all_uploaded_locked() {
  for (auto& [id, state] : shards) {
    if (state.failure.empty()) state.uploaded = state.appended;
  }
}

void ArchiveStore::Impl::discard_spool_locked() {
  writer.reset();
  sink.reset();
  std::error_code ec;
  std::filesystem::remove(spool_path, ec);
  if (ec) log_warn("store: cannot remove ", spool_path, ": ", ec.message(), " (truncated at the next open)");
}

std::string ArchiveStore::Impl::take_key_locked() {
  // The key's time is when the spool was opened (its first record), as in Triton
  // (docs/triton.md §3.1), made unique: a second archive in the same second, or a key left by an
  // earlier run (a quick restart), would otherwise be overwritten and its records lost.
  // Stores of one spool dir (the per-shard processes of a daemon) also take their times
  // from one clock file, under its flock: two of them rotating in the same second would
  // both find the key free and the second upload would replace the first.
  FdHandle clock;  // closing it releases the flock
  clock.reset(::open(key_clock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
  if (!clock) throw TransportError("store: cannot open " + key_clock_path + ": " + std::strerror(errno));
  while (::flock(clock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) throw TransportError("store: cannot lock " + key_clock_path + ": " + std::strerror(errno));
  }
  char text[32] = {};
  const ssize_t got = ::pread(clock.get(), text, sizeof text - 1, 0);
  std::int64_t shared_last = 0;
  if (got > 0) {
    const auto [end, ec] = std::from_chars(text, text + got, shared_last);
    if (ec != std::errc{}) shared_last = 0;  // unreadable: the HEAD check below still guards
    (void)end;
  }
  std::int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(opened.time_since_epoch()).count();
  seconds = std::max({seconds, last_key_seconds + 1, shared_last + 1});
  std::string key;
  for (;; ++seconds) {
    key = ArchiveKey{options.stream, options.client, seconds, {}}.str();
    const bool exists = kclpp::retry(options.upload_retry,
                                     [&] { return s3->head_object(options.bucket, key).has_value(); });
    if (!exists) break;
    log_warn("store: ", key, " already exists in ", options.bucket, ": using the next second");
  }
  last_key_seconds = seconds;
  const std::string value = std::to_string(seconds) + "\n";
  if (::ftruncate(clock.get(), 0) != 0 ||
      ::pwrite(clock.get(), value.data(), value.size(), 0) != static_cast<ssize_t>(value.size())) {
    throw TransportError("store: cannot write " + key_clock_path + ": " + std::strerror(errno));
  }
  return key;
}

void ArchiveStore::Impl::upload_locked(const std::string& key, std::uint64_t size, const std::string& sha256) {
  const auto started = std::chrono::steady_clock::now();
  // put_file retries each of its requests with upload_retry (aws::S3Options::retry, set where
  // the client is made): an outer loop would multiply the attempts and restart every part.
  (void)s3->put_file(options.bucket, key, spool_path);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  log_info("store: uploaded s3://", options.bucket, "/", key, " (", metadata.records, " records, ", size,
           " bytes, sha256 ", sha256, ") in ", took.count(), " ms");
  metrics.upload_seconds.observe(std::chrono::steady_clock::now() - started);
  if (statsd.enabled()) statsd.timing("upload_ms", took);
}

void ArchiveStore::Impl::rotate_locked(const char* why) {
  if (!writer || writer->records() == 0) {
    // Nothing pending: whatever a shard skipped since is done with.
    discard_spool_locked();
    mark_all_uploaded_locked();
    return;
  }
  std::string key;
  try {
    writer->finish();
    sink->close();  // fsync: what goes up is what is on disk
    metadata.records = writer->records();
    maybe_crash(crash, CrashPoint::BeforeUpload, "before_upload");
    metadata.sha256 = sha256_file(spool_path, metadata.bytes);
    key = take_key_locked();
    log_debug("store: rotating (", why, ") to ", key);
    upload_locked(key, metadata.bytes, metadata.sha256);
  } catch (const std::exception& e) {
    const std::string failure = std::string("archive upload failed: ") + e.what();
    log_error("store: ", failure, " (", metadata.records, " records of ", metadata.shards.size(),
              " shards discarded: those shards restart from their checkpoints)");
    {
      std::lock_guard lock(stats_mutex);
      ++stats.upload_failures;
    }
    metrics.upload_failures.add();
    if (statsd.enabled()) statsd.count("upload_failures");
    // Every shard with records in the lost file restarts from its checkpoint, which is
    // never past an uploaded record: nothing is lost, the records are read again.
    for (const auto& [id, range] : metadata.shards) {
      const auto it = shards.find(id);
      if (it == shards.end()) continue;
      it->second.failure = failure;
      it->second.appended.reset();
    }
    discard_spool_locked();
    throw;
  }
  maybe_crash(crash, CrashPoint::AfterUpload, "after_upload");
  if (options.write_metadata) {
    try {
      (void)kclpp::retry(options.upload_retry, [&] {
        return s3->put_object(options.bucket, metadata_key(key), metadata.to_json(), "application/json");
      });
    } catch (const std::exception& e) {
      // The archive itself is safe; only the index is missing (old readers never use it).
      log_error("store: could not write ", metadata_key(key), ": ", e.what());
    }
  }
  maybe_crash(crash, CrashPoint::AfterMetadata, "after_metadata");
  {
    std::lock_guard lock(stats_mutex);
    ++stats.uploads;
    stats.last_key = key;
  }
  metrics.uploads.add();
  if (statsd.enabled()) statsd.count("uploads");
  if (!options.notify_command.empty()) {
    const std::string size = std::to_string(metadata.bytes);
    const std::string records = std::to_string(metadata.records);
    const auto result = detail::run_notify_command(
        options.notify_command, {key, size, records, metadata.sha256},
        {"KCLPP_ARCHIVE_KEY=" + key, "KCLPP_ARCHIVE_SIZE=" + size, "KCLPP_ARCHIVE_RECORDS=" + records,
         "KCLPP_ARCHIVE_SHA256=" + metadata.sha256, "KCLPP_ARCHIVE_BUCKET=" + options.bucket},
        options.notify_timeout);
    if (!result.ok()) log_warn("store: notify command for ", key, ": ", result.describe());
  }
  discard_spool_locked();
  mark_all_uploaded_locked();
}

// One shard's processor: spools each batch, then checkpoints as far as the uploaded
// archives go. Called by one thread (RecordProcessor's contract); must not outlive the
// store.
class ArchiveStore::Impl::Processor final : public RecordProcessor {
 public:
  Processor(Impl& store, std::string shard_id) : store_(store), shard_id_(std::move(shard_id)) {}
  ~Processor() override {
    if (generation_ != 0) store_.end_shard(shard_id_, generation_);
  }
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override {
    shard_id_ = shard_id;
    generation_ = store_.begin_shard(shard_id_);
    if (!position.is_sentinel()) checkpointed_ = position;
    last_checkpoint_ = std::chrono::steady_clock::now();
  }

  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) override {
    if (!batch.records.empty()) store_.append(shard_id_, generation_, batch);
    if (store_.statsd.enabled() && batch.millis_behind_latest)
      store_.statsd.gauge("lag_ms." + metric_name_part(shard_id_), static_cast<double>(*batch.millis_behind_latest));
    checkpoint_uploaded(checkpointer);
  }

  void shutdown_requested(Checkpointer& checkpointer) override {
    store_.rotate();
    checkpoint_uploaded(checkpointer);
  }

  void shard_ended(Checkpointer& checkpointer) override {
    // Every record of the shard must be in an uploaded archive before SHARD_END.
    store_.rotate();
    (void)store_.uploaded(shard_id_, generation_);  // throws if its records were lost
    checkpointer.checkpoint();
    finish();
  }

  void lease_lost() override { finish(); }

 private:
  void finish() {
    if (generation_ != 0) store_.end_shard(shard_id_, generation_);
    generation_ = 0;
  }

  // Checkpoints at the last uploaded position when it moved. A failing checkpoint
  // propagates (docs/triton.md §11: stop rather than go on without a durable position).
  void checkpoint_uploaded(Checkpointer& checkpointer) {
    const auto position = store_.uploaded(shard_id_, generation_);
    if (position && !(checkpointed_ && *checkpointed_ == *position)) {
      checkpointer.checkpoint(position->sequence_number(), position->sub_sequence_number());
      checkpointed_ = position;
      last_checkpoint_ = std::chrono::steady_clock::now();
    }
    if (store_.statsd.enabled()) {
      const auto age = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_);
      store_.statsd.gauge("checkpoint_age_s." + metric_name_part(shard_id_), age.count());
    }
  }

  Impl& store_;
  std::string shard_id_;
  std::uint64_t generation_ = 0;
  std::optional<ExtendedSequenceNumber> checkpointed_;
  std::chrono::steady_clock::time_point last_checkpoint_{};
};

ArchiveStore::ArchiveStore(ArchiveStoreOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
ArchiveStore::~ArchiveStore() = default;

std::unique_ptr<RecordProcessor> ArchiveStore::make_processor(const std::string& shard_id) {
  return std::make_unique<Impl::Processor>(*impl_, shard_id);
}

void ArchiveStore::rotate() { impl_->rotate(); }

ArchiveStoreStats ArchiveStore::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

const ArchiveStoreOptions& ArchiveStore::options() const noexcept { return impl_->options; }

}  // namespace kclpp::pipeline
