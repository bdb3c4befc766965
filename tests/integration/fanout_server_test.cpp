// The fault-injecting fan-out server (tests/node/fanout_server.js) checked on its own,
// before kclpp's subscriber relies on it: the consumer calls in AWS's shapes, SubscribeToShard
// streaming event-stream frames over HTTP/2 with prior knowledge, the fault rules, and
// SHARD_END with ChildShards after a split. Requests are made by hand with libcurl and the
// frames read by a small reader here (CRCs by zlib), independent of kclpp's decoder.
#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fanout_server_fixture.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/processor/base64.hpp"

namespace kclpp::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// --- one Kinesis call by hand -------------------------------------------------------------

enum class Http { V1_1, V2PriorKnowledge };

struct RawReply {
  CURLcode code = CURLE_OK;
  long status = 0;
  long http_version = 0;  // CURL_HTTP_VERSION_1_1 / CURL_HTTP_VERSION_2_0
  std::string content_type;
  std::string body;
  [[nodiscard]] json body_json() const { return json::parse(body, nullptr, false); }
};

size_t append_body(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// POSTs `body` as Kinesis_20131202.`operation` with a Kinesis-shaped (unverified) signature.
RawReply kinesis_call(const std::string& endpoint, const std::string& operation, const json& body, Http http,
                      std::chrono::milliseconds timeout = 10s) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, &curl_slist_free_all);
  const std::vector<std::string> lines{
      "Content-Type: application/x-amz-json-1.1", "X-Amz-Target: Kinesis_20131202." + operation,
      "X-Amz-Date: 20240101T000000Z",
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIDKCLPPTEST/20240101/us-east-1/kinesis/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=0"};
  for (const std::string& h : lines) {
    headers.reset(curl_slist_append(headers.release(), h.c_str()));
  }
  const std::string payload = body.dump();
  RawReply reply;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, endpoint.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                   http == Http::V2PriorKnowledge ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  reply.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &reply.http_version);
  const char* type = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != nullptr) reply.content_type = type;
  return reply;
}

RawReply subscribe(const FanOutServer& server, const std::string& consumer_arn, const std::string& shard_id,
                   const json& position) {
  return kinesis_call(server.endpoint(), "SubscribeToShard",
                      {{"ConsumerARN", consumer_arn}, {"ShardId", shard_id}, {"StartingPosition", position}},
                      Http::V2PriorKnowledge);
}

// --- a small event-stream reader ----------------------------------------------------------

struct Frame {
  std::map<std::string, std::string> headers;  // string headers (type 7) only
  std::string payload;
  bool prelude_crc_ok = false;
  bool message_crc_ok = false;
  [[nodiscard]] json payload_json() const { return json::parse(payload, nullptr, false); }
};

std::uint32_t be32(std::string_view b, std::size_t at) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(b[at])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 3]));
}

std::uint32_t zlib_crc(std::string_view b) {
  return static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
}

// The string headers of one message's header block; a failure for any other type.
std::map<std::string, std::string> read_headers(std::string_view block) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i < block.size()) {
    const std::size_t name_len = static_cast<unsigned char>(block[i]);
    if (i + 1 + name_len + 3 > block.size()) {
      ADD_FAILURE() << "a header runs past its block";
      break;
    }
    const std::string name(block.substr(i + 1, name_len));
    if (block[i + 1 + name_len] != 7) {
      ADD_FAILURE() << "header " << name << " has type " << int(block[i + 1 + name_len]) << ", not 7 (string)";
      break;
    }
    const std::size_t value_len = static_cast<unsigned char>(block[i + 2 + name_len]) * 256u +
                                  static_cast<unsigned char>(block[i + 3 + name_len]);
    out[name] = std::string(block.substr(i + 4 + name_len, value_len));
    i += 4 + name_len + value_len;
  }
  return out;
}

// Every message in `bytes`; trailing bytes that are not a whole message are a failure.
std::vector<Frame> read_frames(std::string_view bytes) {
  std::vector<Frame> frames;
  std::size_t at = 0;
  while (bytes.size() - at >= 16) {
    const std::uint32_t total = be32(bytes, at);
    const std::uint32_t headers_len = be32(bytes, at + 4);
    if (total < 16 || total > bytes.size() - at || headers_len > total - 16) break;
    const std::string_view m = bytes.substr(at, total);
    Frame f;
    f.prelude_crc_ok = zlib_crc(m.substr(0, 8)) == be32(m, 8);
    f.message_crc_ok = zlib_crc(m.substr(0, total - 4)) == be32(m, total - 4);
    f.headers = read_headers(m.substr(12, headers_len));
    f.payload = std::string(m.substr(12 + headers_len, total - 16 - headers_len));
    frames.push_back(std::move(f));
    at += total;
  }
  EXPECT_EQ(at, bytes.size()) << "bytes after the last whole message";
  return frames;
}

