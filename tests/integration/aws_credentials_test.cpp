// The credential providers and the default chain against loopback fakes of EC2 instance
// metadata, the container endpoint and STS, and against small credential_process scripts:
// each provider's replies and failures, the chain's order, the refresh windows, concurrent
// callers, and that no secret reaches an exception message or a log line.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <latch>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "aws_credentials_fakes.hpp"
#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/aws/sts_client.hpp"

namespace kclpp::aws {
namespace {

using namespace std::chrono_literals;
using namespace kclpp::test::creds;
using test::HttpReply;
using test::HttpRequest;
using Steady = std::chrono::steady_clock;

class AwsCredentials : public CredentialsTest {};

std::vector<std::string> list(std::initializer_list<const char*> items) { return {items.begin(), items.end()}; }

long long ms_since(Steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start).count();
}

InstanceMetadataOptions imds_options(const FakeService& imds) {
  InstanceMetadataOptions o;
  o.endpoint = imds.endpoint();
  o.timeout = 300ms;
  return o;
}

ContainerOptions container_options(const FakeService& container) {
  ContainerOptions o;
  o.full_uri = container.endpoint() + container_path;
  o.timeout = 1'000ms;
  o.attempts = 1;
  return o;
}

const std::string role_arn = "arn:aws:iam::123456789012:role/kclpp-test";

// --- instance metadata -------------------------------------------------------------------------

TEST_F(AwsCredentials, ImdsV2PutsForATokenThenReadsRoleAndCredentialsWithIt) {
  ImdsBehaviour b;
  b.v2_only = true;
  FakeService imds(imds_handler(b));
  InstanceMetadataOptions o = imds_options(imds);
  o.token_ttl = 120s;
  const auto before = Clock::now();
  auto p = instance_metadata_credentials(o);
  EXPECT_EQ(imds.count(), 0u) << "nothing is fetched before the first use";
  const Credentials c = p->credentials();
  EXPECT_EQ(c.access_key_id, imds_key);
  EXPECT_EQ(c.secret_access_key, imds_secret);
  EXPECT_EQ(c.session_token, imds_session);
  ASSERT_TRUE(c.expiration);
  EXPECT_NEAR(static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(*c.expiration - before).count()),
              3600.0, 5.0);

  const auto r = imds.requests();
  ASSERT_EQ(calls(r), list({"PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
                            "GET /latest/meta-data/iam/security-credentials/kclpp-test-role"}));
  EXPECT_EQ(r[0].header("x-aws-ec2-metadata-token-ttl-seconds"), "120");
  EXPECT_TRUE(r[0].body.empty());
  EXPECT_EQ(r[1].header("x-aws-ec2-metadata-token"), imds_token);
  EXPECT_EQ(r[2].header("x-aws-ec2-metadata-token"), imds_token);
  EXPECT_TRUE(contains(p->describe(), imds.endpoint())) << p->describe();

  // Valid for an hour: the next call is served from the cache.
  EXPECT_EQ(p->credentials().access_key_id, imds_key);
  EXPECT_EQ(imds.count(), 3u);
}

TEST_F(AwsCredentials, ImdsFallsBackToV1WhenTheTokenPutIsRefused) {
  for (const int status : {403, 404, 405}) {
    SCOPED_TRACE("token PUT answered " + std::to_string(status));
    ImdsBehaviour b;
    b.token_status = status;
    FakeService imds(imds_handler(b));
    const Credentials c = instance_metadata_credentials(imds_options(imds))->credentials();
    EXPECT_EQ(c.access_key_id, imds_key);
    const auto r = imds.requests();
    ASSERT_EQ(calls(r), list({"PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
                              "GET /latest/meta-data/iam/security-credentials/kclpp-test-role"}));
    EXPECT_EQ(r[1].header("x-aws-ec2-metadata-token"), "");
    EXPECT_EQ(r[2].header("x-aws-ec2-metadata-token"), "");
  }
  EXPECT_GE(logs_.count(LogLevel::Info, "IMDSv1"), 1);
}

TEST_F(AwsCredentials, ImdsFallsBackToV1WhenTheTokenPutTimesOut) {
  ImdsBehaviour b;
  b.token_delay = 1'000ms;
  FakeService imds(imds_handler(b));
  InstanceMetadataOptions o = imds_options(imds);
  o.timeout = 250ms;
  const auto start = Steady::now();
  const Credentials c = instance_metadata_credentials(o)->credentials();
  EXPECT_LT(ms_since(start), 900) << "the token request was not cut at the timeout";
  EXPECT_EQ(c.access_key_id, imds_key);
  const auto r = imds.requests();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].method, "PUT");
  EXPECT_EQ(r[2].header("x-aws-ec2-metadata-token"), "");
}

TEST_F(AwsCredentials, ImdsTokenRefusedAsMalformedIsAnErrorNotAFallback) {
  ImdsBehaviour b;
  b.token_status = 400;
  FakeService imds(imds_handler(b));
  auto p = instance_metadata_credentials(imds_options(imds));
  const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());
  EXPECT_TRUE(contains(what, "400")) << what;
  EXPECT_EQ(calls(imds.requests()), list({"PUT /latest/api/token"}));
}

TEST_F(AwsCredentials, ImdsV1DisabledRefusesTheFallback) {
  ImdsBehaviour b;
  b.token_status = 405;
  {
    FakeService imds(imds_handler(b));
    InstanceMetadataOptions o = imds_options(imds);
    o.v1_disabled = true;
    const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)instance_metadata_credentials(o)->credentials());
    EXPECT_TRUE(contains(what, "IMDSv1 is disabled")) << what;
    EXPECT_EQ(calls(imds.requests()), list({"PUT /latest/api/token"}));
  }
  {
    EnvGuard::set("AWS_EC2_METADATA_V1_DISABLED", "true");
    FakeService imds(imds_handler(b));
    KCLPP_EXPECT_THROW_MSG(AuthError, (void)instance_metadata_credentials(imds_options(imds))->credentials());
    EXPECT_EQ(imds.count(), 1u);
    // With a token, v1 being disabled changes nothing.
    b.token_status = 200;
    imds.set_handler(imds_handler(b));
    EXPECT_EQ(instance_metadata_credentials(imds_options(imds))->credentials().access_key_id, imds_key);
  }
}

TEST_F(AwsCredentials, ImdsWithoutARoleIsAnAuthError) {
  ImdsBehaviour b;
  b.role_status = 404;
  FakeService imds(imds_handler(b));
  const std::string what =
      KCLPP_EXPECT_THROW_MSG(AuthError, (void)instance_metadata_credentials(imds_options(imds))->credentials());
  EXPECT_TRUE(contains(what, "IAM role")) << what;
  EXPECT_EQ(imds.count(), 2u);  // token, role list; no credentials request
}

