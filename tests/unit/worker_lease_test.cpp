// Several native Workers in one process sharing one memory store's leases and one
// LocalStream (docs/checkpoints.md §5), and the lease coordinator alone
// (native-reader/src/lease_coordinator.cpp): balance, graceful hand-off, stealing, a
// paused worker, an unreachable table, lineage across workers, max_leases and restarts.
//
// Each worker sees the shared memory store through a wrapper whose lease table records
// every successful write (in the table's own order) and can be made unreachable, so that
// the tests can replay the table and check that checkpoints never go backwards and come
// only from the lease's owner at the time.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/lease_table.hpp"
#include "kclpp/native/local_stream.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/error.hpp"
#include "lease_coordinator.hpp"
#include "worker_test_support.hpp"

namespace {

using namespace kclpp::native::testing;  // NOLINT(google-build-using-namespace)
using kclpp::ExtendedSequenceNumber;
using kclpp::Record;
using kclpp::Sentinel;
using kclpp::native::CheckpointStore;
using kclpp::native::Lease;
using kclpp::native::LeaseOptions;
using kclpp::native::LeaseTable;
using kclpp::native::LocalStream;
using kclpp::native::Worker;
using kclpp::native::WorkerOptions;
using kclpp::native::detail::LeaseCoordinator;
using Clock = std::chrono::steady_clock;
using Counts = std::map<std::string, int>;

std::string shard_name(int index) {
  char name[32];
  std::snprintf(name, sizeof name, "shardId-%012d", index);
  return name;
}

std::string describe(const Counts& counts) {
  std::string out = "{";
  for (const auto& [owner, n] : counts) out += " " + owner + ":" + std::to_string(n);
  return out + " }";
}

long long ms(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// Where a checkpoint lies in a shard: every start sentinel, then the numbers, then SHARD_END.
int order(const ExtendedSequenceNumber& a, const ExtendedSequenceNumber& b) {
  const auto rank = [](const ExtendedSequenceNumber& p) {
    if (p.sentinel() == Sentinel::ShardEnd) return 2;
    return p.is_sentinel() ? 0 : 1;
  };
  if (rank(a) != rank(b)) return rank(a) < rank(b) ? -1 : 1;
  if (rank(a) != 1) return 0;
  const auto c = kclpp::compare_positions(a, b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

// ==========================================================================================
// What the tests observe
// ==========================================================================================

// One successful write to the lease table.
struct TableWrite {
  enum class Kind { Create, Update, Remove };
  std::uint64_t seq = 0;  // in Observations' order, which is the table's order for writes
  Clock::time_point at;
  std::string writer;  // the worker id whose table wrote it
  Kind kind = Kind::Update;
  std::int64_t expected_counter = 0;
  std::optional<std::string> expected_owner;
  Lease lease;  // as written (Remove: the key only)
};

struct ProcessorEvent {
  std::uint64_t seq = 0;
  std::string worker;
  std::string shard;
  int instance = 0;
  std::string what;  // initialize, shard_ended, shutdown_requested, lease_lost, checkpoint_*
  std::string detail;
};

// One processor object's life: which worker ran it on which shard, from where, what it got.
struct Instance {
  int id = 0;
  std::string worker;
  std::string shard;
  ExtendedSequenceNumber initial;
  std::vector<Record> records;
};

// One process_records call.
struct ProcessCall {
  std::string worker;
  std::string shard;
  int instance = 0;
  Clock::time_point start;
  Clock::time_point end;
  std::vector<std::string> data;  // the records' data
};

// Called inside process_records, before the processor checkpoints (to block or slow it).
using BatchHook = std::function<void(const std::string& worker, const std::string& shard)>;

// Everything a fleet's tables and processors report. Thread-safe.
class Observations {
 public:
  std::uint64_t next_seq() { return ++seq_; }
  // Held by the recording tables around each write, so that `writes` is in table order.
  std::mutex& table_mutex() { return table_mutex_; }

  void wrote(TableWrite write) {
    write.seq = next_seq();
    write.at = Clock::now();
    const std::lock_guard lock(mutex_);
    writes_.push_back(std::move(write));
  }
  int new_instance(const std::string& worker, const std::string& shard, const ExtendedSequenceNumber& initial) {
    const std::lock_guard lock(mutex_);
    const int id = static_cast<int>(instances_.size());
    instances_.push_back({id, worker, shard, initial, {}});
    return id;
  }
  void event(int instance, const std::string& what, const std::string& detail = {}) {
    const auto seq = next_seq();
    const std::lock_guard lock(mutex_);
    const auto& i = instances_.at(static_cast<std::size_t>(instance));
    events_.push_back({seq, i.worker, i.shard, instance, what, detail});
  }
  void delivered(int instance, const std::vector<Record>& records) {
    const std::lock_guard lock(mutex_);
    auto& i = instances_.at(static_cast<std::size_t>(instance));
    i.records.insert(i.records.end(), records.begin(), records.end());
  }
  void call(ProcessCall call) {
    const std::lock_guard lock(mutex_);
    calls_.push_back(std::move(call));
  }
  void set_hook(BatchHook hook) {
    const std::lock_guard lock(mutex_);
    hook_ = std::move(hook);
  }
  // Called inside shutdown_requested, before the processor checkpoints.
  void set_shutdown_hook(BatchHook hook) {
    const std::lock_guard lock(mutex_);
    shutdown_hook_ = std::move(hook);
  }
  void run_shutdown_hook(const std::string& worker, const std::string& shard) {
    BatchHook hook;
    {
      const std::lock_guard lock(mutex_);
      hook = shutdown_hook_;
    }
    if (hook) hook(worker, shard);
  }
  void run_hook(const std::string& worker, const std::string& shard) {
    BatchHook hook;
    {
      const std::lock_guard lock(mutex_);
      hook = hook_;
    }
    if (hook) hook(worker, shard);
  }

  std::vector<TableWrite> writes() const {
    const std::lock_guard lock(mutex_);
    return writes_;
  }
  std::vector<ProcessorEvent> events() const {
    const std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<Instance> instances() const {
    const std::lock_guard lock(mutex_);
    return instances_;
  }
  std::vector<ProcessCall> calls() const {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  std::set<std::string> delivered_data() const {
    const std::lock_guard lock(mutex_);
    std::set<std::string> out;
    for (const auto& i : instances_) {
      for (const auto& r : i.records) out.insert(r.data);
    }
    return out;
  }
  bool has_event(const std::string& worker, const std::string& shard, const std::string& what) const {
    const std::lock_guard lock(mutex_);
    return std::any_of(events_.begin(), events_.end(), [&](const ProcessorEvent& e) {
      return e.worker == worker && e.shard == shard && e.what == what;
    });
  }

 private:
  std::atomic<std::uint64_t> seq_{0};
  std::mutex table_mutex_;
  mutable std::mutex mutex_;
  std::vector<TableWrite> writes_;
  std::vector<ProcessorEvent> events_;
  std::vector<Instance> instances_;
  std::vector<ProcessCall> calls_;
  BatchHook hook_;
  BatchHook shutdown_hook_;
};

// ==========================================================================================
// The store and table wrappers
// ==========================================================================================

// A LeaseTable in front of the shared memory table: records every successful write and
// can be switched to fail every call, as a table that cannot be reached.
class RecordingTable final : public LeaseTable {
 public:
  RecordingTable(std::unique_ptr<LeaseTable> inner, std::string writer, Observations& observations,
                 const std::atomic<bool>& unreachable)
      : inner_(std::move(inner)), writer_(std::move(writer)), obs_(observations), unreachable_(unreachable) {}

  std::vector<Lease> list() override {
    reach();
    return inner_->list();
  }
  std::optional<Lease> get(const std::string& key) override {
    reach();
    return inner_->get(key);
  }
  bool create(const Lease& lease) override {
    reach();
    const std::lock_guard lock(obs_.table_mutex());
    if (!inner_->create(lease)) return false;
    obs_.wrote({0, {}, writer_, TableWrite::Kind::Create, 0, std::nullopt, lease});
    return true;
  }
  bool update(const Lease& next, std::int64_t expected_counter,
              const std::optional<std::string>& expected_owner) override {
    reach();
    const std::lock_guard lock(obs_.table_mutex());
    if (!inner_->update(next, expected_counter, expected_owner)) return false;
    obs_.wrote({0, {}, writer_, TableWrite::Kind::Update, expected_counter, expected_owner, next});
    return true;
  }
  bool remove(const std::string& key, std::int64_t expected_counter) override {
    reach();
    const std::lock_guard lock(obs_.table_mutex());
    if (!inner_->remove(key, expected_counter)) return false;
    Lease gone;
    gone.key = key;
    obs_.wrote({0, {}, writer_, TableWrite::Kind::Remove, expected_counter, std::nullopt, gone});
    return true;
  }
  std::string describe() const override { return "recording(" + inner_->describe() + ") of " + writer_; }
  bool single_host() const override { return inner_->single_host(); }

 private:
  void reach() const {
    if (unreachable_) throw kclpp::StoreError("injected: the lease table cannot be reached", kclpp::Retry::Yes);
  }

  std::unique_ptr<LeaseTable> inner_;
  std::string writer_;
  Observations& obs_;
  const std::atomic<bool>& unreachable_;
};

// One worker's view of the shared store: its leases() is a RecordingTable.
class WorkerStore final : public CheckpointStore {
 public:
  WorkerStore(CheckpointStore& inner, std::string worker_id, Observations& observations)
      : inner_(inner), worker_id_(std::move(worker_id)), obs_(observations) {}

  std::optional<ExtendedSequenceNumber> load(const kclpp::native::CheckpointKey& key) override {
    return inner_.load(key);
  }
  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    return inner_.load_all(application, stream);
  }
  void save(const kclpp::native::CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    ADD_FAILURE() << "a worker with leases wrote " << key.shard_id << " around its lease";
    inner_.save(key, position);
  }
  std::unique_ptr<LeaseTable> leases(const std::string& application, const std::string& stream) override {
    return std::make_unique<RecordingTable>(inner_.leases(application, stream), worker_id_, obs_, unreachable_);
  }
  std::unique_ptr<kclpp::native::StoreClaim> claim(const std::string& application,
                                                   const std::string& stream) override {
    return inner_.claim(application, stream);
  }

  void set_unreachable(bool unreachable) { unreachable_ = unreachable; }

 private:
  CheckpointStore& inner_;
  std::string worker_id_;
  Observations& obs_;
  std::atomic<bool> unreachable_{false};
};

// ==========================================================================================
// The processor and the fleet
// ==========================================================================================

// Checkpoints after every batch, in shard_ended and in shutdown_requested, with
// checkpoint_once (no retry: a refused checkpoint is recorded and the processor goes on).
class LeaseProcessor final : public kclpp::RecordProcessor {
 public:
  LeaseProcessor(Observations& observations, std::string worker) : obs_(observations), worker_(std::move(worker)) {}

  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override {
    shard_ = shard_id;
    instance_ = obs_.new_instance(worker_, shard_id, position);
    obs_.event(instance_, "initialize", position.str());
  }
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    const auto start = Clock::now();
    obs_.delivered(instance_, batch.records);
    obs_.run_hook(worker_, shard_);
    checkpoint(checkpointer);
    std::vector<std::string> data;
    for (const auto& r : batch.records) data.push_back(r.data);
    obs_.call({worker_, shard_, instance_, start, Clock::now(), std::move(data)});
  }
  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    obs_.event(instance_, "shard_ended");
    checkpoint(checkpointer);
  }
  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    obs_.event(instance_, "shutdown_requested");
    obs_.run_shutdown_hook(worker_, shard_);
    checkpoint(checkpointer);
  }
  void lease_lost() override { obs_.event(instance_, "lease_lost"); }

 private:
  void checkpoint(kclpp::Checkpointer& checkpointer) {
    try {
      checkpointer.checkpoint_once(std::nullopt);
    } catch (const kclpp::LeaseLostError& e) {
      obs_.event(instance_, "checkpoint_lease_lost", e.kcl_name());
    } catch (const kclpp::CheckpointError& e) {
      obs_.event(instance_, "checkpoint_error", e.kcl_name());
    }
  }

  Observations& obs_;
  std::string worker_;
  std::string shard_;
  int instance_ = -1;
};

LeaseOptions fast_leases() {
  LeaseOptions leases;
  leases.failover_time = 900ms;  // renewals every 300 ms
  leases.take_interval = 300ms;
  return leases;
}

WorkerOptions lease_worker_options(const std::string& id, const LeaseOptions& leases) {
  WorkerOptions options = test_options();
  options.max_records = 5;  // small batches: "one batch" of duplicates is a small number
  options.leases = leases;
  options.leases.worker_id = id;
  return options;
}

// One Worker on a thread of its own, with its own view of the shared store.
class Member {
 public:
  Member(LocalStream& stream, CheckpointStore& shared, Observations& observations, const std::string& id,
         const LeaseOptions& leases)
      : id_(id),
        store_(shared, id, observations),
        worker_(stream, store_,
                [&observations, id](const std::string&) { return std::make_unique<LeaseProcessor>(observations, id); },
                lease_worker_options(id, leases)) {
    thread_ = std::thread([this] {
      try {
        worker_.run();
      } catch (...) {
        error_ = std::current_exception();
      }
      returned_ = true;
    });
  }
  ~Member() {
    if (thread_.joinable()) stop();
  }
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // Asks the worker to shut down and joins it. A worker that does not return within 20 s
  // fails the whole binary at once rather than hanging it.
  void stop() {
    if (!thread_.joinable()) return;
    worker_.request_shutdown();
    if (!eventually([&] { return returned_.load(); }, 20s)) {
      std::fprintf(stderr, "FATAL: worker %s did not return within 20 s of request_shutdown()\n", id_.c_str());
      std::abort();
    }
    thread_.join();
    if (error_) {
      try {
        std::rethrow_exception(error_);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "worker " << id_ << " failed: " << e.what();
      }
    }
  }
  // Asks the worker to shut down without waiting for it (stop() waits).
  void request_shutdown() { worker_.request_shutdown(); }
  WorkerStore& store() { return store_; }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
  WorkerStore store_;
  Worker worker_;
  std::thread thread_;
  std::exception_ptr error_;
  std::atomic<bool> returned_{false};
};

struct Put {
  std::string sequence_number;
  std::string data;
};

// A stream, the shared memory store, the workers and what they did.
class Fleet {
 public:
  explicit Fleet(int shards)
      : stream_("s", shards),
        memory_(kclpp::native::open_checkpoint_store("memory:")),
        table_(memory_->leases("app", "s")) {}
  ~Fleet() { stop_all(); }
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  Member& start(const std::string& id, const LeaseOptions& leases = fast_leases()) {
    const std::lock_guard lock(mutex_);
    members_.push_back(std::make_unique<Member>(stream_, *memory_, obs_, id, leases));
    return *members_.back();
  }
  // The latest member started with this id.
  Member& member(const std::string& id) {
    const std::lock_guard lock(mutex_);
    for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
      if ((*it)->id() == id) return **it;
    }
    throw std::logic_error("no member " + id);
  }
  void stop_all() {
    for (auto& m : members_) m->stop();
  }

  // Puts `count` records "<prefix>-<i>" and remembers each one's shard and sequence number.
  void put(const std::string& prefix, int count) {
    for (int i = 0; i < count; ++i) {
      const std::string data = prefix + "-" + std::to_string(i);
      const auto result = stream_.put(data, "pk-" + data);
      const std::lock_guard lock(mutex_);
      puts_[result.shard_id].push_back({result.sequence_number, data});
    }
  }
  std::map<std::string, std::vector<Put>> puts() const {
    const std::lock_guard lock(mutex_);
    return puts_;
  }
  bool all_delivered() const {
    const auto delivered = obs_.delivered_data();
    for (const auto& [shard, list] : puts()) {
      for (const auto& p : list) {
        if (delivered.count(p.data) == 0) return false;
      }
    }
    return true;
  }
  // Unfinished leases per owner in the table ("" for free ones).
  Counts held() const {
    Counts counts;
    for (const auto& lease : table_->list()) {
      if (lease.checkpoint.sentinel() != Sentinel::ShardEnd) ++counts[lease.owner.value_or("")];
    }
    return counts;
  }
  bool holds(const Counts& expected) const { return held() == expected; }
  std::set<std::string> owned_by(const std::string& owner) const {
    std::set<std::string> keys;
    for (const auto& lease : table_->list()) {
      if (lease.owner == owner) keys.insert(lease.key);
    }
    return keys;
  }

  LocalStream& stream() { return stream_; }
  LeaseTable& table() const { return *table_; }
  Observations& obs() { return obs_; }
  const Observations& obs() const { return obs_; }

 private:
  LocalStream stream_;
  std::unique_ptr<CheckpointStore> memory_;
  std::unique_ptr<LeaseTable> table_;  // the test's own view: not recorded
  Observations obs_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Put>> puts_;
  std::vector<std::unique_ptr<Member>> members_;  // last: stopped before the rest goes
};

// ==========================================================================================
// Checks
// ==========================================================================================

// Replays the recorded writes: each one started from the state the one before left
// (nothing bypassed the recording), bumped the counter, named only its writer as owner,
// released only its writer's own lease; a checkpoint moved only forward and only by the
// lease's owner at the time.
void expect_fenced_writes(const std::vector<TableWrite>& writes) {
  std::map<std::string, Lease> table;
  for (const auto& w : writes) {
    const std::string where = "write #" + std::to_string(w.seq) + " by " + w.writer + " on " + w.lease.key;
    if (w.kind == TableWrite::Kind::Create) {
      EXPECT_EQ(table.count(w.lease.key), 0U) << where;
      table[w.lease.key] = w.lease;
      continue;
    }
    const auto it = table.find(w.lease.key);
    ASSERT_NE(it, table.end()) << where << ": no such lease";
    if (w.kind == TableWrite::Kind::Remove) {
      EXPECT_EQ(it->second.checkpoint.sentinel(), Sentinel::ShardEnd) << where << ": removed before SHARD_END";
      table.erase(it);
      continue;
    }
    const Lease& before = it->second;
    EXPECT_EQ(before.counter, w.expected_counter) << where;
    EXPECT_EQ(before.owner, w.expected_owner) << where;
    EXPECT_GT(w.lease.counter, before.counter) << where << ": the counter did not move";
    if (w.lease.owner) {
      EXPECT_EQ(*w.lease.owner, w.writer) << where << ": wrote another worker as owner";
    } else {
      EXPECT_EQ(w.expected_owner, w.writer) << where << ": released a lease it did not own";
    }
    if (!(w.lease.checkpoint == before.checkpoint)) {
      EXPECT_EQ(w.expected_owner, w.writer) << where << ": checkpoint written by a worker that was not the owner";
      EXPECT_EQ(w.lease.owner, w.writer) << where;
      EXPECT_GE(order(w.lease.checkpoint, before.checkpoint), 0)
          << where << ": checkpoint went back from " << before.checkpoint.str() << " to " << w.lease.checkpoint.str();
    }
    it->second = w.lease;
  }
}

// One processor saw a run of consecutive records of its shard, in put order, starting right
// after the checkpoint it was initialized with. Counts its deliveries into `times`.
void expect_contiguous(const Instance& instance, const std::vector<Put>& list,
                       const std::map<std::string, std::size_t>& index, std::map<std::string, int>& times) {
  const std::string where = instance.worker + "'s processor #" + std::to_string(instance.id) + " on " +
                            instance.shard + " (from " + instance.initial.str() + ")";
  std::size_t next = 0;
  if (!instance.initial.is_sentinel()) {
    const auto at = index.find(instance.initial.str());
    ASSERT_NE(at, index.end()) << where << ": initialized at a position never put";
    next = at->second + 1;
  }
  for (const auto& record : instance.records) {
    ASSERT_LT(next, list.size()) << where << ": more records than were put";
    ASSERT_EQ(record.sequence_number.str(), list[next].sequence_number)
        << where << ": got " << record.data << " where " << list[next].data << " was next";
    ++times[record.data];
    ++next;
  }
}

// Every processor's records were contiguous (above) and every record put was delivered.
// Returns how many deliveries were duplicates, per shard.
std::map<std::string, int> expect_contiguous_deliveries(const Fleet& fleet) {
  const auto puts = fleet.puts();
  std::map<std::string, std::map<std::string, std::size_t>> index;  // shard -> seq -> position
  for (const auto& [shard, list] : puts) {
    for (std::size_t i = 0; i < list.size(); ++i) index[shard][list[i].sequence_number] = i;
  }
  std::map<std::string, std::map<std::string, int>> times;  // shard -> data -> deliveries
  const std::vector<Put> none;
  for (const auto& instance : fleet.obs().instances()) {
    const auto it = puts.find(instance.shard);
    expect_contiguous(instance, it != puts.end() ? it->second : none, index[instance.shard], times[instance.shard]);
  }
  std::map<std::string, int> duplicates;
  for (const auto& [shard, list] : puts) {
    for (const auto& p : list) {
      const int n = times[shard][p.data];
      EXPECT_GE(n, 1) << p.data << " of " << shard << " was never delivered";
      if (n > 1) duplicates[shard] += n - 1;
    }
  }
  return duplicates;
}

// How many times each lease was taken (its owner set to a new worker).
std::map<std::string, int> takes_per_lease(const std::vector<TableWrite>& writes) {
  std::map<std::string, int> takes;
  for (const auto& w : writes) {
    if (w.kind == TableWrite::Kind::Update && w.lease.owner && w.expected_owner != w.lease.owner) ++takes[w.lease.key];
  }
  return takes;
}

// Duplicates come only from hand-offs: at most one batch (max_records = 5) per move.
void expect_duplicates_bounded(const Fleet& fleet, const std::map<std::string, int>& duplicates) {
  const auto takes = takes_per_lease(fleet.obs().writes());
  for (const auto& [shard, n] : duplicates) {
    const int moves = takes.count(shard) != 0 ? takes.at(shard) - 1 : 0;
    EXPECT_LE(n, 5 * moves) << shard << ": " << n << " duplicates after " << moves << " hand-off(s)";
  }
}

// The standard end-of-test checks.
void expect_consistent(const Fleet& fleet) {
  expect_fenced_writes(fleet.obs().writes());
  expect_duplicates_bounded(fleet, expect_contiguous_deliveries(fleet));
}

// The events of one shard's processors on one worker, in order.
std::vector<std::string> events_of(const Fleet& fleet, const std::string& worker, const std::string& shard,
                                   std::uint64_t after_seq = 0) {
  std::vector<std::string> out;
  for (const auto& e : fleet.obs().events()) {
    if (e.worker == worker && e.shard == shard && e.seq > after_seq) out.push_back(e.what);
  }
  return out;
}


// Whether every owned lease has a live processor on its owner (initialized, no lease_lost
// yet): a lease taken a moment ago may not have one yet.
bool every_lease_processed(const Fleet& fleet) {
  std::set<std::pair<std::string, std::string>> live;  // (worker, shard)
  for (const auto& e : fleet.obs().events()) {
    if (e.what == "initialize") live.insert({e.worker, e.shard});
    if (e.what == "lease_lost") live.erase({e.worker, e.shard});
  }
  for (const auto& lease : fleet.table().list()) {
    if (lease.owner && live.count({*lease.owner, lease.key}) == 0) return false;
  }
  return true;
}

// Starts three workers on the fleet's shards and waits until they hold 4 leases each, each
// with its processor running, and every record put so far has been delivered.
void start_three_balanced(Fleet& fleet, const LeaseOptions& leases = fast_leases()) {
  for (const char* id : {"w1", "w2", "w3"}) fleet.start(id, leases);
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"w1", 4}, {"w2", 4}, {"w3", 4}}); }, 20s))
      << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return every_lease_processed(fleet); }, 5s));
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }, 10s));
}

