// kcl::ChildProcess (the daemon side of the MultiLangDaemon protocol) against real child
// processes: /bin/sh scripts written by each test (well-behaved and misbehaving children),
// a processor built on the official aws-kcl npm library (tests/node/kcl_processor.js), and
// kclpp's own processors. Every test runs under a Deadline: a hang aborts, it never stalls.

#include "kclpp/kcl/child_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/sequence_number.hpp"
#include "../test_files.hpp"
#include "local_server.hpp"

namespace {

using namespace std::chrono_literals;
using kclpp::ExtendedSequenceNumber;
using kclpp::kcl::ChildProcess;
using kclpp::kcl::ChildProcessOptions;
using Clock = std::chrono::steady_clock;
using kclpp::test::read_file;
using kclpp::test::TempDir;

// Aborts the whole test binary when a test overruns: a protocol deadlock must fail loudly.
class Deadline {
 public:
  explicit Deadline(std::chrono::seconds limit)
      : thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "\n*** test deadline of %lld s exceeded: aborting ***\n",
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Deadline() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Captures kclpp's log lines (forwarding warnings and errors to stderr for diagnosis),
// each with its context fields in front as the text format shows them:
// "[shardId-000000000001 child_pid=42] message".
class LogCapture {
 public:
  LogCapture() {
    kclpp::set_log_level(kclpp::LogLevel::Info);
    kclpp::set_log_sink([this](kclpp::LogLevel level, std::string_view message) {
      if (level >= kclpp::LogLevel::Warn)
        std::fprintf(stderr, "[captured %s] %.*s\n", level == kclpp::LogLevel::Warn ? "WARN" : "ERROR",
                     static_cast<int>(std::min<std::size_t>(message.size(), 400)), message.data());
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(level, kclpp::format_log_line(level, message, kclpp::LogFormat::Text,
                                                        kclpp::LogLineFor::Syslog));
    });
  }
  ~LogCapture() { kclpp::set_log_sink({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  [[nodiscard]] std::size_t count(kclpp::LogLevel level, const std::string& needle) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& [l, m] : lines_)
      if (l == level && m.find(needle) != std::string::npos) ++n;
    return n;
  }
  [[nodiscard]] bool has(kclpp::LogLevel level, const std::string& needle) const {
    return count(level, needle) > 0;
  }
  // How many INFO lines contain `needle` followed by a number, if those numbers run
  // 0, 1, 2, ... in order; SIZE_MAX when one is missing or out of order.
  [[nodiscard]] std::size_t numbered(const std::string& needle) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& [l, m] : lines_) {
      const auto at = m.find(needle);
      if (l != kclpp::LogLevel::Info || at == std::string::npos) continue;
      if (std::stoul(m.substr(at + needle.size(), 4)) != n) return SIZE_MAX;
      ++n;
    }
    return n;
  }
  // Some line at `level` contains every one of `needles`.
  [[nodiscard]] bool has_all(kclpp::LogLevel level, const std::vector<std::string>& needles) const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::any_of(lines_.begin(), lines_.end(), [&](const auto& line) {
      return line.first == level && std::all_of(needles.begin(), needles.end(), [&](const std::string& n) {
               return line.second.find(n) != std::string::npos;
             });
    });
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<kclpp::LogLevel, std::string>> lines_;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Shell helpers every script gets: status NAME; ckpt JSON (sends a checkpoint request,
// reads the response line and appends it to $D/responses); log_in LINE.
std::string script_prelude(const TempDir& dir) {
  return "D='" + dir.path().string() +
         "'\n"
         "status() { printf '{\"action\":\"status\",\"responseFor\":\"%s\"}\\n' \"$1\"; }\n"
         "ckpt() { printf '%s\\n' \"$1\"; IFS= read -r resp; printf '%s\\n' \"$resp\" >> \"$D/responses\"; }\n"
         "log_in() { printf '%s\\n' \"$1\" >> \"$D/in.log\"; }\n";
}

// Writes an executable /bin/sh script into `dir` and returns its path.
std::string write_script(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.file(name);
  {
    std::ofstream out(path);
    out << "#!/bin/sh\n" << script_prelude(dir) << body;
  }
  ::chmod(path.c_str(), 0755);
  return path;
}

// A Checkpointer test double: records every checkpoint_once target; each call consumes the
// next scripted outcome (a function that may throw), success when none is left.
class RecordingCheckpointer final : public kclpp::Checkpointer {
 public:
  std::vector<std::optional<ExtendedSequenceNumber>> calls;
  std::deque<std::function<void()>> outcomes;

  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override {
    calls.push_back(at);
    if (outcomes.empty()) return;
    std::function<void()> outcome = std::move(outcomes.front());
    outcomes.pop_front();
    if (outcome) outcome();
  }

  // "largest" for nullopt, else "seq/sub".
  [[nodiscard]] std::vector<std::string> targets() const {
    std::vector<std::string> out;
    for (const auto& c : calls)
      out.push_back(c ? c->str() + "/" + std::to_string(c->sub_sequence_number()) : "largest");
    return out;
  }
};

kclpp::Record make_record(const std::string& seq, std::string data, std::int64_t sub = 0) {
  kclpp::Record r;
  r.data = std::move(data);
  r.partition_key = "pk-" + seq;
  r.sequence_number = kclpp::SequenceNumber(seq);
  r.sub_sequence_number = sub;
  return r;
}

kclpp::RecordBatch small_batch() {
  kclpp::RecordBatch batch;
  batch.records.push_back(make_record("49590338271490256608559692538361571095921575989136588898", "meow"));
  batch.millis_behind_latest = 0;
  return batch;
}

// True once `pid` has been reaped by us (no zombie left, nothing left to wait for).
bool reaped(int pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
}

ChildProcessOptions options_for(const std::string& command) {
  ChildProcessOptions o;
  o.command = command;
  o.exit_grace = 2s;
  return o;
}

const std::string shard = "shardId-000000000001";

template <class Fn>
std::chrono::milliseconds timed(Fn&& fn) {
  const auto start = Clock::now();
  fn();
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// ---------------------------------------------------------------------------------------
// Spawning

TEST(ChildProcessSpawn, SplitCommandOnRunsOfSpacesOnly) {
  Deadline deadline{10s};
  using V = std::vector<std::string>;
  EXPECT_EQ(kclpp::kcl::split_command("node  app.js   --flag x"), (V{"node", "app.js", "--flag", "x"}));
  EXPECT_EQ(kclpp::kcl::split_command(" a b "), (V{"a", "b"}));
  EXPECT_EQ(kclpp::kcl::split_command("a\tb 'c d'"), (V{"a\tb", "'c", "d'"}));  // no shell quoting
  EXPECT_EQ(kclpp::kcl::split_command("   "), V{});
}

TEST(ChildProcessSpawn, MissingProgramIsConfigErrorNamingTheCommand) {
  Deadline deadline{10s};
  ChildProcess child(options_for("/nonexistent/kclpp-child --x"));
  try {
    child.initialize(shard, ExtendedSequenceNumber{});
    FAIL() << "expected ConfigError";
  } catch (const kclpp::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kclpp-child --x"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(child.pid().has_value());
  RecordingCheckpointer cp;
  EXPECT_THROW(child.process_records(small_batch(), cp), kclpp::Error);
}

TEST(ChildProcessSpawn, EmptyCommandIsConfigError) {
  Deadline deadline{10s};
  ChildProcess child(options_for("   "));
  EXPECT_THROW(child.initialize(shard, ExtendedSequenceNumber{}), kclpp::ConfigError);
}

TEST(ChildProcessSpawn, ArgumentsEnvironmentAndWorkingDirectoryAreInherited) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  ::setenv("KCLPP_CHILD_TEST_VAR", "inherited-value", 1);
  const std::string script = write_script(dir, "args.sh", R"(
printf '%s|' "$@" > "$D/args"
printf '%s' "$KCLPP_CHILD_TEST_VAR" > "$D/env"
pwd > "$D/cwd"
echo 'hello from stderr' >&2
IFS= read -r line; log_in "$line"; status initialize
IFS= read -r line; log_in "$line"; status leaseLost
)");
  ChildProcess child(options_for(script + "   one  two"));
  child.initialize(shard, ExtendedSequenceNumber{});
  ASSERT_TRUE(child.pid().has_value());
  const int child_pid = *child.pid();
  child.lease_lost();
  EXPECT_FALSE(child.pid().has_value());
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(read_file(dir.file("args")), "one|two|");
  EXPECT_EQ(read_file(dir.file("env")), "inherited-value");
  EXPECT_EQ(read_file(dir.file("cwd")), std::filesystem::current_path().string() + "\n");
  // The child's stderr line is a record of its own, tagged with the shard and its pid.
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info,
                       "[" + shard + " child_pid=" + std::to_string(child_pid) + "] hello from stderr"));
  const auto in = read_lines(dir.file("in.log"));
  ASSERT_EQ(in.size(), 2U);
  EXPECT_NE(in[0].find("\"action\":\"initialize\""), std::string::npos) << in[0];
  EXPECT_NE(in[0].find("\"shardId\":\"" + shard + "\""), std::string::npos) << in[0];
  EXPECT_NE(in[0].find("\"sequenceNumber\":\"TRIM_HORIZON\""), std::string::npos) << in[0];
  EXPECT_EQ(in[1], R"({"action":"leaseLost"})");
  ::unsetenv("KCLPP_CHILD_TEST_VAR");
}

// ---------------------------------------------------------------------------------------
// The protocol, checkpoints

TEST(ChildProcessCheckpoint, FullLifecycleServesCheckpointsThroughTheCallsCheckpointer) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "lifecycle.sh", R"(
while IFS= read -r line; do
  log_in "$line"
  case "$line" in
    *'"action":"initialize"'*) status initialize ;;
    *'"action":"processRecords"'*)
      ckpt '{"action":"checkpoint","sequenceNumber":"100","subSequenceNumber":2}'
      ckpt '{"action":"checkpoint","sequenceNumber":"200"}'
      ckpt '{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}'
      ckpt '{"action":"checkpoint","sequenceNumber":"not-a-number","subSequenceNumber":null}'
      ckpt '{"action":"checkpoint","sequenceNumber":"300","subSequenceNumber":-1}'
      status processRecords ;;
    *'"action":"shardEnded"'*)
      ckpt '{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}'
      status shardEnded ;;
  esac