TEST_F(AwsCredentials, ImdsBadCredentialRepliesAreAuthErrorsThatNeverQuoteThem) {
  const auto in_an_hour = Clock::now() + 1h;
  const std::vector<std::pair<std::string, std::string>> cases{
      {"not JSON", "<html>" + imds_secret + " " + imds_session + "</html>"},
      {"not an object", "[\"" + imds_secret + "\"]"},
      {"no Token", R"({"Code":"Success","AccessKeyId":"A","SecretAccessKey":")" + imds_secret +
                       R"(","Expiration":")" + iso8601(in_an_hour) + "\"}"},
      {"bad Expiration", R"({"Code":"Success","AccessKeyId":"A","SecretAccessKey":")" + imds_secret +
                             R"(","Token":")" + imds_session + R"(","Expiration":"soon"})"},
      {"Code", credentials_json(imds_key, imds_secret, imds_session, in_an_hour, "AssumeRoleUnauthorizedAccess")},
  };
  for (const auto& [name, body] : cases) {
    SCOPED_TRACE(name);
    ImdsBehaviour b;
    b.credentials = [body = body] { return reply(200, body); };
    FakeService imds(imds_handler(b));
    const std::string what =
        KCLPP_EXPECT_THROW_MSG(AuthError, (void)instance_metadata_credentials(imds_options(imds))->credentials());
    EXPECT_TRUE(contains(what, "instance metadata")) << what;
    if (name == "Code") {
      EXPECT_TRUE(contains(what, "AssumeRoleUnauthorizedAccess")) << what;
    }
  }
}

TEST_F(AwsCredentials, ImdsTimeoutsAndUnreachableServiceAreTransportErrors) {
  ImdsBehaviour b;
  b.credentials_delay = 1'000ms;
  FakeService imds(imds_handler(b));
  InstanceMetadataOptions o = imds_options(imds);
  o.timeout = 250ms;
  auto start = Steady::now();
  std::string what = KCLPP_EXPECT_THROW_MSG(TransportError, (void)instance_metadata_credentials(o)->credentials());
  EXPECT_LT(ms_since(start), 900);
  EXPECT_TRUE(contains(what, "credentials")) << what;

  o.endpoint = "http://127.0.0.1:" + std::to_string(test::unused_port());
  start = Steady::now();
  try {
    (void)instance_metadata_credentials(o)->credentials();
    ADD_FAILURE() << "no throw";
  } catch (const TransportError& e) {
    messages_.emplace_back(e.what());
    EXPECT_EQ(e.retry(), Retry::Yes);
  }
  EXPECT_LT(ms_since(start), 900);
}

// --- container endpoint ------------------------------------------------------------------------

TEST_F(AwsCredentials, ContainerFullUriWithAuthorizationToken) {
  FakeService container(container_handler(container_auth));
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.endpoint() + container_path);
  EnvGuard::set("AWS_CONTAINER_AUTHORIZATION_TOKEN", container_auth);
  ASSERT_TRUE(container_credentials_configured());
  ContainerOptions o;
  o.attempts = 1;
  const Credentials c = container_credentials(o)->credentials();
  EXPECT_EQ(c.access_key_id, container_key);
  EXPECT_EQ(c.secret_access_key, container_secret);
  EXPECT_EQ(c.session_token, container_session);
  EXPECT_TRUE(c.expiration);
  const auto r = container.requests();
  ASSERT_EQ(calls(r), list({"GET /v2/credentials/kclpp-task"}));
  EXPECT_EQ(r[0].header("authorization"), container_auth);
  EXPECT_EQ(r[0].header("accept"), "application/json");
}

TEST_F(AwsCredentials, ContainerTokenFileIsReadAgainOnEachFetch) {
  FakeService container(container_handler(container_auth));
  const std::string token_file = write("eks/token", container_auth);
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.endpoint() + container_path);
  EnvGuard::set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file);
  EnvGuard::set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-the-file-is-set");
  auto p = container_credentials();
  (void)p->credentials();
  const std::string rotated = container_auth + "-rotated";
  write("eks/token", rotated);
  container.set_handler(container_handler(rotated));
  p->expire();
  EXPECT_EQ(p->credentials().access_key_id, container_key);
  const auto r = container.requests();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].header("authorization"), container_auth);
  EXPECT_EQ(r[1].header("authorization"), rotated);

  // A token with a line break (a file written with echo) is refused before any request.
  write("eks/token", container_auth + "\n");
  p->expire();
  const std::string what = KCLPP_EXPECT_THROW_MSG(ConfigError, (void)p->credentials());
  EXPECT_TRUE(contains(what, "line break")) << what;
  EXPECT_EQ(container.count(), 2u);

  // A token file that went away.
  std::filesystem::remove(token_file);
  p->expire();
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());
}

TEST_F(AwsCredentials, ContainerTokenFromTheEnvironmentWithANewlineIsRefused) {
  FakeService container(container_handler());
  ContainerOptions o = container_options(container);
  o.authorization_token = container_auth + "\r\n";
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)container_credentials(o)->credentials());
  EXPECT_EQ(container.count(), 0u);
}

TEST_F(AwsCredentials, ContainerUriRulesAndRelativeUri) {
  // Plain http only to loopback or the container hosts; https anywhere.
  for (const char* bad : {"http://example.com/creds", "http://169.254.169.254/creds", "http://10.0.0.1:80/c",
                          "http://127.0.0.1.example.com/c"}) {
    ContainerOptions o;
    o.full_uri = bad;
    const std::string what = KCLPP_EXPECT_THROW_MSG(ConfigError, (void)container_credentials(o));
    EXPECT_TRUE(contains(what, "https")) << what;
  }
  for (const char* ok : {"https://example.com/creds", "http://localhost:8080/c", "http://127.0.0.2/c",
                         "http://[::1]:8080/c", "http://169.254.170.23/v1/credentials"}) {
    ContainerOptions o;
    o.full_uri = ok;
    EXPECT_NO_THROW((void)container_credentials(o)) << ok;
  }
  // The same rule for the environment's full URI, through the chain.
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds");
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)default_credentials());

  // A relative URI goes to 169.254.170.2 and wins over a full URI (not fetched here).
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/never");
  const std::string description = container_credentials()->describe();
  EXPECT_TRUE(contains(description, "http://169.254.170.2/v2/credentials/abc")) << description;

  EnvGuard::unset("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  EnvGuard::unset("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  EXPECT_FALSE(container_credentials_configured());
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)container_credentials());
}

