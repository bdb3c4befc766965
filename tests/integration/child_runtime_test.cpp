// kcl::run() over real pipes: the test plays the MultiLangDaemon against the test_child
// program (test_child.cpp). Wire-level cases of docs/kcl-protocol.md §9 (1–5, 12–19,
// 21–25) adapted to kclpp's documented choices (kcl/README.md, "Outcomes"), plus framing,
// the stdout guard, pipe sizes and failure paths. Every wait has a deadline.

#include <fcntl.h>
#include <signal.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kclpp/processor/base64.hpp"
#include "support.hpp"

namespace kclpp::test {
namespace {

const std::string child_path = KCLPP_TEST_CHILD;

std::string status(std::string_view action) {
  return R"({"action":"status","responseFor":")" + std::string(action) + R"("})";
}
std::string cp_request(std::string_view seq, std::int64_t sub) {
  return R"({"action":"checkpoint","sequenceNumber":")" + std::string(seq) +
         R"(","subSequenceNumber":)" + std::to_string(sub) + "}";
}
const std::string cp_request_null =
    R"({"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null})";
std::string cp_ok(std::string_view seq = {}) {
  const std::string s = seq.empty() ? "null" : "\"" + std::string(seq) + "\"";
  return R"({"action":"checkpoint","sequenceNumber":)" + s +
         R"(,"subSequenceNumber":null,"error":null})";
}
std::string cp_error(std::string_view error) {
  return R"({"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":")" +
         std::string(error) + R"("})";
}
std::string record(std::string_view data_b64, std::string_view pk, std::string_view seq,
                   std::int64_t sub = 0) {
  return R"({"data":")" + std::string(data_b64) + R"(","partitionKey":")" + std::string(pk) +
         R"(","sequenceNumber":")" + std::string(seq) +
         R"(","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":)" +
         std::to_string(sub) + R"(,"action":"record"})";
}
std::string process_records(const std::vector<std::string>& records, std::int64_t mbl = 0) {
  std::string out = R"({"action":"processRecords","records":[)";
  for (std::size_t i = 0; i < records.size(); ++i) out += (i ? "," : "") + records[i];
  return out + R"(],"millisBehindLatest":)" + std::to_string(mbl) + "}";
}

// docs/kcl-protocol.md §2 example lines.
const std::string init_trim =
    R"({"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0})";
const std::string init_seq =
    R"({"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":3})";
const std::string records_example =
    R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0})";
const std::string big_seq = "49590338271490256608559692538361571095921575989136588898";
const std::string lease_lost = R"({"action":"leaseLost"})";
const std::string shard_ended = R"({"action":"shardEnded"})";
const std::string shutdown_requested = R"({"action":"shutdownRequested"})";

std::string saw_ok = R"(SAW {"checkpoint":"ok"})";

class ChildRuntimeTest : public ::testing::Test {
 protected:
  enum class Keys { Check, Skip };

  Subprocess& spawn(const std::string& mode, std::vector<std::string> flags = {},
                    SpawnOptions options = {}, Keys keys = Keys::Check) {
    std::vector<std::string> argv{child_path, mode};
    argv.insert(argv.end(), flags.begin(), flags.end());
    children_.push_back(std::make_unique<Subprocess>(argv, options));
    keys_.push_back(keys);
    return *children_.back();
  }

  static std::string next(Subprocess& p, std::chrono::milliseconds deadline = default_deadline) {
    return p.read_line(deadline).value_or("<no line: EOF or timeout>");
  }

  // Sends `line` and returns the next message the child writes.
  static std::string exchange(Subprocess& p, const std::string& line) {
    if (!p.write_line(line)) return "<write failed>";
    return next(p);
  }

  // Closes stdin and returns the exit code (-1 on timeout or a signal).
  static int finish(Subprocess& p, std::chrono::milliseconds deadline = default_deadline) {
    p.close_stdin();
    const auto st = p.wait(deadline);
    if (!st) {
      ADD_FAILURE() << "the child did not exit within the deadline";
      return -1;
    }
    if (!st->exited) {
      ADD_FAILURE() << "the child died: " << st->str();
      return -1;
    }
    return st->code;
  }

  static int wait_code(Subprocess& p, std::chrono::milliseconds deadline = default_deadline) {
    const auto st = p.wait(deadline);
    if (!st) {
      ADD_FAILURE() << "the child did not exit within the deadline";
      return -1;
    }
    if (!st->exited) {
      ADD_FAILURE() << "the child died: " << st->str();
      return -1;
    }
    return st->code;
  }

