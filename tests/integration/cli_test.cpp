// End to end, as a user runs them, against a local Kinesis server each test starts:
//   - the `kclpp` tool: create-stream, shards, put, get (--follow), and its errors;
//   - kclpp::main in native mode (the examples with --stream): every record, checkpoints
//     in SQLite, SIGTERM exits 0, SIGHUP re-lists shards after a split, --help, bad
//     options, a second worker on the same application and store refuses to start;
//   - kclpp::main in protocol mode (no arguments): a short MultiLangDaemon transcript.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e_support.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/processor/base64.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::test::eventually;
using kclpp::test::Kinesalite;
using kclpp::test::RunResult;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;
using Json = nlohmann::json;

std::vector<Json> json_lines(const std::string& text) {
  std::vector<Json> out;
  for (const auto& line : kclpp::test::split_lines(text)) {
    if (line.empty()) continue;
    out.push_back(Json::parse(line, nullptr, false));
  }
  return out;
}

std::string b64(std::string_view data) {
  std::string out;
  kclpp::base64_encode(data, out);
  return out;
}

::testing::AssertionResult exited_with(const RunResult& r, int code) {
  if (r.status && r.status->exited && r.status->code == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit code " << code << ", got " << r.describe();
}

std::unique_ptr<Subprocess> spawn(const std::vector<std::string>& argv,
                                  std::vector<std::string> env = kclpp::test::tool_env()) {
  kclpp::test::SpawnOptions options;
  options.env = std::move(env);
  return std::make_unique<Subprocess>(argv, options);
}

// SIGTERM (or `sig`); the program must exit 0 within `bound`.
void expect_clean_exit(Subprocess& p, int sig = SIGTERM, std::chrono::milliseconds bound = 10s) {
  ASSERT_EQ(::kill(p.pid(), sig), 0);
  const auto status = p.wait(bound);
  ASSERT_TRUE(status.has_value()) << "still running " << bound.count() << " ms after signal " << sig
                                   << "; stderr:\n"
                                   << p.stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "; stderr:\n" << p.stderr_text();
}

// A test with a kinesalite of its own and a client on it.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Kinesalite>();
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
  }
  void create(const std::string& stream, int shards) {
    client_->create_stream(stream, shards);
    client_->wait_for_active(stream, 10s);
  }
  // kclpp COMMAND --endpoint E ARGS...
  std::vector<std::string> tool(const std::string& command, std::vector<std::string> args) const {
    std::vector<std::string> argv{KCLPP_TOOL, command, "--endpoint", server_->endpoint()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // PROGRAM [leading] --stream S --endpoint E --region us-east-1 --application A
  //   --checkpoint-store sqlite:DB --initial-position TRIM_HORIZON --idle-time-ms 200 [extra]
  std::vector<std::string> native(const std::string& program, std::vector<std::string> leading,
                                  const std::string& stream, const std::string& application,
                                  const std::string& db, std::vector<std::string> extra = {}) const {
    std::vector<std::string> argv{program};
    argv.insert(argv.end(), leading.begin(), leading.end());
    for (const std::string& a :
         {std::string("--stream"), stream, std::string("--endpoint"), server_->endpoint(), std::string("--region"),
          std::string("us-east-1"), std::string("--application"), application, std::string("--checkpoint-store"),
          "sqlite:" + db, std::string("--initial-position"), std::string("TRIM_HORIZON"),
          std::string("--idle-time-ms"), std::string("200")})
      argv.push_back(a);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  TempDir dir_{"kclpp-cli-test"};
  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
};

// Data of the records kclpp_echo logged ("... data=D"), by shard.
std::map<std::string, std::vector<std::string>> echoed(const std::string& err) {
  std::map<std::string, std::vector<std::string>> out;
  static const std::regex line(R"((shardId-\d+) seq=\d+ sub=\d+ key=\S* data=(.*)$)");
  for (const auto& l : kclpp::test::split_lines(err)) {
    std::smatch m;
    if (std::regex_search(l, m, line)) out[m[1]].push_back(m[2]);
  }
  return out;
}

std::set<std::string> echoed_data(const std::string& err) {
  std::set<std::string> out;
  for (const auto& [shard, data] : echoed(err)) out.insert(data.begin(), data.end());
  return out;
}

bool contains_all(const std::set<std::string>& got, const std::vector<std::string>& want) {
  return std::all_of(want.begin(), want.end(), [&](const auto& w) { return got.count(w) != 0; });
}

std::map<std::string, std::string> checkpoint_strs(const std::string& db, const std::string& app,
                                                   const std::string& stream) {
  std::map<std::string, std::string> out;
  for (const auto& [shard, pos] : kclpp::test::sqlite_checkpoints(db, app, stream)) out[shard] = pos.str();
  return out;
}

// --- the kclpp tool -------------------------------------------------------------------------

TEST_F(CliTest, ToolCreatesListsPutsAndGets) {
  RunResult r = kclpp::test::run_program(tool("create-stream", {"--stream", "tool", "--shards", "2"}), {}, 20s);
  ASSERT_TRUE(exited_with(r, 0));

  r = kclpp::test::run_program(tool("shards", {"--stream", "tool"}), {}, 10s);
  ASSERT_TRUE(exited_with(r, 0));
  const auto shards = json_lines(r.out);
  ASSERT_EQ(shards.size(), 2u) << r.out;
  std::set<std::string> shard_ids;
  for (const auto& s : shards) {
    ASSERT_TRUE(s.is_object()) << r.out;
    shard_ids.insert(s.value("shardId", ""));
    EXPECT_EQ(s.value("open", false), true) << s.dump();
    EXPECT_TRUE(s.contains("startingHashKey") && s.contains("endingHashKey")) << s.dump();
  }
  EXPECT_EQ(shard_ids, (std::set<std::string>{"shardId-000000000000", "shardId-000000000001"}));

  // put: one record per stdin line; --verbose prints where each went.
  std::vector<std::string> lines;
  std::string input;
  for (int i = 0; i < 12; ++i) {
    lines.push_back("line " + std::to_string(i) + " \xC3\xA9t\xC3\xA9");  // UTF-8 text
    input += lines.back() + "\n";
  }
  r = kclpp::test::run_program(tool("put", {"--stream", "tool", "--verbose"}), input, 20s);
  ASSERT_TRUE(exited_with(r, 0));
  const auto placed = json_lines(r.out);
  ASSERT_EQ(placed.size(), lines.size()) << r.out;
  std::map<std::string, std::string> seq_of;  // line -> sequence number
  for (std::size_t i = 0; i < placed.size(); ++i) {
    ASSERT_TRUE(placed[i].is_object()) << r.out;
    EXPECT_EQ(shard_ids.count(placed[i].value("shardId", "")), 1u) << placed[i].dump();
    const std::string seq = placed[i].value("sequenceNumber", "");
    EXPECT_FALSE(seq.empty());
    EXPECT_EQ(seq.find_first_not_of("0123456789"), std::string::npos) << seq;
    seq_of[lines[i]] = seq;
  }

  // Binary (not UTF-8) data, put by another client.
  const std::string binary("\xFF\xFE\x00\x01\x80", 5);
  const auto bin = client_->put_record("tool", binary, "binary-key");

  // get --from TRIM_HORIZON: every record, then it exits by itself (caught up).
  r = kclpp::test::run_program(tool("get", {"--stream", "tool", "--from", "TRIM_HORIZON"}), {}, 20s);
  ASSERT_TRUE(exited_with(r, 0));
  EXPECT_LT(r.elapsed, 10s);
  const auto got = json_lines(r.out);
  ASSERT_EQ(got.size(), lines.size() + 1) << r.out;
  std::set<std::string> seen;
  for (const auto& j : got) {
    ASSERT_TRUE(j.is_object()) << r.out;
    const std::string seq = j.value("sequenceNumber", "");
    if (seq == bin.sequence_number) {
      EXPECT_FALSE(j.contains("text")) << "binary data must not get a text field: " << j.dump();
      EXPECT_EQ(j.value("data", ""), b64(binary)) << j.dump();
      EXPECT_EQ(j.value("partitionKey", ""), "binary-key");
      EXPECT_EQ(j.value("shardId", ""), bin.shard_id);
      continue;
    }
    const std::string text = j.value("text", "");
    ASSERT_EQ(seq_of.count(text), 1u) << "unexpected record " << j.dump();
    EXPECT_EQ(seq_of[text], seq) << j.dump();
    EXPECT_EQ(j.value("data", ""), b64(text)) << j.dump();
    EXPECT_TRUE(j.contains("approximateArrivalTimestamp")) << j.dump();
    seen.insert(text);
  }
  EXPECT_EQ(seen.size(), lines.size());
}

TEST_F(CliTest, GetFollowKeepsReadingUntilSigint) {
  create("follow", 1);
  (void)kclpp::test::put_all(*client_, "follow", {"one", "two", "three"});
  auto get = spawn(tool("get", {"--stream", "follow", "--follow"}));
  std::vector<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    const auto line = get->read_line(10s);
    ASSERT_TRUE(line) << get->stderr_text();
    texts.push_back(Json::parse(*line).value("text", ""));
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"one", "two", "three"}));
  // Caught up, it keeps going.
  EXPECT_FALSE(get->wait(1500ms).has_value()) << "get --follow exited once caught up";
  (void)kclpp::test::put_all(*client_, "follow", {"four", "five"});
  for (const char* want : {"four", "five"}) {
    const auto line = get->read_line(10s);
    ASSERT_TRUE(line) << get->stderr_text();
    EXPECT_EQ(Json::parse(*line).value("text", ""), want);
  }
  expect_clean_exit(*get, SIGINT, 5s);
}

