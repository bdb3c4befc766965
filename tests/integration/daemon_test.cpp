// `kclpp daemon app.properties` end to end, against a local Kinesis server the test starts:
// the same properties file a Java MultiLangDaemon reads, and a multilang child per shard,
// either our Node processor on the official aws-kcl library (tests/node/kcl_processor.js)
// or our C++ example kclpp_echo (seen through kclpp_protocol_tap, which logs every message
// the child receives). Every record put is delivered, checkpoints land in the SQLite store,
// an ignored key gets exactly one warning, SIGTERM ends the daemon with exit 0 after every
// child got shutdownRequested then leaseLost and exited (no process left behind), and a
// restarted daemon resumes after its checkpoints.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e_support.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::test::become_subreaper;
using kclpp::test::eventually;
using kclpp::test::Kinesalite;
using kclpp::test::KinesisServer;
using kclpp::test::read_file;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;

enum class Child { Node, Echo };

struct DaemonCase {
  Child child;
  KinesisServer server;
};

std::string case_name(const ::testing::TestParamInfo<DaemonCase>& info) {
  return std::string(info.param.child == Child::Node ? "node_aws_kcl" : "cpp_echo") + "_" +
         kclpp::test::server_name(info.param.server);
}

// The C++ child checkpoints every 7 records (and at shutdown): some checkpoints land while
// it runs, and the last one is the shutdownRequested checkpoint.
constexpr int echo_checkpoint_every = 7;

// What the children of one daemon run saw.
struct ChildrenView {
  // pid -> the actions it received, in order ("initialize", "processRecords",
  // "shutdownRequested", "leaseLost", ...), ending with "exit N" once it exited.
  std::map<int, std::vector<std::string>> actions;
  std::map<int, std::string> shard_of_pid;
  // shard -> data of the records it was handed, in order.
  std::map<std::string, std::vector<std::string>> records;

  [[nodiscard]] std::set<std::string> all_data() const {
    std::set<std::string> out;
    for (const auto& [shard, data] : records) out.insert(data.begin(), data.end());
    return out;
  }
  [[nodiscard]] std::size_t record_count() const {
    std::size_t n = 0;
    for (const auto& [shard, data] : records) n += data.size();
    return n;
  }
  [[nodiscard]] std::string dump() const {
    std::ostringstream out;
    for (const auto& [pid, list] : actions) {
      out << "  pid " << pid << " (" << (shard_of_pid.count(pid) ? shard_of_pid.at(pid) : "?") << "):";
      for (const auto& a : list) out << ' ' << a;
      out << '\n';
    }
    for (const auto& [shard, data] : records) out << "  " << shard << ": " << data.size() << " records\n";
    return out.str();
  }
};

class DaemonTest : public ::testing::TestWithParam<DaemonCase> {
 protected:
  void SetUp() override {
    become_subreaper();
    if (GetParam().child == Child::Node) {
      const std::filesystem::path source(KCLPP_SOURCE_DIR);
      KCLPP_REQUIRE_PRESENT(kclpp::test::node_unavailable("aws-kcl/index.js"));
      node_ = kclpp::test::find_on_path("node");
      script_ = (source / "tests" / "node" / "kcl_processor.js").string();
    }
    server_ = std::make_unique<Kinesalite>(GetParam().server);
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream(stream_, 2);
    client_->wait_for_active(stream_, 10s);
  }

  // The properties file of a run; `log` names the children's log (Node) / tap log (C++).
  std::string write_properties(const std::string& name, const std::string& log) {
    std::string executable;
    if (GetParam().child == Child::Node) {
      executable = node_ + " " + script_;
    } else {
      executable = std::string(KCLPP_PROTOCOL_TAP) + " " + log + " " + KCLPP_EXAMPLE_ECHO + " " +
                   std::to_string(echo_checkpoint_every);
    }
    // executableName is split on spaces, with no quoting (docs/kcl-protocol.md §1).
    EXPECT_EQ(executable.find("  "), std::string::npos);
    const std::string path = dir_.file(name);
    std::ofstream out(path);
    out << "# kclpp daemon end-to-end test (Java MultiLangDaemon format)\n"
        << "executableName = " << executable << "\n"
        << "streamName = " << stream_ << "\n"
        << "applicationName = " << application_ << "\n"
        << "initialPositionInStream = TRIM_HORIZON\n"
        << "kinesisEndpoint = " << server_->endpoint() << "\n"
        << "regionName = us-east-1\n"
        << "idleTimeBetweenReadsInMillis = 200\n"
        << "checkpointStore = sqlite:" << db_ << "\n"
        << "metricsLevel = NONE\n";
    return path;
  }

