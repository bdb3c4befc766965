// Fleets of native worker PROCESSES sharing one stream through leases (issue 12 §4,
// docs/checkpoints.md §5), on kinesalite, with the lease table on dynalite (dynamodb:),
// Postgres and SQLite. Every worker is tests/integration/reliability_processor.cpp run
// natively through kclpp::main with KCLPP_RELIABILITY_EVENTS=1: it durably logs each
// record and each lifecycle call with a CLOCK_MONOTONIC time before checkpointing, so the
// test can compare the log with what the producer put and with the table it polls.
//
// FleetTest.Scenarios/<store>: one fleet on 12 shards while a producer puts continuously:
//   1. 3 workers converge to 4/4/4 (time printed);
//   5. a 4th joins and steals one lease per take round up to 3/3/3/3;
//   4. SIGTERM one: its leases are released and taken within one take interval (+ slack);
//   2. kill -9 one: its shards restart on the others within failover + take (+ slack);
//   3. (SQLite and DynamoDB) SIGSTOP one past the failover time, then SIGCONT: its
//      processors get lease_lost and process nothing more for the shards it lost;
//   7. the table unreachable for longer than the failover time (dynalite SIGSTOPped,
//      Postgres stopped, SQLite write-locked by the test): nothing is processed while no
//      lease can be renewed, no shard has two workers across the outage, all recover.
//   Throughout: a poller (table_watch.hpp) reads the table every ~50 ms and no checkpoint
//   ever moves backwards; at the end every record put was processed, with at most one
//   batch of re-deliveries per processor start.
// FleetTest.SplitAndMerge (SQLite): a split and a merge while 2 workers hold the shards:
//   no child starts before its parents' SHARD_END.
// Timings: failover 1500 ms, take interval 500 ms, idle time 150 ms.

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dynalite_fixture.hpp"
#include "e2e_support.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/lease_table.hpp"
#include "kclpp/processor/error.hpp"
#include "kinesalite_fixture.hpp"
#include "local_server.hpp"
#include "postgres_fixture.hpp"
#include "support.hpp"
#include "table_watch.hpp"

