#pragma once
// Pieces shared by the drivers of bench/native_throughput and bench/fanout: the reader
// process (a native::Worker reading every shard to its end with one processor per shard,
// timed over its reading window) and the driver's process plumbing (spawning readers and
// servers, their CPU time, medians, number formatting). Bench-internal, header-only.
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
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/record_processor.hpp"

extern char** environ;

namespace kclpp::bench {

using Clock = std::chrono::steady_clock;

inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

inline long status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::strtol(line.c_str() + n + 1, nullptr, 10);
  }
  return -1;
}

// --- reader side ---------------------------------------------------------------------

inline aws::KinesisOptions client_options(const std::string& endpoint) {
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
// calls on_end. Subclasses look at the records too.
class CountProcessor : public RecordProcessor {
 public:
  CountProcessor(Totals& totals, std::function<void()> on_end) : totals_(totals), on_end_(std::move(on_end)) {}
  void process_records(const RecordBatch& batch, Checkpointer&) override {
    std::uint64_t bytes = 0;
    for (const Record& r : batch.records) bytes += r.data.size();
    totals_.records += batch.records.size();
    totals_.bytes += bytes;
  }
  void shard_ended(Checkpointer& checkpointer) override {
    checkpointer.checkpoint();
    on_end_();
  }

 private:
  Totals& totals_;
  std::function<void()> on_end_;
};

// The reading window of a worker run: from run() until the last shard ended.
struct Window {
  double seconds = 0;
  double cpu = 0;
};

using ProcessorMaker = std::function<std::unique_ptr<RecordProcessor>(Totals&, std::function<void()> on_end)>;

// Runs a native::Worker on `source` (a memory: store, TRIM_HORIZON, `options` otherwise)
// until every shard has ended, then shuts it down. Throws std::runtime_error when the
// worker stops before that.
inline Window run_until_shards_end(native::StreamSource& source, native::WorkerOptions options, Totals& totals,
                                   const ProcessorMaker& make) {
  const int shards = static_cast<int>(source.connect()->list_shards().size());
  auto store = native::open_checkpoint_store("memory:");
  options.initial_position = aws::StartPosition::trim_horizon();
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
      source, *store, [&](const std::string&) { return make(totals, on_end); }, options);
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  worker->run();
  const std::lock_guard lock(end_mutex);
  if (totals.ended != shards) {
    throw std::runtime_error("the worker stopped with " + std::to_string(totals.ended.load()) + " of " +
                             std::to_string(shards) + " shards ended");
  }
  return {std::chrono::duration<double>(end_time - t0).count(), end_cpu - cpu0};
}

// The reader's one line for the driver; `extra` is appended as is (" key=value ...").
inline void print_result(std::uint64_t records, std::uint64_t bytes, double seconds, double cpu,
                         const std::string& extra = {}) {
  std::printf("RESULT records=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f cpu=%.6f hwm_kb=%ld%s\n", records, bytes,
              seconds, cpu, status_kb("VmHWM:"), extra.c_str());
  std::fflush(stdout);
}

// --- driver side ---------------------------------------------------------------------

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// CPU seconds (user + sys) of a running process, from /proc/<pid>/stat.
inline double proc_cpu(pid_t pid) {
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

inline std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Spawns argv with stdin and stdout on pipes and stderr to `log`; returns the pid.
inline pid_t spawn(const std::vector<std::string>& args, int& out_fd, int& in_fd, const std::string& log) {
  int out[2];
  int in[2];
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  if (pipe2(in, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
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
inline std::string read_until_eof(int fd, int timeout_s) {
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

// Reads one line from fd (blocking), without its newline; "" at EOF.
inline std::string read_line(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

// The number after " key=" in a line, or -1.
inline double field(const std::string& line, const std::string& key) {
  const std::size_t p = line.find(" " + key + "=");
  if (p == std::string::npos) return -1;
  return std::strtod(line.c_str() + p + key.size() + 2, nullptr);
}

inline std::string fmt_int(double v) {
  const std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

inline std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b <= s.size()) {
    const std::size_t e = std::min(s.find(',', b), s.size());
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// A bench server process (native_server, fanout_server): started with its stdin and
// stdout on pipes, it prints "PORT <n>" once listening, answers "stats" with one "STATS
// ..." line and exits when its stdin closes. stop() (or the destructor) closes stdin and
// reaps it.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() { stop(); }

  // False (and a message on stderr) when it did not print its port. `scheme`: http, or
  // https for a server given a certificate.
  bool start(const std::vector<std::string>& args, const std::string& log, const std::string& scheme = "http") {
    log_ = log;
    pid_ = spawn(args, out_, in_, log);
    const std::string line = pid_ > 0 ? read_line(out_) : std::string();
    if (line.rfind("PORT ", 0) != 0) {
      std::fprintf(stderr, "%s did not start (see %s)\n", args[0].c_str(), log.c_str());
      stop();
      return false;
    }
    endpoint_ = scheme + "://127.0.0.1:" + line.substr(5);
    return true;
  }
  // The server's counters ("STATS k=v ..."), for field().
  std::string stats() {
    static constexpr char command[] = "stats\n";
    if (in_ < 0 || write(in_, command, sizeof command - 1) < 0) return {};
    return read_line(out_);
  }
  void stop() {
    if (in_ >= 0) close(in_);  // the server exits on EOF
    in_ = -1;
    if (pid_ > 0) {
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    if (out_ >= 0) close(out_);
    out_ = -1;
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }
  [[nodiscard]] const std::string& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  std::string endpoint_;
  std::string log_;
};

// One reader process's outcome.
struct ReaderRun {
  bool ok = false;
  std::string result;  // the RESULT line, from " records=" on
  double hwm_mib = 0;  // max(VmHWM, ru_maxrss)
  double process_cpu = 0;  // user + sys of the whole process (wait4), start-up included
};

// Runs a reader to its end (killed after timeout_s) and takes its RESULT line.
inline ReaderRun run_reader(const std::vector<std::string>& args, const std::string& log, int timeout_s) {
  ReaderRun r;
  int out = -1;
  int in = -1;
  const pid_t pid = spawn(args, out, in, log);
  if (pid < 0) return r;
  close(in);
  const std::string text = read_until_eof(out, timeout_s);
  close(out);
  if (text.find("RESULT ") == std::string::npos) kill(pid, SIGKILL);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  const std::size_t at = text.find("RESULT ");
  if (at == std::string::npos || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return r;
  r.ok = true;
  r.result = text.substr(at + 6);
  r.hwm_mib = std::max(field(r.result, "hwm_kb"), static_cast<double>(ru.ru_maxrss)) / 1024.0;
  r.process_cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return r;
}

}  // namespace kclpp::bench
