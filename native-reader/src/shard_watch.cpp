#include "shard_watch.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "kclpp/processor/log.hpp"

namespace kclpp::native::detail {
namespace {

using Clock = ShardWatch::Clock;

// A report of something still going on comes again each time it has lasted twice as long,
// but at least every 5 minutes: a call stuck for hours logs a few dozen lines, not one per
// watchdog tick, and an operator who looks late still finds a recent one.
constexpr std::chrono::minutes max_report_interval{5};

// Three failed rounds in a row without a record processed: a poison record or a broken
// processor, not a passing hiccup (a single failure restarts within a second).
constexpr int failing_rounds = 3;

Clock::time_point next_report(Clock::time_point since, Clock::time_point now) {
  return std::min(now + (now - since), now + Clock::duration(max_report_interval));
}

// "1.5 s": durations in the logs and health lines, to a tenth of a second.
std::string seconds_text(Clock::duration d) {
  const double seconds = std::chrono::duration<double>(d).count();
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds);
  return text;
}

}  // namespace

const char* call_name(ProcessorCall call) noexcept {
  switch (call) {
    case ProcessorCall::Initialize:
      return "initialize";
    case ProcessorCall::ProcessRecords:
      return "process_records";
    case ProcessorCall::ShardEnded:
      return "shard_ended";
    case ProcessorCall::ShutdownRequested:
      return "shutdown_requested";
    case ProcessorCall::LeaseLost:
      return "lease_lost";
  }
  return "?";
}

ShardWatch::ShardWatch(std::string shard_id, const WorkerOptions& options, MetricsRegistry& metrics)
    : shard_id_(std::move(shard_id)),
      processor_timeout_(options.processor_timeout),
      policy_(options.on_processor_timeout),
      stall_timeout_(options.stall_timeout),
      timeouts_(metrics.counter("kclpp_processor_timeouts_total",
                                "Processor calls that ran past the processor timeout", {{"shard", shard_id_}})),
      stalls_(metrics.counter("kclpp_shard_stalls_total",
                              "Times a shard behind the tip of the stream stopped making progress",
                              {{"shard", shard_id_}})),
      last_progress_(Clock::now()) {}

void ShardWatch::call_started(ProcessorCall call, RecordProcessor& processor) {
  const std::lock_guard lock(mutex_);
  call_ = call;
  processor_ = &processor;
  call_since_ = Clock::now();
  call_timed_out_ = false;
  restart_requested_ = false;
}

bool ShardWatch::call_ended() {
  const std::lock_guard lock(mutex_);
  if (!call_) return false;
  if (call_timed_out_) {
    log_warn("watchdog: shard ", shard_id_, ": ", call_name(*call_), " returned after ",
             seconds_text(Clock::now() - call_since_), " (processor_timeout ", seconds_text(processor_timeout_),
             restart_requested_ ? "); restarting the shard from its checkpoint" : ")");
  }
  call_.reset();
  processor_ = nullptr;
  return std::exchange(restart_requested_, false);
}

void ShardWatch::round_failed() {
  const std::lock_guard lock(mutex_);
  ++failed_rounds_;
}

void ShardWatch::fetched(std::int64_t millis_behind_latest) {
  const std::lock_guard lock(mutex_);
  millis_behind_ = millis_behind_latest;
  // Caught up: nothing to make progress on, which is progress enough.
  if (millis_behind_latest <= 0) last_progress_ = Clock::now();
}

void ShardWatch::delivered() {
  const std::lock_guard lock(mutex_);
  last_progress_ = Clock::now();
  failed_rounds_ = 0;
}

void ShardWatch::check(Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  check_call(now);
  check_stall(now);
}

void ShardWatch::check_call(Clock::time_point now) {
  if (!call_ || processor_timeout_.count() <= 0) return;
  const auto running = now - call_since_;
  if (running < processor_timeout_) return;
  if (!call_timed_out_) {
    call_timed_out_ = true;
    timeouts_.add();
    const bool restart = policy_ == OnProcessorTimeout::Restart;
    log_error("watchdog: shard ", shard_id_, ": ", call_name(*call_), " has been running for ",
              seconds_text(running), ", past processor_timeout ", seconds_text(processor_timeout_),
              restart ? "; interrupting the processor" : "");
    next_call_report_ = next_report(call_since_, now);
    if (restart) {
      restart_requested_ = true;
      // Under the mutex: the processor stays alive until call_ended() (see the class comment).
      processor_->interrupt();
    }
    return;
  }
  if (now >= next_call_report_) {
    log_error("watchdog: shard ", shard_id_, ": ", call_name(*call_), " still running after ", seconds_text(running),
              " (processor_timeout ", seconds_text(processor_timeout_), ")");
    next_call_report_ = next_report(call_since_, now);
  }
}

bool ShardWatch::stalled_locked(Clock::time_point now) const {
  // A call in flight is the processor timeout's business, not a stall of the reading.
  return stall_timeout_.count() > 0 && !call_ && millis_behind_ && *millis_behind_ > 0 &&
         now - last_progress_ >= stall_timeout_;
}

void ShardWatch::check_stall(Clock::time_point now) {
  const bool stalled = stalled_locked(now);
  if (stalled && !stall_flagged_) {
    stall_flagged_ = true;
    stalls_.add();
    log_error("watchdog: shard ", shard_id_, ": no records handed to the processor for ",
              seconds_text(now - last_progress_), " while the service reports it ", *millis_behind_,
              " ms behind (stall_timeout ", seconds_text(stall_timeout_), ")");
    next_stall_report_ = next_report(last_progress_, now);
  } else if (stalled && now >= next_stall_report_) {
    log_error("watchdog: shard ", shard_id_, ": still no progress after ", seconds_text(now - last_progress_),
              " (", *millis_behind_, " ms behind)");
    next_stall_report_ = next_report(last_progress_, now);
  } else if (!stalled && stall_flagged_ && !call_) {
    stall_flagged_ = false;
    log_info("watchdog: shard ", shard_id_, " is making progress again");
  }
}

ShardCondition ShardWatch::condition(Clock::time_point now) const {
  const std::lock_guard lock(mutex_);
  ShardCondition out;
  if (call_ && processor_timeout_.count() > 0 && now - call_since_ >= processor_timeout_) {
    out.call_past_timeout = true;
    out.problem = shard_id_ + ": " + call_name(*call_) + " running for " + seconds_text(now - call_since_) +
                  " (processor_timeout " + seconds_text(processor_timeout_) + ")";
  } else if (stalled_locked(now)) {
    out.stalled = true;
    out.problem = shard_id_ + ": no progress for " + seconds_text(now - last_progress_) + " while " +
                  std::to_string(*millis_behind_) + " ms behind latest";
  } else if (failed_rounds_ >= failing_rounds) {
    out.failing = true;
    out.problem = shard_id_ + ": " + std::to_string(failed_rounds_) +
                  " processor rounds failed in a row with no record processed";
  }
  return out;
}

}  // namespace kclpp::native::detail
