#pragma once
// The one HTTP transport of kclpp::aws: a libcurl easy handle, reused for every request of
// its owner (keep-alive connection reuse), with the common options set once, and the
// classification of failures (not sent / failed after sending). Signing is the caller's
// (sigv4.hpp). curl.h stays in http.cpp.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/processor/error.hpp"

namespace kclpp::aws::detail {

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};
};

// One request. `headers` are "Name: value" lines sent as given (a "Host:" line replaces
// libcurl's own, so that the signed host is the one sent).
struct HttpRequest {
  std::string_view method = "POST";  // GET, PUT, POST, DELETE
  std::string_view url;
  const std::vector<std::string>* headers = nullptr;
  std::string_view body;
  // Spare bytes of capacity kept past the end of the reply body (simdjson reads past it).
  std::size_t padding = 0;
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

// True when a libcurl result code (a CURLcode, passed as int so that this header does not
// need curl.h) means the request never left: the server cannot have acted on it.
[[nodiscard]] bool curl_failed_before_send(int curl_code) noexcept;
// Sets the transport options every client wants on a libcurl easy handle (a CURL*, passed
// as void* for the same reason): no signals, TLS peer and host verification, http and
// https only, TCP keep-alive and no-delay, kclpp's User-Agent, a 512 KiB receive buffer
// (GetRecords replies run to 15 MB: the default 16 KiB costs a recv() and a callback per
// 16 KiB; bench/native_throughput).
void curl_set_common_options(void* curl_easy) noexcept;
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