  // docs/kcl-protocol.md §1 "Strict parsing": every message written must have exactly the
  // keys the Java daemon accepts, compact ASCII JSON (§9), one per line.
  void TearDown() override {
    for (std::size_t i = 0; i < children_.size(); ++i) {
      auto& p = *children_[i];
      p.kill();
      if (keys_[i] == Keys::Skip) continue;
      for (const auto& line : lines_with(p.stdout_raw(), "")) {
        if (line.empty()) continue;
        SCOPED_TRACE("stdout line: " + line);
        EXPECT_EQ(line.find(' '), std::string::npos) << "not compact";
        for (char c : line) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << "not ASCII";
        const auto keys = json_keys(line);
        ASSERT_TRUE(keys.has_value()) << "not a flat JSON object";
        if (line.find(R"("action":"status")") != std::string::npos) {
          EXPECT_EQ(*keys, (std::vector<std::string>{"action", "responseFor"}));
        } else if (line.find(R"("action":"checkpoint")") != std::string::npos) {
          EXPECT_EQ(*keys,
                    (std::vector<std::string>{"action", "sequenceNumber", "subSequenceNumber"}));
        } else {
          ADD_FAILURE() << "a message the daemon does not accept";
        }
      }
    }
    children_.clear();
  }

  std::vector<std::unique_ptr<Subprocess>> children_;
  std::vector<Keys> keys_;
};

// ---- transcripts ----------------------------------------------------------------------

using ChildRuntimeTranscript = ChildRuntimeTest;

// docs/kcl-protocol.md §9, with kclpp's one documented difference: a checkpoint at a record always
// carries its sub-sequence number (docs/kcl-protocol.md §5 recommendation), so "456"/0 instead of null.
TEST_F(ChildRuntimeTranscript, PythonCase5ExactlySixMessagesAndQuietStderr) {
  auto& p = spawn("py-v1");
  ASSERT_TRUE(p.write_line(
      R"({"action":"initialize","shardId":"shardId-123","sequenceNumber":"456","subSequenceNumber":0})"));
  EXPECT_EQ(next(p), status("initialize"));
  ASSERT_TRUE(p.write_line(
      R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"456","subSequenceNumber":0,"approximateArrivalTimestamp":1476889707000,"action":"record"}],"millisBehindLatest":1476889708000})"));
  EXPECT_EQ(next(p), cp_request("456", 0));
  EXPECT_EQ(exchange(p, R"({"action":"checkpoint","sequenceNumber":"456","subSequenceNumber":0,"error":"Exception"})"),
            cp_request("456", 0));
  EXPECT_EQ(exchange(p, R"({"action":"checkpoint","sequenceNumber":"456","subSequenceNumber":0,"error":null})"),
            status("processRecords"));
  EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  // Exactly six messages, each framed "\n" + json + "\n" (docs/kcl-protocol.md §1).
  EXPECT_EQ(p.stdout_raw(),
            "\n" + status("initialize") + "\n\n" + cp_request("456", 0) + "\n\n" +
                cp_request("456", 0) + "\n\n" + status("processRecords") + "\n\n" +
                cp_request_null + "\n\n" + status("shardEnded") + "\n");
  EXPECT_EQ(p.stderr_text(), "");
}

// docs/kcl-protocol.md §9: initialize → status; the fields reach the processor intact.
TEST_F(ChildRuntimeTranscript, InitializeRepliesStatusAndPassesPosition) {
  auto& p = spawn("echo");
  EXPECT_EQ(exchange(p, init_seq), status("initialize"));
  EXPECT_TRUE(p.wait_stderr(
      R"(SAW {"call":"initialize","shard":"shardId-000000000001","position":")" + big_seq +
      R"(","sub":3,"sentinel":false})"));
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_TRUE(p.wait_stderr(R"("position":"TRIM_HORIZON","sub":0,"sentinel":true})"));
  // Node's case 13: only shardId (also the legacy protocol, docs/kcl-protocol.md §8) → TRIM_HORIZON.
  EXPECT_EQ(exchange(p, R"({"action":"initialize","shardId":"shardId-000001"})"),
            status("initialize"));
  EXPECT_TRUE(p.wait_stderr(
      R"(SAW {"call":"initialize","shard":"shardId-000001","position":"TRIM_HORIZON","sub":0,"sentinel":true})"));
  EXPECT_EQ(exchange(p,
                     R"({"action":"initialize","shardId":"s","sequenceNumber":null,"subSequenceNumber":null})"),
            status("initialize"));
  EXPECT_EQ(exchange(p,
                     R"({"action":"initialize","shardId":"s","sequenceNumber":"LATEST","subSequenceNumber":0})"),
            status("initialize"));
  EXPECT_TRUE(p.wait_stderr(R"("shard":"s","position":"LATEST")"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §9: processRecords → checkpoint(seq) → response (legacy
// "checkpoint" key) → status; then shardEnded (case 23), each step after the status.
TEST_F(ChildRuntimeTranscript, OrderedRunWithCheckpoint) {
  auto& p = spawn("checkpoint-last-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, process_records({record("bWVvdw==", "cat", "456")})),
            cp_request("456", 0));
  EXPECT_EQ(exchange(p, R"({"action":"checkpoint","checkpoint":"456","error":null})"),
            status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(saw_ok));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, cp_ok(big_seq)), status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(R"("pk":"cat","seq":")" + big_seq +
                            R"(","sub":0,"ts":1476889707000,"len":4,"sum":3347840,"data":"meow"})"));
  EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
}

