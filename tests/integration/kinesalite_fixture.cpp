#include "kinesalite_fixture.hpp"

#include <chrono>
#include <utility>

namespace kclpp::test {

namespace {

NodeServerSpec kinesis_server_spec(KinesisServer kind) {
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
    spec.env = [](const std::string& script, int port) {
      return std::vector<std::string>{
          "KINESIS_MOCK_PLAIN_PORT=" + std::to_string(port),
          "KINESIS_MOCK_TLS_PORT=" + std::to_string(unused_port()),
          "KINESIS_MOCK_CERT_PATH=" + (std::filesystem::path(script).parent_path() / "server.json").string(),
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

Kinesalite::Kinesalite(KinesisServer kind) : kind_(kind), server_(kinesis_server_spec(kind)) {}

aws::KinesisOptions Kinesalite::client_options() const {
  return local_client_options<aws::KinesisOptions>(endpoint(), std::chrono::milliseconds{2'000},
                                                   std::chrono::milliseconds{20'000});
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
