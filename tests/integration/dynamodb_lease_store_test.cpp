// The "dynamodb:" store (native-reader/src/dynamodb_store.cpp) against dynalite: the table
// made when missing and used as it is when present; a lease table written as the Java
// KCL's DynamoDBLeaseSerializer writes it (raw put_item items, docs/checkpoints.md §4) read
// back lease by lease; the raw items kclpp writes (the KCL's names and types, unknown
// attributes kept); conditional writes; a race of writers on one counter; the checkpoint
// side; error classification against a dead endpoint and a fake server that refuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dynalite_fixture.hpp"
#include "fake_http_server.hpp"
#include "kclpp/aws/dynamodb_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/lease_table.hpp"
#include "kclpp/processor/error.hpp"
#include "local_server.hpp"

namespace kclpp::aws {
// gtest prints values in DynamoDB's JSON: defined in dynamodb_client_test.cpp, which this
// binary (kclpp_dynamodb_tests) also holds.
void PrintTo(const AttributeValue& v, std::ostream* os);
}  // namespace kclpp::aws

namespace kclpp::native {
// gtest prints leases field by field on failure.
void PrintTo(const Lease& l, std::ostream* os) {
  const auto opt = [](const std::optional<std::string>& v) { return v ? "'" + *v + "'" : std::string("-"); };
  const auto set = [](const std::vector<std::string>& v) {
    std::string s = "{";
    for (const auto& x : v) s += x + ",";
    return s + "}";
  };
  *os << "Lease{key=" << l.key << " owner=" << opt(l.owner) << " counter=" << l.counter
      << " checkpoint=" << l.checkpoint.str() << "/" << l.checkpoint.sub_sequence_number() << " pending="
      << (l.pending_checkpoint ? l.pending_checkpoint->str() + "/" +
                                     std::to_string(l.pending_checkpoint->sub_sequence_number())
                               : std::string("-"))
      << " state=" << opt(l.pending_checkpoint_state) << " switches=" << l.owner_switches_since_checkpoint
      << " parents=" << set(l.parent_shard_ids) << " children=" << set(l.child_shard_ids)
      << " hash=" << opt(l.starting_hash_key) << ".." << opt(l.ending_hash_key)
      << " kbps=" << opt(l.throughput_kbps) << " checkpointOwner=" << opt(l.checkpoint_owner) << "}";
}
}  // namespace kclpp::native

namespace kclpp::native {
namespace {

using namespace std::chrono_literals;
using aws::AttributeValue;
using aws::DynamoDbClient;
using aws::Item;
using aws::KeyAttribute;
using test::Dynalite;
using AV = AttributeValue;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// Real Kinesis sequence numbers have 56 digits: more than a DynamoDB N can hold.
const std::string seq_a = "49590338271490256608559692538361571095921575989136588898";
const std::string seq_b = "49590338271490256608559692540925702759324208523137515618";

Item key_of(const std::string& shard) { return {{"leaseKey", AV::s(shard)}}; }

// The names and types of an item's attributes, for "exactly these attributes" checks.
std::map<std::string, std::string> shape(const Item& item) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : item) out.emplace(name, value.type_name());
  return out;
}

class DynamoLeaseStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<Dynalite>(); }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<DynamoDbClient>(server_->client_options());
  }

  // What a user writes: a URI and the client options.
  static std::unique_ptr<CheckpointStore> open(const std::string& uri) {
    StoreOptions options;
    options.dynamodb = server_->client_options();
    return open_checkpoint_store(uri, options);
  }

  void make_table(const std::string& name) {
    client_->create_table(name, {"leaseKey", KeyAttribute::Type::S});
    client_->wait_for_active(name, 10s);
  }

  Item raw(const std::string& table, const std::string& key) {
    auto item = client_->get_item(table, key_of(key), aws::ReadConsistency::Strong);
    EXPECT_TRUE(item.has_value()) << "no item " << key << " in " << table;
    return item.value_or(Item{});
  }

  static std::unique_ptr<Dynalite> server_;
  std::unique_ptr<DynamoDbClient> client_;
};

std::unique_ptr<Dynalite> DynamoLeaseStoreTest::server_;

// --- the table ---------------------------------------------------------------------------

