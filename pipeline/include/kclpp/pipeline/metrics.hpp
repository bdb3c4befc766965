#pragma once
// statsd metrics over UDP (fire and forget), as the Kinesis Keeper design asks for:
// counters, gauges and timings with a common prefix. Off when no address is configured.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kclpp::pipeline {

// Thread-safe: one socket, sendto() per metric (never blocks: MSG_DONTWAIT; a full socket
// buffer drops the metric). A default-constructed or empty-address client does nothing.
class Statsd {
 public:
  Statsd() = default;
  // `address` "HOST:PORT" (IPv4 literal or a name resolved once, here). `prefix` is put
  // in front of every name with a '.', unless empty. Throws ConfigError naming the
  // address when it is malformed or does not resolve.
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
