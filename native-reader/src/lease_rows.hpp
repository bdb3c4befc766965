#pragma once
// Leases in kclpp's own SQL layout (docs/checkpoints.md §2): the lease of a shard is its
// kclpp_checkpoints row. What the SQLite and Postgres stores share: the interface their
// kclpp tables implement, the adapter that makes it a LeaseTable under the store's mutex,
// the column list both read, and how a row's text becomes a Lease.
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/native/lease_table.hpp"

namespace kclpp::native::detail {

// The leases of one application's stream in a SQL store's kclpp layout, with
// LeaseTable's contract (lease_table.hpp) but the scope passed with each call, so that
// one object serves every (application, stream). Not thread-safe: LockedLeaseTable holds
// the store's mutex around each call.
class LeaseRows {
 public:
  virtual ~LeaseRows() = default;
  [[nodiscard]] virtual std::vector<Lease> list_leases(const std::string& application,
                                                       const std::string& stream) = 0;
  [[nodiscard]] virtual std::optional<Lease> get_lease(const std::string& application,
                                                       const std::string& stream,
                                                       const std::string& key) = 0;
  virtual bool create_lease(const std::string& application, const std::string& stream,
                            const Lease& lease) = 0;
  virtual bool update_lease(const std::string& application, const std::string& stream,
                            const Lease& next, std::int64_t expected_counter,
                            const std::optional<std::string>& expected_owner) = 0;
  virtual bool remove_lease(const std::string& application, const std::string& stream,
                            const std::string& key, std::int64_t expected_counter) = 0;
  // "sqlite:PATH", "postgres://HOST:PORT/DB": never a password. Never changes.
  [[nodiscard]] virtual std::string describe_leases() const = 0;
  // LeaseTable::single_host(): a SQLite file is used by processes of one host.
  [[nodiscard]] virtual bool single_host_leases() const { return false; }
};

// A LeaseTable for one (application, stream) over a store's LeaseRows, each call under the
// store's mutex (the one that serialises its checkpoint calls on the same connection).
// Thread-safe; the store outlives it (LeaseTable's contract).
class LockedLeaseTable final : public LeaseTable {
 public:
  LockedLeaseTable(std::mutex& mutex, LeaseRows& rows, std::string application, std::string stream)
      : mutex_(mutex), rows_(rows), application_(std::move(application)), stream_(std::move(stream)) {}

  std::vector<Lease> list() override {
    const std::lock_guard lock(mutex_);
    return rows_.list_leases(application_, stream_);
  }
  std::optional<Lease> get(const std::string& key) override {
    const std::lock_guard lock(mutex_);
    return rows_.get_lease(application_, stream_, key);
  }
  bool create(const Lease& lease) override {
    const std::lock_guard lock(mutex_);
    return rows_.create_lease(application_, stream_, lease);
  }
  bool update(const Lease& next, std::int64_t expected_counter,
              const std::optional<std::string>& expected_owner) override {
    const std::lock_guard lock(mutex_);
    return rows_.update_lease(application_, stream_, next, expected_counter, expected_owner);
  }
  bool remove(const std::string& key, std::int64_t expected_counter) override {
    const std::lock_guard lock(mutex_);
    return rows_.remove_lease(application_, stream_, key, expected_counter);
  }
  [[nodiscard]] std::string describe() const override { return rows_.describe_leases(); }
  [[nodiscard]] bool single_host() const override { return rows_.single_host_leases(); }

