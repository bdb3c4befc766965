#include "kclpp/processor/metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <mutex>

#include "kclpp/processor/error.hpp"

namespace kclpp {
namespace detail {

// One series. Counters and gauges use `value`/`count`; histograms `buckets` (per bucket,
// not cumulative: observe() touches one), `sum` and `count`; function gauges `read`.
struct MetricCell {
  MetricType type = MetricType::Counter;
  std::atomic<std::uint64_t> count{0};
  std::atomic<double> value{0.0};
  std::vector<double> bounds;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;  // bounds.size() + 1 (+Inf)
  std::function<double()> read;
};

}  // namespace detail

namespace {

constexpr std::array<double, 15> duration_buckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0};

bool valid_name(std::string_view name, bool allow_colon) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// {a="x",b="y"} plus an optional extra label (a histogram's le).
void append_labels(std::string& out, const MetricLabels& labels, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  const auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  };
  for (const auto& [name, value] : labels) one(name, value);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out += '}';
}

std::string_view type_name(MetricType type) noexcept {
  switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void Counter::add(std::uint64_t n) const noexcept {
  if (cell_) cell_->count.fetch_add(n, std::memory_order_relaxed);
}
std::uint64_t Counter::value() const noexcept { return cell_ ? cell_->count.load(std::memory_order_relaxed) : 0; }

void Gauge::set(double v) const noexcept {
  if (cell_) cell_->value.store(v, std::memory_order_relaxed);
}
void Gauge::add(double delta) const noexcept {
  if (cell_) cell_->value.fetch_add(delta, std::memory_order_relaxed);
}
double Gauge::value() const noexcept { return cell_ ? cell_->value.load(std::memory_order_relaxed) : 0.0; }

void Histogram::observe(double seconds) const noexcept {
  if (!cell_) return;
  const auto& bounds = cell_->bounds;
  const auto i = static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin());
  cell_->buckets[i].fetch_add(1, std::memory_order_relaxed);
  cell_->value.fetch_add(seconds, std::memory_order_relaxed);
  cell_->count.fetch_add(1, std::memory_order_relaxed);
}
void Histogram::observe(std::chrono::steady_clock::duration d) const noexcept {
  observe(std::chrono::duration<double>(d).count());
}

std::span<const double> default_duration_buckets() noexcept { return duration_buckets; }

struct MetricsRegistry::Impl {
  struct Series {
    MetricLabels labels;
    std::shared_ptr<detail::MetricCell> cell;
  };
  struct Family {
    std::string name;
    std::string help;
    MetricType type;
    std::vector<Series> series;
  };
  mutable std::mutex mutex;
  std::vector<Family> families;  // registration order

  // The family `name`, created if new; ConfigError if it exists with another type or help.
  Family& family(std::string_view name, std::string_view help, MetricType type) {
    for (auto& f : families) {
      if (f.name != name) continue;
      if (f.type != type || f.help != help) {
        throw ConfigError("metric " + std::string(name) + " registered twice with a different type or help");
      }
      return f;
    }
    if (!valid_name(name, true)) throw ConfigError("invalid metric name \"" + std::string(name) + "\"");
    return families.emplace_back(Family{std::string(name), std::string(help), type, {}});
  }

  std::shared_ptr<detail::MetricCell> cell(std::string_view name, std::string_view help, MetricType type,
                                           MetricLabels labels) {
    for (const auto& [label, value] : labels) {
      if (!valid_name(label, false) || label == "le") {
        throw ConfigError("invalid label name \"" + label + "\" on metric " + std::string(name));
      }
    }
    std::lock_guard lock(mutex);
    auto& f = family(name, help, type);
    for (const auto& s : f.series) {
      if (s.labels == labels) return s.cell;
    }
    auto c = std::make_shared<detail::MetricCell>();
    c->type = type;
    f.series.push_back(Series{std::move(labels), c});
    return c;
  }
};

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

Counter MetricsRegistry::counter(std::string_view name, std::string_view help, MetricLabels labels) {
  return Counter(impl_->cell(name, help, MetricType::Counter, std::move(labels)));
}

Gauge MetricsRegistry::gauge(std::string_view name, std::string_view help, MetricLabels labels) {
  return Gauge(impl_->cell(name, help, MetricType::Gauge, std::move(labels)));
}

