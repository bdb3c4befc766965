#include "kclpp/processor/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <utility>

namespace kclpp {
namespace {

LogLevel level_from_env() noexcept {
  const char* value = std::getenv("KCLPP_LOG_LEVEL");
  if (value == nullptr) return LogLevel::Info;
  const std::string_view v(value);
  if (v == "debug" || v == "DEBUG") return LogLevel::Debug;
  if (v == "warn" || v == "WARN" || v == "warning" || v == "WARNING") return LogLevel::Warn;
  if (v == "error" || v == "ERROR") return LogLevel::Error;
  return LogLevel::Info;
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

// The stderr sink. stdout belongs to the protocol writer (STYLE.md, "I/O discipline"), so
// this writes to fd 2 directly, one write() per line: lines from concurrent threads (and
// from other processes sharing the pipe, up to PIPE_BUF) then never interleave, which
// iostream or stdio buffering would not guarantee.
void stderr_sink(LogLevel level, std::string_view message) noexcept {
  try {
    const auto now = std::chrono::system_clock::now();
    const auto since_epoch = now.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const std::time_t t = static_cast<std::time_t>(seconds.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[40];
    const int stamp_len =
        std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec, static_cast<int>(millis));
    std::string line;
    line.reserve(static_cast<std::size_t>(stamp_len) + 7 + message.size());
    line.append(stamp, static_cast<std::size_t>(stamp_len > 0 ? stamp_len : 0));
    line.append(level_name(level));
    line.push_back(' ');
    const std::size_t body = line.size();
    line.append(message);
    // One record, one line: an exception text with a newline must not look like two lines.
    for (std::size_t i = body; i < line.size(); ++i) {
      if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    }
    line.push_back('\n');
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
  } catch (...) {
    // Out of memory while logging: drop the line rather than fail the caller.
  }
}

struct LoggerState {
  std::mutex mutex;
  LogSink sink;  // empty = stderr_sink
};

LoggerState& state() {
  static LoggerState s;
  return s;
}

// Read once, at first use; set_log_level overrides it.
std::atomic<LogLevel>& level_ref() noexcept {
  static std::atomic<LogLevel> level{level_from_env()};
  return level;
}

// A user sink that itself logs would deadlock on the mutex; inside a sink, log() goes
// straight to stderr instead.
thread_local bool in_sink = false;

}  // namespace

void set_log_sink(LogSink sink) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.sink = std::move(sink);
}

void set_log_level(LogLevel level) { level_ref().store(level, std::memory_order_relaxed); }

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) >= static_cast<int>(level_ref().load(std::memory_order_relaxed));
}

void log(LogLevel level, std::string_view message) {
  if (!log_enabled(level)) return;
  if (in_sink) {
    stderr_sink(level, message);
    return;
  }
  auto& s = state();
  // User sinks are called one at a time, so a sink needs no locking of its own.
  std::lock_guard lock(s.mutex);
  if (!s.sink) {
    stderr_sink(level, message);
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
