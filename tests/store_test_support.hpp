#pragma once
// Helpers shared by the checkpoint store tests (tests/unit and tests/integration): a
// per-test deadline, a temp directory, a forked child that reports over a pipe, and sequence-number makers.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "kclpp/processor/sequence_number.hpp"
#include "test_files.hpp"

namespace kclpp::native::store_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every test runs under a deadline: a hung lock or a lost wakeup ends the run with a
// message instead of waiting for ctest's timeout. The constructor returns once the watchdog
// thread waits: a test that forks right after must not fork while that thread is still
// starting up inside the allocator (under ASan the forked child then deadlocked on the
// allocator's lock, about 1 run in 10).
class Deadline {
 public:
  explicit Deadline(std::chrono::seconds limit) : thread_([this, limit] {
    std::unique_lock lock(mutex_);
    waiting_ = true;
    started_cv_.notify_all();
    if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) {
      const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
      std::fprintf(stderr, "DEADLINE: %s.%s exceeded %lld s\n", info ? info->test_suite_name() : "?",
                   info ? info->name() : "?", static_cast<long long>(limit.count()));
      std::_Exit(124);
    }
  }) {
    std::unique_lock lock(mutex_);
    started_cv_.wait(lock, [this] { return waiting_; });
  }
  ~Deadline() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  std::condition_variable started_cv_;
  bool done_ = false;
  bool waiting_ = false;
  std::thread thread_;
};

using kclpp::test::TempDir;

// A forked child running `body(write_fd)`; the child reports on the pipe and the parent
// reads with a deadline. The destructor SIGKILLs and reaps it.
class Child {
 public:
  explicit Child(const std::function<void(int)>& body) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::close(fds[0]);
      try {
        body(fds[1]);
      } catch (const std::exception& e) {
        const std::string msg = std::string("E") + e.what() + "\n";
        (void)!::write(fds[1], msg.data(), msg.size());
        ::_exit(2);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    kill();
    if (fd_ >= 0) ::close(fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

  // Up to `n` bytes, waiting at most `deadline` for the first; empty on EOF or timeout.
  std::string read(std::size_t n, std::chrono::milliseconds deadline = 10s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline.count())) <= 0) return {};
    std::string buf(n, '\0');
    const ssize_t got = ::read(fd_, buf.data(), n);
    buf.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    return buf;
  }
  // Reads until `want` bytes arrived (or EOF/deadline).
  std::string read_exact(std::size_t want, std::chrono::milliseconds deadline = 10s) {
    std::string all;
    const auto until = Clock::now() + deadline;
    while (all.size() < want) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) break;
      const std::string part = read(want - all.size(), left);
      if (part.empty()) break;
      all += part;
    }
    return all;
  }
  // Everything until EOF (the child died), with a deadline.
  std::string read_to_eof(std::chrono::milliseconds deadline = 10s) {
    std::string all;
    const auto until = Clock::now() + deadline;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) break;
      const std::string part = read(4096, left);
      if (part.empty()) break;
      all += part;
    }
    return all;
  }
  // For a child that writes "N\n" after each step: reads until it reported `steps` steps
  // (or 20 s passed), SIGKILLs it, then reads what it wrote before dying. The last N it
  // reported, or nullopt (with everything it wrote) when it reported none or an error.
  struct Reports {
    std::optional<int> last;
    std::string text;
  };
  Reports kill_after(int steps) {
    Reports r;
    const auto until = Clock::now() + 20s;
    while (std::count(r.text.begin(), r.text.end(), '\n') < steps && Clock::now() < until) {
      const std::string part = read(4096, 5s);
      if (part.empty()) break;
      r.text += part;
    }
    kill();
    r.text += read_to_eof(5s);
    const auto last_newline = r.text.rfind('\n');
    if (r.text.find('E') != std::string::npos || last_newline == std::string::npos) return r;
    const auto prev = last_newline == 0 ? std::string::npos : r.text.rfind('\n', last_newline - 1);
    r.last = std::stoi(r.text.substr(prev == std::string::npos ? 0 : prev + 1));
    return r;
  }
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  // Waits for a normal exit; returns the exit code (-1: signal, timeout).
  int wait(std::chrono::milliseconds deadline = 20s) {
    const auto until = Clock::now() + deadline;
    while (Clock::now() < until) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
};

inline void write_all(int fd, const std::string& s) {
  (void)!::write(fd, s.data(), s.size());
}

// n decimal digits, no leading zero, varied by `seed`.
inline std::string digits(std::size_t n, unsigned seed) {
  std::string s(n, '0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('0' + (i * 7 + seed * 13 + 3) % 10);
  if (s[0] == '0') s[0] = '1';
  return s;
}

inline ExtendedSequenceNumber seq(const std::string& d, std::int64_t sub = 0) {
  return ExtendedSequenceNumber(SequenceNumber(d), sub);
}

}  // namespace kclpp::native::store_test
