// The native worker (native-reader/src/worker.cpp, shard_consumer.cpp,
// worker_checkpointer.cpp) driven against LocalStream (local_stream.cpp), with no server:
// delivery, resume, lineage, checkpoint rules, failures, shutdown, iterator expiry.

#include "kclpp/native/worker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/local_stream.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/metrics.hpp"
#include "local_stream_testing.hpp"
#include "worker_test_support.hpp"
#include "md5.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::ExtendedSequenceNumber;
using kclpp::Record;
using kclpp::Sentinel;
using kclpp::SequenceNumber;
using kclpp::native::LocalStream;
using aws::StartPosition;
using kclpp::native::Worker;
using kclpp::native::WorkerOptions;
using Testing = kclpp::native::detail::LocalStreamTesting;
using kclpp::native::detail::LocalFault;
using namespace kclpp::native::testing;  // NOLINT(google-build-using-namespace)

// --- a checkpoint store for tests: in memory, with fault injection ------------------------

class TestStore final : public kclpp::native::CheckpointStore {
 public:
  std::optional<ExtendedSequenceNumber> load(const kclpp::native::CheckpointKey& key) override {
    const std::lock_guard lock(mutex_);
    const auto it = data_.find(name(key));
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    const std::lock_guard lock(mutex_);
    std::map<std::string, ExtendedSequenceNumber> out;
    const std::string prefix = application + "/" + stream + "/";
    for (const auto& [k, v] : data_) {
      if (k.rfind(prefix, 0) == 0) out.emplace(k.substr(prefix.size()), v);
    }
    return out;
  }
  void save(const kclpp::native::CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::lock_guard lock(mutex_);
    if (failing_saves_ > 0) {
      --failing_saves_;
      throw kclpp::StoreError("injected: database is locked", kclpp::Retry::Yes);
    }
    data_[name(key)] = position;
    ++saves_;
  }
  std::unique_ptr<kclpp::native::StoreClaim> claim(const std::string& application,
                                                   const std::string& stream) override {
    const std::lock_guard lock(mutex_);
    if (claimed_) {
      throw kclpp::StoreError("application " + application + " on stream " + stream +
                              " is already claimed by another worker");
    }
    claimed_ = true;
    return std::make_unique<Claim>(*this);
  }

  // Test helpers.
  std::optional<ExtendedSequenceNumber> get(const std::string& shard_id, const std::string& app = "app",
                                            const std::string& stream = "s") {
    return load({app, stream, shard_id});
  }
  void put(const std::string& shard_id, const ExtendedSequenceNumber& position) {
    const std::lock_guard lock(mutex_);
    data_["app/s/" + shard_id] = position;
  }
  void fail_next_saves(int n) {
    const std::lock_guard lock(mutex_);
    failing_saves_ = n;
  }
  bool claimed() {
    const std::lock_guard lock(mutex_);
    return claimed_;
  }

 private:
  struct Claim final : kclpp::native::StoreClaim {
    explicit Claim(TestStore& s) : store(s) {}
    ~Claim() override {
      const std::lock_guard lock(store.mutex_);
      store.claimed_ = false;
    }
    TestStore& store;
  };
  static std::string name(const kclpp::native::CheckpointKey& key) {
    return key.application + "/" + key.stream + "/" + key.shard_id;
  }

  std::mutex mutex_;
  std::map<std::string, ExtendedSequenceNumber> data_;
  int failing_saves_ = 0;
  int saves_ = 0;
  bool claimed_ = false;
};

// --- a recording processor ----------------------------------------------------------------

struct Event {
  std::string shard;
  std::string what;  // initialize, batch, shard_ended, shutdown_requested, lease_lost
  std::string detail;
};

class Recorder {
 public:
  void event(const std::string& shard, const std::string& what, const std::string& detail = {}) {
    const std::lock_guard lock(mutex_);
    events_.push_back({shard, what, detail});
  }
  void batch(const std::string& shard, const kclpp::RecordBatch& batch) {
    const std::lock_guard lock(mutex_);
    events_.push_back({shard, "batch", std::to_string(batch.records.size())});
    for (const auto& r : batch.records) records_[shard].push_back(r);
    batches_.push_back(batch);
  }
  void factory_call() { ++factory_calls_; }

  std::size_t record_count() {
    const std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [shard, records] : records_) n += records.size();
    return n;
  }
  std::vector<std::string> data(const std::string& shard) {
    const std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& r : records_[shard]) out.push_back(r.data);
    return out;
  }
  std::vector<std::string> all_data() {
    const std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [shard, records] : records_) {
      for (const auto& r : records) out.push_back(r.data);
    }
    return out;
  }
  std::vector<Record> records(const std::string& shard) {
    const std::lock_guard lock(mutex_);
    return records_[shard];
  }
  std::vector<Event> events() {
    const std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<kclpp::RecordBatch> batches() {
    const std::lock_guard lock(mutex_);
    return batches_;
  }
  // The lifecycle calls of one shard, batches folded into one "batch" entry per run.
  std::vector<std::string> lifecycle(const std::string& shard) {
    std::vector<std::string> out;
    for (const auto& e : events()) {
      if (e.shard != shard) continue;
      if (e.what == "batch" && !out.empty() && out.back() == "batch") continue;
      out.push_back(e.what);
    }
    return out;
  }
  // Index of the first event (shard, what), or -1.
  long index_of(const std::string& shard, const std::string& what) {
    const auto all = events();
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (all[i].shard == shard && all[i].what == what) return static_cast<long>(i);
    }
    return -1;
  }
  bool has(const std::string& shard, const std::string& what) { return index_of(shard, what) >= 0; }
  std::set<std::string> initialized_shards() {
    std::set<std::string> out;
    for (const auto& e : events()) {
      if (e.what == "initialize") out.insert(e.shard);
    }
    return out;
  }
  int factory_calls() const { return factory_calls_.load(); }

 private:
  std::mutex mutex_;
  std::vector<Event> events_;
  std::map<std::string, std::vector<Record>> records_;
  std::vector<kclpp::RecordBatch> batches_;
  std::atomic<int> factory_calls_{0};
};

enum class CheckpointMode { Never, EachBatch, EachRecord };

struct Behaviour {
  CheckpointMode checkpoint = CheckpointMode::EachBatch;
  bool checkpoint_in_shard_ended = true;
  bool checkpoint_in_shutdown = true;
  // Called for each record before it is recorded; may throw.
  std::function<void(const std::string& shard, const Record&)> on_record;
  // Called once per batch with the checkpointer (for rule tests).
  std::function<void(const std::string& shard, const kclpp::RecordBatch&, kclpp::Checkpointer&)> on_batch;
  std::function<void(const std::string& shard)> on_lease_lost;
  std::chrono::milliseconds batch_delay{0};
};