// A record inside a KPL aggregate: its sub-sequence number goes with the checkpoint.
TEST_F(ChildRuntimeTranscript, CheckpointEachRecordSendsSubSequenceNumbers) {
  auto& p = spawn("checkpoint-each");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, process_records({record("YQ==", "k", "100", 0), record("Yg==", "k", "100", 1),
                                         record("Yw==", "k", "200", 0)})),
            cp_request("100", 0));
  EXPECT_EQ(exchange(p, cp_ok("100")), cp_request("100", 1));
  EXPECT_EQ(exchange(p, cp_ok("100")), cp_request("200", 0));
  EXPECT_EQ(exchange(p, cp_ok("200")), status("processRecords"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §9: checkpoint without a sequence number → both keys null.
TEST_F(ChildRuntimeTranscript, NullCheckpointSendsBothKeysNull) {
  auto& p = spawn("checkpoint-null-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(saw_ok));
  // An empty batch (callProcessRecordsEvenForEmptyRecordList) works the same.
  EXPECT_EQ(exchange(p, process_records({})), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("processRecords"));
  EXPECT_EQ(finish(p), 0);
}

// ---- checkpoint errors --------------------------------------------------------------

using ChildRuntimeCheckpoint = ChildRuntimeTest;

// docs/kcl-protocol.md §9: the error name reaches the processor (a stray "checkpoint" key too).
TEST_F(ChildRuntimeCheckpoint, ErrorNameReachesProcessor) {
  auto& p = spawn("checkpoint-last-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p,
                     R"({"action":"checkpoint","checkpoint":"456","error":"ThisIsATestException"})"),
            status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(
      R"(SAW {"checkpoint":"error","name":"ThisIsATestException","type":"CheckpointError")"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §9 and the §5 error table: typed errors.
TEST_F(ChildRuntimeCheckpoint, EachErrorNameReachesTheProcessorAsItsErrorType) {
  auto& p = spawn("checkpoint-last-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  const std::vector<std::pair<std::string, std::string>> cases{
      {"ThrottlingException", "ThrottledError"},
      {"ShutdownException", "LeaseLostError"},
      {"InvalidStateException", "CheckpointError"},
      {"KinesisClientLibDependencyException", "CheckpointError"},
      {"IllegalArgumentException", "CheckpointError"}};
  for (const auto& [name, type] : cases) {
    SCOPED_TRACE(name);
    EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
    EXPECT_EQ(exchange(p, cp_error(name)), status("processRecords"));
    EXPECT_TRUE(p.wait_stderr(R"(SAW {"checkpoint":"error","name":")" + name + R"(","type":")" +
                              type + "\""));
  }
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §9: ThrottlingException → the retry policy sends the request again.
TEST_F(ChildRuntimeCheckpoint, ThrottledCheckpointIsRetried) {
  auto& p = spawn("retry");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, cp_error("ThrottlingException")), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, cp_error("KinesisClientLibDependencyException")), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, cp_ok(big_seq)), status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(saw_ok));
  EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
}

// A non-retryable error is not retried.
TEST_F(ChildRuntimeCheckpoint, ShutdownExceptionIsNotRetried) {
  auto& p = spawn("retry");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, cp_error("ShutdownException")), status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(R"("name":"ShutdownException","type":"LeaseLostError")"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §9: one outstanding checkpoint at a time.
TEST_F(ChildRuntimeCheckpoint, SecondConcurrentCheckpointIsRefused) {
  auto& p = spawn("reentrant");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  // The second call fails at once, without a request, while the first one waits.
  EXPECT_TRUE(p.wait_stderr(
      R"(SAW {"reentrant":{"checkpoint":"error","name":"InvalidStateException")"));
  EXPECT_TRUE(p.wait_stderr("another checkpoint is already in progress"));
  EXPECT_EQ(exchange(p, cp_ok(big_seq)), status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(saw_ok));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §9: another action instead of the checkpoint response → the checkpoint
// fails with InvalidStateException, and (unlike Python) the line is kept and dispatched
// after the current action.
TEST_F(ChildRuntimeCheckpoint, UnexpectedActionWhileWaitingIsKept) {
  auto& p = spawn("checkpoint-twice-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, process_records({record("YQ==", "k", "456")})), cp_request("456", 0));
  // The daemon sends the next batch instead of the response.
  EXPECT_EQ(exchange(p, process_records({record("Yg==", "k", "789"), record("Yw==", "k", "790")})),
            status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(R"(SAW {"checkpoint":"error","name":"InvalidStateException")"));
  // The second attempt of the same action fails without writing (the daemon moved on).
  // Then the kept batch runs: its records, its own checkpoints.
  EXPECT_EQ(next(p), cp_request("790", 0));
  EXPECT_TRUE(p.wait_stderr(R"("n":2,"mbl":0,"records":[{"pk":"k","seq":"789")"));
  EXPECT_EQ(exchange(p, cp_ok("790")), cp_request("790", 0));
  EXPECT_EQ(exchange(p, cp_ok("790")), status("processRecords"));
  EXPECT_EQ(finish(p), 0);
  const auto text = p.stderr_text();
  EXPECT_EQ(lines_with(text, R"(SAW {"call":"process_records")").size(), 2u) << text;
  EXPECT_EQ(lines_with(text, R"("name":"InvalidStateException")").size(), 2u) << text;
  EXPECT_NE(text.find("expected a checkpoint response"), std::string::npos) << text;
}

// Python's case 2 literally: an initialize arrives instead of the response.
TEST_F(ChildRuntimeCheckpoint, InitializeInsteadOfResponse) {
  auto& p = spawn("checkpoint-last-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, init_seq), status("processRecords"));
  EXPECT_EQ(next(p), status("initialize"));
  EXPECT_TRUE(p.wait_stderr(R"(SAW {"checkpoint":"error","name":"InvalidStateException")"));
  EXPECT_TRUE(p.wait_stderr(R"("sub":3,"sentinel":false})"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §4.1/§5: no checkpointer in leaseLost: a kept Checkpointer fails locally.
TEST_F(ChildRuntimeCheckpoint, CheckpointDuringLeaseLostFailsWithoutRoundTrip) {
  auto& p = spawn("stale-checkpointer");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), status("processRecords"));
  EXPECT_EQ(exchange(p, lease_lost), status("leaseLost"));
  EXPECT_TRUE(p.wait_stderr(R"(SAW {"checkpoint":"error","name":"InvalidStateException")"));
  EXPECT_EQ(finish(p), 0);
}

// A checkpoint response with no outstanding request: warning, ignored.
TEST_F(ChildRuntimeCheckpoint, StrayResponseIsIgnored) {
  auto& p = spawn("echo");
  ASSERT_TRUE(p.write_line(cp_ok("123")));
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_TRUE(p.wait_stderr("checkpoint response with no outstanding request"));
  EXPECT_EQ(finish(p), 0);
}

// EOF while waiting for a response: TransportError; no status, exit 2.
TEST_F(ChildRuntimeCheckpoint, EofWhileWaitingForResponse) {
  auto& p = spawn("checkpoint-last-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  EXPECT_EQ(finish(p), 2);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  EXPECT_NE(p.stderr_text().find("EOF while waiting for the response"), std::string::npos)
      << p.stderr_text();
}

// A malformed line where the response should be: exit 2 naming the line.
TEST_F(ChildRuntimeCheckpoint, MalformedResponse) {
  auto& p = spawn("checkpoint-last-once");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  ASSERT_TRUE(p.write_line("this is not json"));
  EXPECT_EQ(wait_code(p), 2);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  EXPECT_NE(p.stderr_text().find("this is not json"), std::string::npos) << p.stderr_text();
}

// ---- shardEnded -----------------------------------------------------------------------

using ChildRuntimeShardEnd = ChildRuntimeTest;

// docs/kcl-protocol.md §4.1: the safety net checkpoints SHARD_END for a processor that did
// not (with retries), and warns.
TEST_F(ChildRuntimeShardEnd, SafetyNetCheckpointsForTheProcessor) {
  auto& p = spawn("no-checkpoint-shard-end");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
  EXPECT_EQ(exchange(p, cp_error("ThrottlingException")), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
  EXPECT_NE(p.stderr_text().find("without checkpointing"), std::string::npos) << p.stderr_text();
}

// A processor that checkpointed its last record still gets SHARD_END (a no-op for the
// KCL), without a warning.
TEST_F(ChildRuntimeShardEnd, SafetyNetAfterSequenceCheckpointIsQuiet) {
  auto& p = spawn("seq-checkpoint-shard-end");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), status("processRecords"));
  EXPECT_EQ(exchange(p, shard_ended), cp_request(big_seq, 0));
  EXPECT_EQ(exchange(p, cp_ok(big_seq)), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
  EXPECT_EQ(p.stderr_text().find("WARN"), std::string::npos) << p.stderr_text();
}

// The processor's own null checkpoint: no second one.
TEST_F(ChildRuntimeShardEnd, NoSafetyNetAfterNullCheckpoint) {
  auto& p = spawn("echo");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
}

TEST_F(ChildRuntimeShardEnd, SafetyNetFailureFollowsPolicy) {
  {
    auto& p = spawn("no-checkpoint-shard-end");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
    ASSERT_TRUE(p.write_line(cp_error("IllegalArgumentException")));
    EXPECT_EQ(wait_code(p), 3);
    EXPECT_TRUE(p.read_lines_until_eof().empty());
  }
  {
    auto& p = spawn("no-checkpoint-shard-end", {"--log-and-continue"});
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
    EXPECT_EQ(exchange(p, cp_error("IllegalArgumentException")), status("shardEnded"));
    EXPECT_EQ(finish(p), 0);
  }
  {  // ShutdownException: another worker owns the shard; reply in both policies.
    auto& p = spawn("no-checkpoint-shard-end");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
    EXPECT_EQ(exchange(p, cp_error("ShutdownException")), status("shardEnded"));
    EXPECT_EQ(finish(p), 0);
  }
}

// ---- processor exceptions -------------------------------------------------------------

using ChildRuntimeProcessorError = ChildRuntimeTest;

// docs/kcl-protocol.md §9, adapted: Fail → exit 3 without a status; the message names what was
// thrown, the action and the shard.
TEST_F(ChildRuntimeProcessorError, InitializeThrowsFail) {
  auto& p = spawn("throw-init");
  ASSERT_TRUE(p.write_line(init_trim));
  EXPECT_EQ(wait_code(p), 3);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  const auto err = p.stderr_text();
  EXPECT_NE(err.find("boom in initialize"), std::string::npos) << err;
  EXPECT_FALSE(lines_with(err, "initialize (shard shardId-000000000001)").empty()) << err;
}

// docs/kcl-protocol.md §9 as in Python: LogAndContinue → status, message on stderr, go on.
TEST_F(ChildRuntimeProcessorError, InitializeThrowsLogAndContinue) {
  auto& p = spawn("throw-init", {"--log-and-continue"});
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_TRUE(p.wait_stderr("boom in initialize"));
  EXPECT_EQ(exchange(p, records_example), status("processRecords"));
  EXPECT_EQ(finish(p), 0);
}

TEST_F(ChildRuntimeProcessorError, ProcessRecordsThrows) {
  {
    auto& p = spawn("throw-process");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    ASSERT_TRUE(p.write_line(records_example));
    EXPECT_EQ(wait_code(p), 3);
    EXPECT_TRUE(p.read_lines_until_eof().empty());
    EXPECT_NE(p.stderr_text().find("boom in process_records"), std::string::npos);
    EXPECT_NE(p.stderr_text().find("processRecords"), std::string::npos);
  }
  {
    auto& p = spawn("throw-process", {"--log-and-continue"});
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, records_example), status("processRecords"));
    EXPECT_EQ(exchange(p, records_example), status("processRecords"));
    EXPECT_EQ(finish(p), 0);
    EXPECT_EQ(lines_with(p.stderr_text(), "boom in process_records").size(), 2u);
  }
}

TEST_F(ChildRuntimeProcessorError, NonStdExceptionIsCaught) {
  auto& p = spawn("throw-non-std");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  ASSERT_TRUE(p.write_line(records_example));
  EXPECT_EQ(wait_code(p), 3);
  EXPECT_NE(p.stderr_text().find("not derived from std::exception"), std::string::npos);
}

// A checkpoint error the processor does not catch is a processor failure.
TEST_F(ChildRuntimeProcessorError, UncaughtCheckpointError) {
  auto& p = spawn("uncaught-checkpoint");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), cp_request(big_seq, 0));
  ASSERT_TRUE(p.write_line(cp_error("ShutdownException")));
  EXPECT_EQ(wait_code(p), 3);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  EXPECT_NE(p.stderr_text().find("ShutdownException"), std::string::npos) << p.stderr_text();
}

TEST_F(ChildRuntimeProcessorError, ShardEndedThrows) {
  {
    auto& p = spawn("throw-shard-end");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    ASSERT_TRUE(p.write_line(shard_ended));
    EXPECT_EQ(wait_code(p), 3);
    EXPECT_TRUE(p.read_lines_until_eof().empty());
  }
  {  // LogAndContinue: the safety net still records SHARD_END.
    auto& p = spawn("throw-shard-end", {"--log-and-continue"});
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
    EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
    EXPECT_EQ(finish(p), 0);
    EXPECT_NE(p.stderr_text().find("boom in shard_ended"), std::string::npos);
  }
}

// leaseLost and shutdownRequested failures are only logged, in both policies.
TEST_F(ChildRuntimeProcessorError, LeaseLostAndShutdownRequestedOnlyLog) {
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{}, std::vector<std::string>{"--log-and-continue"}}) {
    {
      auto& p = spawn("throw-lease-lost", flags);
      EXPECT_EQ(exchange(p, init_trim), status("initialize"));
      EXPECT_EQ(exchange(p, lease_lost), status("leaseLost"));
      EXPECT_EQ(finish(p), 0);
      EXPECT_NE(p.stderr_text().find("boom in lease_lost"), std::string::npos);
    }
    {
      auto& p = spawn("throw-shutdown-requested", flags);
      EXPECT_EQ(exchange(p, init_trim), status("initialize"));
      EXPECT_EQ(exchange(p, shutdown_requested), status("shutdownRequested"));
      EXPECT_EQ(exchange(p, lease_lost), status("leaseLost"));
      EXPECT_EQ(finish(p), 0);
      EXPECT_NE(p.stderr_text().find("boom in shutdown_requested"), std::string::npos);
    }
  }
}

// ---- malformed and unusual input ------------------------------------------------------

using ChildRuntimeInput = ChildRuntimeTest;

// docs/kcl-protocol.md §9, adapted: no action → exit 2 with a message naming the line (never a
// silent hang: the daemon waits for a status that cannot come).
TEST_F(ChildRuntimeInput, LineWithoutActionExits2) {
  auto& p = spawn("echo");
  ASSERT_TRUE(p.write_line(R"({"shardId":"shardId-no-action"})"));
  EXPECT_EQ(wait_code(p), 2);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  EXPECT_NE(p.stderr_text().find("shardId-no-action"), std::string::npos) << p.stderr_text();
}

TEST_F(ChildRuntimeInput, MalformedLinesExit2) {
  const std::vector<std::string> bad{
      "not json at all", R"({"action":"initialize","shardId":)", R"(["action"])",
      R"({"action":"processRecords","records":"nope"})", R"({"action":42})"};
  for (const auto& line : bad) {
    SCOPED_TRACE(line);
    auto& p = spawn("echo");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    ASSERT_TRUE(p.write_line(line));
    EXPECT_EQ(wait_code(p), 2);
    EXPECT_TRUE(p.read_lines_until_eof().empty());
    EXPECT_NE(p.stderr_text().find("malformed line"), std::string::npos) << p.stderr_text();
  }
}

// A position that is neither digits nor a sentinel → protocol error naming the line.
TEST_F(ChildRuntimeInput, BadInitializePositionExits2) {
  auto& p = spawn("echo");
  ASSERT_TRUE(p.write_line(
      R"({"action":"initialize","shardId":"shardId-bad","sequenceNumber":"12ab","subSequenceNumber":0})"));
  EXPECT_EQ(wait_code(p), 2);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  EXPECT_NE(p.stderr_text().find("12ab"), std::string::npos) << p.stderr_text();
  EXPECT_EQ(p.stderr_text().find("SAW"), std::string::npos) << "processor was called";
}

// docs/kcl-protocol.md §9, adapted: an unknown action is answered (forward compatible) with a
// warning; the processor is not called.
TEST_F(ChildRuntimeInput, UnknownActionIsAnswered) {
  auto& p = spawn("echo");
  EXPECT_EQ(exchange(p, R"({"action":"invalid","foo":1})"), status("invalid"));
  EXPECT_TRUE(p.wait_stderr(R"(unknown action "invalid")"));
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(finish(p), 0);
}

// A status message from the daemon is ignored (answering could loop).
TEST_F(ChildRuntimeInput, StatusFromDaemonIsIgnored) {
  auto& p = spawn("echo");
  ASSERT_TRUE(p.write_line(status("initialize")));
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §1: CRLF line ends (a Windows daemon), blank and whitespace-only lines.
TEST_F(ChildRuntimeInput, CrlfAndBlankLines) {
  auto& p = spawn("checkpoint-last-once");
  ASSERT_TRUE(p.write("\r\n\n   \r\n" + init_trim + "\r\n"));
  EXPECT_EQ(next(p), status("initialize"));
  ASSERT_TRUE(p.write("\n\r\n" + process_records({record("bWVvdw==", "cat", "456", 2)}) + "\r\n"));
  EXPECT_EQ(next(p), cp_request("456", 2));
  ASSERT_TRUE(p.write("\r\n" + cp_ok("456") + "\r\n"));
  EXPECT_EQ(next(p), status("processRecords"));
  EXPECT_TRUE(p.wait_stderr(R"("seq":"456","sub":2,)"));
  EXPECT_EQ(finish(p), 0);
}

// docs/kcl-protocol.md §8: KCL 1.x shutdown with reason; the status answers "shutdown".
TEST_F(ChildRuntimeInput, LegacyShutdownReasons) {
  {
    auto& p = spawn("echo");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, R"({"action":"shutdown","reason":"TERMINATE"})"), cp_request_null);
    EXPECT_EQ(exchange(p, cp_ok()), status("shutdown"));
    EXPECT_TRUE(p.wait_stderr(R"(SAW {"call":"shard_ended"})"));
    EXPECT_EQ(finish(p), 0);
  }
  {
    auto& p = spawn("echo");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, R"({"action":"shutdown","reason":"ZOMBIE"})"), status("shutdown"));
    EXPECT_TRUE(p.wait_stderr(R"(SAW {"call":"lease_lost"})"));
    EXPECT_EQ(finish(p), 0);
  }
}

