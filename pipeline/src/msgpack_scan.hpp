#pragma once
// Private: the allocation-free msgpack scanner behind msgpack_value_size and validate_record,
// and the description of a failed scan (shared with the decoder so that both report the
// same problems with the same words).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kclpp::pipeline::detail {

// Containers nested deeper than this are refused (issue #4 §1): a hostile record of a
// few KB of 0x91 bytes must not exhaust the stack or the time of a reader.
inline constexpr int kMaxDepth = 256;

enum class ScanFail : std::uint8_t {
  None,       // `end` is the size of the value
  Truncated,  // the bytes end inside a value
  BadByte,    // 0xc1 (never used by msgpack)
  TooDeep,    // a container at nesting level kMaxDepth + 1
  BadKey,     // a map key that is not str or bin (text_keys only)
};

struct ScanResult {
  std::size_t end = 0;  // bytes of the value when fail == None
  ScanFail fail = ScanFail::None;
  std::size_t at = 0;         // offset of the offending byte
  unsigned char byte = 0;     // its value
};

// Scans the one value at the front of `bytes`. With `text_keys`, every map key (at any
// depth) must be str or bin, as Triton records need (docs/triton.md §2). Never allocates.
[[nodiscard]] ScanResult scan_value(std::string_view bytes, bool text_keys) noexcept;

// What a msgpack lead byte starts, for error messages ("an array", "an int", ...).
[[nodiscard]] const char* describe_lead(unsigned char b) noexcept;

// The error text for a failed scan or decode (empty for ScanFail::None).
[[nodiscard]] std::string describe_failure(const ScanResult& r, std::size_t size);

}  // namespace kclpp::pipeline::detail
