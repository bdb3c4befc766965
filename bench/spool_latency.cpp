// bench/spool_latency: how long the non-blocking client takes to hand one record to the
// spool (docs/triton.md §7), per call, against a ZeroMQ PULL socket drained by a thread
// (the daemon's receiving side without Kinesis). Rows, in one run, on the same record:
//   kclpp        SpoolClient::send(stream, key, packed)   (ring + sender thread)
//   kclpp-map    SpoolClient::send(stream, field, Map)    (the same, msgpack encoding included)
//   zmq-direct   zmq_send DONTWAIT of both frames from the caller's thread (py-triton's
//                design in C++: the alternative the client was measured against)
//   python       py-triton's hand-off: struct.pack + send_multipart(NOBLOCK) (spool_latency.py)
// Targets (issue #4 §5): kclpp p50 <= 1 us, p99 <= 10 us. See bench/README.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "kclpp/internal/hex.hpp"
#include "kclpp/pipeline/spool.hpp"
#include "kclpp/pipeline/value.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::size_t records = 200'000;
  std::size_t warmup = 10'000;
  double rate = 100'000;  // sends per second; 0: back to back
  std::string only = "kclpp,kclpp-map,zmq-direct,python";
  std::string python = "/usr/bin/python3";
  std::string script = KCLPP_BENCH_SOURCE_DIR "/spool_latency.py";
};

struct Row {
  std::string name;
  double p50_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0;
  std::uint64_t dropped = 0;
  bool ran = false;
};

// The daemon's receiving side: a PULL socket, drained as fast as it can.
class Drain {
 public:
  Drain() : socket_(context_, zmq::socket_type::pull) {
    socket_.set(zmq::sockopt::rcvhwm, 3'500);  // as tritond
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { run(); });
  }
  ~Drain() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  std::uint64_t received() const { return received_.load(); }

 private:
  void run() {
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::message_t m;
    while (!stop_) {
      zmq::poll(items, 1, std::chrono::milliseconds(20));
      while (socket_.recv(m, zmq::recv_flags::dontwait)) {
        if (!m.more()) ++received_;
      }
    }
  }
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> received_{0};
  std::thread thread_;
};

kclpp::pipeline::Map event(std::size_t i) {
  using kclpp::pipeline::Map;
  // A Triton-like event: a few short fields (about 200 bytes packed).
  return Map{{"user_id", "user-" + std::to_string(i % 1000)},
             {"event", "page_view"},
             {"ts", static_cast<std::int64_t>(1'700'000'000 + static_cast<std::int64_t>(i))},
             {"path", "/restaurants/sf/mission/taqueria-cancun/menu"},
             {"session", "5f1c2a7e-3b9d-4c51-8e2f-9a0d6b7c4e31"},
             {"latency_ms", 12.5},
             {"ok", true},
             {"ua", "Mozilla/5.0 (iPhone; CPU iPhone OS 14_2 like Mac OS X) AppleWebKit/605.1.15"}};
}

// Runs `send(i)` warmup + records times, paced, and returns the timed latencies.
template <class Send>
std::vector<double> timed(const Options& o, Send&& send, std::uint64_t& dropped) {
  std::vector<double> lat;
  lat.reserve(o.records);
  const std::size_t total = o.warmup + o.records;
  const auto period = o.rate > 0 ? std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / o.rate))
                                 : std::chrono::nanoseconds(0);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < total; ++i) {
    if (period.count() > 0) {
      const auto due = start + period * static_cast<std::int64_t>(i);
      while (Clock::now() < due) {
      }
    }
    const auto t0 = Clock::now();
    const bool ok = send(i);
    const auto t1 = Clock::now();
    if (!ok && i >= o.warmup) ++dropped;
    if (i >= o.warmup) lat.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
  }
  return lat;
}

void fill(Row& row, std::vector<double> lat) {
  std::sort(lat.begin(), lat.end());
  const std::size_t n = lat.size();
  row.p50_ns = lat[n / 2];
  row.p99_ns = lat[n * 99 / 100];
  row.p999_ns = lat[n * 999 / 1000];
  row.max_ns = lat.back();
  row.ran = true;
}

bool wanted(const Options& o, const std::string& name) {
  const std::string list = "," + o.only + ",";
  return list.find("," + name + ",") != std::string::npos;
}

