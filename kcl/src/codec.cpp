#include "codec.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::kcl::detail {

namespace {

namespace od = simdjson::ondemand;

static_assert(decode_padding >= simdjson::SIMDJSON_PADDING,
              "LineBuffer must leave at least SIMDJSON_PADDING readable bytes after a line");

// Timestamps beyond this (about year 2255) would overflow system_clock's nanoseconds.
constexpr std::int64_t max_timestamp_ms = 9'000'000'000'000;

std::string_view type_name(od::json_type t) noexcept {
  switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
  }
  return "an unknown JSON type";
}

std::string_view trim_right(std::string_view s) noexcept {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Action parse_action(std::string_view name) noexcept {
  if (name == "processRecords") return Action::ProcessRecords;
  if (name == "checkpoint") return Action::Checkpoint;
  if (name == "initialize") return Action::Initialize;
  if (name == "status") return Action::Status;
  if (name == "leaseLost") return Action::LeaseLost;
  if (name == "shardEnded") return Action::ShardEnded;
  if (name == "shutdownRequested") return Action::ShutdownRequested;
  if (name == "shutdown") return Action::Shutdown;
  return Action::Unknown;
}

// Reads one line; every error leaves through fail(), which names the problem and the line.
class LineReader {
 public:
  LineReader(std::string_view line, Message& message) : line_(line), message_(message) {}

  [[noreturn]] void fail(std::string_view problem) const {
    std::string what = "bad MultiLangDaemon line: ";
    what.append(problem);
    what.append(": ");
    what.append(cut_line(line_));
    throw ProtocolError(what);
  }

  [[noreturn]] void fail_json(simdjson::error_code e) const {
    std::string problem;
    switch (e) {
      case simdjson::EMPTY: problem = "empty line (no JSON)"; break;
      case simdjson::UTF8_ERROR: problem = "not valid UTF-8"; break;
      case simdjson::DEPTH_ERROR: problem = "JSON nested too deeply"; break;
      case simdjson::UNCLOSED_STRING: problem = "not valid JSON (truncated: unclosed string)"; break;
      case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
        problem = "not valid JSON (truncated, or brackets do not balance)";
        break;
      default:
        problem = "not valid JSON (";
        problem += simdjson::error_message(e);
        problem += ")";
        break;
    }
    fail(problem);
  }

  template <typename T>
  T check(simdjson::simdjson_result<T>&& r) const {
    T v;
    if (const auto e = std::move(r).get(v)) fail_json(e);
    return v;
  }

  [[noreturn]] void fail_type(std::string_view field, std::string_view expected,
                              od::json_type got) const {
    std::string p = "\"";
    p.append(field);
    p.append("\" is ");
    p.append(type_name(got));
    p.append(", expected ");
    p.append(expected);
    fail(p);
  }

  od::json_type type_of(od::value& v) const { return check(v.type()); }

  // string / null (-> nullopt). `allow_number`: a JSON integer is taken by its digits
  // (lenient reading of sequence numbers).
  std::optional<std::string_view> opt_string(od::value& v, std::string_view field,
                                             bool allow_number = false) const {
    const od::json_type t = type_of(v);
    if (t == od::json_type::null) return std::nullopt;
    if (t == od::json_type::string) return check(v.get_string());
    if (allow_number && t == od::json_type::number) {
      const std::string_view raw = trim_right(v.raw_json_token());
      if (!all_digits(raw)) {
        std::string p = "\"";
        p.append(field);
        p.append("\" is a number but not a non-negative integer");
        fail(p);
      }
      return raw;
    }
    fail_type(field, allow_number ? "a string, an integer or null" : "a string or null", t);
  }

  std::string_view string_or_empty(od::value& v, std::string_view field) const {
    return opt_string(v, field).value_or(std::string_view{});
  }

  // integer / null (-> nullopt); a string holding an integer is accepted too (Jackson
  // coerces it the same way).
  std::optional<std::int64_t> opt_int(od::value& v, std::string_view field) const {
    const od::json_type t = type_of(v);
    if (t == od::json_type::null) return std::nullopt;
    if (t == od::json_type::number) {
      std::int64_t n = 0;
      if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
      std::string p = "\"";
      p.append(field);
      p.append("\" is not an integer in the 64-bit range");
      fail(p);
    }
    if (t == od::json_type::string) {
      const std::string_view s = check(v.get_string());
      std::int64_t n = 0;
      const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc{} && ptr == s.data() + s.size() && !s.empty()) return n;
      std::string p = "\"";
      p.append(field);
      p.append("\" is a string that is not an integer");
      fail(p);
    }
    fail_type(field, "an integer or null", t);
  }

  void note_unexpected(std::string_view key) { message_.unexpected_keys.emplace_back(key); }

 private:
  std::string_view line_;
  Message& message_;
};

