// aws::KinesisClient against real local servers (kinesalite and kinesis-local, the same tests on
// both), against a fault-injecting in-process HTTP server, and its SigV4 signatures against
// botocore's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/stream_source.hpp"
#include "botocore_signer.hpp"
#include "fake_http_server.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"

namespace kclpp::native {
namespace {

using namespace std::chrono_literals;
using test::FakeHttpServer;
using test::HttpReply;
using test::HttpRequest;
using test::Kinesalite;
using test::KinesisServer;

const std::string max_hash = "340282366920938463463374607431768211455";  // 2^128 - 1

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// Reads from `iterator` until `want` records arrived, the shard ended, or the deadline.
std::vector<Record> read_records(aws::KinesisClient& client, std::string iterator, std::size_t want,
                                 std::chrono::milliseconds deadline = 10s) {
  std::vector<Record> out;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (out.size() < want && std::chrono::steady_clock::now() < until) {
    aws::GetRecordsResult r = client.get_records(iterator, 10'000);
    for (auto& rec : r.records) out.push_back(std::move(rec));
    if (!r.next_shard_iterator) break;
    iterator = *r.next_shard_iterator;
    if (r.records.empty()) std::this_thread::sleep_for(50ms);
  }
  return out;
}

// --- against kinesalite and kinesis-local ------------------------------------------------

class KinesisServerTest : public ::testing::TestWithParam<KinesisServer> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Kinesalite>(GetParam());
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream(stream_, 2);
    client_->wait_for_active(stream_, 10s);
  }

  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  std::string stream_ = "kclpp-client-test";
};

TEST_P(KinesisServerTest, CreateDescribeListShards) {
  const aws::StreamSummary s = client_->describe_stream_summary(stream_);
  EXPECT_EQ(s.stream_name, stream_);
  EXPECT_EQ(s.status, "ACTIVE");
  EXPECT_EQ(s.open_shard_count, 2);
  EXPECT_FALSE(s.stream_arn.empty());

  const std::vector<aws::Shard> shards = client_->list_shards(stream_);
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards[0].starting_hash_key, "0");
  EXPECT_EQ(shards[1].ending_hash_key, max_hash);
  for (const auto& sh : shards) {
    EXPECT_FALSE(sh.closed());
    EXPECT_FALSE(sh.parent_shard_id);
    EXPECT_FALSE(sh.starting_sequence_number.empty());
  }

  // One shard per page: kinesis-local pages, kinesalite ignores MaxResults; same result.
  aws::KinesisOptions paged = server_->client_options();
  paged.list_shards_page_size = 1;
  aws::KinesisClient paged_client(paged);
  const std::vector<aws::Shard> again = paged_client.list_shards(stream_);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].shard_id, shards[0].shard_id);
  EXPECT_EQ(again[1].shard_id, shards[1].shard_id);

  // The same through KinesisStream (what the worker uses).
  KinesisStream source(stream_, server_->client_options());
  auto conn = source.connect();
  EXPECT_EQ(conn->list_shards().size(), 2u);
  const std::string it = conn->get_shard_iterator(shards[0].shard_id, aws::StartPosition::trim_horizon());
  EXPECT_TRUE(conn->get_records(it, 10).records.empty());
}

