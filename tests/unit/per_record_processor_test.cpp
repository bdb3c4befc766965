// PerRecordProcessor: checkpoint policies (every N records, every interval, on demand),
// per-record retries and the failure policies, checkpoint failures, and the terminal
// calls. A recording Checkpointer double stands in for the runtime.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/record_processor.hpp"

namespace kclpp {
namespace {

using std::chrono::milliseconds;

const std::string shard = "shardId-000000000007";

// Realistic 56-digit sequence numbers that differ in their last digits.
std::string seq(int n) {
  std::string s = "4959033827149025660855969253836157109592157598913658";
  const std::string tail = std::to_string(1000 + n);
  return s + tail;
}

Record make_record(int n, std::int64_t sub = 0) {
  Record r;
  r.data = "data-" + std::to_string(n) + "-" + std::to_string(sub);
  r.partition_key = "pk";
  r.sequence_number = SequenceNumber(seq(n));
  r.sub_sequence_number = sub;
  return r;
}

RecordBatch batch_of(int first, int last) {
  RecordBatch b;
  for (int n = first; n <= last; ++n) b.records.push_back(make_record(n));
  return b;
}

std::string position_text(const std::optional<ExtendedSequenceNumber>& at) {
  if (!at) return "cp:null";
  return "cp:" + at->str() + "/" + std::to_string(at->sub_sequence_number());
}

std::string cp_at(int n, std::int64_t sub = 0) {
  return position_text(ExtendedSequenceNumber(SequenceNumber(seq(n)), sub));
}

// Shared, ordered event log: "before" for before_checkpoint(), "cp:<seq>/<sub>" or
// "cp:null" for every checkpoint_once() call (successful or not).
struct Events {
  std::vector<std::string> all;
  std::vector<std::string> checkpoints() const {
    std::vector<std::string> out;
    for (const auto& e : all) {
      if (e.rfind("cp:", 0) == 0) out.push_back(e);
    }
    return out;
  }
};

class RecordingCheckpointer : public Checkpointer {
 public:
  explicit RecordingCheckpointer(Events& events)
      : Checkpointer(RetryPolicy{3, milliseconds{1}, milliseconds{2}, milliseconds{1}}),
        events_(events) {}

  // The next calls fail with these KCL error names, in order; then calls succeed.
  std::vector<std::string> failures;

  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override {
    events_.all.push_back(position_text(at));
    if (next_failure_ < failures.size()) {
      throw_kcl_error(failures[next_failure_++], "test checkpoint");
    }
  }

 private:
  Events& events_;
  std::size_t next_failure_ = 0;
};

class TestProcessor : public PerRecordProcessor {
 public:
  TestProcessor(PerRecordOptions options, Events& events)
      : PerRecordProcessor(options), events_(events) {}

  // Decides per record; by default a record succeeds and asks for no checkpoint.
  std::function<bool(const Record&)> handler = [](const Record&) { return false; };
  std::map<std::string, int> calls;  // data -> process_record calls
  std::vector<std::string> seen;     // data of every call, in order

  bool process_record(const Record& record) override {
    ++calls[record.data];
    seen.push_back(record.data);
    return handler(record);
  }
  void before_checkpoint() override { events_.all.push_back("before"); }

 private:
  Events& events_;
};

PerRecordOptions options_with(CheckpointPolicy policy) {
  PerRecordOptions o;
  o.checkpoint = policy;
  o.record_retry_backoff = milliseconds{1};
  return o;
}

class PerRecordProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::Debug);
    set_log_sink([this](LogLevel level, std::string_view message) {
      logs.emplace_back(level, std::string(message));
    });
  }
  void TearDown() override {
    set_log_sink({});
    set_log_level(LogLevel::Info);
  }

  int count_logs(LogLevel level, const std::string& needle) const {
    int n = 0;
    for (const auto& [l, m] : logs) {
      if (l == level && m.find(needle) != std::string::npos) ++n;
    }
    return n;
  }

  std::vector<std::pair<LogLevel, std::string>> logs;
  Events events;
  RecordingCheckpointer checkpointer{events};
};

