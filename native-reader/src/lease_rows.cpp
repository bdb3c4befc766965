#include "lease_rows.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>

#include "kclpp/processor/error.hpp"

namespace kclpp::native::detail {
namespace {

const char* column_name(LeaseColumn column) {
  switch (column) {
    case LeaseColumn::Key: return "shard_id";
    case LeaseColumn::Owner: return "lease_owner";
    case LeaseColumn::Counter: return "lease_counter";
    case LeaseColumn::Checkpoint: return "sequence_number";
    case LeaseColumn::CheckpointSub: return "sub_sequence_number";
    case LeaseColumn::Pending: return "pending_checkpoint";
    case LeaseColumn::PendingSub: return "pending_sub_sequence_number";
    case LeaseColumn::PendingState: return "pending_checkpoint_state";
    case LeaseColumn::OwnerSwitches: return "owner_switches_since_checkpoint";
    case LeaseColumn::Parents: return "parent_shard_ids";
    case LeaseColumn::Children: return "child_shard_ids";
    case LeaseColumn::StartingHashKey: return "starting_hash_key";
    case LeaseColumn::EndingHashKey: return "ending_hash_key";
    case LeaseColumn::ThroughputKbps: return "throughput_kbps";
    case LeaseColumn::CheckpointOwner: return "checkpoint_owner";
    case LeaseColumn::Count: break;
  }
  return "?";
}

// Reads one row; every failure names the store, the shard and the column.
class RowReader {
 public:
  RowReader(const LeaseRowValues& row, std::string_view where) : row_(row), where_(where) {}

  [[nodiscard]] const std::optional<std::string>& raw(LeaseColumn c) const {
    return row_[static_cast<std::size_t>(c)];
  }

  [[nodiscard]] std::string key() const { return raw(LeaseColumn::Key).value_or(std::string()); }

  // NULL reads as `if_null`.
  [[nodiscard]] std::int64_t integer(LeaseColumn c, std::int64_t if_null) const {
    const auto& v = raw(c);
    if (!v) return if_null;
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size()) fail(c, "'" + *v + "' is not an integer");
    return n;
  }

  [[nodiscard]] ExtendedSequenceNumber position(LeaseColumn c, LeaseColumn sub) const {
    const std::string value = raw(c).value_or(std::string());
    const std::int64_t n = integer(sub, 0);
    try {
      return ExtendedSequenceNumber::parse(value, n);
    } catch (const Error& e) {
      fail(c, "'" + value + "'/" + std::to_string(n) + " is not a checkpoint: " + e.what());
    }
  }

  [[nodiscard]] std::vector<std::string> id_set(LeaseColumn c) const {
    const auto& v = raw(c);
    if (!v || v->empty()) return {};
    auto ids = decode_id_set(*v);
    if (!ids) fail(c, "'" + *v + "' is not a comma list of shard ids");
    return std::move(*ids);
  }

  [[noreturn]] void fail(LeaseColumn c, const std::string& why) const {
    throw StoreError("checkpoint store " + std::string(where_) + ": the lease of shard " + key() +
                     " has an unreadable " + column_name(c) + ": " + why);
  }

 private:
  const LeaseRowValues& row_;
  std::string_view where_;
};

}  // namespace

std::optional<std::string> encode_id_set(const std::vector<std::string>& ids) {
  if (ids.empty()) return std::nullopt;
  std::vector<std::string> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string list;
  for (const auto& id : sorted) {
    if (!list.empty()) list += ',';
    list += id;
  }
  return list;
}

