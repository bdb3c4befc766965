#pragma once
// statsd over UDP (fire and forget): the one statsd client of kclpp (`kclpp store`'s own
// metrics, and the metrics registry pushed by StatsdPublisher from every mode;
// docs/operations.md §1). Off when no address is configured.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "kclpp/processor/metrics.hpp"

namespace kclpp {

// Thread-safe: one connected UDP socket, one send() per metric (never blocks: MSG_DONTWAIT;
// a full socket buffer or nobody listening drops the metric). A default-constructed,
// moved-from or empty-address client does nothing. Names are used as given except that
// characters outside [A-Za-z0-9_.-] become '_' (build parts with metric_name_part). A
// negative gauge goes out as "NAME:0|g\nNAME:-V|g" (statsd reads a signed gauge as a
// change); NaN and infinite gauges are not sent.
class Statsd {
 public:
  Statsd() = default;
  // `address` "HOST:PORT" or "[IPV6]:PORT" (a literal or a name resolved once, here); ""
  // turns metrics off. `prefix` is put in front of every name with a '.', unless empty.
  // Throws ConfigError naming the address when it is malformed, does not resolve, or no
  // socket can be made for it (not retryable).
  Statsd(const std::string& address, std::string prefix);
  ~Statsd();
  Statsd(Statsd&&) noexcept;
  Statsd& operator=(Statsd&&) noexcept;

  [[nodiscard]] bool enabled() const noexcept { return fd_ >= 0; }
  void count(std::string_view name, std::int64_t value = 1) const noexcept;       // NAME:V|c
  void gauge(std::string_view name, double value) const noexcept;                 // NAME:V|g
  void timing(std::string_view name, std::chrono::milliseconds ms) const noexcept;  // NAME:V|ms

 private:
  void send(std::string_view name, std::string_view value_and_type) const noexcept;
  int fd_ = -1;
  std::string prefix_;
};

// statsd / Graphite names: every character other than [A-Za-z0-9_-] becomes '_'.
[[nodiscard]] std::string metric_name_part(std::string_view text);

// The statsd name of one registry series: its name without the leading "kclpp_" (the
// client's prefix says kclpp already), then each label value as a further part:
// kclpp_records_processed_total{shard="shardId-0"} -> "records_processed_total.shardId-0".
[[nodiscard]] std::string statsd_series_name(std::string_view name, const MetricLabels& labels);

struct StatsdPublisherOptions {
  std::chrono::milliseconds interval{10'000};
  // Families pushed (by name); empty: all. `kclpp store` leaves out the kclpp_store_* ones,
  // which it sends itself under their historical names as they happen.
  std::function<bool(std::string_view name)> include;
};

// Pushes a registry through a Statsd client every interval, from a thread it owns (joined
// by the destructor, which pushes once more so that the last counts are not lost):
// counters as deltas since the last push (NAME:D|c, nothing when unchanged), gauges as
// values (NAME:V|g), histograms as two counters of deltas, NAME.count and NAME.sum_ms
// (the time observed, in whole milliseconds). A series removed from the registry is
// forgotten; if it comes back its counts start again from 0.
// Thread-safe: push_now() may be called from any thread.
class StatsdPublisher {
 public:
  // A disabled client (or a null registry) starts no thread and sends nothing.
  StatsdPublisher(std::shared_ptr<MetricsRegistry> registry, Statsd statsd, StatsdPublisherOptions options = {});
  ~StatsdPublisher();
  StatsdPublisher(const StatsdPublisher&) = delete;
  StatsdPublisher& operator=(const StatsdPublisher&) = delete;

  void push_now();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp
