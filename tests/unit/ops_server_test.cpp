// The operations endpoint (cli/src/ops_server.cpp) in-process on loopback, asked with the
// curl tool as a supervisor's probe would: /metrics in the Prometheus content type,
// /healthz and /readyz from the caller's health function (200 "ok", 503 with one problem
// per line), listen addresses and their errors, a port in use; the daemon's metricsListen
// and statsdAddress keys.
#include "ops_server.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "daemon.hpp"
#include "kclpp/processor/error.hpp"
#include "properties.hpp"

namespace {

using kclpp::ConfigError;
using kclpp::MetricsRegistry;
using kclpp::app::detail::ListenAddress;
using kclpp::app::detail::OpsServer;
using kclpp::app::detail::parse_listen_address;

struct Reply {
  int status = 0;
  std::string headers;
  std::string body;
};

// GET with the curl tool: status, headers and body. status 0 when curl could not connect.
Reply curl_get(const std::string& url) {
  const std::string command = "curl -s -S --max-time 5 -D - " + url + " 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  std::string raw;
  char buf[4096];
  for (std::size_t n; pipe && (n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0;) raw.append(buf, n);
  Reply reply;
  const auto split = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/", 0) != 0 || split == std::string::npos) return reply;
  reply.status = std::stoi(raw.substr(raw.find(' ') + 1, 3));
  reply.headers = raw.substr(0, split);
  reply.body = raw.substr(split + 4);
  return reply;
}

TEST(OpsServer, ServesMetricsAndTheHealthTheCallerReports) {
  auto registry = std::make_shared<MetricsRegistry>();
  registry->counter("kclpp_records_processed_total", "records", {{"shard", "shardId-000000000001"}}).add(42);
  std::atomic<bool> ready{false};
  OpsServer server(ListenAddress{"127.0.0.1", 0}, registry, [&] {
    kclpp::native::WorkerHealth health;
    health.alive = true;
    health.ready = ready.load();
    if (!health.ready) {
      health.problems = {"shardId-000000000001: process_records running for 95 s",
                         "shardId-000000000002: no progress for 120 s while 5000 ms behind"};
    }
    return health;
  });
  const std::string base = "http://" + server.address();
  ASSERT_EQ(server.address().rfind("127.0.0.1:", 0), 0u) << server.address();

  const Reply metrics = curl_get(base + "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << metrics.headers;
  EXPECT_NE(metrics.body.find("kclpp_records_processed_total{shard=\"shardId-000000000001\"} 42\n"),
            std::string::npos)
      << metrics.body;

  const Reply healthz = curl_get(base + "/healthz");
  EXPECT_EQ(healthz.status, 200);
  EXPECT_EQ(healthz.body, "ok\n");
  const Reply not_ready = curl_get(base + "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body,
            "shardId-000000000001: process_records running for 95 s\n"
            "shardId-000000000002: no progress for 120 s while 5000 ms behind\n");
  ready = true;
  const Reply now_ready = curl_get(base + "/readyz");
  EXPECT_EQ(now_ready.status, 200);
  EXPECT_EQ(now_ready.body, "ok\n");
  EXPECT_EQ(curl_get(base + "/nothing").status, 404);

  // Updates after the server started show on the next scrape.
  registry->counter("kclpp_records_processed_total", "records", {{"shard", "shardId-000000000001"}}).add(8);
  EXPECT_NE(curl_get(base + "/metrics").body.find("shardId-000000000001\"} 50\n"), std::string::npos);
}

TEST(OpsServer, WithoutAHealthFunctionItIsHealthyWhileItServesAndStopsWhenDestroyed) {
  std::string address;
  {
    OpsServer server(ListenAddress{"127.0.0.1", 0}, std::make_shared<MetricsRegistry>(), nullptr);
    address = server.address();
    EXPECT_EQ(curl_get("http://" + address + "/healthz").status, 200);
    EXPECT_EQ(curl_get("http://" + address + "/readyz").body, "ok\n");
  }
  // The destructor stopped and joined the server: nothing listens any more.
  EXPECT_EQ(curl_get("http://" + address + "/healthz").status, 0);
}

TEST(OpsServer, AnAddressThatCannotBeBoundIsAConfigErrorNamingIt) {
  OpsServer first(ListenAddress{"127.0.0.1", 0}, std::make_shared<MetricsRegistry>(), nullptr);
  const ListenAddress taken = parse_listen_address(first.address(), "--metrics-listen");
  try {
    OpsServer second(taken, std::make_shared<MetricsRegistry>(), nullptr);
    FAIL() << "a second server bound " << first.address();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(first.address()), std::string::npos) << e.what();
  }
  // An address of no interface of this host (TEST-NET-3).
  try {
    OpsServer elsewhere(ListenAddress{"203.0.113.7", 9102}, std::make_shared<MetricsRegistry>(), nullptr);
    FAIL() << "bound 203.0.113.7";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("203.0.113.7:9102"), std::string::npos) << e.what();
  }
}

TEST(OpsServer, ListenAddressesAndTheirErrors) {
  const ListenAddress bare = parse_listen_address("9102", "--metrics-listen");
  EXPECT_EQ(bare.host, "127.0.0.1");  // a bare port is loopback, never every interface
  EXPECT_EQ(bare.port, 9102);
  const ListenAddress all = parse_listen_address("0.0.0.0:9102", "--metrics-listen");
  EXPECT_EQ(all.host, "0.0.0.0");
  const ListenAddress v6 = parse_listen_address("[::1]:9102", "--metrics-listen");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 9102);
  EXPECT_EQ(parse_listen_address("localhost:0", "x").port, 0);
  for (const char* bad : {"", "foo", "127.0.0.1:", ":9102", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9102",
                          "[::1]9102", "[::1", "127.0.0.1:91o2"}) {
    try {
      (void)parse_listen_address(bad, "--metrics-listen");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--metrics-listen: '" + std::string(bad) + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(OpsServer, DaemonKeysMetricsListenAndStatsdAddress) {
  using kclpp::app::detail::daemon_config;
  using kclpp::app::detail::parse_properties;
  const std::string base = "executableName = ./child\nstreamName = s\napplicationName = app\n";
  const auto config = daemon_config(
      parse_properties(base + "metricsListen = 9102\nstatsdAddress = 127.0.0.1:8125\n", "app.properties"),
      "app.properties");
  EXPECT_EQ(config.ops.metrics_listen, "9102");
  EXPECT_EQ(config.ops.statsd, "127.0.0.1:8125");
  EXPECT_TRUE(config.ignored_keys.empty());
  try {
    (void)daemon_config(parse_properties(base + "metricsListen = 127.0.0.1\n", "app.properties"), "app.properties");
    FAIL() << "accepted a listen address without a port";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("app.properties:4: metricsListen = '127.0.0.1'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
