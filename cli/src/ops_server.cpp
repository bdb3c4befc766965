#include "ops_server.hpp"

#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <thread>
#include <utility>

#include <httplib.h>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail {
namespace {

constexpr const char* prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

// Runs each connection on the listening thread itself: the server then owns exactly one
// thread (httplib's default pool starts several), and with one request per connection
// (keep-alive off) a scraper cannot hold it for long.
class InlineTaskQueue final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// 200 "ok\n", or 503 with one problem per line.
void answer(httplib::Response& response, bool good, const std::vector<std::string>& problems,
            const char* fallback_problem) {
  std::string body;
  if (good) {
    body = "ok\n";
  } else if (problems.empty()) {
    body = std::string(fallback_problem) + "\n";
  } else {
    for (const auto& problem : problems) body += problem + "\n";
  }
  response.status = good ? 200 : 503;
  response.set_content(body, "text/plain; charset=utf-8");
}

}  // namespace

ListenAddress parse_listen_address(const std::string& text, const std::string& what) {
  const auto bad = [&](const std::string& why) {
    return ConfigError(what + ": '" + text + "' " + why + " (expected PORT, HOST:PORT or [IPV6]:PORT)");
  };
  ListenAddress address;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw bad("has an unterminated [IPv6] host or no port");
    address.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const auto colon = text.rfind(':'); colon != std::string::npos) {
    address.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (address.host.find(':') != std::string::npos) throw bad("has an IPv6 host without brackets");
  } else {
    address.host = "127.0.0.1";  // a bare port: loopback, never every interface by accident
    port = text;
  }
  if (address.host.empty()) throw bad("has no host");
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || address.port < 0 ||
      address.port > 65535)
    throw bad("has no port in 0-65535");
  return address;
}

struct OpsServer::Impl {
  httplib::Server server;
  std::string address;
  std::atomic<bool> listen_returned{false};
  std::thread thread;  // last: started once everything else exists
};

OpsServer::OpsServer(const ListenAddress& address, std::shared_ptr<const MetricsRegistry> registry,
                     HealthFunction health)
    : impl_(std::make_unique<Impl>()) {
  httplib::Server& server = impl_->server;
  // httplib takes ownership of the queue it is given as a raw pointer (its API).
  server.new_task_queue = [] { return new InlineTaskQueue; };
  // httplib's default sets SO_REUSEPORT, with which a second process binds the same port
  // without an error and the kernel splits the scrapes between the two. SO_REUSEADDR alone
  // still lets a restart bind at once past the old socket's TIME_WAIT.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.set_keep_alive_max_count(1);
  server.set_read_timeout(2, 0);
  server.set_write_timeout(5, 0);
  server.Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry ? registry->prometheus_text() : std::string(), prometheus_content_type);
  });
  server.Get("/healthz", [health](const httplib::Request&, httplib::Response& response) {
    if (!health) return answer(response, true, {}, "");
    const native::WorkerHealth h = health();
    answer(response, h.alive, h.problems, "the worker loop is not running");
  });
  server.Get("/readyz", [health](const httplib::Request&, httplib::Response& response) {
    if (!health) return answer(response, true, {}, "");
    const native::WorkerHealth h = health();
    answer(response, h.ready, h.problems, "not ready");
  });
  // [::1] in a URL, ::1 to bind.
  const std::string shown = address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host;
  int port = address.port;
  if (port == 0) {
    port = server.bind_to_any_port(address.host);
  } else if (!server.bind_to_port(address.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    throw ConfigError("operations endpoint: cannot listen on " + shown + ":" + std::to_string(address.port) +
                      " (port in use, or not an address of this host)");
  }
  impl_->address = shown + ":" + std::to_string(port);
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->server.listen_after_bind();
    impl->listen_returned = true;
  });
  // httplib's stop() does nothing until the listening loop has started (is_running): a
  // server destroyed right after it was made would otherwise wait forever in join().
  while (!impl_->server.is_running() && !impl_->listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log_info("operations endpoint: http://", impl_->address, "/metrics, /healthz, /readyz");
}

OpsServer::~OpsServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string OpsServer::address() const { return impl_->address; }

void add_ops_options(Args& args, const std::string& default_statsd_prefix, StatsdOptions statsd) {
  args.option("metrics-listen", "ADDR:PORT",
              "serve /metrics (Prometheus), /healthz and /readyz on this address; a bare PORT means "
              "127.0.0.1:PORT (default: off)");
  if (statsd == StatsdOptions::Declare) {
    args.option("statsd", "HOST:PORT", "push the metrics to statsd over UDP (default: off)")
        .option("statsd-prefix", "PREFIX", "prefix of every statsd name", default_statsd_prefix);
  }
  args.option("statsd-interval-ms", "MS", "how often the metrics are pushed to statsd", "10000");
}

OpsConfig ops_config(const Args& args) {
  OpsConfig config;
  config.metrics_listen = args.get_or("metrics-listen", "");
  if (!config.metrics_listen.empty()) (void)parse_listen_address(config.metrics_listen, "--metrics-listen");
  config.statsd = args.get_or("statsd", "");
  config.statsd_prefix = args.get_or("statsd-prefix", "kclpp");
  config.statsd_interval = std::chrono::milliseconds(*args.get_int("statsd-interval-ms", 100, 86'400'000));
  return config;
}

Ops::Ops(const OpsConfig& config, std::shared_ptr<MetricsRegistry> registry, HealthFunction health,
         StatsdPublisherOptions statsd_options) {
  if (!config.statsd.empty()) {
    statsd_options.interval = config.statsd_interval;
    publisher_ = std::make_unique<StatsdPublisher>(registry, Statsd(config.statsd, config.statsd_prefix),
                                                   std::move(statsd_options));
  }
  if (!config.metrics_listen.empty()) {
    server_ = std::make_unique<OpsServer>(parse_listen_address(config.metrics_listen, "--metrics-listen"),
                                          std::move(registry), std::move(health));
  }
}

}  // namespace kclpp::app::detail
