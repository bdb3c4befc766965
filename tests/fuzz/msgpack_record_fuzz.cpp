// libFuzzer target for Triton records (pipeline/src/value.cpp, docs/triton.md §2).
// Three readers of the same bytes must agree:
// - validate_record (the archiver's allocation-free check) accepts exactly what
//   decode_record decodes, and both describe a rejection with the same words;
// - msgpack_value_size (the archive reader's splitter) measures the value decode_value
//   consumes, and reports bad data where decode_value does;
// - a decoded record re-encodes to bytes that decode again to the same map (compared by
//   re-encoding, so that a NaN compares equal to itself) and that validate_record accepts.
// Nothing may throw or crash; to_json must render every decoded record.
// Seed corpus: tests/fuzz/corpus/msgpack_record/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kclpp/pipeline/value.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace kclpp::pipeline;

using kclpp::fuzz::bug;
using kclpp::fuzz::check;

void run(std::string_view data) {
  const std::string invalid = validate_record(data);
  const DecodedRecord rec = decode_record(data);
  check(invalid.empty() == rec.ok(), "validate_record and decode_record disagree:",
        invalid + " | " + rec.error);
  check(invalid == rec.error, "validate_record and decode_record word it differently:",
        invalid + " | " + rec.error);

  std::string size_error = "stale";
  const std::size_t size = msgpack_value_size(data, size_error);
  check(size <= data.size(), "msgpack_value_size beyond the input");
  if (size > 0) check(size_error.empty(), "msgpack_value_size: a size and an error");
  if (rec.ok()) check(size == data.size(), "a valid record is not one whole value");

  std::string_view rest = data;
  std::string value_error = "stale";
  const auto value = decode_value(rest, value_error);
  if (value) {
    check(value_error.empty(), "decode_value: a value and an error");
    check(size == data.size() - rest.size(), "decode_value and msgpack_value_size disagree on the size");
  } else {
    check(rest.size() == data.size(), "decode_value consumed bytes on failure");
    if (!size_error.empty()) check(!value_error.empty(), "decode_value missed bad data", size_error);
    if (size > 0) check(!value_error.empty(), "decode_value failed on a whole value without a reason");
  }

  if (rec.ok()) {
    const std::string once = encode_record(rec.map);
    check(validate_record(once).empty(), "re-encoded record does not validate", validate_record(once));
    const DecodedRecord again = decode_record(once);
    check(again.ok(), "re-encoded record does not decode", again.error);
    check(again.map.size() == rec.map.size(), "re-decoded record lost entries");
    check(encode_record(again.map) == once, "decode(encode(record)) differs from record");
    const std::string json = to_json(rec.map);
    check(!json.empty() && json.front() == '{' && json.back() == '}', "to_json is not an object", json);
    check(json.find('\n') == std::string::npos, "to_json is not one line");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
