#include "lease_coordinator.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <array>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::native::detail {
namespace {

using std::chrono::milliseconds;

// Renewal threads at most (one per 16 held leases).
constexpr std::size_t max_renew_threads = 8;

bool finished(const Lease& lease) { return lease.checkpoint.sentinel() == Sentinel::ShardEnd; }

SteadyClock::rep ticks(SteadyClock::time_point t) { return t.time_since_epoch().count(); }
SteadyClock::time_point at(SteadyClock::rep ticks) { return SteadyClock::time_point(SteadyClock::duration(ticks)); }

std::minstd_rand::result_type seed() {
  std::random_device device;
  return static_cast<std::minstd_rand::result_type>(device()) ^
         static_cast<std::minstd_rand::result_type>(SteadyClock::now().time_since_epoch().count());
}

}  // namespace

LeaseTiming::LeaseTiming(const LeaseOptions& options)
    : failover(options.failover_time),
      renew(options.renew_interval.count() > 0 ? options.renew_interval : options.failover_time / 3),
      take(options.take_interval.count() > 0 ? options.take_interval : options.failover_time),
      validity(failover - renew / 2) {
  if (failover.count() <= 0) {
    throw ConfigError("LeaseOptions::failover_time must be > 0 ms, not " + std::to_string(failover.count()));
  }
  // Two renewals fit in the failover time, or one failed request loses every lease.
  if (renew.count() <= 0 || renew * 2 > failover) {
    throw ConfigError("LeaseOptions::renew_interval (" + std::to_string(renew.count()) +
                      " ms) must be > 0 and at most half the failover time (" +
                      std::to_string(failover.count()) + " ms)");
  }
  if (options.max_leases < 0) {
    throw ConfigError("LeaseOptions::max_leases must be >= 0 (0: no limit), not " +
                      std::to_string(options.max_leases));
  }
  if (options.max_leases_to_steal < 1) {
    throw ConfigError("LeaseOptions::max_leases_to_steal must be >= 1, not " +
                      std::to_string(options.max_leases_to_steal));
  }
}

std::string default_worker_id() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host = {'u', 'n', 'k', 'n', 'o', 'w', 'n'};
  std::minstd_rand random(seed());
  static constexpr char digits[] = "0123456789abcdef";
  std::string suffix;
  for (int i = 0; i < 8; ++i) suffix += digits[random() % 16];
  return std::string(host.data()) + "-" + std::to_string(::getpid()) + "-" + suffix;
}

bool owner_died_on_this_host(const std::string& owner) {
  const auto suffix = owner.rfind('-');
  if (suffix == std::string::npos || owner.size() - suffix != 9 ||
      owner.find_first_not_of("0123456789abcdef", suffix + 1) != std::string::npos) {
    return false;
  }
  const auto pid_at = owner.rfind('-', suffix - 1);
  if (pid_at == std::string::npos || pid_at + 1 == suffix || suffix - pid_at > 11) return false;
  const std::string pid_text = owner.substr(pid_at + 1, suffix - pid_at - 1);
  if (pid_text.find_first_not_of("0123456789") != std::string::npos) return false;
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0 || owner.compare(0, pid_at, host.data()) != 0) return false;
  const long pid = std::stol(pid_text);
  if (pid <= 0 || pid == ::getpid()) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// A lease this worker holds. `write` serialises the writes to it (renewal, checkpoint,
// release), so each starts from the counter the one before left. Lock order: write, then
// the coordinator's mutex_, never the reverse.
struct LeaseCoordinator::Held {
  std::mutex write;
  Lease lease;                      // guarded by write
  SteadyClock::time_point written;  // guarded by write: the last successful write was sent
  std::atomic<SteadyClock::rep> valid_until{0};
  std::atomic<bool> lost{false};
  SteadyClock::time_point start_after;  // set once, before the lease is shared
  std::uint64_t take = 0;  // set before it is shared: which take of the key this is

  void wrote(const Lease& next, SteadyClock::time_point sent, milliseconds validity) {
    lease = next;
    written = sent;
    valid_until = ticks(sent + validity);
  }
  [[nodiscard]] bool valid(SteadyClock::time_point now) const { return !lost && ticks(now) < valid_until; }
};

