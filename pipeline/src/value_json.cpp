// JSON rendering of Triton records for `kclpp cat` / `kclpp get` (one line per record).
#include <charconv>
#include <cmath>
#include <cstdint>

#include "kclpp/internal/json_string.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/base64.hpp"

namespace kclpp::pipeline {
namespace {

using kclpp::detail::append_json_string;
using kclpp::detail::JsonText;

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
    append_json_string<JsonText::Utf8>(out, k);
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
          append_json_string<JsonText::Utf8>(out, x);
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
