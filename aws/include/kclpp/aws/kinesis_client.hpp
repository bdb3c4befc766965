#pragma once
// A Kinesis Data Streams API client: JSON 1.1 over HTTP(S) with SigV4, one connection
// reused across calls, typed errors with a retry classification.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/processor/record.hpp"

namespace kclpp::aws {

struct KinesisOptions {
  // Empty: resolve_region() (AWS_REGION, AWS_DEFAULT_REGION, the profile's region).
  std::string region;
  // Empty: resolve_endpoint("KINESIS", ...): $AWS_ENDPOINT_URL_KINESIS, $AWS_ENDPOINT_URL,
  // the profile's endpoint_url, else https://kinesis.<region>.amazonaws.com. For local
  // servers, e.g. "http://127.0.0.1:4567". TLS certificates are always verified for https.
  std::string endpoint;
  // Null: shared_default_credentials(profile), the process's one default chain.
  CredentialsProviderPtr credentials;
  ProfileOptions profile;
  std::chrono::milliseconds connect_timeout{5'000};
  // Whole-request limit (GetRecords replies can be 10 MB).
  std::chrono::milliseconds request_timeout{30'000};
  // MaxResults of each ListShards page; 0: the service's default (1,000).
  int list_shards_page_size = 0;
};

struct Shard {
  std::string shard_id;
  std::optional<std::string> parent_shard_id;
  std::optional<std::string> adjacent_parent_shard_id;
  std::string starting_hash_key;
  std::string ending_hash_key;
  std::string starting_sequence_number;
  // Set once the shard is closed (split, merged): no records after it.
  std::optional<std::string> ending_sequence_number;
  [[nodiscard]] bool closed() const noexcept { return ending_sequence_number.has_value(); }
};

struct StreamSummary {
  std::string stream_name;
  std::string stream_arn;
  std::string status;  // CREATING, ACTIVE, UPDATING, DELETING
  int open_shard_count = 0;
  int retention_period_hours = 0;
};

enum class IteratorType { Latest, TrimHorizon, AtSequenceNumber, AfterSequenceNumber, AtTimestamp };

// Where a shard iterator starts.
struct StartPosition {
  IteratorType type = IteratorType::TrimHorizon;
  std::string sequence_number;                       // At/AfterSequenceNumber
  std::chrono::system_clock::time_point timestamp;  // AtTimestamp

  static StartPosition latest() { return {IteratorType::Latest, {}, {}}; }
  static StartPosition trim_horizon() { return {IteratorType::TrimHorizon, {}, {}}; }
  static StartPosition at(std::string seq) { return {IteratorType::AtSequenceNumber, std::move(seq), {}}; }
  static StartPosition after(std::string seq) {
    return {IteratorType::AfterSequenceNumber, std::move(seq), {}};
  }
  static StartPosition at_timestamp(std::chrono::system_clock::time_point t) {
    return {IteratorType::AtTimestamp, {}, t};
  }
};

struct GetRecordsResult {
  // As stored in the stream: KPL aggregates are NOT expanded here (see deaggregate.hpp).
  // data is base64-decoded; a record whose data does not decode has data_error set.
  std::vector<Record> records;
  // Absent when the shard is closed and fully read (SHARD_END).
  std::optional<std::string> next_shard_iterator;
  std::int64_t millis_behind_latest = 0;
  // Only at SHARD_END, where the service reports them.
  std::vector<Shard> child_shards;
};

// An enhanced fan-out consumer of a stream (RegisterStreamConsumer).
struct StreamConsumer {
  std::string consumer_name;
  std::string consumer_arn;
  std::string status;  // CREATING, ACTIVE, DELETING
  std::string stream_arn;
};

struct PutRecordResult {
  std::string shard_id;
  std::string sequence_number;
};

struct PutRecordsEntry {
  std::string data;  // raw bytes; the client base64-encodes them
  std::string partition_key;
  std::string explicit_hash_key;  // empty: none
};

// One entry of a PutRecords reply, in request order: either a shard and sequence number,
// or an error code (e.g. ProvisionedThroughputExceededException) and message.
struct PutRecordsResultEntry {
  std::string shard_id;
  std::string sequence_number;
  std::string error_code;
  std::string error_message;
  [[nodiscard]] bool ok() const noexcept { return error_code.empty(); }
};

// Not thread-safe: use one client per thread (each holds its own connection). Move-only.
// The constructor resolves region, endpoint and the credentials provider: ConfigError /
// AuthError (see config.hpp, credentials.hpp). Every request is signed with the provider's
// current credentials; a reply saying they expired makes the provider fetch new ones and
// the request is sent once more.
// Every call throws: ThrottledError (ProvisionedThroughputExceeded, LimitExceeded,
// Throttling; retryable with backoff), AuthError, TransportError (network, timeouts, 5xx;
// retryable), InDoubtError (a put whose reply was lost), AwsError (any other service
// error: ResourceNotFoundException, ExpiredIteratorException, InvalidArgumentException,
// ...; not retryable), ProtocolError (an unparseable reply). The client itself never
// retries: callers wrap calls in kclpp::retry().
class KinesisClient {
 public:
  explicit KinesisClient(KinesisOptions options);
  ~KinesisClient();
  KinesisClient(KinesisClient&&) noexcept;
  KinesisClient& operator=(KinesisClient&&) noexcept;
  KinesisClient(const KinesisClient&) = delete;
  KinesisClient& operator=(const KinesisClient&) = delete;

  [[nodiscard]] const KinesisOptions& options() const noexcept;

  // All shards, following NextToken pages.
  [[nodiscard]] std::vector<Shard> list_shards(const std::string& stream);
  [[nodiscard]] StreamSummary describe_stream_summary(const std::string& stream);
  [[nodiscard]] std::string get_shard_iterator(const std::string& stream, const std::string& shard_id,
                                               const StartPosition& position);
  [[nodiscard]] GetRecordsResult get_records(const std::string& shard_iterator, int limit = 10'000);
  // The same into `out`, replacing its contents but reusing the storage of the records it
  // already holds (their strings keep their capacity): a reader that hands the previous
  // batch's records back allocates nothing per record in steady state. Throws as above;
  // after a throw `out` is unspecified (pass it again).
  void get_records(const std::string& shard_iterator, int limit, GetRecordsResult& out);
  PutRecordResult put_record(const std::string& stream, std::string_view data,
                             const std::string& partition_key,
                             const std::string& explicit_hash_key = {});
  // At most 500 entries and 5 MiB per call (the service's limits; not checked here).
  std::vector<PutRecordsResultEntry> put_records(const std::string& stream,
                                                 std::span<const PutRecordsEntry> entries);

  // Enhanced fan-out consumers (SubscribeToShard itself: kinesis_subscriber.hpp).
  // RegisterStreamConsumer: AwsError ResourceInUseException when the name is taken,
  // ThrottledError (LimitExceededException) past the service's 5 calls per second.
  StreamConsumer register_stream_consumer(const std::string& stream_arn, const std::string& consumer_name);
  // DescribeStreamConsumer by stream ARN and name, or by consumer ARN:
  // AwsError ResourceNotFoundException when there is none.
  [[nodiscard]] StreamConsumer describe_stream_consumer(const std::string& stream_arn,
                                                        const std::string& consumer_name);
  [[nodiscard]] StreamConsumer describe_stream_consumer(const std::string& consumer_arn);
  // Every consumer of the stream, following NextToken pages.
  [[nodiscard]] std::vector<StreamConsumer> list_stream_consumers(const std::string& stream_arn);
  // For tools and tests only: kclpp never deregisters a consumer by itself.
  void deregister_stream_consumer(const std::string& consumer_arn);

  // Stream administration, for tools and tests.
  void create_stream(const std::string& stream, int shard_count);
  void delete_stream(const std::string& stream);
  void split_shard(const std::string& stream, const std::string& shard_id,
                   const std::string& new_starting_hash_key);
  void merge_shards(const std::string& stream, const std::string& shard_id,
                    const std::string& adjacent_shard_id);
  // Polls DescribeStreamSummary until ACTIVE; throws TransportError(Retry::No) on timeout.
  void wait_for_active(const std::string& stream, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The consumer named `consumer_name` of `stream`, registered if the stream has none of that
// name (a concurrent registration by another worker is reused), once ACTIVE (polled with
// backoff; a DELETING one is waited out and registered again). Throttling is retried.
// Throws TransportError(Retry::No) when it is not ACTIVE within `timeout`, AwsError
// (ResourceNotFoundException: no such stream), AuthError, ConfigError. Never deregisters.
[[nodiscard]] StreamConsumer ensure_stream_consumer(KinesisClient& client, const std::string& stream,
                                                    const std::string& consumer_name,
                                                    std::chrono::milliseconds timeout);

}  // namespace kclpp::aws