LeaseCoordinator::LeaseCoordinator(LeaseTable& table, const LeaseOptions& options, Callbacks callbacks,
                                   WorkerMetrics metrics)
    : table_(table),
      timing_(options),
      options_(options),
      worker_id_(options.worker_id.empty() ? default_worker_id() : options.worker_id),
      callbacks_(std::move(callbacks)),
      metrics_(std::move(metrics)),
      random_(seed()) {}

LeaseCoordinator::~LeaseCoordinator() { stop(); }

void LeaseCoordinator::start() {
  log_info("leases: worker ", worker_id_, " on ", table_.describe(), " (failover ", timing_.failover.count(),
           " ms, renew every ", timing_.renew.count(), " ms, take every ", timing_.take.count(), " ms)");
  try {
    take_round();  // includes this id's own leases from an earlier run
  } catch (const StoreError& e) {
    if (e.retry() == Retry::No) throw;
    log_warn("leases: first take round on ", table_.describe(), " failed (will retry): ", e.what());
  }
  thread_ = std::thread([this] { run(); });
}

void LeaseCoordinator::stop() noexcept {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaseCoordinator::request_take() {
  {
    const std::lock_guard lock(mutex_);
    take_requested_ = true;
  }
  cv_.notify_all();
}

void LeaseCoordinator::stop_taking() {
  const std::lock_guard lock(mutex_);
  taking_ = false;
}

void LeaseCoordinator::run() noexcept {
  auto next_renew = SteadyClock::now() + timing_.renew;
  auto next_take = SteadyClock::now() + timing_.take;
  for (;;) {
    bool taking = true;
    {
      std::unique_lock lock(mutex_);
      auto wake = std::min(next_renew, next_take);
      for (const auto& [key, held] : held_) wake = std::min(wake, at(held->valid_until));
      if (cv_.wait_until(lock, wake, [&] { return stopping_ || take_requested_; }) && stopping_) return;
      if (take_requested_) next_take = SteadyClock::now();
      take_requested_ = false;
      taking = taking_;
    }
    try {
      expire_overdue();
      if (SteadyClock::now() >= next_renew) {
        next_renew = SteadyClock::now() + timing_.renew;
        renew_all();
      }
      if (!taking) {
        next_take = SteadyClock::time_point::max();  // wake for renewals and expiries only
      } else if (SteadyClock::now() >= next_take) {
        next_take = SteadyClock::now() + timing_.take;
        if (const auto expiry = take_round(); expiry && *expiry < next_take) next_take = *expiry;
      }
    } catch (const Error& e) {
      log_warn("leases: ", table_.describe(), ": ", e.what());
    } catch (const std::exception& e) {
      log_error("leases: unexpected failure: ", e.what());
    }
  }
}

LeaseCoordinator::HeldPtr LeaseCoordinator::find(const std::string& key) const {
  const std::lock_guard lock(mutex_);
  const auto it = held_.find(key);
  return it == held_.end() ? nullptr : it->second;
}

void LeaseCoordinator::note_request() {
  const std::lock_guard lock(mutex_);
  ++stats_.table_requests;
}

void LeaseCoordinator::remember(const Lease& lease) {
  const std::lock_guard lock(mutex_);
  auto& seen = seen_[lease.key];
  if (seen.lease.counter != lease.counter || seen.lease.key.empty()) seen.counter_since = SteadyClock::now();
  seen.lease = lease;
}

bool LeaseCoordinator::startable(const std::string& key) const {
  const auto held = find(key);
  const auto now = SteadyClock::now();
  return held && held->valid(now) && now >= held->start_after;
}

bool LeaseCoordinator::holds(const std::string& key, std::uint64_t take) const {
  const auto held = find(key);
  return held && (take == 0 || held->take == take) && held->valid(SteadyClock::now());
}

std::uint64_t LeaseCoordinator::take_of(const std::string& key) const {
  const auto held = find(key);
  return held && held->valid(SteadyClock::now()) ? held->take : 0;
}

std::vector<std::string> LeaseCoordinator::held_keys() const {
  const auto now = SteadyClock::now();
  const std::lock_guard lock(mutex_);
  std::vector<std::string> keys;
  for (const auto& [key, held] : held_) {
    if (held->valid(now)) keys.push_back(key);
  }
  return keys;
}

std::optional<Lease> LeaseCoordinator::held_lease(const std::string& key, std::uint64_t take) const {
  const auto held = find(key);
  if (!held || (take != 0 && held->take != take)) return std::nullopt;
  const std::lock_guard lock(held->write);
  if (!held->valid(SteadyClock::now())) return std::nullopt;
  return held->lease;
}

std::map<std::string, Lease> LeaseCoordinator::view() const {
  const std::lock_guard lock(mutex_);
  std::map<std::string, Lease> result;
  for (const auto& [key, seen] : seen_) result.emplace(key, seen.lease);
  return result;
}

std::optional<Lease> LeaseCoordinator::refresh(const std::string& key) {
  note_request();
  auto lease = table_.get(key);
  if (lease) {
    remember(*lease);
  } else {
    const std::lock_guard lock(mutex_);
    seen_.erase(key);
  }
  return lease;
}

std::vector<Lease> LeaseCoordinator::scan() {
  note_request();
  auto leases = table_.list();
  for (const auto& lease : leases) remember(lease);
  return leases;
}

LeaseStats LeaseCoordinator::stats() const {
  const std::lock_guard lock(mutex_);
  return stats_;
}

void LeaseCoordinator::drop(const std::string& key, const char* why) {
  bool dropped = false;
  {
    const std::lock_guard lock(mutex_);
    const auto it = held_.find(key);
    if (it != held_.end()) {
      it->second->lost = true;
      held_.erase(it);
      ++stats_.lost;
      metrics_.leases_lost.add();
      metrics_.leases_held.set(static_cast<double>(held_.size()));
      dropped = true;
    }
  }
  if (!dropped) return;
  log_warn("leases: lost the lease of ", key, " (", why, ")");
  if (callbacks_.lost) callbacks_.lost(key);
}

void LeaseCoordinator::expire_overdue() {
  const auto now = SteadyClock::now();
  std::vector<std::string> overdue;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [key, held] : held_) {
      if (!held->valid(now)) overdue.push_back(key);
    }
  }
  for (const auto& key : overdue) drop(key, "not renewed in time: the lease table could not be reached");
}