void clear_record(Record& r) {
  r.data.clear();
  r.partition_key.clear();
  (void)r.sequence_number.assign({});  // leaves it empty, keeps its storage
  r.sub_sequence_number = 0;
  r.approximate_arrival_timestamp.reset();
  r.data_error.clear();
}

std::chrono::system_clock::time_point from_epoch_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::milliseconds(ms)));
}

// ---------------------------------------------------------------------------------------
// General path, the steps of Decoder::Impl::decode and read_record.

void require_object(const LineReader& in, od::document& doc) {
  od::json_type root{};
  if (const auto e = doc.type().get(root)) in.fail_json(e);
  if (root != od::json_type::object) {
    std::string p = "not a JSON object (the line is ";
    p.append(type_name(root));
    p.append(")");
    in.fail(p);
  }
}

// The "action" value, wherever it is (Jackson writes it first, so this is usually one
// field; key order is not a contract, docs/kcl-protocol.md §2). The view lives in the
// parser's string buffer until the document is rewound.
std::string_view find_action(const LineReader& in, od::document& doc) {
  od::object obj = in.check(doc.get_object());
  for (auto field_result : obj) {
    od::field field = in.check(std::move(field_result));
    const std::string_view key = in.check(field.unescaped_key());
    if (key != "action") continue;
    od::value v = field.value();
    const od::json_type t = in.type_of(v);
    if (t != od::json_type::string) in.fail_type("action", "a string", t);
    return in.check(v.get_string());
  }
  in.fail("no \"action\" field");
}

// Keys whose presence matters once every field has been read.
struct SeenKeys {
  std::optional<std::string> legacy_checkpoint;
  bool sequence_number = false;
  bool response_for = false;
};

void read_initialize_field(const LineReader& in, std::string_view key, od::value& v, Message& message) {
  if (key == "shardId") {
    message.shard_id.assign(in.string_or_empty(v, "shardId"));
  } else if (key == "sequenceNumber") {
    if (auto s = in.opt_string(v, "sequenceNumber", true)) message.sequence_number.emplace(*s);
  } else if (key == "subSequenceNumber") {
    message.sub_sequence_number = in.opt_int(v, "subSequenceNumber");
  }
}

void read_checkpoint_field(LineReader& in, std::string_view key, od::value& v, Message& message, SeenKeys& seen) {
  if (key == "sequenceNumber") {
    seen.sequence_number = true;
    if (auto s = in.opt_string(v, "sequenceNumber", true)) message.sequence_number.emplace(*s);
  } else if (key == "subSequenceNumber") {
    message.sub_sequence_number = in.opt_int(v, "subSequenceNumber");
  } else if (key == "error") {
    if (auto s = in.opt_string(v, "error")) message.error.emplace(*s);
  } else if (key == "checkpoint") {
    // KCL < 1.7.2 (docs/kcl-protocol.md §8); a newer daemon rejects it in a request (docs/kcl-protocol.md §1).
    message.legacy_checkpoint_key = true;
    in.note_unexpected(key);
    if (auto s = in.opt_string(v, "checkpoint", true)) seen.legacy_checkpoint.emplace(*s);
  } else {
    in.note_unexpected(key);
  }
}