class TestProcessor final : public kclpp::RecordProcessor {
 public:
  TestProcessor(Recorder& recorder, const Behaviour& behaviour) : recorder_(recorder), behaviour_(behaviour) {}

  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override {
    shard_ = shard_id;
    std::string detail = position.str();
    if (!position.is_sentinel()) detail += "/" + std::to_string(position.sub_sequence_number());
    recorder_.event(shard_, "initialize", detail);
  }
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    checkpointer_ = &checkpointer;
    if (behaviour_.batch_delay.count() > 0) std::this_thread::sleep_for(behaviour_.batch_delay);
    kclpp::RecordBatch done;
    done.millis_behind_latest = batch.millis_behind_latest;
    try {
      for (const auto& r : batch.records) {
        if (behaviour_.on_record) behaviour_.on_record(shard_, r);
        done.records.push_back(r);
        if (behaviour_.checkpoint == CheckpointMode::EachRecord) checkpointer.checkpoint(r);
      }
    } catch (...) {
      recorder_.batch(shard_, done);  // what was handled before the failure
      throw;
    }
    recorder_.batch(shard_, done);
    if (behaviour_.on_batch) behaviour_.on_batch(shard_, batch, checkpointer);
    if (behaviour_.checkpoint == CheckpointMode::EachBatch && !batch.records.empty()) checkpointer.checkpoint();
  }
  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    recorder_.event(shard_, "shard_ended");
    if (behaviour_.checkpoint_in_shard_ended) checkpointer.checkpoint();
  }
  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    recorder_.event(shard_, "shutdown_requested");
    if (behaviour_.checkpoint_in_shutdown) checkpointer.checkpoint();
  }
  void lease_lost() override {
    recorder_.event(shard_, "lease_lost");
    if (behaviour_.on_lease_lost) behaviour_.on_lease_lost(shard_);
    // Checkpointing is over: the checkpointer a processor kept must refuse.
    if (checkpointer_ != nullptr) {
      try {
        checkpointer_->checkpoint_once(std::nullopt);
        recorder_.event(shard_, "checkpoint_after_lease_lost", "accepted");
      } catch (const kclpp::LeaseLostError& e) {
        recorder_.event(shard_, "checkpoint_after_lease_lost", e.kcl_name());
      }
    }
  }

 private:
  Recorder& recorder_;
  const Behaviour& behaviour_;
  std::string shard_;
  kclpp::Checkpointer* checkpointer_ = nullptr;
};

// Runs a Worker on a thread of its own; stop() asks it to shut down and joins it.
class RunningWorker {
 public:
  RunningWorker(LocalStream& stream, TestStore& store, Recorder& recorder, const Behaviour& behaviour,
                WorkerOptions options = test_options())
      : worker_(stream, store,
                [&recorder, &behaviour](const std::string&) {
                  recorder.factory_call();
                  return std::make_unique<TestProcessor>(recorder, behaviour);
                },
                std::move(options)) {
    thread_ = std::thread([this] {
      try {
        worker_.run();
      } catch (...) {
        error_ = std::current_exception();
      }
      returned_ = true;
    });
  }
  ~RunningWorker() {
    if (thread_.joinable()) stop();
  }
  RunningWorker(const RunningWorker&) = delete;
  RunningWorker& operator=(const RunningWorker&) = delete;

  // How long run() took to return after request_shutdown(). A worker that does not return
  // within 20 s fails the whole test binary at once rather than hanging it.
  std::chrono::milliseconds stop() {
    const auto start = std::chrono::steady_clock::now();
    worker_.request_shutdown();
    if (!eventually([&] { return returned_.load(); }, 20s)) {
      std::fprintf(stderr, "FATAL: Worker::run() did not return within 20 s of request_shutdown()\n");
      std::abort();
    }
    thread_.join();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  }
  bool returned() const { return returned_.load(); }
  void join() { thread_.join(); }
  std::exception_ptr error() const { return error_; }
  Worker& worker() { return worker_; }

 private:
  Worker worker_;
  std::thread thread_;
  std::exception_ptr error_;
  std::atomic<bool> returned_{false};
};

// --- a KPL aggregate, built by hand (protobuf + MD5 trailer) ---------------------------------

void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void bytes_field(std::string& out, int field, const std::string& bytes) {
  varint(out, static_cast<std::uint64_t>(field) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}
std::string make_aggregate(const std::vector<std::string>& user_data) {
  std::string body;
  bytes_field(body, 1, "user-pk");  // partition_key_table[0]
  for (const auto& data : user_data) {
    std::string record;
    varint(record, 1 << 3 | 0);  // partition_key_index = 0
    varint(record, 0);
    bytes_field(record, 3, data);
    bytes_field(body, 3, record);
  }
  kclpp::native::detail::Md5Digest digest{};
  EXPECT_TRUE(kclpp::native::detail::md5(body, digest));
  return std::string("\xF3\x89\x9A\xC2", 4) + body + std::string(reinterpret_cast<const char*>(digest.data()), 16);
}

// ==========================================================================================
// LocalStream
// ==========================================================================================

TEST(LocalStream, ShardsSplitTheHashKeySpaceEvenlyAndPutsRouteByMd5) {
  LocalStream stream("s", 4);
  EXPECT_EQ(stream.stream_name(), "s");
  auto connection = stream.connect();
  const auto shards = connection->list_shards();
  ASSERT_EQ(shards.size(), 4U);
  EXPECT_EQ(shards[0].shard_id, "shardId-000000000000");
  EXPECT_EQ(shards[3].shard_id, "shardId-000000000003");
  EXPECT_EQ(shards[0].starting_hash_key, "0");
  EXPECT_EQ(shards[0].ending_hash_key, "85070591730234615865843651857942052863");  // 2^126 - 1
  EXPECT_EQ(shards[1].starting_hash_key, two_pow_126);
  EXPECT_EQ(shards[3].ending_hash_key, max_hash_key);
  for (const auto& shard : shards) {
    EXPECT_FALSE(shard.closed());
    EXPECT_FALSE(shard.parent_shard_id);
  }
  // MD5("a") = 0cc175b9...: top bits 00 → shard 0; MD5("b") = 92eb5ffe... → 10 → shard 2.
  EXPECT_EQ(stream.put("x", "a").shard_id, "shardId-000000000000");
  EXPECT_EQ(stream.put("x", "b").shard_id, "shardId-000000000002");
  // An explicit hash key wins.
  EXPECT_EQ(stream.put("x", "a", max_hash_key).shard_id, "shardId-000000000003");
  EXPECT_THROW(stream.put("x", "a", "not-a-number"), aws::AwsError);
  EXPECT_THROW(stream.put("x", ""), aws::AwsError);
}

TEST(LocalStream, SequenceNumbersIteratorsAndMillisBehindLatest) {
  LocalStream stream("s", 1);
  std::vector<std::string> seqs;
  for (int i = 0; i < 5; ++i) seqs.push_back(stream.put("r" + std::to_string(i), "k").sequence_number);
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_EQ(seqs[i].size(), 56U);
    if (i > 0) {
      EXPECT_LT(SequenceNumber(seqs[i - 1]), SequenceNumber(seqs[i]));
    }
  }
  auto c = stream.connect();
  const std::string shard = "shardId-000000000000";
  auto first = c->get_records(c->get_shard_iterator(shard, StartPosition::trim_horizon()), 2);
  ASSERT_EQ(first.records.size(), 2U);
  EXPECT_EQ(first.records[0].data, "r0");
  EXPECT_EQ(first.records[0].partition_key, "k");
  EXPECT_TRUE(first.records[0].approximate_arrival_timestamp);
  EXPECT_GT(first.millis_behind_latest, 0);  // three more to read
  ASSERT_TRUE(first.next_shard_iterator);
  auto rest = c->get_records(*first.next_shard_iterator, 10);
  ASSERT_EQ(rest.records.size(), 3U);
  EXPECT_EQ(rest.millis_behind_latest, 0);
  ASSERT_TRUE(rest.next_shard_iterator);  // open shard: always a next iterator

  auto at = c->get_records(c->get_shard_iterator(shard, StartPosition::at(seqs[2])), 10);
  ASSERT_EQ(at.records.size(), 3U);
  EXPECT_EQ(at.records[0].data, "r2");
  auto after = c->get_records(c->get_shard_iterator(shard, StartPosition::after(seqs[2])), 10);
  ASSERT_EQ(after.records.size(), 2U);
  EXPECT_EQ(after.records[0].data, "r3");
  const auto latest = c->get_shard_iterator(shard, StartPosition::latest());
  EXPECT_TRUE(c->get_records(latest, 10).records.empty());
  stream.put("r5", "k");
  auto new_one = c->get_records(latest, 10);
  ASSERT_EQ(new_one.records.size(), 1U);
  EXPECT_EQ(new_one.records[0].data, "r5");

  EXPECT_THROW((void)c->get_records("garbage", 10), aws::AwsError);
  EXPECT_THROW((void)c->get_records(latest, 0), aws::AwsError);
  EXPECT_THROW((void)c->get_shard_iterator("shardId-000000000009", StartPosition::latest()),
               aws::AwsError);
  LocalStream other("other", 1);
  EXPECT_THROW((void)other.connect()->get_records(latest, 10), aws::AwsError);

  Testing::expire_iterators(stream);
  try {
    (void)c->get_records(latest, 10);
    ADD_FAILURE() << "an expired iterator was accepted";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "ExpiredIteratorException");
  }
}

