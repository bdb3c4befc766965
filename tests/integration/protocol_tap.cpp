// kclpp_protocol_tap LOGFILE PROGRAM [ARGS...]
//
// A test helper that sits between a MultiLangDaemon (`kclpp daemon`) and a child it runs:
// PROGRAM gets its stdin through this process, which appends to LOGFILE one line per
// daemon -> child message, "PID ACTION" (PID: PROGRAM's; "PID initialize SHARD" names the
// shard), then "PID stdin-eof" and "PID exit CODE" (or "PID signal N") when PROGRAM ends.
// PROGRAM's stdout and stderr are this process's own, so the protocol replies go straight
// to the daemon. Exits with PROGRAM's status once its stdin reached EOF and PROGRAM ended,
// as a well-behaved child does. Used by daemon_test.cpp to see what the C++ example child
// received, in order.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

int log_fd = -1;

void append(const std::string& line) {
  const std::string out = line + "\n";
  // O_APPEND and one write per line: the children of one daemon share the file.
  (void)!::write(log_fd, out.data(), out.size());
}

std::string action_of(const std::string& line) {
  const std::string key = "\"action\":\"";
  const auto at = line.find(key);
  if (at == std::string::npos) return "?";
  const auto start = at + key.size();
  const auto end = line.find('"', start);
  return end == std::string::npos ? "?" : line.substr(start, end - start);
}

std::string shard_of(const std::string& line) {
  const std::string key = "\"shardId\":\"";
  const auto at = line.find(key);
  if (at == std::string::npos) return "?";
  const auto start = at + key.size();
  const auto end = line.find('"', start);
  return end == std::string::npos ? "?" : line.substr(start, end - start);
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: kclpp_protocol_tap LOGFILE PROGRAM [ARGS...]\n");
    return 2;
  }
  log_fd = ::open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    std::fprintf(stderr, "kclpp_protocol_tap: %s: %s\n", argv[1], std::strerror(errno));
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 2;
  const pid_t pid = ::fork();
  if (pid < 0) return 2;
  if (pid == 0) {
    ::dup2(fds[0], 0);
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(argv[2], argv + 2);
    std::fprintf(stderr, "kclpp_protocol_tap: exec %s: %s\n", argv[2], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[0]);
  const std::string tag = std::to_string(pid) + " ";
  append(tag + "start");
  std::string partial;
  char buf[1 << 16];
  bool child_open = true;
  for (;;) {
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (child_open && !write_all(fds[1], buf, static_cast<std::size_t>(n))) child_open = false;
    partial.append(buf, static_cast<std::size_t>(n));
    for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n')) {
      const std::string line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      if (line.empty()) continue;
      const std::string action = action_of(line);
      append(tag + action + (action == "initialize" ? " " + shard_of(line) : std::string()));
    }
  }
  append(tag + "stdin-eof");
  ::close(fds[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    append(tag + "exit " + std::to_string(WEXITSTATUS(status)));
    return WEXITSTATUS(status);
  }
  append(tag + "signal " + std::to_string(WTERMSIG(status)));
  return 128 + WTERMSIG(status);
}
