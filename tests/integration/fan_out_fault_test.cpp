// The enhanced fan-out subscription lifecycle under faults (issue 13), against the
// fault-injecting SubscribeToShard server (tests/node/fanout_server.js, fanout_server_fixture.hpp)
// in front of kinesalite: the native worker, reading through KinesisStream with
// FanOutOptions, processes every record put exactly once per shard and in order whatever the
// server does (an initial response, subscriptions it ends, in-stream exceptions and errors,
// reset streams and connections, corrupt frames, rejections, resharding, stalls), and the
// server's statistics show how it got there: how many subscriptions, from which
// StartingPosition (after the continuation of the last event handed on), how far apart. A
// slow reader holds the server back through HTTP/2 flow control; a worker that shuts down
// cancels its streams so the next owner subscribes at once.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "fanout_server_fixture.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/aws/kinesis_subscriber.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/error.hpp"
#include "worker_support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::test::BackgroundWorker;
using kclpp::test::eventually;
using kclpp::test::Seen;
using kclpp::test::SeenProcessor;
using kclpp::native::FanOutOptions;
using kclpp::native::KinesisStream;
using kclpp::native::StreamSource;
using kclpp::native::Worker;
using kclpp::native::WorkerOptions;
using kclpp::test::FanOutServer;
using kclpp::test::FanOutServerOptions;
using nlohmann::json;
using PerShard = std::map<std::string, std::vector<std::string>>;

// A fan-out source with the subscriber options a test chooses (KinesisStream keeps the
// defaults: a 35 s stall timeout, 4 MiB of buffer per subscription). Polling calls (the
// shard list) go through a KinesisStream.
class TunedFanOutStream final : public StreamSource {
 public:
  TunedFanOutStream(const std::string& stream, std::string consumer_arn, aws::SubscriberOptions options)
      : polling_(stream, options.kinesis), consumer_arn_(std::move(consumer_arn)), subscriber_(std::move(options)) {}
  [[nodiscard]] const std::string& stream_name() const noexcept override { return polling_.stream_name(); }
  [[nodiscard]] std::unique_ptr<kclpp::native::StreamConnection> connect() override { return polling_.connect(); }
  [[nodiscard]] bool fan_out() const noexcept override { return true; }
  [[nodiscard]] std::unique_ptr<aws::ShardSubscription> subscribe(const std::string& shard_id,
                                                                  const aws::StartPosition& position) override {
    return subscriber_.subscribe(consumer_arn_, shard_id, position);
  }

 private:
  KinesisStream polling_;
  std::string consumer_arn_;
  aws::KinesisSubscriber subscriber_;
};

// --- the server's statistics ----------------------------------------------------------------

// The SubscribeToShard requests for `shard`, in order.
std::vector<json> subscriptions_of(const json& stats, const std::string& shard) {
  std::vector<json> out;
  for (const json& s : stats.at("subscriptions")) {
    if (s.at("shard") == shard) out.push_back(s);
  }
  return out;
}

std::string position_of(const json& subscription) {
  const json& p = subscription.at("position");
  return p.at("type").get<std::string>() +
         (p.at("sequenceNumber").is_null() ? "" : " " + p.at("sequenceNumber").get<std::string>());
}

std::int64_t started_at(const json& subscription) { return subscription.at("startedAt").get<std::int64_t>(); }

// Every subscription after the first starts where the one before left off: after its last
// continuation when it streamed (the last event handed on), or where it was asked to start
// when it was rejected (nothing was read). `first` is where the first one starts.
void expect_each_resumes_after_the_last(const std::vector<json>& subs, const std::string& first) {
  ASSERT_FALSE(subs.empty());
  EXPECT_EQ(position_of(subs[0]), first);
  for (std::size_t i = 1; i < subs.size(); ++i) {
    const json& before = subs[i - 1];
    const std::string expected = before.at("end") == "rejected"
                                     ? position_of(before)
                                     : "AFTER_SEQUENCE_NUMBER " + before.at("continuation").get<std::string>();
    EXPECT_EQ(position_of(subs[i]), expected) << "subscription " << i << " of " << subs[i].at("shard") << ": "
                                              << subs[i].dump() << "\nafter " << before.dump();
  }
}

