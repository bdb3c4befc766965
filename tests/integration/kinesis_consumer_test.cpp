// Enhanced fan-out consumer registration (aws::KinesisClient's consumer calls and
// aws::ensure_stream_consumer) against kinesis-local 0.6.2, which implements them and makes a
// new consumer ACTIVE after 500 ms; and, through the fake HTTP server, what kinesis-local
// cannot show: throttling, a consumer that never becomes ACTIVE.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_http_server.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/processor/error.hpp"
#include "kinesalite_fixture.hpp"

namespace kclpp::aws {
namespace {

using namespace std::chrono_literals;
using test::FakeHttpServer;
using test::HttpReply;
using test::HttpRequest;
using test::Kinesalite;
using test::KinesisServer;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// Polls DescribeStreamConsumer until the consumer has `status` (true) or 10 s passed.
bool wait_for_status(KinesisClient& client, const std::string& consumer_arn, const std::string& status) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    try {
      if (client.describe_stream_consumer(consumer_arn).status == status) return true;
    } catch (const AwsError& e) {
      if (e.type() != "ResourceNotFoundException") throw;
      if (status == "GONE") return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::vector<std::string> names_of(const std::vector<StreamConsumer>& consumers) {
  std::vector<std::string> names;
  for (const auto& c : consumers) names.push_back(c.consumer_name);
  std::sort(names.begin(), names.end());
  return names;
}

// One kinesis-local for the suite (it takes seconds to start); each test has its own stream.
class KinesisConsumerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<Kinesalite>(KinesisServer::KinesisLocal); }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<KinesisClient>(server_->client_options());
    // Not "consumer...": kinesis-local finds the stream in a consumer ARN by splitting it at
    // "/consumer", so a stream named so would not be found by consumer ARN.
    stream_ = std::string("efo-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    client_->create_stream(stream_, 1);
    client_->wait_for_active(stream_, 10s);
    stream_arn_ = client_->describe_stream_summary(stream_).stream_arn;
    ASSERT_FALSE(stream_arn_.empty());
  }

  static inline std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<KinesisClient> client_;
  std::string stream_;
  std::string stream_arn_;
};

TEST_F(KinesisConsumerTest, RegisterDescribeListDeregister) {
  const StreamConsumer registered = client_->register_stream_consumer(stream_arn_, "analytics");
  EXPECT_EQ(registered.consumer_name, "analytics");
  EXPECT_EQ(registered.status, "CREATING");
  EXPECT_EQ(registered.stream_arn, stream_arn_);
  EXPECT_TRUE(contains(registered.consumer_arn, stream_arn_)) << registered.consumer_arn;

  const StreamConsumer by_name = client_->describe_stream_consumer(stream_arn_, "analytics");
  EXPECT_EQ(by_name.consumer_arn, registered.consumer_arn);
  EXPECT_EQ(by_name.stream_arn, stream_arn_);
  ASSERT_TRUE(wait_for_status(*client_, registered.consumer_arn, "ACTIVE"));
  const StreamConsumer by_arn = client_->describe_stream_consumer(registered.consumer_arn);
  EXPECT_EQ(by_arn.consumer_name, "analytics");
  EXPECT_EQ(by_arn.status, "ACTIVE");
  EXPECT_EQ(by_arn.stream_arn, stream_arn_);

  // kinesis-local answers a NextToken even when everything fitted on the first page: the
  // second, empty page is followed and ends the listing.
  (void)client_->register_stream_consumer(stream_arn_, "billing");
  const auto listed = client_->list_stream_consumers(stream_arn_);
  EXPECT_EQ(names_of(listed), (std::vector<std::string>{"analytics", "billing"}));
  for (const auto& c : listed) {
    EXPECT_EQ(c.stream_arn, stream_arn_);
    EXPECT_FALSE(c.consumer_arn.empty());
  }

  client_->deregister_stream_consumer(registered.consumer_arn);
  ASSERT_TRUE(wait_for_status(*client_, registered.consumer_arn, "GONE"));
  EXPECT_EQ(names_of(client_->list_stream_consumers(stream_arn_)), std::vector<std::string>{"billing"});
}

TEST_F(KinesisConsumerTest, DescribingAMissingConsumerIsResourceNotFoundNamingIt) {
  try {
    (void)client_->describe_stream_consumer(stream_arn_, "nobody");
    FAIL() << "described a consumer that does not exist";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "DescribeStreamConsumer")) << e.what();
    EXPECT_TRUE(contains(e.what(), "consumer nobody")) << e.what();
    EXPECT_TRUE(contains(e.what(), stream_)) << "the stream ARN names the stream: " << e.what();
  }
  try {
    (void)client_->describe_stream_consumer(stream_arn_ + "/consumer/nobody:1700000000");
    FAIL() << "described a consumer ARN that does not exist";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
    EXPECT_TRUE(contains(e.what(), "consumer/nobody")) << e.what();
  }
}

