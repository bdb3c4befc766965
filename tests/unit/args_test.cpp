// The command-line parser of `kclpp` and kclpp::main (cli/src/args.cpp): parsing, its
// errors, and the --help layout; kclpp::main's native-mode options (native_runner.cpp)
// down to WorkerOptions and StoreOptions, and `kclpp stats`'s store.
#include "args.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/processor/error.hpp"
#include "commands.hpp"
#include "native_runner.hpp"
#include "pipeline_commands.hpp"
#include "systemd_notify.hpp"

namespace {

using kclpp::app::detail::Args;
using kclpp::app::detail::NativeConfig;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Args, LongHelpTextsWrapAtWordsUnderOneHundredColumns) {
  Args args("prog [options]", "A program.");
  args.option("checkpoint-db", "URI",
              "where checkpoints go: sqlite:PATH | postgres://user@host/db | memory: (the "
              "default keeps them next to the application, which is what a laptop wants)",
              "sqlite:app.db");
  args.flag("verbose", "say more");
  const auto lines = lines_of(args.help());
  std::string joined;
  bool in_option = false;
  for (const auto& line : lines) {
    EXPECT_LE(line.size(), 100u) << line;
    if (line.rfind("  --checkpoint-db", 0) == 0) {
      in_option = true;
      joined = line.substr(30);
    } else if (in_option && line.rfind(std::string(30, ' '), 0) == 0) {
      joined += " " + line.substr(30);  // a continuation line starts at the option column
    } else {
      in_option = false;
    }
  }
  EXPECT_EQ(joined,
            "where checkpoints go: sqlite:PATH | postgres://user@host/db | memory: (the default "
            "keeps them next to the application, which is what a laptop wants) (default: "
            "sqlite:app.db)");
  EXPECT_NE(args.help().find("  --verbose                   say more\n"), std::string::npos);
}

TEST(Args, AWordWiderThanTheLineIsKeptWhole) {
  Args args("prog", "P.");
  const std::string url(120, 'x');
  args.option("endpoint", "URL", "for example " + url);
  const std::string help = args.help();
  EXPECT_NE(help.find("\n" + std::string(30, ' ') + url + "\n"), std::string::npos) << help;
}

TEST(Args, ValuesFlagsAndPositionalsAreParsed) {
  Args args("prog", "P.");
  args.option("stream", "NAME", "the stream").option("max", "N", "a limit", "5").flag("follow", "keep reading");
  ASSERT_TRUE(args.parse({"--stream=orders", "file.properties", "--follow", "--max", "7"}));
  EXPECT_EQ(args.get("stream"), "orders");
  EXPECT_EQ(args.get_int("max", 1, 10), 7);
  EXPECT_TRUE(args.has("follow"));
  EXPECT_EQ(args.positional(), std::vector<std::string>{"file.properties"});
}

TEST(Args, MistakesAreConfigErrorsNamingTheOption) {
  Args args("prog", "P.");
  args.option("max", "N", "a limit").flag("follow", "keep reading");
  try {
    Args a = args;
    (void)a.parse({"--nope"});
    FAIL() << "accepted an unknown option";
  } catch (const kclpp::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--nope"), std::string::npos) << e.what();
  }
  Args b = args;
  EXPECT_THROW((void)b.parse({"--follow=yes"}), kclpp::ConfigError);
  Args c = args;
  EXPECT_THROW((void)c.parse({"--max"}), kclpp::ConfigError);
  Args d = args;
  ASSERT_TRUE(d.parse({"--max", "11"}));
  EXPECT_THROW((void)d.get_int("max", 1, 10), kclpp::ConfigError);
  Args e = args;
  EXPECT_FALSE(e.parse({"--help"}));
}

