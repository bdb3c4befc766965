#include "kclpp/processor/record_processor.hpp"

#include <exception>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp {

void RecordProcessor::initialize(const std::string& /*shard_id*/,
                                 const ExtendedSequenceNumber& /*position*/) {}

void RecordProcessor::lease_lost() {}

void RecordProcessor::shard_ended(Checkpointer& checkpointer) {
  // Inside shard_ended a null checkpoint means SHARD_END; without it the child shards
  // never start (docs/kcl-protocol.md §5, §11 item 4).
  checkpointer.checkpoint();
}

void RecordProcessor::shutdown_requested(Checkpointer& checkpointer) { checkpointer.checkpoint(); }

namespace {

using kclpp::detail::describe_current_exception;

}  // namespace

PerRecordProcessor::PerRecordProcessor(PerRecordOptions options) : options_(std::move(options)) {}

void PerRecordProcessor::before_checkpoint() {}

void PerRecordProcessor::initialize(const std::string& shard_id,
                                    const ExtendedSequenceNumber& position) {
  shard_id_ = shard_id;
  last_finished_.reset();
  // A numeric start position is the shard's stored checkpoint: nothing at or before it
  // needs checkpointing again. A sentinel means nothing is stored yet.
  if (position.is_sentinel()) {
    last_checkpointed_.reset();
  } else {
    last_checkpointed_ = position;
  }
  since_checkpoint_ = 0;
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  lease_lost_ = false;
}

void PerRecordProcessor::process_records(const RecordBatch& batch, Checkpointer& checkpointer) {
  const int attempts = options_.record_attempts > 0 ? options_.record_attempts : 1;
  const auto& policy = options_.checkpoint;

  for (const Record& record : batch.records) {
    bool wants_checkpoint = false;
    for (int attempt = 1;; ++attempt) {
      try {
        wants_checkpoint = process_record(record);
        break;
      } catch (...) {
        const std::string reason = describe_current_exception();
        if (attempt < attempts) {
          log_warn("shard ", shard_id_, ": process_record failed at sequence number ",
                   record.sequence_number.str(), " sub ", record.sub_sequence_number,
                   " (attempt ", attempt, "/", attempts, "), retrying in ",
                   options_.record_retry_backoff.count(), " ms: ", reason);
          detail::sleep_for(options_.record_retry_backoff);
          continue;
        }
        if (options_.on_error == OnProcessorError::Fail) {
          // Nothing is checkpointed past the last finished record, so the shard restarts
          // at this record.
          throw ProcessorError("shard " + shard_id_ + ": process_record failed " +
                               std::to_string(attempts) + " times at sequence number " +
                               record.sequence_number.str() + " sub " +
                               std::to_string(record.sub_sequence_number) + ": " + reason);
        }
        // LogAndContinue: as the KCL does, the record counts as done and is skipped.
        log_error("shard ", shard_id_, ": skipping record at sequence number ",
                  record.sequence_number.str(), " sub ", record.sub_sequence_number,
                  " after ", attempts, " failed attempts: ", reason);
        break;
      }
    }

    last_finished_ = record.position();
    ++since_checkpoint_;
    const bool records_due = policy.records > 0 && since_checkpoint_ >= policy.records;
    const bool interval_due =
        policy.interval.count() > 0 &&
        std::chrono::steady_clock::now() - last_checkpoint_time_ >= policy.interval;
    if (wants_checkpoint || records_due || interval_due) checkpoint_finished(checkpointer);
  }
}

void PerRecordProcessor::shard_ended(Checkpointer& checkpointer) {
  before_checkpoint();
  checkpointer.checkpoint();
}

void PerRecordProcessor::shutdown_requested(Checkpointer& checkpointer) {
  checkpoint_finished(checkpointer);
}

void PerRecordProcessor::checkpoint_finished(Checkpointer& checkpointer) {
  if (lease_lost_ || !last_finished_) return;
  if (last_checkpointed_ && compare_positions(*last_finished_, *last_checkpointed_) <= 0) return;

  before_checkpoint();
  try {
    // Explicit (seq, sub): a null checkpoint would mean "the largest record delivered",
    // which may be past records not yet finished (docs/kcl-protocol.md §5).
    checkpointer.checkpoint(last_finished_->sequence_number(),
                            last_finished_->sub_sequence_number());
    last_checkpointed_ = last_finished_;
  } catch (const LeaseLostError& e) {
    lease_lost_ = true;
    log_warn("shard ", shard_id_, ": lease lost, no further checkpoints: ", e.what());
  } catch (const Error& e) {
    log_error("shard ", shard_id_, ": checkpoint at sequence number ",
              last_finished_->sequence_number().str(), " sub ",
              last_finished_->sub_sequence_number(), " failed: ", e.what());
  }
  // Restart the triggers even after a failure: the Checkpointer has already retried, and
  // trying again on every following record would stall the shard on a failing store.
  since_checkpoint_ = 0;
  last_checkpoint_time_ = std::chrono::steady_clock::now();
}

}  // namespace kclpp