done
exit 0
)");
  ChildProcessOptions o = options_for(script);
  o.log_tag = "my-tag";
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber::parse("49590338271490256608559692538361571095921575989136588898", 3));

  RecordingCheckpointer records_cp;
  child.process_records(small_batch(), records_cp);
  EXPECT_EQ(records_cp.targets(), (std::vector<std::string>{"100/2", "200/0", "largest"}))
      << "invalid sequence numbers must not reach the checkpointer";

  RecordingCheckpointer end_cp;
  child.shard_ended(end_cp);
  EXPECT_EQ(end_cp.targets(), (std::vector<std::string>{"largest"}));
  EXPECT_EQ(records_cp.calls.size(), 3U);

  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);

  const auto responses = read_lines(dir.file("responses"));
  ASSERT_EQ(responses.size(), 6U);
  // The response echoes the request (docs/kcl-protocol.md §2), error null on success.
  EXPECT_NE(responses[0].find(R"("sequenceNumber":"100")"), std::string::npos) << responses[0];
  EXPECT_NE(responses[0].find(R"("subSequenceNumber":2)"), std::string::npos) << responses[0];
  EXPECT_NE(responses[0].find(R"("error":null)"), std::string::npos) << responses[0];
  EXPECT_NE(responses[1].find(R"("sequenceNumber":"200")"), std::string::npos) << responses[1];
  EXPECT_NE(responses[1].find(R"("subSequenceNumber":null)"), std::string::npos) << responses[1];
  EXPECT_NE(responses[2].find(R"("sequenceNumber":null)"), std::string::npos) << responses[2];
  EXPECT_NE(responses[2].find(R"("error":null)"), std::string::npos) << responses[2];
  EXPECT_NE(responses[3].find(R"("error":"IllegalArgumentException")"), std::string::npos) << responses[3];
  EXPECT_NE(responses[3].find(R"("sequenceNumber":"not-a-number")"), std::string::npos) << responses[3];
  EXPECT_NE(responses[4].find(R"("error":"IllegalArgumentException")"), std::string::npos) << responses[4];
  EXPECT_NE(responses[5].find(R"("error":null)"), std::string::npos) << responses[5];
  for (const auto& r : responses) EXPECT_NE(r.find(R"("action":"checkpoint")"), std::string::npos) << r;

  const auto in = read_lines(dir.file("in.log"));
  ASSERT_GE(in.size(), 3U);
  EXPECT_NE(in[0].find(R"("subSequenceNumber":3)"), std::string::npos) << in[0];
  EXPECT_NE(in[1].find(R"("action":"processRecords")"), std::string::npos) << in[1];
  EXPECT_NE(in[1].find(R"("data":"bWVvdw==")"), std::string::npos) << in[1];
  EXPECT_EQ(in.back(), R"({"action":"shardEnded"})");
}

