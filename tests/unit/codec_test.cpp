// The MultiLangDaemon message codec: every example line of docs/kcl-protocol.md §2/§3, the legacy variants of
// §8, error reporting, exact writer bytes, ASCII-only output and random round trips.

#include "codec.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/error.hpp"
#include "../test_seed.hpp"

namespace kclpp::kcl::detail {
namespace {

constexpr std::string_view kSeq = "49590338271490256608559692538361571095921575989136588898";

// Decodes `line` from a buffer that has decode_padding readable bytes after it, as
// LineBuffer provides.
class CodecTest : public ::testing::Test {
 protected:
  Message& decode(std::string_view line) {
    storage_.assign(line);
    storage_.append(decode_padding, '\0');
    decoder_.decode(std::string_view(storage_.data(), line.size()), message_, batch_);
    return message_;
  }
  // The ProtocolError's what() for `line` (fails the test if it decodes).
  std::string error_of(std::string_view line) {
    try {
      decode(line);
    } catch (const ProtocolError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ProtocolError for: " << line;
    return {};
  }

  Decoder decoder_;
  Message message_;
  RecordBatch batch_;
  std::string storage_;
};

std::int64_t millis(const std::optional<std::chrono::system_clock::time_point>& tp) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(tp.value().time_since_epoch()).count();
}

std::chrono::system_clock::time_point at_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// ---- docs/kcl-protocol.md §2: daemon -> child -------------------------------------------------------

TEST_F(CodecTest, DecodesInitializeWithSentinel) {
  const Message& m = decode(
      R"({"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0})");
  EXPECT_EQ(m.action, Action::Initialize);
  EXPECT_EQ(m.action_name, "initialize");
  EXPECT_EQ(m.shard_id, "shardId-000000000001");
  EXPECT_EQ(m.sequence_number, "TRIM_HORIZON");
  EXPECT_EQ(m.sub_sequence_number, 0);
  EXPECT_TRUE(m.unexpected_keys.empty());
}

TEST_F(CodecTest, DecodesInitializeWithSequenceNumber) {
  const Message& m = decode(
      R"({"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":3})");
  EXPECT_EQ(m.action, Action::Initialize);
  EXPECT_EQ(m.shard_id, "shardId-000000000001");
  EXPECT_EQ(m.sequence_number, kSeq);
  EXPECT_EQ(m.sub_sequence_number, 3);
}

TEST_F(CodecTest, DecodesProcessRecordsSpecLine) {
  const Message& m = decode(
      R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0})");
  EXPECT_EQ(m.action, Action::ProcessRecords);
  ASSERT_EQ(batch_.records.size(), 1u);
  const Record& r = batch_.records[0];
  EXPECT_EQ(r.data, "meow");
  EXPECT_EQ(r.partition_key, "cat");
  EXPECT_EQ(r.sequence_number.str(), kSeq);
  EXPECT_EQ(r.sub_sequence_number, 0);
  EXPECT_EQ(millis(r.approximate_arrival_timestamp), 1476889707000);
  EXPECT_TRUE(r.data_error.empty());
  EXPECT_EQ(batch_.millis_behind_latest, 0);
}

TEST_F(CodecTest, DecodesCheckpointResponses) {
  {
    const Message& m = decode(
        R"({"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":null,"error":null})");
    EXPECT_EQ(m.action, Action::Checkpoint);
    EXPECT_EQ(m.sequence_number, kSeq);
    EXPECT_FALSE(m.sub_sequence_number.has_value());
    EXPECT_FALSE(m.error.has_value());
    EXPECT_FALSE(m.legacy_checkpoint_key);
    EXPECT_TRUE(m.unexpected_keys.empty());
  }
  {
    const Message& m = decode(
        R"({"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":"ThrottlingException"})");
    EXPECT_EQ(m.action, Action::Checkpoint);
    EXPECT_FALSE(m.sequence_number.has_value());
    EXPECT_FALSE(m.sub_sequence_number.has_value());
    EXPECT_EQ(m.error, "ThrottlingException");
    EXPECT_TRUE(m.unexpected_keys.empty());
  }
}

TEST_F(CodecTest, DecodesBareActions) {
  EXPECT_EQ(decode(R"({"action":"leaseLost"})").action, Action::LeaseLost);
  EXPECT_EQ(decode(R"({"action":"shardEnded"})").action, Action::ShardEnded);
  EXPECT_EQ(decode(R"({"action":"shutdownRequested"})").action, Action::ShutdownRequested);
  EXPECT_EQ(message_.action_name, "shutdownRequested");
}

TEST_F(CodecTest, DecodesLegacyShutdown) {
  const Message& m = decode(R"({"action":"shutdown","reason":"TERMINATE"})");
  EXPECT_EQ(m.action, Action::Shutdown);
  EXPECT_EQ(m.reason, "TERMINATE");
  EXPECT_EQ(decode(R"({"action":"shutdown","reason":"ZOMBIE"})").reason, "ZOMBIE");
}

// ---- docs/kcl-protocol.md §3: child -> daemon -------------------------------------------------------

TEST_F(CodecTest, DecodesStatus) {
  const Message& m = decode(R"({"action":"status","responseFor":"initialize"})");
  EXPECT_EQ(m.action, Action::Status);
  EXPECT_EQ(m.response_for, "initialize");
  EXPECT_TRUE(m.unexpected_keys.empty());
}

TEST_F(CodecTest, DecodesCheckpointRequests) {
  {
    const Message& m = decode(R"({"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null})");
    EXPECT_EQ(m.action, Action::Checkpoint);
    EXPECT_FALSE(m.sequence_number.has_value());
    EXPECT_FALSE(m.sub_sequence_number.has_value());
    EXPECT_FALSE(m.error.has_value());
    EXPECT_TRUE(m.unexpected_keys.empty());
  }
  {
    const Message& m = decode(
        R"({"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":null})");
    EXPECT_EQ(m.sequence_number, kSeq);
    EXPECT_FALSE(m.sub_sequence_number.has_value());
  }
  {
    const Message& m = decode(
        R"({"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":2})");
    EXPECT_EQ(m.sequence_number, kSeq);
    EXPECT_EQ(m.sub_sequence_number, 2);
    EXPECT_TRUE(m.unexpected_keys.empty());
  }
}

TEST_F(CodecTest, DecodesClientSpellingsOfCheckpoint) {
  // Python: spaces after separators. Node: no subSequenceNumber. Go: null keys left out.
  const Message& py = decode(R"({"action": "checkpoint", "sequenceNumber": "456", "subSequenceNumber": 7})");
  EXPECT_EQ(py.sequence_number, "456");
  EXPECT_EQ(py.sub_sequence_number, 7);
  const Message& node = decode(R"({"action":"checkpoint","sequenceNumber":"456"})");
  EXPECT_EQ(node.sequence_number, "456");
  EXPECT_FALSE(node.sub_sequence_number.has_value());
  const Message& go = decode(R"({"action":"checkpoint"})");
  EXPECT_EQ(go.action, Action::Checkpoint);
  EXPECT_FALSE(go.sequence_number.has_value());
  EXPECT_TRUE(go.unexpected_keys.empty());
}

