// The metrics registry and its Prometheus text (docs/operations.md §1).
#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/metrics.hpp"

namespace kclpp {
namespace {

TEST(MetricsTest, CountersGaugesAndLabelsRenderAsPrometheusText) {
  MetricsRegistry registry;
  const auto a = registry.counter("kclpp_records_total", "Records handed to processors.", {{"shard", "s-1"}});
  const auto b = registry.counter("kclpp_records_total", "Records handed to processors.", {{"shard", "s\"2\\\n"}});
  a.add(3);
  b.add();
  // Asking again returns the same series.
  registry.counter("kclpp_records_total", "Records handed to processors.", {{"shard", "s-1"}}).add(2);
  registry.gauge("kclpp_leases_held", "Leases held.").set(-1.5);
  EXPECT_EQ(a.value(), 5u);
  EXPECT_EQ(registry.prometheus_text(),
            "# HELP kclpp_records_total Records handed to processors.\n"
            "# TYPE kclpp_records_total counter\n"
            "kclpp_records_total{shard=\"s-1\"} 5\n"
            "kclpp_records_total{shard=\"s\\\"2\\\\\\n\"} 1\n"
            "# HELP kclpp_leases_held Leases held.\n"
            "# TYPE kclpp_leases_held gauge\n"
            "kclpp_leases_held -1.5\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry registry;
  const std::array<double, 2> bounds{0.1, 1.0};
  const auto h = registry.histogram("kclpp_call_seconds", "Call time.", {{"shard", "a"}}, bounds);
  h.observe(0.05);
  h.observe(0.1);  // on a bound: in that bucket (le = less or equal)
  h.observe(std::chrono::milliseconds(500));
  h.observe(7.0);
  EXPECT_EQ(registry.prometheus_text(),
            "# HELP kclpp_call_seconds Call time.\n"
            "# TYPE kclpp_call_seconds histogram\n"
            "kclpp_call_seconds_bucket{shard=\"a\",le=\"0.1\"} 2\n"
            "kclpp_call_seconds_bucket{shard=\"a\",le=\"1\"} 3\n"
            "kclpp_call_seconds_bucket{shard=\"a\",le=\"+Inf\"} 4\n"
            "kclpp_call_seconds_sum{shard=\"a\"} 7.65\n"
            "kclpp_call_seconds_count{shard=\"a\"} 4\n");
}

TEST(MetricsTest, RemoveDropsASeriesButHandlesStayUsable) {
  MetricsRegistry registry;
  const auto kept = registry.counter("c_total", "c", {{"shard", "kept"}});
  const auto gone = registry.counter("c_total", "c", {{"shard", "gone"}});
  double age = 12.0;
  registry.gauge_function("age_seconds", "age", {{"shard", "gone"}}, [&] { return age; });
  EXPECT_NE(registry.prometheus_text().find("age_seconds{shard=\"gone\"} 12"), std::string::npos);
  registry.remove("shard", "gone");
  gone.add();  // no crash, not exported
  kept.add();
  const auto text = registry.prometheus_text();
  EXPECT_EQ(text.find("gone"), std::string::npos) << text;
  EXPECT_NE(text.find("c_total{shard=\"kept\"} 1"), std::string::npos) << text;
}

TEST(MetricsTest, MisuseIsAConfigErrorNamingTheMetric) {
  MetricsRegistry registry;
  registry.counter("x_total", "x");
  try {
    registry.gauge("x_total", "x");
    FAIL() << "a second type for one name must throw";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x_total"), std::string::npos);
  }
  EXPECT_THROW(registry.counter("1bad", "x"), ConfigError);
  EXPECT_THROW(registry.counter("ok_total", "x", {{"le", "1"}}), ConfigError);
  EXPECT_THROW(registry.counter("ok_total", "x", {{"bad-label", "1"}}), ConfigError);
  const std::array<double, 2> unsorted{1.0, 0.5};
  EXPECT_THROW(registry.histogram("h_seconds", "h", {}, unsorted), ConfigError);
  // Default handles do nothing.
  Counter{}.add();
  Gauge{}.set(1);
  Histogram{}.observe(1.0);
  EXPECT_EQ(Counter{}.value(), 0u);
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  const auto c = registry.counter("n_total", "n");
  const auto h = registry.histogram("d_seconds", "d");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        c.add();
        h.observe(0.002);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40'000u);
  EXPECT_NE(registry.prometheus_text().find("d_seconds_count 40000\n"), std::string::npos);
}

}  // namespace
}  // namespace kclpp
