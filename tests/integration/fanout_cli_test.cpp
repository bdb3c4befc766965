// Enhanced fan-out end to end, as a user runs it, against kinesis-local 0.6.2 (which
// implements RegisterStreamConsumer and SubscribeToShard on its plain-http port; it sends an
// event about once a second):
//   - `kclpp get --fan-out`: every record, as the consumer kclpp-get (registered) or as a
//     given --consumer-arn (nothing registered), and --follow;
//   - kclpp::main with --fan-out: every record processed and checkpointed; two applications
//     with two consumer names each see every record;
//   - `kclpp daemon` with retrievalMode = FANOUT and fanoutConfig.consumerName.
// They need the SubscribeToShard reader of issue 13 (aws::KinesisSubscriber and the native
// fan-out reading); until it is built they fail with "enhanced fan-out: not built yet".

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e_support.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::test::eventually;
using kclpp::test::Kinesalite;
using kclpp::test::KinesisServer;
using kclpp::test::RunResult;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;
using Json = nlohmann::json;

std::unique_ptr<Subprocess> spawn(const std::vector<std::string>& argv) {
  kclpp::test::SpawnOptions options;
  options.env = kclpp::test::tool_env();
  return std::make_unique<Subprocess>(argv, options);
}

// SIGTERM (or `sig`); the program must exit 0 within `bound`.
void expect_clean_exit(Subprocess& p, int sig = SIGTERM, std::chrono::milliseconds bound = 15s) {
  ASSERT_EQ(::kill(p.pid(), sig), 0);
  const auto status = p.wait(bound);
  ASSERT_TRUE(status.has_value()) << "still running " << bound.count() << " ms after signal " << sig
                                   << "; stderr:\n"
                                   << p.stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "; stderr:\n" << p.stderr_text();
}

