#include "memory_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kclpp/processor/error.hpp"

namespace kclpp::native::detail {
namespace {

using ShardKey = std::tuple<std::string, std::string, std::string>;
using StreamKey = std::pair<std::string, std::string>;

// Shared by the store, its claims and its lease tables, so that those may outlive the
// store object. As in the SQL stores, a shard's checkpoint and its lease are one entry:
// save() writes the lease's checkpoint and leaves the rest alone, and an entry that only
// save() wrote is a free lease with counter 0.
struct MemoryState {
  std::mutex mutex;
  struct Entry {
    Lease lease;  // lease.key is the shard id; lease.checkpoint the checkpoint
    std::chrono::system_clock::time_point updated;  // of the last checkpoint write
  };
  std::map<ShardKey, Entry> entries;
  std::set<StreamKey> claims;
};

// Thread-safe (state guarded by its mutex).
class MemoryClaim final : public StoreClaim {
 public:
  MemoryClaim(std::shared_ptr<MemoryState> state, StreamKey key)
      : state_(std::move(state)), key_(std::move(key)) {}
  ~MemoryClaim() override {
    const std::lock_guard lock(state_->mutex);
    state_->claims.erase(key_);
  }

 private:
  std::shared_ptr<MemoryState> state_;
  StreamKey key_;
};

// Sets are stored sorted and without duplicates, as the SQL stores read them back.
Lease normalised(Lease lease) {
  for (auto* ids : {&lease.parent_shard_ids, &lease.child_shard_ids}) {
    std::sort(ids->begin(), ids->end());
    ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
  }
  return lease;
}

// One (application, stream)'s leases in a memory store, with the same semantics as the SQL
// stores' (several Workers of one process sharing one memory: store hand leases to each
// other through it). Thread-safe: every call under the state's mutex.
class MemoryLeaseTable final : public LeaseTable {
 public:
  MemoryLeaseTable(std::shared_ptr<MemoryState> state, std::string application, std::string stream)
      : state_(std::move(state)), application_(std::move(application)), stream_(std::move(stream)) {}

  std::vector<Lease> list() override {
    const std::lock_guard lock(state_->mutex);
    std::vector<Lease> result;
    for (auto it = state_->entries.lower_bound({application_, stream_, std::string()});
         it != state_->entries.end() && std::get<0>(it->first) == application_ &&
         std::get<1>(it->first) == stream_;
         ++it) {
      result.push_back(it->second.lease);
    }
    return result;
  }

  std::optional<Lease> get(const std::string& key) override {
    const std::lock_guard lock(state_->mutex);
    const auto it = state_->entries.find({application_, stream_, key});
    if (it == state_->entries.end()) return std::nullopt;
    return it->second.lease;
  }

  bool create(const Lease& lease) override {
    const std::lock_guard lock(state_->mutex);
    return state_->entries
        .try_emplace({application_, stream_, lease.key},
                     MemoryState::Entry{normalised(lease), std::chrono::system_clock::now()})
        .second;
  }

  bool update(const Lease& next, std::int64_t expected_counter,
              const std::optional<std::string>& expected_owner) override {
    const std::lock_guard lock(state_->mutex);
    const auto it = state_->entries.find({application_, stream_, next.key});
    if (it == state_->entries.end()) return false;
    auto& entry = it->second;
    if (entry.lease.counter != expected_counter || entry.lease.owner != expected_owner) return false;
    // As the SQL stores: `updated` tells when the checkpoint last changed, not the lease.
    if (!(entry.lease.checkpoint == next.checkpoint) ||
        entry.lease.checkpoint.sub_sequence_number() != next.checkpoint.sub_sequence_number()) {
      entry.updated = std::chrono::system_clock::now();
    }
    entry.lease = normalised(next);
    return true;
  }

  bool remove(const std::string& key, std::int64_t expected_counter) override {
    const std::lock_guard lock(state_->mutex);
    const auto it = state_->entries.find({application_, stream_, key});
    if (it == state_->entries.end() || it->second.lease.counter != expected_counter) return false;
    state_->entries.erase(it);
    return true;
  }

  [[nodiscard]] std::string describe() const override { return "memory:"; }
  [[nodiscard]] bool single_host() const override { return true; }

 private:
  std::shared_ptr<MemoryState> state_;
  std::string application_;
  std::string stream_;
};

// Thread-safe: one mutex around the map.
class MemoryStore final : public CheckpointStore {
 public:
  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    const std::lock_guard lock(state_->mutex);
    const auto it = state_->entries.find({key.application, key.stream, key.shard_id});
    if (it == state_->entries.end()) return std::nullopt;
    return it->second.lease.checkpoint;
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    const std::lock_guard lock(state_->mutex);
    std::map<std::string, ExtendedSequenceNumber> result;
    for (auto it = state_->entries.lower_bound({application, stream, std::string()});
         it != state_->entries.end() && std::get<0>(it->first) == application &&
         std::get<1>(it->first) == stream;
         ++it) {
      result.emplace(std::get<2>(it->first), it->second.lease.checkpoint);
    }
    return result;
  }

  // Leaves the lease's other fields alone: they belong to the lease protocol.
  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::lock_guard lock(state_->mutex);
    auto [it, inserted] = state_->entries.try_emplace({key.application, key.stream, key.shard_id});
    if (inserted) it->second.lease.key = key.shard_id;
    it->second.lease.checkpoint = position;
    it->second.updated = std::chrono::system_clock::now();
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    const std::lock_guard lock(state_->mutex);
    std::vector<StoredCheckpoint> result;
    for (auto it = state_->entries.lower_bound({application, std::string(), std::string()});
         it != state_->entries.end() && std::get<0>(it->first) == application; ++it) {
      result.push_back({std::get<1>(it->first), std::get<2>(it->first), it->second.lease.checkpoint,
                        it->second.updated});
    }
    return result;
  }

  std::unique_ptr<LeaseTable> leases(const std::string& application, const std::string& stream) override {
    return std::make_unique<MemoryLeaseTable>(state_, application, stream);
  }

  std::unique_ptr<StoreClaim> claim(const std::string& application,
                                    const std::string& stream) override {
    const std::lock_guard lock(state_->mutex);
    StreamKey key{application, stream};
    if (!state_->claims.insert(key).second) {
      throw StoreError("cannot claim application '" + application + "' on stream '" + stream +
                       "' in the memory: checkpoint store: held by another worker in this "
                       "process (pid " + std::to_string(::getpid()) +
                       "); only one worker may run an application on a stream in a store without leases "
                       "(the triton layout; kclpp\'s own layout shares shards through leases)");
    }
    return std::make_unique<MemoryClaim>(state_, std::move(key));
  }

 private:
  std::shared_ptr<MemoryState> state_ = std::make_shared<MemoryState>();
};

}  // namespace

std::unique_ptr<CheckpointStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace kclpp::native::detail
