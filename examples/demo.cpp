// demo (`make demo`): kclpp as the daemon. Two kcl::ChildProcess instances drive a
// multilang child (by default the echo example, checkpointing every 10 records) over a
// generated stream of 2 shards, with an in-memory Checkpointer that validates and prints
// every checkpoint. Shard 0 is read to its end (shard_ended); shard 1 is shut down
// (shutdown_requested) and then loses its lease (lease_lost). Prints a summary at the end.
//
//   kclpp_demo [CHILD_COMMAND]     default: "<this binary's directory>/kclpp_echo 10"
//
// The demo's own report goes to stdout; the child's log lines go to stderr.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <sys/wait.h>

#include <kclpp/kcl.hpp>

namespace {

constexpr int shard_count = 2;
constexpr int records_per_shard = 25;
constexpr int batch_size = 5;

// What the demo reports per shard.
struct ShardStats {
  std::uint64_t delivered = 0;
  std::uint64_t checkpoints = 0;
  std::string final_checkpoint = "(none)";
  std::string ending;
  std::string child_exit;
};

// The checkpoint store of a real daemon, in memory, with the KCL's rules (docs/kcl-protocol.md §5):
// nullopt means the largest record delivered (SHARD_END inside shard_ended), an explicit
// position must lie in [last checkpoint, largest delivered], and the last record's
// position inside shard_ended is stored as SHARD_END. Not thread-safe.
class MemoryCheckpointer final : public kclpp::Checkpointer {
 public:
  MemoryCheckpointer(std::string shard_id, ShardStats& stats)
      : shard_id_(std::move(shard_id)), stats_(stats) {}

  void delivered(const kclpp::RecordBatch& batch) {
    if (!batch.records.empty()) largest_ = batch.records.back().position();
    stats_.delivered += batch.records.size();
  }
  void set_shard_ending() { shard_ending_ = true; }

  void checkpoint_once(const std::optional<kclpp::ExtendedSequenceNumber>& at) override {
    kclpp::ExtendedSequenceNumber value;
    if (!at) {
      if (shard_ending_) {
        value = kclpp::ExtendedSequenceNumber(kclpp::Sentinel::ShardEnd);
      } else if (largest_) {
        value = *largest_;
      } else {
        throw kclpp::CheckpointError("no record delivered yet", "InvalidStateException");
      }
    } else {
      validate(*at);
      value = shard_ending_ && *at == *largest_
                  ? kclpp::ExtendedSequenceNumber(kclpp::Sentinel::ShardEnd)
                  : *at;
    }
    stored_ = value;
    ++stats_.checkpoints;
    stats_.final_checkpoint = describe(value);
    std::printf("  checkpoint  %s at %s\n", shard_id_.c_str(), stats_.final_checkpoint.c_str());
  }

 private:
  void validate(const kclpp::ExtendedSequenceNumber& at) const {
    const bool in_range =
        !at.is_sentinel() && largest_ && kclpp::compare_positions(at, *largest_) <= 0 &&
        (!stored_ || stored_->is_sentinel() || kclpp::compare_positions(*stored_, at) <= 0);
    if (!in_range) {
      throw kclpp::CheckpointError("checkpoint " + at.str() + " did not fall into acceptable range",
                                   "IllegalArgumentException");
    }
  }
  static std::string describe(const kclpp::ExtendedSequenceNumber& value) {
    if (value.is_sentinel() || value.sub_sequence_number() == 0) return value.str();
    return value.str() + "/" + std::to_string(value.sub_sequence_number());
  }

  std::string shard_id_;
  ShardStats& stats_;
  std::optional<kclpp::ExtendedSequenceNumber> largest_;
  std::optional<kclpp::ExtendedSequenceNumber> stored_;
  bool shard_ending_ = false;
};

struct Shard {
  Shard(int shard_index, const std::string& command)
      : id("shardId-00000000000" + std::to_string(shard_index)),
        index(shard_index),
        checkpointer(id, stats),
        child(kclpp::kcl::ChildProcessOptions{.command = command, .log_tag = id}) {}

