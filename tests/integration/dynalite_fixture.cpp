#include "dynalite_fixture.hpp"

#include <vector>

namespace kclpp::test {

aws::DynamoDbOptions dynamodb_test_options(const std::string& endpoint, std::chrono::milliseconds request_timeout) {
  return local_client_options<aws::DynamoDbOptions>(endpoint, std::chrono::milliseconds{1'000}, request_timeout);
}

namespace {

NodeServerSpec dynalite_spec() {
  NodeServerSpec spec;
  spec.name = "dynalite";
  spec.script = "dynalite/cli.js";
  // Without --host dynalite listens on every address; no --path: an in-memory store.
  spec.argv = [](const std::string& node, const std::string& script, int port) {
    return std::vector<std::string>{node, script, "--host", "127.0.0.1", "--port", std::to_string(port),
                                    "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"};
  };
  // (The table does not exist: the probe ends in an AwsError, which is an answer.)
  spec.probe = [](const std::string& endpoint) {
    aws::DynamoDbOptions options = dynamodb_test_options(endpoint, std::chrono::milliseconds{2'000});
    options.connect_timeout = std::chrono::milliseconds{500};
    aws::DynamoDbClient probe(options);
    (void)probe.describe_table("kclpp-readiness-probe");
  };
  return spec;
}

}  // namespace

Dynalite::Dynalite() : server_(dynalite_spec()) {}

aws::DynamoDbOptions Dynalite::client_options() const {
  return dynamodb_test_options(endpoint(), std::chrono::milliseconds{20'000});
}

}  // namespace kclpp::test
