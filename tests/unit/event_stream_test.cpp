// The event-stream decoder (aws/src/event_stream.cpp) and the SubscribeToShardEvent parser
// (aws/src/kinesis_json.cpp): round trips through our encoder, frames built by hand for
// every header type and every corruption, pieces of every size, and frames kinesis-local
// 0.6.2 encoded (tests/data/event_stream, captured by its capture.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../test_files.hpp"
#include "../test_seed.hpp"
#include "event_stream.hpp"
#include "kclpp/processor/error.hpp"
#include "kinesis_json.hpp"

namespace kclpp::aws::detail {
namespace {

const std::string data_dir = std::string(KCLPP_SOURCE_DIR) + "/tests/data/event_stream/";

std::string be(std::uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return out;
}

// A prelude claiming `total` and `headers` bytes, with a correct prelude CRC.
std::string prelude(std::uint32_t total, std::uint32_t headers) {
  std::string p = be(total, 4) + be(headers, 4);
  return p + be(crc32(p), 4);
}

// A whole message around a hand-made headers block, both CRCs correct.
std::string frame(std::string_view headers_block, std::string_view payload) {
  std::string m = prelude(static_cast<std::uint32_t>(12 + headers_block.size() + payload.size() + 4),
                          static_cast<std::uint32_t>(headers_block.size()));
  m.append(headers_block);
  m.append(payload);
  return m + be(crc32(m), 4);
}

// One header: name length, name, type, then the value bytes as given.
std::string header(std::string_view name, std::uint8_t type, std::string_view value_bytes) {
  return std::string(1, static_cast<char>(name.size())) + std::string(name) + std::string(1, static_cast<char>(type)) +
         std::string(value_bytes);
}

std::string string_header(std::string_view name, std::string_view value) {
  return header(name, 7, be(value.size(), 2) + std::string(value));
}

// Decodes `bytes` fed in pieces of `piece` bytes (0: all at once), taking messages after
// every piece.
std::vector<EventStreamMessage> decode(std::string_view bytes, std::size_t piece = 0) {
  EventStreamDecoder decoder;
  std::vector<EventStreamMessage> out;
  EventStreamMessage m;
  if (piece == 0) piece = std::max<std::size_t>(bytes.size(), 1);
  for (std::size_t pos = 0; pos < bytes.size(); pos += piece) {
    decoder.feed(bytes.substr(pos, piece));
    // Moved, not copied: a copy would lose the payload's spare capacity (the JSON padding).
    while (decoder.next(m)) out.push_back(std::move(m));
  }
  EXPECT_EQ(decoder.buffered(), 0u) << "bytes left over after the last message";
  return out;
}

bool same(const EventStreamMessage& a, const EventStreamMessage& b) {
  if (a.payload != b.payload || a.headers.size() != b.headers.size()) return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    const auto& x = a.headers[i];
    const auto& y = b.headers[i];
    if (x.name != y.name || x.type != y.type || x.value != y.value) return false;
  }
  return true;
}

// The ProtocolError the bytes make the decoder throw ("" when none), checking that the
// decoder stays failed afterwards.
std::string error_of(std::string_view bytes) {
  EventStreamDecoder decoder;
  EventStreamMessage m;
  try {
    decoder.feed(bytes);
    while (decoder.next(m)) {
    }
    return "";
  } catch (const ProtocolError& e) {
    EXPECT_THROW(decoder.feed(frame("", "fine")), ProtocolError) << "a failed decoder took more bytes";
    EXPECT_THROW((void)decoder.next(m), ProtocolError) << "a failed decoder returned a message";
    return e.what();
  }
}

TEST(EventStream, Crc32IsTheIeeeOne) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32("56789", crc32("1234")), 0xCBF43926u);  // continued
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("", 0x1234u), 0x1234u);
}