TEST_F(KinesisConsumerTest, RegisteringATakenNameIsResourceInUse) {
  (void)client_->register_stream_consumer(stream_arn_, "twice");
  try {
    (void)client_->register_stream_consumer(stream_arn_, "twice");
    FAIL() << "registered one name twice";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceInUseException");
    EXPECT_TRUE(contains(e.what(), "consumer twice")) << e.what();
  }
}

TEST_F(KinesisConsumerTest, EnsureReusesAnExistingConsumer) {
  const StreamConsumer registered = client_->register_stream_consumer(stream_arn_, "existing");
  ASSERT_TRUE(wait_for_status(*client_, registered.consumer_arn, "ACTIVE"));
  const StreamConsumer ensured = ensure_stream_consumer(*client_, stream_, "existing", 10s);
  EXPECT_EQ(ensured.consumer_arn, registered.consumer_arn);
  EXPECT_EQ(ensured.status, "ACTIVE");
  EXPECT_EQ(client_->list_stream_consumers(stream_arn_).size(), 1u) << "nothing registered";
}

TEST_F(KinesisConsumerTest, EnsureRegistersAMissingConsumerAndWaitsUntilActive) {
  const auto start = std::chrono::steady_clock::now();
  const StreamConsumer ensured = ensure_stream_consumer(*client_, stream_, "fresh", 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ensured.consumer_name, "fresh");
  EXPECT_EQ(ensured.status, "ACTIVE");
  EXPECT_EQ(ensured.stream_arn, stream_arn_);
  // kinesis-local keeps a new consumer CREATING for 500 ms: ensure waited it out.
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, 5s) << "polled quickly, not in multi-second steps";
  EXPECT_EQ(client_->describe_stream_consumer(ensured.consumer_arn).status, "ACTIVE");
}

TEST_F(KinesisConsumerTest, TwoWorkersEnsuringOneNameAtOnceGetOneConsumer) {
  std::string arns[2];
  std::string errors[2];
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      try {
        KinesisClient own(server_->client_options());  // one client per thread
        ready.fetch_add(1);
        while (ready.load() < 2) std::this_thread::yield();
        arns[i] = ensure_stream_consumer(own, stream_, "shared", 10s).consumer_arn;
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_FALSE(arns[0].empty());
  EXPECT_EQ(arns[0], arns[1]);
  EXPECT_EQ(names_of(client_->list_stream_consumers(stream_arn_)), std::vector<std::string>{"shared"});
}

TEST_F(KinesisConsumerTest, EnsureWaitsOutADeletingConsumerAndRegistersItAgain) {
  const StreamConsumer old = ensure_stream_consumer(*client_, stream_, "phoenix", 10s);
  client_->deregister_stream_consumer(old.consumer_arn);
  ASSERT_EQ(client_->describe_stream_consumer(stream_arn_, "phoenix").status, "DELETING");
  const StreamConsumer again = ensure_stream_consumer(*client_, stream_, "phoenix", 10s);
  EXPECT_EQ(again.status, "ACTIVE");
  EXPECT_EQ(client_->describe_stream_consumer(stream_arn_, "phoenix").status, "ACTIVE");
}

TEST_F(KinesisConsumerTest, EnsureOnAMissingStreamIsResourceNotFoundNamingIt) {
  try {
    (void)ensure_stream_consumer(*client_, "no-such-stream", "c", 5s);
    FAIL() << "no error";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
    EXPECT_TRUE(contains(e.what(), "no-such-stream")) << e.what();
  }
  EXPECT_THROW((void)ensure_stream_consumer(*client_, stream_, "", 5s), ConfigError);
}

// kinesis-local enforces the service's limits: 20 consumers per stream, 5 CREATING at once,
// both LimitExceededException (a ThrottledError: the same code as throttling).
TEST_F(KinesisConsumerTest, TheTwentyFirstConsumerIsRefusedWithTheServicesMessage) {
  std::vector<std::string> arns;
  for (int i = 0; i < 20; ++i) {
    if (i % 5 == 0) {
      for (const auto& arn : arns) ASSERT_TRUE(wait_for_status(*client_, arn, "ACTIVE"));
    }
    arns.push_back(client_->register_stream_consumer(stream_arn_, "c" + std::to_string(i)).consumer_arn);
  }
  for (const auto& arn : arns) ASSERT_TRUE(wait_for_status(*client_, arn, "ACTIVE"));
  EXPECT_EQ(client_->list_stream_consumers(stream_arn_).size(), 20u);
  try {
    (void)client_->register_stream_consumer(stream_arn_, "c20");
    FAIL() << "a 21st consumer was registered";
  } catch (const ThrottledError& e) {
    EXPECT_TRUE(contains(e.what(), "20 consumers")) << e.what();
    EXPECT_TRUE(contains(e.what(), "consumer c20")) << e.what();
  }
  // An existing one is still found without registering.
  EXPECT_EQ(ensure_stream_consumer(*client_, stream_, "c7", 5s).consumer_arn, arns[7]);
}

// --- what kinesis-local cannot show: the fake server ----------------------------------------

constexpr const char* fake_stream_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";

HttpReply summary_reply() {
  return HttpReply::json(std::string(R"({"StreamDescriptionSummary":{"StreamName":"orders","StreamARN":")") +
                         fake_stream_arn + R"(","StreamStatus":"ACTIVE","OpenShardCount":1}})");
}

