#pragma once
// LocalStream: an in-memory Kinesis stream (shards, puts, splits, merges) so a processor
// can be unit-tested through the very same Worker with no server.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kclpp/native/stream_source.hpp"

namespace kclpp::native {

namespace detail {
struct LocalStreamTesting;  // fault injection for kclpp's own tests (src/local_stream_testing.hpp)
}  // namespace detail

// Thread-safe. Sequence numbers are 56-digit decimal strings increasing across the stream,
// like real ones; hash keys are MD5 of the partition key, as in Kinesis, and the shards of
// a new stream split the 128-bit key space evenly (ids shardId-000000000000, ...). Its
// connections behave like the service: opaque iterators valid for five minutes, GetRecords
// limit 1..10,000, millis_behind_latest > 0 while records remain, no next iterator after a
// closed shard's last record (with child_shards), errors as aws::AwsError with the service's
// type ("InvalidArgumentException", "ResourceNotFoundException", "ExpiredIteratorException").
class LocalStream final : public StreamSource {
 public:
  explicit LocalStream(std::string stream_name, int shard_count = 1);
  ~LocalStream() override;
  LocalStream(const LocalStream&) = delete;
  LocalStream& operator=(const LocalStream&) = delete;

  [[nodiscard]] const std::string& stream_name() const noexcept override;
  [[nodiscard]] std::unique_ptr<StreamConnection> connect() override;

  // Appends a record to the open shard whose hash range holds the partition key's MD5
  // (or `explicit_hash_key`, a decimal 128-bit number).
  aws::PutRecordResult put(std::string_view data, std::string_view partition_key,
                      std::string_view explicit_hash_key = {});
  // Closes `shard_id` and opens two children split at `new_starting_hash_key` (decimal).
  // Throws aws::AwsError("InvalidArgumentException"/"ResourceNotFoundException") like Kinesis.
  void split_shard(const std::string& shard_id, const std::string& new_starting_hash_key);
  // Closes two adjacent open shards and opens their merged child.
  void merge_shards(const std::string& shard_id, const std::string& adjacent_shard_id);
  // Records older than this are dropped at the next call (TRIM_HORIZON moves), to test
  // expired positions; default: keep everything.
  void set_retention(std::chrono::milliseconds retention);

 private:
  friend struct detail::LocalStreamTesting;
  struct State;
  std::shared_ptr<State> state_;  // shared with connections
};

}  // namespace kclpp::native