TEST_F(CodecTest, RecordsUnexpectedKeysOfChildMessages) {
  const Message& s = decode(R"({"action":"status","responseFor":"processRecords","extra":{"a":[1]}})");
  EXPECT_EQ(s.response_for, "processRecords");
  EXPECT_EQ(s.unexpected_keys, std::vector<std::string>{"extra"});
  const Message& c =
      decode(R"({"action":"checkpoint","sequenceNumber":"1","subSequenceNumber":0,"error":null,"foo":1,"bar":null})");
  EXPECT_EQ(c.sequence_number, "1");
  EXPECT_EQ(c.unexpected_keys, (std::vector<std::string>{"foo", "bar"}));
  // ...and forgets them on the next line.
  EXPECT_TRUE(decode(R"({"action":"status","responseFor":"x"})").unexpected_keys.empty());
}

TEST_F(CodecTest, IgnoresUnknownFieldsOfDaemonMessages) {
  const Message& m = decode(
      R"({"action":"initialize","shardId":"s","future":{"nested":[1,2,{"x":null}]},"checkpoint":"1","sequenceNumber":"LATEST"})");
  EXPECT_EQ(m.action, Action::Initialize);
  EXPECT_EQ(m.sequence_number, "LATEST");
  EXPECT_FALSE(m.sub_sequence_number.has_value());
  EXPECT_TRUE(m.unexpected_keys.empty());
  const Message& l = decode(R"({"action":"shardEnded","checkpoint":"123"})");  // javadoc form
  EXPECT_EQ(l.action, Action::ShardEnded);
  EXPECT_TRUE(l.unexpected_keys.empty());
}

// ---- docs/kcl-protocol.md §8: version variants ------------------------------------------------------

TEST_F(CodecTest, DecodesLegacyInitializeWithoutSequenceNumber) {
  const Message& m = decode(R"({"action":"initialize","shardId":"shardId-000001"})");
  EXPECT_EQ(m.action, Action::Initialize);
  EXPECT_EQ(m.shard_id, "shardId-000001");
  EXPECT_FALSE(m.sequence_number.has_value());
  EXPECT_FALSE(m.sub_sequence_number.has_value());
  const Message& n = decode(R"({"action":"initialize","shardId":"s","sequenceNumber":null,"subSequenceNumber":null})");
  EXPECT_FALSE(n.sequence_number.has_value());
  EXPECT_FALSE(n.sub_sequence_number.has_value());
}

TEST_F(CodecTest, DecodesLegacyRecords) {
  // KCL 1.2-1.7.1: no action, sub-sequence number, timestamp or millisBehindLatest.
  decode(R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"456"},)"
         R"({"data":"d29vZg==","partitionKey":"dog","sequenceNumber":"457","subSequenceNumber":null,"approximateArrivalTimestamp":null}]})");
  ASSERT_EQ(batch_.records.size(), 2u);
  EXPECT_EQ(batch_.records[0].data, "meow");
  EXPECT_EQ(batch_.records[0].sequence_number.str(), "456");
  EXPECT_EQ(batch_.records[0].sub_sequence_number, 0);
  EXPECT_FALSE(batch_.records[0].approximate_arrival_timestamp.has_value());
  EXPECT_EQ(batch_.records[1].data, "woof");
  EXPECT_EQ(batch_.records[1].partition_key, "dog");
  EXPECT_EQ(batch_.records[1].sub_sequence_number, 0);
  EXPECT_FALSE(batch_.records[1].approximate_arrival_timestamp.has_value());
  EXPECT_FALSE(batch_.millis_behind_latest.has_value());
  decode(R"({"action":"processRecords","records":[],"millisBehindLatest":null})");
  EXPECT_TRUE(batch_.records.empty());
  EXPECT_FALSE(batch_.millis_behind_latest.has_value());
}

TEST_F(CodecTest, DecodesKcl20InstantTimestamp) {
  decode(R"({"action":"processRecords","records":[{"data":"","partitionKey":"k","sequenceNumber":"1",)"
         R"("approximateArrivalTimestamp":{"epochSecond":1476889707,"nano":123456789},"subSequenceNumber":4,"action":"record"}],"millisBehindLatest":1000})");
  ASSERT_EQ(batch_.records.size(), 1u);
  EXPECT_EQ(millis(batch_.records[0].approximate_arrival_timestamp), 1476889707123);
  EXPECT_EQ(batch_.records[0].sub_sequence_number, 4);
  EXPECT_EQ(batch_.records[0].data, "");
  EXPECT_EQ(batch_.millis_behind_latest, 1000);
}

TEST_F(CodecTest, DecodesLegacyCheckpointKey) {
  // Python test 1: an error response carrying a stray legacy "checkpoint".
  const Message& m = decode(R"({"action":"checkpoint","checkpoint":"456","error":"ThisIsATestException"})");
  EXPECT_EQ(m.action, Action::Checkpoint);
  EXPECT_TRUE(m.legacy_checkpoint_key);
  EXPECT_EQ(m.sequence_number, "456");
  EXPECT_EQ(m.error, "ThisIsATestException");
  EXPECT_EQ(m.unexpected_keys, std::vector<std::string>{"checkpoint"});
  // Legacy request from a kclpy-era child.
  const Message& r = decode(R"({"action":"checkpoint","checkpoint":null})");
  EXPECT_TRUE(r.legacy_checkpoint_key);
  EXPECT_FALSE(r.sequence_number.has_value());
  // Both keys: sequenceNumber wins, whatever the order.
  EXPECT_EQ(decode(R"({"action":"checkpoint","sequenceNumber":"9","checkpoint":"456"})").sequence_number, "9");
  EXPECT_EQ(decode(R"({"action":"checkpoint","checkpoint":"456","sequenceNumber":"9"})").sequence_number, "9");
  EXPECT_FALSE(decode(R"({"action":"checkpoint","checkpoint":"456","sequenceNumber":null})").sequence_number.has_value());
}

TEST_F(CodecTest, AcceptsNumericSequenceNumbers) {
  EXPECT_EQ(decode(R"({"action":"checkpoint","sequenceNumber":123,"subSequenceNumber":0})").sequence_number, "123");
  decode(R"({"action":"processRecords","records":[{"data":"","partitionKey":"k","sequenceNumber":49590338271490256608559692538361571095921575989136588898}]})");
  EXPECT_EQ(batch_.records.at(0).sequence_number.str(), kSeq);
}

TEST_F(CodecTest, ParsesByKeyInAnyOrder) {
  decode(R"({"millisBehindLatest":5,"records":[{"action":"record","subSequenceNumber":1,"sequenceNumber":"7",)"
         R"("partitionKey":"p","approximateArrivalTimestamp":1,"data":"YQ=="}],"action":"processRecords"})");
  EXPECT_EQ(message_.action, Action::ProcessRecords);
  ASSERT_EQ(batch_.records.size(), 1u);
  EXPECT_EQ(batch_.records[0].data, "a");
  EXPECT_EQ(batch_.records[0].sequence_number.str(), "7");
  EXPECT_EQ(batch_.records[0].sub_sequence_number, 1);
  EXPECT_EQ(millis(batch_.records[0].approximate_arrival_timestamp), 1);
  EXPECT_EQ(batch_.millis_behind_latest, 5);
  EXPECT_EQ(decode(R"({"responseFor":"shardEnded","action":"status"})").response_for, "shardEnded");
}

TEST_F(CodecTest, ToleratesCrlfAndWhitespace) {
  EXPECT_EQ(decode("{\"action\":\"leaseLost\"}\r").action, Action::LeaseLost);
  const Message& m = decode(" \t{ \"action\" : \"status\" , \"responseFor\" : \"leaseLost\" } \r");
  EXPECT_EQ(m.action, Action::Status);
  EXPECT_EQ(m.response_for, "leaseLost");
}

