// bench/protocol_throughput: drives record processors through the KCL MultiLangDaemon
// protocol (docs/kcl-protocol.md §1-§4) the way the Java daemon does, and measures records/s
// and MB/s of record payload end to end. Child kinds:
//   kclpp - bench/count_child.cpp (kcl::run; decode, count bytes, checkpoint every 10,000)
//   node  - bench/node/count_processor.js on aws-kcl (the same work)
//   ack   - bench/ack_child.cpp (acknowledges without parsing: the driver's ceiling)
// each at each pipe size. See bench/README.md for how to read the output.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

// Lines are written by kclpp's own writer (encode_process_records); -DKCLPP_BENCH_HAVE_CODEC=0
// builds the bench with only its own encoder (the one --bench-encoder selects).
#ifndef KCLPP_BENCH_HAVE_CODEC
#define KCLPP_BENCH_HAVE_CODEC 1
#endif
#if KCLPP_BENCH_HAVE_CODEC
#include "codec.hpp"
#endif
#include "kclpp/internal/hex.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/sequence_number.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Options

struct Options {
  std::size_t record_size = 1000;
  std::size_t batch_size = 1000;
  std::size_t records = 200'000;
  int runs = 5;
  std::vector<std::string> only{"kclpp", "node", "ack"};
  std::vector<std::size_t> pipe_sizes{65536, 1048576};
  std::uint64_t seed = 42;
  int timeout_s = 600;  // per child run
  std::string bin_dir;   // where the child executables are (default: next to this one)
  std::string node = "node";
  std::string node_script;  // default: bench/node/count_processor.js next to this source
  bool keep_logs = false;
  bool bench_encoder = false;  // use the bench's own line encoder instead of kclpp's
  bool pin = false;            // driver on CPU 0, child on CPU 1
  std::string kclpp_b;         // a second count_child build to A/B against (kind "kclpp-b")
};

[[noreturn]] void usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "protocol_throughput: %s\n\n", why);
  std::fprintf(stderr,
               "usage: kclpp_bench_protocol_throughput [options]\n"
               "  --record-size=N     payload bytes per record (default 1000)\n"
               "  --batch-size=N      records per processRecords line (default 1000)\n"
               "  --records=N         records per run (default 200000)\n"
               "  --runs=N            runs per configuration; medians reported (default 5)\n"
               "  --only=LIST         child kinds: kclpp,node,ack (default all)\n"
               "  --pipe-sizes=LIST   pipe sizes in bytes, 0 = OS default (default 65536,1048576)\n"
               "  --seed=N            payload PRNG seed (default 42)\n"
               "  --timeout=S         per-run timeout in seconds (default 600)\n"
               "  --bin-dir=DIR       directory of kclpp_bench_{ack,count}_child\n"
               "  --node=PATH         node executable (default: node on PATH)\n"
               "  --node-script=PATH  the aws-kcl processor (default bench/node/count_processor.js)\n"
               "  --bench-encoder     encode lines with the bench's own encoder, not kclpp's\n"
               "  --kclpp-b=PATH      also run this count_child build (an A/B of a kclpp change)\n"
               "  --pin               pin the driver to CPU 0 and the child to CPU 1\n"
               "  --keep-logs         keep the children's stderr logs (/tmp/kclpp_bench_*.log)\n");
  std::exit(why == nullptr ? 0 : 64);
}