TEST(ChildProcessCheckpoint, CheckpointerErrorsReachTheChildByKclNameAndTheChildRetries) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  // The child retries on ThrottlingException (up to 5 attempts), as the official samples do.
  const std::string script = write_script(dir, "throttled.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line
n=0
while :; do
  ckpt '{"action":"checkpoint","sequenceNumber":"10","subSequenceNumber":0}'
  n=$((n+1))
  case "$resp" in *ThrottlingException*) [ $n -lt 5 ] && continue ;; esac
  break
done
ckpt '{"action":"checkpoint","sequenceNumber":"11","subSequenceNumber":0}'
ckpt '{"action":"checkpoint","sequenceNumber":"12","subSequenceNumber":0}'
ckpt '{"action":"checkpoint","sequenceNumber":"13","subSequenceNumber":0}'
ckpt '{"action":"checkpoint","sequenceNumber":"14","subSequenceNumber":0}'
ckpt '{"action":"checkpoint","sequenceNumber":"15","subSequenceNumber":0}'
status processRecords
IFS= read -r line; status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  cp.outcomes.push_back([] { throw kclpp::ThrottledError("throttled once"); });
  cp.outcomes.push_back([] { throw kclpp::ThrottledError("throttled twice"); });
  cp.outcomes.push_back({});  // the third attempt (the child's second retry) succeeds
  cp.outcomes.push_back([] { throw kclpp::TransportError("checkpoint store unreachable"); });
  cp.outcomes.push_back([] { throw kclpp::ConfigError("not a KCL error, not retryable"); });
  cp.outcomes.push_back([] { throw kclpp::LeaseLostError("lease taken"); });
  cp.outcomes.push_back([] { throw kclpp::CheckpointError("too far", "IllegalArgumentException"); });
  cp.outcomes.push_back([] { throw std::runtime_error("not a kclpp error"); });
  child.process_records(small_batch(), cp);
  child.lease_lost();

  // Exactly one attempt per request: the retries are the child's.
  EXPECT_EQ(cp.targets(), (std::vector<std::string>{"10/0", "10/0", "10/0", "11/0", "12/0", "13/0", "14/0", "15/0"}));
  const auto responses = read_lines(dir.file("responses"));
  ASSERT_EQ(responses.size(), 8U);
  const char* expected[] = {R"("error":"ThrottlingException")",
                            R"("error":"ThrottlingException")",
                            R"("error":null)",
                            R"("error":"KinesisClientLibDependencyException")",
                            R"("error":"InvalidStateException")",
                            R"("error":"ShutdownException")",
                            R"("error":"IllegalArgumentException")",
                            R"("error":"InvalidStateException")"};
  for (std::size_t i = 0; i < responses.size(); ++i)
    EXPECT_NE(responses[i].find(expected[i]), std::string::npos) << i << ": " << responses[i];
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Warn, "checkpoint store unreachable"));
}