TEST_F(DynamoLeaseStoreTest, CreatesTheMissingTableNamedAfterTheApplication) {
  const auto store = open("dynamodb:");
  ASSERT_EQ(client_->describe_table("app-create"), std::nullopt);
  // Reading a missing table is "nothing checkpointed", and creates nothing.
  EXPECT_EQ(store->load({"app-create", "s", "shardId-0"}), std::nullopt);
  EXPECT_TRUE(store->load_all("app-create", "s").empty());
  EXPECT_TRUE(store->list("app-create").empty());
  EXPECT_EQ(client_->describe_table("app-create"), std::nullopt);

  const auto leases = store->leases("app-create", "stream-1");
  ASSERT_NE(leases, nullptr);
  EXPECT_EQ(leases->describe(), "dynamodb:app-create");
  const auto d = client_->describe_table("app-create");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->status, "ACTIVE");
  EXPECT_EQ(d->hash_key.name, "leaseKey");
  EXPECT_EQ(d->hash_key.type, KeyAttribute::Type::S);
  EXPECT_FALSE(d->range_key.has_value());
  EXPECT_TRUE(leases->list().empty());

  // A second worker (or a second call) finds it there and uses it.
  const auto again = open("dynamodb:")->leases("app-create", "stream-1");
  Lease l;
  l.key = "shardId-000000000000";
  EXPECT_TRUE(again->create(l));
  ASSERT_EQ(leases->list().size(), 1u);
}

TEST_F(DynamoLeaseStoreTest, TableNamedInTheUriServesEveryApplication) {
  const auto store = open("dynamodb:fixed.table-1");
  const auto leases = store->leases("some application name that is no table name", "s");
  EXPECT_EQ(leases->describe(), "dynamodb:fixed.table-1");
  EXPECT_TRUE(client_->describe_table("fixed.table-1").has_value());
  store->save({"other-app", "s", "shardId-7"}, ExtendedSequenceNumber(SequenceNumber(seq_a), 2));
  EXPECT_EQ(store->load({"third-app", "x", "shardId-7"}), ExtendedSequenceNumber(SequenceNumber(seq_a), 2));
  EXPECT_EQ(client_->describe_table("other-app"), std::nullopt);

  // Without a table in the URI the application must be a valid table name.
  try {
    (void)open("dynamodb:")->leases("no spaces allowed", "s");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "'no spaces allowed'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "dynamodb:TABLE")) << e.what();
  }
}

TEST_F(DynamoLeaseStoreTest, UsesAnExistingTableAsItIsAndRefusesOneWithAnotherKey) {
  make_table("existing");
  client_->put_item("existing", {{"leaseKey", AV::s("shardId-1")},
                                 {"leaseCounter", AV::n("4")},
                                 {"checkpoint", AV::s("LATEST")},
                                 {"checkpointSubSequenceNumber", AV::n("0")}});
  const auto leases = open("dynamodb:existing")->leases("app", "s");
  const auto all = leases->list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].counter, 4);
  EXPECT_EQ(all[0].checkpoint, ExtendedSequenceNumber(Sentinel::Latest));

  client_->create_table("wrong-key", {"id", KeyAttribute::Type::S});
  client_->wait_for_active("wrong-key", 10s);
  try {
    (void)open("dynamodb:wrong-key")->leases("app", "s");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "dynamodb:wrong-key: not a KCL lease table")) << e.what();
  }
}

// --- a table the Java KCL wrote ----------------------------------------------------------

