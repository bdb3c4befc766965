#pragma once
// One libcurl easy handle, reused for every request of its owner (keep-alive connection
// reuse), signing each request with libcurl's SigV4 signer. curl.h stays in http.cpp.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kclpp::native::detail {

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};
  // SigV4 signing (CURLOPT_AWS_SIGV4 "aws:amz:REGION:SERVICE"); empty access key: unsigned.
  std::string region;
  std::string service;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // sent (and signed) as X-Amz-Security-Token when not empty
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

  // POSTs `body` to `url` with the extra `headers` ("Name: value"). The response body is
  // left in body(), which keeps `padding` spare bytes of capacity past its size (simdjson
  // reads past the end). Never throws for network failures: see HttpResult.
  HttpResult post(const std::string& url, const std::vector<std::string>& headers,
                  std::string_view body, std::size_t padding);
  [[nodiscard]] std::string& body() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::native::detail
