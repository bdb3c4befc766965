#include "local_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "kclpp/aws/error.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::test {

namespace fs = std::filesystem;

bool in_ci() noexcept {
  const char* v = std::getenv("KCLPP_CI");
  return v != nullptr && *v != '\0';
}

std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string p = path == nullptr ? "/usr/local/bin:/usr/bin:/bin" : path;
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = std::min(p.find(':', start), p.size());
    const fs::path candidate = fs::path(p.substr(start, end - start)) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return {};
}

aws::Credentials dummy_credentials() { return {"AKIDKCLPPTEST", "kclpp-test-secret", ""}; }

namespace {

// A TCP socket bound to 127.0.0.1 and a free port (listening when `backlog` > 0); sets
// `port`. Throws std::runtime_error naming `who` and the failed call.
int bind_loopback(int backlog, int& port, const char* who) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string(who) + ": socket: " + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      (backlog > 0 && ::listen(fd, backlog) != 0) ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error(std::string(who) + ": bind/listen on 127.0.0.1: " + std::strerror(error));
  }
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

int listen_on_loopback(int backlog, int& port, const char* who) {
  return bind_loopback(std::max(backlog, 1), port, who);
}

int unused_port() {
  int port = 0;
  ::close(bind_loopback(0, port, "unused_port"));
  return port;
}

ServerStart wait_until_answering(Subprocess& process, const std::function<void()>& probe,
                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      probe();
      return ServerStart::Answering;
    } catch (const aws::AwsError&) {
      return ServerStart::Answering;  // an error reply is an answer
    } catch (const Error&) {
      // not listening yet
    }
    if (process.wait(std::chrono::milliseconds{50})) return ServerStart::Exited;
  }
  return ServerStart::TimedOut;
}

std::string program_unavailable(const std::string& program) {
  return find_on_path(program).empty() ? program + " is not installed (not on $PATH)" : std::string{};
}

std::string node_unavailable(const fs::path& module_path) {
  if (find_on_path("node").empty()) return "node is not on PATH (needed for " + module_path.string() + ")";
  const fs::path module = fs::path(KCLPP_SOURCE_DIR) / "node_modules" / module_path;
  if (!fs::exists(module)) return module.string() + " is missing: run `npm ci` in " + KCLPP_SOURCE_DIR;
  return {};
}

// --- NodeServer ---------------------------------------------------------------------------

NodeServer::NodeServer(const NodeServerSpec& spec) : unavailable_reason_(node_unavailable(spec.script)) {
  if (!unavailable_reason_.empty()) return;
  const std::string node = find_on_path("node");
  const fs::path script = fs::path(KCLPP_SOURCE_DIR) / "node_modules" / spec.script;
  std::string last_log;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = unused_port();
    SpawnOptions spawn;
    if (spec.env) spawn.env = spec.env(script.string(), port);
    endpoint_ = "http://127.0.0.1:" + std::to_string(port);
    process_ = std::make_unique<Subprocess>(spec.argv(node, script.string(), port), spawn);
    const ServerStart started = wait_until_answering(
        *process_, [&] { spec.probe(endpoint_); }, std::chrono::seconds{30});
    if (started == ServerStart::Answering) return;
    last_log = process_->stderr_text();
    process_.reset();
    if (started == ServerStart::TimedOut) break;  // it runs but never answered: retrying will not help
  }
  throw std::runtime_error(spec.name + " did not start; its stderr:\n" + last_log);
}

NodeServer::~NodeServer() = default;

std::string NodeServer::server_log() const { return process_ ? process_->stderr_text() : std::string{}; }

}  // namespace kclpp::test
