#pragma once
// The Checkpointer the native worker hands to a shard's processor: the KCL's rules
// (docs/kcl-protocol.md §5) in front of CheckpointStore::save.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::native::detail {

class LeaseCoordinator;

// Where one shard's checkpoint lives for its consumer: a row of the checkpoint store (one
// worker, held by the store's claim), or the shard's lease (docs/checkpoints.md §5).
// Not thread-safe: used on its shard's thread only.
class ShardCheckpoints {
 public:
  virtual ~ShardCheckpoints() = default;
  [[nodiscard]] virtual const std::string& shard_id() const noexcept = 0;
  // The stored checkpoint; StoreError when the store fails, LeaseLostError when the lease
  // is no longer held.
  [[nodiscard]] virtual std::optional<ExtendedSequenceNumber> load() = 0;
  // Durable on return. Throws like load().
  virtual void save(const ExtendedSequenceNumber& position) = 0;
  // False once the shard's lease is lost: the consumer must stop at once, without a
  // checkpoint. Always true without leases.
  [[nodiscard]] virtual bool held() const = 0;
};

// A checkpoint store row, retried with `retry` on load (a save's retries are the processor's).
class StoreCheckpoints final : public ShardCheckpoints {
 public:
  StoreCheckpoints(CheckpointStore& store, CheckpointKey key, const RetryPolicy& retry)
      : store_(store), key_(std::move(key)), retry_(retry) {}
  const std::string& shard_id() const noexcept override { return key_.shard_id; }
  std::optional<ExtendedSequenceNumber> load() override;
  void save(const ExtendedSequenceNumber& position) override { store_.save(key_, position); }
  bool held() const override { return true; }

 private:
  CheckpointStore& store_;
  CheckpointKey key_;
  const RetryPolicy& retry_;
};

// The checkpoint of a held lease, written through the coordinator (fenced by its counter).
// SHARD_END also records the shard's children, as the Java KCL 2.3+ does.
class LeaseCheckpoints final : public ShardCheckpoints {
 public:
  // Bound to the take of the lease held now: if this worker loses the lease and takes it
  // again, this consumer's view is lost for good (a new consumer starts for the new take).
  LeaseCheckpoints(LeaseCoordinator& coordinator, std::string shard_id, std::vector<std::string> children);
  const std::string& shard_id() const noexcept override { return shard_id_; }
  std::optional<ExtendedSequenceNumber> load() override;
  void save(const ExtendedSequenceNumber& position) override;
  bool held() const override;

 private:
  LeaseCoordinator& coordinator_;
  std::string shard_id_;
  std::vector<std::string> children_;
  std::uint64_t take_;  // 0 when not held at construction: then never held
};

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
//    (retryable); ThrottledError passes through ("ThrottlingException"), and so does
//    LeaseLostError from a lease another worker took ("ShutdownException").
// Not thread-safe: used on its shard's thread only.
class WorkerCheckpointer final : public Checkpointer {
 public:
  enum class Phase { Processing, ShardEnding, Finished };

  explicit WorkerCheckpointer(ShardCheckpoints& checkpoints);

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
  ShardCheckpoints& checkpoints_;
  Phase phase_ = Phase::Finished;
  std::optional<ExtendedSequenceNumber> stored_;   // last value in the store
  std::optional<ExtendedSequenceNumber> largest_;  // largest delivered (numeric)
};

}  // namespace kclpp::native::detail
