#pragma once
// One shard's reader and processor driver: the body of a shard thread of the native
// worker (worker.cpp). Resumes after the stored checkpoint, polls GetRecords within the
// per-shard budget, de-aggregates, drives the processor's lifecycle, records SHARD_END.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"

namespace kclpp::native::detail {

// A one-way stop flag with interruptible sleeps. Thread-safe.
class StopSignal {
 public:
  void request() noexcept;
  [[nodiscard]] bool requested() const noexcept;
  // Sleeps up to `delay`; returns true (early) once a stop is requested.
  bool wait_for(std::chrono::steady_clock::duration delay);

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// How a shard consumer ended.
enum class ShardOutcome {
  Ended,     // SHARD_END is in the store: the children may start
  Stopped,   // shutdown requested: shutdown_requested + lease_lost were called
  Gone,      // the shard no longer exists (expired past the retention, stream deleted)
};

// What a consumer needs from its worker. References outlive the consumer.
struct ShardConsumerContext {
  StreamSource& source;
  CheckpointStore& store;
  const ProcessorFactory& factory;
  const WorkerOptions& options;
  StopSignal& stop;
};

// Kinesis allows 5 GetRecords calls per second per shard.
inline constexpr std::chrono::milliseconds min_get_records_interval{200};

// Runs one shard until SHARD_END or a stop. A processor failure (OnProcessorError::Fail),
// a non-retryable read error, or a store outage drops the processor and restarts the
// shard from its checkpoint after a bounded, growing backoff. Throws only for failures
// that stop the whole worker: AuthError, ConfigError, StoreError(Retry::No) from load().
class ShardConsumer {
 public:
  // `start_without_checkpoint`: where to begin when the store has no checkpoint (the
  // worker's initial position, or TRIM_HORIZON for a child of a shard it finished).
  ShardConsumer(ShardConsumerContext context, aws::Shard shard, aws::StartPosition start_without_checkpoint);
  ~ShardConsumer();
  ShardConsumer(const ShardConsumer&) = delete;
  ShardConsumer& operator=(const ShardConsumer&) = delete;

  ShardOutcome run();

 private:
  enum class RoundResult { Ended, Stopped, Failed, Gone };
  RoundResult run_round(bool& made_progress);

  ShardConsumerContext ctx_;
  aws::Shard shard_;
  aws::StartPosition start_without_checkpoint_;
  std::unique_ptr<StreamConnection> connection_;
  std::optional<std::chrono::steady_clock::time_point> last_get_records_;
};

}  // namespace kclpp::native::detail