std::optional<std::vector<std::string>> decode_id_set(std::string_view list) {
  std::vector<std::string> ids;
  std::size_t start = 0;
  while (true) {
    const auto comma = list.find(',', start);
    const auto id = list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (id.empty()) return std::nullopt;
    ids.emplace_back(id);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Lease decode_lease(const LeaseRowValues& row, std::string_view where) {
  const RowReader read(row, where);
  Lease lease;
  lease.key = read.key();
  lease.owner = read.raw(LeaseColumn::Owner);
  lease.counter = read.integer(LeaseColumn::Counter, 0);
  lease.checkpoint = read.position(LeaseColumn::Checkpoint, LeaseColumn::CheckpointSub);
  if (read.raw(LeaseColumn::Pending)) {
    lease.pending_checkpoint = read.position(LeaseColumn::Pending, LeaseColumn::PendingSub);
  }
  lease.pending_checkpoint_state = read.raw(LeaseColumn::PendingState);
  lease.owner_switches_since_checkpoint = read.integer(LeaseColumn::OwnerSwitches, 0);
  lease.parent_shard_ids = read.id_set(LeaseColumn::Parents);
  lease.child_shard_ids = read.id_set(LeaseColumn::Children);
  lease.starting_hash_key = read.raw(LeaseColumn::StartingHashKey);
  lease.ending_hash_key = read.raw(LeaseColumn::EndingHashKey);
  lease.throughput_kbps = read.raw(LeaseColumn::ThroughputKbps);
  lease.checkpoint_owner = read.raw(LeaseColumn::CheckpointOwner);
  return lease;
}

LeaseWriteValues encode_lease(const Lease& lease, std::string_view where) {
  // A comma list cannot carry an empty id or one with a comma (Kinesis shard ids never
  // have either); refusing them here keeps a write from coming back as another set.
  const auto set = [&](const std::vector<std::string>& ids, const char* column) {
    for (const auto& id : ids) {
      if (id.empty() || id.find(',') != std::string::npos) {
        throw StoreError("checkpoint store " + std::string(where) + ": cannot write the lease of shard " +
                         lease.key + ": " + column + " holds the id '" + id +
                         "', which a comma list cannot carry (empty, or with a comma)");
      }
    }
    return encode_id_set(ids);
  };
  LeaseWriteValues v;
  v[0] = lease.owner;
  v[1] = std::to_string(lease.counter);
  v[2] = lease.checkpoint.str();
  v[3] = std::to_string(lease.checkpoint.sub_sequence_number());
  if (lease.pending_checkpoint) {
    v[4] = lease.pending_checkpoint->str();
    v[5] = std::to_string(lease.pending_checkpoint->sub_sequence_number());
  }
  v[lease_write_state_index] = lease.pending_checkpoint_state;
  v[7] = std::to_string(lease.owner_switches_since_checkpoint);
  v[8] = set(lease.parent_shard_ids, "parent_shard_ids");
  v[9] = set(lease.child_shard_ids, "child_shard_ids");
  v[10] = lease.starting_hash_key;
  v[11] = lease.ending_hash_key;
  v[12] = lease.throughput_kbps;
  v[13] = lease.checkpoint_owner;
  return v;
}

std::string lease_insert_sql(const SqlDialect& d) {
  const std::string p = d.placeholder;
  std::string columns = "application, stream, shard_id";
  std::string values = p + "1, " + p + "2, " + p + "3";
  for (std::size_t i = 0; i < lease_write_count; ++i) {
    columns += std::string(", ") + lease_write_columns[i];
    values += ", " + p + std::to_string(4 + i);
  }
  return "INSERT INTO kclpp_checkpoints (" + columns + ", updated_at) VALUES (" + values + ", " + d.now +
         ") ON CONFLICT (application, stream, shard_id) DO NOTHING";
}

std::string lease_update_sql(const SqlDialect& d) {
  const std::string p = d.placeholder;
  std::string sql = "UPDATE kclpp_checkpoints SET ";
  for (std::size_t i = 0; i < lease_write_count; ++i) {
    sql += std::string(lease_write_columns[i]) + " = " + p + std::to_string(4 + i) + ", ";
  }
  // 6 and 7: the new sequence_number and sub_sequence_number.
  sql += "updated_at = CASE WHEN sequence_number " + std::string(d.same) + " " + p + "6 AND sub_sequence_number " +
         d.same + " " + p + "7 THEN updated_at ELSE " + d.now + " END";
  sql += " WHERE application = " + p + "1 AND stream = " + p + "2 AND shard_id = " + p +
         "3 AND coalesce(lease_counter, 0) = " + p + "18 AND lease_owner " + d.same + " " + p + "19";
  return sql;
}

}  // namespace kclpp::native::detail
