// Archive key names (docs/triton.md §3.1) and the `<key>.metadata` document (§3.5).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "kclpp/pipeline/archive.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp::pipeline {
namespace {

bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string format_day(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd(day);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

}  // namespace

void check_key_part(const std::string& value, const std::string& what) {
  if (value.empty()) throw ConfigError(what + " name is empty: archive keys need one");
  // Both Triton readers split `<stream>-<client>` on '-' (docs/triton.md §3.1); '/' would move the
  // key out of its date folder.
  if (value.find('-') != std::string::npos) {
    throw ConfigError(what + " name \"" + value + "\" contains '-', which archive keys cannot hold "
                      "(Triton readers split keys on '-'; use '_')");
  }
  if (value.find('/') != std::string::npos) {
    throw ConfigError(what + " name \"" + value + "\" contains '/', which archive keys cannot hold");
  }
}

std::string day_folder(std::chrono::system_clock::time_point t) {
  return format_day(std::chrono::floor<std::chrono::days>(t));
}

std::string ArchiveKey::date() const {
  return format_day(std::chrono::floor<std::chrono::days>(std::chrono::sys_seconds(std::chrono::seconds(unix_seconds))));
}

std::string ArchiveKey::str() const {
  check_key_part(stream, "stream");
  check_key_part(client, "client");
  if (unix_seconds < 0) throw ConfigError("archive key time before 1970: " + std::to_string(unix_seconds));
  return (folder.empty() ? date() : folder) + "/" + stream + "-" + client + "-" + std::to_string(unix_seconds) + ".tri";
}

std::optional<ArchiveKey> ArchiveKey::parse(std::string_view key) {
  // go-triton's `(\d{8})/(.+)-(\d+)\.tri$`, anchored as PR #5's ArchiveKey does (§3.5).
  if (!key.empty() && key.front() == '/') key.remove_prefix(1);
  if (key.size() < 9 || key[8] != '/' || !all_digits(key.substr(0, 8))) return std::nullopt;
  std::string_view rest = key.substr(9);
  constexpr std::string_view suffix = ".tri";
  if (rest.size() < suffix.size() || rest.substr(rest.size() - suffix.size()) != suffix) return std::nullopt;
  rest.remove_suffix(suffix.size());
  // The greedy `.+` ends at the last '-': the digits must run from there to ".tri".
  const std::size_t ts_dash = rest.rfind('-');
  if (ts_dash == std::string_view::npos || ts_dash == 0) return std::nullopt;
  const std::string_view ts = rest.substr(ts_dash + 1);
  if (!all_digits(ts) || ts.size() > 18) return std::nullopt;  // 18 digits always fit an int64
  const std::string_view middle = rest.substr(0, ts_dash);
  // Exactly two dash parts (Go skips others: legacy `-shardId-...` keys, names with '-').
  const std::size_t dash = middle.find('-');
  if (dash == std::string_view::npos || middle.find('-', dash + 1) != std::string_view::npos) return std::nullopt;
  ArchiveKey k;
  k.stream = std::string(middle.substr(0, dash));
  k.client = std::string(middle.substr(dash + 1));
  // Go would take an empty part or one with '/'; such keys cannot be listed by stream
  // (§3.3 prefixes) nor written back by str(), so they are not archive keys here.
  if (k.stream.empty() || k.client.empty() || k.stream.find('/') != std::string::npos ||
      k.client.find('/') != std::string::npos) {
    return std::nullopt;
  }
  k.unix_seconds = 0;
  for (const char c : ts) k.unix_seconds = k.unix_seconds * 10 + (c - '0');
  k.folder = std::string(key.substr(0, 8));
  return k;
}

void ArchiveMetadata::add(const std::string& shard_id, const std::string& sequence_number) {
  const std::optional<SequenceNumber> s = SequenceNumber::try_parse(sequence_number);
  if (!s) throw ProtocolError("not a sequence number: \"" + sequence_number + "\" (shard " + shard_id + ")");
  auto [it, inserted] = shards.try_emplace(shard_id, ShardRange{sequence_number, sequence_number});
  if (inserted) return;
  ShardRange& r = it->second;
  // Numerically (PR #5 compared strings, wrong across digit counts).
  if (*s < SequenceNumber(r.min_sequence_number)) r.min_sequence_number = sequence_number;
  if (SequenceNumber(r.max_sequence_number) < *s) r.max_sequence_number = sequence_number;
}

std::string ArchiveMetadata::to_json() const {
  nlohmann::ordered_json doc;
  nlohmann::ordered_json shard_doc = nlohmann::ordered_json::object();
  for (const auto& [id, range] : shards) {
    shard_doc[id] = {{"min_sequence_number", range.min_sequence_number},
                     {"max_sequence_number", range.max_sequence_number}};
  }
  doc["shards"] = std::move(shard_doc);
  doc["records"] = records;
  doc["bytes"] = bytes;
  doc["sha256"] = sha256;
  return doc.dump();
}

ArchiveMetadata ArchiveMetadata::from_json(std::string_view json) {
  const nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw ProtocolError("archive metadata is not JSON");
  if (!doc.is_object()) throw ProtocolError("archive metadata is not a JSON object");
  ArchiveMetadata m;
  const auto shards_it = doc.find("shards");
  if (shards_it == doc.end() || !shards_it->is_object()) {
    throw ProtocolError("archive metadata has no \"shards\" object");
  }
  for (const auto& [id, range] : shards_it->items()) {
    const auto field = [&, &shard = id, &r = range](const char* name) {
      if (!r.is_object()) throw ProtocolError("archive metadata: shard " + shard + " is not an object");
      const auto f = r.find(name);
      if (f == r.end() || !f->is_string() || !SequenceNumber::valid(f->get_ref<const std::string&>())) {
        throw ProtocolError("archive metadata: shard " + shard + " has no valid " + name);
      }
      return f->get<std::string>();
    };
    m.shards[id] = ShardRange{field("min_sequence_number"), field("max_sequence_number")};
  }
  // kclpp's own fields; PR #5 documents have none of them.
  const auto number = [&](const char* name) -> std::uint64_t {
    const auto f = doc.find(name);
    if (f == doc.end()) return 0;
    if (!f->is_number_unsigned()) throw ProtocolError(std::string("archive metadata: ") + name + " is not a count");
    return f->get<std::uint64_t>();
  };
  m.records = number("records");
  m.bytes = number("bytes");
  if (const auto f = doc.find("sha256"); f != doc.end()) {
    if (!f->is_string()) throw ProtocolError("archive metadata: sha256 is not a string");
    m.sha256 = f->get<std::string>();
  }
  return m;
}

}  // namespace kclpp::pipeline
