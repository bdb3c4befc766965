// The error hierarchy's retry classification (docs/kcl-protocol.md §5 error table), the retry() helper,
// backoff_delay bounds, and the Checkpointer convenience calls' retry behaviour.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp {
namespace {

using std::chrono::milliseconds;

// Retries fast enough for a unit test, but still through the real backoff path.
RetryPolicy tiny_policy(int max_attempts = 5) {
  return RetryPolicy{max_attempts, milliseconds{1}, milliseconds{2}, milliseconds{1}};
}

TEST(KclErrorRetry, ClassifiesEveryNameOfTheSpecTable) {
  EXPECT_EQ(kcl_error_retry("ThrottlingException"), Retry::Throttled);
  EXPECT_EQ(kcl_error_retry("KinesisClientLibDependencyException"), Retry::Yes);
  EXPECT_EQ(kcl_error_retry("ShutdownException"), Retry::No);
  EXPECT_EQ(kcl_error_retry("InvalidStateException"), Retry::No);
  EXPECT_EQ(kcl_error_retry("IllegalArgumentException"), Retry::No);
  EXPECT_EQ(kcl_error_retry("NullPointerException"), Retry::No);
  EXPECT_EQ(kcl_error_retry(""), Retry::No);
}

TEST(ThrowKclError, ThrottlingIsThrottledError) {
  try {
    throw_kcl_error("ThrottlingException", "checkpoint at 42");
    FAIL() << "no throw";
  } catch (const ThrottledError& e) {
    EXPECT_EQ(e.retry(), Retry::Throttled);
    EXPECT_EQ(e.kcl_name(), "ThrottlingException");
    const std::string what = e.what();
    EXPECT_NE(what.find("checkpoint at 42"), std::string::npos) << what;
    EXPECT_NE(what.find("ThrottlingException"), std::string::npos) << what;
    EXPECT_LT(what.find("checkpoint at 42"), what.find("ThrottlingException")) << what;
  }
}

TEST(ThrowKclError, ShutdownIsLeaseLostError) {
  try {
    throw_kcl_error("ShutdownException", "checkpoint at 42");
    FAIL() << "no throw";
  } catch (const LeaseLostError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_EQ(e.kcl_name(), "ShutdownException");
  }
}

TEST(ThrowKclError, OtherNamesAreCheckpointErrorsWithTheirClassification) {
  struct Case {
    const char* name;
    Retry retry;
  };
  for (const Case c : {Case{"InvalidStateException", Retry::No},
                       Case{"IllegalArgumentException", Retry::No},
                       Case{"KinesisClientLibDependencyException", Retry::Yes},
                       Case{"NullPointerException", Retry::No}}) {
    try {
      throw_kcl_error(c.name, "checkpoint at 42");
      ADD_FAILURE() << "no throw for " << c.name;
    } catch (const LeaseLostError&) {
      ADD_FAILURE() << c.name << " became LeaseLostError";
    } catch (const ThrottledError&) {
      ADD_FAILURE() << c.name << " became ThrottledError";
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.kcl_name(), c.name);
      EXPECT_EQ(e.retry(), c.retry) << c.name;
      EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos);
    }
  }
}

TEST(ErrorTypes, DefaultClassifications) {
  EXPECT_EQ(ThrottledError("x").kcl_name(), "ThrottlingException");
  EXPECT_EQ(LeaseLostError("x").kcl_name(), "ShutdownException");
  EXPECT_EQ(ConfigError("x").retry(), Retry::No);
  EXPECT_EQ(ProtocolError("x").retry(), Retry::No);
  EXPECT_EQ(ProcessorError("x").retry(), Retry::No);
  EXPECT_EQ(TransportError("x").retry(), Retry::Yes);
  EXPECT_EQ(TransportError("x", Retry::No).retry(), Retry::No);
  EXPECT_TRUE(ConfigError("x").kcl_name().empty());
  EXPECT_STREQ(ConfigError("bad option").what(), "bad option");
  // One root: every kclpp error is a kclpp::Error and a std::runtime_error.
  const Error& root = LeaseLostError("lost");
  EXPECT_EQ(root.retry(), Retry::No);
  EXPECT_NE(dynamic_cast<const std::runtime_error*>(&root), nullptr);
}