namespace {

using namespace std::chrono_literals;
using kclpp::Sentinel;
using kclpp::aws::KinesisClient;
using kclpp::test::Subprocess;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using kclpp::test::leases::balanced;
using kclpp::test::leases::describe_counts;
using kclpp::test::leases::ns;
using kclpp::test::leases::owned_by;
using kclpp::test::leases::owner_counts;
using kclpp::test::leases::Snapshot;
using kclpp::test::leases::TableWatch;

constexpr milliseconds failover{1'500};
constexpr milliseconds take_interval{500};
constexpr milliseconds idle_time{150};
constexpr int max_records = 25;  // one batch: the bound on re-deliveries per processor start
// Scheduling on 2 shared cores: processes start, shut down and get CPU late.
constexpr milliseconds slack{1'500};
const std::string application = "fleet";

constexpr std::int64_t to_ns(milliseconds d) { return d.count() * 1'000'000; }
double seconds_between(std::int64_t from_ns, std::int64_t to_ns) { return static_cast<double>(to_ns - from_ns) / 1e9; }

// --- the lease stores ---------------------------------------------------------------------

// One lease store under test: started once per test, made unreachable and reachable again.
class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  // Why it cannot run here ("" when it can).
  [[nodiscard]] virtual std::string missing() const = 0;
  virtual void start(const std::filesystem::path& dir) = 0;
  [[nodiscard]] virtual std::string uri() const = 0;
  // Extra worker arguments (the DynamoDB endpoint).
  [[nodiscard]] virtual std::vector<std::string> worker_args() const { return {}; }
  // For the test's own reader of the table.
  [[nodiscard]] virtual kclpp::native::StoreOptions options() const { return {}; }
  virtual void make_unreachable() = 0;
  virtual void make_reachable() = 0;
  // What "unreachable" means for this store, for the output.
  [[nodiscard]] virtual const char* outage() const = 0;
};

// A SQLite file. "Unreachable": the test holds the write lock (BEGIN EXCLUSIVE; in WAL mode
// readers go on, every write waits). Writers wait for the lock up to their busy timeout,
// so for the workers the table stops answering writes.
class SqliteBackend final : public StoreBackend {
 public:
  ~SqliteBackend() override { make_reachable(); }
  [[nodiscard]] std::string missing() const override { return ""; }
  void start(const std::filesystem::path& dir) override { path_ = (dir / "leases.db").string(); }
  [[nodiscard]] std::string uri() const override { return "sqlite:" + path_; }
  void make_unreachable() override {
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 10'000);
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, &error);
    ASSERT_EQ(rc, SQLITE_OK) << "BEGIN EXCLUSIVE on " << path_ << ": " << (error ? error : "?");
  }
  void make_reachable() override {
    if (db_ == nullptr) return;
    sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }
  [[nodiscard]] const char* outage() const override { return "write lock held by the test"; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// A Postgres server of its own. "Unreachable": stopped (pg_ctl stop -m immediate), then
// started again on the same port.
class PostgresBackend final : public StoreBackend {
 public:
  [[nodiscard]] std::string missing() const override {
    return kclpp::test::Postgres::unavailable_reason().value_or("");
  }
  void start(const std::filesystem::path&) override {
    pg_ = std::make_unique<kclpp::test::Postgres>();
    uri_ = pg_->create_database();
  }
  [[nodiscard]] std::string uri() const override { return uri_; }
  void make_unreachable() override { pg_->stop(); }
  void make_reachable() override { pg_->start(); }
  [[nodiscard]] const char* outage() const override { return "server stopped"; }

 private:
  std::unique_ptr<kclpp::test::Postgres> pg_;
  std::string uri_;
};

// dynalite. "Unreachable": the server process SIGSTOPped (connections hang), then SIGCONT.
class DynamoDbBackend final : public StoreBackend {
 public:
  ~DynamoDbBackend() override { make_reachable(); }
  [[nodiscard]] std::string missing() const override {
    return kclpp::test::node_unavailable("dynalite/cli.js");
  }
  void start(const std::filesystem::path&) override { server_ = std::make_unique<kclpp::test::Dynalite>(); }
  [[nodiscard]] std::string uri() const override { return "dynamodb:fleet-leases"; }
  [[nodiscard]] std::vector<std::string> worker_args() const override {
    return {"--dynamodb-endpoint", server_->endpoint()};
  }
  [[nodiscard]] kclpp::native::StoreOptions options() const override {
    kclpp::native::StoreOptions o;
    o.dynamodb = kclpp::test::dynamodb_test_options(server_->endpoint(), 1s);
    o.dynamodb.connect_timeout = 500ms;
    return o;
  }
  void make_unreachable() override {
    ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
    stopped_ = true;
  }
  void make_reachable() override {
    if (stopped_ && server_) ::kill(server_->pid(), SIGCONT);
    stopped_ = false;
  }
  [[nodiscard]] const char* outage() const override { return "dynalite SIGSTOPped"; }

 private:
  std::unique_ptr<kclpp::test::Dynalite> server_;
  bool stopped_ = false;
};

// The table as the test's own reader opens it (kept by value: the backend's endpoint and
// URI do not change across an outage).
kclpp::test::leases::TableSpec table_spec(const StoreBackend& backend, const std::string& stream) {
  return {backend.uri(), backend.options(), application, stream};
}

std::unique_ptr<StoreBackend> make_backend(const std::string& name) {
  if (name == "Sqlite") return std::make_unique<SqliteBackend>();
  if (name == "Postgres") return std::make_unique<PostgresBackend>();
  return std::make_unique<DynamoDbBackend>();
}

// --- the processors' durable log ------------------------------------------------------------

struct RecordLine {
  std::int64_t ns = 0;
  std::string worker, instance, shard, seq, data;
};
struct EventLine {
  std::int64_t ns = 0;
  std::string worker, instance, shard, event, detail;
};
struct ProcessLog {
  std::vector<RecordLine> records;  // in file order
  std::vector<EventLine> events;
};

// Reads the log (see reliability_processor.cpp); lines torn by a kill -9 are skipped.
ProcessLog read_log(const std::filesystem::path& path) {
  ProcessLog out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string tag, time, sub, extra;
    if (line.rfind("T ", 0) == 0) {
      RecordLine r;
      if (f >> tag >> time >> r.worker >> r.instance >> r.shard >> r.seq >> sub >> r.data && !(f >> extra)) {
        r.ns = std::stoll(time);
        out.records.push_back(std::move(r));
      }
    } else if (line.rfind("E ", 0) == 0) {
      EventLine e;
      if (f >> tag >> time >> e.worker >> e.instance >> e.shard >> e.event >> e.detail && !(f >> extra)) {
        e.ns = std::stoll(time);
        out.events.push_back(std::move(e));
      }
    }
  }
  return out;
}

// The first `event` of `shard` by a worker other than `not_worker`, at or after `after`.
std::optional<std::int64_t> first_event(const ProcessLog& log, const std::string& shard, const std::string& event,
                                        const std::string& not_worker, std::int64_t after) {
  std::optional<std::int64_t> best;
  for (const auto& e : log.events) {
    if (e.shard == shard && e.event == event && e.worker != not_worker && e.ns >= after && (!best || e.ns < *best)) {
      best = e.ns;
    }
  }
  return best;
}

// --- the producer -------------------------------------------------------------------------

// Puts "p0", "p1", ... with random partition keys from its own thread until stop();
// remembers the data of every acknowledged record per shard. Thread safety: stop() and
// the accessors from the test thread.
class Producer {
 public:
  Producer(kclpp::aws::KinesisOptions options, std::string stream, std::uint64_t seed)
      : client_(std::move(options)), stream_(std::move(stream)), rng_(seed) {
    thread_ = std::thread([this] { run(); });
  }
  ~Producer() { stop(); }
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<std::string, std::set<std::string>> put() {
    const std::lock_guard lock(mutex_);
    return put_;
  }
  std::size_t count() {
    const std::lock_guard lock(mutex_);
    return count_;
  }
  [[nodiscard]] int failed_calls() const { return failed_.load(); }

 private:
  void run() {
    std::vector<kclpp::aws::PutRecordsEntry> batch;
    while (!stop_) {
      for (int i = 0; i < 3; ++i) batch.push_back({"p" + std::to_string(next_++), "key-" + std::to_string(rng_()), {}});
      try {
        const auto results = client_.put_records(stream_, batch);
        std::vector<kclpp::aws::PutRecordsEntry> rejected;
        const std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < results.size() && i < batch.size(); ++i) {
          if (results[i].ok()) {
            put_[results[i].shard_id].insert(batch[i].data);
            ++count_;
          } else {
            rejected.push_back(std::move(batch[i]));
          }
        }
        batch = std::move(rejected);
      } catch (const kclpp::Error&) {
        ++failed_;  // in doubt: these records may or may not be in the stream
        batch.clear();
      }
      std::this_thread::sleep_for(25ms);
    }
  }

  KinesisClient client_;
  std::string stream_;
  std::mt19937_64 rng_;
  std::uint64_t next_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  std::mutex mutex_;
  std::map<std::string, std::set<std::string>> put_;
  std::size_t count_ = 0;
  std::thread thread_;
};

// --- the fleet ----------------------------------------------------------------------------

// Worker processes by name; the name is also the worker id and the log's WORKER field.
class Fleet {
 public:
  Fleet(const StoreBackend& backend, std::string kinesis_endpoint, std::string stream, std::filesystem::path log)
      : backend_(backend), endpoint_(std::move(kinesis_endpoint)), stream_(std::move(stream)), log_(std::move(log)) {}

