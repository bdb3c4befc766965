#pragma once
// Metrics, one layer for every mode (native worker, kclpp daemon, store, spoold): a
// registry of counters, gauges and histograms with labels, read by the exporters
// (Prometheus text on the operations endpoint, statsd). docs/operations.md §1 lists them.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kclpp {

// Label pairs of one series, e.g. {{"shard", "shardId-000000000001"}}. Order is kept.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { Counter, Gauge, Histogram };

namespace detail {
struct MetricCell;  // one series' storage (metrics.cpp)
}  // namespace detail

// Handles to one series. Cheap to copy; every operation is lock-free and thread-safe.
// A default-constructed handle does nothing, so instrumented code needs no null checks.
// A handle keeps its series' storage alive even after MetricsRegistry::remove().
class Counter {
 public:
  Counter() = default;
  void add(std::uint64_t n = 1) const noexcept;
  [[nodiscard]] std::uint64_t value() const noexcept;

 private:
  friend class MetricsRegistry;
  explicit Counter(std::shared_ptr<detail::MetricCell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<detail::MetricCell> cell_;
};

class Gauge {
 public:
  Gauge() = default;
  void set(double value) const noexcept;
  void add(double delta) const noexcept;
  [[nodiscard]] double value() const noexcept;

 private:
  friend class MetricsRegistry;
  explicit Gauge(std::shared_ptr<detail::MetricCell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<detail::MetricCell> cell_;
};

// Observations in seconds (Prometheus convention), counted in fixed buckets.
class Histogram {
 public:
  Histogram() = default;
  void observe(double seconds) const noexcept;
  void observe(std::chrono::steady_clock::duration d) const noexcept;

 private:
  friend class MetricsRegistry;
  explicit Histogram(std::shared_ptr<detail::MetricCell> cell) : cell_(std::move(cell)) {}
  std::shared_ptr<detail::MetricCell> cell_;
};

// One series as the exporters see it (MetricsRegistry::visit).
struct MetricSample {
  std::string_view name;  // e.g. "kclpp_records_processed_total"
  std::string_view help;
  MetricType type;
  const MetricLabels& labels;
  double value;  // counter / gauge value; a histogram's sum
  // Histograms only: upper bounds and cumulative counts (the +Inf bucket last = count).
  std::span<const double> bucket_bounds;
  std::span<const std::uint64_t> bucket_counts;
};

// Default histogram buckets for call durations: 1 ms .. 60 s.
[[nodiscard]] std::span<const double> default_duration_buckets() noexcept;

// The registry. Thread-safe: registration and removal take a mutex; updates through the
// handles do not. Asking again for a name + labels returns the same series. A name is one
// metric family: registering it with another type or help text is a ConfigError (a
// programming error). Names follow Prometheus ([a-zA-Z_:][a-zA-Z0-9_:]*); label values
// may be any UTF-8 and are escaped on output.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter counter(std::string_view name, std::string_view help, MetricLabels labels = {});
  Gauge gauge(std::string_view name, std::string_view help, MetricLabels labels = {});
  Histogram histogram(std::string_view name, std::string_view help, MetricLabels labels = {},
                      std::span<const double> buckets = default_duration_buckets());
  // A gauge computed when read (e.g. the age of the last checkpoint). `read` is called
  // under the registry's mutex, from the exporter's thread: it must be thread-safe, quick,
  // and must not touch the registry.
  void gauge_function(std::string_view name, std::string_view help, MetricLabels labels,
                      std::function<double()> read);

  // Drops every series whose labels contain `label` = `value` (a shard whose lease went
  // elsewhere stops being reported). Handles still held keep working but are not exported.
  void remove(std::string_view label, std::string_view value);

  // Calls `fn` once per series, families in registration order, under the mutex.
  void visit(const std::function<void(const MetricSample&)>& fn) const;

  // The Prometheus text exposition format (version 0.0.4): HELP and TYPE once per family.
  [[nodiscard]] std::string prometheus_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp
