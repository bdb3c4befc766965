#pragma once
// What the worker's watchdog and Worker::health() know of one shard (docs/operations.md §2):
// the processor call in flight (which, since when), when records last reached the
// processor, the service's last millisBehindLatest, and failed rounds in a row. The shard's
// thread records; the watchdog thread checks (logs, counts, interrupts); health() reads.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/native/worker.hpp"
#include "kclpp/processor/metrics.hpp"
#include "kclpp/processor/record_processor.hpp"

namespace kclpp::native::detail {

enum class ProcessorCall { Initialize, ProcessRecords, ShardEnded, ShutdownRequested, LeaseLost };

// "process_records", as in the API and the logs.
[[nodiscard]] const char* call_name(ProcessorCall call) noexcept;

// How one shard is doing, for health().
struct ShardCondition {
  bool call_past_timeout = false;
  bool stalled = false;
  bool failing = false;
  std::optional<std::string> problem;  // one line naming the shard, when not healthy
};

// Thread-safe: one mutex guards everything. The watchdog calls the processor's interrupt()
// under that mutex, so call_ended() (and thus the processor's destruction, which follows
// it) waits until interrupt() has returned: the processor cannot go away under it.
class ShardWatch {
 public:
  using Clock = std::chrono::steady_clock;

  ShardWatch(std::string shard_id, const WorkerOptions& options, MetricsRegistry& metrics);
  ShardWatch(const ShardWatch&) = delete;
  ShardWatch& operator=(const ShardWatch&) = delete;

  // --- the shard's thread ---------------------------------------------------------------
  void call_started(ProcessorCall call, RecordProcessor& processor);
  // Ends the call in flight. True when it ran past processor_timeout under
  // OnProcessorTimeout::Restart: the round must fail whatever the call did.
  [[nodiscard]] bool call_ended();
  // A round failed (processor dropped, read or store failure); cleared by progress. The
  // no-progress clock is not reset by a new round: a shard failing over and over is stalled.
  void round_failed();
  // A reply from the service (GetRecords or a subscription event).
  void fetched(std::int64_t millis_behind_latest);
  // process_records returned from a non-empty batch.
  void delivered();

  // --- the watchdog thread ----------------------------------------------------------------
  // Logs, counts and (Restart) interrupts a call past its timeout; flags a stall.
  void check(Clock::time_point now);

  // --- health() ---------------------------------------------------------------------------
  [[nodiscard]] ShardCondition condition(Clock::time_point now) const;

 private:
  [[nodiscard]] bool stalled_locked(Clock::time_point now) const;
  void check_call(Clock::time_point now);
  void check_stall(Clock::time_point now);

  const std::string shard_id_;
  const std::chrono::milliseconds processor_timeout_;
  const OnProcessorTimeout policy_;
  const std::chrono::milliseconds stall_timeout_;
  const Counter timeouts_;
  const Counter stalls_;

  mutable std::mutex mutex_;
  // The call in flight.
  std::optional<ProcessorCall> call_;
  RecordProcessor* processor_ = nullptr;  // valid while call_ is set
  Clock::time_point call_since_{};
  bool call_timed_out_ = false;     // passed processor_timeout (logged and counted)
  bool restart_requested_ = false;  // and interrupted under Restart
  Clock::time_point next_call_report_{};
  // Progress.
  Clock::time_point last_progress_;
  std::optional<std::int64_t> millis_behind_;
  bool stall_flagged_ = false;
  Clock::time_point next_stall_report_{};
  int failed_rounds_ = 0;
};

}  // namespace kclpp::native::detail
