#include "kclpp/native/worker.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "lease_coordinator.hpp"
#include "shard_consumer.hpp"
#include "shard_watch.hpp"

namespace kclpp::native {

using detail::ShardConsumer;
using detail::ShardOutcome;
using detail::LeaseCoordinator;
using detail::SteadyClock;

namespace {

bool at_shard_end(const Lease& lease) { return lease.checkpoint.sentinel() == Sentinel::ShardEnd; }

// How often a shard waiting for its parents (held by other workers) reads their leases
// again, and the worker loop's tick while it has leases to watch.
constexpr std::chrono::milliseconds parent_poll_interval{1'000};
constexpr std::chrono::milliseconds lease_tick{500};
// The loop wakes at least this often even with nothing to do, so that health() can tell a
// live loop from a stuck one (WorkerHealth::alive).
constexpr std::chrono::milliseconds loop_heartbeat{1'000};
// WorkerHealth::alive: the loop began an iteration less than this long ago (worker.hpp says why).
constexpr std::chrono::minutes alive_bound{5};

// The watchdog's tick: a quarter of the shortest timeout, so that a call past its timeout
// is seen within 25 % of it, between 10 ms and 1 s. Zero when both checks are off.
std::chrono::milliseconds watchdog_tick(const WorkerOptions& options) {
  std::chrono::milliseconds shortest{0};
  for (const auto timeout : {options.processor_timeout, options.stall_timeout}) {
    if (timeout.count() > 0 && (shortest.count() == 0 || timeout < shortest)) shortest = timeout;
  }
  if (shortest.count() == 0) return shortest;
  return std::clamp<std::chrono::milliseconds>(shortest / 4, std::chrono::milliseconds{10},
                                               std::chrono::milliseconds{1'000});
}

}  // namespace

// Threads: one per shard being processed, plus the caller's thread running run() (shard
// sync, lineage, starting and reaping shard threads). Why not a pool: a processor call is
// synchronous and may block for long (a kcl::ChildProcess waits on its child's pipes, user
// code does I/O), and the KCL's model is one processor per shard with its calls in order;
// a thread per shard keeps a slow shard from delaying others with no scheduler of our own.
// A worker holds tens to a few hundred shards, and an idle shard thread costs a stack
// (virtual memory, a few pages resident) and one wake-up per idle interval.
struct Worker::Impl {
  struct Task {
    std::string shard_id;
    std::thread thread;
    detail::StopSignal stop;  // the worker's shutdown, or the shard's lease lost
    // Shared with the watchdog thread and health(), which may still hold it after reaping.
    std::shared_ptr<detail::ShardWatch> watch;
    // Guarded by Impl::mutex.
    bool done = false;
    std::optional<ShardOutcome> outcome;
    std::exception_ptr error;
  };

  Impl(StreamSource& s, CheckpointStore& c, ProcessorFactory f, WorkerOptions o)
      : source(s), store(c), factory(std::move(f)), options(with_registry(std::move(o))),
        metrics(*options.metrics, detail::worker_labels(options.application, source.stream_name())) {}

  // Shard consumers and the coordinator always have a registry to update.
  static WorkerOptions with_registry(WorkerOptions o) {
    if (!o.metrics) o.metrics = std::make_shared<MetricsRegistry>();
    return o;
  }

  StreamSource& source;
  CheckpointStore& store;
  ProcessorFactory factory;
  WorkerOptions options;
  detail::WorkerMetrics metrics;

  std::mutex mutex;
  std::condition_variable cv;
  bool shutdown = false;        // guarded by mutex
  bool sync_requested = false;  // guarded by mutex
  bool task_done = false;       // guarded by mutex
  bool ran = false;             // guarded by mutex
  bool stopping = false;        // guarded by mutex: stop_all() has begun
  bool leases_changed = false;  // guarded by mutex

  // Health (docs/operations.md §2). `running` and `started` are guarded by mutex; the loop's
  // last tick is atomic so that health() reads it without waiting for the loop.
  bool running = false;  // run() between its claim and its return
  bool started = false;  // the shards were listed once
  std::atomic<SteadyClock::rep> loop_tick{0};
  LeaseCoordinator* coordinator_view = nullptr;  // guarded by mutex: coordinator, for health()

  // The watchdog thread (one per worker, not per shard): checks every shard's ShardWatch.
  std::thread watchdog;
  bool watchdog_stop = false;  // guarded by mutex
  std::condition_variable watchdog_cv;

  // With leases (the store has them): the coordinator, and when each blocked child may
  // read its parents' leases again.
  std::unique_ptr<LeaseTable> lease_table;
  std::unique_ptr<LeaseCoordinator> coordinator;
  std::map<std::string, SteadyClock::time_point> parent_polls;

  // Owned by the thread in run(); changed under mutex (the coordinator's lost callback
  // reads it).
  std::map<std::string, std::unique_ptr<Task>> tasks;
  std::set<std::string> finished;  // SHARD_END in the store
  std::set<std::string> skipped;   // closed shards never read (LATEST start), or gone
  std::map<std::string, ExtendedSequenceNumber> initial_checkpoints;
  std::optional<std::set<std::string>> subset;
  std::map<std::string, aws::Shard> listing;

  void validate() const;
  void run();
  bool sync(StreamConnection& connection);
  void start_eligible(const std::vector<aws::Shard>& shards);
  void start(const aws::Shard& shard, aws::StartPosition start_position,
             std::unique_ptr<detail::ShardCheckpoints> checkpoints);
  // Lease mode (docs/checkpoints.md §5).
  void open_leases(std::unique_ptr<LeaseTable> table);
  void create_leases(const std::vector<aws::Shard>& shards);
  void clean_up_leases(const std::map<std::string, Lease>& leases);
  void start_held();
  [[nodiscard]] bool parents_done(const Lease& lease, const std::map<std::string, Lease>& view);
  [[nodiscard]] aws::StartPosition start_for(const Lease& lease) const;
  void after_shard(const std::string& id, detail::ShardOutcome outcome);
  void lease_lost(const std::string& key) noexcept;
  // What reap() found among the finished shard threads.
  struct Reaped {
    std::exception_ptr fatal;  // the first fatal error, if any
    bool shard_ended = false;  // a shard reached SHARD_END or is gone: its children may start
  };
  // Joins finished shard threads.
  Reaped reap();
  void stop_all() noexcept;
  void tick() noexcept { loop_tick.store(SteadyClock::now().time_since_epoch().count()); }
  void run_watchdog() noexcept;
  void stop_watchdog() noexcept;
  [[nodiscard]] WorkerHealth health();

  [[nodiscard]] bool in_subset(const std::string& id) const { return !subset || subset->count(id) != 0; }
  [[nodiscard]] bool done(const std::string& id) const {
    return finished.count(id) != 0 || skipped.count(id) != 0;
  }
};

void Worker::Impl::validate() const {
  if (options.application.empty()) throw ConfigError("WorkerOptions::application is required");
  if (options.max_records < 1 || options.max_records > 10'000) {
    throw ConfigError("WorkerOptions::max_records must be 1..10000, not " + std::to_string(options.max_records));
  }
  if (options.idle_time_between_reads.count() < 0 || options.shard_sync_interval.count() <= 0 ||
      options.shutdown_grace.count() < 0) {
    throw ConfigError("WorkerOptions: idle_time_between_reads and shutdown_grace must be >= 0, "
                      "shard_sync_interval > 0");
  }
  if (!factory) throw ConfigError("Worker: empty ProcessorFactory");
}

bool Worker::Impl::sync(StreamConnection& connection) {
  std::vector<aws::Shard> shards;
  try {
    shards = kclpp::retry(options.read_retry, [&] { return connection.list_shards(); });
  } catch (const AuthError&) {
    throw;
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    log_warn("worker: listing the shards of ", source.stream_name(), " failed: ", e.what());
    return false;
  }
  {
    // Before any shard thread starts, so that health() never shows a shard of a worker
    // that has not started.
    const std::lock_guard lock(mutex);
    started = true;
  }
  std::sort(shards.begin(), shards.end(),
            [](const aws::Shard& a, const aws::Shard& b) { return a.shard_id < b.shard_id; });
  if (!subset && !options.shard_indexes.empty()) {
    // Indexes into every shard listed at the first sync, open and closed, sorted by id.
    std::set<std::string> chosen;
    for (const std::size_t index : options.shard_indexes) {
      if (index >= shards.size()) {
        throw ConfigError("shard index " + std::to_string(index) + " is out of range: stream " +
                          source.stream_name() + " has " + std::to_string(shards.size()) + " shards");
      }
      chosen.insert(shards[index].shard_id);
    }
    subset = std::move(chosen);
  }
  if (subset) {
    // Follow resharding: a shard whose (first) parent is ours is ours. Sorted by id, parents
    // come before their children, so one pass follows whole lineages.
    for (const auto& shard : shards) {
      if (shard.parent_shard_id && subset->count(*shard.parent_shard_id) != 0) subset->insert(shard.shard_id);
    }
  }
  listing.clear();
  for (const auto& shard : shards) listing.emplace(shard.shard_id, shard);
  if (coordinator) {
    try {
      create_leases(shards);
    } catch (const StoreError& e) {
      if (e.retry() == Retry::No) throw;
      log_warn("worker: creating the leases of new shards failed: ", e.what());
      return false;
    }
    return true;
  }
  start_eligible(shards);
  return true;
}

void Worker::Impl::start_eligible(const std::vector<aws::Shard>& shards) {
  for (const auto& shard : shards) {
    const std::string& id = shard.shard_id;
    if (!in_subset(id) || done(id) || tasks.count(id) != 0) continue;
    // Lineage: every parent at SHARD_END, or gone from the listing (expired past the
    // retention), or outside this worker's subset (not ours to wait for).
    bool parents_done = true;
    bool parent_read = false;
    for (const auto& parent : {shard.parent_shard_id, shard.adjacent_parent_shard_id}) {
      if (!parent) continue;
      if (finished.count(*parent) != 0) parent_read = true;
      if (!done(*parent) && listing.count(*parent) != 0 && in_subset(*parent)) parents_done = false;
    }
    if (!parents_done) continue;
    // A child of a shard read to its end starts at its beginning, whatever the initial
    // position, as the KCL does: records put after the split belong to the children.
    aws::StartPosition position = parent_read ? aws::StartPosition::trim_horizon() : options.initial_position;
    if (position.type == aws::IteratorType::Latest && shard.closed() && initial_checkpoints.count(id) == 0) {
      // LATEST on a closed shard reads nothing: skip it (its children start at LATEST too).
      skipped.insert(id);
      log_info("worker: skipping closed shard ", id, " (initial position LATEST, no checkpoint)");
      continue;
    }
    start(shard, std::move(position),
          std::make_unique<detail::StoreCheckpoints>(
              store, CheckpointKey{options.application, source.stream_name(), id}, options.read_retry));
  }
}

void Worker::Impl::start(const aws::Shard& shard, aws::StartPosition start_position,
                         std::unique_ptr<detail::ShardCheckpoints> checkpoints) {
  auto task = std::make_unique<Task>();
  task->shard_id = shard.shard_id;
  task->watch = std::make_shared<detail::ShardWatch>(shard.shard_id, options, *options.metrics);
  Task* raw = task.get();
  log_info("worker: starting shard ", shard.shard_id);
  {
    const std::lock_guard lock(mutex);
    if (stopping) return;
    tasks.emplace(raw->shard_id, std::move(task));
  }
  raw->thread = std::thread([this, raw, shard, start_position = std::move(start_position),
                             checkpoints = std::move(checkpoints)]() mutable {
    // Every line this thread logs carries its shard, the processor's (and in `kclpp
    // daemon` the child's) included (docs/operations.md §3).
    const LogContext log_shard("shard", raw->shard_id);
    std::optional<ShardOutcome> outcome;
    std::exception_ptr error;
    try {
      ShardConsumer consumer({source, factory, options, raw->stop, *raw->watch}, std::move(shard),
                             std::move(start_position),
                             std::move(checkpoints));
      outcome = consumer.run();
    } catch (...) {
      error = std::current_exception();
    }
    {
      const std::lock_guard lock(mutex);
      raw->outcome = outcome;
      raw->error = error;
      raw->done = true;
      task_done = true;
    }
    cv.notify_all();
  });
}

Worker::Impl::Reaped Worker::Impl::reap() {
  Reaped reaped;
  std::vector<std::unique_ptr<Task>> finished_tasks;
  {
    const std::lock_guard lock(mutex);
    task_done = false;
    for (auto it = tasks.begin(); it != tasks.end();) {
      if (it->second->done) {
        finished_tasks.push_back(std::move(it->second));
        it = tasks.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& task : finished_tasks) {
    task->thread.join();
    options.metrics->remove("shard", task->shard_id);  // held no more (or at its end)
    if (task->error) {
      if (!reaped.fatal) reaped.fatal = task->error;
    } else if (coordinator) {
      after_shard(task->shard_id, *task->outcome);
      reaped.shard_ended = reaped.shard_ended || task->outcome == ShardOutcome::Ended;
    } else if (task->outcome == ShardOutcome::Ended) {
      finished.insert(task->shard_id);
      reaped.shard_ended = true;
    } else if (task->outcome == ShardOutcome::Gone) {
      skipped.insert(task->shard_id);
      reaped.shard_ended = true;  // re-list: its children may start now
    }
  }
  return reaped;
}

void Worker::Impl::stop_all() noexcept {
  const auto deadline = SteadyClock::now() + options.shutdown_grace;
  // A leaving worker takes no more leases (others may release theirs meanwhile: they would
  // sit here unprocessed until this shutdown is over); renewals go on for the processors'
  // last checkpoints.
  if (coordinator) coordinator->stop_taking();
  {
    std::unique_lock lock(mutex);
    stopping = true;
    for (auto& [id, task] : tasks) task->stop.request();
    const bool all_done = cv.wait_until(lock, deadline, [&] {
      return std::all_of(tasks.begin(), tasks.end(), [](const auto& t) { return t.second->done; });
    });
    if (!all_done) {
      std::string stuck;
      for (const auto& [id, task] : tasks) {
        if (!task->done) stuck += (stuck.empty() ? "" : ", ") + id;
      }
      // A thread cannot be abandoned safely (it uses this worker, the store and the
      // processor), so run() keeps waiting: a processor that never returns blocks it.
      log_error("worker: shutdown_grace (", options.shutdown_grace.count(),
                " ms) passed and these shards have not finished: ", stuck,
                "; waiting for their processors to return");
    }
  }
  for (auto& [id, task] : tasks) {
    if (task->thread.joinable()) task->thread.join();
    options.metrics->remove("shard", id);
  }
  {
    const std::lock_guard lock(mutex);
    tasks.clear();
  }
  if (!coordinator) metrics.leases_held.set(0);
  if (coordinator) {
    // Every processor has had its last checkpoint: stop renewing, then hand the leases over
    // at once rather than after a failover time. In this order no renewal or take can run
    // after the release (a lease taken then would stay owned by a worker that has left).
    coordinator->stop();
    coordinator->release_all();
  }
}

void Worker::Impl::run() {
  validate();
  {
    const std::lock_guard lock(mutex);
    if (ran) throw ConfigError("Worker::run() may be called once per Worker");
    ran = true;
  }
  // Stops and joins every shard thread on any exit (and releases the leases); declared
  // after the claim so that the claim is released only once no thread works on the
  // application any more.
  struct ThreadsGuard {
    Impl& impl;
    ~ThreadsGuard() { impl.stop_all(); }
  };
  std::unique_ptr<StoreClaim> claim;
  // A table that cannot be reached yet is retried like a read (DynamoDB creating it, a
  // database starting).
  if (auto table = kclpp::retry(options.read_retry,
                                [&] { return store.leases(options.application, source.stream_name()); })) {
    open_leases(std::move(table));
  } else {
    claim = store.claim(options.application, source.stream_name());
    initial_checkpoints = kclpp::retry(
        options.read_retry, [&] { return store.load_all(options.application, source.stream_name()); });
    for (const auto& [id, position] : initial_checkpoints) {
      if (position.sentinel() == Sentinel::ShardEnd) finished.insert(id);
    }
    log_info("worker: application ", options.application, " on stream ", source.stream_name(), ", ",
             finished.size(), " shard(s) already at SHARD_END");
  }
  const auto connection = source.connect();

  // Declared before the threads' guard: the watchdog stops after the last shard thread.
  struct WatchdogGuard {
    Impl& impl;
    ~WatchdogGuard() { impl.stop_watchdog(); }
  };
  const WatchdogGuard watchdog_guard{*this};
  {
    const std::lock_guard lock(mutex);
    running = true;
    coordinator_view = coordinator.get();
  }
  tick();
  if (watchdog_tick(options).count() > 0) watchdog = std::thread([this] { run_watchdog(); });
  const ThreadsGuard guard{*this};
  if (coordinator) coordinator->start();
  bool need_sync = true;
  auto next_sync = SteadyClock::now();
  std::exception_ptr fatal;
  for (;;) {
    tick();
    {
      const std::lock_guard lock(mutex);
      if (shutdown) break;
      if (sync_requested) {
        sync_requested = false;
        need_sync = true;
      }
    }
    if (need_sync || SteadyClock::now() >= next_sync) {
      const bool ok = sync(*connection);
      need_sync = false;
      // A failed listing is tried again soon rather than after a whole interval.
      const auto interval = ok ? options.shard_sync_interval
                               : std::min<std::chrono::milliseconds>(options.shard_sync_interval,
                                                                     std::max(options.read_retry.max_backoff,
                                                                              std::chrono::milliseconds{1'000}));
      next_sync = SteadyClock::now() + interval;
    }
    const Reaped reaped = reap();
    fatal = reaped.fatal;
    if (fatal) break;
    // A shard at its end: re-list now, so that its children (which may postdate the last
    // listing) start without waiting for the next interval.
    if (reaped.shard_ended) {
      need_sync = true;
      continue;
    }
    if (coordinator) {
      start_held();
    } else {
      // Without leases, the store's claim holds every shard this worker reads.
      const std::lock_guard lock(mutex);
      metrics.leases_held.set(static_cast<double>(tasks.size()));
    }
    // With leases, also wake on a tick: leases taken by the coordinator, parents finished
    // by other workers.
    const auto wake = std::min(next_sync, SteadyClock::now() + (coordinator ? lease_tick : loop_heartbeat));
    std::unique_lock lock(mutex);
    cv.wait_until(lock, wake, [&] { return shutdown || sync_requested || task_done || leases_changed; });
    leases_changed = false;
  }
  if (fatal) {
    stop_all();
    std::rethrow_exception(fatal);
  }
  log_info("worker: shutting down ", tasks.size(), " shard(s)");
}

void Worker::Impl::run_watchdog() noexcept {
  const auto interval = watchdog_tick(options);
  std::unique_lock lock(mutex);
  while (!watchdog_cv.wait_for(lock, interval, [&] { return watchdog_stop; })) {
    std::vector<std::shared_ptr<detail::ShardWatch>> watches;
    watches.reserve(tasks.size());
    for (const auto& [id, task] : tasks) watches.push_back(task->watch);
    // Checked without the worker's mutex: a check may call a processor's interrupt(), which
    // must not wait for (or block) the loop.
    lock.unlock();
    const auto now = SteadyClock::now();
    for (const auto& watch : watches) watch->check(now);
    lock.lock();
  }
}

void Worker::Impl::stop_watchdog() noexcept {
  {
    const std::lock_guard lock(mutex);
    running = false;
    watchdog_stop = true;
  }
  watchdog_cv.notify_all();
  if (watchdog.joinable()) watchdog.join();
}

WorkerHealth Worker::Impl::health() {
  WorkerHealth out;
  std::vector<std::shared_ptr<detail::ShardWatch>> watches;
  LeaseCoordinator* leases = nullptr;
  bool is_running = false;
  {
    const std::lock_guard lock(mutex);
    is_running = running;
    out.started = running && started;
    leases = running ? coordinator_view : nullptr;
    for (const auto& [id, task] : tasks) {
      if (!task->done) watches.push_back(task->watch);
    }
  }
  const auto now = SteadyClock::now();
  const auto last_tick = SteadyClock::time_point(SteadyClock::duration(loop_tick.load()));
  out.alive = is_running && now - last_tick < alive_bound;
  if (!out.alive) out.problems.emplace_back(is_running ? "the worker's loop has not run for " +
                                                             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - last_tick).count()) + " s"
                                                       : "the worker is not running");
  if (is_running && !out.started) out.problems.emplace_back("the worker has not listed the shards yet");
  // Outside the worker's mutex: the coordinator takes its own, and calls back into ours.
  out.leases_held = leases != nullptr ? static_cast<int>(leases->held_keys().size()) : static_cast<int>(watches.size());
  bool healthy = true;
  for (const auto& watch : watches) {
    detail::ShardCondition condition = watch->condition(now);
    if (condition.call_past_timeout) ++out.calls_past_timeout;
    if (condition.problem) {
      healthy = false;
      out.problems.push_back(std::move(*condition.problem));
    }
  }
  out.ready = out.alive && out.started && healthy;
  return out;
}

void Worker::Impl::open_leases(std::unique_ptr<LeaseTable> table) {
  lease_table = std::move(table);
  LeaseCoordinator::Callbacks callbacks;
  callbacks.changed = [this] {
    {
      const std::lock_guard lock(mutex);
      leases_changed = true;
    }
    cv.notify_all();
  };
  callbacks.lost = [this](const std::string& key) { lease_lost(key); };
  coordinator = std::make_unique<LeaseCoordinator>(*lease_table, options.leases, std::move(callbacks), metrics);
  log_info("worker: application ", options.application, " on stream ", source.stream_name(),
           " shares its shards through the leases in ", lease_table->describe(), " as worker ",
           coordinator->worker_id());
}

void Worker::Impl::lease_lost(const std::string& key) noexcept {
  {
    const std::lock_guard lock(mutex);
    const auto it = tasks.find(key);
    if (it != tasks.end()) it->second->stop.request();
    leases_changed = true;
  }
  cv.notify_all();
}

// Shard sync with leases: a lease for every shard this application reads that has none
// yet. A child of a shard with a lease starts at TRIM_HORIZON (its parent is read to the
// end first); otherwise at the initial position, and a closed shard is skipped at LATEST
// (nothing comes after LATEST) or when a child has a lease already (it was read and its
// lease cleaned up).
void Worker::Impl::create_leases(const std::vector<aws::Shard>& shards) {
  std::map<std::string, Lease> leases;
  for (auto& lease : coordinator->scan()) leases.emplace(lease.key, std::move(lease));
  std::map<std::string, std::vector<std::string>> children;
  for (const auto& shard : shards) {
    for (const auto& parent : {shard.parent_shard_id, shard.adjacent_parent_shard_id}) {
      if (parent) children[*parent].push_back(shard.shard_id);
    }
  }
  bool created = false;
  for (const auto& shard : shards) {  // sorted by id: parents before children
    const std::string& id = shard.shard_id;
    if (!in_subset(id) || leases.count(id) != 0) continue;
    const auto& kids = children[id];
    if (std::any_of(kids.begin(), kids.end(), [&](const std::string& k) { return leases.count(k) != 0; })) continue;
    Lease lease;
    lease.key = id;
    bool parent_leased = false;
    for (const auto& parent : {shard.parent_shard_id, shard.adjacent_parent_shard_id}) {
      if (!parent) continue;
      lease.parent_shard_ids.push_back(*parent);
      if (leases.count(*parent) != 0) parent_leased = true;
    }
    std::sort(lease.parent_shard_ids.begin(), lease.parent_shard_ids.end());
    if (!parent_leased && options.initial_position.type == aws::IteratorType::Latest && shard.closed()) continue;
    lease.checkpoint = parent_leased ? ExtendedSequenceNumber(Sentinel::TrimHorizon)
                                     : detail::sentinel_for(options.initial_position);
    lease.starting_hash_key = shard.starting_hash_key;
    lease.ending_hash_key = shard.ending_hash_key;
    if (coordinator->create(lease)) {
      log_info("worker: created the lease of ", id, " at ", lease.checkpoint.str());
      created = true;
    }
    leases.emplace(id, std::move(lease));
  }
  if (created) coordinator->request_take();  // rather than at the next take interval
  if (options.leases.cleanup_leases_upon_shard_completion) clean_up_leases(leases);
}

// cleanupLeasesUponShardCompletion: a finished lease goes once the shard has left the
// listing, or once every child has a lease that has moved past its start.
void Worker::Impl::clean_up_leases(const std::map<std::string, Lease>& leases) {
  std::map<std::string, std::vector<std::string>> children;
  for (const auto& [id, shard] : listing) {
    for (const auto& parent : {shard.parent_shard_id, shard.adjacent_parent_shard_id}) {
      if (parent) children[*parent].push_back(id);
    }
  }
  for (const auto& [id, lease] : leases) {
    if (!at_shard_end(lease) || lease.owner) continue;
    bool done = listing.count(id) == 0;
    if (!done && !children[id].empty()) {
      done = std::all_of(children[id].begin(), children[id].end(), [&](const std::string& child) {
        const auto it = leases.find(child);
        return it != leases.end() && (!it->second.checkpoint.is_sentinel() || at_shard_end(it->second));
      });
    }
    if (done && coordinator->remove(lease)) log_info("worker: deleted the lease of finished shard ", id);
  }
}

bool Worker::Impl::parents_done(const Lease& lease, const std::map<std::string, Lease>& view) {
  const auto now = SteadyClock::now();
  for (const auto& parent : lease.parent_shard_ids) {
    const auto it = view.find(parent);
    // No lease: never read by this application, or finished and cleaned up.
    if (it == view.end() || at_shard_end(it->second)) continue;
    auto& next_poll = parent_polls[parent];
    if (now < next_poll) return false;
    next_poll = now + parent_poll_interval;
    const auto fresh = coordinator->refresh(parent);
    if (fresh && !at_shard_end(*fresh)) return false;
  }
  return true;
}

aws::StartPosition Worker::Impl::start_for(const Lease& lease) const {
  switch (lease.checkpoint.sentinel()) {
    case Sentinel::Latest:
      return aws::StartPosition::latest();
    case Sentinel::AtTimestamp:
      if (options.initial_position.type == aws::IteratorType::AtTimestamp) return options.initial_position;
      log_warn("worker: lease ", lease.key, " is at AT_TIMESTAMP but no timestamp is configured; "
               "starting at TRIM_HORIZON");
      return aws::StartPosition::trim_horizon();
    default:
      // TRIM_HORIZON; a sequence number is the consumer's to resume after.
      return aws::StartPosition::trim_horizon();
  }
}

// Starts a consumer for every held lease that has none and whose parents are done.
void Worker::Impl::start_held() {
  const auto view = coordinator->view();
  for (const auto& key : coordinator->held_keys()) {
    {
      const std::lock_guard lock(mutex);
      if (tasks.count(key) != 0) continue;
    }
    const auto lease = coordinator->held_lease(key);
    if (!lease || !coordinator->startable(key)) continue;
    if (at_shard_end(*lease)) {
      coordinator->release(key);  // nothing left to read: let it rest unowned
      continue;
    }
    if (!parents_done(*lease, view)) continue;
    aws::Shard shard;
    if (const auto it = listing.find(key); it != listing.end()) {
      shard = it->second;
    } else {
      shard.shard_id = key;  // not listed yet (or gone): the consumer finds out
    }
    std::vector<std::string> kids;
    for (const auto& [id, listed] : listing) {
      if (listed.parent_shard_id == key || listed.adjacent_parent_shard_id == key) kids.push_back(id);
    }
    start(shard, start_for(*lease), std::make_unique<detail::LeaseCheckpoints>(*coordinator, key, std::move(kids)));
  }
}

// What a finished consumer leaves to the worker with leases: a shard read to its end or
// gone is released at SHARD_END (its children may start, on any worker); a lost lease has
// nothing left to do here.
void Worker::Impl::after_shard(const std::string& id, ShardOutcome outcome) {
  if (outcome == ShardOutcome::Gone) {
    try {
      coordinator->checkpoint(id, ExtendedSequenceNumber(Sentinel::ShardEnd));
    } catch (const Error& e) {
      log_warn("worker: cannot record SHARD_END for vanished shard ", id, ": ", e.what());
    }
  }
  if (outcome == ShardOutcome::Ended || outcome == ShardOutcome::Gone) coordinator->release(id);
}

Worker::Worker(StreamSource& source, CheckpointStore& store, ProcessorFactory factory, WorkerOptions options)
    : impl_(std::make_unique<Impl>(source, store, std::move(factory), std::move(options))) {}

Worker::~Worker() {
  // run() joins its threads before returning; nothing else is left running here.
}

void Worker::run() { impl_->run(); }

WorkerHealth Worker::health() const { return impl_->health(); }

void Worker::request_shutdown() noexcept {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->shutdown = true;
  }
  impl_->cv.notify_all();
}

void Worker::request_shard_sync() noexcept {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->sync_requested = true;
  }
  impl_->cv.notify_all();
}

}  // namespace kclpp::native
