#include "kclpp/processor/sequence_number.hpp"

#include <algorithm>
#include <utility>

#include "kclpp/processor/error.hpp"

namespace kclpp {
namespace {

constexpr std::string_view illegal_argument = "IllegalArgumentException";

[[noreturn]] void throw_invalid(std::string_view what, std::string_view value) {
  // The value comes from outside (a daemon line, user code): quote it, but keep the
  // message bounded so a multi-megabyte mistake does not end up in a log line.
  constexpr std::size_t max_shown = 160;
  std::string message(what);
  message += " '";
  message.append(value.substr(0, max_shown));
  if (value.size() > max_shown) message += "...";
  message += "'";
  throw CheckpointError(message, std::string(illegal_argument));
}

std::string_view strip_leading_zeros(std::string_view digits) noexcept {
  const auto first = digits.find_first_not_of('0');
  return first == std::string_view::npos ? std::string_view{} : digits.substr(first);
}

}  // namespace

SequenceNumber::SequenceNumber(std::string_view digits) {
  if (!valid(digits)) throw_invalid("invalid sequence number", digits);
  digits_.assign(digits);
}

std::optional<SequenceNumber> SequenceNumber::try_parse(std::string_view digits) {
  if (!valid(digits)) return std::nullopt;
  SequenceNumber result;
  result.digits_.assign(digits);
  return result;
}

bool SequenceNumber::valid(std::string_view digits) noexcept {
  if (digits.empty() || digits.size() > max_digits) return false;
  // Not std::isdigit: it depends on the locale and takes int, and only ASCII is valid here.
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool SequenceNumber::assign(std::string_view digits) {
  if (!valid(digits)) {
    digits_.clear();
    return false;
  }
  digits_.assign(digits.data(), digits.size());  // keeps the capacity when it fits
  return true;
}

std::strong_ordering operator<=>(const SequenceNumber& a, const SequenceNumber& b) noexcept {
  // Empty (default-constructed) sorts before every number, including "0".
  if (a.empty() || b.empty()) return !a.empty() <=> !b.empty();
  const auto x = strip_leading_zeros(a.digits_);
  const auto y = strip_leading_zeros(b.digits_);
  if (x.size() != y.size()) return x.size() <=> y.size();
  const int c = x.compare(y);
  return c <=> 0;
}

bool operator==(const SequenceNumber& a, const SequenceNumber& b) noexcept {
  return (a <=> b) == std::strong_ordering::equal;
}

std::string_view sentinel_name(Sentinel s) noexcept {
  switch (s) {
    case Sentinel::TrimHorizon: return "TRIM_HORIZON";
    case Sentinel::Latest: return "LATEST";
    case Sentinel::AtTimestamp: return "AT_TIMESTAMP";
    case Sentinel::ShardEnd: return "SHARD_END";
    case Sentinel::None: break;
  }
  return {};
}

ExtendedSequenceNumber::ExtendedSequenceNumber(SequenceNumber sequence_number,
                                               std::int64_t sub_sequence_number)
    : sentinel_(Sentinel::None),
      sequence_number_(std::move(sequence_number)),
      sub_(sub_sequence_number) {}

ExtendedSequenceNumber::ExtendedSequenceNumber(Sentinel sentinel, std::int64_t sub_sequence_number)
    : sentinel_(sentinel), sub_(sub_sequence_number) {}

ExtendedSequenceNumber ExtendedSequenceNumber::parse(std::string_view value,
                                                     std::int64_t sub_sequence_number) {
  // The KCL rejects a negative sub-sequence number with IllegalArgumentException (docs/kcl-protocol.md §5).
  if (sub_sequence_number < 0) {
    throw_invalid("negative sub-sequence number " + std::to_string(sub_sequence_number) +
                      " for sequence number",
                  value);
  }
  for (const auto s :
       {Sentinel::TrimHorizon, Sentinel::Latest, Sentinel::AtTimestamp, Sentinel::ShardEnd}) {
    if (value == sentinel_name(s)) return ExtendedSequenceNumber(s, sub_sequence_number);
  }
  if (!SequenceNumber::valid(value)) {
    throw_invalid("not a sequence number (1 to 129 digits) or a sentinel:", value);
  }
  return {SequenceNumber(value), sub_sequence_number};
}

std::string ExtendedSequenceNumber::str() const {
  if (is_sentinel()) return std::string(sentinel_name(sentinel_));
  return sequence_number_.str();
}

bool operator==(const ExtendedSequenceNumber& a, const ExtendedSequenceNumber& b) noexcept {
  if (a.is_sentinel() || b.is_sentinel()) return a.sentinel_ == b.sentinel_;
  return a.sub_ == b.sub_ && a.sequence_number_ == b.sequence_number_;
}

std::strong_ordering compare_positions(const ExtendedSequenceNumber& a,
                                       const ExtendedSequenceNumber& b) noexcept {
  if (a.is_sentinel() || b.is_sentinel()) return !a.is_sentinel() <=> !b.is_sentinel();
  if (const auto c = a.sequence_number() <=> b.sequence_number(); c != 0) return c;
  return a.sub_sequence_number() <=> b.sub_sequence_number();
}

}  // namespace kclpp
