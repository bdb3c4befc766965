#pragma once
// Helpers for the end-to-end tests of the kclpp tool, `kclpp daemon` and kclpp::main
// (cli_test.cpp, daemon_test.cpp): temp directories, running a program to completion,
// process-tree checks through /proc, and the checkpoint rows of a SQLite store.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/processor/sequence_number.hpp"
#include "support.hpp"

namespace kclpp::test {

// Polls `predicate` every 20 ms until it holds or `timeout` passes; the last result.
template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return predicate();
}

// Environment for the programs under test: dummy credentials, region us-east-1 (nothing
// read from the real AWS configuration), log level `log_level`, plus `extra`.
[[nodiscard]] std::vector<std::string> tool_env(const std::string& log_level = "info",
                                                std::vector<std::string> extra = {});

struct RunResult {
  std::optional<ExitStatus> status;  // nullopt: still running at the deadline (then killed)
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
  [[nodiscard]] std::string describe() const;  // status + stderr, for failure messages
};

// Runs argv with `input` on stdin (then EOF) until it exits or `deadline` passes.
[[nodiscard]] RunResult run_program(const std::vector<std::string>& argv, const std::string& input = {},
                                    std::chrono::milliseconds deadline = std::chrono::milliseconds{30'000},
                                    const std::vector<std::string>& env = tool_env());

// Direct children of `parent`, from /proc.
[[nodiscard]] std::vector<pid_t> children_of(pid_t parent);
// Every descendant of `root` (not root itself).
[[nodiscard]] std::vector<pid_t> descendants_of(pid_t root);
// /proc/PID/stat state letter ('R', 'S', 'Z', ...), or nullopt when the pid is gone.
[[nodiscard]] std::optional<char> process_state(pid_t pid);
// Makes this process the reaper of orphaned descendants (PR_SET_CHILD_SUBREAPER), so that
// a child left behind by a program under test shows up here (alive or as a zombie)
// instead of vanishing into init.
void become_subreaper();
// SIGKILLs `pid` and reaps it if it is ours (cleanup after a failed check).
void kill_and_reap(pid_t pid);

// Kills every pid in the list on destruction (processes a failing test would leave).
class PidReaper {
 public:
  PidReaper() = default;
  ~PidReaper();
  PidReaper(const PidReaper&) = delete;
  PidReaper& operator=(const PidReaper&) = delete;
  void add(pid_t pid) { pids_.push_back(pid); }

 private:
  std::vector<pid_t> pids_;
};

// Checkpoints of `application` on `stream` in a SQLite store file: shard -> position.
[[nodiscard]] std::map<std::string, ExtendedSequenceNumber> sqlite_checkpoints(
    const std::string& db_path, const std::string& application, const std::string& stream);

// Puts `data[i]` with partition key "pk-<offset+i>" in one PutRecords call per 500;
// returns shard id -> sequence numbers, in put order. Fails (throws) on any error.
[[nodiscard]] std::map<std::string, std::vector<std::string>> put_all(
    aws::KinesisClient& client, const std::string& stream, const std::vector<std::string>& data,
    std::size_t key_offset = 0);

// "record-<prefix>-<i>" for i in [0, n).
[[nodiscard]] std::vector<std::string> numbered(const std::string& prefix, std::size_t n);


// Lines of `text`.
[[nodiscard]] std::vector<std::string> split_lines(const std::string& text);

}  // namespace kclpp::test
