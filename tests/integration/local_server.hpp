#pragma once
// Integration-test helpers for local servers: CI detection (a missing server fails there
// instead of skipping), free loopback ports, waiting until a just-started server answers,
// and NodeServer, a server script from the project's node_modules (kinesalite, dynalite,
// s3rver) on a free port. The fixtures built on it: kinesalite_fixture.hpp,
// dynalite_fixture.hpp, s3rver_fixture.hpp.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/aws/credentials.hpp"
#include "support.hpp"

namespace kclpp::test {

// True when the tests run in CI (env KCLPP_CI set): missing servers are failures there.
[[nodiscard]] bool in_ci() noexcept;

// A loopback port nothing listens on (bound, then closed).
[[nodiscard]] int unused_port();
// A listening TCP socket on 127.0.0.1 and a free port (SO_REUSEADDR); sets `port`.
// Throws std::runtime_error naming `who` on failure.
[[nodiscard]] int listen_on_loopback(int backlog, int& port, const char* who);
// The executable `program` on $PATH, or empty.
[[nodiscard]] std::string find_on_path(const std::string& program);

// Why node (on $PATH) or `module_path` under the project's node_modules is missing, or ""
// when both are there: see KCLPP_REQUIRE_PRESENT.
[[nodiscard]] std::string node_unavailable(const std::filesystem::path& module_path);

// "PROGRAM is not installed (not on $PATH)", or "" when `program` is on $PATH: see
// KCLPP_REQUIRE_PRESENT.
[[nodiscard]] std::string program_unavailable(const std::string& program);

// Fixed dummy credentials for clients of local servers (nothing read from the environment).
[[nodiscard]] aws::Credentials dummy_credentials();

// Options for a client of a local server (aws::KinesisOptions, aws::DynamoDbOptions, ...):
// `endpoint`, region us-east-1, dummy_credentials(), the given timeouts.
template <class Options>
[[nodiscard]] Options local_client_options(const std::string& endpoint, std::chrono::milliseconds connect_timeout,
                                           std::chrono::milliseconds request_timeout) {
  Options o;
  o.endpoint = endpoint;
  o.region = "us-east-1";
  o.credentials = aws::static_credentials(dummy_credentials());
  o.connect_timeout = connect_timeout;
  o.request_timeout = request_timeout;
  return o;
}

// How waiting for a server just started as `process` ended (wait_until_answering).
enum class ServerStart { Answering, Exited, TimedOut };
// Calls `probe` (one request to the server, short timeouts) until the server answers:
// `probe` returns, or throws aws::AwsError (an error reply is an answer); any other
// kclpp::Error means "not listening yet". Stops early when `process` exits.
[[nodiscard]] ServerStart wait_until_answering(Subprocess& process, const std::function<void()>& probe,
                                               std::chrono::milliseconds timeout);

// How to run one server script of node_modules.
struct NodeServerSpec {
  // For messages: "kinesalite".
  std::string name;
  // The script, relative to the project's node_modules: "kinesalite/cli.js".
  std::filesystem::path script;
  // The command for a server on 127.0.0.1:`port` (argv[0] is `node`, the absolute path of
  // the script is `script`) and its extra environment.
  std::function<std::vector<std::string>(const std::string& node, const std::string& script, int port)> argv;
  std::function<std::vector<std::string>(const std::string& script, int port)> env;
  // One request to the server at `endpoint` ("http://127.0.0.1:PORT") with short timeouts,
  // as wait_until_answering wants it.
  std::function<void(const std::string& endpoint)> probe;
};

// A server script of node_modules run by node on 127.0.0.1 and a free port, ready (it
// answered a probe) when the constructor returns; SIGKILLed and reaped by the destructor.
// A free port can be taken before the server binds it, so a server that exits at once is
// tried on up to three ports. When node or the script is missing the server is
// unavailable() (see KCLPP_REQUIRE_SERVER); when it is there but does not start, the
// constructor throws std::runtime_error with the server's stderr. Thread safety: the
// accessors are const.
class NodeServer {
 public:
  explicit NodeServer(const NodeServerSpec& spec);
  ~NodeServer();
  NodeServer(const NodeServer&) = delete;
  NodeServer& operator=(const NodeServer&) = delete;

  [[nodiscard]] bool available() const noexcept { return unavailable_reason_.empty(); }
  // Why the server could not be started (empty when it runs).
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return unavailable_reason_; }
  // "http://127.0.0.1:PORT".
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  // Everything the server wrote to stderr so far (for failure messages).
  [[nodiscard]] std::string server_log() const;
  // The server's process id (-1 when unavailable): for tests that pause the server with
  // SIGSTOP / SIGCONT to make it unreachable without losing its data.
  [[nodiscard]] pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }

 private:
  std::string unavailable_reason_;
  std::string endpoint_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace kclpp::test

// In a test body or SetUp: skips the test (locally) or fails it (KCLPP_CI set) when
// `missing`, the reason something the test needs is not installed, is not empty.
#define KCLPP_REQUIRE_PRESENT(missing)                                        \
  do {                                                                        \
    const std::string kclpp_missing_ = (missing);                             \
    if (!kclpp_missing_.empty()) {                                            \
      if (::kclpp::test::in_ci()) FAIL() << kclpp_missing_;                   \
      GTEST_SKIP() << kclpp_missing_;                                         \
    }                                                                         \
  } while (false)

// KCLPP_REQUIRE_PRESENT for a server fixture that could not start because node or its npm
// package is missing.
#define KCLPP_REQUIRE_SERVER(server) KCLPP_REQUIRE_PRESENT((server).unavailable_reason())
