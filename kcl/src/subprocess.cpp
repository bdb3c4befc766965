// detail::Subprocess: the child process under kcl::ChildProcess (docs/kcl-protocol.md §1, §4.1).
//
// Driven from the calling thread by poll() over non-blocking pipes: pump() writes the
// pending bytes to the child's stdin while it reads the child's stdout (collected into
// lines) and stderr (logged), so a 20 MB processRecords line never blocks behind a child
// that is busy writing. No threads.
//
// SIGPIPE: a write to a pipe whose reader is gone raises SIGPIPE, whose default action kills
// the whole process. We never touch the process-wide disposition (a library must not):
// around each write we block SIGPIPE in the calling thread only (pthread_sigmask); on EPIPE
// we consume the SIGPIPE our write generated (sigtimedwait with a zero timeout, unless one
// was already pending before) and restore the mask. EPIPE then comes back as an IoError.

#include "subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "codec.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

extern char** environ;

namespace kclpp::kcl::detail {

namespace {

// Reads per pipe when draining what a gone child left behind.
constexpr int max_drain_reads = 256;
// A stderr "line" longer than this without a newline is logged in pieces.
constexpr std::size_t max_stderr_line = 64 * 1024;

int poll_timeout_ms(Clock::duration d) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
}

// Up to four descriptors for one poll(); add() returns the index to ask ready() about.
struct PollSet {
  pollfd fds[4]{};
  nfds_t n = 0;

