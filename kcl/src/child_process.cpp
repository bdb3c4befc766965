// kcl::ChildProcess: the daemon side of the MultiLangDaemon protocol (docs/kcl-protocol.md §1, §3, §4, §5).
//
// One child process per shard, driven from the calling thread by a single poll() loop over
// non-blocking pipes: it writes the pending bytes to the child's stdin while it reads the
// child's stdout (protocol lines) and stderr (log lines), so a 20 MB processRecords line
// never blocks behind a child that is busy writing. No threads.
//
// SIGPIPE: a write to a pipe whose reader is gone raises SIGPIPE, whose default action kills
// the whole process. We never touch the process-wide disposition (a library must not):
// around each write we block SIGPIPE in the calling thread only (pthread_sigmask); on EPIPE
// we consume the SIGPIPE our write generated (sigtimedwait with a zero timeout, unless one
// was already pending before) and restore the mask. EPIPE then becomes a TransportError.

#include "kclpp/kcl/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "codec.hpp"
#include "io.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

extern char** environ;

namespace kclpp::kcl {

std::vector<std::string> split_command(const std::string& command) {
  // Java: executableName.split(" +"). Only spaces separate (a tab stays in its word); we
  // also drop the empty word a leading space would give, which cannot name a program.
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < command.size()) {
    while (i < command.size() && command[i] == ' ') ++i;
    if (i == command.size()) break;
    const std::size_t start = i;
    while (i < command.size() && command[i] != ' ') ++i;
    words.emplace_back(command, start, i - start);
  }
  return words;
}

namespace {

using Clock = std::chrono::steady_clock;
using detail::Action;
using detail::UniqueFd;

// How often the loops look for the child's exit (waitpid WNOHANG) while its pipes are quiet.
constexpr auto exit_check_interval = std::chrono::milliseconds{20};
// Reads per pipe when draining what a gone child left behind.
constexpr int max_drain_reads = 256;
// A stderr "line" longer than this without a newline is logged in pieces.
constexpr std::size_t max_stderr_line = 64 * 1024;

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "wait status " + std::to_string(status);
}

int poll_timeout_ms(Clock::duration d) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

