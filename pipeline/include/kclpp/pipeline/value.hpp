#pragma once
// Triton records (docs/triton.md §2): one msgpack map per Kinesis record. Value is a
// msgpack-independent tree of every type Triton data can hold; decode/encode convert.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kclpp::pipeline {

class Value;

using Array = std::vector<Value>;
// Map entries in wire order. Keys are text (msgpack str, or bin as Go writes them too).
using Map = std::vector<std::pair<std::string, Value>>;

struct Nil {
  friend bool operator==(Nil, Nil) noexcept { return true; }
};
// msgpack bin: bytes that are not text.
struct Binary {
  std::string bytes;
  friend bool operator==(const Binary&, const Binary&) = default;
};
// msgpack float32 (kept apart from double so that it is written back as float32).
struct Float32 {
  float value = 0;
  friend bool operator==(const Float32&, const Float32&) = default;
};
// Go's time.Time as msgp writes it: extension type 5, 12 bytes, big-endian int64 Unix
// seconds then big-endian int32 nanoseconds (docs/triton.md §2). Not the msgpack timestamp (-1).
struct Time {
  std::int64_t seconds = 0;
  std::int32_t nanoseconds = 0;
  friend bool operator==(const Time&, const Time&) = default;
};
// Any other extension type, opaque (the msgpack timestamp -1 included).
struct Extension {
  std::int8_t type = 0;
  std::string bytes;
  friend bool operator==(const Extension&, const Extension&) = default;
};

// One msgpack value. Decoding gives std::int64_t for every integer that fits (fixint,
// int8..64, uint8..64 alike) and std::uint64_t only above INT64_MAX, so that callers test
// one type and a decoded record re-encodes (shortest formats) to a record that decodes
// equal. Value type (copyable, movable).
class Value {
 public:
  using Storage = std::variant<Nil, bool, std::int64_t, std::uint64_t, Float32, double,
                               std::string, Binary, Array, Map, Time, Extension>;

  Value() = default;
  template <class T>
    requires std::is_constructible_v<Storage, T&&>
  Value(T&& v) : v_(std::forward<T>(v)) {}  // NOLINT(google-explicit-constructor)
  Value(const char* s) : v_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] const Storage& storage() const noexcept { return v_; }
  [[nodiscard]] Storage& storage() noexcept { return v_; }
  template <class T> [[nodiscard]] bool is() const noexcept { return std::holds_alternative<T>(v_); }
  template <class T> [[nodiscard]] const T* get_if() const noexcept { return std::get_if<T>(&v_); }
  // The entry `key` of a map value (the last one if the map repeats the key, the value Go
  // and Python readers see); nullptr when absent or not a map.
  [[nodiscard]] const Value* find(std::string_view key) const noexcept;

  friend bool operator==(const Value& a, const Value& b) = default;

 private:
  Storage v_;
};

// The result of decoding one Kinesis record's data: the map, or why it is not a Triton
// record (not msgpack, not a map, trailing bytes, truncated, too deep). Per-record
// problems are values, not throws (STYLE.md, Errors).
struct DecodedRecord {
  Map map;
  std::string error;  // empty when `map` is valid
  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

// Decodes exactly one msgpack map filling all of `bytes`. Never throws (except bad_alloc).
[[nodiscard]] DecodedRecord decode_record(std::string_view bytes);
// decode_record into `out`, reusing its storage: the previous record's map entries are
// assigned into where the shape matches (the vector, the keys' and strings' capacity), so
// that decoding records of one shape in a loop allocates nothing per record in steady
// state. The same map and error as decode_record (on error `out.map` is empty). Never
// throws (except bad_alloc).
void decode_record_into(std::string_view bytes, DecodedRecord& out);
// The archive reader's one-pass decoder: when `bytes` starts with a whole msgpack map,
// decodes it into `out` (reusing its storage as decode_record_into does), consumes it from
// the front of `bytes` and returns true. Otherwise false, with `out` unspecified and
// `error` set when the data is bad, empty when it is not a map or holds only part of one.
[[nodiscard]] bool decode_map_prefix(std::string_view& bytes, Map& out, std::string& error);
// The same without building the tree: an empty string when `bytes` is exactly one msgpack
// map with string (or bin) keys, else what is wrong. Used by the archiver to keep records
// byte for byte.
[[nodiscard]] std::string validate_record(std::string_view bytes);
// Decodes one msgpack value of any type (the archive reader uses it on a stream of maps):
// consumes bytes from the front of `bytes` and returns the value; nullopt with `error` set
// when the data is bad, nullopt with `error` empty when `bytes` holds only part of a value.
[[nodiscard]] std::optional<Value> decode_value(std::string_view& bytes, std::string& error);

// The size in bytes of the one msgpack value at the front of `bytes` (without decoding
// it): 0 with `error` empty when `bytes` holds only part of a value, 0 with `error` set
// when the data is not msgpack (or nests deeper than 256). The archive reader's record
// splitter: it must be fast (no allocation).
[[nodiscard]] std::size_t msgpack_value_size(std::string_view bytes, std::string& error) noexcept;

// Encodes a map with string keys (str8/16/32 and the shortest int formats, as
// msgpack-python with use_bin_type=True does; Float32 as float32, double as float64 even
// when integral; Time as msgp's ext 5). Appends to `out`. Throws kclpp::Error (not
// retryable) only for a string or container longer than msgpack's 32-bit lengths.
void encode_record(const Map& record, std::string& out);
[[nodiscard]] std::string encode_record(const Map& record);
void encode_value(const Value& value, std::string& out);

// JSON rendering for the CLI (`kclpp cat`, `kclpp get`): bin as base64 strings, Time as
// RFC 3339 UTC with nanoseconds when not zero, other extensions as
// {"$ext": type, "data": base64}, NaN/Inf as null, invalid UTF-8 in str replaced by U+FFFD.
// One line, no trailing newline.
void to_json(const Value& value, std::string& out);
[[nodiscard]] std::string to_json(const Map& record);

// The partition key a producer derives from a record (docs/triton.md §2, py-triton): the value of
// field `field` as text: str as is, bin as its bytes, integers in decimal, floats as
// Python's repr would print them ("1.0", "1e+20"), "True"/"False", nil as "None". Throws
// ConfigError (not retryable) naming the field when the record has no such field or it
// holds an array, map or extension; ConfigError when the key is empty or longer than 256
// characters (the Kinesis limit, counted in UTF-16 units as Kinesis does).
[[nodiscard]] std::string partition_key_of(const Map& record, const std::string& field);

}  // namespace kclpp::pipeline
