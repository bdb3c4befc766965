// A fleet of `kclpp daemon` processes, each driving the Node aws-kcl processor per shard,
// sharing a 6-shard kinesalite stream through one lease store (the KCL lease table on
// dynalite, and a SQLite file): three daemons converge to 2/2/2; `kill -9` of one leaves
// its children with EOF on stdin (they exit, nothing keeps processing) and its shards
// resume on the other two within failover time + one take interval, with every record
// processed and duplicates only from the batch in flight; SIGTERM of another gives its
// children shutdownRequested (they checkpoint), releases its leases, and the last daemon
// takes them at its next take round and resumes after the checkpoints. The measured
// hand-off times are printed. Failover 1500 ms, take interval 500 ms (docs/checkpoints.md §5).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ostream>

#include "daemon_fleet_support.hpp"
#include "dynalite_fixture.hpp"
#include "kinesalite_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using kclpp::test::eventually;
using kclpp::test::fleet::Fleet;
using kclpp::test::fleet::FleetSettings;
using kclpp::test::fleet::ms_since;
using kclpp::test::fleet::SeenRecord;

enum class Store { DynamoDb, Sqlite };

// gtest prints the parameter by name (stable ctest names and messages).
void PrintTo(Store s, std::ostream* os) { *os << (s == Store::DynamoDb ? "DynamoDb" : "Sqlite"); }

std::string store_name(const ::testing::TestParamInfo<Store>& info) {
  return info.param == Store::DynamoDb ? "dynamodb_dynalite" : "sqlite";
}

constexpr int shard_count = 6;
constexpr int failover_ms = 1500;
constexpr int take_interval_ms = 500;

// True once `pid` has exited (gone, or a zombie waiting for this process, which is the
// subreaper of the daemons' orphans); reaps it then.
bool has_exited(pid_t pid) {
  const auto state = kclpp::test::process_state(pid);
  if (state && *state != 'Z') return false;
  if (state) (void)::waitpid(pid, nullptr, WNOHANG);
  return true;
}

class DaemonFleetTest : public ::testing::TestWithParam<Store> {
 protected:
  void SetUp() override {
    kclpp::test::become_subreaper();
    KCLPP_REQUIRE_PRESENT(Fleet::unavailable());
    kinesis_ = std::make_unique<kclpp::test::Kinesalite>();
    KCLPP_REQUIRE_SERVER(*kinesis_);
    client_ = std::make_unique<kclpp::aws::KinesisClient>(kinesis_->client_options());
    client_->create_stream(stream_, shard_count);
    client_->wait_for_active(stream_, 10s);

    FleetSettings s;
    s.stream = stream_;
    s.application = application_;
    s.kinesis_endpoint = kinesis_->endpoint();
    s.failover_ms = failover_ms;
    s.take_interval_ms = take_interval_ms;
    if (GetParam() == Store::DynamoDb) {
      dynalite_ = std::make_unique<kclpp::test::Dynalite>();
      KCLPP_REQUIRE_SERVER(*dynalite_);
      // checkpointStore = dynamodb: with no table: the table is the application's name.
      s.store.properties = "checkpointStore = dynamodb:\ndynamoDBEndpoint = " + dynalite_->endpoint() + "\n";
      s.store.uri = "dynamodb:" + application_;
      s.store.options.dynamodb = dynalite_->client_options();
    } else {
      const std::string db = dir_.file("leases.db");
      s.store.properties = "checkpointStore = sqlite:" + db + "\n";
      s.store.uri = "sqlite:" + db;
    }
    fleet_ = std::make_unique<Fleet>(s, dir_);
  }

  // Every record of every worker's children, by data.
  std::map<std::string, std::vector<SeenRecord>> delivered(const std::vector<std::string>& workers) {
    std::map<std::string, std::vector<SeenRecord>> out;
    for (const auto& w : workers)
      for (auto& r : fleet_->view(w).records()) out[r.data].push_back(std::move(r));
    return out;
  }

