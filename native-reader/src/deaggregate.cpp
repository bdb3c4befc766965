// KPL de-aggregation. The format (amazon-kinesis-producer aggregation-format.md):
//
//   F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16)
//
//   message AggregatedRecord { repeated string partition_key_table = 1;
//                              repeated string explicit_hash_key_table = 2;
//                              repeated Record records = 3; }
//   message Record { required uint64 partition_key_index = 1;
//                    optional uint64 explicit_hash_key_index = 2;
//                    required bytes data = 3;
//                    repeated Tag tags = 4; }
//   message Tag { required string key = 1; optional string value = 2; }
//
// Reference behaviour: the Java KCL's AggregatorUtil.deaggregate (amazon-kinesis-client,
// software.amazon.kinesis.retrieval). Where we follow it and where we deliberately differ:
//
// - Too short (magic present but <= 16 bytes after it), MD5 mismatch, or a protobuf that
//   does not parse: the record is passed through unchanged, as the KCL does. The KCL does
//   so silently; we log a warning with the sequence number, since it is almost always a
//   producer bug someone wants to hear about.
// - Parsing mirrors protobuf-java for proto2: unknown fields of every wire type are
//   skipped (groups included), missing required fields (partition_key_index, data,
//   Tag.key) fail the parse, a repeated occurrence of a singular field wins over the
//   earlier one, strings are not UTF-8 checked (kept as bytes).
// - A known field with the wrong wire type is treated as corrupt. protobuf-java would
//   instead skip it as an unknown field (and then usually fail on the missing required
//   field); no producer writes this, so strictness costs nothing and is easier to reason
//   about.
// - Index out of range (partition or explicit hash key): the KCL keeps the user records
//   before the bad one, drops the rest of the aggregate and logs an error — silent partial
//   loss. We validate the whole aggregate first and pass it through whole instead, so
//   nothing is lost and the processor sees the raw bytes. The KCL also truncates indexes
//   to int ((int) index); we compare the full 64-bit value.
// - An aggregate with an empty records list yields no user records (as in the KCL, which
//   adds nothing and does not pass the aggregate through). Logged at debug only.
// - The KCL also drops aggregates whose user records hash outside the shard's hash-key
//   range (stale KPL shard maps after a reshard). This API has no hash-key range, so that
//   filter is not applied here; explicit hash keys are validated but not kept (Record has
//   no field for them).
// - User records are never de-aggregated again, even when their data starts with the magic.

#include "kclpp/native/deaggregate.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "kclpp/processor/log.hpp"
#include "md5.hpp"
#include "protobuf_reader.hpp"

namespace kclpp::native {
namespace {

using detail::ProtobufReader;
using detail::WireType;

constexpr unsigned char magic[4] = {0xF3, 0x89, 0x9A, 0xC2};
constexpr std::size_t magic_size = sizeof(magic);
constexpr std::size_t digest_size = 16;

// Why an aggregate was rejected. `what` is a static string; `index`/`table_size` only
// for the out-of-range cases.
struct Failure {
  const char* what = nullptr;
  bool has_index = false;
  std::uint64_t index = 0;
  std::size_t table_size = 0;
  explicit operator bool() const noexcept { return what != nullptr; }
};

constexpr Failure fail(const char* what) noexcept { return Failure{what, false, 0, 0}; }

struct UserRecordView {
  std::uint64_t partition_key_index = 0;
  std::string_view data;
};

// Parsed views into the aggregate's bytes. Kept per thread so that steady-state
// de-aggregation allocates nothing beyond the output Records' own strings.
struct Scratch {
  std::vector<std::string_view> partition_keys;
  std::vector<UserRecordView> records;