// docs/kcl-protocol.md §1: lines of tens of MB. 20 records of 1 MiB (about 28 MB of JSON on
// one line).
TEST_F(ChildRuntimeInput, TwentyMegabyteLine) {
  auto& p = spawn("echo");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  std::vector<std::string> records;
  std::vector<std::uint32_t> sums;
  for (int i = 0; i < 20; ++i) {
    std::string data(std::size_t{1} << 20, '\0');
    std::uint32_t x = 12345u + static_cast<std::uint32_t>(i);
    std::uint32_t sum = 0;
    for (auto& c : data) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 24);
      sum = sum * 31 + static_cast<unsigned char>(c);
    }
    sums.push_back(sum);
    std::string b64;
    base64_encode(data, b64);
    records.push_back(record(b64, "pk" + std::to_string(i), std::to_string(1000 + i)));
  }
  const std::string line = process_records(records);
  ASSERT_GT(line.size(), std::size_t{20} << 20);
  ASSERT_TRUE(p.write_line(line, 30s));
  EXPECT_EQ(next(p, 30s), status("processRecords"));
  ASSERT_TRUE(p.wait_stderr(R"(SAW {"call":"process_records","n":20,)", 10s));
  const auto err = p.stderr_text();
  for (int i = 0; i < 20; ++i) {
    EXPECT_NE(err.find(R"("seq":")" + std::to_string(1000 + i) + R"(","sub":0,"ts":1476889707000,"len":1048576,"sum":)" +
                       std::to_string(sums[static_cast<std::size_t>(i)]) + "}"),
              std::string::npos)
        << "record " << i;
  }
  EXPECT_EQ(exchange(p, lease_lost), status("leaseLost"));
  EXPECT_EQ(finish(p), 0);
}