TEST(ChildProcessCheckpoint, NoCheckpointerDuringInitializeAndLeaseLost) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "nocp.sh", R"(
IFS= read -r line
ckpt '{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}'
status initialize
IFS= read -r line
ckpt '{"action":"checkpoint","sequenceNumber":"5","subSequenceNumber":0}'
status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  child.lease_lost();
  const auto responses = read_lines(dir.file("responses"));
  ASSERT_EQ(responses.size(), 2U);
  EXPECT_NE(responses[0].find(R"("error":"InvalidStateException")"), std::string::npos) << responses[0];
  EXPECT_NE(responses[1].find(R"("error":"InvalidStateException")"), std::string::npos) << responses[1];
  EXPECT_NE(responses[1].find(R"("sequenceNumber":"5")"), std::string::npos) << responses[1];
}

TEST(ChildProcessCheckpoint, PipelinedCheckpointIsServedAtTheNextActionWithItsCheckpointer) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  // Like Clever's Go client (docs/kcl-protocol.md §4.1, §10): the checkpoint request follows the status, so
  // the response arrives after the next action's message.
  const std::string script = write_script(dir, "pipelined.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line; log_in "$line"
status processRecords
printf '%s\n' '{"action":"checkpoint","sequenceNumber":"7","subSequenceNumber":1}'
IFS= read -r line; log_in "$line"
IFS= read -r resp; printf '%s\n' "$resp" >> "$D/responses"
status processRecords
printf '%s\n' '{"action":"checkpoint","sequenceNumber":"8"}'
IFS= read -r line; log_in "$line"
IFS= read -r resp; printf '%s\n' "$resp" >> "$D/responses"
status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer first;
  RecordingCheckpointer second;
  child.process_records(small_batch(), first);
  child.process_records(small_batch(), second);
  child.lease_lost();
  EXPECT_TRUE(first.calls.empty());
  EXPECT_EQ(second.targets(), (std::vector<std::string>{"7/1"}));
  const auto responses = read_lines(dir.file("responses"));
  ASSERT_EQ(responses.size(), 2U);
  EXPECT_NE(responses[0].find(R"("sequenceNumber":"7")"), std::string::npos) << responses[0];
  EXPECT_NE(responses[0].find(R"("error":null)"), std::string::npos) << responses[0];
  // The next action was leaseLost: no checkpointer.
  EXPECT_NE(responses[1].find(R"("error":"InvalidStateException")"), std::string::npos) << responses[1];
  const auto in = read_lines(dir.file("in.log"));
  ASSERT_EQ(in.size(), 3U);
  EXPECT_NE(in[1].find(R"("action":"processRecords")"), std::string::npos);
  EXPECT_EQ(in[2], R"({"action":"leaseLost"})");
}

TEST(ChildProcessCheckpoint, LegacyCheckpointKeyAndExtraKeysAreAcceptedWithAWarning) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "legacy.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line
ckpt '{"action":"checkpoint","checkpoint":"555"}'
printf '%s\n' '{"action":"status","responseFor":"processRecords","extra":1}'
IFS= read -r line; status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  child.process_records(small_batch(), cp);
  child.lease_lost();
  EXPECT_EQ(cp.targets(), (std::vector<std::string>{"555/0"}));
  const auto responses = read_lines(dir.file("responses"));
  ASSERT_EQ(responses.size(), 1U);
  EXPECT_NE(responses[0].find(R"("sequenceNumber":"555")"), std::string::npos) << responses[0];
  EXPECT_EQ(responses[0].find(R"("checkpoint":)"), std::string::npos) << "the writer stays strict";
  EXPECT_EQ(logs.count(kclpp::LogLevel::Warn, "Java MultiLangDaemon would skip"), 2U);
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Warn, "\"extra\""));
}

// ---------------------------------------------------------------------------------------
// Leniency and concurrency

TEST(ChildProcessProtocol, NonJsonBlankAndUnexpectedLinesAreSkippedAndLogged) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "noisy.sh", R"(
IFS= read -r line; echo 'a stray print on stdout'; echo; status initialize
IFS= read -r line
echo ''
echo '   '
echo 'hello from the child'
printf '%s\n' '{"action":"processRecords","records":[],"millisBehindLatest":null}'
printf '%s\n' '{"action":"somethingElse"}'
printf '\r\n'
status processRecords
IFS= read -r line; status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  child.process_records(small_batch(), cp);
  child.lease_lost();
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "a stray print on stdout"));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "hello from the child"));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "somethingElse"));
  EXPECT_FALSE(logs.has(kclpp::LogLevel::Error, ""));
}