// --- helpers ------------------------------------------------------------------------------

FanOutServerOptions quick_options() {
  FanOutServerOptions o;
  o.activate = 100ms;
  o.heartbeat = 200ms;
  return o;
}

// Registers `name` on `stream_arn` and waits until it is ACTIVE: its ARN.
std::string active_consumer(const FanOutServer& server, const std::string& stream_arn, const std::string& name) {
  const RawReply reg = kinesis_call(server.endpoint(), "RegisterStreamConsumer",
                                    {{"StreamARN", stream_arn}, {"ConsumerName", name}}, Http::V1_1);
  EXPECT_EQ(reg.status, 200) << reg.body;
  const std::string arn = reg.body_json().value("/Consumer/ConsumerARN"_json_pointer, "");
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    const RawReply d = kinesis_call(server.endpoint(), "DescribeStreamConsumer", {{"ConsumerARN", arn}}, Http::V1_1);
    if (d.body_json().value("/ConsumerDescription/ConsumerStatus"_json_pointer, "") == "ACTIVE") return arn;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "consumer " << name << " never became ACTIVE";
  return arn;
}

std::string decoded(const json& record) {
  std::string out;
  EXPECT_TRUE(base64_decode(record.at("Data").get<std::string>(), out)) << record;
  return out;
}

const json trim_horizon = {{"Type", "TRIM_HORIZON"}};

// --- tests --------------------------------------------------------------------------------

TEST(FanOutServerTest, ConsumerCallsHaveTheAwsShapesOnBothProtocols) {
  FanOutServer server(quick_options());
  KCLPP_REQUIRE_SERVER(server);
  aws::KinesisClient client(server.client_options());  // forwarded to kinesalite
  client.create_stream("fan", 1);
  const std::string stream_arn = client.describe_stream_summary("fan").stream_arn;

  const RawReply reg = kinesis_call(server.endpoint(), "RegisterStreamConsumer",
                                    {{"StreamARN", stream_arn}, {"ConsumerName", "app"}}, Http::V2PriorKnowledge);
  ASSERT_EQ(reg.code, CURLE_OK);
  EXPECT_EQ(reg.http_version, CURL_HTTP_VERSION_2_0);
  ASSERT_EQ(reg.status, 200) << reg.body;
  const json consumer = reg.body_json().at("Consumer");
  const std::string arn = consumer.at("ConsumerARN");
  EXPECT_EQ(arn.rfind(stream_arn + "/consumer/app:", 0), 0u) << arn;
  EXPECT_EQ(consumer.at("ConsumerName"), "app");
  EXPECT_EQ(consumer.at("ConsumerStatus"), "CREATING");
  EXPECT_TRUE(consumer.at("ConsumerCreationTimestamp").is_number());

  const RawReply again = kinesis_call(server.endpoint(), "RegisterStreamConsumer",
                                      {{"StreamARN", stream_arn}, {"ConsumerName", "app"}}, Http::V1_1);
  EXPECT_EQ(again.http_version, CURL_HTTP_VERSION_1_1);
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.body_json().value("__type", ""), "ResourceInUseException") << again.body;

  EXPECT_EQ(active_consumer(server, stream_arn, "other").empty(), false);
  const RawReply by_name = kinesis_call(server.endpoint(), "DescribeStreamConsumer",
                                        {{"StreamARN", stream_arn}, {"ConsumerName", "app"}}, Http::V1_1);
  ASSERT_EQ(by_name.status, 200) << by_name.body;
  const json description = by_name.body_json().at("ConsumerDescription");
  EXPECT_EQ(description.at("ConsumerARN"), arn);
  EXPECT_EQ(description.at("StreamARN"), stream_arn);
  EXPECT_EQ(description.at("ConsumerStatus"), "ACTIVE");  // "other" waited longer than --activate-ms

  const json listed = kinesis_call(server.endpoint(), "ListStreamConsumers",
                                   {{"StreamARN", stream_arn}, {"MaxResults", 1}}, Http::V1_1).body_json();
  ASSERT_EQ(listed.at("Consumers").size(), 1u) << listed;
  ASSERT_TRUE(listed.contains("NextToken")) << listed;
  const json rest = kinesis_call(server.endpoint(), "ListStreamConsumers",
                                 {{"StreamARN", stream_arn}, {"NextToken", listed.at("NextToken")}}, Http::V1_1)
                        .body_json();
  ASSERT_EQ(rest.at("Consumers").size(), 1u) << rest;
  EXPECT_FALSE(rest.contains("NextToken"));
  EXPECT_NE(rest.at("Consumers")[0].at("ConsumerName"), listed.at("Consumers")[0].at("ConsumerName"));

  const RawReply missing = kinesis_call(server.endpoint(), "DescribeStreamConsumer",
                                        {{"ConsumerARN", stream_arn + "/consumer/nobody:1"}}, Http::V1_1);
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.body_json().value("__type", ""), "ResourceNotFoundException") << missing.body;
  const RawReply no_stream = kinesis_call(server.endpoint(), "RegisterStreamConsumer",
                                          {{"StreamARN", stream_arn + "-gone"}, {"ConsumerName", "app"}}, Http::V1_1);
  EXPECT_EQ(no_stream.body_json().value("__type", ""), "ResourceNotFoundException") << no_stream.body;

  const RawReply gone = kinesis_call(server.endpoint(), "DeregisterStreamConsumer", {{"ConsumerARN", arn}}, Http::V1_1);
  EXPECT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(kinesis_call(server.endpoint(), "DescribeStreamConsumer", {{"ConsumerARN", arn}}, Http::V1_1)
                .body_json()
                .value("/ConsumerDescription/ConsumerStatus"_json_pointer, ""),
            "DELETING");
}

