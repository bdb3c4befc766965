// credential_process: a command whose stdout is a JSON credential document. The command is
// split into words as a POSIX shell would (quotes, backslashes) but run without a shell,
// so nothing in it is expanded; it is killed when it runs past the timeout. Its stdout
// holds secrets: no error message ever quotes it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "iso8601.hpp"
#include "kclpp/aws/credentials.hpp"
#include "kclpp/internal/unique_fd.hpp"
#include "kclpp/processor/error.hpp"
#include "process_credentials.hpp"
#include "refreshing_provider.hpp"

extern char** environ;

namespace kclpp::aws {

namespace detail {

std::vector<std::string> split_command(std::string_view command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (i + 1 < command.size()) word.push_back(command[++i]);
      continue;
    }
    if (c == '\'') {
      const std::size_t end = command.find('\'', i + 1);
      if (end == std::string_view::npos) throw ConfigError("credential_process: unterminated ' in the command");
      word.append(command.substr(i + 1, end - i - 1));
      i = end;
      continue;
    }
    if (c == '"') {
      std::size_t j = i + 1;
      for (; j < command.size() && command[j] != '"'; ++j) {
        if (command[j] == '\\' && j + 1 < command.size() &&
            (command[j + 1] == '"' || command[j + 1] == '\\' || command[j + 1] == '$' || command[j + 1] == '`')) {
          ++j;
        }
        word.push_back(command[j]);
      }
      if (j >= command.size()) throw ConfigError("credential_process: unterminated \" in the command");
      i = j;
      continue;
    }
    word.push_back(c);
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

namespace {

using kclpp::detail::UniqueFd;

// Spawns argv with stdin from /dev/null and stdout/stderr on pipes.
pid_t spawn(const std::vector<std::string>& argv, int out_write, int err_write) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write, 1);
  posix_spawn_file_actions_adddup2(&actions, err_write, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw AuthError("credential_process: cannot run '" + argv[0] + "': " + std::strerror(rc));
  }
  return pid;
}

}  // namespace

ProcessOutput run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  if (argv.empty()) throw ConfigError("credential_process: empty command");
  std::array<int, 2> out{};
  std::array<int, 2> err{};
  if (::pipe2(out.data(), O_CLOEXEC) != 0) throw AuthError("credential_process: pipe failed");
  UniqueFd out_read(out[0]);
  UniqueFd out_write(out[1]);
  if (::pipe2(err.data(), O_CLOEXEC) != 0) throw AuthError("credential_process: pipe failed");
  UniqueFd err_read(err[0]);
  UniqueFd err_write(err[1]);
  const pid_t pid = spawn(argv, out_write.get(), err_write.get());
  out_write.reset();
  err_write.reset();

  ProcessOutput result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<pollfd, 2> fds{{{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}}};
  int open_fds = 2;
  std::array<char, 4096> buf{};
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (auto& p : fds) {
      if (p.fd < 0 || p.revents == 0) continue;
      const ssize_t got = ::read(p.fd, buf.data(), buf.size());
      if (got > 0) {
        std::string& target = p.fd == out_read.get() ? result.out : result.err;
        if (target.size() < (1u << 20)) target.append(buf.data(), static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        p.fd = -1;
        --open_fds;
      }
    }
  }
  if (result.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    if (done == 0 && !result.timed_out && std::chrono::steady_clock::now() >= deadline) {
      // Its output is closed but it still runs (it closed or redirected stdout and
      // stderr): the timeout holds for the whole run, not only while it writes.
      result.timed_out = true;
      ::kill(pid, SIGKILL);
    }
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

Credentials parse_process_output(const std::string& out, const std::string& program) {
  const std::string where = "credential_process '" + program + "'";
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception&) {
    throw AuthError(where + ": its output is not JSON (" + std::to_string(out.size()) + " bytes)");
  }
  if (!doc.is_object()) throw AuthError(where + ": its output is not a JSON object");
  auto text = [&](const char* key, bool required) -> std::string {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) {
      if (required) throw AuthError(where + ": its output has no " + key);
      return {};
    }
    if (!it->is_string()) throw AuthError(where + ": " + key + " in its output is not a string");
    return it->get<std::string>();
  };
  auto version = doc.find("Version");
  if (version == doc.end() || !version->is_number_integer() || version->get<long long>() != 1) {
    throw AuthError(where + ": its output must have \"Version\": 1");
  }
  Credentials c;
  c.access_key_id = text("AccessKeyId", true);
  c.secret_access_key = text("SecretAccessKey", true);
  c.session_token = text("SessionToken", false);
  const std::string expiration = text("Expiration", false);
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    throw AuthError(where + ": AccessKeyId or SecretAccessKey is empty");
  }
  if (!expiration.empty()) {
    c.expiration = parse_iso8601(expiration);
    if (!c.expiration) throw AuthError(where + ": Expiration '" + expiration + "' is not an ISO 8601 time");
  }
  return c;
}

}  // namespace detail

CredentialsProviderPtr process_credentials(ProcessOptions options) {
  std::vector<std::string> argv = detail::split_command(options.command);
  if (argv.empty()) throw ConfigError("credential_process: empty command");
  std::string description = "credential_process '" + argv[0] + "'";
  auto fetch = [argv, timeout = options.timeout]() -> Credentials {
    const detail::ProcessOutput r = detail::run_process(argv, timeout);
    const std::string where = "credential_process '" + argv[0] + "'";
    if (r.timed_out) {
      throw AuthError(where + " did not finish within " + std::to_string(timeout.count()) + " ms (killed)");
    }
    if (r.exit_code != 0) {
      std::string err = r.err.substr(0, 300);
      while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
      throw AuthError(where + " failed with exit code " + std::to_string(r.exit_code) +
                      (err.empty() ? "" : ": " + err));
    }
    return detail::parse_process_output(r.out, argv[0]);
  };
  return std::make_shared<detail::RefreshingProvider>(std::move(description), std::move(fetch), options.refresh);
}

}  // namespace kclpp::aws
