// Taking over a Java KCL application: a lease table on dynalite exactly as a Java KCL 2.x /
// 3.x fleet leaves it when its last worker died (raw put_item of the items
// DynamoDBLeaseSerializer writes, docs/checkpoints.md §4), with checkpoints at real
// sequence numbers of records in kinesalite, one inside a KPL aggregate (a sub-sequence
// number). Two `kclpp daemon` processes with the Node aws-kcl child start on that table
// with the same application name and initialPositionInStream = LATEST (the Java default,
// so that every position must come from the table):
//  - nothing of the dead worker's leases is processed before the failover time;
//  - then every lease is taken and every shard resumes right after its checkpoint: nothing
//    at or before it comes again, nothing after it is lost, each record exactly once;
//  - the split's children (free leases whose parentShardId is the SHARD_END parent) start
//    at TRIM_HORIZON, and the parent is left alone;
//  - what the workers wrote is what the KCL's deserializer reads (attribute names and
//    DynamoDB types as DynamoDBLeaseSerializer.fromDynamoRecord reads them), and the KCL
//    3.x coordinator items in the table are untouched.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <utility>

#include "daemon_fleet_support.hpp"
#include "dynalite_fixture.hpp"
#include "kclpp/aws/dynamodb_client.hpp"
#include "kinesalite_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using kclpp::aws::AttributeValue;
using kclpp::aws::Item;
using kclpp::test::eventually;
using kclpp::test::fleet::Fleet;
using kclpp::test::fleet::ms_since;
using AV = AttributeValue;

constexpr int failover_ms = 1500;
const std::string dead_worker = "java-worker-7f3c";  // the Java fleet's last worker, gone

// (sequence number, sub-sequence number): what identifies a user record.
using Position = std::pair<std::string, long long>;

// Milliseconds since the epoch of a log line's time stamp (2026-12-06T13:44:50.795Z ...).
long long log_time_ms(const std::string& line) {
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(line.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &millis) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<long long>(::timegm(&tm)) * 1000 + millis;
}

bool is_decimal(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// What DynamoDBLeaseSerializer.fromDynamoRecord (KCL 2.x/3.x) needs of a lease item: each
// attribute it reads with the type its DynamoUtils.safeGet* reads (another type reads as
// null there), numbers Long.parseLong can parse. Returns the problems, empty when the KCL
// reads the item.
std::vector<std::string> kcl_read_problems(const Item& item) {
  std::vector<std::string> problems;
  const auto type_of = [&](const char* name) -> std::optional<AV::Type> {
    const auto it = item.find(name);
    if (it == item.end()) return std::nullopt;
    return it->second.type();
  };
  const auto need = [&](const char* name, AV::Type type, bool required) {
    const auto t = type_of(name);
    if (!t) {
      if (required) problems.push_back(std::string(name) + " is missing");
      return false;
    }
    if (*t != type) {
      problems.push_back(std::string(name) + " is " + item.at(name).type_name());
      return false;
    }
    return true;
  };
  const auto need_long = [&](const char* name, bool required) {
    if (need(name, AV::Type::N, required) && !is_decimal(item.at(name).as_n()))
      problems.push_back(std::string(name) + " = " + item.at(name).as_n() + " is no Long");
  };
  if (need("entityType", AV::Type::S, false) && item.at("entityType").as_s() != "LEASE")
    problems.push_back("entityType is " + item.at("entityType").as_s());
  need("leaseKey", AV::Type::S, true);
  need("leaseOwner", AV::Type::S, false);
  need_long("leaseCounter", true);
  need_long("ownerSwitchesSinceCheckpoint", true);
  if (need("checkpoint", AV::Type::S, true)) {
    const std::string& c = item.at("checkpoint").as_s();
    if (!is_decimal(c) && c != "TRIM_HORIZON" && c != "LATEST" && c != "SHARD_END" && c != "AT_TIMESTAMP")
      problems.push_back("checkpoint '" + c + "' is no sequence number");
  }
  need_long("checkpointSubSequenceNumber", true);
  for (const char* set : {"parentShardId", "childShardIds"}) {
    if (need(set, AV::Type::SS, false) && item.at(set).as_ss().empty()) problems.push_back(std::string(set) + " is empty");
  }
  if (need("pendingCheckpoint", AV::Type::S, false)) need_long("pendingCheckpointSubSequenceNumber", true);
  need("pendingCheckpointState", AV::Type::B, false);
  if (need("startingHashKey", AV::Type::S, false) != need("endingHashKey", AV::Type::S, false))
    problems.push_back("one hash key without the other");
  need("throughputKBps", AV::Type::N, false);
  need("checkpointOwner", AV::Type::S, false);
  return problems;
}

class KclTableTakeoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kclpp::test::become_subreaper();
    KCLPP_REQUIRE_PRESENT(Fleet::unavailable());
    kinesis_ = std::make_unique<kclpp::test::Kinesalite>();
    KCLPP_REQUIRE_SERVER(*kinesis_);
    dynalite_ = std::make_unique<kclpp::test::Dynalite>();
    KCLPP_REQUIRE_SERVER(*dynalite_);
    kinesis_client_ = std::make_unique<kclpp::aws::KinesisClient>(kinesis_->client_options());
    ddb_ = std::make_unique<kclpp::aws::DynamoDbClient>(dynalite_->client_options());
    kinesis_client_->create_stream(stream_, 4);
    kinesis_client_->wait_for_active(stream_, 10s);
    for (const auto& s : kinesis_client_->list_shards(stream_)) hash_start_[s.shard_id] = s.starting_hash_key;
  }

  // Puts `data` on `shard` (its starting hash key as the explicit hash key).
  std::string put(const std::string& shard, const std::string& data) {
    const auto r = kinesis_client_->put_record(stream_, data, "pk", hash_start_.at(shard));
    EXPECT_EQ(r.shard_id, shard);
    return r.sequence_number;
  }

  Item raw(const std::string& key) {
    return ddb_->get_item(application_, {{"leaseKey", AV::s(key)}}, kclpp::aws::ReadConsistency::Strong)
        .value_or(Item{});
  }

  std::unique_ptr<kclpp::test::Kinesalite> kinesis_;
  std::unique_ptr<kclpp::test::Dynalite> dynalite_;
  std::unique_ptr<kclpp::aws::KinesisClient> kinesis_client_;
  std::unique_ptr<kclpp::aws::DynamoDbClient> ddb_;
  std::map<std::string, std::string> hash_start_;
  kclpp::test::TempDir dir_{"kclpp-kcl-takeover"};
  const std::string stream_ = "legacy";
  const std::string application_ = "LegacyJavaApp";  // also the lease table's name
};

