// The java.util.Properties reader of `kclpp daemon` and the mapping of the Java
// MultiLangDaemon's keys (docs/kcl-protocol.md §6).
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <optional>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon.hpp"
#include "kclpp/processor/error.hpp"
#include "native_runner.hpp"
#include "properties.hpp"

namespace kclpp::app::detail {
namespace {

std::string value(const std::map<std::string, Property>& p, const std::string& key) {
  const auto it = p.find(key);
  return it == p.end() ? "<missing>" : it->second.value;
}

TEST(Properties, SeparatorsCommentsAndWhitespace) {
  const auto p = parse_properties(
      "# comment\n"
      "! also a comment\n"
      "  a = 1\n"
      "b:2\n"
      "c 3\n"
      "d\t=\t  spaced value  \n"
      "e=\n"
      "f\n"
      "g = \"quoted\"\n",
      "test");
  EXPECT_EQ(value(p, "a"), "1");
  EXPECT_EQ(value(p, "b"), "2");
  EXPECT_EQ(value(p, "c"), "3");
  EXPECT_EQ(value(p, "d"), "spaced value  ") << "trailing blanks belong to the value (Java)";
  EXPECT_EQ(value(p, "e"), "");
  EXPECT_EQ(value(p, "f"), "");
  EXPECT_EQ(value(p, "g"), "\"quoted\"") << "quotes are not stripped (docs/kcl-protocol.md §6)";
  EXPECT_EQ(p.size(), 7U);
  EXPECT_EQ(p.at("a").line, 3);
}

TEST(Properties, ContinuationLinesAndEscapes) {
  const auto p = parse_properties(
      "executableName = node \\\n"
      "    app.js\n"
      "path = C:\\\\kcl\\\\bin\n"
      "tab = a\\tb\n"
      "unicode = caf\\u00e9\n"
      "key\\ with\\ spaces = v\n"
      "even = ends with two \\\\\n"
      "next = x\r\n"
      "cr = y\r"
      "last = z",
      "test");
  EXPECT_EQ(value(p, "executableName"), "node app.js");
  EXPECT_EQ(value(p, "path"), "C:\\kcl\\bin");
  EXPECT_EQ(value(p, "tab"), "a\tb");
  EXPECT_EQ(value(p, "unicode"), "caf\xC3\xA9");
  EXPECT_EQ(value(p, "key with spaces"), "v");
  EXPECT_EQ(value(p, "even"), "ends with two \\") << "an even number of backslashes does not continue";
  EXPECT_EQ(value(p, "next"), "x");
  EXPECT_EQ(value(p, "cr"), "y");
  EXPECT_EQ(value(p, "last"), "z");
}

TEST(Properties, Latin1BytesBecomeUtf8AndLaterKeysWin) {
  const auto p = parse_properties("name = caf\xE9\nname = second\nother = \xE9", "test");
  EXPECT_EQ(value(p, "name"), "second");
  EXPECT_EQ(value(p, "other"), "\xC3\xA9");
}

TEST(Properties, MalformedUnicodeEscapeNamesTheLine) {
  try {
    (void)parse_properties("a = 1\nb = \\u12G4\n", "app.properties");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("app.properties:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)parse_properties("b = \\u12", "x"), ConfigError);
}

TEST(Properties, MissingFileIsNamed) {
  try {
    (void)load_properties("/nonexistent/app.properties");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/app.properties"), std::string::npos);
  }
}

TEST(DaemonConfig, MapsTheKeysThatMatterAndListsTheRest) {
  const auto config = daemon_config(parse_properties(
                                        "executableName = node  app.js\n"
                                        "streamName = orders\n"
                                        "applicationName = billing\n"
                                        "AwsCredentialsProvider = DefaultCredentialsProvider\n"
                                        "regionName = eu-west-1\n"
                                        "kinesisEndpoint = http://127.0.0.1:4567\n"
                                        "initialPositionInStream = trim_horizon\n"
                                        "maxRecords = 500\n"
                                        "idleTimeBetweenReadsInMillis = 250\n"
                                        "callProcessRecordsEvenForEmptyRecordList = true\n"
                                        "timeoutInSeconds = 30\n"
                                        "shutdownGraceMillis = 4000\n"
                                        "metricsLevel = NONE\n"
                                        "checkpointStore = sqlite:/tmp/x.db\n",
                                        "app.properties"),
                                    "app.properties");
  EXPECT_EQ(config.child.command, "node  app.js");
  EXPECT_EQ(config.stream, "orders");
  EXPECT_EQ(config.worker.application, "billing");
  EXPECT_EQ(config.client.region, "eu-west-1");
  EXPECT_EQ(config.client.endpoint, "http://127.0.0.1:4567");
  EXPECT_EQ(config.worker.initial_position.type, aws::IteratorType::TrimHorizon);
  EXPECT_EQ(config.worker.max_records, 500);
  EXPECT_EQ(config.worker.idle_time_between_reads, std::chrono::milliseconds(250));
  EXPECT_EQ(config.worker.empty_batches, native::EmptyBatches::Deliver);
  EXPECT_EQ(config.child.reply_timeout, std::chrono::seconds(30));
  EXPECT_EQ(config.worker.shutdown_grace, std::chrono::milliseconds(4000));
  EXPECT_EQ(config.checkpoint_store, "sqlite:/tmp/x.db");
  EXPECT_EQ(config.ignored_keys, (std::vector<std::string>{"metricsLevel"}));
}

TEST(DaemonConfig, DefaultsAndTimestampPosition) {
  const auto config = daemon_config(parse_properties("executableName = ./child\n"
                                                     "streamArn = arn:aws:kinesis:us-east-1:123:stream/from-arn\n"
                                                     "streamName = ignored\n"
                                                     "applicationName = app\n"
                                                     "initialPositionInStream = AT_TIMESTAMP\n"
                                                     "initialPositionInStreamExtended = 1700000000\n",
                                                     "f"),
                                    "f");
  EXPECT_EQ(config.stream, "from-arn") << "streamArn wins (docs/kcl-protocol.md §6)";
  EXPECT_EQ(config.worker.initial_position.type, aws::IteratorType::AtTimestamp);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(config.worker.initial_position.timestamp), 1700000000);
  EXPECT_EQ(config.checkpoint_store, "sqlite:app.checkpoints.db");
  EXPECT_EQ(config.worker.empty_batches, native::EmptyBatches::Skip);
  EXPECT_TRUE(config.ignored_keys.empty());
}

TEST(DaemonConfig, DefaultPositionIsLatestLikeTheKcl) {
  const auto config =
      daemon_config(parse_properties("executableName=a\nstreamName=s\napplicationName=x\n", "f"), "f");
  EXPECT_EQ(config.worker.initial_position.type, aws::IteratorType::Latest);
}

TEST(DaemonConfig, ErrorsNameTheKeyAndLine) {
  auto message = [](const std::string& text) -> std::string {
    try {
      (void)daemon_config(parse_properties(text, "app.properties"), "app.properties");
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "<no error>";
  };
  EXPECT_NE(message("streamName=s\napplicationName=a\n").find("executableName"), std::string::npos);
  EXPECT_NE(message("executableName=x\napplicationName=a\n").find("streamName"), std::string::npos);
  EXPECT_NE(message("executableName=x\nstreamName=s\n").find("applicationName"), std::string::npos);
  const std::string bad_int = message("executableName=x\nstreamName=s\napplicationName=a\nmaxRecords = lots\n");
  EXPECT_NE(bad_int.find("app.properties:4"), std::string::npos) << bad_int;
  EXPECT_NE(bad_int.find("maxRecords"), std::string::npos) << bad_int;
  EXPECT_NE(message("executableName=x\nstreamName=s\napplicationName=a\nmaxRecords = 10001\n").find("maxRecords"),
            std::string::npos);
  EXPECT_NE(message("executableName=x\nstreamName=s\napplicationName=a\ninitialPositionInStream = OLDEST\n")
                .find("initialPositionInStream"),
            std::string::npos);
  EXPECT_NE(message("executableName=x\nstreamName=s\napplicationName=a\ninitialPositionInStream = AT_TIMESTAMP\n")
                .find("initialPositionInStreamExtended"),
            std::string::npos);
  EXPECT_NE(message("executableName=x\nstreamName=s\napplicationName=a\n"
                    "callProcessRecordsEvenForEmptyRecordList = maybe\n")
                .find("callProcessRecordsEvenForEmptyRecordList"),
            std::string::npos);
}

// logTo is kclpp's own key (docs/operations.md §3): used, not listed as ignored.
TEST(DaemonConfig, LogToIsStderrOrSyslog) {
  const std::string base = "executableName=a\nstreamName=s\napplicationName=x\n";
  EXPECT_FALSE(daemon_config(parse_properties(base, "f"), "f").log_to.has_value());
  const auto config = daemon_config(parse_properties(base + "logTo = syslog\n", "f"), "f");
  EXPECT_EQ(config.log_to, kclpp::LogOutput::Syslog);
  EXPECT_TRUE(config.ignored_keys.empty());
  try {
    (void)daemon_config(parse_properties(base + "logTo = journal\n", "app.properties"), "app.properties");
    FAIL() << "accepted logTo = journal";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("app.properties:4: logTo = 'journal'"), std::string::npos) << e.what();
  }
}

TEST(StartPosition, ParsesNamesEpochAndRfc3339) {
  EXPECT_EQ(parse_start_position("LATEST", "x").type, aws::IteratorType::Latest);
  EXPECT_EQ(parse_start_position("TRIM_HORIZON", "x").type, aws::IteratorType::TrimHorizon);
  const auto epoch = parse_start_position("AT_TIMESTAMP:1700000000.5", "x");
  EXPECT_EQ(epoch.type, aws::IteratorType::AtTimestamp);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(epoch.timestamp.time_since_epoch()).count(),
            1700000000500);
  const auto rfc = parse_start_position("2023-11-14T22:13:20.250Z", "x");
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(rfc.timestamp.time_since_epoch()).count(),
            1700000000250);
  EXPECT_THROW((void)parse_start_position("yesterday", "--from"), ConfigError);
  // Beyond year 2261 the clock cannot represent it: an error, not an overflow (fuzzing).
  EXPECT_THROW((void)parse_start_position("AT_TIMESTAMP:16999699999999", "--from"), ConfigError);
  EXPECT_THROW((void)parse_start_position("1e300", "--from"), ConfigError);
  EXPECT_THROW((void)parse_start_position("17000001000", "--from"), ConfigError);
  EXPECT_THROW((void)parse_start_position("2300-01-01T00:00:00Z", "--from"), ConfigError);
  EXPECT_NO_THROW((void)parse_start_position("2200-01-01T00:00:00Z", "--from"));
  EXPECT_THROW((void)parse_start_position("AT_TIMESTAMP:99999999-01-01T00:00:00Z", "--from"), ConfigError);
  EXPECT_THROW((void)parse_start_position("AT_TIMESTAMP:2023-11-14 22:13:20", "--from"), ConfigError);
}

TEST(ShardIndexes, ParsesAListAndNamesWhatIsWrong) {
  EXPECT_EQ(parse_shard_indexes("0"), (std::vector<std::size_t>{0}));
  EXPECT_EQ(parse_shard_indexes("3,0,12"), (std::vector<std::size_t>{3, 0, 12}));
  const auto message = [](const std::string& text) {
    try {
      (void)parse_shard_indexes(text);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Empty would mean every shard to the worker: refused.
  EXPECT_NE(message("").find("empty list"), std::string::npos);
  EXPECT_NE(message("1,").find("'' is not a shard index"), std::string::npos);
  EXPECT_NE(message(",1").find("'' is not a shard index"), std::string::npos);
  EXPECT_NE(message("1,,2").find("'' is not a shard index"), std::string::npos);
  EXPECT_NE(message("1,x").find("'x' is not a shard index"), std::string::npos);
  EXPECT_NE(message("-1").find("'-1' is not a shard index"), std::string::npos);
  EXPECT_NE(message(" 1").find("' 1' is not a shard index"), std::string::npos);
  EXPECT_NE(message("99999999999999999999999").find("is not a shard index"), std::string::npos);
  EXPECT_NE(message("2,1,2").find("shard index 2 given twice"), std::string::npos);
}

// --- AWSCredentialsProvider ---------------------------------------------------------------

DaemonConfig config_with(const std::string& extra) {
  return daemon_config(
      parse_properties("executableName=a\nstreamName=s\napplicationName=x\n" + extra, "app.properties"),
      "app.properties");
}

std::string daemon_error(const std::string& text) {
  try {
    (void)daemon_config(parse_properties(text, "f"), "f");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::string config_error(const std::string& extra) {
  try {
    (void)config_with(extra);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(DaemonCredentials, ReadsTheJavaDaemonsValuesInAnyKeyCase) {
  const DaemonConfig c = config_with(
      "awsCredentialsProvider = software.amazon.awssdk.auth.credentials.ProfileCredentialsProvider|dev\n"
      "AWSCredentialsProviderDynamoDB = StsAssumeRoleCredentialsProvider|arn:aws:iam::1:role/r|sess|externalId=ext\n"
      "AwsCredentialsProviderCloudWatch = DefaultAWSCredentialsProviderChain\n");
  ASSERT_EQ(c.credentials.size(), 1u);
  EXPECT_EQ(c.credentials[0].name, "ProfileCredentialsProvider");
  EXPECT_EQ(c.credentials[0].args, std::vector<std::string>{"dev"});
  EXPECT_NE(c.credentials_where.find("app.properties:4: awsCredentialsProvider"), std::string::npos)
      << c.credentials_where;
  ASSERT_EQ(c.dynamodb_credentials.size(), 1u);
  EXPECT_EQ(c.dynamodb_credentials[0].args, (std::vector<std::string>{"arn:aws:iam::1:role/r", "sess"}));
  EXPECT_EQ(c.dynamodb_credentials[0].properties.at("externalId"), "ext");
  ASSERT_EQ(c.cloudwatch_credentials.size(), 1u);
  EXPECT_EQ(c.cloudwatch_credentials[0].name, "DefaultAWSCredentialsProviderChain");
  // None of the keys is reported as ignored.
  for (const auto& key : c.ignored_keys) EXPECT_EQ(key.find("redentials"), std::string::npos) << key;
  // A chain keeps its order.
  const DaemonConfig chain =
      config_with("AwsCredentialsProvider = EnvironmentVariableCredentialsProvider, ProfileCredentialsProvider\n");
  ASSERT_EQ(chain.credentials.size(), 2u);
  EXPECT_EQ(chain.credentials[1].name, "ProfileCredentialsProvider");
}

TEST(DaemonCredentials, UnknownOrIncompleteValuesAreErrorsNamingTheKey) {
  std::string e = config_error("AwsCredentialsProvider = MyCustomProvider\n");
  EXPECT_NE(e.find("app.properties:4: AwsCredentialsProvider"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown credentials provider 'MyCustomProvider'"), std::string::npos) << e;
  e = config_error("AWSCredentialsProviderDynamoDB = StsAssumeRoleCredentialsProvider|arn:aws:iam::1:role/r\n");
  EXPECT_NE(e.find("AWSCredentialsProviderDynamoDB"), std::string::npos) << e;
  EXPECT_NE(e.find("ROLE_ARN|SESSION_NAME"), std::string::npos) << e;
  e = config_error("AwsCredentialsProvider =\n");
  EXPECT_NE(e.find("empty value"), std::string::npos) << e;
}

// Restores one environment variable.
class ScopedVar {
 public:
  ScopedVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedVar() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedVar(const ScopedVar&) = delete;
  ScopedVar& operator=(const ScopedVar&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DaemonCredentials, ProvidersAndChainsResolve) {
  const auto dir = std::filesystem::temp_directory_path() / ("kclpp_daemon_creds_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "credentials") << "[dev]\naws_access_key_id = DEVKEY\naws_secret_access_key = devsecret\n";
  const ScopedVar files("AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").c_str());
  const ScopedVar config("AWS_CONFIG_FILE", (dir / "config").c_str());
  const ScopedVar key("AWS_ACCESS_KEY_ID", nullptr);
  const ScopedVar secret("AWS_SECRET_ACCESS_KEY", nullptr);
  const ScopedVar imds("AWS_EC2_METADATA_DISABLED", "true");

  auto specs = parse_credentials_providers("ProfileCredentialsProvider|dev", "k");
  EXPECT_EQ(make_credentials_provider(specs, "us-east-1", "k")->credentials().access_key_id, "DEVKEY");
  // The environment is empty: the chain's first entry fails, the second answers.
  specs = parse_credentials_providers("EnvironmentVariableCredentialsProvider,ProfileCredentialsProvider|dev", "k");
  EXPECT_EQ(make_credentials_provider(specs, "us-east-1", "k")->credentials().access_key_id, "DEVKEY");
  // One entry that fails: its error, naming the key.
  specs = parse_credentials_providers("EnvironmentVariableCredentialsProvider", "app.properties:3: AwsCredentialsProvider");
  try {
    (void)make_credentials_provider(specs, "us-east-1", "app.properties:3: AwsCredentialsProvider");
    FAIL() << "no throw";
  } catch (const AuthError& e) {
    EXPECT_NE(std::string(e.what()).find("app.properties:3: AwsCredentialsProvider: AWS_ACCESS_KEY_ID"),
              std::string::npos)
        << e.what();
  }
  {
    const ScopedVar k("AWS_ACCESS_KEY_ID", "ENVKEY");
    const ScopedVar s("AWS_SECRET_ACCESS_KEY", "envsecret");
    specs = parse_credentials_providers("SystemPropertyCredentialsProvider", "k");
    EXPECT_EQ(make_credentials_provider(specs, "us-east-1", "k")->credentials().access_key_id, "ENVKEY");
  }
  std::filesystem::remove_all(dir);
}

// --- leases (docs/kcl-protocol.md §6) ------------------------------------------------------

TEST(DaemonLeases, TheJavaDaemonsLeaseKeysLandInLeaseAndStoreOptions) {
  const DaemonConfig c = config_with(
      "regionName = eu-central-1\n"
      "workerIdentifier = host-a\n"
      "failoverTimeMillis = 1500\n"
      "leaseTakeIntervalMillis = 400\n"
      "maxLeasesForWorker = 8\n"
      "maxLeasesToStealAtOneTime = 3\n"
      "cleanupLeasesUponShardCompletion = false\n"
      "tableName = billing-leases\n"
      "dynamoDBEndpoint = http://127.0.0.1:8000\n"
      "checkpointStore = dynamodb:\n");
  EXPECT_EQ(c.worker.leases.worker_id, "host-a");
  EXPECT_EQ(c.worker.leases.failover_time, std::chrono::milliseconds(1500));
  EXPECT_EQ(c.worker.leases.take_interval, std::chrono::milliseconds(400));
  EXPECT_EQ(c.worker.leases.max_leases, 8);
  EXPECT_EQ(c.worker.leases.max_leases_to_steal, 3);
  EXPECT_FALSE(c.worker.leases.cleanup_leases_upon_shard_completion);
  EXPECT_EQ(c.checkpoint_store, "dynamodb:billing-leases");
  EXPECT_EQ(c.store.dynamodb.endpoint, "http://127.0.0.1:8000");
  EXPECT_EQ(c.store.dynamodb.region, "eu-central-1") << "regionName is the lease table's region too";
  EXPECT_TRUE(c.ignored_keys.empty()) << c.ignored_keys.front();
  EXPECT_TRUE(c.kcl3_keys.empty());
  EXPECT_TRUE(c.unused_lease_keys.empty());
}

TEST(DaemonLeases, DefaultsAreTheJavaKcls) {
  const DaemonConfig c = config_with("");
  EXPECT_EQ(c.worker.leases.worker_id, "");
  EXPECT_EQ(c.worker.leases.failover_time, std::chrono::milliseconds(10'000));
  EXPECT_EQ(c.worker.leases.take_interval, std::chrono::milliseconds(0)) << "0: the failover time";
  EXPECT_EQ(c.worker.leases.max_leases, 0) << "no limit";
  EXPECT_EQ(c.worker.leases.max_leases_to_steal, 1);
  EXPECT_TRUE(c.worker.leases.cleanup_leases_upon_shard_completion)
      << "cleanupLeasesUponShardCompletion defaults to true in the Java KCL";
  EXPECT_EQ(c.checkpoint_store, "sqlite:x.checkpoints.db");
  // The Java KCL's default, written out, is no limit as well.
  EXPECT_EQ(config_with("maxLeasesForWorker = 2147483647\n").worker.leases.max_leases, 2147483647);
  EXPECT_EQ(config_with("maxLeasesForWorker = 0\n").worker.leases.max_leases, 0);
}

TEST(DaemonLeases, WorkerIdIsAnAliasOfWorkerIdentifier) {
  EXPECT_EQ(config_with("workerId = w-7\n").worker.leases.worker_id, "w-7");
  EXPECT_EQ(config_with("workerId = w-7\nworkerIdentifier = w-7\n").worker.leases.worker_id, "w-7");
  const std::string e = config_error("workerIdentifier = w-1\nworkerId = w-2\n");
  EXPECT_NE(e.find("app.properties:5: workerId = 'w-2'"), std::string::npos) << e;
  EXPECT_NE(e.find("workerIdentifier = 'w-1'"), std::string::npos) << e;
  EXPECT_NE(config_error("workerId =\n").find("workerId = '': empty"), std::string::npos);
}

TEST(DaemonLeases, CheckpointStoreDynamodbTakesItsTableFromTableNameOrTheApplication) {
  EXPECT_EQ(config_with("checkpointStore = dynamodb:\n").checkpoint_store, "dynamodb:x");
  EXPECT_EQ(config_with("checkpointStore = DYNAMODB:\n").checkpoint_store, "dynamodb:x");
  EXPECT_EQ(config_with("checkpointStore = dynamodb:\ntableName = t\n").checkpoint_store, "dynamodb:t");
  EXPECT_EQ(config_with("checkpointStore = dynamodb:t\n").checkpoint_store, "dynamodb:t");
  EXPECT_EQ(config_with("checkpointStore = dynamodb:t\ntableName = t\n").checkpoint_store, "dynamodb:t");
  const std::string e = config_error("checkpointStore = dynamodb:t1\ntableName = t2\n");
  EXPECT_NE(e.find("app.properties:5: tableName = 't2'"), std::string::npos) << e;
  EXPECT_NE(e.find("checkpointStore = 'dynamodb:t1'"), std::string::npos) << e;
  // --checkpoint-store replaces the file's key; tableName still names the table.
  const auto props = parse_properties(
      "executableName=a\nstreamName=s\napplicationName=x\ncheckpointStore = sqlite:a.db\ntableName = t\n", "f");
  EXPECT_EQ(daemon_config(props, "f", std::string("dynamodb:")).checkpoint_store, "dynamodb:t");
  EXPECT_EQ(daemon_config(props, "f", std::string("sqlite:b.db")).checkpoint_store, "sqlite:b.db");
  try {
    (void)daemon_config(props, "f", std::string("dynamodb:other"));
    FAIL() << "accepted two table names";
  } catch (const ConfigError& e2) {
    EXPECT_NE(std::string(e2.what()).find("--checkpoint-store = 'dynamodb:other'"), std::string::npos) << e2.what();
  }
}

TEST(DaemonLeases, DynamodbKeysWithAnotherStoreAreReportedAsUnused) {
  const DaemonConfig c = config_with("tableName = t\ndynamoDBEndpoint = http://127.0.0.1:8000\n");
  EXPECT_EQ(c.checkpoint_store, "sqlite:x.checkpoints.db") << "tableName alone does not switch to DynamoDB";
  EXPECT_EQ(c.unused_lease_keys, (std::vector<std::string>{"tableName", "dynamoDBEndpoint"}));
  EXPECT_TRUE(c.ignored_keys.empty());
  EXPECT_EQ(c.store.dynamodb.endpoint, "");
}

TEST(DaemonLeases, BadValuesNameTheKeyTheValueAndTheLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"failoverTimeMillis = 0\n", "app.properties:4: failoverTimeMillis = '0'"},
      {"failoverTimeMillis = 10s\n", "app.properties:4: failoverTimeMillis = '10s'"},
      {"leaseTakeIntervalMillis = 0\n", "app.properties:4: leaseTakeIntervalMillis = '0'"},
      {"maxLeasesForWorker = -1\n", "app.properties:4: maxLeasesForWorker = '-1'"},
      {"maxLeasesForWorker = 2147483648\n", "maxLeasesForWorker = '2147483648'"},
      {"maxLeasesToStealAtOneTime = 0\n", "app.properties:4: maxLeasesToStealAtOneTime = '0'"},
      {"cleanupLeasesUponShardCompletion = sometimes\n", "cleanupLeasesUponShardCompletion = 'sometimes'"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string e = config_error(text);
    EXPECT_NE(e.find(expected), std::string::npos) << text << " -> " << e;
  }
}

TEST(DaemonLeases, Kcl3AssignmentKeysAreIgnoredNotErrors) {
  const DaemonConfig c = config_with(
      "clientVersionConfig = CLIENT_VERSION_CONFIG_3x\n"
      "leaseAssignmentIntervalMillis = 20000\n"
      "staleWorkerMetricsEntryCleanupDuration = PT12H\n"
      "workerMetricsEMAAlpha = 0.18\n"
      "coordinatorStateTags = csTagK1=csTagV1\n"
      "isGracefulLeaseHandoffEnabled = maybe\n"
      "metricsLevel = NONE\n");
  EXPECT_EQ(c.kcl3_keys, (std::vector<std::string>{"leaseAssignmentIntervalMillis", "clientVersionConfig",
                                                   "isGracefulLeaseHandoffEnabled", "workerMetricsEMAAlpha",
                                                   "staleWorkerMetricsEntryCleanupDuration",
                                                   "coordinatorStateTags"}));
  EXPECT_EQ(c.ignored_keys, (std::vector<std::string>{"metricsLevel"})) << "not listed twice";
}

// A KCL 2.x properties file as the samples ship it (amazon-kinesis-client-multilang's
// multilang.properties, amazon-kclpy's sample.properties), with kclpp's one added line.
constexpr const char* java_kcl2_sample = R"(# The script that abides by the multi-language protocol.
executableName = sample_kclpy_app.py

# Important: streamArn takes precedence over streamName if both are set
streamArn = arn:aws:kinesis:us-east-5:000000000000:stream/kclpysample
streamName = kclpysample

# Used by the KCL as the name of this application. Will be used as the name
# of an Amazon DynamoDB table which will store the lease and checkpoint
# information for workers with this application name
applicationName = MultiLangTest

# Expected key name (case-sensitive):
# AwsCredentialsProvider / AwsCredentialsProviderDynamoDB / AwsCredentialsProviderCloudWatch
AwsCredentialsProvider = DefaultCredentialsProvider

processingLanguage = python/3.8
initialPositionInStream = TRIM_HORIZON
#initialPositionInStreamExtended = 1636609142
regionName = us-east-1
failoverTimeMillis = 10000
# If this isn't provided a MultiLangDaemon instance will assign a unique workerId to itself.
workerId = "workerId"
shardSyncIntervalMillis = 60000
maxRecords = 10000
idleTimeBetweenReadsInMillis = 1000
callProcessRecordsEvenForEmptyRecordList = false
parentShardPollIntervalMillis = 10000
cleanupLeasesUponShardCompletion = true
taskBackoffTimeMillis = 500
metricsBufferTimeMillis = 10000
metricsMaxQueueSize = 10000
validateSequenceNumberBeforeCheckpointing = true
maxActiveThreads = -1

# kclpp: the leases and checkpoints in the Java KCL's table
checkpointStore = dynamodb:
)";

TEST(DaemonLeases, AJavaKcl2SampleFileParsesAsItIs) {
  const DaemonConfig c = daemon_config(parse_properties(java_kcl2_sample, "sample.properties"), "sample.properties");
  EXPECT_EQ(c.child.command, "sample_kclpy_app.py");
  EXPECT_EQ(c.stream, "kclpysample");
  EXPECT_EQ(c.worker.application, "MultiLangTest");
  EXPECT_EQ(c.worker.initial_position.type, aws::IteratorType::TrimHorizon);
  EXPECT_EQ(c.client.region, "us-east-1");
  EXPECT_EQ(c.worker.leases.failover_time, std::chrono::milliseconds(10'000));
  EXPECT_EQ(c.worker.leases.worker_id, "\"workerId\"") << "quotes are part of the value, as in Java";
  EXPECT_EQ(c.worker.shard_sync_interval, std::chrono::milliseconds(60'000));
  EXPECT_EQ(c.worker.max_records, 10'000);
  EXPECT_EQ(c.worker.idle_time_between_reads, std::chrono::milliseconds(1'000));
  EXPECT_EQ(c.worker.empty_batches, native::EmptyBatches::Skip);
  EXPECT_TRUE(c.worker.leases.cleanup_leases_upon_shard_completion);
  EXPECT_EQ(c.checkpoint_store, "dynamodb:MultiLangTest") << "the Java KCL's table: the application name";
  EXPECT_EQ(c.store.dynamodb.region, "us-east-1");
  ASSERT_EQ(c.credentials.size(), 1u);
  EXPECT_EQ(c.credentials[0].name, "DefaultCredentialsProvider");
  EXPECT_EQ(c.ignored_keys,
            (std::vector<std::string>{"maxActiveThreads", "metricsBufferTimeMillis", "metricsMaxQueueSize",
                                      "parentShardPollIntervalMillis", "processingLanguage",
                                      "taskBackoffTimeMillis", "validateSequenceNumberBeforeCheckpointing"}));
  EXPECT_TRUE(c.kcl3_keys.empty());
}

TEST(DaemonLeases, TheLeaseTableGetsItsOwnProviderElseTheKinesisOne) {
  const auto dir = std::filesystem::temp_directory_path() / ("kclpp_daemon_leases_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "credentials") << "[kin]\naws_access_key_id = KINKEY\naws_secret_access_key = k\n"
                                        "[ddb]\naws_access_key_id = DDBKEY\naws_secret_access_key = d\n";
  const ScopedVar files("AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").c_str());
  const ScopedVar config("AWS_CONFIG_FILE", (dir / "config").c_str());
  const ScopedVar key("AWS_ACCESS_KEY_ID", nullptr);
  const ScopedVar secret("AWS_SECRET_ACCESS_KEY", nullptr);
  const ScopedVar imds("AWS_EC2_METADATA_DISABLED", "true");

  DaemonConfig both = config_with("AwsCredentialsProvider = ProfileCredentialsProvider|kin\n"
                                  "AWSCredentialsProviderDynamoDB = ProfileCredentialsProvider|ddb\n"
                                  "checkpointStore = dynamodb:\n");
  resolve_credentials(both);
  ASSERT_NE(both.client.credentials, nullptr);
  ASSERT_NE(both.store.dynamodb.credentials, nullptr);
  EXPECT_EQ(both.client.credentials->credentials().access_key_id, "KINKEY");
  EXPECT_EQ(both.store.dynamodb.credentials->credentials().access_key_id, "DDBKEY");

  DaemonConfig shared = config_with("AwsCredentialsProvider = ProfileCredentialsProvider|kin\n"
                                    "checkpointStore = dynamodb:t\n");
  resolve_credentials(shared);
  EXPECT_EQ(shared.store.dynamodb.credentials, shared.client.credentials) << "the Kinesis provider, shared";

  // A DynamoDB provider that cannot work stops a daemon that uses DynamoDB, and only such a one.
  DaemonConfig broken = config_with("AWSCredentialsProviderDynamoDB = EnvironmentVariableCredentialsProvider\n"
                                    "checkpointStore = dynamodb:\n");
  EXPECT_THROW(resolve_credentials(broken), AuthError);
  DaemonConfig sqlite = config_with("AWSCredentialsProviderDynamoDB = EnvironmentVariableCredentialsProvider\n");
  EXPECT_NO_THROW(resolve_credentials(sqlite));
  EXPECT_EQ(sqlite.store.dynamodb.credentials, nullptr);
  std::filesystem::remove_all(dir);
}

// --- retrievalMode and the fan-out keys (docs/kcl-protocol.md §6) ---------------------------

constexpr const char* consumer_arn_of_s = "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/billing:1700000000";

TEST(DaemonRetrieval, WithoutRetrievalModeKclppPollsAndSaysTheJavaDaemonWouldNot) {
  const DaemonConfig c = config_with("");
  EXPECT_FALSE(c.fan_out.has_value()) << "existing files keep polling";
  EXPECT_NE(c.retrieval_note.find("retrievalMode is not set"), std::string::npos) << c.retrieval_note;
  EXPECT_NE(c.retrieval_note.find("enhanced fan-out"), std::string::npos) << c.retrieval_note;
  // With polling keys the Java daemon polls too: nothing to say.
  EXPECT_EQ(config_with("maxRecords = 500\n").retrieval_note, "");
  EXPECT_FALSE(config_with("maxRecords = 500\n").fan_out.has_value());
}

TEST(DaemonRetrieval, FanoutInAnyCaseReadsAsTheApplicationByDefault) {
  for (const char* value : {"FANOUT", "fanout", "FanOut"}) {
    const DaemonConfig c = config_with(std::string("retrievalMode = ") + value + "\n");
    ASSERT_TRUE(c.fan_out.has_value()) << value;
    EXPECT_EQ(c.fan_out->consumer_name, "x") << "the application name, as in the Java KCL";
    EXPECT_EQ(c.fan_out->consumer_arn, "");
    EXPECT_EQ(c.retrieval_note, "");
    EXPECT_TRUE(c.ignored_keys.empty()) << "retrievalMode is applied, not ignored";
  }
  EXPECT_FALSE(config_with("retrievalMode = polling\n").fan_out.has_value());
  EXPECT_EQ(config_with("retrievalMode = POLLING\n").retrieval_note, "");
}

TEST(DaemonRetrieval, TheFanoutConfigKeysNameTheConsumer) {
  const DaemonConfig named = config_with("retrievalMode = FANOUT\nfanoutConfig.consumerName = billing-efo\n");
  ASSERT_TRUE(named.fan_out.has_value());
  EXPECT_EQ(named.fan_out->consumer_name, "billing-efo");
  EXPECT_TRUE(named.unused_retrieval_keys.empty());
  EXPECT_TRUE(named.ignored_keys.empty());

  const DaemonConfig by_arn =
      config_with(std::string("retrievalMode = FANOUT\nfanoutConfig.consumerArn = ") + consumer_arn_of_s + "\n");
  ASSERT_TRUE(by_arn.fan_out.has_value());
  EXPECT_EQ(by_arn.fan_out->consumer_arn, consumer_arn_of_s);
  EXPECT_EQ(by_arn.fan_out->consumer_name, "");

  // Both: the ARN is used, as in the Java KCL, and the name is reported as unused.
  const DaemonConfig both = config_with(std::string("retrievalMode = FANOUT\nfanoutConfig.consumerName = n\n"
                                                    "fanoutConfig.consumerArn = ") +
                                        consumer_arn_of_s + "\n");
  ASSERT_TRUE(both.fan_out.has_value());
  EXPECT_EQ(both.fan_out->consumer_arn, consumer_arn_of_s);
  ASSERT_EQ(both.unused_retrieval_keys.size(), 1u);
  EXPECT_NE(both.unused_retrieval_keys[0].find("fanoutConfig.consumerName"), std::string::npos);
}

TEST(DaemonRetrieval, DefaultDecidesAsTheJavaDaemon) {
  const DaemonConfig fan_out = config_with("retrievalMode = DEFAULT\n");
  EXPECT_TRUE(fan_out.fan_out.has_value()) << "DEFAULT is FANOUT in KCL 2.x";
  EXPECT_EQ(fan_out.retrieval_note, "");
  for (const char* polling_key : {"maxRecords = 100\n", "idleTimeBetweenReadsInMillis = 500\n",
                                  "retryGetRecordsInSeconds = 2\n", "maxGetRecordsThreadPool = 1\n",
                                  "millisBehindLatestThresholdForReducedTps = 60000\n"}) {
    const DaemonConfig c = config_with(std::string("retrievalMode = default\n") + polling_key);
    EXPECT_FALSE(c.fan_out.has_value()) << polling_key;
    EXPECT_NE(c.retrieval_note.find("polling keys set"), std::string::npos) << c.retrieval_note;
  }
  // A zero is not "set" for the Java daemon (PollingConfigBean::anyPropertiesSet).
  EXPECT_TRUE(config_with("retrievalMode = DEFAULT\nidleTimeBetweenReadsInMillis = 0\n").fan_out.has_value());
}

TEST(DaemonRetrieval, KeysWithoutEffectInTheChosenModeAreReported) {
  const DaemonConfig polling = config_with("retrievalMode = POLLING\nfanoutConfig.consumerName = n\n"
                                           "fanoutConfig.registerStreamConsumerRetries = 5\n");
  EXPECT_FALSE(polling.fan_out.has_value());
  EXPECT_EQ(polling.unused_retrieval_keys, (std::vector<std::string>{"fanoutConfig.consumerName (polling)",
                                                                     "fanoutConfig.registerStreamConsumerRetries (polling)"}));
  EXPECT_TRUE(polling.ignored_keys.empty());

  const DaemonConfig fan_out = config_with("retrievalMode = FANOUT\nmaxRecords = 500\nidleTimeBetweenReadsInMillis = 200\n"
                                           "fanoutConfig.maxDescribeStreamConsumerRetries = 20\n"
                                           "fanoutConfig.retryBackoffMillis = 500\n");
  ASSERT_TRUE(fan_out.fan_out.has_value());
  ASSERT_EQ(fan_out.unused_retrieval_keys.size(), 4u);
  EXPECT_NE(fan_out.unused_retrieval_keys[0].find("fanoutConfig.maxDescribeStreamConsumerRetries"), std::string::npos);
  EXPECT_NE(fan_out.unused_retrieval_keys[1].find("fanoutConfig.retryBackoffMillis"), std::string::npos);
  EXPECT_EQ(fan_out.unused_retrieval_keys[2], "maxRecords (fan-out)");
  EXPECT_EQ(fan_out.unused_retrieval_keys[3], "idleTimeBetweenReadsInMillis (fan-out)");
  EXPECT_TRUE(fan_out.ignored_keys.empty());
}

TEST(DaemonRetrieval, BareConsumerKeysAreNotTheJavaDaemonsAndNotApplied) {
  const DaemonConfig c = config_with("retrievalMode = FANOUT\nconsumerName = other\nconsumerArn = x\n");
  ASSERT_TRUE(c.fan_out.has_value());
  EXPECT_EQ(c.fan_out->consumer_name, "x") << "as the Java daemon, which ignores consumerName";
  EXPECT_EQ(c.misnamed_fan_out_keys, (std::vector<std::string>{"consumerArn", "consumerName"}));
  EXPECT_TRUE(c.ignored_keys.empty()) << "warned about once, with the right name";
}

TEST(DaemonRetrieval, BadValuesNameTheKeyTheValueAndTheLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"retrievalMode = PUSH\n", "app.properties:4: retrievalMode = 'PUSH': not FANOUT, POLLING or DEFAULT"},
      {"retrievalMode =\n", "app.properties:4: retrievalMode = ''"},
      {"retrievalMode = FANOUT\nfanoutConfig.consumerName = has space\n",
       "app.properties:5: fanoutConfig.consumerName = 'has space': not a consumer name"},
      {"retrievalMode = FANOUT\nfanoutConfig.consumerArn = arn:aws:kinesis:us-east-1:1:stream/s\n",
       "app.properties:5: fanoutConfig.consumerArn = 'arn:aws:kinesis:us-east-1:1:stream/s': not a consumer ARN"},
      {"retrievalMode = FANOUT\nfanoutConfig.consumerArn = arn:aws:kinesis:us-east-1:1:stream/other/consumer/c:1\n",
       "a consumer of stream 'other', not of 's'"},
      {"fanoutConfig.retryBackoffMillis = soon\n", "app.properties:4: fanoutConfig.retryBackoffMillis = 'soon'"},
      {"fanoutConfig.registerStreamConsumerRetries = -1\n", "fanoutConfig.registerStreamConsumerRetries = '-1'"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string e = config_error(text);
    EXPECT_NE(e.find(expected), std::string::npos) << text << " -> " << e;
  }
  // The application name is the default consumer name: one the service refuses is named.
  const std::string e = daemon_error("executableName=a\nstreamName=s\napplicationName=my app\nretrievalMode=FANOUT\n");
  EXPECT_NE(e.find("f:3: applicationName = 'my app': not a consumer name"), std::string::npos) << e;
  EXPECT_NE(e.find("fanoutConfig.consumerName"), std::string::npos) << e;
  EXPECT_EQ(daemon_error("executableName=a\nstreamName=s\napplicationName=my app\n"), "no error")
      << "polling has no consumer name to check";
}

}  // namespace
TEST(DaemonConfig, WatchdogKeysSetTheWorkersTimeouts) {
  const DaemonConfig plain = config_with("");
  EXPECT_EQ(plain.worker.processor_timeout, std::chrono::milliseconds(0));
  EXPECT_EQ(plain.worker.stall_timeout, std::chrono::milliseconds(60'000));
  const DaemonConfig c = config_with("processorTimeoutMillis = 1500\nstallTimeoutMillis = 0\ntimeoutInSeconds = 30\n");
  EXPECT_EQ(c.worker.processor_timeout, std::chrono::milliseconds(1'500));
  EXPECT_EQ(c.worker.on_processor_timeout, kclpp::native::OnProcessorTimeout::Restart);
  EXPECT_EQ(c.worker.stall_timeout, std::chrono::milliseconds(0));
  EXPECT_EQ(c.child.reply_timeout, std::chrono::seconds(30)) << "timeoutInSeconds keeps its own meaning";
  EXPECT_TRUE(c.ignored_keys.empty());
  EXPECT_NE(daemon_error("executableName=a\nstreamName=s\napplicationName=x\nprocessorTimeoutMillis = -5\n")
                .find("processorTimeoutMillis = '-5'"),
            std::string::npos);
}

}  // namespace kclpp::app::detail
