// bench/lease_scale: N kclpp worker processes share M shards of a kinesalite stream through
// leases (docs/checkpoints.md §5), with the lease table on dynalite and on Postgres. For
// each store it measures, in one run:
//  - lease-table requests per minute at steady state, counted in each worker process (its
//    store's LeaseTable is wrapped and every call counted: lease_scale_worker.cpp), next
//    to what the Java KCL 2.x algorithm issues with the same settings (one renewal per held
//    lease per renew interval, one scan per take interval per worker);
//  - the time from kill -9 of a worker until every shard it held is processed again
//    (a processor initialized on it in another worker), and the same after SIGTERM;
//  - the balance reached (max - min leases per worker) and how long it took.
// See bench/README.md, "lease_scale".
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dynalite_fixture.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "lease_scale_worker.hpp"
#include "local_server.hpp"
#include "postgres_fixture.hpp"

namespace {

using namespace kclpp;
using std::chrono::milliseconds;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Options {
  int workers = 4;
  int shards = 200;
  milliseconds failover{3'000};
  milliseconds idle_time{1'000};        // the workers' idle_time_between_reads
  milliseconds put_interval{2'000};     // one record per shard this often
  int max_leases_to_steal = 1;
  double balance_timeout_s = 30;        // phase 1 stops waiting for max - min <= 1 then
  double steady_s = 18;                 // the counting window (3 take intervals at 3 s failover)
  double recovery_timeout_s = 30;
  std::vector<std::string> stores{"dynamodb", "postgres"};
  bool keep_logs = false;
  [[nodiscard]] double failover_s() const { return static_cast<double>(failover.count()) / 1000.0; }
  [[nodiscard]] double renew_s() const { return static_cast<double>(failover.count()) / 3000.0; }
  // kclpp's default take interval (LeaseOptions: the failover time) and the Java KCL's (twice it).
  [[nodiscard]] double take_s() const { return static_cast<double>(failover.count()) / 1000.0; }
  [[nodiscard]] double kcl_take_s() const { return static_cast<double>(failover.count()) * 2 / 1000.0; }
};

// ---------------------------------------------------------------------------------------
// The fleet: worker processes and what they report.

struct Counts {
  double list = 0, get = 0, create = 0, update = 0, remove = 0, checkpoints = 0;
  Counts& operator+=(const Counts& o) {
    list += o.list, get += o.get, create += o.create, update += o.update, remove += o.remove;
    checkpoints += o.checkpoints;
    return *this;
  }
  // Every request but the checkpoints (which the KCL writes just the same).
  [[nodiscard]] double coordination() const { return list + get + create + update + remove - checkpoints; }
  [[nodiscard]] double renewals() const { return update - checkpoints; }  // at steady state: no takes
};

struct Snapshot {
  double t;
  Counts counts;
};

struct Balance {
  int max = 0, min = 0, assigned = 0, workers = 0;
  [[nodiscard]] int spread() const { return max - min; }
};

class Fleet {
 public:
  Fleet(const Options& options, kclpp::bench::WorkerArgs base, std::string self, std::string log_prefix)
      : options_(options), base_(std::move(base)), self_(std::move(self)), log_prefix_(std::move(log_prefix)) {}
  ~Fleet() { stop(); }
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  void start() {
    for (int i = 0; i < options_.workers; ++i) spawn(i);
    reader_ = std::thread([this] { read_loop(); });
  }
  // SIGTERM to every worker, up to 30 s to exit, then SIGKILL; reaps them.
  void stop();

  // Sends `sig` to worker i; returns the shards it held just before.
  std::set<std::string> signal(int i, int sig) {
    const std::lock_guard lock(mutex_);
    auto shards = children_[static_cast<std::size_t>(i)].shards;
    ::kill(children_[static_cast<std::size_t>(i)].pid, sig);
    return shards;
  }
  // Polls `done` (under the lock) every 20 ms until it is true or `timeout_s` passed.
  bool wait_until(const std::function<bool()>& done, double timeout_s) {
    const double deadline = now_s() + timeout_s;
    for (;;) {
      {
        const std::lock_guard lock(mutex_);
        if (done()) return true;
      }
      if (now_s() > deadline) return false;
      std::this_thread::sleep_for(milliseconds{20});
    }
  }
  // Under the lock (inside wait_until's predicate) or alone.
  [[nodiscard]] Balance balance_locked() const;
  [[nodiscard]] Balance balance() const {
    const std::lock_guard lock(mutex_);
    return balance_locked();
  }
  // When every shard of `shards` had a processor initialized by another worker than
  // `from` after `since`: the last of those times; -1 while some have not.
  [[nodiscard]] double reprocessed_locked(const std::set<std::string>& shards, int from, double since) const;
  [[nodiscard]] int busiest() const;
  // Requests per minute over [t1, t2], summed over the workers, from their reports.
  [[nodiscard]] Counts rates(double t1, double t2) const;

 private:
  struct Child {
    pid_t pid = -1;
    int fd = -1;
    bool running = false;
    std::set<std::string> shards;
    std::vector<Snapshot> stats;
    std::string buffer;
  };
  struct Init {
    int child;
    double t;
  };

  void spawn(int i);
  void read_loop();
  void handle_line(int i, const std::string& line);
  [[nodiscard]] std::string log_path(int i) const { return log_prefix_ + "-w" + std::to_string(i) + ".log"; }

  const Options& options_;
  kclpp::bench::WorkerArgs base_;
  std::string self_;
  std::string log_prefix_;
  mutable std::mutex mutex_;
  std::vector<Child> children_;
  std::map<std::string, Init> inits_;  // shard -> the last processor initialized on it
  std::atomic<bool> stopping_{false};
  std::thread reader_;
};

void Fleet::spawn(int i) {
  std::vector<std::string> args{self_,
                                "--worker",
                                "--kinesis=" + base_.kinesis_endpoint,
                                "--dynamodb=" + base_.dynamodb_endpoint,
                                "--stream=" + base_.stream,
                                "--store=" + base_.store_uri,
                                "--app=" + base_.application,
                                "--worker-id=" + base_.application + "-w" + std::to_string(i),
                                "--failover-ms=" + std::to_string(options_.failover.count()),
                                "--idle-ms=" + std::to_string(options_.idle_time.count()),
                                "--steal=" + std::to_string(options_.max_leases_to_steal)};
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const std::string log = log_path(i);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) ::dup2(err, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) throw std::runtime_error("fork failed");
  const std::lock_guard lock(mutex_);
  if (children_.size() <= static_cast<std::size_t>(i)) children_.resize(static_cast<std::size_t>(i) + 1);
  auto& child = children_[static_cast<std::size_t>(i)];
  child.pid = pid;
  child.fd = out[0];
  child.running = true;
}

void Fleet::read_loop() {
  char buf[8192];
  while (!stopping_) {
    std::vector<pollfd> fds;
    std::vector<int> which;
    {
      const std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < children_.size(); ++i) {
        if (children_[i].fd >= 0) {
          fds.push_back({children_[i].fd, POLLIN, 0});
          which.push_back(static_cast<int>(i));
        }
      }
    }
    if (fds.empty()) return;
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const ssize_t n = ::read(fds[k].fd, buf, sizeof buf);
      const std::lock_guard lock(mutex_);
      auto& child = children_[static_cast<std::size_t>(which[k])];
      if (n <= 0) {  // the process has exited (or was killed): its processors are gone
        ::close(child.fd);
        child.fd = -1;
        child.running = false;
        child.shards.clear();
        continue;
      }
      child.buffer.append(buf, static_cast<std::size_t>(n));
      for (auto nl = child.buffer.find('\n'); nl != std::string::npos; nl = child.buffer.find('\n')) {
        const std::string line = child.buffer.substr(0, nl);
        child.buffer.erase(0, nl + 1);
        handle_line(which[k], line);
      }
    }
  }
}

// Under the lock.
void Fleet::handle_line(int i, const std::string& line) {
  std::istringstream in(line);
  std::string kind;
  in >> kind;
  auto& child = children_[static_cast<std::size_t>(i)];
  if (kind == "S") {
    Snapshot s{};
    in >> s.t >> s.counts.list >> s.counts.get >> s.counts.create >> s.counts.update >> s.counts.remove >>
        s.counts.checkpoints;
    if (in) child.stats.push_back(s);
    return;
  }
  std::string shard;
  double t = 0;
  in >> shard >> t;
  if (!in) return;
  if (kind == "I") {
    child.shards.insert(shard);
    inits_[shard] = Init{i, t};
  } else if (kind == "L") {
    child.shards.erase(shard);
  }
}

void Fleet::stop() {
  std::vector<pid_t> pids;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& child : children_) {
      if (child.pid > 0) pids.push_back(child.pid);
    }
  }
  for (const pid_t pid : pids) ::kill(pid, SIGTERM);
  const double deadline = now_s() + 30;
  for (const pid_t pid : pids) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (now_s() > deadline) {
        std::cerr << "lease_scale: worker " << pid << " did not exit within 30 s of SIGTERM; killing it\n";
        ::kill(pid, SIGKILL);
        (void)::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds{20});
    }
  }
  {
    const std::lock_guard lock(mutex_);
    for (auto& child : children_) child.pid = -1;
  }
  stopping_ = true;
  if (reader_.joinable()) reader_.join();
  const std::lock_guard lock(mutex_);
  for (auto& child : children_) {
    if (child.fd >= 0) ::close(child.fd);
    child.fd = -1;
  }
  if (!options_.keep_logs) {
    for (std::size_t i = 0; i < children_.size(); ++i) ::unlink(log_path(static_cast<int>(i)).c_str());
  }
}