const std::string shard0 = "shardId-000000000000";
const std::string shard1 = "shardId-000000000001";
const std::string shard2 = "shardId-000000000002";
const std::string shard3 = "shardId-000000000003";
const std::string child4 = "shardId-000000000004";
const std::string child5 = "shardId-000000000005";

TEST_F(KclTableTakeoverTest, KclppResumesEveryShardAfterTheJavaCheckpointsAndWritesItemsTheKclReads) {
  // --- the stream as the Java fleet read it -------------------------------------------------
  std::map<std::string, std::vector<Position>> expected;  // shard -> what must be processed
  std::vector<std::string> s0;
  for (int i = 0; i < 10; ++i) s0.push_back(put(shard0, "s0-" + std::to_string(i)));
  for (int i = 5; i < 10; ++i) expected[shard0].push_back({s0[static_cast<std::size_t>(i)], 0});

  // Three KPL aggregates of 9 user records each (made by the npm aws-kinesis-agg packer).
  const std::string aggregate =
      kclpp::test::read_file(std::filesystem::path(KCLPP_SOURCE_DIR) / "tests" / "data" / "kpl" / "basic.bin");
  ASSERT_FALSE(aggregate.empty());
  std::vector<std::string> s1;
  for (int i = 0; i < 3; ++i) s1.push_back(put(shard1, aggregate));
  for (long long sub = 5; sub < 9; ++sub) expected[shard1].push_back({s1[1], sub});
  for (long long sub = 0; sub < 9; ++sub) expected[shard1].push_back({s1[2], sub});

  for (int i = 0; i < 5; ++i) expected[shard2].push_back({put(shard2, "s2-" + std::to_string(i)), 0});

  std::vector<std::string> s3;
  for (int i = 0; i < 4; ++i) s3.push_back(put(shard3, "s3-" + std::to_string(i)));
  // Split shard 3 in the middle of its range: children 4 and 5.
  const auto shards = kinesis_client_->list_shards(stream_);
  const auto parent = std::find_if(shards.begin(), shards.end(), [](const auto& s) { return s.shard_id == shard3; });
  ASSERT_NE(parent, shards.end());
  const std::string mid = "306254130228844617117037146688591390310";  // inside shard 3's quarter
  kinesis_client_->split_shard(stream_, shard3, mid);
  kinesis_client_->wait_for_active(stream_, 10s);
  for (const auto& s : kinesis_client_->list_shards(stream_)) hash_start_[s.shard_id] = s.starting_hash_key;
  ASSERT_EQ(hash_start_.count(child4) + hash_start_.count(child5), 2u);
  for (const auto& child : {child4, child5})
    for (int i = 0; i < 3; ++i) expected[child].push_back({put(child, child + "-" + std::to_string(i)), 0});

  // --- the lease table as the Java fleet left it -------------------------------------------
  ddb_->create_table(application_, {"leaseKey", kclpp::aws::KeyAttribute::Type::S});
  ddb_->wait_for_active(application_, 10s);
  const auto hash_of = [&](const std::string& shard) {
    const auto s = std::find_if(shards.begin(), shards.end(), [&](const auto& x) { return x.shard_id == shard; });
    return std::make_pair(AV::s(s->starting_hash_key), AV::s(s->ending_hash_key));
  };
  // KCL 2.x: no entityType; held by the dead worker, checkpoint at record 4.
  ddb_->put_item(application_, {{"leaseKey", AV::s(shard0)},
                                {"leaseOwner", AV::s(dead_worker)},
                                {"leaseCounter", AV::n("1042")},
                                {"ownerSwitchesSinceCheckpoint", AV::n("1")},
                                {"checkpoint", AV::s(s0[4])},
                                {"checkpointSubSequenceNumber", AV::n("0")},
                                {"startingHashKey", hash_of(shard0).first},
                                {"endingHashKey", hash_of(shard0).second}});
  // KCL 3.x: entityType LEASE, inside the second aggregate (sub-record 4 done), throughput.
  ddb_->put_item(application_, {{"leaseKey", AV::s(shard1)},
                                {"leaseOwner", AV::s(dead_worker)},
                                {"leaseCounter", AV::n("77")},
                                {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                                {"checkpoint", AV::s(s1[1])},
                                {"checkpointSubSequenceNumber", AV::n("4")},
                                {"startingHashKey", hash_of(shard1).first},
                                {"endingHashKey", hash_of(shard1).second},
                                {"throughputKBps", AV::n("3.25")},
                                {"entityType", AV::s("LEASE")}});
  // createLease's pendingCheckpointState as an N (the KCL's mistake), at TRIM_HORIZON.
  ddb_->put_item(application_, {{"leaseKey", AV::s(shard2)},
                                {"leaseOwner", AV::s(dead_worker)},
                                {"leaseCounter", AV::n("3")},
                                {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                                {"checkpoint", AV::s("TRIM_HORIZON")},
                                {"checkpointSubSequenceNumber", AV::n("0")},
                                {"pendingCheckpointState", AV::n("0")},
                                {"startingHashKey", hash_of(shard2).first},
                                {"endingHashKey", hash_of(shard2).second}});
  // The split parent, read to its end by the dead worker; its children created by the
  // KCL's shard sync: free, at TRIM_HORIZON, parentShardId set.
  const Item parent_item{{"leaseKey", AV::s(shard3)},
                         {"leaseOwner", AV::s(dead_worker)},
                         {"leaseCounter", AV::n("12")},
                         {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                         {"checkpoint", AV::s("SHARD_END")},
                         {"checkpointSubSequenceNumber", AV::n("0")},
                         {"childShardIds", AV::ss({child4, child5})},
                         {"startingHashKey", hash_of(shard3).first},
                         {"endingHashKey", hash_of(shard3).second}};
  ddb_->put_item(application_, parent_item);
  for (const auto& child : {child4, child5}) {
    ddb_->put_item(application_, {{"leaseKey", AV::s(child)},
                                  {"leaseCounter", AV::n("0")},
                                  {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                                  {"checkpoint", AV::s("TRIM_HORIZON")},
                                  {"checkpointSubSequenceNumber", AV::n("0")},
                                  {"parentShardId", AV::ss({shard3})},
                                  {"entityType", AV::s("LEASE")}});
  }
  // KCL 3.x coordinator items in the same table: not leases.
  const Item leader{{"leaseKey", AV::s("Leader")},
                    {"entityType", AV::s("LEADER")},
                    {"leaseCounter", AV::n("5")},
                    {"leaderId", AV::s(dead_worker)}};
  const Item migration{{"leaseKey", AV::s("Migration3.0")},
                       {"entityType", AV::s("CLIENT_VERSION_MIGRATION")},
                       {"cv", AV::s("CLIENT_VERSION_3X")},
                       {"mb", AV::s(dead_worker)}};
  ddb_->put_item(application_, leader);
  ddb_->put_item(application_, migration);

  // --- two kclpp daemons on that table ------------------------------------------------------
  kclpp::test::fleet::FleetSettings settings;
  settings.stream = stream_;
  settings.application = application_;
  settings.kinesis_endpoint = kinesis_->endpoint();
  settings.initial_position = "LATEST";
  settings.failover_ms = failover_ms;
  settings.take_interval_ms = 500;
  settings.store.properties = "checkpointStore = dynamodb:\ndynamoDBEndpoint = " + dynalite_->endpoint() + "\n";
  settings.store.uri = "dynamodb:" + application_;
  settings.store.options.dynamodb = dynalite_->client_options();
  // Keep the finished parent's lease, so that the test can see it was left alone.
  settings.extra_properties = "cleanupLeasesUponShardCompletion = false\n";
  Fleet fleet(settings, dir_);
  const std::vector<std::string> workers{"kclpp-a", "kclpp-b"};

  kclpp::test::PidReaper reaper;
  const auto t_start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<kclpp::test::Subprocess>> daemons;
  for (const auto& w : workers) daemons.push_back(fleet.start(w));

  const auto processed = [&] {
    std::map<std::string, std::vector<Position>> out;
    for (const auto& w : workers)
      for (const auto& r : fleet.view(w).records()) out[r.shard].push_back({r.sequence_number, r.sub_sequence_number});
    return out;
  };
  // The lease table, each daemon's children, and each daemon's lease log lines.
  const auto dump = [&] {
    std::string out = kclpp::test::fleet::describe(fleet.owners());
    for (std::size_t i = 0; i < workers.size(); ++i) {
      out += "  " + workers[i] + ":\n" + fleet.view(workers[i]).dump();
      for (const auto& l : kclpp::test::lines_with(daemons[i]->stderr_text(), "lease")) out += "    " + l + "\n";
    }
    for (const auto& item : ddb_->scan(application_)) {
      for (const auto& [name, value] : item) out += "  " + name + "=" + value.to_json();
      out += "\n";
    }
    return out;
  };

  // A kclpp worker takes the dead worker's leases as expired only once their counters
  // stood still for the failover time on its own clock, counted from its start. (Before
  // that the dead worker looks alive and loaded: a worker below its share may steal one
  // lease per take round from it, as the KCL's taker does.)
  ASSERT_TRUE(eventually([&] { return fleet.owners().count(dead_worker) == 0; }, 20s)) << dump();
  std::size_t expired_takes = 0;
  for (const auto& d : daemons) {
    const std::string err = d->stderr_text();
    const auto started = kclpp::test::lines_with(err, "leases: worker ");
    ASSERT_EQ(started.size(), 1u) << err;
    for (const auto& line : kclpp::test::lines_with(err, "(expired, from " + dead_worker + ")")) {
      ++expired_takes;
      EXPECT_GE(log_time_ms(line) - log_time_ms(started[0]), failover_ms) << line << "\n" << started[0];
    }
    EXPECT_LE(kclpp::test::lines_with(err, "(stolen from " + dead_worker + ")").size(), 2u) << err;
  }
  EXPECT_GE(expired_takes, 1u) << dump();

  // Then everything after the checkpoints, each record once.
  std::size_t expected_total = 0;
  for (const auto& [shard, list] : expected) expected_total += list.size();
  ASSERT_TRUE(eventually(
      [&] {
        std::size_t n = 0;
        for (const auto& [shard, list] : processed()) n += list.size();
        return n >= expected_total;
      },
      30s))
      << dump();
  const auto resumed = ms_since(t_start);
  std::this_thread::sleep_for(1s);  // a few more reads (idle 200 ms): anything extra shows up
  auto got = processed();
  for (auto& [shard, list] : got) std::sort(list.begin(), list.end());
  for (auto& [shard, list] : expected) std::sort(list.begin(), list.end());
  EXPECT_EQ(got, expected) << dump();
  EXPECT_EQ(got.count(shard3), 0u) << "the SHARD_END parent was processed again";

  // Every lease but the finished parent's moved to a kclpp worker, between the two.
  const auto owners = fleet.owners();
  EXPECT_EQ(owners.count(dead_worker), 0u) << dump();
  EXPECT_EQ(owners.count(""), 0u) << dump();
  EXPECT_EQ(owners.at("kclpp-a").size() + owners.at("kclpp-b").size(), 5u) << dump();

  // What each child was told at initialize: the checkpoint it resumes after; the split's
  // children start at TRIM_HORIZON.
  std::map<std::string, std::string> initialized;
  for (const auto& w : workers)
    for (const auto& [pid, life] : fleet.view(w).children) initialized[life.shard] = life.initialize_sequence_number;
  EXPECT_EQ(initialized[shard0], s0[4]);
  EXPECT_EQ(initialized[shard1], s1[1]);
  EXPECT_EQ(initialized[shard2], "TRIM_HORIZON");
  EXPECT_EQ(initialized[child4], "TRIM_HORIZON");
  EXPECT_EQ(initialized[child5], "TRIM_HORIZON");

  // The Node child checkpoints each batch at its last record's sequence number alone,
  // which kclpp records as sub-sequence number 0, as the KCL's checkpoint(String) does;
  // its shutdown checkpoint (no argument) is the last user record, (X2, 8), below.
  ASSERT_TRUE(eventually(
      [&] {
        return raw(shard0)["checkpoint"] == AV::s(s0[9]) && raw(shard1)["checkpoint"] == AV::s(s1[2]) &&
               raw(shard1)["checkpointSubSequenceNumber"] == AV::n("0") &&
               raw(shard2)["checkpoint"] == AV::s(expected[shard2].back().first) &&
               raw(child4)["checkpoint"] == AV::s(expected[child4].back().first) &&
               raw(child5)["checkpoint"] == AV::s(expected[child5].back().first);
      },
      10s))
      << dump();

  for (auto& d : daemons) {
    ASSERT_EQ(::kill(d->pid(), SIGTERM), 0);
    const auto status = d->wait(10s);
    ASSERT_TRUE(status.has_value()) << d->stderr_text();
    EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << d->stderr_text();
  }

  // --- what the KCL finds in its table now -------------------------------------------------
  const std::map<std::string, long long> counter_before{{shard0, 1042}, {shard1, 77}, {shard2, 3},
                                                        {child4, 0},    {child5, 0}};
  for (const auto& [key, before] : counter_before) {
    const Item item = raw(key);
    const auto problems = kcl_read_problems(item);
    EXPECT_TRUE(problems.empty()) << key << ": " << problems.front();
    EXPECT_EQ(item.count("leaseOwner"), 0u) << key << ": released on SIGTERM";
    ASSERT_EQ(item.count("leaseCounter"), 1u);
    EXPECT_GT(item.at("leaseCounter").as_int64(), before) << key;
    EXPECT_EQ(item.count("pendingCheckpointState"), 0u) << key << ": cleared by the checkpoint";
  }
  EXPECT_EQ(raw(shard1)["checkpoint"], AV::s(s1[2]));
  EXPECT_EQ(raw(shard1)["checkpointSubSequenceNumber"], AV::n("8")) << "the shutdown checkpoint: the last sub-record";
  EXPECT_EQ(raw(shard0)["checkpoint"], AV::s(s0[9]));
  EXPECT_EQ(raw(shard0).count("entityType"), 0u) << "a KCL 2.x item stays as it was written";
  EXPECT_EQ(raw(shard1)["entityType"], AV::s("LEASE"));
  EXPECT_EQ(raw(shard1)["throughputKBps"], AV::n("3.25")) << "kept, not acted on";
  EXPECT_EQ(raw(child4)["parentShardId"], AV::ss({shard3}));
  EXPECT_EQ(raw(shard0)["startingHashKey"], hash_of(shard0).first);
  EXPECT_EQ(raw(shard3), parent_item) << "the finished parent is nobody's work: left alone";
  EXPECT_EQ(raw("Leader"), leader);
  EXPECT_EQ(raw("Migration3.0"), migration);
  EXPECT_EQ(ddb_->scan(application_).size(), 8u) << "kclpp created or deleted items";

  std::fprintf(stderr, "[ takeover ] every shard resumed after the Java checkpoints %lld ms after start (failover %d)\n",
               static_cast<long long>(resumed.count()), failover_ms);
}

}  // namespace