  ::testing::AssertionResult all_delivered(const std::vector<std::string>& data, const std::vector<std::string>& workers,
                                           std::chrono::milliseconds timeout) {
    std::size_t missing = 0;
    const bool ok = eventually(
        [&] {
          const auto got = delivered(workers);
          missing = static_cast<std::size_t>(
              std::count_if(data.begin(), data.end(), [&](const auto& d) { return got.count(d) == 0; }));
          return missing == 0;
        },
        timeout);
    if (ok) return ::testing::AssertionSuccess();
    auto failure = ::testing::AssertionFailure();
    failure << missing << " of " << data.size() << " records not delivered within " << timeout.count()
            << " ms; leases:\n"
            << kclpp::test::fleet::describe(fleet_->owners());
    for (const auto& w : workers) failure << "  " << w << ":\n" << fleet_->view(w).dump();
    return failure;
  }

  // Waits until the non-finished leases are held exactly `expected` (owner -> count).
  ::testing::AssertionResult split_is(const std::map<std::string, std::size_t>& expected,
                                      std::chrono::milliseconds timeout) {
    std::map<std::string, std::set<std::string>> owners;
    const bool ok = eventually(
        [&] {
          owners = fleet_->owners();
          std::map<std::string, std::size_t> counts;
          for (const auto& [o, shards] : owners) counts[o] = shards.size();
          return counts == expected;
        },
        timeout);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "leases not split as expected within " << timeout.count()
                                         << " ms:\n"
                                         << kclpp::test::fleet::describe(owners);
  }

  std::map<std::string, std::string> checkpoints() {
    std::map<std::string, std::string> out;
    for (const auto& l : fleet_->leases()) out[l.key] = l.checkpoint.str();
    return out;
  }

  kclpp::test::TempDir dir_{"kclpp-daemon-fleet"};
  std::unique_ptr<kclpp::test::Kinesalite> kinesis_;
  std::unique_ptr<kclpp::test::Dynalite> dynalite_;
  std::unique_ptr<kclpp::aws::KinesisClient> client_;
  std::unique_ptr<Fleet> fleet_;
  const std::string stream_ = "fleet";
  const std::string application_ = "fleet-app";
};

