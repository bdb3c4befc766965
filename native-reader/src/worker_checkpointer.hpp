#pragma once
// The Checkpointer the native worker hands to a shard's processor: the KCL's rules
// (docs/kcl-protocol.md §5) in front of CheckpointStore::save.
#include <optional>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/checkpointer.hpp"

namespace kclpp::native::detail {

// Rules, as ShardRecordProcessorCheckpointer applies them:
//  - nullopt: the largest record delivered so far (SHARD_END inside shard_ended); with
//    nothing delivered since the stored checkpoint it is a successful no-op.
//  - an explicit position must lie in [stored checkpoint, largest delivered], else
//    CheckpointError "IllegalArgumentException"; inside shard_ended the last record's
//    position is stored as SHARD_END.
//  - re-checkpointing the stored value is a no-op.
//  - after the processor's terminal call (or shutdown_requested's return): LeaseLostError
//    ("ShutdownException").
//  - a failing store surfaces as CheckpointError "KinesisClientLibDependencyException"
//    (retryable); ThrottledError passes through ("ThrottlingException").
// Not thread-safe: used on its shard's thread only.
class WorkerCheckpointer final : public Checkpointer {
 public:
  enum class Phase { Processing, ShardEnding, Finished };

  WorkerCheckpointer(CheckpointStore& store, CheckpointKey key);

  // A new processor lifetime starting from `stored` (the shard's checkpoint, if any).
  void reset(const std::optional<ExtendedSequenceNumber>& stored);
  // The largest (sequence, sub-sequence) handed to the processor so far.
  void delivered(const ExtendedSequenceNumber& largest);
  void set_phase(Phase phase) noexcept { phase_ = phase; }

  [[nodiscard]] const std::optional<ExtendedSequenceNumber>& stored() const noexcept { return stored_; }
  // Writes `value` with no range check (the worker's own SHARD_END); throws like save().
  void save(const ExtendedSequenceNumber& value);

  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override;

 private:
  CheckpointStore& store_;
  CheckpointKey key_;
  Phase phase_ = Phase::Finished;
  std::optional<ExtendedSequenceNumber> stored_;   // last value in the store
  std::optional<ExtendedSequenceNumber> largest_;  // largest delivered (numeric)
};

}  // namespace kclpp::native::detail