  // The Node case logs in JSON (docs/operations.md §3), the C++ cases in text.
  std::unique_ptr<Subprocess> start_daemon(const std::string& properties, const std::string& log) {
    kclpp::test::SpawnOptions options;
    options.env = kclpp::test::tool_env("debug", {"KCLPP_NODE_LOG=" + log, "KCLPP_NODE_LOG_IDS=1"});
    if (GetParam().child == Child::Node) options.env.push_back("KCLPP_LOG_FORMAT=json");
    return std::make_unique<Subprocess>(std::vector<std::string>{KCLPP_TOOL, "daemon", properties},
                                        options);
  }

  // Reads the children's view of one run: the Node log, or the tap log plus the echo
  // lines the daemon forwarded from the children's stderr.
  ChildrenView view(const std::string& log, Subprocess& daemon) {
    ChildrenView v;
    std::istringstream lines(read_file(log));
    std::string line;
    if (GetParam().child == Child::Node) {
      while (std::getline(lines, line)) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("event") || !j.contains("pid")) continue;
        const int pid = j["pid"].get<int>();
        const std::string event = j["event"].get<std::string>();
        if (event == "checkpointResult") continue;
        if (event == "initialize") v.shard_of_pid[pid] = j["shardId"].get<std::string>();
        if (event == "processRecords") {
          const std::string shard = j["shard"].is_string() ? j["shard"].get<std::string>() : "?";
          for (const auto& r : j["records"]) v.records[shard].push_back(r["data"].get<std::string>());
        }
        v.actions[pid].push_back(event == "exit" ? "exit " + std::to_string(j["code"].get<int>()) : event);
      }
      return v;
    }
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      int pid = 0;
      std::string action;
      std::string arg;
      if (!(words >> pid >> action)) continue;
      words >> arg;
      // "checkpoint" lines are the daemon's answers to the child's checkpoint requests.
      if (action == "start" || action == "stdin-eof" || action == "checkpoint") continue;
      if (action == "initialize") v.shard_of_pid[pid] = arg;
      v.actions[pid].push_back(action == "exit" || action == "signal" ? action + " " + arg : action);
    }
    // "<time> INFO [shardId-... child_pid=N] <time> INFO shardId-... seq=N sub=0 key=K data=D"
    for (const std::string& l : kclpp::test::lines_with(daemon.stderr_text(), " data=")) {
      const auto open = l.find('[');
      const auto pid_at = l.find(" child_pid=", open);
      if (open == std::string::npos || pid_at == std::string::npos) continue;
      v.records[l.substr(open + 1, pid_at - open - 1)].push_back(l.substr(l.find(" data=") + 6));
    }
    return v;
  }

  // Waits until every one of `data` was delivered.
  ::testing::AssertionResult all_delivered(const std::string& log, Subprocess& daemon,
                                           const std::vector<std::string>& data,
                                           std::chrono::milliseconds timeout) {
    ChildrenView v;
    const bool ok = eventually(
        [&] {
          v = view(log, daemon);
          const auto got = v.all_data();
          return std::all_of(data.begin(), data.end(), [&](const auto& d) { return got.count(d) != 0; });
        },
        timeout);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "not every record was delivered within " << timeout.count()
                                         << " ms; children:\n"
                                         << v.dump() << "daemon stderr:\n"
                                         << daemon.stderr_text();
  }

  // KCLPP_LOG_FORMAT=json: every line of the daemon's stderr is a JSON object with time,
  // level and message; each line a Node child wrote to its stderr is one record with its
  // shard and pid, the child's text as the message, none lost, none reordered (the child
  // writes each event to the Node log and to stderr, in the same order).
  void expect_json_log(const std::string& stderr_text, const std::string& node_log, const ChildrenView& v) {
    std::map<int, std::vector<std::string>> from_stderr;  // pid -> the child's events, in order
    std::size_t lines = 0;
    std::string sample;
    for (const std::string& line : kclpp::test::split_lines(stderr_text)) {
      if (line.empty()) continue;
      ++lines;
      const auto j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
      for (const char* key : {"time", "level", "message"}) ASSERT_TRUE(j.contains(key)) << key << ": " << line;
      if (!j.contains("child_pid")) continue;
      const int pid = j["child_pid"].get<int>();
      EXPECT_EQ(j.value("shard", "?"), v.shard_of_pid.count(pid) ? v.shard_of_pid.at(pid) : "no shard") << line;
      EXPECT_EQ(j["level"], "INFO") << line;
      const std::string message = j["message"].get<std::string>();
      const std::string prefix = "kcl_processor.js: ";
      if (message.rfind(prefix, 0) != 0) continue;
      from_stderr[pid].push_back(message.substr(prefix.size()));
      if (sample.empty()) sample = line;
    }
    std::map<int, std::vector<std::string>> from_node_log;
    std::istringstream node(read_file(node_log));
    for (std::string line; std::getline(node, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("pid")) from_node_log[j["pid"].get<int>()].push_back(line);
    }
    EXPECT_EQ(from_stderr.size(), 2U) << "two children";
    EXPECT_EQ(from_stderr, from_node_log) << "the children's stderr lines, per child, in order";
    std::size_t child_lines = 0;
    for (const auto& [pid, events] : from_stderr) child_lines += events.size();
    std::printf("[ json log ] %zu daemon lines, all JSON; %zu child lines, e.g.\n%s\n", lines, child_lines,
                sample.c_str());
  }

  std::map<std::string, std::string> checkpoint_seqs() {
    std::map<std::string, std::string> out;
    for (const auto& [shard, pos] : kclpp::test::sqlite_checkpoints(db_, application_, stream_))
      out[shard] = pos.str();
    return out;
  }

  // SIGTERM; the daemon must exit 0 within `bound`. Returns the time it took.
  std::chrono::milliseconds stop(Subprocess& daemon, std::chrono::milliseconds bound = 10s) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(::kill(daemon.pid(), SIGTERM), 0);
    const auto status = daemon.wait(bound);
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    EXPECT_TRUE(status.has_value()) << "the daemon did not exit within " << bound.count()
                                    << " ms of SIGTERM; stderr:\n"
                                    << daemon.stderr_text();
    if (status) {
      EXPECT_TRUE(status->exited && status->code == 0)
          << "daemon: " << status->str() << "; stderr:\n"
          << daemon.stderr_text();
    }
    return took;
  }

  TempDir dir_{"kclpp-daemon-test"};
  std::string node_;
  std::string script_;
  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  const std::string stream_ = "daemon-e2e";
  const std::string application_ = "daemon-e2e-app";
  const std::string db_ = dir_.file("checkpoints.db");
};

