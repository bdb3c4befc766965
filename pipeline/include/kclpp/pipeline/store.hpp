#pragma once
// The archiver (`kclpp store`, docs/triton.md §6, done deliberately per §11): records of
// every shard of a stream are spooled to one local `.tri` file, which is rotated on each
// wall-clock interval boundary (hourly by default, also when the stream is idle) and at a
// size limit, uploaded to S3 with its `.metadata`, and only then checkpointed.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "kclpp/aws/s3_client.hpp"
#include "kclpp/processor/metrics.hpp"
#include "kclpp/processor/record_processor.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::pipeline {

struct ArchiveStoreOptions {
  std::string stream;          // the real stream name (keys, metadata); required, no '-'
  std::string bucket;          // required
  std::string client = "store";  // key part and checkpoint client; no '-'
  std::string spool_dir = ".";   // local spool file: <spool_dir>/<spool_name>
  // Empty: <stream>-<client>.tri. Stores sharing a spool dir need names of their own (one
  // store per shard process under a daemon: `kclpp store --multilang` adds the shard id).
  // Stores sharing a spool dir (and stream and client) never pick the same key: they take
  // key times from one clock file there, <spool_dir>/<stream>-<client>.keys.
  std::string spool_name;
  // Rotate when the wall clock crosses a multiple of this interval (UTC), checked once a
  // second by the store's timer thread whether or not records arrive.
  std::chrono::seconds rotate_interval{3'600};
  std::uint64_t max_file_bytes = 512ull << 20;  // rotate when the .tri file reaches it
  aws::S3Options s3;
  RetryPolicy upload_retry{8, std::chrono::milliseconds{500}, std::chrono::milliseconds{30'000},
                           std::chrono::milliseconds{1'000}};
  // Write `<key>.metadata` next to each archive (docs/triton.md §3.5; old readers ignore it).
  bool write_metadata = true;
  // Run after each upload (and its metadata): `notify_command KEY SIZE RECORDS SHA256`
  // through /bin/sh -c (the values as positional parameters, never parsed by the shell)
  // with the four values also in KCLPP_ARCHIVE_KEY, _SIZE, _RECORDS, _SHA256 (and the
  // bucket in KCLPP_ARCHIVE_BUCKET), stdout onto stderr, in its own process group (killed
  // after notify_timeout). It runs before the shards may checkpoint the archive's records.
  // Its failure is logged, never fatal. Empty: none.
  std::string notify_command;
  std::chrono::milliseconds notify_timeout{30'000};
  // statsd "HOST:PORT"; empty: no metrics. Names under statsd_prefix: records, bytes (of
  // the records spooled), bad_records, lag_ms.<shard> (gauge: millis behind latest),
  // checkpoint_age_s.<shard> (gauge: since the shard's last checkpoint), upload_ms
  // (timing), uploads, upload_failures.
  std::string statsd;
  std::string statsd_prefix = "kclpp.store";
  // The same counts as registry metrics (docs/operations.md §1): kclpp_store_records_total,
  // _bytes_total, _bad_records_total, _uploads_total, _upload_failures_total and the
  // kclpp_store_upload_seconds histogram (lag and checkpoint age per shard are the
  // worker's kclpp_millis_behind_latest and kclpp_checkpoint_age_seconds). Null: none.
  std::shared_ptr<MetricsRegistry> metrics;
};

struct ArchiveStoreStats {
  std::uint64_t records = 0;      // spooled
  std::uint64_t bad_records = 0;  // not a msgpack map: logged with sequence number, skipped
  std::uint64_t uploads = 0;
  std::uint64_t upload_failures = 0;
  std::string last_key;           // of the last upload, empty before the first
};

// Shared by the processors of all shards of one stream (the factory makes them); owns the
// spool file and a timer thread (joined by the destructor). Thread-safe.
// A processor appends each record (kept byte for byte when it is a valid map; one that is
// not is logged with its sequence number and skipped), and checkpoints only positions
// whose records are in an uploaded archive. Uploads are retried with upload_retry; when
// they keep failing the processors throw (the shard restarts from its checkpoint), so
// nothing is lost. A leftover spool file from a crashed run is discarded at start: its
// records were never checkpointed and are read again from Kinesis.
// Checkpoints of idle shards advance when the processor is called again: run it with
// empty batches delivered (the native worker's EmptyBatches::Deliver, the daemon's
// callProcessRecordsEvenForEmptyRecordList). Processors must not outlive the store.
// Test only: KCLPP_STORE_TEST_CRASH=before_upload|after_upload|after_metadata (read by
// the constructor) makes the store SIGKILL itself at that point of its first rotation.
class ArchiveStore {
 public:
  // Throws ConfigError for bad options, TransportError when the spool dir is unusable.
  explicit ArchiveStore(ArchiveStoreOptions options);
  ~ArchiveStore();
  ArchiveStore(const ArchiveStore&) = delete;
  ArchiveStore& operator=(const ArchiveStore&) = delete;

  [[nodiscard]] std::unique_ptr<RecordProcessor> make_processor(const std::string& shard_id);
  // Closes, uploads and clears the spool now (no-op when it is empty). Throws the upload's
  // error after the retries. Processors call it at shutdown and shard end.
  void rotate();
  [[nodiscard]] ArchiveStoreStats stats() const;
  [[nodiscard]] const ArchiveStoreOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::pipeline