bool LeaseCoordinator::reconcile(Held& held) {
  note_request();
  const auto stored = table_.get(held.lease.key);
  if (!stored || stored->owner != worker_id_) return false;
  // Only this worker writes its id as owner, so every change since our last known state
  // was one of ours whose reply was lost: carry on from the stored lease.
  held.lease = *stored;
  return true;
}

void LeaseCoordinator::renew_all() {
  std::vector<std::pair<std::string, HeldPtr>> leases;
  {
    const std::lock_guard lock(mutex_);
    leases.assign(held_.begin(), held_.end());
  }
  // Renewals are independent requests: with many leases a few threads keep one slow reply
  // from delaying the rest past their validity (the Java KCL renews on a pool of up to 20
  // threads). Joined before returning; a SQL store serialises them on its connection anyway.
  const auto renew_every = [&](std::size_t first, std::size_t step) noexcept {
    for (std::size_t i = first; i < leases.size(); i += step) {
      try {
        renew(leases[i].first, leases[i].second);
      } catch (const std::exception& e) {
        log_warn("leases: renewing ", leases[i].first, " on ", table_.describe(), " failed: ", e.what());
      }
    }
  };
  const std::size_t threads = std::min<std::size_t>(max_renew_threads, (leases.size() + 15) / 16);
  std::vector<std::thread> helpers;
  for (std::size_t t = 1; t < threads; ++t) helpers.emplace_back(renew_every, t, threads);
  renew_every(0, std::max<std::size_t>(threads, 1));
  for (auto& helper : helpers) helper.join();
}

void LeaseCoordinator::renew(const std::string& key, const HeldPtr& held) {
  const std::unique_lock lock(held->write);
  auto now = SteadyClock::now();
  if (!held->valid(now)) return;  // expire_overdue drops it
  if (now - held->written < timing_.renew / 2) {
    // A checkpoint moved the counter a moment ago: others saw it as a renewal.
    const std::lock_guard stats_lock(mutex_);
    ++stats_.renewals_skipped;
    return;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    Lease next = held->lease;
    ++next.counter;
    now = SteadyClock::now();
    note_request();
    if (table_.update(next, held->lease.counter, worker_id_)) {
      held->wrote(next, now, timing_.validity);
      const std::lock_guard stats_lock(mutex_);
      ++stats_.renewals;
      return;
    }
    if (attempt > 0 || !reconcile(*held)) break;
  }
  drop(key, "another worker took it");
}

