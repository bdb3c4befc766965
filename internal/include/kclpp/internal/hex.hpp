#pragma once
// Hex digits, the one table of them (lower and upper case).

#include <cstdint>
#include <string>
#include <string_view>

namespace kclpp::detail {

inline constexpr char hex_lower[] = "0123456789abcdef";
inline constexpr char hex_upper[] = "0123456789ABCDEF";

// Appends two lower-case hex digits for the byte `b`.
inline void append_hex_byte(std::string& out, unsigned char b) {
  out.push_back(hex_lower[b >> 4]);
  out.push_back(hex_lower[b & 0xF]);
}

// Lower-case hex of every byte of `bytes`.
inline std::string to_hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) append_hex_byte(out, static_cast<unsigned char>(c));
  return out;
}

// The value of one hex digit (either case), or -1.
inline constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace kclpp::detail