Histogram MetricsRegistry::histogram(std::string_view name, std::string_view help, MetricLabels labels,
                                     std::span<const double> buckets) {
  if (!std::is_sorted(buckets.begin(), buckets.end()) ||
      std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end()) {
    throw ConfigError("histogram " + std::string(name) + ": bucket bounds must increase strictly");
  }
  auto c = impl_->cell(name, help, MetricType::Histogram, std::move(labels));
  std::lock_guard lock(impl_->mutex);
  if (!c->buckets) {
    c->bounds.assign(buckets.begin(), buckets.end());
    c->buckets = std::make_unique<std::atomic<std::uint64_t>[]>(buckets.size() + 1);
  }
  return Histogram(std::move(c));
}

void MetricsRegistry::gauge_function(std::string_view name, std::string_view help, MetricLabels labels,
                                     std::function<double()> read) {
  auto c = impl_->cell(name, help, MetricType::Gauge, std::move(labels));
  std::lock_guard lock(impl_->mutex);
  c->read = std::move(read);
}

void MetricsRegistry::remove(std::string_view label, std::string_view value) {
  std::lock_guard lock(impl_->mutex);
  for (auto& f : impl_->families) {
    std::erase_if(f.series, [&](const Impl::Series& s) {
      return std::any_of(s.labels.begin(), s.labels.end(),
                         [&](const auto& pair) { return pair.first == label && pair.second == value; });
    });
  }
}

void MetricsRegistry::visit(const std::function<void(const MetricSample&)>& fn) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::uint64_t> cumulative;
  for (const auto& f : impl_->families) {
    for (const auto& s : f.series) {
      const auto& c = *s.cell;
      MetricSample sample{f.name, f.help, f.type, s.labels, 0.0, {}, {}};
      if (f.type == MetricType::Counter) {
        sample.value = static_cast<double>(c.count.load(std::memory_order_relaxed));
      } else if (f.type == MetricType::Gauge) {
        sample.value = c.read ? c.read() : c.value.load(std::memory_order_relaxed);
      } else {
        // Buckets are read one by one while observers run: make the cumulative counts
        // monotonic and end exactly at the +Inf bucket's total.
        cumulative.assign(c.bounds.size() + 1, 0);
        std::uint64_t running = 0;
        for (std::size_t i = 0; i <= c.bounds.size(); ++i) {
          running += c.buckets[i].load(std::memory_order_relaxed);
          cumulative[i] = running;
        }
        sample.value = c.value.load(std::memory_order_relaxed);
        sample.bucket_bounds = c.bounds;
        sample.bucket_counts = cumulative;
      }
      fn(sample);
    }
  }
}

std::string MetricsRegistry::prometheus_text() const {
  std::string out;
  out.reserve(4096);
  std::string_view current;
  visit([&](const MetricSample& s) {
    if (s.name != current) {
      current = s.name;
      out += "# HELP ";
      out += s.name;
      out += ' ';
      append_escaped(out, s.help, false);
      out += "\n# TYPE ";
      out += s.name;
      out += ' ';
      out += type_name(s.type);
      out += '\n';
    }
    if (s.type != MetricType::Histogram) {
      out += s.name;
      append_labels(out, s.labels);
      out += ' ';
      append_number(out, s.value);
      out += '\n';
      return;
    }
    std::string le;
    for (std::size_t i = 0; i < s.bucket_counts.size(); ++i) {
      le.clear();
      append_number(le, i < s.bucket_bounds.size() ? s.bucket_bounds[i] : HUGE_VAL);
      out += s.name;
      out += "_bucket";
      append_labels(out, s.labels, "le", le);
      out += ' ';
      out += std::to_string(s.bucket_counts[i]);
      out += '\n';
    }
    out += s.name;
    out += "_sum";
    append_labels(out, s.labels);
    out += ' ';
    append_number(out, s.value);
    out += '\n';
    out += s.name;
    out += "_count";
    append_labels(out, s.labels);
    out += ' ';
    out += std::to_string(s.bucket_counts.empty() ? 0 : s.bucket_counts.back());
    out += '\n';
  });
  return out;
}

}  // namespace kclpp