TEST_F(CodecTest, UnknownActionIsNotAnError) {
  const Message& m = decode(R"({"action":"invalid","x":1})");
  EXPECT_EQ(m.action, Action::Unknown);
  EXPECT_EQ(m.action_name, "invalid");
  EXPECT_EQ(decode(R"({"action":"Status","responseFor":"x"})").action, Action::Unknown);  // case matters
  EXPECT_EQ(decode(R"({"action":"record"})").action, Action::Unknown);
}

TEST_F(CodecTest, NonProcessRecordsLeavesBatchAlone) {
  decode(R"({"action":"processRecords","records":[{"data":"YQ==","partitionKey":"k","sequenceNumber":"1"}],"millisBehindLatest":3})");
  decode(R"({"action":"initialize","shardId":"s","records":"junk"})");
  ASSERT_EQ(batch_.records.size(), 1u);
  EXPECT_EQ(batch_.records[0].data, "a");
  EXPECT_EQ(batch_.millis_behind_latest, 3);
}

// ---- record data ---------------------------------------------------------------------

TEST_F(CodecTest, BadBase64BecomesDataErrorNotThrow) {
  decode(R"({"action":"processRecords","records":[)"
         R"({"data":"bWVvdw=","partitionKey":"a","sequenceNumber":"1"},)"
         R"({"data":"!!!!","partitionKey":"b","sequenceNumber":"2"},)"
         R"({"data":"bWVvdw==","partitionKey":"c","sequenceNumber":"3"}]})");
  ASSERT_EQ(batch_.records.size(), 3u);
  EXPECT_EQ(batch_.records[0].data_error, "invalid base64 in record data");
  EXPECT_TRUE(batch_.records[0].data.empty());
  EXPECT_EQ(batch_.records[0].partition_key, "a");
  EXPECT_EQ(batch_.records[1].data_error, "invalid base64 in record data");
  EXPECT_TRUE(batch_.records[2].data_error.empty());
  EXPECT_EQ(batch_.records[2].data, "meow");
  // A reused record forgets its error.
  decode(R"({"action":"processRecords","records":[{"data":"YQ==","partitionKey":"a","sequenceNumber":"1"}]})");
  ASSERT_EQ(batch_.records.size(), 1u);
  EXPECT_TRUE(batch_.records[0].data_error.empty());
  EXPECT_EQ(batch_.records[0].data, "a");
}

TEST_F(CodecTest, NullDataAndEscapedBase64) {
  decode(R"({"action":"processRecords","records":[{"data":null,"partitionKey":"a","sequenceNumber":"1"},)"
         R"({"data":"\/w==","partitionKey":"b","sequenceNumber":"2"},{"data" : "YWJj"  ,"partitionKey":"c","sequenceNumber":"3"}]})");
  ASSERT_EQ(batch_.records.size(), 3u);
  EXPECT_TRUE(batch_.records[0].data.empty());
  EXPECT_TRUE(batch_.records[0].data_error.empty());
  EXPECT_EQ(batch_.records[1].data, "\xff");  // "\/" unescaped by the slow path
  EXPECT_EQ(batch_.records[2].data, "abc");
}

TEST_F(CodecTest, ReusesBatchAcrossLines) {
  const auto line = [](int n, char c) {
    std::string s = R"({"action":"processRecords","records":[)";
    for (int i = 0; i < n; ++i) {
      if (i) s += ',';
      std::string b64;
      base64_encode(std::string(100, static_cast<char>(c + i)), b64);
      s += R"({"data":")" + b64 + R"(","partitionKey":"pk)" + std::to_string(i) + R"(","sequenceNumber":")" +
           std::to_string(1000 + i) + R"(","subSequenceNumber":)" + std::to_string(i) + "}";
    }
    return s + "]}";
  };
  for (const int n : {3, 1, 5, 0, 4}) {
    decode(line(n, 'a'));
    ASSERT_EQ(batch_.records.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const Record& r = batch_.records[static_cast<std::size_t>(i)];
      EXPECT_EQ(r.data, std::string(100, static_cast<char>('a' + i)));
      EXPECT_EQ(r.partition_key, "pk" + std::to_string(i));
      EXPECT_EQ(r.sequence_number.str(), std::to_string(1000 + i));
      EXPECT_EQ(r.sub_sequence_number, i);
      EXPECT_FALSE(r.approximate_arrival_timestamp.has_value());
    }
  }
}

// ---- errors ------------------------------------------------------------------------------

TEST_F(CodecTest, TruncatedJsonIsProtocolError) {
  const std::string line = R"({"action":"initialize","shardId":"shardId-0001)";
  const std::string what = error_of(line);
  EXPECT_NE(what.find("truncated"), std::string::npos) << what;
  EXPECT_NE(what.find(line), std::string::npos) << what;  // names the line
  EXPECT_NE(error_of(R"({"action":"initialize","shardId":"s")").find("JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"action":"processRecords","records":[{"data":"YQ==")").find("JSON"), std::string::npos);
  EXPECT_NE(error_of("hello world").find("JSON"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("   \r").find("empty"), std::string::npos);
  EXPECT_NE(error_of(R"({"action":"leaseLost"} junk)").find("JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"action":"leaseLost"}])").find("JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"action":"leaseLost"}{"action":"leaseLost"})").find("trailing"), std::string::npos);
}

TEST_F(CodecTest, NotAnObjectIsProtocolError) {
  EXPECT_NE(error_of(R"([1,2,3])").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"("status")").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("42").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("null").find("not a JSON object"), std::string::npos);
}

TEST_F(CodecTest, MissingOrBadActionIsProtocolError) {
  EXPECT_NE(error_of(R"({"shardId":"s"})").find("no \"action\""), std::string::npos);
  EXPECT_NE(error_of(R"({})").find("no \"action\""), std::string::npos);
  const std::string what = error_of(R"({"action":5})");
  EXPECT_NE(what.find("\"action\" is a number"), std::string::npos) << what;
  EXPECT_NE(error_of(R"({"action":null})").find("\"action\" is null"), std::string::npos);
}

