#include "daemon.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>

#include "args.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "native_runner.hpp"

namespace kclpp::app::detail {
namespace {

// ASCII upper case: the Java daemon upper-cases enum values before looking them up.
std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

class Reader {
 public:
  Reader(const std::map<std::string, Property>& properties, const std::string& source)
      : properties_(properties), source_(source) {}

  const Property* find(const std::string& key) {
    used_.insert(key);
    return peek(key);
  }
  // The key without counting it as used (it may still be listed as ignored).
  const Property* peek(const std::string& key) const {
    const auto it = properties_.find(key);
    return it == properties_.end() ? nullptr : &it->second;
  }
  std::string required(const std::string& key) {
    const Property* p = find(key);
    if (p == nullptr || p->value.empty())
      throw ConfigError(source_ + ": required key '" + key + "' is missing or empty");
    return p->value;
  }
  [[noreturn]] void bad(const std::string& key, const std::string& why) {
    const Property* p = find(key);
    throw ConfigError(source_ + ":" + std::to_string(p != nullptr ? p->line : 0) + ": " + key +
                      " = '" + (p != nullptr ? p->value : "") + "': " + why);
  }
  std::optional<long long> integer(const std::string& key, long long min, long long max) {
    const Property* p = find(key);
    if (p == nullptr) return std::nullopt;
    long long value = 0;
    const auto [end, ec] = std::from_chars(p->value.data(), p->value.data() + p->value.size(), value);
    if (ec != std::errc{} || end != p->value.data() + p->value.size() || value < min || value > max)
      bad(key, "not an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return value;
  }
  // Commons BeanUtils' BooleanConverter words.
  std::optional<bool> boolean(const std::string& key) {
    const Property* p = find(key);
    if (p == nullptr) return std::nullopt;
    const std::string v = upper(p->value);
    if (v == "TRUE" || v == "YES" || v == "Y" || v == "ON" || v == "1") return true;
    if (v == "FALSE" || v == "NO" || v == "N" || v == "OFF" || v == "0") return false;
    bad(key, "not a boolean (true/false)");
  }
  // The key equal to `lower_key` in any case (the Java daemon normalises the
  // AWSCredentialsProvider keys), nullptr when absent.
  const Property* find_any_case(const std::string& lower_key, std::string& actual_key) {
    for (const auto& [key, value] : properties_) {
      std::string l = key;
      std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (l == lower_key) {
        actual_key = key;
        return find(key);
      }
    }
    return nullptr;
  }
  std::vector<std::string> unused() const {
    std::vector<std::string> keys;
    for (const auto& [key, value] : properties_)
      if (used_.count(key) == 0) keys.push_back(key);
    return keys;
  }

 private:
  const std::map<std::string, Property>& properties_;
  const std::string& source_;
  std::set<std::string> used_;
};

// Where the stream is and where a shard without a checkpoint starts.
void read_stream_and_position(Reader& r, DaemonConfig& config) {
  // streamArn wins over streamName, as in the Java daemon (docs/kcl-protocol.md §6).
  if (const Property* arn = r.find("streamArn"); arn != nullptr && !arn->value.empty()) {
    const auto slash = arn->value.rfind("stream/");
    if (slash == std::string::npos) r.bad("streamArn", "not a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)");
    config.stream = arn->value.substr(slash + 7);
    (void)r.find("streamName");
  } else {
    config.stream = r.required("streamName");
  }

  config.worker.initial_position = aws::StartPosition::latest();  // the KCL's default
  if (const Property* p = r.find("initialPositionInStream")) {
    const std::string v = upper(p->value);  // enum values are upper-cased (docs/kcl-protocol.md §6)
    if (v == "LATEST") config.worker.initial_position = aws::StartPosition::latest();
    else if (v == "TRIM_HORIZON") config.worker.initial_position = aws::StartPosition::trim_horizon();
    else if (v != "AT_TIMESTAMP") r.bad("initialPositionInStream", "not TRIM_HORIZON, LATEST or AT_TIMESTAMP");
  }
  // Epoch seconds; means AT_TIMESTAMP (2.x, docs/kcl-protocol.md §6).
  for (const char* key : {"initialPositionInStreamExtended", "timestampAtInitialPositionInStream"}) {
    if (const Property* p = r.find(key)) {
      try {
        config.worker.initial_position = aws::StartPosition::at_timestamp(parse_time(p->value, key));
      } catch (const ConfigError&) {
        r.bad(key, "not a time in epoch seconds");
      }
    }
  }
  if (const Property* p = r.find("initialPositionInStream");
      p != nullptr && upper(p->value) == "AT_TIMESTAMP" &&
      config.worker.initial_position.type != aws::IteratorType::AtTimestamp)
    r.bad("initialPositionInStream", "AT_TIMESTAMP needs initialPositionInStreamExtended (epoch seconds)");
}

// How shards are read and how the child is driven.
void read_reading_options(Reader& r, DaemonConfig& config) {
  if (const Property* p = r.find("regionName")) config.client.region = p->value;
  if (const Property* p = r.find("kinesisEndpoint")) config.client.endpoint = p->value;
  if (auto v = r.integer("maxRecords", 1, 10'000)) config.worker.max_records = static_cast<int>(*v);
  if (auto v = r.integer("idleTimeBetweenReadsInMillis", 0, 86'400'000))
    config.worker.idle_time_between_reads = std::chrono::milliseconds(*v);
  if (auto v = r.boolean("callProcessRecordsEvenForEmptyRecordList"); v && *v)
    config.worker.empty_batches = native::EmptyBatches::Deliver;
  if (auto v = r.integer("timeoutInSeconds", 0, 86'400)) config.child.reply_timeout = std::chrono::seconds(*v);
  // kclpp's own: the worker's watchdog (docs/operations.md §2). A call past it is counted,
  // makes /readyz fail and stops the systemd watchdog pings; the child is killed through
  // ChildProcess::interrupt() and the shard restarts from its checkpoint with a new child.
  // Unlike timeoutInSeconds (a wait without any reply or progress), it bounds the whole call.
  if (auto v = r.integer("processorTimeoutMillis", 0, 86'400'000))
    config.worker.processor_timeout = std::chrono::milliseconds(*v);
  if (auto v = r.integer("stallTimeoutMillis", 0, 86'400'000)) config.worker.stall_timeout = std::chrono::milliseconds(*v);
  if (auto v = r.integer("shutdownGraceMillis", 0, 86'400'000))
    config.worker.shutdown_grace = std::chrono::milliseconds(*v);
  if (auto v = r.integer("shardSyncIntervalMillis", 100, 86'400'000))
    config.worker.shard_sync_interval = std::chrono::milliseconds(*v);
}

// --- retrievalMode and the fan-out keys (docs/kcl-protocol.md §6) ---------------------------

// FanoutConfigBean's fields: the Java daemon sets them through the nested bean property
// `fanoutConfig` (MultiLangDaemonConfiguration delegates PollingConfigBean's fields to the
// top level, not these), so the keys are `fanoutConfig.consumerArn` and so on.
constexpr const char* fan_out_key_prefix = "fanoutConfig.";
constexpr const char* fan_out_retry_keys[] = {"maxDescribeStreamSummaryRetries", "maxDescribeStreamConsumerRetries",
                                              "registerStreamConsumerRetries", "retryBackoffMillis"};

// Whether the Java daemon's RetrievalMode.DEFAULT would poll: it does when any of
// PollingConfigBean's properties is set (a number: when not 0).
std::vector<std::string> java_polling_keys_set(const Reader& r) {
  std::vector<std::string> set;
  for (const char* key : {"retryGetRecordsInSeconds", "maxGetRecordsThreadPool"}) {
    if (r.peek(key) != nullptr) set.emplace_back(key);
  }
  for (const char* key : {"maxRecords", "idleTimeBetweenReadsInMillis", "millisBehindLatestThresholdForReducedTps"}) {
    if (const Property* p = r.peek(key); p != nullptr && p->value != "0") set.emplace_back(key);
  }
  return set;
}

enum class Retrieval { Polling, FanOut };

// retrievalMode: FANOUT, POLLING or DEFAULT in any case (the Java daemon upper-cases it).
// Absent, kclpp polls where the Java daemon would fan out: files written for kclpp daemon
// before it had fan-out keep their behaviour, and local emulators without fan-out
// (kinesalite) keep working. DEFAULT decides as the Java daemon does.
Retrieval read_retrieval_mode(Reader& r, DaemonConfig& config) {
  const std::vector<std::string> polling_keys = java_polling_keys_set(r);
  const Property* mode = r.find("retrievalMode");
  if (mode == nullptr) {
    if (polling_keys.empty())
      config.retrieval_note = "retrievalMode is not set: kclpp daemon polls with GetRecords where the Java daemon "
                              "would use enhanced fan-out (its DEFAULT); set retrievalMode = FANOUT or POLLING";
    return Retrieval::Polling;
  }
  const std::string v = upper(mode->value);
  if (v == "FANOUT") return Retrieval::FanOut;
  if (v == "POLLING") return Retrieval::Polling;
  if (v != "DEFAULT") r.bad("retrievalMode", "not FANOUT, POLLING or DEFAULT");
  if (polling_keys.empty()) return Retrieval::FanOut;
  std::string keys;
  for (const auto& key : polling_keys) keys += (keys.empty() ? "" : ", ") + key;
  config.retrieval_note = "retrievalMode = DEFAULT with polling keys set (" + keys +
                          "): polling, as the Java daemon decides; set retrievalMode = FANOUT for fan-out";
  return Retrieval::Polling;
}

// fanoutConfig.consumerArn wins over fanoutConfig.consumerName, as in the Java KCL (an ARN is
// used as it is); the consumer name defaults to applicationName.
native::FanOutOptions read_fan_out_consumer(Reader& r, DaemonConfig& config) {
  const std::string arn_key = std::string(fan_out_key_prefix) + "consumerArn";
  const std::string name_key = std::string(fan_out_key_prefix) + "consumerName";
  const Property* arn = r.find(arn_key);
  const Property* name = r.find(name_key);
  native::FanOutOptions options;
  if (arn != nullptr && !arn->value.empty()) {
    if (const std::string problem = consumer_arn_problem(arn->value, config.stream); !problem.empty())
      r.bad(arn_key, problem);
    options.consumer_arn = arn->value;
    if (name != nullptr) config.unused_retrieval_keys.push_back(name_key + " (" + arn_key + " is used)");
    return options;
  }
  options.consumer_name = name != nullptr && !name->value.empty() ? name->value : config.worker.application;
  if (!valid_consumer_name(options.consumer_name)) {
    if (name != nullptr && !name->value.empty()) r.bad(name_key, "not a consumer name (1 to 128 of a-z A-Z 0-9 _ . -)");
    r.bad("applicationName", "not a consumer name (1 to 128 of a-z A-Z 0-9 _ . -), which it is by default with "
                             "retrievalMode = FANOUT: set " + name_key);
  }
  return options;
}

// retrievalMode, the fanoutConfig.* keys, and the keys that do not apply to the mode chosen.
void read_retrieval(Reader& r, DaemonConfig& config) {
  const Retrieval mode = read_retrieval_mode(r, config);
  std::vector<std::string> consumer_keys;  // present in the file
  for (const char* field : {"consumerArn", "consumerName"}) {
    const std::string key = std::string(fan_out_key_prefix) + field;
    if (r.peek(key) != nullptr) consumer_keys.push_back(key);
  }
  std::vector<std::string> retry_keys;
  for (const char* field : fan_out_retry_keys) {
    // Checked as the Java daemon converts them (a bad number stops it too), not applied:
    // kclpp waits for a new consumer by time (FanOutOptions::register_timeout), not by count.
    const std::string key = std::string(fan_out_key_prefix) + field;
    if (r.integer(key, 0, std::numeric_limits<int>::max())) retry_keys.push_back(key);
  }
  for (const char* field : {"consumerArn", "consumerName"}) {
    if (r.find(field) != nullptr) config.misnamed_fan_out_keys.emplace_back(field);
  }
  for (const char* field : fan_out_retry_keys) {
    if (r.find(field) != nullptr) config.misnamed_fan_out_keys.emplace_back(field);
  }
  if (mode == Retrieval::Polling) {
    for (const auto& key : consumer_keys) {
      (void)r.find(key);
      config.unused_retrieval_keys.push_back(key + " (polling)");
    }
    for (const auto& key : retry_keys) config.unused_retrieval_keys.push_back(key + " (polling)");
    return;
  }
  config.fan_out = read_fan_out_consumer(r, config);
  for (const auto& key : retry_keys) {
    config.unused_retrieval_keys.push_back(key + " (kclpp waits up to " +
                                           std::to_string(config.fan_out->register_timeout.count() / 1000) +
                                           " s for a new consumer, with its own backoff)");
  }
  for (const char* key : {"maxRecords", "idleTimeBetweenReadsInMillis"}) {
    if (r.peek(key) != nullptr) config.unused_retrieval_keys.push_back(std::string(key) + " (fan-out)");
  }
}

// The Kinesis provider, and separate ones for DynamoDB and CloudWatch (a cross-account
// stream with the lease table at home).
void read_credentials(Reader& r, const std::string& source, DaemonConfig& config) {
  const std::pair<const char*, std::vector<ProviderSpec> DaemonConfig::*> provider_keys[] = {
      {"awscredentialsprovider", &DaemonConfig::credentials},
      {"awscredentialsproviderdynamodb", &DaemonConfig::dynamodb_credentials},
      {"awscredentialsprovidercloudwatch", &DaemonConfig::cloudwatch_credentials}};
  for (const auto& [lower_key, member] : provider_keys) {
    std::string key;
    if (const Property* p = r.find_any_case(lower_key, key)) {
      const std::string where = source + ":" + std::to_string(p->line) + ": " + key;
      config.*member = parse_credentials_providers(p->value, where);
      if (member == &DaemonConfig::credentials) config.credentials_where = where;
      if (member == &DaemonConfig::dynamodb_credentials) config.dynamodb_credentials_where = where;
      if (member == &DaemonConfig::cloudwatch_credentials) config.cloudwatch_credentials_where = where;
    }
  }
}

// The Java daemon's lease keys (LeaseManagementConfig's, with the multilang daemon's
// defaults: docs/kcl-protocol.md §6). Keys are case-sensitive there, as here.
void read_lease_options(Reader& r, DaemonConfig& config) {
  native::LeaseOptions& leases = config.worker.leases;
  const Property* identifier = r.find("workerIdentifier");
  const Property* id = r.find("workerId");  // the Java daemon's alias of workerIdentifier
  if (identifier != nullptr && id != nullptr && identifier->value != id->value)
    r.bad("workerId", "differs from workerIdentifier = '" + identifier->value + "' (line " +
                          std::to_string(identifier->line) + "): give one of them");
  if (const Property* p = identifier != nullptr ? identifier : id) {
    // An empty id would be one id shared by every worker started from this file.
    if (p->value.empty()) r.bad(identifier != nullptr ? "workerIdentifier" : "workerId",
                                "empty (leave the key out for a generated id)");
    leases.worker_id = p->value;
  }
  if (auto v = r.integer("failoverTimeMillis", 1, 86'400'000)) leases.failover_time = std::chrono::milliseconds(*v);
  // kclpp's own key (the Java daemon has no take interval key): the same setting as native
  // mode's --take-interval-ms (default: the failover time).
  if (auto v = r.integer("leaseTakeIntervalMillis", 1, 86'400'000))
    leases.take_interval = std::chrono::milliseconds(*v);
  // 0 (and the Java KCL's Integer.MAX_VALUE default, written out) mean no limit.
  if (auto v = r.integer("maxLeasesForWorker", 0, std::numeric_limits<int>::max()))
    leases.max_leases = static_cast<int>(*v);
  if (auto v = r.integer("maxLeasesToStealAtOneTime", 1, std::numeric_limits<int>::max()))
    leases.max_leases_to_steal = static_cast<int>(*v);
  // The Java KCL's default is true, unlike LeaseOptions'.
  leases.cleanup_leases_upon_shard_completion = r.boolean("cleanupLeasesUponShardCompletion").value_or(true);
}

// Keys of KCL 3.x's leader-based, utilization-aware lease assignment and of the tables it
// keeps beside the lease table (MultiLangDaemonConfiguration and its config beans). kclpp
// balances leases by count, as KCL 2.x does (docs/checkpoints.md §5).
constexpr const char* kcl3_assignment_keys[] = {
    "leaseAssignmentIntervalMillis", "enablePriorityLeaseAssignment", "clientVersionConfig",
    "migrateAllEntitiesToLeaseTable", "tableMigrationCompleteBakeTimeSeconds",
    "gracefulLeaseHandoffTimeoutMillis", "isGracefulLeaseHandoffEnabled",
    // WorkerUtilizationAwareAssignmentConfigBean
    "inMemoryWorkerMetricsCaptureFrequencyMillis", "workerMetricsReporterFreqInMillis",
    "noOfPersistedMetricsPerWorkerMetrics", "disableWorkerMetrics", "maxThroughputPerHostKBps",
    "dampeningPercentage", "reBalanceThresholdPercentage", "allowThroughputOvershoot",
    "varianceBalancingFrequency", "workerMetricsEMAAlpha", "staleWorkerMetricsEntryCleanupDuration",
    // WorkerMetricStatsTableConfigBean
    "workerMetricsTableName", "workerMetricsBillingMode", "workerMetricsReadCapacity",
    "workerMetricsWriteCapacity", "workerMetricsPointInTimeRecoveryEnabled",
    "workerMetricsDeletionProtectionEnabled", "workerMetricsTags",
    // CoordinatorStateTableConfigBean
    "coordinatorStateTableName", "coordinatorStateBillingMode", "coordinatorStateReadCapacity",
    "coordinatorStateWriteCapacity", "coordinatorStatePointInTimeRecoveryEnabled",
    "coordinatorStateDeletionProtectionEnabled", "coordinatorStateTags"};

std::vector<std::string> read_kcl3_keys(Reader& r) {
  std::vector<std::string> present;
  for (const char* key : kcl3_assignment_keys) {
    if (r.find(key) != nullptr) present.emplace_back(key);
  }
  return present;
}

// checkpointStore (kclpp's own key; `store_override` is --checkpoint-store), with tableName
// for "dynamodb:" (docs/kcl-protocol.md §6), and the DynamoDB client's region and endpoint.
void read_store(Reader& r, const std::optional<std::string>& store_override, DaemonConfig& config) {
  const Property* store = r.find("checkpointStore");
  const Property* table = r.find("tableName");
  const Property* endpoint = r.find("dynamoDBEndpoint");
  if (store_override) config.checkpoint_store = *store_override;
  else if (store != nullptr && !store->value.empty()) config.checkpoint_store = store->value;
  else config.checkpoint_store = "sqlite:" + config.worker.application + ".checkpoints.db";

  if (!is_dynamodb_uri(config.checkpoint_store)) {
    for (const Property* p : {table, endpoint}) {
      if (p != nullptr && !p->value.empty())
        config.unused_lease_keys.push_back(p == table ? "tableName" : "dynamoDBEndpoint");
    }
    return;
  }
  const std::string uri_table = dynamodb_table(config.checkpoint_store);
  const std::string file_table = table != nullptr ? table->value : "";
  if (!uri_table.empty() && !file_table.empty() && uri_table != file_table) {
    const std::string where = store_override ? std::string("--checkpoint-store") : "checkpointStore";
    r.bad("tableName", "differs from the table of " + where + " = '" + config.checkpoint_store +
                           "': give the table in one of them, or the same in both");
  }
  // The Java KCL's table: tableName, else the application name.
  const std::string name = !uri_table.empty() ? uri_table : !file_table.empty() ? file_table : config.worker.application;
  config.checkpoint_store = "dynamodb:" + name;
  config.store = store_options_like(config.client, endpoint != nullptr ? endpoint->value : "");
}

// kclpp's own operations keys (the Java daemon publishes to CloudWatch instead).
void read_ops(Reader& r, DaemonConfig& config) {
  if (const Property* p = r.find("metricsListen"); p != nullptr && !p->value.empty()) {
    try {
      (void)parse_listen_address(p->value, "metricsListen");
    } catch (const ConfigError&) {
      r.bad("metricsListen", "not PORT, HOST:PORT or [IPV6]:PORT");
    }
    config.ops.metrics_listen = p->value;
  }
  if (const Property* p = r.find("statsdAddress")) config.ops.statsd = p->value;
}

}  // namespace

DaemonConfig daemon_config(const std::map<std::string, Property>& properties, const std::string& source,
                           const std::optional<std::string>& store_override) {
  Reader r(properties, source);
  DaemonConfig config;
  config.child.command = r.required("executableName");
  config.worker.application = r.required("applicationName");
  read_stream_and_position(r, config);
  read_reading_options(r, config);
  read_retrieval(r, config);
  read_credentials(r, source, config);
  read_lease_options(r, config);
  read_store(r, store_override, config);
  read_ops(r, config);
  config.kcl3_keys = read_kcl3_keys(r);
  if (const Property* log_to = r.find("logTo")) {
    config.log_to = parse_log_output(log_to->value);
    if (!config.log_to) r.bad("logTo", "neither 'stderr' nor 'syslog'");
  }
  config.ignored_keys = r.unused();
  return config;
}

void resolve_credentials(DaemonConfig& config) {
  if (!config.credentials.empty()) {
    config.client.credentials =
        make_credentials_provider(config.credentials, config.client.region, config.credentials_where);
  }
  if (!is_dynamodb_uri(config.checkpoint_store)) {
    // Not resolved: a provider for a table this daemon does not use must not stop it.
    if (!config.dynamodb_credentials.empty())
      log_warn(config.dynamodb_credentials_where, ": the checkpoint store is not dynamodb:; the provider is not used");
    return;
  }
  // As the Java daemon: the DynamoDB provider if given, else the Kinesis one.
  config.store.dynamodb.credentials =
      config.dynamodb_credentials.empty()
          ? config.client.credentials
          : make_credentials_provider(config.dynamodb_credentials, config.client.region,
                                      config.dynamodb_credentials_where);
}

namespace {

constexpr const char* daemon_description =
    "Runs a multilang child (any language: amazon-kclpy, aws-kcl for Node, a kclpp processor)\n"
    "per shard, as the Java MultiLangDaemon does, with native shard reading. Reads the Java\n"
    "daemon's properties file (keys are case-sensitive, as there):\n"
    "  executableName, applicationName, streamName or streamArn (required);\n"
    "  initialPositionInStream(Extended), regionName, kinesisEndpoint, maxRecords,\n"
    "  idleTimeBetweenReadsInMillis, callProcessRecordsEvenForEmptyRecordList,\n"
    "  timeoutInSeconds, shutdownGraceMillis, shardSyncIntervalMillis.\n"
    "Watchdog (kclpp's own keys): processorTimeoutMillis (a child call running longer is\n"
    "logged and counted, and the child is killed and the shard restarted from its checkpoint;\n"
    "default 0: off), stallTimeoutMillis (a shard behind with no records flowing for this long\n"
    "is flagged; default 60000, 0: off).\n"
    "Checkpoints and leases: kclpp's own key checkpointStore = sqlite:PATH | postgres://... |\n"
    "dynamodb:[TABLE] (default sqlite:APPLICATION.checkpoints.db; dynamodb: is the Java KCL's\n"
    "lease table, named by tableName, else by applicationName). Daemons on one shared store\n"
    "split the shards through leases: workerIdentifier or workerId (default: host name, pid\n"
    "and a random suffix), failoverTimeMillis (10000), maxLeasesForWorker (default and 0: no\n"
    "limit), maxLeasesToStealAtOneTime (1), cleanupLeasesUponShardCompletion (true), tableName,\n"
    "leaseTakeIntervalMillis (kclpp's own; default failoverTimeMillis),\n"
    "dynamoDBEndpoint (the lease table's; region as regionName).\n"
    "AWSCredentialsProvider (any case; also ...DynamoDB for the lease table, which otherwise\n"
    "uses the Kinesis provider, and ...CloudWatch) takes the Java daemon's values:\n"
    "DefaultCredentialsProvider, ProfileCredentialsProvider|NAME,\n"
    "EnvironmentVariableCredentialsProvider, WebIdentityTokenFileCredentialsProvider,\n"
    "InstanceProfileCredentialsProvider, ContainerCredentialsProvider,\n"
    "StsAssumeRoleCredentialsProvider|ROLE_ARN|SESSION_NAME[|externalId=ID], or a\n"
    "comma-separated chain of them; without it, the AWS SDKs' default chain.\n"
    "Retrieval: retrievalMode = POLLING (kclpp's default when the key is absent; the Java\n"
    "daemon's is enhanced fan-out) | FANOUT | DEFAULT (FANOUT unless polling keys such as\n"
    "maxRecords are set, as in the Java daemon); with FANOUT, fanoutConfig.consumerArn (used as\n"
    "it is) or fanoutConfig.consumerName (registered when missing; default applicationName).\n"
    "KCL 3.x lease-assignment keys (leaseAssignmentIntervalMillis, the worker metrics and\n"
    "coordinator state keys, clientVersionConfig, ...) are ignored with one log line; other\n"
    "keys kclpp does not use are listed in one warning. Every key: docs/kcl-protocol.md §6.\n"
    "Logs: logTo = stderr | syslog (kclpp's own key; --log-to overrides it); each line a child\n"
    "writes to stderr is logged with its shard (KCLPP_LOG_FORMAT=json: one JSON object a line).\n"
    "Operations (kclpp's own keys): metricsListen = [HOST:]PORT serves /metrics, /healthz and\n"
    "/readyz (a bare port: 127.0.0.1); statsdAddress = HOST:PORT pushes the same metrics to\n"
    "statsd. --metrics-listen and --statsd override them.\n"
    "SIGTERM/SIGINT: every child gets shutdownRequested, then leaseLost, then its stdin is\n"
    "closed; the leases are released for the other workers.";

std::string joined(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& key : keys) out += (out.empty() ? "" : ", ") + key;
  return out;
}

// The one log line per kind of key the daemon does not apply.
void log_unapplied_keys(const DaemonConfig& config, const std::string& path) {
  if (!config.ignored_keys.empty()) log_warn(path, ": kclpp daemon ignores these keys: ", joined(config.ignored_keys));
  if (!config.kcl3_keys.empty())
    log_info(path, ": KCL 3.x leader-based assignment is not supported; leases are balanced as KCL 2.x "
             "does; ignoring ", joined(config.kcl3_keys));
  if (!config.unused_lease_keys.empty())
    log_warn(path, ": ", joined(config.unused_lease_keys), " apply to checkpointStore = dynamodb: only; the store is ",
             store_uri_for_log(config.checkpoint_store));
  if (!config.cloudwatch_credentials.empty())
    log_warn(config.cloudwatch_credentials_where, ": kclpp publishes no CloudWatch metrics; the provider is not used");
  if (!config.retrieval_note.empty()) log_info(path, ": ", config.retrieval_note);
  if (!config.unused_retrieval_keys.empty())
    log_warn(path, ": these retrieval keys have no effect: ", joined(config.unused_retrieval_keys));
  for (const auto& key : config.misnamed_fan_out_keys)
    log_warn(path, ": ", key, " is not a key of the Java daemon (it ignores it) and is not applied: write ",
             fan_out_key_prefix, key);
}

}  // namespace

int daemon_command(const std::vector<std::string>& argv) {
  Args args("kclpp daemon [options] app.properties", daemon_description);
  args.option("checkpoint-store", "URI", "overrides the file's checkpointStore (tableName still names a dynamodb: table)");
  add_log_to_option(args);
  add_ops_options(args, "kclpp");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  if (args.positional().size() != 1)
    throw ConfigError("kclpp daemon needs exactly one properties file (see kclpp daemon --help)");
  const std::string& path = args.positional().front();
  const OpsConfig command_line = ops_config(args);
  DaemonConfig config = daemon_config(load_properties(path), path, args.get("checkpoint-store"));
  // Before the first log line: --log-to, else the file's logTo (kclpp's own key).
  if (!apply_log_to_option(args) && config.log_to) set_log_output(*config.log_to);
  config.ops.statsd_prefix = command_line.statsd_prefix;
  config.ops.statsd_interval = command_line.statsd_interval;
  if (!command_line.metrics_listen.empty()) config.ops.metrics_listen = command_line.metrics_listen;
  if (!command_line.statsd.empty()) config.ops.statsd = command_line.statsd;
  log_unapplied_keys(config, path);
  resolve_credentials(config);
  check_stream(config.client, config.stream);
  native::KinesisStream source(config.stream, config.client, config.fan_out);
  auto store = native::open_checkpoint_store(config.checkpoint_store, config.store);
  log_info("kclpp daemon: application '", config.worker.application, "', stream '", config.stream,
           "', child '", config.child.command, "', ", retrieval_for_log(config.fan_out), ", checkpoints in ",
           store_uri_for_log(config.checkpoint_store));
  const kcl::ChildProcessOptions child = config.child;
  auto metrics = std::make_shared<MetricsRegistry>();
  config.worker.metrics = metrics;
  native::Worker worker(source, *store,
                        [child](const std::string&) -> std::unique_ptr<RecordProcessor> {
                          return std::make_unique<kcl::ChildProcess>(child);
                        },
                        config.worker);
  run_until_signalled(worker, {config.ops, metrics, {}});
  return 0;
}

}  // namespace kclpp::app::detail
