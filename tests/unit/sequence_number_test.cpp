// SequenceNumber and ExtendedSequenceNumber: validation, numeric ordering of decimal
// strings of up to 129 digits, sentinels, and position comparison with sub numbers.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp {
namespace {

// A real Kinesis sequence number has 56 digits.
const std::string real_56 = "49590338271490256608559692538361571095921575989136588898";

TEST(SequenceNumber, KeepsA56DigitNumberExactly) {
  ASSERT_EQ(real_56.size(), 56u);
  const SequenceNumber s(real_56);
  EXPECT_EQ(s.str(), real_56);
  EXPECT_FALSE(s.empty());
}

TEST(SequenceNumber, Accepts129DigitsAndRejects130) {
  const std::string max(129, '9');
  EXPECT_TRUE(SequenceNumber::valid(max));
  EXPECT_EQ(SequenceNumber(max).str(), max);
  const std::string too_long(130, '1');
  EXPECT_FALSE(SequenceNumber::valid(too_long));
  EXPECT_THROW(SequenceNumber{too_long}, CheckpointError);
  EXPECT_FALSE(SequenceNumber::try_parse(too_long).has_value());
}

TEST(SequenceNumber, RejectsInvalidInputsWithIllegalArgument) {
  const std::vector<std::string> bad = {"",   "-1",  "+1",   " 1",  "1 ",  "1 2", "12a",
                                        "0x10", "1.0", "\xef\xbc\x91", std::string("1\0", 2), "\t"};
  for (const auto& value : bad) {
    SCOPED_TRACE("value: '" + value + "'");
    EXPECT_FALSE(SequenceNumber::valid(value));
    EXPECT_FALSE(SequenceNumber::try_parse(value).has_value());
    try {
      SequenceNumber s(value);
      ADD_FAILURE() << "no throw";
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.kcl_name(), "IllegalArgumentException");
      EXPECT_EQ(e.retry(), Retry::No);
    }
  }
}

TEST(SequenceNumber, OrdersNumericallyAcrossLengths) {
  // Lexicographic order would put "10" before "9" and a 56-digit number before "9".
  EXPECT_LT(SequenceNumber("9"), SequenceNumber("10"));
  EXPECT_LT(SequenceNumber("99"), SequenceNumber("100"));
  EXPECT_LT(SequenceNumber("9"), SequenceNumber(real_56));
  EXPECT_LT(SequenceNumber(real_56), SequenceNumber(std::string(129, '1')));
  EXPECT_GT(SequenceNumber(std::string(129, '1')), SequenceNumber(std::string(128, '9')));

  // Same length: digit by digit, including a difference in the last digit only.
  std::string next = real_56;
  next.back() = '9';
  EXPECT_LT(SequenceNumber(real_56), SequenceNumber(next));
  EXPECT_EQ(SequenceNumber(real_56) <=> SequenceNumber(real_56), std::strong_ordering::equal);

  std::vector<SequenceNumber> v = {SequenceNumber("100"), SequenceNumber("20"),
                                   SequenceNumber("3"), SequenceNumber(real_56),
                                   SequenceNumber("0")};
  std::sort(v.begin(), v.end());
  std::vector<std::string> got;
  for (const auto& s : v) got.push_back(s.str());
  EXPECT_EQ(got, (std::vector<std::string>{"0", "3", "20", "100", real_56}));
}

TEST(SequenceNumber, IgnoresLeadingZerosButKeepsTheText) {
  const SequenceNumber padded("000123");
  EXPECT_EQ(padded.str(), "000123");
  EXPECT_EQ(padded, SequenceNumber("123"));
  EXPECT_LT(SequenceNumber("0099"), SequenceNumber("100"));
  EXPECT_GT(SequenceNumber("00000000200"), SequenceNumber("199"));
  EXPECT_EQ(SequenceNumber("0"), SequenceNumber("0000"));
  // 129 characters whose value is small.
  EXPECT_LT(SequenceNumber(std::string(128, '0') + "5"), SequenceNumber("6"));
}

TEST(SequenceNumber, EmptySortsBeforeEveryNumber) {
  const SequenceNumber empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_LT(empty, SequenceNumber("0"));
  EXPECT_LT(empty, SequenceNumber(real_56));
  EXPECT_EQ(empty, SequenceNumber());
  EXPECT_NE(empty, SequenceNumber("0"));
}

TEST(SequenceNumber, AssignReusesStorageAndClearsOnInvalid) {
  SequenceNumber s(std::string(129, '7'));
  const char* storage = s.str().data();
  EXPECT_TRUE(s.assign(real_56));
  EXPECT_EQ(s.str(), real_56);
  EXPECT_EQ(s.str().data(), storage);  // no reallocation for a shorter value
  EXPECT_FALSE(s.assign("12x"));
  EXPECT_TRUE(s.empty());
  EXPECT_TRUE(s.assign("42"));
  EXPECT_EQ(s.str(), "42");
}

TEST(Sentinel, NamesAreTheWireNames) {
  EXPECT_EQ(sentinel_name(Sentinel::TrimHorizon), "TRIM_HORIZON");
  EXPECT_EQ(sentinel_name(Sentinel::Latest), "LATEST");
  EXPECT_EQ(sentinel_name(Sentinel::AtTimestamp), "AT_TIMESTAMP");
  EXPECT_EQ(sentinel_name(Sentinel::ShardEnd), "SHARD_END");
  EXPECT_EQ(sentinel_name(Sentinel::None), "");
}

