#pragma once
// Writing a JSON string literal, the one copy: the protocol writer's hot path and every
// request and rendering writer use it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kclpp/internal/hex.hpp"
#include "kclpp/internal/utf8.hpp"

namespace kclpp::detail {

// What becomes of the bytes at or above 0x80.
enum class JsonText {
  // ASCII-only output: every non-ASCII character as \uXXXX (UTF-16 surrogate pairs above
  // U+FFFF), ill-formed UTF-8 as \ufffd. The MultiLangDaemon writer (docs/kcl-protocol.md
  // §3), whose readers differ in how they take raw UTF-8.
  Ascii,
  // Well-formed UTF-8 passes through; each ill-formed subpart becomes U+FFFD, so the output
  // is always valid JSON text (RFC 8259 §8.1). `kclpp cat` and other renderings.
  Utf8,
  // Bytes at or above 0x80 pass through untouched: the caller's text is already UTF-8
  // (request fields AWS validates itself, so nothing is silently altered on the way).
  Verbatim,
};

namespace json_string_detail {

inline void append_u_escape(std::string& out, std::uint32_t unit) {
  const char buf[6] = {'\\', 'u', hex_lower[(unit >> 12) & 0xF], hex_lower[(unit >> 8) & 0xF],
                       hex_lower[(unit >> 4) & 0xF], hex_lower[unit & 0xF]};
  out.append(buf, sizeof buf);
}

// Bytes that go out as they are in every mode.
inline bool is_plain(unsigned char c) noexcept { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

inline void append_control(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out.append("\\\""); break;
    case '\\': out.append("\\\\"); break;
    case '\n': out.append("\\n"); break;
    case '\r': out.append("\\r"); break;
    case '\t': out.append("\\t"); break;
    case '\b': out.append("\\b"); break;
    case '\f': out.append("\\f"); break;
    default: append_u_escape(out, c); break;
  }
}

}  // namespace json_string_detail

// Appends `s` as a quoted JSON string. Runs of plain ASCII are copied at once (the common
// case, and the protocol writer's throughput: bench/protocol_throughput).
template <JsonText Mode>
void append_json_string(std::string& out, std::string_view s) {
  using namespace json_string_detail;
  out.push_back('"');
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    std::size_t run = i;
    if constexpr (Mode == JsonText::Verbatim) {
      while (run < n && (is_plain(static_cast<unsigned char>(s[run])) ||
                         static_cast<unsigned char>(s[run]) >= 0x80))
        ++run;
    } else {
      while (run < n && is_plain(static_cast<unsigned char>(s[run]))) ++run;
    }
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == n) break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      append_control(out, c);
      ++i;
      continue;
    }
    // Only Ascii and Utf8 get here.
    const Utf8Char u = decode_utf8(s, i);
    if constexpr (Mode == JsonText::Utf8) {
      if (u.valid) {
        out.append(s.data() + i, u.length);
      } else {
        out.append(utf8_replacement);
      }
    } else if (u.code_point >= 0x10000) {
      const std::uint32_t v = u.code_point - 0x10000;
      append_u_escape(out, 0xD800 + (v >> 10));
      append_u_escape(out, 0xDC00 + (v & 0x3FF));
    } else {
      append_u_escape(out, u.code_point);
    }
    i += u.length;
  }
  out.push_back('"');
}

}  // namespace kclpp::detail