std::uint64_t parse_u64(std::string_view name, std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
    const std::string msg = "bad value for " + std::string(name) + ": '" + std::string(text) + "'";
    usage(msg.c_str());
  }
  return std::strtoull(std::string(text).c_str(), nullptr, 10);
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string dir_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") usage(nullptr);
    if (arg == "--keep-logs") {
      o.keep_logs = true;
      continue;
    }
    if (arg == "--pin") {
      o.pin = true;
      continue;
    }
    if (arg == "--bench-encoder") {
      o.bench_encoder = true;
      continue;
    }
    std::string_view name = arg;
    std::string_view value;
    if (const std::size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      const std::string msg = "unknown option, or no value for " + std::string(arg);
      usage(msg.c_str());
    }
    if (name == "--record-size") {
      o.record_size = parse_u64(name, value);
    } else if (name == "--batch-size") {
      o.batch_size = parse_u64(name, value);
    } else if (name == "--records") {
      o.records = parse_u64(name, value);
    } else if (name == "--runs") {
      o.runs = static_cast<int>(parse_u64(name, value));
    } else if (name == "--seed") {
      o.seed = parse_u64(name, value);
    } else if (name == "--timeout") {
      o.timeout_s = static_cast<int>(parse_u64(name, value));
    } else if (name == "--only") {
      o.only = split(value);
      for (const std::string& kind : o.only) {
        if (kind != "kclpp" && kind != "node" && kind != "ack") usage("--only takes kclpp,node,ack");
      }
    } else if (name == "--pipe-sizes") {
      o.pipe_sizes.clear();
      for (const std::string& s : split(value)) o.pipe_sizes.push_back(parse_u64(name, s));
    } else if (name == "--bin-dir") {
      o.bin_dir = value;
    } else if (name == "--kclpp-b") {
      o.kclpp_b = value;
    } else if (name == "--node") {
      o.node = value;
    } else if (name == "--node-script") {
      o.node_script = value;
    } else {
      const std::string msg = "unknown option " + std::string(name);
      usage(msg.c_str());
    }
  }
  if (o.record_size == 0 || o.batch_size == 0 || o.records == 0 || o.runs < 1 || o.only.empty() ||
      o.pipe_sizes.empty()) {
    usage("sizes, counts and lists must be non-zero");
  }
  if (o.bin_dir.empty()) {
    std::vector<char> self(4096);
    const ssize_t n = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
    o.bin_dir = n > 0 ? dir_of(std::string(self.data(), static_cast<std::size_t>(n))) : ".";
  }
  if (o.node_script.empty()) o.node_script = dir_of(__FILE__) + "/node/count_processor.js";
  return o;
}

// ---------------------------------------------------------------------------------------
// Workload: every processRecords line, generated once.

// splitmix64: fast, seedable, good enough for payload bytes.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

struct Workload {
  std::string bytes;                  // all lines, each ending in '\n'
  std::vector<std::string_view> lines;  // views into bytes
  std::size_t records = 0;
  std::uint64_t payload_bytes = 0;  // decoded record data
  std::size_t largest_line = 0;     // without '\n'
  std::string first_sequence_number;
  std::string last_sequence_number;
  std::optional<bool> encoders_agree;  // kclpp's writer vs the bench's, on the first line
};

// The bench's own encoder (--bench-encoder), field order as Jackson writes (docs/kcl-protocol.md §2).
void bench_base64(std::string_view in, std::string& out) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{s[i]} << 16) | (std::uint32_t{s[i + 1]} << 8) | s[i + 2];
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t v = std::uint32_t{s[i]} << 16;
    if (rest == 2) v |= std::uint32_t{s[i + 1]} << 8;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

// A generated record, as the daemon would serialise it.
struct GenRecord {
  std::string data;  // raw payload bytes
  std::string partition_key;
  std::string sequence_number;  // 56 digits
  std::int64_t arrival_ms = 0;
};

void bench_encode_process_records(std::string& out, const std::vector<GenRecord>& records,
                                  std::int64_t millis_behind_latest) {
  out.append("{\"action\":\"processRecords\",\"records\":[");
  bool first = true;
  for (const GenRecord& r : records) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"data\":\"");
    bench_base64(r.data, out);
    out.append("\",\"partitionKey\":\"");
    out.append(r.partition_key);  // generated keys need no escaping
    out.append("\",\"sequenceNumber\":\"");
    out.append(r.sequence_number);
    out.append("\",\"approximateArrivalTimestamp\":");
    out.append(std::to_string(r.arrival_ms));
    out.append(",\"subSequenceNumber\":0,\"action\":\"record\"}");
  }
  out.append("],\"millisBehindLatest\":");
  out.append(std::to_string(millis_behind_latest));
  out.push_back('}');
}

