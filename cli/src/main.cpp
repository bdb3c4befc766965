// kclpp::main: protocol mode (default) or native mode (--stream).
#include "kclpp/app/main.hpp"

#include <exception>
#include <filesystem>
#include <optional>
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

// The triton layout keeps no leases (checkpoint_store.hpp): one worker per application and
// stream, so the lease options would be silently without effect.
void warn_if_no_leases(const app::detail::Args& args, const std::string& store_uri) {
  if (store_uri.rfind("triton+", 0) != 0) return;
  for (const char* lease_option : {"worker-id", "failover-ms", "max-leases", "max-leases-to-steal",
                                   "take-interval-ms", "cleanup-leases"}) {
    if (args.has(lease_option))
      log_warn("--", lease_option, " has no effect: the triton layout keeps no leases (one worker per "
               "application and stream)");
  }
}

// Records are pushed with fan-out: there is no GetRecords limit and no pause between reads.
void warn_if_polling_options_ignored(const app::detail::Args& args,
                                     const std::optional<native::FanOutOptions>& fan_out) {
  if (!fan_out) return;
  for (const char* polling_option : {"max-records", "idle-time-ms"}) {
    if (args.has(polling_option)) log_warn("--", polling_option, " has no effect with enhanced fan-out");
  }
}

}  // namespace

int main(const ProcessorFactory& factory, int argc, char** argv) {
  const std::string program =
      argc > 0 && argv[0] != nullptr ? std::filesystem::path(argv[0]).filename().string() : "kclpp-app";
  app::detail::Args args = app::detail::main_args(program);
  try {
    std::vector<std::string> arguments(argv + (argc > 0 ? 1 : 0), argv + argc);
    if (!args.parse(arguments)) {
      std::fputs(args.help().c_str(), stderr);
      return 0;
    }
    if (!args.positional().empty())
      throw ConfigError("unexpected argument '" + args.positional().front() + "' (see --help)");
    (void)app::detail::apply_log_to_option(args);
    const auto stream = args.get("stream");
    if (!stream) {
      for (const std::string& native_only : app::detail::native_only_options()) {
        if (args.has(native_only)) throw ConfigError("--" + native_only + " needs --stream (native mode)");
      }
      kcl::RunOptions options;
      if (args.get_or("on-error", "fail") == "continue")
        options.on_processor_error = OnProcessorError::LogAndContinue;
      else if (args.get_or("on-error", "fail") != "fail")
        throw ConfigError("--on-error: '" + args.get_or("on-error", "") + "' is neither 'fail' nor 'continue'");
      LazyProcessor processor(factory);
      return kcl::run(processor, options);
    }
    app::detail::NativeConfig config = app::detail::native_config(args, program);
    warn_if_no_leases(args, config.store_uri);
    warn_if_polling_options_ignored(args, config.fan_out);
    app::detail::check_stream(config.client, config.stream);
    native::KinesisStream source(config.stream, config.client, config.fan_out);
    auto store = native::open_checkpoint_store(config.store_uri, config.store);
    log_info("native mode: application '", config.worker.application, "', stream '", config.stream,
             "', ", app::detail::retrieval_for_log(config.fan_out), ", checkpoints in ",
             app::detail::store_uri_for_log(config.store_uri));
    auto metrics = std::make_shared<MetricsRegistry>();
    config.worker.metrics = metrics;
    native::Worker worker(source, *store, factory, std::move(config.worker));
    app::detail::run_until_signalled(worker, {config.ops, metrics, {}});
    return 0;
  } catch (const std::exception& e) {
    app::detail::log_fatal(program + ": " + e.what());
    return 1;
  }
}

}  // namespace kclpp
