#include "native_runner.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <thread>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

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
              "application name: checkpoints are kept per application, stream and shard "
              "(default: the program's name)")
      .option("checkpoint-store", "URI",
              "sqlite:PATH | postgres://... | memory: (default: sqlite:APPLICATION.checkpoints.db)")
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
      .flag("deliver-empty-batches", "call process_records for empty reads too");
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
  return args.get_or("checkpoint-store", "sqlite:" + application + ".checkpoints.db");
}

native::WorkerOptions worker_options(const Args& args, const std::string& default_application) {
  native::WorkerOptions options;
  options.application = args.get_or("application", default_application);
  if (options.application.empty()) throw ConfigError("--application must not be empty");
  options.initial_position = parse_start_position(args.get_or("initial-position", "LATEST"),
                                                  "--initial-position");
  apply_read_options(args, options);
  if (args.has("deliver-empty-batches")) options.empty_batches = native::EmptyBatches::Deliver;
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

void run_until_signalled(native::Worker& worker) {
  SignalBlock block{SIGTERM, SIGINT, SIGHUP};
  std::jthread waiter([&worker, &block](const std::stop_token& stop) {
    const timespec tick{0, 100'000'000};
    while (!stop.stop_requested()) {
      const int sig = ::sigtimedwait(&block.set(), nullptr, &tick);
      if (sig == SIGHUP) {
        log_info("SIGHUP: re-listing shards");
        worker.request_shard_sync();
      } else if (sig == SIGTERM || sig == SIGINT) {
        log_info(sig == SIGTERM ? "SIGTERM" : "SIGINT", ": shutting down");
        worker.request_shutdown();
      }
    }
  });
  worker.run();
  // The waiter stops and is joined here (jthread), before `block` restores the mask.
}

}  // namespace kclpp::app::detail
