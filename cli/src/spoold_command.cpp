// `kclpp spoold`: the tritond-compatible spool daemon (docs/triton.md §7).
#include <signal.h>

#include <cstdio>
#include <ctime>
#include <thread>

#include "args.hpp"
#include "kclpp/pipeline/config.hpp"
#include "kclpp/pipeline/spool.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "native_runner.hpp"
#include "pipeline_commands.hpp"

namespace kclpp::app::detail {
int spoold_command(const std::vector<std::string>& argv) {
  Args args("kclpp spoold [--config PATH] [--endpoint tcp://HOST:PORT] [options]",
            "The non-blocking spool daemon, wire-compatible with tritond: a ZeroMQ PULL socket\n"
            "takes two-frame messages (py-triton's 0x04 binary header or the JSON header, then\n"
            "a msgpack record) for logical streams of the config, and every flush interval\n"
            "writes them with PutRecords (500 records, 5 MiB per request), retrying failed\n"
            "entries before dropping them. Memory is bounded (--max-buffer-mb): past it, records\n"
            "are dropped and counted. SIGTERM/SIGINT: stop receiving, flush everything, exit 0.\n"
            "Logs go to stderr (or --log-to syslog); nothing is printed on stdout.");
  args.option("config", "PATH", "Triton YAML config (default: $TRITON_CONFIG, else /etc/triton.yaml)")
      .option("endpoint", "tcp://HOST:PORT",
              "ZeroMQ address to bind (default: tcp://$TRITON_ZMQ_HOST:$TRITON_ZMQ_PORT, "
              "127.0.0.1 and 3515 when unset)")
      .option("kinesis-endpoint", "URL",
              "Kinesis endpoint, e.g. http://127.0.0.1:4567 (default: https://kinesis.REGION.amazonaws.com)")
      .option("region", "REGION", "AWS region for every stream (default: each stream's region, else $AWS_REGION)")
      .option("profile", "NAME", "profile of ~/.aws/credentials and ~/.aws/config (default: $AWS_PROFILE)")
      .option("max-buffer-mb", "N", "records held for Kinesis, in MiB of data + keys", "64")
      .option("flush-interval-ms", "MS", "how often held records are written", "100")
      .option("attempts", "N", "PutRecords attempts per batch before its records are dropped", "5")
      .option("receive-hwm", "N", "high-water mark of the PULL socket", "3500");
  add_log_to_option(args);
  add_ops_options(args, "kclpp.spoold");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  if (!args.positional().empty())
    throw ConfigError("kclpp spoold takes no positional arguments ('" + args.positional().front() + "')");
  (void)apply_log_to_option(args);

  pipeline::SpoolDaemonOptions options;
  options.endpoint = args.get_or("endpoint", "");
  options.client.endpoint = args.get_or("kinesis-endpoint", "");
  options.client.region = args.get_or("region", "");
  options.client.profile.profile = args.get_or("profile", "");
  options.max_buffered_bytes = static_cast<std::size_t>(*args.get_int("max-buffer-mb", 1, 1'048'576)) << 20;
  options.flush_interval = std::chrono::milliseconds(*args.get_int("flush-interval-ms", 1, 3'600'000));
  options.retry.max_attempts = static_cast<int>(*args.get_int("attempts", 1, 100));
  options.receive_high_water_mark = static_cast<int>(*args.get_int("receive-hwm", 1, 10'000'000));
  const OpsConfig ops_options = ops_config(args);
  auto metrics = std::make_shared<MetricsRegistry>();
  options.metrics = metrics;

  pipeline::TritonConfig config = pipeline::TritonConfig::load(args.get_or("config", ""));
  // SIGTERM and SIGINT blocked for the command's lifetime, so that every thread started
  // meanwhile (ZeroMQ's, the daemon's sender) inherits the mask and only the waiter below
  // takes them. tritond flushes on both (docs/triton.md §7); so do we.
  SignalBlock signals{SIGTERM, SIGINT};
  pipeline::SpoolDaemon daemon(std::move(config), std::move(options));
  // After the signal block (its threads inherit the mask). No health function: the
  // daemon is healthy while it serves.
  const Ops ops(ops_options, metrics, nullptr);
  std::jthread waiter([&daemon, &signals](const std::stop_token& stop) {
    const timespec tick{0, 100'000'000};
    while (!stop.stop_requested()) {
      const int sig = ::sigtimedwait(&signals.set(), nullptr, &tick);
      if (sig == SIGTERM || sig == SIGINT) {
        // Keeps taking signals until run() returned: a second SIGTERM during the final
        // flush must not kill the flush.
        log_info("spoold: ", sig == SIGTERM ? "SIGTERM" : "SIGINT", ": flushing and stopping");
        daemon.request_stop();
      }
    }
  });
  daemon.run();
  // The waiter is stopped and joined here (jthread), before the signal mask is restored.
  return 0;
}

}  // namespace kclpp::app::detail
