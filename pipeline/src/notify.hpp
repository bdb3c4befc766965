#pragma once
// The archiver's notification hook (store.hpp, notify_command): one shell command run
// after each upload, bounded by a timeout, its child always reaped.
#include <chrono>
#include <string>
#include <vector>

namespace kclpp::pipeline::detail {

struct NotifyResult {
  bool ran = false;        // the shell was started
  bool timed_out = false;  // killed (with its process group) after the timeout
  int exit_code = -1;      // when it exited
  int signal = 0;          // when a signal ended it
  [[nodiscard]] bool ok() const noexcept { return ran && !timed_out && signal == 0 && exit_code == 0; }
  [[nodiscard]] std::string describe() const;
};

// Runs `/bin/sh -c '<command> "$@"' kclpp-notify ARGS...` with `env` ("NAME=value") added
// to this process's environment, stdin from /dev/null and stdout onto stderr (library
// code never writes to stdout). Waits at most `timeout`; then SIGKILLs the command's
// process group and reaps it. Never throws (except bad_alloc): failures are in the result.
// Thread-safe (posix_spawn; the caller's threads are not affected).
[[nodiscard]] NotifyResult run_notify_command(const std::string& command,
                                              const std::vector<std::string>& args,
                                              const std::vector<std::string>& env,
                                              std::chrono::milliseconds timeout);

}  // namespace kclpp::pipeline::detail