TEST(ExtendedSequenceNumber, ParsesSentinels) {
  for (const auto s :
       {Sentinel::TrimHorizon, Sentinel::Latest, Sentinel::AtTimestamp, Sentinel::ShardEnd}) {
    const auto p = ExtendedSequenceNumber::parse(sentinel_name(s));
    EXPECT_EQ(p.sentinel(), s);
    EXPECT_TRUE(p.is_sentinel());
    EXPECT_TRUE(p.sequence_number().empty());
    EXPECT_EQ(p.str(), sentinel_name(s));
  }
  // Sentinel names are case-sensitive on the wire.
  EXPECT_THROW((void)ExtendedSequenceNumber::parse("latest"), CheckpointError);
}

TEST(ExtendedSequenceNumber, DefaultIsTrimHorizon) {
  const ExtendedSequenceNumber d;
  EXPECT_EQ(d.sentinel(), Sentinel::TrimHorizon);
  EXPECT_EQ(d.str(), "TRIM_HORIZON");
  EXPECT_EQ(d.sub_sequence_number(), 0);
}

TEST(ExtendedSequenceNumber, ParsesNumbersWithSub) {
  const auto p = ExtendedSequenceNumber::parse(real_56, 7);
  EXPECT_FALSE(p.is_sentinel());
  EXPECT_EQ(p.sentinel(), Sentinel::None);
  EXPECT_EQ(p.str(), real_56);
  EXPECT_EQ(p.sequence_number(), SequenceNumber(real_56));
  EXPECT_EQ(p.sub_sequence_number(), 7);
}

TEST(ExtendedSequenceNumber, ParseErrorNamesTheBadValue) {
  try {
    (void)ExtendedSequenceNumber::parse("12ab34");
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kcl_name(), "IllegalArgumentException");
    EXPECT_NE(std::string(e.what()).find("12ab34"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)ExtendedSequenceNumber::parse(""), CheckpointError);
  EXPECT_THROW((void)ExtendedSequenceNumber::parse(std::string(130, '1')), CheckpointError);
}

TEST(ExtendedSequenceNumber, RejectsNegativeSub) {
  try {
    (void)ExtendedSequenceNumber::parse("123", -1);
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kcl_name(), "IllegalArgumentException");
    EXPECT_NE(std::string(e.what()).find("-1"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)ExtendedSequenceNumber::parse("SHARD_END", -2), CheckpointError);
  EXPECT_NO_THROW((void)ExtendedSequenceNumber::parse("123", 0));
}

TEST(ExtendedSequenceNumber, Equality) {
  const ExtendedSequenceNumber a(SequenceNumber("100"), 1);
  EXPECT_EQ(a, ExtendedSequenceNumber(SequenceNumber("100"), 1));
  EXPECT_EQ(a, ExtendedSequenceNumber(SequenceNumber("0100"), 1));
  EXPECT_NE(a, ExtendedSequenceNumber(SequenceNumber("100"), 0));
  EXPECT_NE(a, ExtendedSequenceNumber(SequenceNumber("101"), 1));
  EXPECT_EQ(ExtendedSequenceNumber(Sentinel::ShardEnd), ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_NE(ExtendedSequenceNumber(Sentinel::ShardEnd), ExtendedSequenceNumber(Sentinel::Latest));
  EXPECT_NE(ExtendedSequenceNumber(Sentinel::ShardEnd), a);
}

TEST(ComparePositions, OrdersBySequenceThenSub) {
  const ExtendedSequenceNumber a0(SequenceNumber(real_56), 0);
  const ExtendedSequenceNumber a1(SequenceNumber(real_56), 1);
  const ExtendedSequenceNumber a10(SequenceNumber(real_56), 10);
  std::string bigger = real_56;
  bigger.back() = '9';
  const ExtendedSequenceNumber b0(SequenceNumber(bigger), 0);

  EXPECT_EQ(compare_positions(a0, a1), std::strong_ordering::less);
  EXPECT_EQ(compare_positions(a10, a1), std::strong_ordering::greater);
  EXPECT_EQ(compare_positions(a1, a1), std::strong_ordering::equal);
  // A higher sequence number wins over any sub number.
  EXPECT_EQ(compare_positions(a10, b0), std::strong_ordering::less);
  EXPECT_EQ(compare_positions(ExtendedSequenceNumber(SequenceNumber("9"), 5),
                              ExtendedSequenceNumber(SequenceNumber("10"), 0)),
            std::strong_ordering::less);
}

TEST(ComparePositions, SentinelsAreEquivalentAndBelowNumbers) {
  const ExtendedSequenceNumber zero(SequenceNumber("0"), 0);
  const ExtendedSequenceNumber trim(Sentinel::TrimHorizon);
  const ExtendedSequenceNumber latest(Sentinel::Latest);
  EXPECT_EQ(compare_positions(trim, zero), std::strong_ordering::less);
  EXPECT_EQ(compare_positions(zero, latest), std::strong_ordering::greater);
  EXPECT_EQ(compare_positions(trim, latest), std::strong_ordering::equal);
}

}  // namespace
}  // namespace kclpp
