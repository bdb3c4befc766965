#pragma once
// Replays archives (`kclpp cat`, spec/TRITON.md §3.3, with pagination): lists each day's
// `.tri` keys of a stream, orders them by (day, timestamp) and streams their records.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/pipeline/archive.hpp"
#include "kclpp/pipeline/s3_client.hpp"

namespace kclpp::pipeline {

struct StoreReaderOptions {
  std::string bucket;
  std::string stream;  // the real stream name
  std::string client;  // empty: any, but more than one client in the range is a ConfigError
  std::string start_day;  // YYYYMMDD, required
  std::string end_day;    // YYYYMMDD, empty = start_day; before start_day: ConfigError
  S3Options s3;
  std::uint64_t read_size = 8ull << 20;  // bytes fetched per ranged GET
};

struct ArchiveEntry {
  ArchiveKey key;
  std::string s3_key;
  std::uint64_t size = 0;
};

// Every archive of the stream in the day range, in (day folder, timestamp, key) order.
// Keys that do not parse (`.metadata`, other streams sharing the prefix, legacy per-shard
// keys) are skipped. Throws ConfigError for bad days or several clients, and S3Client's
// errors.
[[nodiscard]] std::vector<ArchiveEntry> list_archives(S3Client& s3, const StoreReaderOptions& options);

// Streams the records of every listed archive, one archive after another, with memory
// bounded by read_size plus one chunk. Not thread-safe. Move-only.
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
