#pragma once
// Where the AWS SDKs' settings come from: the profile in the shared files, the region,
// and each service's endpoint, resolved in the SDKs' order.
#include <string>
#include <string_view>

namespace kclpp::aws {

// Which profile of which shared files. Value type.
struct ProfileOptions {
  // Profile in the shared files; empty: $AWS_PROFILE, $AWS_DEFAULT_PROFILE, else "default".
  // Naming a profile here also makes the credential chain skip the environment's keys, as
  // the AWS CLI's --profile does.
  std::string profile;
  // Shared files; empty: $AWS_SHARED_CREDENTIALS_FILE / $AWS_CONFIG_FILE, else
  // ~/.aws/credentials and ~/.aws/config.
  std::string credentials_file;
  std::string config_file;
};

// `explicit_region` if not empty, else $AWS_REGION, $AWS_DEFAULT_REGION, the profile's
// `region` in the config file. Throws ConfigError when none is set (or for a malformed
// config file, naming file and line).
[[nodiscard]] std::string resolve_region(const std::string& explicit_region,
                                         const ProfileOptions& profile = {});

// The endpoint URL of a service, as the AWS SDKs choose it: `explicit_endpoint`, then
// $AWS_ENDPOINT_URL_<SERVICE> (`service_env` is the upper-case suffix: "KINESIS", "S3",
// "DYNAMODB", "STS"), then $AWS_ENDPOINT_URL, then the profile's `endpoint_url`, then
// `regional_default` (the caller's https://<service>.<region>.amazonaws.com[.cn]).
// $AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (or the profile's
// `ignore_configured_endpoint_urls = true`) skips the environment and profile. Trailing
// slashes are removed. Throws ConfigError for a URL that is not http:// or https://,
// naming where it came from.
[[nodiscard]] std::string resolve_endpoint(std::string_view service_env,
                                           const std::string& explicit_endpoint,
                                           const std::string& regional_default,
                                           const ProfileOptions& profile = {});

// https://<service>.<region>.amazonaws.com (.amazonaws.com.cn in the China regions).
[[nodiscard]] std::string regional_endpoint(std::string_view service, const std::string& region);

}  // namespace kclpp::aws
