#pragma once
// Integration-test helper: a tiny in-process HTTP/1.1 server on loopback for fault
// injection and for the endpoints a test stands in for (instance metadata, STS, S3, ...),
// and the request reading it shares with other in-process servers (the reliability test's
// proxy).
//
//   kclpp::test::FakeHttpServer server([](const HttpRequest& req) { return HttpReply::json("{}"); });
//   aws::KinesisClient client(server.client_options());

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"

namespace kclpp::test {

// One HTTP/1.1 request as a server received it. Header names are lower-cased.
struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The value of header `name` (lower-case), or "" when absent.
  [[nodiscard]] std::string header(std::string_view name) const;
};

// Reads the requests of one keep-alive connection one after another (Content-Length
// bodies; `Expect: 100-continue` is answered). Not thread-safe: one per connection.
class HttpRequestReader {
 public:
  // `wait_readable` blocks until `fd` has input; false gives up (a stop flag, a deadline).
  HttpRequestReader(int fd, std::function<bool()> wait_readable)
      : fd_(fd), wait_readable_(std::move(wait_readable)) {}
  // The next whole request; nullopt when the peer closed the connection, the wait gave up,
  // or the 100 Continue could not be sent.
  [[nodiscard]] std::optional<HttpRequest> next();

 private:
  bool read_more();

  int fd_;
  std::function<bool()> wait_readable_;
  std::string buffer_;
};

// Sends every byte (no SIGPIPE); false when the peer went away.
bool send_all(int fd, std::string_view bytes);
// "HTTP/1.1 STATUS REASON" with Content-Type, Content-Length and the body.
[[nodiscard]] std::string http_response(int status, std::string_view content_type, std::string_view body);
// Closes `fd` with a TCP reset instead of a FIN.
void close_with_reset(int fd);

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
// keep-alive connections, each request answered by `handler` (called on the serving
// thread). Answers `Expect: 100-continue`. The destructor stops and joins every thread.
// Thread safety: requests(), connections() and endpoint() may be called from any thread.
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
  // How serving a connection ended: whether its socket is still to be closed.
  enum class Served { CloseSocket, AlreadyClosed };
  Served serve_connection(int fd);
  // Waits out `delay` in short slices; false when the server stops meanwhile.
  bool sleep_unless_stopped(std::chrono::milliseconds delay) const;

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
