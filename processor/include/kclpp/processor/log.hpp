#pragma once
// The one logger of kclpp: to stderr by default (never stdout), or to a user sink.
// Thread-safe. The level comes from KCLPP_LOG_LEVEL (debug|info|warn|error) or set_log_level.

#include <functional>
#include <sstream>
#include <string>
#include <string_view>

namespace kclpp {

enum class LogLevel { Debug, Info, Warn, Error };

using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Replaces the sink; an empty function restores the stderr sink.
void set_log_sink(LogSink sink);
void set_log_level(LogLevel level);
[[nodiscard]] bool log_enabled(LogLevel level) noexcept;
// Writes one line (the sink adds time and level).
void log(LogLevel level, std::string_view message);

// log(level, a, b, c...) with the arguments streamed together, built only when enabled.
template <class... Args>
void log_parts(LogLevel level, const Args&... args) {
  if (!log_enabled(level)) return;
  std::ostringstream out;
  (out << ... << args);
  log(level, out.str());
}
template <class... Args> void log_debug(const Args&... a) { log_parts(LogLevel::Debug, a...); }
template <class... Args> void log_info(const Args&... a) { log_parts(LogLevel::Info, a...); }
template <class... Args> void log_warn(const Args&... a) { log_parts(LogLevel::Warn, a...); }
template <class... Args> void log_error(const Args&... a) { log_parts(LogLevel::Error, a...); }

}  // namespace kclpp
