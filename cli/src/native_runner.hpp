#pragma once
// What kclpp::main (native mode), `kclpp daemon`, `kclpp store` and `kclpp spoold` share:
// the options that build a native worker, and running it under signal control.
#include <pthread.h>
#include <signal.h>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/app/main.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "ops_server.hpp"

namespace kclpp::app::detail {

// --endpoint, --region, --profile.
void add_client_options(Args& args);
[[nodiscard]] aws::KinesisOptions client_options(const Args& args);

// One DescribeStreamSummary before the worker starts: a stream that does not exist (or
// credentials the service rejects) is a fatal error naming the stream, rather than a worker
// that warns about it forever. Transient failures (unreachable endpoint, throttling) are
// only logged: the worker keeps retrying them. Throws the non-retryable kclpp::Error.
void check_stream(const aws::KinesisOptions& options, const std::string& stream);

// --application, --checkpoint-store (or --lease-store), --initial-position, --shards,
// --max-records, --idle-time-ms, --shard-sync-ms, --on-error, and the lease options
// (add_lease_options).
void add_worker_options(Args& args);
// ConfigError naming the option and its value for a value out of range.
[[nodiscard]] native::WorkerOptions worker_options(const Args& args, const std::string& default_application);
// --worker-id, --failover-ms, --max-leases, --max-leases-to-steal, --take-interval-ms,
// --cleanup-leases, --dynamodb-endpoint: how several workers share a stream through a
// lease store (docs/checkpoints.md §5).
void add_lease_options(Args& args);
// LeaseOptions from the options of add_lease_options; the defaults of LeaseOptions for
// those not given. ConfigError naming the option and its value for a value out of range.
[[nodiscard]] native::LeaseOptions lease_options(const Args& args);
// How the lease store's DynamoDB client is built: the Kinesis client's region, profile and
// credentials provider (the Java KCL does the same when no separate DynamoDB provider is
// configured) with `endpoint` (empty: resolved as aws::DynamoDbOptions says).
[[nodiscard]] native::StoreOptions store_options_like(const aws::KinesisOptions& kinesis,
                                                      const std::string& dynamodb_endpoint);
// --fan-out, --consumer-name, --consumer-arn: enhanced fan-out instead of polling.
void add_fan_out_options(Args& args);
// The FanOutOptions those options ask for, or nullopt (polling) when none is given;
// --consumer-name or --consumer-arn imply --fan-out. The consumer name defaults to
// `default_consumer` (the application name, as in the Java KCL). ConfigError naming the
// option for both names given, a name the service would refuse, or an ARN that is not a
// consumer ARN of `stream`.
[[nodiscard]] std::optional<native::FanOutOptions> fan_out_options(const Args& args, const std::string& stream,
                                                                   const std::string& default_consumer);
// A ConsumerName as the service accepts it: 1..128 of [a-zA-Z0-9_.-].
[[nodiscard]] bool valid_consumer_name(const std::string& name);
// What is wrong with `arn` as a consumer ARN of `stream`
// (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:CREATED), "" if nothing.
[[nodiscard]] std::string consumer_arn_problem(const std::string& arn, const std::string& stream);
// "polling" or "enhanced fan-out as consumer NAME|ARN", for the start-up log line.
[[nodiscard]] std::string retrieval_for_log(const std::optional<native::FanOutOptions>& fan_out);

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
// --checkpoint-store or its synonym --lease-store (ConfigError naming both when both are
// given), else "sqlite:<application>.checkpoints.db"; "dynamodb:" becomes
// "dynamodb:<application>" (the table the store would pick), so that logs name the table.
[[nodiscard]] std::string checkpoint_store_uri(const Args& args, const std::string& application);
// True for a "dynamodb:..." URI (the scheme in any case, as open_checkpoint_store takes it).
[[nodiscard]] bool is_dynamodb_uri(const std::string& uri);
// The table of a "dynamodb:[TABLE]" URI (empty for "dynamodb:"). Call only when
// is_dynamodb_uri(uri).
[[nodiscard]] std::string dynamodb_table(const std::string& uri);
// The URI with a password (user:PASSWORD@, password=PASSWORD) replaced by ***, for logs.
[[nodiscard]] std::string store_uri_for_log(const std::string& uri);

// Native mode of kclpp::main (--stream), parsed.
struct NativeConfig {
  std::string stream;
  aws::KinesisOptions client;
  native::WorkerOptions worker;
  std::string store_uri;
  native::StoreOptions store;
  // Set: enhanced fan-out (--fan-out, --consumer-name, --consumer-arn); unset: polling.
  std::optional<native::FanOutOptions> fan_out;
  // --metrics-listen, --statsd (docs/operations.md §1).
  OpsConfig ops;
};
// The options of kclpp::main: --stream, the client options and the worker options.
[[nodiscard]] Args main_args(const std::string& program);
// Native mode's configuration from main_args() after a successful parse with --stream.
// `program` is the default application name. Throws ConfigError naming the option and the
// value that is wrong; touches no network and no file.
[[nodiscard]] NativeConfig native_config(const Args& args, const std::string& program);
// The options main_args() declares that only mean something in native mode (given without
// --stream: a ConfigError).
[[nodiscard]] const std::vector<std::string>& native_only_options();

// "LATEST", "TRIM_HORIZON", "AT_TIMESTAMP:<epoch seconds | YYYY-MM-DDTHH:MM:SS[.fff]Z>", or
// a bare timestamp. ConfigError naming `what` otherwise.
[[nodiscard]] aws::StartPosition parse_start_position(const std::string& text, const std::string& what);
// Epoch seconds (fractions allowed) or RFC 3339 UTC; ConfigError naming `what` otherwise.
[[nodiscard]] std::chrono::system_clock::time_point parse_time(const std::string& text,
                                                               const std::string& what);

// A worker's operations endpoint and statsd push: `registry` is its WorkerOptions::metrics
// (with whatever else the command registered there). Both off by default.
struct WorkerOps {
  OpsConfig config;
  std::shared_ptr<MetricsRegistry> registry;
  StatsdPublisherOptions statsd;
};

// Runs the worker on this thread until SIGTERM or SIGINT (clean shutdown: shutdown_requested,
// lease_lost, join); SIGHUP re-lists shards. The signals are blocked in every thread and
// taken by one waiting thread, joined before returning; the endpoint's and the statsd
// push's threads start inside that, so they never take a signal either. Throws what
// Worker::run throws, and ConfigError when the endpoint cannot listen.
void run_until_signalled(native::Worker& worker, const WorkerOps& ops = {});

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