  Subprocess& spawn(const std::string& name) {
    std::vector<std::string> argv{KCLPP_RELIABILITY_PROCESSOR,
                                  "--stream", stream_,
                                  "--endpoint", endpoint_,
                                  "--region", "us-east-1",
                                  "--application", application,
                                  "--lease-store", backend_.uri(),
                                  "--worker-id", name,
                                  "--initial-position", "TRIM_HORIZON",
                                  "--failover-ms", std::to_string(failover.count()),
                                  "--take-interval-ms", std::to_string(take_interval.count()),
                                  "--max-records", std::to_string(max_records),
                                  "--idle-time-ms", std::to_string(idle_time.count()),
                                  "--shard-sync-ms", "2000",
                                  "--shutdown-grace-ms", "5000"};
    for (const auto& a : backend_.worker_args()) argv.push_back(a);
    kclpp::test::SpawnOptions options;
    options.env = kclpp::test::tool_env("info", {"KCLPP_RELIABILITY_OUT=" + log_.string(),
                                                 "KCLPP_RELIABILITY_ROUND=" + name, "KCLPP_RELIABILITY_EVENTS=1",
                                                 "KCLPP_RELIABILITY_PAUSE_MS=20"});
    auto& slot = workers_[name];
    slot = std::make_unique<Subprocess>(argv, options);
    return *slot;
  }
  Subprocess& operator[](const std::string& name) { return *workers_.at(name); }
  // Every worker's stderr, for failure messages (the last `tail` bytes of each).
  std::string logs(std::size_t tail = 3000) {
    std::string out;
    for (auto& [name, w] : workers_) {
      const std::string err = w->stderr_text();
      out += "--- " + name + " ---\n" + (err.size() > tail ? err.substr(err.size() - tail) : err);
    }
    return out;
  }
  // SIGTERM to every worker still running, and their exit codes.
  void stop_all() {
    for (auto& [name, w] : workers_) {
      if (!w->wait(0ms)) ::kill(w->pid(), SIGTERM);  // only while not reaped: the pid is ours
    }
    for (auto& [name, w] : workers_) {
      const auto status = w->wait(20s);
      if (!status) ADD_FAILURE() << name << " did not exit within 20 s of SIGTERM";
    }
  }

