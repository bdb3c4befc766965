#pragma once
// Integration-test helper for the DynamoDB client and the lease table built on it: dynalite
// (DynamoDB on LevelDB, in memory, from the project's node_modules) started on a free
// loopback port.
//
//   kclpp::test::Dynalite server;
//   KCLPP_REQUIRE_SERVER(server);             // skip locally / fail in CI when node is missing
//   aws::DynamoDbClient client(server.client_options());

#include <chrono>
#include <string>

#include "kclpp/aws/dynamodb_client.hpp"
#include "local_server.hpp"

namespace kclpp::test {

// Endpoint, region us-east-1, fixed dummy credentials (nothing read from the environment),
// the given request timeout: for dynalite and for a FakeHttpServer's endpoint.
[[nodiscard]] aws::DynamoDbOptions dynamodb_test_options(
    const std::string& endpoint, std::chrono::milliseconds request_timeout = std::chrono::milliseconds{5'000});

// A dynalite process on 127.0.0.1 and a free port, ready (it answered a request) when the
// constructor returns; SIGKILLed and reaped by the destructor. Table creation, deletion and
// updates take no time (--createTableMs 0 and friends). When node or the npm package is
// missing the server is unavailable() (use KCLPP_REQUIRE_SERVER); when it is there but does
// not start, the constructor throws std::runtime_error. Thread safety: the accessors are
// const.
class Dynalite {
 public:
  Dynalite();
  Dynalite(const Dynalite&) = delete;
  Dynalite& operator=(const Dynalite&) = delete;

  [[nodiscard]] bool available() const noexcept { return server_.available(); }
  // Why the server could not be started (empty when it runs).
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return server_.unavailable_reason(); }
  // "http://127.0.0.1:PORT".
  [[nodiscard]] const std::string& endpoint() const noexcept { return server_.endpoint(); }
  // dynamodb_test_options(endpoint()) with a longer request timeout.
  [[nodiscard]] aws::DynamoDbOptions client_options() const;
  // Everything the server wrote to stderr so far (for failure messages).
  [[nodiscard]] std::string server_log() const { return server_.server_log(); }
  // The dynalite process: SIGSTOP makes the table unreachable, SIGCONT brings it back.
  [[nodiscard]] pid_t pid() const noexcept { return server_.pid(); }

 private:
  NodeServer server_;
};

}  // namespace kclpp::test