// text -> sequence number of the JSON lines `kclpp get` printed; every line must parse.
std::map<std::string, std::string> printed(const std::string& out) {
  std::map<std::string, std::string> texts;
  for (const auto& line : kclpp::test::split_lines(out)) {
    if (line.empty()) continue;
    const Json j = Json::parse(line, nullptr, false);
    if (!j.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    texts[j.value("text", "")] = j.value("sequenceNumber", "");
  }
  return texts;
}

// Data of the records kclpp_echo logged ("... data=D").
std::set<std::string> echoed_data(const std::string& err) {
  static const std::regex line(R"((shardId-\d+) seq=\d+ sub=\d+ key=\S* data=(.*)$)");
  std::set<std::string> out;
  for (const auto& l : kclpp::test::split_lines(err)) {
    std::smatch m;
    if (std::regex_search(l, m, line)) out.insert(m[2]);
  }
  return out;
}

bool contains_all(const std::set<std::string>& got, const std::vector<std::string>& want) {
  return std::all_of(want.begin(), want.end(), [&](const auto& w) { return got.count(w) != 0; });
}

// Waits until done() (true) or the program exits first (false at once: a worker that failed
// at start-up is not waited for).
bool while_running(Subprocess& p, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return eventually([&] { return done() || p.wait(0ms).has_value(); }, timeout) && done();
}

std::map<std::string, std::string> checkpoint_strs(const std::string& db, const std::string& app,
                                                   const std::string& stream) {
  std::map<std::string, std::string> out;
  for (const auto& [shard, pos] : kclpp::test::sqlite_checkpoints(db, app, stream)) out[shard] = pos.str();
  return out;
}

// A kinesis-local of its own per test, a 2-shard stream with records on both shards.
class FanOutCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Kinesalite>(KinesisServer::KinesisLocal);
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream(stream_, 2);
    client_->wait_for_active(stream_, 10s);
    stream_arn_ = client_->describe_stream_summary(stream_).stream_arn;
  }

  // kclpp COMMAND --endpoint E --region us-east-1 ARGS...
  std::vector<std::string> tool(const std::string& command, std::vector<std::string> args) const {
    std::vector<std::string> argv{KCLPP_TOOL, command, "--endpoint", server_->endpoint(), "--region", "us-east-1"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // PROGRAM --stream S --endpoint E --region us-east-1 --application A --checkpoint-store
  //   sqlite:DB --initial-position TRIM_HORIZON [extra]
  std::vector<std::string> native(const std::string& program, const std::string& application, const std::string& db,
                                  std::vector<std::string> extra) const {
    std::vector<std::string> argv{program,      "--stream",           stream_,
                                  "--endpoint", server_->endpoint(),  "--region",
                                  "us-east-1",  "--application",      application,
                                  "--checkpoint-store", "sqlite:" + db, "--initial-position",
                                  "TRIM_HORIZON"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  // Puts `data`; returns text -> sequence number of every record in the stream, as
  // GetRecords reads them back.
  std::map<std::string, std::string> put(const std::vector<std::string>& data) {
    (void)kclpp::test::put_all(*client_, stream_, data);
    std::map<std::string, std::string> seq_of;
    for (const auto& r : kclpp::test::read_stream(*client_, stream_)) seq_of[r.data] = r.sequence_number.str();
    return seq_of;
  }
  std::vector<std::string> consumer_names() {
    std::vector<std::string> names;
    for (const auto& c : client_->list_stream_consumers(stream_arn_)) names.push_back(c.consumer_name);
    std::sort(names.begin(), names.end());
    return names;
  }

  TempDir dir_{"kclpp-fanout-cli-test"};
  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  std::string stream_ = "fanout";
  std::string stream_arn_;
};

// --- kclpp get --fan-out -------------------------------------------------------------------

TEST_F(FanOutCliTest, GetFanOutPrintsEveryRecordAsConsumerKclppGet) {
  const auto data = kclpp::test::numbered("get", 20);
  const auto expected = put(data);
  const RunResult r = kclpp::test::run_program(tool("get", {"--stream", stream_, "--fan-out", "--timeout-ms", "30000"}),
                                               {}, 45s);
  ASSERT_TRUE(r.status && r.status->exited && r.status->code == 0) << r.describe();
  EXPECT_EQ(printed(r.out), expected) << r.describe();
  EXPECT_LT(r.elapsed, 20s) << "it stops once every shard is caught up, not at the timeout";
  EXPECT_EQ(consumer_names(), std::vector<std::string>{"kclpp-get"});
  EXPECT_EQ(client_->describe_stream_consumer(stream_arn_, "kclpp-get").status, "ACTIVE");
}

TEST_F(FanOutCliTest, GetWithAConsumerArnReadsAsItAndRegistersNothing) {
  const auto mine = aws::ensure_stream_consumer(*client_, stream_, "mine", 10s);
  const auto data = kclpp::test::numbered("arn", 8);
  const auto expected = put(data);
  const RunResult r = kclpp::test::run_program(
      tool("get", {"--stream", stream_, "--consumer-arn", mine.consumer_arn, "--timeout-ms", "30000"}), {}, 45s);
  ASSERT_TRUE(r.status && r.status->exited && r.status->code == 0) << r.describe();
  EXPECT_EQ(printed(r.out), expected) << r.describe();
  EXPECT_EQ(consumer_names(), std::vector<std::string>{"mine"}) << "nothing registered";
}

TEST_F(FanOutCliTest, GetFanOutFollowPrintsNewRecordsUntilSigint) {
  (void)put({"one", "two", "three"});
  auto get = spawn(tool("get", {"--stream", stream_, "--fan-out", "--consumer-name", "follower", "--follow"}));
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    const auto line = get->read_line(20s);
    ASSERT_TRUE(line) << get->stderr_text();
    texts.insert(Json::parse(*line).value("text", ""));
  }
  EXPECT_EQ(texts, (std::set<std::string>{"one", "two", "three"}));
  EXPECT_FALSE(get->wait(2500ms).has_value()) << "--follow exited once caught up: " << get->stderr_text();
  (void)kclpp::test::put_all(*client_, stream_, {"four", "five"}, 3);
  std::set<std::string> later;
  for (int i = 0; i < 2; ++i) {
    const auto line = get->read_line(20s);
    ASSERT_TRUE(line) << get->stderr_text();
    later.insert(Json::parse(*line).value("text", ""));
  }
  EXPECT_EQ(later, (std::set<std::string>{"four", "five"}));
  expect_clean_exit(*get, SIGINT);
  EXPECT_EQ(consumer_names(), std::vector<std::string>{"follower"});
}

// --- kclpp::main --fan-out -------------------------------------------------------------------

TEST_F(FanOutCliTest, NativeWorkerWithFanOutProcessesAndCheckpointsEveryRecord) {
  const auto data = kclpp::test::numbered("native", 30);
  const auto by_shard = kclpp::test::put_all(*client_, stream_, data);
  ASSERT_EQ(by_shard.size(), 2u);
  const std::string db = dir_.file("count.db");
  auto worker = spawn(native(KCLPP_EXAMPLE_COUNT, "count-app", db, {"--fan-out", "--consumer-name", "count-efo"}));
  kclpp::test::PidReaper reaper;
  reaper.add(worker->pid());
  // count checkpoints at the end of every batch: each shard ends at its last record.
  std::map<std::string, std::string> last;
  for (const auto& [shard, seqs] : by_shard) last[shard] = seqs.back();
  ASSERT_TRUE(while_running(*worker, [&] { return checkpoint_strs(db, "count-app", stream_) == last; }, 30s))
      << worker->stderr_text();
  EXPECT_FALSE(kclpp::test::lines_with(worker->stderr_text(), "enhanced fan-out as consumer 'count-efo'").empty())
      << worker->stderr_text();
  EXPECT_EQ(consumer_names(), std::vector<std::string>{"count-efo"});
  expect_clean_exit(*worker);

  std::map<std::string, std::size_t> totals;
  static const std::regex total(R"((shardId-\d+): shutdown requested: (\d+) records)");
  for (const auto& l : kclpp::test::split_lines(worker->stderr_text())) {
    std::smatch m;
    if (std::regex_search(l, m, total)) totals[m[1]] = std::stoul(m[2]);
  }
  std::map<std::string, std::size_t> expected;
  for (const auto& [shard, seqs] : by_shard) expected[shard] = seqs.size();
  EXPECT_EQ(totals, expected) << worker->stderr_text();
}

TEST_F(FanOutCliTest, TwoApplicationsWithTheirOwnConsumersEachSeeEveryRecord) {
  const auto data = kclpp::test::numbered("both", 20);
  (void)kclpp::test::put_all(*client_, stream_, data);
  auto a = spawn(native(KCLPP_EXAMPLE_ECHO, "app-a", dir_.file("a.db"), {"--fan-out"}));
  auto b = spawn(native(KCLPP_EXAMPLE_ECHO, "app-b", dir_.file("b.db"), {"--fan-out"}));
  kclpp::test::PidReaper reaper;
  reaper.add(a->pid());
  reaper.add(b->pid());
  ASSERT_TRUE(while_running(*a, [&] { return contains_all(echoed_data(a->stderr_text()), data); }, 30s))
      << a->stderr_text();
  ASSERT_TRUE(while_running(*b, [&] { return contains_all(echoed_data(b->stderr_text()), data); }, 30s))
      << b->stderr_text();
  EXPECT_EQ(consumer_names(), (std::vector<std::string>{"app-a", "app-b"})) << "one consumer per application";
  expect_clean_exit(*a);
  expect_clean_exit(*b);
}

// --- kclpp daemon, retrievalMode = FANOUT ---------------------------------------------------------

TEST_F(FanOutCliTest, DaemonWithRetrievalModeFanoutReadsAsItsConsumer) {
  const auto data = kclpp::test::numbered("daemon", 12);
  (void)kclpp::test::put_all(*client_, stream_, data);
  const std::string properties = dir_.file("app.properties");
  std::ofstream(properties) << "executableName = " << KCLPP_EXAMPLE_ECHO << "\n"
                            << "streamName = " << stream_ << "\n"
                            << "applicationName = daemon-app\n"
                            << "regionName = us-east-1\n"
                            << "kinesisEndpoint = " << server_->endpoint() << "\n"
                            << "initialPositionInStream = TRIM_HORIZON\n"
                            << "checkpointStore = sqlite:" << dir_.file("daemon.db") << "\n"
                            << "retrievalMode = FANOUT\n"
                            << "fanoutConfig.consumerName = daemon-efo\n";
  auto daemon = spawn({KCLPP_TOOL, "daemon", properties});
  kclpp::test::PidReaper reaper;
  reaper.add(daemon->pid());
  // The children (kclpp_echo in protocol mode) log to stderr, which the daemon passes on.
  ASSERT_TRUE(while_running(*daemon, [&] { return contains_all(echoed_data(daemon->stderr_text()), data); }, 30s))
      << daemon->stderr_text();
  EXPECT_FALSE(kclpp::test::lines_with(daemon->stderr_text(), "enhanced fan-out as consumer 'daemon-efo'").empty())
      << daemon->stderr_text();
  EXPECT_EQ(consumer_names(), std::vector<std::string>{"daemon-efo"});
  expect_clean_exit(*daemon);
}

}  // namespace
