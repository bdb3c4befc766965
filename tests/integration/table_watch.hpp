#pragma once
// Integration-test helper: a lease table read every ~50 ms on a thread of its own, for the
// multi-process lease tests (lease_fleet_test.cpp with native workers,
// daemon_fleet_test.cpp with `kclpp daemon`). It keeps every read, so a test can ask when
// a state was first seen and how leases moved in between, and it records every checkpoint
// that moved backwards between two reads (issue 12 §4: "no checkpoint ever moves
// backwards"), plus predicates on a read: who owns how many live leases.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/lease_table.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::test::leases {

using SteadyClock = std::chrono::steady_clock;

// Nanoseconds on the monotonic clock (CLOCK_MONOTONIC, as the processors' logs use).
inline std::int64_t ns(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// 0: not read yet (TRIM_HORIZON, LATEST, AT_TIMESTAMP), 1: a sequence number, 2: SHARD_END.
inline int rank(const ExtendedSequenceNumber& p) {
  if (!p.is_sentinel()) return 1;
  return p.sentinel() == Sentinel::ShardEnd ? 2 : 0;
}
// True when checkpoint `a` is behind `b` (a write from `b` to `a` would be a step back).
inline bool before(const ExtendedSequenceNumber& a, const ExtendedSequenceNumber& b) {
  if (rank(a) != rank(b)) return rank(a) < rank(b);
  return rank(a) == 1 && compare_positions(a, b) < 0;
}

struct Snapshot {
  std::int64_t read_ns = 0;  // when the read began
  std::map<std::string, native::Lease> leases;
};

// Where the table is, as the test's own reader opens it.
struct TableSpec {
  std::string uri;  // for open_checkpoint_store
  native::StoreOptions options;
  std::string application;
  std::string stream;
};

// Reads every lease every ~50 ms on its own thread and keeps each read; records every
// checkpoint that moved backwards. A failed read (the store is unreachable) is skipped and
// the store opened again on the next one. Thread safety: the accessors lock.
class TableWatch {
 public:
  explicit TableWatch(TableSpec spec) : spec_(std::move(spec)) {
    thread_ = std::thread([this] { run(); });
  }
  ~TableWatch() { stop(); }
  TableWatch(const TableWatch&) = delete;
  TableWatch& operator=(const TableWatch&) = delete;

  // Ends the reads (before the store goes away); the reads so far stay.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::optional<Snapshot> latest() {
    const std::lock_guard lock(mutex_);
    if (snapshots_.empty()) return std::nullopt;
    return snapshots_.back();
  }
  std::vector<Snapshot> all() {
    const std::lock_guard lock(mutex_);
    return snapshots_;
  }
  std::vector<std::string> backwards() {
    const std::lock_guard lock(mutex_);
    return backwards_;
  }
  // Waits for a read (begun after `after`) that satisfies `pred`; its time, or nullopt.
  template <class Pred>
  std::optional<std::int64_t> wait_for(Pred pred, std::chrono::milliseconds timeout, std::int64_t after = 0) {
    const auto deadline = SteadyClock::now() + timeout;
    std::size_t checked = 0;
    while (SteadyClock::now() < deadline) {
      {
        const std::lock_guard lock(mutex_);
        for (; checked < snapshots_.size(); ++checked) {
          if (snapshots_[checked].read_ns > after && pred(snapshots_[checked])) return snapshots_[checked].read_ns;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

 private:
  void run() {
    std::unique_ptr<native::CheckpointStore> store;
    std::unique_ptr<native::LeaseTable> table;
    std::map<std::string, ExtendedSequenceNumber> last;
    while (!stop_) {
      const auto started = SteadyClock::now();
      try {
        if (!table) {
          store = native::open_checkpoint_store(spec_.uri, spec_.options);
          table = store->leases(spec_.application, spec_.stream);
        }
        Snapshot s{ns(started), {}};
        for (auto& lease : table->list()) s.leases.emplace(lease.key, std::move(lease));
        const std::lock_guard lock(mutex_);
        for (const auto& [key, lease] : s.leases) {
          const auto it = last.find(key);
          if (it != last.end() && before(lease.checkpoint, it->second)) {
            backwards_.push_back(key + ": " + it->second.str() + " -> " + lease.checkpoint.str());
          }
          last[key] = lease.checkpoint;
        }
        snapshots_.push_back(std::move(s));
      } catch (const Error&) {
        // Unreachable or not created yet: the store is opened again on the next read, so
        // that a Postgres restart is not an error of the test's own connection.
        table.reset();
        store.reset();
      }
      std::this_thread::sleep_until(started + std::chrono::milliseconds(50));
    }
  }

  TableSpec spec_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Snapshot> snapshots_;
  std::vector<std::string> backwards_;
  std::thread thread_;
};

// Live leases (not at SHARD_END) per owner; free ones under "".
inline std::map<std::string, int> owner_counts(const Snapshot& s) {
  std::map<std::string, int> counts;
  for (const auto& [key, lease] : s.leases) {
    if (lease.checkpoint.sentinel() != Sentinel::ShardEnd) ++counts[lease.owner.value_or("")];
  }
  return counts;
}
inline std::string describe_counts(const Snapshot& s) {
  std::string out;
  for (const auto& [owner, n] : owner_counts(s))
    out += (out.empty() ? "" : ", ") + (owner.empty() ? "(free)" : owner) + "=" + std::to_string(n);
  return out;
}
// Each of `workers` owns exactly `each` leases and nothing else is owned or free.
inline auto balanced(const std::vector<std::string>& workers, int each) {
  return [workers, each](const Snapshot& s) {
    const auto counts = owner_counts(s);
    if (counts.size() != workers.size()) return false;
    return std::all_of(workers.begin(), workers.end(), [&](const std::string& w) {
      const auto it = counts.find(w);
      return it != counts.end() && it->second == each;
    });
  };
}
// Live leases owned exactly as `expected` says (owner -> count), nothing free.
inline auto split_is(std::map<std::string, int> expected) {
  return [expected = std::move(expected)](const Snapshot& s) { return owner_counts(s) == expected; };
}
inline std::set<std::string> owned_by(const Snapshot& s, const std::string& worker) {
  std::set<std::string> keys;
  for (const auto& [key, lease] : s.leases) {
    if (lease.owner == worker && lease.checkpoint.sentinel() != Sentinel::ShardEnd) keys.insert(key);
  }
  return keys;
}

// "a + (b - a) / 2" for decimal hash keys (< 2^128): where the fleet tests split a shard.
__extension__ typedef unsigned __int128 HashKey;  // GCC and Clang; hash keys are < 2^128
inline std::string hash_key_midpoint(const std::string& a, const std::string& b) {
  auto parse = [](const std::string& s) {
    HashKey v = 0;
    for (const char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
    return v;
  };
  HashKey m = parse(a) + (parse(b) - parse(a)) / 2;
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(m % 10)));
    m /= 10;
  } while (m != 0);
  return out;
}

}  // namespace kclpp::test::leases
