#include "iso8601.hpp"

#include <charconv>
#include <ctime>

namespace kclpp::aws::detail {

namespace {

bool number(std::string_view s, std::size_t pos, std::size_t len, int& out) {
  if (pos + len > s.size()) return false;
  for (std::size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return std::from_chars(s.data() + pos, s.data() + pos + len, out).ec == std::errc{};
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s) {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!number(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !number(s, 5, 2, month) || s[7] != '-' ||
      !number(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !number(s, 11, 2, hour) ||
      s[13] != ':' || !number(s, 14, 2, minute) || s[16] != ':' || !number(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {  // fractional seconds: ignored
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  }
  int offset_minutes = 0;
  const std::string_view zone = s.substr(i);
  if (zone == "Z" || zone == "z" || zone.empty()) {
    offset_minutes = 0;
  } else if ((zone[0] == '+' || zone[0] == '-') && zone.size() == 6 && zone[3] == ':') {
    int oh = 0;
    int om = 0;
    if (!number(zone, 1, 2, oh) || !number(zone, 4, 2, om)) return std::nullopt;
    offset_minutes = (oh * 60 + om) * (zone[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = ::timegm(&tm);
  // system_clock counts nanoseconds in 64 bits: it ends in 2262. Times past 2200 (or before
  // 1970) are no credential expiry (found by the aws_replies fuzz target).
  if (year < 1970 || year > 2200 || t < 0) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t) - std::chrono::minutes(offset_minutes);
}

std::string format_iso8601(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {buf, n};
}

}  // namespace kclpp::aws::detail
