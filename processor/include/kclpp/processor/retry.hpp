#pragma once
// The one retry helper of kclpp: exponential backoff with full jitter and a floor for
// throttling. Retries only kclpp::Error whose retry() is not Retry::No.

#include <chrono>
#include <type_traits>
#include <utility>

#include "kclpp/processor/error.hpp"

namespace kclpp {

// Bounded retry with backoff. max_attempts counts the first call (1 = no retry).
struct RetryPolicy {
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5'000};
  // Throttled errors wait at least this long.
  std::chrono::milliseconds throttle_floor{1'000};

  [[nodiscard]] static RetryPolicy none() { return RetryPolicy{1, {}, {}, {}}; }
};

namespace detail {
// Delay before attempt `attempt + 1` (attempt >= 1) for an error of kind `kind`:
// a random value in [d/2, d] with d = min(max_backoff, initial_backoff * 2^(attempt-1)),
// raised to throttle_floor for Retry::Throttled.
[[nodiscard]] std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                                      Retry kind);
void sleep_for(std::chrono::milliseconds delay);
void log_retry(const Error& error, int attempt, const RetryPolicy& policy,
               std::chrono::milliseconds delay);
}  // namespace detail

// Calls fn() until it returns, retrying a kclpp::Error with retry() != Retry::No up to
// policy.max_attempts calls in all. Rethrows the last error; other exceptions pass through.
template <class Fn>
auto retry(const RetryPolicy& policy, Fn&& fn) -> std::invoke_result_t<Fn&> {
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const Error& error) {
      if (error.retry() == Retry::No || attempt >= policy.max_attempts) throw;
      const auto delay = detail::backoff_delay(policy, attempt, error.retry());
      detail::log_retry(error, attempt, policy, delay);
      detail::sleep_for(delay);
    }
  }
}

}  // namespace kclpp