TEST(EventStream, RoundTripThroughTheEncoder) {
  const std::string payload = R"({"Records":[],"ContinuationSequenceNumber":"1","MillisBehindLatest":0})";
  const std::string bytes = encode_event_stream_message(
      {{":message-type", "event"}, {":event-type", "SubscribeToShardEvent"}, {":content-type", "application/json"}},
      payload);
  // 12 prelude + 3 headers of (1 + name + 1 + 2 + value) + payload + 4.
  EXPECT_EQ(bytes.size(), 12u + (4 + 13 + 5) + (4 + 11 + 21) + (4 + 13 + 16) + payload.size() + 4);
  const auto messages = decode(bytes);
  ASSERT_EQ(messages.size(), 1u);
  const EventStreamMessage& m = messages[0];
  EXPECT_EQ(m.payload, payload);
  ASSERT_EQ(m.headers.size(), 3u);
  EXPECT_EQ(m.headers[1].name, ":event-type");
  EXPECT_EQ(m.headers[1].type, 7);
  EXPECT_EQ(m.header(":message-type"), "event");
  EXPECT_EQ(m.header(":event-type"), "SubscribeToShardEvent");
  EXPECT_EQ(m.header(":content-type"), "application/json");
  EXPECT_EQ(m.header(":absent"), "");

  // No headers, no payload: the smallest message, 16 bytes.
  const std::string empty = encode_event_stream_message({}, "");
  EXPECT_EQ(empty.size(), 16u);
  const auto none = decode(empty);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(none[0].headers.empty());
  EXPECT_TRUE(none[0].payload.empty());

  EXPECT_THROW((void)encode_event_stream_message({{std::string(256, 'n'), "v"}}, ""), ProtocolError);
  EXPECT_THROW((void)encode_event_stream_message({{"n", std::string(65536, 'v')}}, ""), ProtocolError);
}

TEST(EventStream, DecodesEveryHeaderType) {
  const std::string uuid("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
  const std::string block =
      header("t", 0, "") + header("f", 1, "") + header("byte", 2, be(static_cast<std::uint8_t>(-5), 1)) +
      header("short", 3, be(static_cast<std::uint16_t>(-300), 2)) +
      header("int", 4, be(static_cast<std::uint32_t>(-70000), 4)) +
      header("long", 5, be(static_cast<std::uint64_t>(-5'000'000'000'000), 8)) +
      header("bytes", 6, be(4, 2) + std::string("\x00\x01\xff\x7f", 4)) + string_header("string", "text é") +
      header("time", 8, be(1'700'000'000'123, 8)) + header("uuid", 9, uuid) + header("max", 5, be(INT64_MAX, 8));
  const auto messages = decode(frame(block, "p"));
  ASSERT_EQ(messages.size(), 1u);
  const EventStreamMessage& m = messages[0];
  ASSERT_EQ(m.headers.size(), 11u);
  EXPECT_EQ(m.header("t"), "true");
  EXPECT_EQ(m.header("f"), "false");
  EXPECT_EQ(m.header("byte"), "-5");
  EXPECT_EQ(m.header("short"), "-300");
  EXPECT_EQ(m.header("int"), "-70000");
  EXPECT_EQ(m.header("long"), "-5000000000000");
  EXPECT_EQ(m.header("bytes"), std::string_view("\x00\x01\xff\x7f", 4));
  EXPECT_EQ(m.header("string"), "text é");
  EXPECT_EQ(m.header("time"), "1700000000123");
  EXPECT_EQ(m.header("uuid"), uuid);
  EXPECT_EQ(m.header("max"), "9223372036854775807");
  for (std::uint8_t type = 0; type < 10; ++type) EXPECT_EQ(m.headers[type].type, type);
  EXPECT_EQ(m.payload, "p");
}

// Our encoder's messages, hand-built ones and kinesis-local's, in one stream.
std::string mixed_stream() {
  std::string bytes = test::read_file(data_dir + "kinesis_local_events.bin");
  bytes += encode_event_stream_message({{":message-type", "event"}, {":event-type", "initial-response"}}, "{}");
  bytes += frame(header("n", 4, be(7, 4)), "");
  bytes += encode_event_stream_message({}, std::string(40'000, 'x'));  // over two 16 KiB pieces
  bytes += test::read_file(data_dir + "kinesis_local_in_use.bin");
  return bytes;
}

TEST(EventStream, PiecesOfAnySizeDecodeAsOneFeed) {
  const std::string bytes = mixed_stream();
  const auto whole = decode(bytes);
  ASSERT_EQ(whole.size(), 6u);
  for (const std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{12}, std::size_t{13},
                                  std::size_t{16'384}}) {
    const auto pieces = decode(bytes, piece);
    ASSERT_EQ(pieces.size(), whole.size()) << "pieces of " << piece;
    for (std::size_t i = 0; i < whole.size(); ++i) EXPECT_TRUE(same(pieces[i], whole[i])) << piece << ", " << i;
  }

  // Random cuts, messages taken at random moments (several complete ones queue up).
  const test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  for (int round = 0; round < 50; ++round) {
    EventStreamDecoder decoder;
    std::vector<EventStreamMessage> got;
    EventStreamMessage m;
    std::size_t fed = 0;
    while (fed < bytes.size()) {
      const std::size_t n = std::min<std::size_t>(bytes.size() - fed, rng() % 3000 + 1);
      decoder.feed(std::string_view(bytes).substr(fed, n));
      fed += n;
      while (rng() % 2 == 0 && decoder.next(m)) got.push_back(m);
    }
    while (decoder.next(m)) got.push_back(m);
    EXPECT_EQ(decoder.buffered(), 0u);
    ASSERT_EQ(got.size(), whole.size());
    for (std::size_t i = 0; i < whole.size(); ++i) EXPECT_TRUE(same(got[i], whole[i])) << i;
  }
}

TEST(EventStream, BufferedCountsWhatIsNotYetReturned) {
  const std::string a = encode_event_stream_message({{":message-type", "event"}}, "first");
  const std::string b = encode_event_stream_message({}, std::string(1000, 'b'));
  EventStreamDecoder decoder;
  EventStreamMessage m;
  decoder.feed(a + b.substr(0, 100));  // two messages, the second incomplete
  EXPECT_EQ(decoder.buffered(), a.size() + 100);
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, "first");
  EXPECT_EQ(decoder.buffered(), 100u);
  EXPECT_FALSE(decoder.next(m));
  decoder.feed(b.substr(100));
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, std::string(1000, 'b'));
  EXPECT_TRUE(m.headers.empty());  // the first message's header is gone from the reused `m`
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_FALSE(decoder.next(m));
}

TEST(EventStream, TwoMessagesInOneFeed) {
  const std::string bytes = encode_event_stream_message({{"k", "1"}}, "one") +
                            encode_event_stream_message({{"k", "2"}, {"x", "y"}}, "two");
  EventStreamDecoder decoder;
  decoder.feed(bytes);
  EventStreamMessage m;
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, "one");
  EXPECT_EQ(m.header("k"), "1");
  EXPECT_EQ(m.headers.size(), 1u);
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, "two");
  EXPECT_EQ(m.header("k"), "2");
  EXPECT_EQ(m.header("x"), "y");
  EXPECT_FALSE(decoder.next(m));
}

