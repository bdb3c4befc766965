#pragma once
// The `.tri` archive format (docs/triton.md §3): the snappy framing format around
// back-to-back msgpack maps; archive key names; the `<key>.metadata` JSON (docs/triton.md §3.5).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kclpp/pipeline/value.hpp"

namespace kclpp::pipeline {

// Where a writer's bytes go: called with each finished piece (chunks, never split). Must
// write all of it or throw (kclpp::Error).
using ByteSink = std::function<void(std::string_view bytes)>;
// Where a reader's bytes come from: fills up to `size` bytes at `buffer`, returns how
// many (0 = end of input). Throws kclpp::Error on failure.
using ByteSource = std::function<std::size_t(char* buffer, std::size_t size)>;

// A ByteSink appending to a file it owns (created or truncated), and the ByteSource of a
// file. Throw TransportError naming the path (errno text) when the file cannot be used.
class FileSink {
 public:
  explicit FileSink(const std::string& path);
  ~FileSink();
  FileSink(FileSink&&) noexcept;
  FileSink& operator=(FileSink&&) noexcept;
  void write(std::string_view bytes);
  // fsync, then close. Throws TransportError. The destructor closes without fsync.
  void close();
  [[nodiscard]] ByteSink sink();
  [[nodiscard]] std::uint64_t bytes_written() const noexcept { return written_; }
 private:
  int fd_ = -1;
  std::string path_;
  std::uint64_t written_ = 0;
};
[[nodiscard]] ByteSource file_source(const std::string& path);  // throws TransportError
[[nodiscard]] ByteSource memory_source(std::string_view bytes);  // bytes must outlive it

// Writes a snappy framing-format stream: one stream identifier chunk first, then chunks of
// at most 65,536 uncompressed bytes, each compressed unless snappy saves less than 12.5 %
// (then stored uncompressed, as both Triton writers do), with the masked CRC-32C of the
// uncompressed bytes. Records are buffered and may straddle chunks (docs/triton.md §3.2).
// Not thread-safe. Move-only. The destructor does not flush: call finish().
struct ArchiveWriterOptions {
  // Compress full chunks on two threads and call the sink on a helper thread (started by
  // the constructor, joined by the destructor), up to this many chunks queued (64 KiB
  // each): the caller compresses every other chunk itself, the helper the others, so that
  // writing runs up to twice as fast on two free cores. The sink is then called from the
  // helper thread (one call at a time, in order); what it throws comes out of the next
  // append/flush/finish.
  // flush() and finish() return once the sink has had everything. 0: all on the caller's
  // thread. The bytes written are the same either way.
  std::size_t compress_behind_chunks = 0;
};
class ArchiveWriter {
 public:
  explicit ArchiveWriter(ByteSink sink);
  ArchiveWriter(ByteSink sink, ArchiveWriterOptions options);
  ~ArchiveWriter();
  ArchiveWriter(ArchiveWriter&&) noexcept;
  ArchiveWriter& operator=(ArchiveWriter&&) noexcept;

  // Appends one record's msgpack bytes (not checked: see validate_record). Throws what
  // the sink throws.
  void append(std::string_view msgpack_map);
  void append(const Map& record);
  // Emits the buffered bytes as a (possibly short) chunk. Throws what the sink throws.
  void flush();
  // flush(); the writer must not be used after.
  void finish();

