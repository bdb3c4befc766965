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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/deaggregate.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/record_processor.hpp"

namespace aws = kclpp::aws;

#ifndef KCLPP_BENCH_SOURCE_DIR
#define KCLPP_BENCH_SOURCE_DIR "."
#endif

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::strtol(line.c_str() + n + 1, nullptr, 10);
  }
  return -1;
}

// --- reader side ---------------------------------------------------------------------

struct ReaderOptions {
  std::string endpoint;
  std::string mode;  // worker | client
  long max_records = 0;  // client: stop after this many (0: read every shard to its end)
};

aws::KinesisOptions client_options(const std::string& endpoint) {
  aws::KinesisOptions o;
  o.region = "us-east-1";
  o.endpoint = endpoint;
  o.credentials = aws::static_credentials({"AKIDBENCHMARK", "bench-secret", ""});
  return o;
}

struct Totals {
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<int> ended{0};
};

// Sums data.size() of every record; shard_ended checkpoints SHARD_END (the default) and
// counts the shard. When every shard has ended, the reading window closes.
class CountProcessor final : public kclpp::RecordProcessor {
 public:
  CountProcessor(Totals& totals, std::function<void()> on_end) : totals_(totals), on_end_(std::move(on_end)) {}
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer&) override {
    std::uint64_t bytes = 0;
    for (const kclpp::Record& r : batch.records) bytes += r.data.size();
    totals_.records += batch.records.size();
    totals_.bytes += bytes;
  }
  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    checkpointer.checkpoint();
    on_end_();
  }

 private:
  Totals& totals_;
  std::function<void()> on_end_;
};

void print_result(std::uint64_t records, std::uint64_t bytes, double seconds, double cpu) {
  std::printf("RESULT records=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f cpu=%.6f hwm_kb=%ld\n", records, bytes,
              seconds, cpu, status_kb("VmHWM:"));
  std::fflush(stdout);
}

int run_worker(const ReaderOptions& ro) {
  namespace native = kclpp::native;
  native::KinesisStream source("bench", client_options(ro.endpoint));
  const int shards = static_cast<int>(source.connect()->list_shards().size());
  auto store = native::open_checkpoint_store("memory:");
  Totals totals;
  native::WorkerOptions wo;
  wo.application = "native-throughput";
  wo.initial_position = aws::StartPosition::trim_horizon();
  wo.max_records = 10'000;
  std::unique_ptr<native::Worker> worker;
  std::mutex end_mutex;
  double end_cpu = 0;
  Clock::time_point end_time;
  auto on_end = [&] {
    if (totals.ended.fetch_add(1) + 1 == shards) {
      const std::lock_guard lock(end_mutex);
      end_time = Clock::now();
      end_cpu = cpu_seconds();
      worker->request_shutdown();
    }
  };
  worker = std::make_unique<native::Worker>(
      source, *store, [&](const std::string&) { return std::make_unique<CountProcessor>(totals, on_end); }, wo);
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  worker->run();
  const std::lock_guard lock(end_mutex);
  if (totals.ended != shards) {
    std::fprintf(stderr, "reader: worker stopped with %d of %d shards ended\n", totals.ended.load(), shards);
    return 1;
  }
  print_result(totals.records, totals.bytes, std::chrono::duration<double>(end_time - t0).count(), end_cpu - cpu0);
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

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double proc_cpu(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Spawns argv with stdout on a pipe and stderr to `log`; returns the pid.
pid_t spawn(const std::vector<std::string>& args, int& out_fd, int& in_fd, const std::string& log) {
  int out[2];
  int in[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(in, O_CLOEXEC) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  close(out[1]);
  close(in[0]);
  out_fd = out[0];
  in_fd = in[1];
  return pid;
}

// Reads fd until EOF or until `timeout_s` has passed; returns what came.
std::string read_until_eof(int fd, int timeout_s) {
  std::string out;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

double field(const std::string& line, const std::string& key) {
  const std::size_t p = line.find(" " + key + "=");
  if (p == std::string::npos) return -1;
  return std::strtod(line.c_str() + p + key.size() + 2, nullptr);
}

std::string fmt_int(double v) {
  const std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

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
  int server_out = -1;
  int server_in = -1;
  const std::string server_log = "/tmp/kclpp_bench_native_server.log";
  const pid_t server = spawn({bin + "/kclpp_bench_native_server", "--port=0", "--shards=" + std::to_string(o.shards),
                              "--responses=" + std::to_string(per_shard), "--batch=" + std::to_string(o.batch),
                              "--record-size=" + std::to_string(o.record_size), "--seed=" + std::to_string(o.seed)},
                             server_out, server_in, server_log);
  std::string port_line;
  {
    char c;
    while (read(server_out, &c, 1) == 1 && c != '\n') port_line += c;
  }
  if (port_line.rfind("PORT ", 0) != 0) {
    std::fprintf(stderr, "server did not start (see %s)\n", server_log.c_str());
    return 1;
  }
  const std::string endpoint = "http://127.0.0.1:" + port_line.substr(5);
  std::fprintf(stderr, "server pid %d at %s: %d shards x %ld replies x %ld records of %ld bytes\n", server,
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
      const double server_cpu0 = proc_cpu(server);
      int out = -1;
      int in = -1;
      const pid_t pid = spawn(args, out, in, log);
      close(in);
      const std::string text = read_until_eof(out, o.timeout);
      close(out);
      if (text.empty()) kill(pid, SIGKILL);
      int status = 0;
      rusage ru{};
      wait4(pid, &status, 0, &ru);
      const double server_cpu = proc_cpu(server) - server_cpu0;
      const std::size_t at = text.find("RESULT ");
      if (at == std::string::npos || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "run %d %s: failed (status %d); see %s\n", run + 1, kind.c_str(), status, log.c_str());
        ++errors;
        continue;
      }
      const std::string line = text.substr(at + 6);
      Sample s;
      s.records = field(line, "records");
      s.bytes = field(line, "bytes");
      s.seconds = field(line, "seconds");
      s.cpu = field(line, "cpu");
      s.hwm_mib = std::max(field(line, "hwm_kb"), static_cast<double>(ru.ru_maxrss)) / 1024.0;
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
  close(server_in);  // the server exits on EOF
  int status = 0;
  waitpid(server, &status, 0);

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

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b <= s.size()) {
    const std::size_t e = std::min(s.find(',', b), s.size());
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
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
