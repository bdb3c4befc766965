#pragma once
// The one HTTP transport of kclpp::aws: a libcurl easy handle, reused for every request of
// its owner (keep-alive connection reuse), with the common options set once, and the
// classification of failures (not sent / failed after sending). Signing is the caller's
// (sigv4.hpp). curl.h stays in http.cpp.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/processor/error.hpp"

namespace kclpp::aws::detail {

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  // Whole-request limit; 0: none (S3 transfers of any size use low_speed_timeout).
  std::chrono::milliseconds request_timeout{30'000};
  // A request fails when no byte moves for this long; 0: off.
  std::chrono::milliseconds low_speed_timeout{0};
};

// One request. `headers` are "Name: value" lines sent as given (a "Host:" line replaces
// libcurl's own, so that the signed host is the one sent).
// Without a Content-Type line, none is sent (libcurl would add a form type to bodies).
struct HttpRequest {
  std::string_view method = "POST";  // GET, HEAD, PUT, POST, DELETE
  std::string_view url;
  const std::vector<std::string>* headers = nullptr;
  std::string_view body;  // sent from here, not copied; sent again when libcurl must
  // Spare bytes of capacity kept past the end of the reply body (simdjson reads past it).
  std::size_t padding = 0;
  // When set, the body of a 2xx reply goes here as it arrives instead of into body()
  // (memory bounded by the transfer buffer). A sink that throws aborts the transfer and
  // its exception leaves perform().
  const std::function<void(std::string_view)>* sink = nullptr;
};

// What happened to one request.
struct HttpResult {
  enum class Outcome {
    Response,  // a complete HTTP response arrived: status, body
    NotSent,   // failed before any byte of the request left (resolve, connect, TLS handshake)
    Failed,    // failed after the request started going out (reset, timeout, truncated reply)
  };
  Outcome outcome = Outcome::Response;
  long status = 0;
  bool timed_out = false;
  std::string error;  // libcurl's description when outcome != Response
  // The final response's headers (after any 100 Continue), names lower-cased.
  std::vector<std::pair<std::string, std::string>> headers;
  std::uint64_t delivered = 0;  // body bytes given to the request's sink
  // The value of header `name` (lower-case), "" when absent.
  [[nodiscard]] std::string header(std::string_view name) const;
};

// Thread safety: none (one per thread). Move-only.
class HttpClient {
 public:
  // Throws TransportError(Retry::No) if libcurl cannot be initialised.
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs `request`. The response body is left in body(). Never throws for network
  // failures: see HttpResult (TransportError only when libcurl runs out of memory).
  HttpResult perform(const HttpRequest& request);
  [[nodiscard]] std::string& body() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The transport options every libcurl easy handle of kclpp gets (TLS verification, http(s)
// only, keep-alive, no signals, User-Agent, receive buffer). `easy` is a CURL*.
void set_common_options(void* easy) noexcept;

// curl_global_init, once per process.
void curl_global_init_once();

// The host[:port] of an http(s) URL as libcurl sends it in the Host header (a default
// port dropped), and its path ("/" when none). Throws ConfigError for anything else.
struct UrlParts {
  std::string scheme;
  std::string host;
  std::string path;
};
[[nodiscard]] UrlParts split_url(std::string_view url);

}  // namespace kclpp::aws::detail