// SubscribeToShard allows one call per second per shard and consumer. The server stamps a
// request when it arrives; the client paces them as it sends them, so arrival jitter of a
// few ms is allowed for.
void expect_paced(const std::vector<json>& subs) {
  for (std::size_t i = 1; i < subs.size(); ++i) {
    EXPECT_GE(started_at(subs[i]) - started_at(subs[i - 1]), 950)
        << "subscriptions " << i - 1 << " and " << i << " of " << subs[i].at("shard");
  }
}

// --- the fixture ----------------------------------------------------------------------------

FanOutServerOptions quick_options() {
  FanOutServerOptions o;
  o.activate = 50ms;
  o.poll = 20ms;
  o.heartbeat = 200ms;
  return o;
}

class FanOutFaultTest : public ::testing::Test {
 protected:
  // Starts the servers; when they run, creates the stream with `shards` shards. Follow with
  // KCLPP_REQUIRE_SERVER(*server_).
  void start(int shards, FanOutServerOptions o = quick_options()) {
    server_ = std::make_unique<FanOutServer>(o);
    if (!server_->available()) return;
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream(stream_, shards);
    client_->wait_for_active(stream_, 10s);
    store_ = kclpp::native::open_checkpoint_store("memory:");
  }

  static WorkerOptions options() {
    WorkerOptions o;
    o.application = "faults";
    o.initial_position = aws::StartPosition::trim_horizon();
    o.shard_sync_interval = 500ms;
    o.read_retry.initial_backoff = 50ms;
    o.read_retry.max_backoff = 500ms;
    o.shutdown_grace = 5s;
    return o;
  }

  std::unique_ptr<KinesisStream> fan_out_stream() const {
    return std::make_unique<KinesisStream>(stream_, server_->client_options(), FanOutOptions{"faults", {}});
  }

  std::unique_ptr<Worker> worker(StreamSource& source, Seen& seen) const {
    return std::make_unique<Worker>(
        source, *store_, [&seen](const std::string&) { return std::make_unique<SeenProcessor>(seen); }, options());
  }

  // Puts `count` records "<prefix>-<i>"; per shard the data in put order.
  PerShard put(const std::string& prefix, int count, std::size_t padding = 0) {
    PerShard out;
    for (int i = 0; i < count; ++i) {
      const std::string data = prefix + "-" + std::to_string(i) + std::string(padding, '.');
      out[client_->put_record(stream_, data, "pk-" + prefix + std::to_string(i)).shard_id].push_back(data);
    }
    return out;
  }

  static void merge_into(PerShard& all, const PerShard& more) {
    for (const auto& [shard, data] : more) all[shard].insert(all[shard].end(), data.begin(), data.end());
  }

  static std::size_t total(const PerShard& data) {
    std::size_t n = 0;
    for (const auto& [shard, d] : data) n += d.size();
    return n;
  }

  // Runs a worker on a fan-out KinesisStream until `seen` holds every record of `expected`
  // (and `linger` longer, for duplicates to show), then shuts it down.
  void read_all(const PerShard& expected, Seen& seen, std::chrono::milliseconds linger = 500ms) {
    const auto source = fan_out_stream();
    const auto w = worker(*source, seen);
    BackgroundWorker runner(*w);
    const bool all = eventually([&] { return seen.count() >= total(expected); }, 20s);
    std::this_thread::sleep_for(linger);
    EXPECT_EQ(runner.finish(), "");
    ASSERT_TRUE(all) << seen.count() << " of " << total(expected) << "\n" << server_->server_log();
  }

  std::string shard(int index) const {
    std::string digits = std::to_string(index);
    return "shardId-" + std::string(12 - digits.size(), '0') + digits;
  }

  std::unique_ptr<FanOutServer> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  std::unique_ptr<kclpp::native::CheckpointStore> store_;
  std::string stream_ = "fan-out-faults";
};

