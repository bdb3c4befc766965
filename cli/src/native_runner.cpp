#include "native_runner.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <string_view>
#include <thread>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "systemd_notify.hpp"

namespace kclpp::app::detail {

void add_client_options(Args& args) {
  args.option("endpoint", "URL",
              "Kinesis endpoint, e.g. http://127.0.0.1:4567 for a local server "
              "(default: https://kinesis.REGION.amazonaws.com)")
      .option("region", "REGION", "AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)")
      .option("profile", "NAME", "profile of ~/.aws/credentials and ~/.aws/config (default: $AWS_PROFILE)");
}

aws::KinesisOptions client_options(const Args& args) {
  aws::KinesisOptions options;
  options.endpoint = args.get_or("endpoint", "");
  options.region = args.get_or("region", "");
  options.profile.profile = args.get_or("profile", "");
  return options;
}

void check_stream(const aws::KinesisOptions& options, const std::string& stream) {
  try {
    aws::KinesisClient client(options);
    (void)client.describe_stream_summary(stream);
  } catch (const Error& e) {
    if (e.retry() == Retry::No) throw;
    log_warn("stream '", stream, "' is not reachable yet (the worker keeps trying): ", e.what());
  }
}

void add_worker_options(Args& args) {
  args.option("application", "NAME",
              "application name: checkpoints and leases are kept per application, stream and shard "
              "(default: the program's name)")
      .option("checkpoint-store", "URI",
              "where checkpoints and leases live: sqlite:PATH | postgres://... | dynamodb:[TABLE] "
              "(the Java KCL's lease table; TABLE defaults to the application name) | memory: "
              "(default: sqlite:APPLICATION.checkpoints.db)")
      .option("lease-store", "URI",
              "the same as --checkpoint-store (give one of them). Workers started with the same "
              "application and stream on one shared store split the shards between them")
      .option("initial-position", "POS",
              "where a shard without a checkpoint starts: LATEST | TRIM_HORIZON | "
              "AT_TIMESTAMP:<epoch seconds or RFC 3339 UTC>",
              "LATEST")
      .option("shards", "I,J,...",
              "process only these shards: indexes into the stream's shards sorted by id (default: all)");
  add_read_options(args);
  args.option("shutdown-grace-ms", "MS", "how long processors get to finish after SIGTERM", "10000")
      .option("on-error", "POLICY",
              "when a processor throws: fail (restart the shard from its last checkpoint) | "
              "continue (log and skip the records, as the KCL does)",
              "fail")
      .option("processor-timeout", "SECONDS",
              "watchdog (docs/operations.md §2): a processor call running longer is logged, counted "
              "and makes the worker not ready; 0: off",
              "0")
      .option("on-processor-timeout", "MODE",
              "then: restart (interrupt the processor, restart the shard from its checkpoint) | log",
              "restart")
      .option("stall-timeout", "SECONDS",
              "a shard behind the stream's tip with no records reaching its processor for this long "
              "is logged, counted and makes the worker not ready; 0: off",
              "60")
      .flag("deliver-empty-batches", "call process_records for empty reads too");
  add_lease_options(args);
}

void add_lease_options(Args& args) {
  const native::LeaseOptions defaults;
  args.option("worker-id", "ID",
              "this worker's id in the lease store, unique among live workers; a worker restarted "
              "with the same id takes its leases back at once (default: host name, pid and a random "
              "suffix)")
      .option("failover-ms", "MS",
              "a lease not renewed for this long is taken over by another worker; a worker that "
              "cannot renew its leases for this long stops processing them (failoverTimeMillis)",
              std::to_string(defaults.failover_time.count()))
      .option("max-leases", "N",
              "at most this many shards on this worker, 0: no limit (maxLeasesForWorker)",
              std::to_string(defaults.max_leases))
      .option("max-leases-to-steal", "N",
              "leases taken from the most loaded worker per take round when none is free or "
              "expired (maxLeasesToStealAtOneTime)",
              std::to_string(defaults.max_leases_to_steal))
      .option("take-interval-ms", "MS",
              "how often the lease store is scanned for free, expired and stealable leases "
              "(default: --failover-ms; the Java KCL scans every twice that)")
      .flag("cleanup-leases",
            "delete the lease of a shard read to its end once its children have started "
            "(cleanupLeasesUponShardCompletion)")
      .option("dynamodb-endpoint", "URL",
              "DynamoDB endpoint of a dynamodb: store, e.g. http://127.0.0.1:8000 for a local "
              "server (default: $AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL, the profile's, else "
              "https://dynamodb.REGION.amazonaws.com); region, profile and credentials are the "
              "Kinesis client's");
}

native::LeaseOptions lease_options(const Args& args) {
  constexpr long long max_ms = 86'400'000;  // a day: anything longer is a typo
  constexpr long long max_count = std::numeric_limits<int>::max();
  native::LeaseOptions options;
  if (const auto id = args.get("worker-id")) {
    // An empty id would be one id shared by every worker started the same way.
    if (id->empty()) throw ConfigError("--worker-id: empty (leave it out for a generated id)");
    options.worker_id = *id;
  }
  options.failover_time = std::chrono::milliseconds(*args.get_int("failover-ms", 1, max_ms));
  options.max_leases = static_cast<int>(*args.get_int("max-leases", 0, max_count));
  options.max_leases_to_steal = static_cast<int>(*args.get_int("max-leases-to-steal", 1, max_count));
  if (const auto take = args.get_int("take-interval-ms", 1, max_ms))
    options.take_interval = std::chrono::milliseconds(*take);
  options.cleanup_leases_upon_shard_completion = args.has("cleanup-leases");
  return options;
}

native::StoreOptions store_options_like(const aws::KinesisOptions& kinesis, const std::string& dynamodb_endpoint) {
  native::StoreOptions options;
  options.dynamodb.region = kinesis.region;
  options.dynamodb.profile = kinesis.profile;
  options.dynamodb.credentials = kinesis.credentials;
  options.dynamodb.endpoint = dynamodb_endpoint;
  return options;
}

void add_fan_out_options(Args& args) {
  args.flag("fan-out",
            "enhanced fan-out: each shard's records are pushed over one HTTP/2 connection (SubscribeToShard) "
            "as they arrive, with the consumer's own 2 MB/s per shard, instead of polling with "
            "GetRecords; --max-records and --idle-time-ms do not apply then (retrievalMode = FANOUT)")
      .option("consumer-name", "NAME",
              "the fan-out consumer to read as, registered when the stream has none of that name and "
              "never deregistered; implies --fan-out (default: the application name)")
      .option("consumer-arn", "ARN",
              "read as this registered consumer (arn:aws:kinesis:...:stream/STREAM/consumer/NAME:...), "
              "never registering one; implies --fan-out; not with --consumer-name");
}

bool valid_consumer_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '_' || c == '.' || c == '-';
  });
}