TEST_F(PerRecordProcessorTest, EveryNRecordsCheckpointsAtExactlyTheNthRecord) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(3)), events);
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 7), checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(3), cp_at(6)}));
  // The count carries across batches: 7 (1 since the last), 8, 9 -> checkpoint at 9.
  p.process_records(batch_of(8, 8), checkpointer);
  EXPECT_EQ(events.checkpoints().size(), 2u);
  p.process_records(batch_of(9, 10), checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(3), cp_at(6), cp_at(9)}));
  // before_checkpoint() comes right before each checkpoint.
  EXPECT_EQ(events.all, (std::vector<std::string>{"before", cp_at(3), "before", cp_at(6),
                                                  "before", cp_at(9)}));
}

TEST_F(PerRecordProcessorTest, IntervalPolicyCheckpointsOnceTheIntervalHasPassed) {
  TestProcessor p(options_with(CheckpointPolicy::every(milliseconds{100})), events);
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::Latest));
  p.process_records(batch_of(1, 2), checkpointer);
  EXPECT_TRUE(events.checkpoints().empty());

  std::this_thread::sleep_for(milliseconds{150});
  p.process_records(batch_of(3, 4), checkpointer);
  // Due at record 3, the first record finished after the interval; 4 follows too soon.
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(3)}));

  std::this_thread::sleep_for(milliseconds{150});
  p.process_records(batch_of(5, 5), checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(3), cp_at(5)}));
}

TEST_F(PerRecordProcessorTest, OnDemandCheckpointsOnlyWhenProcessRecordReturnsTrue) {
  TestProcessor p(options_with(CheckpointPolicy::on_demand()), events);
  p.handler = [](const Record& r) { return r.sequence_number == SequenceNumber(seq(4)); };
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 10), checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(4)}));
  EXPECT_EQ(p.seen.size(), 10u);
}

TEST_F(PerRecordProcessorTest, RecordThatThrowsTwiceIsRetriedAndProcessingContinues) {
  auto options = options_with(CheckpointPolicy::every_records(4));
  options.record_attempts = 3;
  TestProcessor p(options, events);
  int failures_left = 2;
  p.handler = [&](const Record& r) {
    if (r.sequence_number == SequenceNumber(seq(2)) && failures_left > 0) {
      --failures_left;
      throw std::runtime_error("transient downstream failure");
    }
    return false;
  };
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 4), checkpointer);

  EXPECT_EQ(p.calls[make_record(2).data], 3);
  EXPECT_EQ(p.calls[make_record(3).data], 1);
  EXPECT_EQ(p.calls[make_record(4).data], 1);
  // The retry happens in place: record 3 is not processed before record 2 succeeds.
  EXPECT_EQ(p.seen, (std::vector<std::string>{make_record(1).data, make_record(2).data,
                                              make_record(2).data, make_record(2).data,
                                              make_record(3).data, make_record(4).data}));
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(4)}));
  // Each failure is logged with the shard and the record's sequence number.
  EXPECT_EQ(count_logs(LogLevel::Warn, seq(2)), 2);
  EXPECT_EQ(count_logs(LogLevel::Warn, shard), 2);
  EXPECT_EQ(count_logs(LogLevel::Warn, "transient downstream failure"), 2);
}

TEST_F(PerRecordProcessorTest, FailPolicyThrowsProcessorErrorAndNeverCheckpointsPastFinished) {
  auto options = options_with(CheckpointPolicy::every_records(2));
  options.record_attempts = 3;
  options.on_error = OnProcessorError::Fail;
  TestProcessor p(options, events);
  p.handler = [](const Record& r) -> bool {
    if (r.sequence_number == SequenceNumber(seq(4))) throw std::runtime_error("poison record");
    return false;
  };
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  try {
    p.process_records(batch_of(1, 6), checkpointer);
    FAIL() << "no ProcessorError";
  } catch (const ProcessorError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(shard), std::string::npos) << what;
    EXPECT_NE(what.find(seq(4)), std::string::npos) << what;
    EXPECT_NE(what.find("poison record"), std::string::npos) << what;
    EXPECT_EQ(e.retry(), Retry::No);
  }
  EXPECT_EQ(p.calls[make_record(4).data], 3);
  EXPECT_EQ(p.calls.count(make_record(5).data), 0u);  // nothing after the failed record
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(2)}));

  // A later shutdown checkpoints record 3, the last finished one, never record 4.
  p.shutdown_requested(checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(2), cp_at(3)}));
}