// --- 1. the initial response ----------------------------------------------------------------

// AWS opens every subscription with an initial-response event (kinesis-local does not):
// it carries no records and is skipped, so the first SubscribeToShardEvent is the first one
// handed on, and the subscription is not taken for broken.
TEST_F(FanOutFaultTest, InitialResponseIsSkipped) {
  FanOutServerOptions o = quick_options();
  o.initial_response = true;
  start(2, o);
  KCLPP_REQUIRE_SERVER(*server_);
  const PerShard expected = put("initial", 30);
  Seen seen;
  read_all(expected, seen);
  EXPECT_EQ(seen.by_shard(), expected);
  const json stats = server_->stats();
  for (int i = 0; i < 2; ++i) {
    const auto subs = subscriptions_of(stats, shard(i));
    ASSERT_EQ(subs.size(), 1U) << stats.dump(1);
    EXPECT_EQ(position_of(subs[0]), "TRIM_HORIZON");
    EXPECT_EQ(subs[0].at("end"), "client-closed") << "the worker's shutdown cancels the stream";
  }
}

// --- 2. the service ends subscriptions -------------------------------------------------------

// The service ends every subscription after 5 minutes; here after 2 events, 4 times per
// shard. Each new subscription starts AFTER_SEQUENCE_NUMBER the last continuation, one per
// second per shard, and without backoff (an end is not a failure).
TEST_F(FanOutFaultTest, EndedSubscriptionsResumeAfterTheLastContinuationOncePerSecond) {
  start(2);
  KCLPP_REQUIRE_SERVER(*server_);
  server_->set_faults(json::parse(R"([
      {"rule":"endAfterEvents","events":2,"count":4,"shard":"shardId-000000000000"},
      {"rule":"endAfterEvents","events":2,"count":4,"shard":"shardId-000000000001"},
      {"rule":"recordsPerEvent","max":3,"count":100}])"));
  const PerShard expected = put("ended", 70);
  for (const auto& [shard_id, data] : expected) ASSERT_GE(data.size(), 25U) << shard_id << ": too few for 4 ends";
  Seen seen;
  read_all(expected, seen);
  EXPECT_EQ(seen.by_shard(), expected);
  const json stats = server_->stats();
  for (int i = 0; i < 2; ++i) {
    const auto subs = subscriptions_of(stats, shard(i));
    ASSERT_EQ(subs.size(), 5U) << stats.dump(1);
    for (std::size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(subs[k].at("end"), "ended") << subs[k].dump();
      EXPECT_EQ(subs[k].at("records"), 6) << subs[k].dump();
    }
    expect_each_resumes_after_the_last(subs, "TRIM_HORIZON");
    expect_paced(subs);
    for (std::size_t k = 1; k < subs.size(); ++k) {
      EXPECT_LT(started_at(subs[k]) - subs[k - 1].at("endedAt").get<std::int64_t>(), 1'500)
          << "an ended subscription is renewed within the pacing, without backoff";
    }
  }
}

// --- 3. in-stream failures ------------------------------------------------------------------

// An in-stream exception, an in-stream error, a reset stream and a corrupt frame, each on
// its own shard after 3 events of 2 records: every shard resumes after the last record
// delivered, nothing lost, nothing twice.
TEST_F(FanOutFaultTest, InStreamFailuresResumeAfterTheLastDeliveredRecord) {
  start(4);
  KCLPP_REQUIRE_SERVER(*server_);
  const std::vector<std::pair<json, std::string>> faults{
      {{{"rule", "exceptionAfterEvents"}, {"events", 3}, {"type", "InternalFailureException"}}, "exception"},
      {{{"rule", "errorAfterEvents"}, {"events", 3}, {"code", "InternalError"}}, "error"},
      {{{"rule", "resetAfterEvents"}, {"events", 3}, {"how", "rst"}}, "reset"},
      {{{"rule", "corruptAfterEvents"}, {"events", 3}, {"where", "message"}}, "corrupt"},
  };
  json rules = json::array();
  for (std::size_t i = 0; i < faults.size(); ++i) {
    json rule = faults[i].first;
    rule["shard"] = shard(static_cast<int>(i));
    rules.push_back(rule);
  }
  rules.push_back({{"rule", "recordsPerEvent"}, {"max", 2}, {"count", 100}});
  server_->set_faults(rules);
  const PerShard expected = put("in-stream", 80);
  for (const auto& [shard_id, data] : expected) ASSERT_GE(data.size(), 8U) << shard_id;
  Seen seen;
  read_all(expected, seen);
  EXPECT_EQ(seen.by_shard(), expected);
  const json stats = server_->stats();
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const auto subs = subscriptions_of(stats, shard(static_cast<int>(i)));
    ASSERT_EQ(subs.size(), 2U) << stats.dump(1);
    EXPECT_EQ(subs[0].at("end"), faults[i].second) << subs[0].dump();
    EXPECT_EQ(subs[0].at("records"), 6) << subs[0].dump();
    expect_each_resumes_after_the_last(subs, "TRIM_HORIZON");
    expect_paced(subs);
  }
}

