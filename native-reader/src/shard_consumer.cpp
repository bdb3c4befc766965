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

using SteadyClock = std::chrono::steady_clock;

// Thrown inside retry() callbacks to abandon a read once a stop is requested. Not a
// kclpp::Error, so kclpp::retry lets it through at once.
struct StopRequested {};

// After an expired iterator with no record read yet from a LATEST start, reading resumes
// AT_TIMESTAMP of the first iterator minus this margin: it covers clock skew between us
// and the service, trading a few possible duplicates for no loss.
constexpr std::chrono::seconds latest_restart_margin{5};

using kclpp::detail::describe_current_exception;

bool is_fatal(const Error& e) {
  return dynamic_cast<const AuthError*>(&e) != nullptr || dynamic_cast<const ConfigError*>(&e) != nullptr;
}

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

std::string describe(const aws::StartPosition& position) {
  switch (position.type) {
    case aws::IteratorType::Latest:
      return "LATEST";
    case aws::IteratorType::TrimHorizon:
      return "TRIM_HORIZON";
    case aws::IteratorType::AtSequenceNumber:
      return "AT_SEQUENCE_NUMBER " + position.sequence_number;
    case aws::IteratorType::AfterSequenceNumber:
      return "AFTER_SEQUENCE_NUMBER " + position.sequence_number;
    case aws::IteratorType::AtTimestamp:
      return "AT_TIMESTAMP";
  }
  return "?";
}

// Runs one processor call. User code may throw anything: the failure is logged and
// reported as false, and the caller applies OnProcessorError.
template <class Fn>
bool call_processor(const char* what, const std::string& shard_id, Fn&& fn) {
  try {
    fn();
    return true;
  } catch (...) {
    log_error("processor of ", shard_id, " threw in ", what, ": ", describe_current_exception());
    return false;
  }
}

}  // namespace

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

ShardConsumer::ShardConsumer(ShardConsumerContext context, aws::Shard shard, aws::StartPosition start_without_checkpoint)
    : ctx_(context),
      shard_(std::move(shard)),
      start_without_checkpoint_(std::move(start_without_checkpoint)),
      connection_(ctx_.source.connect()) {}

ShardConsumer::~ShardConsumer() = default;

ShardOutcome ShardConsumer::run() {
  // A failed round (processor failure under OnProcessorError::Fail, a read error that
  // retrying cannot fix, a store outage) restarts the shard from its checkpoint after a
  // backoff that grows while rounds keep failing without progress, so a poison record does
  // not spin hot; the floor keeps RetryPolicy::none() from spinning too.
  int failures = 0;
  while (!ctx_.stop.requested()) {
    bool made_progress = false;
    switch (run_round(made_progress)) {
      case RoundResult::Ended:
        return ShardOutcome::Ended;
      case RoundResult::Stopped:
        return ShardOutcome::Stopped;
      case RoundResult::Gone:
        return ShardOutcome::Gone;
      case RoundResult::Failed:
        break;
    }
    failures = made_progress ? 1 : std::min(failures + 1, 30);
    const auto delay = std::max<std::chrono::milliseconds>(
        kclpp::detail::backoff_delay(ctx_.options.read_retry, failures, Retry::Yes),
        min_get_records_interval);
    log_warn("shard ", shard_.shard_id, ": restarting from its checkpoint with a new processor in ",
             delay.count(), " ms (failure ", failures, ")");
    if (ctx_.stop.wait_for(delay)) break;
  }
  return ShardOutcome::Stopped;
}