// --log-to, on every command that runs long (docs/operations.md §3).
TEST(Args, LogToTakesStderrOrSyslogAndNamesABadValue) {
  Args args = kclpp::app::detail::main_args("my_processor");
  EXPECT_NE(args.help().find("  --log-to stderr|syslog"), std::string::npos) << args.help();
  ASSERT_TRUE(args.parse({"--log-to", "journal"}));
  try {
    (void)kclpp::app::detail::apply_log_to_option(args);
    FAIL() << "accepted --log-to journal";
  } catch (const kclpp::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--log-to: 'journal'"), std::string::npos) << e.what();
  }
  Args given = kclpp::app::detail::main_args("my_processor");
  ASSERT_TRUE(given.parse({"--log-to=stderr"}));
  EXPECT_TRUE(kclpp::app::detail::apply_log_to_option(given));
  Args absent = kclpp::app::detail::main_args("my_processor");
  ASSERT_TRUE(absent.parse({}));
  EXPECT_FALSE(kclpp::app::detail::apply_log_to_option(absent)) << "the default leaves the output alone";
}

// --- kclpp::main's native mode -------------------------------------------------------------

NativeConfig native(std::initializer_list<std::string> argv) {
  Args args = kclpp::app::detail::main_args("my_processor");
  if (!args.parse(std::vector<std::string>(argv))) throw std::logic_error("--help");
  return kclpp::app::detail::native_config(args, "my_processor");
}

