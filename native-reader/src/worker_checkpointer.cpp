#include "worker_checkpointer.hpp"

#include <string>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "lease_coordinator.hpp"

namespace kclpp::native::detail {
namespace {

bool is_numeric(const std::optional<ExtendedSequenceNumber>& value) {
  return value && !value->is_sentinel();
}

std::string describe(const ExtendedSequenceNumber& value) {
  if (value.is_sentinel() || value.sub_sequence_number() == 0) return value.str();
  return value.str() + "/" + std::to_string(value.sub_sequence_number());
}

}  // namespace

std::optional<ExtendedSequenceNumber> StoreCheckpoints::load() {
  return kclpp::retry(retry_, [&] { return store_.load(key_); });
}

LeaseCheckpoints::LeaseCheckpoints(LeaseCoordinator& coordinator, std::string shard_id,
                                   std::vector<std::string> children)
    : coordinator_(coordinator),
      shard_id_(std::move(shard_id)),
      children_(std::move(children)),
      take_(coordinator_.take_of(shard_id_)) {}

std::optional<ExtendedSequenceNumber> LeaseCheckpoints::load() {
  // The coordinator read the lease when it took it and has written every change since.
  auto lease = take_ == 0 ? std::nullopt : coordinator_.held_lease(shard_id_, take_);
  if (!lease) throw LeaseLostError("the lease of " + shard_id_ + " is no longer held by this worker");
  return lease->checkpoint;
}

void LeaseCheckpoints::save(const ExtendedSequenceNumber& position) {
  if (take_ == 0) throw LeaseLostError("the lease of " + shard_id_ + " is no longer held by this worker");
  coordinator_.checkpoint(shard_id_, position,
                          position.sentinel() == Sentinel::ShardEnd ? children_ : std::vector<std::string>{}, take_);
}

bool LeaseCheckpoints::held() const { return take_ != 0 && coordinator_.holds(shard_id_, take_); }

WorkerCheckpointer::WorkerCheckpointer(ShardCheckpoints& checkpoints) : checkpoints_(checkpoints) {}

void WorkerCheckpointer::reset(const std::optional<ExtendedSequenceNumber>& stored) {
  stored_ = stored;
  // As the KCL: the largest permitted value starts at the stored checkpoint.
  largest_ = is_numeric(stored) ? stored : std::nullopt;
  phase_ = Phase::Processing;
}

void WorkerCheckpointer::delivered(const ExtendedSequenceNumber& largest) {
  if (!largest_ || compare_positions(*largest_, largest) < 0) largest_ = largest;
}

void WorkerCheckpointer::save(const ExtendedSequenceNumber& value) {
  try {
    checkpoints_.save(value);
  } catch (const ThrottledError&) {
    throw;
  } catch (const LeaseLostError&) {
    phase_ = Phase::Finished;  // nothing this processor does can be checkpointed any more
    throw;
  } catch (const Error& e) {
    // docs/kcl-protocol.md §5: the KCL reports a failing lease table as KinesisClientLibDependencyException,
    // which processors treat as retryable.
    throw CheckpointError("checkpoint of " + checkpoints_.shard_id() + " at " + describe(value) +
                              " failed in the checkpoint store: " + e.what(),
                          "KinesisClientLibDependencyException");
  }
  stored_ = value;
}

void WorkerCheckpointer::checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) {
  if (phase_ == Phase::Finished) {
    throw LeaseLostError("Can't update checkpoint of " + checkpoints_.shard_id() +
                         ": the processor's lifecycle is over (shutdown or lease lost)");
  }
  const bool ending = phase_ == Phase::ShardEnding;
  ExtendedSequenceNumber value;
  if (!at) {
    if (ending) {
      value = ExtendedSequenceNumber(Sentinel::ShardEnd);
    } else if (largest_) {
      value = *largest_;
    } else {
      return;  // nothing delivered and nothing stored: nothing to record
    }
  } else {
    const bool in_range =
        !at->is_sentinel() && largest_ && compare_positions(*at, *largest_) <= 0 &&
        (!is_numeric(stored_) || compare_positions(*stored_, *at) <= 0);
    if (!in_range) {
      throw CheckpointError("Checkpoint " + describe(*at) + " of " + checkpoints_.shard_id() +
                                " did not fall into acceptable range [" +
                                (is_numeric(stored_) ? describe(*stored_) : std::string("-")) + ", " +
                                (largest_ ? describe(*largest_) : std::string("-")) + "]",
                            "IllegalArgumentException");
    }
    value = ending && *at == *largest_ ? ExtendedSequenceNumber(Sentinel::ShardEnd) : *at;
  }
  if (stored_ && *stored_ == value) return;  // re-checkpointing the stored value: no-op
  save(value);
  log_debug("checkpoint ", checkpoints_.shard_id(), " at ", describe(value));
}

}  // namespace kclpp::native::detail