TEST(LocalStream, SplitAndMergeCloseParentsAndEndTheirShards) {
  LocalStream stream("s", 2);
  auto c = stream.connect();
  const std::string parent = "shardId-000000000000";
  const auto before = stream.put("before", "a");  // MD5("a") is in shard 0
  ASSERT_EQ(before.shard_id, parent);
  EXPECT_THROW(stream.split_shard(parent, "0"), aws::AwsError);  // not inside
  EXPECT_THROW(stream.split_shard("shardId-000000000042", two_pow_126), aws::AwsError);
  stream.split_shard(parent, two_pow_126);
  auto shards = c->list_shards();
  ASSERT_EQ(shards.size(), 4U);
  EXPECT_TRUE(shards[0].closed());
  EXPECT_EQ(shards[2].parent_shard_id, parent);
  EXPECT_EQ(shards[2].ending_hash_key, "85070591730234615865843651857942052863");
  EXPECT_EQ(shards[3].starting_hash_key, two_pow_126);
  EXPECT_EQ(shards[3].ending_hash_key, "170141183460469231731687303715884105727");
  EXPECT_EQ(stream.put("after", "a").shard_id, "shardId-000000000002");

  // The closed parent: its record, then no next iterator, and its children named.
  auto it = c->get_shard_iterator(parent, StartPosition::trim_horizon());
  auto result = c->get_records(it, 10);
  ASSERT_EQ(result.records.size(), 1U);
  EXPECT_EQ(result.records[0].data, "before");
  EXPECT_FALSE(result.next_shard_iterator);
  EXPECT_EQ(result.child_shards.size(), 2U);
  EXPECT_THROW(stream.split_shard(parent, two_pow_126), aws::AwsError);  // closed

  EXPECT_THROW(stream.merge_shards("shardId-000000000002", "shardId-000000000001"),
               aws::AwsError);  // not adjacent
  stream.merge_shards("shardId-000000000003", "shardId-000000000002");
  shards = c->list_shards();
  ASSERT_EQ(shards.size(), 5U);
  EXPECT_EQ(shards[4].parent_shard_id, "shardId-000000000003");
  EXPECT_EQ(shards[4].adjacent_parent_shard_id, "shardId-000000000002");
  EXPECT_EQ(shards[4].starting_hash_key, "0");
  EXPECT_EQ(shards[4].ending_hash_key, "170141183460469231731687303715884105727");
  EXPECT_EQ(stream.put("merged", "a").shard_id, "shardId-000000000004");
}

TEST(LocalStream, RetentionTrimsRecordsAndForgetsOldClosedShards) {
  LocalStream stream("s", 1);
  stream.put("old", "k");
  stream.split_shard("shardId-000000000000", two_pow_127);
  std::this_thread::sleep_for(30ms);
  stream.put("new", "k");
  stream.set_retention(20ms);
  auto c = stream.connect();
  const auto shards = c->list_shards();
  ASSERT_EQ(shards.size(), 2U);  // the closed parent expired
  EXPECT_EQ(shards[0].parent_shard_id, "shardId-000000000000");
  EXPECT_THROW((void)c->get_shard_iterator("shardId-000000000000", StartPosition::trim_horizon()),
               aws::AwsError);
}

// ==========================================================================================
// Worker
// ==========================================================================================

TEST(Worker, DeliversEveryRecordOfFourShardsOnceAndInOrder) {
  LocalStream stream("s", 4);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  // Every line a shard's thread logs carries its shard (docs/operations.md §3).
  std::mutex context_mutex;
  std::vector<std::string> wrong_context;
  std::atomic<int> context_checks{0};
  behaviour.on_batch = [&](const std::string& shard, const kclpp::RecordBatch&, kclpp::Checkpointer&) {
    ++context_checks;
    const auto fields = kclpp::log_fields();
    if (fields != std::vector<kclpp::LogField>{{"shard", shard, false}}) {
      const std::lock_guard lock(context_mutex);
      wrong_context.push_back(shard + ": " + std::to_string(fields.size()) + " fields" +
                              (fields.empty() ? "" : ", first " + fields[0].key + "=" + fields[0].value));
    }
  };
  auto expected = put_records(stream, "early", 200);
  RunningWorker worker(stream, store, recorder, behaviour);
  for (const auto& [shard, data] : put_records(stream, "late", 200)) {
    expected[shard].insert(expected[shard].end(), data.begin(), data.end());
  }
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 400; })) << recorder.record_count();
  std::this_thread::sleep_for(300ms);  // room for duplicates to show up
  worker.stop();
  ASSERT_EQ(expected.size(), 4U);
  for (const auto& [shard, data] : expected) {
    EXPECT_EQ(recorder.data(shard), data) << shard;
    EXPECT_EQ(recorder.lifecycle(shard),
              (std::vector<std::string>{"initialize", "batch", "shutdown_requested", "lease_lost",
                                        "checkpoint_after_lease_lost"}))
        << shard;
    // The last checkpoint is at the shard's last record.
    const auto last = recorder.records(shard).back();
    EXPECT_EQ(store.get(shard), last.position()) << shard;
  }
  EXPECT_GE(context_checks.load(), 4);
  EXPECT_EQ(wrong_context, std::vector<std::string>{});
  EXPECT_EQ(recorder.factory_calls(), 4);
  for (const auto& e : recorder.events()) {
    if (e.what == "checkpoint_after_lease_lost") {
      EXPECT_EQ(e.detail, "ShutdownException");
    }
  }
  EXPECT_FALSE(worker.error());
  EXPECT_FALSE(store.claimed());  // released when run() returned
}

TEST(Worker, RestartResumesRightAfterTheCheckpoint) {
  LocalStream stream("s", 2);
  TestStore store;
  Behaviour behaviour;
  behaviour.checkpoint = CheckpointMode::EachRecord;
  std::vector<std::string> first_data;
  {
    Recorder recorder;
    put_records(stream, "a", 40);
    RunningWorker worker(stream, store, recorder, behaviour);
    ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 40; }));
    worker.stop();
    EXPECT_EQ(recorder.record_count(), 40U);
  }
  put_records(stream, "b", 40);
  Recorder recorder;
  RunningWorker worker(stream, store, recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 40; }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  auto data = recorder.all_data();
  std::sort(data.begin(), data.end());
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) expected.push_back("b-" + std::to_string(i));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(data, expected);  // nothing of the first run again, nothing lost
  // initialize() received the stored checkpoint.
  for (const auto& e : recorder.events()) {
    if (e.what == "initialize") {
      EXPECT_NE(e.detail.find("/0"), std::string::npos) << e.detail;
    }
  }
}