TEST_F(PerRecordProcessorTest, NonStdExceptionsAreHandledToo) {
  auto options = options_with(CheckpointPolicy::on_demand());
  options.record_attempts = 2;
  TestProcessor p(options, events);
  p.handler = [](const Record&) -> bool { throw 42; };
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  EXPECT_THROW(p.process_records(batch_of(1, 1), checkpointer), ProcessorError);
  EXPECT_EQ(p.calls[make_record(1).data], 2);
}

TEST_F(PerRecordProcessorTest, LogAndContinueSkipsTheRecordAndCountsItFinished) {
  auto options = options_with(CheckpointPolicy::every_records(3));
  options.record_attempts = 2;
  options.on_error = OnProcessorError::LogAndContinue;
  TestProcessor p(options, events);
  p.handler = [](const Record& r) -> bool {
    if (r.sequence_number == SequenceNumber(seq(2))) throw std::runtime_error("bad payload");
    return false;
  };
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  EXPECT_NO_THROW(p.process_records(batch_of(1, 4), checkpointer));
  EXPECT_EQ(p.calls[make_record(2).data], 2);
  EXPECT_EQ(p.calls[make_record(3).data], 1);
  EXPECT_EQ(p.calls[make_record(4).data], 1);
  // The skipped record counts: 1, 2 (skipped), 3 -> checkpoint at 3.
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(3)}));
  EXPECT_EQ(count_logs(LogLevel::Error, seq(2)), 1);
  EXPECT_EQ(count_logs(LogLevel::Error, "bad payload"), 1);
}

TEST_F(PerRecordProcessorTest, LeaseLostStopsFurtherCheckpoints) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(1)), events);
  checkpointer.failures = {"ShutdownException"};
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  EXPECT_NO_THROW(p.process_records(batch_of(1, 5), checkpointer));
  EXPECT_EQ(p.seen.size(), 5u);  // processing goes on
  // One attempt (ShutdownException is never retried), then no more checkpoints at all.
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(1)}));
  p.shutdown_requested(checkpointer);
  EXPECT_EQ(events.checkpoints().size(), 1u);
  EXPECT_EQ(count_logs(LogLevel::Warn, "lease lost"), 1);
  // No flush for checkpoints that will not happen.
  EXPECT_EQ(events.all, (std::vector<std::string>{"before", cp_at(1)}));
}

TEST_F(PerRecordProcessorTest, OtherCheckpointErrorsAreLoggedAndTheNextTriggerRetries) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(2)), events);
  checkpointer.failures = {"InvalidStateException"};
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  EXPECT_NO_THROW(p.process_records(batch_of(1, 4), checkpointer));
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(2), cp_at(4)}));
  EXPECT_EQ(count_logs(LogLevel::Error, "InvalidStateException"), 1);
}

TEST_F(PerRecordProcessorTest, ThrottledCheckpointsAreRetriedByTheCheckpointer) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(2)), events);
  checkpointer.failures = {"ThrottlingException", "ThrottlingException"};
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 2), checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(2), cp_at(2), cp_at(2)}));
  EXPECT_EQ(count_logs(LogLevel::Error, "checkpoint"), 0);
}

TEST_F(PerRecordProcessorTest, ShutdownRequestedCheckpointsTheLastFinishedRecordOnce) {
  TestProcessor p(options_with(CheckpointPolicy::on_demand()), events);
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 3), checkpointer);
  EXPECT_TRUE(events.checkpoints().empty());
  p.shutdown_requested(checkpointer);
  EXPECT_EQ(events.all, (std::vector<std::string>{"before", cp_at(3)}));
  // Nothing new since: no second checkpoint.
  p.shutdown_requested(checkpointer);
  EXPECT_EQ(events.checkpoints().size(), 1u);
}

TEST_F(PerRecordProcessorTest, ShutdownRequestedSkipsWhenNothingIsNew) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(2)), events);
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.shutdown_requested(checkpointer);  // nothing finished yet
  EXPECT_TRUE(events.all.empty());
  p.process_records(batch_of(1, 2), checkpointer);
  p.shutdown_requested(checkpointer);  // record 2 is already checkpointed
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(2)}));
}