TEST_P(KinesisServerTest, PutAndGetAreByteExact) {
  const std::vector<aws::Shard> shards = client_->list_shards(stream_);
  std::mt19937 rng(12345);  // fixed seed: the data is arbitrary bytes, not a search
  auto random_bytes = [&](std::size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xFF);
    return s;
  };
  std::map<std::string, std::string> expected;  // sequence number -> data
  std::map<std::string, std::string> shard_of;  // sequence number -> shard

  const std::string zeros("\0\0\0a\0", 5);
  const aws::PutRecordResult p1 = client_->put_record(stream_, zeros, "pk-zero");
  expected[p1.sequence_number] = zeros;
  shard_of[p1.sequence_number] = p1.shard_id;

  const std::string big = random_bytes((1u << 20) - 8);  // 1 MiB with the partition key
  const aws::PutRecordResult p2 = client_->put_record(stream_, big, "pk-big", max_hash);
  EXPECT_EQ(p2.shard_id, shards[1].shard_id);
  expected[p2.sequence_number] = big;
  shard_of[p2.sequence_number] = p2.shard_id;

  std::vector<aws::PutRecordsEntry> entries;
  for (int i = 0; i < 20; ++i) {
    entries.push_back({random_bytes(static_cast<std::size_t>(i) * 37), "pk-" + std::to_string(i),
                       i % 2 == 0 ? std::string("0") : max_hash});
  }
  entries.push_back({"", "empty", {}});
  entries.push_back({std::string("\"\\\n\0", 4), "p\"k\\é\n", {}});
  const auto results = client_->put_records(stream_, entries);
  ASSERT_EQ(results.size(), entries.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].error_code << " " << results[i].error_message;
    if (i < 20) {
      EXPECT_EQ(results[i].shard_id, i % 2 == 0 ? shards[0].shard_id : shards[1].shard_id) << i;
    }
    expected[results[i].sequence_number] = entries[i].data;
    shard_of[results[i].sequence_number] = results[i].shard_id;
  }

  const auto before = std::chrono::system_clock::now() - 1min;
  std::size_t got = 0;
  for (const auto& sh : shards) {
    std::size_t want = 0;
    for (const auto& [seq, shard] : shard_of) want += shard == sh.shard_id ? 1u : 0u;
    const auto records = read_records(
        *client_, client_->get_shard_iterator(stream_, sh.shard_id, aws::StartPosition::trim_horizon()), want);
    ASSERT_EQ(records.size(), want) << sh.shard_id;
    for (std::size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      ASSERT_TRUE(expected.count(r.sequence_number.str())) << r.sequence_number.str();
      EXPECT_EQ(r.data, expected[r.sequence_number.str()]) << r.partition_key;
      EXPECT_TRUE(r.data_error.empty());
      if (i > 0) { EXPECT_LT(records[i - 1].sequence_number, r.sequence_number); }
      ASSERT_TRUE(r.approximate_arrival_timestamp);
      EXPECT_GT(*r.approximate_arrival_timestamp, before);
      EXPECT_LT(*r.approximate_arrival_timestamp, std::chrono::system_clock::now() + 1min);
      if (r.partition_key.rfind("p\"k", 0) == 0) { EXPECT_EQ(r.partition_key, "p\"k\\é\n"); }
      ++got;
    }
  }
  EXPECT_EQ(got, expected.size());
}

