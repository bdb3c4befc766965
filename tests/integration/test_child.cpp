// A processor program for the child-runtime tests (child_runtime_test.cpp): runs
// kcl::run() with a RecordProcessor whose behaviour is chosen by argv[1]. It reports what
// it saw on stderr as lines "SAW {json}" so the tests can check the calls.
//
//   test_child MODE [--log-and-continue] [--guard-off] [--pipe-size=N] [--retry-fast]
//
// Modes: echo, checkpoint-each, checkpoint-last-once, checkpoint-null-once,
// checkpoint-twice-once, retry, py-v1, uncaught-checkpoint, throw-init, throw-process,
// throw-shard-end, throw-lease-lost, throw-shutdown-requested, throw-non-std,
// no-checkpoint-shard-end, seq-checkpoint-shard-end, printf-stdout, stale-checkpointer,
// reentrant.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "kclpp/internal/hex.hpp"
#include "kclpp/kcl/run.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/record_processor.hpp"

namespace {

using namespace std::chrono_literals;

void saw(const std::string& json) {
  const std::string line = "SAW " + json + "\n";
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::write(2, rest.data(), rest.size());
    if (n <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Each byte as one JSON character (\u00XX at or above 0x7f), unlike the shared writer
// (kclpp/internal/json_string.hpp): the tests read record data back byte for byte, binary
// or not.
std::string quote(std::string_view s) {
  std::string out = "\"";
  const char* hex = kclpp::detail::hex_lower;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string error_json(const kclpp::Error& e) {
  std::string type = "Error";
  if (dynamic_cast<const kclpp::ThrottledError*>(&e) != nullptr) type = "ThrottledError";
  else if (dynamic_cast<const kclpp::LeaseLostError*>(&e) != nullptr) type = "LeaseLostError";
  else if (dynamic_cast<const kclpp::CheckpointError*>(&e) != nullptr) type = "CheckpointError";
  else if (dynamic_cast<const kclpp::TransportError*>(&e) != nullptr) type = "TransportError";
  else if (dynamic_cast<const kclpp::ProtocolError*>(&e) != nullptr) type = "ProtocolError";
  return "{\"checkpoint\":\"error\",\"name\":" + quote(e.kcl_name()) + ",\"type\":" +
         quote(type) + ",\"what\":" + quote(e.what()) + "}";
}

// Runs one checkpoint call and reports its outcome.
template <class Fn>
void report_checkpoint(Fn&& fn) {
  try {
    fn();
    saw("{\"checkpoint\":\"ok\"}");
  } catch (const kclpp::Error& e) {
    saw(error_json(e));
  }
}

class TestProcessor : public kclpp::RecordProcessor {
 public:
  explicit TestProcessor(std::string mode) : mode_(std::move(mode)) {}

  void initialize(const std::string& shard_id,
                  const kclpp::ExtendedSequenceNumber& position) override {
    noise("initialize");
    if (mode_ != "py-v1") {
      saw("{\"call\":\"initialize\",\"shard\":" + quote(shard_id) + ",\"position\":" +
          quote(position.str()) + ",\"sub\":" + std::to_string(position.sub_sequence_number()) +
          ",\"sentinel\":" + (position.is_sentinel() ? "true" : "false") + "}");
    }
    if (mode_ == "throw-init") throw std::runtime_error("boom in initialize");
  }

  void process_records(const kclpp::RecordBatch& batch,
                       kclpp::Checkpointer& checkpointer) override {
    noise("process_records");
    if (!batch.records.empty()) last_ = batch.records.back().position();
    if (mode_ != "py-v1") saw(describe(batch));
    if (mode_ == "throw-process") throw std::runtime_error("boom in process_records");
    if (mode_ == "throw-non-std") throw 42;
    if (mode_ == "stale-checkpointer") stale_ = &checkpointer;
    if (mode_ == "checkpoint-each") {
      for (const auto& record : batch.records) {
        report_checkpoint([&] { checkpointer.checkpoint(record); });
      }
    } else if (mode_ == "checkpoint-last-once" && last_) {
      report_checkpoint([&] { checkpointer.checkpoint_once(last_); });
    } else if (mode_ == "checkpoint-null-once") {
      report_checkpoint([&] { checkpointer.checkpoint_once(std::nullopt); });
    } else if (mode_ == "checkpoint-twice-once" && last_) {
      report_checkpoint([&] { checkpointer.checkpoint_once(last_); });
      report_checkpoint([&] { checkpointer.checkpoint_once(last_); });
    } else if (mode_ == "retry" && last_) {
      report_checkpoint([&] { checkpointer.checkpoint(last_->sequence_number(),
                                                      last_->sub_sequence_number()); });
    } else if (mode_ == "uncaught-checkpoint" && last_) {
      checkpointer.checkpoint_once(last_);
      saw("{\"checkpoint\":\"ok\"}");
    } else if (mode_ == "py-v1" && last_) {
      // Python's sample (docs/kcl-protocol.md §9): retry any failure, quietly.
      for (int attempt = 0; attempt < 5; ++attempt) {
        try {
          checkpointer.checkpoint_once(last_);
          break;
        } catch (const kclpp::Error&) {
        }
      }
    } else if (mode_ == "reentrant" && last_) {
      // A second call while the first waits for its response (from another thread: the
      // only way to overlap two calls; the Checkpointer must refuse, not interleave).
      std::thread other([&] {
        std::this_thread::sleep_for(300ms);
        try {
          checkpointer.checkpoint_once(std::nullopt);
          saw("{\"reentrant\":\"ok\"}");
        } catch (const kclpp::Error& e) {
          saw("{\"reentrant\":" + error_json(e) + "}");
        }
      });
      report_checkpoint([&] { checkpointer.checkpoint_once(last_); });
      other.join();
    }
  }

  void lease_lost() override {
    noise("lease_lost");
    saw("{\"call\":\"lease_lost\"}");
    if (mode_ == "throw-lease-lost") throw std::runtime_error("boom in lease_lost");
    if (mode_ == "stale-checkpointer" && stale_ != nullptr) {
      report_checkpoint([&] { stale_->checkpoint_once(std::nullopt); });
    }
  }

  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    noise("shard_ended");
    if (mode_ == "py-v1") {
      checkpointer.checkpoint_once(std::nullopt);
      return;
    }
    saw("{\"call\":\"shard_ended\"}");
    if (mode_ == "throw-shard-end") throw std::runtime_error("boom in shard_ended");
    if (mode_ == "no-checkpoint-shard-end") return;
    if (mode_ == "seq-checkpoint-shard-end" && last_) {
      report_checkpoint([&] { checkpointer.checkpoint_once(last_); });
      return;
    }
    report_checkpoint([&] { checkpointer.checkpoint(); });
  }

  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    noise("shutdown_requested");
    saw("{\"call\":\"shutdown_requested\"}");
    if (mode_ == "throw-shutdown-requested") {
      throw std::runtime_error("boom in shutdown_requested");
    }
    report_checkpoint([&] { checkpointer.checkpoint(); });
  }

 private:
  // Stray stdout output from user code: the guard must keep it off the protocol.
  void noise(const char* call) const {
    if (mode_ != "printf-stdout") return;
    std::printf("PRINTF-NOISE %s", call);  // no newline: would glue to a status
    std::cout << "COUT-NOISE " << call << '\n';
    std::fflush(stdout);
    const std::string raw = std::string("RAW-FD1-NOISE ") + call;
    (void)!::write(1, raw.data(), raw.size());
  }

  static std::string describe(const kclpp::RecordBatch& batch) {
    std::string out = "{\"call\":\"process_records\",\"n\":" +
                      std::to_string(batch.records.size()) + ",\"mbl\":" +
                      (batch.millis_behind_latest ? std::to_string(*batch.millis_behind_latest)
                                                  : std::string("null")) +
                      ",\"records\":[";
    bool first = true;
    for (const auto& r : batch.records) {
      if (!first) out += ',';
      first = false;
      std::uint32_t sum = 0;
      for (char c : r.data) sum = sum * 31 + static_cast<unsigned char>(c);
      out += "{\"pk\":" + quote(r.partition_key) + ",\"seq\":" + quote(r.sequence_number.str()) +
             ",\"sub\":" + std::to_string(r.sub_sequence_number) + ",\"ts\":";
      if (r.approximate_arrival_timestamp) {
        out += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  r.approximate_arrival_timestamp->time_since_epoch())
                                  .count());
      } else {
        out += "null";
      }
      out += ",\"len\":" + std::to_string(r.data.size()) + ",\"sum\":" + std::to_string(sum);
      if (r.data.size() <= 64) out += ",\"data\":" + quote(r.data);
      if (!r.data_error.empty()) out += ",\"data_error\":" + quote(r.data_error);
      out += '}';
    }
    return out + "]}";
  }

  std::string mode_;
  std::optional<kclpp::ExtendedSequenceNumber> last_;
  kclpp::Checkpointer* stale_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODE [options]\n", argv[0]);
    return 64;
  }
  const std::string mode = argv[1];
  kclpp::kcl::RunOptions options;
  // Fast retries so tests of throttling take milliseconds, not seconds.
  options.checkpoint_retry = kclpp::RetryPolicy{5, 1ms, 5ms, 2ms};
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--log-and-continue") {
      options.on_processor_error = kclpp::OnProcessorError::LogAndContinue;
    } else if (arg == "--guard-off") {
      options.stdout_guard = kclpp::kcl::StdoutGuard::Off;
    } else if (arg.substr(0, 12) == "--pipe-size=") {
      options.pipe_size = std::strtoull(argv[i] + 12, nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 64;
    }
  }
  if (mode == "printf-stdout") std::printf("PRE-RUN-NOISE");  // buffered, no newline
  TestProcessor processor(mode);
  return kclpp::kcl::run(processor, options);
}
