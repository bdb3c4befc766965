// `kclpp conformance -- CHILD` (docs/operations.md §5) as a user runs it: against kclpp's
// echo example in protocol mode (conformant), the Node processor on the official aws-kcl
// library (tests/node/kcl_processor.js), and tests/conformance/bad_child.py with one flag
// per misbehaviour, whose report must name the failing scenario and the reason; plus the
// exit status for CI and the usage errors.

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "e2e_support.hpp"
#include "local_server.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using kclpp::test::RunResult;

const std::vector<std::string> all_scenarios{"initialize",          "large-records",     "kpl-subsequence",
                                             "checkpoint-throttled", "checkpoint-invalid-state",
                                             "checkpoint-shutdown",  "shard-end",         "lease-lost",
                                             "shutdown-requested",   "kcl1-shutdown",     "throughput",
                                             "stray-stdout",         "strict-messages",   "reply-time"};

std::string bad_child() { return std::string(KCLPP_SOURCE_DIR) + "/tests/conformance/bad_child.py"; }

RunResult conformance(const std::vector<std::string>& options, const std::vector<std::string>& child,
                      std::chrono::milliseconds deadline = 60s) {
  std::vector<std::string> argv{KCLPP_TOOL, "conformance"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), child.begin(), child.end());
  return kclpp::test::run_program(argv, {}, deadline);
}

::testing::AssertionResult exited_with(const RunResult& r, int code) {
  if (r.status && r.status->exited && r.status->code == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit code " << code << ", got " << r.describe() << "\nstdout:\n"
                                       << r.out;
}

// The report's block for `scenario`: its line, which must start with `verdict`, and the
// indented notes under it. Empty when there is no such line.
std::string block(const std::string& report, const std::string& verdict, const std::string& scenario) {
  const std::vector<std::string> lines = kclpp::test::split_lines(report);
  const std::regex head("^" + verdict + "  " + scenario + " ");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (!std::regex_search(lines[i], head)) continue;
    std::string out = lines[i] + "\n";
    for (std::size_t j = i + 1; j < lines.size() && lines[j].rfind("      ", 0) == 0; ++j) out += lines[j] + "\n";
    return out;
  }
  return {};
}

// The verdict word of each scenario line.
std::map<std::string, std::string> verdicts(const std::string& report) {
  std::map<std::string, std::string> out;
  static const std::regex line(R"(^(PASS|INFO|WARN|FAIL)  ([a-z0-9-]+) )");
  for (const std::string& l : kclpp::test::split_lines(report)) {
    std::smatch m;
    if (std::regex_search(l, m, line)) out[m[2]] = m[1];
  }
  return out;
}

TEST(ConformanceTest, EchoExamplePassesEveryScenarioWithItsThroughput) {
  // Checkpoints at every record: every position is checked.
  const RunResult r = conformance({"--throughput-records", "3000"}, {KCLPP_EXAMPLE_ECHO, "1"});
  ASSERT_TRUE(exited_with(r, 0));
  const auto v = verdicts(r.out);
  for (const std::string& s : all_scenarios) EXPECT_EQ(v.count(s) ? v.at(s) : "missing", "PASS") << s << "\n" << r.out;
  EXPECT_NE(r.out.find("result: 14 passed, 0 info, 0 warnings, 0 failed"), std::string::npos) << r.out;
  const std::string throughput = block(r.out, "PASS", "throughput");
  EXPECT_TRUE(std::regex_search(throughput, std::regex(R"(3000 records \(3\.1 MB of data\) in [0-9.]+ s: [0-9]+ records/s, [0-9.]+ MB/s)")))
      << throughput;
  // Positions the echo example sends: each record with its sub-sequence number.
  EXPECT_NE(block(r.out, "PASS", "kpl-subsequence").find("'...000002002'/3"), std::string::npos) << r.out;
  EXPECT_NE(block(r.out, "PASS", "checkpoint-throttled").find("retried after 2 ThrottlingExceptions"), std::string::npos)
      << r.out;
  EXPECT_NE(block(r.out, "PASS", "shard-end").find("exited with code 0"), std::string::npos) << r.out;
}