TEST_P(KinesisServerTest, EveryIteratorType) {
  const std::string shard = client_->list_shards(stream_)[0].shard_id;
  std::vector<aws::PutRecordResult> put;
  for (int i = 0; i < 3; ++i) {
    put.push_back(client_->put_record(stream_, "r" + std::to_string(i), "k", "0"));
    std::this_thread::sleep_for(20ms);  // distinct arrival milliseconds
  }
  auto data_of = [](const std::vector<Record>& rs) {
    std::vector<std::string> d;
    for (const auto& r : rs) d.push_back(r.data);
    return d;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(data_of(read_records(*client_, client_->get_shard_iterator(stream_, shard, aws::StartPosition::trim_horizon()), 3)),
            (V{"r0", "r1", "r2"}));
  EXPECT_EQ(data_of(read_records(*client_, client_->get_shard_iterator(stream_, shard, aws::StartPosition::at(put[1].sequence_number)), 2)),
            (V{"r1", "r2"}));
  EXPECT_EQ(data_of(read_records(*client_, client_->get_shard_iterator(stream_, shard, aws::StartPosition::after(put[1].sequence_number)), 1)),
            (V{"r2"}));

  // AT_TIMESTAMP: the arrival time of r1 (as the server reports it) selects r1 and later.
  const auto all = read_records(*client_, client_->get_shard_iterator(stream_, shard, aws::StartPosition::trim_horizon()), 3);
  ASSERT_EQ(all.size(), 3u);
  ASSERT_TRUE(all[1].approximate_arrival_timestamp);
  EXPECT_EQ(data_of(read_records(*client_, client_->get_shard_iterator(stream_, shard,
                                     aws::StartPosition::at_timestamp(*all[1].approximate_arrival_timestamp)), 2)),
            (V{"r1", "r2"}));
  EXPECT_EQ(data_of(read_records(*client_, client_->get_shard_iterator(stream_, shard,
                                     aws::StartPosition::at_timestamp(std::chrono::system_clock::now() - 1h)), 3)),
            (V{"r0", "r1", "r2"}));

  // LATEST: nothing old, then what is put afterwards.
  std::string latest = client_->get_shard_iterator(stream_, shard, aws::StartPosition::latest());
  aws::GetRecordsResult none = client_->get_records(latest, 100);
  EXPECT_TRUE(none.records.empty());
  ASSERT_TRUE(none.next_shard_iterator);
  (void)client_->put_record(stream_, "r3", "k", "0");
  EXPECT_EQ(data_of(read_records(*client_, *none.next_shard_iterator, 1)), (V{"r3"}));

  EXPECT_THROW((void)client_->get_shard_iterator(stream_, shard, aws::StartPosition::after("")), ConfigError);
}

TEST_P(KinesisServerTest, SplitAndMergeCloseShardsAndEndTheirReads) {
  const std::vector<aws::Shard> initial = client_->list_shards(stream_);
  const std::string parent = initial[0].shard_id;
  (void)client_->put_record(stream_, "before split", "k", "0");

  // Split shard 0 in the middle of its range [0, 2^127).
  client_->split_shard(stream_, parent, "85070591730234615865843651857942052864");
  client_->wait_for_active(stream_, 10s);
  std::vector<aws::Shard> shards = client_->list_shards(stream_);
  ASSERT_EQ(shards.size(), 4u);
  std::vector<std::string> children;
  for (const auto& s : shards) {
    if (s.shard_id == parent) { EXPECT_TRUE(s.closed()); }
    if (s.parent_shard_id == parent) {
      EXPECT_FALSE(s.closed());
      children.push_back(s.shard_id);
    }
  }
  ASSERT_EQ(children.size(), 2u);

  // Reading the closed parent reaches SHARD_END (next_shard_iterator == nullopt).
  std::string it = client_->get_shard_iterator(stream_, parent, aws::StartPosition::trim_horizon());
  std::vector<std::string> data;
  bool ended = false;
  std::vector<aws::Shard> reported_children;
  for (int i = 0; i < 100 && !ended; ++i) {
    aws::GetRecordsResult r = client_->get_records(it, 1000);
    for (const auto& rec : r.records) data.push_back(rec.data);
    if (!r.next_shard_iterator) {
      ended = true;
      reported_children = r.child_shards;
    } else {
      it = *r.next_shard_iterator;
    }
  }
  EXPECT_TRUE(ended);
  EXPECT_EQ(data, std::vector<std::string>{"before split"});
  if (!reported_children.empty()) {  // kinesis-local reports them; kinesalite 3.3.3 does not
    std::set<std::string> ids;
    for (const auto& c : reported_children) {
      ids.insert(c.shard_id);
      EXPECT_EQ(c.parent_shard_id, parent);
    }
    EXPECT_EQ(ids, std::set<std::string>(children.begin(), children.end()));
  }

  // Merge the two children back: both close, the new shard has both as parents.
  std::sort(children.begin(), children.end());
  client_->merge_shards(stream_, children[0], children[1]);
  client_->wait_for_active(stream_, 10s);
  shards = client_->list_shards(stream_);
  ASSERT_EQ(shards.size(), 5u);
  int open = 0;
  bool merged_found = false;
  for (const auto& s : shards) {
    if (!s.closed()) ++open;
    if (s.shard_id == children[0] || s.shard_id == children[1] || s.shard_id == parent) {
      EXPECT_TRUE(s.closed()) << s.shard_id;
    }
    if (s.parent_shard_id == children[0]) {
      merged_found = true;
      EXPECT_EQ(s.adjacent_parent_shard_id, children[1]);
      EXPECT_EQ(s.starting_hash_key, "0");
      EXPECT_FALSE(s.closed());
    }
  }
  EXPECT_EQ(open, 2);
  EXPECT_TRUE(merged_found);
  EXPECT_EQ(client_->describe_stream_summary(stream_).open_shard_count, 2);
}

TEST_P(KinesisServerTest, ServiceErrorsAreTyped) {
  try {
    (void)client_->list_shards("no-such-stream");
    FAIL() << "no throw";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.retry(), Retry::No);
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "ListShards")) << what;
    EXPECT_TRUE(contains(what, "no-such-stream")) << what;
    EXPECT_TRUE(contains(what, server_->endpoint())) << what;
  }
  try {
    (void)client_->put_record("no-such-stream", "x", "k");
    FAIL() << "no throw";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
  }
  if (GetParam() == KinesisServer::KinesisLocal) {
    // kinesis-local 0.6.2 answers a malformed iterator with HTTP 500 and an empty body
    // (real Kinesis and kinesalite: 400 InvalidArgumentException); a 5xx is retryable.
    EXPECT_THROW((void)client_->get_records("not-an-iterator", 10), TransportError);
  } else try {
    (void)client_->get_records("not-an-iterator", 10);
    FAIL() << "no throw";
  } catch (const aws::AwsError& e) {
    EXPECT_FALSE(e.type().empty());
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "GetRecords")) << e.what();
  }
  const std::string shard = client_->list_shards(stream_)[0].shard_id;
  EXPECT_THROW((void)client_->get_shard_iterator(stream_, "shardId-000000000099", aws::StartPosition::latest()),
               aws::AwsError);
  EXPECT_THROW(client_->create_stream(stream_, 1), aws::AwsError);  // ResourceInUseException
  client_->delete_stream(stream_);
  EXPECT_THROW(
      {
        for (int i = 0; i < 100; ++i) {
          (void)client_->describe_stream_summary(stream_);  // DELETING, then gone
          std::this_thread::sleep_for(20ms);
        }
      },
      aws::AwsError);
  (void)shard;
}

