#pragma once
// Helpers for the credential-chain tests (aws_credentials_test.cpp, aws_botocore_test.cpp):
// an environment guard, a per-test HOME, log capture with a check that no secret leaks, and
// loopback fakes of EC2 instance metadata, the ECS / EKS container endpoint and STS, built
// on kclpp::test::FakeHttpServer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "../aws_env_guard.hpp"
#include "fake_http_server.hpp"
#include "local_server.hpp"

namespace kclpp::test::creds {

using kclpp::aws::test_env::EnvGuard;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// --- the secrets the fakes hand out (and put into their bad replies) -----------------------
// Each is distinctive in every 8-character window, so that a partial quote is caught too.
inline const std::string imds_key = "ASIAIMDSKEY0001";
inline const std::string imds_secret = "imdsSECRETa1b2c3d4";
inline const std::string imds_session = "imdsSESSIONe5f6g7h8";
inline const std::string imds_token = "imdsV2TOKENi9j0k1l2";  // the IMDSv2 session token
inline const std::string container_key = "ASIACONTAINER001";
inline const std::string container_secret = "ctrSECRETm3n4o5p6";
inline const std::string container_session = "ctrSESSIONq7r8s9t0";
inline const std::string container_auth = "ctrAUTHTOKENu1v2w3";
inline const std::string sts_key = "ASIASTSKEY000001";
inline const std::string sts_secret = "stsSECRETx4y5z6a7";
inline const std::string sts_session = "stsSESSIONb8c9d0e1";
inline const std::string web_token = "webIDTOKENf2g3h4i5";
inline const std::string source_key = "AKIASOURCEKEY001";
inline const std::string source_secret = "srcSECRETj6k7l8m9";
inline const std::string source_session = "srcSESSIONn0o1p2q3";
inline const std::string process_secret = "procSECRETr4s5t6u7";
inline const std::string process_session = "procSESSIONv8w9x0";
inline const std::string env_secret = "envSECRETy1z2a3b4";

inline const std::vector<std::string>& all_secrets() {
  static const std::vector<std::string> all{imds_secret,   imds_session,  imds_token,    container_secret,
                                            container_session, container_auth, sts_secret, sts_session,
                                            web_token,     source_secret, source_session, process_secret,
                                            process_session, env_secret};
  return all;
}

// The first 8-character window of `secret` that `text` contains, or "".
inline std::string leaked(std::string_view text, std::string_view secret) {
  for (std::size_t i = 0; i + 8 <= secret.size(); ++i) {
    if (contains(text, secret.substr(i, 8))) return std::string(secret.substr(i, 8));
  }
  return {};
}

// (The environment guard, EnvGuard, is tests/aws_env_guard.hpp.)

// --- logs ---------------------------------------------------------------------------------------

// Captures every kclpp log line at debug level; restores the stderr sink and the level.
class LogCapture {
 public:
  LogCapture() : previous_(current_level()) {
    set_log_sink([this](LogLevel level, std::string_view message) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(level, std::string(message));
    });
    set_log_level(LogLevel::Debug);
  }
  ~LogCapture() {
    set_log_sink({});
    set_log_level(previous_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  [[nodiscard]] std::vector<std::pair<LogLevel, std::string>> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  // Lines at `level` that contain `needle`.
  [[nodiscard]] int count(LogLevel level, std::string_view needle) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& [l, text] : lines_) n += (l == level && contains(text, needle)) ? 1 : 0;
    return n;
  }

 private:
  static LogLevel current_level() {
    for (LogLevel l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn}) {
      if (log_enabled(l)) return l;
    }
    return LogLevel::Error;
  }
  LogLevel previous_;
  mutable std::mutex mutex_;
  std::vector<std::pair<LogLevel, std::string>> lines_;
};

// --- the fixture --------------------------------------------------------------------------------

