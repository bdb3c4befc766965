#include "shard_consumer.hpp"

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/native/deaggregate.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "worker_checkpointer.hpp"

namespace kclpp::native::detail {
namespace {

using kclpp::detail::describe_current_exception;

bool is_fatal(const Error& e) {
  return dynamic_cast<const AuthError*>(&e) != nullptr || dynamic_cast<const ConfigError*>(&e) != nullptr;
}

// The shard's series in the worker's registry (the Worker always sets one).
ShardMetrics shard_metrics(const ShardConsumerContext& ctx, const std::string& shard_id) {
  if (!ctx.options.metrics) return {};
  return ShardMetrics(*ctx.options.metrics, shard_id,
                      worker_labels(ctx.options.application, ctx.source.stream_name()));
}

}  // namespace

ExtendedSequenceNumber sentinel_for(const aws::StartPosition& position) {
  switch (position.type) {
    case aws::IteratorType::Latest:
      return ExtendedSequenceNumber(Sentinel::Latest);
    case aws::IteratorType::AtTimestamp:
      return ExtendedSequenceNumber(Sentinel::AtTimestamp);
    default:
      return ExtendedSequenceNumber(Sentinel::TrimHorizon);
  }
}

void StopSignal::request() noexcept {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
}

bool StopSignal::requested() const noexcept {
  const std::lock_guard lock(mutex_);
  return stop_;
}

bool StopSignal::wait_for(std::chrono::steady_clock::duration delay) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, delay, [&] { return stop_; });
}

ShardConsumer::ShardConsumer(ShardConsumerContext context, aws::Shard shard, aws::StartPosition start_without_checkpoint,
                             std::unique_ptr<ShardCheckpoints> checkpoints)
    : ctx_(context),
      shard_(std::move(shard)),
      start_without_checkpoint_(std::move(start_without_checkpoint)),
      metrics_(shard_metrics(ctx_, shard_.shard_id)),
      checkpoints_(std::make_unique<MeteredCheckpoints>(std::move(checkpoints), metrics_)),
      fetcher_(make_fetcher(ctx_.source, shard_.shard_id, ctx_.options, ctx_.stop, metrics_)) {}

ShardConsumer::~ShardConsumer() = default;

// Runs one processor call under the watchdog's eye. User code may throw anything: the
// failure is logged, and the caller applies OnProcessorError.
template <class Fn>
ShardConsumer::CallResult ShardConsumer::call(RecordProcessor& processor, ProcessorCall which, Fn&& fn) {
  ctx_.watch.call_started(which, processor);
  bool threw = false;
  try {
    fn();
  } catch (...) {
    log_error("processor of ", shard_.shard_id, " threw in ", call_name(which), ": ", describe_current_exception());
    threw = true;
  }
  if (ctx_.watch.call_ended()) return CallResult::TimedOut;
  return threw ? CallResult::Threw : CallResult::Returned;
}

bool ShardConsumer::fails_round(CallResult result) const {
  return result == CallResult::TimedOut ||
         (result == CallResult::Threw && ctx_.options.on_processor_error == OnProcessorError::Fail);
}

ShardOutcome ShardConsumer::run() {
  // A failed round (processor failure under OnProcessorError::Fail, a read error that
  // retrying cannot fix, a store outage) restarts the shard from its checkpoint after a
  // backoff that grows while rounds keep failing without progress, so a poison record does
  // not spin hot; the floor keeps RetryPolicy::none() from spinning too.
  int failures = 0;
  while (!ctx_.stop.requested()) {
    const RoundReport report = run_round();
    if (report.end == Step::Failed) ctx_.watch.round_failed();
    switch (report.end) {
      case Step::Ended:
        return ShardOutcome::Ended;
      case Step::Stopped:
        return ShardOutcome::Stopped;
      case Step::Gone:
        return ShardOutcome::Gone;
      case Step::LeaseLost:
        return ShardOutcome::LeaseLost;
      case Step::Failed:
      case Step::Continue:
        break;
    }
    // A processor that let LeaseLostError out of checkpoint() failed its round because the
    // lease went: there is nothing to restart.
    if (!checkpoints_->held()) return ShardOutcome::LeaseLost;
    metrics_.processor_restarts.add();
    failures = report.made_progress ? 1 : std::min(failures + 1, 30);
    const auto delay = std::max<std::chrono::milliseconds>(
        kclpp::detail::backoff_delay(ctx_.options.read_retry, failures, Retry::Yes),
        min_get_records_interval);
    log_warn("shard ", shard_.shard_id, ": restarting from its checkpoint with a new processor in ",
             delay.count(), " ms (failure ", failures, ")");
    if (ctx_.stop.wait_for(delay)) break;
  }
  return checkpoints_->held() ? ShardOutcome::Stopped : ShardOutcome::LeaseLost;
}

