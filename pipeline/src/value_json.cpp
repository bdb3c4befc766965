// JSON rendering of Triton records for `kclpp cat` / `kclpp get` (one line per record).
#include <charconv>
#include <cmath>
#include <cstdint>

#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/base64.hpp"

namespace kclpp::pipeline {
namespace {

void append_replacement(std::string& out) { out += "\xEF\xBF\xBD"; }  // U+FFFD

// Length of the valid UTF-8 sequence at s[i], or 0 with `consumed` set to the maximal
// ill-formed subpart to replace with one U+FFFD (Unicode §3.9, what Python's
// decode('utf-8', 'replace') and WHATWG decoders do).
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& consumed) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) lo = 0xa0;  // overlong
    if (b0 == 0xed) hi = 0x9f;  // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) lo = 0x90;  // overlong
    if (b0 == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    consumed = 1;
    return 0;
  }
  std::size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) break;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80;
    const unsigned char h = k == 1 ? hi : 0xbf;
    if (b < l || b > h) break;
  }
  if (k == need + 1) return need + 1;
  consumed = k;
  return 0;
}

void append_json_string(std::string_view s, std::string& out) {
  constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    // Copy runs of plain ASCII at once: the common case.
    std::size_t j = i;
    while (j < s.size()) {
      const auto c = static_cast<unsigned char>(s[j]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++j;
    }
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t consumed = 0;
      const std::size_t len = utf8_sequence(s, i, consumed);
      if (len > 0) {
        out.append(s.data() + i, len);
        i += len;
      } else {
        append_replacement(out);
        i += consumed;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0x0f];
    }
    ++i;
  }
  out += '"';
}

template <class Number>
void append_number(Number x, std::string& out) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip for floats
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_padded(std::int64_t v, int width, std::string& out) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  const auto n = static_cast<int>(r.ptr - buf);
  if (n < width) out.append(static_cast<std::size_t>(width - n), '0');
  out.append(buf, static_cast<std::size_t>(n));
}

// RFC 3339 in UTC with trailing zeros of the fraction dropped, as Go's time.RFC3339Nano
// prints the time.Time that msgp's extension 5 carries (docs/triton.md §2).
void append_time(const Time& t, std::string& out) {
  // Normalise nanoseconds outside [0, 1e9) as Go's time.Unix does.
  std::int64_t secs = t.seconds;
  std::int64_t ns = t.nanoseconds;
  secs += ns / 1'000'000'000;
  ns %= 1'000'000'000;
  if (ns < 0) {
    ns += 1'000'000'000;
    secs -= 1;
  }
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  // civil_from_days (H. Hinnant): proleptic Gregorian date of a day count from 1970-01-01.
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y += 1;
  out += '"';
  if (y < 0) {
    out += '-';
    append_padded(-y, 4, out);
  } else {
    append_padded(y, 4, out);
  }
  out += '-';
  append_padded(m, 2, out);
  out += '-';
  append_padded(d, 2, out);
  out += 'T';
  append_padded(rem / 3600, 2, out);
  out += ':';
  append_padded(rem / 60 % 60, 2, out);
  out += ':';
  append_padded(rem % 60, 2, out);
  if (ns != 0) {
    char frac[10];
    std::int64_t v = ns;
    for (int i = 8; i >= 0; --i) {
      frac[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    std::size_t len = 9;
    while (frac[len - 1] == '0') --len;
    out += '.';
    out.append(frac, len);
  }
  out += "Z\"";
}

void append_base64(std::string_view bytes, std::string& out) {
  out += '"';
  base64_encode(bytes, out);
  out += '"';
}

void append_map(const Map& m, std::string& out) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : m) {
    if (!first) out += ',';
    first = false;
    append_json_string(k, out);
    out += ':';
    to_json(v, out);
  }
  out += '}';
}

}  // namespace

void to_json(const Value& value, std::string& out) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Nil>) {
          out += "null";
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t>) {
          append_number(x, out);
        } else if constexpr (std::is_same_v<T, Float32>) {
          // JSON has no NaN or infinities.
          if (std::isfinite(x.value)) append_number(x.value, out); else out += "null";
        } else if constexpr (std::is_same_v<T, double>) {
          if (std::isfinite(x)) append_number(x, out); else out += "null";
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_json_string(x, out);
        } else if constexpr (std::is_same_v<T, Binary>) {
          append_base64(x.bytes, out);
        } else if constexpr (std::is_same_v<T, Array>) {
          out += '[';
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (i > 0) out += ',';
            to_json(x[i], out);
          }
          out += ']';
        } else if constexpr (std::is_same_v<T, Map>) {
          append_map(x, out);
        } else if constexpr (std::is_same_v<T, Time>) {
          append_time(x, out);
        } else if constexpr (std::is_same_v<T, Extension>) {
          out += "{\"$ext\":";
          append_number(static_cast<int>(x.type), out);
          out += ",\"data\":";
          append_base64(x.bytes, out);
          out += '}';
        }
      },
      value.storage());
}

std::string to_json(const Map& record) {
  std::string out;
  out.reserve(64);
  append_map(record, out);
  return out;
}

}  // namespace kclpp::pipeline
