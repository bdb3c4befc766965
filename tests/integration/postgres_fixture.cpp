#include "postgres_fixture.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "local_server.hpp"

extern char** environ;

namespace kclpp::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* superuser = "kclpp";

bool is_root() { return ::geteuid() == 0; }

std::string find_bin_dir() {
  if (const char* env = std::getenv("KCLPP_PG_BINDIR"); env != nullptr && *env != '\0') return env;
  std::vector<fs::path> candidates;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    if (fs::exists(entry.path() / "bin" / "pg_ctl")) candidates.push_back(entry.path() / "bin");
  }
  if (candidates.empty()) return {};
  // Newest major version first ("15" > "9.6" numerically).
  std::sort(candidates.begin(), candidates.end(), [](const fs::path& a, const fs::path& b) {
    return std::atof(a.parent_path().filename().c_str()) > std::atof(b.parent_path().filename().c_str());
  });
  return candidates.front().string();
}

// Runs argv with stdin from /dev/null and stdout+stderr appended to `output`; waits at
// most `timeout` (then SIGKILLs it). Returns the exit code (-1: killed or timed out).
int run(const std::vector<std::string>& argv, const std::string& output, std::chrono::seconds timeout) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  const auto until = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() >= until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
}

// Where servers live: $KCLPP_PG_TMPDIR, else /dev/shm (tmpfs: copying and starting a
// cluster on a busy disk takes seconds), else $TMPDIR or /tmp. As root, the postgres user
// must be able to reach it, so not $TMPDIR.
std::string base_dir() {
  if (const char* env = std::getenv("KCLPP_PG_TMPDIR"); env != nullptr && *env != '\0') return env;
  if (fs::is_directory("/dev/shm") && ::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  return is_root() || tmp == nullptr || *tmp == '\0' ? "/tmp" : tmp;
}

}  // namespace

std::optional<std::string> Postgres::unavailable_reason() {
  const std::string bin = find_bin_dir();
  if (bin.empty()) return "no Postgres server binaries (/usr/lib/postgresql/*/bin; apt install postgresql)";
  for (const char* tool : {"initdb", "pg_ctl", "psql"}) {
    if (::access((fs::path(bin) / tool).c_str(), X_OK) != 0) return bin + "/" + tool + " is missing";
  }
  if (is_root()) {
    if (::getpwnam("postgres") == nullptr) return "running as root but there is no postgres user";
    if (::access("/usr/sbin/runuser", X_OK) != 0 && ::access("/sbin/runuser", X_OK) != 0) {
      return "running as root but runuser is missing";
    }
  }
  return std::nullopt;
}

Postgres::Postgres() {
  if (auto reason = unavailable_reason()) throw std::runtime_error(*reason);
  bin_dir_ = find_bin_dir();
  std::string pattern = base_dir() + "/kclpp-pg-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  }
  dir_ = pattern;
  try {
    if (is_root()) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("cannot chown " + dir_ + " to postgres");
      }
    }
    // initdb costs 1 to 6 s of CPU; a copy of a cached cluster costs a tenth of that.
    run_server_tool({"cp", "-a", cluster_template(), dir_ + "/data"}, 60s);
    // A port picked free may be taken before the server binds it: try a few.
    for (int attempt = 0;; ++attempt) {
      port_ = unused_port();
      try {
        start();
        break;
      } catch (const std::exception&) {
        if (attempt == 2) throw;
      }
    }
  } catch (...) {
    std::error_code ec;
    if (running_) stop();
    fs::remove_all(dir_, ec);
    throw;
  }
}