// ChildProcessOptions::observer (what `kclpp conformance` judges) and the KCL 1.x
// `shutdown` messages of TerminalMessages::Kcl1Shutdown.
TEST(ChildProcessProtocol, ObserverSeesWhatTheChildWritesAndKcl1ShutdownIsSent) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "kcl1.sh", R"(
IFS= read -r line; log_in "$line"; echo 'stray text'; status initialize
IFS= read -r line
ckpt '{"action":"checkpoint","sequenceNumber":"2","subSequenceNumber":null,"extra":1}'
status processRecords
IFS= read -r line; log_in "$line"
ckpt '{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}'
printf '%s\n' '{"action":"status","responseFor":"shutdown"}'
)");
  std::vector<std::string> events;
  ChildProcessOptions o = options_for(script);
  o.terminal_messages = kclpp::kcl::TerminalMessages::Kcl1Shutdown;
  o.observer = [&events](const kclpp::kcl::ChildEvent& e) {
    std::string text = std::to_string(static_cast<int>(e.kind)) + " " + std::string(e.during) + " " +
                       std::string(e.detail);
    if (e.kind == kclpp::kcl::ChildEvent::Kind::CheckpointRequest)
      text += std::string(e.sequence_number.value_or("null")) + "/" +
              (e.sub_sequence_number ? std::to_string(*e.sub_sequence_number) : "null") + " " +
              std::string(e.error.value_or("ok"));
    events.push_back(text);
  };
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  child.process_records(small_batch(), cp);
  child.lease_lost();  // 1.x: shutdown ZOMBIE, whose checkpoint requests get ShutdownException
  using K = kclpp::kcl::ChildEvent::Kind;
  const auto kind = [](K k) { return std::to_string(static_cast<int>(k)) + " "; };
  EXPECT_EQ(events, (std::vector<std::string>{
                        kind(K::StrayLine) + "initialize ",
                        kind(K::Status) + "initialize initialize",
                        kind(K::NonStrictMessage) + "processRecords \"extra\"",
                        kind(K::CheckpointRequest) + "processRecords 2/null ok",
                        kind(K::Status) + "processRecords processRecords",
                        kind(K::CheckpointRequest) + "shutdown null/null ShutdownException",
                        kind(K::Status) + "shutdown shutdown",
                    }));
  const auto in = read_lines(dir.file("in.log"));
  ASSERT_EQ(in.size(), 2U);
  EXPECT_EQ(in[1], R"({"action":"shutdown","reason":"ZOMBIE"})");
  EXPECT_EQ(cp.targets(), (std::vector<std::string>{"2/0"}));
}

TEST(ChildProcessProtocol, HugeBatchWhileTheChildFloodsStderrAndStdoutDoesNotDeadlock) {
  Deadline deadline{60s};
  LogCapture logs;
  TempDir dir;
  // The child writes megabytes to stderr and stdout before it reads the batch: with a
  // blocking writer both sides would wait for each other forever.
  const std::string script = write_script(dir, "flood.sh", R"(
IFS= read -r line; status initialize
yes 'stderr flood line' | head -n 200000 >&2
yes 'stdout flood line, not json' | head -n 50000
head -n 1 | wc -c > "$D/size"
status processRecords
IFS= read -r line; status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  kclpp::RecordBatch batch;
  for (int i = 0; i < 15; ++i)
    batch.records.push_back(make_record(std::to_string(1000 + i), std::string(std::size_t{1} << 20, static_cast<char>('a' + i))));
  RecordingCheckpointer cp;
  const auto took = timed([&] { child.process_records(batch, cp); });
  child.lease_lost();
  const long long size = std::stoll(read_file(dir.file("size")));
  EXPECT_GT(size, 20'000'000) << "the child must receive the whole line";
  EXPECT_EQ(logs.count(kclpp::LogLevel::Info, "] stderr flood line"), 200000U);
  EXPECT_EQ(logs.count(kclpp::LogLevel::Info, "stdout flood line, not json"), 50000U);
  std::printf("20 MB batch with floods took %lld ms\n", static_cast<long long>(took.count()));
}

// ---------------------------------------------------------------------------------------
// Failures: per shard, typed, and the instance is unusable afterwards

// The child's stderr is read only while a call runs (docs/operations.md §3). Lines it
// writes before a reply are all logged before the call returns; lines it writes after it
// wait in the pipe (1 MiB: the child does not block) and come out, all of them and in
// order, by the end of the next call.
TEST(ChildProcessProtocol, StderrBeforeAReplyAndBetweenCallsIsLoggedWholeAndInOrder) {
  Deadline deadline{30s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "chatty.sh", R"(
lines() { i=0; while [ $i -lt 3000 ]; do printf '%s %04d .........................................................\n' "$1" $i; i=$((i+1)); done > "$D/$1"; }
lines before-reply
lines between-calls
IFS= read -r line; status initialize
IFS= read -r line
cat "$D/before-reply" >&2
status processRecords
cat "$D/between-calls" >&2
echo done > "$D/between"
IFS= read -r line; status leaseLost
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  child.process_records(small_batch(), cp);
  // 3000 lines of 80 bytes: more than one 64 KiB read, all logged before the call returned.
  EXPECT_EQ(logs.numbered("] before-reply "), 3000U);
  const auto wait_until = Clock::now() + 5s;
  while (!std::filesystem::exists(dir.file("between")) && Clock::now() < wait_until)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(std::filesystem::exists(dir.file("between")))
      << "the child blocked writing stderr while no call was running";
  child.lease_lost();
  EXPECT_EQ(logs.numbered("] between-calls "), 3000U);
}

TEST(ChildProcessFailure, WrongResponseForIsProtocolErrorAndTheChildIsReaped) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "wrong.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line; status shardEnded
IFS= read -r line
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  RecordingCheckpointer cp;
  try {
    child.process_records(small_batch(), cp);
    FAIL() << "expected ProtocolError";
  } catch (const kclpp::ProtocolError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("shardEnded"), std::string::npos) << what;
    EXPECT_NE(what.find("processRecords"), std::string::npos) << what;
  }
  EXPECT_TRUE(reaped(pid));
  EXPECT_FALSE(child.pid().has_value());
  const auto took = timed([&] { EXPECT_THROW(child.process_records(small_batch(), cp), kclpp::ProtocolError); });
  EXPECT_LT(took, 100ms);
  EXPECT_THROW(child.lease_lost(), kclpp::ProtocolError);
}

