#pragma once
// python3-botocore as an independent SigV4 signer: a request captured by FakeHttpServer is
// signed again by botocore (same method, URL, signed headers, body, credentials and
// X-Amz-Date), and the two Authorization headers must be equal byte for byte.
#include <string>

#include "kclpp/aws/credentials.hpp"
#include "kinesalite_fixture.hpp"

namespace kclpp::test {

// True when /usr/bin/python3 imports botocore.
[[nodiscard]] bool botocore_available();

// Skips the test locally, fails it in CI, when botocore is missing.
#define KCLPP_REQUIRE_BOTOCORE()                                                   \
  do {                                                                             \
    if (!::kclpp::test::botocore_available()) {                                    \
      if (::kclpp::test::in_ci()) FAIL() << "python3-botocore is not installed";   \
      GTEST_SKIP() << "python3-botocore is not installed";                         \
    }                                                                              \
  } while (false)

// botocore's Authorization header for `req` sent to `url` (the full URL, query included),
// signed for `service` in `region` with `credentials`. The headers botocore signs are the
// ones the request's own Authorization lists (botocore adds host, x-amz-date and
// x-amz-security-token itself). On a botocore failure: its output, which will not match.
[[nodiscard]] std::string botocore_authorization(const std::string& url, const HttpRequest& req,
                                                 const aws::Credentials& credentials, const std::string& service,
                                                 const std::string& region = "us-east-1");

}  // namespace kclpp::test