  void clear() noexcept {
    partition_keys.clear();
    records.clear();
  }
  // A hostile aggregate of ~6-byte records may grow `records` to ~175k entries; don't
  // keep megabytes per reader thread after it.
  void trim() {
    constexpr std::size_t keep = 16384;
    if (records.capacity() > keep) std::vector<UserRecordView>().swap(records);
    if (partition_keys.capacity() > keep) std::vector<std::string_view>().swap(partition_keys);
  }
};

Failure skip_unknown(ProtobufReader& reader, std::uint32_t field, WireType type) noexcept {
  if (type == WireType::EndGroup) return fail("unbalanced end-group tag");
  if (!reader.skip(field, type)) return fail("truncated or malformed unknown field");
  return {};
}

Failure parse_tag_message(std::string_view bytes) noexcept {
  ProtobufReader reader(bytes);
  bool has_key = false;
  while (!reader.at_end()) {
    std::uint32_t field = 0;
    WireType type{};
    if (!reader.read_tag(field, type)) return fail("malformed field tag in Tag");
    if (field == 1 || field == 2) {
      if (type != WireType::LengthDelimited) return fail("wrong wire type in Tag");
      std::string_view ignored;
      if (!reader.read_length_delimited(ignored)) return fail("truncated Tag string");
      has_key = has_key || field == 1;
    } else if (const Failure f = skip_unknown(reader, field, type)) {
      return f;
    }
  }
  if (!has_key) return fail("Tag without its required key");
  return {};
}

// One Record message. Sets `has_ehk`/`ehk_index` when an explicit hash key index is present.
Failure parse_record(std::string_view bytes, UserRecordView& out, bool& has_ehk,
                     std::uint64_t& ehk_index) noexcept {
  ProtobufReader reader(bytes);
  bool has_pk = false;
  bool has_data = false;
  has_ehk = false;
  while (!reader.at_end()) {
    std::uint32_t field = 0;
    WireType type{};
    if (!reader.read_tag(field, type)) return fail("malformed field tag in Record");
    switch (field) {
      case 1:
        if (type != WireType::Varint) return fail("wrong wire type for partition_key_index");
        if (!reader.read_varint(out.partition_key_index)) return fail("truncated partition_key_index");
        has_pk = true;
        break;
      case 2:
        if (type != WireType::Varint) return fail("wrong wire type for explicit_hash_key_index");
        if (!reader.read_varint(ehk_index)) return fail("truncated explicit_hash_key_index");
        has_ehk = true;
        break;
      case 3:
        if (type != WireType::LengthDelimited) return fail("wrong wire type for data");
        if (!reader.read_length_delimited(out.data)) return fail("truncated data");
        has_data = true;
        break;
      case 4: {
        if (type != WireType::LengthDelimited) return fail("wrong wire type for tags");
        std::string_view tag;
        if (!reader.read_length_delimited(tag)) return fail("truncated Tag");
        if (const Failure f = parse_tag_message(tag)) return f;
        break;
      }
      default:
        if (const Failure f = skip_unknown(reader, field, type)) return f;
    }
  }
  if (!has_pk) return fail("Record without its required partition_key_index");
  if (!has_data) return fail("Record without its required data");
  return {};
}

// The AggregatedRecord message, fully validated (indexes included) before anything is
// emitted, so a corrupt aggregate is all-or-nothing.
Failure parse_aggregate(std::string_view bytes, Scratch& scratch) noexcept {
  ProtobufReader reader(bytes);
  std::size_t ehk_count = 0;
  bool any_ehk = false;
  std::uint64_t max_ehk = 0;
  std::uint64_t max_pk = 0;
  while (!reader.at_end()) {
    std::uint32_t field = 0;
    WireType type{};
    if (!reader.read_tag(field, type)) return fail("malformed field tag");
    switch (field) {
      case 1:
      case 2: {
        if (type != WireType::LengthDelimited) return fail("wrong wire type for a key table entry");
        std::string_view key;
        if (!reader.read_length_delimited(key)) return fail("truncated key table entry");
        if (field == 1) {
          scratch.partition_keys.push_back(key);
        } else {
          ++ehk_count;
        }
        break;
      }
      case 3: {
        if (type != WireType::LengthDelimited) return fail("wrong wire type for records");
        std::string_view bytes_of_record;
        if (!reader.read_length_delimited(bytes_of_record)) return fail("truncated Record");
        UserRecordView view;
        bool has_ehk = false;
        std::uint64_t ehk_index = 0;
        if (const Failure f = parse_record(bytes_of_record, view, has_ehk, ehk_index)) return f;
        max_pk = std::max(max_pk, view.partition_key_index);
        if (has_ehk) {
          any_ehk = true;
          max_ehk = std::max(max_ehk, ehk_index);
        }
        scratch.records.push_back(view);
        break;
      }
      default:
        if (const Failure f = skip_unknown(reader, field, type)) return f;
    }
  }
  // The table may come after the records on the wire, so indexes are checked at the end.
  if (!scratch.records.empty() && max_pk >= scratch.partition_keys.size()) {
    return Failure{"partition_key_index out of range", true, max_pk, scratch.partition_keys.size()};
  }
  if (any_ehk && max_ehk >= ehk_count) {
    return Failure{"explicit_hash_key_index out of range", true, max_ehk, ehk_count};
  }
  return {};
}

// Grows `out` for `extra` more records geometrically: reserve(size + extra) on every call
// would reallocate for each aggregate of a batch (quadratic moves).
void grow(std::vector<Record>& out, std::size_t extra) {
  const std::size_t needed = out.size() + extra;
  if (needed > out.capacity()) out.reserve(std::max(needed, out.capacity() * 2));
}

void pass_through(Record&& record, std::vector<Record>& out) {
  record.sub_sequence_number = 0;
  out.push_back(std::move(record));
}

void warn_corrupt(const Record& record, const Failure& failure) {
  if (failure.has_index) {
    log_warn("corrupt KPL aggregate at sequence number ", record.sequence_number.str(), " (",
             failure.what, ": index ", failure.index, ", table size ", failure.table_size,
             "); passed through as one record of ", record.data.size(), " bytes");
  } else {
    log_warn("corrupt KPL aggregate at sequence number ", record.sequence_number.str(), " (",
             failure.what, "); passed through as one record of ", record.data.size(), " bytes");
  }
}

}  // namespace

bool is_aggregated(std::string_view data) noexcept {
  return data.size() >= magic_size && std::memcmp(data.data(), magic, magic_size) == 0;
}

void deaggregate(Record&& record, std::vector<Record>& out) {
  const std::string_view data = record.data;
  if (!is_aggregated(data)) {
    pass_through(std::move(record), out);
    return;
  }
  // The KCL requires more than 16 bytes after the magic (a non-empty protobuf).
  if (data.size() <= magic_size + digest_size) {
    warn_corrupt(record, fail("too short for an aggregate"));
    pass_through(std::move(record), out);
    return;
  }
  const std::string_view protobuf = data.substr(magic_size, data.size() - magic_size - digest_size);
  const std::string_view trailer = data.substr(data.size() - digest_size);
  detail::Md5Digest digest{};
  if (!detail::md5(protobuf, digest)) {
    warn_corrupt(record, fail("MD5 unavailable from OpenSSL; cannot verify"));
    pass_through(std::move(record), out);
    return;
  }
  if (std::memcmp(digest.data(), trailer.data(), digest_size) != 0) {
    warn_corrupt(record, fail("MD5 mismatch"));
    pass_through(std::move(record), out);
    return;
  }

  thread_local Scratch scratch;
  scratch.clear();
  if (const Failure failure = parse_aggregate(protobuf, scratch)) {
    scratch.clear();
    scratch.trim();
    warn_corrupt(record, failure);
    pass_through(std::move(record), out);
    return;
  }

  const std::size_t n = scratch.records.size();
  if (n == 0) {
    log_debug("KPL aggregate at sequence number ", record.sequence_number.str(),
              " holds no user records; nothing to deliver (as the Java KCL)");
    return;
  }
  grow(out, n);
  for (std::size_t i = 0; i < n; ++i) {
    const UserRecordView& view = scratch.records[i];
    Record& user = out.emplace_back();
    user.data.assign(view.data);
    user.partition_key.assign(scratch.partition_keys[static_cast<std::size_t>(view.partition_key_index)]);
    // The last user record takes the aggregate's sequence number (its data is not moved:
    // the views above point into record.data).
    if (i + 1 < n) {
      user.sequence_number = record.sequence_number;
    } else {
      user.sequence_number = std::move(record.sequence_number);
    }
    user.sub_sequence_number = static_cast<std::int64_t>(i);
    user.approximate_arrival_timestamp = record.approximate_arrival_timestamp;
  }
  scratch.clear();
  scratch.trim();
}

}  // namespace kclpp::native
