#include "kinesis_json.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>

#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::aws::detail {

static_assert(json_padding >= simdjson::SIMDJSON_PADDING);

namespace od = simdjson::ondemand;
namespace dom = simdjson::dom;

void append_json_key(std::string& out, std::string_view key) {
  out.push_back('"');
  out.append(key);
  out.append("\":");
}

namespace {

[[noreturn]] void bad_reply(std::string_view what) {
  throw ProtocolError("unexpected reply: " + std::string(what));
}

[[noreturn]] void bad_json(simdjson::error_code e, std::string_view where) {
  throw ProtocolError("unparseable reply (" + std::string(where) + "): " +
                      std::string(simdjson::error_message(e)));
}

template <class T>
T check(simdjson::simdjson_result<T>&& r, std::string_view where) {
  T value;
  if (auto e = std::move(r).get(value); e != simdjson::SUCCESS) bad_json(e, where);
  return value;
}

// --- DOM helpers for the small replies -------------------------------------------------

// A string field: absent or null → nullopt; another type → ProtocolError.
std::optional<std::string_view> opt_str(dom::object o, std::string_view key) {
  dom::element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) return std::nullopt;
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) bad_reply(std::string(key) + " is not a string");
  return s;
}

std::string req_str(dom::object o, std::string_view key) {
  auto s = opt_str(o, key);
  if (!s) bad_reply("missing " + std::string(key));
  return std::string(*s);
}

std::int64_t opt_int(dom::object o, std::string_view key) {
  dom::element e;
  if (o.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) return 0;
  std::int64_t n = 0;
  if (e.get_int64().get(n) != simdjson::SUCCESS) bad_reply(std::string(key) + " is not an integer");
  return n;
}

dom::object req_obj(dom::object o, std::string_view key) {
  dom::object sub;
  if (o.at_key(key).get_object().get(sub) != simdjson::SUCCESS) {
    bad_reply("missing object " + std::string(key));
  }
  return sub;
}

Shard shard_from(dom::object s) {
  Shard shard;
  shard.shard_id = req_str(s, "ShardId");
  if (auto p = opt_str(s, "ParentShardId")) shard.parent_shard_id = std::string(*p);
  if (auto p = opt_str(s, "AdjacentParentShardId")) shard.adjacent_parent_shard_id = std::string(*p);
  const dom::object hash = req_obj(s, "HashKeyRange");
  shard.starting_hash_key = req_str(hash, "StartingHashKey");
  shard.ending_hash_key = req_str(hash, "EndingHashKey");
  const dom::object seq = req_obj(s, "SequenceNumberRange");
  shard.starting_sequence_number = req_str(seq, "StartingSequenceNumber");
  if (auto e = opt_str(seq, "EndingSequenceNumber")) shard.ending_sequence_number = std::string(*e);
  return shard;
}

// A Consumer / ConsumerDescription / ConsumerSummary object (ConsumerCreationTimestamp is
// not kept: nothing in kclpp decides on it).
StreamConsumer consumer_from(dom::object c) {
  StreamConsumer consumer;
  consumer.consumer_name = req_str(c, "ConsumerName");
  consumer.consumer_arn = req_str(c, "ConsumerARN");
  consumer.status = req_str(c, "ConsumerStatus");
  if (auto arn = opt_str(c, "StreamARN")) consumer.stream_arn = std::string(*arn);
  return consumer;
}

// --- On-Demand GetRecords --------------------------------------------------------------

std::string_view od_string(od::value v, std::string_view what) {
  return check(v.get_string(), what);
}

void set_data_result(Record& r, bool decoded) {
  if (decoded) {
    r.data_error.clear();
  } else {
    r.data.clear();
    r.data_error = "record data is not valid base64";
  }
}

