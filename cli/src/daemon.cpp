#include "daemon.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <set>

#include "args.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "native_runner.hpp"

namespace kclpp::app::detail {
namespace {

// Keys that change nothing on a single kclpp worker but are normal in a Java daemon's file:
// listed in the one warning, so a user sees what kclpp did not apply.
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

}  // namespace

DaemonConfig daemon_config(const std::map<std::string, Property>& properties, const std::string& source) {
  Reader r(properties, source);
  DaemonConfig config;
  config.child.command = r.required("executableName");
  config.worker.application = r.required("applicationName");
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

  if (const Property* p = r.find("regionName")) config.client.region = p->value;
  if (const Property* p = r.find("kinesisEndpoint")) config.client.endpoint = p->value;
  if (auto v = r.integer("maxRecords", 1, 10'000)) config.worker.max_records = static_cast<int>(*v);
  if (auto v = r.integer("idleTimeBetweenReadsInMillis", 0, 86'400'000))
    config.worker.idle_time_between_reads = std::chrono::milliseconds(*v);
  if (auto v = r.boolean("callProcessRecordsEvenForEmptyRecordList"); v && *v)
    config.worker.empty_batches = native::EmptyBatches::Deliver;
  if (auto v = r.integer("timeoutInSeconds", 0, 86'400)) config.child.reply_timeout = std::chrono::seconds(*v);
  if (auto v = r.integer("shutdownGraceMillis", 0, 86'400'000))
    config.worker.shutdown_grace = std::chrono::milliseconds(*v);
  if (auto v = r.integer("shardSyncIntervalMillis", 100, 86'400'000))
    config.worker.shard_sync_interval = std::chrono::milliseconds(*v);
  // Credentials: the Kinesis provider, and separate ones for DynamoDB and CloudWatch (a
  // cross-account stream with the lease table at home).
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
  // kclpp's own key.
  if (const Property* p = r.find("checkpointStore"); p != nullptr && !p->value.empty())
    config.checkpoint_store = p->value;
  else
    config.checkpoint_store = "sqlite:" + config.worker.application + ".checkpoints.db";
  config.ignored_keys = r.unused();
  return config;
}

int daemon_command(const std::vector<std::string>& argv) {
  Args args("kclpp daemon [options] app.properties",
            "Runs a multilang child (any language: amazon-kclpy, aws-kcl for Node, a kclpp\n"
            "processor) per shard, exactly as the Java MultiLangDaemon does, with native shard\n"
            "reading and checkpoints in SQLite (default) or Postgres. Reads the Java daemon's\n"
            "properties file: executableName, streamName/streamArn, applicationName,\n"
            "initialPositionInStream(Extended), regionName, kinesisEndpoint, maxRecords,\n"
            "idleTimeBetweenReadsInMillis, callProcessRecordsEvenForEmptyRecordList,\n"
            "timeoutInSeconds, shutdownGraceMillis, shardSyncIntervalMillis, and kclpp's own\n"
            "checkpointStore = sqlite:PATH | postgres://... (default sqlite:APPLICATION.checkpoints.db).\n"
            "AWSCredentialsProvider (any case; also ...DynamoDB, ...CloudWatch) takes the Java\n"
            "daemon's values: DefaultCredentialsProvider, ProfileCredentialsProvider|NAME,\n"
            "EnvironmentVariableCredentialsProvider, WebIdentityTokenFileCredentialsProvider,\n"
            "InstanceProfileCredentialsProvider, ContainerCredentialsProvider,\n"
            "StsAssumeRoleCredentialsProvider|ROLE_ARN|SESSION_NAME[|externalId=ID], or a\n"
            "comma-separated chain of them; without it, the AWS SDKs' default chain.\n"
            "Other keys are listed in one warning and ignored (leases live in the checkpoint\n"
            "store). SIGTERM/SIGINT: every\n"
            "child gets shutdownRequested, then leaseLost, then its stdin is closed.");
  args.option("checkpoint-store", "URI", "overrides the file's checkpointStore");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  if (args.positional().size() != 1)
    throw ConfigError("kclpp daemon needs exactly one properties file (see kclpp daemon --help)");
  const std::string& path = args.positional().front();
  DaemonConfig config = daemon_config(load_properties(path), path);
  if (const auto store = args.get("checkpoint-store")) config.checkpoint_store = *store;
  if (!config.ignored_keys.empty()) {
    std::string keys;
    for (const auto& key : config.ignored_keys) keys += (keys.empty() ? "" : ", ") + key;
    log_warn(path, ": kclpp daemon ignores these keys: ", keys);
  }
  if (!config.credentials.empty()) {
    config.client.credentials =
        make_credentials_provider(config.credentials, config.client.region, config.credentials_where);
  }
  if (!config.dynamodb_credentials.empty()) {
    // Resolved now so that a bad value fails at start; DynamoDB itself is not used until
    // leases live there.
    (void)make_credentials_provider(config.dynamodb_credentials, config.client.region,
                                    config.dynamodb_credentials_where);
  }
  if (!config.cloudwatch_credentials.empty()) {
    log_warn(config.cloudwatch_credentials_where, ": kclpp publishes no CloudWatch metrics; the provider is not used");
  }
  check_stream(config.client, config.stream);
  native::KinesisStream source(config.stream, config.client);
  auto store = native::open_checkpoint_store(config.checkpoint_store);
  log_info("kclpp daemon: application '", config.worker.application, "', stream '", config.stream,
           "', child '", config.child.command, "'");
  const kcl::ChildProcessOptions child = config.child;
  native::Worker worker(source, *store,
                        [child](const std::string&) -> std::unique_ptr<RecordProcessor> {
                          return std::make_unique<kcl::ChildProcess>(child);
                        },
                        config.worker);
  run_until_signalled(worker);
  return 0;
}

}  // namespace kclpp::app::detail