TEST(EventStream, PayloadParsesInPlaceAndLargeOnesAreReservedOnce) {
  const std::string big(10'000'000, 'z');
  const std::string bytes = encode_event_stream_message({}, big);
  EventStreamDecoder decoder;
  EventStreamMessage m;
  for (std::size_t pos = 0; pos < bytes.size(); pos += 16'384) {
    decoder.feed(std::string_view(bytes).substr(pos, 16'384));
    EXPECT_EQ(decoder.buffered(), std::min(pos + 16'384, bytes.size()));
  }
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, big);
  // Reserved once at its size plus the JSON padding, not grown by doubling.
  EXPECT_GE(m.payload.capacity(), big.size() + json_padding);
  EXPECT_LT(m.payload.capacity(), big.size() + json_padding + 4096);
}

TEST(EventStream, EveryCorruptionIsATellingProtocolError) {
  const std::string good = encode_event_stream_message({{":message-type", "event"}}, R"({"a":1})");

  std::string bad_prelude = good;
  bad_prelude[3] = static_cast<char>(bad_prelude[3] ^ 0x01);
  EXPECT_NE(error_of(bad_prelude).find("prelude CRC mismatch"), std::string::npos) << error_of(bad_prelude);

  std::string bad_payload = good;
  bad_payload[bad_payload.size() - 6] = 'X';
  EXPECT_NE(error_of(bad_payload).find("message CRC mismatch"), std::string::npos) << error_of(bad_payload);

  std::string bad_crc = good;
  bad_crc.back() = static_cast<char>(bad_crc.back() ^ 0x80);
  EXPECT_NE(error_of(bad_crc).find("message CRC mismatch"), std::string::npos);

  EXPECT_NE(error_of(prelude(15, 0)).find("message length 15 is less than the 16 bytes"), std::string::npos)
      << error_of(prelude(15, 0));
  const auto too_long = static_cast<std::uint32_t>(max_event_stream_message + 1);
  EXPECT_NE(error_of(prelude(too_long, 0)).find("exceeds the limit"), std::string::npos);
  EXPECT_NE(error_of(prelude(20, 5)).find("headers length 5 runs past the message of 20 bytes"), std::string::npos)
      << error_of(prelude(20, 5));

  // Header errors, in frames whose CRCs are right.
  EXPECT_NE(error_of(frame("\x05" "ab", "")).find("header 1 (name of 5 bytes and its type) runs past"),
            std::string::npos)
      << error_of(frame("\x05" "ab", ""));
  EXPECT_NE(error_of(frame(string_header("ok", "v") + "\x02" "ab", "")).find("header 2"), std::string::npos);
  const std::string long_value = header("name", 7, be(100, 2) + "abc");
  EXPECT_NE(error_of(frame(long_value, "")).find("the value of header 'name' (type 7, 102 bytes) runs past"),
            std::string::npos)
      << error_of(frame(long_value, ""));
  EXPECT_NE(error_of(frame(header("i", 4, "\x01\x02"), "")).find("header 'i' (type 4"), std::string::npos);
  EXPECT_NE(error_of(frame(header("odd", 10, "xyz"), "")).find("header 'odd' has the unknown value type 10"),
            std::string::npos)
      << error_of(frame(header("odd", 10, "xyz"), ""));
  // A name that is not text is not quoted as it is.
  EXPECT_NE(error_of(frame(header("a\nb", 200, ""), "")).find("header 'a?b' has the unknown"), std::string::npos);
  // Headers are judged only when the CRC vouches for them: damage is reported as damage.
  std::string damaged = frame(string_header("ok", "v"), "");
  damaged[13] = '\x7f';  // the name's first byte
  EXPECT_NE(error_of(damaged).find("message CRC mismatch"), std::string::npos) << error_of(damaged);

  for (const auto& e : {error_of(bad_prelude), error_of(prelude(15, 0))}) {
    EXPECT_EQ(e.rfind("event stream: ", 0), 0u) << e;
  }
  EXPECT_EQ(error_of(good), "");
}

TEST(EventStream, MessagesBeforeACorruptionStillComeOut) {
  std::string bad = encode_event_stream_message({}, "bad");
  bad[bad.size() - 5] = 'B';
  EventStreamDecoder decoder;
  EXPECT_THROW(decoder.feed(encode_event_stream_message({}, "one") + encode_event_stream_message({}, "two") + bad),
               ProtocolError);
  EventStreamMessage m;
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, "one");
  ASSERT_TRUE(decoder.next(m));
  EXPECT_EQ(m.payload, "two");
  try {
    (void)decoder.next(m);
    ADD_FAILURE() << "no error after the good messages";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("message CRC mismatch"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decoder.feed(encode_event_stream_message({}, "three")), ProtocolError);
}

// --- SubscribeToShard messages -----------------------------------------------------------

EventStreamMessage message(std::vector<std::pair<std::string, std::string>> headers, std::string_view payload) {
  const auto messages = decode(encode_event_stream_message(headers, payload));
  EXPECT_EQ(messages.size(), 1u);
  return messages.empty() ? EventStreamMessage{} : messages[0];
}

TEST(SubscribeMessages, AreClassifiedByTheirHeaders) {
  auto m = message({{":message-type", "event"}, {":event-type", "SubscribeToShardEvent"}}, "{}");
  auto c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Event);
  EXPECT_EQ(c.type, "SubscribeToShardEvent");
  EXPECT_EQ(c.message, "");

  m = message({{":event-type", "initial-response"}, {":message-type", "event"}}, "{}");
  c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::InitialResponse);
  EXPECT_EQ(c.type, "initial-response");

  m = message({{":message-type", "exception"}, {":exception-type", "InternalFailureException"}},
              R"({"Message":"try again"})");
  c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Exception);
  EXPECT_EQ(c.type, "InternalFailureException");
  EXPECT_EQ(c.message, "try again");

  m = message({{":message-type", "exception"}, {":exception-type", "KMSThrottlingException"}}, "not json");
  c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Exception);
  EXPECT_EQ(c.message, "not json");
  m = message({{":message-type", "exception"}, {":exception-type", "X"}}, std::string(5000, 'q'));
  EXPECT_EQ(classify_subscribe_message(m).message, std::string(1024, 'q') + "...");

  m = message({{":message-type", "error"}, {":error-code", "InternalError"}, {":error-message", "boom"}}, "");
  c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Error);
  EXPECT_EQ(c.type, "InternalError");
  EXPECT_EQ(c.message, "boom");

  m = message({{":message-type", "event"}, {":event-type", "SomethingNew"}}, "{}");
  c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Other);
  EXPECT_EQ(c.type, "SomethingNew");
  m = message({{":message-type", "ping"}}, "");
  c = classify_subscribe_message(m);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Other);
  EXPECT_EQ(c.type, "ping");
  c = classify_subscribe_message(EventStreamMessage{});
  EXPECT_EQ(c.kind, SubscribeMessageKind::Other);
  EXPECT_EQ(c.type, "");
}

