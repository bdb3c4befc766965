// Enhanced fan-out end to end against kinesis-local 0.6.2, the one local Kinesis with
// RegisterStreamConsumer and SubscribeToShard (HTTP/2 with prior knowledge on its plain
// port): the native worker reads every record through subscriptions multiplexed on one
// connection, resumes after its checkpoints, and two consumers read the same stream at
// once, each getting every record. The subscription lifecycle's faults (resharding, the
// initial response, in-stream exceptions, resets, slow consumers) are in
// fan_out_fault_test.cpp, against a fault-injecting server.

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kinesalite_fixture.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::native::FanOutOptions;
using kclpp::native::KinesisStream;
using kclpp::native::Worker;
using kclpp::native::WorkerOptions;
using kclpp::test::Kinesalite;
using kclpp::test::KinesisServer;

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return predicate();
}

// Every record's data per shard, in delivery order. Thread-safe.
class Seen {
 public:
  void add(const std::string& shard, const std::string& data) {
    const std::lock_guard lock(mutex_);
    data_[shard].push_back(data);
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

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> data_;
  std::size_t count_ = 0;
};

class SeenProcessor final : public kclpp::RecordProcessor {
 public:
  explicit SeenProcessor(Seen& seen) : seen_(seen) {}
  void initialize(const std::string& shard_id, const kclpp::ExtendedSequenceNumber&) override { shard_ = shard_id; }
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    for (const auto& r : batch.records) seen_.add(shard_, r.data);
    if (!batch.records.empty()) checkpointer.checkpoint();
  }
  void shard_ended(kclpp::Checkpointer& checkpointer) override { checkpointer.checkpoint(); }
  void lease_lost() override {}

 private:
  Seen& seen_;
  std::string shard_;
};

// Runs a worker's run() on a thread; finish() requests shutdown, joins and reports a throw.
class Background {
 public:
  explicit Background(Worker& worker) : worker_(worker), thread_([this] {
    try {
      worker_.run();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }) {}
  ~Background() {
    if (thread_.joinable()) finish();
  }
  std::string finish() {
    worker_.request_shutdown();
    thread_.join();
    return error_;
  }

 private:
  Worker& worker_;
  std::string error_;
  std::thread thread_;
};

class FanOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Kinesalite>(KinesisServer::KinesisLocal);
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream(stream_, shards_);
    client_->wait_for_active(stream_, 10s);
    dir_ = std::filesystem::temp_directory_path() / ("kclpp-fan-out-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  WorkerOptions options(const std::string& application) const {
    WorkerOptions o;
    o.application = application;
    o.initial_position = aws::StartPosition::trim_horizon();
    o.shard_sync_interval = 1s;
    o.read_retry.initial_backoff = 50ms;
    o.read_retry.max_backoff = 500ms;
    o.shutdown_grace = 5s;
    return o;
  }

  std::unique_ptr<kclpp::native::CheckpointStore> store(const std::string& name) const {
    return kclpp::native::open_checkpoint_store("sqlite:" + (dir_ / (name + ".db")).string());
  }

  // Puts `count` records "<prefix>-<i>"; returns per shard the data in put order.
  std::map<std::string, std::vector<std::string>> put(const std::string& prefix, int count) {
    std::map<std::string, std::vector<std::string>> out;
    for (int i = 0; i < count; ++i) {
      const std::string data = prefix + "-" + std::to_string(i);
      out[client_->put_record(stream_, data, "pk-" + data).shard_id].push_back(data);
    }
    return out;
  }

  static void merge_into(std::map<std::string, std::vector<std::string>>& all,
                         const std::map<std::string, std::vector<std::string>>& more) {
    for (const auto& [shard, data] : more) all[shard].insert(all[shard].end(), data.begin(), data.end());
  }

  int shards_ = 4;
  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  std::filesystem::path dir_;
  std::string stream_ = "kclpp-fan-out-it";
};

// Over TLS (ALPN h2, as with AWS): every subscription of the worker is a stream of one
// HTTP/2 connection. (Over plain http, Debian 12's libcurl 7.88 cannot multiplex: a
// connection each, see kinesis_subscriber.cpp.)
TEST(FanOutTlsTest, EverySubscriptionOfAWorkerSharesOneConnection) {
  const auto dir = std::filesystem::temp_directory_path() / ("kclpp-fan-out-tls-" + std::to_string(::getpid()));
  const auto certificate = kclpp::test::write_tls_certificate(dir);
  Kinesalite server(certificate);
  KCLPP_REQUIRE_SERVER(server);
  ASSERT_EQ(::setenv("AWS_CA_BUNDLE", (dir / "ca.pem").c_str(), 1), 0);
  aws::KinesisOptions tls = server.client_options();
  tls.endpoint = server.tls_endpoint();
  aws::KinesisClient client(tls);
  const std::string stream = "kclpp-fan-out-tls";
  client.create_stream(stream, 6);
  client.wait_for_active(stream, 10s);
  std::map<std::string, std::vector<std::string>> expected;
  for (int i = 0; i < 60; ++i) {
    const std::string data = "tls-" + std::to_string(i);
    expected[client.put_record(stream, data, "pk-" + data).shard_id].push_back(data);
  }
  auto checkpoints = kclpp::native::open_checkpoint_store("memory:");
  Seen seen;
  KinesisStream source(stream, tls, FanOutOptions{"tls-app", {}});
  WorkerOptions o;
  o.application = "tls-app";
  o.initial_position = aws::StartPosition::trim_horizon();
  o.shutdown_grace = 5s;
  Worker worker(source, *checkpoints, [&](const std::string&) { return std::make_unique<SeenProcessor>(seen); }, o);
  Background runner(worker);
  const bool all = eventually([&] { return seen.count() >= 60; }, 30s);
  const auto stats = source.fan_out_stats();
  EXPECT_EQ(runner.finish(), "");
  ::unsetenv("AWS_CA_BUNDLE");
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  ASSERT_TRUE(all) << seen.count() << "\n" << server.server_log();
  EXPECT_EQ(seen.by_shard(), expected);
  EXPECT_EQ(stats.subscriptions_open, 6);
  EXPECT_EQ(stats.connections_opened, 1);
}