// ==========================================================================================
// Workers sharing a stream
// ==========================================================================================

TEST(WorkerLease, ThreeWorkersOnTwelveShardsConvergeToFourEachAndProcessEverything) {
  Fleet fleet(12);
  fleet.put("before", 240);
  for (const char* id : {"w1", "w2", "w3"}) fleet.start(id);
  for (int round = 0; round < 10; ++round) {  // more records while the leases move
    fleet.put("during" + std::to_string(round), 20);
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"w1", 4}, {"w2", 4}, {"w3", 4}}); }, 20s))
      << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }, 10s));
  // Balanced is stable: nobody steals from a worker at the target.
  const auto writes_before = fleet.obs().writes().size();
  std::this_thread::sleep_for(3 * fast_leases().take_interval);
  EXPECT_EQ(fleet.held(), (Counts{{"w1", 4}, {"w2", 4}, {"w3", 4}}));
  const auto writes = fleet.obs().writes();
  for (std::size_t i = writes_before; i < writes.size(); ++i) {
    EXPECT_EQ(writes[i].expected_owner, writes[i].lease.owner) << "a lease moved at balance: " << writes[i].lease.key;
  }
  fleet.stop_all();

  std::set<std::string> workers_with_records;
  for (const auto& i : fleet.obs().instances()) {
    if (!i.records.empty()) workers_with_records.insert(i.worker);
  }
  EXPECT_EQ(workers_with_records, (std::set<std::string>{"w1", "w2", "w3"}));
  expect_consistent(fleet);
}

