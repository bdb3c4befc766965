// bench/fanout: kclpp's native worker reading by enhanced fan-out (SubscribeToShard over one
// HTTP/2 connection) next to the same worker polling GetRecords, in one invocation. See
// bench/README.md, "fanout".
//
// Throughput: the fan-out worker against kclpp_bench_fanout_server (replaying pre-encoded
// SubscribeToShardEvents as fast as the client takes them), the polling worker against
// kclpp_bench_native_server exactly as bench/native_throughput runs it; the same 48 shards
// of 1,000-byte records. Latency: both servers in their latency mode (records arriving at
// known times, 200/s over the stream), the time from a record's arrival at the server to
// process_records, p50/p99, at the worker's default idle time between reads (1 s).
//
// The driver (this program without --reader) starts the servers and, per run and kind, a
// reader process (this program with --reader=...), interleaved. A reader prints one RESULT
// line (bench_driver.hpp): records, payload bytes, seconds and CPU seconds of its reading
// window, VmHWM, and for latency readers the percentiles.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_driver.hpp"
#include "kclpp/aws/kinesis_subscriber.hpp"
#include "kclpp/native/deaggregate.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "replay_server.hpp"

namespace {

using namespace kclpp::bench;
namespace native = kclpp::native;

// --- reader side ---------------------------------------------------------------------

struct ReaderOptions {
  std::string mode;  // throughput | latency | client
  std::string endpoint;
  std::string consumer_arn;   // fan-out as this consumer
  std::string consumer_name;  // fan-out as this consumer, registered if need be
  [[nodiscard]] bool fan_out() const { return !consumer_arn.empty() || !consumer_name.empty(); }
};

// Latencies in microseconds, from every processor of the reader.
class LatencySamples {
 public:
  void add(const std::vector<std::int64_t>& us) {
    const std::lock_guard lock(mutex_);
    all_.insert(all_.end(), us.begin(), us.end());
  }
  // " p50_us=.. p99_us=.. max_us=.. samples=.." for the RESULT line.
  std::string summary() {
    const std::lock_guard lock(mutex_);
    std::sort(all_.begin(), all_.end());
    const auto at = [&](double q) {
      if (all_.empty()) return std::int64_t{-1};
      return all_[std::min(all_.size() - 1, static_cast<std::size_t>(q * static_cast<double>(all_.size())))];
    };
    return " p50_us=" + std::to_string(at(0.50)) + " p99_us=" + std::to_string(at(0.99)) +
           " max_us=" + std::to_string(all_.empty() ? -1 : all_.back()) + " samples=" + std::to_string(all_.size());
  }

 private:
  std::mutex mutex_;
  std::vector<std::int64_t> all_;
};

// Counts like CountProcessor and takes each record's latency: now minus the arrival time
// the server wrote in its first 8 bytes (replay_server.hpp, latency mode).
class LatencyProcessor final : public CountProcessor {
 public:
  LatencyProcessor(Totals& totals, LatencySamples& samples, std::function<void()> on_end)
      : CountProcessor(totals, std::move(on_end)), samples_(samples) {}
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    const std::int64_t now = monotonic_ns();
    std::vector<std::int64_t> us;
    us.reserve(batch.records.size());
    for (const kclpp::Record& r : batch.records) {
      if (r.data.size() < 8) continue;
      std::uint64_t stamp = 0;
      for (int i = 7; i >= 0; --i) stamp = (stamp << 8) | static_cast<unsigned char>(r.data[static_cast<std::size_t>(i)]);
      us.push_back((now - static_cast<std::int64_t>(stamp)) / 1000);
    }
    samples_.add(us);
    CountProcessor::process_records(batch, checkpointer);
  }

 private:
  LatencySamples& samples_;
};

int run_reader_mode(const ReaderOptions& ro) {
  std::optional<native::FanOutOptions> fan_out;
  if (ro.fan_out()) {
    fan_out.emplace();
    fan_out->consumer_arn = ro.consumer_arn;
    fan_out->consumer_name = ro.consumer_name;
  }
  native::KinesisStream source("bench", client_options(ro.endpoint), fan_out);
  native::WorkerOptions wo;
  wo.application = "bench-fanout";
  wo.max_records = 10'000;  // polling; the default idle_time_between_reads (1 s) stays
  Totals totals;
  if (ro.mode == "latency") {
    LatencySamples samples;
    const Window w = run_until_shards_end(source, wo, totals, [&](Totals& t, std::function<void()> on_end) {
      return std::make_unique<LatencyProcessor>(t, samples, std::move(on_end));
    });
    print_result(totals.records, totals.bytes, w.seconds, w.cpu, samples.summary());
    return 0;
  }
  const Window w = run_until_shards_end(source, wo, totals, [](Totals& t, std::function<void()> on_end) {
    return std::make_unique<CountProcessor>(t, std::move(on_end));
  });
  print_result(totals.records, totals.bytes, w.seconds, w.cpu);
  return 0;
}

