// bench/native_throughput: kclpp's native reader against canned GetRecords replies from a
// local server process (kclpp_bench_native_server), with a boto3 get_records loop reading
// the same server as the baseline. See bench/README.md, "native_throughput".
//
// The driver (this program without --reader) starts the server once, then for each run
// starts one reader process per kind, interleaved:
//   kclpp         native::Worker on a KinesisStream pointed at the server, a memory: store,
//                 one counting processor per shard (every shard read to SHARD_END);
//   kclpp-client  one KinesisClient, shard after shard: get_records + deaggregate, the
//                 reading path of the worker minus its threads and its 5 calls/s pacing;
//   boto3         bench/native_throughput_boto3.py: boto3's get_records, shard after shard.
// A reader prints one RESULT line: records, payload bytes, the seconds and CPU seconds
// (getrusage RUSAGE_SELF, user + sys, all threads) of its reading window, and VmHWM.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench_driver.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/deaggregate.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"

namespace aws = kclpp::aws;

#ifndef KCLPP_BENCH_SOURCE_DIR
#define KCLPP_BENCH_SOURCE_DIR "."
#endif

namespace {

using namespace kclpp::bench;

// --- reader side ---------------------------------------------------------------------

struct ReaderOptions {
  std::string endpoint;
  std::string mode;  // worker | client
  long max_records = 0;  // client: stop after this many (0: read every shard to its end)
};

int run_worker(const ReaderOptions& ro) {
  kclpp::native::KinesisStream source("bench", client_options(ro.endpoint));
  kclpp::native::WorkerOptions wo;
  wo.application = "native-throughput";
  wo.max_records = 10'000;
  Totals totals;
  const Window w = run_until_shards_end(source, wo, totals, [](Totals& t, std::function<void()> on_end) {
    return std::make_unique<CountProcessor>(t, std::move(on_end));
  });
  print_result(totals.records, totals.bytes, w.seconds, w.cpu);
  return 0;
}

int run_client(const ReaderOptions& ro) {
  namespace native = kclpp::native;
  aws::KinesisClient client(client_options(ro.endpoint));
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  std::vector<kclpp::Record> batch;
  aws::GetRecordsResult r;  // reused, as the worker does: the batch's records go back into it
  const auto shards = client.list_shards("bench");
  for (const auto& shard : shards) {
    std::optional<std::string> it = client.get_shard_iterator("bench", shard.shard_id,
                                                              aws::StartPosition::trim_horizon());
    while (it) {
#ifdef KCLPP_BENCH_BY_VALUE
      r = client.get_records(*it, 10'000);  // a kclpp without the reusing overload (--kclpp-b)
#else
      client.get_records(*it, 10'000, r);
#endif
      batch.clear();
      for (auto& record : r.records) native::deaggregate(std::move(record), batch);
      for (const auto& record : batch) bytes += record.data.size();
      records += batch.size();
      r.records.swap(batch);
      it = std::move(r.next_shard_iterator);
      if (ro.max_records > 0 && records >= static_cast<std::uint64_t>(ro.max_records)) break;
    }
    if (ro.max_records > 0 && records >= static_cast<std::uint64_t>(ro.max_records)) break;
  }
  const double cpu = cpu_seconds() - cpu0;
  print_result(records, bytes, std::chrono::duration<double>(Clock::now() - t0).count(), cpu);
  return 0;
}

// --- driver side ---------------------------------------------------------------------

struct Options {
  // Per run, kclpp (worker): 20 replies per shard. With fewer shards than ~40 the worker
  // is bound by its 5 calls/s/shard pacing (50,000 records/s a shard), not by the reader.
  long records = 9'600'000;
  long client_records = 3'200'000;  // kclpp-client
  long boto3_records = 200'000;   // boto3 (about 4 s at 48k records/s)
  long batch = 10'000;
  long record_size = 1'000;
  int shards = 48;
  int runs = 5;
  std::vector<std::string> only = {"kclpp", "kclpp-client", "boto3"};
  std::string bin_dir;
  std::string python = "/usr/bin/python3";
  std::string boto3_script = std::string(KCLPP_BENCH_SOURCE_DIR) + "/native_throughput_boto3.py";
  int timeout = 300;
  bool keep_logs = false;
  // Another build of this program (e.g. from a tree without a native-reader change), run
  // as kinds kclpp-b and kclpp-client-b, interleaved with the others: an A/B test.
  std::string kclpp_b;
  std::uint64_t seed = 42;
};

struct Sample {
  double records = 0;
  double bytes = 0;
  double seconds = 0;
  double cpu = 0;
  double hwm_mib = 0;
  double server_cpu = 0;
};

int drive(const Options& o, const std::string& self) {
  const std::string bin = o.bin_dir.empty() ? self.substr(0, self.rfind('/')) : o.bin_dir;
  std::fprintf(stdout, "load average at start: %s\n", loadavg().c_str());
  // Enough replies per shard for the largest single-shard-at-a-time reader too.
  const long per_shard = std::max({(o.records + o.shards * o.batch - 1) / (o.shards * o.batch),
                                   (o.client_records + o.shards * o.batch - 1) / (o.shards * o.batch),
                                   (o.boto3_records + o.shards * o.batch - 1) / (o.shards * o.batch), 1L});
  if (o.records != per_shard * o.shards * o.batch) {
    std::fprintf(stderr, "note: kclpp (worker) reads every shard to its end: %ld records per run\n",
                 per_shard * o.shards * o.batch);
  }
  const std::string server_log = "/tmp/kclpp_bench_native_server.log";
  ServerProcess server;
  if (!server.start({bin + "/kclpp_bench_native_server", "--port=0", "--shards=" + std::to_string(o.shards),
                     "--responses=" + std::to_string(per_shard), "--batch=" + std::to_string(o.batch),
                     "--record-size=" + std::to_string(o.record_size), "--seed=" + std::to_string(o.seed)},
                    server_log)) {
    return 1;
  }
  const std::string& endpoint = server.endpoint();
  std::fprintf(stderr, "server pid %d at %s: %d shards x %ld replies x %ld records of %ld bytes\n", server.pid(),
               endpoint.c_str(), o.shards, per_shard, o.batch, o.record_size);

  std::map<std::string, std::vector<Sample>> samples;
  int errors = 0;
  for (int run = 0; run < o.runs; ++run) {
    for (const auto& kind : o.only) {
      std::vector<std::string> args;
      if (kind == "kclpp" || kind == "kclpp-b") {
        args = {kind == "kclpp" ? self : o.kclpp_b, "--reader=worker", "--endpoint=" + endpoint};
      } else if (kind == "kclpp-client" || kind == "kclpp-client-b") {
        args = {kind == "kclpp-client" ? self : o.kclpp_b, "--reader=client", "--endpoint=" + endpoint,
                "--max=" + std::to_string(o.client_records)};
      } else if (kind == "boto3") {
        args = {o.python, o.boto3_script, "--endpoint=" + endpoint, "--max=" + std::to_string(o.boto3_records)};
      } else {
        std::fprintf(stderr, "unknown kind %s\n", kind.c_str());
        return 1;
      }
      const std::string log = "/tmp/kclpp_bench_native_" + kind + ".log";
      const double server_cpu0 = proc_cpu(server.pid());
      const ReaderRun r = run_reader(args, log, o.timeout);
      const double server_cpu = proc_cpu(server.pid()) - server_cpu0;
      if (!r.ok) {
        std::fprintf(stderr, "run %d %s: failed; see %s\n", run + 1, kind.c_str(), log.c_str());
        ++errors;
        continue;
      }
      const std::string& line = r.result;
      Sample s;
      s.records = field(line, "records");
      s.bytes = field(line, "bytes");
      s.seconds = field(line, "seconds");
      s.cpu = field(line, "cpu");
      s.hwm_mib = r.hwm_mib;
      s.server_cpu = server_cpu;
      const double expected_bytes = s.records * static_cast<double>(o.record_size);
      if (s.records <= 0 || s.bytes != expected_bytes) {
        std::fprintf(stderr, "run %d %s: counted %.0f records, %.0f bytes (expected %.0f bytes)\n", run + 1,
                     kind.c_str(), s.records, s.bytes, expected_bytes);
        ++errors;
        continue;
      }
      std::fprintf(stderr, "run %d %-12s %10.0f records %8.3f s %12s rec/s %9.1f MB/s cpu %.3f s (%s rec/cpu-s) "
                   "hwm %.1f MiB server cpu %.3f s\n",
                   run + 1, kind.c_str(), s.records, s.seconds, fmt_int(s.records / s.seconds).c_str(),
                   s.bytes / s.seconds / 1e6, s.cpu, fmt_int(s.records / s.cpu).c_str(), s.hwm_mib, s.server_cpu);
      samples[kind].push_back(s);
    }
  }
  server.stop();

  std::printf("load average at end: %s\n", loadavg().c_str());
  std::printf("%ld-byte records, %ld per GetRecords reply, %d shards; medians of %d interleaved runs\n\n",
              o.record_size, o.batch, o.shards, o.runs);
  std::printf("| reader | records | records/s | MB/s | min-max records/s | CPU s | records per CPU-s | peak RSS | server CPU s |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::map<std::string, double> rate;
  std::map<std::string, double> per_cpu;
  for (const auto& kind : o.only) {
    const auto& v = samples[kind];
    if (v.empty()) continue;
    std::vector<double> r, mb, cpu, pc, hwm, srv, recs;
    for (const auto& s : v) {
      r.push_back(s.records / s.seconds);
      mb.push_back(s.bytes / s.seconds / 1e6);
      cpu.push_back(s.cpu);
      pc.push_back(s.records / s.cpu);
      hwm.push_back(s.hwm_mib);
      srv.push_back(s.server_cpu);
      recs.push_back(s.records);
    }
    rate[kind] = median(r);
    per_cpu[kind] = median(pc);
    std::printf("| %s | %s | %s | %.1f | %s-%s | %.3f | %s | %.1f MiB | %.3f |\n", kind.c_str(),
                fmt_int(median(recs)).c_str(), fmt_int(rate[kind]).c_str(), median(mb),
                fmt_int(*std::min_element(r.begin(), r.end())).c_str(),
                fmt_int(*std::max_element(r.begin(), r.end())).c_str(), median(cpu), fmt_int(per_cpu[kind]).c_str(),
                *std::max_element(hwm.begin(), hwm.end()), median(srv));
  }
  std::printf("\n");
  auto verdict = [](bool ok) { return ok ? "PASS" : "FAIL"; };
  if (rate.count("boto3") != 0) {
    for (const char* k : {"kclpp", "kclpp-b", "kclpp-client", "kclpp-client-b"}) {
      if (rate.count(k) == 0) continue;
      const double ratio = rate[k] / rate["boto3"];
      std::printf("ratio %s/boto3 records/s: %.1fx (target >= 20x: %s); per CPU-second: %.1fx\n", k, ratio,
                  verdict(ratio >= 20), per_cpu[k] / per_cpu["boto3"]);
    }
  }
  for (const char* k : {"kclpp", "kclpp-b", "kclpp-client", "kclpp-client-b"}) {
    if (per_cpu.count(k) == 0) continue;
    std::printf("%s records per CPU-second: %s (target >= 1,000,000: %s)\n", k, fmt_int(per_cpu[k]).c_str(),
                verdict(per_cpu[k] >= 1e6));
  }
  if (errors == 0 && !o.keep_logs) {
    // Logs of failed runs stay; the others go unless --keep-logs.
    for (const auto& kind : o.only) unlink(("/tmp/kclpp_bench_native_" + kind + ".log").c_str());
    unlink(server_log.c_str());
  }
  return errors == 0 ? 0 : 1;
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
    auto val = [&](const char* name) -> const char* {
      const std::size_t n = std::strlen(name);
      return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = val("--reader=")) {
      ro.mode = v;
    } else if (const char* v2 = val("--endpoint=")) {
      ro.endpoint = v2;
    } else if (const char* v3 = val("--max=")) {
      ro.max_records = std::atol(v3);
    } else if (const char* v4 = val("--records=")) {
      o.records = std::atol(v4);
    } else if (const char* v5 = val("--client-records=")) {
      o.client_records = std::atol(v5);
    } else if (const char* v6 = val("--boto3-records=")) {
      o.boto3_records = std::atol(v6);
    } else if (const char* v7 = val("--batch=")) {
      o.batch = std::atol(v7);
    } else if (const char* v8 = val("--record-size=")) {
      o.record_size = std::atol(v8);
    } else if (const char* v9 = val("--shards=")) {
      o.shards = std::atoi(v9);
    } else if (const char* v10 = val("--runs=")) {
      o.runs = std::atoi(v10);
    } else if (const char* v11 = val("--only=")) {
      o.only = split(v11);
    } else if (const char* v12 = val("--bin-dir=")) {
      o.bin_dir = v12;
    } else if (const char* v13 = val("--python=")) {
      o.python = v13;
    } else if (const char* v14 = val("--boto3-script=")) {
      o.boto3_script = v14;
    } else if (const char* v15 = val("--timeout=")) {
      o.timeout = std::atoi(v15);
    } else if (const char* v16 = val("--seed=")) {
      o.seed = std::strtoull(v16, nullptr, 10);
    } else if (const char* v17 = val("--kclpp-b=")) {
      o.kclpp_b = v17;
    } else if (a == "--keep-logs") {
      o.keep_logs = true;
    } else {
      std::fprintf(stderr,
                   "usage: kclpp_bench_native_throughput [--records=9600000] [--client-records=3200000] "
                   "[--boto3-records=200000] [--batch=10000] [--record-size=1000] [--shards=48] [--runs=5] "
                   "[--only=kclpp,kclpp-client,boto3] [--bin-dir=DIR] [--python=/usr/bin/python3] "
                   "[--boto3-script=PATH] [--timeout=300] [--seed=42] [--keep-logs] [--kclpp-b=PATH]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.batch < 1 || o.batch > 10'000 || o.shards < 1 || o.runs < 1 || o.record_size < 0) {
    std::fprintf(stderr, "bad options\n");
    return 2;
  }
  if (!o.kclpp_b.empty()) {
    // kclpp-b right after kclpp, kclpp-client-b right after kclpp-client.
    std::vector<std::string> kinds;
    for (const auto& k : o.only) {
      kinds.push_back(k);
      if (k == "kclpp" || k == "kclpp-client") kinds.push_back(k + "-b");
    }
    o.only = std::move(kinds);
  }
  try {
    if (ro.mode == "worker") return run_worker(ro);
    if (ro.mode == "client") return run_client(ro);
    if (!ro.mode.empty()) {
      std::fprintf(stderr, "unknown --reader=%s\n", ro.mode.c_str());
      return 2;
    }
    return drive(o, self);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "native_throughput: %s\n", e.what());
    return 1;
  }
}