TEST(Worker, ResumesInsideAKplAggregate) {
  LocalStream stream("s", 1);
  const std::string shard = "shardId-000000000000";
  stream.put("plain-before", "k");
  const auto aggregate = stream.put(make_aggregate({"u0", "u1", "u2", "u3", "u4"}), "k");
  stream.put("plain-after", "k");
  TestStore store;
  // A processor checkpointed user record 2 of the aggregate, then the worker stopped.
  store.put(shard, ExtendedSequenceNumber(SequenceNumber(aggregate.sequence_number), 2));
  Recorder recorder;
  const Behaviour behaviour;
  RunningWorker worker(stream, store, recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 3; }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  EXPECT_EQ(recorder.data(shard), (std::vector<std::string>{"u3", "u4", "plain-after"}));
  const auto records = recorder.records(shard);
  ASSERT_EQ(records.size(), 3U);
  EXPECT_EQ(records[0].sub_sequence_number, 3);
  EXPECT_EQ(records[0].partition_key, "user-pk");
  EXPECT_EQ(records[1].sub_sequence_number, 4);
  EXPECT_EQ(recorder.events().front().detail, aggregate.sequence_number + "/2");

  // Checkpointing sub-record 0 of an aggregate (a checkpoint without sub) loses nothing.
  store.put(shard, ExtendedSequenceNumber(SequenceNumber(aggregate.sequence_number), 0));
  Recorder second;
  RunningWorker again(stream, store, second, behaviour);
  ASSERT_TRUE(eventually([&] { return second.record_count() >= 5; }));
  again.stop();
  EXPECT_EQ(second.data(shard), (std::vector<std::string>{"u1", "u2", "u3", "u4", "plain-after"}));
}

TEST(Worker, InitialPositionChoosesTheFirstRecordDelivered) {
  for (const auto which : {0, 1, 2}) {  // TRIM_HORIZON, LATEST, AT_TIMESTAMP
    SCOPED_TRACE(which);
    LocalStream stream("s", 1);
    TestStore store;
    Recorder recorder;
    const Behaviour behaviour;
    stream.put("old-0", "k");
    stream.put("old-1", "k");
    std::this_thread::sleep_for(20ms);
    const auto middle = std::chrono::system_clock::now();
    std::this_thread::sleep_for(5ms);
    stream.put("mid-0", "k");
    WorkerOptions options = test_options();
    options.initial_position = which == 0   ? StartPosition::trim_horizon()
                               : which == 1 ? StartPosition::latest()
                                            : StartPosition::at_timestamp(middle);
    RunningWorker worker(stream, store, recorder, behaviour, options);
    ASSERT_TRUE(eventually([&] { return Testing::get_shard_iterator_calls(stream) >= 1; }));
    stream.put("new-0", "k");
    ASSERT_TRUE(eventually([&] {
      const auto d = recorder.data("shardId-000000000000");
      return !d.empty() && d.back() == "new-0";
    }));
    worker.stop();
    const auto expected = which == 0   ? std::vector<std::string>{"old-0", "old-1", "mid-0", "new-0"}
                          : which == 1 ? std::vector<std::string>{"new-0"}
                                       : std::vector<std::string>{"mid-0", "new-0"};
    EXPECT_EQ(recorder.data("shardId-000000000000"), expected);
    EXPECT_EQ(recorder.events().front().detail,
              which == 0 ? "TRIM_HORIZON" : which == 1 ? "LATEST" : "AT_TIMESTAMP");
  }
}

TEST(Worker, SplitAndMergeWhileRunningKeepLineageAndLoseNothing) {
  LocalStream stream("s", 2);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  // Slow processors, and re-listing right after each reshard (as SIGHUP does): the
  // children are known while their parents still have records to hand out.
  behaviour.on_record = [](const std::string&, const Record&) { std::this_thread::sleep_for(3ms); };
  WorkerOptions options = test_options();
  options.max_records = 10;
  RunningWorker worker(stream, store, recorder, behaviour, options);

  std::map<std::string, std::vector<std::string>> expected;  // per shard, in put order
  int n = 0;
  auto put_some = [&](int count) {
    for (int i = 0; i < count; ++i, ++n) {
      const std::string data = "r-" + std::to_string(n);
      expected[stream.put(data, "pk-" + std::to_string(n)).shard_id].push_back(data);
    }
  };
  put_some(50);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 5; }));
  stream.split_shard("shardId-000000000000", two_pow_126);  // children 2 and 3
  worker.worker().request_shard_sync();
  put_some(50);
  stream.split_shard("shardId-000000000001", "255211775190703847597530955573826158592");  // 4, 5
  worker.worker().request_shard_sync();
  put_some(50);
  ASSERT_TRUE(eventually([&] { return recorder.has("shardId-000000000003", "initialize"); }));
  stream.merge_shards("shardId-000000000002", "shardId-000000000003");  // child 6
  put_some(50);
  for (int i = 0; i < 10; ++i) {
    worker.worker().request_shard_sync();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 200; })) << recorder.record_count();
  std::this_thread::sleep_for(300ms);
  worker.stop();

  std::size_t total = 0;
  for (const auto& [shard, data] : expected) {
    EXPECT_EQ(recorder.data(shard), data) << shard;
    total += data.size();
  }
  EXPECT_EQ(total, 200U);
  EXPECT_EQ(recorder.record_count(), 200U);
  EXPECT_GT(expected["shardId-000000000006"].size(), 0U);
  // Lineage: a child is initialized only after each parent's shard_ended, and the parents
  // are at SHARD_END in the store.
  const std::map<std::string, std::vector<std::string>> parents = {
      {"shardId-000000000002", {"shardId-000000000000"}},
      {"shardId-000000000003", {"shardId-000000000000"}},
      {"shardId-000000000004", {"shardId-000000000001"}},
      {"shardId-000000000005", {"shardId-000000000001"}},
      {"shardId-000000000006", {"shardId-000000000002", "shardId-000000000003"}}};
  for (const auto& [child, ps] : parents) {
    const long child_start = recorder.index_of(child, "initialize");
    ASSERT_GE(child_start, 0) << child;
    for (const auto& parent : ps) {
      const long parent_end = recorder.index_of(parent, "shard_ended");
      ASSERT_GE(parent_end, 0) << parent;
      EXPECT_LT(parent_end, child_start) << parent << " → " << child;
      EXPECT_EQ(store.get(parent), ExtendedSequenceNumber(Sentinel::ShardEnd)) << parent;
      EXPECT_EQ(recorder.lifecycle(parent).back(), "shard_ended") << parent;  // no lease_lost after
    }
  }
}

TEST(Worker, RecordsShardEndWhenTheProcessorDoesNot) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.checkpoint = CheckpointMode::Never;
  behaviour.checkpoint_in_shard_ended = false;
  const LogCapture logs;
  put_records(stream, "x", 10);
  stream.split_shard("shardId-000000000000", two_pow_127);
  put_records(stream, "y", 10);
  RunningWorker worker(stream, store, recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 20; }));
  worker.stop();
  EXPECT_EQ(store.get("shardId-000000000000"), ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_TRUE(recorder.has("shardId-000000000001", "initialize"));
  EXPECT_TRUE(recorder.has("shardId-000000000002", "initialize"));
  EXPECT_TRUE(logs.contains("did not checkpoint at shard end")) << "the worker says it stepped in";
}

