// Fleets of `kclpp daemon` processes, each driving the Node aws-kcl processor per shard
// (tests/node/kcl_processor.js), sharing a kinesalite stream through one lease store
// (issue 12 §4, "the same test suites through `kclpp daemon`"; docs/checkpoints.md §5).
//
// DaemonFleetTest.* on the KCL lease table on dynalite, Postgres and a SQLite file, 6
// shards: three daemons converge to 2/2/2; `kill -9` of one leaves its children with EOF
// on stdin (they exit, nothing keeps processing) and its shards resume on the other two
// within failover time + one take interval, with every record processed and duplicates
// only from the batch in flight; SIGTERM of another gives its children shutdownRequested
// (they checkpoint), releases its leases, and the last daemon takes them at its next take
// round and resumes after the checkpoints.
// DaemonFleetScenarioTest.* (dynalite), 8 shards, one fleet in sequence: three daemons
// converge to 3/3/2; a fourth joins and steals up to 2/2/2/2, one lease per take round,
// the children that lost a shard getting leaseLost; one daemon SIGSTOPped past the
// failover time (its children keep running, with no input) and SIGCONTed: its children
// get leaseLost and process nothing more for the shards it lost, then it steals its share
// back. A poller reads the table every ~50 ms (table_watch.hpp): no checkpoint ever moves
// backwards.
// DaemonFleetReshardTest.* (SQLite), 4 shards, 2 daemons: a split and a merge while they
// hold different shards; no child shard's process starts before its parents' shardEnded
// and SHARD_END in the table, and no parent record is processed after a child's first.
// The measured times are printed. Failover 1500 ms, take interval 500 ms.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <thread>

#include "daemon_fleet_support.hpp"
#include "dynalite_fixture.hpp"
#include "kinesalite_fixture.hpp"
#include "postgres_fixture.hpp"
#include "table_watch.hpp"