TEST_P(DaemonFleetTest, SplitsEvenlyResumesAfterKillNineAndHandsOffOnSigterm) {
  const std::vector<std::string> workers{"worker-0", "worker-1", "worker-2"};
  const auto a = kclpp::test::numbered("a", 60);
  (void)kclpp::test::put_all(*client_, stream_, a);

  kclpp::test::PidReaper reaper;  // destroyed after the daemons: no child outlives a failed test
  const auto t_start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<kclpp::test::Subprocess>> daemons;
  for (const auto& w : workers) daemons.push_back(fleet_->start(w));

  // --- three daemons converge to 2/2/2, each with one child per lease ----------------------
  ASSERT_TRUE(split_is({{"worker-0", 2}, {"worker-1", 2}, {"worker-2", 2}}, 40s));
  const auto converged = ms_since(t_start);
  ASSERT_TRUE(all_delivered(a, workers, 30s));
  for (const auto& d : daemons) {
    EXPECT_TRUE(eventually([&] { return kclpp::test::children_of(d->pid()).size() == 2; }, 10s))
        << "a daemon holding 2 leases runs 2 children; stderr:\n"
        << d->stderr_text();
    for (pid_t pid : kclpp::test::descendants_of(d->pid())) reaper.add(pid);
  }

  // --- kill -9 of worker-0 ------------------------------------------------------------------
  const std::set<std::string> killed_shards = fleet_->owners()["worker-0"];
  ASSERT_EQ(killed_shards.size(), 2u);
  const auto orphans = kclpp::test::children_of(daemons[0]->pid());
  const auto t_kill = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(daemons[0]->pid(), SIGKILL), 0);
  ASSERT_TRUE(daemons[0]->wait(5s).has_value());
  const auto b = kclpp::test::numbered("b", 60);
  (void)kclpp::test::put_all(*client_, stream_, b, a.size());

  // Its children get EOF on stdin and exit: none is left behind processing.
  for (pid_t pid : orphans) {
    EXPECT_TRUE(eventually([&] { return has_exited(pid); }, 5s))
        << "child " << pid << " of the killed daemon still runs, state "
        << kclpp::test::process_state(pid).value_or('?');
  }
  const auto killed_view = fleet_->view("worker-0");
  for (const auto& [pid, life] : killed_view.children) {
    EXPECT_TRUE(life.exited()) << "the killed daemon's child " << pid << " did not exit:\n" << killed_view.dump();
  }

  // Its shards resume on the others: the leases within failover + one take interval (and
  // the time a scan takes), every b record within that plus starting a child and a read.
  const std::vector<std::string> survivors{"worker-1", "worker-2"};
  ASSERT_TRUE(eventually(
      [&] {
        auto o = fleet_->owners();
        return std::all_of(killed_shards.begin(), killed_shards.end(),
                           [&](const auto& s) { return o["worker-1"].count(s) + o["worker-2"].count(s) == 1; });
      },
      15s))
      << kclpp::test::fleet::describe(fleet_->owners());
  const auto kill_leases_moved = ms_since(t_kill);
  ASSERT_TRUE(all_delivered(b, survivors, 20s));
  const auto kill_records_resumed = ms_since(t_kill);
  EXPECT_TRUE(split_is({{"worker-1", 3}, {"worker-2", 3}}, 10s));
  EXPECT_GE(kill_leases_moved.count(), failover_ms - failover_ms / 3)
      << "taken before the lease could have expired";
  EXPECT_LE(kill_leases_moved.count(), failover_ms + take_interval_ms + 1000);
  EXPECT_LE(kill_records_resumed.count(), failover_ms + take_interval_ms + 4000);

  // Every a record was processed; a record processed twice was in the last batch of the
  // child that had it first: a batch delivered whose checkpoint was not written, because
  // its daemon was killed or its lease stolen while the fleet converged.
  std::map<int, std::set<std::string>> last_batch;  // pid -> data
  for (const auto& w : workers) {
    for (const auto& [pid, life] : fleet_->view(w).children) {
      for (auto it = life.batches.rbegin(); it != life.batches.rend(); ++it) {
        if (it->empty()) continue;
        for (const auto& r : *it) last_batch[pid].insert(r.data);
        break;
      }
    }
  }
  const auto all = delivered(workers);
  for (const auto& d : a) EXPECT_EQ(all.count(d), 1u) << d << " never processed";
  std::size_t duplicates = 0;
  for (const auto& [data, seen] : all) {
    if (seen.size() == 1) continue;
    ++duplicates;
    EXPECT_EQ(seen.size(), 2u) << data;
    EXPECT_EQ(seen.front().shard, seen.back().shard) << data;
    EXPECT_EQ(last_batch[seen.front().pid].count(data), 1u)
        << data << " processed twice, but not in the last batch of child " << seen.front().pid << " on "
        << seen.front().shard;
  }

  // --- SIGTERM of worker-1 ------------------------------------------------------------------
  const std::set<std::string> released = fleet_->owners()["worker-1"];
  ASSERT_EQ(released.size(), 3u);
  for (pid_t pid : kclpp::test::descendants_of(daemons[2]->pid())) reaper.add(pid);
  std::set<int> w2_children_before;
  for (const auto& [pid, life] : fleet_->view("worker-2").children) w2_children_before.insert(pid);
  const auto t_term = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(daemons[1]->pid(), SIGTERM), 0);
  const auto status = daemons[1]->wait(10s);
  ASSERT_TRUE(status.has_value()) << daemons[1]->stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << daemons[1]->stderr_text();
  const auto term_exit = ms_since(t_term);
  // Released, not left to expire: right after the exit nobody's leases are worker-1's.
  EXPECT_EQ(fleet_->owners().count("worker-1"), 0u) << kclpp::test::fleet::describe(fleet_->owners());

  // Its children: shutdownRequested (they checkpoint), leaseLost, exit 0.
  const auto term_view = fleet_->view("worker-1");
  std::map<std::string, std::string> last_seq;  // shard -> last record worker-1 processed
  for (const auto& [pid, life] : term_view.children) {
    if (!life.exited() || std::count(life.actions.begin(), life.actions.end(), "shutdownRequested") == 0) {
      // A child it started and stopped earlier, when a lease moved during convergence.
      continue;
    }
    ASSERT_GE(life.actions.size(), 4u) << term_view.dump();
    const std::vector<std::string> tail(life.actions.end() - 3, life.actions.end());
    EXPECT_EQ(tail, (std::vector<std::string>{"shutdownRequested", "leaseLost", "exit 0"})) << term_view.dump();
    for (const auto& batch : life.batches)
      if (!batch.empty()) last_seq[life.shard] = batch.back().sequence_number;
  }
  EXPECT_EQ(std::count_if(term_view.children.begin(), term_view.children.end(),
                          [](const auto& c) { return !c.second.exited(); }),
            0)
      << term_view.dump();
  const auto stored = checkpoints();
  for (const auto& shard : released) {
    if (last_seq.count(shard) != 0) {
      EXPECT_EQ(stored.at(shard), last_seq[shard]) << shard << ": the shutdown checkpoint";
    }
  }

  const auto c = kclpp::test::numbered("c", 60);
  (void)kclpp::test::put_all(*client_, stream_, c, a.size() + b.size());
  ASSERT_TRUE(split_is({{"worker-2", 6}}, 10s));
  const auto term_leases_moved = ms_since(t_term);
  ASSERT_TRUE(all_delivered(c, {"worker-2"}, 15s));
  const auto term_records_resumed = ms_since(t_term);
  EXPECT_LE((term_leases_moved - term_exit).count(), take_interval_ms + 1000)
      << "released leases are taken at the next take round, not after a failover time";

  // Resumed after the shutdown checkpoints: nothing worker-1 processed comes again.
  const auto w1_records = term_view.records();
  const auto w2 = fleet_->view("worker-2").records();
  std::set<std::string> w1_data;
  for (const auto& r : w1_records) w1_data.insert(r.data);
  std::size_t taken_over = 0;
  for (const auto& r : w2) {
    if (released.count(r.shard) == 0 || w2_children_before.count(r.pid) != 0) continue;
    ++taken_over;
    EXPECT_EQ(w1_data.count(r.data), 0u) << r.data << " on " << r.shard << " redelivered after a clean hand-off";
  }
  EXPECT_GT(taken_over, 0u) << "worker-2 processed nothing on the shards it took over";

  std::fprintf(stderr,
               "[ fleet    ] %s: 3 daemons converged to 2/2/2 in %lld ms; kill -9: leases moved after %lld ms, "
               "records resumed after %lld ms (failover %d + take interval %d), %zu records processed twice; "
               "SIGTERM: exit after %lld ms, leases taken after %lld ms, records resumed after %lld ms\n",
               store_name({GetParam(), 0}).c_str(), static_cast<long long>(converged.count()),
               static_cast<long long>(kill_leases_moved.count()), static_cast<long long>(kill_records_resumed.count()),
               failover_ms, take_interval_ms, duplicates, static_cast<long long>(term_exit.count()),
               static_cast<long long>(term_leases_moved.count()), static_cast<long long>(term_records_resumed.count()));

  if (std::getenv("KCLPP_FLEET_DEBUG") != nullptr) {
    for (std::size_t i = 0; i < daemons.size(); ++i)
      for (const auto& l : kclpp::test::lines_with(daemons[i]->stderr_text(), "leases"))
        std::fprintf(stderr, "worker-%zu: %s\n", i, l.c_str());
  }
  const auto last = daemons[2].get();
  ASSERT_EQ(::kill(last->pid(), SIGTERM), 0);
  const auto last_status = last->wait(10s);
  ASSERT_TRUE(last_status.has_value());
  EXPECT_TRUE(last_status->exited && last_status->code == 0) << last_status->str();
  EXPECT_TRUE(fleet_->owners().count("worker-2") == 0) << kclpp::test::fleet::describe(fleet_->owners());
}

INSTANTIATE_TEST_SUITE_P(Stores, DaemonFleetTest, ::testing::Values(Store::DynamoDb, Store::Sqlite), store_name);

}  // namespace