bool LeaseCoordinator::try_take(const Lease& seen, bool steal) {
  Lease next = seen;
  next.owner = worker_id_;
  ++next.counter;
  if (seen.owner && *seen.owner != worker_id_) ++next.owner_switches_since_checkpoint;
  next.checkpoint_owner.reset();
  const auto sent = SteadyClock::now();
  note_request();
  if (!table_.update(next, seen.counter, seen.owner)) {
    log_info("leases: ", seen.key, " changed before this worker could take it");
    return false;
  }
  auto held = std::make_shared<Held>();
  held->wrote(next, sent, timing_.validity);
  // A stolen shard starts once its former owner counts the lease as lost by its own clock
  // (its last write came before this take), even if it cannot reach the table to find out.
  held->start_after = steal ? sent + timing_.validity : sent;
  {
    const std::lock_guard lock(mutex_);
    held->take = ++takes_;
    held_[next.key] = held;
    ++stats_.taken;
    if (steal) ++stats_.stolen;
    metrics_.leases_taken.add();
    if (steal) metrics_.leases_stolen.add();
    metrics_.leases_held.set(static_cast<double>(held_.size()));
  }
  remember(next);
  const std::string from = !seen.owner ? std::string(" (free)")
                           : steal   ? " (stolen from " + *seen.owner + ")"
                                     : " (expired, from " + *seen.owner + ")";
  log_info("leases: took ", next.key, from);
  return true;
}

// The Java KCL's DynamoDBLeaseTaker, with finished leases (SHARD_END) left out: they need
// no worker, so they neither count towards a worker's share nor get renewed.
std::optional<SteadyClock::time_point> LeaseCoordinator::take_round() {
  note_request();
  const auto leases = table_.list();
  const auto now = SteadyClock::now();
  std::optional<SteadyClock::time_point> next_expiry;
  std::vector<Lease> available;
  std::map<std::string, int> counts;  // owner -> live leases
  std::set<std::string> mine;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [key, held] : held_) {
      if (held->valid(now)) mine.insert(key);
    }
    std::map<std::string, Seen> fresh;
    for (const auto& lease : leases) {
      const auto old = seen_.find(lease.key);
      SteadyClock::time_point since = now;
      if (old != seen_.end() && old->second.lease.counter == lease.counter) since = old->second.counter_since;
      if (old == seen_.end() && !lease.owner) since = SteadyClock::time_point{};  // never renewed
      fresh.emplace(lease.key, Seen{lease, since});
      if (finished(lease) || mine.count(lease.key) != 0) continue;
      const bool expired = now - since > timing_.failover ||
                           (lease.owner && table_.single_host() && owner_died_on_this_host(*lease.owner));
      if (!lease.owner || *lease.owner == worker_id_ || expired) {
        available.push_back(lease);
      } else {
        ++counts[*lease.owner];
        // A live owner renews every failover / 3: a counter unchanged since the last scan
        // may be a dead worker's.
        if (since < now) {
          const auto expiry = since + timing_.failover + milliseconds(1);
          if (!next_expiry || expiry < *next_expiry) next_expiry = expiry;
        }
      }
    }
    seen_ = std::move(fresh);
  }
  const int live = static_cast<int>(std::count_if(leases.begin(), leases.end(), [](const Lease& l) { return !finished(l); }));
  if (live == 0) return next_expiry;
  counts[worker_id_] = static_cast<int>(mine.size());
  const int workers = static_cast<int>(counts.size());
  int target = workers >= live ? 1 : live / workers + (live % workers == 0 ? 0 : 1);
  if (options_.max_leases > 0 && target > options_.max_leases) target = options_.max_leases;
  const int needed = target - counts[worker_id_];
  if (needed <= 0) return next_expiry;

  int taken = 0;
  if (!available.empty()) {
    // This worker's own leases first (a restart with the same id), then at random, so that
    // workers starting together do not all race for the same ones.
    std::shuffle(available.begin(), available.end(), random_);
    std::stable_partition(available.begin(), available.end(),
                          [&](const Lease& l) { return l.owner == worker_id_; });
    for (const auto& lease : available) {
      if (taken >= needed) break;
      if (try_take(lease, false)) ++taken;
    }
  } else {
    // Steal from the most loaded worker: while it is over the target, or at it when this
    // worker needs more than one.
    const auto most = std::max_element(counts.begin(), counts.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    int steal = 0;
    if (most->first != worker_id_ && most->second >= target) {
      steal = std::min(needed, most->second - target);
      if (needed > 1 && steal == 0) steal = 1;
      steal = std::min(steal, options_.max_leases_to_steal);
    }
    std::vector<Lease> candidates;
    for (const auto& lease : leases) {
      if (!finished(lease) && lease.owner == most->first) candidates.push_back(lease);
    }
    std::shuffle(candidates.begin(), candidates.end(), random_);
    for (int i = 0; i < steal && i < static_cast<int>(candidates.size()); ++i) {
      if (try_take(candidates[static_cast<std::size_t>(i)], true)) ++taken;
    }
  }
  if (taken > 0 && callbacks_.changed) callbacks_.changed();
  return next_expiry;
}

