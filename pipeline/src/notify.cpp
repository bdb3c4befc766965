#include "notify.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace kclpp::pipeline::detail {

std::string NotifyResult::describe() const {
  if (!ran) return "could not be started";
  if (timed_out) return "timed out (killed)";
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit code " + std::to_string(exit_code);
}

namespace {

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnAttr {
  posix_spawnattr_t attr{};
  SpawnAttr() { ::posix_spawnattr_init(&attr); }
  ~SpawnAttr() { ::posix_spawnattr_destroy(&attr); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
};
struct SpawnActions {
  posix_spawn_file_actions_t actions{};
  SpawnActions() { ::posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { ::posix_spawn_file_actions_destroy(&actions); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

std::string env_name(const std::string& entry) { return entry.substr(0, entry.find('=')); }

void fill_status(int status, NotifyResult& result) {
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
}

}  // namespace

NotifyResult run_notify_command(const std::string& command, const std::vector<std::string>& args,
                                const std::vector<std::string>& env,
                                std::chrono::milliseconds timeout) {
  NotifyResult result;
  // The values go in as positional parameters ("$@"), never pasted into the command
  // text, so a key with shell characters cannot change what runs.
  std::vector<std::string> argv_storage{"/bin/sh", "-c", command + " \"$@\"", "kclpp-notify"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<std::string> env_storage;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const auto& extra : env) replaced = replaced || env_name(extra) == env_name(entry);
    if (!replaced) env_storage.push_back(entry);
  }
  env_storage.insert(env_storage.end(), env.begin(), env.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  SpawnAttr attr;
  // Its own process group, so that a timeout kills the shell and whatever it started.
  ::posix_spawnattr_setpgroup(&attr.attr, 0);
  // Default signal handling and an empty mask in the child: the CLI blocks SIGTERM in
  // every thread (native_runner.cpp), and a hook must stay killable.
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  ::posix_spawnattr_setsigdefault(&attr.attr, &all);
  ::posix_spawnattr_setsigmask(&attr.attr, &none);
  ::posix_spawnattr_setflags(&attr.attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                            POSIX_SPAWN_SETSIGMASK));
  SpawnActions actions;
  ::posix_spawn_file_actions_addopen(&actions.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions.actions, STDERR_FILENO, STDOUT_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Nothing else of ours leaks into the hook: a hook that outlives the store (it is in
  // its own process group) must not hold the checkpoint store's lock file, the spool or
  // a socket open.
  ::posix_spawn_file_actions_addclosefrom_np(&actions.actions, STDERR_FILENO + 1);
#endif

  pid_t pid = -1;
  if (::posix_spawn(&pid, "/bin/sh", &actions.actions, &attr.attr, argv.data(), envp.data()) != 0)
    return result;
  result.ran = true;

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      fill_status(status, result);
      return result;
    }
    if (done < 0 && errno != EINTR) {
      // Reaped elsewhere (a SIGCHLD handler set to SIG_IGN): nothing more to learn.
      result.exit_code = 0;
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  result.timed_out = true;
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  fill_status(status, result);
  return result;
}

}  // namespace kclpp::pipeline::detail