TEST_F(CliTest, ToolErrorsNameTheStreamAndFailFast) {
  create("exists", 1);
  for (const auto& argv : {tool("get", {"--stream", "no-such-stream"}), tool("shards", {"--stream", "no-such-stream"}),
                           tool("put", {"--stream", "no-such-stream"})}) {
    const RunResult r = kclpp::test::run_program(argv, "x\n", 10s);
    EXPECT_TRUE(exited_with(r, 1)) << argv[1];
    EXPECT_NE(r.err.find("no-such-stream"), std::string::npos) << argv[1] << ": " << r.describe();
    EXPECT_LT(r.elapsed, 5s) << argv[1];
  }
  // Nothing listens there: exit 1 quickly, not after a long retry schedule.
  const std::string dead = "http://127.0.0.1:" + std::to_string(kclpp::test::unused_port());
  for (const char* command : {"shards", "get", "put"}) {
    const RunResult r = kclpp::test::run_program({KCLPP_TOOL, command, "--endpoint", dead, "--stream", "exists"},
                                                 "x\n", 30s);
    EXPECT_TRUE(exited_with(r, 1)) << command;
    EXPECT_LT(r.elapsed, 5s) << command << ": " << r.describe();
    EXPECT_NE(r.err.find("127.0.0.1"), std::string::npos) << command << ": " << r.describe();
  }
  // Usage errors.
  RunResult r = kclpp::test::run_program({KCLPP_TOOL, "frobnicate"}, {}, 10s);
  EXPECT_TRUE(exited_with(r, 1));
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.describe();
  r = kclpp::test::run_program(tool("get", {"--stream", "exists", "--bogus"}), {}, 10s);
  EXPECT_TRUE(exited_with(r, 1));
  EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.describe();
  r = kclpp::test::run_program(tool("get", {}), {}, 10s);
  EXPECT_TRUE(exited_with(r, 1));
  EXPECT_NE(r.err.find("--stream"), std::string::npos) << r.describe();
}

