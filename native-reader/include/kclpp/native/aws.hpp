#pragma once
// AWS plumbing shared by the Kinesis client and (later) the S3 client: credentials, the
// credential chain, region resolution, and the error type for a service's error reply.
#include <optional>
#include <string>

#include "kclpp/processor/error.hpp"

namespace kclpp::native {

// Static AWS credentials. Value type.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

// Where credentials and the region come from when not given explicitly.
struct CredentialOptions {
  // Profile in the shared files; empty: $AWS_PROFILE, else "default".
  std::string profile;
  // Shared files; empty: $AWS_SHARED_CREDENTIALS_FILE / $AWS_CONFIG_FILE, else
  // ~/.aws/credentials and ~/.aws/config.
  std::string credentials_file;
  std::string config_file;
};

// The credential chain: $AWS_ACCESS_KEY_ID + $AWS_SECRET_ACCESS_KEY (+ $AWS_SESSION_TOKEN),
// then the profile in the shared credentials file, then in the shared config file
// (`[profile NAME]`, or `[default]`). An explicit `options.profile` skips the environment
// variables, as the AWS CLI's --profile does. Roles, SSO and credential_process are not
// supported (the AuthError says so when a profile uses them).
// Throws AuthError naming every place it looked when none has credentials, ConfigError
// for a malformed file (naming file and line). Not retryable.
[[nodiscard]] Credentials resolve_credentials(const CredentialOptions& options = {});

// `explicit_region` if not empty, else $AWS_REGION, $AWS_DEFAULT_REGION, the profile's
// `region` in the config file. Throws ConfigError when none is set.
[[nodiscard]] std::string resolve_region(const std::string& explicit_region,
                                         const CredentialOptions& options = {});

// An error reply of an AWS service that has no more specific kclpp type: `type()` is the
// AWS error code without its namespace prefix (`__type` "...#ResourceNotFoundException" →
// "ResourceNotFoundException"). Throttling replies are ThrottledError, credential and
// signature replies AuthError, 5xx and network failures TransportError (retryable).
class AwsError : public Error {
 public:
  AwsError(const std::string& what, std::string type, int http_status, Retry retry);
  [[nodiscard]] const std::string& type() const noexcept { return type_; }
  [[nodiscard]] int http_status() const noexcept { return http_status_; }

 private:
  std::string type_;
  int http_status_;
};

namespace detail {
// True when a libcurl result code (a CURLcode, passed as int so that this header does not
// need curl.h) means the request never left: nothing was sent, so the server cannot have
// acted on it. Shared by the Kinesis HTTP client and the S3 client (kclpp::pipeline).
[[nodiscard]] bool curl_failed_before_send(int curl_code) noexcept;
// Sets the transport options both clients want on a libcurl easy handle (a CURL*, passed
// as void* for the same reason): no signals, TLS peer and host verification, http and
// https only, TCP keep-alive and no-delay, kclpp's User-Agent, a 512 KiB receive buffer
// (GetRecords replies run to 15 MB: the default 16 KiB costs a recv() and a callback per
// 16 KiB; bench/native_throughput).
void curl_set_common_options(void* curl_easy) noexcept;
}  // namespace detail

}  // namespace kclpp::native
