#include "support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace kclpp::test {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

void ignore_sigpipe_once() {
  // The test writes to children that may have exited: that must be EPIPE, not a death.
  static const bool done = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

struct Pipe {
  int read = -1;
  int write = -1;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  return {fds[0], fds[1]};
}

}  // namespace

std::string ExitStatus::str() const {
  return exited ? "exit code " + std::to_string(code) : "signal " + std::to_string(signal);
}

Subprocess::Subprocess(const std::vector<std::string>& argv, const SpawnOptions& options) {
  ignore_sigpipe_once();
  if (argv.empty()) throw std::runtime_error("Subprocess: empty argv");
  // CLOEXEC on every end: a child spawned concurrently by another test must not hold them.
  const Pipe in = make_pipe();
  const Pipe out = make_pipe();
  const Pipe err = make_pipe();
  if (options.pipe_size > 0) {
    for (int fd : {in.write, out.read, err.read}) {
      (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(options.pipe_size));
    }
  }

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    bool overridden = false;
    for (const auto& extra : options.env) {
      if (extra.compare(0, extra.find('='), entry.substr(0, eq)) == 0 &&
          extra.find('=') == eq) {
        overridden = true;
      }
    }
    if (!overridden) env_strings.emplace_back(entry);
  }
  for (const auto& extra : options.env) env_strings.push_back(extra);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args(argv);
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.read, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write, 1);
  posix_spawn_file_actions_adddup2(&actions, err.write, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child gets default signal handling (this process ignores SIGPIPE) and no mask.
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  const int rc = ::posix_spawn(&pid_, argp[0], &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in.read);
  ::close(out.write);
  ::close(err.write);
  if (rc != 0) {
    ::close(in.write);
    ::close(out.read);
    ::close(err.read);
    throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  }
  stdin_fd_ = in.write;
  const int flags = ::fcntl(stdin_fd_, F_GETFL);
  (void)::fcntl(stdin_fd_, F_SETFL, flags | O_NONBLOCK);
  if (options.close_stdout) {
    ::close(out.read);
    out_eof_ = true;
  } else {
    out_thread_ = std::thread([this, fd = out.read] { drain_stdout(fd); });
  }
  err_thread_ = std::thread([this, fd = err.read] { drain_stderr(fd); });
}

Subprocess::~Subprocess() {
  kill();
  close_stdin();
  // With the process dead (and no heirs), both pipes reach EOF and the drains end.
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
}

void Subprocess::drain(int fd, const std::function<void(std::string_view)>& on_bytes,
                       const std::function<void()>& on_eof) {
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      on_eof();
      changed_.notify_all();
      break;
    }
    on_bytes(std::string_view(buf, static_cast<std::size_t>(n)));
    changed_.notify_all();
  }
  ::close(fd);
}

void Subprocess::drain_stdout(int fd) {
  const auto on_bytes = [this](std::string_view chunk) {
    out_raw_.append(chunk);
    for (char c : chunk) {
      if (c != '\n') {
        out_partial_.push_back(c);
        continue;
      }
      if (!out_partial_.empty() && out_partial_.back() == '\r') out_partial_.pop_back();
      if (!out_partial_.empty()) out_lines_.push_back(std::move(out_partial_));
      out_partial_.clear();
    }
  };
  const auto on_eof = [this] {
    if (!out_partial_.empty()) out_lines_.push_back(std::move(out_partial_));
    out_partial_.clear();
    out_eof_ = true;
  };
  drain(fd, on_bytes, on_eof);
}

void Subprocess::drain_stderr(int fd) {
  drain(fd, [this](std::string_view chunk) { err_.append(chunk); }, [this] { err_eof_ = true; });
}

bool Subprocess::write(std::string_view bytes, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (!bytes.empty()) {
    if (stdin_fd_ < 0) return false;
    const ssize_t n = ::write(stdin_fd_, bytes.data(), bytes.size());
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int left = remaining_ms(until);
      if (left == 0) return false;
      pollfd pfd{stdin_fd_, POLLOUT, 0};
      (void)::poll(&pfd, 1, std::min(left, 100));
      continue;
    }
    return false;  // EPIPE and friends
  }
  return true;
}