// --- kclpp::main, native mode ------------------------------------------------------------------

TEST_F(CliTest, CountNativeReadsEverythingCheckpointsAndStopsOnSigterm) {
  create("count", 2);
  const auto data = kclpp::test::numbered("count", 30);
  const auto put = kclpp::test::put_all(*client_, "count", data);
  ASSERT_EQ(put.size(), 2u);
  const std::string db = dir_.file("count.db");
  auto worker = spawn(native(KCLPP_EXAMPLE_COUNT, {}, "count", "count-app", db));
  kclpp::test::PidReaper reaper;

  // count checkpoints at the end of every batch: each shard ends at its last record.
  std::map<std::string, std::string> last;
  for (const auto& [shard, seqs] : put) last[shard] = seqs.back();
  ASSERT_TRUE(eventually([&] { return checkpoint_strs(db, "count-app", "count") == last; }, 20s))
      << worker->stderr_text();
  expect_clean_exit(*worker);

  // The totals it logs on shutdown add up to every record, per shard.
  std::map<std::string, std::size_t> totals;
  static const std::regex total(R"((shardId-\d+): shutdown requested: (\d+) records)");
  const std::string err = worker->stderr_text();
  for (const auto& l : kclpp::test::split_lines(err)) {
    std::smatch m;
    if (std::regex_search(l, m, total)) totals[m[1]] = std::stoul(m[2]);
  }
  std::map<std::string, std::size_t> expected;
  for (const auto& [shard, seqs] : put) expected[shard] = seqs.size();
  EXPECT_EQ(totals, expected) << err;
  EXPECT_EQ(kclpp::test::lines_with(err, "lease lost").size(), 2u) << err;
  EXPECT_EQ(checkpoint_strs(db, "count-app", "count"), last);
}

