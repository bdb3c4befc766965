#include "kclpp/processor/checkpointer.hpp"

#include <string>

#include "kclpp/processor/error.hpp"

namespace kclpp {
namespace {

// Catch what the KCL would reject with IllegalArgumentException (docs/kcl-protocol.md §5) before a round
// trip: an empty (default-constructed) sequence number or a negative sub-sequence number.
void check_position(const SequenceNumber& sequence_number, std::int64_t sub_sequence_number) {
  if (sequence_number.empty()) {
    throw CheckpointError("checkpoint: empty sequence number", "IllegalArgumentException");
  }
  if (sub_sequence_number < 0) {
    throw CheckpointError("checkpoint: negative sub-sequence number " +
                              std::to_string(sub_sequence_number) + " at " +
                              sequence_number.str(),
                          "IllegalArgumentException");
  }
}

}  // namespace

void Checkpointer::checkpoint() {
  retry(retry_policy(), [&] { checkpoint_once(std::nullopt); });
}

void Checkpointer::checkpoint(const Record& record) {
  // Always with the sub-sequence number: without it the KCL stores sub 0, which for a KPL
  // aggregate marks only its first user record as done (docs/kcl-protocol.md §5).
  checkpoint(record.sequence_number, record.sub_sequence_number);
}

void Checkpointer::checkpoint(const SequenceNumber& sequence_number,
                              std::int64_t sub_sequence_number) {
  check_position(sequence_number, sub_sequence_number);
  const std::optional<ExtendedSequenceNumber> at{std::in_place, sequence_number,
                                                 sub_sequence_number};
  retry(retry_policy(), [&] { checkpoint_once(at); });
}

}  // namespace kclpp
