#pragma once
// `kclpp daemon app.properties`: kclpp in place of the Java MultiLangDaemon. The native
// worker runs a kcl::ChildProcess per shard, configured from the same properties file.
#include <map>
#include <string>
#include <vector>

#include "kclpp/kcl/child_process.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/worker.hpp"
#include "credentials_property.hpp"
#include "properties.hpp"

namespace kclpp::app::detail {

struct DaemonConfig {
  std::string stream;
  aws::KinesisOptions client;
  native::WorkerOptions worker;
  kcl::ChildProcessOptions child;
  std::string checkpoint_store;
  // AWSCredentialsProvider and its DynamoDB / CloudWatch variants (any case of the key, as
  // the Java daemon normalises them); empty: the default chain. `*_where` name the key.
  std::vector<ProviderSpec> credentials;
  std::vector<ProviderSpec> dynamodb_credentials;
  std::vector<ProviderSpec> cloudwatch_credentials;
  std::string credentials_where;
  std::string dynamodb_credentials_where;
  std::string cloudwatch_credentials_where;
  // Keys present in the file that kclpp does not use (each warned about once).
  std::vector<std::string> ignored_keys;
};

// Maps the keys of docs/kcl-protocol.md §6 that matter on one worker. Throws ConfigError
// naming the file, the key and its line for a missing required key or a bad value.
[[nodiscard]] DaemonConfig daemon_config(const std::map<std::string, Property>& properties,
                                         const std::string& source);

// The `kclpp daemon` command: argv after "daemon". Returns the exit code.
int daemon_command(const std::vector<std::string>& argv);

}  // namespace kclpp::app::detail
