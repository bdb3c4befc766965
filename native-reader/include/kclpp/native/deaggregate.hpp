#pragma once
// KPL de-aggregation: a record whose data starts with the KPL magic F3 89 9A C2 holds a
// protobuf AggregatedRecord and an MD5 trailer; it expands into its user records.
#include <string_view>
#include <vector>

#include "kclpp/processor/record.hpp"

namespace kclpp::native {

// True if `data` starts with the KPL magic bytes (it may still be corrupt).
[[nodiscard]] bool is_aggregated(std::string_view data) noexcept;

// Appends to `out` the user records of `record`: for an aggregate, one Record per user
// record, with the aggregate's sequence number and arrival time, sub_sequence_number =
// its index, its own partition key (from the aggregate's key table) and data. A record
// that is not an aggregate, or a corrupt one (bad protobuf, MD5 mismatch, index out of
// range), is appended unchanged as one record with sub_sequence_number 0, as the KCL does;
// a corrupt aggregate is logged (warn) with its sequence number. Never throws for bad input.
void deaggregate(Record&& record, std::vector<Record>& out);

}  // namespace kclpp::native
