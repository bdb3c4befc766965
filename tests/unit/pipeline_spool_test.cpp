// The tritond wire (docs/triton.md §7) and the PutRecords request splitting shared by the
// producer and the spool daemon. No network.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kclpp/pipeline/spool.hpp"
#include "spool_wire.hpp"

namespace aws = kclpp::aws;

namespace {

using aws::PutRecordsEntry;
using namespace kclpp::pipeline;
using namespace kclpp::pipeline::detail;

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// struct.pack('!B64p64p', 4, b'user_events', b'user-42').hex() under /usr/bin/python3.
constexpr std::string_view python_header_hex =
    "040b757365725f6576656e7473000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000007757365722d343200000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

TEST(SpoolWire, BinaryHeaderIsPyTritonsStructBytes) {
  std::string header;
  ASSERT_TRUE(append_binary_header("user_events", "user-42", header));
  EXPECT_EQ(header.size(), 129u);
  EXPECT_EQ(header, from_hex(python_header_hex));
}

TEST(SpoolWire, BinaryHeaderDecodes) {
  std::string error;
  const auto h = decode_header(from_hex(python_header_hex), error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->stream_name, "user_events");
  EXPECT_EQ(h->partition_key, "user-42");
}

TEST(SpoolWire, BinaryHeaderFieldsOf63BytesFitAnd64DoNot) {
  const std::string s63(63, 's');
  const std::string k63(63, 'k');
  std::string header;
  ASSERT_TRUE(append_binary_header(s63, k63, header));
  ASSERT_EQ(header.size(), 129u);
  std::string error;
  const auto h = decode_header(header, error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->stream_name, s63);
  EXPECT_EQ(h->partition_key, k63);
  std::string refused;
  EXPECT_FALSE(append_binary_header(std::string(64, 's'), "k", refused));
  EXPECT_FALSE(append_binary_header("s", std::string(64, 'k'), refused));
  EXPECT_TRUE(refused.empty());
}

TEST(SpoolWire, BinaryLengthByteOver63IsClampedLikePythonStruct) {
  // struct.unpack('!B64p64p', ...) reads a length byte of 200 as 63 bytes.
  std::string header(129, '\0');
  header[0] = 4;
  header[1] = static_cast<char>(200);
  for (int i = 2; i < 65; ++i) header[static_cast<std::size_t>(i)] = 'a';
  header[65] = 1;
  header[66] = 'k';
  std::string error;
  const auto h = decode_header(header, error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->stream_name, std::string(63, 'a'));
  EXPECT_EQ(h->partition_key, "k");
}

TEST(SpoolWire, JsonHeaderRoundTripsWithEscapes) {
  std::string header;
  append_json_header("events", "key \"quoted\" \\ \x01 é", header);
  EXPECT_EQ(header.front(), '{');
  EXPECT_NE(header.find("\"stream_name\":\"events\""), std::string::npos) << header;
  std::string error;
  const auto h = decode_header(header, error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->stream_name, "events");
  EXPECT_EQ(h->partition_key, "key \"quoted\" \\ \x01 é");
}

TEST(SpoolWire, JsonHeaderAsTheGoClientWritesIt) {
  std::string error;
  const auto h = decode_header(R"({"partition_key":"p1","stream_name":"s","extra":1})", error);
  ASSERT_TRUE(h) << error;
  EXPECT_EQ(h->stream_name, "s");
  EXPECT_EQ(h->partition_key, "p1");
}

TEST(SpoolWire, MalformedHeadersAreRejectedWithAReason) {
  std::string full;
  ASSERT_TRUE(append_binary_header("s", "k", full));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {full.substr(0, 128), "128 bytes"},
      {full + "x", "130 bytes"},
      {std::string("\x05") + full.substr(1), "version 5"},
      {"stream_name", "first byte 's'"},
      {"{not json", "invalid JSON"},
      {"{\"stream_name\":\"s\"}", "no partition_key"},
      {"{\"stream_name\":\"s\",\"partition_key\":7}", "numeric key"},
      {"{\"stream_name\":null,\"partition_key\":\"k\"}", "null stream"},
      {"{\"stream_name\":\"\",\"partition_key\":\"k\"}", "empty stream"},
      {std::string(1, '\x04') + std::string(128, '\0'), "binary, empty stream"},
  };
  for (const auto& [frame, what] : cases) {
    std::string error;
    EXPECT_FALSE(decode_header(frame, error)) << what;
    EXPECT_FALSE(error.empty()) << what;
  }
}

TEST(SpoolWire, PartitionKeyLimitsCountCharactersNotBytes) {
  EXPECT_FALSE(partition_key_problem("").empty());
  EXPECT_TRUE(partition_key_problem(std::string(256, 'k')).empty());
  EXPECT_FALSE(partition_key_problem(std::string(257, 'k')).empty());
  std::string two_byte;
  for (int i = 0; i < 256; ++i) two_byte += "é";  // 512 bytes, 256 characters
  EXPECT_TRUE(partition_key_problem(two_byte).empty());
}

