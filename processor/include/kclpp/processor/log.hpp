#pragma once
// The one logger of kclpp: to stderr by default (never stdout), to syslog(3), or to a user
// sink; lines as text (the default) or one JSON object each, with the calling thread's
// context fields (LogContext: the shard, a child's pid). docs/operations.md §3.
// Thread-safe. Level from KCLPP_LOG_LEVEL (debug|info|warn|error) or set_log_level; format
// from KCLPP_LOG_FORMAT (text|json) or set_log_format; both read once, at first use.

#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace kclpp {

enum class LogLevel { Debug, Info, Warn, Error };

enum class LogFormat {
  // "2024-05-01T12:00:00.123Z INFO [shardId-000000000001 child_pid=42] message"
  Text,
  // {"time":"2024-05-01T12:00:00.123Z","level":"INFO","message":"...","shard":"...",...}
  // Always valid JSON: control characters escaped, ill-formed UTF-8 replaced by U+FFFD.
  Json,
};

// Where the built-in sink writes (a user sink replaces it).
enum class LogOutput {
  Stderr,  // fd 2, one write() per line (under systemd that is the journal)
  // syslog(3): ident = the program's name ("kclpp" for the tool), LOG_PID, facility
  // LOG_DAEMON; the level becomes the priority (debug, info, warning, err).
  Syslog,
};

using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Replaces the sink; an empty function restores the built-in sink (stderr or syslog). A
// user sink gets the bare message; it may call log_fields() and format_log_line() (on the
// calling thread) for the context and the rendering the built-in sink would use.
void set_log_sink(LogSink sink);
void set_log_level(LogLevel level);
void set_log_format(LogFormat format);
[[nodiscard]] LogFormat log_format() noexcept;
// The built-in sink's destination. Switching to Syslog calls openlog(3) once.
void set_log_output(LogOutput output);
[[nodiscard]] LogOutput log_output() noexcept;
[[nodiscard]] bool log_enabled(LogLevel level) noexcept;
// Writes one record (the sink adds time, level and the context fields).
void log(LogLevel level, std::string_view message);

// "debug" / "DEBUG", "info", "warn" / "warning", "error" (either case); false otherwise.
[[nodiscard]] std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;
// "text" / "json" (either case); false otherwise.
[[nodiscard]] std::optional<LogFormat> parse_log_format(std::string_view text) noexcept;
// "stderr" / "syslog"; false otherwise.
[[nodiscard]] std::optional<LogOutput> parse_log_output(std::string_view text) noexcept;

// One context field: a string, or an integer (unquoted in JSON).
struct LogField {
  std::string key;
  std::string value;
  bool number = false;
  bool operator==(const LogField&) const = default;
};

// The calling thread's context fields, outermost first, each key once (the innermost).
[[nodiscard]] std::vector<LogField> log_fields();

// Adds a field to every record logged on this thread while it lives:
//   kclpp::LogContext shard{"shard", shard_id};
// Guards nest (outermost field first in a line); an inner guard with a key already set
// hides the outer value until it ends (the field keeps its place). Thread safety: a guard
// belongs to the thread that made it and must end on it, in reverse order of creation
// (which scopes give); hence neither copyable nor movable. Keys "time", "level" and "message" are reserved: such a
// field is written as "field_<key>".
class LogContext {
 public:
  LogContext(std::string_view key, std::string_view value);
  template <class Int>
    requires(std::is_integral_v<Int> && !std::is_same_v<Int, bool> && !std::is_same_v<Int, char>)
  LogContext(std::string_view key, Int value) : LogContext(key, std::to_string(value), Numeric{}) {}
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

 private:
  friend std::vector<LogField> log_fields();
  struct Numeric {};
  LogContext(std::string_view key, std::string value, Numeric);
  void push() noexcept;

  LogField field_;
  LogContext* outer_ = nullptr;
};

// How a line is rendered for a destination.
enum class LogLineFor {
  Stream,  // stderr: text lines start with the time and the level
  Syslog,  // syslog stamps time and priority itself: text lines start at the fields
};
// One record as the built-in sink writes it (no trailing newline): the current time, the
// calling thread's context fields, and `message` (newlines become spaces in text; JSON
// escapes them).
[[nodiscard]] std::string format_log_line(LogLevel level, std::string_view message, LogFormat format,
                                          LogLineFor target = LogLineFor::Stream);

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