HttpReply consumer_reply(const char* wrapper, const char* status) {
  return HttpReply::json(std::string(R"({")") + wrapper +
                         R"(":{"ConsumerName":"app","ConsumerARN":")" + fake_stream_arn +
                         R"(/consumer/app:1","ConsumerStatus":")" + status +
                         R"(","ConsumerCreationTimestamp":1.7E9}})");
}

TEST(EnsureStreamConsumerFaults, ThrottlingIsRetriedUntilTheConsumerIsActive) {
  std::atomic<int> describes{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    const std::string target = req.header("x-amz-target");
    if (contains(target, "DescribeStreamSummary")) return summary_reply();
    if (contains(target, "DescribeStreamConsumer")) {
      const int n = describes.fetch_add(1);
      if (n < 2) return HttpReply::aws_error(400, "LimitExceededException", "Rate exceeded for stream orders");
      if (n == 2) return HttpReply::aws_error(400, "ResourceNotFoundException", "no consumer app");
      return consumer_reply("ConsumerDescription", n < 5 ? "CREATING" : "ACTIVE");
    }
    if (contains(target, "RegisterStreamConsumer")) return consumer_reply("Consumer", "CREATING");
    return HttpReply::aws_error(400, "InvalidArgumentException", "unexpected " + target);
  });
  KinesisClient client(server.client_options());
  const StreamConsumer c = ensure_stream_consumer(client, "orders", "app", 20s);
  EXPECT_EQ(c.status, "ACTIVE");
  EXPECT_EQ(c.consumer_arn, std::string(fake_stream_arn) + "/consumer/app:1");
  int registers = 0;
  for (const auto& r : server.requests()) {
    if (contains(r.header("x-amz-target"), "RegisterStreamConsumer")) {
      ++registers;
      EXPECT_TRUE(contains(r.body, R"("StreamARN":")" + std::string(fake_stream_arn))) << r.body;
      EXPECT_TRUE(contains(r.body, R"("ConsumerName":"app")")) << r.body;
    }
  }
  EXPECT_EQ(registers, 1);
}

TEST(EnsureStreamConsumerFaults, AConsumerNeverActiveIsATimeoutNamingItAndTheStream) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "DescribeStreamSummary")) return summary_reply();
    return consumer_reply("ConsumerDescription", "CREATING");
  });
  KinesisClient client(server.client_options());
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)ensure_stream_consumer(client, "orders", "app", 700ms);
    FAIL() << "no timeout";
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "consumer 'app'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "stream 'orders'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "CREATING")) << e.what();
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 700ms);
  EXPECT_LT(took, 2s) << "the timeout bounds the wait";
}

TEST(EnsureStreamConsumerFaults, ThrottlingPastTheTimeoutEndsWithTheLastError) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "DescribeStreamSummary")) return summary_reply();
    return HttpReply::aws_error(400, "LimitExceededException", "Rate exceeded for stream orders");
  });
  KinesisClient client(server.client_options());
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)ensure_stream_consumer(client, "orders", "app", 600ms);
    FAIL() << "no error";
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "Rate exceeded for stream orders")) << e.what();
    EXPECT_TRUE(contains(e.what(), "consumer 'app'")) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

}  // namespace
}  // namespace kclpp::aws
