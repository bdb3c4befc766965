#pragma once
// One worker's side of the lease protocol (docs/checkpoints.md §5): the leases it holds,
// renewed on a timer and judged on this host's monotonic clock; take rounds that claim
// free and expired leases and steal from the most loaded worker; checkpoints and releases
// fenced by the lease counter. The worker (worker.cpp) starts and stops shard consumers as
// leases come and go.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/native/lease_table.hpp"
#include "kclpp/native/worker.hpp"
#include "shard_metrics.hpp"

namespace kclpp::native::detail {

using SteadyClock = std::chrono::steady_clock;

// The settings of LeaseOptions with the defaults filled in and checked (ConfigError).
struct LeaseTiming {
  explicit LeaseTiming(const LeaseOptions& options);
  std::chrono::milliseconds failover;
  std::chrono::milliseconds renew;
  std::chrono::milliseconds take;
  // How long after a renewal was sent a lease still counts as held here: failover - renew/2.
  // Others may take it only failover after they saw the counter move, which is after the
  // renewal was sent; the difference is the time a shard has to notice and stop.
  std::chrono::milliseconds validity;
};

// "host-pid-random": unique per process start, readable in the table.
[[nodiscard]] std::string default_worker_id();
// Whether `owner` is a default worker id of this host whose process has exited. A pid
// reused since reads as alive: the lease then expires the usual way.
[[nodiscard]] bool owner_died_on_this_host(const std::string& owner);

// Counts for tests, benchmarks and logs. Each is the number since start.
struct LeaseStats {
  std::uint64_t table_requests = 0;  // every LeaseTable call made by the coordinator
  std::uint64_t renewals = 0;
  std::uint64_t renewals_skipped = 0;  // a checkpoint had renewed the lease already
  std::uint64_t taken = 0;
  std::uint64_t stolen = 0;
  std::uint64_t lost = 0;
  std::uint64_t released = 0;
};

// Thread-safe. Owns one thread (renewals and take rounds), started by start() and joined by
// stop() or the destructor. Callbacks run on that thread or the caller's; they must not
// call back into the coordinator while holding their own locks in an order that could
// deadlock (the worker only sets flags and signals).
class LeaseCoordinator {
 public:
  struct Callbacks {
    std::function<void()> changed;                      // leases were taken (or released)
    std::function<void(const std::string& key)> lost;  // a lease is no longer held
  };

  // `metrics`: leases held, taken, stolen and lost (docs/operations.md §1); default: none.
  LeaseCoordinator(LeaseTable& table, const LeaseOptions& options, Callbacks callbacks,
                   WorkerMetrics metrics = {});
  ~LeaseCoordinator();
  LeaseCoordinator(const LeaseCoordinator&) = delete;
  LeaseCoordinator& operator=(const LeaseCoordinator&) = delete;

  [[nodiscard]] const std::string& worker_id() const noexcept { return worker_id_; }
  [[nodiscard]] const LeaseTiming& timing() const noexcept { return timing_; }

  // Takes back the leases the table says this worker id owns (a restart with the same id),
  // runs a first take round, then starts the thread. Throws StoreError(Retry::No) for a
  // table that cannot be used; a table that cannot be reached is retried by the thread.
  void start();
  // Stops the thread (renewals and takes). Held leases stay held in the table until
  // release_all() or until they expire.
  void stop() noexcept;
  // Runs a take round now rather than at the next take interval (new leases were created).
  void request_take();
  // Graceful shutdown, first step: no more take rounds (a leaving worker must not pick up
  // leases others release meanwhile), while renewals go on so that processors can still
  // checkpoint. As the Java KCL's stopLeaseTaker. Not undone.
  void stop_taking();

