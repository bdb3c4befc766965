// The logger (docs/operations.md §3): one record = one line, rendered as text or JSON with
// the calling thread's LogContext fields, written by the built-in sink (stderr or
// syslog) or handed to a user sink.

#include "kclpp/processor/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <utility>

#include "kclpp/internal/json_string.hpp"

namespace kclpp {
namespace {

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

LogLevel level_from_env() noexcept {
  const char* value = std::getenv("KCLPP_LOG_LEVEL");
  return value == nullptr ? LogLevel::Info : parse_log_level(value).value_or(LogLevel::Info);
}

LogFormat format_from_env() noexcept {
  const char* value = std::getenv("KCLPP_LOG_FORMAT");
  return value == nullptr ? LogFormat::Text : parse_log_format(value).value_or(LogFormat::Text);
}

std::string_view level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug: return "DEBUG";
    case LogLevel::Info: return "INFO";
    case LogLevel::Warn: return "WARN";
    case LogLevel::Error: return "ERROR";
  }
  return "INFO";
}

int syslog_priority(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug: return LOG_DEBUG;
    case LogLevel::Info: return LOG_INFO;
    case LogLevel::Warn: return LOG_WARNING;
    case LogLevel::Error: return LOG_ERR;
  }
  return LOG_INFO;
}

// RFC 3339, UTC, milliseconds: "2024-05-01T12:00:00.123Z".
void append_time(std::string& out) {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  const auto t = static_cast<std::time_t>(seconds.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[40];
  const int n = std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(millis));
  out.append(stamp, static_cast<std::size_t>(n > 0 ? n : 0));
}

// --- context fields ------------------------------------------------------------------------

// The innermost guard of this thread; each guard links to the one it hides.
thread_local LogContext* innermost = nullptr;

std::string field_key(std::string_view key) {
  if (key.empty() || key == "time" || key == "level" || key == "message") return "field_" + std::string(key);
  return std::string(key);
}

// One record, one line: a newline in a text message or value must not look like two
// lines (and a NUL would end a syslog message early).
void append_one_line(std::string& out, std::string_view text) {
  const std::size_t from = out.size();
  out.append(text);
  for (std::size_t i = from; i < out.size(); ++i) {
    if (out[i] == '\n' || out[i] == '\r' || out[i] == '\0') out[i] = ' ';
  }
}

// "[shardId-000000000001 child_pid=42] ": the shard is what an operator reads first and
// is already self-describing, so it goes bare; other fields as key=value.
void append_text_fields(std::string& out, const std::vector<LogField>& fields) {
  if (fields.empty()) return;
  out.push_back('[');
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(' ');
    if (fields[i].key != "shard") {
      out.append(fields[i].key);
      out.push_back('=');
    }
    append_one_line(out, fields[i].value);
  }
  out.append("] ");
}

void append_json_fields(std::string& out, const std::vector<LogField>& fields) {
  for (const LogField& f : fields) {
    out.push_back(',');
    detail::append_json_string<detail::JsonText::Utf8>(out, f.key);
    out.push_back(':');
    if (f.number) {
      out.append(f.value);
    } else {
      detail::append_json_string<detail::JsonText::Utf8>(out, f.value);
    }
  }
}

// --- sinks ---------------------------------------------------------------------------------

void write_stderr(const std::string& line) noexcept {
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t written = ::write(STDERR_FILENO, p, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report a failing stderr
    }
    p += written;
    left -= static_cast<std::size_t>(written);
  }
}

struct LoggerState {
  std::mutex mutex;
  LogSink sink;  // empty = the built-in sink
  bool syslog_open = false;
};

LoggerState& state() {
  static LoggerState s;
  return s;
}

// Read once, at first use; the setters override them.
std::atomic<LogLevel>& level_ref() noexcept {
  static std::atomic<LogLevel> level{level_from_env()};
  return level;
}
std::atomic<LogFormat>& format_ref() noexcept {
  static std::atomic<LogFormat> format{format_from_env()};
  return format;
}
std::atomic<LogOutput> output{LogOutput::Stderr};

// The built-in sink. stdout belongs to the protocol writer (STYLE.md, "I/O discipline"),
// so lines go to fd 2 directly, one write() per line: lines from concurrent threads (and
// from other processes sharing the pipe, up to PIPE_BUF) then never interleave, which
// iostream or stdio buffering would not guarantee.
void builtin_sink(LogLevel level, std::string_view message) noexcept {
  try {
    const LogFormat format = format_ref().load(std::memory_order_relaxed);
    if (output.load(std::memory_order_relaxed) == LogOutput::Syslog) {
      const std::string line = format_log_line(level, message, format, LogLineFor::Syslog);
      ::syslog(syslog_priority(level), "%s", line.c_str());
      return;
    }
    std::string line = format_log_line(level, message, format, LogLineFor::Stream);
    line.push_back('\n');
    write_stderr(line);
  } catch (...) {
    // Out of memory while logging: drop the line rather than fail the caller.
  }
}