TEST_F(AwsCredentials, ContainerErrorStatusesAndBadReplies) {
  for (const int status : {401, 403, 404}) {
    SCOPED_TRACE(status);
    FakeService container(container_handler({}, [status] {
      return reply(status, R"({"message":"denied )" + container_secret + " " + container_session + "\"}");
    }));
    ContainerOptions o = container_options(container);
    o.attempts = 3;
    const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)container_credentials(o)->credentials());
    EXPECT_TRUE(contains(what, std::to_string(status))) << what;
    EXPECT_EQ(container.count(), 1u) << "a 4xx is not retried";
  }
  {
    FakeService container(container_handler({}, [] { return reply(500, "oops " + container_secret); }));
    ContainerOptions o = container_options(container);
    o.attempts = 2;
    const std::string what = KCLPP_EXPECT_THROW_MSG(TransportError, (void)container_credentials(o)->credentials());
    EXPECT_TRUE(contains(what, "500")) << what;
    EXPECT_EQ(container.count(), 2u) << "a 5xx is retried `attempts` times";
  }
  for (const std::string& body :
       {"{" + container_secret, R"({"AccessKeyId":"A","SecretAccessKey":")" + container_secret + "\"}",
        R"({"AccessKeyId":"A","SecretAccessKey":")" + container_secret + R"(","Token":")" + container_session +
            R"(","Expiration":"2024-13-45T99:00:00Z"})"}) {
    FakeService container(container_handler({}, [body] { return reply(200, body); }));
    KCLPP_EXPECT_THROW_MSG(AuthError, (void)container_credentials(container_options(container))->credentials());
  }
}

// --- STS -------------------------------------------------------------------------------------------

TEST_F(AwsCredentials, AssumeRoleIsSignedWithTheSourceAndSendsItsParameters) {
  FakeService sts(sts_ok());
  AssumeRoleOptions o;
  o.source = static_credentials({source_key, source_secret, source_session});
  o.role_arn = role_arn;
  o.session_name = "kclpp-session";
  o.external_id = "ext-42";
  o.duration = 900s;
  o.sts.endpoint = sts.endpoint();
  o.sts.region = "eu-west-1";
  auto p = assume_role_credentials(o);
  EXPECT_TRUE(contains(p->describe(), role_arn)) << p->describe();
  const Credentials c = p->credentials();
  EXPECT_EQ(c.access_key_id, sts_key);
  EXPECT_EQ(c.secret_access_key, sts_secret);
  EXPECT_EQ(c.session_token, sts_session);
  ASSERT_TRUE(c.expiration);

  const auto r = sts.requests();
  ASSERT_EQ(calls(r), list({"POST /"}));
  const std::map<std::string, std::string> expected{
      {"Action", "AssumeRole"},       {"Version", "2011-06-15"},  {"RoleArn", role_arn},
      {"RoleSessionName", "kclpp-session"}, {"ExternalId", "ext-42"}, {"DurationSeconds", "900"}};
  EXPECT_EQ(parse_form(r[0].body), expected);
  EXPECT_TRUE(r[0].header("content-type").rfind("application/x-www-form-urlencoded", 0) == 0);
  const std::string date = r[0].header("x-amz-date");
  ASSERT_EQ(date.size(), 16u);
  EXPECT_EQ(r[0].header("x-amz-security-token"), source_session);
  const std::string auth = r[0].header("authorization");
  const std::string head = "AWS4-HMAC-SHA256 Credential=" + source_key + "/" + date.substr(0, 8) +
                           "/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                           "x-amz-security-token, Signature=";
  ASSERT_EQ(auth.rfind(head, 0), 0u) << auth;
  const std::string signature = auth.substr(head.size());
  EXPECT_EQ(signature.size(), 64u);
  EXPECT_EQ(signature.find_first_not_of("0123456789abcdef"), std::string::npos) << signature;

  // Without a session name: a generated one; without an external id or a duration: none sent.
  AssumeRoleOptions minimal;
  minimal.source = static_credentials({source_key, source_secret, ""});
  minimal.role_arn = role_arn;
  minimal.sts.endpoint = sts.endpoint();
  (void)assume_role_credentials(minimal)->credentials();
  const auto form = parse_form(sts.requests().at(1).body);
  EXPECT_EQ(form.count("ExternalId"), 0u);
  EXPECT_EQ(form.count("DurationSeconds"), 0u);
  EXPECT_EQ(form.at("RoleSessionName").rfind("kclpp-", 0), 0u);
  EXPECT_EQ(sts.requests().at(1).header("x-amz-security-token"), "");
  // No region anywhere: the global endpoint's signing region.
  EXPECT_TRUE(contains(sts.requests().at(1).header("authorization"), "/us-east-1/sts/aws4_request"));

  AssumeRoleOptions no_source = minimal;
  no_source.source = nullptr;
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)assume_role_credentials(no_source));
  AssumeRoleOptions no_role = minimal;
  no_role.role_arn.clear();
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)assume_role_credentials(no_role));
}

TEST_F(AwsCredentials, StsEndpointFromAwsEndpointUrlSts) {
  FakeService sts(sts_ok());
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint() + "/");
  EnvGuard::set("AWS_REGION", "ap-southeast-2");
  AssumeRoleOptions o;
  o.source = static_credentials({source_key, source_secret, ""});
  o.role_arn = role_arn;
  EXPECT_EQ(assume_role_credentials(o)->credentials().access_key_id, sts_key);
  ASSERT_EQ(sts.count(), 1u);
  EXPECT_TRUE(contains(sts.requests()[0].header("authorization"), "/ap-southeast-2/sts/aws4_request"));
  // An explicit endpoint wins over the variable.
  FakeService other(sts_ok());
  o.sts.endpoint = other.endpoint();
  (void)assume_role_credentials(o)->credentials();
  EXPECT_EQ(sts.count(), 1u);
  EXPECT_EQ(other.count(), 1u);
}

TEST_F(AwsCredentials, AssumeRoleErrorsNeverQuoteTheSourceSecrets) {
  // A SignatureDoesNotMatch reply quotes the canonical request, which holds the session token.
  FakeService sts(sts_handler([](const auto&, const HttpRequest&) {
    return sts_error(403, "SignatureDoesNotMatch",
                     "The request signature we calculated does not match. The Canonical String for this request "
                     "should have been 'POST\n/\n\nx-amz-security-token:" +
                         source_session + "\n' (secret " + source_secret + ")");
  }));
  AssumeRoleOptions o;
  o.source = static_credentials({source_key, source_secret, source_session});
  o.role_arn = role_arn;
  o.sts.endpoint = sts.endpoint();
  const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)assume_role_credentials(o)->credentials());
  EXPECT_TRUE(contains(what, "SignatureDoesNotMatch")) << what;
  EXPECT_TRUE(contains(what, "403")) << what;
}

