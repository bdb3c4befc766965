#pragma once
// Helpers shared by the unit tests of the native worker (worker_test.cpp, one worker
// against LocalStream; worker_lease_test.cpp, several workers sharing leases).
#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kclpp/native/local_stream.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::native::testing {

using namespace std::chrono_literals;

// 2^128 - 1, 2^126 and 2^127, for hash-key arithmetic in decimal.
inline const std::string max_hash_key = "340282366920938463463374607431768211455";
inline const std::string two_pow_126 = "85070591730234615865843651857942052864";
inline const std::string two_pow_127 = "170141183460469231731687303715884105728";

// Polls `predicate` every 5 ms until it holds or `timeout` passes; returns its last value.
template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 8s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

// Short timings so that each test takes a few seconds at most.
inline WorkerOptions test_options() {
  WorkerOptions options;
  options.application = "app";
  options.initial_position = aws::StartPosition::trim_horizon();
  options.idle_time_between_reads = 20ms;
  options.shard_sync_interval = 10s;
  options.read_retry.initial_backoff = 10ms;
  options.read_retry.max_backoff = 100ms;
  options.read_retry.throttle_floor = 20ms;
  options.shutdown_grace = 3s;
  return options;
}

// Puts `count` records "<prefix>-<i>" with partition keys "pk-<i>"; returns, per shard,
// the data in put order.
inline std::map<std::string, std::vector<std::string>> put_records(LocalStream& stream, const std::string& prefix,
                                                                   int count) {
  std::map<std::string, std::vector<std::string>> by_shard;
  for (int i = 0; i < count; ++i) {
    const std::string data = prefix + "-" + std::to_string(i);
    const auto result = stream.put(data, "pk-" + prefix + std::to_string(i));
    by_shard[result.shard_id].push_back(data);
  }
  return by_shard;
}

// Captures log lines for the duration of a test.
class LogCapture {
 public:
  LogCapture() {
    // The assertions read info and warn lines, whatever KCLPP_LOG_LEVEL says.
    for (const auto level : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn}) {
      if (log_enabled(level)) {
        previous_ = level;
        break;
      }
    }
    set_log_level(LogLevel::Info);
    set_log_sink([this](LogLevel level, std::string_view message) {
      const std::lock_guard lock(mutex_);
      lines_.emplace_back(std::string(level == LogLevel::Error ? "E " : "- ") + std::string(message));
    });
  }
  ~LogCapture() {
    set_log_sink({});
    set_log_level(previous_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  bool contains(const std::string& text) const {
    const std::lock_guard lock(mutex_);
    return std::any_of(lines_.begin(), lines_.end(),
                       [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }

 private:
  LogLevel previous_ = LogLevel::Error;
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

}  // namespace kclpp::native::testing
