#pragma once
// java.util.Properties files, as the MultiLangDaemon reads them (docs/kcl-protocol.md §6):
// `key = value`, `key: value`, `key value`; `#`/`!` comments; a trailing backslash
// continues the line; backslash escapes (\t \n \r \f \uXXXX, and \x = x) in keys and
// values; read as ISO-8859-1 (each byte is one character, written back as UTF-8);
// quotes are not stripped.
#include <map>
#include <string>
#include <string_view>

namespace kclpp::app::detail {

struct Property {
  std::string value;
  int line = 0;  // where the key starts, 1-based, for error messages
};

// Later keys replace earlier ones, as in Java. Never throws for any input except a
// malformed \uXXXX escape, which Java rejects too: ConfigError naming `source` and line.
[[nodiscard]] std::map<std::string, Property> parse_properties(std::string_view text,
                                                               std::string_view source);

// Reads and parses a file; ConfigError naming the path when it cannot be read.
[[nodiscard]] std::map<std::string, Property> load_properties(const std::string& path);

}  // namespace kclpp::app::detail
