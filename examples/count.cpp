// count: counts the records and bytes of its shard, checkpoints at the end of every batch
// and logs the totals when the shard ends, on shutdown and when the lease is lost.
// Shows the full RecordProcessor lifecycle and what to do with each checkpoint error.
#include <cstdint>
#include <string>

#include <memory>

#include <kclpp/app/main.hpp>
#include <kclpp/processor.hpp>

namespace {

class Count final : public kclpp::RecordProcessor {
 public:
  void initialize(const std::string& shard_id,
                  const kclpp::ExtendedSequenceNumber& position) override {
    shard_id_ = shard_id;
    kclpp::log_info(shard_id_, ": starting after ", position.str());
  }

  void process_records(const kclpp::RecordBatch& batch,
                       kclpp::Checkpointer& checkpointer) override {
    for (const kclpp::Record& record : batch.records) {
      ++records_;
      bytes_ += record.data.size();
      if (!record.data_error.empty()) ++undecodable_;
    }
    if (batch.records.empty() || lease_lost_) return;
    try {
      checkpointer.checkpoint();  // at the last record of this batch (retries per policy)
    } catch (const kclpp::LeaseLostError& e) {
      lease_lost_ = true;  // another worker owns the shard now: stop checkpointing
      kclpp::log_warn(shard_id_, ": lease lost, no more checkpoints: ", e.what());
    } catch (const kclpp::Error& e) {
      // Throttling/dependency errors already had their retries: the next batch tries again.
      kclpp::log_warn(shard_id_, ": checkpoint failed (", e.kcl_name(), "): ", e.what());
    }
  }

  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    log_totals("shard ended");
    checkpointer.checkpoint();  // SHARD_END; must succeed, so failures propagate
  }

  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    log_totals("shutdown requested");
    if (lease_lost_) return;
    try {
      checkpointer.checkpoint();
    } catch (const kclpp::Error& e) {
      kclpp::log_warn(shard_id_, ": final checkpoint failed: ", e.what());
    }
  }

  void lease_lost() override { log_totals("lease lost"); }

 private:
  void log_totals(const char* why) const {
    kclpp::log_info(shard_id_, ": ", why, ": ", records_, " records, ", bytes_, " bytes",
                    undecodable_ != 0 ? ", undecodable: " + std::to_string(undecodable_) : "");
  }

  std::string shard_id_;
  std::uint64_t records_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t undecodable_ = 0;
  bool lease_lost_ = false;
};

}  // namespace

// Protocol mode with no arguments; natively with --stream NAME (see kclpp_count --help).
int main(int argc, char** argv) {
  return kclpp::main([](const std::string&) { return std::make_unique<Count>(); }, argc, argv);
}