 private:
  const StoreBackend& backend_;
  std::string endpoint_;
  std::string stream_;
  std::filesystem::path log_;
  std::map<std::string, std::unique_ptr<Subprocess>> workers_;
};

// Waits until the log holds every record the producer put.
bool wait_all_processed(Producer& producer, const std::filesystem::path& log, milliseconds timeout,
                        std::string& missing_out) {
  const auto put = producer.put();
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    std::map<std::string, std::set<std::string>> seen;
    for (const auto& r : read_log(log).records) seen[r.shard].insert(r.data);
    std::size_t missing = 0;
    std::string example;
    for (const auto& [shard, data] : put) {
      for (const auto& d : data) {
        if (seen[shard].count(d) == 0) {
          if (missing++ == 0) example = shard + " " + d;
        }
      }
    }
    if (missing == 0) return true;
    if (SteadyClock::now() >= deadline) {
      missing_out = std::to_string(missing) + " records never processed, e.g. " + example;
      return false;
    }
    std::this_thread::sleep_for(200ms);
  }
}

// Re-deliveries: within one processor instance none; each instance re-processes at most one
// batch of records that an earlier instance (in time) had processed. Returns the total.
int check_redeliveries(const ProcessLog& log) {
  std::vector<RecordLine> records = log.records;
  std::stable_sort(records.begin(), records.end(), [](const RecordLine& a, const RecordLine& b) { return a.ns < b.ns; });
  std::map<std::string, std::set<std::string>> seen;                 // shard -> data
  std::map<std::string, std::set<std::string>> own;                  // instance -> data
  std::map<std::string, int> redelivered;                            // instance -> count
  for (const auto& r : records) {
    EXPECT_TRUE(own[r.instance].insert(r.data).second)
        << "processor " << r.instance << " (" << r.worker << ") got " << r.shard << " " << r.data << " twice";
    if (!seen[r.shard].insert(r.data).second) ++redelivered[r.instance];
  }
  int total = 0;
  for (const auto& [instance, n] : redelivered) {
    EXPECT_LE(n, max_records) << "processor " << instance << " re-processed " << n
                              << " records: more than one batch (" << max_records << ")";
    total += n;
  }
  return total;
}

class FleetTest : public ::testing::TestWithParam<std::string> {};

