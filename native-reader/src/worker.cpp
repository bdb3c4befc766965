#include "kclpp/native/worker.hpp"

#include <algorithm>
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
#include "shard_consumer.hpp"

namespace kclpp::native {

using detail::ShardConsumer;
using detail::ShardOutcome;
using SteadyClock = std::chrono::steady_clock;

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
    // Guarded by Impl::mutex.
    bool done = false;
    std::optional<ShardOutcome> outcome;
    std::exception_ptr error;
  };

  Impl(StreamSource& s, CheckpointStore& c, ProcessorFactory f, WorkerOptions o)
      : source(s), store(c), factory(std::move(f)), options(std::move(o)) {}

  StreamSource& source;
  CheckpointStore& store;
  ProcessorFactory factory;
  WorkerOptions options;
  detail::StopSignal stop;

  std::mutex mutex;
  std::condition_variable cv;
  bool shutdown = false;        // guarded by mutex
  bool sync_requested = false;  // guarded by mutex
  bool task_done = false;       // guarded by mutex
  bool ran = false;             // guarded by mutex

  // Owned by the thread in run().
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
  void start(const aws::Shard& shard, aws::StartPosition start_position);
  // What reap() found among the finished shard threads.
  struct Reaped {
    std::exception_ptr fatal;  // the first fatal error, if any
    bool shard_ended = false;  // a shard reached SHARD_END or is gone: its children may start
  };
  // Joins finished shard threads.
  Reaped reap();
  void stop_all() noexcept;

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
    start(shard, std::move(position));
  }
}

void Worker::Impl::start(const aws::Shard& shard, aws::StartPosition start_position) {
  auto task = std::make_unique<Task>();
  task->shard_id = shard.shard_id;
  Task* raw = task.get();
  log_info("worker: starting shard ", shard.shard_id);
  raw->thread = std::thread([this, raw, shard, start_position = std::move(start_position)]() mutable {
    std::optional<ShardOutcome> outcome;
    std::exception_ptr error;
    try {
      ShardConsumer consumer({source, store, factory, options, stop}, std::move(shard),
                             std::move(start_position));
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
  tasks.emplace(raw->shard_id, std::move(task));
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
    if (task->error) {
      if (!reaped.fatal) reaped.fatal = task->error;
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
  stop.request();
  const auto deadline = SteadyClock::now() + options.shutdown_grace;
  {
    std::unique_lock lock(mutex);
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
  }
  tasks.clear();
}

void Worker::Impl::run() {
  validate();
  {
    const std::lock_guard lock(mutex);
    if (ran) throw ConfigError("Worker::run() may be called once per Worker");
    ran = true;
  }
  // Stops and joins every shard thread on any exit; declared after the claim so that the
  // claim is released only once no thread works on the application any more.
  struct ThreadsGuard {
    Impl& impl;
    ~ThreadsGuard() { impl.stop_all(); }
  };
  const auto claim = store.claim(options.application, source.stream_name());
  const auto connection = source.connect();
  initial_checkpoints = kclpp::retry(options.read_retry,
                                     [&] { return store.load_all(options.application, source.stream_name()); });
  for (const auto& [id, position] : initial_checkpoints) {
    if (position.sentinel() == Sentinel::ShardEnd) finished.insert(id);
  }
  log_info("worker: application ", options.application, " on stream ", source.stream_name(), ", ",
           finished.size(), " shard(s) already at SHARD_END");

  const ThreadsGuard guard{*this};
  bool need_sync = true;
  auto next_sync = SteadyClock::now();
  std::exception_ptr fatal;
  for (;;) {
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
    std::unique_lock lock(mutex);
    cv.wait_until(lock, next_sync, [&] { return shutdown || sync_requested || task_done; });
  }
  if (fatal) {
    stop_all();
    std::rethrow_exception(fatal);
  }
  log_info("worker: shutting down ", tasks.size(), " shard(s)");
}

Worker::Worker(StreamSource& source, CheckpointStore& store, ProcessorFactory factory, WorkerOptions options)
    : impl_(std::make_unique<Impl>(source, store, std::move(factory), std::move(options))) {}

Worker::~Worker() {
  // run() joins its threads before returning; nothing else is left running here.
}

void Worker::run() { impl_->run(); }

void Worker::request_shutdown() noexcept {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->shutdown = true;
  }
  impl_->stop.request();
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
