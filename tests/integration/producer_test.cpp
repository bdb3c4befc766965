// The blocking Triton producer (docs/triton.md §2, §5 "Writes") against kinesalite, and
// against a fault-injecting fake Kinesis (throttled entries, 5xx, limits).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kclpp/pipeline/producer.hpp"
#include "kclpp/processor/base64.hpp"
#include "fake_http_server.hpp"
#include "kinesalite_fixture.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using aws::KinesisClient;
using kclpp::test::FakeHttpServer;
using kclpp::test::HttpReply;
using kclpp::test::HttpRequest;
using namespace kclpp::pipeline;

StreamConfig events_stream(const std::string& real_name = "events_v1") {
  return StreamConfig{"events", real_name, "user_id", "us-east-1"};
}

kclpp::RetryPolicy fast_retry(int attempts = 4) { return kclpp::RetryPolicy{attempts, 1ms, 5ms, 1ms}; }

Map event(const Value& user, int n, std::size_t text_size = 20) {
  return Map{{"user_id", user}, {"n", n}, {"text", std::string(text_size, 'x')}};
}

struct ReadRecord {
  std::string partition_key;
  std::string data;
  std::string sequence_number;
};

std::vector<ReadRecord> read_all(aws::KinesisClient& client, const std::string& stream) {
  std::vector<ReadRecord> out;
  for (auto& r : kclpp::test::read_stream(client, stream, 100))
    out.push_back({std::move(r.partition_key), std::move(r.data), r.sequence_number.str()});
  return out;
}

class ProducerKinesalite : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<kclpp::test::Kinesalite>();
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream("events_v1", 1);
    client_->wait_for_active("events_v1", 10s);
  }
  ProducerOptions options() const {
    ProducerOptions o;
    o.client = server_->client_options();
    o.retry = fast_retry();
    return o;
  }
  std::unique_ptr<kclpp::test::Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
};

TEST_F(ProducerKinesalite, PutReturnsShardAndSequenceNumberAndKeysByTheConfiguredField) {
  Producer producer(events_stream(), options());
  const auto a = producer.put(event("u-1", 1));
  const auto b = producer.put(event(std::int64_t{42}, 2));
  EXPECT_EQ(a.shard_id, "shardId-000000000000");
  EXPECT_FALSE(a.sequence_number.empty());
  const auto records = read_all(*client_, "events_v1");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].partition_key, "u-1");
  EXPECT_EQ(records[0].data, encode_record(event("u-1", 1)));
  EXPECT_EQ(records[0].sequence_number, a.sequence_number);
  EXPECT_EQ(records[1].partition_key, "42");
  EXPECT_EQ(records[1].sequence_number, b.sequence_number);
  EXPECT_TRUE(decode_record(records[1].data).ok());
}

