#pragma once
// python3-botocore as an independent SigV4 signer: a request captured by FakeHttpServer is
// signed again by botocore (same method, URL, signed headers, body, credentials and
// X-Amz-Date), and the two Authorization headers must be equal byte for byte.
#include <string>

#include "kclpp/aws/credentials.hpp"
#include "fake_http_server.hpp"
#include "local_server.hpp"

namespace kclpp::test {

// True when /usr/bin/python3 imports botocore.
[[nodiscard]] bool botocore_available();

// Skips the test locally, fails it in CI, when botocore is missing.
#define KCLPP_REQUIRE_BOTOCORE() \
  KCLPP_REQUIRE_PRESENT(::kclpp::test::botocore_available() ? "" : "python3-botocore is not installed")

// botocore's Authorization header for `req` sent to `url` (the full URL, query included),
// signed for `service` in `region` with `credentials`. The headers botocore signs are the
// ones the request's own Authorization lists (botocore adds host, x-amz-date and
// x-amz-security-token itself). On a botocore failure: its output, which will not match.
[[nodiscard]] std::string botocore_authorization(const std::string& url, const HttpRequest& req,
                                                 const aws::Credentials& credentials, const std::string& service,
                                                 const std::string& region = "us-east-1");

}  // namespace kclpp::test
