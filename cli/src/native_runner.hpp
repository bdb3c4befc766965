#pragma once
// What kclpp::main (native mode), `kclpp daemon`, `kclpp store` and `kclpp spoold` share:
// the options that build a native worker, and running it under signal control.
#include <pthread.h>
#include <signal.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/app/main.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/worker.hpp"

namespace kclpp::app::detail {

// --endpoint, --region, --profile.
void add_client_options(Args& args);
[[nodiscard]] aws::KinesisOptions client_options(const Args& args);

// One DescribeStreamSummary before the worker starts: a stream that does not exist (or
// credentials the service rejects) is a fatal error naming the stream, rather than a worker
// that warns about it forever. Transient failures (unreachable endpoint, throttling) are
// only logged: the worker keeps retrying them. Throws the non-retryable kclpp::Error.
void check_stream(const aws::KinesisOptions& options, const std::string& stream);

// --application, --checkpoint-store, --initial-position, --shards, --max-records,
// --idle-time-ms, --shard-sync-ms, --on-error.
void add_worker_options(Args& args);
[[nodiscard]] native::WorkerOptions worker_options(const Args& args, const std::string& default_application);
// --max-records, --idle-time-ms, --shard-sync-ms: how a worker reads, the same for every
// command that runs one (kclpp::main, `kclpp daemon`, `kclpp store`).
void add_read_options(Args& args);
// Sets max_records, idle_time_between_reads, shard_sync_interval and shutdown_grace from
// --max-records, --idle-time-ms, --shard-sync-ms and --shutdown-grace-ms, and shard_indexes
// from --shards when given (the caller declares --shards and --shutdown-grace-ms, whose help
// and default differ per command). ConfigError on a value out of range.
void apply_read_options(const Args& args, native::WorkerOptions& options);
// "I,J,...": shard indexes into the stream's shards sorted by id. ConfigError naming --shards
// on anything but comma-separated decimal numbers.
[[nodiscard]] std::vector<std::size_t> parse_shard_indexes(const std::string& text);
// "sqlite:<application>.checkpoints.db" unless --checkpoint-store.
[[nodiscard]] std::string checkpoint_store_uri(const Args& args, const std::string& application);

// "LATEST", "TRIM_HORIZON", "AT_TIMESTAMP:<epoch seconds | YYYY-MM-DDTHH:MM:SS[.fff]Z>", or
// a bare timestamp. ConfigError naming `what` otherwise.
[[nodiscard]] aws::StartPosition parse_start_position(const std::string& text, const std::string& what);
// Epoch seconds (fractions allowed) or RFC 3339 UTC; ConfigError naming `what` otherwise.
[[nodiscard]] std::chrono::system_clock::time_point parse_time(const std::string& text,
                                                               const std::string& what);

// Runs the worker on this thread until SIGTERM or SIGINT (clean shutdown: shutdown_requested,
// lease_lost, join); SIGHUP re-lists shards. The signals are blocked in every thread and
// taken by one waiting thread, joined before returning. Throws what Worker::run throws.
void run_until_signalled(native::Worker& worker);

// Blocks `signals` in the calling thread for its lifetime, so that threads started meanwhile
// inherit the mask and only a thread waiting in sigtimedwait(set()) takes them; restores the
// previous mask after. Not thread-safe: create, use and destroy it in one thread.
class SignalBlock {
 public:
  explicit SignalBlock(std::initializer_list<int> signals) {
    sigemptyset(&set_);
    for (const int sig : signals) sigaddset(&set_, sig);
    ::pthread_sigmask(SIG_BLOCK, &set_, &previous_);
  }
  ~SignalBlock() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;
  [[nodiscard]] const sigset_t& set() const noexcept { return set_; }

 private:
  sigset_t set_{};
  sigset_t previous_{};
};

}  // namespace kclpp::app::detail
