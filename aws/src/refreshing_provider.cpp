#include "refreshing_provider.hpp"

#include <algorithm>
#include <utility>

#include "iso8601.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::aws::detail {

RefreshingProvider::RefreshingProvider(std::string description, Fetch fetch, RefreshOptions options)
    : description_(std::move(description)), fetch_(std::move(fetch)), options_(options) {}

RefreshingProvider::Need RefreshingProvider::need(const Cached& c, Clock::time_point now) const {
  if (!c.ever_fetched || c.forced) return Need::Mandatory;
  if (!c.credentials.expiration) return Need::None;
  // Expired credentials are never handed out, whatever a failed refresh postponed.
  if (now >= c.mandatory_at || now >= *c.credentials.expiration) return Need::Mandatory;
  if (now >= c.advisory_at && now >= c.retry_after) return Need::Advisory;
  return Need::None;
}

Credentials RefreshingProvider::credentials() {
  Need n = Need::None;
  {
    std::lock_guard lock(mutex_);
    n = need(cached_, Clock::now());
    if (n == Need::None) return cached_.credentials;
  }
  if (n == Need::Advisory) {
    // Someone else is refreshing: go on with the credentials we have.
    std::unique_lock refresh_lock(refresh_mutex_, std::try_to_lock);
    if (!refresh_lock.owns_lock()) {
      std::lock_guard lock(mutex_);
      return cached_.credentials;
    }
    return refresh(n);
  }
  std::lock_guard refresh_lock(refresh_mutex_);
  return refresh(n);
}

Credentials RefreshingProvider::refresh(Need n) {
  {
    // Another caller refreshed while we waited for the refresh lock, or failed to and
    // postponed the next try while the current credentials are still valid: use those
    // (rather than every waiting caller trying again in turn).
    std::lock_guard lock(mutex_);
    if (need(cached_, Clock::now()) == Need::None) return cached_.credentials;
  }
  try {
    Credentials fresh = fetch_();
    const Clock::time_point now = Clock::now();
    std::lock_guard lock(mutex_);
    ++fetches_;
    cached_.credentials = std::move(fresh);
    cached_.ever_fetched = true;
    cached_.forced = false;
    cached_.retry_after = now;
    if (const auto& exp = cached_.credentials.expiration) {
      // Short lifetimes shrink the windows (a quarter and a half of the lifetime), so that
      // a 15-minute session is not refreshed on every use.
      const auto lifetime = std::max(Clock::duration::zero(), *exp - now);
      const auto mandatory = std::min<Clock::duration>(options_.mandatory_window, lifetime / 4);
      const auto advisory = std::min<Clock::duration>(options_.advisory_window, lifetime / 2);
      cached_.mandatory_at = *exp - mandatory;
      cached_.advisory_at = *exp - std::max(advisory, mandatory);
      log_debug("credentials from ", description_, " refreshed; they expire at ", format_iso8601(*exp));
    }
    return cached_.credentials;
  } catch (const Error& e) {
    const Clock::time_point now = Clock::now();
    std::lock_guard lock(mutex_);
    const bool usable = cached_.ever_fetched && !cached_.forced &&
                        (!cached_.credentials.expiration || now < *cached_.credentials.expiration);
    if (!usable) throw;
    // The old credentials still work: a warning, not an outage. Try again in a second
    // rather than on every call.
    cached_.retry_after = now + std::chrono::seconds(1);
    if (n == Need::Mandatory) cached_.mandatory_at = std::max(cached_.mandatory_at, cached_.retry_after);
    const std::string until =
        cached_.credentials.expiration ? format_iso8601(*cached_.credentials.expiration) : std::string("replaced");
    log_warn("refreshing credentials from ", description_, " failed (the current ones stay in use until ", until,
             "): ", e.what());
    return cached_.credentials;
  }
}

void RefreshingProvider::expire() noexcept {
  std::lock_guard lock(mutex_);
  cached_.forced = true;
}

int RefreshingProvider::fetches() const {
  std::lock_guard lock(mutex_);
  return fetches_;
}

}  // namespace kclpp::aws::detail
