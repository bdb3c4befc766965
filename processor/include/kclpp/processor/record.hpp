#pragma once
// A Kinesis record as a processor sees it, and the batch handed to process_records().

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/processor/sequence_number.hpp"

namespace kclpp {

// One (user) record. `data` holds the decoded bytes. A record whose data could not be
// decoded keeps empty data and says why in `data_error` (per-record problems are values,
// not throws). Value type.
struct Record {
  std::string data;
  std::string partition_key;
  SequenceNumber sequence_number;
  // Index inside a KPL aggregate; 0 for ordinary records.
  std::int64_t sub_sequence_number = 0;
  // Epoch milliseconds precision; absent when the daemon sent null (or a legacy daemon).
  std::optional<std::chrono::system_clock::time_point> approximate_arrival_timestamp;
  // Empty when `data` is valid.
  std::string data_error;

  [[nodiscard]] ExtendedSequenceNumber position() const {
    return {sequence_number, sub_sequence_number};
  }
};

// What one process_records() call receives.
struct RecordBatch {
  std::vector<Record> records;
  // How far the shard's reader is behind the tip of the stream; absent when unknown.
  std::optional<std::int64_t> millis_behind_latest;
};

}  // namespace kclpp
