// `kclpp store`: archive a Triton stream to S3 (docs/triton.md §6, §8), run by the native
// worker with one ArchiveStore shared by the processors of every shard; or, with
// --multilang, as a MultiLangDaemon child (Java daemon or `kclpp daemon`): one process per
// shard, each with a store of its own.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "args.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/kcl/run.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/pipeline/config.hpp"
#include "kclpp/pipeline/store.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "native_runner.hpp"
#include "pipeline_commands.hpp"

namespace kclpp::app::detail {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

double parse_positive(const std::string& text, const std::string& what) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) || value <= 0)
    throw ConfigError(what + ": '" + text + "' is not a positive number");
  return value;
}

// The processor of a `kclpp store --multilang` child. The daemon gives each shard a
// process of its own, so each child makes its own ArchiveStore when initialize names the
// shard: its spool file carries the shard id (children share the spool dir, and their key
// clock there keeps their archive keys apart). Checkpoints go through the daemon.
class DaemonShardStore final : public RecordProcessor {
 public:
  explicit DaemonShardStore(pipeline::ArchiveStoreOptions options) : options_(std::move(options)) {}

  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override {
    std::string name = shard_id;
    for (char& c : name) {
      const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!plain) c = '_';
    }
    options_.spool_name = options_.stream + "-" + options_.client + "-" + name + ".tri";
    store_ = std::make_unique<pipeline::ArchiveStore>(options_);
    processor_ = store_->make_processor(shard_id);
    processor_->initialize(shard_id, position);
    log_info("kclpp store: shard ", shard_id, " of ", options_.stream, " under a daemon, spooling to ",
             options_.spool_dir, "/", options_.spool_name);
  }
  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) override {
    processor().process_records(batch, checkpointer);
  }
  void lease_lost() override {
    if (processor_) processor_->lease_lost();
  }
  void shard_ended(Checkpointer& checkpointer) override { processor().shard_ended(checkpointer); }
  void shutdown_requested(Checkpointer& checkpointer) override { processor().shutdown_requested(checkpointer); }

 private:
  RecordProcessor& processor() {
    if (!processor_) throw ProtocolError("kclpp store: the daemon sent records before initialize");
    return *processor_;
  }

  pipeline::ArchiveStoreOptions options_;
  std::unique_ptr<pipeline::ArchiveStore> store_;
  std::unique_ptr<RecordProcessor> processor_;  // after store_: destroyed first
};

// The command line of `kclpp store`.
Args store_args() {
  Args args("kclpp store --stream NAME --bucket BUCKET [options]",
            "Archive every shard of a Triton stream to S3 (a drop-in for go-triton's `triton store`):\n"
            "records are spooled to one local .tri file, rotated at each multiple of the rotate\n"
            "interval (UTC, also when the stream is idle) and at a size limit, uploaded as\n"
            "YYYYMMDD/<stream>-<client>-<unix>.tri with a <key>.metadata JSON, and only then\n"
            "checkpointed. A crash loses nothing: what was not uploaded is read again.\n"
            "Checkpoints go to the triton_checkpoint table by default, so a go-triton or\n"
            "triton-python deployment keeps its position. Shards without a checkpoint start at\n"
            "TRIM_HORIZON, as triton-python's reader does. SIGTERM/SIGINT: final upload and\n"
            "checkpoint, then exit 0.");
  args.option("stream", "NAME", "the stream's logical name in the Triton config (required)")
      .option("config", "PATH", "Triton stream config (default: $TRITON_CONFIG, else /etc/triton.yaml); its region "
              "is used for Kinesis and S3 unless --region is given")
      .option("bucket", "BUCKET", "S3 bucket (default: $TRITON_BUCKET; required)")
      .option("client", "NAME", "client name: key part and checkpoint client, no '-' (default: $TRITON_CLIENT, else store)")
      .option("checkpoint-db", "URI",
              "the triton_checkpoint table: triton+sqlite:PATH | triton+postgres://... (go-triton's "
              "sqlite://PATH and postgres://... mean the same); or kclpp's own sqlite:PATH | memory: "
              "(default: $TRITON_DB, else triton+sqlite:triton.db)")
      .option("spool-dir", "DIR", "where the spool file <stream>-<client>.tri lives", ".")
      .option("rotate-interval-s", "S", "rotate at each multiple of this many seconds (UTC)", "3600")
      .option("max-file-mb", "MB", "rotate when the spool file reaches this size (fractions allowed)", "512")
      .option("s3-endpoint", "URL", "S3 endpoint, e.g. http://127.0.0.1:4569 (default: AWS, path-style when set)")
      .option("initial-position", "POS", "where a shard without a checkpoint starts: TRIM_HORIZON | LATEST | AT_TIMESTAMP:<time>",
              "TRIM_HORIZON")
      .option("shards", "I,J,...", "archive only these shards: indexes into the sorted shard list (default: all)");
  add_read_options(args);
  args.option("shutdown-grace-ms", "MS", "how long the final upload and checkpoints may take after SIGTERM", "60000")
      .option("statsd", "HOST:PORT", "send statsd metrics over UDP (default: none)")
      .option("statsd-prefix", "PREFIX", "prefix of every metric name", "kclpp.store")
      .option("notify", "CMD", "run `CMD KEY SIZE RECORDS SHA256` (through /bin/sh) after each upload")
      .option("notify-timeout-ms", "MS", "kill the notify command after this long", "30000")
      .flag("no-metadata", "do not write <key>.metadata objects")
      .flag("multilang", "run as a MultiLangDaemon child (executableName of the Java daemon or of `kclpp daemon`): "
            "one process per shard, spooling to <stream>-<client>-<shard>.tri, checkpoints through the daemon "
            "(set callProcessRecordsEvenForEmptyRecordList = true so that idle shards checkpoint)");
  add_ops_options(args, "kclpp.store", StatsdOptions::AlreadyDeclared);
  add_client_options(args);
  add_log_to_option(args);
  return args;
}

