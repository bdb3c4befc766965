#include "kclpp/native/stream_source.hpp"

#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::native {

namespace {

// One shard-reader thread's connection: its own client (and so its own HTTP connection).
class KinesisConnection final : public StreamConnection {
 public:
  KinesisConnection(const std::string& stream, const aws::KinesisOptions& options)
      : stream_(stream), client_(options) {}

  std::vector<aws::Shard> list_shards() override { return client_.list_shards(stream_); }
  std::string get_shard_iterator(const std::string& shard_id, const aws::StartPosition& position) override {
    return client_.get_shard_iterator(stream_, shard_id, position);
  }
  aws::GetRecordsResult get_records(const std::string& shard_iterator, int limit) override {
    return client_.get_records(shard_iterator, limit);
  }
  void get_records_into(const std::string& shard_iterator, int limit, aws::GetRecordsResult& out) override {
    client_.get_records(shard_iterator, limit, out);
  }

 private:
  std::string stream_;
  aws::KinesisClient client_;
};

}  // namespace

std::unique_ptr<aws::ShardSubscription> StreamSource::subscribe(const std::string&, const aws::StartPosition&) {
  return nullptr;
}

KinesisStream::KinesisStream(std::string stream_name, aws::KinesisOptions options,
                             std::optional<FanOutOptions> fan_out)
    : stream_name_(std::move(stream_name)), options_(std::move(options)) {
  // Resolve once, here, so that every connection agrees and a missing region or
  // credentials fails at start-up rather than in a shard thread.
  options_.region = aws::resolve_region(options_.region, options_.profile);
  if (!options_.credentials) options_.credentials = aws::shared_default_credentials(options_.profile);
  if (!fan_out) return;
  if (!fan_out->consumer_arn.empty()) {
    if (!fan_out->consumer_name.empty()) {
      throw ConfigError("enhanced fan-out: give a consumer name or a consumer ARN, not both");
    }
    consumer_arn_ = fan_out->consumer_arn;
  } else {
    if (fan_out->consumer_name.empty()) throw ConfigError("enhanced fan-out: no consumer name (nor ARN)");
    aws::KinesisClient client(options_);
    const aws::StreamConsumer consumer =
        aws::ensure_stream_consumer(client, stream_name_, fan_out->consumer_name, fan_out->register_timeout);
    consumer_arn_ = consumer.consumer_arn;
  }
  log_info("stream ", stream_name_, ": reading with enhanced fan-out as consumer ", consumer_arn_);
  subscriber_ = std::make_unique<aws::KinesisSubscriber>(aws::SubscriberOptions{options_});
}

KinesisStream::~KinesisStream() = default;

std::unique_ptr<aws::ShardSubscription> KinesisStream::subscribe(const std::string& shard_id,
                                                                 const aws::StartPosition& position) {
  if (!subscriber_) return nullptr;
  return subscriber_->subscribe(consumer_arn_, shard_id, position);
}

aws::KinesisSubscriber::Stats KinesisStream::fan_out_stats() const {
  return subscriber_ ? subscriber_->stats() : aws::KinesisSubscriber::Stats{};
}

std::unique_ptr<StreamConnection> KinesisStream::connect() {
  return std::make_unique<KinesisConnection>(stream_name_, options_);
}

}  // namespace kclpp::native
