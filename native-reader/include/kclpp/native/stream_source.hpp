#pragma once
// What the worker reads shards from: a Kinesis stream (KinesisStream) or an in-memory
// LocalStream. The worker opens one connection per shard thread.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/aws/kinesis_subscriber.hpp"

namespace kclpp::native {

// One reader's view of a stream. Not thread-safe: one per thread. Throws what
// aws::KinesisClient throws (ThrottledError, TransportError, aws::AwsError "ExpiredIteratorException", ...).
class StreamConnection {
 public:
  virtual ~StreamConnection() = default;
  [[nodiscard]] virtual std::vector<aws::Shard> list_shards() = 0;
  [[nodiscard]] virtual std::string get_shard_iterator(const std::string& shard_id,
                                                       const aws::StartPosition& position) = 0;
  [[nodiscard]] virtual aws::GetRecordsResult get_records(const std::string& shard_iterator, int limit) = 0;
  // The same into `out`, reusing the storage of the records it holds where the connection
  // can (KinesisStream's do; see aws::KinesisClient::get_records). The worker calls this one.
  virtual void get_records_into(const std::string& shard_iterator, int limit, aws::GetRecordsResult& out) {
    out = get_records(shard_iterator, limit);
  }
};

// Thread-safe factory of connections to one stream.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  [[nodiscard]] virtual const std::string& stream_name() const noexcept = 0;
  [[nodiscard]] virtual std::unique_ptr<StreamConnection> connect() = 0;
  // Enhanced fan-out: a SubscribeToShard stream of `shard_id` from `position` for this
  // source's registered consumer, or nullptr when the source polls (the default). Shard
  // consumers read through it instead of GetRecords when it is not null.
  [[nodiscard]] virtual bool fan_out() const noexcept { return false; }
  [[nodiscard]] virtual std::unique_ptr<aws::ShardSubscription> subscribe(const std::string& shard_id,
                                                                          const aws::StartPosition& position);
};

// Enhanced fan-out for a KinesisStream (the Java KCL's retrievalMode = FANOUT).
struct FanOutOptions {
  // The consumer to read as: `consumer_arn` when set (used as it is, never registered),
  // else the consumer named `consumer_name` (the application name by default, as in the
  // KCL), registered when the stream has none of that name. Never deregistered.
  std::string consumer_name;
  std::string consumer_arn;
  // How long to wait for a new consumer to become ACTIVE.
  std::chrono::milliseconds register_timeout{120'000};
};

// A Kinesis stream reached through aws::KinesisClient (each connection has its own client).
// With fan-out, the constructor finds or registers the consumer (network calls; throws
// what aws::ensure_stream_consumer throws) and every subscription shares one
// aws::KinesisSubscriber, so one HTTP/2 connection.
class KinesisStream final : public StreamSource {
 public:
  KinesisStream(std::string stream_name, aws::KinesisOptions options,
                std::optional<FanOutOptions> fan_out = std::nullopt);
  ~KinesisStream() override;
  [[nodiscard]] const std::string& stream_name() const noexcept override { return stream_name_; }
  [[nodiscard]] std::unique_ptr<StreamConnection> connect() override;
  [[nodiscard]] bool fan_out() const noexcept override { return subscriber_ != nullptr; }
  [[nodiscard]] std::unique_ptr<aws::ShardSubscription> subscribe(const std::string& shard_id,
                                                                  const aws::StartPosition& position) override;
  // The subscriber's connections and open subscriptions (zeros when polling).
  [[nodiscard]] aws::KinesisSubscriber::Stats fan_out_stats() const;
  // The consumer read as ("" when polling).
  [[nodiscard]] const std::string& consumer_arn() const noexcept { return consumer_arn_; }

 private:
  std::string stream_name_;
  aws::KinesisOptions options_;  // credentials resolved once, in the constructor
  std::string consumer_arn_;
  std::unique_ptr<aws::KinesisSubscriber> subscriber_;
};

}  // namespace kclpp::native