TEST_F(AwsCredentials, WebIdentityIsUnsignedAndReadsTheTokenFileOnEachRefresh) {
  FakeService sts(sts_handler([](const std::map<std::string, std::string>& form, const HttpRequest&) {
    // Short-lived: refreshed about a second after each fetch.
    return sts_credentials(form.at("Action"), sts_key, sts_secret, sts_session, Clock::now() + 2s);
  }));
  const std::string token_file = write("irsa/token", web_token + "\n");
  WebIdentityOptions o;
  o.role_arn = role_arn;
  o.token_file = token_file;
  o.session_name = "irsa-session";
  o.sts.endpoint = sts.endpoint();
  auto p = web_identity_credentials(o);
  const Credentials c = p->credentials();
  EXPECT_EQ(c.access_key_id, sts_key);
  EXPECT_EQ(c.session_token, sts_session);

  auto r = sts.requests();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header("authorization"), "");
  EXPECT_EQ(r[0].header("x-amz-security-token"), "");
  const std::map<std::string, std::string> expected{{"Action", "AssumeRoleWithWebIdentity"},
                                                    {"Version", "2011-06-15"},
                                                    {"RoleArn", role_arn},
                                                    {"RoleSessionName", "irsa-session"},
                                                    {"WebIdentityToken", web_token}};
  EXPECT_EQ(parse_form(r[0].body), expected);

  // The kubelet rotates the token: the next refresh (forced, then on expiry) sends the new one.
  write("irsa/token", web_token + "-2");
  p->expire();
  (void)p->credentials();
  write("irsa/token", web_token + "-3");
  std::this_thread::sleep_for(1'100ms);  // past the advisory point of a <= 2 s lifetime
  (void)p->credentials();
  r = sts.requests();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(parse_form(r[1].body).at("WebIdentityToken"), web_token + "-2");
  EXPECT_EQ(parse_form(r[2].body).at("WebIdentityToken"), web_token + "-3");

  // A missing or empty token file: AuthError, no request.
  write("irsa/token", "\n");
  p->expire();
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());
  std::filesystem::remove(token_file);
  p->expire();
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());
  EXPECT_EQ(sts.count(), 3u);
}

TEST_F(AwsCredentials, WebIdentityErrorRepliesMapToTheirErrorTypes) {
  const std::string token_file = write("irsa/token", web_token);
  struct Case {
    std::string name;
    HttpReply answer;
    std::string expect_in_message;
  };
  const std::vector<Case> cases{
      {"InvalidIdentityToken",
       sts_error(400, "InvalidIdentityToken", "Incorrect token audience for " + web_token), "InvalidIdentityToken"},
      {"ExpiredTokenException", sts_error(400, "ExpiredTokenException", "Token expired"), "ExpiredTokenException"},
      {"AccessDenied", sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"),
       "AccessDenied"},
      {"Throttling", sts_error(400, "Throttling", "Rate exceeded"), "Throttling"},
      {"IDPCommunicationError", sts_error(400, "IDPCommunicationError", "idp down"), "IDPCommunicationError"},
      {"503", reply(503, "<html>busy</html>", "text/html"), "503"},
      {"ValidationError", sts_error(400, "ValidationError", "1 validation error"), "ValidationError"},
      {"not XML", reply(400, "garbage " + web_token, "text/plain"), "400"},
      {"no Credentials", reply(200, "<AssumeRoleWithWebIdentityResponse><SecretAccessKey>" + sts_secret +
                                        "</SecretAccessKey></AssumeRoleWithWebIdentityResponse>",
                               "text/xml"),
       "Credentials"},
      {"no SessionToken", reply(200, "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>" + sts_secret +
                                         "</SecretAccessKey></Credentials></R>",
                                "text/xml"),
       "SessionToken"},
      {"bad entity in the secret", reply(200, "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>&" +
                                                  sts_secret + ";</SecretAccessKey><SessionToken>&#x" + sts_session +
                                                  ";</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>"
                                                  "</Credentials></R>",
                                              "text/xml"),
       "STS"},
      {"bad Expiration",
       reply(200, "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>" + sts_secret +
                      "</SecretAccessKey><SessionToken>" + sts_session +
                      "</SessionToken><Expiration>tomorrow</Expiration></Credentials></R>",
             "text/xml"),
       "tomorrow"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    FakeService sts(sts_handler([&c](const auto&, const HttpRequest&) { return c.answer; }));
    WebIdentityOptions o;
    o.role_arn = role_arn;
    o.token_file = token_file;
    o.sts.endpoint = sts.endpoint();
    auto p = web_identity_credentials(o);
    std::string what;
    if (c.name == "Throttling") {
      what = KCLPP_EXPECT_THROW_MSG(ThrottledError, (void)p->credentials());
    } else if (c.name == "IDPCommunicationError" || c.name == "503") {
      what = KCLPP_EXPECT_THROW_MSG(TransportError, (void)p->credentials());
    } else if (c.name == "ValidationError") {
      try {
        (void)p->credentials();
        ADD_FAILURE() << "no throw";
      } catch (const AwsError& e) {
        what = e.what();
        messages_.push_back(what);
        EXPECT_EQ(e.type(), "ValidationError");
        EXPECT_EQ(e.http_status(), 400);
      }
    } else if (c.name == "not XML" || c.name.rfind("no ", 0) == 0 || c.name.rfind("bad ", 0) == 0) {
      what = KCLPP_EXPECT_THROW_MSG(ProtocolError, (void)p->credentials());
    } else {
      what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());
    }
    EXPECT_TRUE(contains(what, c.expect_in_message)) << what;
    EXPECT_EQ(sts.count(), 1u) << "the STS client never retries";
  }
}

TEST_F(AwsCredentials, StsUnreachableIsATransportError) {
  WebIdentityOptions o;
  o.role_arn = role_arn;
  o.token_file = write("irsa/token", web_token);
  o.sts.endpoint = "http://127.0.0.1:" + std::to_string(test::unused_port());
  o.sts.connect_timeout = 500ms;
  try {
    (void)web_identity_credentials(o)->credentials();
    ADD_FAILURE() << "no throw";
  } catch (const TransportError& e) {
    messages_.emplace_back(e.what());
    EXPECT_EQ(e.retry(), Retry::Yes);
  }
}

// --- credential_process ------------------------------------------------------------------------

std::string process_json(const std::string& key, const std::string& extra = {}) {
  return R"({"Version": 1, "AccessKeyId": ")" + key + R"(", "SecretAccessKey": ")" + process_secret +
         R"(", "SessionToken": ")" + process_session + "\"" + extra + "}";
}