TEST_F(CliTest, EchoNativeSighupRelistsShardsAfterASplit) {
  create("split", 1);
  const auto before = kclpp::test::numbered("before", 6);
  const auto parent = kclpp::test::put_all(*client_, "split", before);
  const std::string db = dir_.file("split.db");
  // Re-listing on a timer would take an hour: only SIGHUP (or the parent's end) does it.
  auto worker = spawn(native(KCLPP_EXAMPLE_ECHO, {"1"}, "split", "split-app", db, {"--shard-sync-ms", "3600000"}));
  ASSERT_TRUE(eventually([&] { return contains_all(echoed_data(worker->stderr_text()), before); }, 20s))
      << worker->stderr_text();

  client_->split_shard("split", "shardId-000000000000", "170141183460469231731687303715884105728");
  client_->wait_for_active("split", 10s);
  const auto after = kclpp::test::numbered("after", 10);
  const auto children = kclpp::test::put_all(*client_, "split", after, before.size());
  ASSERT_EQ(children.count("shardId-000000000000"), 0u) << "records after the split go to the children";

  ASSERT_EQ(::kill(worker->pid(), SIGHUP), 0);
  EXPECT_TRUE(worker->wait_stderr("SIGHUP: re-listing shards", 5s)) << worker->stderr_text();
  ASSERT_TRUE(eventually([&] { return contains_all(echoed_data(worker->stderr_text()), after); }, 20s))
      << worker->stderr_text();
  EXPECT_FALSE(worker->wait(0ms).has_value()) << "SIGHUP must not end the worker";

  // Each child's records were handed to that child's processor.
  const auto by_shard = echoed(worker->stderr_text());
  for (const auto& [shard, seqs] : children) {
    ASSERT_EQ(by_shard.count(shard), 1u) << shard;
    EXPECT_EQ(by_shard.at(shard).size(), seqs.size()) << shard;
  }
  expect_clean_exit(*worker);
  auto cps = checkpoint_strs(db, "split-app", "split");
  EXPECT_EQ(cps["shardId-000000000000"], "SHARD_END");
  for (const auto& [shard, seqs] : children) EXPECT_EQ(cps[shard], seqs.back()) << shard;
  (void)parent;
}

