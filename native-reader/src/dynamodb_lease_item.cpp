#include "dynamodb_lease_item.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "kclpp/processor/error.hpp"

namespace kclpp::native::detail {
namespace {

using aws::AttributeValue;
using aws::Item;
using Type = AttributeValue::Type;

// Reads one lease item's attributes, naming the item in every error.
class ItemReader {
 public:
  ItemReader(const Item& item, const std::string& where) : item_(item), where_(where) {
    const auto it = item_.find(lease_attr::key);
    if (it == item_.end() || it->second.type() != Type::S) {
      throw StoreError(where_ + ": an item has no leaseKey string (" +
                           (it == item_.end() ? std::string("absent") : std::string(it->second.type_name())) +
                           "): not a lease",
                       Retry::No);
    }
    key_ = it->second.as_s();
  }

  [[nodiscard]] const std::string& key() const noexcept { return key_; }

  // The attribute if present; StoreError when it has another type than `type`.
  [[nodiscard]] const AttributeValue* find(const char* name, Type type) const {
    const auto it = item_.find(name);
    if (it == item_.end()) return nullptr;
    if (it->second.type() != type) {
      throw bad(name, std::string("has type ") + it->second.type_name() + ", expected " + expected_name(type));
    }
    return &it->second;
  }

  [[nodiscard]] std::optional<std::string> string(const char* name) const {
    const auto* v = find(name, Type::S);
    return v != nullptr ? std::optional(v->as_s()) : std::nullopt;
  }

  [[nodiscard]] std::optional<std::int64_t> integer(const char* name) const {
    const auto* v = find(name, Type::N);
    if (v == nullptr) return std::nullopt;
    try {
      return v->as_int64();
    } catch (const Error&) {
      throw bad(name, "is " + v->as_n() + ", not an integer of 64 bits");
    }
  }

  [[nodiscard]] std::vector<std::string> string_set(const char* name) const {
    const auto* v = find(name, Type::SS);
    if (v == nullptr) return {};
    std::vector<std::string> values = v->as_ss();
    std::sort(values.begin(), values.end());
    return values;
  }

  // pendingCheckpointState: B as the KCL's update path writes it, or the N its createLease
  // writes by mistake (the checkpoint's sub-sequence number: no state at all), kept as text.
  [[nodiscard]] std::optional<std::string> bytes_or_number(const char* name) const {
    const auto it = item_.find(name);
    if (it == item_.end()) return std::nullopt;
    if (it->second.type() == Type::B) return it->second.as_b();
    if (it->second.type() == Type::N) return it->second.as_n();
    throw bad(name, std::string("has type ") + it->second.type_name() + ", expected B or N");
  }

  // A position from a sequence-number-or-sentinel S and its sub-sequence number N.
  [[nodiscard]] std::optional<ExtendedSequenceNumber> position(const char* name, const char* sub_name) const {
    const auto value = string(name);
    if (!value || value->empty()) return std::nullopt;
    const std::int64_t sub = integer(sub_name).value_or(0);
    try {
      return ExtendedSequenceNumber::parse(*value, sub);
    } catch (const Error& e) {
      throw bad(name, "'" + *value + "' (sub-sequence number " + std::to_string(sub) +
                          ") is not a sequence number or a sentinel: " + e.what());
    }
  }

  [[nodiscard]] StoreError bad(const char* name, const std::string& what) const {
    return StoreError(where_ + ": lease " + key_ + ": attribute " + name + " " + what, Retry::No);
  }

 private:
  static const char* expected_name(Type type) {
    switch (type) {
      case Type::S: return "S";
      case Type::N: return "N";
      case Type::B: return "B";
      case Type::SS: return "SS";
      default: return "another type";
    }
  }