TEST(FanOutServerTest, SubscribeStreamsTheRecordsAsEventStreamFrames) {
  FanOutServer server(quick_options());
  KCLPP_REQUIRE_SERVER(server);
  aws::KinesisClient client(server.client_options());
  client.create_stream("fan", 1);
  std::vector<std::string> sequence_numbers;
  for (int i = 0; i < 5; ++i) {
    sequence_numbers.push_back(client.put_record("fan", "record-" + std::to_string(i), "pk").sequence_number);
  }
  const std::string arn = active_consumer(server, client.describe_stream_summary("fan").stream_arn, "app");
  server.set_faults(json::parse(R"([{"rule":"initialResponse"}, {"rule":"recordsPerEvent","max":2},
                                    {"rule":"endAfterEvents","events":3}])"));

  const RawReply reply = subscribe(server, arn, "shardId-000000000000", trim_horizon);
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.http_version, CURL_HTTP_VERSION_2_0);
  EXPECT_EQ(reply.content_type, "application/vnd.amazon.eventstream");
  const std::vector<Frame> frames = read_frames(reply.body);
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].headers.at(":event-type"), "initial-response");
  EXPECT_EQ(frames[0].payload, "{}");
  std::size_t next = 0;
  const std::size_t per_event[] = {2, 2, 1};
  for (std::size_t f = 1; f < frames.size(); ++f) {
    SCOPED_TRACE("frame " + std::to_string(f));
    EXPECT_TRUE(frames[f].prelude_crc_ok && frames[f].message_crc_ok);
    EXPECT_EQ(frames[f].headers.at(":message-type"), "event");
    EXPECT_EQ(frames[f].headers.at(":event-type"), "SubscribeToShardEvent");
    EXPECT_EQ(frames[f].headers.at(":content-type"), "application/json");
    const json event = frames[f].payload_json();
    ASSERT_EQ(event.at("Records").size(), per_event[f - 1]) << event;
    for (const json& r : event.at("Records")) {
      EXPECT_EQ(decoded(r), "record-" + std::to_string(next));
      EXPECT_EQ(r.at("SequenceNumber"), sequence_numbers.at(next));
      EXPECT_EQ(r.at("PartitionKey"), "pk");
      EXPECT_TRUE(r.at("ApproximateArrivalTimestamp").is_number());
      ++next;
    }
    EXPECT_EQ(event.at("ContinuationSequenceNumber"), sequence_numbers.at(next - 1));
    EXPECT_TRUE(event.at("MillisBehindLatest").is_number());
    EXPECT_FALSE(event.contains("ChildShards"));
  }
  const json stat = server.stats().at("subscriptions").at(0);
  EXPECT_EQ(stat.at("position").at("type"), "TRIM_HORIZON");
  EXPECT_EQ(stat.at("events"), 3);
  EXPECT_EQ(stat.at("records"), 5);
  EXPECT_EQ(stat.at("bytes"), reply.body.size());
  EXPECT_EQ(stat.at("end"), "ended");

  // From the continuation: nothing is left, so the first event is an empty one, at once.
  server.set_faults(json::parse(R"({"rule":"endAfterEvents","events":1})"));
  const RawReply resumed = subscribe(server, arn, "shardId-000000000000",
                                     {{"Type", "AFTER_SEQUENCE_NUMBER"}, {"SequenceNumber", sequence_numbers.back()}});
  const std::vector<Frame> empty = read_frames(resumed.body);
  ASSERT_EQ(empty.size(), 1u) << resumed.body;
  EXPECT_EQ(empty[0].payload_json().at("Records").size(), 0u);
  EXPECT_EQ(empty[0].payload_json().at("ContinuationSequenceNumber"), sequence_numbers.back());
  EXPECT_GE(server.stats().at("sessions"), 2);
}