// Two native workers of one application on one SQLite store share the stream through its
// leases (docs/checkpoints.md §5): the second waits while the first holds the only shard,
// takes it as soon as the first releases it on SIGTERM, and resumes after the first's
// checkpoint.
TEST_F(CliTest, TwoWorkersShareOneStoreAndTheSecondTakesOverOnSigterm) {
  create("share", 1);
  (void)kclpp::test::put_all(*client_, "share", {"first"});
  const std::string db = dir_.file("share.db");
  const std::vector<std::string> leases{"--failover-ms", "1500", "--take-interval-ms", "300"};
  auto first = spawn(native(KCLPP_EXAMPLE_ECHO, {}, "share", "share-app", db, leases));
  ASSERT_TRUE(eventually([&] { return echoed_data(first->stderr_text()).count("first") == 1; }, 20s))
      << first->stderr_text();

  auto second = spawn(native(KCLPP_EXAMPLE_ECHO, {}, "share", "share-app", db, leases));
  ASSERT_TRUE(second->wait_stderr("shares its shards through the leases", 10s)) << second->stderr_text();
  std::this_thread::sleep_for(1s);  // several take rounds: the lease is live, nothing to take
  EXPECT_TRUE(echoed_data(second->stderr_text()).empty()) << second->stderr_text();
  EXPECT_EQ(second->stderr_text().find("worker: starting shard"), std::string::npos) << second->stderr_text();

  // Another application on the same store has leases of its own.
  auto other = spawn(native(KCLPP_EXAMPLE_ECHO, {}, "share", "other-app", db, leases));
  EXPECT_TRUE(eventually([&] { return echoed_data(other->stderr_text()).count("first") == 1; }, 20s))
      << other->stderr_text();
  expect_clean_exit(*other);

  expect_clean_exit(*first);
  EXPECT_NE(first->stderr_text().find("leases: released shardId-000000000000"), std::string::npos)
      << first->stderr_text();
  ASSERT_TRUE(second->wait_stderr("worker: starting shard", 5s)) << second->stderr_text();
  (void)kclpp::test::put_all(*client_, "share", {"second"});
  EXPECT_TRUE(eventually([&] { return echoed_data(second->stderr_text()).count("second") == 1; }, 20s))
      << second->stderr_text();
  EXPECT_EQ(echoed_data(second->stderr_text()).count("first"), 0u) << "resumed after the checkpoint";
  expect_clean_exit(*second);
}

TEST(CliOptionsTest, HelpDocumentsEveryOption) {
  const std::set<std::string> expected{"--stream",        "--endpoint",         "--region",
                                       "--profile",       "--application",      "--checkpoint-store",
                                       "--initial-position", "--shards",        "--max-records",
                                       "--idle-time-ms",  "--shard-sync-ms",    "--shutdown-grace-ms",
                                       "--on-error",      "--deliver-empty-batches", "--help",
                                       "--lease-store",   "--worker-id",        "--failover-ms",
                                       "--max-leases",    "--max-leases-to-steal", "--take-interval-ms",
                                       "--cleanup-leases", "--dynamodb-endpoint", "--fan-out",
                                       "--consumer-name", "--consumer-arn",  "--log-to",
                                       "--metrics-listen", "--statsd",      "--statsd-prefix",
                                       "--statsd-interval-ms", "--processor-timeout", "--on-processor-timeout",
                                       "--stall-timeout"};
  for (const char* program : {KCLPP_EXAMPLE_ECHO, KCLPP_EXAMPLE_COUNT}) {
    const RunResult r = kclpp::test::run_program({program, "--help"}, {}, 10s);
    ASSERT_TRUE(exited_with(r, 0)) << program;
    const std::string help = r.out + r.err;
    std::set<std::string> documented;
    static const std::regex option(R"(^\s+(--[a-z-]+))");
    for (const auto& l : kclpp::test::split_lines(help)) {
      std::smatch m;
      if (std::regex_search(l, m, option)) documented.insert(m[1]);
    }
    EXPECT_EQ(documented, expected) << program << " --help:\n" << help;
    // Each option line says what it does.
    for (const auto& l : kclpp::test::split_lines(help)) {
      std::smatch m;
      if (std::regex_search(l, m, option)) {
        EXPECT_GT(l.size(), m[0].length() + 10) << "undocumented: " << l;
      }
    }
    EXPECT_NE(help.find("SIGHUP"), std::string::npos) << help;
  }
}