  int add(int fd, short events) noexcept {
    fds[n] = pollfd{fd, events, 0};
    return static_cast<int>(n++);
  }
  [[nodiscard]] bool ready(int index) const noexcept {
    return index >= 0 && fds[index].revents != 0;
  }
};

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

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw TransportError(std::string("pipe2 failed: ") + std::strerror(errno));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// posix_spawnp with the pipes on the child's 0, 1 and 2; returns its pid. Throws ConfigError.
pid_t start_child(const SubprocessOptions& options, const Pipe& in, const Pipe& out, const Pipe& err) {
  std::vector<char*> argv;
  argv.reserve(options.argv.size() + 1);
  for (const std::string& w : options.argv) argv.push_back(const_cast<char*>(w.c_str()));
  argv.push_back(nullptr);

  SpawnActions fa;
  posix_spawn_file_actions_adddup2(&fa.actions, in.read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa.actions, out.write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa.actions, err.write.get(), STDERR_FILENO);
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
    throw ConfigError("kcl::ChildProcess: cannot start '" + options.command + "': " + std::strerror(rc));
  return child;
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "wait status " + std::to_string(status);
}

// --- lifecycle ---------------------------------------------------------------------------

Subprocess::Subprocess(Subprocess&& other) noexcept { take(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    (void)reap(Reap::Graceful);
    take(other);
  }
  return *this;
}

// Moves `other`'s child here and leaves `other` without one.
void Subprocess::take(Subprocess& other) noexcept {
  options_ = std::move(other.options_);
  pid_ = std::exchange(other.pid_, -1);
  wait_status_ = std::exchange(other.wait_status_, std::nullopt);
  in_ = std::move(other.in_);
  out_ = std::move(other.out_);
  err_ = std::move(other.err_);
  pidfd_ = std::move(other.pidfd_);
  out_eof_ = std::exchange(other.out_eof_, false);
  out_lines_ = std::exchange(other.out_lines_, LineBuffer{});
  err_partial_ = std::exchange(other.err_partial_, std::string{});
  outgoing_ = std::exchange(other.outgoing_, std::string{});
  outgoing_offset_ = std::exchange(other.outgoing_offset_, 0);
  read_chunk_ = other.read_chunk_;
  last_exit_check_ = other.last_exit_check_;
}

void KillSwitch::arm(pid_t pid) noexcept {
  const std::lock_guard lock(mutex_);
  pid_ = pid;
  if (fired_) ::kill(pid_, SIGKILL);
}

void KillSwitch::disarm() noexcept {
  const std::lock_guard lock(mutex_);
  pid_ = -1;
}

void KillSwitch::fire() noexcept {
  const std::lock_guard lock(mutex_);
  fired_ = true;
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

bool KillSwitch::fired() const noexcept {
  const std::lock_guard lock(mutex_);
  return fired_;
}

pid_t KillSwitch::wait_nohang(pid_t pid, int& status) noexcept {
  const std::lock_guard lock(mutex_);
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != 0) pid_ = -1;
  return r;
}

Subprocess Subprocess::spawn(SubprocessOptions options) {
  Pipe in = make_pipe();
  Pipe out = make_pipe();
  Pipe err = make_pipe();
  Subprocess child(std::move(options));
  child.pid_ = start_child(child.options_, in, out, err);
  if (child.options_.kill_switch) child.options_.kill_switch->arm(child.pid_);
  child.in_ = std::move(in.write);
  child.out_ = std::move(out.read);
  child.err_ = std::move(err.read);
  // The child holds its copies of the other ends; ours must go, or its exit brings no EOF.
  in.read.reset();
  out.write.reset();
  err.write.reset();
  try {
    child.configure_pipes();
  } catch (...) {
    (void)child.reap(Reap::Kill);
    throw;
  }
  log_debug("[", child.options_.log_tag, "] started child pid ", child.pid_, ": ", child.options_.command);
  return child;
}

void Subprocess::configure_pipes() {
  set_nonblocking(in_.get());
  set_nonblocking(out_.get());
  set_nonblocking(err_.get());
  if (options_.pipe_size > 0) {
    set_pipe_size(in_.get(), options_.pipe_size);
    // stderr is read only while a call runs (no thread): between calls the pipe holds
    // what the child logs, and a child whose stderr is full blocks. A larger pipe lets it
    // log more while the shard is between batches (docs/operations.md §3).
    set_pipe_size(err_.get(), options_.pipe_size);
    const std::size_t got = set_pipe_size(out_.get(), options_.pipe_size);
    read_chunk_ = std::max(read_chunk_, got);
  }
#ifdef SYS_pidfd_open
  // Wakes the poll loops the moment the child exits; without it (old kernel, seccomp)
  // they fall back to a waitpid(WNOHANG) every exit_check_interval.
  const long fd = ::syscall(SYS_pidfd_open, pid_, 0);
  if (fd >= 0) pidfd_.reset(static_cast<int>(fd));
#endif
  last_exit_check_ = Clock::now();
}

std::optional<int> Subprocess::running_pid() const noexcept {
  if (pid_ < 0 || wait_status_) return std::nullopt;
  return pid_;
}

// --- the conversation's I/O ----------------------------------------------------------------

std::optional<std::string_view> Subprocess::next_stdout_line() {
  std::string_view line;
  if (!out_lines_.next_line(line)) return std::nullopt;
  return line;
}

Pumped Subprocess::pump(Clock::duration max_wait) {
  PollSet set;
  const int in_idx = outgoing_offset_ < outgoing_.size() && in_.valid() ? set.add(in_.get(), POLLOUT) : -1;
  const int out_idx = out_.valid() && !out_eof_ ? set.add(out_.get(), POLLIN) : -1;
  const int err_idx = err_.valid() ? set.add(err_.get(), POLLIN) : -1;
  const int pid_idx = pidfd_.valid() ? set.add(pidfd_.get(), POLLIN) : -1;
  const auto wait = std::min<Clock::duration>(max_wait, exit_check_interval);
  const int ready = ::poll(set.fds, set.n, poll_timeout_ms(wait));
  if (ready < 0) {
    if (errno == EINTR) return {};
    return Pumped{false, IoError{IoError::Kind::PollFailed, errno}};
  }
  Pumped pumped;
  if (set.ready(in_idx)) {
    pumped = write_some();
    if (pumped.error) return pumped;
  }
  const bool got_stdout = set.ready(out_idx) && read_stdout_once();
  if (got_stdout) {
    // The caller is about to act on what came from stdout (a status ends the call). What
    // the child wrote to stderr before it is in the pipe already: log all of it first, so
    // a child's lines never show up after the daemon's lines about a later reply.
    drain_stderr();
  } else if (set.ready(err_idx)) {
    read_stderr_once();
  }
  check_exit(set.ready(pid_idx) || ready == 0);
  return pumped;
}

// Looks for the child's exit when `due` (the pidfd fired, or poll() timed out) or at
// least every exit_check_interval.
void Subprocess::check_exit(bool due) {
  const auto now = Clock::now();
  if (!due && now - last_exit_check_ < exit_check_interval) return;
  last_exit_check_ = now;
  if (try_wait()) {
    // The child is gone: whatever it wrote before exiting is still in the pipes (a reply
    // may be among it). Read all of it; the caller decides.
    drain_stdout();
    drain_stderr();
  }
}

// Writes what the pipe takes.
Pumped Subprocess::write_some() {
  Pumped result;
  while (outgoing_offset_ < outgoing_.size()) {
    ssize_t n;
    int saved_errno;
    {
      SigpipeBlock block;
      n = ::write(in_.get(), outgoing_.data() + outgoing_offset_, outgoing_.size() - outgoing_offset_);
      saved_errno = errno;
      if (n < 0 && saved_errno == EPIPE) block.consume();
    }
    if (n < 0) {
      if (saved_errno == EINTR) continue;
      if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) break;
      const auto kind = saved_errno == EPIPE ? IoError::Kind::StdinClosed : IoError::Kind::WriteFailed;
      result.error = IoError{kind, saved_errno};
      return result;
    }
    outgoing_offset_ += static_cast<std::size_t>(n);
    result.wrote = true;
  }
  if (outgoing_offset_ == outgoing_.size()) {
    outgoing_.clear();
    outgoing_offset_ = 0;
    // Do not keep a 20 MB buffer around between batches forever.
    if (outgoing_.capacity() > (std::size_t{4} << 20)) outgoing_.shrink_to_fit();
  }
  return result;
}

