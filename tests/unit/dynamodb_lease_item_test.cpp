// The Lease <-> KCL lease-table item mapping (native-reader/src/dynamodb_lease_item.hpp)
// without a server: round trips, the update expression's SET and REMOVE lists, which items
// count as leases. The same mapping against dynalite: dynamodb_lease_store_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "dynamodb_lease_item.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::native::detail {
namespace {

using aws::AttributeValue;
using aws::Item;
using AV = AttributeValue;

Lease full_lease() {
  Lease l;
  l.key = "shardId-000000000007";
  l.owner = "worker-1";
  l.counter = 12;
  l.checkpoint = ExtendedSequenceNumber(SequenceNumber("49590338271490256608559692538361571095921575989136588898"), 3);
  l.pending_checkpoint = ExtendedSequenceNumber(SequenceNumber("49590338271490256608559692538361571095921575989136588899"), 0);
  l.pending_checkpoint_state = std::string("a\0b", 3);
  l.owner_switches_since_checkpoint = 2;
  l.parent_shard_ids = {"shardId-000000000001", "shardId-000000000002"};
  l.child_shard_ids = {"shardId-000000000010"};
  l.starting_hash_key = "0";
  l.ending_hash_key = "42";
  l.throughput_kbps = "3.25";
  l.checkpoint_owner = "worker-2";
  return l;
}

TEST(DynamoLeaseItem, AFullLeaseRoundTripsInTheKclTypes) {
  const Lease l = full_lease();
  const Item item = lease_to_item(l);
  EXPECT_EQ(item.at("leaseKey"), AV::s(l.key));
  EXPECT_EQ(item.at("leaseCounter"), AV::n("12"));
  EXPECT_EQ(item.at("checkpoint").type(), AttributeValue::Type::S);  // 56 digits: never an N
  EXPECT_EQ(item.at("pendingCheckpointState"), AV::b(std::string("a\0b", 3)));
  EXPECT_EQ(item.at("parentShardId").type(), AttributeValue::Type::SS);
  EXPECT_EQ(item.at("throughputKBps"), AV::n("3.25"));
  EXPECT_EQ(item.at("entityType"), AV::s("LEASE"));
  EXPECT_EQ(item.size(), 16u);
  EXPECT_EQ(lease_from_item(item, "dynamodb:t"), l);
}

TEST(DynamoLeaseItem, AnEmptyLeaseLeavesOptionalAttributesOutAndUpdateRemovesThem) {
  Lease l;
  l.key = "shardId-0";
  const Item item = lease_to_item(l);
  EXPECT_EQ(item.size(), 6u);  // key, counter, switches, checkpoint, sub, entityType
  EXPECT_EQ(item.at("checkpoint"), AV::s("TRIM_HORIZON"));
  EXPECT_EQ(lease_from_item(item, "dynamodb:t"), l);

  const LeaseUpdate u = lease_update(l);
  EXPECT_EQ(u.expression,
            "SET #leaseCounter = :leaseCounter, #ownerSwitchesSinceCheckpoint = :ownerSwitchesSinceCheckpoint, "
            "#checkpoint = :checkpoint, #checkpointSubSequenceNumber = :checkpointSubSequenceNumber "
            "REMOVE #leaseOwner, #pendingCheckpoint, #pendingCheckpointSubSequenceNumber, #pendingCheckpointState, "
            "#parentShardId, #childShardIds, #startingHashKey, #endingHashKey, #throughputKBps, #checkpointOwner");
  EXPECT_EQ(u.options.values.size(), 4u);
  EXPECT_EQ(u.options.names.size(), 14u);
  EXPECT_EQ(u.options.names.count("#entityType"), 0u);  // never touched by an update

  const LeaseUpdate full = lease_update(full_lease());
  EXPECT_EQ(full.expression.find("REMOVE"), std::string::npos) << full.expression;
  EXPECT_EQ(full.options.values.size(), 14u);
}

TEST(DynamoLeaseItem, OnlyItemsWithoutEntityTypeOrWithLeaseAreLeases) {
  EXPECT_TRUE(is_lease_item({{"leaseKey", AV::s("a")}}));
  EXPECT_TRUE(is_lease_item({{"leaseKey", AV::s("a")}, {"entityType", AV::s("LEASE")}}));
  EXPECT_FALSE(is_lease_item({{"leaseKey", AV::s("a")}, {"entityType", AV::s("LEADER")}}));
  EXPECT_FALSE(is_lease_item({{"leaseKey", AV::s("a")}, {"entityType", AV::s("WORKER_METRIC_STATS")}}));
  EXPECT_FALSE(is_lease_item({{"leaseKey", AV::s("a")}, {"entityType", AV::n("1")}}));
}

TEST(DynamoLeaseItem, LenientReadsAndNamedErrors) {
  // The N the KCL's createLease writes into pendingCheckpointState; absent numbers as 0.
  const Item kcl{{"leaseKey", AV::s("s")},
                 {"leaseCounter", AV::n("1")},
                 {"checkpoint", AV::s("SHARD_END")},
                 {"pendingCheckpoint", AV::s("")},
                 {"pendingCheckpointState", AV::n("0")}};
  const Lease l = lease_from_item(kcl, "dynamodb:t");
  EXPECT_EQ(l.pending_checkpoint_state, "0");
  EXPECT_EQ(l.pending_checkpoint, std::nullopt);
  EXPECT_EQ(l.owner_switches_since_checkpoint, 0);
  EXPECT_EQ(l.checkpoint, ExtendedSequenceNumber(Sentinel::ShardEnd));

  Item no_checkpoint = kcl;
  no_checkpoint.erase("checkpoint");
  EXPECT_EQ(checkpoint_from_item(no_checkpoint, "dynamodb:t"), std::nullopt);
  try {
    (void)lease_from_item(no_checkpoint, "dynamodb:t");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(std::string(e.what()).find("dynamodb:t: lease s: attribute checkpoint is missing"), std::string::npos)
        << e.what();
  }
  Item bad_state = kcl;
  bad_state["pendingCheckpointState"] = AV::s("x");
  try {
    (void)lease_from_item(bad_state, "dynamodb:t");
    FAIL() << "no throw";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("attribute pendingCheckpointState has type S, expected B or N"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace kclpp::native::detail