TEST_P(DaemonTest, DeliversEveryRecordCheckpointsAndShutsDownCleanly) {
  const auto data = kclpp::test::numbered("a", 40);
  const auto put = kclpp::test::put_all(*client_, stream_, data);
  ASSERT_EQ(put.size(), 2u) << "the records should land on both shards";

  const std::string log = dir_.file("children.log");
  auto daemon = start_daemon(write_properties("app.properties", log), log);
  kclpp::test::PidReaper reaper;  // destroyed first: no child outlives a failed test
  ASSERT_TRUE(all_delivered(log, *daemon, data, 30s));

  // The children, one per shard, are the daemon's own children (the C++ one behind its tap).
  const auto direct = kclpp::test::children_of(daemon->pid());
  const auto family = kclpp::test::descendants_of(daemon->pid());
  for (pid_t pid : family) reaper.add(pid);
  EXPECT_EQ(direct.size(), 2u) << "one child per shard";
  EXPECT_EQ(family.size(), GetParam().child == Child::Node ? 2u : 4u);

  // Each record exactly once, on the shard it was put to.
  ChildrenView v = view(log, *daemon);
  EXPECT_EQ(v.record_count(), data.size()) << v.dump();
  for (const auto& [shard, seqs] : put) {
    EXPECT_EQ(v.records[shard].size(), seqs.size()) << shard << "\n" << v.dump();
  }

  // Checkpoints while running: Node checkpoints every batch, at its last record; the C++
  // child every 7 records.
  std::map<std::string, std::string> expected_running;
  for (const auto& [shard, seqs] : put) {
    if (GetParam().child == Child::Node) {
      expected_running[shard] = seqs.back();
    } else if (seqs.size() >= static_cast<std::size_t>(echo_checkpoint_every)) {
      expected_running[shard] = seqs[seqs.size() / echo_checkpoint_every * echo_checkpoint_every - 1];
    }
  }
  EXPECT_TRUE(eventually([&] { return checkpoint_seqs() == expected_running; }, 10s))
      << "checkpoints in the store while running do not match what the children checkpointed";

  // The one ignored key is named in exactly one warning; the keys it uses are not.
  const std::string err = daemon->stderr_text();
  const auto mentions = kclpp::test::lines_with(err, "metricsLevel");
  ASSERT_EQ(mentions.size(), 1u) << err;
  EXPECT_NE(mentions[0].find("WARN"), std::string::npos) << mentions[0];
  for (const char* used : {"executableName", "streamName", "applicationName", "initialPositionInStream",
                           "kinesisEndpoint", "regionName", "idleTimeBetweenReadsInMillis",
                           "checkpointStore"}) {
    EXPECT_EQ(mentions[0].find(used), std::string::npos) << used << " is used, not ignored: " << mentions[0];
  }

  const auto took = stop(*daemon);
  EXPECT_LT(took, 10s);

  // Every child: shutdownRequested, then leaseLost, then it exited with 0.
  v = view(log, *daemon);
  ASSERT_EQ(v.actions.size(), 2u) << v.dump();
  std::set<std::string> shards;
  for (const auto& [pid, actions] : v.actions) {
    shards.insert(v.shard_of_pid[pid]);
    ASSERT_GE(actions.size(), 4u) << v.dump();
    EXPECT_EQ(actions.front(), "initialize") << v.dump();
    const std::vector<std::string> tail(actions.end() - 3, actions.end());
    EXPECT_EQ(tail, (std::vector<std::string>{"shutdownRequested", "leaseLost", "exit 0"})) << v.dump();
    EXPECT_EQ(std::count(actions.begin(), actions.end(), "shardEnded"), 0) << v.dump();
  }
  EXPECT_EQ(shards.size(), 2u) << v.dump();

  // No child outlives the daemon, none is left a zombie (this process is their subreaper:
  // an orphan would show up here, alive or as a zombie).
  for (pid_t pid : family) {
    EXPECT_TRUE(eventually([&] { return !kclpp::test::process_state(pid).has_value(); }, 2s))
        << "pid " << pid << " is still there, state "
        << kclpp::test::process_state(pid).value_or('?');
  }

  if (GetParam().child == Child::Node) expect_json_log(daemon->stderr_text(), log, v);

  // The shutdownRequested checkpoint leaves every shard at its last record.
  std::map<std::string, std::string> expected_final;
  for (const auto& [shard, seqs] : put) expected_final[shard] = seqs.back();
  EXPECT_EQ(checkpoint_seqs(), expected_final);
}