INSTANTIATE_TEST_SUITE_P(Servers, KinesisServerTest,
                         ::testing::Values(KinesisServer::Kinesalite, KinesisServer::KinesisLocal),
                         [](const auto& param_info) { return std::string(test::server_name(param_info.param)); });

// --- transport failures and the fault-injecting server -----------------------------------

TEST(KinesisClientFaults, UnreachableEndpointIsARetryableTransportError) {
  aws::KinesisOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(test::unused_port());
  o.region = "us-east-1";
  o.credentials = aws::static_credentials({"AK", "SK", ""});
  aws::KinesisClient client(o);
  try {
    (void)client.list_shards("s");
    FAIL() << "no throw";
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_TRUE(contains(e.what(), o.endpoint)) << e.what();
  }
  // Nothing was sent, so a put is not in doubt.
  EXPECT_THROW((void)client.put_record("s", "x", "k"), TransportError);
}

TEST(KinesisClientFaults, ThrottlingRepliesAreThrottledErrors) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "GetRecords")) {
      return HttpReply::aws_error(400, "ProvisionedThroughputExceededException", "Rate exceeded for shard");
    }
    if (contains(req.header("x-amz-target"), "ListShards")) {
      return HttpReply::aws_error(400, "com.amazonaws.kinesis#LimitExceededException", "too many");
    }
    return HttpReply::aws_error(400, "ThrottlingException", "slow down");
  });
  aws::KinesisClient client(server.client_options());
  try {
    (void)client.get_records("it", 10);
    FAIL() << "no throw";
  } catch (const ThrottledError& e) {
    EXPECT_EQ(e.retry(), Retry::Throttled);
    EXPECT_TRUE(contains(e.what(), "Rate exceeded for shard")) << e.what();
  }
  EXPECT_THROW((void)client.list_shards("s"), ThrottledError);
  EXPECT_THROW((void)client.put_record("s", "x", "k"), ThrottledError);
}

TEST(KinesisClientFaults, AuthRepliesAreAuthErrors) {
  for (const char* type : {"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
                           "ExpiredTokenException", "IncompleteSignature", "MissingAuthenticationToken"}) {
    FakeHttpServer server([&](const HttpRequest&) { return HttpReply::aws_error(400, type, "denied"); });
    aws::KinesisClient client(server.client_options());
    try {
      (void)client.describe_stream_summary("s");
      FAIL() << type;
    } catch (const AuthError& e) {
      EXPECT_EQ(e.retry(), Retry::No);
      EXPECT_TRUE(contains(e.what(), type)) << e.what();
    }
  }
}

