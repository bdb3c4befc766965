#pragma once
// Checkpointer: how a processor records its progress in a shard. One implementation per
// runtime (the MultiLangDaemon protocol, a native checkpoint store, a test double).

#include <cstdint>
#include <optional>

#include "kclpp/processor/record.hpp"
#include "kclpp/processor/retry.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp {

// Records a position in the shard. The convenience calls retry per retry_policy():
// ThrottledError and KinesisClientLibDependencyException with backoff; LeaseLostError
// (ShutdownException), InvalidStateException and IllegalArgumentException never.
// Not thread-safe: call it from the thread that runs the processor.
class Checkpointer {
 public:
  explicit Checkpointer(RetryPolicy retry_policy = {}) : retry_policy_(retry_policy) {}
  virtual ~Checkpointer() = default;
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // At the largest record delivered so far (SHARD_END inside shard_ended()).
  void checkpoint();
  // At this record (its sequence and sub-sequence number).
  void checkpoint(const Record& record);
  // At (sequence number, sub-sequence number).
  void checkpoint(const SequenceNumber& sequence_number, std::int64_t sub_sequence_number);

  // One attempt, no retry. std::nullopt means "the largest record delivered".
  // Throws ThrottledError, LeaseLostError or CheckpointError (see error.hpp).
  virtual void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) = 0;

  [[nodiscard]] const RetryPolicy& retry_policy() const noexcept { return retry_policy_; }
  void set_retry_policy(const RetryPolicy& policy) noexcept { retry_policy_ = policy; }

 private:
  RetryPolicy retry_policy_;
};

}  // namespace kclpp
