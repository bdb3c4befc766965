#include "kinesalite_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "kclpp/processor/error.hpp"
#include "support.hpp"

namespace kclpp::test {

namespace fs = std::filesystem;

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

std::vector<Record> read_stream(aws::KinesisClient& client, const std::string& stream, int max_reads) {
  std::vector<Record> out;
  for (const auto& shard : client.list_shards(stream)) {
    auto iterator = client.get_shard_iterator(stream, shard.shard_id, aws::StartPosition::trim_horizon());
    for (int round = 0; round < max_reads; ++round) {
      auto result = client.get_records(iterator);
      for (auto& r : result.records) out.push_back(std::move(r));
      if (!result.next_shard_iterator || (result.records.empty() && result.millis_behind_latest == 0)) break;
      iterator = *result.next_shard_iterator;
    }
  }
  return out;
}

const char* server_name(KinesisServer kind) noexcept {
  return kind == KinesisServer::Kinesalite ? "kinesalite" : "kinesis_local";
}

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

namespace {

aws::Credentials dummy_credentials() {
  return {"AKIDKCLPPTEST", "kclpp-test-secret", ""};
}

}  // namespace

int listen_on_loopback(int backlog, int& port, const char* who) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string(who) + ": socket() failed");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string(who) + ": bind/listen failed");
  }
  port = ntohs(addr.sin_port);
  return fd;
}

int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() to a free loopback port failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// --- Kinesalite ---------------------------------------------------------------------------

Kinesalite::Kinesalite(KinesisServer kind) : kind_(kind) {
  const std::string node = find_on_path("node");
  const fs::path modules = fs::path(KCLPP_SOURCE_DIR) / "node_modules";
  const fs::path script = kind == KinesisServer::Kinesalite ? modules / "kinesalite" / "cli.js"
                                                            : modules / "kinesis-local" / "main.js";
  if (node.empty()) {
    unavailable_reason_ = "node is not on PATH (needed for " + std::string(server_name(kind)) + ")";
    return;
  }
  if (!fs::exists(script)) {
    unavailable_reason_ = script.string() + " is missing: run `npm ci` in " + KCLPP_SOURCE_DIR;
    return;
  }
  // A free port can be taken between unused_port() and the server's bind: try again.
  std::string last_log;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = unused_port();
    std::vector<std::string> argv{node, script.string()};
    SpawnOptions spawn;
    if (kind == KinesisServer::Kinesalite) {
      for (const char* arg : {"--port", "", "--createStreamMs", "0", "--deleteStreamMs", "0",
                              "--updateStreamMs", "0"}) {
        argv.emplace_back(arg);
      }
      argv[3] = std::to_string(port);
    } else {
      // kinesis-local reads server.json (its TLS certificate) from the working directory
      // unless KINESIS_MOCK_CERT_PATH says where; it always opens a TLS port too, so that one
      // gets a free port as well. Durations at 0 make stream changes immediate.
      spawn.env = {"KINESIS_MOCK_PLAIN_PORT=" + std::to_string(port),
                   "KINESIS_MOCK_TLS_PORT=" + std::to_string(unused_port()),
                   "KINESIS_MOCK_CERT_PATH=" + (script.parent_path() / "server.json").string(),
                   "CREATE_STREAM_DURATION=0ms", "DELETE_STREAM_DURATION=0ms",
                   "MERGE_SHARDS_DURATION=0ms", "SPLIT_SHARD_DURATION=0ms",
                   "UPDATE_SHARD_COUNT_DURATION=0ms", "AWS_REGION=us-east-1", "LOG_LEVEL=WARN",
                   "SHOULD_PERSIST_DATA=false"};
    }
    endpoint_ = "http://127.0.0.1:" + std::to_string(port);
    process_ = std::make_unique<Subprocess>(argv, spawn);

    aws::KinesisOptions probe_options = client_options();
    probe_options.connect_timeout = std::chrono::milliseconds{500};
    probe_options.request_timeout = std::chrono::milliseconds{2'000};
    aws::KinesisClient probe(probe_options);
    // (The stream does not exist: the probe ends in an AwsError, which is an answer.)
    const ServerStart started = wait_until_answering(
        *process_, [&probe] { (void)probe.describe_stream_summary("kclpp-readiness-probe"); },
        std::chrono::seconds{30});
    if (started == ServerStart::Answering) return;
    last_log = process_->stderr_text();
    process_.reset();
    if (started == ServerStart::TimedOut) break;  // it runs but never answered: retrying will not help
  }
  throw std::runtime_error(std::string(server_name(kind)) + " did not start; its stderr:\n" + last_log);
}