TEST(KinesisClientFaults, ServerErrorsAreTransportErrorsButPutsAreInDoubt) {
  FakeHttpServer server([](const HttpRequest&) {
    return HttpReply::aws_error(500, "InternalFailure", "oops");
  });
  aws::KinesisClient client(server.client_options());
  try {
    (void)client.get_records("it", 10);
    FAIL();
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_TRUE(contains(e.what(), "InternalFailure")) << e.what();
  }
  EXPECT_THROW((void)client.put_record("s", "x", "k"), InDoubtError);
  const std::vector<aws::PutRecordsEntry> entries{{"x", "k", {}}};
  EXPECT_THROW((void)client.put_records("s", entries), InDoubtError);

  FakeHttpServer html([](const HttpRequest&) {
    HttpReply r;
    r.status = 502;
    r.content_type = "text/html";
    r.body = "<html>Bad Gateway</html>";
    return r;
  });
  aws::KinesisClient html_client(html.client_options());
  EXPECT_THROW((void)html_client.list_shards("s"), TransportError);
}

TEST(KinesisClientFaults, ConnectionResetIsTransportErrorOrInDoubtForPuts) {
  FakeHttpServer server([](const HttpRequest&) { return HttpReply::reset(); });
  aws::KinesisClient client(server.client_options());
  EXPECT_THROW((void)client.get_records("it", 10), TransportError);
  EXPECT_THROW((void)client.get_shard_iterator("s", "shard", aws::StartPosition::latest()), TransportError);
  try {
    (void)client.put_record("s", "x", "k");
    FAIL();
  } catch (const InDoubtError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "PutRecord")) << e.what();
  }
  const std::vector<aws::PutRecordsEntry> entries{{"x", "k", {}}};
  EXPECT_THROW((void)client.put_records("s", entries), InDoubtError);

  FakeHttpServer closer([](const HttpRequest&) { return HttpReply::close(); });
  aws::KinesisClient closer_client(closer.client_options());
  EXPECT_THROW((void)closer_client.list_shards("s"), TransportError);
}

TEST(KinesisClientFaults, SlowResponseTimesOut) {
  FakeHttpServer server([](const HttpRequest&) {
    HttpReply r = HttpReply::json(R"({"ShardIterator":"it"})");
    r.delay = 3s;
    return r;
  });
  aws::KinesisClient client(server.client_options(300ms));
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)client.get_shard_iterator("s", "shard", aws::StartPosition::latest());
    FAIL();
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_TRUE(contains(e.what(), "timed out")) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_THROW((void)client.put_record("s", "x", "k"), InDoubtError);
}

TEST(KinesisClientFaults, UnparseableRepliesAreProtocolErrors) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "GetRecords")) return HttpReply::json("{\"Records\": [}");
    if (contains(req.header("x-amz-target"), "ListShards")) return HttpReply::json("not json", 400);
    return HttpReply::json(R"({"unexpected":true})");
  });
  aws::KinesisClient client(server.client_options());
  EXPECT_THROW((void)client.get_records("it", 10), ProtocolError);
  EXPECT_THROW((void)client.list_shards("s"), ProtocolError);
  EXPECT_THROW((void)client.describe_stream_summary("s"), ProtocolError);
  // A put whose reply makes no sense may still have been written.
  EXPECT_THROW((void)client.put_record("s", "x", "k"), InDoubtError);
}

TEST(KinesisClientFaults, OneConnectionIsReusedAndRequestsAreWellFormed) {
  FakeHttpServer server([](const HttpRequest&) { return HttpReply::json(R"({"ShardIterator":"it"})"); });
  aws::KinesisClient client(server.client_options());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(client.get_shard_iterator("s", "shard-" + std::to_string(i), aws::StartPosition::at_timestamp(
                                            std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123)))),
              "it");
  }
  EXPECT_EQ(server.connections(), 1);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 10u);
  const HttpRequest& r = requests[3];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/");
  EXPECT_EQ(r.header("content-type"), "application/x-amz-json-1.1");
  EXPECT_EQ(r.header("x-amz-target"), "Kinesis_20131202.GetShardIterator");
  EXPECT_TRUE(contains(r.header("authorization"), "AWS4-HMAC-SHA256 Credential=AKIDKCLPPTEST/")) << r.header("authorization");
  EXPECT_TRUE(contains(r.header("authorization"), "/us-east-1/kinesis/aws4_request"));
  EXPECT_EQ(r.body, R"({"StreamName":"s","ShardId":"shard-3","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1700000000.123})");
}

