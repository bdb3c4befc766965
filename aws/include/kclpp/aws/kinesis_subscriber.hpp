#pragma once
// Enhanced fan-out: SubscribeToShard streams over HTTP/2 (docs/aws.md §5). One
// KinesisSubscriber carries every subscription of its owner (a worker) on one HTTP/2
// connection, multiplexed by libcurl's multi interface on one I/O thread it owns; more
// connections open only when the server's limit of concurrent streams per connection
// requires. TLS with ALPN h2 for https endpoints, HTTP/2 with prior knowledge for http ones
// (with libcurl before 8.0, a connection per subscription there: docs/aws.md §5.1).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"

namespace kclpp::aws {

// One SubscribeToShardEvent.
struct SubscribeToShardEvent {
  // As stored in the stream (KPL aggregates not expanded), as GetRecordsResult::records.
  std::vector<Record> records;
  // Where a new subscription resumes (AFTER_SEQUENCE_NUMBER) after this event, records or
  // not. Empty at the end of a closed shard: then child_shards lists its children.
  std::string continuation_sequence_number;
  std::int64_t millis_behind_latest = 0;
  std::vector<Shard> child_shards;
  [[nodiscard]] bool shard_end() const noexcept { return continuation_sequence_number.empty(); }
};

struct SubscriberOptions {
  // Region, endpoint, credentials, connect timeout as for KinesisClient.
  KinesisOptions kinesis;
  // Bytes a subscription buffers (received, not yet taken by next()) before its stream is
  // paused, so that HTTP/2 flow control stops the server: a slow processor slows its
  // stream instead of growing memory.
  std::size_t buffer_bytes = 4u << 20;
  // A stream that is not paused and receives no byte for this long fails with a
  // TransportError (the service sends an event at least every few seconds).
  std::chrono::milliseconds stall_timeout{35'000};
};

// One SubscribeToShard call's stream of events. Not thread-safe: one consumer thread.
// Destroying it cancels the stream.
class ShardSubscription {
 public:
  enum class Status {
    Event,    // `out` holds the next event
    Ended,    // the service ended the subscription normally (it does after 5 minutes):
              // subscribe again from the last event's continuation_sequence_number
    Timeout,  // nothing within the timeout; call again
  };
  virtual ~ShardSubscription() = default;
  // Waits up to `timeout` for the next event and parses it into `out`, reusing the storage
  // of the records already there. An initial-response is skipped. After Ended or a throw
  // the subscription is over. Throws what the service or the connection said:
  // ThrottledError (LimitExceededException), AwsError (ResourceInUseException,
  // ResourceNotFoundException, InvalidArgumentException, an in-stream exception or an
  // error reply of another type), AuthError, TransportError (connection refused or reset,
  // a stall, an in-stream "error" message; retryable), ProtocolError (a corrupt frame or
  // event).
  virtual Status next(SubscribeToShardEvent& out, std::chrono::milliseconds timeout) = 0;
};

// Thread-safe. The destructor cancels every subscription still open and joins the I/O
// thread; destroy the subscriptions first (they refer to it).
class KinesisSubscriber {
 public:
  struct Impl;
  // Resolves region, endpoint and credentials as KinesisClient does (ConfigError,
  // AuthError). Starts its I/O thread.
  explicit KinesisSubscriber(SubscriberOptions options);
  ~KinesisSubscriber();
  KinesisSubscriber(const KinesisSubscriber&) = delete;
  KinesisSubscriber& operator=(const KinesisSubscriber&) = delete;

  // Sends SubscribeToShard (signed with the current credentials) and returns at once; the
  // reply comes through the subscription. `position` is TRIM_HORIZON, LATEST,
  // AT/AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP.
  [[nodiscard]] std::unique_ptr<ShardSubscription> subscribe(const std::string& consumer_arn,
                                                             const std::string& shard_id,
                                                             const StartPosition& position);

  struct Stats {
    long connections_opened = 0;  // HTTP connections libcurl opened so far
    long subscriptions_open = 0;
  };
  [[nodiscard]] Stats stats() const;

 private:
  // Shared with the subscriptions, which may (wrongly) outlive the subscriber: their
  // cancellations then go nowhere.
  std::shared_ptr<Impl> impl_;
};

}  // namespace kclpp::aws