// Data: base64 straight from the input buffer when the string has no escapes (base64 never
// needs any; '\/' is legal JSON though), else through simdjson's unescaping. Decoded
// first and searched for a '\\' (not in the base64 alphabet) only when that fails: one pass
// over the data instead of two (bench/native_throughput).
void read_data(od::value v, Record& r) {
  std::string_view token = v.raw_json_token();
  while (!token.empty() && (token.back() == ' ' || token.back() == '\n' || token.back() == '\r' ||
                            token.back() == '\t')) {
    token.remove_suffix(1);
  }
  if (token.size() >= 2 && token.front() == '"' && token.back() == '"') {
    const std::string_view raw = token.substr(1, token.size() - 2);
    const bool decoded = base64_decode(raw, r.data);
    if (decoded || std::memchr(raw.data(), '\\', raw.size()) == nullptr) {
      od::raw_json_string consumed;
      if (auto e = v.get_raw_json_string().get(consumed); e != simdjson::SUCCESS) bad_json(e, "Data");
      set_data_result(r, decoded);
      return;
    }
  }
  set_data_result(r, base64_decode(od_string(v, "Data"), r.data));
}

void read_record(od::object obj, Record& r) {
  bool have_seq = false;
  bool have_data = false;
  r.sub_sequence_number = 0;
  r.approximate_arrival_timestamp.reset();
  r.partition_key.clear();
  for (auto field : obj) {
    const std::string_view key = check(field.unescaped_key(), "record key");
    od::value v = check(field.value(), "record value");
    if (key == "Data") {
      read_data(v, r);
      have_data = true;
    } else if (key == "SequenceNumber") {
      const std::string_view seq = od_string(v, "SequenceNumber");
      if (!r.sequence_number.assign(seq)) bad_reply("SequenceNumber '" + std::string(seq) + "'");
      have_seq = true;
    } else if (key == "PartitionKey") {
      r.partition_key.assign(od_string(v, "PartitionKey"));
    } else if (key == "ApproximateArrivalTimestamp") {
      // Epoch seconds with a millisecond fraction (a JSON number; kinesalite writes
      // now / 1000). Rounded to whole milliseconds, the precision Kinesis keeps.
      bool is_null = false;
      if (v.is_null().get(is_null) == simdjson::SUCCESS && is_null) continue;
      const double seconds = check(v.get_double(), "ApproximateArrivalTimestamp");
      // system_clock counts nanoseconds in 64 bits: about ±292 years around 1970.
      if (!(seconds > -9e9 && seconds < 9e9)) bad_reply("ApproximateArrivalTimestamp out of range");
      r.approximate_arrival_timestamp = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::milliseconds(std::llround(seconds * 1000.0))));
    }
    // EncryptionType and unknown fields: skipped.
  }
  if (!have_seq) bad_reply("a record without SequenceNumber");
  if (!have_data) {
    r.data.clear();
    r.data_error = "record without Data";
  }
}

Shard child_from(od::object obj) {
  Shard s;
  for (auto field : obj) {
    const std::string_view key = check(field.unescaped_key(), "ChildShards key");
    od::value v = check(field.value(), "ChildShards value");
    if (key == "ShardId") {
      s.shard_id = std::string(od_string(v, "ShardId"));
    } else if (key == "ParentShards") {
      od::array parents = check(v.get_array(), "ParentShards");
      for (auto p : parents) {
        std::string id(od_string(check(std::move(p), "ParentShards"), "ParentShards"));
        if (!s.parent_shard_id) {
          s.parent_shard_id = std::move(id);
        } else if (!s.adjacent_parent_shard_id) {
          s.adjacent_parent_shard_id = std::move(id);
        }
      }
    } else if (key == "HashKeyRange") {
      od::object range = check(v.get_object(), "HashKeyRange");
      for (auto f : range) {
        const std::string_view k = check(f.unescaped_key(), "HashKeyRange key");
        od::value hv = check(f.value(), "HashKeyRange value");
        if (k == "StartingHashKey") s.starting_hash_key = std::string(od_string(hv, k));
        if (k == "EndingHashKey") s.ending_hash_key = std::string(od_string(hv, k));
      }
    }
  }
  if (s.shard_id.empty()) bad_reply("a child shard without ShardId");
  return s;
}

bool is_null(od::value v) {
  bool null = false;
  return v.is_null().get(null) == simdjson::SUCCESS && null;
}