TEST(CliOptionsTest, BadOptionsExitOneNamingTheOption) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(kclpp::test::unused_port());
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--stream", "s", "--endpoint", dead, "--bogus"}, "--bogus"},
      {{"--stream", "s", "--endpoint", dead, "--max-records", "0"}, "--max-records"},
      {{"--stream", "s", "--endpoint", dead, "--max-records", "many"}, "--max-records"},
      {{"--stream", "s", "--endpoint", dead, "--initial-position", "SOMEWHERE"}, "--initial-position"},
      {{"--stream", "s", "--endpoint", dead, "--shards", "0,x"}, "--shards"},
      {{"--stream", "s", "--endpoint", dead, "--on-error", "explode"}, "--on-error"},
      {{"--stream", "s", "--endpoint", dead, "--log-to", "journal"}, "--log-to"},
      {{"--stream", "s", "--endpoint", dead, "--idle-time-ms", "-5"}, "--idle-time-ms"},
      {{"--stream", "s", "--endpoint", dead, "--application", ""}, "--application"},
      {{"--stream", "s", "--endpoint", dead, "stray"}, "stray"},
      {{"--stream"}, "--stream"},
      {{"--endpoint", dead}, "--endpoint"},  // native-only option in protocol mode
      {{"--checkpoint-store", "sqlite:x.db"}, "--checkpoint-store"},
      {{"--worker-id", "w1"}, "--worker-id"},  // a lease option in protocol mode
      {{"--stream", "s", "--endpoint", dead, "--failover-ms", "0"}, "'--failover-ms': '0'"},
      {{"--stream", "s", "--endpoint", dead, "--max-leases", "-1"}, "'--max-leases': '-1'"},
      {{"--stream", "s", "--endpoint", dead, "--max-leases-to-steal", "0"}, "'--max-leases-to-steal': '0'"},
      {{"--stream", "s", "--endpoint", dead, "--take-interval-ms", "soon"}, "'--take-interval-ms': 'soon'"},
      {{"--stream", "s", "--endpoint", dead, "--checkpoint-store", "sqlite:a.db", "--lease-store", "sqlite:b.db"},
       "--checkpoint-store and --lease-store"},
      {{"--stream", "s", "--endpoint", dead, "--dynamodb-endpoint", dead}, "--dynamodb-endpoint"},
  };
  for (const auto& [args, needle] : cases) {
    std::vector<std::string> argv{KCLPP_EXAMPLE_COUNT};
    argv.insert(argv.end(), args.begin(), args.end());
    const RunResult r = kclpp::test::run_program(argv, {}, 10s);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_TRUE(exited_with(r, 1)) << joined;
    EXPECT_NE(r.err.find(needle), std::string::npos) << joined << "\n" << r.describe();
    EXPECT_LT(r.elapsed, 5s) << joined;
  }
}

TEST_F(CliTest, NativeModeUnknownStreamIsAnErrorNamingIt) {
  const RunResult r = kclpp::test::run_program(
      native(KCLPP_EXAMPLE_ECHO, {}, "no-such-stream", "app", dir_.file("x.db")), {}, 30s);
  EXPECT_TRUE(exited_with(r, 1));
  EXPECT_NE(r.err.find("no-such-stream"), std::string::npos) << r.describe();
  EXPECT_LT(r.elapsed, 15s) << r.describe();
}

