// The STS client against a fake STS on loopback: the Query requests it sends (signed
// AssumeRole, unsigned AssumeRoleWithWebIdentity), botocore's signature for the same
// request, the replies it reads, and its errors (never quoting a reply: it holds secrets).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "botocore_signer.hpp"
#include "kclpp/aws/sts_client.hpp"
#include "kclpp/processor/error.hpp"
#include "fake_http_server.hpp"
#include "local_server.hpp"

namespace kclpp::aws {
namespace {

using test::FakeHttpServer;
using test::HttpReply;
using test::HttpRequest;

const char* const kReply =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>"
    "<Credentials><AccessKeyId>ASIAFAKEKEY</AccessKeyId><SecretAccessKey>fake/secret+key</SecretAccessKey>"
    "<SessionToken>fake-session&amp;token</SessionToken><Expiration>2031-02-03T04:05:06Z</Expiration>"
    "</Credentials><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn></AssumedRoleUser>"
    "</AssumeRoleResult></AssumeRoleResponse>";

HttpReply xml(int status, std::string body) {
  HttpReply r = HttpReply::json(std::move(body), status);
  r.content_type = "text/xml";
  return r;
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

StsOptions options_for(const FakeHttpServer& server, CredentialsProviderPtr credentials) {
  StsOptions o;
  o.endpoint = server.endpoint();
  o.region = "eu-west-1";
  o.credentials = std::move(credentials);
  o.request_timeout = std::chrono::milliseconds(2'000);
  return o;
}

TEST(StsClient, AssumeRoleSendsTheQueryAndReadsTheCredentials) {
  FakeHttpServer server([](const HttpRequest&) { return xml(200, kReply); });
  StsClient sts(options_for(server, static_credentials({"AKIDSOURCE", "source-secret", ""})));
  const Credentials c = sts.assume_role({"arn:aws:iam::123456789012:role/app role", "session-1", "ext id/42",
                                         std::chrono::seconds(1800)});
  EXPECT_EQ(c.access_key_id, "ASIAFAKEKEY");
  EXPECT_EQ(c.secret_access_key, "fake/secret+key");
  EXPECT_EQ(c.session_token, "fake-session&token");  // XML entities decoded
  ASSERT_TRUE(c.expiration.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c.expiration), 1927857906);  // 2031-02-03T04:05:06Z (date -d)
  const HttpRequest req = server.requests().at(0);
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.header("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  // Sorted, percent-encoded form parameters.
  EXPECT_EQ(req.body,
            "Action=AssumeRole&DurationSeconds=1800&ExternalId=ext%20id%2F42&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012"
            "%3Arole%2Fapp%20role&RoleSessionName=session-1&Version=2011-06-15");
  EXPECT_TRUE(contains(req.header("authorization"), "Credential=AKIDSOURCE/")) << req.header("authorization");
  EXPECT_TRUE(contains(req.header("authorization"), "/eu-west-1/sts/aws4_request")) << req.header("authorization");
}

TEST(StsClient, WebIdentityIsUnsigned) {
  FakeHttpServer server([](const HttpRequest&) { return xml(200, kReply); });
  StsClient sts(options_for(server, nullptr));
  const Credentials c = sts.assume_role_with_web_identity({"arn:aws:iam::1:role/r", "s", "eyJ.token.sig", {}});
  EXPECT_EQ(c.access_key_id, "ASIAFAKEKEY");
  const HttpRequest req = server.requests().at(0);
  EXPECT_EQ(req.header("authorization"), "");
  EXPECT_TRUE(contains(req.body, "Action=AssumeRoleWithWebIdentity")) << req.body;
  EXPECT_TRUE(contains(req.body, "WebIdentityToken=eyJ.token.sig")) << req.body;
}

TEST(StsClient, ErrorsAreTypedAndNeverQuoteTheReply) {
  int status = 403;
  std::string body;
  FakeHttpServer server([&](const HttpRequest&) { return xml(status, body); });
  StsClient sts(options_for(server, static_credentials({"AKIDSOURCE", "source-secret", ""})));
  const AssumeRoleRequest request{"arn:aws:iam::1:role/r", "s", {}, {}};
  body = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error>"
         "</ErrorResponse>";
  try {
    (void)sts.assume_role(request);
    FAIL();
  } catch (const AuthError& e) {
    EXPECT_TRUE(contains(e.what(), "AccessDenied: not allowed (HTTP 403)")) << e.what();
  }
  status = 400;
  body = "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
  EXPECT_THROW((void)sts.assume_role(request), ThrottledError);
  status = 503;
  body = "<html>down</html>";
  EXPECT_THROW((void)sts.assume_role(request), TransportError);
  status = 400;
  body = "<ErrorResponse><Error><Code>MalformedPolicyDocument</Code></Error></ErrorResponse>";
  try {
    (void)sts.assume_role(request);
    FAIL();
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "MalformedPolicyDocument");
  }
  // A 200 reply that is not the expected XML, and one missing the token: the secret it
  // carries never shows up in the message.
  status = 200;
  body = "<AssumeRoleResponse><SecretAccessKey>LEAKED-SECRET</SecretAccessKey></AssumeRoleResponse>";
  try {
    (void)sts.assume_role(request);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_FALSE(contains(e.what(), "LEAKED-SECRET")) << e.what();
  }
  body = "<AssumeRoleResponse><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>LEAKED-SECRET"
         "</SecretAccessKey><Expiration>2031-02-03T04:05:06Z</Expiration></Credentials></AssumeRoleResponse>";
  try {
    (void)sts.assume_role(request);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_FALSE(contains(e.what(), "LEAKED-SECRET")) << e.what();
    EXPECT_TRUE(contains(e.what(), "SessionToken")) << e.what();
  }
}

// Source credentials that change when expire() is called (as a refreshed role would).
class RotatingSource final : public CredentialsProvider {
 public:
  Credentials credentials() override { return {"AKIDSOURCE" + std::to_string(generation_.load()), "s", "t"}; }
  void expire() noexcept override { ++generation_; }
  std::string describe() const override { return "rotating test source"; }

 private:
  std::atomic<int> generation_{1};
};

TEST(StsClient, ExpiredSourceCredentialsAreRefreshedOnceAndTheCallRepeated) {
  FakeHttpServer server([](const HttpRequest& r) {
    if (contains(r.header("authorization"), "Credential=AKIDSOURCE1/")) {
      return xml(400, "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token included in the "
                      "request is expired</Message></Error></ErrorResponse>");
    }
    return xml(200, kReply);
  });
  StsClient sts(options_for(server, std::make_shared<RotatingSource>()));
  EXPECT_EQ(sts.assume_role({"arn:aws:iam::1:role/r", "s", {}, {}}).access_key_id, "ASIAFAKEKEY");
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_TRUE(contains(server.requests()[1].header("authorization"), "Credential=AKIDSOURCE2/"));
  // Expired again after the refresh: one retry only, then the AuthError.
  FakeHttpServer always_expired([](const HttpRequest&) {
    return xml(400, "<ErrorResponse><Error><Code>ExpiredToken</Code></Error></ErrorResponse>");
  });
  StsClient stale(options_for(always_expired, std::make_shared<RotatingSource>()));
  EXPECT_THROW((void)stale.assume_role({"arn:aws:iam::1:role/r", "s", {}, {}}), AuthError);
  EXPECT_EQ(always_expired.requests().size(), 2u);
}

TEST(StsClient, SignaturesMatchBotocore) {
  KCLPP_REQUIRE_BOTOCORE();
  FakeHttpServer server([](const HttpRequest&) { return xml(200, kReply); });
  for (const std::string token : {"", "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="}) {
    const Credentials source{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token};
    StsClient sts(options_for(server, static_credentials(source)));
    (void)sts.assume_role({"arn:aws:iam::123456789012:role/ü role", "kclpp-session", "external=id", {}});
    const HttpRequest req = server.requests().back();
    const std::string expected = test::botocore_authorization(server.endpoint() + "/", req, source, "sts", "eu-west-1");
    EXPECT_EQ(req.header("authorization"), expected) << "body: " << req.body;
    if (!token.empty()) {
      EXPECT_TRUE(contains(expected, "x-amz-security-token")) << expected;
    }
  }
}

}  // namespace
}  // namespace kclpp::aws
