// kclpp::main: protocol mode (default) or native mode (--stream).
#include "kclpp/app/main.hpp"

#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/kcl/run.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "native_runner.hpp"

namespace kclpp {
namespace {

// Protocol mode learns the shard only from `initialize`: the user's processor is made
// then, by the factory, and every later call is forwarded to it.
class LazyProcessor final : public RecordProcessor {
 public:
  explicit LazyProcessor(const ProcessorFactory& factory) : factory_(factory) {}

  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override {
    inner_ = factory_(shard_id);
    if (!inner_) throw ProcessorError("the processor factory returned no processor for " + shard_id);
    inner_->initialize(shard_id, position);
  }
  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) override {
    get().process_records(batch, checkpointer);
  }
  void lease_lost() override { get().lease_lost(); }
  void shard_ended(Checkpointer& checkpointer) override { get().shard_ended(checkpointer); }
  void shutdown_requested(Checkpointer& checkpointer) override {
    get().shutdown_requested(checkpointer);
  }

 private:
  RecordProcessor& get() {
    if (!inner_) throw ProtocolError("a processor call arrived before initialize");
    return *inner_;
  }
  const ProcessorFactory& factory_;
  std::unique_ptr<RecordProcessor> inner_;
};

}  // namespace

int main(const ProcessorFactory& factory, int argc, char** argv) {
  const std::string program =
      argc > 0 && argv[0] != nullptr ? std::filesystem::path(argv[0]).filename().string() : "kclpp-app";
  app::detail::Args args(
      program + " [--stream NAME [options]]",
      "A Kinesis record processor built on kclpp.\n"
      "With no --stream it speaks the KCL MultiLangDaemon protocol on stdin/stdout: run it as\n"
      "the executableName of the Java MultiLangDaemon or of `kclpp daemon`. With --stream it\n"
      "reads the stream itself (no JVM), one processor per shard, checkpoints in SQLite by\n"
      "default. In native mode SIGTERM/SIGINT shut down cleanly, SIGHUP re-lists shards.\n"
      "Logs go to stderr; KCLPP_LOG_LEVEL=debug|info|warn|error.");
  args.option("stream", "NAME", "native mode: read this Kinesis stream");
  app::detail::add_client_options(args);
  app::detail::add_worker_options(args);
  try {
    std::vector<std::string> arguments(argv + (argc > 0 ? 1 : 0), argv + argc);
    if (!args.parse(arguments)) {
      std::fputs(args.help().c_str(), stderr);
      return 0;
    }
    if (!args.positional().empty())
      throw ConfigError("unexpected argument '" + args.positional().front() + "' (see --help)");
    const auto stream = args.get("stream");
    if (!stream) {
      for (const char* native_only : {"endpoint", "region", "profile", "application", "checkpoint-store",
                                      "initial-position", "shards", "max-records", "idle-time-ms",
                                      "shard-sync-ms", "shutdown-grace-ms", "deliver-empty-batches"}) {
        if (args.has(native_only))
          throw ConfigError(std::string("--") + native_only + " needs --stream (native mode)");
      }
      kcl::RunOptions options;
      if (args.get_or("on-error", "fail") == "continue")
        options.on_processor_error = OnProcessorError::LogAndContinue;
      else if (args.get_or("on-error", "fail") != "fail")
        throw ConfigError("--on-error: '" + args.get_or("on-error", "") + "' is neither 'fail' nor 'continue'");
      LazyProcessor processor(factory);
      return kcl::run(processor, options);
    }
    native::WorkerOptions options = app::detail::worker_options(args, program);
    const std::string store_uri = app::detail::checkpoint_store_uri(args, options.application);
    app::detail::check_stream(app::detail::client_options(args), *stream);
    native::KinesisStream source(*stream, app::detail::client_options(args));
    auto store = native::open_checkpoint_store(store_uri);
    log_info("native mode: application '", options.application, "', stream '", *stream,
             "', checkpoints in ", store_uri);
    native::Worker worker(source, *store, factory, std::move(options));
    app::detail::run_until_signalled(worker);
    return 0;
  } catch (const ConfigError& e) {
    log_error(program, ": ", e.what());
    return 1;
  } catch (const std::exception& e) {
    log_error(program, ": ", e.what());
    return 1;
  }
}

}  // namespace kclpp
