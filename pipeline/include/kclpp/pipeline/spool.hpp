#pragma once
// The non-blocking producer path, wire-compatible with tritond (docs/triton.md §7): a
// client that hands records to a local spool daemon over ZeroMQ PUSH without ever
// blocking, and the daemon (`kclpp spoold`) that batches them into PutRecords.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/pipeline/config.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/metrics.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::pipeline {

// "tcp://$TRITON_ZMQ_HOST:$TRITON_ZMQ_PORT", defaults 127.0.0.1 and 3515 (docs/triton.md §7).
[[nodiscard]] std::string default_spool_endpoint();

enum class HeaderFormat { Binary, Json };  // 0x04 struct (py-triton) / JSON (go-triton)

struct SpoolClientOptions {
  std::string endpoint;  // empty: default_spool_endpoint()
  // Records queued before send() starts counting drops: in this process's ring (this
  // many, rounded up to a power of two) and again in ZeroMQ's queue (its send HWM).
  int high_water_mark = 4'000;
  std::chrono::milliseconds linger{3'000};  // how long close() waits for queued records
  HeaderFormat header = HeaderFormat::Json;
};

// Never blocks the caller: send() copies the record into a bounded lock-free ring (no
// system call, no lock) or counts a drop; one sender thread owns the PUSH socket and
// feeds it (ZeroMQ sockets are not thread-safe). bench/spool_latency measures send().
// Thread-safe: send() may be called from any number of threads. Move-less (owns a ZeroMQ
// context and the sender thread); the destructor calls close(). Throws TransportError
// from the constructor only when the endpoint is malformed.
class SpoolClient {
 public:
  explicit SpoolClient(SpoolClientOptions options = {});
  ~SpoolClient();
  SpoolClient(const SpoolClient&) = delete;
  SpoolClient& operator=(const SpoolClient&) = delete;

  // Hands one packed record for the logical stream to the spool. False (and counted in
  // dropped()) when it could not be enqueued: queue full, client closed, an empty stream
  // name or key, a key over 256 characters or a record over 1 MiB (Kinesis limits), a
  // stream name or partition key over 63 bytes with the binary header (the 64p limit of
  // docs/triton.md §7).
  bool send(std::string_view logical_stream, std::string_view partition_key,
            std::string_view msgpack_map) noexcept;
  // Encodes `record` and derives the key from `partition_key_field`; false when the field
  // is missing (counted as dropped, logged at most once a second).
  bool send(std::string_view logical_stream, const std::string& partition_key_field,
            const Map& record) noexcept;

  // Records send() accepted (minus those close() had to give up on).
  [[nodiscard]] std::uint64_t sent() const noexcept;
  // Records send() refused, plus those still in this process when close()'s linger ran
  // out. (What ZeroMQ itself discards at the end of the linger cannot be counted.)
  [[nodiscard]] std::uint64_t dropped() const noexcept;
  // Refuses new sends, waits up to `linger` for queued records to leave. Idempotent.
  void close() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SpoolDaemonOptions {
  std::string endpoint;  // bind address; empty: default_spool_endpoint()
  std::chrono::milliseconds flush_interval{100};
  // Bounded memory: records held for Kinesis (queued or being retried), in bytes of data +
  // keys. Past it, new records are dropped and counted (unlike tritond, which grows).
  std::size_t max_buffered_bytes = 64u << 20;
  aws::KinesisOptions client;  // endpoint/credentials; region from the config if empty
  // Per PutRecords request: failed entries and whole-request failures (throttling, 5xx,
  // network, lost replies: resent, so a record may be written twice) are retried with
  // this policy before the records are dropped (and counted in `failed`).
  RetryPolicy retry{5, std::chrono::milliseconds{100}, std::chrono::milliseconds{2'000},
                    std::chrono::milliseconds{500}};
  int receive_high_water_mark = 3'500;  // the PULL socket's, as tritond
  // Where the counts of SpoolStats also go (docs/operations.md §1): kclpp_spool_received_total,
  // kclpp_spool_written_total, kclpp_spool_retried_total, kclpp_spool_dropped_total{reason}
  // and the kclpp_spool_buffer_bytes gauge. Null: a registry of the daemon's own.
  std::shared_ptr<MetricsRegistry> metrics;
};

struct SpoolStats {
  // received = written + malformed + unknown_stream + dropped_full + failed once run()
  // returned (before: the difference is still held).
  std::uint64_t received = 0;   // messages taken off the socket
  std::uint64_t written = 0;    // records Kinesis accepted
  std::uint64_t malformed = 0;  // bad frame count, header or body (logged, dropped)
  std::uint64_t unknown_stream = 0;  // logical name not in the config (dropped)
  std::uint64_t dropped_full = 0;    // over max_buffered_bytes (dropped)
  std::uint64_t failed = 0;          // still failing after the retries (dropped)
  std::uint64_t retried = 0;         // entries resent at least once
};

// The spool daemon: binds a ZeroMQ PULL socket, accepts both header formats, resolves
// logical names through `config`, refuses bodies that are not one msgpack map (counted in
// `malformed`, as validate_record judges them), and every flush_interval writes what it
// holds with PutRecords (≤ 500 records, ≤ 5 MiB per request) from a sender thread, so
// receiving never waits for Kinesis. run() returns after request_stop(): it stops receiving, drains
// the socket, flushes everything it holds (with the retries) and returns.
// request_stop() and stats() are thread-safe; run() is called once, from one thread.
class SpoolDaemon {
 public:
  // Binds at once: throws TransportError naming the endpoint when it cannot.
  SpoolDaemon(TritonConfig config, SpoolDaemonOptions options = {});
  ~SpoolDaemon();
  SpoolDaemon(const SpoolDaemon&) = delete;
  SpoolDaemon& operator=(const SpoolDaemon&) = delete;

  // The endpoint actually bound (a "tcp://127.0.0.1:*" request gets its port here).
  [[nodiscard]] const std::string& endpoint() const noexcept;
  void run();
  void request_stop() noexcept;
  [[nodiscard]] SpoolStats stats() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::pipeline