TEST(Worker, ClosedShardsAreSkippedWithLatestAndChildrenOfReadShardsStartAtTheirStart) {
  LocalStream stream("s", 1);
  put_records(stream, "closed", 5);
  stream.split_shard("shardId-000000000000", two_pow_127);
  put_records(stream, "child-before-start", 5);
  TestStore store;
  Recorder recorder;
  const Behaviour behaviour;
  WorkerOptions options = test_options();
  options.initial_position = StartPosition::latest();
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return Testing::get_shard_iterator_calls(stream) >= 2; }));
  // A split while running: the children of a shard this worker read start at TRIM_HORIZON.
  stream.split_shard("shardId-000000000001", two_pow_126);
  const auto put = put_records(stream, "grandchild", 20);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 20; }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  EXPECT_FALSE(recorder.has("shardId-000000000000", "initialize"));  // closed, LATEST: skipped
  EXPECT_FALSE(store.get("shardId-000000000000"));
  std::size_t grandchildren = 0;
  for (const auto& [shard, data] : put) {
    if (shard == "shardId-000000000003" || shard == "shardId-000000000004") {
      EXPECT_EQ(recorder.data(shard), data);
      grandchildren += data.size();
    }
  }
  EXPECT_GT(grandchildren, 0U);
  for (const auto& d : recorder.all_data()) EXPECT_EQ(d.rfind("child-before-start", 0), std::string::npos) << d;
}

TEST(Worker, AShardThatExpiresWhileReadIsGivenUpAndItsChildrenStart) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.on_record = [](const std::string& shard, const Record&) {
    if (shard == "shardId-000000000000") std::this_thread::sleep_for(20ms);
  };
  put_records(stream, "x", 30);
  stream.split_shard("shardId-000000000000", two_pow_127);
  WorkerOptions options = test_options();
  options.max_records = 5;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 5; }));
  stream.set_retention(1ms);  // the closed parent expires before it is read to the end
  // Both children: their threads start together, in no set order.
  ASSERT_TRUE(eventually([&] {
    return recorder.has("shardId-000000000001", "initialize") &&
           recorder.has("shardId-000000000002", "initialize");
  }));
  worker.stop();
  EXPECT_LT(recorder.record_count(), 30U);
  EXPECT_EQ(recorder.factory_calls(), 3);  // no restarts of the vanished shard
  EXPECT_FALSE(recorder.has("shardId-000000000000", "shard_ended"));
  EXPECT_TRUE(recorder.has("shardId-000000000000", "lease_lost"));
  EXPECT_FALSE(store.get("shardId-000000000000").has_value() &&
               store.get("shardId-000000000000")->sentinel() == Sentinel::ShardEnd);
}

TEST(Worker, CheckpointerAppliesTheKclRules) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.checkpoint = CheckpointMode::Never;
  std::mutex mutex;
  std::vector<std::string> outcomes;
  auto attempt = [&](kclpp::Checkpointer& cp, const std::optional<ExtendedSequenceNumber>& at) {
    std::string outcome = "ok";
    try {
      cp.checkpoint_once(at);
    } catch (const kclpp::Error& e) {
      outcome = e.kcl_name();
    }
    const std::lock_guard lock(mutex);
    outcomes.push_back(outcome);
  };
  std::atomic<int> batches{0};
  behaviour.on_batch = [&](const std::string&, const kclpp::RecordBatch& batch, kclpp::Checkpointer& cp) {
    if (batches++ != 0 || batch.records.size() < 3) return;
    const auto& r = batch.records;
    const ExtendedSequenceNumber beyond(r.back().sequence_number, r.back().sub_sequence_number + 1);
    attempt(cp, beyond);                                // above the largest delivered
    attempt(cp, r[1].position());                       // in range
    attempt(cp, r[0].position());                       // below the last checkpoint
    attempt(cp, r[1].position());                       // the same again: a no-op
    attempt(cp, ExtendedSequenceNumber(Sentinel::ShardEnd));  // a sentinel is no position
    store.fail_next_saves(1);
    attempt(cp, r[2].position());                       // the store fails once
    store.fail_next_saves(1);
    cp.checkpoint(r[2]);                                // retried by the convenience call
    attempt(cp, std::nullopt);                          // the largest delivered
  };
  put_records(stream, "x", 5);
  RunningWorker worker(stream, store, recorder, behaviour);
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(mutex);
    return outcomes.size() >= 7;
  }));
  worker.stop();
  EXPECT_EQ(outcomes, (std::vector<std::string>{"IllegalArgumentException", "ok", "IllegalArgumentException",
                                                "ok", "IllegalArgumentException",
                                                "KinesisClientLibDependencyException", "ok"}));
  const auto records = recorder.records("shardId-000000000000");
  ASSERT_EQ(records.size(), 5U);
  EXPECT_EQ(store.get("shardId-000000000000"), records.back().position());
}

TEST(Worker, FailingProcessorRestartsFromItsLastCheckpoint) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.checkpoint = CheckpointMode::EachRecord;
  std::atomic<bool> thrown{false};
  behaviour.on_record = [&](const std::string&, const Record& r) {
    if (r.data == "x-5" && !thrown.exchange(true)) throw std::runtime_error("poison x-5");
  };
  put_records(stream, "x", 10);
  RunningWorker worker(stream, store, recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 10; }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  const std::string shard = "shardId-000000000000";
  // The first processor handled x-0..x-4 and checkpointed each; the second starts after x-4.
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back("x-" + std::to_string(i));
  EXPECT_EQ(recorder.data(shard), expected);
  EXPECT_EQ(recorder.factory_calls(), 2);
  auto lifecycle = recorder.lifecycle(shard);
  lifecycle.resize(std::min<std::size_t>(lifecycle.size(), 6));
  // The failed processor's terminal call is lease_lost; then a fresh one starts.
  EXPECT_EQ(lifecycle, (std::vector<std::string>{"initialize", "batch", "lease_lost",
                                                 "checkpoint_after_lease_lost", "initialize", "batch"}));
  const auto records = recorder.records(shard);
  std::vector<std::string> inits;
  for (const auto& e : recorder.events()) {
    if (e.what == "initialize") inits.push_back(e.detail);
  }
  ASSERT_EQ(inits.size(), 2U);
  EXPECT_EQ(inits[1], records[4].sequence_number.str() + "/0");
}

TEST(Worker, PoisonRecordBacksOffInsteadOfSpinning) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.on_record = [](const std::string&, const Record&) { throw std::runtime_error("always"); };
  put_records(stream, "x", 3);
  WorkerOptions options = test_options();
  options.read_retry.initial_backoff = 100ms;
  options.read_retry.max_backoff = 400ms;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  std::this_thread::sleep_for(2s);
  worker.stop();
  // Restarts wait 100, 200, 400, 400 ms (jittered down to half): a handful, not hundreds.
  EXPECT_GE(recorder.factory_calls(), 3);
  EXPECT_LE(recorder.factory_calls(), 12);
  EXPECT_FALSE(store.get("shardId-000000000000"));
}

TEST(Worker, LogAndContinueSkipsTheFailedBatch) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  std::atomic<int> calls{0};
  behaviour.on_record = [&](const std::string&, const Record&) {
    if (calls++ == 0) throw std::runtime_error("first batch fails");
  };
  put_records(stream, "x", 5);
  WorkerOptions options = test_options();
  options.on_processor_error = kclpp::OnProcessorError::LogAndContinue;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return calls.load() >= 1; }));
  std::this_thread::sleep_for(300ms);
  put_records(stream, "y", 5);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 5; }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  EXPECT_EQ(recorder.factory_calls(), 1);
  auto data = recorder.data("shardId-000000000000");
  EXPECT_EQ(data, (std::vector<std::string>{"y-0", "y-1", "y-2", "y-3", "y-4"}));  // x-* skipped
}

