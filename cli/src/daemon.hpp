#pragma once
// `kclpp daemon app.properties`: kclpp in place of the Java MultiLangDaemon. The native
// worker runs a kcl::ChildProcess per shard, configured from the same properties file.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/kcl/child_process.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/log.hpp"
#include "credentials_property.hpp"
#include "ops_server.hpp"
#include "properties.hpp"

namespace kclpp::app::detail {

struct DaemonConfig {
  std::string stream;
  aws::KinesisOptions client;
  native::WorkerOptions worker;
  kcl::ChildProcessOptions child;
  // checkpointStore (or --checkpoint-store); "dynamodb:" made "dynamodb:TABLE" with
  // tableName, else the application name.
  std::string checkpoint_store;
  // The DynamoDB client of a dynamodb: store: region = regionName, endpoint =
  // dynamoDBEndpoint; credentials set by resolve_credentials().
  native::StoreOptions store;
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
  // Keys of KCL 3.x's leader-based lease assignment present in the file: ignored, logged
  // once ("KCL 3.x leader-based assignment is not supported").
  std::vector<std::string> kcl3_keys;
  // tableName / dynamoDBEndpoint given while the store is not dynamodb: (logged as unused).
  std::vector<std::string> unused_lease_keys;
  // retrievalMode and the fanoutConfig.* keys (docs/kcl-protocol.md §6): set for enhanced
  // fan-out, unset for polling.
  std::optional<native::FanOutOptions> fan_out;
  // Why the daemon polls or fans out when the file leaves it open (no retrievalMode, or
  // DEFAULT): logged once; "" when the file says it.
  std::string retrieval_note;
  // Retrieval keys without effect: the other mode's (maxRecords with FANOUT,
  // fanoutConfig.* with POLLING), fanoutConfig.consumerName next to consumerArn, and the
  // fan-out retry keys kclpp does not apply (one warning).
  std::vector<std::string> unused_retrieval_keys;
  // consumerArn, consumerName, ... without "fanoutConfig.": not keys of the Java daemon,
  // which ignores them; not applied here either, and warned about with the right name.
  std::vector<std::string> misnamed_fan_out_keys;
  // logTo (kclpp's own key: stderr | syslog, docs/operations.md §3).
  std::optional<LogOutput> log_to;
  // kclpp's own keys metricsListen and statsdAddress (docs/operations.md §1); the command
  // line's --metrics-listen and --statsd win over them.
  OpsConfig ops;
};

// Maps the keys of docs/kcl-protocol.md §6. `store_override` (--checkpoint-store) replaces
// the file's checkpointStore. Throws ConfigError naming the file, the key and its line for a
// missing required key or a bad value (also a checkpointStore = dynamodb:TABLE whose table
// is not the file's tableName). Touches no network and no file.
[[nodiscard]] DaemonConfig daemon_config(const std::map<std::string, Property>& properties,
                                         const std::string& source,
                                         const std::optional<std::string>& store_override = std::nullopt);

// Builds the credentials providers the file names (resolving them now, so that a bad one
// fails at start): AWSCredentialsProvider into client.credentials; for a dynamodb: store,
// AWSCredentialsProviderDynamoDB, else the Kinesis provider (null: the default chain, as
// the Kinesis client's), into store.dynamodb.credentials. Throws what
// make_credentials_provider throws.
void resolve_credentials(DaemonConfig& config);

// The `kclpp daemon` command: argv after "daemon". Returns the exit code.
int daemon_command(const std::vector<std::string>& argv);

}  // namespace kclpp::app::detail