// Blocks SIGPIPE in this thread for the guard's lifetime (see the file comment).
class SigpipeBlock {
 public:
  SigpipeBlock() noexcept {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

  // After EPIPE: discard the SIGPIPE that our write made pending.
  void consume() noexcept {
    if (was_pending_) return;
    timespec zero{};
    while (sigtimedwait(&set_, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }

 private:
  sigset_t set_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

struct SpawnActions {
  posix_spawn_file_actions_t actions{};
  SpawnActions() { posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

struct SpawnAttr {
  posix_spawnattr_t attr{};
  SpawnAttr() { posix_spawnattr_init(&attr); }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
};

void make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw TransportError(std::string("pipe2 failed: ") + std::strerror(errno));
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
}

enum class ErrorKind { Protocol, Transport };
enum class Reap { Graceful, Kill };

// Thrown inside the loop, turned into the public error by fail().
struct Failure {
  ErrorKind kind;
  std::string what;
  Reap reap;
};

}  // namespace

struct ChildProcess::Impl {
  enum class State { NotStarted, Running, Ended, Failed };

  explicit Impl(ChildProcessOptions o) : options(std::move(o)) {}
  ~Impl() { (void)close(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  ChildProcessOptions options;
  std::string tag;
  State state = State::NotStarted;
  ErrorKind error_kind = ErrorKind::Protocol;
  std::string error_what;

  pid_t pid = -1;
  std::optional<int> wait_status;  // set once reaped
  UniqueFd in;                     // child's stdin (our write end)
  UniqueFd out;                    // child's stdout (our read end)
  UniqueFd err;                    // child's stderr (our read end)
  UniqueFd pidfd;                  // readable once the child exits (Linux >= 5.3), else invalid
  bool out_eof = false;

  detail::LineBuffer out_lines;
  std::string err_partial;
  std::string outgoing;  // bytes not yet written to the child's stdin
  std::size_t outgoing_offset = 0;
  std::size_t read_chunk = 64 * 1024;

  detail::Decoder decoder;
  detail::Message message;
  RecordBatch scratch_batch;  // records of a (ignored) processRecords echoed by the child

  // --- lifecycle -------------------------------------------------------------------------

  void check_usable(std::string_view call) const {
    switch (state) {
      case State::Running:
        return;
      case State::NotStarted:
        throw ProtocolError(std::string(call) + " called before initialize()");
      case State::Ended:
        throw ProtocolError(std::string(call) + " called after the terminal call (the child [" +
                            tag + "] has been shut down)");
      case State::Failed: {
        const std::string what = std::string(call) + ": the child [" + tag +
                                 "] is unusable after an earlier error: " + error_what;
        if (error_kind == ErrorKind::Transport) throw TransportError(what, Retry::No);
        throw ProtocolError(what);
      }
    }
  }

  void spawn() {
    const std::vector<std::string> words = split_command(options.command);
    if (words.empty()) throw ConfigError("kcl::ChildProcess: empty command");
    std::vector<char*> argv;
    argv.reserve(words.size() + 1);
    for (const std::string& w : words) argv.push_back(const_cast<char*>(w.c_str()));
    argv.push_back(nullptr);

    UniqueFd in_read, in_write, out_read, out_write, err_read, err_write;
    make_pipe(in_read, in_write);
    make_pipe(out_read, out_write);
    make_pipe(err_read, err_write);

    SpawnActions fa;
    posix_spawn_file_actions_adddup2(&fa.actions, in_read.get(), STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa.actions, out_write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa.actions, err_write.get(), STDERR_FILENO);
    // All six ends are O_CLOEXEC; dup2 clears the flag on the child's 0, 1 and 2 only.

    // The child starts with an empty signal mask and the default SIGPIPE action, whatever
    // this process has (a child that ignores SIGPIPE would not die when we go away).
    SpawnAttr sa;
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&sa.attr, &empty);
    posix_spawnattr_setsigdefault(&sa.attr, &defaults);
    posix_spawnattr_setflags(&sa.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t child = -1;
    // posix_spawnp: a word without '/' is looked up on PATH, as ProcessBuilder does. The
    // environment and working directory are inherited (docs/kcl-protocol.md §1). glibc reports exec
    // failures (ENOENT, EACCES) as the return value.
    const int rc = ::posix_spawnp(&child, argv[0], &fa.actions, &sa.attr, argv.data(), environ);
    if (rc != 0)
      throw ConfigError("kcl::ChildProcess: cannot start '" + options.command +
                        "': " + std::strerror(rc));
    pid = child;
    in = std::move(in_write);
    out = std::move(out_read);
    err = std::move(err_read);
    // in_read, out_write, err_write close here: the child holds its copies.
    detail::set_nonblocking(in.get());
    detail::set_nonblocking(out.get());
    detail::set_nonblocking(err.get());
    if (options.pipe_size > 0) {
      detail::set_pipe_size(in.get(), options.pipe_size);
      const std::size_t got = detail::set_pipe_size(out.get(), options.pipe_size);
      read_chunk = std::max(read_chunk, got);
    }
#ifdef SYS_pidfd_open
    // Wakes the poll loops the moment the child exits; without it (old kernel, seccomp)
    // they fall back to a waitpid(WNOHANG) every exit_check_interval.
    const long fd = ::syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) pidfd.reset(static_cast<int>(fd));
#endif
    log_debug("[", tag, "] started child pid ", pid, ": ", options.command);
  }

  // Throws the public error for `f` after reaping the child; the instance becomes unusable.
  [[noreturn]] void fail(Failure f) {
    state = State::Failed;
    error_kind = f.kind;
    const std::optional<int> status = reap(f.reap);
    std::string what = std::move(f.what);
    if (status) what += " (child " + describe_wait_status(*status) + ")";
    error_what = what;
    log_error("[", tag, "] ", what);
    if (f.kind == ErrorKind::Transport) throw TransportError(what);
    throw ProtocolError(what);
  }

  // Sends `action`'s line (already appended to `outgoing`) and serves the child until its
  // status for `action` arrives.
  void exchange(Action action, Checkpointer* checkpointer) {
    try {
      wait_for_status(action, checkpointer);
    } catch (Failure& f) {
      fail(std::move(f));
    }
  }

  void send_and_wait(Action action, Checkpointer* checkpointer) {
    outgoing.push_back('\n');
    exchange(action, checkpointer);
  }

  // --- the poll loop ---------------------------------------------------------------------

  void wait_for_status(Action action, Checkpointer* checkpointer) {
    const std::string_view name = detail::action_name(action);
    auto last_activity = Clock::now();
    auto last_exit_check = last_activity;
    for (;;) {
      // Lines already buffered first: a checkpoint request pipelined after the previous
      // status (docs/kcl-protocol.md §4.1, last paragraph) is served here, with this action's checkpointer.
      if (process_lines(action, checkpointer, last_activity)) return;
      if (wait_status)
        throw Failure{ErrorKind::Transport,
                      "child exited while waiting for status of " + std::string(name), Reap::Graceful};
      if (out_eof)
        throw Failure{ErrorKind::Transport,
                      "child closed its stdout while waiting for status of " + std::string(name),
                      Reap::Graceful};

      auto now = Clock::now();
      Clock::duration wait = exit_check_interval;
      if (options.reply_timeout.count() > 0) {
        const auto deadline = last_activity + options.reply_timeout;
        if (now >= deadline)
          throw Failure{ErrorKind::Transport,
                        "no reply from child within " + std::to_string(options.reply_timeout.count()) +
                            "ms while waiting for status of " + std::string(name),
                        Reap::Kill};
        wait = std::min<Clock::duration>(wait, deadline - now);
      }

      pollfd fds[4];
      nfds_t n = 0;
      int in_idx = -1, out_idx = -1, err_idx = -1, pid_idx = -1;
      if (outgoing_offset < outgoing.size() && in.valid()) {
        in_idx = static_cast<int>(n);
        fds[n++] = pollfd{in.get(), POLLOUT, 0};
      }
      if (out.valid() && !out_eof) {
        out_idx = static_cast<int>(n);
        fds[n++] = pollfd{out.get(), POLLIN, 0};
      }
      if (err.valid()) {
        err_idx = static_cast<int>(n);
        fds[n++] = pollfd{err.get(), POLLIN, 0};
      }
      if (pidfd.valid()) {
        pid_idx = static_cast<int>(n);
        fds[n++] = pollfd{pidfd.get(), POLLIN, 0};
      }
      const int ready = ::poll(fds, n, poll_timeout_ms(wait));
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw Failure{ErrorKind::Transport, std::string("poll failed: ") + std::strerror(errno),
                      Reap::Kill};
      }
      if (in_idx >= 0 && fds[in_idx].revents != 0) {
        if (write_some(name)) last_activity = Clock::now();
      }
      if (out_idx >= 0 && fds[out_idx].revents != 0) read_stdout_once();
      if (err_idx >= 0 && fds[err_idx].revents != 0) read_stderr_once();

      now = Clock::now();
      const bool pid_ready = pid_idx >= 0 && fds[pid_idx].revents != 0;
      if (pid_ready || ready == 0 || now - last_exit_check >= exit_check_interval) {
        last_exit_check = now;
        if (try_wait()) {
          // The child is gone: whatever it wrote before exiting is still in the pipes (its
          // status may be among it). Read all of it, then the loop decides.
          drain_stdout_nonblocking();
          drain_stderr_nonblocking();
        }
      }
    }
  }

  // Handles the buffered complete lines; true when the status for `action` was among them
  // (the lines after it stay buffered for the next call).
  bool process_lines(Action action, Checkpointer* checkpointer, Clock::time_point& last_activity) {
    std::string_view line;
    while (out_lines.next_line(line)) {
      last_activity = Clock::now();
      if (handle_line(line, action, checkpointer)) return true;
      last_activity = Clock::now();  // a checkpoint call may take a while
    }
    return false;
  }

  bool handle_line(std::string_view line, Action action, Checkpointer* checkpointer) {
    // Blank lines are normal: the official clients write "\n" + json + "\n" (docs/kcl-protocol.md §1).
    if (line.find_first_not_of(" \t\r\f\v") == std::string_view::npos) return false;
    try {
      decoder.decode(line, message, scratch_batch);
    } catch (const Error&) {
      // Not a protocol message: the Java daemon logs and skips it (docs/kcl-protocol.md §1, §4.2).
      log_info("[", tag, "] child stdout: ", detail::cut_line(line, 1000));
      return false;
    }
    const std::string_view name = detail::action_name(action);
    switch (message.action) {
      case Action::Status:
        warn_strict_keys(line);
        if (message.response_for == name) return true;
        throw Failure{ErrorKind::Protocol,
                      "child replied status for '" + message.response_for +
                          "' while waiting for status of " + std::string(name) +
                          " (the Java daemon exits the whole JVM here, docs/kcl-protocol.md §4.2; we fail this shard)",
                      Reap::Graceful};
      case Action::Checkpoint:
        warn_strict_keys(line);
        serve_checkpoint(action, checkpointer);
        return false;
      case Action::Unknown:
        log_info("[", tag, "] skipping child line with unknown action '", message.action_name,
                 "': ", detail::cut_line(line));
        return false;
      default:
        // Valid but not a child message (e.g. an echoed processRecords): the Java daemon
        // ignores it inside its wait loop (docs/kcl-protocol.md §3).
        log_debug("[", tag, "] ignoring child message '", message.action_name, "' while waiting for status of ",
                  name);
        return false;
    }
  }

  // We accept what the Java daemon's strict Jackson reader would silently skip (and then
  // hang on): say so, because the same child would not work under the Java daemon.
  void warn_strict_keys(std::string_view line) {
    if (message.unexpected_keys.empty() && !message.legacy_checkpoint_key) return;
    std::string keys;
    if (message.legacy_checkpoint_key) keys = "legacy key \"checkpoint\"";
    for (const std::string& k : message.unexpected_keys) {
      if (message.legacy_checkpoint_key && k == "checkpoint") continue;
      if (!keys.empty()) keys += ", ";
      keys += "\"" + k + "\"";
    }
    log_warn("[", tag, "] child message has ", keys,
             ": accepted, but the Java MultiLangDaemon would skip this line and wait forever "
             "(docs/kcl-protocol.md §1 strict parsing): ",
             detail::cut_line(line));
  }

  void serve_checkpoint(Action action, Checkpointer* checkpointer) {
    std::optional<std::string> error;
    const std::string at_text =
        message.sequence_number
            ? *message.sequence_number + "/" +
                  (message.sub_sequence_number ? std::to_string(*message.sub_sequence_number) : "null")
            : std::string("largest delivered");
    if (checkpointer == nullptr) {
      // No checkpointer during initialize and leaseLost (docs/kcl-protocol.md §4.1, §5).
      error = "InvalidStateException";
    } else {
      std::optional<ExtendedSequenceNumber> at;
      bool valid = true;
      if (message.sequence_number) {
        // seq without sub means sub 0 (docs/kcl-protocol.md §5), even inside an aggregate.
        try {
          at = ExtendedSequenceNumber::parse(*message.sequence_number,
                                             message.sub_sequence_number.value_or(0));
        } catch (const Error&) {
          valid = false;
        }
        if (valid && at->is_sentinel() && at->sentinel() != Sentinel::ShardEnd) valid = false;
        if (!valid) error = "IllegalArgumentException";
      }
      if (valid) {
        try {
          checkpointer->checkpoint_once(at);
        } catch (const Error& e) {
          error = kcl_name_for(e);
          log_warn("[", tag, "] checkpoint at ", at_text, " failed: ", e.what());
        } catch (const std::exception& e) {
          error = "InvalidStateException";
          log_warn("[", tag, "] checkpoint at ", at_text, " failed: ", e.what());
        } catch (...) {
          error = "InvalidStateException";
          log_warn("[", tag, "] checkpoint at ", at_text, " failed with a non-standard exception");
        }
      }
    }
    log_debug("[", tag, "] checkpoint request at ", at_text, " during ", detail::action_name(action), ": ",
              error ? *error : std::string("ok"));
    // The response echoes the request's numbers, not the stored value (docs/kcl-protocol.md §2).
    detail::encode_checkpoint_response(outgoing, message.sequence_number, message.sub_sequence_number,
                                       error);
    outgoing.push_back('\n');
  }

  // The error name sent to the child. A kclpp::Error that carries a KCL name sends it; one
  // that does not (a store or transport failure of the native checkpointer) is a failed
  // dependency when retryable (as the KCL's DynamoDBCheckpointer maps DependencyException)
  // and InvalidStateException (never retried by the child) otherwise.
  static std::string kcl_name_for(const Error& e) {
    if (!e.kcl_name().empty()) return e.kcl_name();
    if (e.retry() != Retry::No) return "KinesisClientLibDependencyException";
    return "InvalidStateException";
  }

  // --- pipe I/O --------------------------------------------------------------------------

  // Writes what the pipe takes; true if any byte went out. EPIPE -> TransportError.
  bool write_some(std::string_view action_name) {
    bool progressed = false;
    while (outgoing_offset < outgoing.size()) {
      ssize_t n;
      int saved_errno;
      {
        SigpipeBlock block;
        n = ::write(in.get(), outgoing.data() + outgoing_offset, outgoing.size() - outgoing_offset);
        saved_errno = errno;
        if (n < 0 && saved_errno == EPIPE) block.consume();
      }
      if (n < 0) {
        if (saved_errno == EINTR) continue;
        if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) break;
        if (saved_errno == EPIPE)
          throw Failure{ErrorKind::Transport,
                        "child closed its stdin (EPIPE) while sending " + std::string(action_name),
                        Reap::Graceful};
        throw Failure{ErrorKind::Transport,
                      "write to child failed while sending " + std::string(action_name) + ": " +
                          std::strerror(saved_errno),
                      Reap::Kill};
      }
      outgoing_offset += static_cast<std::size_t>(n);
      progressed = true;
    }
    if (outgoing_offset == outgoing.size()) {
      outgoing.clear();
      outgoing_offset = 0;
      // Do not keep a 20 MB buffer around between batches forever.
      if (outgoing.capacity() > (std::size_t{4} << 20)) outgoing.shrink_to_fit();
    }
    return progressed;
  }

  // One read from stdout; false on EAGAIN. Marks EOF (a final unterminated line is
  // completed with a '\n', as readLine() returns it).
  bool read_stdout_once() {
    if (!out.valid() || out_eof) return false;
    for (;;) {
      char* p = out_lines.prepare(read_chunk);
      const ssize_t n = ::read(out.get(), p, read_chunk);
      if (n > 0) {
        out_lines.commit(static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0) {
        out_eof = true;
        if (out_lines.pending() > 0) {
          *out_lines.prepare(1) = '\n';
          out_lines.commit(1);
        }
        return false;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        log_warn("[", tag, "] reading the child's stdout failed: ", std::strerror(errno));
        out_eof = true;
      }
      return false;
    }
  }

  // Reads what is already in the pipe (bounded: a grandchild may keep writing forever).
  void drain_stdout_nonblocking() {
    for (int i = 0; i < max_drain_reads && read_stdout_once(); ++i) {
    }
  }

  bool read_stderr_once() {
    if (!err.valid()) return false;
    char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(err.get(), buf, sizeof buf);
      if (n > 0) {
        log_stderr(std::string_view(buf, static_cast<std::size_t>(n)));
        return true;
      }
      if (n == 0) {
        if (!err_partial.empty()) emit_stderr_line(err_partial);
        err_partial.clear();
        err.reset();
        return false;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err.reset();
      return false;
    }
  }

  // Reads what is already in the pipe (bounded: a grandchild may keep writing forever).
  void drain_stderr_nonblocking() {
    for (int i = 0; i < max_drain_reads && read_stderr_once(); ++i) {
    }
  }

  void log_stderr(std::string_view chunk) {
    while (!chunk.empty()) {
      const std::size_t nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        err_partial.append(chunk);
        if (err_partial.size() >= max_stderr_line) {
          emit_stderr_line(err_partial);
          err_partial.clear();
        }
        return;
      }
      if (err_partial.empty()) {
        emit_stderr_line(chunk.substr(0, nl));
      } else {
        err_partial.append(chunk.substr(0, nl));
        emit_stderr_line(err_partial);
        err_partial.clear();
      }
      chunk.remove_prefix(nl + 1);
    }
  }

  void emit_stderr_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    log_info("[", tag, "] child: ", line);
  }

  // --- reaping ---------------------------------------------------------------------------

  // waitpid(WNOHANG); true once the child has been reaped.
  bool try_wait() {
    if (wait_status) return true;
    if (pid < 0) return false;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid) {
      wait_status = status;
      log_debug("[", tag, "] child pid ", pid, " ended: ", describe_wait_status(status));
      return true;
    }
    if (r < 0) {
      // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN). Nothing left to wait for.
      wait_status = 0;
      log_warn("[", tag, "] waitpid(", pid, ") failed: ", std::strerror(errno));
      return true;
    }
    return false;
  }

  void blocking_wait() {
    if (wait_status || pid < 0) return;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    wait_status = r == pid ? status : 0;
  }

  // Closes the child's stdin and waits for it (docs/kcl-protocol.md §4.1 step 3): drain stdout and stderr
  // until EOF and exit, for exit_grace; then SIGTERM and exit_grace again; then SIGKILL.
  // Unlike the Java daemon, a grandchild holding the pipes open does not hold us: once the
  // child itself has exited we stop reading after the grace. Never throws.
  std::optional<int> reap(Reap mode) noexcept {
    if (pid < 0) return wait_status;
    try {
      int stage = 0;  // 0: waiting after stdin EOF, 1: after SIGTERM (or SIGKILL)
      if (mode == Reap::Kill && !wait_status) {
        // Before closing stdin, so that the child cannot exit on EOF first and look clean.
        ::kill(pid, SIGKILL);
        stage = 1;
      }
      in.reset();
      outgoing.clear();
      outgoing_offset = 0;
      auto deadline = Clock::now() + options.exit_grace;
      for (;;) {
        const bool exited = try_wait();
        const bool pipes_open = (out.valid() && !out_eof) || err.valid();
        if (exited && !pipes_open) break;
        const auto now = Clock::now();
        if (now >= deadline) {
          if (exited) {
            log_warn("[", tag, "] child exited but its stdout/stderr stay open (a grandchild?); "
                     "no longer reading them");
            break;
          }
          if (stage == 0) {
            log_warn("[", tag, "] child pid ", pid, " still running ", options.exit_grace.count(),
                     "ms after its stdin was closed: sending SIGTERM");
            ::kill(pid, SIGTERM);
            stage = 1;
            deadline = now + options.exit_grace;
            continue;
          }
          log_warn("[", tag, "] child pid ", pid, " still running after SIGTERM: sending SIGKILL");
          ::kill(pid, SIGKILL);
          blocking_wait();
          break;
        }
        pollfd fds[3];
        nfds_t n = 0;
        if (out.valid() && !out_eof) fds[n++] = pollfd{out.get(), POLLIN, 0};
        if (err.valid()) fds[n++] = pollfd{err.get(), POLLIN, 0};
        if (pidfd.valid() && !exited) fds[n++] = pollfd{pidfd.get(), POLLIN, 0};
        const auto wait = std::min<Clock::duration>(exit_check_interval, deadline - now);
        const int ready = ::poll(fds, n, poll_timeout_ms(wait));
        if (ready > 0) {
          if (out.valid() && !out_eof) {
            read_stdout_once();
            log_leftover_stdout();
          }
          read_stderr_once();
        }
      }
      // Whatever is still readable without waiting, then let go of the pipes.
      drain_stdout_nonblocking();
      log_leftover_stdout();
      drain_stderr_nonblocking();
      if (!err_partial.empty()) emit_stderr_line(err_partial);
      err_partial.clear();
    } catch (...) {
      // Logging failed (bad_alloc, a throwing sink): still never leave a zombie.
      if (!wait_status) {
        ::kill(pid, SIGKILL);
        blocking_wait();
      }
    }
    out.reset();
    err.reset();
    pidfd.reset();
    out_eof = true;
    pid = -1;
    return wait_status;
  }

  // Child stdout after the last status cannot be answered any more: log it.
  void log_leftover_stdout() {
    std::string_view line;
    while (out_lines.next_line(line)) {
      if (line.find_first_not_of(" \t\r\f\v") == std::string_view::npos) continue;
      log_info("[", tag, "] child stdout after shutdown: ", detail::cut_line(line, 1000));
    }
  }

  std::optional<int> close() noexcept {
    if (state == State::Running || state == State::NotStarted) state = State::Ended;
    return reap(Reap::Graceful);
  }
};

ChildProcess::ChildProcess(ChildProcessOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ChildProcess::~ChildProcess() = default;  // Impl's destructor closes and reaps
ChildProcess::ChildProcess(ChildProcess&&) noexcept = default;
ChildProcess& ChildProcess::operator=(ChildProcess&&) noexcept = default;

namespace {
void require(bool present, std::string_view call) {
  if (!present) throw ProtocolError(std::string(call) + " called on a moved-from kcl::ChildProcess");
}
}  // namespace

void ChildProcess::initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) {
  require(impl_ != nullptr, "initialize");
  Impl& d = *impl_;
  if (d.state != Impl::State::NotStarted) {
    d.check_usable("initialize");
    throw ProtocolError("initialize called twice");
  }
  d.tag = d.options.log_tag.empty() ? shard_id : d.options.log_tag;
  try {
    d.spawn();
  } catch (const Error& e) {
    d.state = Impl::State::Failed;
    d.error_kind = ErrorKind::Protocol;
    d.error_what = e.what();
    (void)d.reap(Reap::Kill);
    throw;
  }
  d.state = Impl::State::Running;
  detail::encode_initialize(d.outgoing, shard_id, position);
  d.send_and_wait(Action::Initialize, nullptr);
}

void ChildProcess::process_records(const RecordBatch& batch, Checkpointer& checkpointer) {
  require(impl_ != nullptr, "process_records");
  Impl& d = *impl_;
  d.check_usable("process_records");
  detail::encode_process_records(d.outgoing, batch);
  d.send_and_wait(Action::ProcessRecords, &checkpointer);
}

void ChildProcess::shutdown_requested(Checkpointer& checkpointer) {
  require(impl_ != nullptr, "shutdown_requested");
  Impl& d = *impl_;
  d.check_usable("shutdown_requested");
  // Not terminal (docs/kcl-protocol.md §4.1 step 4): the child stays up and expects leaseLost next.
  detail::encode_bare(d.outgoing, Action::ShutdownRequested);
  d.send_and_wait(Action::ShutdownRequested, &checkpointer);
}

void ChildProcess::lease_lost() {
  require(impl_ != nullptr, "lease_lost");
  Impl& d = *impl_;
  d.check_usable("lease_lost");
  detail::encode_bare(d.outgoing, Action::LeaseLost);
  d.send_and_wait(Action::LeaseLost, nullptr);  // no checkpointer: InvalidStateException
  d.state = Impl::State::Ended;
  (void)d.reap(Reap::Graceful);
}

void ChildProcess::shard_ended(Checkpointer& checkpointer) {
  require(impl_ != nullptr, "shard_ended");
  Impl& d = *impl_;
  d.check_usable("shard_ended");
  detail::encode_bare(d.outgoing, Action::ShardEnded);
  d.send_and_wait(Action::ShardEnded, &checkpointer);
  d.state = Impl::State::Ended;
  (void)d.reap(Reap::Graceful);
}

std::optional<int> ChildProcess::close() noexcept {
  if (!impl_) return std::nullopt;
  return impl_->close();
}

std::optional<int> ChildProcess::pid() const noexcept {
  if (!impl_ || impl_->pid < 0 || impl_->wait_status) return std::nullopt;
  return impl_->pid;
}

}  // namespace kclpp::kcl