constexpr const char* seq1 = "49680896604738443989320034385527733901082813435907932162";
constexpr const char* seq2 = "49680896604738443989320034385528942826902428133802115074";
constexpr const char* seq3 = "49680896604738443989320034385530151752722042831696297986";

TEST(SubscribeMessages, KinesisLocalEventsDecodeAndParse) {
  const auto messages = decode(test::read_file(data_dir + "kinesis_local_events.bin"), 7);
  ASSERT_EQ(messages.size(), 2u);
  ReplyParser parser;
  SubscribeToShardEvent event;
  for (const auto& m : messages) {
    const auto c = classify_subscribe_message(m);
    EXPECT_EQ(c.kind, SubscribeMessageKind::Event);
    EXPECT_EQ(m.header(":content-type"), "application/json");
    EXPECT_GE(m.payload.capacity(), m.payload.size() + json_padding);  // parses in place
  }

  parser.subscribe_event(messages[0].payload, event);
  ASSERT_EQ(event.records.size(), 3u);
  EXPECT_EQ(event.records[0].sequence_number.str(), seq1);
  EXPECT_EQ(event.records[0].partition_key, "alpha");
  EXPECT_EQ(event.records[0].data, "first record");
  ASSERT_TRUE(event.records[0].approximate_arrival_timestamp);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(
                event.records[0].approximate_arrival_timestamp->time_since_epoch())
                .count(),
            1796574767655);
  EXPECT_EQ(event.records[1].sequence_number.str(), seq2);
  EXPECT_EQ(event.records[1].partition_key, "ключ");
  EXPECT_EQ(event.records[1].data, std::string("\x00\x01\xff\xfe binary", 11));
  EXPECT_EQ(event.records[2].sequence_number.str(), seq3);
  EXPECT_EQ(event.records[2].data, R"({"json":"inside","n":3})");
  EXPECT_EQ(event.continuation_sequence_number, seq3);
  EXPECT_EQ(event.millis_behind_latest, 0);
  EXPECT_TRUE(event.child_shards.empty());  // kinesis-local writes null
  EXPECT_FALSE(event.shard_end());

  parser.subscribe_event(messages[1].payload, event);
  EXPECT_TRUE(event.records.empty());
  EXPECT_EQ(event.continuation_sequence_number, seq3);
}