bool Subprocess::write_line(std::string_view line, std::chrono::milliseconds deadline) {
  std::string data(line);
  data += '\n';
  return write(data, deadline);
}

void Subprocess::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

std::optional<std::string> Subprocess::read_line(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, deadline, [&] { return !out_lines_.empty() || out_eof_; });
  if (out_lines_.empty()) return std::nullopt;
  std::string line = std::move(out_lines_.front());
  out_lines_.pop_front();
  return line;
}

std::vector<std::string> Subprocess::read_lines_until_eof(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, deadline, [&] { return out_eof_; });
  std::vector<std::string> lines(std::make_move_iterator(out_lines_.begin()),
                                 std::make_move_iterator(out_lines_.end()));
  out_lines_.clear();
  return lines;
}

bool Subprocess::stdout_eof() {
  std::lock_guard lock(mutex_);
  return out_eof_ && out_lines_.empty();
}

std::string Subprocess::stdout_raw() {
  std::lock_guard lock(mutex_);
  return out_raw_;
}

std::string Subprocess::stderr_text() {
  std::lock_guard lock(mutex_);
  return err_;
}

bool Subprocess::wait_stderr(std::string_view needle, std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] {
    return err_.find(needle) != std::string::npos || err_eof_;
  }) && err_.find(needle) != std::string::npos;
}

bool Subprocess::wait_stderr_eof(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return err_eof_; });
}

std::optional<ExitStatus> Subprocess::wait(std::chrono::milliseconds deadline) {
  if (reaped_) return status_;
  const auto until = Clock::now() + deadline;
  for (;;) {
    int raw = 0;
    const pid_t r = ::waitpid(pid_, &raw, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_.exited = WIFEXITED(raw);
      status_.code = status_.exited ? WEXITSTATUS(raw) : -1;
      status_.signal = WIFSIGNALED(raw) ? WTERMSIG(raw) : 0;
      // Let the drains catch up with the last output.
      wait_stderr_eof(2s);
      {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, 2s, [&] { return out_eof_; });
      }
      return status_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (remaining_ms(until) == 0) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

void Subprocess::kill() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int raw = 0;
  while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  status_.exited = false;
  status_.signal = SIGKILL;
}

std::optional<std::vector<std::string>> json_keys(std::string_view line) {
  // A small scanner for flat objects: {"k":v,...} with v a string, number, true/false/null.
  std::vector<std::string> keys;
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  };
  auto read_string = [&](std::string* out) -> bool {
    if (i >= line.size() || line[i] != '"') return false;
    ++i;
    while (i < line.size() && line[i] != '"') {
      if (line[i] == '\\') ++i;
      if (out != nullptr && i < line.size()) out->push_back(line[i]);
      ++i;
    }
    if (i >= line.size()) return false;
    ++i;
    return true;
  };
  skip_ws();
  if (i >= line.size() || line[i] != '{') return std::nullopt;
  ++i;
  skip_ws();
  if (i < line.size() && line[i] == '}') return keys;
  for (;;) {
    skip_ws();
    std::string key;
    if (!read_string(&key)) return std::nullopt;
    keys.push_back(std::move(key));
    skip_ws();
    if (i >= line.size() || line[i] != ':') return std::nullopt;
    ++i;
    skip_ws();
    if (i < line.size() && line[i] == '"') {
      if (!read_string(nullptr)) return std::nullopt;
    } else {
      const std::size_t start = i;
      while (i < line.size() && line[i] != ',' && line[i] != '}' && line[i] != ' ') ++i;
      const std::string_view v = line.substr(start, i - start);
      const bool number = !v.empty() && v.find_first_not_of("-0123456789") == std::string_view::npos;
      if (!number && v != "null" && v != "true" && v != "false") return std::nullopt;
    }
    skip_ws();
    if (i >= line.size()) return std::nullopt;
    if (line[i] == ',') {
      ++i;
      continue;
    }
    if (line[i] != '}') return std::nullopt;
    ++i;
    skip_ws();
    if (i != line.size()) return std::nullopt;
    return keys;
  }
}

std::string shell_output(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

std::vector<std::string> lines_with(std::string_view text, std::string_view needle) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    if (line.find(needle) != std::string_view::npos) out.emplace_back(line);
    pos = nl + 1;
  }
  return out;
}

}  // namespace kclpp::test
