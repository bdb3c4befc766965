#include "e2e_support.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "kclpp/native/checkpoint_store.hpp"

namespace kclpp::test {

namespace fs = std::filesystem;

std::vector<std::string> tool_env(const std::string& log_level, std::vector<std::string> extra) {
  std::vector<std::string> env{
      "AWS_ACCESS_KEY_ID=AKIDKCLPPTEST", "AWS_SECRET_ACCESS_KEY=kclpp-test-secret",
      "AWS_SESSION_TOKEN=",              "AWS_REGION=us-east-1",
      "AWS_DEFAULT_REGION=us-east-1",    "AWS_PROFILE=",
      "KCLPP_LOG_LEVEL=" + log_level,
  };
  for (auto& e : extra) env.push_back(std::move(e));
  return env;
}

std::string RunResult::describe() const {
  return (status ? status->str() : std::string("still running at the deadline")) + "\nstderr:\n" + err +
         "\nstdout:\n" + out.substr(0, 4000);
}

RunResult run_program(const std::vector<std::string>& argv, const std::string& input,
                      std::chrono::milliseconds deadline, const std::vector<std::string>& env) {
  const auto start = std::chrono::steady_clock::now();
  SpawnOptions options;
  options.env = env;
  Subprocess p(argv, options);
  RunResult r;
  if (!input.empty()) (void)p.write(input, deadline);
  p.close_stdin();
  r.status = p.wait(deadline);
  if (!r.status) p.kill();
  (void)p.wait_stderr_eof(std::chrono::milliseconds{2'000});
  (void)p.read_lines_until_eof(std::chrono::milliseconds{2'000});
  r.out = p.stdout_raw();
  r.err = p.stderr_text();
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return r;
}

namespace {

// pid and ppid from /proc/PID/stat ("pid (comm) state ppid ...": comm may hold spaces
// and parentheses, so parse from the last ')').
std::optional<std::pair<char, pid_t>> stat_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 1));
  char state = 0;
  long ppid = 0;
  if (!(rest >> state >> ppid)) return std::nullopt;
  return std::make_pair(state, static_cast<pid_t>(ppid));
}

}  // namespace

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (const auto s = stat_of(pid); s && s->second == parent) out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> descendants_of(pid_t root) {
  std::vector<pid_t> out;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    for (pid_t c : children_of(p)) {
      out.push_back(c);
      todo.push_back(c);
    }
  }
  return out;
}

std::optional<char> process_state(pid_t pid) {
  if (const auto s = stat_of(pid)) return s->first;
  return std::nullopt;
}

void become_subreaper() { (void)::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

void kill_and_reap(pid_t pid) {
  if (pid <= 0) return;
  (void)::kill(pid, SIGKILL);
  int status = 0;
  // Only ours (reparented to this subreaper) can be reaped; ECHILD otherwise.
  for (int i = 0; i < 100; ++i) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

PidReaper::~PidReaper() {
  for (pid_t pid : pids_) {
    if (process_state(pid)) kill_and_reap(pid);
  }
}

std::map<std::string, ExtendedSequenceNumber> sqlite_checkpoints(const std::string& db_path,
                                                                 const std::string& application,
                                                                 const std::string& stream) {
  if (!fs::exists(db_path)) return {};
  auto store = native::open_checkpoint_store("sqlite:" + db_path);
  return store->load_all(application, stream);
}

std::map<std::string, std::vector<std::string>> put_all(aws::KinesisClient& client,
                                                        const std::string& stream,
                                                        const std::vector<std::string>& data,
                                                        std::size_t key_offset) {
  std::map<std::string, std::vector<std::string>> by_shard;
  for (std::size_t start = 0; start < data.size(); start += 500) {
    std::vector<aws::PutRecordsEntry> entries;
    for (std::size_t i = start; i < data.size() && i < start + 500; ++i)
      entries.push_back({data[i], "pk-" + std::to_string(key_offset + i), {}});
    const auto results = client.put_records(stream, entries);
    if (results.size() != entries.size()) throw std::runtime_error("put_records: wrong reply size");
    for (const auto& r : results) {
      if (!r.ok()) throw std::runtime_error("put_records: " + r.error_code + ": " + r.error_message);
      by_shard[r.shard_id].push_back(r.sequence_number);
    }
  }
  return by_shard;
}

std::vector<std::string> numbered(const std::string& prefix, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back("record-" + prefix + "-" + std::to_string(i));
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

}  // namespace kclpp::test