// The whole TCP connection closed with no GOAWAY (a dropped connection): on its own test, as
// with a libcurl that multiplexes plain-http subscriptions (>= 8.0) it drops the other
// shards' streams too. Every shard resumes after its last continuation.
TEST_F(FanOutFaultTest, DroppedConnectionResumesAfterTheLastDeliveredRecord) {
  start(2);
  KCLPP_REQUIRE_SERVER(*server_);
  server_->set_faults(json::parse(R"([
      {"rule":"resetAfterEvents","events":3,"how":"socket","shard":"shardId-000000000000"},
      {"rule":"recordsPerEvent","max":2,"count":100}])"));
  const PerShard expected = put("dropped", 30);
  Seen seen;
  read_all(expected, seen);
  EXPECT_EQ(seen.by_shard(), expected);
  const json stats = server_->stats();
  const auto subs = subscriptions_of(stats, shard(0));
  ASSERT_EQ(subs.size(), 2U) << stats.dump(1);
  EXPECT_EQ(subs[0].at("end"), "reset");
  EXPECT_EQ(subs[0].at("records"), 6);
  for (int i = 0; i < 2; ++i) {
    const auto of_shard = subscriptions_of(stats, shard(i));
    expect_each_resumes_after_the_last(of_shard, "TRIM_HORIZON");
    expect_paced(of_shard);
  }
}

// --- 4. rejections --------------------------------------------------------------------------

// ResourceInUseException (another subscription still open, e.g. a former lease holder's)
// and LimitExceededException (throttling), twice each: the fetcher backs off, at least a
// second between attempts, and subscribes from the same position until it succeeds.
TEST_F(FanOutFaultTest, RejectedSubscriptionsBackOffAndSucceed) {
  start(1);
  KCLPP_REQUIRE_SERVER(*server_);
  server_->set_faults(json::parse(R"([
      {"rule":"reject","type":"ResourceInUseException","count":2},
      {"rule":"reject","type":"LimitExceededException","count":2}])"));
  const PerShard expected = put("rejected", 20);
  Seen seen;
  read_all(expected, seen);
  EXPECT_EQ(seen.by_shard(), expected);
  const json stats = server_->stats();
  const auto subs = subscriptions_of(stats, shard(0));
  ASSERT_EQ(subs.size(), 5U) << stats.dump(1);
  const std::vector<std::string> details{"ResourceInUseException", "ResourceInUseException", "LimitExceededException",
                                         "LimitExceededException"};
  for (std::size_t k = 0; k < details.size(); ++k) {
    EXPECT_EQ(subs[k].at("end"), "rejected");
    EXPECT_EQ(subs[k].at("detail"), details[k]);
  }
  EXPECT_EQ(subs[4].at("records"), 20);
  for (const json& s : subs) EXPECT_EQ(position_of(s), "TRIM_HORIZON");
  expect_paced(subs);
}

// --- 5. resharding --------------------------------------------------------------------------