TEST_F(AwsCredentials, ProcessCredentialsFromAScript) {
  const std::string counter = (dir_ / "runs").string();
  const std::string exe =
      script("bin/creds.sh", "echo run >> '" + counter + "'\ncat <<'EOF'\n" +
                                 process_json("ASIAPROCESS", R"(, "Expiration": "2099-01-02T03:04:05Z")") + "\nEOF\n");
  ProcessOptions o;
  o.command = exe;
  auto p = process_credentials(o);
  const Credentials c = p->credentials();
  EXPECT_EQ(c.access_key_id, "ASIAPROCESS");
  EXPECT_EQ(c.secret_access_key, process_secret);
  EXPECT_EQ(c.session_token, process_session);
  ASSERT_TRUE(c.expiration);
  EXPECT_EQ(iso8601(*c.expiration), "2099-01-02T03:04:05Z");
  (void)p->credentials();  // far from expiry: not run again
  std::ifstream runs(counter);
  const std::string text((std::istreambuf_iterator<char>(runs)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "run\n");
}

TEST_F(AwsCredentials, ProcessCommandIsSplitLikeAShellButRunWithoutOne) {
  // A path with a space, quoted arguments with spaces, and words a shell would expand.
  const std::string exe = script("my tools/print args.sh",
                                 "printf '{\"Version\":1,\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"%s\","
                                 "\"SessionToken\":\"%s|%s|%s|%s|%s\"}' '" +
                                     process_secret + "' \"$1\" \"$2\" \"$3\" \"$4\" \"$#\"\n");
  ProcessOptions o;
  o.command = "'" + exe + "' \"arg one\" 'arg  two' plain\\ three $HOME;echo";
  const Credentials c = process_credentials(o)->credentials();
  EXPECT_EQ(c.session_token, "arg one|arg  two|plain three|$HOME;echo|4");

  o.command = "'" + exe + " unterminated";
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)process_credentials(o));
  o.command = "   ";
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)process_credentials(o));
}

TEST_F(AwsCredentials, ProcessFailuresAreAuthErrorsThatNeverQuoteTheOutput) {
  struct Case {
    std::string name;
    std::string body;
    std::string expect_in_message;
  };
  const std::vector<Case> cases{
      {"Version 2", "cat <<'EOF'\n" + process_json("AK").replace(12, 1, "2") + "\nEOF\n", "Version"},
      {"no Version", "echo '{\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"" + process_secret + "\"}'\n", "Version"},
      {"no SecretAccessKey", "echo '{\"Version\":1,\"AccessKeyId\":\"AK\",\"SessionToken\":\"" + process_session +
                                 "\"}'\n",
       "SecretAccessKey"},
      {"no AccessKeyId", "echo '{\"Version\":1,\"SecretAccessKey\":\"" + process_secret + "\"}'\n", "AccessKeyId"},
      {"not JSON", "echo 'AccessKeyId=AK SecretAccessKey=" + process_secret + "'\n", "not JSON"},
      {"bad Expiration", "cat <<'EOF'\n" + process_json("AK", R"(, "Expiration": "later")") + "\nEOF\n", "later"},
      {"exit 3 with stderr", "cat <<'EOF'\n" + process_json("AK") + "\nEOF\necho 'MFA token required' >&2\nexit 3\n",
       "exit code 3: MFA token required"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ProcessOptions o;
    o.command = script("bin/bad.sh", c.body);
    const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)process_credentials(o)->credentials());
    EXPECT_TRUE(contains(what, c.expect_in_message)) << what;
  }
  ProcessOptions missing;
  missing.command = (dir_ / "bin" / "does-not-exist").string();
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)process_credentials(missing)->credentials());
}

TEST_F(AwsCredentials, ProcessThatRunsPastTheTimeoutIsKilled) {
  const std::string pid_file = (dir_ / "pid").string();
  ProcessOptions o;
  o.timeout = 300ms;
  o.command = script("bin/slow.sh", "echo $$ > '" + pid_file + "'\nexec sleep 5\n");
  auto start = Steady::now();
  std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)process_credentials(o)->credentials());
  EXPECT_LT(ms_since(start), 2'000);
  EXPECT_TRUE(contains(what, "300 ms")) << what;
  std::ifstream in(pid_file);
  int pid = 0;
  in >> pid;
  ASSERT_GT(pid, 0);
  EXPECT_NE(::kill(pid, 0), 0) << "the timed-out process still runs";

  // One that closes its output early and then hangs is killed too.
  o.command = script("bin/silent.sh", "exec >/dev/null 2>&1\nexec sleep 5\n");
  start = Steady::now();
  what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)process_credentials(o)->credentials());
  EXPECT_LT(ms_since(start), 2'000);
  EXPECT_TRUE(contains(what, "did not finish")) << what;
}

// --- profiles ------------------------------------------------------------------------------------

ChainOptions named(const std::string& profile) {
  ChainOptions o;
  o.profile.profile = profile;
  return o;
}

TEST_F(AwsCredentials, ProfileRoleWithSourceProfile) {
  FakeService sts(sts_ok());
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  write(".aws/credentials", "[base]\naws_access_key_id = " + source_key + "\naws_secret_access_key = " +
                                source_secret + "\naws_session_token = " + source_session + "\n");
  write(".aws/config", "[profile dev]\nrole_arn = " + role_arn +
                           "\nsource_profile = base\nrole_session_name = dev-session\nexternal_id = ext-dev\n"
                           "duration_seconds = 1800\nregion = eu-west-2\n");
  const Credentials c = default_credentials(named("dev"))->credentials();
  EXPECT_EQ(c.access_key_id, sts_key);
  EXPECT_EQ(c.secret_access_key, sts_secret);
  const auto r = sts.requests();
  ASSERT_EQ(r.size(), 1u);
  const std::map<std::string, std::string> expected{
      {"Action", "AssumeRole"},       {"Version", "2011-06-15"},   {"RoleArn", role_arn},
      {"RoleSessionName", "dev-session"}, {"ExternalId", "ext-dev"}, {"DurationSeconds", "1800"}};
  EXPECT_EQ(parse_form(r[0].body), expected);
  EXPECT_EQ(r[0].header("x-amz-security-token"), source_session);
  // Signed with the source profile's key, for the named profile's region.
  const std::string auth = r[0].header("authorization");
  EXPECT_TRUE(contains(auth, "Credential=" + source_key + "/")) << auth;
  EXPECT_TRUE(contains(auth, "/eu-west-2/sts/aws4_request")) << auth;

  write(".aws/config", "[profile dev]\nrole_arn = " + role_arn + "\nsource_profile = base\nduration_seconds = 5\n");
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)default_credentials(named("dev")));
}

TEST_F(AwsCredentials, ProfileRoleChainsSignEachStepWithThePreviousCredentials) {
  FakeService sts(sts_handler([](const std::map<std::string, std::string>& form, const HttpRequest&) {
    const std::string name = form.at("RoleSessionName");
    return sts_credentials("AssumeRole", "ASIA-" + name, sts_secret, sts_session + "-" + name, Clock::now() + 1h);
  }));
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  write(".aws/credentials",
        "[c]\naws_access_key_id = " + source_key + "\naws_secret_access_key = " + source_secret + "\n");
  write(".aws/config", "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\nrole_session_name = sa\n"
                       "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = c\nrole_session_name = sb\n");
  EnvGuard::set("AWS_PROFILE", "a");
  EXPECT_EQ(default_credentials()->credentials().access_key_id, "ASIA-sa");
  const auto r = sts.requests();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(parse_form(r[0].body).at("RoleArn"), "arn:aws:iam::1:role/b");
  EXPECT_TRUE(contains(r[0].header("authorization"), "Credential=" + source_key + "/"));
  EXPECT_EQ(r[0].header("x-amz-security-token"), "");
  EXPECT_EQ(parse_form(r[1].body).at("RoleArn"), "arn:aws:iam::1:role/a");
  EXPECT_TRUE(contains(r[1].header("authorization"), "Credential=ASIA-sb/"));
  EXPECT_EQ(r[1].header("x-amz-security-token"), sts_session + "-sb");
}

