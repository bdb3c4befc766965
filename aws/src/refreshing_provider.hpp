#pragma once
// A provider of temporary credentials that fetches them again before they expire, with
// botocore's advisory and mandatory windows (credentials.hpp, RefreshOptions).
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "kclpp/aws/credentials.hpp"

namespace kclpp::aws::detail {

// Thread safety: credentials() and expire() may be called from any thread. One fetch runs
// at a time (under refresh_mutex_); readers of a valid cached value never wait for it,
// except inside the mandatory window or with nothing cached.
class RefreshingProvider final : public CredentialsProvider {
 public:
  using Fetch = std::function<Credentials()>;
  RefreshingProvider(std::string description, Fetch fetch, RefreshOptions options);

  [[nodiscard]] Credentials credentials() override;
  void expire() noexcept override;
  [[nodiscard]] std::string describe() const override { return description_; }

  // Fetches made so far (tests).
  [[nodiscard]] int fetches() const;

 private:
  using Clock = std::chrono::system_clock;
  struct Cached {
    Credentials credentials;
    Clock::time_point advisory_at;   // refresh from here on, one caller at a time
    Clock::time_point mandatory_at;  // every caller waits for a refresh from here on
    Clock::time_point retry_after;   // after a failed refresh, not before this
    bool forced = false;             // expire() was called
    bool ever_fetched = false;
  };
  enum class Need { None, Advisory, Mandatory };
  [[nodiscard]] Need need(const Cached& c, Clock::time_point now) const;
  // Fetches under refresh_mutex_ (held by the caller) unless the cache no longer needs it;
  // returns what callers should use.
  Credentials refresh(Need need);

  std::string description_;
  Fetch fetch_;
  RefreshOptions options_;
  mutable std::mutex mutex_;  // guards cached_, fetches_
  Cached cached_;
  int fetches_ = 0;
  std::mutex refresh_mutex_;  // one fetch at a time
};

}  // namespace kclpp::aws::detail
