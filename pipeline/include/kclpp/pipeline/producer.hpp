#pragma once
// The blocking Triton producer (docs/triton.md §2, §5 "Writes"): records go to the real
// stream of a configured logical stream, keyed by the configured partition-key field.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/pipeline/config.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::pipeline {

struct ProducerOptions {
  // region and endpoint: the StreamConfig's region is used when client.region is empty.
  aws::KinesisOptions client;
  // Whole-call failures (throttling, 5xx, network) of put, and the rounds of put_many that
  // resend only the entries that failed.
  RetryPolicy retry{};
};

// A record put_many could not write after every retry, with the last error Kinesis gave.
struct FailedRecord {
  std::size_t index = 0;  // in the caller's input
  std::string error_code;
  std::string error_message;
};
struct PutManyResult {
  std::vector<aws::PutRecordResult> results;  // in input order; empty shard for failures
  std::vector<FailedRecord> failed;
  [[nodiscard]] bool ok() const noexcept { return failed.empty(); }
};

// A packed record with its partition key (what tritond receives).
struct PackedRecord {
  std::string data;
  std::string partition_key;
};

// Not thread-safe (one Kinesis connection): one Producer per thread. Move-only.
class Producer {
 public:
  // Throws what aws::KinesisClient's constructor throws (ConfigError, AuthError).
  Producer(StreamConfig stream, ProducerOptions options = {});
  ~Producer();
  Producer(Producer&&) noexcept;
  Producer& operator=(Producer&&) noexcept;

  [[nodiscard]] const StreamConfig& stream() const noexcept;

  // PutRecord of one map; the partition key is partition_key_of(record, configured
  // field). Returns (shard id, sequence number). Throws ConfigError (missing key field),
  // and after the retry policy ThrottledError / TransportError / aws::AwsError; InDoubtError
  // when the reply to a sent request was lost (not retried: it may have been written).
  aws::PutRecordResult put(const Map& record);
  aws::PutRecordResult put_packed(std::string_view data, const std::string& partition_key);

  // PutRecords in requests of at most 500 records and 5 MiB (data + keys); entries that
  // fail individually (throttled, internal errors) are resent with backoff, alone, up to
  // the retry policy's attempts; what still fails is reported, not thrown. Whole-request
  // failures are retried the same way, 5xx and lost replies included (unlike put(): a
  // record may then be written twice, as with py-triton's retries); if one persists, every
  // entry of that request is reported failed (error_code names the error: the AWS type,
  // or "ThrottledError", "TransportError", "InDoubtError", "AuthError"). A record over
  // 1 MiB ("RecordTooLarge") or with an empty or over-256-character key
  // ("InvalidPartitionKey") is reported failed without being sent. Throws ConfigError for
  // a missing key field (before sending).
  PutManyResult put_many(std::span<const Map> records);
  PutManyResult put_many_packed(std::span<const PackedRecord> records);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::pipeline