TEST_F(ProducerKinesalite, PutManyWritesEveryRecordInOrderAcrossRequests) {
  Producer producer(events_stream(), options());
  std::vector<Map> records;
  for (int i = 0; i < 1'200; ++i) records.push_back(event("u-" + std::to_string(i % 7), i));
  const PutManyResult result = producer.put_many(records);
  ASSERT_TRUE(result.ok()) << result.failed.front().error_code << ": " << result.failed.front().error_message;
  ASSERT_EQ(result.results.size(), records.size());
  const auto read = read_all(*client_, "events_v1");
  ASSERT_EQ(read.size(), records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(read[i].data, encode_record(records[i])) << i;
    EXPECT_EQ(read[i].partition_key, "u-" + std::to_string(i % 7)) << i;
    EXPECT_EQ(read[i].sequence_number, result.results[i].sequence_number) << i;
  }
}

TEST_F(ProducerKinesalite, MissingKeyFieldThrowsBeforeAnythingIsSent) {
  Producer producer(events_stream(), options());
  std::vector<Map> records{event("u-1", 1), Map{{"n", 2}}};
  EXPECT_THROW((void)producer.put_many(records), kclpp::ConfigError);
  EXPECT_THROW((void)producer.put(Map{{"n", 3}}), kclpp::ConfigError);
  EXPECT_TRUE(read_all(*client_, "events_v1").empty());
}

TEST_F(ProducerKinesalite, UnknownStreamReportsEveryRecordFailed) {
  Producer producer(events_stream("no_such_stream"), options());
  std::vector<Map> records{event("u-1", 1), event("u-2", 2)};
  const auto result = producer.put_many(records);
  ASSERT_EQ(result.failed.size(), 2u);
  EXPECT_EQ(result.failed[0].error_code, "ResourceNotFoundException");
  EXPECT_EQ(result.failed[1].index, 1u);
  EXPECT_THROW((void)producer.put(event("u-1", 1)), aws::AwsError);
}

// --- fault injection ----------------------------------------------------------------------

struct SentRecord {
  std::string data;
  std::string partition_key;
};

std::vector<SentRecord> records_of(const HttpRequest& request) {
  std::vector<SentRecord> out;
  const auto body = nlohmann::json::parse(request.body);
  for (const auto& r : body.at("Records")) {
    SentRecord s;
    EXPECT_TRUE(kclpp::base64_decode(r.at("Data").get<std::string>(), s.data));
    s.partition_key = r.at("PartitionKey").get<std::string>();
    out.push_back(std::move(s));
  }
  return out;
}

// A PutRecords reply: entry k fails with `fail[k]` when that is not empty.
HttpReply put_records_reply(std::size_t n, const std::vector<std::string>& fail, std::atomic<int>& seq) {
  nlohmann::json records = nlohmann::json::array();
  int failed = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (k < fail.size() && !fail[k].empty()) {
      records.push_back({{"ErrorCode", fail[k]}, {"ErrorMessage", "injected"}});
      ++failed;
    } else {
      records.push_back({{"ShardId", "shardId-000000000001"}, {"SequenceNumber", std::to_string(++seq)}});
    }
  }
  return HttpReply::json(nlohmann::json{{"FailedRecordCount", failed}, {"Records", records}}.dump());
}

ProducerOptions fake_options(const FakeHttpServer& server, int attempts = 4) {
  ProducerOptions o;
  o.client = server.client_options();
  o.retry = fast_retry(attempts);
  return o;
}

std::vector<Map> numbered(int n) {
  std::vector<Map> out;
  for (int i = 0; i < n; ++i) out.push_back(event("u-" + std::to_string(i), i));
  return out;
}

TEST(ProducerFaults, ResendsOnlyTheThrottledEntries) {
  std::atomic<int> seq{0};
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    const auto n = records_of(req).size();
    if (calls++ == 0)
      return put_records_reply(n, {"", "ProvisionedThroughputExceededException", "", "InternalFailure"}, seq);
    return put_records_reply(n, {}, seq);
  });
  Producer producer(events_stream(), fake_options(server));
  const auto records = numbered(5);
  const auto result = producer.put_many(records);
  ASSERT_TRUE(result.ok());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].header("x-amz-target"), "Kinesis_20131202.PutRecords");
  EXPECT_EQ(records_of(requests[0]).size(), 5u);
  const auto resent = records_of(requests[1]);
  ASSERT_EQ(resent.size(), 2u);
  EXPECT_EQ(resent[0].data, encode_record(records[1]));
  EXPECT_EQ(resent[0].partition_key, "u-1");
  EXPECT_EQ(resent[1].data, encode_record(records[3]));
  // The first reply numbered 0, 2, 4 as 1, 2, 3; the resend got 4 and 5.
  EXPECT_EQ(result.results[0].sequence_number, "1");
  EXPECT_EQ(result.results[1].sequence_number, "4");
  EXPECT_EQ(result.results[3].sequence_number, "5");
  EXPECT_EQ(result.results[4].sequence_number, "3");
}