TEST(SubscribeMessages, KinesisLocalExceptions) {
  const auto in_use = decode(test::read_file(data_dir + "kinesis_local_in_use.bin"), 1);
  ASSERT_EQ(in_use.size(), 1u);
  auto c = classify_subscribe_message(in_use[0]);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Exception);
  EXPECT_EQ(c.type, "ResourceInUseException");
  EXPECT_EQ(c.message.rfind("Another active subscription exists for consumer arn:aws:kinesis:", 0), 0u) << c.message;

  const auto gone = decode(test::read_file(data_dir + "kinesis_local_not_found.bin"));
  ASSERT_EQ(gone.size(), 1u);
  c = classify_subscribe_message(gone[0]);
  EXPECT_EQ(c.kind, SubscribeMessageKind::Exception);
  EXPECT_EQ(c.type, "ResourceNotFoundException");
  EXPECT_NE(c.message.find("cap-gone:1 not found"), std::string::npos) << c.message;
}

// --- the SubscribeToShardEvent parser ----------------------------------------------------

std::string padded(std::string_view json) {
  std::string s;
  s.reserve(json.size() + json_padding);
  s.assign(json);
  return s;
}

TEST(SubscribeEventJson, ShardEndWithChildShardsAndANullContinuation) {
  ReplyParser parser;
  SubscribeToShardEvent event;
  event.continuation_sequence_number = "stale";
  parser.subscribe_event(
      padded(R"({"Records":[{"SequenceNumber":"7","Data":"aGk=","PartitionKey":"k"}],)"
             R"("ContinuationSequenceNumber":null,"MillisBehindLatest":12,"ChildShards":[)"
             R"({"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000"],)"
             R"("HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"170141183460469231731687303715884105727"}},)"
             R"({"ShardId":"shardId-000000000003","ParentShards":["shardId-000000000000"],)"
             R"("HashKeyRange":{"StartingHashKey":"170141183460469231731687303715884105728",)"
             R"("EndingHashKey":"340282366920938463463374607431768211455"}}]})"),
      event);
  ASSERT_EQ(event.records.size(), 1u);
  EXPECT_EQ(event.records[0].data, "hi");
  EXPECT_TRUE(event.shard_end());
  EXPECT_EQ(event.continuation_sequence_number, "");
  EXPECT_EQ(event.millis_behind_latest, 12);
  ASSERT_EQ(event.child_shards.size(), 2u);
  EXPECT_EQ(event.child_shards[0].shard_id, "shardId-000000000002");
  EXPECT_EQ(event.child_shards[0].parent_shard_id, "shardId-000000000000");
  EXPECT_FALSE(event.child_shards[0].adjacent_parent_shard_id);
  EXPECT_EQ(event.child_shards[1].starting_hash_key, "170141183460469231731687303715884105728");
  EXPECT_EQ(event.child_shards[1].ending_hash_key, "340282366920938463463374607431768211455");

  // Absent continuation: also the end; the next event resets every field.
  parser.subscribe_event(padded(R"({"Records":[],"MillisBehindLatest":0})"), event);
  EXPECT_TRUE(event.shard_end());
  EXPECT_TRUE(event.child_shards.empty());
  EXPECT_TRUE(event.records.empty());
}

