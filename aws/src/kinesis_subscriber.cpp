// SubscribeToShard over HTTP/2 (docs/aws.md §5). In progress (issue 13).
#include "kclpp/aws/kinesis_subscriber.hpp"

#include "kclpp/processor/error.hpp"

namespace kclpp::aws {

struct KinesisSubscriber::Impl {};

KinesisSubscriber::KinesisSubscriber(SubscriberOptions) : impl_(std::make_unique<Impl>()) {
  throw ConfigError("enhanced fan-out: not built yet");
}
KinesisSubscriber::~KinesisSubscriber() = default;

std::unique_ptr<ShardSubscription> KinesisSubscriber::subscribe(const std::string&, const std::string&,
                                                                const StartPosition&) {
  return nullptr;
}

KinesisSubscriber::Stats KinesisSubscriber::stats() const { return {}; }

}  // namespace kclpp::aws