void read_status_field(LineReader& in, std::string_view key, od::value& v, Message& message, SeenKeys& seen) {
  if (key == "responseFor") {
    const od::json_type t = in.type_of(v);
    if (t != od::json_type::string) in.fail_type("responseFor", "a string", t);
    message.response_for.assign(in.check(v.get_string()));
    seen.response_for = true;
  } else {
    in.note_unexpected(key);
  }
}

// Anything after the closing brace: in bounds means trailing bytes.
void reject_trailing(const LineReader& in, od::document& doc) {
  const char* where = nullptr;
  if (doc.current_location().get(where) == simdjson::SUCCESS) {
    in.fail("trailing characters after the JSON object");
  }
}

std::string record_problem(std::size_t index, std::string_view what) {
  std::string p = "record #" + std::to_string(index) + ": ";
  p.append(what);
  return p;
}

// A record's "data" (a string, not null) into r.data; base64 that does not decode is a
// value on the record (data_error), not an error of the line.
inline void read_data(const LineReader& in, od::value& v, Record& r, std::size_t index) {
  const od::json_type t = in.type_of(v);
  if (t == od::json_type::null) return;  // null data -> empty data
  if (t != od::json_type::string) {
    in.fail(record_problem(index, "\"data\" is " + std::string(type_name(t)) + ", expected a base64 string"));
  }
  // Base64 never needs JSON escapes, so decode straight from the input buffer first:
  // the raw token is the quoted string plus any whitespace up to the next token. The
  // alphabet has no backslash, so a successful decode means there was no escape to
  // undo. Only when that fails, look for escapes (Jackson writes none, but other
  // writers may send "\/") and decode the unescaped string.
  const std::string_view raw = trim_right(v.raw_json_token());
  const bool quoted = raw.size() >= 2 && raw.front() == '"' && raw.back() == '"';
  bool decoded = quoted && base64_decode(raw.substr(1, raw.size() - 2), r.data);
  if (!decoded && (!quoted || std::memchr(raw.data(), '\\', raw.size()) != nullptr)) {
    decoded = base64_decode(in.check(v.get_string()), r.data);
  }
  if (!decoded) {
    r.data.clear();
    r.data_error = "invalid base64 in record data";
  }
}

inline void read_sequence_number(const LineReader& in, od::value& v, Record& r, std::size_t index) {
  const auto s = in.opt_string(v, "sequenceNumber", true);
  if (!s) in.fail(record_problem(index, "\"sequenceNumber\" is null"));
  if (!r.sequence_number.assign(*s)) {
    in.fail(record_problem(index, "invalid sequenceNumber \"" + cut_line(*s, 64) +
                                      "\" (expected 1 to 129 decimal digits)"));
  }
}

// A timestamp number in epoch ms: an integer, or a double within the range.
std::int64_t number_ms(const LineReader& in, od::value& v, std::size_t index) {
  std::int64_t n = 0;
  double d = 0;
  if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
  if (v.get_double().get(d) == simdjson::SUCCESS && d > -9.0e12 && d < 9.0e12) return static_cast<std::int64_t>(d);
  in.fail(record_problem(index, "approximateArrivalTimestamp out of range"));
}

// KCL 2.0.x serialised a java.time.Instant bean (docs/kcl-protocol.md §8): epoch ms, or
// nullopt without "epochSecond".
std::optional<std::int64_t> instant_ms(const LineReader& in, od::value& v, std::size_t index) {
  od::object ts = in.check(v.get_object());
  std::optional<std::int64_t> seconds;
  std::int64_t nanos = 0;
  for (auto ts_field_result : ts) {
    od::field ts_field = in.check(std::move(ts_field_result));
    const std::string_view ts_key = in.check(ts_field.unescaped_key());
    if (ts_key == "epochSecond") {
      seconds = in.opt_int(ts_field.value(), "approximateArrivalTimestamp.epochSecond");
    } else if (ts_key == "nano") {
      nanos = in.opt_int(ts_field.value(), "approximateArrivalTimestamp.nano").value_or(0);
    }
  }
  if (!seconds) return std::nullopt;
  if (*seconds < -max_timestamp_ms / 1000 || *seconds > max_timestamp_ms / 1000 || nanos < 0 ||
      nanos > 999'999'999) {
    in.fail(record_problem(index, "approximateArrivalTimestamp out of range"));
  }
  return *seconds * 1000 + nanos / 1'000'000;
}