Postgres::~Postgres() {
  try {
    if (running_) stop();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string Postgres::uri(std::string_view database) const {
  std::string uri = "postgresql://";
  uri.append(superuser).append("@127.0.0.1:").append(std::to_string(port_)).append("/");
  uri.append(database).append("?connect_timeout=5");
  return uri;
}

std::string Postgres::create_database() {
  const std::string name = "kclpp_test_" + std::to_string(::getpid()) + "_" + std::to_string(++databases_);
  psql("CREATE DATABASE " + name);
  return uri(name);
}

std::string Postgres::psql(std::string_view sql, std::string_view database) {
  const std::string out = dir_ + "/psql-" + std::to_string(::getpid()) + ".out";
  std::error_code ec;
  fs::remove(out, ec);
  const int rc = run({bin_dir_ + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                      uri(database), "-c", std::string(sql)},
                     out, 30s);
  std::string text = read_file(out);
  fs::remove(out, ec);
  if (rc != 0) throw std::runtime_error("psql failed (" + std::to_string(rc) + "): " + text);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string Postgres::cluster_template() {
  // One freshly initdb'ed (never started) cluster per bin dir and user, made once and
  // published with an atomic rename, so concurrent test processes never see half of one.
  const std::string version = fs::path(bin_dir_).parent_path().filename().string();
  const std::string path = base_dir() + "/kclpp-pg-template-" + version + "-uid" + std::to_string(::geteuid());
  if (fs::exists(path + "/PG_VERSION") && fs::exists(path + "/global/pg_control")) return path;
  const std::string staging = dir_ + "/template";
  run_server_tool({bin_dir_ + "/initdb", "-D", staging, "-A", "trust", "-U", superuser, "-E",
                   "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                  120s);
  if (::rename(staging.c_str(), path.c_str()) != 0) {
    // Another process published one first: use it, drop ours.
    std::error_code ec;
    fs::remove_all(staging, ec);
    if (!fs::exists(path + "/PG_VERSION")) {
      throw std::runtime_error("cannot publish the cluster template " + path + ": " +
                               std::strerror(errno));
    }
  }
  return path;
}

void Postgres::run_server_tool(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  std::vector<std::string> full;
  if (is_root()) full = {"runuser", "-u", "postgres", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  const std::string out = dir_ + "/tool.out";
  std::error_code ec;
  fs::remove(out, ec);
  const int rc = run(full, out, timeout);
  if (rc != 0) {
    throw std::runtime_error(argv[0] + " failed (" + std::to_string(rc) + "): " + read_file(out) +
                             "\nserver log:\n" + log());
  }
}

void Postgres::start() {
  const std::string options = "-p " + std::to_string(port_) + " -k " + dir_ +
                              " -c listen_addresses=127.0.0.1 -c fsync=off"
                              " -c full_page_writes=off -c max_connections=50";
  run_server_tool({bin_dir_ + "/pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/server.log", "-w",
                   "-t", "30", "-o", options, "start"},
                  40s);
  running_ = true;
  wait_ready(20s);
}

void Postgres::stop() {
  running_ = false;
  run_server_tool({bin_dir_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w", "-t",
                   "20", "stop"},
                  30s);
}

void Postgres::restart() {
  const std::string options = "-p " + std::to_string(port_) + " -k " + dir_ +
                              " -c listen_addresses=127.0.0.1 -c fsync=off"
                              " -c full_page_writes=off -c max_connections=50";
  run_server_tool({bin_dir_ + "/pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/server.log", "-m",
                   "fast", "-w", "-t", "30", "-o", options, "restart"},
                  40s);
  running_ = true;
  wait_ready(20s);
}

void Postgres::wait_ready(std::chrono::seconds timeout) {
  // pg_ctl -w already waited on the socket; this checks the TCP listener we hand out.
  const auto until = Clock::now() + timeout;
  const std::string out = dir_ + "/ready.out";
  for (;;) {
    std::error_code ec;
    fs::remove(out, ec);
    if (run({bin_dir_ + "/pg_isready", "-q", "-h", "127.0.0.1", "-p", std::to_string(port_), "-t", "2"},
            out, 5s) == 0) {
      return;
    }
    if (Clock::now() >= until) {
      throw std::runtime_error("Postgres on port " + std::to_string(port_) +
                               " not ready in time; server log:\n" + log());
    }
    std::this_thread::sleep_for(50ms);
  }
}

std::string Postgres::log() const { return read_file(dir_ + "/server.log"); }

// --- PostgresTest -----------------------------------------------------------------------

std::unique_ptr<Postgres>& PostgresTest::server() {
  static std::unique_ptr<Postgres> instance;
  return instance;
}

std::string& PostgresTest::failure() {
  static std::string text;
  return text;
}

void PostgresTest::SetUpTestSuite() {
  failure().clear();
  if (auto reason = Postgres::unavailable_reason()) {
    failure() = *reason;
    return;
  }
  try {
    server() = std::make_unique<Postgres>();
  } catch (const std::exception& e) {
    failure() = std::string("cannot start Postgres: ") + e.what();
  }
}

void PostgresTest::TearDownTestSuite() { server().reset(); }

void PostgresTest::SetUp() {
  if (server() != nullptr) return;
  const bool installed = !Postgres::unavailable_reason().has_value();
  if (installed || in_ci()) {
    FAIL() << failure();
  }
  GTEST_SKIP() << failure();
}

Postgres& PostgresTest::pg() { return *server(); }

}  // namespace kclpp::test