// Items as DynamoDBLeaseSerializer.toDynamoRecord / getDynamoUpdateLeaseUpdate write them
// (KCL 2.x: no entityType; KCL 3.5: entityType LEASE), and a KCL 3.x coordinator item.
void write_kcl_fixture(DynamoDbClient& c, const std::string& table) {
  // A KCL 2.x lease at TRIM_HORIZON, held, no entityType; createLease's pendingCheckpointState
  // bug: the checkpoint's sub-sequence number as an N.
  c.put_item(table, {{"leaseKey", AV::s("shardId-000000000000")},
                     {"leaseOwner", AV::s("worker-a")},
                     {"leaseCounter", AV::n("17")},
                     {"ownerSwitchesSinceCheckpoint", AV::n("2")},
                     {"checkpoint", AV::s("TRIM_HORIZON")},
                     {"checkpointSubSequenceNumber", AV::n("0")},
                     {"pendingCheckpointState", AV::n("0")},
                     {"startingHashKey", AV::s("0")},
                     {"endingHashKey", AV::s("170141183460469231731687303715884105727")}});
  // A KCL 3.5 lease in the middle of a KPL aggregate with a pending checkpoint and its
  // state as B, one parent, a graceful hand-off under way.
  c.put_item(table, {{"leaseKey", AV::s("shardId-000000000001")},
                     {"leaseOwner", AV::s("worker-b")},
                     {"leaseCounter", AV::n("3")},
                     {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                     {"checkpoint", AV::s(seq_a)},
                     {"checkpointSubSequenceNumber", AV::n("12")},
                     {"pendingCheckpoint", AV::s(seq_b)},
                     {"pendingCheckpointSubSequenceNumber", AV::n("4")},
                     {"pendingCheckpointState", AV::b(std::string("st\0\xff", 4))},
                     {"parentShardId", AV::ss({"shardId-000000000000"})},
                     {"startingHashKey", AV::s("170141183460469231731687303715884105728")},
                     {"endingHashKey", AV::s("340282366920938463463374607431768211455")},
                     {"throughputKBps", AV::n("12.5")},
                     {"checkpointOwner", AV::s("worker-c")},
                     {"entityType", AV::s("LEASE")},
                     {"customAttribute", AV::s("kept")}});
  // A free, finished merge child: two parents, children after its own end.
  c.put_item(table, {{"leaseKey", AV::s("shardId-000000000002")},
                     {"leaseCounter", AV::n("0")},
                     {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                     {"checkpoint", AV::s("SHARD_END")},
                     {"checkpointSubSequenceNumber", AV::n("0")},
                     {"parentShardId", AV::ss({"shardId-000000000001", "shardId-000000000000"})},
                     {"childShardIds", AV::ss({"shardId-000000000004", "shardId-000000000003"})},
                     {"entityType", AV::s("LEASE")}});
  c.put_item(table, {{"leaseKey", AV::s("shardId-000000000003")},
                     {"leaseCounter", AV::n("1")},
                     {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                     {"checkpoint", AV::s("AT_TIMESTAMP")},
                     {"checkpointSubSequenceNumber", AV::n("0")},
                     {"parentShardId", AV::ss({"shardId-000000000002"})}});
  c.put_item(table, {{"leaseKey", AV::s("shardId-000000000004")},
                     {"leaseCounter", AV::n("9")},
                     {"leaseOwner", AV::s("worker-a")},
                     {"ownerSwitchesSinceCheckpoint", AV::n("0")},
                     {"checkpoint", AV::s("LATEST")},
                     {"checkpointSubSequenceNumber", AV::n("0")},
                     {"parentShardId", AV::ss({"shardId-000000000002"})}});
  // KCL 3.5 keeps its coordinator's items in the lease table: not leases.
  c.put_item(table, {{"leaseKey", AV::s("Leader")},
                     {"entityType", AV::s("LEADER")},
                     {"leaseCounter", AV::n("5")},
                     {"leaderId", AV::s("worker-a")}});
  c.put_item(table, {{"leaseKey", AV::s("worker-a")},
                     {"entityType", AV::s("WORKER_METRIC_STATS")},
                     {"lastUpdateTime", AV::n("1700000000")}});
}

std::vector<Lease> expected_kcl_leases() {
  std::vector<Lease> e(5);
  e[0].key = "shardId-000000000000";
  e[0].owner = "worker-a";
  e[0].counter = 17;
  e[0].owner_switches_since_checkpoint = 2;
  e[0].checkpoint = ExtendedSequenceNumber(Sentinel::TrimHorizon);
  e[0].pending_checkpoint_state = "0";  // the N's text
  e[0].starting_hash_key = "0";
  e[0].ending_hash_key = "170141183460469231731687303715884105727";

  e[1].key = "shardId-000000000001";
  e[1].owner = "worker-b";
  e[1].counter = 3;
  e[1].checkpoint = ExtendedSequenceNumber(SequenceNumber(seq_a), 12);
  e[1].pending_checkpoint = ExtendedSequenceNumber(SequenceNumber(seq_b), 4);
  e[1].pending_checkpoint_state = std::string("st\0\xff", 4);
  e[1].parent_shard_ids = {"shardId-000000000000"};
  e[1].starting_hash_key = "170141183460469231731687303715884105728";
  e[1].ending_hash_key = "340282366920938463463374607431768211455";
  e[1].throughput_kbps = "12.5";
  e[1].checkpoint_owner = "worker-c";

  e[2].key = "shardId-000000000002";
  e[2].checkpoint = ExtendedSequenceNumber(Sentinel::ShardEnd);
  e[2].parent_shard_ids = {"shardId-000000000000", "shardId-000000000001"};
  e[2].child_shard_ids = {"shardId-000000000003", "shardId-000000000004"};

  e[3].key = "shardId-000000000003";
  e[3].counter = 1;
  e[3].checkpoint = ExtendedSequenceNumber(Sentinel::AtTimestamp);
  e[3].parent_shard_ids = {"shardId-000000000002"};

  e[4].key = "shardId-000000000004";
  e[4].owner = "worker-a";
  e[4].counter = 9;
  e[4].checkpoint = ExtendedSequenceNumber(Sentinel::Latest);
  e[4].parent_shard_ids = {"shardId-000000000002"};
  return e;
}

TEST_F(DynamoLeaseStoreTest, ReadsEveryLeaseOfAKclTableAndSkipsOtherEntities) {
  make_table("kcl-app");
  write_kcl_fixture(*client_, "kcl-app");
  const auto store = open("dynamodb:");
  const auto leases = store->leases("kcl-app", "stream");
  const auto expected = expected_kcl_leases();

  const auto all = leases->list();
  ASSERT_EQ(all.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(all[i], expected[i]) << "lease " << i;

  EXPECT_EQ(leases->get("shardId-000000000001"), expected[1]);
  EXPECT_EQ(leases->get("Leader"), std::nullopt);
  EXPECT_EQ(leases->get("shardId-999"), std::nullopt);

  const auto checkpoints = store->load_all("kcl-app", "stream");
  ASSERT_EQ(checkpoints.size(), expected.size());
  for (const auto& lease : expected) EXPECT_EQ(checkpoints.at(lease.key), lease.checkpoint) << lease.key;
  EXPECT_EQ(store->load({"kcl-app", "stream", "shardId-000000000001"}),
            ExtendedSequenceNumber(SequenceNumber(seq_a), 12));
  EXPECT_EQ(store->load({"kcl-app", "stream", "Leader"}), std::nullopt);

  const auto listed = store->list("kcl-app");
  ASSERT_EQ(listed.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(listed[i].shard_id, expected[i].key);
    EXPECT_EQ(listed[i].stream, "");
    EXPECT_EQ(listed[i].position, expected[i].checkpoint);
    EXPECT_EQ(listed[i].updated, std::chrono::system_clock::time_point{});  // unknown
  }
}

TEST_F(DynamoLeaseStoreTest, UpdateWritesTheKclAttributesAndKeepsUnknownOnes) {
  make_table("kcl-update");
  write_kcl_fixture(*client_, "kcl-update");
  const auto leases = open("dynamodb:kcl-update")->leases("app", "s");

  // A take by worker-d that completes the hand-off, then a checkpoint that clears the
  // pending one: what a coordinator does.
  Lease next = *leases->get("shardId-000000000001");
  next.owner = "worker-d";
  next.counter = 4;
  next.checkpoint = ExtendedSequenceNumber(SequenceNumber(seq_b), 0);
  next.pending_checkpoint.reset();
  next.pending_checkpoint_state.reset();
  next.checkpoint_owner.reset();
  next.child_shard_ids = {"shardId-000000000009", "shardId-000000000008"};
  next.owner_switches_since_checkpoint = 1;
  ASSERT_TRUE(leases->update(next, 3, std::string("worker-b")));

  const Item item = raw("kcl-update", "shardId-000000000001");
  const std::map<std::string, std::string> expected_shape{
      {"leaseKey", "S"},          {"leaseOwner", "S"},        {"leaseCounter", "N"},
      {"ownerSwitchesSinceCheckpoint", "N"}, {"checkpoint", "S"}, {"checkpointSubSequenceNumber", "N"},
      {"parentShardId", "SS"},    {"childShardIds", "SS"},    {"startingHashKey", "S"},
      {"endingHashKey", "S"},     {"throughputKBps", "N"},    {"entityType", "S"},
      {"customAttribute", "S"}};
  EXPECT_EQ(shape(item), expected_shape);
  EXPECT_EQ(item.at("leaseOwner"), AV::s("worker-d"));
  EXPECT_EQ(item.at("leaseCounter"), AV::n("4"));
  EXPECT_EQ(item.at("checkpoint"), AV::s(seq_b));
  EXPECT_EQ(item.at("checkpointSubSequenceNumber"), AV::n("0"));
  EXPECT_EQ(item.at("ownerSwitchesSinceCheckpoint"), AV::n("1"));
  EXPECT_EQ(item.at("childShardIds"), AV::ss({"shardId-000000000008", "shardId-000000000009"}));
  EXPECT_EQ(item.at("parentShardId"), AV::ss({"shardId-000000000000"}));
  EXPECT_EQ(item.at("throughputKBps"), AV::n("12.5"));
  EXPECT_EQ(item.at("entityType"), AV::s("LEASE"));
  EXPECT_EQ(item.at("customAttribute"), AV::s("kept"));
  std::sort(next.child_shard_ids.begin(), next.child_shard_ids.end());
  EXPECT_EQ(leases->get(next.key), next);

  // A release: the owner goes, a pending checkpoint with its state comes (as B).
  Lease released = next;
  released.owner.reset();
  released.counter = 5;
  released.pending_checkpoint = ExtendedSequenceNumber(SequenceNumber(seq_b), 7);
  released.pending_checkpoint_state = std::string("\x01\x02", 2);
  ASSERT_TRUE(leases->update(released, 4, std::string("worker-d")));
  const Item after = raw("kcl-update", "shardId-000000000001");
  EXPECT_EQ(after.count("leaseOwner"), 0u);
  EXPECT_EQ(after.at("pendingCheckpoint"), AV::s(seq_b));
  EXPECT_EQ(after.at("pendingCheckpointSubSequenceNumber"), AV::n("7"));
  EXPECT_EQ(after.at("pendingCheckpointState"), AV::b(std::string("\x01\x02", 2)));
  EXPECT_EQ(leases->get(next.key), released);

  // The KCL 2.x lease with the N state: an update writes B (what the KCL's reader expects).
  Lease old = *leases->get("shardId-000000000000");
  old.counter = 18;
  ASSERT_TRUE(leases->update(old, 17, std::string("worker-a")));
  const Item old_item = raw("kcl-update", "shardId-000000000000");
  EXPECT_EQ(old_item.at("pendingCheckpointState"), AV::b("0"));
  EXPECT_EQ(old_item.count("entityType"), 0u);  // update never adds one
}

TEST_F(DynamoLeaseStoreTest, CreateWritesAWholeKclItem) {
  const auto leases = open("dynamodb:")->leases("app-create-item", "s");
  Lease l;
  l.key = "shardId-000000000005";
  l.counter = 0;
  l.checkpoint = ExtendedSequenceNumber(Sentinel::TrimHorizon);
  l.parent_shard_ids = {"shardId-000000000001", "shardId-000000000000"};
  l.starting_hash_key = "0";
  l.ending_hash_key = "99";
  ASSERT_TRUE(leases->create(l));
  const Item item = raw("app-create-item", l.key);
  const std::map<std::string, std::string> expected_shape{
      {"leaseKey", "S"},      {"leaseCounter", "N"}, {"ownerSwitchesSinceCheckpoint", "N"},
      {"checkpoint", "S"},    {"checkpointSubSequenceNumber", "N"}, {"parentShardId", "SS"},
      {"startingHashKey", "S"}, {"endingHashKey", "S"}, {"entityType", "S"}};
  EXPECT_EQ(shape(item), expected_shape);
  EXPECT_EQ(item.at("checkpoint"), AV::s("TRIM_HORIZON"));
  EXPECT_EQ(item.at("entityType"), AV::s("LEASE"));
  std::sort(l.parent_shard_ids.begin(), l.parent_shard_ids.end());
  EXPECT_EQ(leases->get(l.key), l);
  // Once there, create refuses and changes nothing.
  Lease other = l;
  other.owner = "intruder";
  EXPECT_FALSE(leases->create(other));
  EXPECT_EQ(raw("app-create-item", l.key), item);
}

// --- conditions ----------------------------------------------------------------------------

TEST_F(DynamoLeaseStoreTest, FailedConditionsReturnFalseAndChangeNothing) {
  make_table("kcl-cond");
  write_kcl_fixture(*client_, "kcl-cond");
  const auto leases = open("dynamodb:kcl-cond")->leases("app", "s");
  const Lease held = *leases->get("shardId-000000000004");  // worker-a, counter 9
  const Item before = raw("kcl-cond", held.key);
  Lease next = held;
  next.owner = "thief";
  next.counter = 10;

  EXPECT_FALSE(leases->update(next, 8, std::string("worker-a")));  // stale counter
  EXPECT_FALSE(leases->update(next, 9, std::string("worker-b")));  // another owner
  EXPECT_FALSE(leases->update(next, 9, std::nullopt));             // it is not free
  EXPECT_FALSE(leases->remove(held.key, 8));
  EXPECT_EQ(raw("kcl-cond", held.key), before);

  Lease ghost = next;
  ghost.key = "shardId-000000000099";
  EXPECT_FALSE(leases->update(ghost, 0, std::nullopt));  // no such lease: none created
  EXPECT_EQ(client_->get_item("kcl-cond", key_of(ghost.key), aws::ReadConsistency::Strong), std::nullopt);

  // The coordinator's items are never written, even with a matching counter.
  const Item leader = raw("kcl-cond", "Leader");
  Lease as_leader;
  as_leader.key = "Leader";
  as_leader.counter = 6;
  EXPECT_FALSE(leases->update(as_leader, 5, std::nullopt));
  EXPECT_FALSE(leases->remove("Leader", 5));
  EXPECT_EQ(raw("kcl-cond", "Leader"), leader);

  // A free lease: expected owner nullopt matches; then removal by counter.
  Lease free_lease = *leases->get("shardId-000000000003");
  free_lease.owner = "worker-z";
  free_lease.counter = 2;
  EXPECT_TRUE(leases->update(free_lease, 1, std::nullopt));
  EXPECT_FALSE(leases->remove(free_lease.key, 1));
  EXPECT_TRUE(leases->remove(free_lease.key, 2));
  EXPECT_EQ(leases->get(free_lease.key), std::nullopt);
  EXPECT_FALSE(leases->remove(free_lease.key, 2));
}

TEST_F(DynamoLeaseStoreTest, OfEightWritersFromOneCounterExactlyOneWins) {
  const auto store = open("dynamodb:");
  const auto leases = store->leases("app-race", "s");
  for (int round = 0; round < 3; ++round) {
    Lease base;
    base.key = "shardId-race-" + std::to_string(round);
    base.counter = 41;
    ASSERT_TRUE(leases->create(base));
    std::atomic<int> wins{0};
    std::atomic<int> winner{-1};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        Lease mine = base;
        mine.owner = "worker-" + std::to_string(i);
        mine.counter = 42;
        while (!go.load()) std::this_thread::yield();
        if (leases->update(mine, 41, std::nullopt)) {
          ++wins;
          winner = i;
        }
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    const auto stored = leases->get(base.key);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->counter, 42);
    EXPECT_EQ(stored->owner, "worker-" + std::to_string(winner.load()));

    // Eight renewals by the owner from one counter (only the counter tells them apart):
    // one moves it, the others see a stale counter.
    wins = 0;
    go = false;
    threads.clear();
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        Lease renewed = *stored;
        renewed.counter = 43;
        renewed.owner_switches_since_checkpoint = i;
        while (!go.load()) std::this_thread::yield();
        if (leases->update(renewed, 42, stored->owner)) ++wins;
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    EXPECT_EQ(leases->get(base.key)->counter, 43);
  }
}

// --- the checkpoint side ---------------------------------------------------------------------

TEST_F(DynamoLeaseStoreTest, SaveWritesTheCheckpointOfALeaseOrMakesOne) {
  make_table("kcl-save");
  write_kcl_fixture(*client_, "kcl-save");
  const auto store = open("dynamodb:");
  // On a held lease: the checkpoint moves, ownerSwitchesSinceCheckpoint resets, the
  // owner and the counter stay.
  store->save({"kcl-save", "s", "shardId-000000000000"}, ExtendedSequenceNumber(SequenceNumber(seq_b), 3));
  const Item item = raw("kcl-save", "shardId-000000000000");
  EXPECT_EQ(item.at("checkpoint"), AV::s(seq_b));
  EXPECT_EQ(item.at("checkpointSubSequenceNumber"), AV::n("3"));
  EXPECT_EQ(item.at("ownerSwitchesSinceCheckpoint"), AV::n("0"));
  EXPECT_EQ(item.at("leaseCounter"), AV::n("17"));
  EXPECT_EQ(item.at("leaseOwner"), AV::s("worker-a"));
  EXPECT_EQ(store->load({"kcl-save", "s", "shardId-000000000000"}), ExtendedSequenceNumber(SequenceNumber(seq_b), 3));

  // A new shard: the item is made with leaseCounter 0, a lease as any other.
  store->save({"kcl-save", "s", "shardId-000000000042"}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  const Item made = raw("kcl-save", "shardId-000000000042");
  EXPECT_EQ(made.at("leaseCounter"), AV::n("0"));
  EXPECT_EQ(made.at("checkpoint"), AV::s("SHARD_END"));
  EXPECT_EQ(made.count("leaseOwner"), 0u);
  const auto lease = open("dynamodb:kcl-save")->leases("x", "s")->get("shardId-000000000042");
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->checkpoint, ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_EQ(lease->counter, 0);

  // Never on the coordinator's items.
  try {
    store->save({"kcl-save", "s", "Leader"}, ExtendedSequenceNumber(Sentinel::Latest));
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "Leader is not a lease")) << e.what();
  }
  EXPECT_EQ(raw("kcl-save", "Leader").count("checkpoint"), 0u);

  // On a missing table the first save makes it.
  store->save({"app-first-save", "s", "shardId-1"}, ExtendedSequenceNumber(SequenceNumber("5"), 0));
  EXPECT_EQ(store->load({"app-first-save", "s", "shardId-1"}), ExtendedSequenceNumber(SequenceNumber("5"), 0));

  try {
    (void)store->claim("kcl-save", "s");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "dynamodb: workers coordinate through leases")) << e.what();
  }
}

