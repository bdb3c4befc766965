#include "dynalite_fixture.hpp"

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "support.hpp"

namespace kclpp::test {

namespace fs = std::filesystem;

aws::DynamoDbOptions dynamodb_test_options(const std::string& endpoint, std::chrono::milliseconds request_timeout) {
  aws::DynamoDbOptions o;
  o.endpoint = endpoint;
  o.region = "us-east-1";
  o.credentials = aws::static_credentials({"AKIDKCLPPTEST", "kclpp-test-secret", ""});
  o.connect_timeout = std::chrono::milliseconds{1'000};
  o.request_timeout = request_timeout;
  return o;
}

Dynalite::Dynalite() {
  const std::string node = find_on_path("node");
  const fs::path script = fs::path(KCLPP_SOURCE_DIR) / "node_modules" / "dynalite" / "cli.js";
  if (node.empty()) {
    unavailable_reason_ = "node is not on PATH (needed for dynalite)";
    return;
  }
  if (!fs::exists(script)) {
    unavailable_reason_ = script.string() + " is missing: run `npm ci` in " + KCLPP_SOURCE_DIR;
    return;
  }
  // A free port can be taken between unused_port() and the server's bind: try again.
  std::string last_log;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = unused_port();
    // Without --host dynalite listens on every address; no --path: an in-memory store.
    const std::vector<std::string> argv{node, script.string(), "--host", "127.0.0.1", "--port",
                                        std::to_string(port), "--createTableMs", "0", "--deleteTableMs", "0",
                                        "--updateTableMs", "0"};
    endpoint_ = "http://127.0.0.1:" + std::to_string(port);
    process_ = std::make_unique<Subprocess>(argv);

    aws::DynamoDbOptions probe_options = dynamodb_test_options(endpoint_, std::chrono::milliseconds{2'000});
    probe_options.connect_timeout = std::chrono::milliseconds{500};
    aws::DynamoDbClient probe(probe_options);
    const ServerStart started = wait_until_answering(
        *process_, [&probe] { (void)probe.describe_table("kclpp-readiness-probe"); }, std::chrono::seconds{30});
    if (started == ServerStart::Answering) return;
    last_log = process_->stderr_text();
    process_.reset();
    if (started == ServerStart::TimedOut) break;  // it runs but never answered: retrying will not help
  }
  throw std::runtime_error("dynalite did not start; its stderr:\n" + last_log);
}

Dynalite::~Dynalite() = default;

aws::DynamoDbOptions Dynalite::client_options() const {
  return dynamodb_test_options(endpoint_, std::chrono::milliseconds{20'000});
}

std::string Dynalite::server_log() const { return process_ ? process_->stderr_text() : std::string{}; }

}  // namespace kclpp::test