// "approximateArrivalTimestamp": epoch ms as a number or an Instant bean; nullopt for null
// and for a bean without "epochSecond".
std::optional<std::chrono::system_clock::time_point> read_arrival_timestamp(const LineReader& in, od::value& v,
                                                                            std::size_t index) {
  const od::json_type t = in.type_of(v);
  std::optional<std::int64_t> ms;
  if (t == od::json_type::number) {
    ms = number_ms(in, v, index);
  } else if (t == od::json_type::object) {
    ms = instant_ms(in, v, index);
  } else if (t != od::json_type::null) {
    in.fail(record_problem(index, "\"approximateArrivalTimestamp\" is " + std::string(type_name(t)) +
                                      ", expected a number, an object or null"));
  }
  if (!ms) return std::nullopt;
  if (*ms < -max_timestamp_ms || *ms > max_timestamp_ms) {
    in.fail(record_problem(index, "approximateArrivalTimestamp out of range"));
  }
  return from_epoch_ms(*ms);
}

// The fast path's reader (see Decoder::Impl::decode_fast): every function consumes what it
// matched and returns true, or returns false (the caller then gives up on the line).
class FastScanner {
 public:
  explicit FastScanner(std::string_view line) noexcept : p_(line.data()), end_(line.data() + line.size()) {}

  bool at_end() const noexcept { return p_ == end_; }