  std::string id;
  int index;
  ShardStats stats;
  MemoryCheckpointer checkpointer;
  kclpp::kcl::ChildProcess child;
};

// Sequence numbers as Kinesis makes them: 56 digits, increasing within a shard.
std::string sequence_number(int shard, int n) {
  char tail[16];
  std::snprintf(tail, sizeof tail, "%d%05d", shard, n);
  return "49590338271490256608559692538361571095921575989136" + std::string(tail);
}

kclpp::RecordBatch make_batch(const Shard& shard, int first) {
  kclpp::RecordBatch batch;
  for (int n = first; n < first + batch_size; ++n) {
    kclpp::Record record;
    record.data = "record " + std::to_string(n) + " of " + shard.id;
    record.partition_key = "user-" + std::to_string(n % 7);
    record.sequence_number = kclpp::SequenceNumber(sequence_number(shard.index, n));
    record.approximate_arrival_timestamp = std::chrono::system_clock::now();
    batch.records.push_back(std::move(record));
  }
  batch.millis_behind_latest = (records_per_shard - first - batch_size) * 10;
  return batch;
}

std::string exit_description(std::optional<int> status) {
  if (!status) return "not started";
  if (WIFEXITED(*status)) return "exit " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return "signal " + std::to_string(WTERMSIG(*status));
  return "status " + std::to_string(*status);
}

std::string default_command(const char* argv0) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) self = argv0;
  return (self.parent_path() / "kclpp_echo").string() + " 10";
}

void print_summary(const std::deque<Shard>& shards) {
  std::printf("\n%-22s %9s %11s  %-58s %s\n", "shard", "delivered", "checkpoints",
              "final checkpoint", "ending (child)");
  for (const Shard& s : shards) {
    std::printf("%-22s %9llu %11llu  %-58s %s (%s)\n", s.id.c_str(),
                static_cast<unsigned long long>(s.stats.delivered),
                static_cast<unsigned long long>(s.stats.checkpoints),
                s.stats.final_checkpoint.c_str(), s.stats.ending.c_str(),
                s.stats.child_exit.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : default_command(argv[0]);
  std::printf("kclpp demo: %d shards x %d records in batches of %d, child: %s\n", shard_count,
              records_per_shard, batch_size, command.c_str());
  std::deque<Shard> shards;  // Shard is not movable: a deque never relocates its elements
  try {
    for (int i = 0; i < shard_count; ++i) {
      Shard& shard = shards.emplace_back(i, command);
      shard.child.initialize(shard.id, kclpp::ExtendedSequenceNumber(kclpp::Sentinel::TrimHorizon));
      std::printf("  initialize  %s at TRIM_HORIZON (child pid %d)\n", shard.id.c_str(),
                  shard.child.pid().value_or(-1));
    }
    // The batches of the two shards alternate, as two shard consumers would interleave.
    for (int first = 0; first < records_per_shard; first += batch_size) {
      for (Shard& shard : shards) {
        const kclpp::RecordBatch batch = make_batch(shard, first);
        shard.checkpointer.delivered(batch);
        std::printf("  records     %s %d..%d\n", shard.id.c_str(), first, first + batch_size - 1);
        std::fflush(stdout);
        shard.child.process_records(batch, shard.checkpointer);
      }
    }

    Shard& ended = shards[0];
    std::printf("  shardEnded  %s\n", ended.id.c_str());
    ended.checkpointer.set_shard_ending();
    ended.child.shard_ended(ended.checkpointer);
    ended.stats.ending = "shard_ended";

    Shard& handed_over = shards[1];
    std::printf("  shutdownRequested %s\n", handed_over.id.c_str());
    handed_over.child.shutdown_requested(handed_over.checkpointer);
    std::printf("  leaseLost   %s\n", handed_over.id.c_str());
    handed_over.child.lease_lost();
    handed_over.stats.ending = "shutdown_requested, lease_lost";
  } catch (const kclpp::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "kclpp demo: failed: %s\n", e.what());
    return 1;
  }

  for (Shard& shard : shards) shard.stats.child_exit = exit_description(shard.child.close());
  print_summary(shards);
  return 0;
}