TEST_P(DaemonTest, RestartResumesAfterTheCheckpoints) {
  const auto first = kclpp::test::numbered("first", 30);
  const auto put_first = kclpp::test::put_all(*client_, stream_, first);
  const std::string properties = write_properties("app.properties", dir_.file("run1.log"));
  {
    const std::string log = dir_.file("run1.log");
    auto daemon = start_daemon(properties, log);
    kclpp::test::PidReaper reaper;
    ASSERT_TRUE(all_delivered(log, *daemon, first, 30s));
    for (pid_t pid : kclpp::test::descendants_of(daemon->pid())) reaper.add(pid);
    stop(*daemon);
  }
  std::map<std::string, std::string> after_first;
  for (const auto& [shard, seqs] : put_first) after_first[shard] = seqs.back();
  ASSERT_EQ(checkpoint_seqs(), after_first);

  const auto second = kclpp::test::numbered("second", 20);
  (void)kclpp::test::put_all(*client_, stream_, second, first.size());
  // The tap log path is part of executableName: the second run writes its own.
  const std::string log = dir_.file("run2.log");
  auto daemon = start_daemon(write_properties("app2.properties", log), log);
  kclpp::test::PidReaper reaper;
  ASSERT_TRUE(all_delivered(log, *daemon, second, 30s));
  for (pid_t pid : kclpp::test::descendants_of(daemon->pid())) reaper.add(pid);
  // Give the children a few more polls (idle 200 ms) to show an old record, if any comes.
  std::this_thread::sleep_for(1s);
  const ChildrenView v = view(log, *daemon);
  for (const auto& d : v.all_data()) {
    EXPECT_EQ(d.rfind("record-first-", 0), std::string::npos) << "redelivered after a clean restart: " << d;
  }
  EXPECT_EQ(v.record_count(), second.size()) << v.dump();
  stop(*daemon);
}

// --- the watchdog and systemd (docs/operations.md §2) ---------------------------------------

