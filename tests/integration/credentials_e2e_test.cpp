// End to end: the native worker and `kclpp store` run for more than three lifetimes of
// short-lived credentials, served by a fake EC2 instance metadata service and by a fake STS
// (web identity, with the token file rotated), against kinesalite and s3rver. Kinesis calls
// go through a proxy that refuses any request signed with credentials that are unknown or
// past their expiry (as AWS does), so a refresh that comes late is a failed call the test
// counts. Nothing may fail and nothing may be lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e_support.hpp"
#include "http.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/aws/s3_client.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/pipeline/value.hpp"
#include "fake_http_server.hpp"
#include "kinesalite_fixture.hpp"
#include "s3rver_fixture.hpp"

namespace {

namespace aws = kclpp::aws;
namespace pipeline = kclpp::pipeline;
using namespace std::chrono_literals;
using kclpp::test::FakeHttpServer;
using kclpp::test::HttpReply;
using kclpp::test::HttpRequest;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;
using Clock = std::chrono::system_clock;

// Every credential set lives this long: the runs below last more than three lifetimes.
constexpr auto kLifetime = 6s;
constexpr auto kRun = 20s;

std::string iso8601(Clock::time_point t) {
  const std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  return {buf, std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm)};
}

// The access key of a SigV4 Authorization header ("... Credential=KEY/date/...").
std::string access_key_of(const std::string& authorization) {
  const auto at = authorization.find("Credential=");
  if (at == std::string::npos) return {};
  const auto slash = authorization.find('/', at);
  return authorization.substr(at + 11, slash == std::string::npos ? std::string::npos : slash - at - 11);
}

// The value of `name` in a form body (no percent-decoding needed for the values used here).
std::string form_value(const std::string& body, const std::string& name) {
  const std::regex re("(^|&)" + name + "=([^&]*)");
  std::smatch m;
  return std::regex_search(body, m, re) ? m[2].str() : std::string();
}

// Hands out short-lived credentials through a fake IMDS and a fake STS
// (AssumeRoleWithWebIdentity), and judges whether a request's credentials are valid now.
// Credential sets use keys KCLPPE2E0000, KCLPPE2E0001, ... (s3rver is told about them).
// Thread safety: everything may be called from any thread.
class CredentialAuthority {
 public:
  static constexpr int kMaxSets = 200;
  static std::string key(int n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "KCLPPE2E%04d", n);
    return buf;
  }
  static std::vector<std::string> all_keys() {
    std::vector<std::string> keys;
    for (int i = 0; i < kMaxSets; ++i) keys.push_back(key(i));
    return keys;
  }

  CredentialAuthority()
      : server_([this](const HttpRequest& r) { return handle(r); }, FakeHttpServer::Mode::ThreadPerConnection) {}

  [[nodiscard]] const std::string& endpoint() const { return server_.endpoint(); }
  // The web identity token STS accepts from now on (the previous one stays valid, as a
  // rotated projected token does for a while).
  void set_web_token(const std::string& token) {
    std::lock_guard lock(mutex_);
    previous_token_ = current_token_;
    current_token_ = token;
  }
  [[nodiscard]] int issued() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(sets_.size());
  }
  [[nodiscard]] std::set<std::string> web_tokens_seen() const {
    std::lock_guard lock(mutex_);
    return tokens_seen_;
  }
  [[nodiscard]] std::vector<std::string> imds_paths() const {
    std::lock_guard lock(mutex_);
    return imds_paths_;
  }

  // Empty when the request's key and session token are a set handed out and not expired.
  [[nodiscard]] std::string refusal(const HttpRequest& r) const {
    const std::string k = access_key_of(r.header("authorization"));
    std::lock_guard lock(mutex_);
    const auto it = sets_.find(k);
    if (it == sets_.end()) return "unknown access key '" + k + "'";
    if (r.header("x-amz-security-token") != it->second.token) return "wrong session token for " + k;
    if (Clock::now() >= it->second.expiration) return "credentials " + k + " expired";
    return {};
  }

 private:
  struct Set {
    std::string token;
    Clock::time_point expiration;
  };

  // A new set; fills key/secret/token/expiry. Caller holds mutex_.
  std::tuple<std::string, std::string, std::string, std::string> issue_locked() {
    const int n = static_cast<int>(sets_.size());
    const std::string k = key(n);
    const std::string token = "session-token-" + std::to_string(n);
    const Clock::time_point expiration = Clock::now() + kLifetime;
    sets_[k] = {token, expiration};
    return {k, "secret-" + std::to_string(n), token, iso8601(expiration)};
  }

  HttpReply handle(const HttpRequest& r) {
    std::lock_guard lock(mutex_);
    if (r.path.rfind("/latest/", 0) == 0) {
      imds_paths_.push_back(r.method + " " + r.path);
      if (r.method == "PUT" && r.path == "/latest/api/token") {
        if (r.header("x-aws-ec2-metadata-token-ttl-seconds").empty()) return text(400, "");
        return text(200, "imds-session");
      }
      if (r.header("x-aws-ec2-metadata-token") != "imds-session") return text(401, "");
      if (r.path == "/latest/meta-data/iam/security-credentials/") return text(200, "kclpp-role");
      if (r.path == "/latest/meta-data/iam/security-credentials/kclpp-role") {
        const auto [k, secret, token, expiration] = issue_locked();
        return text(200, R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":")" + k + R"(","SecretAccessKey":")" +
                             secret + R"(","Token":")" + token + R"(","Expiration":")" + expiration + "\"}");
      }
      return text(404, "");
    }
    if (r.method == "POST" && form_value(r.body, "Action") == "AssumeRoleWithWebIdentity") {
      const std::string token = form_value(r.body, "WebIdentityToken");
      tokens_seen_.insert(token);
      if (token.empty() || (token != current_token_ && token != previous_token_)) {
        return xml(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                        "<Message>stale token</Message></Error></ErrorResponse>");
      }
      const auto [k, secret, session, expiration] = issue_locked();
      return xml(200, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                      "<AccessKeyId>" + k + "</AccessKeyId><SecretAccessKey>" + secret +
                          "</SecretAccessKey><SessionToken>" + session + "</SessionToken><Expiration>" + expiration +
                          "</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
                          "</AssumeRoleWithWebIdentityResponse>");
    }
    return text(404, "");
  }

  static HttpReply text(int status, std::string body) {
    HttpReply r = HttpReply::json(std::move(body), status);
    r.content_type = "text/plain";
    return r;
  }
  static HttpReply xml(int status, std::string body) {
    HttpReply r = HttpReply::json(std::move(body), status);
    r.content_type = "text/xml";
    return r;
  }

  mutable std::mutex mutex_;
  std::map<std::string, Set> sets_;
  std::string current_token_;
  std::string previous_token_;
  std::set<std::string> tokens_seen_;
  std::vector<std::string> imds_paths_;
  FakeHttpServer server_;  // last: stopped first, while the state it uses still exists
};