TEST(ChildProcessFailure, NoReplyWithinTheTimeoutKillsTheChild) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "silent.sh", R"(
IFS= read -r line; status initialize
while IFS= read -r line; do :; done
)");
  ChildProcessOptions o = options_for(script);
  o.reply_timeout = 300ms;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  RecordingCheckpointer cp;
  const auto took = timed([&] {
    try {
      child.process_records(small_batch(), cp);
      FAIL() << "expected TransportError";
    } catch (const kclpp::TransportError& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "no reply from child within 300ms while waiting for status of processRecords"),
                std::string::npos)
          << e.what();
    }
  });
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 1500ms) << "killed, not given the exit grace";
  EXPECT_TRUE(reaped(pid));
  EXPECT_THROW(child.process_records(small_batch(), cp), kclpp::TransportError);
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
}

TEST(ChildProcessFailure, ChildExitingMidBatchIsTransportErrorWithItsExitStatus) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "dies.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line; echo 'giving up' >&2; exit 3
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  RecordingCheckpointer cp;
  try {
    child.process_records(small_batch(), cp);
    FAIL() << "expected TransportError";
  } catch (const kclpp::TransportError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("processRecords"), std::string::npos) << what;
    EXPECT_NE(what.find("exit code 3"), std::string::npos) << what;
  }
  EXPECT_TRUE(reaped(pid));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "] giving up"));
  EXPECT_THROW(child.shard_ended(cp), kclpp::TransportError);
}

TEST(ChildProcessFailure, ChildClosingItsStdinIsTransportErrorNotSigpipe) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  // The child closes stdin and lingers: our write gets EPIPE, which must not kill us.
  const std::string script = write_script(dir, "closes.sh", R"(
IFS= read -r line
exec 0<&-
status initialize
exec sleep 30
)");
  ChildProcessOptions o = options_for(script);
  o.exit_grace = 200ms;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  RecordingCheckpointer cp;
  try {
    child.process_records(small_batch(), cp);
    FAIL() << "expected TransportError";
  } catch (const kclpp::TransportError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("EPIPE"), std::string::npos) << what;
    EXPECT_NE(what.find("processRecords"), std::string::npos) << what;
  }
  EXPECT_TRUE(reaped(pid));
  // No SIGPIPE left pending on this thread either.
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST(ChildProcessFailure, CallsOutOfOrderAreProtocolErrors) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "ok.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line; status leaseLost
)");
  ChildProcess child(options_for(script));
  RecordingCheckpointer cp;
  EXPECT_THROW(child.process_records(small_batch(), cp), kclpp::ProtocolError);
  child.initialize(shard, ExtendedSequenceNumber{});
  EXPECT_THROW(child.initialize(shard, ExtendedSequenceNumber{}), kclpp::ProtocolError);
  child.lease_lost();
  EXPECT_THROW(child.process_records(small_batch(), cp), kclpp::ProtocolError);
  EXPECT_THROW(child.lease_lost(), kclpp::ProtocolError);
}

// ---------------------------------------------------------------------------------------
// Shutdown: no zombies, no hangs

TEST(ChildProcessShutdown, ShutdownRequestedIsNotTerminal) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "graceful.sh", R"(
while IFS= read -r line; do
  case "$line" in
    *'"action":"initialize"'*) status initialize ;;
    *'"action":"shutdownRequested"'*)
      ckpt '{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}'
      status shutdownRequested ;;
    *'"action":"leaseLost"'*) status leaseLost ;;
  esac
done
exit 7
)");
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  child.shutdown_requested(cp);
  EXPECT_EQ(cp.targets(), (std::vector<std::string>{"largest"}));
  EXPECT_TRUE(child.pid().has_value()) << "the child keeps running after shutdownRequested";
  child.lease_lost();
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 7);
  EXPECT_EQ(child.close(), status) << "close() is idempotent";
}

TEST(ChildProcessShutdown, ChildIgnoringStdinEofGetsSigterm) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "stays.sh", R"(
IFS= read -r line; status initialize
IFS= read -r line; status leaseLost
exec sleep 30
)");
  ChildProcessOptions o = options_for(script);
  o.exit_grace = 200ms;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  const auto took = timed([&] { child.lease_lost(); });
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(reaped(pid));
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGTERM);
}

TEST(ChildProcessShutdown, ChildIgnoringSigtermGetsSigkill) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "stubborn.sh", R"(
trap '' TERM
IFS= read -r line; status initialize
IFS= read -r line; status shardEnded
while :; do :; done
)");
  ChildProcessOptions o = options_for(script);
  o.exit_grace = 200ms;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  RecordingCheckpointer cp;
  const auto took = timed([&] { child.shard_ended(cp); });
  EXPECT_GE(took, 390ms);
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(reaped(pid));
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
}

TEST(ChildProcessShutdown, GrandchildHoldingStdoutDoesNotHangUs) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  // docs/kcl-protocol.md §4.1: the Java daemon would wait for stdout EOF forever here.
  const std::string script = write_script(dir, "grandchild.sh", R"(
sleep 30 &
echo $! > "$D/grandchild.pid"
IFS= read -r line; status initialize
IFS= read -r line; status leaseLost
IFS= read -r line
exit 0
)");
  ChildProcessOptions o = options_for(script);
  o.exit_grace = 300ms;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  const int pid = *child.pid();
  const auto took = timed([&] { child.lease_lost(); });
  const std::string grandchild = read_file(dir.file("grandchild.pid"));
  if (!grandchild.empty()) ::kill(std::stoi(grandchild), SIGKILL);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(reaped(pid));
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "the child itself exited normally";
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Warn, "grandchild"));
}

