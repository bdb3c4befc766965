// Region and endpoint resolution in the AWS SDKs' order, and the AWS error type.
#include "kclpp/aws/config.hpp"

#include <cctype>
#include <utility>

#include "kclpp/aws/error.hpp"
#include "kclpp/processor/error.hpp"
#include "shared_config.hpp"

namespace kclpp::aws {

AwsError::AwsError(const std::string& what, std::string type, int http_status, Retry retry)
    : Error(what, retry), type_(std::move(type)), http_status_(http_status) {}

std::string resolve_region(const std::string& explicit_region, const ProfileOptions& profile) {
  if (!explicit_region.empty()) return explicit_region;
  if (std::string r = detail::env("AWS_REGION"); !r.empty()) return r;
  if (std::string r = detail::env("AWS_DEFAULT_REGION"); !r.empty()) return r;
  const std::string name = detail::profile_name(profile);
  const detail::SharedFiles files = detail::load_shared_files(profile);
  // botocore merges the credentials file's profile into the config file's: a region set
  // in either counts.
  if (auto section = detail::find_profile(files, name)) {
    if (std::string r = detail::get(*section, "region"); !r.empty()) return r;
  }
  throw ConfigError("no AWS region: give one explicitly, or set AWS_REGION / AWS_DEFAULT_REGION, "
                    "or 'region' in " + files.config_path + " for profile '" + name + "'");
}

namespace {

std::string checked_url(std::string url, const std::string& origin) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    throw ConfigError(origin + ": endpoint '" + url + "' must start with http:// or https://");
  }
  if (url.find_first_of(" \t\r\n") != std::string::npos) {
    throw ConfigError(origin + ": endpoint '" + url + "' contains whitespace");
  }
  return url;
}

}  // namespace

std::string resolve_endpoint(std::string_view service_env, const std::string& explicit_endpoint,
                             const std::string& regional_default, const ProfileOptions& profile) {
  if (!explicit_endpoint.empty()) return checked_url(explicit_endpoint, "the endpoint option");
  std::optional<detail::Section> section;
  std::string profile_label;
  bool ignore = detail::env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  // The variable, when set, decides; the profile's setting only when it is not (botocore).
  const bool decided = ignore || !detail::env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").empty();
  if (!ignore) {
    const detail::SharedFiles files = detail::load_shared_files(profile);
    const std::string name = detail::profile_name(profile);
    section = detail::find_profile(files, name);
    profile_label = "profile '" + name + "' in " + files.config_path;
    if (section && !decided) {
      std::string v = detail::get(*section, "ignore_configured_endpoint_urls");
      for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ignore = v == "true";
    }
  }
  if (!ignore) {
    const std::string variable = "AWS_ENDPOINT_URL_" + std::string(service_env);
    if (std::string v = detail::env(variable.c_str()); !v.empty()) return checked_url(v, variable);
    if (std::string v = detail::env("AWS_ENDPOINT_URL"); !v.empty()) return checked_url(v, "AWS_ENDPOINT_URL");
    if (section) {
      if (std::string v = detail::get(*section, "endpoint_url"); !v.empty()) {
        return checked_url(v, "endpoint_url of " + profile_label);
      }
    }
  }
  return checked_url(regional_default, "the regional default");
}

std::string regional_endpoint(std::string_view service, const std::string& region) {
  // China partition regions live under amazonaws.com.cn.
  const bool china = region.rfind("cn-", 0) == 0;
  return "https://" + std::string(service) + "." + region + (china ? ".amazonaws.com.cn" : ".amazonaws.com");
}

}  // namespace kclpp::aws