TEST(WorkerLease, GracefulShutdownCheckpointsReleasesAndOthersTakeOverWithinATakeInterval) {
  LeaseOptions leases = fast_leases();
  leases.failover_time = 1500ms;  // a take by expiry could not happen within the bound below
  Fleet fleet(12);
  fleet.put("before", 120);
  start_three_balanced(fleet, leases);
  const auto leaving = fleet.owned_by("w3");
  ASSERT_EQ(leaving.size(), 4U);
  fleet.put("during", 60);
  const auto asked_seq = fleet.obs().next_seq();
  fleet.member("w3").stop();  // returns once run() has returned
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"w1", 6}, {"w2", 6}}); }, 5s)) << describe(fleet.held());
  fleet.put("after", 60);
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }, 10s));
  fleet.stop_all();

  const auto writes = fleet.obs().writes();
  const auto instances = fleet.obs().instances();
  for (const auto& key : leaving) {
    // The processor was asked to shut down, had its checkpoint, then lease_lost (one that
    // had only just started, on a lease taken a moment before, too).
    auto events = events_of(fleet, "w3", key, asked_seq);
    if (!events.empty() && events.front() == "initialize") events.erase(events.begin());
    std::string all;
    for (const auto& e : fleet.obs().events()) {
      if (e.shard == key) all += " " + e.worker + ":" + e.what + "#" + std::to_string(e.seq);
    }
    EXPECT_EQ(events, (std::vector<std::string>{"shutdown_requested", "lease_lost"}))
        << key << " (asked at #" << asked_seq << "):" << all;
    // Its last checkpoint is the last record w3's processors got on the shard.
    std::optional<ExtendedSequenceNumber> last_delivered;
    for (const auto& i : instances) {
      if (i.worker == "w3" && i.shard == key && !i.records.empty()) last_delivered = i.records.back().position();
    }
    // The release: owner removed, counter bumped, by w3, after the shutdown request.
    const auto release = std::find_if(writes.begin(), writes.end(), [&](const TableWrite& w) {
      return w.seq > asked_seq && w.lease.key == key && w.writer == "w3" && !w.lease.owner;
    });
    ASSERT_NE(release, writes.end()) << key << " was not released";
    EXPECT_EQ(release->expected_owner, std::optional<std::string>("w3"));
    EXPECT_EQ(release->lease.counter, release->expected_counter + 1);
    if (last_delivered) {
      EXPECT_EQ(release->lease.checkpoint, *last_delivered) << key;
    }
    // Taken by another worker at its next take round, long before the failover time.
    const auto take = std::find_if(release, writes.end(), [&](const TableWrite& w) {
      return w.lease.key == key && w.lease.owner && w.lease.owner != "w3";
    });
    ASSERT_NE(take, writes.end()) << key << " was not taken after its release";
    EXPECT_EQ(take->expected_owner, std::nullopt) << key << " was taken as an expired lease, not a free one";
    EXPECT_LE(ms(take->at - release->at), ms(leases.take_interval) + 450) << key;
  }
  expect_consistent(fleet);
}