std::string consumer_arn_problem(const std::string& arn, const std::string& stream) {
  // arn:PARTITION:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:CREATED; the resource
  // is everything after the fifth colon (it has a colon of its own).
  std::size_t at = 0;
  for (int colon = 0; colon < 5 && at != std::string::npos; ++colon) {
    at = arn.find(':', at);
    if (at != std::string::npos) ++at;
  }
  const std::string resource = at == std::string::npos ? "" : arn.substr(at);
  const std::size_t slash = resource.find('/', 7);
  if (arn.rfind("arn:", 0) != 0 || resource.rfind("stream/", 0) != 0 || slash == std::string::npos ||
      resource.compare(slash, 10, "/consumer/") != 0 || resource.size() <= slash + 10)
    return "not a consumer ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:CREATED)";
  // A consumer of another stream: SubscribeToShard would refuse every shard of this one.
  const std::string arn_stream = resource.substr(7, slash - 7);
  if (arn_stream != stream) return "a consumer of stream '" + arn_stream + "', not of '" + stream + "'";
  return {};
}

std::optional<native::FanOutOptions> fan_out_options(const Args& args, const std::string& stream,
                                                     const std::string& default_consumer) {
  const auto name = args.get("consumer-name");
  const auto arn = args.get("consumer-arn");
  if (!args.has("fan-out") && !name && !arn) return std::nullopt;
  if (name && arn)
    throw ConfigError("--consumer-name and --consumer-arn both name the consumer to read as: give one of them");
  native::FanOutOptions options;
  if (arn) {
    if (const std::string problem = consumer_arn_problem(*arn, stream); !problem.empty())
      throw ConfigError("--consumer-arn: '" + *arn + "' is " + problem);
    options.consumer_arn = *arn;
    return options;
  }
  options.consumer_name = name ? *name : default_consumer;
  if (!valid_consumer_name(options.consumer_name)) {
    throw ConfigError(name ? "--consumer-name: '" + *name + "' is not a consumer name (1 to 128 of a-z A-Z 0-9 _ . -)"
                           : "the application name '" + default_consumer +
                                 "', the default consumer name, is not a consumer name (1 to 128 of a-z A-Z 0-9 _ "
                                 ". -): give --consumer-name");
  }
  return options;
}