// Under a daemon, the daemon reads Kinesis and keeps the checkpoints: options about either
// would be silently ignored, so they are refused.
void refuse_daemon_side_options(const Args& args) {
  for (const char* daemon_side : {"checkpoint-db", "initial-position", "shards", "endpoint", "metrics-listen"}) {
    if (args.has(daemon_side)) {
      throw ConfigError(std::string("--") + daemon_side +
                        " does not apply with --multilang: the daemon reads the stream and keeps the checkpoints "
                        "(set it in the daemon's properties)");
    }
  }
}

// The archive's options both modes share (S3 settings are the mode's).
pipeline::ArchiveStoreOptions archive_options(const Args& args, const pipeline::StreamConfig& stream) {
  pipeline::ArchiveStoreOptions options;
  options.stream = stream.name;
  options.bucket = args.get_or("bucket", env_or("TRITON_BUCKET", ""));
  if (options.bucket.empty()) throw ConfigError("--bucket (or $TRITON_BUCKET) is required");
  options.client = args.get_or("client", env_or("TRITON_CLIENT", "store"));
  options.spool_dir = args.get_or("spool-dir", ".");
  options.rotate_interval = std::chrono::seconds(*args.get_int("rotate-interval-s", 1, 86'400 * 366));
  const double max_mb = parse_positive(args.get_or("max-file-mb", "512"), "--max-file-mb");
  options.max_file_bytes = static_cast<std::uint64_t>(std::max(1.0, max_mb * 1024.0 * 1024.0));
  options.write_metadata = !args.has("no-metadata");
  options.notify_command = args.get_or("notify", "");
  options.notify_timeout = std::chrono::milliseconds(*args.get_int("notify-timeout-ms", 1, 86'400'000));
  options.statsd = args.get_or("statsd", "");
  options.statsd_prefix = args.get_or("statsd-prefix", "kclpp.store");
  return options;
}

// `kclpp store --multilang`: one shard, records and checkpoints through the daemon.
int run_under_daemon(const Args& args, const pipeline::StreamConfig& stream, pipeline::ArchiveStoreOptions options) {
  options.s3.region = args.get_or("region", stream.region);
  options.s3.endpoint = args.get_or("s3-endpoint", "");
  options.s3.profile.profile = args.get_or("profile", "");
  DaemonShardStore processor(options);
  kcl::RunOptions run_options;
  run_options.on_processor_error = OnProcessorError::Fail;  // a lost upload: the shard restarts
  return kcl::run(processor, run_options);
}

// The native worker's options for `kclpp store`.
native::WorkerOptions store_worker_options(const Args& args, const std::string& client) {
  native::WorkerOptions worker_opts;
  // The checkpoint "application" is the Triton client name: rows (client, stream, shard).
  worker_opts.application = client;
  worker_opts.initial_position = parse_start_position(args.get_or("initial-position", "TRIM_HORIZON"),
                                                      "--initial-position");
  apply_read_options(args, worker_opts);
  // Idle shards checkpoint after an idle rotation only when their processor is called.
  worker_opts.empty_batches = native::EmptyBatches::Deliver;
  // A failed upload throws: the shard restarts from its checkpoint (nothing lost).
  worker_opts.on_processor_error = OnProcessorError::Fail;
  return worker_opts;
}

// `kclpp store`: every shard read by the native worker into one ArchiveStore.
int run_native(const Args& args, const std::string& logical, const pipeline::StreamConfig& stream,
               pipeline::ArchiveStoreOptions options) {
  aws::KinesisOptions kinesis = client_options(args);
  // The stream's region from the config, as go-triton's store uses for Kinesis and S3
  // (docs/triton.md §6); --region overrides it.
  if (kinesis.region.empty()) kinesis.region = stream.region;
  options.s3.region = kinesis.region;
  options.s3.endpoint = args.get_or("s3-endpoint", "");
  options.s3.profile = kinesis.profile;

  // What go-triton takes (docs/triton.md §4, §8) means its triton_checkpoint table: "sqlite://PATH"
  // and "postgres://..." become triton+sqlite: / triton+postgres:// (triton_db_uri), so
  // that a Triton deployment's $TRITON_DB or --checkpoint-db works unchanged.
  const std::string checkpoint_db =
      native::triton_db_uri(args.get_or("checkpoint-db", env_or("TRITON_DB", "triton+sqlite:triton.db")));
  native::WorkerOptions worker_opts = store_worker_options(args, options.client);
  const OpsConfig ops = ops_config(args);
  auto metrics = std::make_shared<MetricsRegistry>();
  options.metrics = metrics;
  worker_opts.metrics = metrics;
  // The archive's own counts go to statsd as they happen, under the names they always had
  // (ArchiveStoreOptions::statsd); the push adds the worker's.
  StatsdPublisherOptions push;
  push.include = [](std::string_view name) { return name.rfind("kclpp_store_", 0) != 0; };

  pipeline::ArchiveStore archive(options);
  check_stream(kinesis, stream.name);
  native::KinesisStream source(stream.name, kinesis);
  auto checkpoints = native::open_checkpoint_store(checkpoint_db);
  log_info("kclpp store: stream '", logical, "' (", stream.name, "), client '", options.client, "', bucket '",
           options.bucket, "', checkpoints in ", checkpoint_db, ", rotating every ", options.rotate_interval.count(),
           " s or at ", options.max_file_bytes, " bytes");
  {
    native::Worker worker(
        source, *checkpoints,
        [&archive](const std::string& shard_id) { return archive.make_processor(shard_id); }, worker_opts);
    run_until_signalled(worker, {ops, metrics, std::move(push)});
  }
  const auto stats = archive.stats();
  log_info("kclpp store: done: ", stats.records, " records spooled, ", stats.bad_records, " skipped, ",
           stats.uploads, " archives uploaded, ", stats.upload_failures, " failed uploads");
  return 0;
}

}  // namespace

int store_command(const std::vector<std::string>& argv) {
  Args args = store_args();
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  if (!args.positional().empty())
    throw ConfigError("unexpected argument '" + args.positional().front() + "' (see --help)");
  (void)apply_log_to_option(args);
  if (args.has("multilang")) refuse_daemon_side_options(args);
  const auto logical = args.get("stream");
  if (!logical) throw ConfigError("--stream is required");
  const pipeline::TritonConfig config = pipeline::TritonConfig::load(args.get_or("config", ""));
  const pipeline::StreamConfig& stream = config.stream(*logical);
  pipeline::ArchiveStoreOptions options = archive_options(args, stream);
  if (args.has("multilang")) return run_under_daemon(args, stream, std::move(options));
  return run_native(args, *logical, stream, std::move(options));
}

}  // namespace kclpp::app::detail