// A split while the worker reads: the parent's subscription ends with SHARD_END and its
// ChildShards, the worker records SHARD_END, and the children start after it (from
// TRIM_HORIZON). Then the children merge, and the same again.
TEST_F(FanOutFaultTest, SplitAndMergeEndTheParentsThenReadTheChildren) {
  start(1);
  KCLPP_REQUIRE_SERVER(*server_);
  PerShard expected = put("before-split", 20);
  Seen seen;
  const auto source = fan_out_stream();
  const auto w = worker(*source, seen);
  BackgroundWorker runner(*w);
  ASSERT_TRUE(eventually([&] { return seen.count() >= 20; }, 10s)) << seen.count();
  client_->split_shard(stream_, shard(0), "170141183460469231731687303715884105728");
  client_->wait_for_active(stream_, 10s);
  merge_into(expected, put("after-split", 40));
  ASSERT_TRUE(eventually([&] { return seen.count() >= 60; }, 15s)) << seen.count() << "\n" << server_->server_log();
  client_->merge_shards(stream_, shard(1), shard(2));
  client_->wait_for_active(stream_, 10s);
  merge_into(expected, put("after-merge", 20));
  const bool all = eventually([&] { return seen.count() >= 80; }, 15s);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(runner.finish(), "");
  ASSERT_TRUE(all) << seen.count() << "\n" << server_->server_log();
  EXPECT_EQ(expected.size(), 4U);
  EXPECT_EQ(seen.by_shard(), expected);

  const auto checkpoints = store_->load_all("faults", stream_);
  for (int parent : {0, 1, 2}) {
    ASSERT_TRUE(checkpoints.contains(shard(parent)));
    EXPECT_EQ(checkpoints.at(shard(parent)).sentinel(), kclpp::Sentinel::ShardEnd) << shard(parent);
  }
  const json stats = server_->stats();
  const auto ended_at = [&](int parent) {
    const auto subs = subscriptions_of(stats, shard(parent));
    EXPECT_FALSE(subs.empty());
    EXPECT_EQ(subs.back().at("end"), "shard-end") << subs.back().dump();
    return subs.back().at("endedAt").get<std::int64_t>();
  };
  const auto children_start = [&](int child, std::int64_t after) {
    const auto subs = subscriptions_of(stats, shard(child));
    ASSERT_FALSE(subs.empty());
    EXPECT_EQ(position_of(subs[0]), "TRIM_HORIZON");
    EXPECT_GE(started_at(subs[0]), after) << shard(child) << " subscribed before its parent ended";
  };
  const std::int64_t split_end = ended_at(0);
  children_start(1, split_end);
  children_start(2, split_end);
  children_start(3, std::max(ended_at(1), ended_at(2)));
}

// --- 6. a slow consumer ---------------------------------------------------------------------

// What the server may send beyond what the reader took, once it stops reading. Measured with
// libcurl 7.88.1 (Debian 12) on loopback: 7.3 to 9.5 MB over several runs, well under the
// 32 MiB per-stream window libcurl 7.88 advertises (HTTP2_HUGE_WINDOW_SIZE) and under the
// 32 MiB the receive buffer may autotune to here (tcp_rmem): the bound observed is what
// libcurl and the sockets buffer once the stream is paused (on plain http, with this
// libcurl, each subscription has its own connection: kinesis_subscriber.cpp), not the
// window. A libcurl that kept reading a paused stream up to its window would show up to
// ~32 MiB here and fail this bound: then the bound to assert is the window.
constexpr std::int64_t held_back_bound = 16LL << 20;

