#pragma once
// Leases: one row per shard saying which worker processes it, with the shard's checkpoint,
// every write fenced by the lease counter (docs/checkpoints.md §4, §5). A LeaseTable is one
// application's leases on one stream in a store; the worker's lease coordinator renews,
// takes, steals and releases them (docs/checkpoints.md §5).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/processor/sequence_number.hpp"

namespace kclpp::native {

// One lease with the Java KCL's attributes (docs/checkpoints.md §4 names each one's
// DynamoDB attribute and type). A value type.
struct Lease {
  std::string key;                   // leaseKey: the shard id
  std::optional<std::string> owner;  // leaseOwner: the worker id holding it; nullopt when free
  // leaseCounter: bumped by every renewal, take, release and checkpoint; every write is
  // conditional on the value the writer last saw (the fencing token).
  std::int64_t counter = 0;
  // checkpoint + checkpointSubSequenceNumber: a sequence number or a sentinel (TRIM_HORIZON,
  // LATEST, AT_TIMESTAMP for a shard not read yet; SHARD_END once read to its end).
  ExtendedSequenceNumber checkpoint{Sentinel::TrimHorizon};
  // pendingCheckpoint + pendingCheckpointSubSequenceNumber, pendingCheckpointState (raw
  // bytes): a two-phase checkpoint in progress (the KCL's prepareCheckpoint). kclpp keeps
  // them as read and clears them with every checkpoint, as the KCL does.
  std::optional<ExtendedSequenceNumber> pending_checkpoint;
  std::optional<std::string> pending_checkpoint_state;
  std::int64_t owner_switches_since_checkpoint = 0;  // ownerSwitchesSinceCheckpoint
  std::vector<std::string> parent_shard_ids;         // parentShardId (a set), sorted
  std::vector<std::string> child_shard_ids;          // childShardIds (a set), sorted; set at SHARD_END
  std::optional<std::string> starting_hash_key;      // startingHashKey (decimal)
  std::optional<std::string> ending_hash_key;        // endingHashKey (decimal)
  // KCL 3.x attributes, kept as read (kclpp does not do 3.x's leader-based assignment):
  std::optional<std::string> throughput_kbps;  // throughputKBps: a decimal number as written
  std::optional<std::string> checkpoint_owner;  // checkpointOwner: a graceful hand-off's target

  friend bool operator==(const Lease&, const Lease&) = default;
};

// One application's leases on one stream. Thread-safe: the coordinator's thread and every
// shard thread (checkpoints) call it. Every call may throw StoreError: retry() Yes for an
// unreachable, busy or throttled store, No for a broken schema, a missing permission or a
// row that cannot be read as a lease (the message names the key and the attribute). The
// conditional writes return false when the stored lease is not what the caller expected
// (another worker changed it, or it is gone) and then change nothing. A write that may or
// may not have happened (a lost reply) throws StoreError(Retry::Yes): read the lease again.
// Not copyable; the store that made it outlives it.
class LeaseTable {
 public:
  LeaseTable() = default;
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;
  virtual ~LeaseTable() = default;

  // Every lease, sorted by key, read consistently (every write acknowledged before the call
  // is seen). DynamoDB: items whose entityType is present and not "LEASE" are skipped.
  [[nodiscard]] virtual std::vector<Lease> list() = 0;
  // One lease (consistent read); nullopt when there is none.
  [[nodiscard]] virtual std::optional<Lease> get(const std::string& key) = 0;
  // Writes `lease` if no lease has its key; false (nothing written) when one has.
  virtual bool create(const Lease& lease) = 0;
  // Replaces the stored lease `next.key` with `next` if the stored lease's counter is
  // `expected_counter` and its owner is `expected_owner` (nullopt: no owner); false
  // otherwise, also when there is no such lease. Every attribute of Lease is written as
  // `next` has it (an absent optional or an empty set removes the attribute); attributes
  // a store keeps beyond Lease's (DynamoDB items written by other software) are left alone.
  virtual bool update(const Lease& next, std::int64_t expected_counter,
                      const std::optional<std::string>& expected_owner) = 0;
  // Deletes lease `key` if its counter is still `expected_counter`; false otherwise (also
  // when it is gone already).
  virtual bool remove(const std::string& key, std::int64_t expected_counter) = 0;
  // For logs and errors: "dynamodb:TABLE", "sqlite:PATH", "postgres://HOST:PORT/DB",
  // "memory:"; never a password.
  [[nodiscard]] virtual std::string describe() const = 0;
  // True when every worker of this table runs on this host (a SQLite file, memory): then a
  // lease whose owner is a default worker id (host-pid-suffix) naming this host and a
  // process that has exited may be taken at once instead of after the failover time.
  [[nodiscard]] virtual bool single_host() const { return false; }
};

}  // namespace kclpp::native