TEST(WorkerLease, AFourthWorkerStealsUpToTheTargetOneLeasePerTakeRound) {
  Fleet fleet(12);
  fleet.put("before", 120);
  start_three_balanced(fleet);
  const auto joined_seq = fleet.obs().next_seq();
  fleet.start("w4");
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"w1", 3}, {"w2", 3}, {"w3", 3}, {"w4", 3}}); }, 10s))
      << describe(fleet.held());
  std::this_thread::sleep_for(3 * fast_leases().take_interval);
  EXPECT_EQ(fleet.held(), (Counts{{"w1", 3}, {"w2", 3}, {"w3", 3}, {"w4", 3}}));
  fleet.put("after", 60);
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }, 10s));
  const auto end_seq = fleet.obs().next_seq();  // those stopping first release leases others take
  fleet.stop_all();

  std::vector<TableWrite> steals;
  for (const auto& w : fleet.obs().writes()) {
    if (w.seq < joined_seq || w.seq > end_seq) continue;
    if (w.kind != TableWrite::Kind::Update || !w.lease.owner || w.expected_owner == w.lease.owner) continue;
    EXPECT_EQ(w.writer, "w4") << "only the new worker takes leases; " << w.writer << " took " << w.lease.key;
    steals.push_back(w);
  }
  ASSERT_EQ(steals.size(), 3U) << "w4 steals exactly up to the target";
  for (std::size_t i = 0; i < steals.size(); ++i) {
    ASSERT_TRUE(steals[i].expected_owner) << steals[i].lease.key << " was free: it should have been stolen";
    if (i > 0) {
      EXPECT_GE(ms(steals[i].at - steals[i - 1].at), ms(fast_leases().take_interval) * 2 / 3)
          << "two steals in one take round";
    }
    // The victim's processor learned it at its next renewal (or from a refused checkpoint):
    // lease_lost without a shutdown.
    auto events = events_of(fleet, *steals[i].expected_owner, steals[i].lease.key, steals[i].seq);
    std::erase_if(events, [](const std::string& e) { return e == "initialize" || e == "checkpoint_lease_lost"; });
    ASSERT_FALSE(events.empty()) << steals[i].lease.key;
    EXPECT_EQ(events.front(), "lease_lost") << steals[i].lease.key;
  }
  expect_consistent(fleet);
}

