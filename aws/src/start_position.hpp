#pragma once
// How Kinesis requests spell a start position: GetShardIterator's ShardIteratorType and
// Timestamp, SubscribeToShard's StartingPosition.
#include <array>
#include <chrono>
#include <string>

#include "kclpp/aws/kinesis_client.hpp"

namespace kclpp::aws::detail {

[[nodiscard]] inline const char* iterator_type_name(IteratorType t) noexcept {
  switch (t) {
    case IteratorType::Latest: return "LATEST";
    case IteratorType::TrimHorizon: return "TRIM_HORIZON";
    case IteratorType::AtSequenceNumber: return "AT_SEQUENCE_NUMBER";
    case IteratorType::AfterSequenceNumber: return "AFTER_SEQUENCE_NUMBER";
    case IteratorType::AtTimestamp: return "AT_TIMESTAMP";
  }
  return "TRIM_HORIZON";
}

// A JSON number of epoch seconds with a millisecond fraction, as the AWS SDKs send it.
[[nodiscard]] inline std::string epoch_seconds_json(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const auto sec = ms / 1000;
  auto frac = ms % 1000;
  std::string ts = std::to_string(frac < 0 ? sec - 1 : sec);
  if (frac < 0) frac += 1000;
  const std::array<char, 5> f{'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                              static_cast<char>('0' + frac % 10), '\0'};
  ts += f.data();
  return ts;
}

}  // namespace kclpp::aws::detail
