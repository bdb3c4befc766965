#pragma once
// The one SigV4 signer of kclpp (OpenSSL), for every service: Kinesis, S3, DynamoDB, STS.
// Checked byte for byte against botocore (tests/unit/aws_sigv4_test.cpp,
// tests/integration/s3_client_test.cpp, tests/integration/kinesis_client_test.cpp).
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"

namespace kclpp::aws::detail {

// --- encoding --------------------------------------------------------------------------

// What uri_encode does with '/': kept in an object key's path, encoded everywhere else
// (bucket names in paths, query keys and values).
enum class Slash { Keep, Encode };

// RFC 3986 percent-encoding as SigV4 wants it: A-Z a-z 0-9 - _ . ~ stay, every other byte
// becomes %XX (upper-case hex); '/' as `slash` says.
[[nodiscard]] std::string uri_encode(std::string_view s, Slash slash);

// "k1=v1&k2=v2" with keys and values uri_encode()d, sorted by encoded key then value: both
// the URL's query string and SigV4's canonical query string (an empty value gives "k=").
[[nodiscard]] std::string canonical_query(
    const std::vector<std::pair<std::string, std::string>>& params);

// --- SigV4 -------------------------------------------------------------------------------

[[nodiscard]] std::string sha256_hex(std::string_view data);
inline constexpr std::string_view empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// "YYYYMMDDTHHMMSSZ" for a Unix time in seconds.
[[nodiscard]] std::string amz_date(std::int64_t unix_seconds);

// One request to sign. `headers` must include host and x-amz-date (and
// x-amz-security-token for temporary credentials; S3 also wants x-amz-content-sha256).
// Every header given is signed; names are compared and signed lower-case.
struct SigningInput {
  std::string method;
  std::string canonical_uri;    // the URL's path exactly as sent (already encoded)
  std::string canonical_query;  // the URL's query exactly as sent (canonical_query())
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string amz_date;      // same as the x-amz-date header
  std::string region;
  std::string service;
};

// The canonical request (step 1 of SigV4), for tests and debug logs.
[[nodiscard]] std::string canonical_request(const SigningInput& in);
// The Authorization header's value:
// "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request, SignedHeaders=..., Signature=...".
[[nodiscard]] std::string authorization(const SigningInput& in, const Credentials& credentials);


// Signs a request in place: adds x-amz-date (from `now`), x-amz-security-token when the
// credentials have a session token, and returns the Authorization header's value.
// `in.headers` must already hold host (and anything else to sign); in.amz_date is set.
[[nodiscard]] std::string sign(SigningInput& in, const Credentials& credentials,
                               std::chrono::system_clock::time_point now);

}  // namespace kclpp::aws::detail