TEST(ChildProcessShutdown, DestructorAndMovesReapTheChild) {
  Deadline deadline{20s};
  LogCapture logs;
  TempDir dir;
  const std::string script = write_script(dir, "idle.sh", R"(
IFS= read -r line; status initialize
while IFS= read -r line; do :; done
)");
  int pid = -1;
  {
    ChildProcess original(options_for(script));
    original.initialize(shard, ExtendedSequenceNumber{});
    pid = *original.pid();
    ChildProcess moved(std::move(original));
    EXPECT_EQ(moved.pid(), std::optional<int>(pid));
    RecordingCheckpointer cp;
    EXPECT_THROW(original.process_records(small_batch(), cp), kclpp::ProtocolError);  // NOLINT(bugprone-use-after-move)
    EXPECT_FALSE(original.close().has_value());  // NOLINT(bugprone-use-after-move)
    ChildProcess assigned(options_for(script));
    assigned = std::move(moved);
    EXPECT_EQ(assigned.pid(), std::optional<int>(pid));
    EXPECT_FALSE(reaped(pid));
  }  // stdin closed -> the child exits -> reaped
  EXPECT_TRUE(reaped(pid));

  // An initialized child never ended by a terminal call: close() reaps it as well.
  ChildProcess child(options_for(script));
  child.initialize(shard, ExtendedSequenceNumber{});
  pid = *child.pid();
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_TRUE(reaped(pid));
  RecordingCheckpointer cp;
  EXPECT_THROW(child.process_records(small_batch(), cp), kclpp::ProtocolError);
}

// ---------------------------------------------------------------------------------------
// kclpp's own processors (kcl::run) behind kcl::ChildProcess: both protocol sides together.

TEST(ChildProcessKclpp, TestChildRetriesAThrottledCheckpointItself) {
  Deadline deadline{30s};
  LogCapture logs;
  ChildProcess child(options_for(std::string(KCLPP_TEST_CHILD) + " retry"));
  child.initialize(shard, ExtendedSequenceNumber::parse("12345", 2));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info,
                       R"(SAW {"call":"initialize","shard":"shardId-000000000001","position":"12345","sub":2,"sentinel":false})"));

  kclpp::RecordBatch batch;
  batch.records.push_back(make_record("1001", "hello"));
  batch.records.push_back(make_record("1002", std::string("bin\0\xff\x01", 6), 4));
  batch.millis_behind_latest = 7;
  RecordingCheckpointer cp;
  cp.outcomes.push_back([] { throw kclpp::ThrottledError("throttled"); });
  cp.outcomes.push_back([] { throw kclpp::CheckpointError("dependency", "KinesisClientLibDependencyException"); });
  child.process_records(batch, cp);
  EXPECT_EQ(cp.targets(), (std::vector<std::string>{"1002/4", "1002/4", "1002/4"}));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, R"(SAW {"checkpoint":"ok"})"));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, R"("pk":"pk-1001","seq":"1001","sub":0,"ts":null,"len":5)"));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, R"("data":"bin\u0000\u00ff\u0001")"))
      << "binary data survives base64 both ways";
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, R"("mbl":7)"));

  RecordingCheckpointer end_cp;
  child.shard_ended(end_cp);
  EXPECT_EQ(end_cp.targets(), (std::vector<std::string>{"largest"}));
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST(ChildProcessKclpp, FailingProcessorSurfacesAsTransportErrorWithItsExitCode) {
  Deadline deadline{30s};
  LogCapture logs;
  ChildProcess child(options_for(std::string(KCLPP_TEST_CHILD) + " throw-process"));
  child.initialize(shard, ExtendedSequenceNumber{});
  RecordingCheckpointer cp;
  try {
    child.process_records(small_batch(), cp);
    FAIL() << "expected TransportError";
  } catch (const kclpp::TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("exit code 3"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "boom in process_records"));
}