// ---- lifecycle ------------------------------------------------------------------------

using ChildRuntimeLifecycle = ChildRuntimeTest;

// docs/kcl-protocol.md §9, §4.1: exit 0 promptly on stdin EOF, idle or after actions.
TEST_F(ChildRuntimeLifecycle, EofExitsZeroPromptly) {
  {
    auto& p = spawn("echo");
    EXPECT_EQ(finish(p, 2s), 0);
  }
  {
    auto& p = spawn("echo");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(exchange(p, records_example), status("processRecords"));
    EXPECT_EQ(exchange(p, lease_lost), status("leaseLost"));
    EXPECT_EQ(finish(p, 2s), 0);
    EXPECT_TRUE(p.stdout_eof());
  }
}

// An unterminated line at EOF (a daemon halted mid-write) is dropped with a warning.
TEST_F(ChildRuntimeLifecycle, UnterminatedLineAtEof) {
  auto& p = spawn("echo");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  ASSERT_TRUE(p.write(R"({"action":"processRecords","records":[)"));
  EXPECT_EQ(finish(p), 0);
  EXPECT_TRUE(p.read_lines_until_eof().empty());
  EXPECT_NE(p.stderr_text().find("EOF inside a line"), std::string::npos) << p.stderr_text();
}

// docs/kcl-protocol.md §4.1 step 4: shutdownRequested is not terminal; leaseLost follows.
TEST_F(ChildRuntimeLifecycle, ShutdownRequestedDoesNotExit) {
  auto& p = spawn("echo");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), status("processRecords"));
  EXPECT_EQ(exchange(p, shutdown_requested), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shutdownRequested"));
  EXPECT_FALSE(p.wait(300ms).has_value()) << "the child exited after shutdownRequested";
  EXPECT_EQ(exchange(p, shutdown_requested), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shutdownRequested"));
  EXPECT_EQ(exchange(p, lease_lost), status("leaseLost"));
  EXPECT_EQ(finish(p), 0);
}

// ---- stdout, pipes, signals -----------------------------------------------------------

using ChildRuntimeIo = ChildRuntimeTest;

// printf / std::cout / write(1) from the processor land on stderr, never in the protocol.
TEST_F(ChildRuntimeIo, StdoutGuardMovesUserOutputToStderr) {
  auto& p = spawn("printf-stdout");
  EXPECT_EQ(exchange(p, init_trim), status("initialize"));
  EXPECT_EQ(exchange(p, records_example), status("processRecords"));
  EXPECT_EQ(exchange(p, shard_ended), cp_request_null);
  EXPECT_EQ(exchange(p, cp_ok()), status("shardEnded"));
  EXPECT_EQ(finish(p), 0);
  EXPECT_EQ(p.stdout_raw().find("NOISE"), std::string::npos) << p.stdout_raw();
  const auto err = p.stderr_text();
  for (const char* noise : {"PRE-RUN-NOISE", "PRINTF-NOISE initialize", "COUT-NOISE process_records",
                            "RAW-FD1-NOISE shard_ended"}) {
    EXPECT_NE(err.find(noise), std::string::npos) << noise << " in " << err;
  }
}

// Without the guard the same processor corrupts stdout: what the guard is for.
TEST_F(ChildRuntimeIo, WithoutGuardUserOutputReachesProtocol) {
  auto& p = spawn("printf-stdout", {"--guard-off"}, {}, Keys::Skip);
  ASSERT_TRUE(p.write_line(init_trim));
  ASSERT_TRUE(p.write_line(lease_lost));
  EXPECT_EQ(finish(p), 0);
  EXPECT_NE(p.stdout_raw().find("NOISE"), std::string::npos);
  // The leading "\n" of each message still isolates it (docs/kcl-protocol.md §1).
  const auto lines = p.read_lines_until_eof();
  EXPECT_NE(std::find(lines.begin(), lines.end(), status("leaseLost")), lines.end());
}

// run() enlarges both pipes (F_SETPIPE_SZ, shared by both ends); 0 keeps the default; an
// impossible size is ignored.
TEST_F(ChildRuntimeIo, PipesAreEnlargedByDefaultAndNeverShrunk) {
  {
    auto& p = spawn("echo");
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_GE(::fcntl(p.stdin_fd(), F_GETPIPE_SZ), 1 << 20);
    EXPECT_EQ(exchange(p, records_example), status("processRecords"));
    EXPECT_EQ(finish(p), 0);
  }
  {
    auto& p = spawn("echo", {"--pipe-size=0"});
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    EXPECT_EQ(::fcntl(p.stdin_fd(), F_GETPIPE_SZ), 1 << 16);
    EXPECT_EQ(finish(p), 0);
  }
  for (const char* size : {"--pipe-size=4096", "--pipe-size=1099511627776"}) {
    SCOPED_TRACE(size);
    auto& p = spawn("echo", {size});
    EXPECT_EQ(exchange(p, init_trim), status("initialize"));
    // An oversized request never shrinks the pipe.
    if (std::string_view(size).size() > 16) {
      EXPECT_GE(::fcntl(p.stdin_fd(), F_GETPIPE_SZ), 1 << 16);
    }
    EXPECT_EQ(exchange(p, records_example), status("processRecords"));
    EXPECT_EQ(finish(p), 0);
  }
}

// A closed stdout (the daemon went away) is a TransportError → exit 2, not SIGPIPE.
TEST_F(ChildRuntimeIo, ClosedStdoutExits2NotSigpipe) {
  SpawnOptions options;
  options.close_stdout = true;
  auto& p = spawn("echo", {}, options);
  ASSERT_TRUE(p.write_line(init_trim));
  const auto st = p.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->exited) << st->str();
  EXPECT_EQ(st->code, 2);
  EXPECT_NE(p.stderr_text().find("EPIPE"), std::string::npos) << p.stderr_text();
}

}  // namespace
}  // namespace kclpp::test
