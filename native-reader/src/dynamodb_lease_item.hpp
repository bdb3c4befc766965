#pragma once
// A Lease as an item of the Java KCL's DynamoDB lease table and back (docs/checkpoints.md
// §4, "How kclpp maps a Lease"): the attribute names and types of the KCL's
// DynamoDBLeaseSerializer, read leniently where the KCL itself wrote more than one form.
#include <optional>
#include <string>

#include "kclpp/aws/dynamodb_client.hpp"
#include "kclpp/native/lease_table.hpp"

namespace kclpp::native::detail {

// The KCL's attribute names (DynamoDBLeaseSerializer).
namespace lease_attr {
inline constexpr const char* key = "leaseKey";
inline constexpr const char* owner = "leaseOwner";
inline constexpr const char* counter = "leaseCounter";
inline constexpr const char* owner_switches = "ownerSwitchesSinceCheckpoint";
inline constexpr const char* checkpoint = "checkpoint";
inline constexpr const char* checkpoint_sub = "checkpointSubSequenceNumber";
inline constexpr const char* pending = "pendingCheckpoint";
inline constexpr const char* pending_sub = "pendingCheckpointSubSequenceNumber";
inline constexpr const char* pending_state = "pendingCheckpointState";
inline constexpr const char* parents = "parentShardId";
inline constexpr const char* children = "childShardIds";
inline constexpr const char* starting_hash_key = "startingHashKey";
inline constexpr const char* ending_hash_key = "endingHashKey";
inline constexpr const char* throughput = "throughputKBps";
inline constexpr const char* checkpoint_owner = "checkpointOwner";
inline constexpr const char* entity_type = "entityType";
}  // namespace lease_attr

// The entityType value KCL 3.5+ writes on leases (EntityType.LEASE); the same table then
// also holds its coordinator and worker-metrics items under other values.
inline constexpr const char* lease_entity_type = "LEASE";

// {leaseKey: S key}.
[[nodiscard]] aws::Item lease_item_key(const std::string& key);

// Whether the item is a lease: no entityType (every KCL before 3.5, and kclpp's save()),
// or entityType S "LEASE". Other items in the table belong to the KCL 3.x coordinator.
[[nodiscard]] bool is_lease_item(const aws::Item& item);

// The lease in a lease item (is_lease_item). Lenient where the KCL is: absent numbers other
// than leaseCounter read as 0, pendingCheckpointState as B or N (an N, which the KCL's
// createLease writes by mistake, is kept as the bytes of its decimal text), the hash keys
// each as present, sets sorted. Throws StoreError(Retry::No) naming `where` (e.g.
// "dynamodb:T"), the leaseKey and the attribute for an item that has no leaseKey S, no
// leaseCounter, no checkpoint, an attribute of the wrong type, or an unreadable position.
[[nodiscard]] Lease lease_from_item(const aws::Item& item, const std::string& where);

// The checkpoint of a lease item, nullopt when it has none (a row made by other software
// before its first checkpoint). StoreError(Retry::No) as lease_from_item for a bad one.
[[nodiscard]] std::optional<ExtendedSequenceNumber> checkpoint_from_item(const aws::Item& item,
                                                                        const std::string& where);

// The whole item for PutItem (create): every attribute Lease has a value for, in the KCL's
// types, and entityType "LEASE" as KCL 3.5 writes it. pendingCheckpointState is written as
// B (what the KCL's update path writes and its reader expects).
[[nodiscard]] aws::Item lease_to_item(const Lease& lease);

// An UpdateItem expression that sets every attribute of Lease from `lease` (SET where it
// has a value, REMOVE where it has none: an absent optional, an empty set) and leaves every
// other attribute of the item alone; `options` gets the placeholders. The caller adds its
// condition to options (through the same placeholders: "#leaseCounter", ":expectedCounter"
// are not made here).
struct LeaseUpdate {
  std::string expression;
  aws::WriteOptions options;
};
[[nodiscard]] LeaseUpdate lease_update(const Lease& lease);

}  // namespace kclpp::native::detail