TEST(Worker, ShutdownCallsShutdownRequestedThenLeaseLostPromptly) {
  LocalStream stream("s", 3);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.checkpoint = CheckpointMode::Never;  // only shutdown_requested checkpoints
  put_records(stream, "x", 30);
  WorkerOptions options = test_options();
  options.idle_time_between_reads = 10s;  // the idle wait must be interruptible
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 30; }));
  const auto took = worker.stop();
  EXPECT_LT(took, 1s);
  for (const auto& shard : {"shardId-000000000000", "shardId-000000000001", "shardId-000000000002"}) {
    EXPECT_EQ(recorder.lifecycle(shard),
              (std::vector<std::string>{"initialize", "batch", "shutdown_requested", "lease_lost",
                                        "checkpoint_after_lease_lost"}))
        << shard;
    EXPECT_EQ(store.get(shard), recorder.records(shard).back().position()) << shard;
  }
}

TEST(Worker, ShutdownGraceIsLoggedButStuckProcessorsAreStillJoined) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.batch_delay = 1500ms;
  const LogCapture logs;
  stream.put("slow", "k");
  WorkerOptions options = test_options();
  options.shutdown_grace = 200ms;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return Testing::get_records_calls(stream, "shardId-000000000000").size() >= 1; }));
  std::this_thread::sleep_for(100ms);  // inside process_records now
  const auto took = worker.stop();
  EXPECT_GE(took, 1000ms);  // joined: run() waited for the processor to return
  EXPECT_LT(took, 5s);
  EXPECT_TRUE(logs.contains("shutdown_grace")) << "the stuck shard is named in an error";
  EXPECT_TRUE(logs.contains("shardId-000000000000"));
  EXPECT_EQ(recorder.lifecycle("shardId-000000000000").back(), "checkpoint_after_lease_lost");
}

TEST(Worker, ExpiredIteratorIsRecreatedAfterTheLastRecordDelivered) {
  LocalStream stream("s", 2);
  TestStore store;
  Recorder recorder;
  const Behaviour behaviour;
  put_records(stream, "a", 20);
  RunningWorker worker(stream, store, recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 20; }));
  const int iterators_before = Testing::get_shard_iterator_calls(stream);
  Testing::expire_iterators(stream);
  put_records(stream, "b", 20);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 40; }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  EXPECT_EQ(recorder.record_count(), 40U);  // no duplicate, no loss
  EXPECT_EQ(recorder.factory_calls(), 2);    // the processors carried on
  EXPECT_GE(Testing::get_shard_iterator_calls(stream), iterators_before + 2);
  // And via the error path: injected expiries before any record was read.
  LocalStream fresh("s", 1);
  Recorder second;
  TestStore store2;
  Testing::fail_next_get_records(fresh, 2, LocalFault::ExpiredIterator);
  put_records(fresh, "c", 5);
  RunningWorker again(fresh, store2, second, behaviour);
  ASSERT_TRUE(eventually([&] { return second.record_count() >= 5; }));
  std::this_thread::sleep_for(300ms);
  again.stop();
  EXPECT_EQ(second.record_count(), 5U);
  EXPECT_EQ(second.factory_calls(), 1);
}

TEST(Worker, ThrottlingIsRetriedAndGetRecordsStaysWithinFivePerSecond) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  const Behaviour behaviour;
  const LogCapture logs;
  put_records(stream, "x", 60);
  Testing::fail_next_get_records(stream, 3, LocalFault::Throttled);
  WorkerOptions options = test_options();
  options.max_records = 10;  // six calls to catch up, at once but paced
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 60; }));
  worker.stop();
  EXPECT_EQ(recorder.record_count(), 60U);
  const auto calls = Testing::get_records_calls(stream, "shardId-000000000000");
  ASSERT_GE(calls.size(), 9U);  // 3 throttled + 6 to catch up
  for (std::size_t i = 1; i < calls.size(); ++i) {
    EXPECT_GE(calls[i] - calls[i - 1], 195ms) << "calls " << i - 1 << " and " << i;
  }
  // Catching up does not wait for idle_time_between_reads on top of the pacing.
  EXPECT_LT(calls[8] - calls[3], 6 * 300ms);
  EXPECT_TRUE(logs.contains("ProvisionedThroughputExceeded"));
}

TEST(Worker, EmptyBatchesAreDeliveredWhenAskedWithMillisBehindLatest) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  const Behaviour behaviour;
  WorkerOptions options = test_options();
  options.empty_batches = kclpp::native::EmptyBatches::Deliver;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return recorder.batches().size() >= 2; }));
  worker.stop();
  const auto batches = recorder.batches();
  EXPECT_TRUE(batches[0].records.empty());
  EXPECT_EQ(batches[0].millis_behind_latest, 0);
}

TEST(Worker, ShardSubsetByIndex) {
  LocalStream stream("s", 4);
  TestStore store;
  Recorder recorder;
  const Behaviour behaviour;
  const auto put = put_records(stream, "x", 100);
  WorkerOptions options = test_options();
  options.shard_indexes = {1, 3};
  RunningWorker worker(stream, store, recorder, behaviour, options);
  const std::size_t wanted = put.at("shardId-000000000001").size() + put.at("shardId-000000000003").size();
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= wanted; }));
  // A split of a shard in the subset is followed; the others stay out.
  stream.split_shard("shardId-000000000001", "127605887595351923798765477786913079296");
  stream.split_shard("shardId-000000000000", "42535295865117307932921825928971026432");
  ASSERT_TRUE(eventually([&] { return recorder.has("shardId-000000000005", "initialize"); }));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  EXPECT_EQ(recorder.initialized_shards(),
            (std::set<std::string>{"shardId-000000000001", "shardId-000000000003", "shardId-000000000004",
                                   "shardId-000000000005"}));

  // An index past the end stops the worker with a ConfigError.
  LocalStream small("s", 2);
  TestStore store2;
  Recorder none;
  WorkerOptions bad = test_options();
  bad.shard_indexes = {2};
  RunningWorker failing(small, store2, none, behaviour, bad);
  ASSERT_TRUE(eventually([&] { return failing.returned(); }));
  failing.join();
  ASSERT_TRUE(failing.error());
  EXPECT_THROW(std::rethrow_exception(failing.error()), kclpp::ConfigError);
  EXPECT_EQ(none.factory_calls(), 0);
}

TEST(Worker, SecondWorkerOnTheSameApplicationAndStoreRefusesToStart) {
  LocalStream stream("s", 1);
  TestStore store;
  Recorder first_recorder;
  Recorder second_recorder;
  const Behaviour behaviour;
  RunningWorker first(stream, store, first_recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return store.claimed(); }));
  RunningWorker second(stream, store, second_recorder, behaviour);
  ASSERT_TRUE(eventually([&] { return second.returned(); }));
  second.join();
  ASSERT_TRUE(second.error());
  try {
    std::rethrow_exception(second.error());
  } catch (const kclpp::StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("already claimed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(second_recorder.factory_calls(), 0);
  first.stop();
  EXPECT_FALSE(first.error());
}

TEST(Worker, InvalidOptionsAreConfigErrors) {
  LocalStream stream("s", 1);
  TestStore store;
  auto factory = [](const std::string&) -> std::unique_ptr<kclpp::RecordProcessor> { return nullptr; };
  WorkerOptions options = test_options();
  options.application.clear();
  EXPECT_THROW(Worker(stream, store, factory, options).run(), kclpp::ConfigError);
  options = test_options();
  options.max_records = 0;
  EXPECT_THROW(Worker(stream, store, factory, options).run(), kclpp::ConfigError);
  EXPECT_FALSE(store.claimed());
}

// The example of native-reader/README.md ("LocalStream: unit-testing a processor"), kept
// identical in substance so that the README stays true.
class CountingProcessor : public kclpp::RecordProcessor {
 public:
  explicit CountingProcessor(std::atomic<int>& seen) : seen_(seen) {}
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& cp) override {
    seen_ += static_cast<int>(batch.records.size());
    cp.checkpoint();
  }

 private:
  std::atomic<int>& seen_;
};