// A subscription whose reader does not keep up: once its buffer (64 KiB here) is full the
// subscriber pauses the stream and HTTP/2 flow control holds the server back, so the bytes
// the server sent stay bounded while the reader stops; reading again slowly, every record
// comes once and in order.
TEST_F(FanOutFaultTest, SlowReaderHoldsTheServerBackThroughFlowControl) {
  start(1);
  KCLPP_REQUIRE_SERVER(*server_);
  constexpr std::size_t record_bytes = 256 * 1024;
  constexpr int records = 96;  // 24 MiB, 32 MiB in base64
  std::vector<std::string> data;
  for (int batch = 0; batch < records / 16; ++batch) {
    std::vector<aws::PutRecordsEntry> entries;
    for (int i = 0; i < 16; ++i) {
      std::string d = "slow-" + std::to_string(batch * 16 + i) + "-";
      d.resize(record_bytes, static_cast<char>('a' + (batch * 16 + i) % 26));
      data.push_back(d);
      entries.push_back({d, "pk", {}});
    }
    for (const auto& r : client_->put_records(stream_, entries)) ASSERT_EQ(r.error_code, "") << r.error_code;
  }
  const std::string consumer = aws::ensure_stream_consumer(*client_, stream_, "slow", 10s).consumer_arn;
  aws::SubscriberOptions options{server_->client_options()};
  options.buffer_bytes = 64 * 1024;
  aws::KinesisSubscriber subscriber(options);
  auto subscription = subscriber.subscribe(consumer, shard(0), aws::StartPosition::trim_horizon());

  aws::SubscribeToShardEvent event;
  std::vector<std::string> got;
  const auto take = [&] {
    const auto status = subscription->next(event, 5s);
    EXPECT_EQ(status, aws::ShardSubscription::Status::Event);
    for (const auto& r : event.records) got.push_back(r.data);
    return status == aws::ShardSubscription::Status::Event;
  };
  ASSERT_TRUE(take());
  // The reader stops; the server sends until flow control stops it: its byte count settles.
  json stopped;
  std::int64_t sent = -1;
  ASSERT_TRUE(eventually(
      [&] {
        stopped = subscriptions_of(server_->stats(), shard(0)).at(0);
        const std::int64_t now = stopped.at("bytes").get<std::int64_t>();
        const bool settled = now == sent && stopped.at("writeBlocked").get<int>() > 0;
        sent = now;
        if (!settled) std::this_thread::sleep_for(300ms);
        return settled;
      },
      10s))
      << stopped.dump();
  const auto total_bytes = static_cast<std::int64_t>(records * record_bytes * 4 / 3);  // base64
  std::printf("[ flow     ] the server sent %lld of %lld bytes while the reader held 64 KiB and stopped\n",
              static_cast<long long>(sent), static_cast<long long>(total_bytes));
  EXPECT_LT(sent, held_back_bound);
  EXPECT_LT(sent, total_bytes / 2);
  EXPECT_EQ(stopped.at("ended"), false);

  // Reading again, slowly: the server goes on, and every record comes once in order.
  while (got.size() < data.size() && take()) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "records missing, repeated or out of order";
  const json done = subscriptions_of(server_->stats(), shard(0)).at(0);
  EXPECT_GT(done.at("drainWaitMs").get<std::int64_t>(), 200) << done.dump();
  EXPECT_GE(done.at("bytes").get<std::int64_t>(), total_bytes);
}

// --- 7. a shutdown mid-subscription -----------------------------------------------------------

// A worker that shuts down (or loses its leases) cancels its subscriptions: the server sees
// the client close them, so the next owner's subscriptions are not refused with
// ResourceInUseException (which would hold it back until the service's 5-minute end).
TEST_F(FanOutFaultTest, ShutdownCancelsTheStreamsAndTheNextOwnerSubscribesAtOnce) {
  start(2);
  KCLPP_REQUIRE_SERVER(*server_);
  const PerShard first = put("first-owner", 20);
  Seen seen;
  read_all(first, seen, 0ms);
  EXPECT_EQ(seen.by_shard(), first);
  const json before = server_->stats();
  for (int i = 0; i < 2; ++i) {
    const auto subs = subscriptions_of(before, shard(i));
    ASSERT_EQ(subs.size(), 1U) << before.dump(1);
    EXPECT_EQ(subs[0].at("end"), "client-closed") << subs[0].dump();
  }

  const PerShard second = put("next-owner", 20);
  Seen next;
  const auto started = std::chrono::steady_clock::now();
  read_all(second, next, 0ms);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(next.by_shard(), second) << "the next owner resumes after the checkpoints";
  const json after = server_->stats();
  for (int i = 0; i < 2; ++i) {
    const auto subs = subscriptions_of(after, shard(i));
    ASSERT_EQ(subs.size(), 2U) << after.dump(1);
    EXPECT_EQ(subs[1].at("end"), "client-closed") << subs[1].dump();
    // The worker resumes at its checkpoint, the last record the first owner processed, and
    // skips that record (shard_consumer.cpp, as the Java KCL's KinesisDataFetcher).
    EXPECT_EQ(position_of(subs[1]), "AT_SEQUENCE_NUMBER " + subs[0].at("continuation").get<std::string>());
  }
}