TEST_F(AwsCredentials, ProfileSourceLoopsAndBadCombinationsAreConfigErrors) {
  FakeService sts(sts_ok());
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  write(".aws/config",
        "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
        "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n"
        "[profile both]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = a\ncredential_source = Environment\n"
        "[profile neither]\nrole_arn = arn:aws:iam::1:role/x\n"
        "[profile unknown]\nrole_arn = arn:aws:iam::1:role/x\ncredential_source = Nowhere\n"
        "[profile sso]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\n"
        "sso_account_id = 123456789012\nsso_role_name = Admin\n"
        "[profile sso-session]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = r\n"
        "[profile from-sso]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = sso\n"
        "[profile web-no-role]\nweb_identity_token_file = /tmp/t\n");
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected{
      {"a", {"source_profile loop", "'a'", "'b'"}},
      {"b", {"source_profile loop", "'a'", "'b'"}},
      {"both", {"'both'", "both source_profile and credential_source"}},
      {"neither", {"'neither'", "neither source_profile nor credential_source"}},
      {"unknown", {"'unknown'", "'Nowhere'"}},
      {"sso", {"'sso'", "SSO"}},
      {"sso-session", {"'sso-session'", "SSO"}},
      {"from-sso", {"'sso'", "SSO"}},
      {"web-no-role", {"'web-no-role'", "no role_arn"}}};
  for (const auto& [profile, words] : expected) {
    SCOPED_TRACE(profile);
    const std::string what = KCLPP_EXPECT_THROW_MSG(ConfigError, (void)default_credentials(named(profile)));
    for (const auto& w : words) EXPECT_TRUE(contains(what, w)) << w << " not in: " << what;
  }
  EXPECT_EQ(sts.count(), 0u) << "nothing is asked of STS for a broken profile";
}

TEST_F(AwsCredentials, ProfileThatIsItsOwnSourceUsesItsStaticKeys) {
  FakeService sts(sts_ok());
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  write(".aws/credentials", "[self]\naws_access_key_id = " + source_key + "\naws_secret_access_key = " +
                                source_secret + "\nrole_arn = " + role_arn + "\nsource_profile = self\n");
  EXPECT_EQ(default_credentials(named("self"))->credentials().access_key_id, sts_key);
  ASSERT_EQ(sts.count(), 1u);
  EXPECT_TRUE(contains(sts.requests()[0].header("authorization"), "Credential=" + source_key + "/"));
}

TEST_F(AwsCredentials, ProfileCredentialSources) {
  FakeService sts(sts_ok());
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  write(".aws/config", "[profile env]\nrole_arn = " + role_arn + "\ncredential_source = Environment\n" +
                           "[profile ec2]\nrole_arn = " + role_arn + "\ncredential_source = Ec2InstanceMetadata\n" +
                           "[profile ecs]\nrole_arn = " + role_arn + "\ncredential_source = EcsContainer\n");
  auto signed_with = [&sts](std::size_t i) {
    const auto r = sts.requests();
    return r.size() > i ? r[i].header("authorization") + " token=" + r[i].header("x-amz-security-token")
                        : std::string("no request");
  };

  // Environment: the named profile skips the chain's own environment step, and signs with it.
  EnvGuard::set("AWS_ACCESS_KEY_ID", "AKIAENVKEY000001");
  EnvGuard::set("AWS_SECRET_ACCESS_KEY", env_secret);
  EXPECT_EQ(default_credentials(named("env"))->credentials().access_key_id, sts_key);
  EXPECT_TRUE(contains(signed_with(0), "Credential=AKIAENVKEY000001/")) << signed_with(0);
  EnvGuard::unset("AWS_ACCESS_KEY_ID");
  EnvGuard::unset("AWS_SECRET_ACCESS_KEY");
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)default_credentials(named("env")));

  // Ec2InstanceMetadata: not while instance metadata is disabled.
  FakeService imds(imds_handler({}));
  EnvGuard::set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint());
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)default_credentials(named("ec2")));
  EXPECT_EQ(imds.count(), 0u);
  EnvGuard::unset("AWS_EC2_METADATA_DISABLED");
  ChainOptions ec2 = named("ec2");
  ec2.instance_metadata.timeout = 300ms;
  EXPECT_EQ(default_credentials(ec2)->credentials().access_key_id, sts_key);
  EXPECT_EQ(imds.count(), 3u);
  EXPECT_TRUE(contains(signed_with(1), "Credential=" + imds_key + "/")) << signed_with(1);
  EXPECT_TRUE(contains(signed_with(1), "token=" + imds_session));
  EnvGuard::set("AWS_EC2_METADATA_DISABLED", "true");

  // EcsContainer, with the chain's container options.
  FakeService container(container_handler(container_auth));
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.endpoint() + container_path);
  EnvGuard::set("AWS_CONTAINER_AUTHORIZATION_TOKEN", container_auth);
  EXPECT_EQ(default_credentials(named("ecs"))->credentials().access_key_id, sts_key);
  EXPECT_EQ(container.count(), 1u);
  EXPECT_TRUE(contains(signed_with(2), "Credential=" + container_key + "/")) << signed_with(2);
}

TEST_F(AwsCredentials, ProfileWebIdentityAndProcess) {
  FakeService sts(sts_ok());
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  const std::string token_file = write("irsa/token", web_token);
  const std::string exe = script("bin/creds.sh", "cat <<'EOF'\n" + process_json("ASIAPROFILEPROC") + "\nEOF\n");
  write(".aws/config", "[profile web]\nrole_arn = " + role_arn + "\nweb_identity_token_file = " + token_file +
                           "\nrole_session_name = web-session\n[profile proc]\ncredential_process = " + exe + "\n");
  EXPECT_EQ(default_credentials(named("web"))->credentials().access_key_id, sts_key);
  ASSERT_EQ(sts.count(), 1u);
  const auto form = parse_form(sts.requests()[0].body);
  EXPECT_EQ(form.at("Action"), "AssumeRoleWithWebIdentity");
  EXPECT_EQ(form.at("WebIdentityToken"), web_token);
  EXPECT_EQ(form.at("RoleSessionName"), "web-session");
  EXPECT_EQ(sts.requests()[0].header("authorization"), "");
  EXPECT_EQ(default_credentials(named("proc"))->credentials().access_key_id, "ASIAPROFILEPROC");
  EXPECT_EQ(profile_credentials({"proc", "", ""})->credentials().access_key_id, "ASIAPROFILEPROC");
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)profile_credentials({"missing", "", ""}));
}

