// The processor the kill -9 reliability test runs (tests/integration/reliability_test.cpp),
// natively through kclpp::main. For every batch it appends one line per record to the file
// named by $KCLPP_RELIABILITY_OUT with a single write() and fsync()s it BEFORE
// checkpointing at the batch's last record and returning: a record in the file is durably
// processed, and the checkpoint can never be ahead of the file.
//
// Line format (space separated): "R ROUND SHARD SEQ SUB DATA" where ROUND is
// $KCLPP_RELIABILITY_ROUND (which run of the processor wrote it). Each write starts with
// '\n', so a line torn by SIGKILL in the middle of a write() stays a line of its own that
// the reader discards, instead of corrupting the next run's first line.
// $KCLPP_RELIABILITY_PAUSE_MS (default 0) sleeps between the durable write and the
// checkpoint: "work" that widens the window in which a SIGKILL leaves processed records
// without a checkpoint, so that the test sees re-deliveries.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <kclpp/app/main.hpp>
#include <kclpp/processor.hpp>

namespace {

// Appends to the output file; one instance per shard (its own descriptor, O_APPEND so that
// the shards' writes never overwrite each other).
class DurableLog {
 public:
  explicit DurableLog(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw kclpp::ProcessorError("cannot open " + path + ": " + std::strerror(errno));
  }
  ~DurableLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  void append_durably(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw kclpp::ProcessorError(std::string("write failed: ") + std::strerror(errno));
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    if (::fsync(fd_) != 0) throw kclpp::ProcessorError(std::string("fsync failed: ") + std::strerror(errno));
  }

 private:
  int fd_;
};

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

class DurableProcessor final : public kclpp::RecordProcessor {
 public:
  DurableProcessor(const std::string& path, std::string round, std::chrono::milliseconds pause)
      : log_(path), round_(std::move(round)), pause_(pause) {}

  void initialize(const std::string& shard_id, const kclpp::ExtendedSequenceNumber& position) override {
    shard_id_ = shard_id;
    kclpp::log_info(shard_id_, ": round ", round_, " starts after ", position.str());
  }

  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    if (batch.records.empty()) return;
    std::string out = "\n";
    for (const kclpp::Record& record : batch.records) {
      out += "R ";
      out += round_;
      out += ' ';
      out += shard_id_;
      out += ' ';
      out += record.sequence_number.str();
      out += ' ';
      out += std::to_string(record.sub_sequence_number);
      out += ' ';
      out += record.data;  // the test's producer writes "p<number>": no spaces, no newlines
      out += '\n';
    }
    log_.append_durably(out);
    if (pause_.count() > 0) std::this_thread::sleep_for(pause_);
    // Failures propagate: the worker then restarts the shard from its last checkpoint.
    checkpointer.checkpoint(batch.records.back());
  }

  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    // Everything delivered is in the file already: checkpointing the largest delivered
    // record is safe.
    checkpointer.checkpoint();
  }

 private:
  DurableLog log_;
  std::string round_;
  std::chrono::milliseconds pause_;
  std::string shard_id_;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string path = env_or("KCLPP_RELIABILITY_OUT", "");
  if (path.empty()) {
    kclpp::log_error("reliability_processor: set KCLPP_RELIABILITY_OUT to the output file");
    return 1;
  }
  const std::string round = env_or("KCLPP_RELIABILITY_ROUND", "0");
  const std::chrono::milliseconds pause(std::strtol(env_or("KCLPP_RELIABILITY_PAUSE_MS", "0").c_str(), nullptr, 10));
  return kclpp::main(
      [&](const std::string&) { return std::make_unique<DurableProcessor>(path, round, pause); }, argc, argv);
}