TEST(FanOutServerTest, RejectionsComeAs400WithTheErrorTypeBeforeAnyEvent) {
  FanOutServer server(quick_options());
  KCLPP_REQUIRE_SERVER(server);
  aws::KinesisClient client(server.client_options());
  client.create_stream("fan", 1);
  const std::string arn = active_consumer(server, client.describe_stream_summary("fan").stream_arn, "app");
  // The reject rule is taken alone: the end rule waits for the next subscription.
  server.set_faults(json::parse(R"([{"rule":"reject","type":"LimitExceededException","message":"slow down"},
                                    {"rule":"endAfterEvents","events":3}])"));

  const RawReply refused = subscribe(server, arn, "shardId-000000000000", trim_horizon);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.body_json().value("__type", ""), "LimitExceededException") << refused.body;
  EXPECT_EQ(refused.body_json().value("message", ""), "slow down");
  EXPECT_NE(refused.content_type, "application/vnd.amazon.eventstream");

  // While one subscription of this consumer and shard streams, a second is refused.
  RawReply first;
  std::thread streaming([&] { first = subscribe(server, arn, "shardId-000000000000", trim_horizon); });
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline &&
         server.stats().at("subscriptions").size() < 2u) {
    std::this_thread::sleep_for(10ms);
  }
  const RawReply second = subscribe(server, arn, "shardId-000000000000", trim_horizon);
  streaming.join();
  EXPECT_EQ(second.status, 400);
  EXPECT_EQ(second.body_json().value("__type", ""), "ResourceInUseException") << second.body;
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(read_frames(first.body).size(), 3u);

  const json subs = server.stats().at("subscriptions");
  ASSERT_EQ(subs.size(), 3u) << subs;
  EXPECT_EQ(subs[0].at("end"), "rejected");
  EXPECT_EQ(subs[0].at("detail"), "LimitExceededException");
  EXPECT_EQ(subs[1].at("end"), "ended");
  EXPECT_EQ(subs[2].at("detail"), "ResourceInUseException");

  const RawReply bad = subscribe(server, arn, "shardId-000000000000", {{"Type", "AT_SEQUENCE_NUMBER"}});
  EXPECT_EQ(bad.body_json().value("__type", ""), "InvalidArgumentException") << bad.body;
  const RawReply unknown = subscribe(server, arn, "shardId-000000000009", trim_horizon);
  EXPECT_EQ(unknown.body_json().value("__type", ""), "ResourceNotFoundException") << unknown.body;
  EXPECT_THROW(server.set_faults(json::parse(R"([{"rule":"endAfterEvent","events":1}])")), std::runtime_error);
}