// Every test: a clean AWS environment, HOME in a fresh temp dir (never the real ~/.aws),
// instance metadata disabled (never 169.254.169.254), every log line captured. TearDown fails
// the test when a secret shows up in a log line or in an exception message it looked at.
class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kclpp_creds_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / ".aws");
    EnvGuard::set("HOME", dir_.string());
    EnvGuard::set("AWS_EC2_METADATA_DISABLED", "true");
  }
  void TearDown() override {
    for (const auto& [level, line] : logs_.lines()) {
      for (const auto& s : all_secrets()) {
        const std::string piece = leaked(line, s);
        EXPECT_TRUE(piece.empty()) << "a secret (" << piece << ") in a log line: " << line;
      }
    }
    for (const auto& message : messages_) {
      for (const auto& s : all_secrets()) {
        const std::string piece = leaked(message, s);
        EXPECT_TRUE(piece.empty()) << "a secret (" << piece << ") in an exception message: " << message;
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes `text` to dir_/rel (parents created); returns the path.
  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
    return p.string();
  }
  // An executable /bin/sh script at dir_/rel.
  std::string script(const std::string& rel, const std::string& body) {
    const std::string p = write(rel, "#!/bin/sh\n" + body);
    fs::permissions(p, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
    return p;
  }

  // Runs `f`, expects it to throw E (exactly E or a subclass); returns the message, which
  // TearDown checks for secrets.
  template <class E, class F>
  std::string expect_throw(F&& f, const char* file, int line) {
    try {
      f();
    } catch (const E& e) {
      messages_.emplace_back(e.what());
      return e.what();
    } catch (const std::exception& e) {
      messages_.emplace_back(e.what());
      ADD_FAILURE_AT(file, line) << "expected " << typeid(E).name() << ", got " << typeid(e).name() << ": "
                                     << e.what();
      return e.what();
    }
    ADD_FAILURE_AT(file, line) << "expected " << typeid(E).name() << ", nothing thrown";
    return {};
  }

  EnvGuard env_;
  LogCapture logs_;
  fs::path dir_;
  std::vector<std::string> messages_;
};

// expect_throw<E>(statement) with the caller's file and line.
#define KCLPP_EXPECT_THROW_MSG(E, statement) expect_throw<E>([&] { statement; }, __FILE__, __LINE__)

// --- data ---------------------------------------------------------------------------------------

// "2026-12-06T08:00:00Z" (whole seconds: the fakes' expirations are truncated as real ones are).
inline std::string iso8601(Clock::time_point t) {
  const std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {buf, n};
}

// The credential document of IMDS (code "Success") and of the container endpoint (no code).
inline std::string credentials_json(const std::string& key, const std::string& secret, const std::string& token,
                                    Clock::time_point expiration, const std::string& code = "Success") {
  std::string out = "{";
  if (!code.empty()) out += R"("Code":")" + code + R"(","LastUpdated":"2024-01-01T00:00:00Z","Type":"AWS-HMAC",)";
  out += R"("AccessKeyId":")" + key + R"(","SecretAccessKey":")" + secret + R"(","Token":")" + token +
         R"(","Expiration":")" + iso8601(expiration) + R"("})";
  return out;
}

inline HttpReply reply(int status, std::string body, std::string content_type = "application/json") {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

// STS's reply to `action` carrying these credentials.
inline HttpReply sts_credentials(const std::string& action, const std::string& key, const std::string& secret,
                                 const std::string& token, Clock::time_point expiration) {
  return reply(200,
               "<" + action + "Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <" + action +
                   "Result>\n    <AssumedRoleUser>\n      <AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId>\n"
                   "      <Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>\n    </AssumedRoleUser>\n"
                   "    <Credentials>\n      <AccessKeyId>" + key + "</AccessKeyId>\n      <SecretAccessKey>" +
                   secret + "</SecretAccessKey>\n      <SessionToken>" + token +
                   "</SessionToken>\n      <Expiration>" + iso8601(expiration) +
                   "</Expiration>\n    </Credentials>\n  </" + action + "Result>\n"
                   "  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>\n</" + action +
                   "Response>\n",
               "text/xml");
}

inline HttpReply sts_error(int status, const std::string& code, const std::string& message) {
  return reply(status,
               "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    "
               "<Type>Sender</Type>\n    <Code>" + code + "</Code>\n    <Message>" + message +
                   "</Message>\n  </Error>\n  <RequestId>req-2</RequestId>\n</ErrorResponse>\n",
               "text/xml");
}

inline std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// An application/x-www-form-urlencoded body.
inline std::map<std::string, std::string> parse_form(std::string_view body) {
  std::map<std::string, std::string> out;
  while (!body.empty()) {
    const std::size_t amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    const std::size_t eq = pair.find('=');
    out[url_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    body.remove_prefix(amp + 1);
  }
  return out;
}

// "METHOD path" of each request from index `from` on.
inline std::vector<std::string> calls(const std::vector<HttpRequest>& requests, std::size_t from = 0) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < requests.size(); ++i) out.push_back(requests[i].method + " " + requests[i].path);
  return out;
}

// --- fakes --------------------------------------------------------------------------------------

// A FakeHttpServer (a thread per connection) whose handler may be replaced between requests,
// which sleeps a reply's `delay` inside the handler (so that a slow reply counts as in
// flight), and which counts the requests in flight at once. Thread-safe.
class FakeService {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;
  explicit FakeService(Handler handler)
      : handler_(std::move(handler)),
        server_([this](const HttpRequest& r) { return serve(r); }, FakeHttpServer::Mode::ThreadPerConnection) {}
  ~FakeService() { stopping_ = true; }
  FakeService(const FakeService&) = delete;
  FakeService& operator=(const FakeService&) = delete;