  // A string literal: its length is a constant, so the compare compiles to a few loads.
  template <std::size_t N>
  bool literal(const char (&s)[N]) noexcept {
    constexpr std::size_t n = N - 1;
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, s, n) != 0) return false;
    p_ += n;
    return true;
  }

  // The bytes up to the next '"' (consumed), escapes or not: for tokens whose every valid
  // form has no backslash (base64, digits), which the caller then validates.
  bool raw_string(std::string_view& out) noexcept {
    const void* quote = std::memchr(p_, '"', static_cast<std::size_t>(end_ - p_));
    if (quote == nullptr) return false;
    const char* q = static_cast<const char*>(quote);
    out = std::string_view(p_, static_cast<std::size_t>(q - p_));
    p_ = q + 1;
    return true;
  }

  // A string with no escapes and no control characters, valid UTF-8 (what the general
  // path's UTF-8 check requires of the whole line), up to its closing '"' (consumed).
  bool plain_string(std::string_view& out) noexcept {
    const char* q = p_;
    unsigned char high = 0;
    for (; q < end_ && *q != '"'; ++q) {
      const auto c = static_cast<unsigned char>(*q);
      if (c < 0x20 || c == '\\') return false;
      high |= c;
    }
    if (q == end_) return false;
    out = std::string_view(p_, static_cast<std::size_t>(q - p_));
    if (high >= 0x80 && !simdjson::validate_utf8(out.data(), out.size())) return false;
    p_ = q + 1;
    return true;
  }

  // A JSON integer -?(0|[1-9][0-9]*) of at most 18 digits (always in the int64 range), or
  // null. "-0" is left to the general path (simdjson may read it as a double).
  bool integer_or_null(std::optional<std::int64_t>& out) noexcept {
    if (literal("null")) {
      out.reset();
      return true;
    }
    const bool negative = p_ < end_ && *p_ == '-';
    const char* first = negative ? p_ + 1 : p_;
    const char* q = first;
    std::uint64_t n = 0;  // wraps harmlessly past 18 digits, which are refused below
    for (; q < end_ && *q >= '0' && *q <= '9'; ++q) n = n * 10 + static_cast<std::uint64_t>(*q - '0');
    const auto digits = q - first;
    if (digits == 0 || digits > 18 || (*first == '0' && (digits > 1 || negative))) return false;
    const auto value = static_cast<std::int64_t>(n);
    out = negative ? -value : value;
    p_ = q;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

// One record of the fast path into `r` (any previous content). Every field is set, as
// clear_record() would, but `data` is not cleared first: base64_decode() resizes it, and
// growing a cleared string would zero the bytes about to be written.
bool read_fast_record(FastScanner& in, Record& r) {
  r.data_error.clear();
  r.approximate_arrival_timestamp.reset();
  if (!in.literal(R"({"data":)")) return false;
  std::string_view text;
  if (in.literal("null")) {  // null data -> empty data, as in the general path
    r.data.clear();
  } else if (!in.literal("\"") || !in.raw_string(text) || !base64_decode(text, r.data)) {
    return false;
  }
  if (!in.literal(R"(,"partitionKey":")") || !in.plain_string(text)) return false;
  r.partition_key.assign(text);
  if (!in.literal(R"(,"sequenceNumber":")") || !in.raw_string(text) || !r.sequence_number.assign(text)) {
    return false;
  }
  std::optional<std::int64_t> ms;
  if (!in.literal(R"(,"approximateArrivalTimestamp":)") || !in.integer_or_null(ms)) return false;
  if (ms) {
    if (*ms < -max_timestamp_ms || *ms > max_timestamp_ms) return false;
    r.approximate_arrival_timestamp = from_epoch_ms(*ms);
  }
  std::optional<std::int64_t> sub;
  if (!in.literal(R"(,"subSequenceNumber":)") || !in.integer_or_null(sub)) return false;
  r.sub_sequence_number = sub.value_or(0);
  return in.literal(R"(,"action":"record"})");
}

}  // namespace

std::string_view action_name(Action action) noexcept {
  switch (action) {
    case Action::Initialize: return "initialize";
    case Action::ProcessRecords: return "processRecords";
    case Action::Checkpoint: return "checkpoint";
    case Action::LeaseLost: return "leaseLost";
    case Action::ShardEnded: return "shardEnded";
    case Action::ShutdownRequested: return "shutdownRequested";
    case Action::Shutdown: return "shutdown";
    case Action::Status: return "status";
    case Action::Unknown: return "unknown";
  }
  return "unknown";
}

void Message::reset() {
  action = Action::Unknown;
  action_name.clear();
  shard_id.clear();
  sequence_number.reset();
  sub_sequence_number.reset();
  error.reset();
  reason.clear();
  response_for.clear();
  unexpected_keys.clear();
  legacy_checkpoint_key = false;
}

// ---------------------------------------------------------------------------------------
// Decoder

struct Decoder::Impl {
  od::parser parser;
  // Records cut from a batch by a shorter line, kept with their string capacity for the
  // next longer one (steady state: no allocation per record).
  std::vector<Record> spare;

  bool decode_fast(std::string_view line, Message& message, RecordBatch& batch);
  void decode(std::string_view line, Message& message, RecordBatch& batch);
  SeenKeys read_fields(LineReader& in, od::document& doc, Message& message, RecordBatch& batch);
  void read_records(LineReader& in, od::value& v, RecordBatch& batch);
  void read_record(LineReader& in, od::object& obj, Record& r, std::size_t index);

  void recycle(RecordBatch& batch) {
    for (auto& r : batch.records) spare.push_back(std::move(r));
    batch.records.clear();
  }
  Record& next_record(RecordBatch& batch) {
    if (spare.empty()) {
      batch.records.emplace_back();
    } else {
      batch.records.push_back(std::move(spare.back()));
      spare.pop_back();
    }
    return batch.records.back();
  }
};

Decoder::Decoder() : impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;

void Decoder::decode(std::string_view line, Message& message, RecordBatch& batch) {
  if (impl_->decode_fast(line, message, batch)) return;
  impl_->decode(line, message, batch);
}

bool Decoder::try_decode_fast(std::string_view line, Message& message, RecordBatch& batch) {
  return impl_->decode_fast(line, message, batch);
}

void Decoder::decode_general(std::string_view line, Message& message, RecordBatch& batch) {
  impl_->decode(line, message, batch);
}

// ---------------------------------------------------------------------------------------
// Fast path: processRecords exactly as the Java daemon writes it (docs/kcl-protocol.md §2: Jackson, fields
// in declaration order, no whitespace, nulls written out):
//   {"action":"processRecords","records":[{"data":"<base64>"|null,"partitionKey":"<text>",
//   "sequenceNumber":"<digits>","approximateArrivalTimestamp":<integer>|null,
//   "subSequenceNumber":<integer>|null,"action":"record"},...],"millisBehindLatest":<integer>|null}
// One pass over the line with no structural index, which is most of the general path's
// cost. Anything else (another key order, whitespace, an extra key, escapes, a number that
// is not a plain integer, data that does not decode, ...) returns false, and the general
// path decodes the line from scratch: leniency and every error message stay the general
// path's. The fast path only accepts lines the general path accepts, and yields the same
// result (tests/unit/codec_test.cpp and the fuzz target compare the two).

bool Decoder::Impl::decode_fast(std::string_view line, Message& message, RecordBatch& batch) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // The general path's parser refuses documents beyond its maximum capacity.
  if (line.size() > simdjson::SIMDJSON_MAXSIZE_BYTES) return false;
  FastScanner in(line);
  if (!in.literal(R"({"action":"processRecords","records":[)")) return false;
  message.reset();
  batch.millis_behind_latest.reset();
  // The batch's records are overwritten in place (no trip through `spare` for each), and
  // whatever is left over at the end goes to `spare`.
  std::size_t count = 0;
  if (!in.literal("]")) {
    do {
      Record& r = count < batch.records.size() ? batch.records[count] : next_record(batch);
      ++count;
      if (!read_fast_record(in, r)) return false;
    } while (in.literal(","));
    if (!in.literal("]")) return false;
  }
  if (count < batch.records.size()) {
    for (std::size_t i = count; i < batch.records.size(); ++i) spare.push_back(std::move(batch.records[i]));
    batch.records.erase(batch.records.begin() + static_cast<std::ptrdiff_t>(count), batch.records.end());
  }
  std::optional<std::int64_t> millis_behind;
  if (!in.literal(R"(,"millisBehindLatest":)") || !in.integer_or_null(millis_behind) || !in.literal("}") ||
      !in.at_end()) {
    return false;
  }
  batch.millis_behind_latest = millis_behind;
  message.action = Action::ProcessRecords;
  message.action_name.assign("processRecords");
  return true;
}