// --- the chain's order ---------------------------------------------------------------------------

TEST_F(AwsCredentials, ChainOrderEnvironmentWebIdentityProfileContainerInstanceMetadata) {
  FakeService sts(sts_ok());
  FakeService container(container_handler());
  FakeService imds(imds_handler({}));
  EnvGuard::set("AWS_ACCESS_KEY_ID", "AKIAENVKEY000001");
  EnvGuard::set("AWS_SECRET_ACCESS_KEY", env_secret);
  EnvGuard::set("AWS_WEB_IDENTITY_TOKEN_FILE", write("irsa/token", web_token));
  EnvGuard::set("AWS_ROLE_ARN", role_arn);
  EnvGuard::set("AWS_ROLE_SESSION_NAME", "chain");
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  const std::string credentials_file =
      write(".aws/credentials", "[default]\naws_access_key_id = AKIAPROFILEKEY01\naws_secret_access_key = s\n");
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.endpoint() + container_path);
  EnvGuard::unset("AWS_EC2_METADATA_DISABLED");
  EnvGuard::set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint());
  ChainOptions o;
  o.container.attempts = 1;
  o.instance_metadata.timeout = 300ms;

  auto p = default_credentials(o);
  EXPECT_EQ(p->credentials().access_key_id, "AKIAENVKEY000001");
  EXPECT_EQ(p->describe(), "environment");

  EnvGuard::unset("AWS_ACCESS_KEY_ID");
  EnvGuard::unset("AWS_SECRET_ACCESS_KEY");
  p = default_credentials(o);
  EXPECT_EQ(p->credentials().access_key_id, sts_key);
  EXPECT_TRUE(contains(p->describe(), "web identity")) << p->describe();
  EXPECT_EQ(sts.count(), 1u);

  EnvGuard::unset("AWS_WEB_IDENTITY_TOKEN_FILE");
  EXPECT_EQ(default_credentials(o)->credentials().access_key_id, "AKIAPROFILEKEY01");

  std::filesystem::remove(credentials_file);
  EXPECT_EQ(default_credentials(o)->credentials().access_key_id, container_key);

  EnvGuard::unset("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  EXPECT_EQ(default_credentials(o)->credentials().access_key_id, imds_key);

  // Each source was asked once, when it was the first one configured.
  EXPECT_EQ(sts.count(), 1u);
  EXPECT_EQ(container.count(), 1u);
  EXPECT_EQ(imds.count(), 3u);

  EnvGuard::set("AWS_EC2_METADATA_DISABLED", "true");
  const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)default_credentials(o));
  for (const char* place : {"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", ".aws/credentials",
                            "AWS_CONTAINER_CREDENTIALS", "AWS_EC2_METADATA_DISABLED"}) {
    EXPECT_TRUE(contains(what, place)) << place << " missing in: " << what;
  }
  EXPECT_EQ(imds.count(), 3u);
}

TEST_F(AwsCredentials, ChainWithAnUnreachableInstanceMetadataServiceIsAnAuthErrorNamingIt) {
  EnvGuard::unset("AWS_EC2_METADATA_DISABLED");
  EnvGuard::set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:" + std::to_string(test::unused_port()));
  ChainOptions o;
  o.instance_metadata.timeout = 300ms;
  const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)default_credentials(o));
  EXPECT_TRUE(contains(what, "instance metadata")) << what;
}

TEST_F(AwsCredentials, ChainExplicitProfileSkipsTheEnvironment) {
  EnvGuard::set("AWS_ACCESS_KEY_ID", "AKIAENVKEY000001");
  EnvGuard::set("AWS_SECRET_ACCESS_KEY", env_secret);
  EnvGuard::set("AWS_WEB_IDENTITY_TOKEN_FILE", write("irsa/token", web_token));
  EnvGuard::set("AWS_ROLE_ARN", role_arn);
  EnvGuard::set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1");
  write(".aws/credentials", "[dev]\naws_access_key_id = AKIADEVKEY000001\naws_secret_access_key = s\n");
  EXPECT_EQ(default_credentials(named("dev"))->credentials().access_key_id, "AKIADEVKEY000001");
  KCLPP_EXPECT_THROW_MSG(ConfigError, (void)default_credentials(named("nope")));
}

TEST_F(AwsCredentials, ChainDoesNotFallThroughAFailingSource) {
  FakeService sts(sts_handler([](const auto&, const HttpRequest&) {
    return sts_error(400, "InvalidIdentityToken", "No OpenIDConnect provider found");
  }));
  FakeService container(container_handler());
  EnvGuard::set("AWS_WEB_IDENTITY_TOKEN_FILE", write("irsa/token", web_token));
  EnvGuard::set("AWS_ROLE_ARN", role_arn);
  EnvGuard::set("AWS_ENDPOINT_URL_STS", sts.endpoint());
  EnvGuard::set("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.endpoint() + container_path);
  const std::string what = KCLPP_EXPECT_THROW_MSG(AuthError, (void)default_credentials());
  EXPECT_TRUE(contains(what, "InvalidIdentityToken")) << what;
  EXPECT_EQ(sts.count(), 1u);
  EXPECT_EQ(container.count(), 0u);
}

TEST_F(AwsCredentials, SharedDefaultCredentialsAreSharedPerConfiguration) {
  EnvGuard::set("AWS_ACCESS_KEY_ID", "AKIASHARED000001");
  EnvGuard::set("AWS_SECRET_ACCESS_KEY", env_secret);
  auto a = shared_default_credentials();
  auto b = shared_default_credentials();
  EXPECT_EQ(a.get(), b.get());
  EnvGuard::set("AWS_ACCESS_KEY_ID", "AKIASHARED000002");
  auto c = shared_default_credentials();
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(c->credentials().access_key_id, "AKIASHARED000002");
  EnvGuard::unset("AWS_ACCESS_KEY_ID");
  EnvGuard::unset("AWS_SECRET_ACCESS_KEY");
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)shared_default_credentials());
}

// --- refresh ---------------------------------------------------------------------------------------

// A container endpoint handing out ASIA-1, ASIA-2, ... each valid for `lifetime` from its fetch.
FakeService::Handler numbered_container(std::atomic<int>& n, std::chrono::seconds lifetime,
                                        std::chrono::milliseconds delay = 0ms) {
  return container_handler({}, [&n, lifetime, delay] {
    HttpReply r = reply(200, credentials_json("ASIA-" + std::to_string(++n), container_secret, container_session,
                                              Clock::now() + lifetime, ""));
    r.delay = delay;
    return r;
  });
}