// One read from stdout; false on EAGAIN. Marks EOF (a final unterminated line is
// completed with a '\n', as readLine() returns it).
bool Subprocess::read_stdout_once() {
  if (!out_.valid() || out_eof_) return false;
  for (;;) {
    char* p = out_lines_.prepare(read_chunk_);
    const ssize_t n = ::read(out_.get(), p, read_chunk_);
    if (n > 0) {
      out_lines_.commit(static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      out_eof_ = true;
      if (out_lines_.pending() > 0) {
        *out_lines_.prepare(1) = '\n';
        out_lines_.commit(1);
      }
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      log_warn("[", options_.log_tag, "] reading the child's stdout failed: ", std::strerror(errno));
      out_eof_ = true;
    }
    return false;
  }
}

// Reads what is already in the pipe (bounded: a grandchild may keep writing forever).
void Subprocess::drain_stdout() {
  for (int i = 0; i < max_drain_reads && read_stdout_once(); ++i) {
  }
}

bool Subprocess::read_stderr_once() {
  if (!err_.valid()) return false;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(err_.get(), buf, sizeof buf);
    if (n > 0) {
      log_stderr(std::string_view(buf, static_cast<std::size_t>(n)));
      return true;
    }
    if (n == 0) {
      flush_stderr();
      err_.reset();
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) err_.reset();
    return false;
  }
}

// Reads what is already in the pipe (bounded: a grandchild may keep writing forever).
void Subprocess::drain_stderr() {
  for (int i = 0; i < max_drain_reads && read_stderr_once(); ++i) {
  }
}

void Subprocess::log_stderr(std::string_view chunk) {
  while (!chunk.empty()) {
    const std::size_t nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      err_partial_.append(chunk);
      if (err_partial_.size() >= max_stderr_line) flush_stderr();
      return;
    }
    if (err_partial_.empty()) {
      emit_stderr_line(chunk.substr(0, nl));
    } else {
      err_partial_.append(chunk.substr(0, nl));
      flush_stderr();
    }
    chunk.remove_prefix(nl + 1);
  }
}

// Logs the stderr bytes held back for want of a newline, if any.
void Subprocess::flush_stderr() {
  if (!err_partial_.empty()) emit_stderr_line(err_partial_);
  err_partial_.clear();
}

// One record per child line: its text is the message, the shard and the child's pid are
// fields (docs/operations.md §3), so in JSON a log shipper gets the line intact and
// escaped, and in text it reads "[shardId-000000000001 child_pid=42] <line>". A log_tag
// other than the shard id still prefixes the message.
void Subprocess::emit_stderr_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!log_enabled(LogLevel::Info)) return;
  std::optional<LogContext> shard;
  if (!options_.shard_id.empty()) shard.emplace("shard", options_.shard_id);
  const LogContext child_pid("child_pid", pid_);
  if (options_.log_tag.empty() || options_.log_tag == options_.shard_id) {
    log(LogLevel::Info, line);
  } else {
    log_info("[", options_.log_tag, "] ", line);
  }
}

// Child stdout after the last reply cannot be answered any more: log it.
void Subprocess::log_leftover_stdout() {
  std::string_view line;
  while (out_lines_.next_line(line)) {
    if (line.find_first_not_of(" \t\r\f\v") == std::string_view::npos) continue;
    log_info("[", options_.log_tag, "] child stdout after shutdown: ", cut_line(line, 1000));
  }
}

// --- reaping -----------------------------------------------------------------------------