void LeaseCoordinator::checkpoint(const std::string& key, const ExtendedSequenceNumber& position,
                                  const std::vector<std::string>& child_shard_ids, std::uint64_t take) {
  const auto held = find(key);
  // A later take of the same key is not the caller's: its checkpoint may be ahead of what
  // the caller's processor has seen, and writing the caller's position would move it back.
  if (!held || (take != 0 && held->take != take)) {
    throw LeaseLostError("Can't update checkpoint of " + key + ": this worker no longer holds its lease");
  }
  const std::unique_lock lock(held->write);
  if (!held->valid(SteadyClock::now())) {
    drop(key, "not renewed in time");
    throw LeaseLostError("Can't update checkpoint of " + key + ": its lease expired before it could be renewed");
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    Lease next = held->lease;
    next.checkpoint = position;
    next.owner_switches_since_checkpoint = 0;
    next.pending_checkpoint.reset();
    next.pending_checkpoint_state.reset();
    if (!child_shard_ids.empty()) {
      next.child_shard_ids = child_shard_ids;
      std::sort(next.child_shard_ids.begin(), next.child_shard_ids.end());
    }
    ++next.counter;
    const auto sent = SteadyClock::now();
    note_request();
    if (table_.update(next, held->lease.counter, worker_id_)) {  // StoreError goes to the caller
      held->wrote(next, sent, timing_.validity);
      remember(next);
      return;
    }
    if (attempt > 0 || !reconcile(*held)) break;
  }
  drop(key, "another worker took it");
  throw LeaseLostError("Can't update checkpoint of " + key + ": another worker took its lease");
}

void LeaseCoordinator::release(const std::string& key) noexcept {
  const auto held = find(key);
  if (!held) return;
  try {
    const std::unique_lock lock(held->write);
    if (held->valid(SteadyClock::now())) {
      Lease next = held->lease;
      next.owner.reset();
      next.checkpoint_owner.reset();
      ++next.counter;
      note_request();
      if (table_.update(next, held->lease.counter, worker_id_)) {
        remember(next);
        log_info("leases: released ", key);
      } else {
        log_info("leases: ", key, " had been taken by another worker already");
      }
    }
  } catch (const std::exception& e) {
    log_warn("leases: releasing ", key, " failed (it will expire instead): ", e.what());
  }
  const std::lock_guard lock(mutex_);
  if (held_.erase(key) != 0) ++stats_.released;
  metrics_.leases_held.set(static_cast<double>(held_.size()));
  held->lost = true;
}

void LeaseCoordinator::release_all() noexcept {
  std::vector<std::string> keys;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [key, held] : held_) keys.push_back(key);
  }
  for (const auto& key : keys) release(key);
}

bool LeaseCoordinator::create(const Lease& lease) {
  note_request();
  const bool created = table_.create(lease);
  if (created) remember(lease);
  return created;
}

bool LeaseCoordinator::remove(const Lease& lease) {
  note_request();
  const bool removed = table_.remove(lease.key, lease.counter);
  if (removed) {
    const std::lock_guard lock(mutex_);
    seen_.erase(lease.key);
  }
  return removed;
}

}  // namespace kclpp::native::detail