  [[nodiscard]] std::uint64_t records() const noexcept;
  [[nodiscard]] std::uint64_t uncompressed_bytes() const noexcept;  // msgpack bytes appended
  [[nodiscard]] std::uint64_t compressed_bytes() const noexcept;    // bytes given to the sink

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads a snappy framing-format stream of msgpack maps, streaming (memory bounded by one
// chunk plus one record). Accepts repeated stream identifiers (Go's store writes one per
// segment) and skips chunks 0x80-0xfd and padding 0xfe. Throws ProtocolError naming the
// byte offset for: a missing stream identifier, a reserved unskippable chunk (0x02-0x7f),
// a chunk over 65,536 uncompressed bytes, a bad CRC, a corrupt snappy block, a truncated
// chunk or record, a value that is not msgpack. A top-level value that is not a map is
// not fatal: next() returns it with `error` set (see ArchiveRecord), and reading goes on.
// A memory_source() is read in place. Not thread-safe. Move-only.
struct ArchiveRecord {
  std::string_view bytes;  // the record's msgpack bytes, valid until the next call
  std::uint64_t offset = 0;  // of the record in the uncompressed stream
};
struct ArchiveReaderOptions {
  // Read, check and decompress up to this many chunks ahead on a helper thread (started by
  // the constructor, joined by the destructor), so that decompression overlaps the
  // caller's decoding; memory grows by that many 64 KiB chunks. The ByteSource is then
  // called from the helper thread (one call at a time). 0: everything on the caller's
  // thread. Records and errors come out the same either way.
  std::size_t read_ahead_chunks = 0;
};
class ArchiveReader {
 public:
  explicit ArchiveReader(ByteSource source, std::string name = "archive");
  ArchiveReader(ByteSource source, std::string name, ArchiveReaderOptions options);
  ~ArchiveReader();
  ArchiveReader(ArchiveReader&&) noexcept;
  ArchiveReader& operator=(ArchiveReader&&) noexcept;

  // The next record's raw bytes (one msgpack value), or nullopt at a clean end.
  [[nodiscard]] std::optional<ArchiveRecord> next_raw();
  // The next record decoded; a value that is not a map comes back with `error` set
  // (naming its offset) and an empty map.
  [[nodiscard]] std::optional<DecodedRecord> next();
  // The same into `out`, reusing its storage (decode_record_into): a loop over an archive
  // with one DecodedRecord allocates nothing per record in steady state. False at a clean
  // end (`out` then unspecified). Throws as next() does.
  [[nodiscard]] bool next(DecodedRecord& out);
  [[nodiscard]] std::uint64_t records() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The masked CRC-32C of the framing format: ((crc >> 15 | crc << 17) + 0xa282ead8).
[[nodiscard]] std::uint32_t masked_crc32c(std::string_view bytes) noexcept;

// `YYYYMMDD/<stream>-<client>-<unix_ts>.tri` (docs/triton.md §3.1), the date in UTC.
struct ArchiveKey {
  std::string stream;  // the real stream name
  std::string client;
  std::int64_t unix_seconds = 0;
  // The date folder of a parsed key (may differ from date() for archives written in
  // another time zone by go-triton); empty for keys made here (str() uses date()).
  std::string folder;

  // Throws ConfigError when stream or client is empty or contains '-' or '/' (readers
  // split on '-', docs/triton.md §3.1).
  [[nodiscard]] std::string str() const;
  // "YYYYMMDD" (UTC) of unix_seconds.
  [[nodiscard]] std::string date() const;
  // Parses a key as go-triton does (`(\d{8})/(.+)-(\d+)\.tri$`, exactly two dash parts),
  // anchored at the start (an optional leading '/' allowed). nullopt for anything else,
  // `.metadata` keys included.
  [[nodiscard]] static std::optional<ArchiveKey> parse(std::string_view key);
};
// Checks a stream or client name for use in keys; ConfigError naming `what` otherwise.
void check_key_part(const std::string& value, const std::string& what);
// "YYYYMMDD" for a UTC day.
[[nodiscard]] std::string day_folder(std::chrono::system_clock::time_point t);

// The `<key>.metadata` document: min/max sequence number per shard of the records in one
// archive (compared numerically, unlike PR #5's string comparison), plus kclpp's extra
// fields that old readers ignore.
struct ShardRange {
  std::string min_sequence_number;
  std::string max_sequence_number;
  friend bool operator==(const ShardRange&, const ShardRange&) = default;
};
struct ArchiveMetadata {
  std::map<std::string, ShardRange> shards;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;  // of the .tri object
  std::string sha256;       // hex, of the .tri object
  // Widens the shard's range to include `sequence_number`. Throws ProtocolError when it is
  // not a decimal sequence number.
  void add(const std::string& shard_id, const std::string& sequence_number);
  // {"shards": {"<id>": {"min_sequence_number": "...", "max_sequence_number": "..."}},
  //  "records": N, "bytes": N, "sha256": "..."}
  [[nodiscard]] std::string to_json() const;
  // Throws ProtocolError naming what is wrong.
  [[nodiscard]] static ArchiveMetadata from_json(std::string_view json);
};
[[nodiscard]] inline std::string metadata_key(const std::string& archive_key) {
  return archive_key + ".metadata";
}

}  // namespace kclpp::pipeline