#if KCLPP_BENCH_HAVE_CODEC
// kclpp's own writer (kcl/src/codec.hpp), the default.
void kclpp_encode_process_records(std::string& out, const std::vector<GenRecord>& records,
                                  std::int64_t millis_behind_latest) {
  kclpp::RecordBatch batch;
  batch.records.resize(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    kclpp::Record& r = batch.records[i];
    r.data = records[i].data;
    r.partition_key = records[i].partition_key;
    if (!r.sequence_number.assign(records[i].sequence_number)) {
      throw std::runtime_error("bad generated sequence number " + records[i].sequence_number);
    }
    r.sub_sequence_number = 0;
    r.approximate_arrival_timestamp =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(records[i].arrival_ms));
  }
  batch.millis_behind_latest = millis_behind_latest;
  kclpp::kcl::detail::encode_process_records(out, batch);
}
#endif

Workload generate(const Options& o) {
  Workload w;
  Rng rng{o.seed};
  // Realistic 56-digit sequence numbers: a fixed 37-digit shard/epoch prefix and a 19-digit
  // increasing part with gaps, as Kinesis hands out.
  const std::string seq_prefix = "4959033827149025660855969253836157109";
  std::uint64_t seq_low = 1'000'000'000'000'000'000ULL;
  const std::int64_t ts_base = 1'760'000'000'000;  // epoch ms
  const char* hex = kclpp::detail::hex_lower;

  std::vector<std::size_t> offsets;
  std::vector<GenRecord> batch;
  std::string line;
  std::size_t made = 0;
  while (made < o.records) {
    const std::size_t n = std::min(o.batch_size, o.records - made);
    batch.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      GenRecord& r = batch[k];
      r.data.resize(o.record_size);
      for (std::size_t b = 0; b < o.record_size; b += 8) {
        const std::uint64_t v = rng.next();
        std::memcpy(r.data.data() + b, &v, std::min<std::size_t>(8, o.record_size - b));
      }
      // A UUID-like partition key (36 characters).
      r.partition_key.resize(36);
      for (std::size_t c = 0; c < 36; ++c) {
        r.partition_key[c] = (c == 8 || c == 13 || c == 18 || c == 23) ? '-' : hex[rng.next() & 15];
      }
      seq_low += 1 + (rng.next() % 1000);
      char digits[32];
      std::snprintf(digits, sizeof digits, "%019" PRIu64, seq_low);
      r.sequence_number = seq_prefix + digits;
      r.arrival_ms = ts_base + static_cast<std::int64_t>((made + k) / 50);
      if (made + k == 0) w.first_sequence_number = r.sequence_number;
      w.last_sequence_number = r.sequence_number;
      w.payload_bytes += o.record_size;
    }
    const auto behind = static_cast<std::int64_t>((o.records - made - n) / 10);
    line.clear();
#if KCLPP_BENCH_HAVE_CODEC
    if (!o.bench_encoder) {
      kclpp_encode_process_records(line, batch, behind);
      if (made == 0) {  // the two writers must agree byte for byte
        std::string mine;
        bench_encode_process_records(mine, batch, behind);
        w.encoders_agree = mine == line;
      }
    } else {
      bench_encode_process_records(line, batch, behind);
    }
#else
    bench_encode_process_records(line, batch, behind);
#endif
    w.largest_line = std::max(w.largest_line, line.size());
    offsets.push_back(w.bytes.size());
    w.bytes.append(line);
    w.bytes.push_back('\n');
    made += n;
  }
  w.records = made;
  offsets.push_back(w.bytes.size());
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
    w.lines.emplace_back(w.bytes.data() + offsets[i], offsets[i + 1] - offsets[i]);
  }
  return w;
}

// ---------------------------------------------------------------------------------------
// One child process and the daemon side of the protocol.

struct RunResult {
  double seconds = 0;            // first processRecords write -> last processRecords status
  std::uint64_t idle_rss_kb = 0;  // VmRSS after initialize
  std::uint64_t peak_rss_kb = 0;  // VmHWM before shardEnded
  std::size_t pipe_in = 0;       // effective pipe sizes after initialize
  std::size_t pipe_out = 0;
  std::uint64_t checkpoints = 0;
  double child_cpu_s = 0;        // user + sys
  double driver_cpu_s = 0;
  long child_vcsw = 0;           // voluntary context switches of the child
  std::string child_summary;     // the totals line the child logged, if any
};

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::uint64_t proc_status_kb(pid_t pid, std::string_view key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
    }
  }
  return 0;
}

double cpu_seconds(const struct rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void pin_self(std::size_t cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) fail_errno("sched_setaffinity");
}

