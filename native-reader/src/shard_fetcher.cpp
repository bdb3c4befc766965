#include "shard_fetcher.hpp"

#include <algorithm>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "fan_out_fetcher.hpp"
#include "shard_consumer.hpp"
#include "shard_metrics.hpp"

namespace kclpp::native::detail {
namespace {

using SteadyClock = std::chrono::steady_clock;

// After an expired iterator with no record read yet from a LATEST start, reading resumes
// AT_TIMESTAMP of the first iterator minus this margin: it covers clock skew between us
// and the service, trading a few possible duplicates for no loss.
constexpr std::chrono::seconds latest_restart_margin{5};

}  // namespace

std::string describe_position(const aws::StartPosition& position) {
  switch (position.type) {
    case aws::IteratorType::Latest:
      return "LATEST";
    case aws::IteratorType::TrimHorizon:
      return "TRIM_HORIZON";
    case aws::IteratorType::AtSequenceNumber:
      return "AT_SEQUENCE_NUMBER " + position.sequence_number;
    case aws::IteratorType::AfterSequenceNumber:
      return "AFTER_SEQUENCE_NUMBER " + position.sequence_number;
    case aws::IteratorType::AtTimestamp:
      return "AT_TIMESTAMP";
  }
  return "?";
}

namespace {

bool is_expired_iterator(const Error& e) {
  const auto* aws = dynamic_cast<const aws::AwsError*>(&e);
  return aws != nullptr && aws->type() == "ExpiredIteratorException";
}

}  // namespace

std::unique_ptr<RecordFetcher> make_fetcher(StreamSource& source, std::string shard_id, const WorkerOptions& options,
                                            StopSignal& stop, const ShardMetrics& metrics) {
  if (source.fan_out()) return std::make_unique<FanOutFetcher>(source, std::move(shard_id), options, stop, metrics);
  return std::make_unique<PollingFetcher>(source.connect(), std::move(shard_id), options, stop, metrics);
}

PollingFetcher::PollingFetcher(std::unique_ptr<StreamConnection> connection, std::string shard_id,
                               const WorkerOptions& options, StopSignal& stop, const ShardMetrics& metrics)
    : connection_(std::move(connection)),
      shard_id_(std::move(shard_id)),
      options_(options),
      stop_(stop),
      metrics_(metrics) {}

PollingFetcher::~PollingFetcher() = default;

ReadStatus PollingFetcher::start(const aws::StartPosition& start) {
  round_start_ = start;
  last_fetched_.reset();
  latest_opened_at_.reset();
  auto iterator = open_iterator(start);
  if (!iterator) return ReadStatus::Stopped;
  iterator_ = std::move(*iterator);
  log_info("shard ", shard_id_, ": reading from ", describe_position(start));
  return ReadStatus::Ok;
}

ReadStatus PollingFetcher::fetch(aws::GetRecordsResult& out) {
  int expirations = 0;
  for (;;) {
    try {
      const ReadStatus status = kclpp::retry(options_.read_retry, [&] {
        if (stop_.requested() || pace() == ReadStatus::Stopped) return ReadStatus::Stopped;
        metrics_.get_records.add();
        try {
          connection_->get_records_into(iterator_, options_.max_records, out);
        } catch (const Error& e) {
          metrics_.read_failed(e);
          throw;
        }
        return ReadStatus::Ok;
      });
      if (status == ReadStatus::Stopped) return status;
      break;
    } catch (const Error& e) {
      if (is_expired_iterator(e)) {
        // Never fatal: a new iterator right after what the processor was handed.
        if (renew_iterator(++expirations) == ReadStatus::Stopped) return ReadStatus::Stopped;
        continue;
      }
      if (e.retry() == Retry::No) throw;
      // Throttled or unreachable through every attempt: keep the processor and the
      // iterator (an expiry is handled above), wait, and try again.
      log_warn("shard ", shard_id_, ": GetRecords keeps failing (", e.what(), "); waiting ",
               options_.read_retry.max_backoff.count(), " ms");
      if (wait_after_failures() == ReadStatus::Stopped) return ReadStatus::Stopped;
    }
  }
  if (!out.records.empty()) last_fetched_ = out.records.back().sequence_number.str();
  if (!out.next_shard_iterator) return ReadStatus::ShardEnd;
  iterator_ = std::move(*out.next_shard_iterator);
  return ReadStatus::Ok;
}

std::optional<std::string> PollingFetcher::open_iterator(const aws::StartPosition& position) {
  if (position.type == aws::IteratorType::Latest) latest_opened_at_ = std::chrono::system_clock::now();
  log_debug("shard ", shard_id_, ": GetShardIterator ", describe_position(position));
  return kclpp::retry(options_.read_retry, [&]() -> std::optional<std::string> {
    if (stop_.requested()) return std::nullopt;
    return connection_->get_shard_iterator(shard_id_, position);
  });
}

// Retryable failures keep this processor and its position: giving up would restart the
// shard from its checkpoint and deliver again what it was handed.
ReadStatus PollingFetcher::renew_iterator(int expirations) {
  const aws::StartPosition position = restart_position();
  metrics_.iterator_renewals.add();
  log_info("shard ", shard_id_, ": shard iterator expired; re-creating it at ", describe_position(position));
  if (expirations > 1) {
    const auto delay = kclpp::detail::backoff_delay(options_.read_retry, expirations - 1, Retry::Yes);
    if (stop_.wait_for(delay)) return ReadStatus::Stopped;
  }
  for (;;) {
    try {
      auto iterator = open_iterator(position);
      if (!iterator) return ReadStatus::Stopped;
      iterator_ = std::move(*iterator);
      return ReadStatus::Ok;
    } catch (const Error& open_error) {
      if (open_error.retry() == Retry::No) throw;
      log_warn("shard ", shard_id_, ": re-creating the shard iterator keeps failing (", open_error.what(),
               "); waiting ", options_.read_retry.max_backoff.count(), " ms");
      if (wait_after_failures() == ReadStatus::Stopped) return ReadStatus::Stopped;
    }
  }
}

// Where a replacement for an expired iterator starts: after the last record read (all of
// which were handed to the processor), else where this round started.
aws::StartPosition PollingFetcher::restart_position() const {
  if (last_fetched_) return aws::StartPosition::after(*last_fetched_);
  if (round_start_.type == aws::IteratorType::Latest && latest_opened_at_) {
    return aws::StartPosition::at_timestamp(*latest_opened_at_ - latest_restart_margin);
  }
  return round_start_;
}

// At most 5 GetRecords calls per second per shard, the service's limit.
ReadStatus PollingFetcher::pace() {
  if (last_get_records_) {
    const auto next = *last_get_records_ + min_get_records_interval;
    const auto now = SteadyClock::now();
    if (now < next && stop_.wait_for(next - now)) return ReadStatus::Stopped;
  }
  last_get_records_ = SteadyClock::now();
  return ReadStatus::Ok;
}

ReadStatus PollingFetcher::wait_after_failures() {
  const auto delay = std::max<std::chrono::milliseconds>(options_.read_retry.max_backoff, min_get_records_interval);
  return stop_.wait_for(delay) ? ReadStatus::Stopped : ReadStatus::Ok;
}

}  // namespace kclpp::native::detail
