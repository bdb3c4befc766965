// echo: logs every record (shard, sequence number, partition key, data) to stderr and
// checkpoints every N records. N is a leading number argument, else
// $KCLPP_ECHO_CHECKPOINT_EVERY, else 100 (0: only at shard end and shutdown).
//
//   kclpp_echo [N]                              as a MultiLangDaemon executableName
//   kclpp_echo [N] --stream NAME [options]      natively (kclpp_echo --help)
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <kclpp/app/main.hpp>
#include <kclpp/processor.hpp>

namespace {

class Echo final : public kclpp::PerRecordProcessor {
 public:
  explicit Echo(std::uint64_t every)
      : PerRecordProcessor({.checkpoint = kclpp::CheckpointPolicy::every_records(every)}) {}

  bool process_record(const kclpp::Record& record) override {
    if (!record.data_error.empty()) {
      kclpp::log_warn(shard_id(), " seq=", record.sequence_number.str(), " undecodable data: ",
                      record.data_error);
      return false;
    }
    kclpp::log_info(shard_id(), " seq=", record.sequence_number.str(), " sub=",
                    record.sub_sequence_number, " key=", record.partition_key,
                    " data=", record.data);
    return false;  // the policy decides when to checkpoint
  }
};

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("KCLPP_ECHO_CHECKPOINT_EVERY");
  std::string_view arg = env != nullptr ? env : "100";
  // A leading number is ours; everything after it is kclpp::main's.
  if (argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9') {
    arg = argv[1];
    argv[1] = argv[0];
    --argc;
    ++argv;
  }
  std::uint64_t every = 0;
  if (auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), every);
      ec != std::errc{} || end != arg.data() + arg.size()) {
    kclpp::log_error("usage: kclpp_echo [CHECKPOINT_EVERY_N_RECORDS] [--stream NAME ...] (got '", arg, "')");
    return 1;
  }
  return kclpp::main([every](const std::string&) { return std::make_unique<Echo>(every); }, argc, argv);
}