class Child {
 public:
  Child(const std::vector<std::string>& argv, std::size_t pipe_size, std::size_t child_pipe_size,
        const std::string& log_path, int timeout_s, bool pin)
      : deadline_(Clock::now() + std::chrono::seconds(timeout_s)) {
    int in_pipe[2];
    int out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
    to_child_ = in_pipe[1];
    from_child_ = out_pipe[0];
    if (pipe_size > 0) {
      if (::fcntl(to_child_, F_SETPIPE_SZ, static_cast<int>(pipe_size)) < 0) fail_errno("F_SETPIPE_SZ");
      if (::fcntl(from_child_, F_SETPIPE_SZ, static_cast<int>(pipe_size)) < 0) fail_errno("F_SETPIPE_SZ");
    }
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) fail_errno("open " + log_path);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 2);

    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "KCLPP_BENCH_PIPE_SIZE=", 22) != 0) env_storage.emplace_back(*e);
    }
    env_storage.push_back("KCLPP_BENCH_PIPE_SIZE=" + std::to_string(child_pipe_size));
    std::vector<char*> envp;
    for (std::string& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argp;
    for (std::string& a : args) argp.push_back(a.data());
    argp.push_back(nullptr);

    // The child inherits the affinity it is spawned with: CPU 1 for it, then CPU 0 for us.
    if (pin) pin_self(1U);
    const int rc = ::posix_spawnp(&pid_, argp[0], &actions, nullptr, argp.data(), envp.data());
    if (pin) pin_self(0U);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(log_fd);
    if (rc != 0) {
      errno = rc;
      fail_errno("posix_spawnp " + argv[0]);
    }
    for (const int fd : {to_child_, from_child_}) {
      if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) fail_errno("O_NONBLOCK");
    }
    rbuf_.resize(std::size_t{1} << 16);
  }

  ~Child() {
    if (to_child_ >= 0) ::close(to_child_);
    if (from_child_ >= 0) ::close(from_child_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::uint64_t checkpoints() const { return checkpoints_; }

  [[nodiscard]] std::size_t pipe_size(bool input) const {
    const int size = ::fcntl(input ? to_child_ : from_child_, F_GETPIPE_SZ);
    return size < 0 ? 0 : static_cast<std::size_t>(size);
  }

  // Queues a line (must end in '\n' and outlive the wait); not copied.
  void send(std::string_view line) { out_.push_back({std::string(), line}); }
  void send_owned(std::string line) {
    out_.push_back({std::move(line), {}});
    out_.back().view = out_.back().owned;
  }

  // Writes what is queued and reads the child's lines until the status for `action`,
  // answering checkpoint requests with success (echoing seq/sub, docs/kcl-protocol.md §2) as the Java
  // daemon does. Throws on EOF, a wrong status, or the deadline.
  void await_status(std::string_view action) {
    for (;;) {
      flush();
      if (read_available(action)) {
        if (!out_.empty()) throw std::runtime_error("status before the child read the whole action");
        return;
      }
      pollfd fds[2] = {{from_child_, POLLIN, 0}, {to_child_, POLLOUT, 0}};
      const nfds_t n = out_.empty() ? 1 : 2;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) throw std::runtime_error("timed out waiting for status/" + std::string(action));
      const int rc = ::poll(fds, n, static_cast<int>(std::min<long long>(left.count(), 1000)));
      if (rc < 0 && errno != EINTR) fail_errno("poll");
    }
  }

  // Closes the child's stdin, drains stdout to EOF, and reaps the child.
  struct rusage finish() {
    ::close(to_child_);
    to_child_ = -1;
    for (;;) {
      const ssize_t n = ::read(from_child_, rbuf_.data(), rbuf_.size());
      if (n > 0) continue;
      if (n == 0) break;
      if (errno == EINTR) continue;
      if (errno != EAGAIN) fail_errno("read");
      pollfd fd{from_child_, POLLIN, 0};
      if (Clock::now() > deadline_) throw std::runtime_error("timed out waiting for the child to exit");
      (void)::poll(&fd, 1, 1000);
    }
    int status = 0;
    struct rusage ru {};
    if (::wait4(pid_, &status, 0, &ru) < 0) fail_errno("wait4");
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      throw std::runtime_error("child exited with " + (WIFEXITED(status)
                                                           ? "code " + std::to_string(WEXITSTATUS(status))
                                                           : "signal " + std::to_string(WTERMSIG(status))));
    }
    return ru;
  }

 private:
  struct Piece {
    std::string owned;
    std::string_view view;
  };

  void flush() {
    while (!out_.empty()) {
      Piece& p = out_.front();
      const ssize_t n = ::write(to_child_, p.view.data(), p.view.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        if (errno == EPIPE) throw std::runtime_error("the child closed its stdin (EPIPE)");
        fail_errno("write");
      }
      p.view.remove_prefix(static_cast<std::size_t>(n));
      if (p.view.empty()) out_.pop_front();
    }
  }

  // Reads what is available and handles complete lines; true once status/`action` came.
  bool read_available(std::string_view action) {
    bool done = false;
    for (;;) {
      if (rend_ == rbuf_.size()) {
        if (rbegin_ > 0) {
          std::memmove(rbuf_.data(), rbuf_.data() + rbegin_, rend_ - rbegin_);
          rend_ -= rbegin_;
          rbegin_ = 0;
        } else {
          rbuf_.resize(rbuf_.size() * 2);
        }
      }
      const ssize_t n = ::read(from_child_, rbuf_.data() + rend_, rbuf_.size() - rend_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        fail_errno("read");
      }
      if (n == 0) throw std::runtime_error("the child closed its stdout (exited?) while the driver waited for status/" +
                                           std::string(action));
      rend_ += static_cast<std::size_t>(n);
      while (const void* nl = std::memchr(rbuf_.data() + rbegin_, '\n', rend_ - rbegin_)) {
        const auto end = static_cast<std::size_t>(static_cast<const char*>(nl) - rbuf_.data());
        std::string_view line(rbuf_.data() + rbegin_, end - rbegin_);
        rbegin_ = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (handle_line(line, action)) done = true;
      }
      if (rbegin_ == rend_) rbegin_ = rend_ = 0;
      if (done) break;
    }
    return done;
  }

  // One child line (docs/kcl-protocol.md §3). Returns true for status/`action`.
  bool handle_line(std::string_view line, std::string_view action) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return false;  // blank: skipped
    simdjson::dom::element doc;
    if (parser_.parse(line.data(), line.size(), true).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      std::fprintf(stderr, "  (skipping a non-JSON child line: %.80s)\n", std::string(line).c_str());
      return false;
    }
    std::string_view type;
    if (doc["action"].get(type) != simdjson::SUCCESS) return false;
    if (type == "status") {
      std::string_view response_for;
      if (doc["responseFor"].get(response_for) != simdjson::SUCCESS || response_for != action) {
        throw std::runtime_error("expected status/" + std::string(action) + ", got: " + std::string(line));
      }
      return true;
    }
    if (type == "checkpoint") {
      ++checkpoints_;
      std::string reply = "{\"action\":\"checkpoint\",\"sequenceNumber\":";
      std::string_view seq;
      if (doc["sequenceNumber"].get(seq) == simdjson::SUCCESS) {
        reply.append("\"").append(seq).append("\"");
      } else {
        reply.append("null");
      }
      reply.append(",\"subSequenceNumber\":");
      std::int64_t sub = 0;
      if (doc["subSequenceNumber"].get(sub) == simdjson::SUCCESS) {
        reply.append(std::to_string(sub));
      } else {
        reply.append("null");
      }
      reply.append(",\"error\":null}\n");
      send_owned(std::move(reply));
      flush();
      return false;
    }
    return false;  // any other message is ignored, as the daemon does (docs/kcl-protocol.md §3)
  }

  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  Clock::time_point deadline_;
  std::deque<Piece> out_;
  std::string rbuf_;
  std::size_t rbegin_ = 0;
  std::size_t rend_ = 0;
  simdjson::dom::parser parser_;
  std::uint64_t checkpoints_ = 0;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Config {
  std::string kind;
  std::size_t pipe_size;
};