Balance Fleet::balance_locked() const {
  Balance b;
  b.min = 1 << 30;
  for (const auto& child : children_) {
    if (!child.running) continue;
    const int n = static_cast<int>(child.shards.size());
    b.max = std::max(b.max, n);
    b.min = std::min(b.min, n);
    b.assigned += n;
    ++b.workers;
  }
  if (b.workers == 0) b.min = 0;
  return b;
}

double Fleet::reprocessed_locked(const std::set<std::string>& shards, int from, double since) const {
  // A shard stolen from `from` just before the signal may have its new processor already
  // (and `from` never reported losing it): it counts as processed again at `since`.
  double last = since;
  for (const auto& shard : shards) {
    const auto it = inits_.find(shard);
    if (it == inits_.end() || it->second.child == from) return -1;
    last = std::max(last, it->second.t);
  }
  return last;
}

int Fleet::busiest() const {
  const std::lock_guard lock(mutex_);
  int best = -1;
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (!children_[i].running) continue;
    if (best < 0 || children_[i].shards.size() > children_[static_cast<std::size_t>(best)].shards.size()) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

Counts Fleet::rates(double t1, double t2) const {
  const std::lock_guard lock(mutex_);
  Counts total;
  for (const auto& child : children_) {
    if (child.stats.size() < 2) continue;
    // The last report at or before t1 and the first at or after t2.
    auto a = std::upper_bound(child.stats.begin(), child.stats.end(), t1,
                              [](double t, const Snapshot& s) { return t < s.t; });
    if (a != child.stats.begin()) --a;
    auto b = std::lower_bound(child.stats.begin(), child.stats.end(), t2,
                              [](const Snapshot& s, double t) { return s.t < t; });
    if (b == child.stats.end()) --b;
    const double minutes = (b->t - a->t) / 60.0;
    if (minutes <= 0) continue;
    Counts d;
    d.list = (b->counts.list - a->counts.list) / minutes;
    d.get = (b->counts.get - a->counts.get) / minutes;
    d.create = (b->counts.create - a->counts.create) / minutes;
    d.update = (b->counts.update - a->counts.update) / minutes;
    d.remove = (b->counts.remove - a->counts.remove) / minutes;
    d.checkpoints = (b->counts.checkpoints - a->counts.checkpoints) / minutes;
    total += d;
  }
  return total;
}

// ---------------------------------------------------------------------------------------
// The stream: kinesalite with room for the shards, and a producer putting one record per
// shard every put_interval (so that processors checkpoint, as a real application would).

kclpp::test::NodeServerSpec kinesalite_spec(int shards) {
  kclpp::test::NodeServerSpec spec;
  spec.name = "kinesalite";
  spec.script = "kinesalite/cli.js";
  spec.argv = [shards](const std::string& node, const std::string& script, int port) {
    return std::vector<std::string>{node, script, "--port", std::to_string(port), "--createStreamMs", "0",
                                    "--shardLimit", std::to_string(shards + 10)};
  };
  spec.probe = [](const std::string& endpoint) {
    aws::KinesisClient probe(
        kclpp::test::local_client_options<aws::KinesisOptions>(endpoint, milliseconds{500}, milliseconds{2'000}));
    (void)probe.describe_stream_summary("kclpp-readiness-probe");
  };
  return spec;
}

aws::KinesisOptions kinesis_options(const std::string& endpoint) {
  return kclpp::test::local_client_options<aws::KinesisOptions>(endpoint, milliseconds{2'000}, milliseconds{20'000});
}

class Producer {
 public:
  Producer(const std::string& endpoint, std::string stream, milliseconds interval)
      : client_(kinesis_options(endpoint)), stream_(std::move(stream)), interval_(interval) {
    for (const auto& shard : client_.list_shards(stream_)) hash_keys_.push_back(shard.starting_hash_key);
    thread_ = std::thread([this] { run(); });
  }
  ~Producer() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, interval_, [this] { return stopping_; })) {
      lock.unlock();
      std::vector<aws::PutRecordsEntry> entries;
      for (const auto& key : hash_keys_) entries.push_back({"lease-scale record", "k", key});
      try {
        for (std::size_t at = 0; at < entries.size(); at += 500) {
          const std::vector<aws::PutRecordsEntry> part(entries.begin() + static_cast<long>(at),
                                                       entries.begin() + static_cast<long>(std::min(at + 500, entries.size())));
          (void)client_.put_records(stream_, part);
        }
      } catch (const std::exception& e) {
        std::cerr << "lease_scale: producer: " << e.what() << "\n";
      }
      lock.lock();
    }
  }

  aws::KinesisClient client_;
  std::string stream_;
  milliseconds interval_;
  std::vector<std::string> hash_keys_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------
// One store's run.

struct Recovery {
  int shards = 0;
  double seconds = -1;  // -1: not every shard was processed again within the timeout
  Balance after;
};

struct StoreResult {
  std::string store;
  double all_assigned_s = -1;  // from the start of the workers until every shard had a processor
  double balanced_s = -1;      // ... until max - min <= 1 (-1: not within balance_timeout_s)
  Balance first;               // when every shard first had a processor
  Balance balance;             // when the counting window started
  Counts kclpp;                // requests per minute
  double kcl_renewals = 0;     // the KCL 2.x model, per minute
  double kcl_scans = 0;
  Recovery killed;
  Recovery terminated;
};

Recovery recover(Fleet& fleet, const Options& options, int sig) {
  Recovery r;
  const int victim = fleet.busiest();
  const double t0 = now_s();
  const auto shards = fleet.signal(victim, sig);
  r.shards = static_cast<int>(shards.size());
  double done_at = -1;
  fleet.wait_until(
      [&] {
        done_at = fleet.reprocessed_locked(shards, victim, t0);
        return done_at >= 0;
      },
      options.recovery_timeout_s);
  if (done_at >= 0) r.seconds = done_at - t0;
  // Let the survivors settle (their next take round) before reading the balance.
  std::this_thread::sleep_for(std::chrono::duration<double>(options.take_s() + 0.5));
  r.after = fleet.balance();
  return r;
}

void phase_balance(Fleet& fleet, const Options& options, StoreResult& result) {
  const double t0 = now_s();
  fleet.start();
  fleet.wait_until(
      [&] {
        const auto b = fleet.balance_locked();
        if (b.assigned == options.shards && result.all_assigned_s < 0) {
          result.all_assigned_s = now_s() - t0;
          result.first = b;
        }
        if (b.assigned == options.shards && b.spread() <= 1) {
          result.balanced_s = now_s() - t0;
          return true;
        }
        return false;
      },
      options.balance_timeout_s);
  result.balance = fleet.balance();
}

void phase_steady(Fleet& fleet, const Options& options, StoreResult& result) {
  std::this_thread::sleep_for(std::chrono::seconds{1});
  const double t1 = now_s();
  std::this_thread::sleep_for(std::chrono::duration<double>(options.steady_s));
  const double t2 = now_s();
  std::this_thread::sleep_for(milliseconds{400});  // one more report from every worker
  result.kclpp = fleet.rates(t1, t2);
  const auto held = fleet.balance();
  // The KCL renews every lease it holds, SHARD_END ones too (none in this stream), every
  // failover/3: every lease is held at steady state. Each worker scans the table every
  // take interval (2 x failover).
  result.kcl_renewals = options.shards * 60.0 / options.renew_s();
  result.kcl_scans = held.workers * 60.0 / options.kcl_take_s();
}

StoreResult run_store(const Options& options, const std::string& store, const std::string& self,
                      const kclpp::bench::WorkerArgs& base) {
  StoreResult result;
  result.store = store;
  Fleet fleet(options, base, self, "/tmp/kclpp_bench_lease_scale-" + store);
  std::cerr << "lease_scale: " << store << ": starting " << options.workers << " workers\n";
  phase_balance(fleet, options, result);
  std::cerr << "lease_scale: " << store << ": all assigned after " << result.all_assigned_s << " s, balance "
            << result.balance.spread() << "; counting for " << options.steady_s << " s\n";
  phase_steady(fleet, options, result);
  std::cerr << "lease_scale: " << store << ": kill -9 of the busiest worker\n";
  result.killed = recover(fleet, options, SIGKILL);
  std::cerr << "lease_scale: " << store << ": SIGTERM of the busiest worker\n";
  result.terminated = recover(fleet, options, SIGTERM);
  fleet.stop();
  return result;
}

// ---------------------------------------------------------------------------------------
// Output.

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string ratio(double a, double b) { return b > 0 ? fmt(a / b, 2) : "-"; }

void print_row(const std::string& store, const std::string& what, const std::string& kclpp, const std::string& kcl,
               const std::string& r, const std::string& target) {
  std::printf("%-9s %-44s %12s %12s %7s  %s\n", store.c_str(), what.c_str(), kclpp.c_str(), kcl.c_str(), r.c_str(),
              target.c_str());
}

void print_recovery(const StoreResult& s, const char* what, const Recovery& r, double target) {
  const std::string verdict = r.seconds < 0 ? "FAIL (not within the timeout)"
                                            : (r.seconds <= target ? "PASS" : "FAIL");
  print_row(s.store, std::string(what) + " (" + std::to_string(r.shards) + " shards), s",
            r.seconds < 0 ? "timeout" : fmt(r.seconds, 2), "-", "-", "<= " + fmt(target, 1) + " s " + verdict);
  print_row(s.store, "  then max - min leases (" + std::to_string(r.after.workers) + " workers)",
            std::to_string(r.after.spread()), "-", "-", "");
}

void print_result(const StoreResult& s, const Options& o) {
  const auto& k = s.kclpp;
  const double kcl = s.kcl_renewals + s.kcl_scans;
  print_row(s.store, "requests/min without checkpoints", fmt(k.coordination()), fmt(kcl), ratio(k.coordination(), kcl),
            std::string("<= 1.00 ") + (k.coordination() <= kcl ? "PASS" : "FAIL"));
  print_row(s.store, "  renewals/min", fmt(k.renewals()), fmt(s.kcl_renewals), ratio(k.renewals(), s.kcl_renewals), "");
  print_row(s.store, "  scans/min (list)", fmt(k.list), fmt(s.kcl_scans), ratio(k.list, s.kcl_scans), "");
  print_row(s.store, "  single-lease reads/min (get)", fmt(k.get), "-", "-", "");
  print_row(s.store, "  creates + deletes/min", fmt(k.create + k.remove), "-", "-", "");
  print_row(s.store, "checkpoints/min (same in both)", fmt(k.checkpoints), fmt(k.checkpoints), "", "");
  print_row(s.store, "requests/min with checkpoints", fmt(k.coordination() + k.checkpoints), fmt(kcl + k.checkpoints),
            ratio(k.coordination() + k.checkpoints, kcl + k.checkpoints), "");
  print_row(s.store, "every shard processed after start, s", fmt(s.all_assigned_s, 2), "-", "-", "");
  print_row(s.store, "  max - min leases then", std::to_string(s.first.spread()), "-", "-",
            std::to_string(s.first.max) + " / " + std::to_string(s.first.min));
  print_row(s.store, "balanced (max - min <= 1) after start, s", s.balanced_s < 0 ? "not yet" : fmt(s.balanced_s, 2),
            "-", "-", "within " + fmt(o.balance_timeout_s, 0) + " s");
  print_row(s.store, "  max - min leases when counting began", std::to_string(s.balance.spread()), "-", "-",
            std::to_string(s.balance.max) + " / " + std::to_string(s.balance.min));
  print_recovery(s, "kill -9 -> all its shards processed again", s.killed, o.failover_s() + o.take_s());
  print_recovery(s, "SIGTERM -> all its shards processed again", s.terminated, o.take_s());
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---------------------------------------------------------------------------------------
// Command line.

bool take_value(const std::string& arg, const char* name, std::string& out) {
  const std::string prefix = std::string(name) + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  out = arg.substr(prefix.size());
  return true;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int worker_main(int argc, char** argv) {
  kclpp::bench::WorkerArgs args;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    std::string v;
    if (take_value(a, "--kinesis", v)) args.kinesis_endpoint = v;
    else if (take_value(a, "--dynamodb", v)) args.dynamodb_endpoint = v;
    else if (take_value(a, "--stream", v)) args.stream = v;
    else if (take_value(a, "--store", v)) args.store_uri = v;
    else if (take_value(a, "--app", v)) args.application = v;
    else if (take_value(a, "--worker-id", v)) args.worker_id = v;
    else if (take_value(a, "--failover-ms", v)) args.failover = milliseconds{std::stol(v)};
    else if (take_value(a, "--idle-ms", v)) args.idle_time = milliseconds{std::stol(v)};
    else if (take_value(a, "--steal", v)) args.max_leases_to_steal = std::stoi(v);
  }
  return kclpp::bench::run_worker(args);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    std::string v;
    if (take_value(a, "--workers", v)) o.workers = std::stoi(v);
    else if (take_value(a, "--shards", v)) o.shards = std::stoi(v);
    else if (take_value(a, "--failover-ms", v)) o.failover = milliseconds{std::stol(v)};
    else if (take_value(a, "--idle-ms", v)) o.idle_time = milliseconds{std::stol(v)};
    else if (take_value(a, "--put-interval-ms", v)) o.put_interval = milliseconds{std::stol(v)};
    else if (take_value(a, "--max-leases-to-steal", v)) o.max_leases_to_steal = std::stoi(v);
    else if (take_value(a, "--balance-timeout", v)) o.balance_timeout_s = std::stod(v);
    else if (take_value(a, "--steady", v)) o.steady_s = std::stod(v);
    else if (take_value(a, "--only", v)) o.stores = split_list(v);
    else if (a == "--keep-logs") o.keep_logs = true;
    else throw std::invalid_argument("unknown option " + a + " (see bench/README.md, lease_scale)");
  }
  if (o.workers < 3) throw std::invalid_argument("--workers must be at least 3 (one is killed, one terminated)");
  if (o.shards < o.workers) throw std::invalid_argument("--shards must be at least --workers");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--worker") return worker_main(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  try {
    const Options options = parse(argc, argv);
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
    const std::string exe(self, static_cast<std::size_t>(n));

    kclpp::test::NodeServer kinesalite(kinesalite_spec(options.shards));
    if (!kinesalite.available()) throw std::runtime_error(kinesalite.unavailable_reason());
    const std::string stream = "lease-scale";
    {
      aws::KinesisClient admin(kinesis_options(kinesalite.endpoint()));
      admin.create_stream(stream, options.shards);
      admin.wait_for_active(stream, milliseconds{60'000});
    }
    Producer producer(kinesalite.endpoint(), stream, options.put_interval);
    std::cout << "lease_scale: " << options.workers << " worker processes, " << options.shards
              << " shards (kinesalite), failover " << options.failover.count() << " ms (renew every "
              << fmt(options.renew_s(), 2) << " s, take every " << fmt(options.take_s(), 1) << " s (the KCL: "
              << fmt(options.kcl_take_s(), 1)
              << " s), max leases to steal " << options.max_leases_to_steal << ", one record per shard every "
              << options.put_interval.count() << " ms, a checkpoint per batch\n"
              << "counted: every LeaseTable call of each worker process (its store's lease table wrapped in a "
                 "counter), summed over the workers; the KCL 2.x column is its algorithm's requests at the "
                 "same settings and lease counts\n"
              << "load average at start: " << load_average() << "\n";
    std::vector<StoreResult> results;
    for (const auto& store : options.stores) {
      kclpp::bench::WorkerArgs base;
      base.kinesis_endpoint = kinesalite.endpoint();
      base.stream = stream;
      base.application = "lease-scale-" + store;
      if (store == "dynamodb") {
        kclpp::test::Dynalite dynalite;
        if (!dynalite.available()) throw std::runtime_error(dynalite.unavailable_reason());
        base.dynamodb_endpoint = dynalite.endpoint();
        base.store_uri = "dynamodb:" + base.application;
        results.push_back(run_store(options, store, exe, base));
      } else if (store == "postgres") {
        if (const auto why = kclpp::test::Postgres::unavailable_reason()) throw std::runtime_error(*why);
        kclpp::test::Postgres postgres;
        base.store_uri = postgres.uri();
        results.push_back(run_store(options, store, exe, base));
      } else {
        throw std::invalid_argument("--only takes dynamodb and postgres, not " + store);
      }
    }
    std::printf("\n%-9s %-44s %12s %12s %7s  %s\n", "store", "metric", "kclpp", "KCL 2.x", "ratio", "target");
    for (const auto& r : results) print_result(r, options);
    std::cout << "load average at end: " << load_average() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "lease_scale: " << e.what() << "\n";
    return 1;
  }
}
