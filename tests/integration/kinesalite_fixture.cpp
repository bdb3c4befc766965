#include "kinesalite_fixture.hpp"

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "support.hpp"

namespace kclpp::test {

namespace {

NodeServerSpec kinesis_server_spec(KinesisServer kind, int tls_port, const std::filesystem::path& cert) {
  NodeServerSpec spec;
  spec.name = server_name(kind);
  if (kind == KinesisServer::Kinesalite) {
    spec.script = "kinesalite/cli.js";
    spec.argv = [](const std::string& node, const std::string& script, int port) {
      return std::vector<std::string>{node, script, "--port", std::to_string(port), "--createStreamMs", "0",
                                      "--deleteStreamMs", "0", "--updateStreamMs", "0",
                                      // The default of 10 shards per account is less than
                                      // the lease fleet tests' 12 shards plus their splits.
                                      "--shardLimit", "100"};
    };
  } else {
    spec.script = "kinesis-local/main.js";
    spec.argv = [](const std::string& node, const std::string& script, int) {
      return std::vector<std::string>{node, script};
    };
    // kinesis-local reads server.json (its TLS certificate) from the working directory
    // unless KINESIS_MOCK_CERT_PATH says where; it always opens a TLS port too, so that one
    // gets a free port as well. Durations at 0 make stream changes immediate.
    spec.env = [tls_port, cert](const std::string& script, int port) {
      return std::vector<std::string>{
          "KINESIS_MOCK_PLAIN_PORT=" + std::to_string(port),
          "KINESIS_MOCK_TLS_PORT=" + std::to_string(tls_port > 0 ? tls_port : unused_port()),
          "KINESIS_MOCK_CERT_PATH=" +
              (cert.empty() ? std::filesystem::path(script).parent_path() / "server.json" : cert).string(),
          "CREATE_STREAM_DURATION=0ms", "DELETE_STREAM_DURATION=0ms", "MERGE_SHARDS_DURATION=0ms",
          "SPLIT_SHARD_DURATION=0ms", "UPDATE_SHARD_COUNT_DURATION=0ms", "AWS_REGION=us-east-1",
          "LOG_LEVEL=WARN", "SHOULD_PERSIST_DATA=false"};
    };
  }
  // (The stream does not exist: the probe ends in an AwsError, which is an answer.)
  spec.probe = [](const std::string& endpoint) {
    aws::KinesisClient probe(local_client_options<aws::KinesisOptions>(endpoint, std::chrono::milliseconds{500},
                                                                        std::chrono::milliseconds{2'000}));
    (void)probe.describe_stream_summary("kclpp-readiness-probe");
  };
  return spec;
}

}  // namespace

const char* server_name(KinesisServer kind) noexcept {
  return kind == KinesisServer::Kinesalite ? "kinesalite" : "kinesis_local";
}

Kinesalite::Kinesalite(KinesisServer kind) : kind_(kind), server_(kinesis_server_spec(kind, 0, {})) {}

Kinesalite::Kinesalite(const std::filesystem::path& tls_certificate)
    : kind_(KinesisServer::KinesisLocal),
      tls_port_(unused_port()),
      server_(kinesis_server_spec(kind_, tls_port_, tls_certificate)) {}

aws::KinesisOptions Kinesalite::client_options() const {
  return local_client_options<aws::KinesisOptions>(endpoint(), std::chrono::milliseconds{2'000},
                                                   std::chrono::milliseconds{20'000});
}

std::filesystem::path write_tls_certificate(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto key = dir / "key.pem";
  const auto ca = dir / "ca.pem";
  const std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                              "-addext subjectAltName=IP:127.0.0.1 -keyout '" +
                              key.string() + "' -out '" + ca.string() + "' 2>&1";
  const std::string output = shell_output(command);
  const auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  };
  const std::string key_pem = read(key);
  const std::string cert_pem = read(ca);
  if (key_pem.find("PRIVATE KEY") == std::string::npos || cert_pem.find("CERTIFICATE") == std::string::npos) {
    throw std::runtime_error("openssl made no certificate: " + output);
  }
  const auto json = dir / "server.json";
  std::ofstream(json) << nlohmann::json{{"server", {{"key", key_pem}, {"cert", cert_pem}}}}.dump();
  return json;
}

std::vector<Record> read_stream(aws::KinesisClient& client, const std::string& stream, int max_reads) {
  std::vector<Record> out;
  for (const auto& shard : client.list_shards(stream)) {
    auto iterator = client.get_shard_iterator(stream, shard.shard_id, aws::StartPosition::trim_horizon());
    for (int round = 0; round < max_reads; ++round) {
      auto result = client.get_records(iterator);
      for (auto& r : result.records) out.push_back(std::move(r));
      if (!result.next_shard_iterator || (result.records.empty() && result.millis_behind_latest == 0)) break;
      iterator = *result.next_shard_iterator;
    }
  }
  return out;
}

}  // namespace kclpp::test
