#include "properties.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "kclpp/internal/hex.hpp"
#include "kclpp/internal/utf8.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::app::detail {
namespace {

// Java's whitespace for Properties: space, tab, form feed.
bool is_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\f'; }

using kclpp::detail::append_utf8;

// One logical line (continuations joined, leading blanks of continuation lines dropped),
// with the number of its first physical line.
struct LogicalLine {
  std::string text;
  int line;
};

// Splits on \n, \r or \r\n; joins a line ending in an odd number of backslashes with the
// next one. Comment lines are dropped here: a comment never continues (Java).
std::vector<LogicalLine> logical_lines(std::string_view text) {
  std::vector<std::string_view> physical;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      physical.push_back(text.substr(pos));
      break;
    }
    physical.push_back(text.substr(pos, end - pos));
    pos = end + 1;
    if (text[end] == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
  }
  std::vector<LogicalLine> lines;
  bool continuing = false;
  for (std::size_t i = 0; i < physical.size(); ++i) {
    std::string_view line = physical[i];
    std::size_t first = 0;
    while (first < line.size() && is_blank(line[first])) ++first;
    line.remove_prefix(first);
    if (!continuing) {
      if (line.empty() || line.front() == '#' || line.front() == '!') continue;
      lines.push_back({std::string(), static_cast<int>(i + 1)});
    }
    std::size_t backslashes = 0;
    while (backslashes < line.size() && line[line.size() - 1 - backslashes] == '\\') ++backslashes;
    continuing = backslashes % 2 == 1;
    if (continuing) line.remove_suffix(1);
    lines.back().text.append(line);
  }
  return lines;
}

// Decodes escapes of a key or value. `raw` is ISO-8859-1: each byte is one code point.
std::string unescape(std::string_view raw, std::string_view source, int line) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c != '\\' || i + 1 == raw.size()) {
      if (c != '\\') append_utf8(out, c);
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case 't': out.push_back('\t'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 'f': out.push_back('\f'); break;
      case 'u': {
        unsigned code = 0;
        if (raw.size() - i - 1 < 4)
          throw ConfigError(std::string(source) + ":" + std::to_string(line) +
                            ": malformed \\uxxxx escape (needs 4 hex digits)");
        for (int k = 0; k < 4; ++k) {
          const char h = raw[++i];
          const int digit = kclpp::detail::hex_value(h);
          if (digit < 0)
            throw ConfigError(std::string(source) + ":" + std::to_string(line) +
                              ": malformed \\uxxxx escape ('" + std::string(1, h) +
                              "' is not a hex digit)");
          code = (code << 4) | static_cast<unsigned>(digit);
        }
        append_utf8(out, code);
        break;
      }
      default: append_utf8(out, static_cast<unsigned char>(e)); break;
    }
  }
  return out;
}

}  // namespace

std::map<std::string, Property> parse_properties(std::string_view text, std::string_view source) {
  std::map<std::string, Property> props;
  for (const LogicalLine& logical : logical_lines(text)) {
    const std::string_view s = logical.text;
    // The key ends at the first unescaped '=', ':' or blank.
    std::size_t key_end = 0;
    while (key_end < s.size()) {
      const char c = s[key_end];
      if (c == '\\') {
        key_end += 2;
        continue;
      }
      if (c == '=' || c == ':' || is_blank(c)) break;
      ++key_end;
    }
    key_end = std::min(key_end, s.size());
    std::size_t value_start = key_end;
    while (value_start < s.size() && is_blank(s[value_start])) ++value_start;
    if (value_start < s.size() && (s[value_start] == '=' || s[value_start] == ':')) {
      ++value_start;
      while (value_start < s.size() && is_blank(s[value_start])) ++value_start;
    }
    std::string key = unescape(s.substr(0, key_end), source, logical.line);
    props[std::move(key)] = Property{unescape(s.substr(value_start), source, logical.line),
                                     logical.line};
  }
  return props;
}

std::map<std::string, Property> load_properties(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError("cannot read properties file '" + path + "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_properties(text.str(), path);
}

}  // namespace kclpp::app::detail