void Decoder::Impl::decode(std::string_view line, Message& message, RecordBatch& batch) {
  message.reset();
  const std::size_t capacity = line.size() + decode_padding;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  LineReader in(line, message);
  if (line.empty()) in.fail_json(simdjson::EMPTY);

  od::document doc = in.check(parser.iterate(simdjson::padded_string_view(line.data(), line.size(), capacity)));
  require_object(in, doc);
  // Pass 1: the action, which says what the other fields mean.
  message.action_name.assign(find_action(in, doc));
  message.action = parse_action(message.action_name);
  // Pass 2: the fields of that action. rewind() also resets simdjson's string buffer.
  doc.rewind();
  if (message.action == Action::ProcessRecords) {
    batch.millis_behind_latest.reset();
    recycle(batch);
  }
  SeenKeys seen = read_fields(in, doc, message, batch);
  reject_trailing(in, doc);

  // "sequenceNumber" wins when both keys are present.
  if (seen.legacy_checkpoint && !seen.sequence_number) message.sequence_number = std::move(seen.legacy_checkpoint);
  if (message.action == Action::Status && !seen.response_for) in.fail("status without \"responseFor\"");
}

// The fields of message.action's message (every key but "action") into `message` / `batch`.
SeenKeys Decoder::Impl::read_fields(LineReader& in, od::document& doc, Message& message, RecordBatch& batch) {
  SeenKeys seen;
  od::object obj = in.check(doc.get_object());
  for (auto field_result : obj) {
    od::field field = in.check(std::move(field_result));
    const std::string_view key = in.check(field.unescaped_key());
    if (key == "action") continue;
    od::value& v = field.value();
    switch (message.action) {
      case Action::Initialize:
        read_initialize_field(in, key, v, message);
        break;
      case Action::ProcessRecords:
        if (key == "records") {
          read_records(in, v, batch);
        } else if (key == "millisBehindLatest") {
          batch.millis_behind_latest = in.opt_int(v, "millisBehindLatest");
        }
        break;
      case Action::Checkpoint:
        read_checkpoint_field(in, key, v, message, seen);
        break;
      case Action::Status:
        read_status_field(in, key, v, message, seen);
        break;
      case Action::Shutdown:
        if (key == "reason") message.reason.assign(in.string_or_empty(v, "reason"));
        break;
      case Action::LeaseLost:
      case Action::ShardEnded:
      case Action::ShutdownRequested:
      case Action::Unknown:
        break;  // unknown fields of daemon messages are ignored (docs/kcl-protocol.md §8)
    }
  }
  return seen;
}

