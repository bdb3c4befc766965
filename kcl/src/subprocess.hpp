#pragma once
// The child process under kcl::ChildProcess (private to kclpp::kcl): spawn, non-blocking
// pipes, stderr forwarding to the log, exit detection and reaping. Knows nothing of the
// protocol: it moves bytes, and the conversation on top decides what they mean.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io.hpp"

namespace kclpp::kcl::detail {

using Clock = std::chrono::steady_clock;

enum class Reap {
  Graceful,  // close stdin, wait exit_grace, then SIGTERM, then SIGKILL
  Kill,      // SIGKILL first (a hung or misbehaving child)
};

// Lets another thread kill the child (ChildProcess::interrupt, from the worker's watchdog)
// without racing its reaping: the pid is armed after the spawn and disarmed, under the
// mutex, by every waitpid that can reap it, so a kill can never reach a reused pid.
// Thread-safe.
class KillSwitch {
 public:
  // Kills at once when fire() came first (an interrupt during the spawn).
  void arm(pid_t pid) noexcept;
  void disarm() noexcept;
  // SIGKILL to the child if it runs; remembered either way (fired()).
  void fire() noexcept;
  [[nodiscard]] bool fired() const noexcept;
  // waitpid(pid, &status, WNOHANG) under the mutex, disarming when it reaped (or failed).
  pid_t wait_nohang(pid_t pid, int& status) noexcept;

 private:
  mutable std::mutex mutex_;
  pid_t pid_ = -1;
  bool fired_ = false;
};

struct SubprocessOptions {
  std::vector<std::string> argv;  // argv[0] without '/' is looked up on PATH
  std::string command;            // as configured, for messages
  std::size_t pipe_size = 0;      // F_SETPIPE_SZ for stdin and stdout; 0 keeps the default
  std::chrono::milliseconds exit_grace{5'000};
  std::string log_tag;            // prefix of every log line about the child
  std::shared_ptr<KillSwitch> kill_switch;  // optional: armed with the child's pid
  // The `shard` field of the child's stderr lines (docs/operations.md §3); none when empty.
  std::string shard_id;
};

// A stdin write or poll() that failed: the child is beyond use. `error` is the errno.
struct IoError {
  enum class Kind { StdinClosed, WriteFailed, PollFailed };
  Kind kind;
  int error;
};

// What one pump() did.
struct Pumped {
  bool wrote = false;  // some stdin bytes went out (the child is reading)
  std::optional<IoError> error;
};

// "exit code 3", "killed by signal 9 (Killed)": a waitpid status for messages.
[[nodiscard]] std::string describe_wait_status(int status);

// One spawned child with pipes on its stdin, stdout and stderr. Bytes for its stdin are
// appended to stdin_buffer() and written by pump(); its stdout is collected into lines
// (next_stdout_line()); its stderr goes to the log line by line. The destructor reaps the
// child (Reap::Graceful) and never throws. Move-only; a default-constructed or moved-from
// instance has no child. Not thread-safe: one thread drives an instance (distinct
// instances are independent).
class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess() { (void)reap(Reap::Graceful); }
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Starts argv with the environment and working directory of this process. Throws
  // ConfigError (the program cannot be started) or TransportError (pipes).
  static Subprocess spawn(SubprocessOptions options);

  // Bytes not yet written to the child's stdin; append to send more.
  [[nodiscard]] std::string& stdin_buffer() noexcept { return outgoing_; }
  // The next complete stdout line ('\r' stripped, decode_padding readable bytes after it),
  // valid until the next pump(); nullopt when no complete line is buffered.
  [[nodiscard]] std::optional<std::string_view> next_stdout_line();

  // One poll() over the pipes, for at most min(max_wait, exit_check_interval): writes
  // what stdin takes, reads stdout and stderr once, and looks for the child's exit (once
  // it is gone, reads what it left in the pipes). Never throws for I/O: an error comes back.
  Pumped pump(Clock::duration max_wait);

  // Reaped (the child has exited and its status is known).
  [[nodiscard]] bool exited() const noexcept { return wait_status_.has_value(); }
  // The child's stdout reached EOF (or failed).
  [[nodiscard]] bool stdout_closed() const noexcept { return out_eof_; }
  // The pid while the child runs.
  [[nodiscard]] std::optional<int> running_pid() const noexcept;

  // Closes stdin and waits for the child (see `Reap`), logging what it still writes;
  // returns its wait status as from waitpid (nullopt if there never was a child).
  // Idempotent; never throws.
  std::optional<int> reap(Reap mode) noexcept;

  // How often pump() looks for the child's exit (waitpid WNOHANG) while the pipes are quiet.
  static constexpr std::chrono::milliseconds exit_check_interval{20};

 private:
  // Where reap() is in its escalation: the child has its stdin EOF, or a signal.
  enum class Stage { StdinClosed, Signalled };

  explicit Subprocess(SubprocessOptions options) : options_(std::move(options)) {}

  void take(Subprocess& other) noexcept;
  void configure_pipes();
  void check_exit(bool due);
  Pumped write_some();
  bool read_stdout_once();
  void drain_stdout();
  bool read_stderr_once();
  void drain_stderr();
  void log_stderr(std::string_view chunk);
  void emit_stderr_line(std::string_view line);
  void flush_stderr();
  void log_leftover_stdout();
  bool try_wait();
  void blocking_wait();
  void await_exit(Stage stage);
  void read_while_exiting(Clock::duration left, bool exited);
  void release() noexcept;

  SubprocessOptions options_;
  pid_t pid_ = -1;
  std::optional<int> wait_status_;  // set once reaped
  UniqueFd in_;                     // child's stdin (our write end)
  UniqueFd out_;                    // child's stdout (our read end)
  UniqueFd err_;                    // child's stderr (our read end)
  UniqueFd pidfd_;                  // readable once the child exits (Linux >= 5.3), else invalid
  bool out_eof_ = false;
  LineBuffer out_lines_;
  std::string err_partial_;
  std::string outgoing_;  // bytes not yet written to the child's stdin
  std::size_t outgoing_offset_ = 0;
  std::size_t read_chunk_ = 64 * 1024;
  Clock::time_point last_exit_check_{};
};

}  // namespace kclpp::kcl::detail
