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

}  // namespace
}  // namespace kclpp::app::detail
