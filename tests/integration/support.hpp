#pragma once
// Integration-test helper: runs a program with its stdin/stdout/stderr on real pipes,
// with a deadline on every wait, and never leaves a process behind.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../test_files.hpp"  // TempDir, read_file

namespace kclpp::test {

using namespace std::chrono_literals;

inline constexpr std::chrono::milliseconds default_deadline{10'000};

struct SpawnOptions {
  // Added to (or replacing) the test's environment: "NAME=value".
  std::vector<std::string> env;
  // F_SETPIPE_SZ on the three pipes (0 = the OS default).
  std::size_t pipe_size = 0;
  // Close the read end of the child's stdout at once (a daemon that went away).
  bool close_stdout = false;
};

// How a process ended.
struct ExitStatus {
  bool exited = false;  // false: killed by `signal`
  int code = -1;
  int signal = 0;
  [[nodiscard]] std::string str() const;
};

// A running program on three pipes. stdout and stderr are drained by background threads
// (so a chatty child never blocks on a full pipe); stdout is split into lines. The
// destructor SIGKILLs the program if it still runs, reaps it and joins the threads.
// Thread safety: call from one test thread; the accessors are safe against the drains.
class Subprocess {
 public:
  // Throws std::runtime_error if the program cannot be started.
  explicit Subprocess(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // The write end of the child's stdin (-1 once closed).
  [[nodiscard]] int stdin_fd() const noexcept { return stdin_fd_; }

  // Writes all bytes, waiting at most `deadline`. False on timeout or a closed pipe.
  bool write(std::string_view bytes, std::chrono::milliseconds deadline = default_deadline);
  // write(line + "\n").
  bool write_line(std::string_view line, std::chrono::milliseconds deadline = default_deadline);
  void close_stdin();

  // The next non-empty stdout line ('\n' and '\r' stripped), or nullopt on EOF/timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds deadline = default_deadline);
  // Every remaining non-empty stdout line until EOF (or the deadline).
  std::vector<std::string> read_lines_until_eof(
      std::chrono::milliseconds deadline = default_deadline);
  // True once stdout reached EOF and every line was read.
  [[nodiscard]] bool stdout_eof();
  // Every stdout byte received so far (blank lines included).
  [[nodiscard]] std::string stdout_raw();

  // Everything written to stderr so far.
  [[nodiscard]] std::string stderr_text();
  // Waits until stderr contains `needle`; false on timeout.
  bool wait_stderr(std::string_view needle, std::chrono::milliseconds deadline = default_deadline);
  // Waits until stderr reaches EOF (the program and its heirs closed it).
  bool wait_stderr_eof(std::chrono::milliseconds deadline = default_deadline);

  // Waits for the program to end; nullopt on timeout (the program keeps running).
  std::optional<ExitStatus> wait(std::chrono::milliseconds deadline = default_deadline);
  // SIGKILL + reap (no-op once reaped).
  void kill();

 private:
  // Reads `fd` to EOF and closes it; hands each chunk, then the EOF, over under mutex_ and
  // wakes the waiters.
  void drain(int fd, const std::function<void(std::string_view)>& on_bytes, const std::function<void()>& on_eof);
  void drain_stdout(int fd);
  void drain_stderr(int fd);

  pid_t pid_ = -1;
  bool reaped_ = false;
  ExitStatus status_{};
  int stdin_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string out_partial_;
  std::string out_raw_;
  std::deque<std::string> out_lines_;
  bool out_eof_ = false;
  std::string err_;
  bool err_eof_ = false;
  std::thread out_thread_;
  std::thread err_thread_;
};

// The keys of a flat JSON object line, in order (nullopt if the line is not one).
// Enough for the child's messages: values are strings, integers or null.
std::optional<std::vector<std::string>> json_keys(std::string_view line);

// Lines of `text` containing `needle`.
std::vector<std::string> lines_with(std::string_view text, std::string_view needle);

// Runs `command` through /bin/sh (popen) to completion and returns what it wrote on stdout
// ("" if it could not be started). For short reference scripts, e.g. a python3 signer.
std::string shell_output(const std::string& command);

}  // namespace kclpp::test