// A multilang child in plain Python (no library): logs "PID initialize SHARD SEQ", "PID
// record DATA" and the other actions to argv[1], checkpoints after every batch, and hangs
// for good in its second processRecords the first time any child gets there (marker file
// argv[2]).
constexpr const char* hanging_child = R"(import base64, json, os, sys, time
log = open(sys.argv[1], "a", buffering=1)
marker = sys.argv[2]
pid = os.getpid()
batches = 0
def send(message):
    sys.stdout.write("\n" + json.dumps(message) + "\n")
    sys.stdout.flush()
def checkpoint():
    send({"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None})
    for line in sys.stdin:
        if line.strip() and json.loads(line).get("action") == "checkpoint":
            return
    sys.exit(1)
for line in sys.stdin:
    if not line.strip():
        continue
    message = json.loads(line)
    action = message["action"]
    if action == "initialize":
        log.write("%d initialize %s %s\n" % (pid, message["shardId"], message.get("sequenceNumber")))
    elif action == "processRecords":
        batches += 1
        if batches == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            log.write("%d hang\n" % pid)
            time.sleep(3600)
        for record in message["records"]:
            log.write("%d record %s %s\n" % (pid, base64.b64decode(record["data"]).decode(), record["sequenceNumber"]))
        checkpoint()
    else:
        log.write("%d %s\n" % (pid, action))
        if action in ("shutdownRequested", "shardEnded"):
            checkpoint()
    send({"action": "status", "responseFor": action})
)";

// The systemd notification socket, bound by the test: every datagram with its arrival time.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0) << path_;
    const timeval timeout{0, 50'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    reader_ = std::thread([this] {
      char buffer[4096];
      while (!stop_) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) continue;
        const std::lock_guard lock(mutex_);
        for (const auto& line : kclpp::test::split_lines(std::string(buffer, static_cast<std::size_t>(n)))) {
          if (!line.empty()) messages_.push_back({std::chrono::steady_clock::now(), line});
        }
      }
    });
  }
  ~NotifySocket() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  struct Message {
    std::chrono::steady_clock::time_point at;
    std::string line;
  };
  std::vector<Message> messages() {
    const std::lock_guard lock(mutex_);
    return messages_;
  }
  std::vector<std::chrono::steady_clock::time_point> times_of(const std::string& line) {
    std::vector<std::chrono::steady_clock::time_point> out;
    for (const auto& m : messages()) {
      if (m.line == line) out.push_back(m.at);
    }
    return out;
  }
  bool has_prefix(const std::string& prefix) {
    const auto all = messages();
    return std::any_of(all.begin(), all.end(), [&](const Message& m) { return m.line.rfind(prefix, 0) == 0; });
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
  std::vector<Message> messages_;
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

// A child that hangs in processRecords past processorTimeoutMillis is killed by the
// watchdog, the shard restarts from its checkpoint with a new child, and every record is
// processed; meanwhile the daemon tells systemd READY=1, pings WATCHDOG=1 at WatchdogSec/2,
// and says STOPPING=1 at SIGTERM.
TEST(DaemonWatchdogTest, AHungChildIsKilledTheShardResumesFromItsCheckpointAndSystemdIsNotified) {
  become_subreaper();
  Kinesalite server(KinesisServer::Kinesalite);
  KCLPP_REQUIRE_SERVER(server);
  aws::KinesisClient client(server.client_options());
  const std::string stream = "daemon-watchdog";
  client.create_stream(stream, 1);
  client.wait_for_active(stream, 10s);
  const auto data = kclpp::test::numbered("w", 12);
  const auto put = kclpp::test::put_all(client, stream, data);

  TempDir dir("kclpp-daemon-watchdog");
  const std::string script = dir.file("hanging_child.py");
  std::ofstream(script) << hanging_child;
  const std::string log = dir.file("children.log");
  const std::string properties = dir.file("app.properties");
  std::ofstream(properties) << "executableName = /usr/bin/python3 " << script << " " << log << " "
                            << dir.file("hung") << "\n"
                            << "streamName = " << stream << "\n"
                            << "applicationName = watchdog-app\n"
                            << "initialPositionInStream = TRIM_HORIZON\n"
                            << "kinesisEndpoint = " << server.endpoint() << "\n"
                            << "regionName = us-east-1\n"
                            << "maxRecords = 5\n"
                            << "idleTimeBetweenReadsInMillis = 100\n"
                            << "processorTimeoutMillis = 600\n"
                            << "checkpointStore = sqlite:" << dir.file("checkpoints.db") << "\n";
  NotifySocket notify(dir.file("notify.sock"));
  kclpp::test::SpawnOptions options;
  options.env = kclpp::test::tool_env("info", {"NOTIFY_SOCKET=" + notify.path(), "WATCHDOG_USEC=400000"});
  // WATCHDOG_PID names the daemon itself: sh's pid, which exec hands to kclpp.
  Subprocess daemon({"/bin/sh", "-c", std::string("WATCHDOG_PID=$$ exec ") + KCLPP_TOOL + " daemon " + properties},
                    options);
  kclpp::test::PidReaper reaper;

  EXPECT_TRUE(eventually([&] { return !notify.times_of("READY=1").empty(); }, 30s)) << daemon.stderr_text();
  const auto all_processed = [&] {
    const std::string text = read_file(log);
    return std::all_of(data.begin(), data.end(), [&](const std::string& d) {
      return text.find(" record " + d + " ") != std::string::npos;
    });
  };
  ASSERT_TRUE(eventually(all_processed, 30s)) << read_file(log) << "\ndaemon stderr:\n" << daemon.stderr_text();
  for (pid_t pid : kclpp::test::descendants_of(daemon.pid())) reaper.add(pid);
  std::this_thread::sleep_for(500ms);  // a few more watchdog periods

  // The hung child was killed by the watchdog; a second child started at the checkpoint of
  // the first batch and got the rest: every record exactly once.
  const std::string text = read_file(log);
  std::map<std::string, int> seen;
  std::vector<std::string> inits;
  for (const auto& line : kclpp::test::split_lines(text)) {
    std::istringstream words(line);
    std::string pid, what, arg, seq;
    words >> pid >> what >> arg >> seq;
    if (what == "record") ++seen[arg];
    if (what == "initialize") inits.push_back(seq);
  }
  for (const auto& d : data) EXPECT_EQ(seen[d], 1) << d << "\n" << text;
  ASSERT_EQ(inits.size(), 2U) << text;
  EXPECT_EQ(inits[0], "TRIM_HORIZON");
  EXPECT_EQ(inits[1], put.begin()->second[4]) << "the new child starts at the first batch's checkpoint";
  const std::string err = daemon.stderr_text();
  EXPECT_NE(err.find("watchdog: shard shardId-000000000000: process_records has been running for"), std::string::npos)
      << err;
  EXPECT_NE(err.find("killed by interrupt()"), std::string::npos) << err;

  // Pings at WatchdogSec / 2 = 200 ms while healthy, and a status line.
  const auto pings = notify.times_of("WATCHDOG=1");
  EXPECT_GE(pings.size(), 5U);
  EXPECT_TRUE(notify.has_prefix("STATUS=processing 1 shard(s)"));

  const auto status_before_stop = notify.messages().size();
  EXPECT_EQ(::kill(daemon.pid(), SIGTERM), 0);
  const auto status = daemon.wait(15s);
  ASSERT_TRUE(status.has_value()) << daemon.stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << daemon.stderr_text();
  const auto messages = notify.messages();
  EXPECT_TRUE(std::any_of(messages.begin() + static_cast<long>(status_before_stop), messages.end(),
                          [](const NotifySocket::Message& m) { return m.line == "STOPPING=1"; }));
}

INSTANTIATE_TEST_SUITE_P(EndToEnd, DaemonTest,
                         ::testing::Values(DaemonCase{Child::Node, KinesisServer::Kinesalite},
                                           DaemonCase{Child::Echo, KinesisServer::Kinesalite},
                                           DaemonCase{Child::Echo, KinesisServer::KinesisLocal}),
                         case_name);

// A properties file kclpp cannot run: exit 1 and a message naming the problem, at once.
TEST(DaemonCliConfigTest, MissingExecutableNameIsAnErrorNamingTheKey) {
  TempDir dir("kclpp-daemon-config");
  const std::string path = dir.file("bad.properties");
  {
    std::ofstream out(path);
    out << "streamName = s\napplicationName = a\nkinesisEndpoint = http://127.0.0.1:"
        << kclpp::test::unused_port() << "\n";
  }
  const auto r = kclpp::test::run_program({KCLPP_TOOL, "daemon", path}, {}, 10s);
  ASSERT_TRUE(r.status) << r.describe();
  EXPECT_TRUE(r.status->exited && r.status->code == 1) << r.describe();
  EXPECT_NE(r.err.find("executableName"), std::string::npos) << r.describe();
  EXPECT_LT(r.elapsed, 5s);
}

}  // namespace
