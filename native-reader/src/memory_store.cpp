#include "memory_store.hpp"

#include <unistd.h>

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

// Shared by the store and its claims, so a claim may outlive the store object.
struct MemoryState {
  std::mutex mutex;
  struct Entry {
    ExtendedSequenceNumber position;
    std::chrono::system_clock::time_point updated;
  };
  std::map<ShardKey, Entry> checkpoints;
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

// Thread-safe: one mutex around the map.
class MemoryStore final : public CheckpointStore {
 public:
  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    const std::lock_guard lock(state_->mutex);
    const auto it = state_->checkpoints.find({key.application, key.stream, key.shard_id});
    if (it == state_->checkpoints.end()) return std::nullopt;
    return it->second.position;
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    const std::lock_guard lock(state_->mutex);
    std::map<std::string, ExtendedSequenceNumber> result;
    for (auto it = state_->checkpoints.lower_bound({application, stream, std::string()});
         it != state_->checkpoints.end() && std::get<0>(it->first) == application &&
         std::get<1>(it->first) == stream;
         ++it) {
      result.emplace(std::get<2>(it->first), it->second.position);
    }
    return result;
  }

  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::lock_guard lock(state_->mutex);
    state_->checkpoints.insert_or_assign({key.application, key.stream, key.shard_id},
                                         MemoryState::Entry{position, std::chrono::system_clock::now()});
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    const std::lock_guard lock(state_->mutex);
    std::vector<StoredCheckpoint> result;
    for (auto it = state_->checkpoints.lower_bound({application, std::string(), std::string()});
         it != state_->checkpoints.end() && std::get<0>(it->first) == application; ++it) {
      result.push_back({std::get<1>(it->first), std::get<2>(it->first), it->second.position,
                        it->second.updated});
    }
    return result;
  }

  std::unique_ptr<StoreClaim> claim(const std::string& application,
                                    const std::string& stream) override {
    const std::lock_guard lock(state_->mutex);
    StreamKey key{application, stream};
    if (!state_->claims.insert(key).second) {
      throw StoreError("cannot claim application '" + application + "' on stream '" + stream +
                       "' in the memory: checkpoint store: held by another worker in this "
                       "process (pid " + std::to_string(::getpid()) +
                       "); only one worker may run an application on a stream until "
                       "multi-worker leases exist");
    }
    return std::make_unique<MemoryClaim>(state_, std::move(key));
  }

 private:
  std::shared_ptr<MemoryState> state_ = std::make_shared<MemoryState>();
};

}  // namespace

std::unique_ptr<CheckpointStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace kclpp::native::detail