std::string retrieval_for_log(const std::optional<native::FanOutOptions>& fan_out) {
  if (!fan_out) return "polling";
  return "enhanced fan-out as consumer " + (fan_out->consumer_arn.empty() ? "'" + fan_out->consumer_name + "'"
                                                                          : fan_out->consumer_arn);
}

void add_read_options(Args& args) {
  args.option("max-records", "N", "records per GetRecords call, 1..10000", "10000")
      .option("idle-time-ms", "MS", "pause between reads of a shard that is caught up", "1000")
      .option("shard-sync-ms", "MS", "how often to re-list shards (SIGHUP: now)", "60000");
}

void apply_read_options(const Args& args, native::WorkerOptions& options) {
  options.max_records = static_cast<int>(*args.get_int("max-records", 1, 10'000));
  options.idle_time_between_reads = std::chrono::milliseconds(*args.get_int("idle-time-ms", 0, 86'400'000));
  options.shard_sync_interval = std::chrono::milliseconds(*args.get_int("shard-sync-ms", 100, 86'400'000));
  options.shutdown_grace = std::chrono::milliseconds(*args.get_int("shutdown-grace-ms", 0, 86'400'000));
  if (const auto shards = args.get("shards")) options.shard_indexes = parse_shard_indexes(*shards);
}

std::vector<std::size_t> parse_shard_indexes(const std::string& text) {
  // An empty list would mean "every shard" to the worker: refuse it rather than read all
  // shards because of a typo (`--shards=` or `--shards "$UNSET"`).
  if (text.empty()) throw ConfigError("--shards: empty list (give shard indexes: 0,1,...)");
  std::vector<std::size_t> indexes;
  std::string_view rest = text;
  for (;;) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    std::size_t index = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), index);
    if (item.empty() || ec != std::errc{} || end != item.data() + item.size())
      throw ConfigError("--shards: '" + std::string(item) + "' is not a shard index (0, 1, ...) in '" + text + "'");
    if (std::find(indexes.begin(), indexes.end(), index) != indexes.end())
      throw ConfigError("--shards: shard index " + std::to_string(index) + " given twice in '" + text + "'");
    indexes.push_back(index);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);  // "1," leaves an empty item: refused above
  }
  return indexes;
}

std::string checkpoint_store_uri(const Args& args, const std::string& application) {
  const auto checkpoint_store = args.get("checkpoint-store");
  const auto lease_store = args.get("lease-store");
  // Not their values: a postgres:// URI may hold a password.
  if (checkpoint_store && lease_store)
    throw ConfigError("--checkpoint-store and --lease-store name the same store: give one of them");
  std::string uri = checkpoint_store ? *checkpoint_store
                    : lease_store    ? *lease_store
                                     : "sqlite:" + application + ".checkpoints.db";
  if (is_dynamodb_uri(uri) && dynamodb_table(uri).empty()) uri = "dynamodb:" + application;
  return uri;
}

bool is_dynamodb_uri(const std::string& uri) {
  constexpr std::string_view scheme = "dynamodb:";
  if (uri.size() < scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(uri[i])) != scheme[i]) return false;
  }
  return true;
}

std::string dynamodb_table(const std::string& uri) { return uri.substr(std::string_view("dynamodb:").size()); }