TEST_F(CodecTest, WrongFieldTypesAreProtocolErrors) {
  const auto expect_error = [&](std::string_view line, std::string_view needle) {
    const std::string what = error_of(line);
    EXPECT_NE(what.find(needle), std::string::npos) << "what(): " << what;
  };
  expect_error(R"({"action":"processRecords","records":"x"})", "\"records\" is a string");
  expect_error(R"({"action":"processRecords","records":{}})", "\"records\" is an object");
  expect_error(R"({"action":"processRecords","records":[1]})", "record #0 is a number");
  expect_error(R"({"action":"processRecords","records":[{"data":5,"partitionKey":"a","sequenceNumber":"1"}]})",
               "\"data\" is a number");
  expect_error(R"({"action":"processRecords","records":[{"data":"","partitionKey":"a","sequenceNumber":"12a"}]})",
               "invalid sequenceNumber \"12a\"");
  expect_error(R"({"action":"processRecords","records":[{"data":"","partitionKey":"a","sequenceNumber":"1"},{"data":""}]})",
               "record #1: no \"sequenceNumber\"");
  expect_error(R"({"action":"processRecords","records":[{"data":"","partitionKey":[],"sequenceNumber":"1"}]})",
               "\"partitionKey\" is an array");
  expect_error(R"({"action":"processRecords","records":[{"sequenceNumber":"1","approximateArrivalTimestamp":"x"}]})",
               "\"approximateArrivalTimestamp\" is a string");
  expect_error(R"({"action":"processRecords","records":[{"sequenceNumber":"1","approximateArrivalTimestamp":1e300}]})",
               "out of range");
  expect_error(R"({"action":"processRecords","records":[],"millisBehindLatest":"soon"})", "\"millisBehindLatest\"");
  expect_error(R"({"action":"processRecords","records":[],"millisBehindLatest":1.5})", "\"millisBehindLatest\"");
  expect_error(R"({"action":"initialize","shardId":"s","sequenceNumber":{"a":1}})", "\"sequenceNumber\" is an object");
  expect_error(R"({"action":"initialize","shardId":"s","sequenceNumber":1.5})", "not a non-negative integer");
  expect_error(R"({"action":"initialize","shardId":7})", "\"shardId\" is a number");
  expect_error(R"({"action":"initialize","shardId":"s","subSequenceNumber":"x"})", "\"subSequenceNumber\"");
  expect_error(R"({"action":"initialize","shardId":"s","subSequenceNumber":99999999999999999999})",
               "\"subSequenceNumber\"");
  expect_error(R"({"action":"checkpoint","sequenceNumber":null,"error":false})", "\"error\" is a boolean");
  expect_error(R"({"action":"status","responseFor":null})", "\"responseFor\" is null");
  expect_error(R"({"action":"status"})", "without \"responseFor\"");
  expect_error(R"({"action":"shutdown","reason":1})", "\"reason\" is a number");
  expect_error("{\"action\":\"status\",\"responseFor\":\"\xff\"}", "UTF-8");
}

TEST_F(CodecTest, ProtocolErrorCutsLongLines) {
  std::string line = R"({"action":"processRecords","records":")" + std::string(10000, 'A') + "\"}";
  const std::string what = error_of(line);
  EXPECT_LT(what.size(), 400u);
  EXPECT_NE(what.find("(" + std::to_string(line.size()) + " bytes)"), std::string::npos) << what;
}

TEST_F(CodecTest, DecoderRecoversAfterError) {
  EXPECT_THROW(decode(R"({"action":"processRecords","records":[{"data":"YQ==","partitionKey":"a"}]})"),
               ProtocolError);
  const Message& m = decode(R"({"action":"status","responseFor":"initialize"})");
  EXPECT_EQ(m.response_for, "initialize");
  decode(R"({"action":"processRecords","records":[{"data":"YQ==","partitionKey":"a","sequenceNumber":"1"}]})");
  ASSERT_EQ(batch_.records.size(), 1u);
  EXPECT_EQ(batch_.records[0].data, "a");
}

// ---- non-ASCII ------------------------------------------------------------------------

TEST_F(CodecTest, NonAsciiPartitionKeysRoundTrip) {
  struct Case {
    std::string utf8;
    std::string escaped;
  };
  const std::vector<Case> cases = {
      {"caf\xc3\xa9", R"("caf\u00e9")"},
      {"\xe6\x97\xa5\xe6\x9c\xac", R"("\u65e5\u672c")"},
      {"\xf0\x9f\x98\x80!", R"("\ud83d\ude00!")"},
  };
  for (const Case& c : cases) {
    std::string out;
    append_json_string(out, c.utf8);
    EXPECT_EQ(out, c.escaped);
    RecordBatch batch;
    batch.records.resize(1);
    batch.records[0].partition_key = c.utf8;
    ASSERT_TRUE(batch.records[0].sequence_number.assign("1"));
    std::string line;
    encode_process_records(line, batch);
    EXPECT_TRUE(is_ascii(line)) << line;
    EXPECT_NE(line.find(c.escaped), std::string::npos) << line;
    decode(line);
    ASSERT_EQ(batch_.records.size(), 1u);
    EXPECT_EQ(batch_.records[0].partition_key, c.utf8);
    // Raw UTF-8 (as a Java 18+ daemon writes it) decodes to the same bytes.
    decode(R"({"action":"processRecords","records":[{"data":"","partitionKey":")" + c.utf8 +
           R"(","sequenceNumber":"1"}]})");
    EXPECT_EQ(batch_.records.at(0).partition_key, c.utf8);
  }
}

TEST(CodecWriter, EscapesControlAndSpecialCharacters) {
  std::string out;
  append_json_string(out, std::string_view("a\"b\\c/\n\r\t\b\f\x01\x1f\x7f\0z", 16));
  EXPECT_EQ(out, R"("a\"b\\c/\n\r\t\b\f\u0001\u001f)" "\x7f" R"(\u0000z")");
}

TEST(CodecWriter, InvalidUtf8BecomesReplacementCharacter) {
  const auto esc = [](std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
  };
  EXPECT_EQ(esc("\xff"), R"("\ufffd")");
  EXPECT_EQ(esc("a\xc3"), R"("a\ufffd")");              // truncated 2-byte sequence
  EXPECT_EQ(esc("\xe6\x97z"), R"("\ufffdz")");           // truncated 3-byte: one U+FFFD
  EXPECT_EQ(esc("\xc0\xaf"), R"("\ufffd\ufffd")");       // overlong '/'
  EXPECT_EQ(esc("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // encoded surrogate
  EXPECT_EQ(esc("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
  EXPECT_EQ(esc("\x80\xc3\xa9"), R"("\ufffd\u00e9")");
  EXPECT_EQ(esc("\xf4\x8f\xbf\xbf"), R"("\udbff\udfff")");  // U+10FFFF
  EXPECT_EQ(esc("\xef\xbf\xbf"), R"("\uffff")");
}

TEST(CodecWriter, OutputIsPureAscii) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xFF);
    std::string out;
    append_json_string(out, s);
    encode_status(out, s);
    encode_checkpoint_request(out, s, std::nullopt);
    encode_checkpoint_response(out, s, 1, s);
    encode_initialize(out, s, ExtendedSequenceNumber(Sentinel::Latest));
    ASSERT_TRUE(is_ascii(out));
    for (const char c : out) ASSERT_GE(static_cast<unsigned char>(c), 0x20);
  }
}

// ---- exact writer bytes (docs/kcl-protocol.md §2, §3 example lines) -----------------------------------

TEST(CodecWriter, StatusMatchesSpec) {
  std::string out;
  encode_status(out, "initialize");
  EXPECT_EQ(out, R"({"action":"status","responseFor":"initialize"})");
  out.clear();
  encode_status(out, action_name(Action::ProcessRecords));
  EXPECT_EQ(out, R"({"action":"status","responseFor":"processRecords"})");
}

TEST(CodecWriter, CheckpointRequestsMatchSpec) {
  std::string out;
  encode_checkpoint_request(out, std::nullopt, std::nullopt);
  EXPECT_EQ(out, R"({"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null})");
  out.clear();
  encode_checkpoint_request(out, std::string(kSeq), std::nullopt);
  EXPECT_EQ(out,
            R"({"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":null})");
  out.clear();
  encode_checkpoint_request(out, std::string(kSeq), 2);
  EXPECT_EQ(out,
            R"({"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":2})");
}