void Decoder::Impl::read_records(LineReader& in, od::value& v, RecordBatch& batch) {
  const od::json_type t = in.type_of(v);
  if (t != od::json_type::array && t != od::json_type::null) in.fail_type("records", "an array", t);
  // A repeated "records" key: the last one wins, as in Jackson.
  recycle(batch);
  if (t == od::json_type::null) return;  // lenient: no records
  od::array arr = in.check(v.get_array());
  std::size_t index = 0;
  for (auto element_result : arr) {
    od::value element = in.check(std::move(element_result));
    const od::json_type et = in.type_of(element);
    if (et != od::json_type::object) {
      in.fail("record #" + std::to_string(index) + " is " + std::string(type_name(et)) +
              ", expected an object");
    }
    od::object obj = in.check(element.get_object());
    read_record(in, obj, next_record(batch), index);
    ++index;
  }
}

void Decoder::Impl::read_record(LineReader& in, od::object& obj, Record& r, std::size_t index) {
  clear_record(r);
  bool saw_sequence_number = false;
  for (auto field_result : obj) {
    od::field field = in.check(std::move(field_result));
    const std::string_view key = in.check(field.unescaped_key());
    od::value& v = field.value();
    if (key == "data") {
      read_data(in, v, r, index);
    } else if (key == "partitionKey") {
      r.partition_key.assign(in.string_or_empty(v, "partitionKey"));
    } else if (key == "sequenceNumber") {
      read_sequence_number(in, v, r, index);
      saw_sequence_number = true;
    } else if (key == "subSequenceNumber") {
      r.sub_sequence_number = in.opt_int(v, "subSequenceNumber").value_or(0);
    } else if (key == "approximateArrivalTimestamp") {
      // null (or a bean without epochSecond) leaves an earlier value of a repeated key.
      if (auto at = read_arrival_timestamp(in, v, index)) r.approximate_arrival_timestamp = at;
    }
    // "action":"record" (absent before KCL 1.7.2) and unknown keys: ignored.
  }
  if (!saw_sequence_number) in.fail(record_problem(index, "no \"sequenceNumber\""));
}

// ---------------------------------------------------------------------------------------
// Writers

namespace {

void append_int(std::string& out, std::int64_t n) {
  std::array<char, 24> buf{};
  const auto res = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), res.ptr);
}

void append_opt_string(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    append_json_string(out, *s);
  } else {
    out.append("null");
  }
}

void append_opt_int(std::string& out, std::optional<std::int64_t> n) {
  if (n) {
    append_int(out, *n);
  } else {
    out.append("null");
  }
}

}  // namespace