// The subscriber without the worker (kind fanout-client): one aws::KinesisSubscriber, a
// thread per shard reading its subscription to SHARD_END, de-aggregating and counting as
// the worker's processors do. It tells the subscriber's cost from the worker's.
int run_client_mode(const ReaderOptions& ro) {
  const auto shards = kclpp::aws::KinesisClient(client_options(ro.endpoint)).list_shards("bench");
  kclpp::aws::SubscriberOptions so;
  so.kinesis = client_options(ro.endpoint);
  kclpp::aws::KinesisSubscriber subscriber(so);
  Totals totals;
  std::mutex failure_mutex;
  std::string failure;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (const auto& shard : shards) {
    threads.emplace_back([&, id = shard.shard_id] {
      try {
        auto subscription = subscriber.subscribe(ro.consumer_arn, id, kclpp::aws::StartPosition::trim_horizon());
        kclpp::aws::SubscribeToShardEvent event;
        std::vector<kclpp::Record> batch;
        for (;;) {
          const auto status = subscription->next(event, std::chrono::seconds(30));
          if (status == kclpp::aws::ShardSubscription::Status::Ended) throw std::runtime_error("ended before SHARD_END");
          if (status == kclpp::aws::ShardSubscription::Status::Timeout) throw std::runtime_error("no event for 30 s");
          batch.clear();
          for (auto& record : event.records) native::deaggregate(std::move(record), batch);
          std::uint64_t bytes = 0;
          for (const auto& record : batch) bytes += record.data.size();
          totals.records += batch.size();
          totals.bytes += bytes;
          event.records.swap(batch);  // their storage takes the next event, as in the worker
          if (event.shard_end()) break;
        }
      } catch (const std::exception& e) {
        const std::lock_guard lock(failure_mutex);
        failure = id + ": " + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double cpu = cpu_seconds() - cpu0;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!failure.empty()) throw std::runtime_error(failure);
  print_result(totals.records, totals.bytes, seconds, cpu);
  return 0;
}

// --- driver side ---------------------------------------------------------------------

struct Options {
  int shards = 48;
  long records_per_shard = 200'000;  // throughput: 9.6 M records in all, as native_throughput
  long event_records = 1'000;        // fan-out: records per SubscribeToShardEvent
  long batch = 10'000;               // polling: records per GetRecords reply
  long record_size = 1'000;
  double latency_rate = 200;   // records per second over the stream
  long latency_seconds = 15;   // per latency run
  int runs = 3;
  std::vector<std::string> only = {"fanout", "polling"};
  std::vector<std::string> modes = {"throughput", "latency"};
  std::string consumer_name;  // register this consumer instead of passing an ARN
  bool tls = false;           // both servers over TLS, as AWS (HTTP/2 by ALPN for fan-out)
  std::string tls_dir;        // --tls: the certificate and key made for this invocation
  std::string bin_dir;
  int timeout = 300;
  bool keep_logs = false;
  std::uint64_t seed = 42;
};

const std::string consumer_arn = std::string(stream_arn) + "/consumer/bench-fanout:1715367226";

long latency_records_per_shard(const Options& o) {
  return std::max(1L, static_cast<long>(o.latency_rate * static_cast<double>(o.latency_seconds)) / o.shards);
}

std::string server_log(const std::string& kind, bool latency) {
  return "/tmp/kclpp_bench_fanout_server-" + kind + (latency ? "-latency" : "") + ".log";
}

struct Sample {
  double records = 0;
  double bytes = 0;
  double seconds = 0;
  double cpu = 0;
  double process_cpu = 0;
  double hwm_mib = 0;
  double server_cpu = 0;
  double connections = 0;  // fan-out: connections that carried SubscribeToShard; polling: all
  double other_connections = 0;  // fan-out: the others (the JSON calls)
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// Starts the server of `kind` (fanout: kclpp_bench_fanout_server; polling:
// kclpp_bench_native_server) in replay or latency mode.
bool start_server(const Options& o, const std::string& bin, const std::string& kind, bool latency,
                  ServerProcess& server) {
  const bool fanout = kind != "polling";
  std::vector<std::string> args = {bin + (fanout ? "/kclpp_bench_fanout_server" : "/kclpp_bench_native_server"),
                                   "--shards=" + std::to_string(o.shards),
                                   "--record-size=" + std::to_string(o.record_size)};
  if (latency) {
    args.push_back("--latency-rate=" + std::to_string(static_cast<long>(o.latency_rate)));
    args.push_back("--latency-records=" + std::to_string(latency_records_per_shard(o)));
  } else if (fanout) {
    args.push_back("--events=" + std::to_string(o.records_per_shard / o.event_records));
    args.push_back("--event-records=" + std::to_string(o.event_records));
    args.push_back("--seed=" + std::to_string(o.seed));
  } else {
    args.push_back("--responses=" + std::to_string(o.records_per_shard / o.batch));
    args.push_back("--batch=" + std::to_string(o.batch));
    args.push_back("--seed=" + std::to_string(o.seed));
  }
  if (o.tls) {
    args.push_back("--tls-cert=" + o.tls_dir + "/cert.pem");
    args.push_back("--tls-key=" + o.tls_dir + "/key.pem");
  }
  return server.start(args, server_log(kind, latency), o.tls ? "https" : "http");
}

// --tls: a self-signed certificate for 127.0.0.1 in a new directory, trusted by the
// readers through AWS_CA_BUNDLE (inherited from this process). False when openssl failed.
bool make_certificate(Options& o) {
  char dir[] = "/tmp/kclpp_bench_fanout_tls.XXXXXX";
  if (mkdtemp(dir) == nullptr) return false;
  o.tls_dir = dir;
  const std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                              "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                              o.tls_dir + "/key.pem -out " + o.tls_dir + "/cert.pem >" + o.tls_dir +
                              "/openssl.log 2>&1";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "openssl could not make a certificate (see %s/openssl.log)\n", o.tls_dir.c_str());
    return false;
  }
  setenv("AWS_CA_BUNDLE", (o.tls_dir + "/cert.pem").c_str(), 1);
  return true;
}

void remove_certificate(const Options& o) {
  if (o.tls_dir.empty()) return;
  for (const char* f : {"/key.pem", "/cert.pem", "/openssl.log"}) unlink((o.tls_dir + f).c_str());
  rmdir(o.tls_dir.c_str());
}

// Runs one reader of `kind` in `mode` against its server; nullopt on failure (logged).
std::optional<Sample> run_one(const Options& o, const std::string& self, const std::string& kind,
                              const std::string& mode, ServerProcess& server, double expected_records, int run) {
  std::vector<std::string> args = {self, "--reader=" + std::string(kind == "fanout-client" ? "client" : mode),
                                   "--endpoint=" + server.endpoint()};
  if (kind == "fanout-client") {
    args.push_back("--consumer-arn=" + consumer_arn);
  } else if (kind == "fanout") {
    args.push_back(o.consumer_name.empty() ? "--consumer-arn=" + consumer_arn : "--consumer-name=" + o.consumer_name);
  }
  const std::string log = "/tmp/kclpp_bench_fanout_" + kind + "-" + mode + ".log";
  const bool fanout = kind != "polling";
  const std::string stats0 = server.stats();
  const double server_cpu0 = proc_cpu(server.pid());
  const ReaderRun r = run_reader(args, log, o.timeout);
  Sample s;
  s.server_cpu = proc_cpu(server.pid()) - server_cpu0;
  const std::string stats1 = server.stats();
  const auto delta = [&](const char* key) { return field(stats1, key) - field(stats0, key); };
  if (fanout) {
    s.connections = delta("subscribe_connections");
    s.other_connections = delta("h2_connections") + delta("h1_connections") - s.connections;
  } else {
    s.connections = delta("connections");
  }
  if (!r.ok) {
    std::fprintf(stderr, "run %d %s %s: failed; see %s\n", run + 1, kind.c_str(), mode.c_str(), log.c_str());
    return std::nullopt;
  }
  s.records = field(r.result, "records");
  s.bytes = field(r.result, "bytes");
  s.seconds = field(r.result, "seconds");
  s.cpu = field(r.result, "cpu");
  s.process_cpu = r.process_cpu;
  s.hwm_mib = r.hwm_mib;
  s.p50_ms = field(r.result, "p50_us") / 1000;
  s.p99_ms = field(r.result, "p99_us") / 1000;
  s.max_ms = field(r.result, "max_us") / 1000;
  if (s.records != expected_records || s.bytes != s.records * static_cast<double>(o.record_size)) {
    std::fprintf(stderr, "run %d %s %s: counted %.0f records, %.0f bytes (expected %.0f records of %ld bytes)\n",
                 run + 1, kind.c_str(), mode.c_str(), s.records, s.bytes, expected_records, o.record_size);
    return std::nullopt;
  }
  std::fprintf(stderr,
               "run %d %-7s %-10s %9.0f records %7.3f s %11s rec/s %7.1f MB/s cpu %.3f s (%s rec/cpu-s) "
               "hwm %.1f MiB connections %.0f (+%.0f) server cpu %.3f s",
               run + 1, kind.c_str(), mode.c_str(), s.records, s.seconds, fmt_int(s.records / s.seconds).c_str(),
               s.bytes / s.seconds / 1e6, s.cpu, fmt_int(s.records / s.cpu).c_str(), s.hwm_mib, s.connections,
               s.other_connections, s.server_cpu);
  if (mode == "latency") std::fprintf(stderr, " p50 %.2f ms p99 %.2f ms max %.2f ms", s.p50_ms, s.p99_ms, s.max_ms);
  std::fprintf(stderr, "\n");
  return s;
}

using Samples = std::map<std::string, std::vector<Sample>>;  // by "kind mode"

template <class F>
std::vector<double> each(const std::vector<Sample>& v, F f) {
  std::vector<double> out;
  for (const auto& s : v) out.push_back(f(s));
  return out;
}

void print_throughput(const Options& o, Samples& samples) {
  std::printf("\nthroughput: %d shards x %ld records of %ld bytes; fan-out %ld records per event, polling %ld per "
              "reply; %s; medians of %d interleaved runs\n\n",
              o.shards, o.records_per_shard, o.record_size, o.event_records, o.batch,
              o.tls ? "TLS (HTTP/2 by ALPN for fan-out)" : "plain HTTP (h2c for fan-out)", o.runs);
  std::printf("| reader | records | records/s | MB/s | min-max records/s | CPU s | records per CPU-s | process CPU s "
              "| peak RSS | connections | server CPU s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::map<std::string, double> rate, per_cpu, rss;
  for (const auto& kind : o.only) {
    const auto& v = samples[kind + " throughput"];
    if (v.empty()) continue;
    const auto r = each(v, [](const Sample& s) { return s.records / s.seconds; });
    rate[kind] = median(r);
    per_cpu[kind] = median(each(v, [](const Sample& s) { return s.records / s.cpu; }));
    const auto hwm = each(v, [](const Sample& s) { return s.hwm_mib; });
    rss[kind] = *std::max_element(hwm.begin(), hwm.end());
    std::printf("| %s | %s | %s | %.1f | %s-%s | %.3f | %s | %.3f | %.1f MiB | %.0f (+%.0f) | %.3f |\n", kind.c_str(),
                fmt_int(median(each(v, [](const Sample& s) { return s.records; }))).c_str(),
                fmt_int(rate[kind]).c_str(), median(each(v, [](const Sample& s) { return s.bytes / s.seconds / 1e6; })),
                fmt_int(*std::min_element(r.begin(), r.end())).c_str(),
                fmt_int(*std::max_element(r.begin(), r.end())).c_str(),
                median(each(v, [](const Sample& s) { return s.cpu; })), fmt_int(per_cpu[kind]).c_str(),
                median(each(v, [](const Sample& s) { return s.process_cpu; })), rss[kind],
                median(each(v, [](const Sample& s) { return s.connections; })),
                median(each(v, [](const Sample& s) { return s.other_connections; })),
                median(each(v, [](const Sample& s) { return s.server_cpu; })));
  }
  if (rate.count("fanout") != 0 && rate.count("polling") != 0) {
    const double ratio = per_cpu["fanout"] / per_cpu["polling"];
    std::printf("\nratio fanout/polling: records/s %.2fx; records per CPU-second %.2fx (target >= 1: %s); peak RSS "
                "%.2fx\n",
                rate["fanout"] / rate["polling"], ratio, ratio >= 1 ? "PASS" : "FAIL", rss["fanout"] / rss["polling"]);
  }
}

void print_latency(const Options& o, Samples& samples) {
  std::printf("\nlatency: arrival at the server to process_records, %.0f records/s over %d shards for %ld s, "
              "idle time between reads 1 s (polling), %s; median over %d runs of each run's percentile\n\n",
              o.latency_rate, o.shards, o.latency_seconds, o.tls ? "TLS" : "plain HTTP", o.runs);
  std::printf("| reader | records | p50 ms | p99 ms | max ms | min-max p99 ms | CPU s | connections |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::map<std::string, double> p50, p99;
  for (const auto& kind : o.only) {
    const auto& v = samples[kind + " latency"];
    if (v.empty()) continue;
    const auto q99 = each(v, [](const Sample& s) { return s.p99_ms; });
    p50[kind] = median(each(v, [](const Sample& s) { return s.p50_ms; }));
    p99[kind] = median(q99);
    const auto mx = each(v, [](const Sample& s) { return s.max_ms; });
    std::printf("| %s | %s | %.2f | %.2f | %.2f | %.2f-%.2f | %.3f | %.0f |\n", kind.c_str(),
                fmt_int(median(each(v, [](const Sample& s) { return s.records; }))).c_str(), p50[kind], p99[kind],
                *std::max_element(mx.begin(), mx.end()), *std::min_element(q99.begin(), q99.end()),
                *std::max_element(q99.begin(), q99.end()), median(each(v, [](const Sample& s) { return s.cpu; })),
                median(each(v, [](const Sample& s) { return s.connections; })));
  }
  if (p99.count("fanout") != 0) {
    std::printf("\nfanout p99 latency: %.2f ms (target < 10 ms: %s)", p99["fanout"], p99["fanout"] < 10 ? "PASS" : "FAIL");
    if (p99.count("polling") != 0) {
      std::printf("; polling/fanout: p50 %.0fx, p99 %.0fx", p50["polling"] / p50["fanout"],
                  p99["polling"] / p99["fanout"]);
    }
    std::printf("\n");
  }
}

int drive_runs(const Options& o, const std::string& self, const std::string& bin) {
  const bool throughput = std::find(o.modes.begin(), o.modes.end(), "throughput") != o.modes.end();
  const bool latency = std::find(o.modes.begin(), o.modes.end(), "latency") != o.modes.end();
  std::map<std::string, ServerProcess> replay;  // by kind, for every throughput run
  for (const auto& kind : o.only) {
    if (kind != "fanout" && kind != "polling" && kind != "fanout-client") {
      std::fprintf(stderr, "unknown kind %s (fanout, polling, fanout-client)\n", kind.c_str());
      return 2;
    }
    if (throughput && !start_server(o, bin, kind, false, replay[kind])) return 1;
  }
  const double throughput_records = static_cast<double>(o.shards) * static_cast<double>(o.records_per_shard);
  const double latency_records = static_cast<double>(o.shards) * static_cast<double>(latency_records_per_shard(o));
  Samples samples;
  int errors = 0;
  for (int run = 0; run < o.runs; ++run) {
    for (const auto& kind : o.only) {
      if (!throughput) break;
      const auto s = run_one(o, self, kind, "throughput", replay[kind], throughput_records, run);
      if (s) samples[kind + " throughput"].push_back(*s); else ++errors;
    }
    for (const auto& kind : o.only) {
      if (!latency) break;
      if (kind == "fanout-client") continue;  // throughput only
      // A fresh server per run: each shard's arrival schedule starts at its first request.
      ServerProcess server;
      if (!start_server(o, bin, kind, true, server)) return 1;
      const auto s = run_one(o, self, kind, "latency", server, latency_records, run);
      if (s) samples[kind + " latency"].push_back(*s); else ++errors;
    }
  }
  for (auto& [kind, server] : replay) server.stop();
  std::printf("load average at end: %s\n", loadavg().c_str());
  if (throughput) print_throughput(o, samples);
  if (latency) print_latency(o, samples);
  if (errors == 0 && !o.keep_logs) {
    // Logs of failed runs stay; the others go unless --keep-logs.
    for (const auto& kind : o.only) {
      for (const auto& mode : o.modes) unlink(("/tmp/kclpp_bench_fanout_" + kind + "-" + mode + ".log").c_str());
    }
    for (const auto& kind : o.only) {
      unlink(server_log(kind, false).c_str());
      unlink(server_log(kind, true).c_str());
    }
  }
  return errors == 0 ? 0 : 1;
}

int drive(Options& o, const std::string& self) {
  const std::string bin = o.bin_dir.empty() ? self.substr(0, self.rfind('/')) : o.bin_dir;
  std::printf("load average at start: %s\n", loadavg().c_str());
  if (o.tls && !make_certificate(o)) return 1;
  const int rc = drive_runs(o, self, bin);
  remove_certificate(o);
  return rc;
}

const char usage[] =
    "usage: kclpp_bench_fanout [--runs=3] [--only=fanout,polling[,fanout-client]] [--modes=throughput,latency] [--shards=48] "
    "[--records-per-shard=200000] [--event-records=1000] [--batch=10000] [--record-size=1000] "
    "[--latency-rate=200] [--latency-seconds=15] [--consumer-name=NAME] [--bin-dir=DIR] [--timeout=300] "
    "[--seed=42] [--keep-logs] [--tls]\n";

// Parses one driver option into `o`; false when `a` is none of them.
bool parse_option(const std::string& a, Options& o) {
  auto val = [&](const char* name) -> const char* {
    const std::size_t n = std::strlen(name);
    return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
  };
  if (const char* v = val("--runs=")) o.runs = std::atoi(v);
  else if (const char* v2 = val("--only=")) o.only = split(v2);
  else if (const char* v3 = val("--modes=")) o.modes = split(v3);
  else if (const char* v4 = val("--shards=")) o.shards = std::atoi(v4);
  else if (const char* v5 = val("--records-per-shard=")) o.records_per_shard = std::atol(v5);
  else if (const char* v6 = val("--event-records=")) o.event_records = std::atol(v6);
  else if (const char* v7 = val("--batch=")) o.batch = std::atol(v7);
  else if (const char* v8 = val("--record-size=")) o.record_size = std::atol(v8);
  else if (const char* v9 = val("--latency-rate=")) o.latency_rate = std::atof(v9);
  else if (const char* v10 = val("--latency-seconds=")) o.latency_seconds = std::atol(v10);
  else if (const char* v11 = val("--consumer-name=")) o.consumer_name = v11;
  else if (const char* v12 = val("--bin-dir=")) o.bin_dir = v12;
  else if (const char* v13 = val("--timeout=")) o.timeout = std::atoi(v13);
  else if (const char* v14 = val("--seed=")) o.seed = std::strtoull(v14, nullptr, 10);
  else if (a == "--keep-logs") o.keep_logs = true;
  else if (a == "--tls") o.tls = true;
  else return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  ReaderOptions ro;
  std::string self = argv[0];
  {
    // Re-exec by absolute path: the driver starts copies of itself as readers.
    char path[4096];
    const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) self.assign(path, static_cast<std::size_t>(n));
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--reader=", 0) == 0) {
      ro.mode = a.substr(9);
    } else if (a.rfind("--endpoint=", 0) == 0) {
      ro.endpoint = a.substr(11);
    } else if (a.rfind("--consumer-arn=", 0) == 0) {
      ro.consumer_arn = a.substr(15);
    } else if (a.rfind("--consumer-name=", 0) == 0 && !ro.mode.empty()) {
      ro.consumer_name = a.substr(16);
    } else if (!parse_option(a, o)) {
      std::fputs(usage, stderr);
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.shards < 1 || o.runs < 1 || o.record_size < 8 || o.event_records < 1 || o.batch < 1 || o.batch > 10'000 ||
      o.records_per_shard % o.event_records != 0 || o.records_per_shard % o.batch != 0 || o.latency_rate <= 0 ||
      o.latency_seconds < 1) {
    std::fprintf(stderr, "bad options: --records-per-shard must be a multiple of --event-records and --batch\n");
    return 2;
  }
  try {
    if (ro.mode == "throughput" || ro.mode == "latency") return run_reader_mode(ro);
    if (ro.mode == "client") return run_client_mode(ro);
    if (!ro.mode.empty()) {
      std::fprintf(stderr, "unknown --reader=%s\n", ro.mode.c_str());
      return 2;
    }
    return drive(o, self);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fanout: %s\n", e.what());
    return 1;
  }
}
