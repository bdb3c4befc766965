#pragma once
// What kclpp::main (native mode) and `kclpp daemon` share: the options that build a
// native worker, and running it under signal control.
#include <string>

#include "args.hpp"
#include "kclpp/app/main.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/kinesis_client.hpp"
#include "kclpp/native/worker.hpp"

namespace kclpp::app::detail {

// --endpoint, --region, --profile.
void add_client_options(Args& args);
[[nodiscard]] native::ClientOptions client_options(const Args& args);

// One DescribeStreamSummary before the worker starts: a stream that does not exist (or
// credentials the service rejects) is a fatal error naming the stream, rather than a worker
// that warns about it forever. Transient failures (unreachable endpoint, throttling) are
// only logged: the worker keeps retrying them. Throws the non-retryable kclpp::Error.
void check_stream(const native::ClientOptions& options, const std::string& stream);

// --application, --checkpoint-store, --initial-position, --shards, --max-records,
// --idle-time-ms, --shard-sync-ms, --on-error.
void add_worker_options(Args& args);
[[nodiscard]] native::WorkerOptions worker_options(const Args& args, const std::string& default_application);
// "sqlite:<application>.checkpoints.db" unless --checkpoint-store.
[[nodiscard]] std::string checkpoint_store_uri(const Args& args, const std::string& application);

// "LATEST", "TRIM_HORIZON", "AT_TIMESTAMP:<epoch seconds | YYYY-MM-DDTHH:MM:SS[.fff]Z>", or
// a bare timestamp. ConfigError naming `what` otherwise.
[[nodiscard]] native::StartPosition parse_start_position(const std::string& text, const std::string& what);
// Epoch seconds (fractions allowed) or RFC 3339 UTC; ConfigError naming `what` otherwise.
[[nodiscard]] std::chrono::system_clock::time_point parse_time(const std::string& text,
                                                               const std::string& what);

// Runs the worker on this thread until SIGTERM or SIGINT (clean shutdown: shutdown_requested,
// lease_lost, join); SIGHUP re-lists shards. The signals are blocked in every thread and
// taken by one waiting thread, joined before returning. Throws what Worker::run throws.
void run_until_signalled(native::Worker& worker);

}  // namespace kclpp::app::detail
