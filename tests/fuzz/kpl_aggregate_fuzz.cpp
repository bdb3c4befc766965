// libFuzzer target for KPL de-aggregation (native-reader/src/deaggregate.cpp).
// Each input is de-aggregated three ways: as raw record data, with the KPL magic in
// front, and as magic + input + MD5(input) so that the MD5 check passes and the fuzzer
// reaches the protobuf parser. deaggregate() must never throw or crash, and the result
// must be one of the two documented outcomes:
// - the record passed through unchanged (sub_sequence_number 0), or
// - user records with the aggregate's sequence number and arrival time,
//   sub_sequence_number 0..n-1, and data/keys that fit inside the input;
// appended after what `out` already held. Non-aggregates always pass through, and the
// same input always gives the same result. Seed corpus: tests/fuzz/corpus/kpl_aggregate/.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/native/deaggregate.hpp"
#include "kclpp/processor/log.hpp"
#include "md5.hpp"
#include "fuzz_check.hpp"

namespace {

using kclpp::Record;

using kclpp::fuzz::bug;
using kclpp::fuzz::check;

const std::chrono::system_clock::time_point arrival{std::chrono::milliseconds(1'700'000'000'000)};

Record make_record(const std::string& data) {
  Record r;
  r.data = data;
  r.partition_key = "aggregate-pk";
  r.sequence_number = kclpp::SequenceNumber("49590338271490256608559692538361571095921575989136588898");
  r.approximate_arrival_timestamp = arrival;
  return r;
}

bool same(const Record& a, const Record& b) {
  return a.data == b.data && a.partition_key == b.partition_key && a.sequence_number == b.sequence_number &&
         a.sub_sequence_number == b.sub_sequence_number &&
         a.approximate_arrival_timestamp == b.approximate_arrival_timestamp && a.data_error == b.data_error;
}

void run(const std::string& data) {
  const Record original = make_record(data);
  std::vector<Record> out;
  out.push_back(make_record("already in the batch"));
  const Record first = out.front();
  kclpp::native::deaggregate(make_record(data), out);
  check(same(out.front(), first), "deaggregate changed a record already in `out`");

  const bool passed_through = out.size() == 2 && same(out[1], original);
  if (!kclpp::native::is_aggregated(data)) check(passed_through, "a non-aggregate was not passed through");
  if (!passed_through) {
    std::size_t bytes = 0;
    for (std::size_t i = 1; i < out.size(); ++i) {
      const Record& u = out[i];
      check(u.sequence_number == original.sequence_number, "user record lost the sequence number");
      check(u.sub_sequence_number == static_cast<std::int64_t>(i - 1), "sub-sequence numbers are not 0..n-1");
      check(u.approximate_arrival_timestamp == arrival, "user record lost the arrival time");
      check(u.data_error.empty(), "user record has a data error");
      check(u.partition_key.size() < data.size(), "partition key larger than the aggregate");
      bytes += u.data.size();
    }
    check(bytes < data.size() || out.size() == 1, "user data larger than the aggregate");
  }

  // Deterministic, also with a fresh `out` (thread-local scratch must not leak state).
  std::vector<Record> again;
  kclpp::native::deaggregate(make_record(data), again);
  check(again.size() + 1 == out.size(), "a second run gave a different record count");
  for (std::size_t i = 0; i < again.size(); ++i) check(same(again[i], out[i + 1]), "a second run differs");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Keep the corrupt-aggregate warnings (their formatting runs) but not their output.
  kclpp::set_log_sink([](kclpp::LogLevel, std::string_view) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  static const std::string magic("\xF3\x89\x9A\xC2", 4);
  run(input);
  run(magic + input);
  kclpp::native::detail::Md5Digest digest{};
  if (!kclpp::native::detail::md5(input, digest)) bug("MD5 unavailable");
  run(magic + input + std::string(reinterpret_cast<const char*>(digest.data()), digest.size()));
  return 0;
}
