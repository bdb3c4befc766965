#pragma once
// The operations endpoint of every long-running kclpp command (native worker, `kclpp
// daemon`, `kclpp store`, `kclpp spoold`): GET /metrics (Prometheus text 0.0.4), /healthz
// and /readyz (docs/operations.md §1, §2), served by cpp-httplib on its own thread; and the
// statsd push of the same registry. httplib.h stays inside ops_server.cpp.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/metrics.hpp"
#include "kclpp/processor/statsd.hpp"

namespace kclpp::app::detail {

// Where to listen: "HOST:PORT", "[IPV6]:PORT", or a bare "PORT" (127.0.0.1:PORT). A
// non-loopback host is served as given: exposing the endpoint is the user's explicit choice.
struct ListenAddress {
  std::string host;
  int port = 0;  // 0: any free port (tests)
};
// ConfigError naming `what` (e.g. "--metrics-listen") and the text when it is not one.
[[nodiscard]] ListenAddress parse_listen_address(const std::string& text, const std::string& what);

// /healthz and /readyz ask this on every request (from the server's thread): it must be
// thread-safe and quick. The native worker's is Worker::health().
using HealthFunction = std::function<native::WorkerHealth()>;

// One listening socket and one thread, both owned: the destructor stops the server and joins
// the thread (no detached threads). Requests run on that thread one at a time, which is
// plenty for a scraper and a supervisor's probes. Thread-safe: the registry and `health` are.
class OpsServer {
 public:
  // Binds now: ConfigError naming the address when it cannot (in use, not an address of this
  // host, a name that does not resolve). `health` null: /healthz and /readyz answer 200 while
  // the server runs (a command with nothing more to say, such as spoold).
  OpsServer(const ListenAddress& address, std::shared_ptr<const MetricsRegistry> registry, HealthFunction health);
  ~OpsServer();
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  // "HOST:PORT" actually bound (the port chosen when 0 was asked for).
  [[nodiscard]] std::string address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// --metrics-listen ADDR:PORT, --statsd HOST:PORT, --statsd-prefix, --statsd-interval-ms.
// AlreadyDeclared: the command declares --statsd and --statsd-prefix itself (`kclpp store`).
enum class StatsdOptions { Declare, AlreadyDeclared };
void add_ops_options(Args& args, const std::string& default_statsd_prefix,
                     StatsdOptions statsd = StatsdOptions::Declare);

// What the ops options ask for. `metrics_listen` and `statsd` empty: off.
struct OpsConfig {
  std::string metrics_listen;
  std::string statsd;
  std::string statsd_prefix = "kclpp";
  std::chrono::milliseconds statsd_interval{10'000};
};
// From the options of add_ops_options; ConfigError for a bad --metrics-listen (checked now,
// so that a typo fails before any stream is touched) or interval.
[[nodiscard]] OpsConfig ops_config(const Args& args);

// The endpoint and the statsd push of one command, for as long as it runs: each optional
// (off when its option is empty). Declare it after the worker whose health it asks, so that
// it stops serving before the worker goes; the registry is shared, so the final statsd push
// in its destructor still sees the last counts. Move-only; not thread-safe itself (what it
// owns is).
class Ops {
 public:
  Ops() = default;
  Ops(const OpsConfig& config, std::shared_ptr<MetricsRegistry> registry, HealthFunction health,
      StatsdPublisherOptions statsd_options = {});
  Ops(Ops&&) = default;
  Ops& operator=(Ops&&) = default;

  [[nodiscard]] const OpsServer* server() const noexcept { return server_.get(); }

 private:
  std::unique_ptr<OpsServer> server_;
  std::unique_ptr<StatsdPublisher> publisher_;
};

}  // namespace kclpp::app::detail
