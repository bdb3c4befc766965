// kclpp's processor in bench/protocol_throughput: a RecordProcessor on kcl::run doing the
// benchmark's work, the same as bench/node/count_processor.js does on aws-kcl:
//   - sum data.size() of every record (data arrives base64-decoded by the runtime),
//   - checkpoint(record) every 10,000 records,
//   - checkpoint() (SHARD_END) at shard end and log the totals to stderr.
// Pipe sizes: KCLPP_BENCH_PIPE_SIZE=<bytes> sets RunOptions::pipe_size; unset or 0 keeps
// the OS default (64 KiB), so the driver's "default pipe" configuration is default on both
// sides.

#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kclpp/kcl/run.hpp"
#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/record_processor.hpp"

namespace {

constexpr std::uint64_t checkpoint_every = 10'000;

// Counts records and payload bytes. Single-threaded, as kcl::run calls it.
class CountProcessor final : public kclpp::RecordProcessor {
 public:
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    for (const kclpp::Record& record : batch.records) {
      bytes_ += record.data.size();
      ++records_;
      if (records_ % checkpoint_every == 0) {
        checkpointer.checkpoint(record);
        ++checkpoints_;
      }
    }
  }

  void shard_ended(kclpp::Checkpointer& checkpointer) override {
    checkpointer.checkpoint();
    ++checkpoints_;
    // The driver checks these totals (stderr: stdout belongs to the protocol).
    std::fprintf(stderr, "count_child: records=%" PRIu64 " bytes=%" PRIu64 " checkpoints=%" PRIu64 "\n",
                 records_, bytes_, checkpoints_);
  }

 private:
  std::uint64_t records_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t checkpoints_ = 0;
};

std::size_t pipe_size_from_env() {
  const char* value = std::getenv("KCLPP_BENCH_PIPE_SIZE");
  if (value == nullptr || *value == '\0') return 0;
  return static_cast<std::size_t>(std::strtoull(value, nullptr, 10));
}

}  // namespace

int main() {
  kclpp::kcl::RunOptions options;
  options.pipe_size = pipe_size_from_env();
  CountProcessor processor;
  return kclpp::kcl::run(processor, options);
}
