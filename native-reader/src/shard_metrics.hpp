#pragma once
// The metrics of one shard and of the worker (docs/operations.md §1): handles registered
// once when a shard's consumer starts, updated on the shard's thread with relaxed atomics
// (no lock, no allocation on the hot path), removed by the worker when it stops holding
// the shard (MetricsRegistry::remove("shard", id)).
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/metrics.hpp"
#include "worker_checkpointer.hpp"

namespace kclpp::native::detail {

// Labels of the per-worker series: one worker per process in every kclpp command, so two
// labels cost nothing and tell several processes' series apart on one dashboard.
[[nodiscard]] inline MetricLabels worker_labels(const std::string& application, const std::string& stream) {
  return {{"application", application}, {"stream", stream}};
}

// kclpp_processor_restarts_total of the worker with `labels` (worker_labels).
[[nodiscard]] Counter processor_restarts_counter(MetricsRegistry& registry, const MetricLabels& labels);

// The worker's own series (leases and restarts). Thread-safe handles.
struct WorkerMetrics {
  WorkerMetrics() = default;
  WorkerMetrics(MetricsRegistry& registry, const MetricLabels& labels);
  Gauge leases_held;
  Counter leases_taken, leases_lost, leases_stolen;
  Counter processor_restarts;
};

// A shard's series. Default-constructed: every update does nothing (tests of the fetchers).
struct ShardMetrics {
  ShardMetrics() = default;
  // `worker` labels the worker's series this shard also updates (processor restarts).
  ShardMetrics(MetricsRegistry& registry, const std::string& shard_id, const MetricLabels& worker);

  // A failed read call (GetRecords, GetShardIterator, SubscribeToShard): counted as
  // retried when it will be tried again, and as throttled when the service said so.
  void read_failed(const Error& e) const noexcept {
    if (e.retry() == Retry::No) return;
    read_retries.add();
    if (e.retry() == Retry::Throttled) read_throttles.add();
  }
  // A successful save of the shard's checkpoint: its age starts again from 0.
  void checkpointed() const noexcept;

  Counter records, bytes;
  Gauge millis_behind_latest;
  Histogram process_seconds;
  Counter get_records, subscriptions, read_retries, read_throttles, iterator_renewals;
  Counter processor_restarts;  // the worker's (not labelled by shard)
  // Steady-clock nanoseconds of the last checkpoint (else of the consumer's start), read
  // by the age gauge function: shared with it, so that it outlives this struct.
  std::shared_ptr<std::atomic<std::int64_t>> last_checkpoint;
};

// Stamps the checkpoint time on every successful save, in front of the real
// ShardCheckpoints (store row or lease). Not thread-safe, as what it wraps.
class MeteredCheckpoints final : public ShardCheckpoints {
 public:
  MeteredCheckpoints(std::unique_ptr<ShardCheckpoints> inner, const ShardMetrics& metrics)
      : inner_(std::move(inner)), metrics_(metrics) {}
  const std::string& shard_id() const noexcept override { return inner_->shard_id(); }
  std::optional<ExtendedSequenceNumber> load() override { return inner_->load(); }
  void save(const ExtendedSequenceNumber& position) override {
    inner_->save(position);
    metrics_.checkpointed();
  }
  bool held() const override { return inner_->held(); }

 private:
  std::unique_ptr<ShardCheckpoints> inner_;
  const ShardMetrics& metrics_;
};

}  // namespace kclpp::native::detail
