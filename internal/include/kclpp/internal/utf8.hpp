#pragma once
// UTF-8 decoding with replacement and encoding, the one copy of each.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kclpp::detail {

// U+FFFD REPLACEMENT CHARACTER, UTF-8 encoded.
inline constexpr std::string_view utf8_replacement = "\xEF\xBF\xBD";

struct Utf8Char {
  std::uint32_t code_point = 0xFFFD;  // U+FFFD when !valid
  std::size_t length = 1;             // bytes consumed (>= 1)
  bool valid = false;
};

// Decodes the UTF-8 sequence starting at s[i] (i < s.size()). An ill-formed sequence gives
// U+FFFD and consumes its maximal ill-formed subpart: the Unicode §3.9 practice that
// Python's decode('utf-8', 'replace') and the WHATWG decoder follow, so a broken byte
// never swallows the valid characters after it. Rejects overlongs, surrogates and code
// points above U+10FFFF.
inline Utf8Char decode_utf8(std::string_view s, std::size_t i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  std::size_t need = 0;
  std::uint32_t cp = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0Fu;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07u;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return {};
  }
  std::size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) break;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) break;
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (k == need + 1) return {cp, k, true};
  return {0xFFFD, k, false};
}

// Appends the UTF-8 encoding of `cp` (callers pass a code point <= U+10FFFF; a lone
// surrogate from a 16-bit escape is encoded as it is, as Java's String does).
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace kclpp::detail