TEST(ChildProcessKclpp, EchoExampleCheckpointsEveryNRecordsAndAtShardEnd) {
  Deadline deadline{30s};
  LogCapture logs;
  ChildProcess child(options_for(std::string(KCLPP_EXAMPLE_ECHO) + " 2"));
  child.initialize(shard, ExtendedSequenceNumber{});
  kclpp::RecordBatch batch;
  for (int i = 1; i <= 5; ++i) batch.records.push_back(make_record(std::to_string(100 + i), "rec" + std::to_string(i)));
  RecordingCheckpointer cp;
  child.process_records(batch, cp);
  ASSERT_FALSE(cp.calls.empty());
  for (const auto& c : cp.calls) {
    ASSERT_TRUE(c.has_value());
    EXPECT_LE(std::stoi(c->str()), 105);
  }
  EXPECT_EQ(cp.targets().back(), "104/0");
  for (int i = 1; i <= 5; ++i) EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "data=rec" + std::to_string(i)));
  RecordingCheckpointer end_cp;
  child.shard_ended(end_cp);
  EXPECT_EQ(end_cp.targets(), (std::vector<std::string>{"largest"}));
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST(ChildProcessKclpp, CountExampleLeaseLost) {
  Deadline deadline{30s};
  LogCapture logs;
  ChildProcessOptions o = options_for(KCLPP_EXAMPLE_COUNT);
  o.log_tag = "count";
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  kclpp::RecordBatch batch;
  for (int i = 1; i <= 3; ++i) batch.records.push_back(make_record(std::to_string(i), "xyz"));
  RecordingCheckpointer cp;
  child.process_records(batch, cp);
  EXPECT_EQ(cp.targets(), (std::vector<std::string>{"largest"}));
  child.lease_lost();
  // A log_tag other than the shard id prefixes the child's lines.
  EXPECT_TRUE(logs.has_all(kclpp::LogLevel::Info, {"[" + shard + " child_pid=", "] [count] "}));
  EXPECT_TRUE(logs.has(kclpp::LogLevel::Info, "lease lost: 3 records, 9 bytes"));
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// ---------------------------------------------------------------------------------------
// A processor written with someone else's protocol implementation: aws-kcl for Node.

class ChildProcessNode : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path source = KCLPP_SOURCE_DIR;
    script_ = (source / "tests" / "node" / "kcl_processor.js").string();
    KCLPP_REQUIRE_PRESENT(kclpp::test::node_unavailable("aws-kcl/index.js"));
    ::setenv("KCLPP_NODE_LOG", dir_.file("node.log").c_str(), 1);
  }
  void TearDown() override { ::unsetenv("KCLPP_NODE_LOG"); }

  [[nodiscard]] std::vector<std::string> events() const { return read_lines(dir_.file("node.log")); }
  [[nodiscard]] static bool has(const std::vector<std::string>& lines, const std::string& needle) {
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }

  TempDir dir_;
  std::string script_;
};

TEST_F(ChildProcessNode, FullLifecycleWithCheckpointsAndAThrottledRetry) {
  Deadline deadline{60s};
  LogCapture logs;
  ChildProcessOptions o = options_for("node " + script_);
  o.reply_timeout = 20s;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber::parse("12345", 2));

  kclpp::RecordBatch batch;
  batch.records.push_back(make_record("1001", "alpha"));
  batch.records.push_back(make_record("1002", "beta"));
  batch.records.push_back(make_record("1003", "gamma"));
  batch.millis_behind_latest = 42;
  RecordingCheckpointer records_cp;
  records_cp.outcomes.push_back([] { throw kclpp::ThrottledError("slow down"); });
  child.process_records(batch, records_cp);
  // One attempt per request; the second call is the Node processor's own retry.
  EXPECT_EQ(records_cp.targets(), (std::vector<std::string>{"1003/0", "1003/0"}));

  RecordingCheckpointer shutdown_cp;
  child.shutdown_requested(shutdown_cp);
  EXPECT_EQ(shutdown_cp.targets(), (std::vector<std::string>{"largest"}));
  ASSERT_TRUE(child.pid().has_value());

  RecordingCheckpointer end_cp;
  child.shard_ended(end_cp);
  EXPECT_EQ(end_cp.targets(), (std::vector<std::string>{"largest"}));
  EXPECT_EQ(records_cp.calls.size(), 2U);

  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "node exits on stdin EOF";

  const auto ev = events();
  EXPECT_TRUE(has(ev, R"("event":"initialize","shardId":"shardId-000000000001","sequenceNumber":"12345","subSequenceNumber":2)"));
  EXPECT_TRUE(has(ev, R"({"data":"alpha","partitionKey":"pk-1001","sequenceNumber":"1001","subSequenceNumber":0)"));
  EXPECT_TRUE(has(ev, R"({"data":"gamma","partitionKey":"pk-1003","sequenceNumber":"1003")"));
  EXPECT_TRUE(has(ev, R"("millisBehindLatest":42)"));
  EXPECT_TRUE(has(ev, R"("sequenceNumber":"1003","attempt":1,"error":"ThrottlingException")"));
  EXPECT_TRUE(has(ev, R"("sequenceNumber":"1003","attempt":2,"error":null,"echoed":"1003")"));
  EXPECT_TRUE(has(ev, R"({"event":"shutdownRequested"})"));
  EXPECT_TRUE(has(ev, R"({"event":"shardEnded"})"));
  EXPECT_TRUE(has(ev, R"({"event":"exit","code":0})"));
  // The child's stderr reached our log, tagged with the shard.
  EXPECT_TRUE(logs.has_all(kclpp::LogLevel::Info, {"[" + shard + " child_pid=", "] kcl_processor.js: "}));
}

TEST_F(ChildProcessNode, LeaseLostRunEndsWithoutCheckpoints) {
  Deadline deadline{60s};
  LogCapture logs;
  ChildProcessOptions o = options_for("node " + script_);
  o.reply_timeout = 20s;
  ChildProcess child(o);
  child.initialize(shard, ExtendedSequenceNumber{});
  kclpp::RecordBatch empty;  // callProcessRecordsEvenForEmptyRecordList
  RecordingCheckpointer cp;
  child.process_records(empty, cp);
  const int pid = *child.pid();
  child.lease_lost();
  EXPECT_TRUE(reaped(pid));
  EXPECT_TRUE(cp.calls.empty());
  const auto status = child.close();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  const auto ev = events();
  EXPECT_TRUE(has(ev, R"("event":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON")"));
  EXPECT_TRUE(has(ev, R"({"event":"processRecords","records":[])"));
  EXPECT_TRUE(has(ev, R"({"event":"leaseLost"})"));
  EXPECT_TRUE(has(ev, R"({"event":"exit","code":0})"));
  EXPECT_FALSE(has(ev, R"("event":"checkpointResult")"));
}

}  // namespace