// The body of a GetRecords reply and of a SubscribeToShardEvent, which differ in one
// field (NextShardIterator / ContinuationSequenceNumber): Records, MillisBehindLatest and
// ChildShards go into the out-parameters, `other(key, value)` sees every other field.
// Reuses the storage of the records already in `records`.
template <class Other>
void parse_record_batch(od::parser& parser, const std::string& body, std::vector<Record>& records,
                        std::int64_t& millis_behind_latest, std::vector<Shard>& child_shards, Other&& other) {
  od::document doc = check(parser.iterate(simdjson::padded_string_view(body.data(), body.size(), body.capacity())),
                           "JSON");
  od::object root = check(doc.get_object(), "top level");
  millis_behind_latest = 0;
  child_shards.clear();
  // One allocation for the records rather than a dozen doublings (each moving every
  // Record): a record takes at least ~48 bytes of JSON, so this bounds the count.
  records.reserve(std::min<std::size_t>(body.size() / 48 + 1, 10'000));
  std::size_t n = 0;
  for (auto field : root) {
    const std::string_view key = check(field.unescaped_key(), "key");
    od::value v = check(field.value(), "value");
    if (key == "Records") {
      od::array array = check(v.get_array(), "Records");
      for (auto element : array) {
        od::object obj = check(check(std::move(element), "Records").get_object(), "record");
        if (n == records.size()) records.emplace_back();
        read_record(obj, records[n]);
        ++n;
      }
    } else if (key == "MillisBehindLatest") {
      millis_behind_latest = check(v.get_int64(), "MillisBehindLatest");
    } else if (key == "ChildShards") {
      if (is_null(v)) continue;
      od::array children = check(v.get_array(), "ChildShards");
      for (auto c : children) {
        child_shards.push_back(child_from(check(check(std::move(c), "ChildShards").get_object(), "ChildShards")));
      }
    } else {
      other(key, v);
    }
  }
  records.resize(n);
}

}  // namespace

struct ReplyParser::Impl {
  od::parser ondemand;
  dom::parser dom;

  dom::object root(const std::string& body) {
    dom::element e;
    if (auto err = dom.parse(body.data(), body.size(), false).get(e); err != simdjson::SUCCESS) {
      bad_json(err, "JSON");
    }
    dom::object o;
    if (e.get_object().get(o) != simdjson::SUCCESS) bad_reply("not a JSON object");
    return o;
  }
};

ReplyParser::ReplyParser() : impl_(std::make_unique<Impl>()) {}
ReplyParser::~ReplyParser() = default;
ReplyParser::ReplyParser(ReplyParser&&) noexcept = default;
ReplyParser& ReplyParser::operator=(ReplyParser&&) noexcept = default;

void ReplyParser::get_records(const std::string& body, GetRecordsResult& out) {
  out.next_shard_iterator.reset();
  parse_record_batch(impl_->ondemand, body, out.records, out.millis_behind_latest, out.child_shards,
                     [&](std::string_view key, od::value v) {
                       if (key != "NextShardIterator" || is_null(v)) return;
                       out.next_shard_iterator = std::string(od_string(v, "NextShardIterator"));
                     });
}

void ReplyParser::subscribe_event(const std::string& body, SubscribeToShardEvent& out) {
  out.continuation_sequence_number.clear();
  parse_record_batch(impl_->ondemand, body, out.records, out.millis_behind_latest, out.child_shards,
                     [&](std::string_view key, od::value v) {
                       // null at the end of a closed shard, as NextShardIterator is.
                       if (key != "ContinuationSequenceNumber" || is_null(v)) return;
                       out.continuation_sequence_number.assign(od_string(v, "ContinuationSequenceNumber"));
                     });
}

std::string ReplyParser::list_shards(const std::string& body, std::vector<Shard>& out) {
  const dom::object root = impl_->root(body);
  dom::array shards;
  if (root.at_key("Shards").get_array().get(shards) != simdjson::SUCCESS) bad_reply("missing Shards");
  for (dom::element e : shards) {
    dom::object s;
    if (e.get_object().get(s) != simdjson::SUCCESS) bad_reply("a shard that is not an object");
    out.push_back(shard_from(s));
  }
  auto token = opt_str(root, "NextToken");
  return token ? std::string(*token) : std::string{};
}

StreamSummary ReplyParser::stream_summary(const std::string& body) {
  const dom::object d = req_obj(impl_->root(body), "StreamDescriptionSummary");
  StreamSummary s;
  s.stream_name = req_str(d, "StreamName");
  if (auto arn = opt_str(d, "StreamARN")) s.stream_arn = std::string(*arn);
  s.status = req_str(d, "StreamStatus");
  s.open_shard_count = static_cast<int>(opt_int(d, "OpenShardCount"));
  s.retention_period_hours = static_cast<int>(opt_int(d, "RetentionPeriodHours"));
  return s;
}

std::string ReplyParser::shard_iterator(const std::string& body) {
  return req_str(impl_->root(body), "ShardIterator");
}

PutRecordResult ReplyParser::put_record(const std::string& body) {
  const dom::object root = impl_->root(body);
  return {req_str(root, "ShardId"), req_str(root, "SequenceNumber")};
}

std::vector<PutRecordsResultEntry> ReplyParser::put_records(const std::string& body) {
  const dom::object root = impl_->root(body);
  dom::array records;
  if (root.at_key("Records").get_array().get(records) != simdjson::SUCCESS) bad_reply("missing Records");
  std::vector<PutRecordsResultEntry> out;
  out.reserve(records.size());
  for (dom::element e : records) {
    dom::object r;
    if (e.get_object().get(r) != simdjson::SUCCESS) bad_reply("a result that is not an object");
    PutRecordsResultEntry entry;
    if (auto code = opt_str(r, "ErrorCode")) {
      entry.error_code = std::string(*code);
      if (auto msg = opt_str(r, "ErrorMessage")) entry.error_message = std::string(*msg);
      if (entry.error_code.empty()) bad_reply("an empty ErrorCode");
    } else {
      entry.shard_id = req_str(r, "ShardId");
      entry.sequence_number = req_str(r, "SequenceNumber");
    }
    out.push_back(std::move(entry));
  }
  return out;
}

StreamConsumer ReplyParser::stream_consumer(const std::string& body, std::string_view wrapper) {
  return consumer_from(req_obj(impl_->root(body), wrapper));
}

std::string ReplyParser::stream_consumers(const std::string& body, std::vector<StreamConsumer>& out) {
  const dom::object root = impl_->root(body);
  dom::array consumers;
  if (root.at_key("Consumers").get_array().get(consumers) != simdjson::SUCCESS) bad_reply("missing Consumers");
  for (dom::element e : consumers) {
    dom::object c;
    if (e.get_object().get(c) != simdjson::SUCCESS) bad_reply("a consumer that is not an object");
    out.push_back(consumer_from(c));
  }
  auto token = opt_str(root, "NextToken");
  return token ? std::string(*token) : std::string{};
}

bool ReplyParser::error(const std::string& body, std::string& type, std::string& message) {
  dom::element e;
  if (impl_->dom.parse(body.data(), body.size(), false).get(e) != simdjson::SUCCESS) return false;
  dom::object o;
  if (e.get_object().get(o) != simdjson::SUCCESS) return false;
  std::string_view t;
  if (o.at_key("__type").get_string().get(t) != simdjson::SUCCESS) return false;
  if (auto hash = t.rfind('#'); hash != std::string_view::npos) t.remove_prefix(hash + 1);
  // Some services append ":http://internal.amazon.com/coral/..." to the type.
  if (auto colon = t.find(':'); colon != std::string_view::npos) t = t.substr(0, colon);
  type.assign(t);
  std::string_view m;
  if (o.at_key("message").get_string().get(m) == simdjson::SUCCESS ||
      o.at_key("Message").get_string().get(m) == simdjson::SUCCESS) {
    message.assign(m);
  } else {
    message.clear();
  }
  return true;
}

}  // namespace kclpp::aws::detail