TEST(ConformanceTest, NodeAwsKclChild) {
  KCLPP_REQUIRE_PRESENT(kclpp::test::node_unavailable("aws-kcl/index.js"));
  const std::string script = std::string(KCLPP_SOURCE_DIR) + "/tests/node/kcl_processor.js";
  const RunResult r = conformance({"--throughput-records", "3000", "--timeout-ms", "5000"}, {"node", script});
  std::cout << r.out;  // the report for the Node child, for whoever reads the test log
  ASSERT_TRUE(exited_with(r, 0));
  const auto v = verdicts(r.out);
  for (const std::string& s : all_scenarios) {
    const std::string expected = s == "kpl-subsequence" || s == "kcl1-shutdown" ? "WARN" : "PASS";
    EXPECT_EQ(v.count(s) ? v.at(s) : "missing", expected) << s << "\n" << r.out;
  }
  // aws-kcl never sends subSequenceNumber (docs/kcl-protocol.md §3 in the notes' words).
  EXPECT_NE(block(r.out, "WARN", "kpl-subsequence").find("'...000002002' (no subSequenceNumber)"), std::string::npos);
  // aws-kcl does not know KCL 1.x's shutdown: its manager throws on an unknown action.
  const std::string kcl1 = block(r.out, "WARN", "kcl1-shutdown");
  EXPECT_NE(kcl1.find("does not answer the KCL 1.x"), std::string::npos) << kcl1;
  EXPECT_NE(kcl1.find("child stderr: TypeError"), std::string::npos) << kcl1;
}

struct Misbehaviour {
  std::vector<std::string> flags;
  std::string scenarios;
  int exit_code;
  std::string verdict;
  std::string scenario;  // the report line that names it
  std::vector<std::string> reasons;
  std::string timeout_ms = "10000";
};

TEST(ConformanceTest, MisbehavingChildrenAreNamedWithTheReason) {
  KCLPP_REQUIRE_PRESENT(kclpp::test::program_unavailable("/usr/bin/python3"));
  const std::vector<Misbehaviour> cases{
      {{"--crash-on-initialize"}, "initialize,large-records", 1, "FAIL", "initialize",
       {"expected status for initialize", "child exit code 1", "child stderr: bad_child: crashing on initialize"}},
      {{"--wrong-status"}, "large-records", 1, "FAIL", "large-records",
       {"child replied status for 'initialize' while waiting for status of processRecords"}},
      {{"--checkpoint-beyond"}, "large-records", 1, "FAIL", "large-records",
       {"checkpoint at ...000002004/0: beyond the largest record delivered (...000001004/0",
        "answers IllegalArgumentException"}},
      {{"--kpl-no-sub"}, "kpl-subsequence", 0, "WARN", "kpl-subsequence",
       {"'...000002002' (no subSequenceNumber)", "sub-records 1-3"}},
      {{"--no-retry"}, "checkpoint-throttled", 1, "FAIL", "checkpoint-throttled",
       {"expected a retry of '...000003010'/0 -> ThrottlingException", "got none"}},
      {{"--retry-forever"}, "checkpoint-invalid-state", 1, "FAIL", "checkpoint-invalid-state",
       {"each answered InvalidStateException", "a loop"}},
      {{"--retry-forever"}, "checkpoint-shutdown", 1, "FAIL", "checkpoint-shutdown",
       {"each answered ShutdownException", "a loop"}},
      {{"--no-checkpoint-at-end"}, "shard-end", 1, "FAIL", "shard-end",
       {"expected a checkpoint at SHARD_END", "got none", "child shards never start"}},
      {{"--no-checkpoint-at-end"}, "kcl1-shutdown", 1, "FAIL", "kcl1-shutdown",
       {"TERMINATE: expected a checkpoint at SHARD_END before status for shutdown, got none"}},
      {{"--checkpoint-on-lease-lost"}, "lease-lost", 0, "WARN", "lease-lost",
       {"asked to checkpoint after leaseLost (null -> InvalidStateException)"}},
      {{"--exit-on-shutdown-requested"}, "shutdown-requested", 1, "FAIL", "shutdown-requested",
       {"expected the child to stay up after shutdownRequested", "leaseLost"}},
      {{"--ignore-eof"}, "lease-lost", 1, "FAIL", "lease-lost",
       {"expected the child to exit when its stdin closed", "got no exit within 1000 ms"}, "1000"},
      {{"--no-kcl1"}, "kcl1-shutdown", 0, "WARN", "kcl1-shutdown",
       {"does not answer the KCL 1.x", "within 1000 ms (--timeout-ms), got no reply"}, "1000"},
      {{"--stray-stdout"}, "initialize", 0, "WARN", "stray-stdout",
       {"(initialize, during initialize): 'hello from the child'", "log to stderr"}},
      {{"--glued-stdout"}, "large-records", 1, "FAIL", "stray-stdout",
       {"glued to stray text", "'progress: {\"action\":\"status\",\"responseFor\":\"processRecords\"}'"}, "1000"},
      {{"--extra-key"}, "initialize", 1, "FAIL", "strict-messages",
       {"message with \"extra\"", "strict reader skips it"}},
      {{"--slow", "1500"}, "large-records", 1, "FAIL", "large-records",
       {"expected status for processRecords within 1000 ms (--timeout-ms), got no reply"}, "1000"},
  };
  for (const Misbehaviour& c : cases) {
    std::vector<std::string> child{"/usr/bin/python3", bad_child()};
    child.insert(child.end(), c.flags.begin(), c.flags.end());
    const RunResult r = conformance({"--scenarios", c.scenarios, "--timeout-ms", c.timeout_ms}, child, 30s);
    const std::string what = c.flags.front() + " (" + c.scenarios + ")";
    EXPECT_TRUE(exited_with(r, c.exit_code)) << what;
    const std::string b = block(r.out, c.verdict, c.scenario);
    ASSERT_FALSE(b.empty()) << what << ": no " << c.verdict << " line for " << c.scenario << "\n" << r.out;
    for (const std::string& reason : c.reasons) EXPECT_NE(b.find(reason), std::string::npos) << what << ": " << reason << "\n" << b;
    // Only the misbehaviour is reported: the other scenarios that ran still pass.
    for (const auto& [scenario, verdict] : verdicts(r.out)) {
      if (scenario != c.scenario && verdict == "FAIL" && c.flags.front() != "--glued-stdout") {
        ADD_FAILURE() << what << ": " << scenario << " failed too\n" << r.out;
      }
    }
  }

  // Slow but in time: flagged by reply-time only.
  const RunResult slow = conformance({"--scenarios", "large-records", "--slow-ms", "200"},
                                     {"/usr/bin/python3", bad_child(), "--slow", "400"});
  EXPECT_TRUE(exited_with(slow, 0));
  EXPECT_NE(block(slow.out, "WARN", "reply-time").find("2 replies slower than --slow-ms 200 ms: processRecords (large-records) in "),
            std::string::npos)
      << slow.out;
  EXPECT_EQ(verdicts(slow.out)["large-records"], "PASS") << slow.out;

  // Without flags the scripted child is conformant: the harness is not stricter than the notes.
  const RunResult good = conformance({"--throughput-records", "1000"}, {"/usr/bin/python3", bad_child()});
  EXPECT_TRUE(exited_with(good, 0));
  for (const auto& [scenario, verdict] : verdicts(good.out)) EXPECT_EQ(verdict, "PASS") << scenario << "\n" << good.out;
}

