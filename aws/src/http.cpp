#include "http.hpp"

#include <curl/curl.h>

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "kclpp/processor/error.hpp"

namespace kclpp::aws::detail {

namespace {

struct EasyDeleter {
  void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};


// What the callbacks of one request see.
struct Transfer {
  CURL* easy = nullptr;
  std::string* body = nullptr;
  std::size_t padding = 0;
  const std::function<void(std::string_view)>* sink = nullptr;
  std::exception_ptr sink_error;
  HttpResult* result = nullptr;
};

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (t->sink != nullptr) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      try {
        (*t->sink)(std::string_view(data, n));
      } catch (...) {
        // A short count aborts the transfer (CURLE_WRITE_ERROR); perform() rethrows.
        t->sink_error = std::current_exception();
        return 0;
      }
      t->result->delivered += n;
      return n;
    }
  }
  std::string& b = *t->body;
  if (b.empty()) {
    // The first chunk of a reply: make room for all of it at once (Content-Length), so that
    // a 15 MB GetRecords reply is not copied through a dozen doublings, each touching
    // fresh pages.
    curl_off_t length = -1;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length > 0 &&
        static_cast<std::uint64_t>(length) < (std::uint64_t{1} << 31)) {
      const std::size_t want = static_cast<std::size_t>(length) + t->padding;
      if (b.capacity() < want) b.reserve(want);
    }
  }
  const std::size_t need = b.size() + n + t->padding;
  if (b.capacity() < need) b.reserve(std::max(need, b.capacity() * 2));
  b.append(data, n);
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after 100 Continue, a redirect)
    t->result->headers.clear();
    return n;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  t->result->headers.emplace_back(std::move(name), std::string(value));
  return n;
}

// Failures that happen before the request is on the wire: the server cannot have acted.
bool failed_before_send(CURLcode code) noexcept {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_LOGIN_DENIED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// The transport options every request wants: no signals, TLS peer and host verification,
// http and https only, TCP keep-alive and no-delay, kclpp's User-Agent, paths sent as given
// (S3 keys with "../" are keys), a 512 KiB receive buffer (GetRecords replies run to 15 MB:
// the default 16 KiB costs a recv() and a callback per 16 KiB; bench/native_throughput).
void set_common_options(void* easy) noexcept {
  CURL* h = easy;
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "kclpp/0.1");
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  // 512 KiB is the most libcurl 7.88 takes; untouched pages of an idle shard's buffer stay
  // virtual.
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024L);
  // The AWS SDKs' AWS_CA_BUNDLE: certificates to trust instead of the system's (a private
  // CA, a local server with its own certificate).
  // (libcurl copies the string.)
  if (const char* ca_bundle = std::getenv("AWS_CA_BUNDLE"); ca_bundle != nullptr && *ca_bundle != '\0') {
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_bundle);
  }
}

void curl_global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

UrlParts split_url(std::string_view url) {
  UrlParts u;
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) throw ConfigError("URL '" + std::string(url) + "' has no scheme");
  u.scheme = std::string(url.substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") {
    throw ConfigError("URL '" + std::string(url) + "' must start with http:// or https://");
  }
  std::string_view rest = url.substr(sep + 3);
  const std::size_t slash = rest.find_first_of("/?");
  u.host = std::string(rest.substr(0, slash));
  u.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.path.front() == '?') u.path.insert(0, "/");
  if (u.host.empty() || u.host.find_first_of("@ #") != std::string::npos) {
    throw ConfigError("URL '" + std::string(url) + "' has no valid host");
  }
  const std::string default_port = u.scheme == "https" ? ":443" : ":80";
  if (u.host.size() > default_port.size() &&
      u.host.compare(u.host.size() - default_port.size(), default_port.size(), default_port) == 0) {
    u.host.resize(u.host.size() - default_port.size());
  }
  return u;
}

std::string HttpResult::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return {};
}

struct HttpClient::Impl {
  HttpOptions options;
  std::unique_ptr<CURL, EasyDeleter> easy;
  std::string body;
  Transfer transfer;
  char error[CURL_ERROR_SIZE] = {};
};

HttpClient::HttpClient(HttpOptions options) : impl_(std::make_unique<Impl>()) {
  curl_global_init_once();
  impl_->options = std::move(options);
  impl_->easy.reset(curl_easy_init());
  if (!impl_->easy) throw TransportError("libcurl: curl_easy_init failed", Retry::No);
  CURL* h = impl_->easy.get();
  impl_->transfer.easy = h;
  impl_->transfer.body = &impl_->body;
  const HttpOptions& o = impl_->options;
  // Every option below is set once: the handle (and its connection cache) is reused.
  set_common_options(h);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(o.request_timeout.count()));
  if (o.low_speed_timeout.count() > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>((o.low_speed_timeout.count() + 999) / 1000)));
  }
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, impl_->error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &impl_->transfer);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &impl_->transfer);
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

std::string& HttpClient::body() noexcept { return impl_->body; }

HttpResult HttpClient::perform(const HttpRequest& request) {
  Impl& m = *impl_;
  CURL* h = m.easy.get();
  std::unique_ptr<curl_slist, SlistDeleter> list;
  auto append = [&](const char* line) {
    curl_slist* next = curl_slist_append(list.get(), line);
    if (next == nullptr) throw TransportError("libcurl: out of memory", Retry::No);
    (void)list.release();
    list.reset(next);
  };
  bool content_type = false;
  if (request.headers != nullptr) {
    for (const auto& header : *request.headers) {
      append(header.c_str());
      content_type = content_type || (header.size() > 13 && (header[0] == 'c' || header[0] == 'C') &&
                                      strncasecmp(header.c_str(), "content-type:", 13) == 0);
    }
  }
  // No form Content-Type that libcurl would add to a body (S3 would store it on the object).
  if (!content_type) append("Content-Type:");
  // No `Expect: 100-continue` round trip for bodies over 1 MB.
  append("Expect:");
  const std::string url(request.url);
  const std::string method(request.method);
  HttpResult r;
  m.body.clear();
  m.transfer.padding = request.padding;
  m.transfer.sink = request.sink;
  m.transfer.sink_error = nullptr;
  m.transfer.result = &r;
  m.error[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
  if (request.method == "GET" || request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(h, CURLOPT_NOBODY, request.method == "HEAD" ? 1L : 0L);
  } else {
    // Every other verb carries the body from memory as POST does (sent again from the
    // same bytes when libcurl must rewind); the IMDS token is a PUT with none.
    curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method == "POST" ? nullptr : method.c_str());
  }

  const CURLcode code = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);     // `list` dies here
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);  // `method` too
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);     // and the body
  m.transfer.result = nullptr;
  if (m.transfer.sink_error) std::rethrow_exception(m.transfer.sink_error);
  if (m.body.capacity() < m.body.size() + request.padding) m.body.reserve(m.body.size() + request.padding);
  if (code == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }
  r.error = m.error[0] != '\0' ? std::string(m.error) : std::string(curl_easy_strerror(code));
  r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
  // A timeout before the connection was ready (no pre-transfer time) sent nothing either.
  curl_off_t pretransfer_us = 0;
  curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
  const bool not_sent = failed_before_send(code) || (r.timed_out && pretransfer_us == 0);
  r.outcome = not_sent ? HttpResult::Outcome::NotSent : HttpResult::Outcome::Failed;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

}  // namespace kclpp::aws::detail
