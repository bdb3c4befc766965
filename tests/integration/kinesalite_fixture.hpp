#pragma once
// Integration-test helpers for the Kinesis client and everything built on it: a local
// Kinesis server (kinesalite or kinesis-local from the project's node_modules) started on a
// free loopback port, and a tiny in-process HTTP server for fault injection.
//
//   kclpp::test::Kinesalite server;           // or Kinesalite(KinesisServer::KinesisLocal)
//   KCLPP_REQUIRE_SERVER(server);             // skip locally / fail in CI when node is missing
//   aws::KinesisClient client(server.client_options());

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/aws/kinesis_client.hpp"

namespace kclpp::test {

class Subprocess;

enum class KinesisServer { Kinesalite, KinesisLocal };

// "kinesalite" / "kinesis-local" (for test names).
[[nodiscard]] const char* server_name(KinesisServer kind) noexcept;

// A local Kinesis server process on 127.0.0.1 and a free port, ready (it answered a request)
// when the constructor returns; SIGKILLed and reaped by the destructor. Stream creation,
// deletion and resharding take no time. When node or the npm package is missing the
// server is unavailable() (use KCLPP_REQUIRE_SERVER); when it is there but does not start,
// the constructor throws std::runtime_error. Thread safety: the accessors are const.
class Kinesalite {
 public:
  explicit Kinesalite(KinesisServer kind = KinesisServer::Kinesalite);
  ~Kinesalite();
  Kinesalite(const Kinesalite&) = delete;
  Kinesalite& operator=(const Kinesalite&) = delete;

  [[nodiscard]] bool available() const noexcept { return unavailable_reason_.empty(); }
  // Why the server could not be started (empty when it runs).
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return unavailable_reason_; }
  [[nodiscard]] KinesisServer kind() const noexcept { return kind_; }
  // "http://127.0.0.1:PORT".
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  // Endpoint, region us-east-1 and fixed dummy credentials (nothing read from the
  // environment), short timeouts.
  [[nodiscard]] aws::KinesisOptions client_options() const;
  // Everything the server wrote to stderr so far (for failure messages).
  [[nodiscard]] std::string server_log() const;

 private:
  KinesisServer kind_;
  std::string unavailable_reason_;
  std::string endpoint_;
  std::unique_ptr<Subprocess> process_;
};

// True when the tests run in CI (env KCLPP_CI set): missing servers are failures there.
[[nodiscard]] bool in_ci() noexcept;

// A loopback port nothing listens on (bound, then closed).
[[nodiscard]] int unused_port();
// A listening TCP socket on 127.0.0.1 and a free port (SO_REUSEADDR); sets `port`.
// Throws std::runtime_error naming `who` on failure.
[[nodiscard]] int listen_on_loopback(int backlog, int& port, const char* who);
// The executable `program` on $PATH, or empty.
[[nodiscard]] std::string find_on_path(const std::string& program);

// How waiting for a server just started as `process` ended (wait_until_answering).
enum class ServerStart { Answering, Exited, TimedOut };
// Calls `probe` (one request to the server, short timeouts) until the server answers:
// `probe` returns, or throws aws::AwsError (an error reply is an answer); any other
// kclpp::Error means "not listening yet". Stops early when `process` exits.
[[nodiscard]] ServerStart wait_until_answering(Subprocess& process, const std::function<void()>& probe,
                                               std::chrono::milliseconds timeout);

// Every record of `stream` as stored, shard by shard in ListShards order: GetRecords from
// TRIM_HORIZON until each shard is caught up or closed (at most `max_reads` per shard).
// Throws what the client throws.
[[nodiscard]] std::vector<Record> read_stream(aws::KinesisClient& client, const std::string& stream,
                                              int max_reads = 1000);

}  // namespace kclpp::test

// In a test body: skips the test (locally) or fails it (KCLPP_CI set) when `server` could
// not be started because node or its npm package is missing.
#define KCLPP_REQUIRE_SERVER(server)                                          \
  do {                                                                        \
    if (!(server).available()) {                                              \
      if (::kclpp::test::in_ci()) FAIL() << (server).unavailable_reason();    \
      GTEST_SKIP() << (server).unavailable_reason();                          \
    }                                                                         \
  } while (false)

namespace kclpp::test {

// One HTTP/1.1 request as the fake server received it. Header names are lower-cased.
struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The value of header `name` (lower-case), or "" when absent.
  [[nodiscard]] std::string header(std::string_view name) const;
};

// What the fake server does with one request.
struct HttpReply {
  enum class Action {
    Respond,  // send status + body (after `delay`)
    Reset,    // read the request, then close the connection with a TCP reset, no reply
    Close,    // read the request, then close the connection cleanly, no reply
  };
  Action action = Action::Respond;
  int status = 200;
  std::string body;
  std::string content_type = "application/x-amz-json-1.1";
  std::chrono::milliseconds delay{0};

  static HttpReply json(std::string body, int status = 200) {
    HttpReply r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  // A Kinesis-style error reply: {"__type": type, "message": message}.
  static HttpReply aws_error(int status, std::string_view type, std::string_view message);
  static HttpReply reset() {
    HttpReply r;
    r.action = Action::Reset;
    return r;
  }
  static HttpReply close() {
    HttpReply r;
    r.action = Action::Close;
    return r;
  }
};

// A tiny HTTP/1.1 server on 127.0.0.1 and an ephemeral port, run by one background thread:
// keep-alive connections, one at a time, each request answered by `handler` (called on
// that thread). Answers `Expect: 100-continue`. The destructor stops and joins the thread.
// Thread safety: requests() and endpoint() may be called from any thread.
class FakeHttpServer {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;
  // Sequential: one connection served at a time, in the order accepted (a client's next
  // connection waits until its previous one closes). ThreadPerConnection: each accepted
  // connection on its own thread (joined by the destructor); the handler must then be
  // thread-safe.
  enum class Mode { Sequential, ThreadPerConnection };
  explicit FakeHttpServer(Handler handler, Mode mode = Mode::Sequential);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  // Every request received so far, in order.
  [[nodiscard]] std::vector<HttpRequest> requests() const;
  // Number of TCP connections accepted so far.
  [[nodiscard]] int connections() const noexcept { return connections_.load(); }
  // Endpoint, region us-east-1, fixed dummy credentials, the given request timeout.
  [[nodiscard]] aws::KinesisOptions client_options(
      std::chrono::milliseconds request_timeout = std::chrono::milliseconds{5'000}) const;

 private:
  void run();
  bool serve_connection(int fd);

  Handler handler_;
  Mode mode_;
  int listen_fd_ = -1;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::vector<HttpRequest> requests_;
  std::thread thread_;
};

}  // namespace kclpp::test