// The ConfigError's message, or "<no error>".
std::string native_error(std::initializer_list<std::string> argv) {
  try {
    (void)native(argv);
  } catch (const kclpp::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(NativeOptions, EveryLeaseOptionLandsInWorkerAndStoreOptions) {
  const NativeConfig c = native({"--stream", "orders", "--application", "billing", "--lease-store",
                                 "dynamodb:billing-leases", "--worker-id", "host-a", "--failover-ms", "1500",
                                 "--max-leases", "4", "--max-leases-to-steal", "2", "--take-interval-ms", "700",
                                 "--cleanup-leases", "--dynamodb-endpoint", "http://127.0.0.1:8000", "--region",
                                 "eu-west-1", "--profile", "dev", "--endpoint", "http://127.0.0.1:4567"});
  EXPECT_EQ(c.stream, "orders");
  EXPECT_EQ(c.worker.application, "billing");
  EXPECT_EQ(c.store_uri, "dynamodb:billing-leases");
  EXPECT_EQ(c.worker.leases.worker_id, "host-a");
  EXPECT_EQ(c.worker.leases.failover_time, std::chrono::milliseconds(1500));
  EXPECT_EQ(c.worker.leases.max_leases, 4);
  EXPECT_EQ(c.worker.leases.max_leases_to_steal, 2);
  EXPECT_EQ(c.worker.leases.take_interval, std::chrono::milliseconds(700));
  EXPECT_TRUE(c.worker.leases.cleanup_leases_upon_shard_completion);
  EXPECT_EQ(c.worker.leases.renew_interval, std::chrono::milliseconds(0)) << "failover / 3, left to the worker";
  // The lease table's client: its own endpoint, the Kinesis client's region and profile.
  EXPECT_EQ(c.store.dynamodb.endpoint, "http://127.0.0.1:8000");
  EXPECT_EQ(c.store.dynamodb.region, "eu-west-1");
  EXPECT_EQ(c.store.dynamodb.profile.profile, "dev");
  EXPECT_EQ(c.client.endpoint, "http://127.0.0.1:4567") << "--endpoint stays Kinesis's";
  EXPECT_EQ(c.client.region, "eu-west-1");
}

TEST(NativeOptions, DefaultsAreLeaseOptionsDefaults) {
  const NativeConfig c = native({"--stream", "orders"});
  const kclpp::native::LeaseOptions defaults;
  EXPECT_EQ(c.store_uri, "sqlite:my_processor.checkpoints.db");
  EXPECT_EQ(c.worker.leases.worker_id, "") << "empty: the worker makes host name + pid + random";
  EXPECT_EQ(c.worker.leases.failover_time, defaults.failover_time);
  EXPECT_EQ(c.worker.leases.failover_time, std::chrono::milliseconds(10'000));
  EXPECT_EQ(c.worker.leases.max_leases, 0);
  EXPECT_EQ(c.worker.leases.max_leases_to_steal, 1);
  EXPECT_EQ(c.worker.leases.take_interval, std::chrono::milliseconds(0));
  EXPECT_FALSE(c.worker.leases.cleanup_leases_upon_shard_completion);
  EXPECT_EQ(c.store.dynamodb.endpoint, "");
  EXPECT_EQ(c.store.dynamodb.credentials, nullptr) << "the default chain, shared with Kinesis";
}

TEST(NativeOptions, LeaseStoreIsASynonymAndDynamodbGetsTheApplicationsTable) {
  EXPECT_EQ(native({"--stream", "s", "--checkpoint-store", "postgres://u@h/db"}).store_uri, "postgres://u@h/db");
  EXPECT_EQ(native({"--stream", "s", "--lease-store", "postgres://u@h/db"}).store_uri, "postgres://u@h/db");
  EXPECT_EQ(native({"--stream", "s", "--application", "app", "--lease-store", "dynamodb:"}).store_uri,
            "dynamodb:app");
  EXPECT_EQ(native({"--stream", "s", "--checkpoint-store=DynamoDB:"}).store_uri, "dynamodb:my_processor")
      << "the scheme is case-insensitive";
  EXPECT_EQ(native({"--stream", "s", "--checkpoint-store", "dynamodb:T"}).store_uri, "dynamodb:T");
  const std::string both = native_error({"--stream", "s", "--checkpoint-store", "postgres://u:secret@h/db",
                                         "--lease-store", "postgres://u:secret@h/db"});
  EXPECT_NE(both.find("--checkpoint-store"), std::string::npos) << both;
  EXPECT_NE(both.find("--lease-store"), std::string::npos) << both;
  EXPECT_EQ(both.find("secret"), std::string::npos) << "never a password in a message: " << both;
}

TEST(NativeOptions, BadValuesAreConfigErrorsNamingTheOptionAndTheValue) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--failover-ms", "0"}, "'--failover-ms': '0'"},
      {{"--failover-ms", "-5"}, "'--failover-ms': '-5'"},
      {{"--failover-ms", "10s"}, "'--failover-ms': '10s'"},
      {{"--max-leases", "-1"}, "'--max-leases': '-1'"},
      {{"--max-leases-to-steal", "0"}, "'--max-leases-to-steal': '0'"},
      {{"--max-leases-to-steal", "99999999999"}, "'--max-leases-to-steal': '99999999999'"},
      {{"--take-interval-ms", "0"}, "'--take-interval-ms': '0'"},
      {{"--worker-id="}, "--worker-id: empty"},
      {{"--dynamodb-endpoint", "http://127.0.0.1:8000"}, "--dynamodb-endpoint is for a dynamodb: store"},
  };
  for (const auto& [extra, expected] : cases) {
    Args args = kclpp::app::detail::main_args("p");
    std::vector<std::string> argv{"--stream", "s"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_TRUE(args.parse(argv));
    try {
      (void)kclpp::app::detail::native_config(args, "p");
      ADD_FAILURE() << "accepted " << extra.front();
    } catch (const kclpp::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  // 0 is a valid --max-leases: no limit.
  EXPECT_EQ(native({"--stream", "s", "--max-leases", "0"}).worker.leases.max_leases, 0);
}

TEST(NativeOptions, HelpDocumentsEveryOptionWithinOneHundredColumns) {
  const std::string help = kclpp::app::detail::main_args("my_processor").help();
  for (const auto& line : lines_of(help)) EXPECT_LE(line.size(), 100u) << line;
  for (const char* option : {"--lease-store URI", "--worker-id ID", "--failover-ms MS", "--max-leases N",
                             "--max-leases-to-steal N", "--take-interval-ms MS", "--cleanup-leases",
                             "--dynamodb-endpoint URL"}) {
    EXPECT_NE(help.find("  " + std::string(option)), std::string::npos) << option << "\n" << help;
  }
  EXPECT_NE(help.find("(default: 10000)"), std::string::npos) << help;
  // Every option but --stream, --on-error and --log-to needs --stream: the list main()
  // checks is complete.
  const auto& native_only = kclpp::app::detail::native_only_options();
  for (const auto& line : lines_of(help)) {
    if (line.rfind("  --", 0) != 0) continue;
    const std::string name = line.substr(4, line.find(' ', 4) - 4);
    if (name == "stream" || name == "on-error" || name == "log-to" || name == "help") continue;
    EXPECT_NE(std::find(native_only.begin(), native_only.end(), name), native_only.end()) << name;
  }
}

TEST(NativeOptions, TheLeaseTablesClientSharesTheKinesisCredentials) {
  kclpp::aws::KinesisOptions kinesis;
  kinesis.region = "ap-south-1";
  kinesis.profile.profile = "ops";
  kinesis.credentials = kclpp::aws::static_credentials({"AKID", "secret", "", {}});
  const auto store = kclpp::app::detail::store_options_like(kinesis, "http://ddb.local:8000");
  EXPECT_EQ(store.dynamodb.credentials, kinesis.credentials) << "the same provider, one refresh";
  EXPECT_EQ(store.dynamodb.region, "ap-south-1");
  EXPECT_EQ(store.dynamodb.profile.profile, "ops");
  EXPECT_EQ(store.dynamodb.endpoint, "http://ddb.local:8000");
}

TEST(NativeOptions, StoreUrisLoseTheirPasswordsInLogs) {
  using kclpp::app::detail::store_uri_for_log;
  EXPECT_EQ(store_uri_for_log("postgres://kcl:s3cret@db.example:5432/app"), "postgres://kcl:***@db.example:5432/app");
  EXPECT_EQ(store_uri_for_log("postgresql://db/app?user=kcl&password=s3cret&sslmode=require"),
            "postgresql://db/app?user=kcl&password=***&sslmode=require");
  EXPECT_EQ(store_uri_for_log("postgres://kcl@db/app"), "postgres://kcl@db/app");
  EXPECT_EQ(store_uri_for_log("sqlite:/var/lib/a@b.db"), "sqlite:/var/lib/a@b.db");
  EXPECT_EQ(store_uri_for_log("dynamodb:leases"), "dynamodb:leases");
}

// --- enhanced fan-out: kclpp::main's --fan-out, --consumer-name, --consumer-arn ------------------

constexpr const char* orders_consumer_arn =
    "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/billing:1700000000";

TEST(NativeFanOut, PollingUnlessAFanOutOptionIsGiven) {
  EXPECT_FALSE(native({"--stream", "orders"}).fan_out.has_value());
  const NativeConfig c = native({"--stream", "orders", "--application", "billing", "--fan-out"});
  ASSERT_TRUE(c.fan_out.has_value());
  EXPECT_EQ(c.fan_out->consumer_name, "billing") << "the application name, as the KCL's";
  EXPECT_EQ(c.fan_out->consumer_arn, "");
  EXPECT_EQ(native({"--stream", "orders", "--fan-out"}).fan_out->consumer_name, "my_processor")
      << "the application's default: the program name";
}

TEST(NativeFanOut, AConsumerNameOrArnImpliesFanOut) {
  const NativeConfig named = native({"--stream", "orders", "--consumer-name", "billing-efo"});
  ASSERT_TRUE(named.fan_out.has_value());
  EXPECT_EQ(named.fan_out->consumer_name, "billing-efo");
  EXPECT_EQ(native({"--stream", "orders", "--fan-out", "--consumer-name=a.b_c-9"}).fan_out->consumer_name, "a.b_c-9");
  const NativeConfig by_arn = native({"--stream", "orders", "--consumer-arn", orders_consumer_arn});
  ASSERT_TRUE(by_arn.fan_out.has_value());
  EXPECT_EQ(by_arn.fan_out->consumer_arn, orders_consumer_arn);
  EXPECT_EQ(by_arn.fan_out->consumer_name, "") << "an ARN is used as it is, never registered";
  EXPECT_EQ(kclpp::app::detail::retrieval_for_log(by_arn.fan_out),
            std::string("enhanced fan-out as consumer ") + orders_consumer_arn);
  EXPECT_EQ(kclpp::app::detail::retrieval_for_log(named.fan_out), "enhanced fan-out as consumer 'billing-efo'");
  EXPECT_EQ(kclpp::app::detail::retrieval_for_log(std::nullopt), "polling");
}

TEST(NativeFanOut, ConflictsAndBadValuesAreConfigErrorsNamingTheOption) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--consumer-name", "a", "--consumer-arn", orders_consumer_arn}, "--consumer-name and --consumer-arn"},
      {{"--fan-out", "--consumer-name", "a", "--consumer-arn", orders_consumer_arn}, "give one of them"},
      {{"--consumer-name", "has space"}, "--consumer-name: 'has space' is not a consumer name"},
      {{"--consumer-name="}, "--consumer-name: '' is not a consumer name"},
      {{"--consumer-name", std::string(129, 'n')}, "is not a consumer name (1 to 128"},
      {{"--consumer-arn", "billing"}, "--consumer-arn: 'billing' is not a consumer ARN"},
      {{"--consumer-arn", "arn:aws:kinesis:us-east-1:1:stream/orders"}, "is not a consumer ARN"},
      {{"--consumer-arn", "arn:aws:kinesis:us-east-1:1:stream/orders/consumer/"}, "is not a consumer ARN"},
      {{"--consumer-arn", "arn:aws:kinesis:us-east-1:1:stream/payments/consumer/c:1"},
       "is a consumer of stream 'payments', not of 'orders'"},
      {{"--fan-out", "--application", "my app"}, "the application name 'my app', the default consumer name"},
  };
  for (const auto& [extra, expected] : cases) {
    Args args = kclpp::app::detail::main_args("p");
    std::vector<std::string> argv{"--stream", "orders"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_TRUE(args.parse(argv));
    try {
      (void)kclpp::app::detail::native_config(args, "p");
      ADD_FAILURE() << "accepted " << extra.front() << " " << extra.back();
    } catch (const kclpp::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  // --fan-out takes no value.
  Args args = kclpp::app::detail::main_args("p");
  EXPECT_THROW((void)args.parse({"--stream", "orders", "--fan-out=yes"}), kclpp::ConfigError);
}

TEST(NativeFanOut, PollingOptionsAreAcceptedAndTheHelpSaysFanOutIgnoresThem) {
  const NativeConfig c =
      native({"--stream", "orders", "--fan-out", "--max-records", "500", "--idle-time-ms", "200"});
  ASSERT_TRUE(c.fan_out.has_value());
  EXPECT_EQ(c.worker.max_records, 500);
  const std::string help = kclpp::app::detail::main_args("my_processor").help();
  for (const char* option : {"--fan-out", "--consumer-name NAME", "--consumer-arn ARN"})
    EXPECT_NE(help.find("  " + std::string(option)), std::string::npos) << option << "\n" << help;
  std::string fan_out_help;
  bool in_option = false;
  for (const auto& line : lines_of(help)) {
    if (line.rfind("  --", 0) == 0) in_option = line.rfind("  --fan-out ", 0) == 0;
    if (in_option) fan_out_help += line.substr(30) + " ";
  }
  EXPECT_NE(fan_out_help.find("--max-records and --idle-time-ms do not apply"), std::string::npos) << fan_out_help;
}

// --- kclpp get ----------------------------------------------------------------------------------

kclpp::app::detail::GetRequest get(std::initializer_list<std::string> argv) {
  Args args = kclpp::app::detail::get_args();
  if (!args.parse(std::vector<std::string>(argv))) throw std::logic_error("--help");
  return kclpp::app::detail::get_request(args);
}

std::string get_error(std::initializer_list<std::string> argv) {
  try {
    (void)get(argv);
  } catch (const kclpp::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(GetOptions, PollsByDefaultAndFansOutAsKclppGet) {
  const auto polling = get({"--stream", "orders"});
  EXPECT_FALSE(polling.fan_out.has_value());
  EXPECT_EQ(polling.from.type, kclpp::aws::IteratorType::TrimHorizon);
  EXPECT_FALSE(polling.timeout.has_value());
  const auto fan_out = get({"--stream", "orders", "--fan-out", "--from", "LATEST", "--timeout-ms", "1500"});
  ASSERT_TRUE(fan_out.fan_out.has_value());
  EXPECT_EQ(fan_out.fan_out->consumer_name, "kclpp-get");
  EXPECT_EQ(fan_out.from.type, kclpp::aws::IteratorType::Latest);
  EXPECT_EQ(fan_out.timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(get({"--stream", "orders", "--consumer-name", "peek"}).fan_out->consumer_name, "peek");
  EXPECT_EQ(get({"--stream", "orders", "--consumer-arn", orders_consumer_arn}).fan_out->consumer_arn,
            orders_consumer_arn);
}

TEST(GetOptions, ConflictsAndBadValuesNameTheOption) {
  EXPECT_NE(get_error({"--stream", "orders", "--consumer-name", "a", "--consumer-arn", orders_consumer_arn})
                .find("--consumer-name and --consumer-arn"),
            std::string::npos);
  EXPECT_NE(get_error({"--stream", "orders", "--consumer-arn", "nope"}).find("--consumer-arn: 'nope'"),
            std::string::npos);
  EXPECT_NE(get_error({"--stream", "orders", "--timeout-ms", "0"}).find("'--timeout-ms': '0'"), std::string::npos);
  EXPECT_NE(get_error({"--fan-out"}).find("--stream"), std::string::npos);
  const std::string help = kclpp::app::detail::get_args().help();
  for (const auto& line : lines_of(help)) EXPECT_LE(line.size(), 100u) << line;
  EXPECT_NE(help.find("kclpp-get"), std::string::npos) << help;
}

// --- kclpp stats ------------------------------------------------------------------------------

kclpp::app::detail::StatsStore stats_store(std::initializer_list<std::string> argv, const std::string& url) {
  Args args = kclpp::app::detail::stats_args();
  if (!args.parse(std::vector<std::string>(argv))) throw std::logic_error("--help");
  return kclpp::app::detail::stats_store(args, url, "billing");
}

TEST(StatsStore, ReadsADynamodbLeaseTableThroughItsEndpoint) {
  auto s = stats_store({"--dynamodb-endpoint", "http://127.0.0.1:8000", "--region", "us-west-2"}, "dynamodb:");
  EXPECT_EQ(s.uri, "dynamodb:billing") << "the default table: the client (application) name";
  EXPECT_EQ(s.options.dynamodb.endpoint, "http://127.0.0.1:8000");
  EXPECT_EQ(s.options.dynamodb.region, "us-west-2");
  EXPECT_EQ(stats_store({}, "dynamodb:leases").uri, "dynamodb:leases");
  EXPECT_EQ(stats_store({}, "sqlite://t.db").uri, "triton+sqlite:t.db") << "go-triton's URLs as before";
  try {
    (void)stats_store({"--dynamodb-endpoint", "http://127.0.0.1:8000"}, "postgres://u:pw@h/db");
    FAIL() << "accepted --dynamodb-endpoint for a postgres store";
  } catch (const kclpp::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--dynamodb-endpoint"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find(":pw@"), std::string::npos) << e.what();
  }
}

// --- the watchdog options and the systemd notifier (docs/operations.md §2) ----------------

TEST(NativeOptions, WatchdogOptionsTakeSecondsAndAPolicy) {
  const NativeConfig defaults = native({"--stream", "orders"});
  EXPECT_EQ(defaults.worker.processor_timeout, std::chrono::milliseconds(0)) << "off by default";
  EXPECT_EQ(defaults.worker.stall_timeout, std::chrono::milliseconds(60'000));
  EXPECT_EQ(defaults.worker.on_processor_timeout, kclpp::native::OnProcessorTimeout::Restart);
  const NativeConfig c = native({"--stream", "orders", "--processor-timeout", "0.25", "--on-processor-timeout",
                                 "log", "--stall-timeout", "90"});
  EXPECT_EQ(c.worker.processor_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c.worker.on_processor_timeout, kclpp::native::OnProcessorTimeout::Log);
  EXPECT_EQ(c.worker.stall_timeout, std::chrono::milliseconds(90'000));
  for (const auto& [argv, named] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--processor-timeout", "-1"}, "--processor-timeout: '-1'"},
           {{"--processor-timeout", "5s"}, "--processor-timeout: '5s'"},
           {{"--stall-timeout", "nan"}, "--stall-timeout: 'nan'"},
           {{"--on-processor-timeout", "kill"}, "--on-processor-timeout: 'kill'"}}) {
    Args args = kclpp::app::detail::main_args("prog");
    std::vector<std::string> all{"--stream", "s"};
    all.insert(all.end(), argv.begin(), argv.end());
    ASSERT_TRUE(args.parse(all));
    try {
      (void)kclpp::app::detail::native_config(args, "prog");
      ADD_FAILURE() << named << " was accepted";
    } catch (const kclpp::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  }
}

// A datagram socket bound in a temporary directory, as systemd's notify socket.
class NotifySocket {
 public:
  NotifySocket() {
    char dir_template[] = "/tmp/kclpp-notify-XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    path_ = dir_ + "/notify.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    const timeval timeout{0, 20'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  // Every line received during `d`, in order.
  std::vector<std::string> receive_for(std::chrono::milliseconds d) {
    std::vector<std::string> out;
    const auto end = std::chrono::steady_clock::now() + d;
    char buffer[4096];
    while (std::chrono::steady_clock::now() < end) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      for (const auto& line : lines_of(std::string(buffer, static_cast<std::size_t>(n)))) out.push_back(line);
    }
    return out;
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
  int fd_ = -1;
};

long count_of(const std::vector<std::string>& lines, const std::string& line) {
  return std::count(lines.begin(), lines.end(), line);
}

TEST(SystemdNotifier, ReadyOnceStartedWatchdogOnlyWhileHealthyStoppingAtShutdown) {
  using kclpp::app::detail::ServiceState;
  using kclpp::app::detail::SystemdNotifier;
  {
    ::unsetenv("NOTIFY_SOCKET");
    const SystemdNotifier outside([] { return ServiceState{true, true, "x"}; });
    EXPECT_FALSE(outside.active()) << "no thread outside systemd";
  }
  NotifySocket socket;
  ::setenv("NOTIFY_SOCKET", socket.path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "100000", 1);  // pings every 50 ms
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  std::atomic<bool> ready{false};
  std::atomic<bool> healthy{true};
  std::vector<std::string> lines;
  {
    SystemdNotifier notifier([&] {
      return ServiceState{ready.load(), healthy.load(), healthy ? "processing 2 shard(s)" : "shardId-1: stuck"};
    });
    ASSERT_TRUE(notifier.active());
    const auto starting = socket.receive_for(std::chrono::milliseconds(300));
    EXPECT_EQ(count_of(starting, "READY=1"), 0);
    EXPECT_GE(count_of(starting, "WATCHDOG=1"), 2) << "alive while starting";
    ready = true;
    const auto running = socket.receive_for(std::chrono::milliseconds(400));
    EXPECT_EQ(count_of(running, "READY=1"), 1);
    EXPECT_GE(count_of(running, "WATCHDOG=1"), 5);
    EXPECT_LE(count_of(running, "WATCHDOG=1"), 10);
    healthy = false;
    const auto in_flight = socket.receive_for(std::chrono::milliseconds(60));  // a tick in flight
    const auto stuck = socket.receive_for(std::chrono::milliseconds(400));
    EXPECT_EQ(count_of(stuck, "WATCHDOG=1"), 0) << "no pings while unhealthy";
    healthy = true;
    const auto recovered = socket.receive_for(std::chrono::milliseconds(300));
    EXPECT_GE(count_of(recovered, "WATCHDOG=1"), 3);
    EXPECT_EQ(count_of(recovered, "READY=1"), 0) << "READY=1 once";
    notifier.stopping("SIGTERM: shutting down");
    for (const auto* phase : {&starting, &running, &in_flight, &stuck, &recovered}) {
      lines.insert(lines.end(), phase->begin(), phase->end());
    }
    const auto stopping = socket.receive_for(std::chrono::milliseconds(100));
    lines.insert(lines.end(), stopping.begin(), stopping.end());
  }
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  EXPECT_EQ(count_of(lines, "STOPPING=1"), 1);
  EXPECT_EQ(count_of(lines, "STATUS=SIGTERM: shutting down"), 1);
  EXPECT_EQ(count_of(lines, "STATUS=processing 2 shard(s)"), 2) << "at the start and after the recovery";
  EXPECT_EQ(count_of(lines, "STATUS=shardId-1: stuck"), 1) << "STATUS= only when it changes";
}

}  // namespace