struct ShardConsumer::Round {
  explicit Round(ShardCheckpoints& checkpoints) : checkpointer(checkpoints) {}

  // find_start: the stored checkpoint, where reading starts, what initialize is told.
  std::optional<ExtendedSequenceNumber> stored;
  aws::StartPosition start;
  ExtendedSequenceNumber initial;
  // Records at or below this position were processed before: they are dropped.
  std::optional<ExtendedSequenceNumber> skip_through;
  // initialize: the processor of this round and its checkpointer.
  std::unique_ptr<RecordProcessor> processor;
  WorkerCheckpointer checkpointer;
  bool made_progress = false;
};

ShardConsumer::RoundReport ShardConsumer::run_round() {
  Round round(*checkpoints_);
  // Each step runs only if the one before let the round go on: a step that ends the round
  // has already wound its processor down, and no later step may touch the store.
  Step step = find_start(round);
  if (step == Step::Continue) step = initialize(round);
  if (step == Step::Continue) step = process(round);
  if (step == Step::Continue) step = end_shard(round);
  return {step, round.made_progress};
}

// Where to start: after the stored checkpoint, else where the worker says.
ShardConsumer::Step ShardConsumer::find_start(Round& round) {
  const std::string& shard_id = shard_.shard_id;
  try {
    if (!checkpoints_->held()) return Step::LeaseLost;
    round.stored = checkpoints_->load();
  } catch (const LeaseLostError& e) {
    log_info("shard ", shard_id, ": ", e.what());
    return Step::LeaseLost;
  } catch (const StoreError& e) {
    if (e.retry() == Retry::No) throw;  // a broken schema or config: stops the worker
    log_error("shard ", shard_id, ": cannot load its checkpoint: ", e.what());
    return Step::Failed;
  }
  const std::optional<ExtendedSequenceNumber>& stored = round.stored;
  if (stored && stored->sentinel() == Sentinel::ShardEnd) {
    log_info("shard ", shard_id, " is already at SHARD_END");
    return Step::Ended;
  }
  if (stored && !stored->is_sentinel()) {
    // As the Java KCL's KinesisDataFetcher: AT_SEQUENCE_NUMBER of the checkpoint, then the
    // (seq, sub) filter in deliver() drops what was already processed. This resumes right
    // after the checkpoint, also inside a KPL aggregate (sub > 0) and when a processor
    // checkpointed sub-record 0 of an aggregate (AFTER_SEQUENCE_NUMBER would lose the
    // aggregate's later user records), at the cost of reading one record again.
    round.start = aws::StartPosition::at(stored->sequence_number().str());
    round.initial = *stored;
    round.skip_through = stored;
  } else {
    round.start = start_without_checkpoint_;
    round.initial = sentinel_for(round.start);
  }
  return Step::Continue;
}

ShardConsumer::Step ShardConsumer::initialize(Round& round) {
  const std::string& shard_id = shard_.shard_id;
  if (!checkpoints_->held()) return Step::LeaseLost;
  try {
    round.processor = ctx_.factory(shard_id);
  } catch (...) {
    log_error("processor factory threw for ", shard_id, ": ", describe_current_exception());
    return Step::Failed;
  }
  if (!round.processor) {
    log_error("processor factory returned no processor for ", shard_id);
    return Step::Failed;
  }
  round.checkpointer.reset(round.stored);
  const CallResult result = call(*round.processor, ProcessorCall::Initialize,
                                 [&] { round.processor->initialize(shard_id, round.initial); });
  if (fails_round(result)) {
    return drop_processor(round, result == CallResult::TimedOut ? "initialize timed out" : "initialize threw");
  }
  return Step::Continue;
}