ShardConsumer::RoundResult ShardConsumer::run_round(bool& made_progress) {
  const WorkerOptions& options = ctx_.options;
  const std::string& shard_id = shard_.shard_id;
  const CheckpointKey key{options.application, ctx_.source.stream_name(), shard_id};

  // --- where to start ------------------------------------------------------------------
  std::optional<ExtendedSequenceNumber> stored;
  try {
    stored = kclpp::retry(options.read_retry, [&] { return ctx_.store.load(key); });
  } catch (const StoreError& e) {
    if (e.retry() == Retry::No) throw;  // a broken schema or config: stops the worker
    log_error("shard ", shard_id, ": cannot load its checkpoint: ", e.what());
    return RoundResult::Failed;
  }
  if (stored && stored->sentinel() == Sentinel::ShardEnd) {
    log_info("shard ", shard_id, " is already at SHARD_END");
    return RoundResult::Ended;
  }

  aws::StartPosition start;
  ExtendedSequenceNumber initial;
  // Records at or below this position were processed before: they are dropped.
  std::optional<ExtendedSequenceNumber> skip_through;
  if (stored && !stored->is_sentinel()) {
    // As the Java KCL's KinesisDataFetcher: AT_SEQUENCE_NUMBER of the checkpoint, then the
    // (seq, sub) filter below drops what was already processed. This resumes right after
    // the checkpoint, also inside a KPL aggregate (sub > 0) and when a processor
    // checkpointed sub-record 0 of an aggregate (AFTER_SEQUENCE_NUMBER would lose the
    // aggregate's later user records), at the cost of reading one record again.
    start = aws::StartPosition::at(stored->sequence_number().str());
    initial = *stored;
    skip_through = stored;
  } else {
    start = start_without_checkpoint_;
    initial = sentinel_for(start);
  }

  // --- the processor -------------------------------------------------------------------
  std::unique_ptr<RecordProcessor> processor;
  try {
    processor = ctx_.factory(shard_id);
  } catch (...) {
    log_error("processor factory threw for ", shard_id, ": ", describe_current_exception());
    return RoundResult::Failed;
  }
  if (!processor) {
    log_error("processor factory returned no processor for ", shard_id);
    return RoundResult::Failed;
  }
  WorkerCheckpointer checkpointer(ctx_.store, key);
  checkpointer.reset(stored);
  const bool fail_on_error = options.on_processor_error == OnProcessorError::Fail;

  // Gives up on this processor without checkpointing: its terminal call is lease_lost
  // (it may release resources there; it cannot checkpoint).
  auto drop_processor = [&](const char* why) {
    checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
    call_processor("lease_lost", shard_id, [&] { processor->lease_lost(); });
    processor.reset();
    log_warn("shard ", shard_id, ": processor dropped (", why, ")");
    return RoundResult::Failed;
  };
  // Worker shutdown: a last chance to checkpoint, then the terminal lease_lost (docs/kcl-protocol.md §4.1:
  // shutdownRequested, then leaseLost). Failures are only logged.
  auto shutdown_processor = [&] {
    call_processor("shutdown_requested", shard_id, [&] { processor->shutdown_requested(checkpointer); });
    checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
    call_processor("lease_lost", shard_id, [&] { processor->lease_lost(); });
    processor.reset();
    return RoundResult::Stopped;
  };

  if (!call_processor("initialize", shard_id, [&] { processor->initialize(shard_id, initial); }) &&
      fail_on_error) {
    return drop_processor("initialize threw");
  }

  // --- reading -----------------------------------------------------------------------
  std::optional<std::string> last_fetched;  // sequence number of the last record read
  std::optional<std::chrono::system_clock::time_point> latest_opened_at;
  auto check_stop = [&] {
    if (ctx_.stop.requested()) throw StopRequested{};
  };
  // At most 5 GetRecords calls per second per shard, the service's limit.
  auto pace = [&] {
    if (last_get_records_) {
      const auto next = *last_get_records_ + min_get_records_interval;
      const auto now = SteadyClock::now();
      if (now < next && ctx_.stop.wait_for(next - now)) throw StopRequested{};
    }
    last_get_records_ = SteadyClock::now();
  };
  auto open_iterator = [&](const aws::StartPosition& position) {
    if (position.type == aws::IteratorType::Latest) latest_opened_at = std::chrono::system_clock::now();
    log_debug("shard ", shard_id, ": GetShardIterator ", describe(position));
    return kclpp::retry(options.read_retry, [&] {
      check_stop();
      return connection_->get_shard_iterator(shard_id, position);
    });
  };
  // Where a replacement for an expired iterator starts: after the last record read (all
  // of which were handed to the processor), else where this round started.
  auto restart_position = [&]() -> aws::StartPosition {
    if (last_fetched) return aws::StartPosition::after(*last_fetched);
    if (start.type == aws::IteratorType::Latest && latest_opened_at) {
      return aws::StartPosition::at_timestamp(*latest_opened_at - latest_restart_margin);
    }
    return start;
  };
  std::string iterator;
  // Fills `out`, reusing the storage of the records in it (the previous batch's).
  auto fetch = [&](aws::GetRecordsResult& out) {
    int expirations = 0;
    for (;;) {
      try {
        kclpp::retry(options.read_retry, [&] {
          check_stop();
          pace();
          connection_->get_records_into(iterator, options.max_records, out);
        });
        return;
      } catch (const Error& e) {
        const auto* aws = dynamic_cast<const aws::AwsError*>(&e);
        if (aws != nullptr && aws->type() == "ExpiredIteratorException") {
          // Never fatal: a new iterator right after what the processor was handed.
          const aws::StartPosition position = restart_position();
          log_info("shard ", shard_id, ": shard iterator expired; re-creating it at ", describe(position));
          if (++expirations > 1) {
            const auto delay = kclpp::detail::backoff_delay(options.read_retry, expirations - 1, Retry::Yes);
            if (ctx_.stop.wait_for(delay)) throw StopRequested{};
          }
          // Retryable failures keep this processor and its position: giving up would
          // restart the shard from its checkpoint and deliver again what it was handed.
          for (;;) {
            try {
              iterator = open_iterator(position);
              break;
            } catch (const Error& open_error) {
              if (open_error.retry() == Retry::No) throw;
              log_warn("shard ", shard_id, ": re-creating the shard iterator keeps failing (", open_error.what(),
                       "); waiting ", options.read_retry.max_backoff.count(), " ms");
              if (ctx_.stop.wait_for(std::max<std::chrono::milliseconds>(options.read_retry.max_backoff,
                                                                         min_get_records_interval))) {
                throw StopRequested{};
              }
            }
          }
          continue;
        }
        if (e.retry() == Retry::No) throw;
        // Throttled or unreachable through every attempt: keep the processor and the
        // iterator (an expiry is handled above), wait, and try again.
        log_warn("shard ", shard_id, ": GetRecords keeps failing (", e.what(), "); waiting ",
                 options.read_retry.max_backoff.count(), " ms");
        if (ctx_.stop.wait_for(std::max<std::chrono::milliseconds>(options.read_retry.max_backoff,
                                                                   min_get_records_interval))) {
          throw StopRequested{};
        }
      }
    }
  };

  try {
    iterator = open_iterator(start);
    log_info("shard ", shard_id, ": reading from ", describe(start));
    std::vector<Record> records;
    // Reused across calls: once a batch has been processed its records go back into
    // result.records, and the next reply is decoded into their strings (no allocation per
    // record in steady state; bench/native_throughput).
    aws::GetRecordsResult result;
    for (;;) {
      if (ctx_.stop.requested()) return shutdown_processor();
      fetch(result);
      const bool full = static_cast<int>(result.records.size()) >= options.max_records;
      records.clear();
      for (auto& record : result.records) {
        last_fetched = record.sequence_number.str();
        deaggregate(std::move(record), records);
      }
      if (skip_through) {
        const ExtendedSequenceNumber skip = *skip_through;
        std::erase_if(records, [&](const Record& r) { return compare_positions(r.position(), skip) <= 0; });
        if (last_fetched && SequenceNumber(*last_fetched) > skip.sequence_number()) skip_through.reset();
      }
      if (!records.empty() || options.empty_batches == EmptyBatches::Deliver) {
        if (!records.empty()) checkpointer.delivered(records.back().position());
        RecordBatch batch{std::move(records), result.millis_behind_latest};
        const bool ok = call_processor("process_records", shard_id,
                                       [&] { processor->process_records(batch, checkpointer); });
        if (!ok && fail_on_error) return drop_processor("process_records threw");
        if (!batch.records.empty()) made_progress = true;
        records = std::move(batch.records);
      }
      // The processed records' strings take the next reply; the moved-from shells go.
      result.records.swap(records);
      if (!result.next_shard_iterator) break;  // SHARD_END
      iterator = std::move(*result.next_shard_iterator);
      // Caught up: wait before polling again. Behind: poll again now (pace() keeps the
      // calls within the budget).
      if (result.millis_behind_latest <= 0 && !full && ctx_.stop.wait_for(options.idle_time_between_reads)) {
        return shutdown_processor();
      }
    }
  } catch (const StopRequested&) {
    return shutdown_processor();
  } catch (const Error& e) {
    if (is_fatal(e)) {
      drop_processor("the worker stops");
      throw;
    }
    const auto* aws = dynamic_cast<const aws::AwsError*>(&e);
    if (aws != nullptr && aws->type() == "ResourceNotFoundException") {
      // Retrying cannot bring it back; its children (if any) treat it as done.
      log_warn("shard ", shard_id, " no longer exists (", e.what(), "); giving it up");
      drop_processor("shard gone");
      return RoundResult::Gone;
    }
    log_error("shard ", shard_id, ": reading failed: ", e.what());
    return drop_processor("read error");
  }

  // --- SHARD_END -----------------------------------------------------------------------
  checkpointer.set_phase(WorkerCheckpointer::Phase::ShardEnding);
  const bool ended_ok =
      call_processor("shard_ended", shard_id, [&] { processor->shard_ended(checkpointer); });
  checkpointer.set_phase(WorkerCheckpointer::Phase::Finished);
  processor.reset();  // shard_ended was its terminal call
  if (!ended_ok && fail_on_error) {
    log_warn("shard ", shard_id, ": processor dropped (shard_ended threw)");
    return RoundResult::Failed;
  }
  if (!checkpointer.stored() || checkpointer.stored()->sentinel() != Sentinel::ShardEnd) {
    // So that no processor can strand the children (docs/kcl-protocol.md §4.1: the Java KCL would retry
    // shard_ended forever instead).
    log_info("shard ", shard_id, ": the processor did not checkpoint at shard end; recording SHARD_END");
    try {
      kclpp::retry(options.read_retry,
                   [&] { checkpointer.save(ExtendedSequenceNumber(Sentinel::ShardEnd)); });
    } catch (const Error& e) {
      log_error("shard ", shard_id, ": cannot record SHARD_END: ", e.what());
      return RoundResult::Failed;
    }
  }
  log_info("shard ", shard_id, " finished (SHARD_END)");
  return RoundResult::Ended;
}

}  // namespace kclpp::native::detail