TEST(KinesisClientFaults, ListShardsFollowsNextToken) {
  std::atomic<int> page{0};
  FakeHttpServer server([&](const HttpRequest&) {
    const int p = page++;
    auto shard = [](int i) {
      return R"({"ShardId":"shardId-00000000000)" + std::to_string(i) +
             R"(","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"1"},"SequenceNumberRange":{"StartingSequenceNumber":"1"}})";
    };
    if (p == 0) return HttpReply::json(R"({"Shards":[)" + shard(0) + "," + shard(1) + R"(],"NextToken":"t1"})");
    if (p == 1) return HttpReply::json(R"({"Shards":[)" + shard(2) + R"(],"NextToken":"t2"})");
    return HttpReply::json(R"({"Shards":[)" + shard(3) + "]}");
  });
  aws::KinesisOptions o = server.client_options();
  o.list_shards_page_size = 2;
  aws::KinesisClient client(o);
  const auto shards = client.list_shards("s");
  ASSERT_EQ(shards.size(), 4u);
  EXPECT_EQ(shards[3].shard_id, "shardId-000000000003");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].body, R"({"StreamName":"s","MaxResults":2})");
  EXPECT_EQ(requests[1].body, R"({"NextToken":"t1","MaxResults":2})");
  EXPECT_EQ(requests[2].body, R"({"NextToken":"t2","MaxResults":2})");
}

// --- SigV4: our signer's signature must equal botocore's --------------------------------

// InvalidSignatureException quotes the canonical request, session token included: the
// message keeps the service's words but never the token or the secret.
TEST(KinesisClientFaults, SignatureRepliesNeverCarryTheSecretOrToken) {
  const std::string token = "FwoGZXIvYXdzEJr-kclpp-session-token";
  const std::string secret = "kclpp-secret-access-key-value";
  FakeHttpServer server([&](const HttpRequest&) {
    return HttpReply::aws_error(400, "InvalidSignatureException",
                                "The Canonical String for this request should have been 'POST / "
                                "x-amz-security-token:" + token + "' (secret " + secret + ")");
  });
  aws::KinesisOptions o = server.client_options();
  o.credentials = aws::static_credentials({"AKIDTEST", secret, token});
  aws::KinesisClient client(o);
  try {
    (void)client.put_record("s", "d", "k");
    FAIL() << "no throw";
  } catch (const AuthError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find(token), std::string::npos) << what;
    EXPECT_EQ(what.find(secret), std::string::npos) << what;
    EXPECT_TRUE(contains(what, "x-amz-security-token:<redacted>")) << what;
  }
  // An unparseable reply is quoted cut short: redacted before it is cut, so that no prefix
  // of a secret survives either.
  FakeHttpServer raw([&](const HttpRequest&) {
    return HttpReply::json(std::string(180, 'x') + " token " + token + " secret " + secret, 400);
  });
  aws::KinesisOptions ro = raw.client_options();
  ro.credentials = aws::static_credentials({"AKIDTEST", secret, token});
  aws::KinesisClient raw_client(ro);
  try {
    (void)raw_client.put_record("s", "d", "k");
    FAIL() << "no throw";
  } catch (const ProtocolError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find(token.substr(0, 12)), std::string::npos) << what;
    EXPECT_EQ(what.find(secret.substr(0, 12)), std::string::npos) << what;
  }
}

TEST(KinesisClientSigV4, SignaturesMatchBotocore) {
  KCLPP_REQUIRE_BOTOCORE();
  FakeHttpServer server([](const HttpRequest&) { return HttpReply::json(R"({"ShardId":"s","SequenceNumber":"1"})"); });
  for (const std::string token : {"", "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="}) {
    aws::KinesisOptions o = server.client_options();
    o.credentials = aws::static_credentials({"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token});
    aws::KinesisClient client(o);
    const std::size_t first = server.requests().size();
    (void)client.put_record("stream-ü", std::string("bin\0\x01ary", 8), "partition \"key\"", "12345");
    (void)client.put_record("s", "", "k");
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), first + 2);
    for (std::size_t i = first; i < requests.size(); ++i) {
      const HttpRequest& req = requests[i];
      if (!token.empty()) { EXPECT_EQ(req.header("x-amz-security-token"), token); }
      const std::string expected = test::botocore_authorization(server.endpoint() + "/", req, o.credentials->credentials(), "kinesis");
      EXPECT_EQ(req.header("authorization"), expected) << "body: " << req.body;
      if (!token.empty()) { EXPECT_TRUE(contains(expected, "x-amz-security-token")) << expected; }
    }
  }
}

}  // namespace
}  // namespace kclpp::native
