#pragma once
// go-triton's checkpoint table (docs/triton.md §4) as a second layout of the SQLite and
// Postgres stores: the DDL, the one SELECT both read with, and how a triton_checkpoint row
// and kclpp's side row combine into a position.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/error.hpp"
#include "store_common.hpp"

namespace kclpp::native::detail {

// Exactly Triton's DDL (Go and Py run the same statement): Triton inserts positionally,
// so the column list and order must never change.
inline constexpr const char* triton_table_ddl =
    "CREATE TABLE IF NOT EXISTS triton_checkpoint ("
    " client VARCHAR(255) NOT NULL,"
    " stream VARCHAR(255) NOT NULL,"
    " shard VARCHAR(255) NOT NULL,"
    " seq_num VARCHAR(255) NOT NULL,"
    " updated INTEGER NOT NULL,"
    " PRIMARY KEY (client, stream, shard))";

// kclpp's side table: what triton_checkpoint cannot hold. `seq_num` is the main row's
// seq_num when this row was written ('' when there was no main row, e.g. SHARD_END of a
// shard never checkpointed before): the side row applies only while they are equal.
// `sentinel` is '' or a sentinel name (SHARD_END; TRIM_HORIZON, LATEST, AT_TIMESTAMP if a
// caller saves those). `updated` is Unix seconds, as in the main table.
inline constexpr const char* triton_ext_ddl =
    "CREATE TABLE IF NOT EXISTS kclpp_triton_checkpoint_ext ("
    " client VARCHAR(255) NOT NULL,"
    " stream VARCHAR(255) NOT NULL,"
    " shard VARCHAR(255) NOT NULL,"
    " seq_num VARCHAR(255) NOT NULL,"
    " sub_sequence_number BIGINT NOT NULL DEFAULT 0,"
    " sentinel VARCHAR(32) NOT NULL DEFAULT '',"
    " updated INTEGER NOT NULL,"
    " PRIMARY KEY (client, stream, shard))";

// How far a read is narrowed: client only (list), client + stream (load_all), or one shard.
enum class TritonFilter { Client, Stream, Shard };

// One statement (so one snapshot, on both databases) returning the main rows and the side
// rows of a client: columns kind (0 main, 1 side), stream, shard, seq_num,
// sub_sequence_number, sentinel, updated. Parameters 1..3 are client, stream, shard;
// `p` is the placeholder prefix ("?" for SQLite, "$" for Postgres). Python's checkpointer
// stores time.time() (a float) in `updated`; SQLite keeps it REAL, hence the CAST.
// Without the side table (a read-only user on a database kclpp never wrote), only the
// main rows.
enum class SideTable { Present, Absent };
inline std::string triton_select(TritonFilter filter, const char* p, SideTable side = SideTable::Present) {
  const std::string c = std::string(p) + "1";
  std::string where = " WHERE client = " + c;
  if (filter != TritonFilter::Client) where += " AND stream = " + std::string(p) + "2";
  if (filter == TritonFilter::Shard) where += " AND shard = " + std::string(p) + "3";
  std::string sql = "SELECT 0, stream, shard, seq_num, CAST(0 AS BIGINT), '', CAST(updated AS BIGINT) "
                    "FROM triton_checkpoint" + where;
  if (side == SideTable::Present) {
    sql += " UNION ALL SELECT 1, stream, shard, seq_num, sub_sequence_number, sentinel, "
           "CAST(updated AS BIGINT) FROM kclpp_triton_checkpoint_ext" + where;
  }
  return sql;
}

struct TritonRow {
  bool side = false;
  std::string stream;
  std::string shard;
  std::string seq_num;
  std::int64_t sub_sequence_number = 0;
  std::string sentinel;
  std::int64_t updated = 0;  // Unix seconds
};

// Combines main and side rows into checkpoints ordered by (stream, shard). `where` names
// the store in the StoreError thrown for an unreadable value.
inline std::vector<StoredCheckpoint> merge_triton_rows(const std::vector<TritonRow>& rows,
                                                       const std::string& where) {
  struct Pair {
    const TritonRow* main = nullptr;
    const TritonRow* side = nullptr;
  };
  std::map<std::pair<std::string, std::string>, Pair> by_shard;
  for (const TritonRow& row : rows) {
    Pair& p = by_shard[{row.stream, row.shard}];
    (row.side ? p.side : p.main) = &row;
  }
  const auto parse = [&](const TritonRow& row, const std::string& value, std::int64_t sub) {
    try {
      return ExtendedSequenceNumber::parse(value, sub);
    } catch (const Error& e) {
      throw StoreError("checkpoint store " + where + ": shard " + row.shard + " of stream " +
                       row.stream + " has an unreadable checkpoint '" + value + "'/" +
                       std::to_string(sub) + ": " + e.what());
    }
  };
  std::vector<StoredCheckpoint> result;
  for (const auto& [key, p] : by_shard) {
    const std::string main_seq = p.main != nullptr ? p.main->seq_num : std::string();
    // A side row written against another main value is stale: Triton moved the row since.
    const TritonRow* side = (p.side != nullptr && p.side->seq_num == main_seq) ? p.side : nullptr;
    if (p.main == nullptr && (side == nullptr || side->sentinel.empty())) continue;
    StoredCheckpoint out;
    out.stream = key.first;
    out.shard_id = key.second;
    std::int64_t updated = p.main != nullptr ? p.main->updated : 0;
    if (side != nullptr) {
      out.position = side->sentinel.empty()
                         ? parse(*side, side->seq_num, side->sub_sequence_number)
                         : parse(*side, side->sentinel, side->sub_sequence_number);
      updated = std::max(updated, side->updated);
    } else {
      out.position = parse(*p.main, p.main->seq_num, 0);
    }
    out.updated = std::chrono::system_clock::time_point(std::chrono::seconds(updated));
    result.push_back(std::move(out));
  }
  return result;
}

// The Triton layout's reads, in terms of the one statement above (triton_select) that each
// store runs its own way.
class TritonTables : public CheckpointTables {
 public:
  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    auto found = read(TritonFilter::Shard, key.application, key.stream, key.shard_id);
    if (found.empty()) return std::nullopt;
    return std::move(found.front().position);
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    std::map<std::string, ExtendedSequenceNumber> result;
    for (auto& c : read(TritonFilter::Stream, application, stream, {})) {
      result.insert_or_assign(std::move(c.shard_id), std::move(c.position));
    }
    return result;
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    return read(TritonFilter::Client, application, {}, {});
  }

 protected:
  // triton_select(filter) with client, stream, shard bound as far as `filter` narrows (the
  // others are ignored), merged by merge_triton_rows.
  [[nodiscard]] virtual std::vector<StoredCheckpoint> read(TritonFilter filter, const std::string& client,
                                                           const std::string& stream, const std::string& shard) = 0;
};

// Unix seconds now, for `updated` (a 32-bit INTEGER in Triton's DDL: fine until 2038).
inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace kclpp::native::detail
