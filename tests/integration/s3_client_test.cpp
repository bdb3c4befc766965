// The S3 client against s3rver (round trips, ranges, multipart, pagination, typed errors),
// against FakeHttpServer (fault injection: throttling, 5xx, resets, part retries, aborts),
// and its SigV4 signatures against python3-botocore's (s3rver does not check them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/aws/s3_client.hpp"
#include "kclpp/internal/hex.hpp"
#include "kclpp/processor/error.hpp"
#include "botocore_signer.hpp"
#include "fake_http_server.hpp"
#include "local_server.hpp"
#include "s3rver_fixture.hpp"
#include "support.hpp"

namespace kclpp::pipeline {
namespace {

namespace fs = std::filesystem;
using test::FakeHttpServer;
using test::HttpReply;
using test::HttpRequest;

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

// A file under the temp dir, removed at scope exit.
struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& bytes) {
    static int n = 0;
    path = fs::temp_directory_path() / ("kclpp_s3_test_" + std::to_string(::getpid()) + "_" + std::to_string(++n));
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// One s3rver for the whole file (starting node costs ~1 s).
class S3ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<test::S3rver>(); }
  static void TearDownTestSuite() {
    server_.reset();
  }
  void SetUp() override {
    KCLPP_REQUIRE_SERVER(*server_);
  }
  // A fresh bucket per test.
  std::string bucket() {
    const std::string name = "kclpp-" + std::to_string(++buckets_);
    server_->create_bucket(name);
    return name;
  }
  static aws::S3Client client() { return aws::S3Client(server_->s3_options()); }

  static std::unique_ptr<test::S3rver> server_;
  static int buckets_;
};
std::unique_ptr<test::S3rver> S3ClientTest::server_;
int S3ClientTest::buckets_ = 0;

