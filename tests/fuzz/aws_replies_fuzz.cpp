// libFuzzer target for the replies kclpp::aws reads besides S3's XML and GetRecords (which
// have targets of their own). The first byte picks the parser, the rest is its input:
//   0  a DynamoDB item (aws/src/dynamodb_client.cpp): only ProtocolError escapes; an item
//      that parses is written back as JSON and parses to an equal item;
//   1  credential_process output (aws/src/process_credentials.cpp): only AuthError escapes;
//      when the input is a JSON object, its SecretAccessKey and SessionToken are replaced by
//      markers and the message of a refusal never contains them;
//   2  ISO 8601 expirations (aws/src/iso8601.cpp): a time that parses formats to a string
//      that parses to the same second.
// Seed corpus: tests/fuzz/corpus/aws_replies/.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "dynamodb_wire.hpp"
#include "iso8601.hpp"
#include "kclpp/processor/error.hpp"
#include "process_credentials.hpp"
#include "fuzz_check.hpp"

namespace {

namespace detail = kclpp::aws::detail;

using kclpp::fuzz::check;
using kclpp::fuzz::parses;

void dynamodb_item(std::string_view input) {
  kclpp::aws::Item item;
  if (!parses([&] { item = detail::parse_item_json(input); })) return;
  const std::string again = kclpp::aws::to_json(item);
  kclpp::aws::Item reparsed;
  check(parses([&] { reparsed = detail::parse_item_json(again); }), "an item written back as JSON does not parse");
  check(reparsed == item, "an item written back as JSON parses to another item");
}

constexpr const char* kSecretMarker = "KCLPP-FUZZ-SECRET-MARKER";
constexpr const char* kTokenMarker = "KCLPP-FUZZ-TOKEN-MARKER";

void process_output(std::string_view input) {
  std::string text(input);
  nlohmann::json doc = nlohmann::json::parse(input, nullptr, false);
  const bool marked = doc.is_object();
  if (marked) {
    doc["SecretAccessKey"] = kSecretMarker;
    doc["SessionToken"] = kTokenMarker;
    text = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  try {
    (void)detail::parse_process_output(text, "fuzz");
  } catch (const kclpp::AuthError& e) {
    const std::string what = e.what();
    if (marked) {
      check(what.find(kSecretMarker) == std::string::npos, "an error quotes the secret key");
      check(what.find(kTokenMarker) == std::string::npos, "an error quotes the session token");
    }
  }
}

void iso8601(std::string_view input) {
  const auto t = detail::parse_iso8601(input);
  if (!t) return;
  const auto again = detail::parse_iso8601(detail::format_iso8601(*t));
  check(again.has_value(), "a formatted time does not parse");
  check(std::chrono::floor<std::chrono::seconds>(*again) == std::chrono::floor<std::chrono::seconds>(*t),
        "a formatted time parses to another second");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: dynamodb_item(input); break;
    case 1: process_output(input); break;
    default: iso8601(input); break;
  }
  return 0;
}