TEST(ReadmeExample, CountingProcessorSeesEveryRecordAcrossASplit) {
  kclpp::native::LocalStream stream("orders", 2);
  auto store = kclpp::native::open_checkpoint_store("memory:");
  for (int i = 0; i < 50; ++i) stream.put("order " + std::to_string(i), "customer-" + std::to_string(i));

  kclpp::native::WorkerOptions options;
  options.application = "counting-test";
  options.initial_position = aws::StartPosition::trim_horizon();
  options.idle_time_between_reads = 50ms;
  std::atomic<int> seen{0};
  kclpp::native::Worker worker(stream, *store,
                               [&](const std::string&) { return std::make_unique<CountingProcessor>(seen); },
                               options);
  std::thread running([&] { worker.run(); });

  stream.split_shard("shardId-000000000000", "85070591730234615865843651857942052864");
  for (int i = 50; i < 100; ++i) stream.put("order " + std::to_string(i), "customer-" + std::to_string(i));
  for (int i = 0; i < 500 && seen < 100; ++i) std::this_thread::sleep_for(10ms);
  worker.request_shutdown();
  running.join();

  EXPECT_EQ(seen, 100);
  auto checkpoints = store->load_all("counting-test", "orders");
  EXPECT_EQ(checkpoints.at("shardId-000000000000").str(), "SHARD_END");
}

// ==========================================================================================
// Health and the stall watchdog (docs/operations.md §2)
// ==========================================================================================

// What the gated processors of one test share: the batch holding `block_on` blocks (the
// first time only) until release(), or interrupt() when `interruptible`.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  std::string block_on;
  bool interruptible = false;
  bool open = false;
  bool blocked = false;
  std::atomic<bool> waiting{false};
  std::atomic<int> interrupts{0};
  void release() {
    {
      const std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

class GatedProcessor final : public kclpp::RecordProcessor {
 public:
  GatedProcessor(Recorder& recorder, Gate& gate) : recorder_(recorder), gate_(gate) {}
  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override {
    shard_ = shard_id;
    recorder_.event(shard_, "initialize", position.str());
  }
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    std::unique_lock lock(gate_.mutex);
    const bool block = !gate_.blocked && std::any_of(batch.records.begin(), batch.records.end(),
                                                     [&](const Record& r) { return r.data == gate_.block_on; });
    if (block) {
      gate_.blocked = true;
      gate_.waiting = true;
      gate_.cv.wait(lock, [&] { return gate_.open || interrupted_; });
      gate_.waiting = false;
      // Interrupted: return without a word, as a processor that just gives up would; the
      // watchdog must restart the shard anyway (nothing of this batch was processed).
      if (interrupted_) return;
    }
    lock.unlock();
    recorder_.batch(shard_, batch);
    checkpointer.checkpoint();
  }
  void interrupt() noexcept override {
    if (!gate_.interruptible) return;
    ++gate_.interrupts;
    {
      const std::lock_guard lock(gate_.mutex);
      interrupted_ = true;
    }
    gate_.cv.notify_all();
  }

 private:
  Recorder& recorder_;
  Gate& gate_;
  std::string shard_;
  bool interrupted_ = false;  // guarded by gate_.mutex
};

Worker gated_worker(LocalStream& stream, TestStore& store, Recorder& recorder, Gate& gate, WorkerOptions options) {
  return Worker(stream, store,
                [&recorder, &gate](const std::string&) {
                  recorder.factory_call();
                  return std::make_unique<GatedProcessor>(recorder, gate);
                },
                std::move(options));
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

std::vector<std::string> xs(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back("x-" + std::to_string(i));
  return out;
}

TEST(WorkerHealth, ACallPastItsTimeoutIsLoggedCountedAndNotReadyUntilItReturns) {
  LogCapture log;
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Gate gate;
  gate.block_on = "x-0";
  gate.interruptible = true;  // but the Log policy must not interrupt
  put_records(stream, "x", 6);
  WorkerOptions options = test_options();
  options.max_records = 3;
  options.processor_timeout = 200ms;
  options.on_processor_timeout = kclpp::native::OnProcessorTimeout::Log;
  auto registry = std::make_shared<kclpp::MetricsRegistry>();
  options.metrics = registry;
  Worker worker = gated_worker(stream, store, recorder, gate, options);
  const auto before = worker.health();
  EXPECT_FALSE(before.alive);
  EXPECT_FALSE(before.ready);
  std::thread runner([&] { worker.run(); });
  const std::string shard = "shardId-000000000000";
  ASSERT_TRUE(eventually([&] { return gate.waiting.load(); }));
  // Blocked, not yet past the timeout: still ready.
  const auto early = worker.health();
  EXPECT_TRUE(early.alive && early.started);
  EXPECT_EQ(early.leases_held, 1);
  ASSERT_TRUE(eventually([&] { return worker.health().calls_past_timeout == 1; }, 3s));
  const auto stuck = worker.health();
  EXPECT_TRUE(stuck.alive);
  EXPECT_FALSE(stuck.ready);
  ASSERT_EQ(stuck.problems.size(), 1U);
  EXPECT_EQ(stuck.problems[0].rfind(shard + ": process_records running for ", 0), 0U) << stuck.problems[0];
  // The watchdog's tick (a quarter of the timeout) logs and counts it.
  EXPECT_TRUE(eventually(
      [&] { return log.contains("watchdog: shard " + shard + ": process_records has been running for "); }));
  EXPECT_TRUE(has_line(registry->prometheus_text(), "kclpp_processor_timeouts_total{shard=\"" + shard + "\"} 1"))
      << registry->prometheus_text();
  gate.release();
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 6; }));
  ASSERT_TRUE(eventually([&] { return worker.health().ready; }));
  EXPECT_TRUE(log.contains("watchdog: shard " + shard + ": process_records returned after "));
  EXPECT_FALSE(log.contains("interrupting"));
  EXPECT_EQ(gate.interrupts.load(), 0);
  EXPECT_EQ(recorder.factory_calls(), 1);  // Log: the call went on, no restart
  EXPECT_EQ(recorder.data(shard), xs(0, 6));
  worker.request_shutdown();
  runner.join();
  const auto after = worker.health();
  EXPECT_FALSE(after.alive);
  EXPECT_FALSE(after.ready);
  // The worker no longer holds the shard: its series are gone from the page.
  EXPECT_EQ(registry->prometheus_text().find(shard), std::string::npos) << registry->prometheus_text();
}

TEST(WorkerHealth, RestartPolicyInterruptsTheCallAndTheShardResumesFromItsCheckpoint) {
  LogCapture log;
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Gate gate;
  gate.block_on = "x-3";  // the second batch: x-0..x-2 are checkpointed by then
  gate.interruptible = true;
  put_records(stream, "x", 6);
  WorkerOptions options = test_options();
  options.max_records = 3;
  options.processor_timeout = 200ms;
  auto registry = std::make_shared<kclpp::MetricsRegistry>();
  options.metrics = registry;
  Worker worker = gated_worker(stream, store, recorder, gate, options);
  std::thread runner([&] { worker.run(); });
  const std::string shard = "shardId-000000000000";
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 6; }));
  EXPECT_TRUE(has_line(registry->prometheus_text(), "kclpp_processor_timeouts_total{shard=\"" + shard + "\"} 1"))
      << registry->prometheus_text();
  worker.request_shutdown();
  runner.join();
  EXPECT_EQ(gate.interrupts.load(), 1);
  // Every record once: the interrupted batch came again, to a new processor started after
  // the checkpoint at x-2.
  EXPECT_EQ(recorder.data(shard), xs(0, 6));
  EXPECT_EQ(recorder.factory_calls(), 2);
  const auto records = recorder.records(shard);
  std::vector<std::string> inits;
  for (const auto& e : recorder.events()) {
    if (e.what == "initialize") inits.push_back(e.detail);
  }
  ASSERT_EQ(inits.size(), 2U);
  EXPECT_EQ(inits[1], records[2].sequence_number.str());
  EXPECT_TRUE(log.contains("watchdog: shard " + shard + ": process_records has been running for "));
  EXPECT_TRUE(log.contains("interrupting the processor"));
  EXPECT_TRUE(log.contains("restarting the shard from its checkpoint"));
  EXPECT_TRUE(log.contains("processor dropped (process_records timed out)"));
}