TEST_F(AwsCredentials, RefreshHappensBeforeExpiryNotOnEachCall) {
  std::atomic<int> n{0};
  FakeService container(numbered_container(n, 4s));
  auto p = container_credentials(container_options(container));
  const Credentials first = p->credentials();
  const auto start = Steady::now();
  ASSERT_TRUE(first.expiration);
  EXPECT_EQ(first.access_key_id, "ASIA-1");

  int calls_made = 0;
  while (ms_since(start) < 1'000) {  // well before the advisory point (>= 1.5 s)
    EXPECT_EQ(p->credentials().access_key_id, "ASIA-1");
    ++calls_made;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GT(calls_made, 15);
  EXPECT_EQ(container.count(), 1u) << "fetched again although the credentials were fresh";

  std::optional<Clock::time_point> second_seen;
  while (Clock::now() < *first.expiration + 500ms) {
    const Credentials c = p->credentials();
    const auto now = Clock::now();
    ASSERT_TRUE(c.expiration);
    EXPECT_GT(*c.expiration, now) << "expired credentials handed out";
    if (c.access_key_id == "ASIA-2") {
      second_seen = now;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(second_seen) << "no refresh before expiry";
  EXPECT_LT(*second_seen, *first.expiration);
  const auto after_second = Steady::now();
  while (ms_since(after_second) < 500) {
    EXPECT_EQ(p->credentials().access_key_id, "ASIA-2");
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(container.count(), 2u);
  EXPECT_GE(logs_.count(LogLevel::Debug, "refreshed"), 2);
}

TEST_F(AwsCredentials, FailedRefreshKeepsValidCredentialsThenThrowsOnceExpired) {
  std::atomic<int> n{0};
  FakeService container(numbered_container(n, 3s));
  auto p = container_credentials(container_options(container));
  const Credentials first = p->credentials();
  ASSERT_TRUE(first.expiration);
  // From now on every refresh gets a bad reply that holds secrets.
  container.set_handler(container_handler({}, [] {
    return reply(200, "{\"AccessKeyId\":\"x\",\"SecretAccessKey\":\"" + container_secret + "\",\"Token\":\"" +
                          container_session + "\"");
  }));
  int calls_made = 0;
  while (Clock::now() < *first.expiration - 300ms) {  // (the advisory point is >= 1 s before)
    const Credentials c = p->credentials();
    EXPECT_EQ(c.access_key_id, "ASIA-1");
    EXPECT_GT(*c.expiration, Clock::now());
    ++calls_made;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(logs_.count(LogLevel::Warn, "refreshing credentials"), 1);
  EXPECT_GE(container.count(), 2u) << "no refresh was tried";
  EXPECT_LT(container.count(), 1u + static_cast<std::size_t>(calls_made) / 4) << "a refresh tried on each call";

  std::this_thread::sleep_until(*first.expiration + 50ms);
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());

  // The service recovers: the next call fetches.
  container.set_handler(numbered_container(n, 2s));
  EXPECT_EQ(p->credentials().access_key_id, "ASIA-2");
}

TEST_F(AwsCredentials, ExpireForcesARefetch) {
  std::atomic<int> n{0};
  FakeService container(numbered_container(n, 3600s));
  auto p = container_credentials(container_options(container));
  EXPECT_EQ(p->credentials().access_key_id, "ASIA-1");
  EXPECT_EQ(p->credentials().access_key_id, "ASIA-1");
  p->expire();
  EXPECT_EQ(p->credentials().access_key_id, "ASIA-2");
  EXPECT_EQ(p->credentials().access_key_id, "ASIA-2");
  EXPECT_EQ(container.count(), 2u);
  // A forced refresh that fails does not fall back to the credentials a service rejected.
  container.set_handler(container_handler({}, [] { return reply(403, ""); }));
  p->expire();
  KCLPP_EXPECT_THROW_MSG(AuthError, (void)p->credentials());

  auto fixed = static_credentials({"AKIASTATIC000001", "static-secret", ""});
  fixed->expire();
  EXPECT_EQ(fixed->credentials().access_key_id, "AKIASTATIC000001");
}

TEST_F(AwsCredentials, ConcurrentCallersShareOneFetchAndNeverGetExpiredCredentials) {
  std::atomic<int> n{0};
  FakeService container(numbered_container(n, 3s, 300ms));
  ContainerOptions o = container_options(container);
  o.timeout = 2'000ms;
  auto p = container_credentials(o);
  constexpr int threads = 16;
  std::latch start(threads);
  std::atomic<int> expired{0};
  std::atomic<int> failures{0};
  std::atomic<int> calls_made{0};
  const auto until = Steady::now() + 3'500ms;
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      while (Steady::now() < until) {
        try {
          const Credentials c = p->credentials();
          if (!c.expiration || *c.expiration <= Clock::now()) ++expired;
        } catch (const std::exception&) {
          ++failures;
        }
        ++calls_made;
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(container.max_in_flight(), 1) << "two fetches at once";
  EXPECT_EQ(expired.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(container.count(), 2u);
  EXPECT_LE(container.count(), 5u);
  EXPECT_GT(calls_made.load(), 500);
}

TEST_F(AwsCredentials, FailedMandatoryRefreshIsTriedOnceForAllWaitingCallers) {
  std::atomic<int> n{0};
  FakeService container(numbered_container(n, 5s));
  ContainerOptions o = container_options(container);
  o.timeout = 2'000ms;
  o.refresh.advisory_window = 0s;  // straight into the mandatory window (the last quarter)
  auto p = container_credentials(o);
  const Credentials first = p->credentials();
  const auto fetched = Clock::now();
  ASSERT_TRUE(first.expiration);
  container.set_handler(container_handler({}, [] {
    HttpReply r = reply(500, "");
    r.delay = 300ms;
    return r;
  }));
  // Past the mandatory point (expiry minus a quarter of the lifetime seen at the fetch).
  std::this_thread::sleep_until(*first.expiration - (*first.expiration - fetched) / 4 + 30ms);
  ASSERT_LT(Clock::now() + 500ms, *first.expiration) << "too slow to test the window";

  constexpr int threads = 16;
  std::latch start(threads);
  std::atomic<int> old_ones{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      try {
        const Credentials c = p->credentials();
        if (c.access_key_id == "ASIA-1" && *c.expiration > Clock::now()) ++old_ones;
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(old_ones.load(), threads);
  EXPECT_EQ(container.count(), 2u) << "every waiting caller fetched again after the failure";
  EXPECT_EQ(container.max_in_flight(), 1);

  std::this_thread::sleep_until(*first.expiration + 50ms);
  KCLPP_EXPECT_THROW_MSG(TransportError, (void)p->credentials());
}

}  // namespace
}  // namespace kclpp::aws