TEST(ProducerFaults, RetriesWholeRequest5xxThenSucceeds) {
  std::atomic<int> seq{0};
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    if (calls++ < 2) return HttpReply::aws_error(500, "InternalFailure", "injected");
    return put_records_reply(records_of(req).size(), {}, seq);
  });
  Producer producer(events_stream(), fake_options(server));
  const auto result = producer.put_many(numbered(3));
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(ProducerFaults, ReportsWhatStillFailsAfterTheAttempts) {
  std::atomic<int> seq{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    // The record of user u-0 is always throttled.
    const auto sent = records_of(req);
    std::vector<std::string> fail(sent.size());
    for (std::size_t k = 0; k < sent.size(); ++k)
      if (sent[k].partition_key == "u-0") fail[k] = "ProvisionedThroughputExceededException";
    return put_records_reply(sent.size(), fail, seq);
  });
  Producer producer(events_stream(), fake_options(server, 3));
  const auto result = producer.put_many(numbered(4));
  ASSERT_EQ(result.failed.size(), 1u);
  EXPECT_EQ(result.failed[0].index, 0u);
  EXPECT_EQ(result.failed[0].error_code, "ProvisionedThroughputExceededException");
  EXPECT_TRUE(result.results[0].shard_id.empty());
  EXPECT_FALSE(result.results[3].sequence_number.empty());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(records_of(requests[2]).size(), 1u);
}

TEST(ProducerFaults, PersistentWholeRequestFailureReportsEveryEntry) {
  FakeHttpServer server([&](const HttpRequest&) { return HttpReply::aws_error(503, "ServiceUnavailable", "down"); });
  Producer producer(events_stream(), fake_options(server, 3));
  const auto result = producer.put_many(numbered(3));
  ASSERT_EQ(result.failed.size(), 3u);
  EXPECT_EQ(result.failed[2].index, 2u);
  EXPECT_EQ(result.failed[0].error_code, "InDoubtError");
  EXPECT_NE(result.failed[0].error_message.find("ServiceUnavailable"), std::string::npos);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(ProducerFaults, RecordOver1MiBIsReportedWithoutBeingSent) {
  std::atomic<int> seq{0};
  FakeHttpServer server([&](const HttpRequest& req) { return put_records_reply(records_of(req).size(), {}, seq); });
  Producer producer(events_stream(), fake_options(server));
  std::vector<PackedRecord> records{{"small-a", "k1"}, {std::string(1u << 20, 'b'), "k2"}, {"small-c", "k3"}};
  const auto result = producer.put_many_packed(records);
  ASSERT_EQ(result.failed.size(), 1u);
  EXPECT_EQ(result.failed[0].index, 1u);
  EXPECT_EQ(result.failed[0].error_code, "RecordTooLarge");
  EXPECT_EQ(result.results[2].sequence_number, "2");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto sent = records_of(requests[0]);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].data, "small-c");
}

TEST(ProducerFaults, FiveMiBAnd500RecordBoundariesSplitRequests) {
  std::atomic<int> seq{0};
  FakeHttpServer server([&](const HttpRequest& req) { return put_records_reply(records_of(req).size(), {}, seq); });
  Producer producer(events_stream(), fake_options(server));
  // Six records of exactly 1 MiB with their 2-byte keys: five fill 5 MiB.
  std::vector<PackedRecord> big(6, PackedRecord{std::string((1u << 20) - 2, 'd'), "kk"});
  ASSERT_TRUE(producer.put_many_packed(big).ok());
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(records_of(requests[0]).size(), 5u);
  EXPECT_EQ(records_of(requests[1]).size(), 1u);

  const auto result = producer.put_many(numbered(501));
  ASSERT_TRUE(result.ok());
  requests = server.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(records_of(requests[2]).size(), 500u);
  EXPECT_EQ(records_of(requests[3]).size(), 1u);
  EXPECT_EQ(result.results[500].sequence_number, std::to_string(seq.load()));
}

TEST(ProducerFaults, PutRetriesThrottlingButNotAnInDoubtWrite) {
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    EXPECT_EQ(req.header("x-amz-target"), "Kinesis_20131202.PutRecord");
    const int call = calls++;
    if (call == 0) return HttpReply::aws_error(400, "ProvisionedThroughputExceededException", "slow down");
    if (call == 1) return HttpReply::json(R"({"ShardId":"shardId-000000000003","SequenceNumber":"777"})");
    return HttpReply::aws_error(500, "InternalFailure", "injected");
  });
  Producer producer(events_stream(), fake_options(server));
  const auto r = producer.put(event("u-1", 1));
  EXPECT_EQ(r.shard_id, "shardId-000000000003");
  EXPECT_EQ(r.sequence_number, "777");
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_THROW((void)producer.put(event("u-1", 2)), kclpp::InDoubtError);
  EXPECT_EQ(server.requests().size(), 3u);
}

}  // namespace