TEST(Retry, RetriesThrottledUpToMaxAttemptsThenRethrows) {
  int calls = 0;
  EXPECT_THROW(retry(tiny_policy(4),
                     [&] {
                       ++calls;
                       throw ThrottledError("slow down");
                     }),
               ThrottledError);
  EXPECT_EQ(calls, 4);
}

TEST(Retry, RetriesYesUntilSuccessAndReturnsTheValue) {
  int calls = 0;
  const int value = retry(tiny_policy(5), [&] {
    if (++calls < 3) throw TransportError("pipe hiccup");
    return 42;
  });
  EXPECT_EQ(value, 42);
  EXPECT_EQ(calls, 3);
}

TEST(Retry, StopsImmediatelyForRetryNo) {
  int calls = 0;
  EXPECT_THROW(retry(tiny_policy(5),
                     [&] {
                       ++calls;
                       throw CheckpointError("bad state", "InvalidStateException");
                     }),
               CheckpointError);
  EXPECT_EQ(calls, 1);
}

TEST(Retry, OtherExceptionsPassThroughWithoutRetry) {
  int calls = 0;
  EXPECT_THROW(retry(tiny_policy(5),
                     [&] {
                       ++calls;
                       throw std::logic_error("bug");
                     }),
               std::logic_error);
  EXPECT_EQ(calls, 1);
}

TEST(Retry, NonePolicyMakesOneCall) {
  int calls = 0;
  EXPECT_THROW(retry(RetryPolicy::none(),
                     [&] {
                       ++calls;
                       throw ThrottledError("slow down");
                     }),
               ThrottledError);
  EXPECT_EQ(calls, 1);
}