// An HTTP proxy in front of kinesalite that refuses (HTTP 400 ExpiredTokenException, as
// Kinesis does) every request whose credentials the authority does not accept now.
class VerifyingProxy {
 public:
  VerifyingProxy(const CredentialAuthority& authority, std::string upstream)
      : authority_(authority),
        upstream_(std::move(upstream)),
        server_([this](const HttpRequest& r) { return handle(r); }, FakeHttpServer::Mode::ThreadPerConnection) {}

  [[nodiscard]] const std::string& endpoint() const { return server_.endpoint(); }
  [[nodiscard]] int forwarded() const { return forwarded_.load(); }
  [[nodiscard]] std::vector<std::string> refusals() const {
    std::lock_guard lock(mutex_);
    return refusals_;
  }
  [[nodiscard]] std::set<std::string> keys_used() const {
    std::lock_guard lock(mutex_);
    return keys_;
  }

 private:
  HttpReply handle(const HttpRequest& r) {
    if (std::string why = authority_.refusal(r); !why.empty()) {
      std::lock_guard lock(mutex_);
      refusals_.push_back(r.header("x-amz-target") + ": " + why);
      return HttpReply::aws_error(400, "ExpiredTokenException", why);
    }
    {
      std::lock_guard lock(mutex_);
      keys_.insert(access_key_of(r.header("authorization")));
    }
    // One connection per request: the handler runs on each client connection's thread.
    kclpp::aws::detail::HttpClient http(kclpp::aws::detail::HttpOptions{});
    std::vector<std::string> headers;
    for (const auto& [name, value] : r.headers) {
      if (name == "host" || name == "content-length" || name == "expect") continue;
      headers.push_back(name + ": " + value);
    }
    const auto result = http.perform({r.method, upstream_ + r.path, &headers, r.body, 0});
    if (result.outcome != kclpp::aws::detail::HttpResult::Outcome::Response) return HttpReply::reset();
    ++forwarded_;
    return HttpReply::json(http.body(), static_cast<int>(result.status));
  }

  const CredentialAuthority& authority_;
  const std::string upstream_;
  mutable std::mutex mutex_;
  std::vector<std::string> refusals_;
  std::set<std::string> keys_;
  std::atomic<int> forwarded_{0};
  FakeHttpServer server_;  // last: stopped first
};

