#pragma once
// A minimal, allocation-free protobuf wire-format reader for outside bytes (the KPL
// aggregate format). Every read is bounds-checked and reports failure as `false`; nothing
// throws. No protobuf library: the KPL format needs varints and length-delimited fields
// only, plus skipping whatever else a producer may have written.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kclpp::native::detail {

enum class WireType : std::uint8_t {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
};

// Reads one message's fields in order. Value type over a borrowed buffer; not thread-safe
// (one reader per thread), but cheap to copy.
class ProtobufReader {
 public:
  // protobuf-java's default recursion limit; bounds the group nesting we skip through.
  static constexpr int max_depth = 100;

  explicit ProtobufReader(std::string_view bytes) noexcept
      : pos_(reinterpret_cast<const unsigned char*>(bytes.data())), end_(pos_ + bytes.size()) {}

  [[nodiscard]] bool at_end() const noexcept { return pos_ == end_; }

  // A base-128 varint of at most 10 bytes. As protobuf-java does, bits beyond 64 in the
  // tenth byte are dropped rather than rejected. False if truncated or longer than 10 bytes.
  [[nodiscard]] bool read_varint(std::uint64_t& value) noexcept {
    // Fast path: one byte (field tags, small indexes, short lengths).
    if (pos_ < end_ && *pos_ < 0x80) {
      value = *pos_++;
      return true;
    }
    std::uint64_t result = 0;
    // Shifts 0, 7, ..., 63: ten bytes; unsigned shifts drop the excess bits of the tenth.
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (pos_ == end_) return false;
      const unsigned char byte = *pos_++;
      result |= static_cast<std::uint64_t>(byte & 0x7fU) << shift;
      if (byte < 0x80) {
        value = result;
        return true;
      }
    }
    return false;  // an eleventh continuation byte: malformed
  }

  // A field key. False at a malformed tag: truncated, beyond 32 bits, field number 0, or
  // wire type 6/7 (protobuf-java rejects all of these as an invalid tag).
  [[nodiscard]] bool read_tag(std::uint32_t& field, WireType& type) noexcept {
    std::uint64_t tag = 0;
    if (!read_varint(tag) || tag > 0xffffffffULL) return false;
    field = static_cast<std::uint32_t>(tag >> 3);
    const auto wire = static_cast<std::uint8_t>(tag & 7);
    if (field == 0 || wire > 5) return false;
    type = static_cast<WireType>(wire);
    return true;
  }

  // The payload of a length-delimited field (after its tag), as a view into the buffer.
  [[nodiscard]] bool read_length_delimited(std::string_view& out) noexcept {
    std::uint64_t length = 0;
    if (!read_varint(length)) return false;
    if (length > static_cast<std::uint64_t>(end_ - pos_)) return false;
    out = std::string_view(reinterpret_cast<const char*>(pos_), static_cast<std::size_t>(length));
    pos_ += length;
    return true;
  }

  // Skips the value of a field whose tag was just read (any wire type; a group through its
  // matching end tag). False if the value is truncated or malformed, or for a stray
  // end-group tag (it has no value to skip: the caller saw an unbalanced group).
  [[nodiscard]] bool skip(std::uint32_t field, WireType type, int depth = 0) noexcept {
    switch (type) {
      case WireType::Varint: {
        std::uint64_t ignored = 0;
        return read_varint(ignored);
      }
      case WireType::Fixed64: return advance(8);
      case WireType::Fixed32: return advance(4);
      case WireType::LengthDelimited: {
        std::string_view ignored;
        return read_length_delimited(ignored);
      }
      case WireType::StartGroup: return skip_group(field, depth + 1);
      case WireType::EndGroup: return false;
    }
    return false;
  }

 private:
  [[nodiscard]] bool advance(std::size_t n) noexcept {
    if (n > static_cast<std::size_t>(end_ - pos_)) return false;
    pos_ += n;
    return true;
  }

  // Fields up to the end tag of group `field` (field numbers must match, as protobuf
  // checks). Recursion is bounded by max_depth.
  [[nodiscard]] bool skip_group(std::uint32_t field, int depth) noexcept {
    if (depth > max_depth) return false;
    for (;;) {
      std::uint32_t inner = 0;
      WireType type{};
      if (!read_tag(inner, type)) return false;
      if (type == WireType::EndGroup) return inner == field;
      if (!skip(inner, type, depth)) return false;
    }
  }

  const unsigned char* pos_;
  const unsigned char* end_;
};

}  // namespace kclpp::native::detail
