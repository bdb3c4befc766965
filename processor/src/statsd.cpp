#include "kclpp/processor/statsd.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/processor/error.hpp"

namespace kclpp {
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

std::string statsd_series_name(std::string_view name, const MetricLabels& labels) {
  constexpr std::string_view ours = "kclpp_";
  if (name.substr(0, ours.size()) == ours && name.size() > ours.size()) name.remove_prefix(ours.size());
  std::string out = metric_name_part(name);
  for (const auto& [label, value] : labels) {
    out.push_back('.');
    out += metric_name_part(value);
  }
  return out;
}

// The publisher keeps, per series, what it last sent, to send counters as deltas: statsd
// sums what it receives in a flush interval, so a running total would be counted again at
// every push.
struct StatsdPublisher::Impl {
  std::shared_ptr<MetricsRegistry> registry;
  Statsd statsd;
  StatsdPublisherOptions options;

  std::mutex push_mutex;  // one push at a time; guards `last`
  struct Last {
    std::uint64_t count = 0;  // a counter's value, a histogram's count
    double sum = 0;           // a histogram's sum (seconds)
    bool seen = false;        // in the current visit
  };
  std::map<std::string, Last> last;  // by statsd name

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop = false;  // guarded by stop_mutex
  std::thread thread;

  // What one visit found, sent after the registry's mutex is released (a send is a
  // syscall; exporters should not hold up the shards registering their series).
  struct Line {
    std::string name;
    MetricType type;
    double value;  // a gauge's value, a counter's delta, a histogram's count delta
    double sum_ms;  // a histogram's sum delta, in milliseconds
  };

  void push() {
    const std::lock_guard lock(push_mutex);
    std::vector<Line> lines;
    for (auto& [name, entry] : last) entry.seen = false;
    registry->visit([&](const MetricSample& sample) {
      if (options.include && !options.include(sample.name)) return;
      std::string name = statsd_series_name(sample.name, sample.labels);
      Last& entry = last[name];
      entry.seen = true;
      switch (sample.type) {
        case MetricType::Gauge:
          lines.push_back({std::move(name), sample.type, sample.value, 0});
          break;
        case MetricType::Counter: {
          const auto now = static_cast<std::uint64_t>(sample.value);
          // A counter below its last value was removed and registered again: all of it is new.
          const std::uint64_t delta = now >= entry.count ? now - entry.count : now;
          entry.count = now;
          if (delta != 0) lines.push_back({std::move(name), sample.type, static_cast<double>(delta), 0});
          break;
        }
        case MetricType::Histogram: {
          const std::uint64_t now = sample.bucket_counts.empty() ? 0 : sample.bucket_counts.back();
          const bool reset = now < entry.count;
          const std::uint64_t delta = reset ? now : now - entry.count;
          const double sum_delta = reset ? sample.value : sample.value - entry.sum;
          entry.count = now;
          entry.sum = sample.value;
          if (delta != 0) lines.push_back({std::move(name), sample.type, static_cast<double>(delta), sum_delta * 1000});
          break;
        }
      }
    });
    std::erase_if(last, [](const auto& item) { return !item.second.seen; });
    for (const Line& line : lines) send(line);
  }

  void send(const Line& line) const {
    switch (line.type) {
      case MetricType::Gauge:
        statsd.gauge(line.name, line.value);
        break;
      case MetricType::Counter:
        statsd.count(line.name, static_cast<std::int64_t>(line.value));
        break;
      case MetricType::Histogram:
        statsd.count(line.name + ".count", static_cast<std::int64_t>(line.value));
        statsd.count(line.name + ".sum_ms", std::llround(line.sum_ms));
        break;
    }
  }

  void run() noexcept {
    std::unique_lock lock(stop_mutex);
    while (!stop_cv.wait_for(lock, options.interval, [&] { return stop; })) {
      lock.unlock();
      try {
        push();
      } catch (...) {
        // bad_alloc: this push is lost, the next one carries the deltas.
      }
      lock.lock();
    }
  }
};

StatsdPublisher::StatsdPublisher(std::shared_ptr<MetricsRegistry> registry, Statsd statsd,
                                 StatsdPublisherOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->registry = std::move(registry);
  impl_->statsd = std::move(statsd);
  impl_->options = std::move(options);
  if (impl_->options.interval <= std::chrono::milliseconds::zero())
    throw ConfigError("statsd push interval must be positive, not " +
                      std::to_string(impl_->options.interval.count()) + " ms");
  if (!impl_->registry || !impl_->statsd.enabled()) return;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

StatsdPublisher::~StatsdPublisher() {
  if (!impl_->thread.joinable()) return;
  {
    const std::lock_guard lock(impl_->stop_mutex);
    impl_->stop = true;
  }
  impl_->stop_cv.notify_all();
  impl_->thread.join();
  try {
    impl_->push();  // the counts since the last interval
  } catch (...) {
  }
}

void StatsdPublisher::push_now() {
  if (impl_->registry && impl_->statsd.enabled()) impl_->push();
}

}  // namespace kclpp
