#pragma once
// The tritond wire (docs/triton.md §7): the two header formats of frame 0, and the
// PutRecords request limits shared by the producer and the spool daemon.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::pipeline::detail {

// The 0x04 header is py-triton's struct.pack('!B64p64p', 4, stream, key): 129 bytes.
inline constexpr unsigned char binary_header_version = 0x04;
inline constexpr std::size_t binary_header_size = 129;
// A 64-byte Pascal string holds at most 63 bytes after its length byte.
inline constexpr std::size_t binary_header_max_field = 63;

// Kinesis limits (PutRecords): 500 records and 5 MiB per request, 1 MiB per record, both
// counting data + partition key; partition keys of 1 to 256 (Unicode) characters.
inline constexpr std::size_t max_records_per_request = 500;
inline constexpr std::size_t max_request_bytes = 5u << 20;
inline constexpr std::size_t max_record_bytes = 1u << 20;
inline constexpr std::size_t max_partition_key_chars = 256;

struct SpoolHeader {
  std::string stream_name;  // logical
  std::string partition_key;
};

// Appends the 129-byte binary header. False (nothing appended) when a field is over 63
// bytes: py-triton would silently truncate it, which would send records to another
// stream or key.
bool append_binary_header(std::string_view stream, std::string_view key, std::string& out);
// Appends {"stream_name":"...","partition_key":"..."} (the Go client's header).
void append_json_header(std::string_view stream, std::string_view key, std::string& out);

// Decodes either header format, chosen by the first byte (0x04 or '{'). nullopt with
// `error` set when the frame is neither, is malformed, or names an empty stream.
[[nodiscard]] std::optional<SpoolHeader> decode_header(std::string_view frame, std::string& error);

// Number of Unicode code points of UTF-8 text (bytes that are not continuation bytes).
[[nodiscard]] std::size_t utf8_length(std::string_view text) noexcept;
// Empty when Kinesis would accept the key, else why not.
[[nodiscard]] std::string partition_key_problem(std::string_view key);

// [begin, end) ranges of `entries` forming requests of at most 500 records and 5 MiB
// (data + key bytes). Entries must each be at most max_record_bytes.
[[nodiscard]] std::vector<std::pair<std::size_t, std::size_t>> split_requests(
    std::span<const aws::PutRecordsEntry> entries);

// The outcome of putting one request's worth of entries.
struct PutOutcome {
  std::vector<aws::PutRecordsResultEntry> results;  // one per entry, in order
  std::size_t retried = 0;                             // entries resent at least once
  std::size_t failed = 0;                              // results that are not ok()
};

// PutRecords of at most one request's worth of entries, in one kclpp::retry whose attempts
// resend only the entries without a result: entries that failed with a retryable code
// (throttling, InternalFailure) and whole-request failures (throttling, 5xx, network,
// lost replies: resent, so a record can be written twice, as with any Kinesis producer
// retry). What still fails after the policy's attempts gets an error code: the entry's
// own, or the name of the whole-request error (the AWS type, or "ThrottledError",
// "TransportError", "InDoubtError", "AuthError", ...). Never throws a kclpp::Error.
[[nodiscard]] PutOutcome put_with_retry(aws::KinesisClient& client, const std::string& stream,
                                        std::span<const aws::PutRecordsEntry> entries,
                                        const RetryPolicy& policy);

}  // namespace kclpp::pipeline::detail

namespace kclpp::pipeline::detail {

// At most one log line per period for a repeated problem (malformed messages, drops).
// Thread-safe (atomics): allow() returns 0 when this occurrence must stay silent, else the
// number of occurrences since the last line that was allowed (this one included).
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds period = std::chrono::milliseconds{1'000}) noexcept
      : period_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(period).count()) {}
  std::uint64_t allow() noexcept;

 private:
  std::int64_t period_ns_;
  std::atomic<std::int64_t> next_ns_{0};
  std::atomic<std::uint64_t> count_{0};
};

}  // namespace kclpp::pipeline::detail