TEST(CodecWriter, InitializeMatchesSpec) {
  std::string out;
  encode_initialize(out, "shardId-000000000001", ExtendedSequenceNumber(Sentinel::TrimHorizon));
  EXPECT_EQ(out,
            R"({"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0})");
  out.clear();
  encode_initialize(out, "shardId-000000000001", ExtendedSequenceNumber(SequenceNumber(kSeq), 3));
  EXPECT_EQ(out,
            R"({"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":3})");
  out.clear();
  encode_initialize(out, "s", ExtendedSequenceNumber(Sentinel::AtTimestamp));
  EXPECT_EQ(out, R"({"action":"initialize","shardId":"s","sequenceNumber":"AT_TIMESTAMP","subSequenceNumber":0})");
}

TEST(CodecWriter, ProcessRecordsMatchesSpec) {
  RecordBatch batch;
  batch.records.resize(1);
  batch.records[0].data = "meow";
  batch.records[0].partition_key = "cat";
  ASSERT_TRUE(batch.records[0].sequence_number.assign(kSeq));
  batch.records[0].approximate_arrival_timestamp = at_ms(1476889707000);
  batch.millis_behind_latest = 0;
  std::string out;
  encode_process_records(out, batch);
  EXPECT_EQ(out,
            R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0})");
  out.clear();
  batch.records[0].approximate_arrival_timestamp.reset();
  batch.records[0].sub_sequence_number = 7;
  batch.records.push_back(batch.records[0]);
  batch.records[1].data.clear();
  batch.millis_behind_latest.reset();
  encode_process_records(out, batch);
  EXPECT_EQ(out,
            R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":null,"subSequenceNumber":7,"action":"record"},)"
            R"({"data":"","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":null,"subSequenceNumber":7,"action":"record"}],"millisBehindLatest":null})");
  out.clear();
  encode_process_records(out, RecordBatch{});
  EXPECT_EQ(out, R"({"action":"processRecords","records":[],"millisBehindLatest":null})");
}

TEST(CodecWriter, CheckpointResponsesMatchSpec) {
  std::string out;
  encode_checkpoint_response(out, std::string(kSeq), std::nullopt, std::nullopt);
  EXPECT_EQ(out,
            R"({"action":"checkpoint","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","subSequenceNumber":null,"error":null})");
  out.clear();
  encode_checkpoint_response(out, std::nullopt, std::nullopt, std::string("ThrottlingException"));
  EXPECT_EQ(out, R"({"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":"ThrottlingException"})");
  out.clear();
  encode_checkpoint_response(out, std::string("123"), 0, std::nullopt);
  EXPECT_EQ(out, R"({"action":"checkpoint","sequenceNumber":"123","subSequenceNumber":0,"error":null})");
}

TEST(CodecWriter, BareActionsMatchSpec) {
  std::string out;
  encode_bare(out, Action::LeaseLost);
  EXPECT_EQ(out, R"({"action":"leaseLost"})");
  out.clear();
  encode_bare(out, Action::ShardEnded);
  EXPECT_EQ(out, R"({"action":"shardEnded"})");
  out.clear();
  encode_bare(out, Action::ShutdownRequested);
  EXPECT_EQ(out, R"({"action":"shutdownRequested"})");
}

TEST(CodecWriter, WritersAppend) {
  std::string out = "prefix";
  encode_bare(out, Action::LeaseLost);
  EXPECT_EQ(out, R"(prefix{"action":"leaseLost"})");
}

TEST(CodecWriter, ActionNamesAreTheWireNames) {
  EXPECT_EQ(action_name(Action::Initialize), "initialize");
  EXPECT_EQ(action_name(Action::ProcessRecords), "processRecords");
  EXPECT_EQ(action_name(Action::Checkpoint), "checkpoint");
  EXPECT_EQ(action_name(Action::LeaseLost), "leaseLost");
  EXPECT_EQ(action_name(Action::ShardEnded), "shardEnded");
  EXPECT_EQ(action_name(Action::ShutdownRequested), "shutdownRequested");
  EXPECT_EQ(action_name(Action::Shutdown), "shutdown");
  EXPECT_EQ(action_name(Action::Status), "status");
}

TEST(CodecWriter, CutLineKeepsTheHeadAndNeverSplitsUtf8) {
  EXPECT_EQ(cut_line("short"), "short");
  EXPECT_EQ(cut_line(std::string(200, 'x')), std::string(200, 'x'));
  EXPECT_EQ(cut_line(std::string(201, 'x')), std::string(200, 'x') + "...(201 bytes)");
  EXPECT_EQ(cut_line("abcdef", 3), "abc...(6 bytes)");
  // Never splits a UTF-8 sequence: "a" + U+65E5 (3 bytes), cut at 2.
  EXPECT_EQ(cut_line("a\xe6\x97\xa5z", 2), "a...(5 bytes)");
}

// ---- big lines and random round trips ----------------------------------------------------

TEST_F(CodecTest, TwentyMegabyteProcessRecordsRoundTrip) {
  RecordBatch batch;
  constexpr std::size_t n = 20000;
  batch.records.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    Record& r = batch.records[i];
    r.data.assign(750, static_cast<char>(i * 7));
    r.data[0] = static_cast<char>(i >> 8);
    r.partition_key = "pk-" + std::to_string(i);
    ASSERT_TRUE(r.sequence_number.assign(std::string(kSeq.substr(0, 40)) + std::to_string(100000 + i)));
    r.sub_sequence_number = static_cast<std::int64_t>(i % 5);
    if (i % 3 != 0) r.approximate_arrival_timestamp = at_ms(1476889707000 + static_cast<std::int64_t>(i));
  }
  batch.millis_behind_latest = 123456;
  std::string line;
  encode_process_records(line, batch);
  ASSERT_GT(line.size(), 20u * 1000 * 1000);
  decode(line);
  ASSERT_EQ(batch_.records.size(), n);
  EXPECT_EQ(batch_.millis_behind_latest, 123456);
  for (std::size_t i = 0; i < n; i += 997) {
    const Record& got = batch_.records[i];
    const Record& want = batch.records[i];
    EXPECT_EQ(got.data, want.data) << i;
    EXPECT_EQ(got.partition_key, want.partition_key);
    EXPECT_EQ(got.sequence_number, want.sequence_number);
    EXPECT_EQ(got.sub_sequence_number, want.sub_sequence_number);
    EXPECT_EQ(got.approximate_arrival_timestamp, want.approximate_arrival_timestamp);
  }
  EXPECT_EQ(batch_.records.back().data, batch.records.back().data);
}