std::string store_uri_for_log(const std::string& uri) {
  std::string out = uri;
  // scheme://user:PASSWORD@host...
  if (const auto authority = out.find("://"); authority != std::string::npos) {
    const auto end = out.find_first_of("/?#", authority + 3);
    const auto at = out.rfind('@', end == std::string::npos ? out.size() : end);
    if (at != std::string::npos && at > authority) {
      const auto colon = out.find(':', authority + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // ...?password=PASSWORD (libpq takes it as a query parameter too)
  for (auto pos = out.find("password="); pos != std::string::npos; pos = out.find("password=", pos + 1)) {
    const auto value = pos + std::string_view("password=").size();
    const auto end = out.find('&', value);
    out.replace(value, (end == std::string::npos ? out.size() : end) - value, "***");
  }
  return out;
}

namespace {

// "SECONDS" of the watchdog options: a decimal number (0.5 is half a second).
std::chrono::milliseconds parse_seconds(const std::string& text, const std::string& what) {
  double seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc{} || end != text.data() + text.size() || !(seconds >= 0) || seconds > 86'400)
    throw ConfigError(what + ": '" + text + "' is not a number of seconds in [0, 86400]");
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1'000 + 0.5));
}

void apply_watchdog_options(const Args& args, native::WorkerOptions& options) {
  if (const auto v = args.get("processor-timeout")) options.processor_timeout = parse_seconds(*v, "--processor-timeout");
  if (const auto v = args.get("stall-timeout")) options.stall_timeout = parse_seconds(*v, "--stall-timeout");
  const std::string policy = args.get_or("on-processor-timeout", "restart");
  if (policy == "restart") {
    options.on_processor_timeout = native::OnProcessorTimeout::Restart;
  } else if (policy == "log") {
    options.on_processor_timeout = native::OnProcessorTimeout::Log;
  } else {
    throw ConfigError("--on-processor-timeout: '" + policy + "' is neither 'restart' nor 'log'");
  }
}

}  // namespace

native::WorkerOptions worker_options(const Args& args, const std::string& default_application) {
  native::WorkerOptions options;
  options.application = args.get_or("application", default_application);
  if (options.application.empty()) throw ConfigError("--application must not be empty");
  options.initial_position = parse_start_position(args.get_or("initial-position", "LATEST"),
                                                  "--initial-position");
  apply_read_options(args, options);
  options.leases = lease_options(args);
  if (args.has("deliver-empty-batches")) options.empty_batches = native::EmptyBatches::Deliver;
  apply_watchdog_options(args, options);
  const std::string on_error = args.get_or("on-error", "fail");
  if (on_error == "fail") {
    options.on_processor_error = OnProcessorError::Fail;
  } else if (on_error == "continue") {
    options.on_processor_error = OnProcessorError::LogAndContinue;
  } else {
    throw ConfigError("--on-error: '" + on_error + "' is neither 'fail' nor 'continue'");
  }
  return options;
}

Args main_args(const std::string& program) {
  Args args(program + " [--stream NAME [options]]",
            "A Kinesis record processor built on kclpp.\n"
            "With no --stream it speaks the KCL MultiLangDaemon protocol on stdin/stdout: run it as\n"
            "the executableName of the Java MultiLangDaemon or of `kclpp daemon`. With --stream it\n"
            "reads the stream itself (no JVM), one processor per shard, checkpoints in SQLite by\n"
            "default. Several copies started with the same --application and --stream on one\n"
            "shared store (dynamodb:, postgres://, or sqlite: on one host) split the shards\n"
            "through leases and take over each other's shards when one stops.\n"
            "In native mode SIGTERM/SIGINT shut down cleanly (leases are released for the other\n"
            "workers), SIGHUP re-lists shards. Logs go to stderr (or --log-to syslog);\n"
            "KCLPP_LOG_LEVEL=debug|info|warn|error, KCLPP_LOG_FORMAT=text|json.");
  args.option("stream", "NAME", "native mode: read this Kinesis stream");
  add_client_options(args);
  add_worker_options(args);
  add_fan_out_options(args);
  add_log_to_option(args);
  add_ops_options(args, "kclpp");
  return args;
}

const std::vector<std::string>& native_only_options() {
  // Every option of main_args() but --stream, --on-error and --log-to (protocol mode has
  // them too).
  static const std::vector<std::string> names{
      "endpoint", "region", "profile", "application", "checkpoint-store", "lease-store",
      "initial-position", "shards", "max-records", "idle-time-ms", "shard-sync-ms",
      "shutdown-grace-ms", "deliver-empty-batches", "worker-id", "failover-ms", "max-leases",
      "max-leases-to-steal", "take-interval-ms", "cleanup-leases", "dynamodb-endpoint", "fan-out",
      "consumer-name", "consumer-arn", "processor-timeout", "on-processor-timeout", "stall-timeout",
      "metrics-listen", "statsd", "statsd-prefix", "statsd-interval-ms"};
  return names;
}

NativeConfig native_config(const Args& args, const std::string& program) {
  NativeConfig config;
  config.stream = args.get_or("stream", "");
  if (config.stream.empty()) throw ConfigError("--stream must not be empty");
  config.client = client_options(args);
  config.worker = worker_options(args, program);
  config.store_uri = checkpoint_store_uri(args, config.worker.application);
  const std::string dynamodb_endpoint = args.get_or("dynamodb-endpoint", "");
  if (!dynamodb_endpoint.empty() && !is_dynamodb_uri(config.store_uri))
    throw ConfigError("--dynamodb-endpoint is for a dynamodb: store; the store is " +
                      store_uri_for_log(config.store_uri));
  config.store = store_options_like(config.client, dynamodb_endpoint);
  config.fan_out = fan_out_options(args, config.stream, config.worker.application);
  config.ops = ops_config(args);
  return config;
}

// Year 2261: system_clock counts nanoseconds in 64 bits, so later times overflow it
// (found by fuzzing).
constexpr double max_epoch_seconds = 9'200'000'000.0;

std::chrono::system_clock::time_point parse_time(const std::string& text, const std::string& what) {
  using namespace std::chrono;
  // Epoch seconds, with an optional fraction.
  double seconds = 0;
  if (auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
      ec == std::errc{} && end == text.data() + text.size() && std::isfinite(seconds) && seconds >= 0 &&
      seconds <= max_epoch_seconds) {
    return system_clock::time_point(duration_cast<system_clock::duration>(duration<double>(seconds)));
  }
  // RFC 3339 UTC: YYYY-MM-DDTHH:MM:SS[.fff]Z
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest != nullptr) {
    double fraction = 0;
    if (*rest == '.') {
      const char* start = rest;
      ++rest;
      while (*rest >= '0' && *rest <= '9') ++rest;
      fraction = std::strtod(std::string(start, rest).c_str(), nullptr);
    }
    if (std::strcmp(rest, "Z") == 0) {
      const std::time_t t = ::timegm(&tm);
      if (t < 0 || static_cast<double>(t) > max_epoch_seconds)
        throw ConfigError(what + ": '" + text + "' is outside 1970..2261");
      return system_clock::from_time_t(t) +
             duration_cast<system_clock::duration>(duration<double>(fraction));
    }
  }
  throw ConfigError(what + ": '" + text +
                    "' is not a time (epoch seconds up to 9200000000, or YYYY-MM-DDTHH:MM:SS[.fff]Z in UTC)");
}

aws::StartPosition parse_start_position(const std::string& text, const std::string& what) {
  if (text == "LATEST") return aws::StartPosition::latest();
  if (text == "TRIM_HORIZON") return aws::StartPosition::trim_horizon();
  constexpr std::string_view prefix = "AT_TIMESTAMP:";
  if (text.rfind(prefix, 0) == 0)
    return aws::StartPosition::at_timestamp(parse_time(text.substr(prefix.size()), what));
  if (!text.empty() && text[0] >= '0' && text[0] <= '9')
    return aws::StartPosition::at_timestamp(parse_time(text, what));
  throw ConfigError(what + ": '" + text +
                    "' is not LATEST, TRIM_HORIZON or AT_TIMESTAMP:<time>");
}

void run_until_signalled(native::Worker& worker, const WorkerOps& ops) {
  SignalBlock block{SIGTERM, SIGINT, SIGHUP};
  // Under systemd (Type=notify, WatchdogSec): docs/operations.md §2. Declared before the
  // waiter, which uses it, so that it outlives it.
  SystemdNotifier notifier([&worker] { return worker_service_state(worker); });
  // After the block (its threads inherit the mask), destroyed before it.
  const Ops served(ops.config, ops.registry, [&worker] { return worker.health(); }, ops.statsd);
  std::jthread waiter([&worker, &block, &notifier](const std::stop_token& stop) {
    const timespec tick{0, 100'000'000};
    while (!stop.stop_requested()) {
      const int sig = ::sigtimedwait(&block.set(), nullptr, &tick);
      if (sig == SIGHUP) {
        log_info("SIGHUP: re-listing shards");
        worker.request_shard_sync();
      } else if (sig == SIGTERM || sig == SIGINT) {
        log_info(sig == SIGTERM ? "SIGTERM" : "SIGINT", ": shutting down");
        notifier.stopping(sig == SIGTERM ? "SIGTERM: shutting down" : "SIGINT: shutting down");
        worker.request_shutdown();
      }
    }
  });
  worker.run();
  // The waiter stops and is joined here (jthread), before `block` restores the mask.
}

}  // namespace kclpp::app::detail
