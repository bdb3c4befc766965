#pragma once
// Integration-test fixture for enhanced fan-out (issue 13): tests/node/fanout_server.js, a
// fault-injecting SubscribeToShard server on Node's http2 module, in front of a kinesalite
// the fixture starts too. One endpoint serves the JSON calls (HTTP/1.1 or HTTP/2) and
// SubscribeToShard (HTTP/2 with prior knowledge); the server itself implements the consumer
// calls and SubscribeToShard, and forwards every other call to kinesalite. The rules and
// stats formats are documented at the top of tests/node/fanout_server.js.
//
//   kclpp::test::FanOutServer server;
//   KCLPP_REQUIRE_SERVER(server);
//   aws::KinesisClient client(server.client_options());
//   server.set_faults(R"([{"rule":"endAfterEvents","events":3}])"_json);
//   ... subscribe through server.endpoint() ...
//   EXPECT_EQ(server.stats()["subscriptions"][0]["end"], "ended");

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kclpp/aws/kinesis_client.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"

namespace kclpp::test {

struct FanOutServerOptions {
  // How long a new consumer stays CREATING (and a deregistered one DELETING).
  std::chrono::milliseconds activate{200};
  // How often a subscription reads kinesalite while it has nothing to send.
  std::chrono::milliseconds poll{50};
  // An empty event after this long without one.
  std::chrono::milliseconds heartbeat{1'000};
  // Record bytes per event at most (a GetRecords page is cut into several events).
  std::size_t max_event_bytes = 1u << 20;
  // Every subscription opens with an initial-response event, as AWS's do (the
  // initialResponse rule does it for chosen subscriptions only).
  bool initial_response = false;
};

// The fan-out server and its kinesalite, on 127.0.0.1 and free ports, ready (it printed
// READY) when the constructor returns; both SIGKILLed and reaped by the destructor (the
// server would also exit on its own once its stdin, held by the fixture, closes). When node
// or kinesalite is missing the server is unavailable() (use KCLPP_REQUIRE_SERVER); when it
// is there but does not start, the constructor throws std::runtime_error with its stderr.
// Thread safety: the accessors are const; set_faults, stats and reset make one HTTP call
// each and may be called from any one thread at a time.
class FanOutServer {
 public:
  explicit FanOutServer(FanOutServerOptions options = {});
  ~FanOutServer();
  FanOutServer(const FanOutServer&) = delete;
  FanOutServer& operator=(const FanOutServer&) = delete;

  [[nodiscard]] bool available() const noexcept { return unavailable_reason_.empty(); }
  // Why the servers could not be started (empty when they run).
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return unavailable_reason_; }
  // "http://127.0.0.1:PORT": every Kinesis call, SubscribeToShard included, and the control
  // API (/__faults, /__stats, /__reset).
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  // endpoint(), region us-east-1, fixed dummy credentials, short timeouts.
  [[nodiscard]] aws::KinesisOptions client_options() const;
  // The kinesalite behind the server (to reach it directly, or stop it).
  [[nodiscard]] const Kinesalite& upstream() const noexcept { return upstream_; }

  // Replaces the pending fault rules with `rules` (an array of rule objects, or one). Throws
  // std::runtime_error with the server's reason when it refuses them (an unknown rule, a
  // missing field).
  void set_faults(const nlohmann::json& rules) const;
  // The server's statistics: HTTP/2 sessions seen and every SubscribeToShard request.
  [[nodiscard]] nlohmann::json stats() const;
  // Drops the rules, the statistics and the consumers (the streams stay in kinesalite).
  void reset() const;

  // Everything the fan-out server wrote to stderr so far (for failure messages).
  [[nodiscard]] std::string server_log() const;
  // The fan-out server's process id (-1 when unavailable): SIGSTOP makes it unresponsive.
  [[nodiscard]] pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }

 private:
  // One control call: the reply body; throws std::runtime_error unless the status is 200.
  std::string control(const char* method, const std::string& path, const std::string& body) const;

  Kinesalite upstream_;
  std::string unavailable_reason_;
  std::string endpoint_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace kclpp::test