std::vector<aws::PutRecordsEntry> entries(std::size_t n, std::size_t data_size, std::size_t key_size = 4) {
  return std::vector<aws::PutRecordsEntry>(n, aws::PutRecordsEntry{std::string(data_size, 'd'), std::string(key_size, 'k'), {}});
}

TEST(SpoolWire, RequestsHoldAtMost500Records) {
  const auto e = entries(1001, 10);
  const auto ranges = split_requests(e);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], std::make_pair(std::size_t{0}, std::size_t{500}));
  EXPECT_EQ(ranges[1], std::make_pair(std::size_t{500}, std::size_t{1000}));
  EXPECT_EQ(ranges[2], std::make_pair(std::size_t{1000}, std::size_t{1001}));
  EXPECT_EQ(split_requests(entries(500, 10)).size(), 1u);
  EXPECT_TRUE(split_requests({}).empty());
}

TEST(SpoolWire, RequestsHoldAtMost5MiBOfDataAndKeys) {
  // Five records of exactly 1 MiB (data + key) fill one request; a sixth starts the next.
  auto e = entries(6, (1u << 20) - 4, 4);
  auto ranges = split_requests(e);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].second, 5u);
  EXPECT_EQ(ranges[1], std::make_pair(std::size_t{5}, std::size_t{6}));
  // One byte more of key in the fifth record pushes it into the second request.
  e[4].partition_key += "k";
  ranges = split_requests(e);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].second, 4u);
}

TEST(SpoolWire, LogLimiterLetsOneLineThroughPerPeriodWithTheCount) {
  LogLimiter limiter(std::chrono::hours(1));
  EXPECT_EQ(limiter.allow(), 1u);
  EXPECT_EQ(limiter.allow(), 0u);
  EXPECT_EQ(limiter.allow(), 0u);
  LogLimiter fast(std::chrono::milliseconds(0));
  EXPECT_EQ(fast.allow(), 1u);
  EXPECT_EQ(fast.allow(), 1u);
}

TEST(SpoolEndpoint, DefaultsAndTritonEnvironment) {
  ::unsetenv("TRITON_ZMQ_HOST");
  ::unsetenv("TRITON_ZMQ_PORT");
  EXPECT_EQ(default_spool_endpoint(), "tcp://127.0.0.1:3515");
  ::setenv("TRITON_ZMQ_HOST", "10.1.2.3", 1);
  ::setenv("TRITON_ZMQ_PORT", "4000", 1);
  EXPECT_EQ(default_spool_endpoint(), "tcp://10.1.2.3:4000");
  ::unsetenv("TRITON_ZMQ_HOST");
  ::unsetenv("TRITON_ZMQ_PORT");
}

TEST(SpoolClient, RefusesFieldsTheBinaryHeaderCannotCarryAndCountsThem) {
  // Nothing listens there: ZeroMQ queues (connect is asynchronous), send() never blocks.
  SpoolClientOptions options;
  options.endpoint = "tcp://127.0.0.1:1";
  options.header = HeaderFormat::Binary;
  options.linger = std::chrono::milliseconds(0);
  SpoolClient client(options);
  EXPECT_TRUE(client.send("events", "key", "\x80"));
  EXPECT_FALSE(client.send(std::string(64, 's'), "key", "\x80"));
  EXPECT_FALSE(client.send("events", std::string(64, 'k'), "\x80"));
  EXPECT_FALSE(client.send("events", "", "\x80"));
  EXPECT_FALSE(client.send("events", "key", std::string(1u << 20, 'x')));  // over 1 MiB with its key
  EXPECT_EQ(client.dropped(), 4u);
  EXPECT_EQ(client.sent(), 1u);
  client.close();
  EXPECT_FALSE(client.send("events", "key", "\x80"));  // closed
  EXPECT_EQ(client.dropped(), 5u);
}

TEST(SpoolClient, FullQueueIsADropNotAWait) {
  SpoolClientOptions options;
  options.endpoint = "tcp://127.0.0.1:1";  // never answers: ZeroMQ's queue fills too
  options.high_water_mark = 8;
  options.linger = std::chrono::milliseconds(0);
  SpoolClient client(options);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t accepted = 0;
  for (int i = 0; i < 1000; ++i) {
    if (client.send("events", "key", "\x80")) ++accepted;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_GT(client.dropped(), 900u);
  EXPECT_EQ(accepted + client.dropped(), 1000u);
  client.close();
}

TEST(SpoolClient, MalformedEndpointThrowsTransportError) {
  SpoolClientOptions options;
  options.endpoint = "not-an-endpoint";
  EXPECT_THROW(SpoolClient{options}, kclpp::TransportError);
}

}  // namespace
