// The native worker against a real local Kinesis server (kinesalite, and kinesis-local):
// records put with KinesisClient are all delivered, checkpoints land in a SQLite store, and
// a live split then merge is picked up by re-listing, parents before children.

#include "kclpp/native/worker.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kinesalite_fixture.hpp"
#include "worker_support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::ExtendedSequenceNumber;
using kclpp::Sentinel;
using aws::KinesisClient;
using kclpp::native::KinesisStream;
using aws::StartPosition;
using kclpp::native::Worker;
using kclpp::native::WorkerOptions;
using kclpp::test::Kinesalite;
using kclpp::test::KinesisServer;
using kclpp::test::BackgroundWorker;
using kclpp::test::eventually;

// Records every call, per shard, in order. Thread-safe (one processor per shard thread).
class Journal {
 public:
  void add(const std::string& shard, const std::string& what) {
    const std::lock_guard lock(mutex_);
    events_.push_back({shard, what});
  }
  void data(const std::string& shard, const std::string& d) {
    const std::lock_guard lock(mutex_);
    data_[shard].push_back(d);
    ++count_;
  }
  std::size_t count() {
    const std::lock_guard lock(mutex_);
    return count_;
  }
  std::map<std::string, std::vector<std::string>> by_shard() {
    const std::lock_guard lock(mutex_);
    return data_;
  }
  long index_of(const std::string& shard, const std::string& what) {
    const std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < events_.size(); ++i) {
      if (events_[i].first == shard && events_[i].second == what) return static_cast<long>(i);
    }
    return -1;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::string>> events_;
  std::map<std::string, std::vector<std::string>> data_;
  std::size_t count_ = 0;
};

class JournalProcessor final : public kclpp::RecordProcessor {
 public:
  explicit JournalProcessor(Journal& journal) : journal_(journal) {}
  void initialize(const std::string& shard_id, const ExtendedSequenceNumber&) override {
    shard_ = shard_id;
    journal_.add(shard_, "initialize");
  }
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    for (const auto& r : batch.records) journal_.data(shard_, r.data);
    if (!batch.records.empty()) checkpointer.checkpoint();
  }
  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    journal_.add(shard_, "shard_ended");
    checkpointer.checkpoint();
  }
  void lease_lost() override { journal_.add(shard_, "lease_lost"); }

 private:
  Journal& journal_;
  std::string shard_;
};

class WorkerServerTest : public ::testing::TestWithParam<KinesisServer> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Kinesalite>(GetParam());
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<KinesisClient>(server_->client_options());
    client_->create_stream(stream_, 2);
    client_->wait_for_active(stream_, 10s);
    dir_ = std::filesystem::temp_directory_path() /
           ("kclpp-worker-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    store_ = kclpp::native::open_checkpoint_store("sqlite:" + (dir_ / "checkpoints.db").string());
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  WorkerOptions options() const {
    WorkerOptions o;
    o.application = "worker-it";
    o.initial_position = StartPosition::trim_horizon();
    o.idle_time_between_reads = 100ms;
    o.shard_sync_interval = 500ms;
    o.read_retry.initial_backoff = 50ms;
    o.read_retry.max_backoff = 500ms;
    o.shutdown_grace = 5s;
    return o;
  }

  // Puts `count` records "<prefix>-<i>"; returns per shard the data in put order.
  std::map<std::string, std::vector<std::string>> put(const std::string& prefix, int count) {
    std::map<std::string, std::vector<std::string>> out;
    for (int i = 0; i < count; ++i) {
      const std::string data = prefix + "-" + std::to_string(i);
      const auto result = client_->put_record(stream_, data, "pk-" + prefix + "-" + std::to_string(i));
      out[result.shard_id].push_back(data);
    }
    return out;
  }

  static inline int counter_ = 0;
  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<KinesisClient> client_;
  std::unique_ptr<kclpp::native::CheckpointStore> store_;
  std::filesystem::path dir_;
  std::string stream_ = "kclpp-worker-it";
};

void merge_into(std::map<std::string, std::vector<std::string>>& all,
                const std::map<std::string, std::vector<std::string>>& more) {
  for (const auto& [shard, data] : more) all[shard].insert(all[shard].end(), data.begin(), data.end());
}

