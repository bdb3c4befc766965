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
//
// $KCLPP_RELIABILITY_EVENTS=1 (the lease fleet test, lease_fleet_test.cpp) switches to a
// timed format that also records the processor's lifecycle, one processor instance per
// "INSTANCE" (pid.counter), NS = steady_clock nanoseconds (CLOCK_MONOTONIC: one clock for
// every process of the host, the test's included), WORKER = $KCLPP_RELIABILITY_ROUND:
//   "T NS WORKER INSTANCE SHARD SEQ SUB DATA"   a record (NS: when the batch arrived)
//   "E NS WORKER INSTANCE SHARD EVENT DETAIL"   initialize (DETAIL: the start position),
//       lease_lost, shard_ended, shutdown_requested, checkpoint_failed (DETAIL: the
//       error's class name), each written durably before the call returns.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
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

enum class Format { Plain, Events };

std::string now_ns() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Which failure a checkpoint met, for the event log (no spaces).
std::string error_class(const std::exception& e) {
  if (dynamic_cast<const kclpp::LeaseLostError*>(&e) != nullptr) return "LeaseLostError";
  if (dynamic_cast<const kclpp::StoreError*>(&e) != nullptr) return "StoreError";
  if (dynamic_cast<const kclpp::Error*>(&e) != nullptr) return "Error";
  return "exception";
}

class DurableProcessor final : public kclpp::RecordProcessor {
 public:
  DurableProcessor(const std::string& path, std::string round, std::chrono::milliseconds pause, Format format)
      : log_(path), round_(std::move(round)), pause_(pause), format_(format) {
    static std::atomic<int> instances{0};
    instance_ = std::to_string(::getpid()) + "." + std::to_string(++instances);
  }

  void initialize(const std::string& shard_id, const kclpp::ExtendedSequenceNumber& position) override {
    shard_id_ = shard_id;
    kclpp::log_info(shard_id_, ": round ", round_, " starts after ", position.str());
    event("initialize", position.str());
  }

  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    if (batch.records.empty()) return;
    const std::string arrived = format_ == Format::Events ? now_ns() : std::string();
    std::string out = "\n";
    for (const kclpp::Record& record : batch.records) {
      if (format_ == Format::Events) {
        out += "T " + arrived + ' ' + round_ + ' ' + instance_;
      } else {
        out += "R ";
        out += round_;
      }
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
    checkpoint([&] { checkpointer.checkpoint(batch.records.back()); });
  }

  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    event("shutdown_requested", "-");
    // Everything delivered is in the file already: checkpointing the largest delivered
    // record is safe.
    checkpoint([&] { checkpointer.checkpoint(); });
  }

  void lease_lost() override { event("lease_lost", "-"); }

  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    event("shard_ended", "-");
    // Inside shard_ended a checkpoint without a position is SHARD_END (as the default).
    checkpoint([&] { checkpointer.checkpoint(); });
  }

 private:
  // Runs a checkpoint; a failure is logged as an event, then propagates.
  template <class Fn>
  void checkpoint(Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      event("checkpoint_failed", error_class(e));
      throw;
    }
  }

  void event(const char* name, const std::string& detail) {
    if (format_ != Format::Events) return;
    log_.append_durably("\nE " + now_ns() + ' ' + round_ + ' ' + instance_ + ' ' + shard_id_ + ' ' + name + ' ' +
                        detail + '\n');
  }

  DurableLog log_;
  std::string round_;
  std::chrono::milliseconds pause_;
  Format format_;
  std::string instance_;
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
  const Format format = env_or("KCLPP_RELIABILITY_EVENTS", "0") == "1" ? Format::Events : Format::Plain;
  return kclpp::main(
      [&](const std::string&) { return std::make_unique<DurableProcessor>(path, round, pause, format); }, argc,
      argv);
}
