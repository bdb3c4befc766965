#pragma once
// Kinesis sequence numbers: decimal strings of up to 129 digits (real ones have 56, about
// 186 bits), kept as text and compared numerically. Plus the KCL's extended form.

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kclpp {

// A Kinesis sequence number. Holds the decimal string exactly as given; compares by value
// (leading zeros ignored, then by length, then digit by digit). A default-constructed
// SequenceNumber is empty() and sorts before every number. Not thread-safe to mutate.
class SequenceNumber {
 public:
  static constexpr std::size_t max_digits = 129;

  SequenceNumber() = default;
  // Throws CheckpointError("IllegalArgumentException") unless `digits` is 1..129 ASCII digits.
  explicit SequenceNumber(std::string_view digits);

  // Same check without throwing.
  [[nodiscard]] static std::optional<SequenceNumber> try_parse(std::string_view digits);
  [[nodiscard]] static bool valid(std::string_view digits) noexcept;

  // Replaces the value, reusing this object's storage (hot path: decoders reuse Records).
  // Returns false and leaves the value empty if `digits` is not valid.
  bool assign(std::string_view digits);

  [[nodiscard]] const std::string& str() const noexcept { return digits_; }
  [[nodiscard]] bool empty() const noexcept { return digits_.empty(); }

  friend std::strong_ordering operator<=>(const SequenceNumber& a, const SequenceNumber& b) noexcept;
  friend bool operator==(const SequenceNumber& a, const SequenceNumber& b) noexcept;

 private:
  std::string digits_;
};

// The special positions of the KCL (ExtendedSequenceNumber sentinels).
enum class Sentinel { None, TrimHorizon, Latest, AtTimestamp, ShardEnd };

// Name as on the wire: "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "SHARD_END" ("" for None).
[[nodiscard]] std::string_view sentinel_name(Sentinel s) noexcept;

// A position in a shard: either a sentinel or a sequence number, plus a sub-sequence
// number (the index of a user record inside a KPL aggregate; 0 otherwise). This is what
// initialize() receives and what a checkpoint stores. Value type.
class ExtendedSequenceNumber {
 public:
  ExtendedSequenceNumber() = default;  // TRIM_HORIZON, sub 0
  ExtendedSequenceNumber(SequenceNumber sequence_number, std::int64_t sub_sequence_number);
  explicit ExtendedSequenceNumber(Sentinel sentinel, std::int64_t sub_sequence_number = 0);

  // Parses a sequence number or a sentinel name. Throws CheckpointError
  // ("IllegalArgumentException") naming the bad value, or for a negative sub.
  [[nodiscard]] static ExtendedSequenceNumber parse(std::string_view value,
                                                    std::int64_t sub_sequence_number = 0);

  [[nodiscard]] Sentinel sentinel() const noexcept { return sentinel_; }
  [[nodiscard]] bool is_sentinel() const noexcept { return sentinel_ != Sentinel::None; }
  // Empty for a sentinel.
  [[nodiscard]] const SequenceNumber& sequence_number() const noexcept { return sequence_number_; }
  [[nodiscard]] std::int64_t sub_sequence_number() const noexcept { return sub_; }
  // The sequence number's digits or the sentinel's name.
  [[nodiscard]] std::string str() const;

  // Equal when the same sentinel, or the same number and sub-sequence number.
  friend bool operator==(const ExtendedSequenceNumber& a, const ExtendedSequenceNumber& b) noexcept;

 private:
  Sentinel sentinel_ = Sentinel::TrimHorizon;
  SequenceNumber sequence_number_;
  std::int64_t sub_ = 0;
};

// Orders two numeric positions by (sequence number, sub-sequence number). Both must be
// non-sentinel; sentinels compare as equivalent to each other and below every number.
[[nodiscard]] std::strong_ordering compare_positions(const ExtendedSequenceNumber& a,
                                                     const ExtendedSequenceNumber& b) noexcept;

}  // namespace kclpp