RunResult run_once(const Options& o, const Workload& w, const Config& c, int run_index) {
  std::vector<std::string> argv;
  if (c.kind == "kclpp") {
    argv = {o.bin_dir + "/kclpp_bench_count_child"};
  } else if (c.kind == "kclpp-b") {
    argv = {o.kclpp_b};
  } else if (c.kind == "ack") {
    argv = {o.bin_dir + "/kclpp_bench_ack_child"};
  } else {
    argv = {o.node, o.node_script};
  }
  const std::string log_path = "/tmp/kclpp_bench_" + std::to_string(::getpid()) + "_" + c.kind + "_" +
                               std::to_string(c.pipe_size) + "_" + std::to_string(run_index) + ".log";
  RunResult r;
  struct rusage self_before {};
  ::getrusage(RUSAGE_SELF, &self_before);
  try {
    // pipe_size 0: neither side changes the OS default. Otherwise the driver sets it and
    // the child is told the same size (kcl::run's RunOptions::pipe_size).
    Child child(argv, c.pipe_size, c.pipe_size, log_path, o.timeout_s, o.pin);
    const std::string init =
        "{\"action\":\"initialize\",\"shardId\":\"shardId-000000000001\",\"sequenceNumber\":\"TRIM_HORIZON\","
        "\"subSequenceNumber\":0}\n";
    child.send(init);
    child.await_status("initialize");
    r.idle_rss_kb = proc_status_kb(child.pid(), "VmRSS");
    r.pipe_in = child.pipe_size(true);
    r.pipe_out = child.pipe_size(false);

    const Clock::time_point t0 = Clock::now();
    for (const std::string_view line : w.lines) {
      child.send(line);
      child.await_status("processRecords");
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.peak_rss_kb = proc_status_kb(child.pid(), "VmHWM");

    static const std::string shard_ended = "{\"action\":\"shardEnded\"}\n";
    child.send(shard_ended);
    child.await_status("shardEnded");
    r.checkpoints = child.checkpoints();
    const struct rusage ru = child.finish();
    r.child_cpu_s = cpu_seconds(ru);
    r.child_vcsw = ru.ru_nvcsw;
  } catch (const std::exception& e) {
    const std::string log = read_file(log_path);
    throw std::runtime_error(c.kind + " (pipe " + std::to_string(c.pipe_size) + ", run " +
                             std::to_string(run_index) + "): " + e.what() + "\n  child stderr (" + log_path +
                             "):\n" + log.substr(0, 4000));
  }
  struct rusage self_after {};
  ::getrusage(RUSAGE_SELF, &self_after);
  r.driver_cpu_s = cpu_seconds(self_after) - cpu_seconds(self_before);

  const std::string log = read_file(log_path);
  if (const std::size_t at = log.find("records="); at != std::string::npos) {
    r.child_summary = log.substr(at, log.find('\n', at) - at);
    const std::string want = "records=" + std::to_string(w.records) + " bytes=" + std::to_string(w.payload_bytes);
    if (r.child_summary.compare(0, want.size(), want) != 0) {
      throw std::runtime_error(c.kind + ": the child counted '" + r.child_summary + "', expected '" + want + "'");
    }
  } else if (c.kind != "ack") {
    throw std::runtime_error(c.kind + ": the child logged no totals; stderr:\n" + log.substr(0, 4000));
  }
  if (c.kind != "ack") {
    const std::uint64_t want = w.records / 10'000 + 1;
    if (r.checkpoints != want) {
      throw std::runtime_error(c.kind + ": " + std::to_string(r.checkpoints) + " checkpoints, expected " +
                               std::to_string(want));
    }
  }
  if (!o.keep_logs) ::unlink(log_path.c_str());
  return r;
}

// ---------------------------------------------------------------------------------------
// Statistics and report

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  double mbps_median = 0, mbps_min = 0, mbps_max = 0;
  double rps_median = 0;
  double wire_mbps_median = 0;
  double child_cpu_median = 0, driver_cpu_median = 0;
  double vcsw_median = 0;
  std::uint64_t rss_delta_kb_max = 0;
  std::size_t pipe_in = 0, pipe_out = 0;
};