TEST(FanOutServerTest, ShardEndAfterASplitListsTheChildShards) {
  FanOutServer server(quick_options());
  KCLPP_REQUIRE_SERVER(server);
  aws::KinesisClient client(server.client_options());
  client.create_stream("fan", 1);
  for (int i = 0; i < 3; ++i) (void)client.put_record("fan", "before-split-" + std::to_string(i), "pk");
  client.split_shard("fan", "shardId-000000000000", "170141183460469231731687303715884105728");
  std::vector<aws::Shard> children;
  const auto deadline = std::chrono::steady_clock::now() + 5s;  // the stream is UPDATING a moment
  while (children.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    children.clear();
    for (const auto& s : client.list_shards("fan")) {
      if (s.parent_shard_id == "shardId-000000000000") children.push_back(s);
    }
  }
  ASSERT_EQ(children.size(), 2u);
  const std::string arn = active_consumer(server, client.describe_stream_summary("fan").stream_arn, "app");

  // No rule: the server ends the stream itself at the end of the closed shard.
  const RawReply reply = subscribe(server, arn, "shardId-000000000000", trim_horizon);
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  const std::vector<Frame> frames = read_frames(reply.body);
  ASSERT_GE(frames.size(), 2u);
  std::size_t records = 0;
  for (std::size_t f = 0; f + 1 < frames.size(); ++f) {
    const json event = frames[f].payload_json();
    records += event.at("Records").size();
    EXPECT_TRUE(event.at("ContinuationSequenceNumber").is_string()) << event;
  }
  EXPECT_EQ(records, 3u);
  const json last = frames.back().payload_json();
  EXPECT_TRUE(last.at("ContinuationSequenceNumber").is_null()) << last;
  EXPECT_EQ(last.at("Records").size(), 0u);
  ASSERT_EQ(last.at("ChildShards").size(), 2u) << last;
  for (const json& child : last.at("ChildShards")) {
    const auto it = std::find_if(children.begin(), children.end(),
                                 [&](const aws::Shard& s) { return s.shard_id == child.at("ShardId"); });
    ASSERT_NE(it, children.end()) << child;
    EXPECT_EQ(child.at("ParentShards"), json::array({"shardId-000000000000"}));
    EXPECT_EQ(child.at("HashKeyRange").at("StartingHashKey"), it->starting_hash_key);
    EXPECT_EQ(child.at("HashKeyRange").at("EndingHashKey"), it->ending_hash_key);
  }
  EXPECT_EQ(server.stats().at("subscriptions").at(0).at("end"), "shard-end");
}

TEST(FanOutServerTest, InStreamFaultsEndTheStreamAsTold) {
  FanOutServer server(quick_options());
  KCLPP_REQUIRE_SERVER(server);
  aws::KinesisClient client(server.client_options());
  client.create_stream("fan", 1);
  const std::string arn = active_consumer(server, client.describe_stream_summary("fan").stream_arn, "app");
  const auto run = [&](const char* rule) {
    server.set_faults(json::parse(rule));
    return subscribe(server, arn, "shardId-000000000000", trim_horizon);
  };

  const RawReply exception =
      run(R"({"rule":"exceptionAfterEvents","events":1,"type":"InternalFailureException","message":"injected"})");
  std::vector<Frame> frames = read_frames(exception.body);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].headers.at(":message-type"), "exception");
  EXPECT_EQ(frames[1].headers.at(":exception-type"), "InternalFailureException");
  EXPECT_EQ(frames[1].payload_json().value("message", ""), "injected");

  const RawReply error = run(R"({"rule":"errorAfterEvents","events":0,"code":"InternalError","message":"oops"})");
  frames = read_frames(error.body);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].headers.at(":message-type"), "error");
  EXPECT_EQ(frames[0].headers.at(":error-code"), "InternalError");
  EXPECT_EQ(frames[0].headers.at(":error-message"), "oops");

  const RawReply corrupt = run(R"({"rule":"corruptAfterEvents","events":1})");
  frames = read_frames(corrupt.body);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(frames[0].message_crc_ok);
  EXPECT_TRUE(frames[1].prelude_crc_ok);
  EXPECT_FALSE(frames[1].message_crc_ok);

  const RawReply rst = run(R"({"rule":"resetAfterEvents","events":1})");
  EXPECT_EQ(rst.code, CURLE_HTTP2_STREAM) << curl_easy_strerror(rst.code);
  EXPECT_EQ(read_frames(rst.body).size(), 1u);
  const RawReply dropped = run(R"({"rule":"resetAfterEvents","events":1,"how":"socket"})");
  EXPECT_NE(dropped.code, CURLE_OK);
  EXPECT_EQ(read_frames(dropped.body).size(), 1u);

  const json subs = server.stats().at("subscriptions");
  ASSERT_EQ(subs.size(), 5u) << subs;
  const char* ends[] = {"exception", "error", "corrupt", "reset", "reset"};
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(subs[i].at("end"), ends[i]) << subs[i];
  EXPECT_EQ(subs[4].at("detail"), "socket");
}

}  // namespace
}  // namespace kclpp::test
