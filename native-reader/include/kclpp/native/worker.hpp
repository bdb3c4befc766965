#pragma once
// The native worker: reads every shard of a stream (or a fixed subset) and drives one
// RecordProcessor per shard through the KCL lifecycle, with checkpoints in a
// CheckpointStore. Parents are processed to SHARD_END before their children start.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/processor/record_processor.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::native {

// Makes the processor of one shard; called on the shard's thread.
using ProcessorFactory = std::function<std::unique_ptr<RecordProcessor>(const std::string& shard_id)>;

enum class EmptyBatches { Skip, Deliver };

struct WorkerOptions {
  std::string application;  // required: checkpoints are keyed by it
  // Where a shard without a checkpoint starts (LATEST, TRIM_HORIZON or AT_TIMESTAMP).
  StartPosition initial_position = StartPosition::latest();
  int max_records = 10'000;                                // per GetRecords, 1..10,000
  std::chrono::milliseconds idle_time_between_reads{1'000};  // when caught up
  EmptyBatches empty_batches = EmptyBatches::Skip;  // callProcessRecordsEvenForEmptyRecordList
  std::chrono::milliseconds shard_sync_interval{60'000};   // re-list shards
  // A fixed subset: indexes into the stream's shards sorted by id (py-triton style);
  // empty: every shard.
  std::vector<std::size_t> shard_indexes;
  // GetRecords / GetShardIterator / ListShards backoff (throttling, 5xx, network).
  RetryPolicy read_retry{};
  // How long shutdown_requested + lease_lost may take in total before the worker stops
  // waiting for processors (shutdownGraceMillis).
  std::chrono::milliseconds shutdown_grace{10'000};
  OnProcessorError on_processor_error = OnProcessorError::Fail;
};

// Owns its shard threads and joins them before run() returns; no detached threads.
// request_shutdown() and request_shard_sync() are thread-safe (call them from a signal
// handling thread); everything else is for one owning thread.
class Worker {
 public:
  Worker(StreamSource& source, CheckpointStore& store, ProcessorFactory factory,
         WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Claims the application on the store (StoreError if another worker holds it), then
  // processes until request_shutdown(): stop fetching, shutdown_requested (processors may
  // checkpoint), lease_lost, join. Returns normally after a clean shutdown; throws
  // ConfigError/StoreError/AuthError for failures that stop the whole worker.
  void run();
  void request_shutdown() noexcept;
  void request_shard_sync() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::native
