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
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/error.hpp"
#include "shard_fetcher.hpp"
#include "shard_watch.hpp"
#include "shard_metrics.hpp"
#include "worker_checkpointer.hpp"

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

// The sentinel checkpoint that stands for a start position (LATEST, AT_TIMESTAMP, else
// TRIM_HORIZON): what a processor's initialize is told, and a new lease's checkpoint.
[[nodiscard]] ExtendedSequenceNumber sentinel_for(const aws::StartPosition& position);

// How a shard consumer ended.
enum class ShardOutcome {
  Ended,     // SHARD_END is in the store: the children may start
  Stopped,   // shutdown requested: shutdown_requested + lease_lost were called
  Gone,      // the shard no longer exists (expired past the retention, stream deleted)
  LeaseLost, // another worker has the shard's lease, or it could not be renewed: lease_lost was called
};

// What a consumer needs from its worker. References outlive the consumer. `stop` is the
// consumer's own: the worker requests it to shut down, and when the lease is lost. `watch`
// is where it records its processor calls and progress for the watchdog and health().
struct ShardConsumerContext {
  StreamSource& source;
  const ProcessorFactory& factory;
  const WorkerOptions& options;
  StopSignal& stop;
  ShardWatch& watch;
};

// Runs one shard until SHARD_END or a stop. A processor failure (OnProcessorError::Fail),
// a non-retryable read error, or a store outage drops the processor and restarts the
// shard from its checkpoint after a bounded, growing backoff. Throws only for failures
// that stop the whole worker: AuthError, ConfigError, StoreError(Retry::No) from load().
// Not thread-safe: runs on its shard's thread.
class ShardConsumer {
 public:
  // `start_without_checkpoint`: where to begin when there is no checkpoint, or a sentinel
  // one (the worker's initial position, or TRIM_HORIZON for a child of a shard it finished).
  ShardConsumer(ShardConsumerContext context, aws::Shard shard, aws::StartPosition start_without_checkpoint,
                std::unique_ptr<ShardCheckpoints> checkpoints);
  ~ShardConsumer();
  ShardConsumer(const ShardConsumer&) = delete;
  ShardConsumer& operator=(const ShardConsumer&) = delete;

  ShardOutcome run();

 private:
  // A round is one processor's lifetime, in steps as the Java KCL's lifecycle tasks: where
  // to start, initialize, process (read and deliver), shut down at SHARD_END. Each step
  // says whether the round goes on (Continue) or how it ends; the boundaries between
  // steps are where a round learns that it must end early.
  enum class Step { Continue, Ended, Stopped, Failed, Gone, LeaseLost };
  struct Round;  // the state the steps share (shard_consumer.cpp)
  struct RoundReport {
    Step end;            // never Continue
    bool made_progress;  // the processor returned from a non-empty batch
  };

  // How a processor call went: returned, threw (logged), or ran past processor_timeout
  // under OnProcessorTimeout::Restart (the round must fail however the call ended).
  enum class CallResult { Returned, Threw, TimedOut };
  template <class Fn>
  CallResult call(RecordProcessor& processor, ProcessorCall which, Fn&& fn);
  // Whether a call's result fails the round (OnProcessorError::Fail, or a timeout restart).
  [[nodiscard]] bool fails_round(CallResult result) const;

  RoundReport run_round();
  Step find_start(Round& round);
  Step initialize(Round& round);
  Step process(Round& round);
  Step read_and_deliver(Round& round);
  Step deliver(Round& round, aws::GetRecordsResult& result, std::vector<Record>& records);
  Step read_failed(Round& round, const Error& error);
  Step end_shard(Round& round);
  // The processor's two ways out before SHARD_END: dropped without a checkpoint (Failed),
  // or a worker shutdown with a last chance to checkpoint (Stopped).
  Step drop_processor(Round& round, const char* why);
  Step shutdown_processor(Round& round);
  // The lease went to another worker (or could not be renewed): lease_lost only, no
  // checkpoint (the table would refuse it).
  Step lose_lease(Round& round);
  // A stop was seen: the worker's shutdown, or a lost lease.
  Step stopped(Round& round) { return checkpoints_->held() ? shutdown_processor(round) : lose_lease(round); }

  ShardConsumerContext ctx_;
  aws::Shard shard_;
  aws::StartPosition start_without_checkpoint_;
  ShardMetrics metrics_;  // before the checkpoints and the fetcher, which refer to it
  std::unique_ptr<ShardCheckpoints> checkpoints_;
  std::unique_ptr<RecordFetcher> fetcher_;
};

}  // namespace kclpp::native::detail