TEST(ConformanceTest, UsageErrorsExitTwoAndHelpDocumentsEveryOption) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"conformance"}, "no child command"},
      {{"conformance", "--bogus", "--", "true"}, "--bogus"},
      {{"conformance", "--timeout-ms", "0", "--", "true"}, "--timeout-ms"},
      {{"conformance", "--scenarios", "initialize,nope", "--", "true"}, "unknown scenario 'nope'"},
      {{"conformance", "--", "/nonexistent/child"}, "cannot start '/nonexistent/child'"},
      {{"conformance", "--", "echo", "two words"}, "'two words'"},
  };
  for (const auto& [args, needle] : cases) {
    std::vector<std::string> argv{KCLPP_TOOL};
    argv.insert(argv.end(), args.begin(), args.end());
    const RunResult r = kclpp::test::run_program(argv, {}, 10s);
    EXPECT_TRUE(exited_with(r, 2)) << args.back();
    EXPECT_NE(r.err.find(needle), std::string::npos) << args.back() << "\n" << r.err;
  }
  const RunResult help = kclpp::test::run_program({KCLPP_TOOL, "conformance", "--help"}, {}, 10s);
  ASSERT_TRUE(exited_with(help, 0));
  std::set<std::string> documented;
  static const std::regex option(R"(^  (--[a-z-]+)\s+\S)");
  for (const std::string& l : kclpp::test::split_lines(help.out)) {
    std::smatch m;
    if (std::regex_search(l, m, option)) documented.insert(m[1]);
  }
  EXPECT_EQ(documented, (std::set<std::string>{"--timeout-ms", "--slow-ms", "--scenarios", "--throughput-records",
                                               "--throughput-batch", "--record-size", "--verbose", "--help"}))
      << help.out;
  for (const std::string& s : all_scenarios) {
    if (s != "stray-stdout" && s != "strict-messages" && s != "reply-time") {
      EXPECT_NE(help.out.find(s), std::string::npos) << s;
    }
  }
  const RunResult top = kclpp::test::run_program({KCLPP_TOOL, "--help"}, {}, 10s);
  EXPECT_NE(top.out.find("conformance -- CHILD"), std::string::npos) << top.out;
}

}  // namespace
