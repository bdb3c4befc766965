#include "fanout_server_fixture.hpp"

#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "http.hpp"  // aws/src: the one HTTP transport, for the control calls

namespace kclpp::test {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> server_argv(const std::string& upstream, const FanOutServerOptions& o) {
  std::vector<std::string> argv{find_on_path("node"),
                                (fs::path(KCLPP_SOURCE_DIR) / "tests" / "node" / "fanout_server.js").string(),
                                "--upstream", upstream,
                                // Port 0: the server reports the port it got (READY), so
                                // no free port can be taken from under it.
                                "--port", "0",
                                "--activate-ms", std::to_string(o.activate.count()),
                                "--poll-ms", std::to_string(o.poll.count()),
                                "--heartbeat-ms", std::to_string(o.heartbeat.count()),
                                "--max-event-bytes", std::to_string(o.max_event_bytes)};
  if (o.initial_response) argv.emplace_back("--initial-response");
  return argv;
}

// The port of "READY <port> <http-port>", or -1.
int ready_port(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  int port = -1;
  if (!(in >> word >> port) || word != "READY" || port <= 0) return -1;
  return port;
}

}  // namespace

FanOutServer::FanOutServer(FanOutServerOptions options) : unavailable_reason_(upstream_.unavailable_reason()) {
  if (!available()) return;
  process_ = std::make_unique<Subprocess>(server_argv(upstream_.endpoint(), options));
  const auto line = process_->read_line(std::chrono::seconds{20});
  const int port = line ? ready_port(*line) : -1;
  if (port < 0) {
    const std::string log = process_->stderr_text();
    process_.reset();
    throw std::runtime_error("fanout_server.js did not start (first line: " + line.value_or("none") +
                             "); its stderr:\n" + log);
  }
  endpoint_ = "http://127.0.0.1:" + std::to_string(port);
}

FanOutServer::~FanOutServer() = default;

aws::KinesisOptions FanOutServer::client_options() const {
  return local_client_options<aws::KinesisOptions>(endpoint_, std::chrono::milliseconds{2'000},
                                                   std::chrono::milliseconds{20'000});
}

std::string FanOutServer::control(const char* method, const std::string& path, const std::string& body) const {
  aws::detail::HttpClient http(
      {.connect_timeout = std::chrono::milliseconds{2'000}, .request_timeout = std::chrono::milliseconds{10'000}});
  const std::vector<std::string> headers{"Content-Type: application/json"};
  const std::string url = endpoint_ + path;
  const aws::detail::HttpResult result = http.perform({.method = method, .url = url, .headers = &headers, .body = body});
  if (result.outcome != aws::detail::HttpResult::Outcome::Response) {
    throw std::runtime_error(std::string(method) + " " + path + " to the fan-out server failed: " + result.error);
  }
  if (result.status != 200) {
    throw std::runtime_error(std::string(method) + " " + path + ": HTTP " + std::to_string(result.status) + " " +
                             http.body());
  }
  return std::move(http.body());
}

void FanOutServer::set_faults(const nlohmann::json& rules) const { (void)control("POST", "/__faults", rules.dump()); }

nlohmann::json FanOutServer::stats() const { return nlohmann::json::parse(control("GET", "/__stats", {})); }

void FanOutServer::reset() const { (void)control("POST", "/__reset", "{}"); }

std::string FanOutServer::server_log() const { return process_ ? process_->stderr_text() : std::string{}; }

}  // namespace kclpp::test