Summary summarise(const std::vector<RunResult>& runs, const Workload& w) {
  Summary s;
  std::vector<double> mbps, rps, wire, ccpu, dcpu, vcsw;
  for (const RunResult& r : runs) {
    mbps.push_back(static_cast<double>(w.payload_bytes) / 1e6 / r.seconds);
    rps.push_back(static_cast<double>(w.records) / r.seconds);
    wire.push_back(static_cast<double>(w.bytes.size()) / 1e6 / r.seconds);
    ccpu.push_back(r.child_cpu_s);
    dcpu.push_back(r.driver_cpu_s);
    vcsw.push_back(static_cast<double>(r.child_vcsw));
    const std::uint64_t delta = r.peak_rss_kb > r.idle_rss_kb ? r.peak_rss_kb - r.idle_rss_kb : 0;
    s.rss_delta_kb_max = std::max(s.rss_delta_kb_max, delta);
    s.pipe_in = r.pipe_in;
    s.pipe_out = r.pipe_out;
  }
  s.mbps_median = median(mbps);
  s.mbps_min = *std::min_element(mbps.begin(), mbps.end());
  s.mbps_max = *std::max_element(mbps.begin(), mbps.end());
  s.rps_median = median(rps);
  s.wire_mbps_median = median(wire);
  s.child_cpu_median = median(ccpu);
  s.driver_cpu_median = median(dcpu);
  s.vcsw_median = median(vcsw);
  return s;
}