namespace {

using namespace std::chrono_literals;
using kclpp::test::eventually;
using kclpp::test::fleet::Fleet;
using kclpp::test::fleet::FleetSettings;
using kclpp::test::fleet::ms_since;
using kclpp::test::fleet::SeenRecord;
using kclpp::test::leases::balanced;
using kclpp::test::leases::describe_counts;
using kclpp::test::leases::ns;
using kclpp::test::leases::owned_by;
using kclpp::test::leases::owner_counts;
using kclpp::test::leases::Snapshot;
using kclpp::test::leases::TableWatch;
using Daemons = std::map<std::string, std::unique_ptr<kclpp::test::Subprocess>>;

enum class Store { DynamoDb, Postgres, Sqlite };

std::string store_name(Store s) {
  switch (s) {
    case Store::DynamoDb: return "dynamodb_dynalite";
    case Store::Postgres: return "postgres";
    case Store::Sqlite: return "sqlite";
  }
  return "?";
}
// gtest prints the parameter by name (stable ctest names and messages).
void PrintTo(Store s, std::ostream* os) { *os << store_name(s); }
std::string param_name(const ::testing::TestParamInfo<Store>& info) { return store_name(info.param); }

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
    client_->create_stream(stream_, shard_count_);
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
    } else if (GetParam() == Store::Postgres) {
      KCLPP_REQUIRE_PRESENT(kclpp::test::Postgres::unavailable_reason().value_or(""));
      postgres_ = std::make_unique<kclpp::test::Postgres>();
      s.store.uri = postgres_->create_database();
      s.store.properties = "checkpointStore = " + s.store.uri + "\n";
    } else {
      const std::string db = dir_.file("leases.db");
      s.store.properties = "checkpointStore = sqlite:" + db + "\n";
      s.store.uri = "sqlite:" + db;
    }
    s.extra_properties = extra_properties_;
    fleet_ = std::make_unique<Fleet>(s, dir_);
  }

  // The lease table for a TableWatch.
  [[nodiscard]] kclpp::test::leases::TableSpec table_spec() const {
    const auto& store = fleet_->settings().store;
    return {store.uri, store.options, application_, stream_};
  }

  // Every record of every worker's children, by data.
  // Each record's deliveries, in the order they happened (the children's clock readings:
  // one host, one monotonic clock), whichever daemon made them.
  std::map<std::string, std::vector<SeenRecord>> delivered(const std::vector<std::string>& workers) {
    std::map<std::string, std::vector<SeenRecord>> out;
    for (const auto& w : workers)
      for (auto& r : fleet_->view(w).records()) out[r.data].push_back(std::move(r));
    for (auto& [data, seen] : out) {
      std::stable_sort(seen.begin(), seen.end(), [](const SeenRecord& x, const SeenRecord& y) { return x.ns < y.ns; });
    }
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
  std::unique_ptr<kclpp::test::Postgres> postgres_;
  std::unique_ptr<kclpp::aws::KinesisClient> client_;
  std::unique_ptr<Fleet> fleet_;
  // Set by a derived fixture's constructor, before SetUp.
  int shard_count_ = 6;
  std::string extra_properties_;
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
               store_name(GetParam()).c_str(), static_cast<long long>(converged.count()),
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

INSTANTIATE_TEST_SUITE_P(Stores, DaemonFleetTest, ::testing::Values(Store::DynamoDb, Store::Postgres, Store::Sqlite),
                         param_name);

// --- one fleet on 8 shards: a fourth daemon joins; SIGSTOP / SIGCONT of one ----------------

double ms_between(std::int64_t from_ns, std::int64_t to_ns) { return static_cast<double>(to_ns - from_ns) / 1e6; }

// The live leases are held in shares of these sizes (by anyone), and none is free.
auto shares_are(std::vector<int> expected) {
  std::sort(expected.begin(), expected.end());
  return [expected](const Snapshot& s) {
    std::vector<int> counts;
    for (const auto& [owner, n] : owner_counts(s)) {
      if (owner.empty()) return false;
      counts.push_back(n);
    }
    std::sort(counts.begin(), counts.end());
    return counts == expected;
  };
}

// What a scenario measured, printed at the end.
struct Figures {
  double converged_ms = 0;
  double joined_ms = 0;
  std::vector<double> steals_ms;  // when worker-3's share grew, after it started
  double stop_taken_ms = 0;
  double stop_after_last_write_ms = 0;  // the earliest take, after the victim's last write
  double cont_lease_lost_ms = 0;
  double cont_rebalanced_ms = 0;
};

class DaemonFleetScenarioTest : public DaemonFleetTest {
 protected:
  DaemonFleetScenarioTest() { shard_count_ = 8; }

  const std::vector<std::string> four_{"worker-0", "worker-1", "worker-2", "worker-3"};

  // The data of every record the children of `workers` got.
  std::set<std::string> data_seen(const std::vector<std::string>& workers) {
    std::set<std::string> out;
    for (const auto& [data, seen] : delivered(workers)) out.insert(data);
    return out;
  }

  // worker-3 joins a 3/3/2 fleet: it steals up to the target 2 (ceil(8 / 4)), never more
  // than one lease between two reads of the table; the child that had a stolen shard on
  // the robbed daemon gets leaseLost.
  void join_fourth(Daemons& daemons, TableWatch& watch, Figures& f) {
    const std::int64_t t_join = ns(std::chrono::steady_clock::now());
    daemons["worker-3"] = fleet_->start("worker-3");
    auto& joiner = *daemons.at("worker-3");
    const auto joined = watch.wait_for(balanced(four_, 2), 20s, t_join);
    ASSERT_TRUE(joined.has_value()) << "no 2/2/2/2 after worker-3 joined: " << describe_counts(*watch.latest())
                                    << "\n" << joiner.stderr_text();
    f.joined_ms = ms_between(t_join, *joined);
    int previous = 0;
    for (const auto& s : watch.all()) {
      if (s.read_ns < t_join || s.read_ns > *joined) continue;
      const int now = static_cast<int>(owned_by(s, "worker-3").size());
      EXPECT_LE(now - previous, 1) << "worker-3 took " << (now - previous) << " leases between two reads";
      if (now > previous) f.steals_ms.push_back(ms_between(t_join, s.read_ns));
      previous = now;
    }
    const auto took = kclpp::test::lines_with(joiner.stderr_text(), "leases: took ");
    ASSERT_EQ(took.size(), 2u) << joiner.stderr_text();
    for (const auto& line : took) {
      // "... leases: took KEY (stolen from OWNER)"
      const std::string marker = "leases: took ";
      const auto key_at = line.find(marker) + marker.size();
      const std::string key = line.substr(key_at, line.find(' ', key_at) - key_at);
      const std::string from = "(stolen from ";
      const auto owner_at = line.find(from);
      ASSERT_NE(owner_at, std::string::npos) << "worker-3 took a lease nobody held: " << line;
      const std::string owner = line.substr(owner_at + from.size(), line.find(')', owner_at) - owner_at - from.size());
      // The victim's child of that shard, if it had one yet (a lease it had itself stolen a
      // moment before starts its child only once the former owner's lease has run out), ends
      // with leaseLost.
      bool had_child = false;
      for (const auto& [pid, life] : fleet_->view(owner).children) had_child = had_child || life.shard == key;
      if (!had_child) continue;
      EXPECT_TRUE(eventually(
          [&] {
            for (const auto& [pid, life] : fleet_->view(owner).children)
              if (life.shard == key && life.first("leaseLost", t_join)) return true;
            return false;
          },
          5s))
          << owner << "'s child of " << key << " got no leaseLost after worker-3 stole it:\n"
          << fleet_->view(owner).dump();
    }
  }

  // Each of `shards` was taken from `victim` (stopped at `t_stop`) no sooner than the failover
  // time after the victim's last write to it: the write landed after the last read that did
  // not show its counter yet, the take before the first read that shows another owner
  // (+ the time a read takes). Returns the smallest such distance in ms.
  static double expect_taken_after_expiry(const std::vector<Snapshot>& reads, const std::set<std::string>& shards,
                                          const std::string& victim, std::int64_t t_stop) {
    constexpr std::int64_t read_slop_ns = 100'000'000;
    double smallest = 1e9;
    for (const auto& key : shards) {
      std::optional<std::int64_t> counter;
      std::int64_t write_after = 0;  // start of the last read that did not show the victim's last write
      std::int64_t previous_read = 0;
      std::optional<std::int64_t> taken;
      for (const auto& s : reads) {
        if (s.read_ns < t_stop - 4 * std::int64_t{failover_ms} * 1'000'000) continue;
        const auto it = s.leases.find(key);
        if (it != s.leases.end() && it->second.owner == victim && it->second.counter != counter) {
          counter = it->second.counter;
          write_after = previous_read;
        } else if (it != s.leases.end() && it->second.owner != victim && counter) {
          taken = s.read_ns;
          break;
        }
        previous_read = s.read_ns;
      }
      if (!taken || write_after == 0) {
        ADD_FAILURE() << key << ": no read shows the take from " << victim;
        continue;
      }
      EXPECT_GE(*taken + read_slop_ns - write_after, std::int64_t{failover_ms} * 1'000'000)
          << key << " taken " << ms_between(write_after, *taken) << " ms after " << victim
          << "'s last write to it: before the lease could have expired";
      smallest = std::min(smallest, ms_between(write_after, *taken));
    }
    return smallest;
  }

  // SIGSTOP `victim` past the failover time, then SIGCONT: the others take its leases; its
  // children, which kept running without input, get leaseLost and nothing more for the
  // shards it lost; it steals its share back.
  void stop_and_continue(Daemons& daemons, TableWatch& watch, const std::string& victim, Figures& f) {
    auto& daemon = *daemons.at(victim);
    const auto shards = owned_by(*watch.latest(), victim);
    ASSERT_EQ(shards.size(), 2u);
    std::map<int, std::string> alive;  // pid -> shard: its children on those shards
    // A stolen shard's child starts once the former owner's lease has run out by its clock.
    const bool both_running = eventually([&] {
      alive.clear();
      for (const auto& [pid, life] : fleet_->view(victim).children)
        if (!life.exited() && shards.count(life.shard) != 0 && !life.first("leaseLost")) alive[pid] = life.shard;
      return alive.size() == 2;
    }, 5s);
    ASSERT_TRUE(both_running) << fleet_->view(victim).dump();

    // Records for every shard just before the stop: a batch may be on its way to the victim.
    const auto c = kclpp::test::numbered("c", 40);
    (void)kclpp::test::put_all(*client_, stream_, c, 1000);
    const std::int64_t t_stop = ns(std::chrono::steady_clock::now());
    ASSERT_EQ(::kill(daemon.pid(), SIGSTOP), 0);
    const auto taken = watch.wait_for(
        [&](const Snapshot& s) { return owned_by(s, victim).empty() && owner_counts(s).count("") == 0; },
        std::chrono::milliseconds(failover_ms + take_interval_ms + 3000), t_stop);
    for (const auto& [pid, shard] : alive) {
      const auto state = kclpp::test::process_state(pid);
      EXPECT_TRUE(state && *state != 'T' && *state != 'Z')
          << "child " << pid << " of the stopped daemon is not running: " << state.value_or('?');
    }
    std::this_thread::sleep_for(500ms);
    const std::int64_t t_cont = ns(std::chrono::steady_clock::now());
    ASSERT_EQ(::kill(daemon.pid(), SIGCONT), 0);
    ASSERT_TRUE(taken.has_value()) << "the stopped daemon's leases were not taken: "
                                   << describe_counts(*watch.latest());
    f.stop_taken_ms = ms_between(t_stop, *taken);
    f.stop_after_last_write_ms = expect_taken_after_expiry(watch.all(), shards, victim, t_stop);

    EXPECT_TRUE(daemon.wait_stderr("leases: lost the lease of", 5s)) << daemon.stderr_text();
    std::int64_t last_lost = t_cont;
    for (const auto& [pid, shard] : alive) {
      std::optional<std::int64_t> lost;
      EXPECT_TRUE(eventually(
          [&] {
            lost = fleet_->view(victim).children[pid].first("leaseLost", t_cont);
            return lost.has_value();
          },
          10s))
          << "child " << pid << " of " << shard << " got no leaseLost after SIGCONT:\n" << fleet_->view(victim).dump();
      if (lost) last_lost = std::max(last_lost, *lost);
    }
    f.cont_lease_lost_ms = ms_between(t_cont, last_lost);

    const auto rebalanced = watch.wait_for(balanced(four_, 2), 20s, t_cont);
    ASSERT_TRUE(rebalanced.has_value()) << "no 2/2/2/2 after SIGCONT: " << describe_counts(*watch.latest());
    f.cont_rebalanced_ms = ms_between(t_cont, *rebalanced);
    ASSERT_TRUE(all_delivered(c, four_, 20s));
    // Nothing reached the old children after SIGCONT: the shards were no longer the victim's.
    const auto view = fleet_->view(victim);
    for (const auto& [pid, shard] : alive) {
      for (const auto& batch : view.children.at(pid).batches) {
        for (const auto& r : batch) {
          EXPECT_LT(r.ns, t_cont) << victim << "'s child " << pid << " processed " << r.data << " on " << shard
                                  << " " << ms_between(t_cont, r.ns) << " ms after SIGCONT, with the lease lost";
        }
      }
    }
  }
};

TEST_P(DaemonFleetScenarioTest, FourthDaemonStealsOneAtATimeAndAStoppedDaemonLosesItsShards) {
  const std::vector<std::string> three{"worker-0", "worker-1", "worker-2"};
  const auto a = kclpp::test::numbered("a", 80);
  (void)kclpp::test::put_all(*client_, stream_, a);
  kclpp::test::PidReaper reaper;  // destroyed after the daemons: no child outlives a failed test
  Daemons daemons;
  TableWatch watch(table_spec());
  Figures f;

  // 1. Three daemons converge to 3/3/2.
  const std::int64_t t_start = ns(std::chrono::steady_clock::now());
  for (const auto& w : three) daemons[w] = fleet_->start(w);
  const auto converged = watch.wait_for(shares_are({3, 3, 2}), 40s, t_start);
  ASSERT_TRUE(converged.has_value()) << "no 3/3/2: " << (watch.latest() ? describe_counts(*watch.latest()) : "");
  f.converged_ms = ms_between(t_start, *converged);
  ASSERT_TRUE(all_delivered(a, three, 30s));

  // 2. A fourth joins.
  join_fourth(daemons, watch, f);
  if (HasFatalFailure()) return;
  for (const auto& [w, d] : daemons)
    for (pid_t pid : kclpp::test::descendants_of(d->pid())) reaper.add(pid);

  // 3. One stopped past the failover time, then continued.
  stop_and_continue(daemons, watch, "worker-1", f);
  if (HasFatalFailure()) return;

  for (const auto& [w, d] : daemons) ASSERT_EQ(::kill(d->pid(), SIGTERM), 0);
  for (const auto& [w, d] : daemons) {
    const auto status = d->wait(15s);
    ASSERT_TRUE(status.has_value()) << w << " did not exit within 15 s of SIGTERM";
    EXPECT_TRUE(status->exited && status->code == 0) << w << ": " << status->str();
  }
  watch.stop();
  const auto backwards = watch.backwards();
  EXPECT_TRUE(backwards.empty()) << "a checkpoint moved backwards: " << backwards.front();
  // Enough reads to see a step back: one at least every second (every ~50 ms when idle).
  const auto reads = watch.all();
  EXPECT_GT(reads.size(), 50u) << "the table was hardly ever read";
  for (std::size_t i = 1; i < reads.size(); ++i)
    EXPECT_LT(reads[i].read_ns - reads[i - 1].read_ns, 1'000'000'000) << "no read of the table for over a second";
  const auto seen = data_seen(four_);
  for (const auto& d : a) EXPECT_EQ(seen.count(d), 1u) << d << " never processed";

  std::string steals;
  for (const double t : f.steals_ms) steals += (steals.empty() ? "" : ", ") + std::to_string(static_cast<long long>(t));
  std::fprintf(stderr,
               "[ fleet    ] %s: 3 daemons on 8 shards converged to 3/3/2 in %.0f ms; worker-3 joined: 2/2/2/2 "
               "after %.0f ms (its share grew at %s ms); SIGSTOP: the others held every lease after %.0f ms "
               "(failover %d + take interval %d), each taken >= %.0f ms after the stopped daemon's last write "
               "to it; SIGCONT: leaseLost in the children after %.0f ms, 2/2/2/2 "
               "again after %.0f ms; %zu table reads, no checkpoint moved backwards\n",
               store_name(GetParam()).c_str(), f.converged_ms, f.joined_ms, steals.c_str(), f.stop_taken_ms,
               failover_ms, take_interval_ms, f.stop_after_last_write_ms, f.cont_lease_lost_ms, f.cont_rebalanced_ms,
               reads.size());
}

INSTANTIATE_TEST_SUITE_P(Stores, DaemonFleetScenarioTest,
                         ::testing::Values(Store::DynamoDb, Store::Postgres, Store::Sqlite), param_name);

// --- a split and a merge while two daemons hold the shards --------------------------------


class DaemonFleetReshardTest : public DaemonFleetTest {
 protected:
  DaemonFleetReshardTest() {
    shard_count_ = 4;
    extra_properties_ = "shardSyncIntervalMillis = 1000\n";
  }

  // The first time any child of `workers` on `shard` logged `action`.
  std::optional<std::int64_t> first(const std::vector<kclpp::test::fleet::WorkerView>& views, const std::string& shard,
                                    const std::string& action) {
    std::optional<std::int64_t> best;
    for (const auto& v : views) {
      for (const auto& [pid, life] : v.children) {
        if (life.shard != shard) continue;
        const auto at = life.first(action);
        if (at && (!best || *at < *best)) best = at;
      }
    }
    return best;
  }
};

TEST_P(DaemonFleetReshardTest, ChildrenStartOnlyAfterTheirParentsShardEnd) {
  const std::vector<std::string> two{"worker-0", "worker-1"};
  const auto a = kclpp::test::numbered("a", 40);
  (void)kclpp::test::put_all(*client_, stream_, a);
  kclpp::test::PidReaper reaper;
  Daemons daemons;
  TableWatch watch(table_spec());
  for (const auto& w : two) daemons[w] = fleet_->start(w);
  ASSERT_TRUE(watch.wait_for(balanced(two, 2), 40s)) << (watch.latest() ? describe_counts(*watch.latest()) : "");
  ASSERT_TRUE(all_delivered(a, two, 30s));
  for (const auto& [w, d] : daemons)
    for (pid_t pid : kclpp::test::descendants_of(d->pid())) reaper.add(pid);
  const Snapshot holders = *watch.latest();

  auto shards = client_->list_shards(stream_);
  std::sort(shards.begin(), shards.end(), [](const auto& x, const auto& y) { return x.shard_id < y.shard_id; });
  ASSERT_EQ(shards.size(), 4u);
  const std::int64_t t_reshard = ns(std::chrono::steady_clock::now());
  client_->split_shard(stream_, shards[0].shard_id,
                       kclpp::test::leases::hash_key_midpoint(shards[0].starting_hash_key, shards[0].ending_hash_key));
  client_->wait_for_active(stream_, 10s);
  client_->merge_shards(stream_, shards[2].shard_id, shards[3].shard_id);
  client_->wait_for_active(stream_, 10s);
  const auto b = kclpp::test::numbered("b", 40);
  (void)kclpp::test::put_all(*client_, stream_, b, a.size());
  ASSERT_TRUE(all_delivered(b, two, 30s));

  std::vector<kclpp::test::fleet::WorkerView> views;
  for (const auto& w : two) views.push_back(fleet_->view(w));
  const auto snapshots = watch.all();
  int children = 0;
  std::string starts;
  for (const auto& child : client_->list_shards(stream_)) {
    std::vector<std::string> parents;
    for (const auto& p : {child.parent_shard_id, child.adjacent_parent_shard_id})
      if (p) parents.push_back(*p);
    if (parents.empty()) continue;
    ++children;
    const auto init = first(views, child.shard_id, "initialize");
    ASSERT_TRUE(init.has_value()) << child.shard_id << " never started";
    starts += " " + child.shard_id + " " + std::to_string(static_cast<long long>(ms_between(t_reshard, *init))) + " ms";
    std::int64_t child_first = INT64_MAX;
    for (const auto& v : views)
      for (const auto& r : v.records())
        if (r.shard == child.shard_id) child_first = std::min(child_first, r.ns);
    for (const auto& parent : parents) {
      const auto ended = first(views, parent, "shardEnded");
      ASSERT_TRUE(ended.has_value()) << parent << " never got shardEnded";
      EXPECT_LT(*ended, *init) << child.shard_id << " started before its parent " << parent << " ended";
      for (const auto& v : views)
        for (const auto& r : v.records())
          EXPECT_FALSE(r.shard == parent && r.ns > child_first)
              << "a record of " << parent << " was processed after " << child.shard_id << "'s first";
      // The table: once the child's process had started, every read shows the parent at
      // SHARD_END (or its lease gone).
      for (const auto& s : snapshots) {
        const auto it = s.leases.find(parent);
        if (s.read_ns > *init && it != s.leases.end()) {
          EXPECT_EQ(it->second.checkpoint.sentinel(), kclpp::Sentinel::ShardEnd)
              << child.shard_id << " was running while its parent " << parent << " was at "
              << it->second.checkpoint.str();
        }
      }
      const auto lease = snapshots.back().leases.find(child.shard_id);
      ASSERT_NE(lease, snapshots.back().leases.end());
      const auto& named = lease->second.parent_shard_ids;
      EXPECT_NE(std::find(named.begin(), named.end(), parent), named.end())
          << child.shard_id << "'s lease does not name its parent " << parent;
    }
  }
  EXPECT_EQ(children, 3) << "a split and a merge make 3 children";
  EXPECT_TRUE(watch.backwards().empty()) << watch.backwards().front();
  std::fprintf(stderr,
               "[ reshard  ] %s: split %s (held by %s), merged %s (%s) and %s (%s); children started after:%s\n",
               store_name(GetParam()).c_str(), shards[0].shard_id.c_str(),
               holders.leases.at(shards[0].shard_id).owner.value_or("?").c_str(), shards[2].shard_id.c_str(),
               holders.leases.at(shards[2].shard_id).owner.value_or("?").c_str(), shards[3].shard_id.c_str(),
               holders.leases.at(shards[3].shard_id).owner.value_or("?").c_str(), starts.c_str());
  for (const auto& [w, d] : daemons) ::kill(d->pid(), SIGTERM);
  for (const auto& [w, d] : daemons) EXPECT_TRUE(d->wait(15s).has_value()) << w << " did not exit on SIGTERM";
}

INSTANTIATE_TEST_SUITE_P(Stores, DaemonFleetReshardTest, ::testing::Values(Store::Sqlite), param_name);

}  // namespace