// A user sink that itself logs would deadlock on the mutex; inside a sink, log() goes
// straight to the built-in sink instead.
thread_local bool in_sink = false;

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
  if (equals_ignoring_case(text, "debug")) return LogLevel::Debug;
  if (equals_ignoring_case(text, "info")) return LogLevel::Info;
  if (equals_ignoring_case(text, "warn") || equals_ignoring_case(text, "warning")) return LogLevel::Warn;
  if (equals_ignoring_case(text, "error")) return LogLevel::Error;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view text) noexcept {
  if (equals_ignoring_case(text, "text")) return LogFormat::Text;
  if (equals_ignoring_case(text, "json")) return LogFormat::Json;
  return std::nullopt;
}

std::optional<LogOutput> parse_log_output(std::string_view text) noexcept {
  if (text == "stderr") return LogOutput::Stderr;
  if (text == "syslog") return LogOutput::Syslog;
  return std::nullopt;
}

LogContext::LogContext(std::string_view key, std::string_view value)
    : field_{field_key(key), std::string(value), false} {
  push();
}

LogContext::LogContext(std::string_view key, std::string value, Numeric)
    : field_{field_key(key), std::move(value), true} {
  push();
}

void LogContext::push() noexcept {
  outer_ = innermost;
  innermost = this;
}

LogContext::~LogContext() { innermost = outer_; }

std::vector<LogField> log_fields() {
  std::vector<const LogField*> chain;  // innermost first
  for (const LogContext* c = innermost; c != nullptr; c = c->outer_) chain.push_back(&c->field_);
  // Outermost first; a key keeps the place where it was first set and takes the innermost
  // value (a nested "shard" replaces the value, it does not move the field).
  std::vector<LogField> fields;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    bool replaced = false;
    for (LogField& f : fields) {
      if (f.key == (*it)->key) {
        f = **it;
        replaced = true;
      }
    }
    if (!replaced) fields.push_back(**it);
  }
  return fields;
}

std::string format_log_line(LogLevel level, std::string_view message, LogFormat format, LogLineFor target) {
  const std::vector<LogField> fields = innermost != nullptr ? log_fields() : std::vector<LogField>{};
  std::string line;
  line.reserve(message.size() + 64);
  if (format == LogFormat::Json) {
    line.append(R"({"time":")");
    append_time(line);
    line.append(R"(","level":")");
    line.append(level_name(level));
    line.append(R"(","message":)");
    detail::append_json_string<detail::JsonText::Utf8>(line, message);
    append_json_fields(line, fields);
    line.push_back('}');
    return line;
  }
  if (target == LogLineFor::Stream) {
    append_time(line);
    line.push_back(' ');
    line.append(level_name(level));
    line.push_back(' ');
  }
  append_text_fields(line, fields);
  append_one_line(line, message);
  return line;
}

void set_log_sink(LogSink sink) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.sink = std::move(sink);
}

void set_log_level(LogLevel level) { level_ref().store(level, std::memory_order_relaxed); }

void set_log_format(LogFormat format) { format_ref().store(format, std::memory_order_relaxed); }

LogFormat log_format() noexcept { return format_ref().load(std::memory_order_relaxed); }

void set_log_output(LogOutput to) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (to == LogOutput::Syslog && !s.syslog_open) {
    // A null ident is the program's name (glibc: program_invocation_short_name), so a
    // user's processor built on kclpp::main is not logged as "kclpp".
    ::openlog(nullptr, LOG_PID, LOG_DAEMON);
    s.syslog_open = true;
  }
  output.store(to, std::memory_order_relaxed);
}

LogOutput log_output() noexcept { return output.load(std::memory_order_relaxed); }

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) >= static_cast<int>(level_ref().load(std::memory_order_relaxed));
}

void log(LogLevel level, std::string_view message) {
  if (!log_enabled(level)) return;
  if (in_sink) {
    builtin_sink(level, message);
    return;
  }
  auto& s = state();
  // User sinks are called one at a time, so a sink needs no locking of its own; the
  // built-in sink writes each line whole under the same lock.
  std::lock_guard lock(s.mutex);
  if (!s.sink) {
    builtin_sink(level, message);
    return;
  }
  in_sink = true;
  try {
    s.sink(level, message);
  } catch (...) {
    // Logging is called from error paths and catch blocks; a failing user sink must not
    // replace the error being reported.
  }
  in_sink = false;
}

}  // namespace kclpp
