#pragma once
// ISO 8601 times as AWS credential services send them ("2026-12-06T08:00:00Z",
// "2026-12-06T08:00:00.123Z", "2026-12-06T08:00:00+00:00").
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kclpp::aws::detail {

// nullopt when `text` is not such a time, or not between 1970 and 2200.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);
// "2026-12-06T08:00:00Z".
[[nodiscard]] std::string format_iso8601(std::chrono::system_clock::time_point t);

}  // namespace kclpp::aws::detail