std::string loadavg() {
  std::string s = read_file("/proc/loadavg");
  // The 1-, 5- and 15-minute averages.
  std::size_t cut = 0;
  for (int fields = 0; fields < 3 && cut != std::string::npos; ++fields) cut = s.find(' ', cut + 1);
  return s.substr(0, cut);
}

std::string pipe_label(std::size_t bytes) {
  if (bytes == 0) return "default";
  if (bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + " MiB";
  if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_options(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);

    std::printf("protocol_throughput: %zu records of %zu bytes, %zu per batch, %d runs per configuration\n",
                o.records, o.record_size, o.batch_size, o.runs);
    const Clock::time_point g0 = Clock::now();
    const Workload w = generate(o);
    std::printf("generated %zu processRecords lines (%s encoder) in %.2f s: %.1f MB on the wire, "
                "%.1f MB of payload, largest line %zu bytes; seed %" PRIu64 "\n",
                w.lines.size(), (o.bench_encoder || !KCLPP_BENCH_HAVE_CODEC) ? "bench" : "kclpp", std::chrono::duration<double>(Clock::now() - g0).count(),
                static_cast<double>(w.bytes.size()) / 1e6, static_cast<double>(w.payload_bytes) / 1e6, w.largest_line,
                o.seed);
    if (w.encoders_agree && !*w.encoders_agree) {
      std::printf("WARNING: kclpp's encode_process_records and the bench's encoder differ on the first line\n");
    }
    std::printf("children: kclpp=%s/kclpp_bench_count_child  node=%s %s  ack=%s/kclpp_bench_ack_child\n",
                o.bin_dir.c_str(), o.node.c_str(), o.node_script.c_str(), o.bin_dir.c_str());
    std::printf("pipe size per configuration: set by the driver on both pipes and passed to the child as "
                "KCLPP_BENCH_PIPE_SIZE (0 = nobody touches the OS default)\n\n");
    std::fflush(stdout);

    const std::string load_before = loadavg();
    std::vector<Config> configs;
    for (const std::size_t pipe : o.pipe_sizes) {
      for (const std::string& kind : o.only) configs.push_back({kind, pipe});
      if (!o.kclpp_b.empty()) configs.push_back({"kclpp-b", pipe});
    }
    std::map<std::pair<std::string, std::size_t>, std::vector<RunResult>> results;
    // Interleaved: run i of every configuration before run i+1, so drift hits all alike.
    for (int run = 1; run <= o.runs; ++run) {
      for (const Config& c : configs) {
        const RunResult r = run_once(o, w, c, run);
        std::fprintf(stderr, "run %d/%d %-7s pipe %-8s %8.1f MB/s  %6.3f s  child cpu %.2f s  rss +%" PRIu64 " KiB\n",
                     run, o.runs, c.kind.c_str(), pipe_label(c.pipe_size).c_str(),
                     static_cast<double>(w.payload_bytes) / 1e6 / r.seconds, r.seconds, r.child_cpu_s,
                     r.peak_rss_kb > r.idle_rss_kb ? r.peak_rss_kb - r.idle_rss_kb : 0);
        results[{c.kind, c.pipe_size}].push_back(r);
      }
    }

    const std::string load_after = loadavg();
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    std::printf("load average before: %s, after: %s (%ld cores)%s\n", load_before.c_str(), load_after.c_str(), cores,
                std::strtod(load_after.c_str(), nullptr) > static_cast<double>(cores)
                    ? "  WARNING: the machine was busy; absolute numbers are unreliable"
                    : "");

    std::map<std::pair<std::string, std::size_t>, Summary> sums;
    for (const auto& [key, runs] : results) sums[key] = summarise(runs, w);

    const double rss_limit_kb = 3.0 * static_cast<double>(w.largest_line) / 1024.0;
    std::printf("\n%-7s %-9s %-17s %11s %9s %9s %9s %9s %9s %9s %10s %12s\n", "child", "pipe", "effective in/out",
                "records/s", "MB/s", "min", "max", "wire MB/s", "child cpu", "drv cpu", "child vcsw", "RSS delta");
    for (const Config& c : configs) {
      const Summary& s = sums[{c.kind, c.pipe_size}];
      const std::string eff = pipe_label(s.pipe_in) + "/" + pipe_label(s.pipe_out);
      std::printf("%-7s %-9s %-17s %11.0f %9.1f %9.1f %9.1f %9.1f %8.2fs %8.2fs %10.0f %8.2f MiB\n", c.kind.c_str(),
                  pipe_label(c.pipe_size).c_str(), eff.c_str(), s.rps_median, s.mbps_median, s.mbps_min, s.mbps_max,
                  s.wire_mbps_median, s.child_cpu_median, s.driver_cpu_median, s.vcsw_median,
                  static_cast<double>(s.rss_delta_kb_max) / 1024.0);
    }
    std::printf("(medians of %d runs; MB = 10^6 bytes of decoded record payload; RSS delta = max over runs of "
                "VmHWM before shardEnded - VmRSS after initialize; limit 3 x largest line = %.2f MiB)\n\n",
                o.runs, rss_limit_kb / 1024.0);

    auto have = [&](const std::string& kind, std::size_t pipe) { return sums.count({kind, pipe}) > 0; };
    double node_best = 0;
    for (const std::size_t pipe : o.pipe_sizes) {
      if (have("node", pipe)) node_best = std::max(node_best, sums[{"node", pipe}].mbps_median);
    }
    for (const std::size_t pipe : o.pipe_sizes) {
      const std::string p = pipe_label(pipe);
      if (have("ack", pipe) && have("node", pipe)) {
        std::printf("ratio ack/node    pipe %-8s %6.2fx  (driver ceiling vs Node, same pipe)\n", p.c_str(),
                    sums[{"ack", pipe}].mbps_median / sums[{"node", pipe}].mbps_median);
      }
      for (const std::string kind : {"kclpp", "kclpp-b"}) {
        const char* k = kind.c_str();
        if (have(kind, pipe) && have("node", pipe)) {
          const double same = sums[{kind, pipe}].mbps_median / sums[{"node", pipe}].mbps_median;
          const double best = sums[{kind, pipe}].mbps_median / node_best;
          std::printf("ratio %s/node%*s pipe %-8s %6.2fx  (vs Node's best pipe: %.2fx)  target >= 6x: %s\n", k,
                      static_cast<int>(7 - kind.size()), "", p.c_str(), same, best,
                      std::min(same, best) >= 6.0 ? "PASS" : "FAIL");
        }
        if (have(kind, pipe) && have("ack", pipe)) {
          const double r = sums[{kind, pipe}].mbps_median / sums[{"ack", pipe}].mbps_median;
          std::printf("ratio %s/ack%*s  pipe %-8s %6.1f%%  target >= 60%%: %s\n", k,
                      static_cast<int>(7 - kind.size()), "", p.c_str(), 100.0 * r, r >= 0.60 ? "PASS" : "FAIL");
        }
        if (have(kind, pipe)) {
          const double kb = static_cast<double>(sums[{kind, pipe}].rss_delta_kb_max);
          std::printf("%s RSS delta%*s  pipe %-8s %6.2f MiB vs limit %.2f MiB: %s\n", k,
                      static_cast<int>(7 - kind.size()), "", p.c_str(), kb / 1024.0, rss_limit_kb / 1024.0,
                      kb < rss_limit_kb ? "PASS" : "FAIL");
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "protocol_throughput: error: %s\n", e.what());
    return 1;
  }
}
