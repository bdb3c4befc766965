#include "fan_out_fetcher.hpp"

#include <algorithm>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "shard_consumer.hpp"
#include "shard_metrics.hpp"

namespace kclpp::native::detail {
namespace {

using SteadyClock = std::chrono::steady_clock;

// How often a waiting fetch() looks at the stop signal.
constexpr std::chrono::milliseconds stop_check_interval{100};
// As PollingFetcher's: a LATEST round that must subscribe again before its first event
// resumes AT_TIMESTAMP of its first subscription minus this margin (clock skew).
constexpr std::chrono::seconds latest_restart_margin{5};

// SubscribeToShard's ResourceNotFoundException names what is missing: the stream, the
// shard, or the consumer.
bool missing_consumer(const Error& e) {
  const auto* aws = dynamic_cast<const aws::AwsError*>(&e);
  if (aws == nullptr || aws->type() != "ResourceNotFoundException") return false;
  const std::string_view what = e.what();
  return what.find("onsumer") != std::string_view::npos &&
         what.find("onsumer", what.find(": ") + 2) != std::string_view::npos;
}

// A corrupt frame (a CRC mismatch: bytes damaged on the way) or event ends only this
// subscription: a new one resumes after the last event handed on, as after a dropped
// connection (the Java KCL's FanOutRecordsPublisher restarts from the last delivered record
// on any error). Thrown instead, it would end the round: the processor dropped and every
// record after its checkpoint delivered again. Repeated failures back off.
bool resubscribing_helps(const Error& e) { return dynamic_cast<const ProtocolError*>(&e) != nullptr; }

}  // namespace

FanOutFetcher::FanOutFetcher(StreamSource& source, std::string shard_id, const WorkerOptions& options,
                             StopSignal& stop, const ShardMetrics& metrics)
    : source_(source), shard_id_(std::move(shard_id)), options_(options), stop_(stop), metrics_(metrics) {}

FanOutFetcher::~FanOutFetcher() = default;

ReadStatus FanOutFetcher::start(const aws::StartPosition& start) {
  subscription_.reset();
  round_start_ = start;
  continuation_.reset();
  last_fetched_.reset();
  latest_opened_at_.reset();
  failures_ = 0;
  return stop_.requested() ? ReadStatus::Stopped : ReadStatus::Ok;
}

ReadStatus FanOutFetcher::fetch(aws::GetRecordsResult& out) {
  for (;;) {
    if (stop_.requested()) return ReadStatus::Stopped;
    if (!subscription_ && subscribe() == ReadStatus::Stopped) return ReadStatus::Stopped;
    try {
      const ReadStatus status = take(out);
      if (status != ReadStatus::Stopped || stop_.requested()) return status;
      // Stopped from take() without a stop: the subscription ended; subscribe again.
    } catch (const Error& e) {
      subscription_.reset();
      if (missing_consumer(e)) {
        // Not the shard that is gone (that would end it): the whole worker cannot read.
        throw ConfigError("shard " + shard_id_ + ": the enhanced fan-out consumer does not exist (deregistered, or a "
                          "wrong consumer ARN): " + e.what());
      }
      if (e.retry() == Retry::No && !resubscribing_helps(e)) throw;
      if (failed(e) == ReadStatus::Stopped) return ReadStatus::Stopped;
    }
  }
}

// Waits for the next event. Stopped means: a stop, or the subscription ended (then
// subscription_ is reset).
ReadStatus FanOutFetcher::take(aws::GetRecordsResult& out) {
  // The caller's record storage goes into the event to be reused, and back.
  event_.records.swap(out.records);
  aws::ShardSubscription::Status status = aws::ShardSubscription::Status::Timeout;
  try {
    while (!stop_.requested() &&
           (status = subscription_->next(event_, stop_check_interval)) == aws::ShardSubscription::Status::Timeout) {
    }
  } catch (...) {
    event_.records.swap(out.records);
    throw;
  }
  event_.records.swap(out.records);
  if (status == aws::ShardSubscription::Status::Timeout) return ReadStatus::Stopped;
  if (status == aws::ShardSubscription::Status::Ended) {
    log_debug("shard ", shard_id_, ": the service ended the subscription; subscribing again");
    subscription_.reset();
    return ReadStatus::Stopped;
  }
  failures_ = 0;
  out.millis_behind_latest = event_.millis_behind_latest;
  out.child_shards = std::move(event_.child_shards);
  event_.child_shards.clear();
  if (!out.records.empty()) last_fetched_ = out.records.back().sequence_number.str();
  if (event_.shard_end()) {
    subscription_.reset();
    out.next_shard_iterator.reset();
    return ReadStatus::ShardEnd;
  }
  continuation_ = std::move(event_.continuation_sequence_number);
  event_.continuation_sequence_number.clear();
  out.next_shard_iterator.emplace();
  return ReadStatus::Ok;
}

ReadStatus FanOutFetcher::subscribe() {
  if (last_subscribe_) {
    const auto next = *last_subscribe_ + min_subscribe_interval;
    const auto now = SteadyClock::now();
    if (now < next && stop_.wait_for(next - now)) return ReadStatus::Stopped;
  }
  const aws::StartPosition position = resume_position();
  if (position.type == aws::IteratorType::Latest && !latest_opened_at_) {
    latest_opened_at_ = std::chrono::system_clock::now();
  }
  last_subscribe_ = SteadyClock::now();
  metrics_.subscriptions.add();
  subscription_ = source_.subscribe(shard_id_, position);
  if (!subscription_) throw ConfigError("shard " + shard_id_ + ": the stream source has no fan-out");
  if (++subscriptions_ == 1 || continuation_ == std::nullopt) {
    log_info("shard ", shard_id_, ": subscribed (enhanced fan-out) from ", describe_position(position));
  } else {
    log_debug("shard ", shard_id_, ": subscribed again from ", describe_position(position));
  }
  return ReadStatus::Ok;
}

// After the continuation of the last event handed on: every event before it was handed on,
// and none after. Before the first event, where the round started.
aws::StartPosition FanOutFetcher::resume_position() const {
  if (continuation_) return aws::StartPosition::after(*continuation_);
  if (last_fetched_) return aws::StartPosition::after(*last_fetched_);
  if (round_start_.type == aws::IteratorType::Latest && latest_opened_at_) {
    return aws::StartPosition::at_timestamp(*latest_opened_at_ - latest_restart_margin);
  }
  return round_start_;
}

ReadStatus FanOutFetcher::failed(const Error& error) {
  ++failures_;
  metrics_.read_failed(error);
  const auto delay = std::max<std::chrono::milliseconds>(
      kclpp::detail::backoff_delay(options_.read_retry, failures_, error.retry()), min_subscribe_interval);
  // A dropped subscription now and then is normal (deployments of the service); only
  // repeated failures are worth a warning.
  if (failures_ <= 1) {
    log_info("shard ", shard_id_, ": subscription failed (", error.what(), "); subscribing again");
  } else {
    log_warn("shard ", shard_id_, ": subscription failed ", failures_, " times in a row (", error.what(),
             "); subscribing again in ", delay.count(), " ms");
  }
  return stop_.wait_for(delay) ? ReadStatus::Stopped : ReadStatus::Ok;
}

}  // namespace kclpp::native::detail
