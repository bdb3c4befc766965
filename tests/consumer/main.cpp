// A complete kclpp record processor: logs each record and checkpoints every 100 records.
#include <memory>
#include <string>

#include <kclpp/app/main.hpp>
#include <kclpp/processor.hpp>

class Printer : public kclpp::PerRecordProcessor {
 public:
  Printer() : PerRecordProcessor({.checkpoint = kclpp::CheckpointPolicy::every_records(100)}) {}

  // Returning true checkpoints at this record now.
  bool process_record(const kclpp::Record& record) override {
    kclpp::log_info(shard_id(), " seq=", record.sequence_number.str(),
                    " key=", record.partition_key, " bytes=", record.data.size());
    return false;
  }
};

// No arguments: the MultiLangDaemon protocol on stdin/stdout (as an executableName).
// --stream NAME [--endpoint URL ...]: reads Kinesis itself, no JVM (see --help).
int main(int argc, char** argv) {
  return kclpp::main([](const std::string&) { return std::make_unique<Printer>(); }, argc, argv);
}