// waitpid(WNOHANG); true once the child has been reaped.
bool Subprocess::try_wait() {
  if (wait_status_) return true;
  if (pid_ < 0) return false;
  int status = 0;
  pid_t r;
  if (options_.kill_switch) {
    r = options_.kill_switch->wait_nohang(pid_, status);
  } else {
    do {
      r = ::waitpid(pid_, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
  }
  if (r == pid_) {
    wait_status_ = status;
    log_debug("[", options_.log_tag, "] child pid ", pid_, " ended: ", describe_wait_status(status));
    return true;
  }
  if (r < 0) {
    // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN). Nothing left to wait for.
    wait_status_ = 0;
    log_warn("[", options_.log_tag, "] waitpid(", pid_, ") failed: ", std::strerror(errno));
    return true;
  }
  return false;
}

void Subprocess::blocking_wait() {
  if (wait_status_ || pid_ < 0) return;
  // Only ever after a SIGKILL: an interrupt has nothing left to do.
  if (options_.kill_switch) options_.kill_switch->disarm();
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  wait_status_ = r == pid_ ? status : 0;
}

// Closes the child's stdin and waits for it (docs/kcl-protocol.md §4.1 step 3): drain stdout and stderr
// until EOF and exit, for exit_grace; then SIGTERM and exit_grace again; then SIGKILL.
// Unlike the Java daemon, a grandchild holding the pipes open does not hold us: once the
// child itself has exited we stop reading after the grace.
std::optional<int> Subprocess::reap(Reap mode) noexcept {
  if (pid_ < 0) return wait_status_;
  try {
    // SIGKILL before closing stdin, so that the child cannot exit on EOF first and look clean.
    const bool kill_first = mode == Reap::Kill && !wait_status_;
    if (kill_first) ::kill(pid_, SIGKILL);
    in_.reset();
    outgoing_.clear();
    outgoing_offset_ = 0;
    await_exit(kill_first ? Stage::Signalled : Stage::StdinClosed);
    // Whatever is still readable without waiting, then let go of the pipes.
    drain_stdout();
    log_leftover_stdout();
    drain_stderr();
    flush_stderr();
  } catch (...) {
    // Logging failed (bad_alloc, a throwing sink): still never leave a zombie.
    if (!wait_status_) {
      ::kill(pid_, SIGKILL);
      blocking_wait();
    }
  }
  release();
  return wait_status_;
}

// Waits for the exit and for EOF on stdout and stderr, escalating from `stage` to
// SIGTERM and then SIGKILL each time exit_grace passes.
void Subprocess::await_exit(Stage stage) {
  auto deadline = Clock::now() + options_.exit_grace;
  for (;;) {
    const bool gone = try_wait();
    const bool pipes_open = (out_.valid() && !out_eof_) || err_.valid();
    if (gone && !pipes_open) return;
    const auto now = Clock::now();
    if (now < deadline) {
      read_while_exiting(deadline - now, gone);
      continue;
    }
    if (gone) {
      log_warn("[", options_.log_tag, "] child exited but its stdout/stderr stay open (a grandchild?); "
               "no longer reading them");
      return;
    }
    if (stage == Stage::StdinClosed) {
      log_warn("[", options_.log_tag, "] child pid ", pid_, " still running ", options_.exit_grace.count(),
               "ms after its stdin was closed: sending SIGTERM");
      ::kill(pid_, SIGTERM);
      stage = Stage::Signalled;
      deadline = now + options_.exit_grace;
      continue;
    }
    log_warn("[", options_.log_tag, "] child pid ", pid_, " still running after SIGTERM: sending SIGKILL");
    ::kill(pid_, SIGKILL);
    blocking_wait();
    return;
  }
}

// One poll() of at most `left` (and exit_check_interval) on the pipes, and the pidfd
// unless the child is already `exited`; reads what arrived.
void Subprocess::read_while_exiting(Clock::duration left, bool exited) {
  PollSet set;
  if (out_.valid() && !out_eof_) set.add(out_.get(), POLLIN);
  if (err_.valid()) set.add(err_.get(), POLLIN);
  if (pidfd_.valid() && !exited) set.add(pidfd_.get(), POLLIN);
  const auto wait = std::min<Clock::duration>(exit_check_interval, left);
  if (::poll(set.fds, set.n, poll_timeout_ms(wait)) <= 0) return;
  if (out_.valid() && !out_eof_) {
    read_stdout_once();
    log_leftover_stdout();
  }
  read_stderr_once();
}

// Lets go of the pipes; the wait status stays.
void Subprocess::release() noexcept {
  if (options_.kill_switch) options_.kill_switch->disarm();
  out_.reset();
  err_.reset();
  pidfd_.reset();
  out_eof_ = true;
  pid_ = -1;
}

}  // namespace kclpp::kcl::detail