 private:
  std::mutex& mutex_;
  LeaseRows& rows_;
  std::string application_;
  std::string stream_;
};

// The columns a lease is read from, in this order, in both SQL stores (LeaseColumn indexes
// them). NULL counters count as 0: rows written before version 2, or only by save(), are
// free leases that nobody has taken yet.
inline constexpr const char* lease_select_columns =
    "shard_id, lease_owner, coalesce(lease_counter, 0), sequence_number, sub_sequence_number, "
    "pending_checkpoint, pending_sub_sequence_number, pending_checkpoint_state, "
    "coalesce(owner_switches_since_checkpoint, 0), parent_shard_ids, child_shard_ids, "
    "starting_hash_key, ending_hash_key, throughput_kbps, checkpoint_owner";

enum class LeaseColumn : std::size_t {
  Key,
  Owner,
  Counter,
  Checkpoint,
  CheckpointSub,
  Pending,
  PendingSub,
  PendingState,
  OwnerSwitches,
  Parents,
  Children,
  StartingHashKey,
  EndingHashKey,
  ThroughputKbps,
  CheckpointOwner,
  Count
};

// One row's columns as the database returned them (integers as decimal text, the state's
// raw bytes); nullopt for NULL.
using LeaseRowValues = std::array<std::optional<std::string>, static_cast<std::size_t>(LeaseColumn::Count)>;

// The Lease of a row. Throws StoreError(Retry::No) naming `where` (the store), the shard and
// the column when a value cannot be read as its field.
[[nodiscard]] Lease decode_lease(const LeaseRowValues& row, std::string_view where);

// The text a lease's fields are written as, in the order of `lease_write_columns`
// (parameters 4.. of the stores' statements; 1..3 are application, stream, shard id).
// Sets become comma lists (docs/checkpoints.md §2). Throws StoreError(Retry::No) naming
// `where` and the shard when a set holds an id the comma list cannot carry.
inline constexpr const char* lease_write_columns[] = {
    "lease_owner",        "lease_counter",     "sequence_number",
    "sub_sequence_number", "pending_checkpoint", "pending_sub_sequence_number",
    "pending_checkpoint_state", "owner_switches_since_checkpoint", "parent_shard_ids",
    "child_shard_ids",    "starting_hash_key", "ending_hash_key",
    "throughput_kbps",    "checkpoint_owner"};
inline constexpr std::size_t lease_write_count = std::size(lease_write_columns);
using LeaseWriteValues = std::array<std::optional<std::string>, lease_write_count>;
// Index of the pending state (a blob) among the write values.
inline constexpr std::size_t lease_write_state_index = 6;
[[nodiscard]] LeaseWriteValues encode_lease(const Lease& lease, std::string_view where);

// The columns version 2 of the schema adds to kclpp_checkpoints, with their types in each
// database (docs/checkpoints.md §2). Sequence numbers are text, as `sequence_number` is.
struct LeaseColumnDdl {
  const char* name;
  const char* sqlite_type;
  const char* postgres_type;
};
inline constexpr LeaseColumnDdl lease_v2_columns[] = {
    {"pending_checkpoint", "TEXT", "TEXT"},
    {"pending_sub_sequence_number", "BIGINT", "BIGINT"},
    {"pending_checkpoint_state", "BLOB", "BYTEA"},
    {"owner_switches_since_checkpoint", "BIGINT", "BIGINT"},
    {"parent_shard_ids", "TEXT", "TEXT"},
    {"child_shard_ids", "TEXT", "TEXT"},
    {"starting_hash_key", "TEXT", "TEXT"},
    {"ending_hash_key", "TEXT", "TEXT"},
    {"throughput_kbps", "TEXT", "TEXT"},
    {"checkpoint_owner", "TEXT", "TEXT"}};

// What the two databases spell differently in the lease statements.
struct SqlDialect {
  const char* placeholder;  // "?" (SQLite) or "$" (Postgres), followed by the number
  const char* now;          // the current time as updated_at holds it
  const char* same;         // NULL-safe equality: "IS" or "IS NOT DISTINCT FROM"
};

// The lease writes, parameters 1..3 the key (application, stream, shard id), 4..17 the
// values of encode_lease in lease_write_columns order; update also takes 18 (the expected
// counter) and 19 (the expected owner, NULL: none). updated_at is the time of the last
// checkpoint write (what `kclpp stats` shows), so an update that leaves the checkpoint as
// it was (a renewal, a take) leaves it alone.
[[nodiscard]] std::string lease_insert_sql(const SqlDialect& dialect);
[[nodiscard]] std::string lease_update_sql(const SqlDialect& dialect);

// A set as a sorted comma list without duplicates; nullopt for the empty set.
[[nodiscard]] std::optional<std::string> encode_id_set(const std::vector<std::string>& ids);
// The members of a comma list, sorted and unique; nullopt when an element is empty.
[[nodiscard]] std::optional<std::vector<std::string>> decode_id_set(std::string_view list);

}  // namespace kclpp::native::detail
