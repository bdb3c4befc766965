#pragma once
// The API users subclass: RecordProcessor (the KCL v3 lifecycle) and PerRecordProcessor
// (one record at a time, with a checkpoint policy), in the spirit of kclpy.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp {

// One processor instance handles one shard, from initialize() to exactly one terminal
// call (lease_lost() or shard_ended()); shutdown_requested() may come before the terminal
// call and is not itself terminal. All calls come from one thread, never concurrently,
// except interrupt() (the watchdog's, while another call runs).
// A processor that throws: see the runtime's OnProcessorError (README, "Failures").
class RecordProcessor {
 public:
  virtual ~RecordProcessor() = default;

  // `position` is where reading starts: the shard's checkpoint, or a sentinel
  // (TRIM_HORIZON, LATEST, AT_TIMESTAMP) for a shard never checkpointed.
  virtual void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position);
  virtual void process_records(const RecordBatch& batch, Checkpointer& checkpointer) = 0;
  // The lease went to another worker: no checkpointing is possible.
  virtual void lease_lost();
  // The shard was closed (resharding) and fully read. Must checkpoint(); the default does.
  virtual void shard_ended(Checkpointer& checkpointer);
  // The worker is shutting down (or handing the lease over): a last chance to checkpoint.
  // The default checkpoints at the largest record delivered.
  virtual void shutdown_requested(Checkpointer& checkpointer);
  // The one call that comes from another thread: the native worker's watchdog calls it
  // when one of the calls above has run past its processor_timeout (OnProcessorTimeout::
  // Restart, docs/operations.md §2), while that call is still running. Make the running
  // call return soon (throwing is fine); the processor is then dropped and the shard
  // restarts from its checkpoint with a new one. Must be thread-safe with the running
  // call, quick and non-blocking (the watchdog serves every shard). The default does
  // nothing: the call runs on until it returns by itself.
  virtual void interrupt() noexcept {}
};

using RecordProcessorFactory = std::function<std::unique_ptr<RecordProcessor>()>;

// What to do when user code throws.
//  Fail: give up on the shard without acknowledging, so it restarts from its last
//        checkpoint (nothing is lost; under the Java daemon all shards restart, docs/kcl-protocol.md §4.2).
//  LogAndContinue: the KCL's behaviour: log the error and go on (the failed records are
//        skipped, that is, lost unless the processor handles them itself).
enum class OnProcessorError { Fail, LogAndContinue };

// When PerRecordProcessor checkpoints by itself. Both triggers act only on records that
// process_record() has returned from. Zero turns a trigger off; both zero = on demand only
// (process_record() returning true, or the terminal calls).
struct CheckpointPolicy {
  std::chrono::milliseconds interval{60'000};
  std::uint64_t records = 0;

  [[nodiscard]] static CheckpointPolicy every(std::chrono::milliseconds interval) {
    return {interval, 0};
  }
  [[nodiscard]] static CheckpointPolicy every_records(std::uint64_t records) {
    return {std::chrono::milliseconds{0}, records};
  }
  [[nodiscard]] static CheckpointPolicy on_demand() { return {std::chrono::milliseconds{0}, 0}; }
};

struct PerRecordOptions {
  CheckpointPolicy checkpoint{};
  // Calls of process_record() for one record before the failure policy applies.
  int record_attempts = 3;
  std::chrono::milliseconds record_retry_backoff{100};
  OnProcessorError on_error = OnProcessorError::Fail;
};

// Processes one record at a time. A record counts as finished once process_record()
// returns; checkpoints never go past the last finished record. When a record keeps
// failing: Fail throws ProcessorError (the records not finished are not acknowledged),
// LogAndContinue logs the record's sequence number and skips it. A record whose data
// could not be decoded (non-empty data_error) is still passed to process_record().
// Checkpoint failures after the retry policy are logged, not thrown (the next trigger
// tries again); after a LeaseLostError the processor stops checkpointing.
class PerRecordProcessor : public RecordProcessor {
 public:
  explicit PerRecordProcessor(PerRecordOptions options = {});

  // Returns true to checkpoint at this record now.
  virtual bool process_record(const Record& record) = 0;
  // Called before every checkpoint this class makes (flush buffered output here).
  virtual void before_checkpoint();

  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override;
  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) final;
  // Checkpoints SHARD_END (after before_checkpoint()); failures propagate.
  void shard_ended(Checkpointer& checkpointer) override;
  // Checkpoints at the last finished record, if any is not yet checkpointed.
  void shutdown_requested(Checkpointer& checkpointer) override;

  [[nodiscard]] const PerRecordOptions& options() const noexcept { return options_; }
  [[nodiscard]] const std::string& shard_id() const noexcept { return shard_id_; }

 private:
  void checkpoint_finished(Checkpointer& checkpointer);

  PerRecordOptions options_;
  std::string shard_id_;
  std::optional<ExtendedSequenceNumber> last_finished_;
  std::optional<ExtendedSequenceNumber> last_checkpointed_;
  std::uint64_t since_checkpoint_ = 0;
  std::chrono::steady_clock::time_point last_checkpoint_time_{};
  bool lease_lost_ = false;
};

}  // namespace kclpp
