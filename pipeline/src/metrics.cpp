#include "kclpp/pipeline/metrics.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

bool name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// A full metric name: parts as metric_name_part keeps them, joined by '.'. Anything else
// (':' '|' '@' and newlines would break the statsd line format) becomes '_'.
void append_name(std::string& out, std::string_view name) {
  for (const char c : name) out.push_back(name_char(c) || c == '.' ? c : '_');
}

struct AddrInfoFree {
  void operator()(addrinfo* ai) const noexcept { ::freeaddrinfo(ai); }
};

// "HOST:PORT" or "[IPV6]:PORT" -> host, port. ConfigError naming the address otherwise.
std::pair<std::string, std::string> split_address(const std::string& address) {
  const auto bad = [&](const std::string& why) {
    return ConfigError("statsd address '" + address + "': " + why + " (expected HOST:PORT)");
  };
  std::string host;
  std::string port;
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      throw bad("unterminated [IPv6] host or no port");
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) throw bad("no port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string::npos) throw bad("an IPv6 host needs brackets");
  }
  if (host.empty()) throw bad("no host");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    throw bad("port '" + port + "' is not a number in 1-65535");
  }
  return {host, port};
}

}  // namespace

std::string metric_name_part(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) out.push_back(name_char(c) ? c : '_');
  return out;
}

Statsd::Statsd(const std::string& address, std::string prefix) {
  if (address.empty()) return;  // metrics off
  const auto [host, port] = split_address(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &raw);
  const std::unique_ptr<addrinfo, AddrInfoFree> found(raw);
  if (rc != 0 || raw == nullptr) {
    throw ConfigError("statsd address '" + address + "': cannot resolve '" + host +
                      "': " + ::gai_strerror(rc));
  }
  // Connected, so that each metric is one send() and the address is resolved only here.
  for (const addrinfo* ai = raw; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      fd_ = fd;
      break;
    }
    ::close(fd);
  }
  if (fd_ < 0) {
    throw ConfigError("statsd address '" + address + "': cannot open a UDP socket to it: " +
                      std::strerror(errno));
  }
  if (!prefix.empty()) {
    append_name(prefix_, prefix);
    prefix_.push_back('.');
  }
}

Statsd::~Statsd() {
  if (fd_ >= 0) ::close(fd_);
}

Statsd::Statsd(Statsd&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), prefix_(std::move(other.prefix_)) {}

Statsd& Statsd::operator=(Statsd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    prefix_ = std::move(other.prefix_);
  }
  return *this;
}

void Statsd::count(std::string_view name, std::int64_t value) const noexcept {
  if (fd_ < 0) return;
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
  std::string v(buf, end);
  v += "|c";
  send(name, v);
}

void Statsd::gauge(std::string_view name, double value) const noexcept {
  if (fd_ < 0 || !std::isfinite(value)) return;  // statsd cannot parse nan/inf
  char buf[64];
  // Shortest text that reads back as the same double.
  const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
  std::string v(buf, end);
  v += "|g";
  send(name, v);
}

void Statsd::timing(std::string_view name, std::chrono::milliseconds ms) const noexcept {
  if (fd_ < 0) return;
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, ms.count()).ptr;
  std::string v(buf, end);
  v += "|ms";
  send(name, v);
}

void Statsd::send(std::string_view name, std::string_view value_and_type) const noexcept {
  try {
    std::string line;
    line.reserve(prefix_.size() + name.size() + value_and_type.size() + 8);
    // A gauge with a sign is a change, not a value, in statsd: a negative gauge is sent as
    // "reset to 0, then add the negative value", two lines in one datagram.
    if (value_and_type.size() > 2 && value_and_type.front() == '-' &&
        value_and_type.substr(value_and_type.size() - 2) == "|g") {
      line += prefix_;
      append_name(line, name);
      line += ":0|g\n";
    }
    line += prefix_;
    append_name(line, name);
    line.push_back(':');
    line += value_and_type;
    // Fire and forget: a full buffer (EAGAIN) or nobody listening (ECONNREFUSED from an
    // earlier ICMP) loses this metric, never the caller's time.
    (void)!::send(fd_, line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  } catch (...) {
    // bad_alloc: a metric is not worth failing for.
  }
}

}  // namespace kclpp::pipeline