TEST_F(S3ClientTest, PutGetRoundTripsBinaryBytes) {
  const std::string b = bucket();
  aws::S3Client c = client();
  const std::string body = random_bytes(300'000, 1) + std::string("\0\r\n", 3);
  const aws::PutObjectResult put = c.put_object(b, "dir/object.bin", body, "application/octet-stream");
  EXPECT_EQ(put.parts, 1);
  EXPECT_EQ(put.etag.size(), 32u) << put.etag;  // MD5 hex, quotes removed
  EXPECT_EQ(c.get_object(b, "dir/object.bin"), body);

  std::string streamed;
  int chunks = 0;
  const std::uint64_t size = c.get_object(b, "dir/object.bin", [&](std::string_view chunk) {
    streamed.append(chunk);
    ++chunks;
  });
  EXPECT_EQ(size, body.size());
  EXPECT_EQ(streamed, body);
  EXPECT_GE(chunks, 1);

  c.put_object(b, "empty", "");
  EXPECT_EQ(c.get_object(b, "empty"), "");
}

TEST_F(S3ClientTest, KeysWithSpecialCharactersRoundTrip) {
  const std::string b = bucket();
  aws::S3Client c = client();
  const std::vector<std::string> keys = {"a b/c+d=e&f", "ünïcødé/日本語", "x%20y", "semi;colon,comma",
                                         "tilde~and'quote\""};
  for (const auto& k : keys) c.put_object(b, k, "body of " + k);
  for (const auto& k : keys) EXPECT_EQ(c.get_object(b, k), "body of " + k) << k;
  std::vector<std::string> listed;
  for (const auto& o : c.list_objects(b, "")) listed.push_back(o.key);
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(listed, sorted);
}

TEST_F(S3ClientTest, SinkExceptionAbortsTheTransferAndPropagates) {
  const std::string b = bucket();
  aws::S3Client c = client();
  c.put_object(b, "big", random_bytes(4 << 20, 2));
  struct Stop {};
  std::uint64_t seen = 0;
  EXPECT_THROW((void)c.get_object(b, "big",
                                  [&](std::string_view chunk) {
                                    seen += chunk.size();
                                    throw Stop{};
                                  }),
               Stop);
  EXPECT_LT(seen, 4u << 20);
  // The client stays usable afterwards.
  EXPECT_EQ(c.get_object(b, "big").size(), 4u << 20);
}

TEST_F(S3ClientTest, RangesReturnTheRequestedBytes) {
  const std::string b = bucket();
  aws::S3Client c = client();
  const std::string body = random_bytes(10'000, 3);
  c.put_object(b, "r", body);
  EXPECT_EQ(c.get_object_range(b, "r", 0, 100), body.substr(0, 100));
  EXPECT_EQ(c.get_object_range(b, "r", 1234, 4321), body.substr(1234, 4321));
  EXPECT_EQ(c.get_object_range(b, "r", 9'990, 100), body.substr(9'990));  // fewer at the end
  EXPECT_EQ(c.get_object_range(b, "r", 10'000, 10), "");                   // past it
  EXPECT_EQ(c.get_object_range(b, "r", 50'000, 10), "");
  EXPECT_EQ(c.get_object_range(b, "r", 5, 0), "");
}

TEST_F(S3ClientTest, PutFileGoesMultipartAboveTheThreshold) {
  const std::string b = bucket();
  aws::S3Options o = server_->s3_options();
  o.multipart_threshold = 6ull << 20;
  o.part_size = 5ull << 20;
  aws::S3Client c(o);
  const std::string big = random_bytes((12ull << 20) + 12345, 4);
  const TempFile f(big);
  // Three parts, sent at once (upload_parallelism 4 by default).
  const aws::PutObjectResult r = c.put_file(b, "multi/part", f.path.string(), "application/x-tri");
  EXPECT_EQ(r.parts, 3);
  EXPECT_EQ(c.get_object(b, "multi/part"), big);
  const auto head = c.head_object(b, "multi/part");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->size, big.size());
  // The same file one part at a time: the same ETag (s3rver's is the MD5 of the assembled
  // object, S3's the MD5 of the parts' MD5s in part order with "-3": equal either way only
  // when the parallel upload put the same parts under the same numbers).
  o.upload_parallelism = 1;
  aws::S3Client serial(o);
  const aws::PutObjectResult one_by_one = serial.put_file(b, "multi/serial", f.path.string());
  EXPECT_EQ(one_by_one.parts, 3);
  EXPECT_EQ(one_by_one.etag, r.etag);
  EXPECT_EQ(serial.get_object(b, "multi/serial"), big);

  const std::string small = random_bytes(1'000, 5);
  const TempFile g(small);
  const aws::PutObjectResult s = c.put_file(b, "single", g.path.string());
  EXPECT_EQ(s.parts, 1);
  EXPECT_EQ(c.get_object(b, "single"), small);
  EXPECT_THROW((void)c.put_file(b, "missing", "/nonexistent/kclpp/file"), Error);
}

TEST_F(S3ClientTest, ListFollowsContinuationTokensAndPrefixes) {
  const std::string b = bucket();
  aws::S3Client c = client();
  for (int i = 0; i < 7; ++i) c.put_object(b, "p/" + std::to_string(i), std::string(static_cast<std::size_t>(i), 'x'));
  c.put_object(b, "q/other", "y");
  c.put_object(b, "r+special/ü 1", "z");
  const auto all = c.list_objects(b, "p/", 2);
  ASSERT_EQ(all.size(), 7u);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(all[static_cast<std::size_t>(i)].key, "p/" + std::to_string(i));
    EXPECT_EQ(all[static_cast<std::size_t>(i)].size, static_cast<std::uint64_t>(i));
    EXPECT_FALSE(all[static_cast<std::size_t>(i)].last_modified.empty());
    EXPECT_EQ(all[static_cast<std::size_t>(i)].etag.size(), 32u);
  }
  {
    std::string got;
    for (const auto& o : c.list_objects(b, "", 3)) got += o.key + "|";
    EXPECT_EQ(got, "p/0|p/1|p/2|p/3|p/4|p/5|p/6|q/other|r+special/ü 1|");
  }
  EXPECT_EQ(c.list_objects(b, "").size(), 9u);
  const auto special = c.list_objects(b, "r+special/", 1);
  ASSERT_EQ(special.size(), 1u);
  EXPECT_EQ(special[0].key, "r+special/ü 1");
  EXPECT_TRUE(c.list_objects(b, "nothing/").empty());
}

TEST_F(S3ClientTest, HeadDescribesAnObjectUntilItIsDeleted) {
  const std::string b = bucket();
  aws::S3Client c = client();
  const auto put = c.put_object(b, "h", "hello");
  const auto head = c.head_object(b, "h");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->key, "h");
  EXPECT_EQ(head->size, 5u);
  EXPECT_EQ(head->etag, put.etag);
  EXPECT_EQ(head->last_modified.size(), 24u) << head->last_modified;  // 2026-12-01T09:29:42.000Z
  EXPECT_FALSE(c.head_object(b, "nope"));
  c.delete_object(b, "h");
  EXPECT_FALSE(c.head_object(b, "h"));
  c.delete_object(b, "h");  // deleting a missing key succeeds, as on S3
}

TEST_F(S3ClientTest, ErrorsAreTyped) {
  const std::string b = bucket();
  aws::S3Client c = client();
  try {
    (void)c.get_object(b, "missing/key");
    FAIL() << "no exception";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "NoSuchKey");
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(std::string(e.what()).find(b + "/missing/key"), std::string::npos) << e.what();
  }
  try {
    (void)c.list_objects("no-such-bucket", "");
    FAIL() << "no exception";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "NoSuchBucket");
    EXPECT_NE(std::string(e.what()).find("no-such-bucket"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)c.put_object("no-such-bucket", "k", "v"), aws::AwsError);
  std::uint64_t delivered = 0;
  EXPECT_THROW((void)c.get_object(b, "missing", [&](std::string_view s) { delivered += s.size(); }), aws::AwsError);
  EXPECT_EQ(delivered, 0u);  // the error body never reaches the sink

  aws::S3Options wrong = server_->s3_options();
  wrong.credentials = aws::static_credentials({"NOT-A-KEY", "secret", ""});
  aws::S3Client bad(wrong);
  EXPECT_THROW((void)bad.get_object(b, "k"), AuthError);
}

TEST(S3ClientTransport, UnreachableEndpointIsARetryableTransportError) {
  aws::S3Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(test::unused_port());
  o.region = "us-east-1";
  o.credentials = aws::static_credentials({"AK", "SK", ""});
  o.connect_timeout = std::chrono::milliseconds{500};
  aws::S3Client c(o);
  try {
    (void)c.get_object("b", "k");
    FAIL() << "no exception";
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_NE(std::string(e.what()).find("s3://b/k"), std::string::npos) << e.what();
  }
}

// --- fault injection (FakeHttpServer) ----------------------------------------------------

HttpReply xml(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "application/xml";
  return r;
}
HttpReply s3_error(int status, const std::string& code) {
  return xml(status, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code +
                         "</Code><Message>injected " + code + "</Message></Error>");
}
// FakeHttpServer writes content_type verbatim after "Content-Type: ": the only way to give a
// reply an extra header (UploadPart's ETag).
HttpReply with_etag(HttpReply r, const std::string& etag) {
  r.content_type += "\r\nETag: \"" + etag + "\"";
  return r;
}

bool contains(const std::string& s, std::string_view needle) { return s.find(needle) != std::string::npos; }

aws::S3Options fake_options(const FakeHttpServer& server) {
  aws::S3Options o;
  o.endpoint = server.endpoint();
  o.region = "us-east-1";
  o.credentials = aws::static_credentials({"AKIDKCLPPTEST", "kclpp-test-secret", ""});
  o.connect_timeout = std::chrono::milliseconds{1'000};
  o.low_speed_timeout = std::chrono::milliseconds{5'000};
  return o;
}

TEST(S3ClientFaults, SlowDownAnd503AreThrottled) {
  FakeHttpServer server([](const HttpRequest& req) {
    return contains(req.path, "bare") ? xml(503, "") : s3_error(503, "SlowDown");
  });
  aws::S3Client c(fake_options(server));
  EXPECT_THROW((void)c.get_object("b", "k"), ThrottledError);
  EXPECT_THROW((void)c.put_object("b", "bare", "x"), ThrottledError);
  try {
    (void)c.list_objects("b", "p");
    FAIL() << "no exception";
  } catch (const ThrottledError& e) {
    EXPECT_EQ(e.retry(), Retry::Throttled);
    EXPECT_TRUE(contains(e.what(), "SlowDown")) << e.what();
    EXPECT_TRUE(contains(e.what(), "s3://b")) << e.what();
  }
}

TEST(S3ClientFaults, ServerErrorsAndResetsAreRetryableTransportErrors) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (contains(req.path, "reset")) return HttpReply::reset();
    if (contains(req.path, "close")) return HttpReply::close();
    if (contains(req.path, "html")) return xml(400, "<html>proxy says no</html>");
    if (contains(req.path, "denied")) return xml(403, "");
    return s3_error(500, "InternalError");
  });
  aws::S3Client c(fake_options(server));
  for (const char* key : {"k", "reset", "close"}) {
    try {
      (void)c.get_object("b", key);
      FAIL() << key << ": no exception";
    } catch (const TransportError& e) {
      EXPECT_EQ(e.retry(), Retry::Yes) << key;
      EXPECT_TRUE(contains(e.what(), std::string("s3://b/") + key)) << e.what();
    }
  }
  EXPECT_THROW((void)c.put_object("b", "reset", "body"), TransportError);  // idempotent: not in doubt
  EXPECT_THROW((void)c.get_object("b", "html"), ProtocolError);
  try {
    (void)c.head_object("b", "denied");
    FAIL() << "no exception";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "AccessDenied");
    EXPECT_EQ(e.http_status(), 403);
  }
  EXPECT_THROW((void)c.get_object("b", "k", [](std::string_view) {}), TransportError);
}

TEST(S3ClientFaults, AuthErrorsAreTyped) {
  FakeHttpServer server([](const HttpRequest& req) {
    return s3_error(403, contains(req.path, "sig") ? "SignatureDoesNotMatch" : "ExpiredToken");
  });
  aws::S3Client c(fake_options(server));
  EXPECT_THROW((void)c.get_object("b", "sig"), AuthError);
  EXPECT_THROW((void)c.put_object("b", "token", "x"), AuthError);
}

// A multipart server: CreateMultipartUpload, UploadPart (`fail_part` fails `fail_times`),
// CompleteMultipartUpload (answered by `complete`), AbortMultipartUpload.
struct MultipartServer {
  int fail_part = 0;
  int fail_times = 0;
  HttpReply fail_reply = s3_error(500, "InternalError");
  std::function<HttpReply(int attempt)> complete = [](int) {
    return xml(200, "<CompleteMultipartUploadResult><ETag>&quot;final-3&quot;</ETag></CompleteMultipartUploadResult>");
  };
  int complete_attempts = 0;
  std::map<int, std::string> parts;
  std::mutex mutex;

  HttpReply handle(const HttpRequest& req) {
    std::lock_guard lock(mutex);
    if (req.method == "POST" && contains(req.path, "?uploads=")) {
      return xml(200, "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                      "<UploadId>up/id+1=</UploadId></InitiateMultipartUploadResult>");
    }
    if (req.method == "PUT" && contains(req.path, "partNumber=")) {
      const int n = std::stoi(req.path.substr(req.path.find("partNumber=") + 11));
      if (n == fail_part && fail_times > 0) {
        --fail_times;
        return fail_reply;
      }
      parts[n] = req.body;
      return with_etag(xml(200, ""), "etag-" + std::to_string(n));
    }
    if (req.method == "POST" && contains(req.path, "uploadId=")) return complete(++complete_attempts);
    if (req.method == "DELETE" && contains(req.path, "uploadId=")) return xml(204, "");
    return s3_error(400, "Unexpected");
  }
};

// One part at a time (the tests below check the exact order of the calls).
aws::S3Options small_parts(const FakeHttpServer& server) {
  aws::S3Options o = fake_options(server);
  o.multipart_threshold = 1'500;
  o.part_size = 1'000;
  o.upload_parallelism = 1;
  return o;
}

// MultipartServer behind a server with a thread per connection, where each UploadPart
// takes `part_time` (outside the MultipartServer's lock) and the most parts in flight at
// once are counted.
struct ConcurrentParts {
  MultipartServer m;
  std::chrono::milliseconds part_time{100};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};

  HttpReply handle(const HttpRequest& req) {
    const bool is_part = req.method == "PUT" && contains(req.path, "partNumber=");
    if (!is_part) return m.handle(req);
    const int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    HttpReply r = m.handle(req);
    if (r.status == 200) std::this_thread::sleep_for(part_time);  // a failing part fails at once
    --in_flight;
    return r;
  }
};

std::vector<std::string> methods_and_paths(const FakeHttpServer& server) {
  std::vector<std::string> out;
  for (const auto& r : server.requests()) out.push_back(r.method + " " + r.path);
  return out;
}

TEST(S3ClientFaults, AFailingPartIsRetriedThenTheUploadCompletes) {
  MultipartServer m;
  m.fail_part = 2;
  m.fail_times = 1;
  FakeHttpServer server([&](const HttpRequest& req) { return m.handle(req); });
  aws::S3Client c(small_parts(server));
  const std::string body = random_bytes(2'500, 7);
  const TempFile f(body);
  const aws::PutObjectResult r = c.put_file("b", "dir/k ü", f.path.string());
  EXPECT_EQ(r.parts, 3);
  EXPECT_EQ(r.etag, "final-3");
  ASSERT_EQ(m.parts.size(), 3u);
  EXPECT_EQ(m.parts[1] + m.parts[2] + m.parts[3], body);
  const auto calls = methods_and_paths(server);
  ASSERT_EQ(calls.size(), 6u);  // create, part 1, part 2 (failed), part 2, part 3, complete
  EXPECT_EQ(calls[0], "POST /b/dir/k%20%C3%BC?uploads=");
  EXPECT_EQ(calls[2], "PUT /b/dir/k%20%C3%BC?partNumber=2&uploadId=up%2Fid%2B1%3D");
  EXPECT_EQ(calls[3], calls[2]);
  EXPECT_EQ(calls[5], "POST /b/dir/k%20%C3%BC?uploadId=up%2Fid%2B1%3D");
  const std::string complete_body = server.requests()[5].body;
  EXPECT_TRUE(contains(complete_body, "<PartNumber>3</PartNumber><ETag>&quot;etag-3&quot;</ETag>")) << complete_body;
}

TEST(S3ClientFaults, CompleteReporting200WithAnErrorIsRetried) {
  MultipartServer m;
  m.complete = [](int attempt) {
    if (attempt == 1) return xml(200, "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code></Error>");
    return xml(200, "<CompleteMultipartUploadResult><ETag>&quot;ok-3&quot;</ETag></CompleteMultipartUploadResult>");
  };
  FakeHttpServer server([&](const HttpRequest& req) { return m.handle(req); });
  aws::S3Client c(small_parts(server));
  const TempFile f(random_bytes(2'100, 8));
  EXPECT_EQ(c.put_file("b", "k", f.path.string()).etag, "ok-3");
  EXPECT_EQ(m.complete_attempts, 2);
}

TEST(S3ClientFaults, AFailedCompleteAbortsTheUpload) {
  MultipartServer m;
  m.complete = [](int) { return s3_error(400, "InvalidPart"); };
  FakeHttpServer server([&](const HttpRequest& req) { return m.handle(req); });
  aws::S3Client c(small_parts(server));
  const TempFile f(random_bytes(2'100, 9));
  try {
    (void)c.put_file("b", "k", f.path.string());
    FAIL() << "no exception";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "InvalidPart");
  }
  const auto calls = methods_and_paths(server);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), "DELETE /b/k?uploadId=up%2Fid%2B1%3D");
  EXPECT_EQ(m.complete_attempts, 1);  // not retryable: no second attempt
}

TEST(S3ClientFaults, AFailedPartAbortsTheUpload) {
  MultipartServer m;
  m.fail_part = 2;
  m.fail_times = 100;
  m.fail_reply = s3_error(403, "AccessDenied");  // not retryable: fails at once
  FakeHttpServer server([&](const HttpRequest& req) { return m.handle(req); });
  aws::S3Client c(small_parts(server));
  const TempFile f(random_bytes(2'100, 10));
  EXPECT_THROW((void)c.put_file("b", "k", f.path.string()), aws::AwsError);
  const auto calls = methods_and_paths(server);
  ASSERT_EQ(calls.size(), 4u);  // create, part 1, part 2, abort
  EXPECT_EQ(calls.back(), "DELETE /b/k?uploadId=up%2Fid%2B1%3D");
  EXPECT_EQ(m.complete_attempts, 0);
}

TEST(S3ClientFaults, PartsGoUpInParallelEachOnItsOwnConnection) {
  ConcurrentParts p;
  FakeHttpServer server([&](const HttpRequest& req) { return p.handle(req); },
                        FakeHttpServer::Mode::ThreadPerConnection);
  aws::S3Options o = small_parts(server);
  o.upload_parallelism = 4;
  aws::S3Client c(o);
  const std::string body = random_bytes(7'500, 11);  // 8 parts
  const TempFile f(body);
  const aws::PutObjectResult r = c.put_file("b", "k", f.path.string());
  EXPECT_EQ(r.parts, 8);
  EXPECT_GE(p.max_in_flight.load(), 2);
  EXPECT_LE(p.max_in_flight.load(), 4);
  EXPECT_LE(server.connections(), 4);  // the client's own handle and three helpers
  std::string joined;
  for (const auto& [n, bytes] : p.m.parts) joined += bytes;
  EXPECT_EQ(p.m.parts.size(), 8u);
  EXPECT_EQ(joined, body);
  const auto requests = server.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().method, "POST");  // Complete, after every part
  std::string want;
  for (int n = 1; n <= 8; ++n) {
    want += "<Part><PartNumber>" + std::to_string(n) + "</PartNumber><ETag>&quot;etag-" + std::to_string(n) +
            "&quot;</ETag></Part>";
  }
  EXPECT_TRUE(contains(requests.back().body, want)) << requests.back().body;

  // A second upload reuses the helpers' connections.
  const int before = server.connections();
  (void)c.put_file("b", "k2", f.path.string());
  EXPECT_EQ(server.connections(), before);
}

TEST(S3ClientFaults, AFailedPartInParallelStopsNewPartsAndAbortsAfterTheOthers) {
  ConcurrentParts p;
  p.m.fail_part = 2;
  p.m.fail_times = 100;
  p.m.fail_reply = s3_error(403, "AccessDenied");  // not retryable
  FakeHttpServer server([&](const HttpRequest& req) { return p.handle(req); },
                        FakeHttpServer::Mode::ThreadPerConnection);
  aws::S3Options o = small_parts(server);
  o.upload_parallelism = 3;
  aws::S3Client c(o);
  const TempFile f(random_bytes(11'500, 12));  // 12 parts
  try {
    (void)c.put_file("b", "k", f.path.string());
    FAIL() << "no exception";
  } catch (const aws::AwsError& e) {
    EXPECT_EQ(e.type(), "AccessDenied");
    EXPECT_NE(std::string(e.what()).find("UploadPart"), std::string::npos) << e.what();
  }
  const auto calls = methods_and_paths(server);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), "DELETE /b/k?uploadId=up%2Fid%2B1%3D");  // after the parts in flight
  int part_puts = 0;
  for (const auto& call : calls) part_puts += contains(call, "partNumber=") ? 1 : 0;
  EXPECT_LT(part_puts, 12);  // no new part after the failure (3 in flight, a few taken meanwhile)
  EXPECT_EQ(p.m.complete_attempts, 0);
}

TEST(S3ClientFaults, UploadParallelismIsChecked) {
  aws::S3Options o;
  o.region = "us-east-1";
  o.credentials = aws::static_credentials({"AKIDKCLPPTEST", "kclpp-test-secret", ""});
  o.upload_parallelism = 0;
  EXPECT_THROW(aws::S3Client{o}, ConfigError);
  o.upload_parallelism = 65;
  EXPECT_THROW(aws::S3Client{o}, ConfigError);
}

TEST(S3ClientFaults, ASilentServerTimesOut) {
  FakeHttpServer server([](const HttpRequest&) {
    HttpReply r = xml(200, "late");
    r.delay = std::chrono::milliseconds{2'500};
    return r;
  });
  aws::S3Options o = fake_options(server);
  o.low_speed_timeout = std::chrono::milliseconds{1'000};
  aws::S3Client c(o);
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)c.get_object("b", "k");
    FAIL() << "no exception";
  } catch (const TransportError& e) {
    EXPECT_TRUE(contains(e.what(), "timed out")) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds{2'400});
}

TEST(S3ClientFaults, OneConnectionIsReusedAndRangesSurviveAServerIgnoringThem) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (req.method == "HEAD") return xml(404, "");
    return xml(200, "0123456789");  // no Range support: the whole object, status 200
  });
  aws::S3Client c(fake_options(server));
  EXPECT_EQ(c.get_object_range("b", "k", 2, 3), "234");
  EXPECT_EQ(c.get_object_range("b", "k", 8, 10), "89");
  EXPECT_EQ(c.get_object_range("b", "k", 10, 10), "");
  EXPECT_FALSE(c.head_object("b", "k"));
  EXPECT_EQ(c.get_object("b", "k"), "0123456789");
  EXPECT_EQ(server.connections(), 1);
}

// --- SigV4 against botocore ---------------------------------------------------------------

// The SignedHeaders list of an Authorization header.
std::vector<std::string> signed_headers(const std::string& authorization) {
  const auto start = authorization.find("SignedHeaders=");
  if (start == std::string::npos) return {};
  const auto end = authorization.find(',', start);
  const std::string list = authorization.substr(start + 14, end - start - 14);
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const auto semi = std::min(list.find(';', pos), list.size());
    out.push_back(list.substr(pos, semi - pos));
    pos = semi + 1;
  }
  return out;
}

// botocore's S3SigV4Auth Authorization for each captured request (same method, URL,
// signed headers, body, credentials and X-Amz-Date), one python3 run for all.
std::vector<std::string> botocore_authorizations(const std::string& endpoint, const std::vector<HttpRequest>& requests,
                                                 const aws::Credentials& creds) {
  const fs::path dir = fs::temp_directory_path() / ("kclpp_s3_sigv4_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream in(dir / "requests.tsv", std::ios::binary);
    for (const auto& req : requests) {
      // method, url, amz date, body (hex), then name=value (hex) for each signed header
      in << req.method << '\t' << endpoint << req.path << '\t' << req.header("x-amz-date") << '\t' << kclpp::detail::to_hex(req.body);
      for (const auto& name : signed_headers(req.header("authorization"))) {
        in << '\t' << name << '=' << kclpp::detail::to_hex(req.header(name));
      }
      in << '\n';
    }
  }
  std::ofstream(dir / "sign.py") << R"PY(
import datetime, sys
from unittest import mock
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
ak, sk, token, path = sys.argv[1:5]
for line in open(path, encoding='utf-8'):
    method, url, amz_date, body, *headers = line.rstrip('\n').split('\t')
    hs = {}
    for h in headers:
        name, value = h.split('=', 1)
        hs[name] = bytes.fromhex(value).decode('utf-8')
    req = AWSRequest(method=method, url=url, data=bytes.fromhex(body), headers=hs)
    fixed = datetime.datetime.strptime(amz_date, '%Y%m%dT%H%M%SZ')
    with mock.patch('botocore.auth.datetime') as dt:
        dt.datetime.utcnow.return_value = fixed
        dt.datetime.now.return_value = fixed
        S3SigV4Auth(Credentials(ak, sk, token or None), 's3', 'us-east-1').add_auth(req)
    print(req.headers['Authorization'])
)PY";
  const std::string cmd = "/usr/bin/python3 " + (dir / "sign.py").string() + " '" + creds.access_key_id + "' '" +
                          creds.secret_access_key + "' '" + creds.session_token + "' " +
                          (dir / "requests.tsv").string() + " 2>&1";
  std::string out = ::kclpp::test::shell_output(cmd);
  fs::remove_all(dir);
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < out.size()) {
    const auto nl = std::min(out.find('\n', pos), out.size());
    lines.push_back(out.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

TEST(S3ClientSigV4, SignaturesMatchBotocore) {
  KCLPP_REQUIRE_BOTOCORE();
  int list_calls = 0;
  MultipartServer m;
  FakeHttpServer server([&](const HttpRequest& req) {
    if (contains(req.path, "list-type=2")) {
      if (++list_calls % 2 == 1) {
        return xml(200, "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a b</Key><Size>1</Size>"
                        "</Contents><NextContinuationToken>tok/+= 1&amp;2</NextContinuationToken></ListBucketResult>");
      }
      return xml(200, "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
    }
    if (contains(req.path, "upload") || contains(req.path, "partNumber")) return m.handle(req);
    if (req.method == "GET") {
      HttpReply r = xml(206, "0123456789");
      return r;
    }
    return with_etag(xml(200, ""), "e");
  });
  for (const std::string token : {"", "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="}) {
    aws::S3Options o = small_parts(server);
    o.credentials = aws::static_credentials({"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token});
    aws::S3Client c(o);
    const std::size_t first = server.requests().size();
    c.put_object("bucket", "dir/a b+c=d&e ü.bin", std::string("bin\0\x01ary", 8), "application/x-tri");
    c.put_object("bucket", "empty", "");
    (void)c.get_object_range("bucket", "k~ü", 100, 10);
    (void)c.list_objects("bucket", "pre fix/ü+=&", 2);
    const TempFile f(random_bytes(2'100, 11));
    (void)c.put_file("bucket", "multi/part ü", f.path.string());
    (void)c.head_object("bucket", "h");
    c.delete_object("bucket", "d/e l");
    c.create_bucket("new-bucket");
    auto requests = server.requests();
    requests.erase(requests.begin(), requests.begin() + static_cast<std::ptrdiff_t>(first));
    ASSERT_EQ(requests.size(), 13u);  // 2 PUT, GET, 2 list, create+3 parts+complete, HEAD, DELETE, bucket
    const auto expected = botocore_authorizations(server.endpoint(), requests, o.credentials->credentials());
    ASSERT_EQ(expected.size(), requests.size()) << (expected.empty() ? "" : expected[0]);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const HttpRequest& req = requests[i];
      EXPECT_EQ(req.header("authorization"), expected[i]) << req.method << " " << req.path;
      if (!token.empty()) { EXPECT_EQ(req.header("x-amz-security-token"), token); }
      EXPECT_EQ(req.header("host"), server.endpoint().substr(7));
    }
    EXPECT_TRUE(contains(requests[3].path, "prefix=pre%20fix%2F%C3%BC%2B%3D%26")) << requests[3].path;
    EXPECT_TRUE(contains(requests[4].path, "continuation-token=tok%2F%2B%3D%201%262")) << requests[4].path;
    EXPECT_EQ(requests[2].header("range"), "bytes=100-109");
    EXPECT_EQ(requests[0].header("content-type"), "application/x-tri");
  }
}

TEST(S3ClientAddressing, VirtualHostedAndPathStyle) {
  FakeHttpServer server([](const HttpRequest&) { return with_etag(xml(200, ""), "e"); });
  aws::S3Options o = fake_options(server);
  // libcurl resolves *.localhost to the loopback without DNS (7.85+): a virtual-hosted
  // request reaches the fake server with the bucket in its Host header.
  const std::string port = server.endpoint().substr(server.endpoint().rfind(':') + 1);
  o.endpoint = "http://localhost:" + port;
  o.addressing = aws::Addressing::VirtualHosted;
  {
    // (Scoped: the fake server serves one keep-alive connection at a time.)
    aws::S3Client c(o);
    try {
      c.put_object("bucket", "dir/k", "v");
      EXPECT_EQ(server.requests().back().path, "/dir/k");
      EXPECT_EQ(server.requests().back().header("host"), "bucket.localhost:" + port);
    } catch (const TransportError& e) {
      // An older libcurl asks the resolver, which may not know *.localhost.
      EXPECT_TRUE(contains(e.what(), "s3://bucket/dir/k")) << e.what();
    }
  }
  o.addressing = aws::Addressing::Auto;  // an endpoint: path-style
  aws::S3Client p(o);
  p.put_object("bucket", "k", "v");
  EXPECT_EQ(server.requests().back().path, "/bucket/k");
  EXPECT_EQ(server.requests().back().header("host"), "localhost:" + port);
}

// Sets environment variables for one scope, restoring the previous values.
class ScopedEnv {
 public:
  using Vars = std::vector<std::pair<std::string, std::string>>;
  explicit ScopedEnv(const Vars& vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      if (value.empty()) {
        ::unsetenv(name.c_str());
      } else {
        ::setenv(name.c_str(), value.c_str(), 1);
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(S3ClientCredentials, RegionAndCredentialsComeFromTheEnvironmentWhenNotGiven) {
  FakeHttpServer server([](const HttpRequest&) { return with_etag(xml(200, ""), "e"); });
  const ScopedEnv env(ScopedEnv::Vars{{"AWS_ACCESS_KEY_ID", "AKIDFROMENV"},
                       {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                       {"AWS_SESSION_TOKEN", "env-token"},
                       {"AWS_REGION", "eu-central-1"},
                       {"AWS_DEFAULT_REGION", ""},
                       {"AWS_PROFILE", ""},
                       {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kclpp/credentials"},
                       {"AWS_CONFIG_FILE", "/nonexistent/kclpp/config"}});
  aws::S3Options o;
  o.endpoint = server.endpoint();
  aws::S3Client c(o);
  EXPECT_EQ(c.options().region, "eu-central-1");
  c.put_object("b", "k", "v");
  const HttpRequest req = server.requests().back();
  EXPECT_TRUE(contains(req.header("authorization"), "Credential=AKIDFROMENV/")) << req.header("authorization");
  EXPECT_TRUE(contains(req.header("authorization"), "/eu-central-1/s3/aws4_request")) << req.header("authorization");
  EXPECT_EQ(req.header("x-amz-security-token"), "env-token");
  // Nothing anywhere: a ConfigError for the region, an AuthError for the credentials.
  {
    const ScopedEnv none(ScopedEnv::Vars{{"AWS_REGION", ""}});
    EXPECT_THROW(aws::S3Client{o}, ConfigError);
  }
  const ScopedEnv no_keys(ScopedEnv::Vars{{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", ""}, {"AWS_SESSION_TOKEN", ""}, {"AWS_SECURITY_TOKEN", ""},
                           {"HOME", "/nonexistent/kclpp"}, {"AWS_EC2_METADATA_DISABLED", "true"}});
  EXPECT_THROW(aws::S3Client{o}, AuthError);
}

}  // namespace
}  // namespace kclpp::pipeline
