// A complete kclpp record processor: logs each record and checkpoints every 100 records.
#include <kclpp/kcl.hpp>

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

// Run it as the MultiLangDaemon's executableName: the protocol is on stdin/stdout.
int main() {
  Printer processor;
  return kclpp::kcl::run(processor);
}