// --- 8. stalls ------------------------------------------------------------------------------

aws::SubscriberOptions stall_options(const FanOutServer& server) {
  aws::SubscriberOptions o{server.client_options()};
  o.stall_timeout = 1s;
  return o;
}

// A stream that stops sending (no event, no heartbeat) fails with a "stalled" TransportError
// after stall_timeout, and the subscriber cancels it (the server sees the client close it).
TEST_F(FanOutFaultTest, StalledSubscriptionFailsWithTransportError) {
  start(1);
  KCLPP_REQUIRE_SERVER(*server_);
  (void)put("stall", 3);
  const std::string consumer = aws::ensure_stream_consumer(*client_, stream_, "stall", 10s).consumer_arn;
  server_->set_faults(json::parse(R"([{"rule":"delayEvents","ms":4000}])"));
  aws::KinesisSubscriber subscriber(stall_options(*server_));
  auto subscription = subscriber.subscribe(consumer, shard(0), aws::StartPosition::trim_horizon());
  aws::SubscribeToShardEvent event;
  const auto started = std::chrono::steady_clock::now();
  std::string error;
  try {
    while (subscription->next(event, 5s) == aws::ShardSubscription::Status::Timeout) {
    }
  } catch (const kclpp::TransportError& e) {
    error = e.what();
    EXPECT_NE(e.retry(), kclpp::Retry::No);
  }
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_NE(error.find("stalled"), std::string::npos) << error;
  EXPECT_GE(waited, 900ms);
  EXPECT_LT(waited, 3s);
  ASSERT_TRUE(eventually([&] { return subscriptions_of(server_->stats(), shard(0)).at(0).at("ended") == true; }, 5s));
  EXPECT_EQ(subscriptions_of(server_->stats(), shard(0)).at(0).at("end"), "client-closed");
}

// The worker's fetcher takes a stall as a dropped subscription: it subscribes again from
// the same place and every record still comes once.
TEST_F(FanOutFaultTest, WorkerResubscribesAfterAStall) {
  start(1);
  KCLPP_REQUIRE_SERVER(*server_);
  server_->set_faults(json::parse(R"([{"rule":"recordsPerEvent","max":2,"count":3},
                                      {"rule":"delayEvents","ms":3000}])"));
  const PerShard expected = put("stalled", 10);
  const std::string consumer = aws::ensure_stream_consumer(*client_, stream_, "faults", 10s).consumer_arn;
  TunedFanOutStream source(stream_, consumer, stall_options(*server_));
  Seen seen;
  {
    const auto w = worker(source, seen);
    BackgroundWorker runner(*w);
    const bool all = eventually([&] { return seen.count() >= 10; }, 15s);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(runner.finish(), "");
    ASSERT_TRUE(all) << seen.count() << "\n" << server_->server_log();
  }
  EXPECT_EQ(seen.by_shard(), expected);
  const json stats = server_->stats();
  const auto subs = subscriptions_of(stats, shard(0));
  ASSERT_EQ(subs.size(), 2U) << stats.dump(1);
  EXPECT_EQ(subs[0].at("end"), "client-closed");
  EXPECT_EQ(subs[0].at("records"), 0) << "nothing was sent before the stall";
  EXPECT_EQ(position_of(subs[1]), "TRIM_HORIZON") << "nothing was handed on: the round's start again";
  expect_paced(subs);
}

}  // namespace