void encode_status(std::string& out, std::string_view response_for) {
  out.append(R"({"action":"status","responseFor":)");
  append_json_string(out, response_for);
  out.push_back('}');
}

void encode_checkpoint_request(std::string& out, const std::optional<std::string>& sequence_number,
                               std::optional<std::int64_t> sub_sequence_number) {
  // Both keys always, nothing else: the daemon rejects unknown keys (docs/kcl-protocol.md §1, §3).
  out.append(R"({"action":"checkpoint","sequenceNumber":)");
  append_opt_string(out, sequence_number);
  out.append(R"(,"subSequenceNumber":)");
  append_opt_int(out, sub_sequence_number);
  out.push_back('}');
}

void encode_initialize(std::string& out, std::string_view shard_id,
                       const ExtendedSequenceNumber& position) {
  out.append(R"({"action":"initialize","shardId":)");
  append_json_string(out, shard_id);
  out.append(R"(,"sequenceNumber":)");
  append_json_string(out, position.str());
  out.append(R"(,"subSequenceNumber":)");
  append_int(out, position.sub_sequence_number());
  out.push_back('}');
}

void encode_process_records(std::string& out, const RecordBatch& batch) {
  // Field order as the Java daemon's Jackson writes it (docs/kcl-protocol.md §2 example line).
  std::size_t estimate = 96;
  for (const Record& r : batch.records) {
    estimate += (r.data.size() + 2) / 3 * 4 + r.partition_key.size() + r.sequence_number.str().size() + 160;
  }
  out.reserve(out.size() + estimate);
  out.append(R"({"action":"processRecords","records":[)");
  bool first = true;
  for (const Record& r : batch.records) {
    if (!first) out.push_back(',');
    first = false;
    out.append(R"({"data":")");
    base64_encode(r.data, out);
    out.append(R"(","partitionKey":)");
    append_json_string(out, r.partition_key);
    out.append(R"(,"sequenceNumber":)");
    append_json_string(out, r.sequence_number.str());
    out.append(R"(,"approximateArrivalTimestamp":)");
    if (r.approximate_arrival_timestamp) {
      append_int(out, std::chrono::floor<std::chrono::milliseconds>(
                          r.approximate_arrival_timestamp->time_since_epoch())
                          .count());
    } else {
      out.append("null");
    }
    out.append(R"(,"subSequenceNumber":)");
    append_int(out, r.sub_sequence_number);
    out.append(R"(,"action":"record"})");
  }
  out.append(R"(],"millisBehindLatest":)");
  append_opt_int(out, batch.millis_behind_latest);
  out.push_back('}');
}

void encode_checkpoint_response(std::string& out, const std::optional<std::string>& sequence_number,
                                std::optional<std::int64_t> sub_sequence_number,
                                const std::optional<std::string>& error) {
  out.append(R"({"action":"checkpoint","sequenceNumber":)");
  append_opt_string(out, sequence_number);
  out.append(R"(,"subSequenceNumber":)");
  append_opt_int(out, sub_sequence_number);
  out.append(R"(,"error":)");
  append_opt_string(out, error);
  out.push_back('}');
}

void encode_bare(std::string& out, Action action) {
  out.append(R"({"action":)");
  append_json_string(out, action_name(action));
  out.push_back('}');
}

void encode_shutdown(std::string& out, std::string_view reason) {
  out.append(R"({"action":"shutdown","reason":)");
  append_json_string(out, reason);
  out.push_back('}');
}

std::string cut_line(std::string_view line, std::size_t max) {
  if (line.size() <= max) return std::string(line);
  std::size_t n = max;
  // Do not split a UTF-8 sequence.
  for (int back = 0; back < 3 && n > 0 && (static_cast<unsigned char>(line[n]) & 0xC0) == 0x80; ++back) --n;
  std::string out(line.substr(0, n));
  out.append("...(");
  out.append(std::to_string(line.size()));
  out.append(" bytes)");
  return out;
}

}  // namespace kclpp::kcl::detail