TEST(WorkerHealth, AShardBehindWithNoRecordsFlowingIsAStallUntilTheyFlowAgain) {
  LogCapture log;
  LocalStream stream("s", 1);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  std::atomic<bool> injected{false};
  // After the first batch (4 records still behind it), every GetRecords fails.
  behaviour.on_batch = [&](const std::string&, const kclpp::RecordBatch&, kclpp::Checkpointer&) {
    if (!injected.exchange(true)) Testing::fail_next_get_records(stream, 1'000'000, LocalFault::Transport);
  };
  put_records(stream, "x", 6);
  WorkerOptions options = test_options();
  options.max_records = 2;
  options.stall_timeout = 300ms;
  auto registry = std::make_shared<kclpp::MetricsRegistry>();
  options.metrics = registry;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  const std::string shard = "shardId-000000000000";
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 2; }));
  ASSERT_TRUE(eventually([&] { return !worker.worker().health().problems.empty(); }, 5s));
  const auto stalled = worker.worker().health();
  EXPECT_TRUE(stalled.alive);
  EXPECT_FALSE(stalled.ready);
  EXPECT_EQ(stalled.calls_past_timeout, 0);
  ASSERT_EQ(stalled.problems.size(), 1U);
  EXPECT_EQ(stalled.problems[0].rfind(shard + ": no progress for ", 0), 0U) << stalled.problems[0];
  EXPECT_NE(stalled.problems[0].find("ms behind latest"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return log.contains("watchdog: shard " + shard + ": no records handed to the processor for "); }));
  EXPECT_EQ(recorder.record_count(), 2U);
  Testing::fail_next_get_records(stream, 0, LocalFault::Transport);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 6; }));
  ASSERT_TRUE(eventually([&] { return worker.worker().health().ready; }));
  EXPECT_TRUE(eventually([&] { return log.contains("watchdog: shard " + shard + " is making progress again"); }));
  EXPECT_TRUE(has_line(registry->prometheus_text(), "kclpp_shard_stalls_total{shard=\"" + shard + "\"} 1"))
      << registry->prometheus_text();
  worker.stop();
  EXPECT_EQ(recorder.data(shard), xs(0, 6));
}

// --- metrics (docs/operations.md §1) --------------------------------------------------------

// The value of series `name` whose labels include `label`="value" (any series when label is
// empty); NaN when there is none. A histogram's value is its count.
double metric(const kclpp::MetricsRegistry& registry, std::string_view name, std::string_view label = {},
              std::string_view value = {}) {
  double found = std::numeric_limits<double>::quiet_NaN();
  registry.visit([&](const kclpp::MetricSample& s) {
    if (s.name != name) return;
    const bool match = label.empty() || std::any_of(s.labels.begin(), s.labels.end(), [&](const auto& l) {
                         return l.first == label && l.second == value;
                       });
    if (!match) return;
    found = s.type == kclpp::MetricType::Histogram ? static_cast<double>(s.bucket_counts.back()) : s.value;
  });
  return found;
}

TEST(Worker, MetricsCountWhatEachShardReadAndHandedOnAndGoWithTheShard) {
  LocalStream stream("s", 2);
  TestStore store;
  Recorder recorder;
  Behaviour behaviour;
  behaviour.checkpoint = CheckpointMode::EachRecord;
  const auto put = put_records(stream, "x", 40);
  Testing::fail_next_get_records(stream, 2, LocalFault::Throttled);
  WorkerOptions options = test_options();
  options.max_records = 7;  // several batches per shard
  auto registry = std::make_shared<kclpp::MetricsRegistry>();
  options.metrics = registry;
  RunningWorker worker(stream, store, recorder, behaviour, options);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 40; }));
  Testing::expire_iterators(stream);
  put_records(stream, "y", 1);
  ASSERT_TRUE(eventually([&] { return recorder.record_count() >= 41; }));
  std::this_thread::sleep_for(100ms);

  double throttles = 0;
  double retries = 0;
  double renewals = 0;
  std::size_t batches = 0;
  for (const auto& [shard, data] : put) {
    SCOPED_TRACE(shard);
    const auto handed = recorder.records(shard);
    std::uint64_t bytes = 0;
    for (const auto& r : handed) bytes += r.data.size();
    EXPECT_EQ(metric(*registry, "kclpp_records_processed_total", "shard", shard), static_cast<double>(handed.size()));
    EXPECT_EQ(metric(*registry, "kclpp_bytes_processed_total", "shard", shard), static_cast<double>(bytes));
    const double calls = metric(*registry, "kclpp_process_records_seconds", "shard", shard);
    EXPECT_GE(calls, static_cast<double>(data.size() / 7));
    batches += static_cast<std::size_t>(calls);
    EXPECT_GE(metric(*registry, "kclpp_get_records_calls_total", "shard", shard), calls);
    EXPECT_EQ(metric(*registry, "kclpp_millis_behind_latest", "shard", shard), 0.0);
    // Checkpointed at every record: the age is since the last one, not since the start.
    EXPECT_LT(metric(*registry, "kclpp_checkpoint_age_seconds", "shard", shard), 5.0);
    throttles += metric(*registry, "kclpp_read_throttles_total", "shard", shard);
    retries += metric(*registry, "kclpp_read_retries_total", "shard", shard);
    renewals += metric(*registry, "kclpp_iterator_renewals_total", "shard", shard);
  }
  EXPECT_EQ(batches, recorder.batches().size());  // one observation per process_records
  EXPECT_EQ(throttles, 2.0);
  EXPECT_EQ(retries, 2.0);
  EXPECT_GE(renewals, 1.0);
  EXPECT_EQ(metric(*registry, "kclpp_leases_held", "application", "app"), 2.0);
  EXPECT_EQ(metric(*registry, "kclpp_processor_restarts_total", "stream", "s"), 0.0);
  worker.stop();
  // The shards' series went with them; the worker's stay, with nothing held.
  EXPECT_EQ(registry->prometheus_text().find("shard="), std::string::npos) << registry->prometheus_text();
  EXPECT_EQ(metric(*registry, "kclpp_leases_held"), 0.0);

  // A processor that fails once: the restart is counted.
  LocalStream poisoned("p", 1);
  TestStore store2;
  Recorder second;
  Behaviour failing;
  std::atomic<bool> thrown{false};
  failing.on_record = [&](const std::string&, const Record& r) {
    if (r.data == "z-3" && !thrown.exchange(true)) throw std::runtime_error("poison z-3");
  };
  put_records(poisoned, "z", 6);
  WorkerOptions options2 = test_options();
  options2.metrics = registry;
  RunningWorker again(poisoned, store2, second, failing, options2);
  ASSERT_TRUE(eventually([&] { return metric(*registry, "kclpp_processor_restarts_total", "stream", "p") == 1.0; }));
  again.stop();
}

}  // namespace