// --- items that are not readable leases -------------------------------------------------------

TEST_F(DynamoLeaseStoreTest, AMalformedLeaseIsAStoreErrorNamingKeyAndAttribute) {
  const auto leases = open("dynamodb:")->leases("app-malformed", "s");
  const auto expect_error = [&](const Item& item, const std::string& key, const std::string& attribute) {
    client_->put_item("app-malformed", item);
    try {
      (void)leases->list();
      ADD_FAILURE() << "no throw for " << aws::to_json(item);
    } catch (const StoreError& e) {
      EXPECT_EQ(e.retry(), Retry::No);
      EXPECT_TRUE(contains(e.what(), "dynamodb:app-malformed: lease " + key + ": attribute " + attribute))
          << e.what();
    }
    try {
      (void)leases->get(key);
      ADD_FAILURE() << "no throw for " << aws::to_json(item);
    } catch (const StoreError& e) {
      EXPECT_TRUE(contains(e.what(), attribute)) << e.what();
    }
    client_->delete_item("app-malformed", key_of(key));
  };
  expect_error({{"leaseKey", AV::s("no-counter")}, {"checkpoint", AV::s("LATEST")}}, "no-counter", "leaseCounter");
  expect_error({{"leaseKey", AV::s("string-counter")}, {"leaseCounter", AV::s("1")}, {"checkpoint", AV::s("LATEST")}},
               "string-counter", "leaseCounter");
  expect_error({{"leaseKey", AV::s("number-checkpoint")}, {"leaseCounter", AV::n("1")}, {"checkpoint", AV::n("5")}},
               "number-checkpoint", "checkpoint");
  expect_error({{"leaseKey", AV::s("bad-checkpoint")}, {"leaseCounter", AV::n("1")}, {"checkpoint", AV::s("NOWHERE")}},
               "bad-checkpoint", "checkpoint");
  expect_error({{"leaseKey", AV::s("string-parent")},
                {"leaseCounter", AV::n("1")},
                {"checkpoint", AV::s("LATEST")},
                {"parentShardId", AV::s("shardId-0")}},
               "string-parent", "parentShardId");
  expect_error({{"leaseKey", AV::s("huge-counter")},
                {"leaseCounter", AV::n("123456789012345678901234567890")},
                {"checkpoint", AV::s("LATEST")}},
               "huge-counter", "leaseCounter");
  EXPECT_TRUE(leases->list().empty());
}