  void set_handler(Handler handler) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(handler);
  }
  [[nodiscard]] const std::string& endpoint() const { return server_.endpoint(); }
  [[nodiscard]] std::vector<HttpRequest> requests() const { return server_.requests(); }
  [[nodiscard]] std::size_t count() const { return server_.requests().size(); }
  [[nodiscard]] int max_in_flight() const { return max_in_flight_.load(); }

 private:
  HttpReply serve(const HttpRequest& request) {
    Handler h;
    {
      std::lock_guard lock(mutex_);
      h = handler_;
    }
    const int now = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
    }
    HttpReply r = h(request);
    const auto until = std::chrono::steady_clock::now() + r.delay;
    while (!stopping_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
    r.delay = 0ms;
    --in_flight_;
    return r;
  }

  std::mutex mutex_;
  Handler handler_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<bool> stopping_{false};
  FakeHttpServer server_;  // last: stopped (and its threads joined) first
};

inline const std::string imds_prefix = "/latest/meta-data/iam/security-credentials/";

// How the fake instance metadata service behaves.
struct ImdsBehaviour {
  int token_status = 200;                // the reply to PUT /latest/api/token
  std::chrono::milliseconds token_delay{0};
  bool v2_only = false;                  // GETs without the session token get 401
  std::string role = "kclpp-test-role";  // the role list (one role)
  int role_status = 200;
  std::chrono::milliseconds credentials_delay{0};
  std::function<HttpReply()> credentials;  // default: imds_key/imds_secret/imds_session for 1 h
};

inline FakeService::Handler imds_handler(ImdsBehaviour b) {
  return [b](const HttpRequest& r) -> HttpReply {
    if (r.path == "/latest/api/token") {
      if (r.method != "PUT") return reply(405, "", "text/plain");
      HttpReply out = reply(b.token_status, b.token_status == 200 ? imds_token : "", "text/plain");
      out.delay = b.token_delay;
      return out;
    }
    if (r.method != "GET" || r.path.rfind(imds_prefix, 0) != 0) return reply(404, "", "text/plain");
    const std::string token = r.header("x-aws-ec2-metadata-token");
    if ((!token.empty() && token != imds_token) || (token.empty() && b.v2_only)) return reply(401, "", "text/plain");
    if (r.path == imds_prefix) return reply(b.role_status, b.role_status == 200 ? b.role + "\n" : "", "text/plain");
    if (r.path != imds_prefix + b.role) return reply(404, "", "text/plain");
    HttpReply out = b.credentials
                        ? b.credentials()
                        : reply(200, credentials_json(imds_key, imds_secret, imds_session, Clock::now() + 1h));
    out.delay += b.credentials_delay;
    return out;
  };
}

inline const std::string container_path = "/v2/credentials/kclpp-task";

// The container endpoint: GET container_path with `Authorization: expected_token` (when not
// empty, else 401) answers `credentials()` (default: container_key... for 1 h).
inline FakeService::Handler container_handler(std::string expected_token = {},
                                              std::function<HttpReply()> credentials = {}) {
  return [expected_token, credentials](const HttpRequest& r) -> HttpReply {
    if (r.method != "GET" || r.path != container_path) return reply(404, "", "text/plain");
    if (!expected_token.empty() && r.header("authorization") != expected_token) return reply(401, "", "text/plain");
    return credentials ? credentials()
                       : reply(200, credentials_json(container_key, container_secret, container_session,
                                                     Clock::now() + 1h, ""));
  };
}

// STS: POST / with a form; `answer` gets the form's fields.
inline FakeService::Handler sts_handler(
    std::function<HttpReply(const std::map<std::string, std::string>&, const HttpRequest&)> answer) {
  return [answer](const HttpRequest& r) -> HttpReply {
    if (r.method != "POST" || r.path != "/") return reply(404, "", "text/plain");
    return answer(parse_form(r.body), r);
  };
}

// An STS that hands out sts_key/sts_secret/sts_session for 1 h to every action.
inline FakeService::Handler sts_ok() {
  return sts_handler([](const std::map<std::string, std::string>& form, const HttpRequest&) {
    const auto it = form.find("Action");
    return sts_credentials(it == form.end() ? "Unknown" : it->second, sts_key, sts_secret, sts_session,
                           Clock::now() + 1h);
  });
}

}  // namespace kclpp::test::creds