  // Whether this worker holds `key` now: taken or renewed less than timing().validity ago
  // and not found lost. With `take` (see take_of), only while it still holds it by that
  // take: a shard consumer started under one take must stop once that take is lost, even
  // when this worker has taken the same key again since (its position may be stale).
  [[nodiscard]] bool holds(const std::string& key, std::uint64_t take = 0) const;
  // Which take of `key` this worker holds now (0: not held). Each take gets a new number.
  [[nodiscard]] std::uint64_t take_of(const std::string& key) const;
  // Keys of the leases held now.
  [[nodiscard]] std::vector<std::string> held_keys() const;
  // Whether a held lease's shard may start: at once for a free or expired lease; after a
  // steal, once the former owner's own clock says its lease has run out (timing().validity
  // after the take), so that the two never process the shard at the same time, even when
  // the former owner cannot reach the table to learn of the steal.
  [[nodiscard]] bool startable(const std::string& key) const;
  // A copy of a held lease (nullopt when not held, or not by `take` when given).
  [[nodiscard]] std::optional<Lease> held_lease(const std::string& key, std::uint64_t take = 0) const;
  // The table as last read (scan, or this worker's own writes since): key -> lease.
  [[nodiscard]] std::map<std::string, Lease> view() const;
  // Reads one lease from the table and refreshes the view with it; nullopt if it is gone.
  std::optional<Lease> refresh(const std::string& key);
  // Reads every lease (the take round's scan) without taking anything.
  std::vector<Lease> scan();

  // Writes the checkpoint of a held lease (counter + 1, owner switches reset, pending
  // checkpoint cleared; children recorded with SHARD_END). Throws LeaseLostError when the
  // lease is not held or another worker changed it (the lease is dropped), StoreError when
  // the table failed (the lease stays held until its validity runs out).
  // With `take`, only if the lease is still held by that take (else LeaseLostError).
  void checkpoint(const std::string& key, const ExtendedSequenceNumber& position,
                  const std::vector<std::string>& child_shard_ids = {}, std::uint64_t take = 0);
  // Gives a held lease up: owner removed, counter + 1, so that another worker takes it at
  // once. Best effort: failures are logged (the lease then expires). No-op if not held.
  void release(const std::string& key) noexcept;
  void release_all() noexcept;
  // Creates a lease for a new shard (false: it exists already).
  bool create(const Lease& lease);
  // Deletes a finished lease (cleanupLeasesUponShardCompletion) if unchanged.
  bool remove(const Lease& lease);

  [[nodiscard]] LeaseStats stats() const;

 private:
  struct Held;
  using HeldPtr = std::shared_ptr<Held>;

  void run() noexcept;
  void renew_all();
  void renew(const std::string& key, const HeldPtr& held);
  // Scans and takes; returns when the earliest lease that looks abandoned (its counter did
  // not move since the previous scan) expires, so that it is taken then rather than up to a
  // whole take interval later.
  std::optional<SteadyClock::time_point> take_round();
  void expire_overdue();
  // After a failed condition on a lease this worker believes it holds: the table says
  // whether a write of ours whose reply was lost explains it (owner still us: adopt the
  // stored lease) or another worker took it (false).
  bool reconcile(Held& held);
  void drop(const std::string& key, const char* why);
  bool try_take(const Lease& seen, bool steal);
  [[nodiscard]] HeldPtr find(const std::string& key) const;
  void note_request();
  void remember(const Lease& lease);

  LeaseTable& table_;
  LeaseTiming timing_;
  LeaseOptions options_;
  std::string worker_id_;
  Callbacks callbacks_;

  mutable std::mutex mutex_;  // guards everything below but each Held's own fields
  std::condition_variable cv_;
  bool stopping_ = false;
  bool take_requested_ = false;
  bool taking_ = true;
  std::map<std::string, HeldPtr> held_;
  // The take round's view: the last scan, with the local time each counter was first seen.
  struct Seen {
    Lease lease;
    SteadyClock::time_point counter_since;
  };
  std::map<std::string, Seen> seen_;
  LeaseStats stats_;
  WorkerMetrics metrics_;  // updated with stats_, under mutex_
  std::uint64_t takes_ = 0;  // the number of the last take (Held::take)
  std::minstd_rand random_;
  std::thread thread_;  // last: started after everything else exists
};

}  // namespace kclpp::native::detail