std::string random_utf8(std::mt19937_64& rng, std::size_t max_chars) {
  std::string s;
  const std::size_t n = rng() % (max_chars + 1);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t cp = 0;
    switch (rng() % 4) {
      case 0: cp = static_cast<std::uint32_t>(rng() % 0x80); break;
      case 1: cp = static_cast<std::uint32_t>(0x80 + rng() % 0x780); break;
      case 2: cp = static_cast<std::uint32_t>(0x800 + rng() % 0xF800); break;
      default: cp = static_cast<std::uint32_t>(0x10000 + rng() % 0x100000); break;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

TEST_F(CodecTest, RandomMessagesRoundTrip) {
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  const auto random_digits = [&] {
    std::string d(1 + rng() % 60, '0');
    for (char& c : d) c = static_cast<char>('0' + rng() % 10);
    return d;
  };
  const auto random_i64 = [&]() -> std::int64_t {
    switch (rng() % 3) {
      case 0: return static_cast<std::int64_t>(rng() % 10);
      case 1: return static_cast<std::int64_t>(rng());
      default: return -static_cast<std::int64_t>(rng() % 1000000);
    }
  };
  for (int iter = 0; iter < 300; ++iter) {
    RecordBatch batch;
    batch.records.resize(rng() % 12);
    for (Record& r : batch.records) {
      r.data.resize(rng() % 300);
      for (char& c : r.data) c = static_cast<char>(rng() & 0xFF);
      r.partition_key = random_utf8(rng, 20);
      ASSERT_TRUE(r.sequence_number.assign(random_digits()));
      r.sub_sequence_number = random_i64();
      if (rng() % 4 != 0) {
        r.approximate_arrival_timestamp = at_ms(static_cast<std::int64_t>(rng() % 4'000'000'000'000));
      }
    }
    if (rng() % 3 != 0) batch.millis_behind_latest = random_i64();
    std::string line;
    encode_process_records(line, batch);
    ASSERT_TRUE(is_ascii(line));
    decode(line);
    ASSERT_EQ(message_.action, Action::ProcessRecords);
    ASSERT_EQ(batch_.records.size(), batch.records.size());
    EXPECT_EQ(batch_.millis_behind_latest, batch.millis_behind_latest);
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      const Record& got = batch_.records[i];
      const Record& want = batch.records[i];
      ASSERT_EQ(got.data, want.data);
      ASSERT_EQ(got.partition_key, want.partition_key);
      ASSERT_EQ(got.sequence_number, want.sequence_number);
      ASSERT_EQ(got.sub_sequence_number, want.sub_sequence_number);
      ASSERT_EQ(got.approximate_arrival_timestamp, want.approximate_arrival_timestamp);
      ASSERT_TRUE(got.data_error.empty());
    }

    // Child and daemon small messages.
    const std::string text = random_utf8(rng, 30);
    const std::optional<std::string> seq =
        rng() % 2 ? std::optional<std::string>(random_digits()) : std::nullopt;
    const std::optional<std::int64_t> sub = rng() % 2 ? std::optional<std::int64_t>(random_i64()) : std::nullopt;
    const std::optional<std::string> err = rng() % 2 ? std::optional<std::string>(text) : std::nullopt;
    line.clear();
    encode_status(line, text);
    ASSERT_EQ(decode(line).response_for, text);
    line.clear();
    encode_checkpoint_request(line, seq, sub);
    decode(line);
    ASSERT_EQ(message_.sequence_number, seq);
    ASSERT_EQ(message_.sub_sequence_number, sub);
    ASSERT_TRUE(message_.unexpected_keys.empty());
    line.clear();
    encode_checkpoint_response(line, seq, sub, err);
    decode(line);
    ASSERT_EQ(message_.sequence_number, seq);
    ASSERT_EQ(message_.sub_sequence_number, sub);
    ASSERT_EQ(message_.error, err);
    line.clear();
    const std::int64_t isub = rng() % 10 == 0 ? 0 : static_cast<std::int64_t>(rng() % 1000);
    const std::string digits = random_digits();
    encode_initialize(line, text, ExtendedSequenceNumber(SequenceNumber(digits), isub));
    decode(line);
    ASSERT_EQ(message_.shard_id, text);
    ASSERT_EQ(message_.sequence_number, digits);
    ASSERT_EQ(message_.sub_sequence_number, isub);
  }
}

// ---- the processRecords fast path against the general path -------------------------------
// Decoder::decode() first tries a scanner for the exact shape Jackson writes and falls back
// to the simdjson path for anything else. Whatever the fast path accepts, the general path
// must accept too, with the same message and records.

// What one path made of a line: the message and batch, or the ProtocolError's text.
struct Outcome {
  bool ok = false;
  std::string error;
  Message message;
  RecordBatch batch;
};

void expect_same(const Outcome& a, const Outcome& b, std::string_view line) {
  const std::string context = "line: " + cut_line(line, 400);
  ASSERT_EQ(a.ok, b.ok) << context << "\nerrors: '" << a.error << "' vs '" << b.error << "'";
  if (!a.ok) {
    EXPECT_EQ(a.error, b.error) << context;
    return;
  }
  EXPECT_EQ(a.message.action, b.message.action) << context;
  EXPECT_EQ(a.message.action_name, b.message.action_name) << context;
  EXPECT_EQ(a.message.shard_id, b.message.shard_id) << context;
  EXPECT_EQ(a.message.sequence_number, b.message.sequence_number) << context;
  EXPECT_EQ(a.message.sub_sequence_number, b.message.sub_sequence_number) << context;
  EXPECT_EQ(a.message.error, b.message.error) << context;
  EXPECT_EQ(a.message.reason, b.message.reason) << context;
  EXPECT_EQ(a.message.response_for, b.message.response_for) << context;
  EXPECT_EQ(a.message.unexpected_keys, b.message.unexpected_keys) << context;
  EXPECT_EQ(a.message.legacy_checkpoint_key, b.message.legacy_checkpoint_key) << context;
  EXPECT_EQ(a.batch.millis_behind_latest, b.batch.millis_behind_latest) << context;
  ASSERT_EQ(a.batch.records.size(), b.batch.records.size()) << context;
  for (std::size_t i = 0; i < a.batch.records.size(); ++i) {
    const Record& x = a.batch.records[i];
    const Record& y = b.batch.records[i];
    EXPECT_EQ(x.data, y.data) << "record " << i << ", " << context;
    EXPECT_EQ(x.partition_key, y.partition_key) << "record " << i << ", " << context;
    EXPECT_EQ(x.sequence_number.str(), y.sequence_number.str()) << "record " << i << ", " << context;
    EXPECT_EQ(x.sub_sequence_number, y.sub_sequence_number) << "record " << i << ", " << context;
    EXPECT_EQ(x.approximate_arrival_timestamp, y.approximate_arrival_timestamp) << "record " << i << ", " << context;
    EXPECT_EQ(x.data_error, y.data_error) << "record " << i << ", " << context;
  }
}

// Runs `line` through decode() (fast path first), decode_general() and try_decode_fast(),
// each on a decoder that has already decoded `previous` (so reused records are in play).
// Returns whether the fast path took the line.
class FastPathTest : public ::testing::Test {
 protected:
  bool check(std::string_view line) {
    padded_.assign(line);
    padded_.append(decode_padding, '\x7f');
    const std::string_view view(padded_.data(), line.size());
    const auto run = [&](Decoder& decoder, Outcome& out, bool general) {
      try {
        if (general) {
          decoder.decode_general(view, out.message, out.batch);
        } else {
          decoder.decode(view, out.message, out.batch);
        }
        out.ok = true;
      } catch (const ProtocolError& e) {
        out.ok = false;
        out.error = e.what();
      }
    };
    Outcome combined;
    Outcome general;
    combined.batch = previous_batch();
    general.batch = previous_batch();
    run(combined_decoder_, combined, false);
    run(general_decoder_, general, true);
    expect_same(combined, general, line);

    Outcome fast;
    fast.batch = previous_batch();
    const bool took = fast_decoder_.try_decode_fast(view, fast.message, fast.batch);
    if (took) {
      fast.ok = true;
      expect_same(fast, general, line);
    }
    return took;
  }

  static RecordBatch previous_batch() {
    RecordBatch b;
    b.records.resize(2);
    b.records[0].data = "stale";
    b.records[0].data_error = "stale error";
    b.records[0].sub_sequence_number = 99;
    b.records[1].approximate_arrival_timestamp = at_ms(5);
    b.millis_behind_latest = 77;
    return b;
  }

  Decoder combined_decoder_;
  Decoder general_decoder_;
  Decoder fast_decoder_;
  std::string padded_;
};

// One record in Jackson's order, with each field's JSON text given.
std::string jackson_record(std::string_view data, std::string_view key, std::string_view seq,
                           std::string_view ts, std::string_view sub) {
  std::string r = R"({"data":)";
  r += data;
  r += R"(,"partitionKey":)";
  r += key;
  r += R"(,"sequenceNumber":)";
  r += seq;
  r += R"(,"approximateArrivalTimestamp":)";
  r += ts;
  r += R"(,"subSequenceNumber":)";
  r += sub;
  r += R"(,"action":"record"})";
  return r;
}

std::string jackson_line(const std::vector<std::string>& records, std::string_view millis = "0") {
  std::string line = R"({"action":"processRecords","records":[)";
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (i > 0) line += ',';
    line += records[i];
  }
  line += R"(],"millisBehindLatest":)";
  line += millis;
  line += '}';
  return line;
}

