#include "kclpp/processor/retry.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "kclpp/processor/log.hpp"

namespace kclpp::detail {
namespace {

std::mt19937_64& prng() {
  // One generator per thread: no lock on the retry path, and threads do not draw the same
  // jitter (which would defeat its purpose of spreading retries out).
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return engine;
}

}  // namespace

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt, Retry kind) {
  using std::chrono::milliseconds;
  const auto initial = std::max<milliseconds::rep>(policy.initial_backoff.count(), 0);
  const auto cap = std::max<milliseconds::rep>(policy.max_backoff.count(), 0);
  // initial * 2^(attempt-1), capped, without overflowing for large attempt counts.
  milliseconds::rep d = initial;
  for (int i = 1; i < attempt && d < cap; ++i) d *= 2;
  d = std::min(d, cap);
  milliseconds::rep delay = d;
  if (d > 0) {
    std::uniform_int_distribution<milliseconds::rep> jitter(d / 2, d);
    delay = jitter(prng());
  }
  if (kind == Retry::Throttled) delay = std::max(delay, policy.throttle_floor.count());
  return milliseconds{delay};
}

void sleep_for(std::chrono::milliseconds delay) {
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
}

void log_retry(const Error& error, int attempt, const RetryPolicy& policy,
               std::chrono::milliseconds delay) {
  log_warn("retrying after ", error.kcl_name().empty() ? "error" : error.kcl_name(), ": ",
           error.what(), " (attempt ", attempt, "/", policy.max_attempts, " failed, next in ",
           delay.count(), " ms)");
}

}  // namespace kclpp::detail
