// statsd client: the exact lines a statsd server on 127.0.0.1 receives, name sanitising,
// the disabled client, and address errors; the registry pushed through it (StatsdPublisher:
// counters as deltas, gauges as values, histograms as count and sum counters).

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../udp_server.hpp"
#include "kclpp/pipeline/metrics.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/metrics.hpp"

namespace kclpp::pipeline {
namespace {

using namespace std::chrono_literals;

using kclpp::test::UdpServer;

TEST(Statsd, SendsExactStatsdLines) {
  UdpServer server;
  const Statsd statsd(server.address(), "kclpp.store");
  ASSERT_TRUE(statsd.enabled());
  statsd.count("records");
  EXPECT_EQ(server.receive(), "kclpp.store.records:1|c");
  statsd.count("bytes", 123456789012);
  EXPECT_EQ(server.receive(), "kclpp.store.bytes:123456789012|c");
  statsd.count("dropped", -3);
  EXPECT_EQ(server.receive(), "kclpp.store.dropped:-3|c");
  statsd.gauge("lag_ms", 1500);
  EXPECT_EQ(server.receive(), "kclpp.store.lag_ms:1500|g");
  statsd.gauge("ratio", 0.25);
  EXPECT_EQ(server.receive(), "kclpp.store.ratio:0.25|g");
  statsd.timing("upload", 42ms);
  EXPECT_EQ(server.receive(), "kclpp.store.upload:42|ms");
}

TEST(Statsd, NegativeGaugeIsSentAsResetThenDelta) {
  UdpServer server;
  const Statsd statsd(server.address(), "p");
  statsd.gauge("g", -2.5);
  // statsd reads a signed gauge as a change: 0 first makes the result -2.5.
  EXPECT_EQ(server.receive(), "p.g:0|g\np.g:-2.5|g");
}

TEST(Statsd, NoPrefixAndNonFiniteGaugesAreDropped) {
  UdpServer server;
  const Statsd statsd(server.address(), "");
  statsd.gauge("bad", std::numeric_limits<double>::quiet_NaN());
  statsd.gauge("bad", std::numeric_limits<double>::infinity());
  statsd.count("plain", 2);
  EXPECT_EQ(server.receive(), "plain:2|c");  // the NaN and Inf never went out
}

TEST(Statsd, NamesAreSanitised) {
  EXPECT_EQ(metric_name_part("user_events-v3"), "user_events-v3");
  EXPECT_EQ(metric_name_part("user events/v3:x|y.z\n"), "user_events_v3_x_y_z_");
  EXPECT_EQ(metric_name_part(""), "");
  EXPECT_EQ(metric_name_part("caf\xc3\xa9"), "caf__");

  UdpServer server;
  const Statsd statsd(server.address(), "my app:1");
  // Dots separate parts; characters that would break the line format do not get through.
  statsd.count("records." + metric_name_part("shardId-000000000001") + ".in|x:y@z\nw");
  EXPECT_EQ(server.receive(), "my_app_1.records.shardId-000000000001.in_x_y_z_w:1|c");
}

TEST(Statsd, DisabledClientDoesNothing) {
  const Statsd off;
  EXPECT_FALSE(off.enabled());
  off.count("x");
  off.gauge("x", 1);
  off.timing("x", 1ms);
  const Statsd empty("", "prefix");
  EXPECT_FALSE(empty.enabled());
  empty.count("x");
}

TEST(Statsd, MovesKeepTheSocket) {
  UdpServer server;
  Statsd a(server.address(), "m");
  Statsd b(std::move(a));
  EXPECT_FALSE(a.enabled());  // NOLINT(bugprone-use-after-move): moved-from is disabled
  a.count("lost");            // a no-op, not a crash
  b.count("kept");
  EXPECT_EQ(server.receive(), "m.kept:1|c");
  Statsd c;
  c = std::move(b);
  c.timing("t", 5ms);
  EXPECT_EQ(server.receive(), "m.t:5|ms");
}

TEST(Statsd, NobodyListeningNeverBlocksOrThrows) {
  std::string address;
  {
    UdpServer gone;
    address = gone.address();
  }
  const Statsd statsd(address, "x");
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10'000; ++i) statsd.count("c", i);  // ECONNREFUSED after the first
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(Statsd, HostNamesResolve) {
  // localhost comes from /etc/hosts (no DNS); it may be ::1 or 127.0.0.1, so only the
  // resolution is checked here.
  EXPECT_TRUE(Statsd("localhost:8125", "h").enabled());
}

TEST(Statsd, MalformedAddressIsAConfigErrorNamingIt) {
  for (const std::string bad : {"127.0.0.1", "127.0.0.1:", ":8125", "127.0.0.1:0", "127.0.0.1:65536",
                                "127.0.0.1:81x", "::1:8125", "[::1", "[::1]8125"}) {
    try {
      const Statsd statsd(bad, "p");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(Statsd, BracketedIpv6IsAccepted) {
  try {
    EXPECT_TRUE(Statsd("[::1]:8125", "v6").enabled());
  } catch (const ConfigError& e) {
    // A machine without IPv6: the syntax was accepted, the socket could not be made.
    EXPECT_EQ(std::string(e.what()).find("expected HOST:PORT"), std::string::npos) << e.what();
  }
}

// Every line of the datagrams that arrive within `wait` of each other, sorted.
std::vector<std::string> receive_lines(UdpServer& server, std::chrono::milliseconds wait = 300ms) {
  std::vector<std::string> lines;
  for (std::string datagram = server.receive(2000ms); !datagram.empty(); datagram = server.receive(wait)) {
    for (std::size_t start = 0; start <= datagram.size();) {
      const std::size_t end = std::min(datagram.find('\n', start), datagram.size());
      lines.push_back(datagram.substr(start, end - start));
      start = end + 1;
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST(StatsdPublisher, PushesCountersAsDeltasGaugesAsValuesAndHistogramsAsCountAndSum) {
  EXPECT_EQ(statsd_series_name("kclpp_records_processed_total", {{"shard", "shardId-000000000001"}}),
            "records_processed_total.shardId-000000000001");
  EXPECT_EQ(statsd_series_name("other_total", {{"a", "x y"}, {"b", "z"}}), "other_total.x_y.z");

  UdpServer server;
  auto registry = std::make_shared<MetricsRegistry>();
  const Counter records = registry->counter("kclpp_records_processed_total", "r", {{"shard", "shardId-1"}});
  const Gauge behind = registry->gauge("kclpp_millis_behind_latest", "m", {{"shard", "shardId-1"}});
  const Histogram took = registry->histogram("kclpp_process_records_seconds", "h", {{"shard", "shardId-1"}});
  const Counter idle = registry->counter("kclpp_idle_total", "never moves");
  const Counter skipped = registry->counter("kclpp_store_records_total", "left out by the filter");
  StatsdPublisherOptions options;
  options.interval = std::chrono::hours(1);  // pushed by hand below, and at destruction
  options.include = [](std::string_view name) { return name.rfind("kclpp_store_", 0) != 0; };
  auto publisher = std::make_unique<StatsdPublisher>(registry, Statsd(server.address(), "kclpp"), options);

  records.add(30);
  behind.set(1500);
  took.observe(0.25);
  took.observe(0.5);
  skipped.add(7);
  publisher->push_now();
  EXPECT_EQ(receive_lines(server), (std::vector<std::string>{
                                       "kclpp.millis_behind_latest.shardId-1:1500|g",
                                       "kclpp.process_records_seconds.shardId-1.count:2|c",
                                       "kclpp.process_records_seconds.shardId-1.sum_ms:750|c",
                                       "kclpp.records_processed_total.shardId-1:30|c",
                                   }));
  // Only what changed since: 12 more records; the gauge again (a value, not a change).
  records.add(12);
  publisher->push_now();
  EXPECT_EQ(receive_lines(server), (std::vector<std::string>{
                                       "kclpp.millis_behind_latest.shardId-1:1500|g",
                                       "kclpp.records_processed_total.shardId-1:12|c",
                                   }));
  // A shard that went and came back starts from 0: all of its count is new.
  registry->remove("shard", "shardId-1");
  const Counter again = registry->counter("kclpp_records_processed_total", "r", {{"shard", "shardId-1"}});
  again.add(5);
  publisher->push_now();
  EXPECT_EQ(receive_lines(server), (std::vector<std::string>{"kclpp.records_processed_total.shardId-1:5|c"}));
  // The destructor pushes what came after the last push.
  again.add(3);
  publisher.reset();
  EXPECT_EQ(receive_lines(server), (std::vector<std::string>{"kclpp.records_processed_total.shardId-1:3|c"}));
  (void)idle;
}

TEST(StatsdPublisher, PushesOnItsOwnEveryInterval) {
  UdpServer server;
  auto registry = std::make_shared<MetricsRegistry>();
  const Counter c = registry->counter("kclpp_ticks_total", "t");
  StatsdPublisherOptions options;
  options.interval = 50ms;
  const StatsdPublisher publisher(registry, Statsd(server.address(), "p"), options);
  c.add(4);
  EXPECT_EQ(server.receive(2000ms), "p.ticks_total:4|c");
  c.add(1);
  EXPECT_EQ(server.receive(2000ms), "p.ticks_total:1|c");
  EXPECT_THROW(StatsdPublisher(registry, Statsd(server.address(), "p"), {0ms, {}}), ConfigError);
}

}  // namespace
}  // namespace kclpp::pipeline
