#include "fake_http_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>

#include "local_server.hpp"

namespace kclpp::test {

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

// --- reading requests, writing replies ----------------------------------------------------

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The request line and headers of `head` (the bytes before the blank line) into `req`;
// returns the Content-Length (0 when absent).
std::size_t parse_head(std::string_view head, HttpRequest& req) {
  std::size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  const auto sp1 = request_line.find(' ');
  const auto sp2 = request_line.find(' ', sp1 + 1);
  req.method = std::string(request_line.substr(0, sp1));
  req.path = sp1 == std::string_view::npos ? std::string{} : std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::size_t content_length = 0;
  while (line_end != std::string_view::npos && line_end < head.size()) {
    const std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string_view line = head.substr(start, line_end == std::string_view::npos ? std::string_view::npos
                                                                                        : line_end - start);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = lower(std::string(line.substr(0, colon)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "content-length") content_length = std::stoul(std::string(value));
    req.headers.emplace_back(std::move(name), std::string(value));
  }
  return content_length;
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

bool HttpRequestReader::read_more() {
  if (!wait_readable_()) return false;
  char chunk[65536];
  const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

std::optional<HttpRequest> HttpRequestReader::next() {
  std::size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!read_more()) return std::nullopt;
  }
  HttpRequest req;
  const std::size_t content_length = parse_head(std::string_view(buffer_).substr(0, head_end), req);
  buffer_.erase(0, head_end + 4);
  if (buffer_.size() < content_length && req.header("expect") == "100-continue") {
    if (!send_all(fd_, "HTTP/1.1 100 Continue\r\n\r\n")) return std::nullopt;
  }
  while (buffer_.size() < content_length) {
    if (!read_more()) return std::nullopt;
  }
  req.body = buffer_.substr(0, content_length);
  buffer_.erase(0, content_length);
  return req;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string http_response(int status, std::string_view content_type, std::string_view body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nContent-Type: " +
         std::string(content_type) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

void close_with_reset(int fd) {
  const linger l{1, 0};  // close() then sends RST instead of FIN
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

HttpReply HttpReply::aws_error(int status, std::string_view type, std::string_view message) {
  return json("{\"__type\":\"" + std::string(type) + "\",\"message\":\"" + std::string(message) + "\"}",
              status);
}

// --- FakeHttpServer -----------------------------------------------------------------------

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
  return local_client_options<aws::KinesisOptions>(endpoint_, std::chrono::milliseconds{1'000}, request_timeout);
}

void FakeHttpServer::run() {
  std::vector<std::thread> workers;  // ThreadPerConnection: they end when stop_ is set
  const auto serve = [this](int fd) {
    if (serve_connection(fd) == Served::CloseSocket) ::close(fd);
  };
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++connections_;
    if (mode_ == Mode::ThreadPerConnection) {
      workers.emplace_back(serve, fd);
    } else {
      serve(fd);
    }
  }
  for (auto& w : workers) w.join();
}

bool FakeHttpServer::sleep_unless_stopped(std::chrono::milliseconds delay) const {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < until) {
    if (stop_) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  return true;
}

FakeHttpServer::Served FakeHttpServer::serve_connection(int fd) {
  // Waits for input in short slices so that stop_ is honoured.
  HttpRequestReader reader(fd, [this, fd] {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  });
  while (auto req = reader.next()) {
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(*req);
    }
    const HttpReply reply = handler_(*req);
    if (!sleep_unless_stopped(reply.delay)) return Served::CloseSocket;
    if (reply.action == HttpReply::Action::Reset) {
      close_with_reset(fd);
      return Served::AlreadyClosed;
    }
    if (reply.action == HttpReply::Action::Close) return Served::CloseSocket;
    if (!send_all(fd, http_response(reply.status, reply.content_type, reply.body))) return Served::CloseSocket;
  }
  return Served::CloseSocket;
}

}  // namespace kclpp::test