TEST(BackoffDelay, StaysWithinHalfToFullOfTheExponentialStep) {
  const RetryPolicy p{10, milliseconds{100}, milliseconds{1'000}, milliseconds{0}};
  // d = min(1000, 100 * 2^(attempt-1)): 100, 200, 400, 800, 1000, 1000...
  const long expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int attempt = 1; attempt <= 7; ++attempt) {
    const long d = expected[attempt - 1];
    long lo = d, hi = 0;
    for (int i = 0; i < 500; ++i) {
      const auto delay = detail::backoff_delay(p, attempt, Retry::Yes).count();
      ASSERT_GE(delay, d / 2) << "attempt " << attempt;
      ASSERT_LE(delay, d) << "attempt " << attempt;
      lo = std::min<long>(lo, delay);
      hi = std::max<long>(hi, delay);
    }
    // Jitter: 500 draws over [d/2, d] do not all land on one value.
    EXPECT_LT(lo, hi) << "attempt " << attempt;
  }
}

TEST(BackoffDelay, HugeAttemptCountsStayAtTheCap) {
  const RetryPolicy p{1000, milliseconds{200}, milliseconds{5'000}, milliseconds{0}};
  for (const int attempt : {64, 65, 200, 100'000}) {
    const auto delay = detail::backoff_delay(p, attempt, Retry::Yes);
    EXPECT_GE(delay, milliseconds{2'500});
    EXPECT_LE(delay, milliseconds{5'000});
  }
}

TEST(BackoffDelay, ThrottledIsRaisedToTheFloor) {
  const RetryPolicy p{5, milliseconds{10}, milliseconds{100}, milliseconds{1'000}};
  for (int attempt = 1; attempt <= 5; ++attempt) {
    EXPECT_EQ(detail::backoff_delay(p, attempt, Retry::Throttled), milliseconds{1'000});
    EXPECT_LE(detail::backoff_delay(p, attempt, Retry::Yes), milliseconds{100});
  }
  // Above the floor the exponential value is kept.
  const RetryPolicy high{5, milliseconds{4'000}, milliseconds{8'000}, milliseconds{1'000}};
  EXPECT_GE(detail::backoff_delay(high, 2, Retry::Throttled), milliseconds{4'000});
}

TEST(BackoffDelay, ZeroBackoffIsZero) {
  EXPECT_EQ(detail::backoff_delay(RetryPolicy::none(), 1, Retry::Yes), milliseconds{0});
}

// A Checkpointer whose checkpoint_once() fails with a scripted sequence of errors and
// records every call.
class RecordingCheckpointer : public Checkpointer {
 public:
  explicit RecordingCheckpointer(std::vector<std::string> failures)
      : Checkpointer(tiny_policy(5)), failures_(std::move(failures)) {}

  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override {
    calls.push_back(at);
    if (next_ < failures_.size()) throw_kcl_error(failures_[next_++], "test checkpoint");
  }

  std::vector<std::optional<ExtendedSequenceNumber>> calls;

 private:
  std::vector<std::string> failures_;
  std::size_t next_ = 0;
};

TEST(Checkpointer, ThrottledTwiceThenSucceedsInThreeAttempts) {
  RecordingCheckpointer cp({"ThrottlingException", "ThrottlingException"});
  const auto started = std::chrono::steady_clock::now();
  cp.checkpoint(SequenceNumber("12345"), 3);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds{2});
  ASSERT_EQ(cp.calls.size(), 3u);
  for (const auto& at : cp.calls) {
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(*at, ExtendedSequenceNumber(SequenceNumber("12345"), 3));
  }
}

TEST(Checkpointer, ShutdownExceptionIsOneAttemptAndLeaseLost) {
  RecordingCheckpointer cp({"ShutdownException", "ShutdownException"});
  EXPECT_THROW(cp.checkpoint(), LeaseLostError);
  ASSERT_EQ(cp.calls.size(), 1u);
  EXPECT_FALSE(cp.calls[0].has_value());  // checkpoint() = "largest delivered"
}

TEST(Checkpointer, InvalidStateIsOneAttempt) {
  RecordingCheckpointer cp({"InvalidStateException", "InvalidStateException"});
  try {
    cp.checkpoint(SequenceNumber("7"), 0);
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kcl_name(), "InvalidStateException");
  }
  EXPECT_EQ(cp.calls.size(), 1u);
}

TEST(Checkpointer, DependencyExceptionIsRetriedUntilMaxAttempts) {
  RecordingCheckpointer cp(std::vector<std::string>(10, "KinesisClientLibDependencyException"));
  EXPECT_THROW(cp.checkpoint(), CheckpointError);
  EXPECT_EQ(cp.calls.size(), 5u);
}

TEST(Checkpointer, RecordOverloadSendsTheSubSequenceNumber) {
  RecordingCheckpointer cp({});
  Record r;
  r.sequence_number = SequenceNumber("49590338271490256608559692538361571095921575989136588898");
  r.sub_sequence_number = 4;
  cp.checkpoint(r);
  ASSERT_EQ(cp.calls.size(), 1u);
  ASSERT_TRUE(cp.calls[0].has_value());
  EXPECT_EQ(cp.calls[0]->sequence_number(), r.sequence_number);
  EXPECT_EQ(cp.calls[0]->sub_sequence_number(), 4);
}

TEST(Checkpointer, RejectsEmptyOrNegativePositionsWithoutACall) {
  RecordingCheckpointer cp({});
  EXPECT_THROW(cp.checkpoint(SequenceNumber(), 0), CheckpointError);
  EXPECT_THROW(cp.checkpoint(SequenceNumber("5"), -1), CheckpointError);
  EXPECT_TRUE(cp.calls.empty());
}

}  // namespace
}  // namespace kclpp
