#pragma once
// The daemon side of the KCL MultiLangDaemon protocol: kcl::ChildProcess is a
// RecordProcessor that forwards every lifecycle call to a child process (any language)
// over its stdin/stdout, exactly as the Java MultiLangDaemon does.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/processor/record_processor.hpp"

namespace kclpp::kcl {

struct ChildProcessOptions {
  // Split on runs of spaces, no shell (docs/kcl-protocol.md §1: as the Java daemon's executableName).
  std::string command;
  // Longest time without progress while waiting for the child's status (timeoutInSeconds):
  // the clock restarts whenever the child reads more of a message we are writing (a 20 MB
  // processRecords line to a slow reader is progress, not a hang) and at every stdout line
  // it writes (a checkpoint request, for instance); stderr output does not count. Zero
  // waits forever, as the Java daemon does by default. On expiry the child is killed and
  // the call throws TransportError.
  std::chrono::milliseconds reply_timeout{0};
  // After the terminal message: how long the child may take to exit after its stdin is
  // closed before it gets SIGTERM, then as long again before SIGKILL.
  std::chrono::milliseconds exit_grace{5'000};
  // F_SETPIPE_SZ for the pipes to and from the child (0 keeps the OS default).
  std::size_t pipe_size = std::size_t{1} << 20;
  // Prefix of the log lines about the child; the shard id when empty. Each line the
  // child writes to stderr is logged at INFO as its own record with the fields `shard`
  // and `child_pid` (docs/operations.md §3), prefixed "[tag] " only when the tag is not
  // the shard id.
  std::string log_tag;
};

// Spawns the child at initialize() and forwards each call; serves the child's checkpoint
// requests through the Checkpointer it was given (InvalidStateException where the daemon
// has none: during initialize and lease_lost). Errors are per shard: child exit, a wrong
// responseFor or a reply timeout throw TransportError / ProtocolError from the call, and
// the instance is then unusable. Not thread-safe (one shard, one thread). Move-only.
class ChildProcess final : public RecordProcessor {
 public:
  explicit ChildProcess(ChildProcessOptions options);
  ~ChildProcess() override;  // closes and reaps the child (kills it if needed); never throws
  ChildProcess(ChildProcess&&) noexcept;
  ChildProcess& operator=(ChildProcess&&) noexcept;

  // Throws ConfigError (empty command, spawn failure), TransportError, ProtocolError.
  void initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) override;
  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) override;
  void lease_lost() override;
  void shard_ended(Checkpointer& checkpointer) override;
  void shutdown_requested(Checkpointer& checkpointer) override;

  // Closes the child's stdin, waits for it to exit (exit_grace, then SIGTERM, then
  // SIGKILL) and returns its wait status as from waitpid (nullopt if never started).
  // Idempotent; called by the destructor.
  std::optional<int> close() noexcept;
  // The child's pid while it runs.
  [[nodiscard]] std::optional<int> pid() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits an executableName the way the Java daemon does (on runs of spaces).
[[nodiscard]] std::vector<std::string> split_command(const std::string& command);

}  // namespace kclpp::kcl
