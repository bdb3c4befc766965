#pragma once
// Enhanced fan-out reading of one shard (as the Java KCL's FanOutRecordsPublisher), over
// the source's shared HTTP/2 subscriber (aws/kinesis_subscriber.hpp, docs/aws.md §5).
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "kclpp/aws/kinesis_subscriber.hpp"
#include "shard_fetcher.hpp"

namespace kclpp::native::detail {

// SubscribeToShard allows one call per second per shard and consumer.
inline constexpr std::chrono::milliseconds min_subscribe_interval{1'000};

// A subscription lives until the service ends it (every 5 minutes), a failure, or the
// round's end. A new one resumes AFTER_SEQUENCE_NUMBER the continuation of the last event
// handed on (so events received but not handed on come again), else where the round
// started. Ended subscriptions, dropped connections, in-stream exceptions, corrupt frames,
// ResourceInUse and throttling subscribe again, paced and with backoff while failures repeat; what
// retrying cannot fix is thrown.
class FanOutFetcher final : public RecordFetcher {
 public:
  FanOutFetcher(StreamSource& source, std::string shard_id, const WorkerOptions& options, StopSignal& stop,
                const ShardMetrics& metrics);
  ~FanOutFetcher() override;
  FanOutFetcher(const FanOutFetcher&) = delete;
  FanOutFetcher& operator=(const FanOutFetcher&) = delete;

  [[nodiscard]] ReadStatus start(const aws::StartPosition& start) override;
  // The next event of the subscription (an empty one is a heartbeat: Ok with no records).
  [[nodiscard]] ReadStatus fetch(aws::GetRecordsResult& out) override;
  [[nodiscard]] bool pushed() const noexcept override { return true; }

 private:
  [[nodiscard]] ReadStatus subscribe();
  [[nodiscard]] aws::StartPosition resume_position() const;
  // After a failed subscription: wait (growing while failures repeat), then Ok or Stopped.
  [[nodiscard]] ReadStatus failed(const Error& error);
  [[nodiscard]] ReadStatus take(aws::GetRecordsResult& out);

  StreamSource& source_;
  std::string shard_id_;
  const WorkerOptions& options_;
  StopSignal& stop_;
  const ShardMetrics& metrics_;
  std::unique_ptr<aws::ShardSubscription> subscription_;
  aws::SubscribeToShardEvent event_;
  // Across rounds: the subscribe budget is the shard's.
  std::optional<std::chrono::steady_clock::time_point> last_subscribe_;
  // This round's.
  aws::StartPosition round_start_;
  std::optional<std::string> continuation_;
  std::optional<std::chrono::system_clock::time_point> latest_opened_at_;
  int failures_ = 0;
  int subscriptions_ = 0;
};

}  // namespace kclpp::native::detail
