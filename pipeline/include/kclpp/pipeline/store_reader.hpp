#pragma once
// Replays archives (`kclpp cat`, docs/triton.md §3.3, with pagination): lists each day's
// `.tri` keys of a stream, orders them by (day, timestamp) and streams their records.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/pipeline/archive.hpp"
#include "kclpp/aws/s3_client.hpp"

namespace kclpp::pipeline {

struct StoreReaderOptions {
  std::string bucket;
  std::string stream;  // the real stream name
  std::string client;  // empty: any, but more than one client in the range is a ConfigError
  std::string start_day;  // YYYYMMDD, required
  std::string end_day;    // YYYYMMDD, empty = start_day; before start_day: ConfigError
  aws::S3Options s3;
  std::uint64_t read_size = 8ull << 20;  // bytes fetched per ranged GET
  // Fetch the next range of an archive on a helper thread while the current one is
  // decoded (and, in `kclpp cat`, rendered), so that S3's latency overlaps the work.
  // Memory: two ranges instead of one.
  bool prefetch = true;
  int list_page_size = 0;  // max-keys per ListObjectsV2 page (0: S3's 1,000)
};

struct ArchiveEntry {
  ArchiveKey key;
  std::string s3_key;
  std::uint64_t size = 0;
};

// Every archive of the stream in the day range (UTC days, both ends included), in (day
// folder, timestamp, key) order: one paginated listing per day, prefix
// `YYYYMMDD/<stream>-[<client>-]`. Keys that do not parse (`.metadata`, other streams
// sharing the prefix, legacy per-shard keys) are skipped. Throws ConfigError for a bad day,
// an end before the start, a stream or client name that cannot be in a key, or several
// clients when none was chosen (naming them, as go-triton's "Multiple clients found");
// and aws::S3Client's errors (a day's listing is retried when retryable).
[[nodiscard]] std::vector<ArchiveEntry> list_archives(aws::S3Client& s3, const StoreReaderOptions& options);

// Streams the records of every listed archive, one archive after another, with memory
// bounded by read_size (2 * read_size with prefetch) plus one chunk: each archive is pulled
// through ranged GETs of read_size bytes (each retried when retryable; with prefetch the
// next one runs on a helper thread, joined before the reader moves on or goes, and its
// failure is thrown where the reader needs that range, as without prefetch). The constructor lists (list_archives) and
// throws what it throws. Not thread-safe. Move-only.
class StoreReader {
 public:
  explicit StoreReader(StoreReaderOptions options);
  ~StoreReader();
  StoreReader(StoreReader&&) noexcept;
  StoreReader& operator=(StoreReader&&) noexcept;

  // The next record (a non-map value comes back with error set); nullopt after the last
  // archive. Throws ProtocolError naming the S3 key for a corrupt archive, S3 errors.
  [[nodiscard]] std::optional<DecodedRecord> next();
  // The archive the last record came from.
  [[nodiscard]] const ArchiveEntry* current() const noexcept;
  [[nodiscard]] const std::vector<ArchiveEntry>& archives() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::pipeline