// Reads until SHARD_END (Continue), a stop, or a failure. A read error the fetcher could
// not retry away ends the round here.
ShardConsumer::Step ShardConsumer::process(Round& round) {
  try {
    return read_and_deliver(round);
  } catch (const Error& e) {
    if (is_fatal(e)) {
      drop_processor(round, "the worker stops");
      throw;
    }
    return read_failed(round, e);
  }
}

ShardConsumer::Step ShardConsumer::read_and_deliver(Round& round) {
  if (fetcher_->start(round.start) == ReadStatus::Stopped) return stopped(round);
  std::vector<Record> records;
  // Reused across calls: once a batch has been processed its records go back into
  // result.records, and the next reply is decoded into their strings (no allocation per
  // record in steady state; bench/native_throughput).
  aws::GetRecordsResult result;
  for (;;) {
    if (ctx_.stop.requested()) return stopped(round);
    const ReadStatus status = fetcher_->fetch(result);
    if (status == ReadStatus::Stopped) return stopped(round);
    // Nothing is handed on once the lease has gone: another worker may be reading the shard.
    if (!checkpoints_->held()) return lose_lease(round);
    ctx_.watch.fetched(result.millis_behind_latest);
    const bool full = static_cast<int>(result.records.size()) >= ctx_.options.max_records;
    metrics_.millis_behind_latest.set(static_cast<double>(result.millis_behind_latest));
    if (const Step step = deliver(round, result, records); step != Step::Continue) return step;
    if (status == ReadStatus::ShardEnd) return Step::Continue;
    // Caught up: wait before polling again. Behind: poll again now (the fetcher keeps the
    // calls within the budget). Pushed records come when they come.
    if (!fetcher_->pushed() && result.millis_behind_latest <= 0 && !full &&
        ctx_.stop.wait_for(ctx_.options.idle_time_between_reads)) {
      return stopped(round);
    }
  }
}

// Hands one reply's records, de-aggregated and without those the stored checkpoint covers,
// to the processor. Afterwards the processed records' strings are back in `result` to take
// the next reply; `records` keeps the moved-from shells.
ShardConsumer::Step ShardConsumer::deliver(Round& round, aws::GetRecordsResult& result,
                                           std::vector<Record>& records) {
  records.clear();
  for (auto& record : result.records) deaggregate(std::move(record), records);
  if (round.skip_through) {
    const ExtendedSequenceNumber skip = *round.skip_through;
    std::erase_if(records, [&](const Record& r) { return compare_positions(r.position(), skip) <= 0; });
    const auto& last_fetched = fetcher_->last_fetched();
    if (last_fetched && SequenceNumber(*last_fetched) > skip.sequence_number()) round.skip_through.reset();
  }
  if (!records.empty() || ctx_.options.empty_batches == EmptyBatches::Deliver) {
    if (!records.empty()) round.checkpointer.delivered(records.back().position());
    std::size_t bytes = 0;
    for (const Record& record : records) bytes += record.data.size();
    metrics_.records.add(records.size());
    metrics_.bytes.add(bytes);
    RecordBatch batch{std::move(records), result.millis_behind_latest};
    const auto started = std::chrono::steady_clock::now();
    const CallResult called = call(*round.processor, ProcessorCall::ProcessRecords,
                                   [&] { round.processor->process_records(batch, round.checkpointer); });
    metrics_.process_seconds.observe(std::chrono::steady_clock::now() - started);
    if (fails_round(called)) {
      return drop_processor(round,
                            called == CallResult::TimedOut ? "process_records timed out" : "process_records threw");
    }
    if (!batch.records.empty()) {
      round.made_progress = true;
      ctx_.watch.delivered();
    }
    records = std::move(batch.records);
  }
  result.records.swap(records);
  return Step::Continue;
}