// --- errors ------------------------------------------------------------------------------------

TEST(DynamoLeaseStoreErrors, ADeadEndpointIsARetryableStoreErrorQuickly) {
  StoreOptions options;
  options.dynamodb = test::dynamodb_test_options("http://127.0.0.1:" + std::to_string(test::unused_port()), 1s);
  options.dynamodb.connect_timeout = 500ms;
  const auto store = open_checkpoint_store("dynamodb:T-dead", options);
  const auto started = std::chrono::steady_clock::now();
  try {
    (void)store->leases("app", "s");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_TRUE(contains(e.what(), "dynamodb:T-dead")) << e.what();
  }
  try {
    store->save({"app", "s", "shardId-1"}, ExtendedSequenceNumber(SequenceNumber("1"), 0));
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_TRUE(contains(e.what(), "shardId-1")) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

test::HttpReply dynamodb_error(int status, const std::string& type, const std::string& message) {
  auto r = test::HttpReply::aws_error(status, "com.amazonaws.dynamodb.v20120810#" + type, message);
  r.content_type = "application/x-amz-json-1.0";
  return r;
}

std::unique_ptr<CheckpointStore> open_on(const test::FakeHttpServer& server, const std::string& uri) {
  StoreOptions options;
  options.dynamodb = test::dynamodb_test_options(server.endpoint(), 2s);
  return open_checkpoint_store(uri, options);
}

TEST(DynamoLeaseStoreErrors, AMissingTableThisWorkerMayNotCreateSaysSo) {
  test::FakeHttpServer server([](const test::HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "DescribeTable")) {
      return dynamodb_error(400, "ResourceNotFoundException", "Requested resource not found");
    }
    return dynamodb_error(400, "AccessDeniedException", "not authorized to perform: dynamodb:CreateTable");
  });
  try {
    (void)open_on(server, "dynamodb:kcl-leases")->leases("app", "s");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "the lease table kcl-leases does not exist and this worker may not create it"))
        << e.what();
    EXPECT_FALSE(contains(e.what(), "AKID")) << e.what();
  }
}