TEST_F(FanOutTest, EveryRecordOnceInOrderThenResumeAfterTheCheckpoints) {
  auto expected = put("before", 80);
  auto checkpoints = store("one");
  Seen seen;
  {
    KinesisStream source(stream_, server_->client_options(), FanOutOptions{"app-one", {}});
    ASSERT_TRUE(source.fan_out());
    EXPECT_NE(source.consumer_arn().find("app-one"), std::string::npos) << source.consumer_arn();
    Worker worker(source, *checkpoints, [&](const std::string&) { return std::make_unique<SeenProcessor>(seen); },
                  options("app-one"));
    Background runner(worker);
    merge_into(expected, put("during", 80));
    const bool all = eventually([&] { return seen.count() >= 160; }, 30s);
    std::this_thread::sleep_for(1500ms);  // one more poll of kinesis-local: nothing extra comes
    EXPECT_EQ(runner.finish(), "");
    ASSERT_TRUE(all) << seen.count() << "\n" << server_->server_log();
    EXPECT_EQ(seen.by_shard(), expected);
  }
  const auto stored = checkpoints->load_all("app-one", stream_);
  EXPECT_EQ(stored.size(), static_cast<std::size_t>(shards_));
  for (const auto& [shard, position] : stored) EXPECT_FALSE(position.is_sentinel()) << shard;

  // A new worker (the consumer is found, not registered again) resumes after them.
  const auto later = put("after-restart", 40);
  Seen again;
  KinesisStream source(stream_, server_->client_options(), FanOutOptions{"app-one", {}});
  Worker worker(source, *checkpoints, [&](const std::string&) { return std::make_unique<SeenProcessor>(again); },
                options("app-one"));
  Background runner(worker);
  const bool resumed = eventually([&] { return again.count() >= 40; }, 30s);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(runner.finish(), "");
  ASSERT_TRUE(resumed) << again.count();
  EXPECT_EQ(again.by_shard(), later);
  EXPECT_EQ(client_->list_stream_consumers(client_->describe_stream_summary(stream_).stream_arn).size(), 1U);
}

// Two applications, each its own consumer (its own 2 MB/s per shard), read the same stream
// at the same time: each gets every record once.
TEST_F(FanOutTest, TwoConsumersEachGetEveryRecordOnce) {
  auto expected = put("both", 60);
  auto store_a = store("a");
  auto store_b = store("b");
  Seen seen_a;
  Seen seen_b;
  KinesisStream source_a(stream_, server_->client_options(), FanOutOptions{"consumer-a", {}});
  KinesisStream source_b(stream_, server_->client_options(), FanOutOptions{"consumer-b", {}});
  ASSERT_NE(source_a.consumer_arn(), source_b.consumer_arn());
  Worker a(source_a, *store_a, [&](const std::string&) { return std::make_unique<SeenProcessor>(seen_a); },
           options("app-a"));
  Worker b(source_b, *store_b, [&](const std::string&) { return std::make_unique<SeenProcessor>(seen_b); },
           options("app-b"));
  Background run_a(a);
  Background run_b(b);
  merge_into(expected, put("more", 60));
  const bool all = eventually([&] { return seen_a.count() >= 120 && seen_b.count() >= 120; }, 30s);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(run_a.finish(), "");
  EXPECT_EQ(run_b.finish(), "");
  ASSERT_TRUE(all) << seen_a.count() << " " << seen_b.count();
  EXPECT_EQ(seen_a.by_shard(), expected);
  EXPECT_EQ(seen_b.by_shard(), expected);
}

// A consumer given by ARN is used as it is; a wrong ARN fails the worker with the
// service's error instead of retrying forever.
TEST_F(FanOutTest, ConsumerArnIsUsedAsGivenAndAnUnknownOneFailsClearly) {
  const std::string stream_arn = client_->describe_stream_summary(stream_).stream_arn;
  const auto consumer = aws::ensure_stream_consumer(*client_, stream_, "by-arn", 20s);
  const auto expected = put("arn", 30);
  auto checkpoints = store("arn");
  Seen seen;
  {
    KinesisStream source(stream_, server_->client_options(), FanOutOptions{{}, consumer.consumer_arn});
    EXPECT_EQ(source.consumer_arn(), consumer.consumer_arn);
    Worker worker(source, *checkpoints, [&](const std::string&) { return std::make_unique<SeenProcessor>(seen); },
                  options("by-arn"));
    Background runner(worker);
    const bool all = eventually([&] { return seen.count() >= 30; }, 30s);
    EXPECT_EQ(runner.finish(), "");
    ASSERT_TRUE(all) << seen.count();
    EXPECT_EQ(seen.by_shard(), expected);
  }
  KinesisStream wrong(stream_, server_->client_options(),
                      FanOutOptions{{}, stream_arn + "/consumer/no-such-consumer:1"});
  auto other = store("wrong");
  Seen none;
  Worker worker(wrong, *other, [&](const std::string&) { return std::make_unique<SeenProcessor>(none); },
                options("wrong"));
  Background runner(worker);
  std::this_thread::sleep_for(3s);
  const std::string error = runner.finish();
  EXPECT_EQ(none.count(), 0U);
  EXPECT_NE(error.find("consumer does not exist"), std::string::npos) << error;
}

}  // namespace