// A gate that processor calls wait at while it is closed.
class Gate {
 public:
  void close() {
    const std::lock_guard lock(mutex_);
    closed_ = true;
  }
  void open() {
    {
      const std::lock_guard lock(mutex_);
      closed_ = false;
    }
    cv_.notify_all();
  }
  void pass() {
    std::unique_lock lock(mutex_);
    if (!closed_) return;
    entered_ = true;
    cv_.wait(lock, [&] { return !closed_; });
  }
  bool entered() {
    const std::lock_guard lock(mutex_);
    return entered_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool closed_ = false;
  bool entered_ = false;
};

std::set<std::string> delivered_by(const Fleet& fleet, const std::string& worker) {
  std::set<std::string> out;
  for (const auto& i : fleet.obs().instances()) {
    if (i.worker != worker) continue;
    for (const auto& r : i.records) out.insert(r.data);
  }
  return out;
}

TEST(WorkerLease, APausedWorkerLosesItsShardAndItsLateCheckpointIsRefused) {
  const LeaseOptions leases = fast_leases();
  const std::string shard = shard_name(0);
  Gate gate;  // outlives the fleet, whose processors wait at it
  Fleet fleet(1);
  struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.open(); }  // a failed assertion must not leave a processor blocked
  } open_on_exit{gate};
  fleet.obs().set_hook([&](const std::string& worker, const std::string&) {
    if (worker == "A") gate.pass();
  });
  fleet.put("first", 10);
  fleet.start("A", leases);
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"A", 1}}); })) << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }));
  fleet.start("B", leases);
  // A processor blocked past the failover time keeps its lease: the coordinator renews it.
  gate.close();
  fleet.put("blocked", 5);
  ASSERT_TRUE(eventually([&] { return gate.entered(); }));
  std::this_thread::sleep_for(leases.failover_time + 2 * leases.take_interval);
  EXPECT_EQ(fleet.held(), (Counts{{"A", 1}}));
  // Now A cannot reach the table either: the whole worker is paused. B takes the shard and
  // reads again from A's last checkpoint.
  fleet.member("A").store().set_unreachable(true);
  const auto paused_seq = fleet.obs().next_seq();
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"B", 1}}); }, 5s)) << describe(fleet.held());
  fleet.member("A").store().set_unreachable(false);
  ASSERT_TRUE(eventually([&] { return delivered_by(fleet, "B").count("blocked-4") != 0; }));
  // A resumes: its checkpoint is refused, then its processor gets lease_lost.
  gate.open();
  ASSERT_TRUE(eventually([&] { return fleet.obs().has_event("A", shard, "lease_lost"); }));
  fleet.put("last", 10);
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }));
  fleet.stop_all();

  EXPECT_EQ(events_of(fleet, "A", shard, paused_seq),
            (std::vector<std::string>{"checkpoint_lease_lost", "lease_lost"}));
  for (const auto& e : fleet.obs().events()) {
    if (e.what == "checkpoint_lease_lost") {
      EXPECT_EQ(e.detail, "ShutdownException");
    }
  }
  const auto writes = fleet.obs().writes();
  const auto take = std::find_if(writes.begin(), writes.end(), [&](const TableWrite& w) {
    return w.seq > paused_seq && w.lease.owner == std::optional<std::string>("B");
  });
  ASSERT_NE(take, writes.end());
  EXPECT_EQ(take->expected_owner, std::optional<std::string>("A"));
  const auto last_by_a = std::find_if(std::make_reverse_iterator(take), writes.rend(),
                                      [](const TableWrite& w) { return w.writer == "A"; });
  ASSERT_NE(last_by_a, writes.rend());
  EXPECT_GE(ms(take->at - last_by_a->at), ms(leases.failover_time)) << "taken before it could have expired";
  for (auto it = take; it != writes.end(); ++it) {
    EXPECT_NE(it->writer, "A") << "A wrote " << it->lease.key << " after B took it";
  }
  expect_consistent(fleet);
}

