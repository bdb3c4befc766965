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
#include "kclpp/processor/metrics.hpp"
#include "kclpp/processor/record_processor.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::native {

// Makes the processor of one shard; called on the shard's thread, so possibly from several
// threads at once (each shard has its own), and again after a failure (OnProcessorError).
using ProcessorFactory = std::function<std::unique_ptr<RecordProcessor>(const std::string& shard_id)>;

enum class EmptyBatches { Skip, Deliver };

// What the watchdog does with a processor call that runs past WorkerOptions::processor_timeout
// (docs/operations.md §2). Either way the call is logged, counted and makes the worker not
// ready while it lasts.
//  Restart: the processor's interrupt() is called (from the watchdog's thread); when the call
//    returns, however it returns, the processor is dropped without a checkpoint (its
//    lease_lost()) and the shard restarts from its checkpoint with a new processor, as for
//    OnProcessorError::Fail. A processor without interrupt() keeps running until it returns.
//  Log: nothing else; the call goes on and its result counts as usual.
enum class OnProcessorTimeout { Restart, Log };

// How workers share an application's shards through the store's leases (lease_table.hpp;
// the algorithm: docs/checkpoints.md §5). Used when the store has leases
// (CheckpointStore::leases); a store without them runs one worker, held by its claim.
struct LeaseOptions {
  // This worker's id in the table (workerIdentifier). Empty: host name, pid and a random
  // suffix. Unique per live worker: two live workers with one id would both own its leases.
  // A worker restarted with the same id takes its old leases back at once instead of after
  // the failover time.
  std::string worker_id;
  // failoverTimeMillis: a lease whose counter has not moved for this long (on this host's
  // monotonic clock) is expired and may be taken; a worker that could not renew its leases
  // for this long stops processing them before anyone can take them.
  std::chrono::milliseconds failover_time{10'000};
  // How often held leases are renewed. 0: failover_time / 3.
  std::chrono::milliseconds renew_interval{0};
  // How often the table is scanned to take expired, free and stolen leases. 0: the failover
  // time (the Java KCL scans every twice the failover time; once per failover time keeps a
  // dead worker's shards within failover + take interval of its death, for a scan of the
  // table per worker every 10 s by default: a small share of the renewals' requests).
  // Leases that look abandoned are also checked the moment they would expire.
  std::chrono::milliseconds take_interval{0};
  // maxLeasesForWorker: at most this many leases held at once. 0: no limit.
  int max_leases = 0;
  // maxLeasesToStealAtOneTime: leases taken from the most loaded worker per take round.
  int max_leases_to_steal = 1;
  // cleanupLeasesUponShardCompletion: delete a shard's lease once it is at SHARD_END and
  // every child has a lease with a checkpoint past its start.
  bool cleanup_leases_upon_shard_completion = false;
};

struct WorkerOptions {
  std::string application;  // required: checkpoints are keyed by it
  // Where a shard without a checkpoint starts (LATEST, TRIM_HORIZON or AT_TIMESTAMP).
  // Exceptions, as in the KCL: a child of a shard this application read to its end starts
  // at TRIM_HORIZON (its first record); with LATEST, closed shards without a checkpoint
  // are skipped (they have nothing after LATEST).
  aws::StartPosition initial_position = aws::StartPosition::latest();
  int max_records = 10'000;                                // per GetRecords, 1..10,000
  std::chrono::milliseconds idle_time_between_reads{1'000};  // when caught up
  EmptyBatches empty_batches = EmptyBatches::Skip;  // callProcessRecordsEvenForEmptyRecordList
  std::chrono::milliseconds shard_sync_interval{60'000};   // re-list shards
  // A fixed subset: indexes into the stream's shards sorted by id (py-triton style), open
  // and closed alike, as listed when run() starts; an index out of range is a ConfigError.
  // Resharding is followed: a shard whose parent_shard_id is in the subset joins it (for a
  // merge, the worker holding the first parent takes the child). Parents outside the
  // subset are not waited for: they belong to another worker (with its own application
  // name or store, since one application on one store is claimed by one worker).
  // Empty: every shard.
  std::vector<std::size_t> shard_indexes;
  // GetRecords / GetShardIterator / ListShards / store reads backoff (throttling, 5xx,
  // network). Also paces the restarts of a failed shard (see on_processor_error).
  RetryPolicy read_retry{};
  // How long shutdown_requested + lease_lost may take in total before the worker stops
  // waiting for processors (shutdownGraceMillis). After it, run() logs an error naming the
  // shards still busy and keeps waiting for them: a thread running user code cannot be
  // abandoned safely, so a processor that never returns blocks run().
  std::chrono::milliseconds shutdown_grace{10'000};
  // A processor that throws (initialize, process_records, shard_ended):
  //  Fail: the processor gets lease_lost() and is dropped without any checkpoint by the
  //    worker; after a backoff (read_retry's, growing while rounds keep failing with no
  //    progress, at least 200 ms) the shard restarts from its last checkpoint with a new
  //    processor from the factory. Nothing is lost; records after the checkpoint come again.
  //  LogAndContinue: log and go on; the batch counts as delivered (a later checkpoint()
  //    covers it), so its records are skipped unless the processor kept them.
  // Exceptions from shutdown_requested and lease_lost are only logged.
  OnProcessorError on_processor_error = OnProcessorError::Fail;
  // Multi-worker leases (when the store has them).
  LeaseOptions leases{};
  // The stall watchdog (docs/operations.md §2). processor_timeout: a processor call
  // (initialize, process_records, shard_ended, shutdown_requested, lease_lost) running longer
  // than this is logged (when it passes the timeout, then each time its running time
  // doubles, at most every 5 minutes, and when it returns), counted
  // (kclpp_processor_timeouts_total{shard}) and makes the worker not ready; then
  // on_processor_timeout applies. 0: off.
  std::chrono::milliseconds processor_timeout{0};
  OnProcessorTimeout on_processor_timeout = OnProcessorTimeout::Restart;
  // No-progress detection: a shard the service last reported behind (millisBehindLatest > 0)
  // that has handed no records to its processor for this long, with no processor call in
  // flight (a stalled fetch, a subscription that delivers nothing, a shard failing over and
  // over), is logged, counted (kclpp_shard_stalls_total{shard}) and makes the worker not
  // ready until records flow again or the service reports it caught up. 0: off.
  std::chrono::milliseconds stall_timeout{60'000};
  // Where the worker's metrics go (docs/operations.md §1: per shard and per worker). Null:
  // the worker keeps a registry of its own (health() still works); nothing exports it.
  std::shared_ptr<MetricsRegistry> metrics;
};

// What the operations endpoint and the systemd watchdog ask (docs/operations.md §2).
// Worker::health() computes it when asked, from what the shard threads and the worker's loop
// record (no I/O).
struct WorkerHealth {
  // /healthz: run() is running and the worker's loop (shard sync, reaping and starting shard
  // threads; it wakes at least every second) began an iteration less than 5 minutes ago.
  // The bound is above one shard listing retried through an outage (read_retry: 5 attempts
  // of up to 30 s each plus backoff), so a Kinesis outage alone does not make the worker
  // look dead; a loop stuck longer is.
  bool alive = false;
  // The worker has started: the store is claimed (or the lease table opened) and the shards
  // were listed once. systemd's READY=1 is sent then.
  bool started = false;
  // /readyz: alive, started, and every shard being processed is healthy: no processor call
  // past processor_timeout, no stall (stall_timeout), not failing over and over (three
  // failed processor rounds in a row with no records processed). No shard at all (other
  // workers hold every lease, or every shard is finished) is ready: nothing to do.
  bool ready = false;
  // Leases held by this worker (with a lease table), else the shards being processed.
  int leases_held = 0;
  // Processor calls running past processor_timeout now. The systemd watchdog is not pinged
  // while this is > 0 (docs/operations.md §2), so that a call stuck in a processor without
  // interrupt() ends in a restart of the process, which resumes from the checkpoints.
  int calls_past_timeout = 0;
  // One human-readable line per problem ("shardId-000000000001: process_records running
  // for 95 s"), empty when healthy.
  std::vector<std::string> problems;
};

// Drives one processor per shard, each on its own thread (plus the run() thread that lists
// shards and starts children once their parents are at SHARD_END), through the KCL
// lifecycle: initialize, process_records*, then shard_ended (the worker records SHARD_END
// itself afterwards if the processor did not) or, on shutdown, shutdown_requested then
// lease_lost. Per shard: resumes right after the stored checkpoint (inside a KPL aggregate
// too), polls GetRecords at most 5 times a second (at once while behind, else every
// idle_time_between_reads), re-creates expired iterators after the last record handed to
// the processor, retries throttling and network errors with jittered backoff.
// The Checkpointer given to processors applies the KCL's rules (docs/kcl-protocol.md §5): a position must
// lie in [last checkpoint, largest delivered] (IllegalArgumentException otherwise), no
// position = the largest delivered (SHARD_END inside shard_ended), a failing store is a
// KinesisClientLibDependencyException (retryable), and after the terminal call every
// checkpoint throws LeaseLostError (ShutdownException). Checkpoints are durable on return.
//
// Owns its shard threads and joins them before run() returns; no detached threads.
// request_shutdown() and request_shard_sync() are thread-safe (call them from a signal
// handling thread); everything else is for one owning thread. Destroy the Worker only
// after run() has returned.
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
  // ConfigError/StoreError/AuthError for failures that stop the whole worker (after
  // shutting every shard down the same way). Call it once per Worker. A
  // request_shutdown() made before run() makes it return right after claiming.
  void run();
  void request_shutdown() noexcept;
  // Re-list the shards now (SIGHUP), rather than at the next shard_sync_interval.
  void request_shard_sync() noexcept;
  // Thread-safe; cheap enough to call on every scrape (a lock per shard, no I/O).
  // Also valid before run() (not alive) and after it returned (not alive).
  [[nodiscard]] WorkerHealth health() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::native