double json_number(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::strtod(line.c_str() + at + key.size() + 3, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string prefix = std::string("--") + name + "=";
      return a.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    if (const char* v = value("records")) o.records = std::strtoull(v, nullptr, 10);
    else if (const char* v2 = value("warmup")) o.warmup = std::strtoull(v2, nullptr, 10);
    else if (const char* v3 = value("rate")) o.rate = std::strtod(v3, nullptr);
    else if (const char* v4 = value("only")) o.only = v4;
    else if (const char* v5 = value("python")) o.python = v5;
    else if (const char* v6 = value("script")) o.script = v6;
    else {
      std::fprintf(stderr,
                   "usage: %s [--records=200000] [--warmup=10000] [--rate=100000 (sends/s, 0: back to back)]\n"
                   "          [--only=kclpp,kclpp-map,zmq-direct,python] [--python=/usr/bin/python3] [--script=PATH]\n",
                   argv[0]);
      return 2;
    }
  }
  if (o.records == 0) o.records = 1;
  Drain drain;
  const std::string packed = kclpp::pipeline::encode_record(event(0));
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < 1000; ++i) keys.push_back("user-" + std::to_string(i));
  std::vector<Row> rows;

  if (wanted(o, "kclpp")) {
    Row row{"kclpp"};
    kclpp::pipeline::SpoolClientOptions options;
    options.endpoint = drain.endpoint();
    options.header = kclpp::pipeline::HeaderFormat::Binary;
    kclpp::pipeline::SpoolClient client(options);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    fill(row, timed(o, [&](std::size_t i) { return client.send("events", keys[i % 1000], packed); }, row.dropped));
    client.close();
    rows.push_back(row);
  }
  if (wanted(o, "kclpp-map")) {
    Row row{"kclpp-map"};
    kclpp::pipeline::SpoolClientOptions options;
    options.endpoint = drain.endpoint();
    options.header = kclpp::pipeline::HeaderFormat::Binary;
    kclpp::pipeline::SpoolClient client(options);
    std::vector<kclpp::pipeline::Map> maps;
    for (std::size_t i = 0; i < 1000; ++i) maps.push_back(event(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const std::string field = "user_id";
    fill(row, timed(o, [&](std::size_t i) { return client.send("events", field, maps[i % 1000]); }, row.dropped));
    client.close();
    rows.push_back(row);
  }
  if (wanted(o, "zmq-direct")) {
    Row row{"zmq-direct"};
    zmq::context_t context;
    zmq::socket_t push(context, zmq::socket_type::push);
    push.set(zmq::sockopt::sndhwm, 4'000);
    push.set(zmq::sockopt::linger, 3'000);
    push.connect(drain.endpoint());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::string header;
    fill(row, timed(o,
                    [&](std::size_t i) {
                      // The same 129-byte header the client builds.
                      const std::string& key = keys[i % 1000];
                      header.assign(129, '\0');
                      header[0] = 4;
                      header[1] = 6;
                      std::memcpy(header.data() + 2, "events", 6);
                      header[65] = static_cast<char>(key.size());
                      std::memcpy(header.data() + 66, key.data(), key.size());
                      if (!push.send(zmq::buffer(header), zmq::send_flags::dontwait | zmq::send_flags::sndmore))
                        return false;
                      (void)push.send(zmq::buffer(packed), zmq::send_flags::dontwait);
                      return true;
                    },
                    row.dropped));
    rows.push_back(row);
  }
  if (wanted(o, "python")) {
    Row row{"python"};
    const std::string command = o.python + " " + o.script + " --endpoint=" + drain.endpoint() +
                                " --records=" + std::to_string(o.records) + " --warmup=" + std::to_string(o.warmup) +
                                " --rate=" + std::to_string(o.rate) + " --record-hex=" + kclpp::detail::to_hex(packed);
    if (FILE* p = ::popen(command.c_str(), "r")) {
      std::string out;
      char buf[4096];
      while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
      const int status = ::pclose(p);
      if (status == 0 && json_number(out, "p50_ns") >= 0) {
        row.p50_ns = json_number(out, "p50_ns");
        row.p99_ns = json_number(out, "p99_ns");
        row.p999_ns = json_number(out, "p999_ns");
        row.max_ns = json_number(out, "max_ns");
        row.dropped = static_cast<std::uint64_t>(json_number(out, "dropped"));
        row.ran = true;
      } else {
        std::fprintf(stderr, "python baseline failed (status %d): %s\n", status, out.c_str());
      }
    }
    rows.push_back(row);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  std::printf("spool_latency: %zu timed sends per row (after %zu warm-up), %s, record %zu bytes, binary header\n",
              o.records, o.warmup,
              o.rate > 0 ? (std::to_string(static_cast<long long>(o.rate)) + " sends/s").c_str() : "back to back",
              packed.size());
  std::printf("%-12s %10s %10s %10s %10s %9s\n", "client", "p50 us", "p99 us", "p99.9 us", "max us", "dropped");
  const Row* kclpp_row = nullptr;
  const Row* python_row = nullptr;
  for (const Row& r : rows) {
    if (!r.ran) {
      std::printf("%-12s (did not run)\n", r.name.c_str());
      continue;
    }
    std::printf("%-12s %10.3f %10.3f %10.3f %10.1f %9llu\n", r.name.c_str(), r.p50_ns / 1e3, r.p99_ns / 1e3,
                r.p999_ns / 1e3, r.max_ns / 1e3, static_cast<unsigned long long>(r.dropped));
    if (r.name == "kclpp") kclpp_row = &r;
    if (r.name == "python") python_row = &r;
  }
  std::printf("drain received %llu messages\n", static_cast<unsigned long long>(drain.received()));
  int rc = 0;
  if (kclpp_row != nullptr) {
    if (python_row != nullptr)
      std::printf("python / kclpp: p50 %.1fx, p99 %.1fx\n", python_row->p50_ns / kclpp_row->p50_ns,
                  python_row->p99_ns / kclpp_row->p99_ns);
    const bool p50_ok = kclpp_row->p50_ns <= 1'000;
    const bool p99_ok = kclpp_row->p99_ns <= 10'000;
    std::printf("targets: kclpp p50 <= 1 us: %s; p99 <= 10 us: %s\n", p50_ok ? "met" : "MISSED",
                p99_ok ? "met" : "MISSED");
    if (!p50_ok || !p99_ok) rc = 1;
  }
  return rc;
}