std::string param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// Scenario 3: SIGSTOP `victim` past the failover time, SIGCONT it, check that it processes
// nothing more for the shards it lost and that its processors got lease_lost.
void stop_and_continue(Fleet& fleet, TableWatch& watch, const std::filesystem::path& log_path,
                       const std::string& victim, const std::vector<std::string>& all) {
  const std::int64_t t_stop = ns(SteadyClock::now());
  ASSERT_EQ(::kill(fleet[victim].pid(), SIGSTOP), 0);
  std::vector<std::string> others;
  for (const auto& w : all) {
    if (w != victim) others.push_back(w);
  }
  // Its leases expire for the others, who take them all.
  const auto taken = watch.wait_for(
      [&](const Snapshot& s) { return owned_by(s, victim).empty() && owner_counts(s).count("") == 0; },
      failover + take_interval + slack * 2, t_stop);
  std::this_thread::sleep_for(500ms);
  const std::int64_t t_cont = ns(SteadyClock::now());
  ASSERT_EQ(::kill(fleet[victim].pid(), SIGCONT), 0);
  ASSERT_TRUE(taken.has_value()) << "the leases of the stopped worker were not taken:\n" << fleet.logs();
  std::cout << "[ figures  ] SIGSTOP: the others held every lease " << seconds_between(t_stop, *taken)
            << " s after the stop" << std::endl;
  // It loses them, then steals its share back.
  ASSERT_TRUE(watch.wait_for(balanced(all, 12 / static_cast<int>(all.size())), 20s, t_cont))
      << "no balance after SIGCONT: " << describe_counts(*watch.latest()) << "\n" << fleet.logs();
  EXPECT_TRUE(fleet[victim].wait_stderr("leases: lost the lease of", 1s)) << fleet[victim].stderr_text();

  const ProcessLog log = read_log(log_path);
  // The victim's processors alive at SIGSTOP: started before it and not ended before it.
  std::map<std::string, std::string> alive;  // instance -> shard
  std::set<std::string> ended_before;
  for (const auto& e : log.events) {
    if (e.worker != victim || e.ns >= t_stop) continue;
    if (e.event == "initialize") alive[e.instance] = e.shard;
    if (e.event == "lease_lost" || e.event == "shard_ended") ended_before.insert(e.instance);
  }
  for (const auto& i : ended_before) alive.erase(i);
  EXPECT_FALSE(alive.empty()) << "the stopped worker ran no processor";
  int checkpoint_failures = 0;
  for (const auto& [instance, shard] : alive) {
    bool lost = false;
    for (const auto& e : log.events) {
      if (e.instance == instance && e.ns >= t_cont && e.event == "lease_lost") lost = true;
      if (e.instance == instance && e.ns >= t_cont && e.event == "checkpoint_failed") ++checkpoint_failures;
    }
    EXPECT_TRUE(lost) << "processor " << instance << " of " << shard << " got no lease_lost after SIGCONT";
    for (const auto& r : log.records) {
      EXPECT_FALSE(r.instance == instance && r.ns >= t_cont)
          << victim << " processed " << r.shard << " " << r.data << " after SIGCONT with processor " << instance
          << ", which it had lost (" << seconds_between(t_cont, r.ns) << " s after SIGCONT)";
    }
  }
  std::cout << "[ figures  ] SIGCONT: " << alive.size() << " processors of " << victim << " got lease_lost, "
            << checkpoint_failures << " checkpoint attempt(s) failed" << std::endl;
}

// Scenario 7: the table unreachable for longer than the failover time.
void outage(StoreBackend& backend, Fleet& fleet, TableWatch& watch, const std::filesystem::path& log_path,
            const std::vector<std::string>& workers) {
  const std::int64_t t_out = ns(SteadyClock::now());
  backend.make_unreachable();
  std::this_thread::sleep_for(failover * 2);
  const std::int64_t t_back = ns(SteadyClock::now());
  backend.make_reachable();
  const auto recovered = watch.wait_for(balanced(workers, 12 / static_cast<int>(workers.size())), 30s, t_back);
  ASSERT_TRUE(recovered.has_value()) << "no balance after the outage: "
                                     << (watch.latest() ? describe_counts(*watch.latest()) : "") << "\n"
                                     << fleet.logs();
  std::cout << "[ figures  ] table outage (" << backend.outage() << ") of " << seconds_between(t_out, t_back)
            << " s: balanced again " << seconds_between(t_back, *recovered) << " s after it ended" << std::endl;
  // Let every shard process a few batches after the recovery.
  std::this_thread::sleep_for(1500ms);

  const ProcessLog log = read_log(log_path);
  // No lease can be renewed: every worker stops handing out records within the lease's
  // validity (failover - renew / 2) plus the batch in flight.
  const std::int64_t quiet_from = t_out + to_ns(failover + 300ms);
  for (const auto& r : log.records) {
    EXPECT_FALSE(r.ns >= quiet_from && r.ns < t_back)
        << r.worker << " processed " << r.shard << " " << r.data << " " << seconds_between(t_out, r.ns)
        << " s into the outage, when no lease could have been renewed";
  }
  // Per shard: the last processor before the outage ended before the first processor of
  // another worker after it began.
  std::map<std::string, const RecordLine*> last_before;
  std::map<std::string, std::map<std::string, std::pair<std::int64_t, std::int64_t>>> spans;  // shard -> instance
  for (const auto& r : log.records) {
    auto& span = spans[r.shard].try_emplace(r.instance, r.ns, r.ns).first->second;
    span.first = std::min(span.first, r.ns);
    span.second = std::max(span.second, r.ns);
    if (r.ns < t_out && (!last_before[r.shard] || last_before[r.shard]->ns < r.ns)) last_before[r.shard] = &r;
  }
  for (const auto& [shard, before_outage] : last_before) {
    if (!before_outage) continue;
    const auto& old_span = spans[shard][before_outage->instance];
    std::optional<std::pair<std::string, std::int64_t>> next;  // first processor of another worker after t_out
    for (const auto& e : log.events) {
      if (e.shard == shard && e.event == "initialize" && e.ns >= t_out && e.worker != before_outage->worker &&
          (!next || e.ns < next->second)) {
        next = {e.instance, e.ns};
      }
    }
    if (!next || spans[shard].count(next->first) == 0) continue;  // same worker again, or no records since
    EXPECT_LT(old_span.second, spans[shard][next->first].first)
        << shard << ": " << before_outage->worker << " (" << before_outage->instance
        << ") still processed it after another worker's processor " << next->first << " had begun";
  }
}