// Environment of a kclpp process that must find its credentials on its own: no keys, no
// profile files, nothing but what `extra` configures.
std::vector<std::string> keyless_env(const TempDir& dir, std::vector<std::string> extra) {
  std::vector<std::string> env{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=",
                               "AWS_PROFILE=", "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
                               "HOME=" + dir.path().string(),
                               "AWS_SHARED_CREDENTIALS_FILE=" + dir.file("no-credentials"),
                               "AWS_CONFIG_FILE=" + dir.file("no-config"), "AWS_EC2_METADATA_DISABLED=",
                               "AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_ROLE_ARN=",
                               "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=", "AWS_CONTAINER_CREDENTIALS_FULL_URI=",
                               "KCLPP_LOG_LEVEL=info"};
  for (auto& e : extra) {
    const std::string name = e.substr(0, e.find('=') + 1);
    std::erase_if(env, [&](const std::string& d) { return d.rfind(name, 0) == 0; });
    env.push_back(std::move(e));
  }
  return env;
}

// Log lines of a failed or retried call.
std::vector<std::string> failure_lines(const std::string& err) {
  std::vector<std::string> out;
  for (const auto& line : kclpp::test::split_lines(err)) {
    if (line.find("retrying") != std::string::npos || line.find("Expired") != std::string::npos ||
        line.find(" ERROR ") != std::string::npos || line.find("refreshing credentials") != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

void stop(Subprocess& p) {
  ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
  const auto status = p.wait(30s);
  ASSERT_TRUE(status.has_value()) << "still running after SIGTERM\n" << p.stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << p.stderr_text();
}

TEST(CredentialRefresh, NativeWorkerOnInstanceMetadataRunsThroughThreeLifetimes) {
  kclpp::test::Kinesalite kinesis;
  KCLPP_REQUIRE_SERVER(kinesis);
  TempDir dir("kclpp-creds-e2e");
  CredentialAuthority authority;
  VerifyingProxy proxy(authority, kinesis.endpoint());
  aws::KinesisClient direct(kinesis.client_options());
  direct.create_stream("creds", 2);
  direct.wait_for_active("creds", 10s);

  const std::string db = dir.file("count.db");
  kclpp::test::SpawnOptions options;
  options.env = keyless_env(dir, {"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + authority.endpoint()});
  Subprocess worker({KCLPP_EXAMPLE_COUNT, "--stream", "creds", "--endpoint", proxy.endpoint(), "--application",
                     "creds-app", "--checkpoint-store", "sqlite:" + db, "--initial-position", "TRIM_HORIZON",
                     "--idle-time-ms", "200"},
                    options);
  kclpp::test::PidReaper reaper;
  reaper.add(worker.pid());

  // Records keep coming for the whole run, a few every 400 ms.
  std::map<std::string, std::vector<std::string>> put;
  const auto start = std::chrono::steady_clock::now();
  std::size_t n = 0;
  while (std::chrono::steady_clock::now() - start < kRun) {
    const auto batch = kclpp::test::put_all(direct, "creds", kclpp::test::numbered("c" + std::to_string(n), 3), n);
    for (const auto& [shard, seqs] : batch) put[shard].insert(put[shard].end(), seqs.begin(), seqs.end());
    n += 3;
    std::this_thread::sleep_for(400ms);
  }
  std::map<std::string, std::string> last;
  for (const auto& [shard, seqs] : put) last[shard] = seqs.back();
  const auto checkpoints = [&] {
    std::map<std::string, std::string> out;
    for (const auto& [shard, pos] : kclpp::test::sqlite_checkpoints(db, "creds-app", "creds")) out[shard] = pos.str();
    return out;
  };
  ASSERT_TRUE(kclpp::test::eventually([&] { return checkpoints() == last; }, 20s)) << worker.stderr_text();
  stop(worker);

  const std::string err = worker.stderr_text();
  std::size_t processed = 0;
  static const std::regex total(R"(shutdown requested: (\d+) records)");
  for (const auto& line : kclpp::test::split_lines(err)) {
    std::smatch m;
    if (std::regex_search(line, m, total)) processed += std::stoul(m[1]);
  }
  EXPECT_EQ(processed, n) << err;
  // More than three lifetimes: at least four credential sets, each fetched with IMDSv2.
  EXPECT_GE(authority.issued(), 4);
  EXPECT_GE(proxy.keys_used().size(), 4u);
  const auto paths = authority.imds_paths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), "PUT /latest/api/token");
  EXPECT_TRUE(proxy.refusals().empty()) << joined(proxy.refusals());
  EXPECT_TRUE(failure_lines(err).empty()) << joined(failure_lines(err));
  std::printf("native worker: %d credential sets over %lld s, %d Kinesis calls, %zu refused, %zu records\n",
              authority.issued(), static_cast<long long>(kRun.count()), proxy.forwarded(), proxy.refusals().size(),
              processed);
}

TEST(CredentialRefresh, StoreOnWebIdentityRunsThroughThreeLifetimes) {
  kclpp::test::Kinesalite kinesis;
  KCLPP_REQUIRE_SERVER(kinesis);
  kclpp::test::S3rver s3(CredentialAuthority::all_keys());
  KCLPP_REQUIRE_SERVER(s3);
  s3.create_bucket("archive");
  TempDir dir("kclpp-creds-e2e-store");
  CredentialAuthority authority;
  VerifyingProxy proxy(authority, kinesis.endpoint());
  aws::KinesisClient direct(kinesis.client_options());
  direct.create_stream("events", 2);
  direct.wait_for_active("events", 10s);
  const std::string config = dir.file("triton.yaml");
  std::ofstream(config) << "events:\n  name: events\n  partition_key: pk\n  region: us-east-1\n";

  // The projected token, rotated every 4 s like a kubelet would (much faster).
  const std::string token_file = dir.file("web-identity-token");
  int token_version = 0;
  const auto rotate = [&] {
    const std::string token = "oidc-token-" + std::to_string(token_version++);
    authority.set_web_token(token);
    std::ofstream(token_file) << token;
  };
  rotate();

  kclpp::test::SpawnOptions options;
  options.env = keyless_env(dir, {"AWS_WEB_IDENTITY_TOKEN_FILE=" + token_file,
                                  "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/kclpp-store",
                                  "AWS_ROLE_SESSION_NAME=e2e", "AWS_ENDPOINT_URL_STS=" + authority.endpoint(),
                                  "AWS_EC2_METADATA_DISABLED=true"});
  Subprocess store({KCLPP_TOOL, "store", "--config", config, "--stream", "events", "--bucket", "archive",
                    "--checkpoint-db", "triton+sqlite:" + dir.file("triton.db"), "--spool-dir",
                    dir.path().string(), "--s3-endpoint", s3.endpoint(), "--endpoint", proxy.endpoint(),
                    "--region", "us-east-1", "--idle-time-ms", "100", "--rotate-interval-s", "3"},
                   options);
  kclpp::test::PidReaper reaper;
  reaper.add(store.pid());

  int n = 0;
  const auto start = std::chrono::steady_clock::now();
  auto last_rotation = start;
  while (std::chrono::steady_clock::now() - start < kRun) {
    std::vector<std::string> data;
    const int first = n;
    for (int i = 0; i < 3; ++i, ++n) {
      data.push_back(pipeline::encode_record(pipeline::Map{{"pk", "pk-" + std::to_string(n)}, {"n", n}}));
    }
    (void)kclpp::test::put_all(direct, "events", data, static_cast<std::size_t>(first));
    if (std::chrono::steady_clock::now() - last_rotation > 4s) {
      rotate();
      last_rotation = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(400ms);
  }
  std::this_thread::sleep_for(2s);  // the last records read before the shutdown upload
  stop(store);

  // Every record is in an archive in S3 (s3rver accepted each rotated key).
  aws::S3Client s3_client(s3.s3_options());
  std::set<long long> archived;
  for (const auto& object : s3_client.list_objects("archive", "")) {
    if (!pipeline::ArchiveKey::parse(object.key)) continue;
    const std::string body = s3_client.get_object("archive", object.key);
    pipeline::ArchiveReader reader(pipeline::memory_source(body), object.key);
    while (auto record = reader.next()) {
      for (const auto& [k, v] : record->map) {
        if (k != "n") continue;
        if (const auto* i = v.get_if<std::int64_t>()) archived.insert(*i);
        if (const auto* u = v.get_if<std::uint64_t>()) archived.insert(static_cast<long long>(*u));
      }
    }
  }
  const std::string err = store.stderr_text();
  for (long long i = 0; i < n; ++i) EXPECT_EQ(archived.count(i), 1u) << "record " << i << " is in no archive";
  EXPECT_GE(authority.issued(), 4) << err;
  EXPECT_GE(authority.web_tokens_seen().size(), 2u) << "the token file was not re-read on refresh";
  EXPECT_TRUE(proxy.refusals().empty()) << joined(proxy.refusals());
  EXPECT_TRUE(failure_lines(err).empty()) << joined(failure_lines(err));
  std::printf("kclpp store: %d credential sets over %lld s, %zu web tokens, %d Kinesis calls, %zu refused\n",
              authority.issued(), static_cast<long long>(kRun.count()), authority.web_tokens_seen().size(),
              proxy.forwarded(), proxy.refusals().size());
}

}  // namespace