TEST_P(WorkerServerTest, DeliversEveryRecordOfTwoShardsAndCheckpointsThem) {
  auto expected = put("before", 60);
  KinesisStream source(stream_, server_->client_options());
  Journal journal;
  Worker worker(source, *store_, [&](const std::string&) { return std::make_unique<JournalProcessor>(journal); },
                options());
  BackgroundWorker runner(worker);
  merge_into(expected, put("during", 60));
  const bool all = eventually([&] { return journal.count() >= 120; }, 20s);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(runner.finish(), "");
  ASSERT_TRUE(all) << journal.count() << "\n" << server_->server_log();
  EXPECT_EQ(expected.size(), 2U);
  EXPECT_EQ(journal.by_shard(), expected);
  // The last checkpoint of each shard is its last record, durable in SQLite.
  const auto stored = store_->load_all("worker-it", stream_);
  EXPECT_EQ(stored.size(), 2U);
  for (const auto& [shard, position] : stored) {
    EXPECT_FALSE(position.is_sentinel()) << shard;
  }

  // A second worker on the same store resumes after the checkpoints: only the new records.
  const auto later = put("after-restart", 20);
  Journal second;
  Worker again(source, *store_, [&](const std::string&) { return std::make_unique<JournalProcessor>(second); },
               options());
  BackgroundWorker runner2(again);
  const bool resumed = eventually([&] { return second.count() >= 20; }, 20s);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(runner2.finish(), "");
  ASSERT_TRUE(resumed) << second.count();
  EXPECT_EQ(second.by_shard(), later);
}

TEST_P(WorkerServerTest, LiveSplitThenMergeArePickedUpParentsFirst) {
  KinesisStream source(stream_, server_->client_options());
  Journal journal;
  Worker worker(source, *store_, [&](const std::string&) { return std::make_unique<JournalProcessor>(journal); },
                options());
  BackgroundWorker runner(worker);
  std::map<std::string, std::vector<std::string>> expected = put("a", 30);
  ASSERT_TRUE(eventually([&] { return journal.count() >= 30; }, 20s));

  const auto shards = client_->list_shards(stream_);
  ASSERT_EQ(shards.size(), 2U);
  const std::string parent = shards[0].shard_id;  // [0, 2^127)
  client_->split_shard(stream_, parent, "85070591730234615865843651857942052864");
  client_->wait_for_active(stream_, 10s);
  merge_into(expected, put("b", 30));
  std::vector<std::string> children;
  for (const auto& s : client_->list_shards(stream_)) {
    if (s.parent_shard_id == parent) children.push_back(s.shard_id);
  }
  ASSERT_EQ(children.size(), 2U);
  std::sort(children.begin(), children.end());
  ASSERT_TRUE(eventually([&] { return journal.index_of(children[1], "initialize") >= 0; }, 20s));
  client_->merge_shards(stream_, children[0], children[1]);
  client_->wait_for_active(stream_, 10s);
  merge_into(expected, put("c", 30));
  std::string merged;
  for (const auto& s : client_->list_shards(stream_)) {
    if (s.parent_shard_id == children[0] && s.adjacent_parent_shard_id == children[1]) merged = s.shard_id;
  }
  ASSERT_FALSE(merged.empty());

  const bool all = eventually([&] { return journal.count() >= 90; }, 30s);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(runner.finish(), "");
  ASSERT_TRUE(all) << journal.count();
  EXPECT_EQ(journal.by_shard(), expected);
  EXPECT_FALSE(expected[merged].empty());
  // Parents reach SHARD_END before any child starts.
  for (const auto& child : children) {
    EXPECT_LT(journal.index_of(parent, "shard_ended"), journal.index_of(child, "initialize"));
    EXPECT_LT(journal.index_of(child, "shard_ended"), journal.index_of(merged, "initialize"));
  }
  const auto stored = store_->load_all("worker-it", stream_);
  for (const auto& shard : {parent, children[0], children[1]}) {
    ASSERT_EQ(stored.count(shard), 1U) << shard;
    EXPECT_EQ(stored.at(shard), ExtendedSequenceNumber(Sentinel::ShardEnd)) << shard;
  }
}

INSTANTIATE_TEST_SUITE_P(Servers, WorkerServerTest,
                         ::testing::Values(KinesisServer::Kinesalite, KinesisServer::KinesisLocal),
                         [](const auto& param_info) {
                           std::string name = kclpp::test::server_name(param_info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
