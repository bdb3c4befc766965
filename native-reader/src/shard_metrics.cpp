#include "shard_metrics.hpp"

namespace kclpp::native::detail {
namespace {

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Counter processor_restarts_counter(MetricsRegistry& registry, const MetricLabels& labels) {
  return registry.counter("kclpp_processor_restarts_total",
                          "Shard restarts from the checkpoint with a new processor after a failure", labels);
}

WorkerMetrics::WorkerMetrics(MetricsRegistry& registry, const MetricLabels& labels)
    : leases_held(registry.gauge("kclpp_leases_held", "Leases (shards) this worker holds now", labels)),
      leases_taken(registry.counter("kclpp_leases_taken_total",
                                    "Leases this worker took (free, expired or stolen ones)", labels)),
      leases_lost(registry.counter("kclpp_leases_lost_total",
                                   "Leases this worker lost to another worker or could not renew", labels)),
      leases_stolen(registry.counter("kclpp_leases_stolen_total",
                                     "Leases this worker took from another live worker to balance the load",
                                     labels)),
      processor_restarts(processor_restarts_counter(registry, labels)) {}

ShardMetrics::ShardMetrics(MetricsRegistry& registry, const std::string& shard_id, const MetricLabels& worker)
    : processor_restarts(processor_restarts_counter(registry, worker)),
      last_checkpoint(std::make_shared<std::atomic<std::int64_t>>(steady_now_ns())) {
  const MetricLabels labels{{"shard", shard_id}};
  records = registry.counter("kclpp_records_processed_total",
                             "User records handed to the processor (after KPL de-aggregation)", labels);
  bytes = registry.counter("kclpp_bytes_processed_total", "Data bytes of the records handed to the processor",
                           labels);
  millis_behind_latest = registry.gauge(
      "kclpp_millis_behind_latest", "How far the last read is behind the tip of the shard (ms), as the service says",
      labels);
  process_seconds =
      registry.histogram("kclpp_process_records_seconds", "Time spent in the processor's process_records", labels);
  get_records = registry.counter("kclpp_get_records_calls_total", "GetRecords calls made (polling)", labels);
  subscriptions = registry.counter("kclpp_subscriptions_total", "SubscribeToShard subscriptions (fan-out)", labels);
  read_retries = registry.counter("kclpp_read_retries_total",
                                  "Read calls that failed and are retried (throttling included)", labels);
  read_throttles =
      registry.counter("kclpp_read_throttles_total", "Read calls the service throttled", labels);
  iterator_renewals = registry.counter("kclpp_iterator_renewals_total",
                                       "Expired shard iterators re-created after the last record read", labels);
  registry.gauge_function("kclpp_checkpoint_age_seconds",
                          "Seconds since the shard's last checkpoint (since its consumer started, before one)",
                          labels, [last = last_checkpoint] {
                            return static_cast<double>(steady_now_ns() - last->load(std::memory_order_relaxed)) /
                                   1e9;
                          });
}

void ShardMetrics::checkpointed() const noexcept {
  if (last_checkpoint) last_checkpoint->store(steady_now_ns(), std::memory_order_relaxed);
}

}  // namespace kclpp::native::detail
