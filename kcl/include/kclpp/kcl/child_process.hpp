#pragma once
// The daemon side of the KCL MultiLangDaemon protocol: kcl::ChildProcess is a
// RecordProcessor that forwards every lifecycle call to a child process (any language)
// over its stdin/stdout, exactly as the Java MultiLangDaemon does.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/processor/record_processor.hpp"

namespace kclpp::kcl {

// Which messages end a shard (docs/kcl-protocol.md §2, §8).
enum class TerminalMessages {
  Kcl2,          // leaseLost and shardEnded (KCL 2.x and 3.x)
  Kcl1Shutdown,  // KCL 1.x: `shutdown` with reason ZOMBIE from lease_lost() (its checkpoint
                 // requests answered ShutdownException, as the 1.x checkpointer does) or
                 // TERMINATE from shard_ended(); the child answers status for "shutdown"
};

// Something the child wrote on stdout besides what the RecordProcessor calls return, for
// a tool that judges the child (`kclpp conformance`). The views are valid during the call.
struct ChildEvent {
  enum class Kind {
    StrayLine,          // not a protocol message: logged and skipped, as the Java daemon does
    NonStrictMessage,   // a status or checkpoint with keys the Java daemon's strict reader
                        // rejects (`detail` names them); accepted here
    IgnoredMessage,     // valid JSON, but an unknown action or no child message: skipped
    CheckpointRequest,  // a checkpoint request as sent, and the answer it got
    Status,             // a status (for `during` or, a protocol error, another action)
  };
  Kind kind = Kind::StrayLine;
  std::string_view during;  // the action whose status we were waiting for
  std::string_view line;    // the line as received
  std::string_view detail;
  // CheckpointRequest: the request's fields (nullopt: null or absent) and the error name
  // answered (nullopt: success).
  std::optional<std::string_view> sequence_number;
  std::optional<std::int64_t> sub_sequence_number;
  std::optional<std::string_view> error;
};

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
  // KCL 2.x messages by default; KCL 1.x's `shutdown` to check that a child still speaks it.
  TerminalMessages terminal_messages = TerminalMessages::Kcl2;
  // Called (on the calling thread, inside the call) for each ChildEvent; must not throw.
  std::function<void(const ChildEvent&)> observer{};
};

// Spawns the child at initialize() and forwards each call; serves the child's checkpoint
// requests through the Checkpointer it was given (InvalidStateException where the daemon
// has none: during initialize and lease_lost). Errors are per shard: child exit, a wrong
// responseFor or a reply timeout throw TransportError / ProtocolError from the call, and
// the instance is then unusable. Not thread-safe (one shard, one thread), except
// interrupt(). Move-only.
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
  // Thread-safe, the one call that may come from another thread while a call runs (the
  // worker's watchdog, docs/operations.md §2): kills the child (SIGKILL), so that the running
  // call throws TransportError soon; the instance is unusable afterwards.
  void interrupt() noexcept override;

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
