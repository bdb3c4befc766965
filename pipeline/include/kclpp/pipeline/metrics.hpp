#pragma once
// statsd metrics over UDP (fire and forget), as the Kinesis Keeper design asks for:
// counters, gauges and timings with a common prefix. Off when no address is configured.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kclpp::pipeline {

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

}  // namespace kclpp::pipeline