TEST(WorkerLease, AWorkerShuttingDownTakesNoNewLeases) {
  Gate gate;  // outlives the fleet, whose processors wait at it
  Fleet fleet(2);
  struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.open(); }
  } open_on_exit{gate};
  fleet.put("before", 20);
  fleet.start("A");
  fleet.start("B");
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"A", 1}, {"B", 1}}); })) << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }));
  const auto b_keys = fleet.owned_by("B");
  // A's processor is running (a stolen lease starts only once its former owner's clock has
  // run it out).
  const auto a_keys = fleet.owned_by("A");
  ASSERT_EQ(a_keys.size(), 1u);
  ASSERT_TRUE(eventually([&] { return fleet.obs().has_event("A", *a_keys.begin(), "initialize"); }));
  // A is leaving, slowly: its processor takes its time in shutdown_requested.
  fleet.obs().set_shutdown_hook([&](const std::string& worker, const std::string&) {
    if (worker == "A") gate.pass();
  });
  gate.close();
  const auto leaving_seq = fleet.obs().next_seq();
  fleet.member("A").request_shutdown();
  ASSERT_TRUE(eventually([&] { return gate.entered(); }));
  // Meanwhile B leaves too and releases its lease: a worker that is leaving must not take it
  // (it would sit unprocessed until A's shutdown is over), as the KCL stops its lease taker
  // first.
  fleet.member("B").stop();
  std::this_thread::sleep_for(4 * fast_leases().take_interval);
  gate.open();
  fleet.member("A").stop();
  for (const auto& w : fleet.obs().writes()) {
    if (w.seq > leaving_seq && w.writer == "A" && b_keys.count(w.lease.key) != 0) {
      ADD_FAILURE() << "A, shutting down, wrote " << w.lease.key << " (owner "
                    << w.lease.owner.value_or("none") << ")";
    }
  }
  EXPECT_EQ(fleet.held(), (Counts{{"", 2}}));
  expect_consistent(fleet);
}

TEST(WorkerLease, AnUnreachableTableStopsEveryWorkerBeforeOthersCouldTakeOverAndAllRecover) {
  LeaseOptions leases = fast_leases();
  leases.max_leases = 4;  // 4 each from the start: no stealing, so any overlap is a fault
  Fleet fleet(12);
  // Calls that take a while, so that overlapping ones would show.
  fleet.obs().set_hook([](const std::string&, const std::string&) { std::this_thread::sleep_for(10ms); });
  fleet.put("before", 120);
  start_three_balanced(fleet, leases);
  std::atomic<bool> producing{true};
  std::thread producer([&] {
    for (int round = 0; producing; ++round) {
      fleet.put("p" + std::to_string(round), 6);
      std::this_thread::sleep_for(50ms);
    }
  });
  const auto down_seq = fleet.obs().next_seq();
  const auto down = Clock::now();
  for (const char* id : {"w1", "w2", "w3"}) fleet.member(id).store().set_unreachable(true);
  std::this_thread::sleep_for(2 * leases.failover_time);
  const auto up = Clock::now();
  for (const char* id : {"w1", "w2", "w3"}) fleet.member(id).store().set_unreachable(false);
  const bool recovered =
      eventually([&] { return fleet.holds({{"w1", 4}, {"w2", 4}, {"w3", 4}}); }, 10s);
  producing = false;
  producer.join();
  ASSERT_TRUE(recovered) << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }, 10s));
  fleet.stop_all();

  // Every worker stopped its shards before anyone could have taken them.
  for (const auto& call : fleet.obs().calls()) {
    EXPECT_FALSE(call.start > down + leases.failover_time && call.start < up)
        << call.worker << " processed " << call.shard << " " << ms(call.start - down) << " ms into the outage";
  }
  for (const char* id : {"w1", "w2", "w3"}) {
    int lost = 0;
    for (const auto& e : fleet.obs().events()) {
      if (e.worker == id && e.what == "lease_lost" && e.seq > down_seq) ++lost;
    }
    EXPECT_GE(lost, 4) << id << "'s processors were not all stopped";
  }
  // No two workers ever processed one shard at once.
  std::map<std::string, std::vector<ProcessCall>> by_shard;
  for (const auto& call : fleet.obs().calls()) by_shard[call.shard].push_back(call);
  for (const auto& [shard, calls] : by_shard) {
    for (std::size_t i = 0; i < calls.size(); ++i) {
      for (std::size_t j = i + 1; j < calls.size(); ++j) {
        const auto& a = calls[i];
        const auto& b = calls[j];
        EXPECT_FALSE(a.worker != b.worker && a.start < b.end && b.start < a.end)
            << shard << ": " << a.worker << " and " << b.worker << " processed it at once";
      }
    }
  }
  // Duplicates are only records whose checkpoint failed: first handed out when the table
  // was already gone (the processor went on without its checkpoint, as it may).
  expect_fenced_writes(fleet.obs().writes());
  expect_contiguous_deliveries(fleet);
  std::map<std::string, Clock::time_point> first_call_end;
  for (const auto& call : fleet.obs().calls()) {
    for (const auto& data : call.data) first_call_end.try_emplace(data, call.end);
  }
  std::map<std::string, int> times;
  for (const auto& instance : fleet.obs().instances()) {
    for (const auto& r : instance.records) ++times[r.data];
  }
  for (const auto& [data, n] : times) {
    if (n > 1) {
      EXPECT_GE(first_call_end[data], down) << data << " came " << n << " times but was checkpointed in time";
    }
  }
}

TEST(WorkerLease, SplitAndMergeAcrossWorkersStartChildrenOnlyAfterEveryParentsShardEnd) {
  Fleet fleet(3);
  fleet.put("before", 60);
  for (const char* id : {"w1", "w2", "w3"}) fleet.start(id);
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"w1", 1}, {"w2", 1}, {"w3", 1}}); }, 20s))
      << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }));
  // Each parent is on a worker of its own: the merged child waits for two workers.
  fleet.stream().merge_shards(shard_name(1), shard_name(2));
  fleet.stream().split_shard(shard_name(0), two_pow_126);
  fleet.put("after", 90);
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }, 20s));
  fleet.stop_all();

  std::map<std::string, std::vector<std::string>> parents;  // child -> parents
  for (const auto& shard : fleet.stream().connect()->list_shards()) {
    for (const auto& parent : {shard.parent_shard_id, shard.adjacent_parent_shard_id}) {
      if (parent) parents[shard.shard_id].push_back(*parent);
    }
  }
  ASSERT_EQ(parents.size(), 3U);
  std::map<std::string, TableWrite> shard_end;  // parent -> its SHARD_END write
  for (const auto& w : fleet.obs().writes()) {
    if (w.lease.checkpoint.sentinel() == Sentinel::ShardEnd && shard_end.count(w.lease.key) == 0) {
      shard_end.emplace(w.lease.key, w);
    }
  }
  bool across_workers = false;
  for (const auto& [child, its_parents] : parents) {
    int starts = 0;
    for (const auto& e : fleet.obs().events()) {
      if (e.shard != child || e.what != "initialize") continue;
      ++starts;
      for (const auto& parent : its_parents) {
        ASSERT_EQ(shard_end.count(parent), 1U) << parent << " never reached SHARD_END";
        EXPECT_GT(e.seq, shard_end.at(parent).seq) << child << " started on " << e.worker << " before " << parent
                                                    << " was at SHARD_END";
        if (e.worker != shard_end.at(parent).writer) across_workers = true;
      }
    }
    EXPECT_GE(starts, 1) << child << " never started";
  }
  EXPECT_TRUE(across_workers) << "every child ran where its parents had: the test proved nothing";
  expect_consistent(fleet);
}

// How many unfinished leases `owner` held at most, replaying the recorded writes.
int max_held(const std::vector<TableWrite>& writes, const std::string& owner) {
  std::map<std::string, Lease> table;
  int most = 0;
  for (const auto& w : writes) {
    if (w.kind == TableWrite::Kind::Remove) {
      table.erase(w.lease.key);
    } else {
      table[w.lease.key] = w.lease;
    }
    const auto n = std::count_if(table.begin(), table.end(), [&](const auto& entry) {
      return entry.second.owner == owner && entry.second.checkpoint.sentinel() != Sentinel::ShardEnd;
    });
    most = std::max(most, static_cast<int>(n));
  }
  return most;
}

TEST(WorkerLease, MaxLeasesCapsAWorkerAndARestartWithTheSameIdTakesItsLeasesBackAtOnce) {
  LeaseOptions capped = fast_leases();
  capped.failover_time = 4000ms;  // nothing below may be explained by expiry
  capped.max_leases = 3;
  LeaseOptions uncapped = capped;
  uncapped.max_leases = 0;
  Fleet fleet(6);
  fleet.put("before", 60);
  fleet.start("A", capped);
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"A", 3}, {"", 3}}); })) << describe(fleet.held());
  std::this_thread::sleep_for(3 * capped.take_interval);
  EXPECT_EQ(fleet.held(), (Counts{{"A", 3}, {"", 3}})) << "the cap left 3 leases free";
  fleet.start("B", uncapped);
  ASSERT_TRUE(eventually([&] { return fleet.holds({{"A", 3}, {"B", 3}}); })) << describe(fleet.held());
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }));

  // A dies without releasing anything (its table is gone as it shuts down).
  const auto a_keys = fleet.owned_by("A");
  fleet.member("A").store().set_unreachable(true);
  fleet.member("A").stop();
  ASSERT_EQ(fleet.owned_by("A"), a_keys);
  const auto restart_seq = fleet.obs().next_seq();
  const auto restarted = Clock::now();
  fleet.start("A", capped);
  const auto retaken = [&] {
    std::set<std::string> keys;
    for (const auto& w : fleet.obs().writes()) {
      if (w.seq > restart_seq && w.writer == "A" && w.expected_owner == std::optional<std::string>("A")) {
        keys.insert(w.lease.key);
      }
    }
    return keys;
  };
  ASSERT_TRUE(eventually([&] { return retaken() == a_keys; }, 3s));
  EXPECT_LE(ms(Clock::now() - restarted), 1000) << "the restart waited for its own leases to expire";
  fleet.put("after", 60);
  ASSERT_TRUE(eventually([&] { return fleet.all_delivered(); }));
  const auto end_seq = fleet.obs().next_seq();  // those stopping first release leases others take
  fleet.stop_all();

  const auto writes = fleet.obs().writes();
  EXPECT_EQ(max_held(writes, "A"), 3);
  for (const auto& w : writes) {
    if (w.seq < end_seq && w.writer == "B" && a_keys.count(w.lease.key) != 0) {
      ADD_FAILURE() << "B took A's " << w.lease.key;
    }
  }
  expect_consistent(fleet);
}

// ==========================================================================================
// The lease coordinator alone
// ==========================================================================================

// A memory lease table filled by hand with other workers' leases, which never renew them
// (the failover time is long enough for that not to matter).
class HandTable {
 public:
  HandTable() : store_(kclpp::native::open_checkpoint_store("memory:")), table_(store_->leases("app", "s")) {}
  void add(const std::string& owner, int count, std::int64_t counter = 1) {
    for (int i = 0; i < count; ++i) {
      Lease lease;
      lease.key = "k" + std::to_string(next_++ + 100);
      if (!owner.empty()) lease.owner = owner;
      lease.counter = counter;
      ASSERT_TRUE(table_->create(lease));
    }
  }
  Counts owners() const {
    Counts counts;
    for (const auto& lease : table_->list()) ++counts[lease.owner.value_or("")];
    return counts;
  }
  LeaseTable& table() { return *table_; }

 private:
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<LeaseTable> table_;
  int next_ = 0;
};

LeaseOptions coordinator_options(int max_leases_to_steal) {
  LeaseOptions options;
  options.worker_id = "me";
  options.failover_time = 10s;
  options.take_interval = 100ms;
  options.max_leases_to_steal = max_leases_to_steal;
  return options;
}

TEST(LeaseCoordinator, StealsFromTheMostLoadedOnlyDownToTheTarget) {
  HandTable t;
  t.add("X", 5);
  t.add("Y", 3);
  t.add("Z", 2);
  LeaseCoordinator coordinator(t.table(), coordinator_options(10), {});
  coordinator.start();  // the first take round runs inside start()
  // target = ceil(10 leases / 4 workers) = 3; X is 2 over it: 2 leases, both from X.
  EXPECT_EQ(t.owners(), (Counts{{"X", 3}, {"Y", 3}, {"Z", 2}, {"me", 2}}));
  // Now it needs 1 and the most loaded is at the target: stealing would only move the
  // imbalance around, so it does not.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(t.owners(), (Counts{{"X", 3}, {"Y", 3}, {"Z", 2}, {"me", 2}}));
  EXPECT_EQ(coordinator.held_keys().size(), 2U);
  EXPECT_EQ(coordinator.stats().stolen, 2U);
  coordinator.stop();
}

TEST(LeaseCoordinator, NeedingMoreThanOneStealsOneEvenFromAWorkerAtTheTarget) {
  HandTable t;
  t.add("X", 3);
  t.add("Y", 3);
  t.add("Z", 3);
  LeaseCoordinator coordinator(t.table(), coordinator_options(10), {});
  coordinator.start();
  // target = ceil(9 / 4) = 3 and everyone is at it; needing 3, it steals 1 per round.
  EXPECT_EQ(t.owners(), (Counts{{"X", 2}, {"Y", 3}, {"Z", 3}, {"me", 1}}));
  ASSERT_TRUE(eventually([&] { return coordinator.held_keys().size() == 2; }, 2s));
  // At 2 it needs 1 more, and the most loaded (3) is at the target: it stops there.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(t.owners(), (Counts{{"X", 2}, {"Y", 2}, {"Z", 3}, {"me", 2}}));
  coordinator.stop();
}

TEST(LeaseCoordinator, MaxLeasesToStealCapsEachTakeRound) {
  HandTable t;
  t.add("X", 8);
  LeaseCoordinator coordinator(t.table(), coordinator_options(2), {});
  coordinator.start();
  EXPECT_EQ(t.owners(), (Counts{{"X", 6}, {"me", 2}}));  // target 4, 2 per round
  ASSERT_TRUE(eventually([&] { return t.owners() == Counts{{"X", 4}, {"me", 4}}; }, 2s)) << describe(t.owners());
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(t.owners(), (Counts{{"X", 4}, {"me", 4}}));
  EXPECT_EQ(coordinator.stats().stolen, 4U);
  coordinator.stop();
}

TEST(LeaseCoordinator, ExpiryIsJudgedOnTheLocalClockFromWhenTheCounterLastMoved) {
  HandTable t;
  t.add("ghost", 1, 7);  // k100
  t.add("", 1);          // k101, free
  LeaseOptions options = coordinator_options(1);
  options.failover_time = 600ms;
  LeaseCoordinator coordinator(t.table(), options, {});
  coordinator.start();
  EXPECT_TRUE(coordinator.holds("k101")) << "a free lease is taken at the first take round";
  // The ghost renews (its counter moves) every 150 ms: its lease never expires.
  std::int64_t counter = 7;
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(150ms);
    Lease lease = *t.table().get("k100");
    ASSERT_EQ(lease.counter, counter);
    ++lease.counter;
    ASSERT_TRUE(t.table().update(lease, counter, "ghost"));
    ++counter;
    EXPECT_FALSE(coordinator.holds("k100")) << "taken while its owner renewed it";
  }
  // It stops: the lease is taken failover_time after the counter was last seen to move.
  const auto stopped = Clock::now();
  ASSERT_TRUE(eventually([&] { return coordinator.holds("k100"); }, 3s));
  const auto waited = ms(Clock::now() - stopped);
  EXPECT_GE(waited, 600);
  EXPECT_LE(waited, 600 + 150 + 100 + 300) << "one take interval after expiry, plus scheduling";
  const auto lease = t.table().get("k100");
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->owner, std::optional<std::string>("me"));
  EXPECT_EQ(lease->counter, counter + 1);
  EXPECT_EQ(lease->owner_switches_since_checkpoint, 1);
  coordinator.stop();
}

TEST(LeaseCoordinator, ACheckpointOnALeaseTakenBehindItsBackIsLeaseLost) {
  HandTable t;
  t.add("", 1);  // k100
  std::mutex mutex;
  std::vector<std::string> lost;
  LeaseCoordinator coordinator(t.table(), coordinator_options(1),
                               {nullptr, [&](const std::string& key) {
                                  const std::lock_guard lock(mutex);
                                  lost.push_back(key);
                                }});
  coordinator.start();
  ASSERT_TRUE(coordinator.holds("k100"));
  const ExtendedSequenceNumber first(kclpp::SequenceNumber("100"), 0);
  coordinator.checkpoint("k100", first);
  EXPECT_EQ(t.table().get("k100")->checkpoint, first);
  // Another worker takes it (as after an expiry this worker did not notice).
  Lease stolen = *t.table().get("k100");
  const auto seen = stolen.counter;
  stolen.owner = "thief";
  ++stolen.counter;
  ASSERT_TRUE(t.table().update(stolen, seen, "me"));
  EXPECT_THROW(coordinator.checkpoint("k100", ExtendedSequenceNumber(kclpp::SequenceNumber("200"), 0)),
               kclpp::LeaseLostError);
  EXPECT_FALSE(coordinator.holds("k100"));
  {
    const std::lock_guard lock(mutex);
    EXPECT_EQ(lost, (std::vector<std::string>{"k100"}));
  }
  const auto stored = t.table().get("k100");
  EXPECT_EQ(stored->owner, std::optional<std::string>("thief"));
  EXPECT_EQ(stored->checkpoint, first) << "the stale owner's checkpoint landed";
  coordinator.stop();
}

TEST(LeaseCoordinator, TimingsAreCheckedAsConfigErrors) {
  HandTable t;
  LeaseOptions options = coordinator_options(1);
  options.renew_interval = options.failover_time;  // one failed renewal would lose everything
  EXPECT_THROW(LeaseCoordinator(t.table(), options, {}), kclpp::ConfigError);
  options = coordinator_options(0);
  EXPECT_THROW(LeaseCoordinator(t.table(), options, {}), kclpp::ConfigError);
  options = coordinator_options(1);
  options.max_leases = -1;
  EXPECT_THROW(LeaseCoordinator(t.table(), options, {}), kclpp::ConfigError);
  const kclpp::native::detail::LeaseTiming timing(coordinator_options(1));
  EXPECT_EQ(timing.renew, std::chrono::milliseconds(10'000 / 3));
  EXPECT_EQ(timing.take, 100ms);
}

}  // namespace