ShardConsumer::Step ShardConsumer::read_failed(Round& round, const Error& error) {
  const auto* aws = dynamic_cast<const aws::AwsError*>(&error);
  if (aws != nullptr && aws->type() == "ResourceNotFoundException") {
    // Retrying cannot bring it back; its children (if any) treat it as done.
    log_warn("shard ", shard_.shard_id, " no longer exists (", error.what(), "); giving it up");
    drop_processor(round, "shard gone");
    return Step::Gone;
  }
  log_error("shard ", shard_.shard_id, ": reading failed: ", error.what());
  return drop_processor(round, "read error");
}

// SHARD_END: the processor's terminal shard_ended, then SHARD_END in the store whatever the
// processor did, so that the children may start.
ShardConsumer::Step ShardConsumer::end_shard(Round& round) {
  const std::string& shard_id = shard_.shard_id;
  WorkerCheckpointer& checkpointer = round.checkpointer;
  checkpointer.set_phase(WorkerCheckpointer::Phase::ShardEnding);
  const CallResult result =
      call(*round.processor, ProcessorCall::ShardEnded, [&] { round.processor->shard_ended(checkpointer); });
  checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
  round.processor.reset();  // shard_ended was its terminal call
  if (fails_round(result)) {
    log_warn("shard ", shard_id, ": processor dropped (shard_ended ",
             result == CallResult::TimedOut ? "timed out" : "threw", ")");
    return Step::Failed;
  }
  if (!checkpointer.stored() || checkpointer.stored()->sentinel() != Sentinel::ShardEnd) {
    // So that no processor can strand the children (docs/kcl-protocol.md §4.1: the Java KCL would retry
    // shard_ended forever instead).
    log_info("shard ", shard_id, ": the processor did not checkpoint at shard end; recording SHARD_END");
    try {
      kclpp::retry(ctx_.options.read_retry,
                   [&] { checkpointer.save(ExtendedSequenceNumber(Sentinel::ShardEnd)); });
    } catch (const LeaseLostError& e) {
      log_warn("shard ", shard_id, ": cannot record SHARD_END: ", e.what());
      return Step::LeaseLost;
    } catch (const Error& e) {
      log_error("shard ", shard_id, ": cannot record SHARD_END: ", e.what());
      return Step::Failed;
    }
  }
  log_info("shard ", shard_id, " finished (SHARD_END)");
  return Step::Ended;
}

// Gives up on this processor without checkpointing: its terminal call is lease_lost (it
// may release resources there; it cannot checkpoint).
ShardConsumer::Step ShardConsumer::drop_processor(Round& round, const char* why) {
  round.checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
  (void)call(*round.processor, ProcessorCall::LeaseLost, [&] { round.processor->lease_lost(); });
  round.processor.reset();
  log_warn("shard ", shard_.shard_id, ": processor dropped (", why, ")");
  return Step::Failed;
}

ShardConsumer::Step ShardConsumer::lose_lease(Round& round) {
  round.checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
  (void)call(*round.processor, ProcessorCall::LeaseLost, [&] { round.processor->lease_lost(); });
  round.processor.reset();
  log_warn("shard ", shard_.shard_id, ": lease lost; processor stopped without a checkpoint");
  return Step::LeaseLost;
}

// Worker shutdown: a last chance to checkpoint, then the terminal lease_lost
// (docs/kcl-protocol.md §4.1: shutdownRequested, then leaseLost). Failures are only logged.
ShardConsumer::Step ShardConsumer::shutdown_processor(Round& round) {
  (void)call(*round.processor, ProcessorCall::ShutdownRequested,
             [&] { round.processor->shutdown_requested(round.checkpointer); });
  round.checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
  (void)call(*round.processor, ProcessorCall::LeaseLost, [&] { round.processor->lease_lost(); });
  round.processor.reset();
  return Step::Stopped;
}

}  // namespace kclpp::native::detail