TEST(DynamoLeaseStoreErrors, ThrottlingAndLostRepliesAreRetryableADeletedTableIsNot) {
  const std::string active_table =
      R"({"Table":{"TableName":"T-faults","TableStatus":"ACTIVE","TableArn":"arn:aws:dynamodb:us-east-1:1:table/T-faults",)"
      R"("ItemCount":0,"KeySchema":[{"AttributeName":"leaseKey","KeyType":"HASH"}],)"
      R"("AttributeDefinitions":[{"AttributeName":"leaseKey","AttributeType":"S"}]}})";
  std::atomic<int> mode{0};
  test::FakeHttpServer server([&](const test::HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "DescribeTable")) {
      auto r = test::HttpReply::json(active_table);
      r.content_type = "application/x-amz-json-1.0";
      return r;
    }
    switch (mode.load()) {
      case 0: return dynamodb_error(400, "ProvisionedThroughputExceededException", "slow down");
      case 1: return dynamodb_error(500, "InternalServerError", "oops");
      case 2: return test::HttpReply::reset();
      default: return dynamodb_error(400, "ResourceNotFoundException", "Requested resource not found");
    }
  });
  const auto store = open_on(server, "dynamodb:T-faults");
  const auto leases = store->leases("app", "s");
  Lease next;
  next.key = "shardId-1";
  next.counter = 2;
  const auto expect = [&](int m, Retry retry, const std::string& needle) {
    mode = m;
    try {
      (void)leases->update(next, 1, std::nullopt);
      ADD_FAILURE() << "no throw in mode " << m;
    } catch (const StoreError& e) {
      EXPECT_EQ(e.retry(), retry) << e.what();
      EXPECT_TRUE(contains(e.what(), needle)) << e.what();
      EXPECT_TRUE(contains(e.what(), "dynamodb:T-faults: updating lease shardId-1")) << e.what();
    }
    try {
      (void)leases->list();
      ADD_FAILURE() << "no throw in mode " << m;
    } catch (const StoreError& e) {
      EXPECT_EQ(e.retry(), retry) << e.what();
    }
  };
  expect(0, Retry::Yes, "throttled");
  expect(1, Retry::Yes, "may");  // a write in doubt: read the lease again
  expect(2, Retry::Yes, "shardId-1");
  expect(3, Retry::No, "the table does not exist");
  // The checkpoint side reads a deleted table as nothing there.
  EXPECT_EQ(store->load({"app", "s", "shardId-1"}), std::nullopt);
  EXPECT_TRUE(store->load_all("app", "s").empty());
}

TEST(DynamoLeaseStoreUri, TableNamesAreChecked) {
  StoreOptions options;
  options.dynamodb = test::dynamodb_test_options("http://127.0.0.1:1");
  for (const std::string& bad : std::vector<std::string>{"ab", "has space", "slash/es", std::string(256, 'x')}) {
    try {
      (void)open_checkpoint_store("dynamodb:" + bad, options);
      ADD_FAILURE() << "no throw for " << bad;
    } catch (const ConfigError& e) {
      EXPECT_TRUE(contains(e.what(), "'" + bad + "' is not a DynamoDB table name")) << e.what();
    }
  }
  EXPECT_NE(open_checkpoint_store("DynamoDB:abc", options), nullptr);
  EXPECT_NE(open_checkpoint_store("dynamodb:" + std::string(255, 'x'), options), nullptr);
  EXPECT_NE(open_checkpoint_store("dynamodb:", options), nullptr);
}

}  // namespace
}  // namespace kclpp::native