const std::string kRec = jackson_record(R"("bWVvdw==")", R"("cat")", "\"" + std::string(kSeq) + "\"",
                                        "1476889707000", "0");

TEST_F(FastPathTest, TakesTheLinesJacksonWrites) {
  EXPECT_TRUE(check(R"({"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0})"));
  EXPECT_TRUE(check(jackson_line({kRec, kRec, kRec})));
  EXPECT_TRUE(check(jackson_line({}, "null")));
  EXPECT_TRUE(check(jackson_line({kRec}, "-12")));
  EXPECT_TRUE(check(jackson_line({kRec}, "999999999999999999")));
  EXPECT_TRUE(check(jackson_line({kRec}) + "\r"));
  const std::string seq = "\"7\"";
  for (const std::string_view data : {"null", R"("")", R"("YQ==")", R"("YWI=")", R"("++//")"}) {
    EXPECT_TRUE(check(jackson_line({jackson_record(data, R"("k")", seq, "1", "0")}))) << data;
  }
  for (const std::string_view ts : {"null", "0", "1", "-1", "-1476889707000", "9000000000000", "-9000000000000"}) {
    EXPECT_TRUE(check(jackson_line({jackson_record(R"("YQ==")", R"("k")", seq, ts, "0")}))) << ts;
  }
  for (const std::string_view sub : {"null", "0", "7", "-3", "123456789012345678", "-123456789012345678"}) {
    EXPECT_TRUE(check(jackson_line({jackson_record(R"("YQ==")", R"("k")", seq, "1", sub)}))) << sub;
  }
  // Raw UTF-8 partition keys (a Java 18+ daemon), DEL, and every printable ASCII character
  // but '"' and '\'.
  std::string printable;
  for (char c = ' '; c < 0x7f; ++c) {
    if (c != '"' && c != '\\') printable += c;
  }
  for (const std::string& key : {std::string("caf\xc3\xa9"), std::string("\xe6\x97\xa5\xe6\x9c\xac"),
                                 std::string("\xf0\x9f\x98\x80!"), std::string("\x7f"), std::string(""),
                                 printable}) {
    EXPECT_TRUE(check(jackson_line({jackson_record(R"("YQ==")", "\"" + key + "\"", seq, "1", "0")}))) << key;
  }
  // The writer's own output, for random batches (ASCII partition keys: no escapes).
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 50; ++iter) {
    RecordBatch batch;
    batch.records.resize(rng() % 6);
    for (Record& r : batch.records) {
      r.data.resize(rng() % 200);
      for (char& c : r.data) c = static_cast<char>(rng() & 0xFF);
      r.partition_key = "pk-" + std::to_string(rng());
      ASSERT_TRUE(r.sequence_number.assign(std::to_string(rng())));
      r.sub_sequence_number = static_cast<std::int64_t>(rng() % 1000);
      if (rng() % 3 != 0) r.approximate_arrival_timestamp = at_ms(static_cast<std::int64_t>(rng() % 4'000'000'000'000));
    }
    if (rng() % 2 != 0) batch.millis_behind_latest = static_cast<std::int64_t>(rng() % 100000);
    std::string line;
    encode_process_records(line, batch);
    EXPECT_TRUE(check(line)) << line;
  }
}

