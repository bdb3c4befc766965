// libFuzzer target for the GetRecords reply parser (native-reader/src/kinesis_json.cpp), the
// hot path that reads bytes from the network. Each input is one HTTP reply body. It is
// parsed into a fresh result and into one reused across inputs (the parser reuses record
// storage): both must agree. ProtocolError is an accepted outcome; any other exception, a
// crash or a sanitizer report is a bug.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kclpp/processor/error.hpp"
#include "kinesis_json.hpp"
#include "fuzz_check.hpp"

namespace {

using kclpp::aws::GetRecordsResult;
using kclpp::aws::detail::ReplyParser;

using kclpp::fuzz::bug;
using kclpp::fuzz::parses;

bool same(const GetRecordsResult& a, const GetRecordsResult& b) {
  if (a.records.size() != b.records.size() || a.next_shard_iterator != b.next_shard_iterator ||
      a.millis_behind_latest != b.millis_behind_latest || a.child_shards.size() != b.child_shards.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    const auto& x = a.records[i];
    const auto& y = b.records[i];
    if (x.data != y.data || x.partition_key != y.partition_key || x.sequence_number != y.sequence_number ||
        x.approximate_arrival_timestamp != y.approximate_arrival_timestamp || x.data_error != y.data_error) {
      return false;
    }
  }
  for (std::size_t i = 0; i < a.child_shards.size(); ++i) {
    if (a.child_shards[i].shard_id != b.child_shards[i].shard_id ||
        a.child_shards[i].parent_shard_id != b.child_shards[i].parent_shard_id) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ReplyParser reused_parser;
  static GetRecordsResult reused;
  std::string body;
  body.reserve(size + kclpp::aws::detail::json_padding);
  body.assign(reinterpret_cast<const char*>(data), size);

  ReplyParser parser;
  GetRecordsResult fresh;
  const bool fresh_ok = parses([&] { parser.get_records(body, fresh); });
  const bool reused_ok = parses([&] { reused_parser.get_records(body, reused); });
  if (!reused_ok) reused = GetRecordsResult{};  // a failed parse leaves the result unspecified
  if (fresh_ok != reused_ok) bug("fresh and reused parsers disagree on success");
  if (!fresh_ok) return 0;
  if (!same(fresh, reused)) bug("fresh and reused parsers disagree on the result");
  for (const auto& r : fresh.records) {
    if (r.sequence_number.empty()) bug("a record without sequence number was accepted");
    if (!r.data_error.empty() && !r.data.empty()) bug("data_error with data");
  }
  return 0;
}