TEST_F(PerRecordProcessorTest, ShardEndedFlushesThenCheckpointsWithNull) {
  TestProcessor p(options_with(CheckpointPolicy::on_demand()), events);
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 2), checkpointer);
  p.shard_ended(checkpointer);
  EXPECT_EQ(events.all, (std::vector<std::string>{"before", "cp:null"}));
}

TEST_F(PerRecordProcessorTest, ShardEndedPropagatesCheckpointFailures) {
  TestProcessor p(options_with(CheckpointPolicy::on_demand()), events);
  checkpointer.failures = {"ShutdownException"};
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  EXPECT_THROW(p.shard_ended(checkpointer), LeaseLostError);
}

TEST_F(PerRecordProcessorTest, KplRecordsCheckpointWithTheirSubSequenceNumber) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(2)), events);
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  RecordBatch b;
  for (std::int64_t sub = 0; sub < 5; ++sub) b.records.push_back(make_record(9, sub));
  p.process_records(b, checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(9, 1), cp_at(9, 3)}));
  p.shutdown_requested(checkpointer);
  EXPECT_EQ(events.checkpoints(),
            (std::vector<std::string>{cp_at(9, 1), cp_at(9, 3), cp_at(9, 4)}));
}

TEST_F(PerRecordProcessorTest, RecordsWithDataErrorsAreStillPassedToProcessRecord) {
  TestProcessor p(options_with(CheckpointPolicy::on_demand()), events);
  std::vector<std::string> errors;
  p.handler = [&](const Record& r) {
    errors.push_back(r.data_error);
    return false;
  };
  RecordBatch b = batch_of(1, 2);
  b.records[0].data.clear();
  b.records[0].data_error = "invalid base64";
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(b, checkpointer);
  EXPECT_EQ(errors, (std::vector<std::string>{"invalid base64", ""}));
}

TEST_F(PerRecordProcessorTest, InitializeResetsState) {
  TestProcessor p(options_with(CheckpointPolicy::every_records(3)), events);
  checkpointer.failures = {"ShutdownException"};
  p.initialize(shard, ExtendedSequenceNumber(Sentinel::TrimHorizon));
  p.process_records(batch_of(1, 3), checkpointer);  // lease lost at record 3
  EXPECT_EQ(events.checkpoints().size(), 1u);

  // A new lease on the shard: counting restarts, checkpointing works again.
  p.initialize("shardId-000000000008", ExtendedSequenceNumber(SequenceNumber(seq(3)), 0));
  EXPECT_EQ(p.shard_id(), "shardId-000000000008");
  p.process_records(batch_of(4, 5), checkpointer);
  EXPECT_EQ(events.checkpoints().size(), 1u);
  p.process_records(batch_of(6, 6), checkpointer);
  EXPECT_EQ(events.checkpoints(), (std::vector<std::string>{cp_at(3), cp_at(6)}));
}

TEST_F(PerRecordProcessorTest, NoCheckpointAtOrBeforeTheStartingCheckpoint) {
  TestProcessor p(options_with(CheckpointPolicy::on_demand()), events);
  p.initialize(shard, ExtendedSequenceNumber(SequenceNumber(seq(5)), 0));
  p.shutdown_requested(checkpointer);
  EXPECT_TRUE(events.all.empty());
}

// The plain RecordProcessor defaults, for completeness of the lifecycle contract.
class MinimalProcessor : public RecordProcessor {
 public:
  void process_records(const RecordBatch&, Checkpointer&) override {}
};

TEST_F(PerRecordProcessorTest, RecordProcessorDefaultsCheckpointLargestDelivered) {
  MinimalProcessor p;
  p.initialize(shard, ExtendedSequenceNumber());
  p.lease_lost();
  EXPECT_TRUE(events.all.empty());
  p.shutdown_requested(checkpointer);
  p.shard_ended(checkpointer);
  EXPECT_EQ(events.all, (std::vector<std::string>{"cp:null", "cp:null"}));
}

}  // namespace
}  // namespace kclpp