Kinesalite::~Kinesalite() = default;

aws::KinesisOptions Kinesalite::client_options() const {
  aws::KinesisOptions o;
  o.endpoint = endpoint_;
  o.region = "us-east-1";
  o.credentials = aws::static_credentials(dummy_credentials());
  o.connect_timeout = std::chrono::milliseconds{2'000};
  o.request_timeout = std::chrono::milliseconds{20'000};
  return o;
}

std::string Kinesalite::server_log() const { return process_ ? process_->stderr_text() : std::string{}; }

// --- FakeHttpServer -----------------------------------------------------------------------

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

HttpReply HttpReply::aws_error(int status, std::string_view type, std::string_view message) {
  return json("{\"__type\":\"" + std::string(type) + "\",\"message\":\"" + std::string(message) + "\"}",
              status);
}

FakeHttpServer::FakeHttpServer(Handler handler, Mode mode) : handler_(std::move(handler)), mode_(mode) {
  int port = 0;
  listen_fd_ = listen_on_loopback(16, port, "FakeHttpServer");
  endpoint_ = "http://127.0.0.1:" + std::to_string(port);
  thread_ = std::thread([this] { run(); });
}

FakeHttpServer::~FakeHttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

std::vector<HttpRequest> FakeHttpServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

aws::KinesisOptions FakeHttpServer::client_options(std::chrono::milliseconds request_timeout) const {
  aws::KinesisOptions o;
  o.endpoint = endpoint_;
  o.region = "us-east-1";
  o.credentials = aws::static_credentials(dummy_credentials());
  o.connect_timeout = std::chrono::milliseconds{1'000};
  o.request_timeout = request_timeout;
  return o;
}

void FakeHttpServer::run() {
  std::vector<std::thread> workers;  // ThreadPerConnection: they end when stop_ is set
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++connections_;
    if (mode_ == Mode::ThreadPerConnection) {
      workers.emplace_back([this, fd] {
        if (serve_connection(fd)) ::close(fd);
      });
    } else if (serve_connection(fd)) {
      ::close(fd);
    }
  }
  for (auto& w : workers) w.join();
}

namespace {

// Waits for input on fd in short slices so that `stop` is honoured; false on stop.
bool wait_readable(int fd, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, 20);
    if (n > 0) return true;
  }
  return false;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

}  // namespace

// Returns true when the caller should close fd (false: already closed here).
bool FakeHttpServer::serve_connection(int fd) {
  std::string buffer;
  char chunk[65536];
  auto read_more = [&]() -> bool {
    if (!wait_readable(fd, stop_)) return false;
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
  };
  for (;;) {
    std::size_t head_end;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!read_more()) return true;
    }
    HttpRequest req;
    const std::string head = buffer.substr(0, head_end);
    std::size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const auto sp1 = request_line.find(' ');
    const auto sp2 = request_line.find(' ', sp1 + 1);
    req.method = request_line.substr(0, sp1);
    req.path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::size_t content_length = 0;
    while (line_end != std::string::npos && line_end < head.size()) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos
                                                                                : line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (name == "content-length") content_length = std::stoul(value);
      req.headers.emplace_back(std::move(name), std::move(value));
    }
    buffer.erase(0, head_end + 4);
    if (buffer.size() < content_length && req.header("expect") == "100-continue") {
      if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return true;
    }
    while (buffer.size() < content_length) {
      if (!read_more()) return true;
    }
    req.body = buffer.substr(0, content_length);
    buffer.erase(0, content_length);
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(req);
    }
    const HttpReply reply = handler_(req);
    const auto until = std::chrono::steady_clock::now() + reply.delay;
    while (std::chrono::steady_clock::now() < until) {
      if (stop_) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    if (reply.action == HttpReply::Action::Reset) {
      const linger l{1, 0};  // close() then sends RST instead of FIN
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::close(fd);
      return false;
    }
    if (reply.action == HttpReply::Action::Close) return true;
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason(reply.status) +
                      "\r\nContent-Type: " + reply.content_type +
                      "\r\nContent-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n" + reply.body;
    if (!send_all(fd, out)) return true;
  }
}

}  // namespace kclpp::test