TEST_F(FastPathTest, LeavesEveryOtherShapeToTheGeneralPath) {
  const std::string seq = "\"7\"";
  const auto rec = [&](std::string_view data, std::string_view key, std::string_view ts, std::string_view sub) {
    return jackson_line({jackson_record(data, key, seq, ts, sub)});
  };
  const std::vector<std::string> lines = {
      // Field orders.
      R"({"records":[],"action":"processRecords","millisBehindLatest":0})",
      R"({"action":"processRecords","millisBehindLatest":0,"records":[]})",
      jackson_line({R"({"partitionKey":"cat","data":"bWVvdw==","sequenceNumber":"1","approximateArrivalTimestamp":1,"subSequenceNumber":0,"action":"record"})"}),
      jackson_line({R"({"action":"record","data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1","approximateArrivalTimestamp":1,"subSequenceNumber":0})"}),
      jackson_line({R"({"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1","subSequenceNumber":0,"approximateArrivalTimestamp":1,"action":"record"})"}),
      // Missing and extra fields (legacy daemons, future ones).
      R"({"action":"processRecords","records":[]})",
      jackson_line({R"({"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1","approximateArrivalTimestamp":1,"action":"record"})"}),
      jackson_line({R"({"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1"})"}),
      jackson_line({R"({"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1","approximateArrivalTimestamp":1,"subSequenceNumber":0})"}),
      jackson_line({R"({"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1","approximateArrivalTimestamp":1,"subSequenceNumber":0,"action":"record","x":1})"}),
      jackson_line({R"({"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"1","approximateArrivalTimestamp":1,"subSequenceNumber":0,"action":"other"})"}),
      jackson_line({kRec}, R"(0,"shardEnd":true)"),
      R"({"action":"processRecords","records":[],"records":[],"millisBehindLatest":0})",
      // Escapes: in data (the "\/" some writers use), keys, sequence numbers.
      rec(R"("\/w==")", R"("k")", "1", "0"),
      rec(R"("YW\u0042j")", R"("k")", "1", "0"),
      rec(R"("YQ==")", R"("caf\u00e9")", "1", "0"),
      rec(R"("YQ==")", R"("a\"b")", "1", "0"),
      rec(R"("YQ==")", R"("a\\b")", "1", "0"),
      rec(R"("YQ==")", R"("\ud83d\ude00")", "1", "0"),
      jackson_line({jackson_record(R"("YQ==")", R"("k")", R"("4\u0035")", "1", "0")}),
      jackson_line({jackson_record(R"("YQ==")", R"("k")", "45", "1", "0")}),  // numeric sequence number
      // Timestamps: objects (KCL 2.0.x), doubles, strings, out of range, "-0", leading zeros.
      rec(R"("YQ==")", R"("k")", R"({"epochSecond":1476889707,"nano":123456789})", "0"),
      rec(R"("YQ==")", R"("k")", "1476889707000.0", "0"),
      rec(R"("YQ==")", R"("k")", "1.476889707E12", "0"),
      rec(R"("YQ==")", R"("k")", "1e3", "0"),
      rec(R"("YQ==")", R"("k")", R"("1476889707000")", "0"),
      rec(R"("YQ==")", R"("k")", "9000000000001", "0"),
      rec(R"("YQ==")", R"("k")", "-9000000000001", "0"),
      rec(R"("YQ==")", R"("k")", "-0", "0"),
      rec(R"("YQ==")", R"("k")", "01", "0"),
      rec(R"("YQ==")", R"("k")", "true", "0"),
      // Sub-sequence numbers and millisBehindLatest beyond the plain integers.
      rec(R"("YQ==")", R"("k")", "1", R"("5")"),
      rec(R"("YQ==")", R"("k")", "1", "-0"),
      rec(R"("YQ==")", R"("k")", "1", "1.0"),
      rec(R"("YQ==")", R"("k")", "1", "9223372036854775807"),
      rec(R"("YQ==")", R"("k")", "1", "9223372036854775808"),
      rec(R"("YQ==")", R"("k")", "1", "-9223372036854775808"),
      rec(R"("YQ==")", R"("k")", "1", "00"),
      jackson_line({kRec}, "1234567890123456789"),
      jackson_line({kRec}, R"("5")"),
      jackson_line({kRec}, "1.5"),
      jackson_line({kRec}, "-"),
      jackson_line({kRec}, ""),
      // Bad records: base64, sequence numbers, types, text.
      rec(R"("bWVvdw=")", R"("k")", "1", "0"),
      rec(R"("!!!!")", R"("k")", "1", "0"),
      rec(R"("YQ=\u003d")", R"("k")", "1", "0"),
      rec("5", R"("k")", "1", "0"),
      rec(R"("YQ==")", "null", "1", "0"),
      rec(R"("YQ==")", "7", "1", "0"),
      jackson_line({jackson_record(R"("YQ==")", R"("k")", R"("")", "1", "0")}),
      jackson_line({jackson_record(R"("YQ==")", R"("k")", R"("12a")", "1", "0")}),
      jackson_line({jackson_record(R"("YQ==")", R"("k")", "\"" + std::string(130, '9') + "\"", "1", "0")}),
      jackson_line({jackson_record(R"("YQ==")", R"("k")", "null", "1", "0")}),
      rec(R"("YQ==")", "\"a\tb\"", "1", "0"),
      rec(R"("YQ==")", std::string("\"a\0b\"", 5), "1", "0"),
      rec(R"("YQ==")", "\"\xff\"", "1", "0"),
      rec(R"("YQ==")", "\"\xc3\"", "1", "0"),
      rec(R"("YQ==")", "\"\xed\xa0\x80\"", "1", "0"),  // an encoded surrogate
      rec(R"("YQ==")", "\"\xc0\xaf\"", "1", "0"),      // overlong
      rec("\"YQ\xc3\xa9=\"", R"("k")", "1", "0"),      // non-ASCII (valid UTF-8) in data
      rec("\"YQ\xff=\"", R"("k")", "1", "0"),          // invalid UTF-8 in data
      // Whitespace, and bytes after the object.
      " " + jackson_line({kRec}),
      jackson_line({kRec}) + " ",
      jackson_line({kRec}) + " \r",
      jackson_line({kRec}) + "x",
      jackson_line({kRec}) + "}",
      R"({"action": "processRecords","records":[],"millisBehindLatest":0})",
      R"({"action":"processRecords","records":[ ],"millisBehindLatest":0})",
      jackson_line({R"({"data" : "YQ==","partitionKey":"k","sequenceNumber":"1","approximateArrivalTimestamp":1,"subSequenceNumber":0,"action":"record"})"}),
      jackson_line({kRec, " " + kRec}),
      jackson_line({kRec + " "}),
      // Broken structure.
      R"({"action":"processRecords","records":[,],"millisBehindLatest":0})",
      jackson_line({kRec, ""}),
      jackson_line({kRec}).substr(0, 60),
      jackson_line({kRec}).substr(0, jackson_line({kRec}).size() - 1),
      R"({"action":"processRecords","records":null,"millisBehindLatest":0})",
      R"({"action":"processRecords","records":[1],"millisBehindLatest":0})",
  };
  for (const std::string& line : lines) {
    EXPECT_FALSE(check(line)) << line;
  }
}

TEST_F(FastPathTest, ReusesOneBatchAcrossLinesOfEverySize) {
  // decode() on one decoder and one batch, as kcl::run does: records are overwritten in
  // place, extra ones come from and go back to the decoder's spares. Each result must match
  // a fresh general decode, whichever path the previous line took.
  Decoder decoder;
  Message message;
  RecordBatch batch;
  std::string padded;
  std::mt19937_64 rng(11);
  for (const int n : {3, 1, 5, 0, 4, 4, 2, 6, 1}) {
    std::vector<std::string> records;
    for (int i = 0; i < n; ++i) {
      std::string b64;
      base64_encode(std::string(static_cast<std::size_t>(rng() % 90), static_cast<char>('a' + i)), b64);
      const bool has_ts = rng() % 2 == 0;
      records.push_back(jackson_record(rng() % 7 == 0 ? "null" : "\"" + b64 + "\"", "\"pk" + std::to_string(i) + "\"",
                                       "\"" + std::to_string(1000 + i) + "\"", has_ts ? std::to_string(rng() % 100000) : "null",
                                       std::to_string(i)));
    }
    std::string line = jackson_line(records, n % 2 == 0 ? "null" : std::to_string(n));
    if (n == 4 && rng() % 2 == 0) line.insert(1, " ");  // sometimes the general path
    padded.assign(line);
    padded.append(decode_padding, '\0');
    const std::string_view view(padded.data(), line.size());
    decoder.decode(view, message, batch);

    Outcome reused{true, {}, message, batch};
    Outcome fresh;
    Decoder general;
    general.decode_general(view, fresh.message, fresh.batch);
    fresh.ok = true;
    expect_same(reused, fresh, line);
  }
}

TEST_F(FastPathTest, MutatedJacksonLinesDecodeAlikeOnBothPaths) {
  // Single-byte edits of Jackson lines: whatever the fast path still takes must decode as
  // the general path decodes it, and lines it leaves must decode as before.
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  const std::string base = jackson_line(
      {kRec, jackson_record("null", "\"caf\xc3\xa9\"", R"("12")", "null", "3"),
       jackson_record(R"("YWJjZA==")", R"("k")", R"("13")", "-5", "null")},
      "1000");
  ASSERT_TRUE(check(base));
  const std::string_view interesting = "\"\\{}[],:0123456789-.eE nul\xc3\xa9\xff\x01=AZ+/";
  int taken = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string line = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !line.empty(); ++e) {
      const std::size_t pos = rng() % line.size();
      const char c = rng() % 4 == 0 ? static_cast<char>(rng() & 0xFF) : interesting[rng() % interesting.size()];
      switch (rng() % 3) {
        case 0: line[pos] = c; break;
        case 1: line.insert(pos, 1, c); break;
        default: line.erase(pos, 1); break;
      }
    }
    if (check(line)) ++taken;
    if (HasFailure()) break;
  }
  std::cout << "[ FastPathTest.MutatedJacksonLinesDecodeAlikeOnBothPaths ] fast path took " << taken
            << " of 3000 mutated lines\n";
}

}  // namespace
}  // namespace kclpp::kcl::detail