TEST(SubscribeEventJson, ReusesTheStorageOfTheRecordsAlreadyThere) {
  ReplyParser parser;
  SubscribeToShardEvent event;
  const std::string long_data(300, 'A');  // base64 of 225 bytes of 0x00
  parser.subscribe_event(padded(R"({"Records":[{"SequenceNumber":"1","Data":")" + long_data +
                                R"(","PartitionKey":"a"},{"SequenceNumber":"2","Data":"Yg==","PartitionKey":"b"}],)"
                                R"("ContinuationSequenceNumber":"2","MillisBehindLatest":5})"),
                         event);
  ASSERT_EQ(event.records.size(), 2u);
  EXPECT_EQ(event.records[0].data, std::string(225, '\0'));
  const Record* records = event.records.data();
  const char* data = event.records[0].data.data();

  parser.subscribe_event(padded(R"({"Records":[{"SequenceNumber":"3","Data":"Yw==","PartitionKey":"c"}],)"
                                R"("ContinuationSequenceNumber":"3","MillisBehindLatest":0})"),
                         event);
  ASSERT_EQ(event.records.size(), 1u);
  EXPECT_EQ(event.records.data(), records);       // the vector kept its storage
  EXPECT_EQ(event.records[0].data.data(), data);  // and so did the record's data
  EXPECT_EQ(event.records[0].data, "c");
  EXPECT_EQ(event.records[0].partition_key, "c");
  EXPECT_EQ(event.records[0].sequence_number.str(), "3");
  EXPECT_EQ(event.continuation_sequence_number, "3");
  EXPECT_EQ(event.millis_behind_latest, 0);
}

TEST(SubscribeEventJson, RejectsWhatIsNotAnEvent) {
  ReplyParser parser;
  SubscribeToShardEvent event;
  for (const char* bad : {"", "[]", "{", R"({"Records":{}})", R"({"Records":[{"Data":"AA=="}]})",
                          R"({"ContinuationSequenceNumber":5})", R"({"MillisBehindLatest":"x"})",
                          R"({"ChildShards":[{"ParentShards":[]}]})", R"({"Records":[1]})"}) {
    EXPECT_THROW(parser.subscribe_event(padded(bad), event), ProtocolError) << bad;
  }
}

}  // namespace
}  // namespace kclpp::aws::detail