TEST_F(CliTest, DaemonWithAnUnknownStreamIsAnErrorNamingIt) {
  const std::string path = dir_.file("app.properties");
  {
    std::ofstream out(path);
    out << "executableName = " << KCLPP_EXAMPLE_ECHO << "\nstreamName = no-such-stream\n"
        << "applicationName = app\nkinesisEndpoint = " << server_->endpoint()
        << "\nregionName = us-east-1\ncheckpointStore = sqlite:" << dir_.file("x.db") << "\n";
  }
  const RunResult r = kclpp::test::run_program({KCLPP_TOOL, "daemon", path}, {}, 30s);
  EXPECT_TRUE(exited_with(r, 1));
  EXPECT_NE(r.err.find("no-such-stream"), std::string::npos) << r.describe();
  EXPECT_LT(r.elapsed, 15s) << r.describe();
}

// --- kclpp::main, protocol mode ------------------------------------------------------------

TEST(CliProtocolModeTest, EchoSpeaksTheProtocolWithNoArguments) {
  kclpp::test::SpawnOptions options;
  options.env = kclpp::test::tool_env("info", {"KCLPP_ECHO_CHECKPOINT_EVERY=100"});
  Subprocess echo({KCLPP_EXAMPLE_ECHO}, options);
  auto exchange = [&](const std::string& line) {
    EXPECT_TRUE(echo.write_line(line)) << line;
    return echo.read_line(10s).value_or("<nothing: " + echo.stderr_text() + ">");
  };
  // The processor is made at initialize, for the shard it names.
  EXPECT_EQ(exchange(R"({"action":"initialize","shardId":"shardId-000000000007","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0})"),
            R"({"action":"status","responseFor":"initialize"})");
  EXPECT_EQ(exchange(R"({"action":"processRecords","records":[)"
                     R"({"data":")" + b64("hello") + R"(","partitionKey":"k1","sequenceNumber":"101","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"},)"
                     R"({"data":")" + b64("world") + R"(","partitionKey":"k2","sequenceNumber":"102","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0})"),
            R"({"action":"status","responseFor":"processRecords"})");
  EXPECT_TRUE(echo.wait_stderr("shardId-000000000007 seq=102 sub=0 key=k2 data=world", 5s)) << echo.stderr_text();
  EXPECT_EQ(kclpp::test::lines_with(echo.stderr_text(), "shardId-000000000007 seq=101 sub=0 key=k1 data=hello").size(),
            1u);

  // shutdownRequested: it checkpoints the last record it finished, then answers.
  const std::string request = exchange(R"({"action":"shutdownRequested"})");
  const Json checkpoint = Json::parse(request, nullptr, false);
  ASSERT_TRUE(checkpoint.is_object()) << request;
  EXPECT_EQ(checkpoint.value("action", ""), "checkpoint") << request;
  EXPECT_EQ(checkpoint.value("sequenceNumber", ""), "102") << request;
  EXPECT_EQ(exchange(R"({"action":"checkpoint","sequenceNumber":"102","subSequenceNumber":0,"error":null})"),
            R"({"action":"status","responseFor":"shutdownRequested"})");
  EXPECT_EQ(exchange(R"({"action":"leaseLost"})"), R"({"action":"status","responseFor":"leaseLost"})");
  echo.close_stdin();
  const auto status = echo.wait(10s);
  ASSERT_TRUE(status) << echo.stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << echo.stderr_text();
  EXPECT_TRUE(echo.read_lines_until_eof(2s).empty()) << "nothing after the last status";
}

TEST(CliProtocolModeTest, ACallBeforeInitializeIsAProtocolError) {
  Subprocess echo({KCLPP_EXAMPLE_ECHO}, {kclpp::test::tool_env()});
  EXPECT_TRUE(echo.write_line(R"({"action":"processRecords","records":[],"millisBehindLatest":0})"));
  echo.close_stdin();
  const auto status = echo.wait(10s);
  ASSERT_TRUE(status) << echo.stderr_text();
  EXPECT_TRUE(status->exited && status->code != 0) << status->str();
  EXPECT_NE(echo.stderr_text().find("before initialize"), std::string::npos) << echo.stderr_text();
}

}  // namespace