  const Item& item_;
  const std::string& where_;
  std::string key_;
};

}  // namespace

Item lease_item_key(const std::string& key) { return {{lease_attr::key, AttributeValue::s(key)}}; }

bool is_lease_item(const Item& item) {
  const auto it = item.find(lease_attr::entity_type);
  if (it == item.end()) return true;
  return it->second.type() == Type::S && it->second.as_s() == lease_entity_type;
}

std::optional<ExtendedSequenceNumber> checkpoint_from_item(const Item& item, const std::string& where) {
  const ItemReader r(item, where);
  return r.position(lease_attr::checkpoint, lease_attr::checkpoint_sub);
}

Lease lease_from_item(const Item& item, const std::string& where) {
  const ItemReader r(item, where);
  Lease lease;
  lease.key = r.key();
  lease.owner = r.string(lease_attr::owner);
  const auto counter = r.integer(lease_attr::counter);
  if (!counter) throw r.bad(lease_attr::counter, "is missing (every lease has one: the fencing token)");
  lease.counter = *counter;
  const auto checkpoint = r.position(lease_attr::checkpoint, lease_attr::checkpoint_sub);
  if (!checkpoint) throw r.bad(lease_attr::checkpoint, "is missing (no position to resume from)");
  lease.checkpoint = *checkpoint;
  lease.pending_checkpoint = r.position(lease_attr::pending, lease_attr::pending_sub);
  lease.pending_checkpoint_state = r.bytes_or_number(lease_attr::pending_state);
  lease.owner_switches_since_checkpoint = r.integer(lease_attr::owner_switches).value_or(0);
  lease.parent_shard_ids = r.string_set(lease_attr::parents);
  lease.child_shard_ids = r.string_set(lease_attr::children);
  lease.starting_hash_key = r.string(lease_attr::starting_hash_key);
  lease.ending_hash_key = r.string(lease_attr::ending_hash_key);
  if (const auto* v = r.find(lease_attr::throughput, Type::N)) lease.throughput_kbps = v->as_n();
  lease.checkpoint_owner = r.string(lease_attr::checkpoint_owner);
  return lease;
}

namespace {

// The attributes of Lease other than its key, each as the value to write or nullopt where
// the lease has none (the attribute is then left out of a new item, removed by an update).
// One list for create and update, so that the two cannot disagree.
std::vector<std::pair<const char*, std::optional<AttributeValue>>> lease_attributes(const Lease& lease) {
  using AV = AttributeValue;
  const auto s = [](const std::optional<std::string>& v) { return v ? std::optional(AV::s(*v)) : std::nullopt; };
  const auto ss = [](const std::vector<std::string>& v) {
    return v.empty() ? std::nullopt : std::optional(AV::ss(v));
  };
  const auto& pending = lease.pending_checkpoint;
  return {
      {lease_attr::owner, s(lease.owner)},
      {lease_attr::counter, AV::n(lease.counter)},
      {lease_attr::owner_switches, AV::n(lease.owner_switches_since_checkpoint)},
      {lease_attr::checkpoint, AV::s(lease.checkpoint.str())},
      {lease_attr::checkpoint_sub, AV::n(lease.checkpoint.sub_sequence_number())},
      {lease_attr::pending, pending ? std::optional(AV::s(pending->str())) : std::nullopt},
      {lease_attr::pending_sub, pending ? std::optional(AV::n(pending->sub_sequence_number())) : std::nullopt},
      {lease_attr::pending_state,
       lease.pending_checkpoint_state ? std::optional(AV::b(*lease.pending_checkpoint_state)) : std::nullopt},
      {lease_attr::parents, ss(lease.parent_shard_ids)},
      {lease_attr::children, ss(lease.child_shard_ids)},
      {lease_attr::starting_hash_key, s(lease.starting_hash_key)},
      {lease_attr::ending_hash_key, s(lease.ending_hash_key)},
      {lease_attr::throughput, lease.throughput_kbps ? std::optional(AV::n(*lease.throughput_kbps)) : std::nullopt},
      {lease_attr::checkpoint_owner, s(lease.checkpoint_owner)},
  };
}

}  // namespace

Item lease_to_item(const Lease& lease) {
  Item item = lease_item_key(lease.key);
  for (auto& [name, value] : lease_attributes(lease)) {
    if (value) item.emplace(name, std::move(*value));
  }
  item.emplace(lease_attr::entity_type, AttributeValue::s(lease_entity_type));
  return item;
}

LeaseUpdate lease_update(const Lease& lease) {
  LeaseUpdate u;
  std::string set;
  std::string remove;
  for (auto& [name, value] : lease_attributes(lease)) {
    // Placeholders for every name: some attribute names may be reserved words one day,
    // and "#name" costs nothing.
    const std::string placeholder = std::string("#") + name;
    u.options.names.emplace(placeholder, name);
    if (value) {
      const std::string value_placeholder = std::string(":") + name;
      set += (set.empty() ? "SET " : ", ") + placeholder + " = " + value_placeholder;
      u.options.values.emplace(value_placeholder, std::move(*value));
    } else {
      remove += (remove.empty() ? " REMOVE " : ", ") + placeholder;
    }
  }
  u.expression = set + remove;
  return u;
}

}  // namespace kclpp::native::detail