TEST_P(FleetTest, Scenarios) {
  const std::string store_name = GetParam();
  auto backend = make_backend(store_name);
  KCLPP_REQUIRE_PRESENT(backend->missing());
  kclpp::test::Kinesalite kinesis;
  KCLPP_REQUIRE_SERVER(kinesis);
  const kclpp::test::TempDir dir;
  backend->start(dir.path());
  const std::string stream = "fleet";
  {
    KinesisClient admin(kinesis.client_options());
    admin.create_stream(stream, 12);
    admin.wait_for_active(stream, 10s);
  }
  const auto log_path = dir.path() / "processed.log";
  const auto test_started = SteadyClock::now();
  Producer producer(kinesis.client_options(), stream, 0x5eed);
  Fleet fleet(*backend, kinesis.endpoint(), stream, log_path);

  // 1. Three workers converge to 4/4/4.
  const std::int64_t t_start = ns(SteadyClock::now());
  for (const char* w : {"w1", "w2", "w3"}) fleet.spawn(w);
  TableWatch watch(table_spec(*backend, stream));
  const auto converged = watch.wait_for(balanced({"w1", "w2", "w3"}, 4), 30s);
  ASSERT_TRUE(converged.has_value()) << "3 workers did not converge to 4/4/4: "
                                     << (watch.latest() ? describe_counts(*watch.latest()) : "no read") << "\n"
                                     << fleet.logs();
  std::cout << "[ figures  ] " << store_name << ": 3 workers on 12 shards converged to 4/4/4 in "
            << seconds_between(t_start, *converged) << " s" << std::endl;

  // 5. A fourth worker joins: it steals up to 3, one lease per take round.
  const std::int64_t t_join = ns(SteadyClock::now());
  fleet.spawn("w4");
  const auto joined = watch.wait_for(balanced({"w1", "w2", "w3", "w4"}, 3), 20s, t_join);
  ASSERT_TRUE(joined.has_value()) << "no 3/3/3/3 after w4 joined: " << describe_counts(*watch.latest()) << "\n"
                                  << fleet.logs();
  {
    int previous = 0;
    for (const auto& s : watch.all()) {
      if (s.read_ns < t_join || s.read_ns > *joined) continue;
      const int now = static_cast<int>(owned_by(s, "w4").size());
      EXPECT_LE(now - previous, 1) << "w4 took " << (now - previous) << " leases in one take round";
      previous = now;
    }
    const auto took = kclpp::test::lines_with(fleet["w4"].stderr_text(), "leases: took ");
    EXPECT_EQ(took.size(), 3u) << fleet["w4"].stderr_text();
    for (const auto& line : took) EXPECT_NE(line.find("stolen from"), std::string::npos) << line;
  }
  std::cout << "[ figures  ] " << store_name << ": w4 joined, 3/3/3/3 after " << seconds_between(t_join, *joined)
            << " s" << std::endl;

  // 4. SIGTERM w3: its leases are released and taken by the others within a take interval.
  const std::set<std::string> w3_keys = owned_by(*watch.latest(), "w3");
  ASSERT_EQ(w3_keys.size(), 3u);
  const std::int64_t t_term = ns(SteadyClock::now());
  ASSERT_EQ(::kill(fleet["w3"].pid(), SIGTERM), 0);
  const auto w3_exit = fleet["w3"].wait(15s);
  const std::int64_t t_w3_gone = ns(SteadyClock::now());
  ASSERT_TRUE(w3_exit.has_value() && w3_exit->exited && w3_exit->code == 0)
      << (w3_exit ? w3_exit->str() : "still running") << "\n" << fleet["w3"].stderr_text();
  for (const auto& key : w3_keys) {
    EXPECT_NE(fleet["w3"].stderr_text().find("leases: released " + key), std::string::npos) << key;
  }
  std::int64_t handed_off = 0;
  for (const auto& key : w3_keys) {
    const auto started = first_event(read_log(log_path), key, "initialize", "w3", t_term);
    const auto deadline = SteadyClock::now() + take_interval + slack * 2;
    std::optional<std::int64_t> at = started;
    while (!at && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
      at = first_event(read_log(log_path), key, "initialize", "w3", t_term);
    }
    ASSERT_TRUE(at.has_value()) << key << " of w3 was not restarted elsewhere\n" << fleet.logs();
    handed_off = std::max(handed_off, *at);
  }
  // w3 releases its leases at the end of its shutdown, just before it exits: the take
  // interval counts from there.
  const std::int64_t w3_released = t_w3_gone;
  std::cout << "[ figures  ] " << store_name << ": SIGTERM hand-off: w3's 3 shards restarted on the others "
            << seconds_between(t_term, handed_off) << " s after SIGTERM ("
            << seconds_between(t_term, w3_released) << " s of it w3's own shutdown)" << std::endl;
  EXPECT_LE(handed_off - w3_released, to_ns(take_interval + slack))
      << "the released leases were taken later than one take interval (+ slack) after w3 exited";
  ASSERT_TRUE(watch.wait_for(balanced({"w1", "w2", "w4"}, 4), 10s, t_term))
      << describe_counts(*watch.latest()) << "\n" << fleet.logs();

  // 2. kill -9 w4: its shards restart on the others within failover + take (+ slack).
  const std::set<std::string> w4_keys = owned_by(*watch.latest(), "w4");
  ASSERT_EQ(w4_keys.size(), 4u);
  const std::int64_t t_kill = ns(SteadyClock::now());
  fleet["w4"].kill();
  std::int64_t recovered = 0;
  for (const auto& key : w4_keys) {
    const auto deadline = SteadyClock::now() + failover + take_interval + slack * 3;
    std::optional<std::int64_t> at;
    while (!(at = first_event(read_log(log_path), key, "initialize", "w4", t_kill)) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(at.has_value()) << key << " of the killed w4 was not restarted elsewhere\n" << fleet.logs();
    recovered = std::max(recovered, *at);
  }
  std::cout << "[ figures  ] " << store_name << ": kill -9 recovery: w4's 4 shards restarted on the others "
            << seconds_between(t_kill, recovered) << " s after the kill (failover " << failover.count()
            << " ms, take interval " << take_interval.count() << " ms)" << std::endl;
  EXPECT_LE(recovered - t_kill, to_ns(failover + take_interval + slack));
  const std::vector<std::string> two{"w1", "w2"};
  ASSERT_TRUE(watch.wait_for(balanced(two, 6), 15s, t_kill)) << describe_counts(*watch.latest()) << "\n"
                                                             << fleet.logs();

  // 3. SIGSTOP / SIGCONT (where the store matters least, on two stores only).
  if (store_name != "Postgres") stop_and_continue(fleet, watch, log_path, "w2", two);
  if (HasFatalFailure()) return;

  // 7. The table unreachable for twice the failover time.
  outage(*backend, fleet, watch, log_path, two);
  if (HasFatalFailure()) return;

  // The end: every record put is processed, re-deliveries stay within a batch per start.
  producer.stop();
  std::string missing;
  EXPECT_TRUE(wait_all_processed(producer, log_path, 60s, missing)) << missing << "\n" << fleet.logs();
  fleet.stop_all();
  EXPECT_EQ(producer.failed_calls(), 0);
  const ProcessLog log = read_log(log_path);
  const int redelivered = check_redeliveries(log);
  const auto backwards = watch.backwards();
  EXPECT_TRUE(backwards.empty()) << "checkpoints moved backwards: " << backwards.front();
  const auto reads = watch.all().size();
  EXPECT_GT(reads, 100u) << "the table was hardly ever read";
  std::size_t starts = 0;
  for (const auto& e : log.events) starts += e.event == "initialize" ? 1u : 0u;
  std::cout << "[ figures  ] " << store_name << ": " << producer.count() << " records put, " << log.records.size()
            << " processed (" << redelivered << " re-deliveries over " << starts << " processor starts), "
            << reads << " table reads, no checkpoint moved backwards; "
            << std::chrono::duration<double>(SteadyClock::now() - test_started).count() << " s" << std::endl;
}

INSTANTIATE_TEST_SUITE_P(Stores, FleetTest, ::testing::Values("Sqlite", "Postgres", "DynamoDb"), param_name);


// 6. A split and a merge while two workers hold the shards: no child starts before its
// parents are at SHARD_END, and every record of a parent is processed before any of its
// children's.
TEST(FleetTest, SplitAndMergeChildrenStartAfterTheirParentsEnd) {
  kclpp::test::Kinesalite kinesis;
  KCLPP_REQUIRE_SERVER(kinesis);
  const kclpp::test::TempDir dir;
  SqliteBackend backend;
  backend.start(dir.path());
  const std::string stream = "fleet-reshard";
  KinesisClient admin(kinesis.client_options());
  admin.create_stream(stream, 4);
  admin.wait_for_active(stream, 10s);
  const auto log_path = dir.path() / "processed.log";
  Producer producer(kinesis.client_options(), stream, 0xfeed);
  Fleet fleet(backend, kinesis.endpoint(), stream, log_path);
  fleet.spawn("w1");
  fleet.spawn("w2");
  TableWatch watch(table_spec(backend, stream));
  ASSERT_TRUE(watch.wait_for(balanced({"w1", "w2"}, 2), 30s)) << fleet.logs();
  const auto holders = *watch.latest();
  std::this_thread::sleep_for(1s);

  auto shards = admin.list_shards(stream);
  std::sort(shards.begin(), shards.end(), [](const auto& a, const auto& b) { return a.shard_id < b.shard_id; });
  ASSERT_EQ(shards.size(), 4u);
  admin.split_shard(stream, shards[0].shard_id,
                    kclpp::test::leases::hash_key_midpoint(shards[0].starting_hash_key, shards[0].ending_hash_key));
  admin.wait_for_active(stream, 10s);
  std::this_thread::sleep_for(1s);
  admin.merge_shards(stream, shards[2].shard_id, shards[3].shard_id);
  admin.wait_for_active(stream, 10s);
  std::cout << "[ reshard  ] split " << shards[0].shard_id << " (held by "
            << holders.leases.at(shards[0].shard_id).owner.value_or("?") << "), merged " << shards[2].shard_id
            << " (" << holders.leases.at(shards[2].shard_id).owner.value_or("?") << ") and " << shards[3].shard_id
            << " (" << holders.leases.at(shards[3].shard_id).owner.value_or("?") << ")" << std::endl;
  std::this_thread::sleep_for(3s);
  producer.stop();
  std::string missing;
  EXPECT_TRUE(wait_all_processed(producer, log_path, 60s, missing)) << missing << "\n" << fleet.logs();
  fleet.stop_all();

  const auto after = admin.list_shards(stream);
  const ProcessLog log = read_log(log_path);
  const auto snapshots = watch.all();
  ASSERT_FALSE(snapshots.empty());
  const Snapshot& last = snapshots.back();
  int children = 0;
  for (const auto& child : after) {
    std::vector<std::string> parents;
    for (const auto& p : {child.parent_shard_id, child.adjacent_parent_shard_id}) {
      if (p) parents.push_back(*p);
    }
    if (parents.empty()) continue;
    ++children;
    const auto init = first_event(log, child.shard_id, "initialize", "", 0);
    ASSERT_TRUE(init.has_value()) << child.shard_id << " never started\n" << fleet.logs();
    std::int64_t child_first = INT64_MAX;
    for (const auto& r : log.records) {
      if (r.shard == child.shard_id) child_first = std::min(child_first, r.ns);
    }
    for (const auto& parent : parents) {
      const auto ended = first_event(log, parent, "shard_ended", "", 0);
      ASSERT_TRUE(ended.has_value()) << parent << " never reached shard_ended";
      EXPECT_LT(*ended, *init) << child.shard_id << " started before its parent " << parent << " ended";
      for (const auto& r : log.records) {
        EXPECT_FALSE(r.shard == parent && r.ns > child_first)
            << "a record of " << parent << " was processed after " << child.shard_id << "'s first";
      }
      // The table: once the child had started, every read shows the parent at SHARD_END.
      for (const auto& s : snapshots) {
        const auto it = s.leases.find(parent);
        if (s.read_ns > *init && it != s.leases.end()) {
          EXPECT_EQ(it->second.checkpoint.sentinel(), Sentinel::ShardEnd)
              << child.shard_id << " was running while its parent " << parent << " was at "
              << it->second.checkpoint.str();
        }
      }
      const auto lease = last.leases.find(child.shard_id);
      ASSERT_NE(lease, last.leases.end());
      EXPECT_NE(std::find(lease->second.parent_shard_ids.begin(), lease->second.parent_shard_ids.end(), parent),
                lease->second.parent_shard_ids.end())
          << child.shard_id << "'s lease does not name its parent " << parent;
    }
  }
  EXPECT_EQ(children, 3) << "a split and a merge make 3 children";
  EXPECT_TRUE(watch.backwards().empty()) << watch.backwards().front();
  (void)check_redeliveries(log);
}

}  // namespace
