#pragma once
// An RAII guard over every environment variable the AWS credential chain (and botocore)
// reads, shared by the aws unit and integration tests: clears them, restores them after.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

namespace kclpp::aws::test_env {

// Clears every variable the credential chain (or botocore) reads; restores them afterwards.
class EnvGuard {
 public:
  EnvGuard() {
    for (const char* name : names) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
  }
  ~EnvGuard() {
    for (const char* name : names) {
      ::unsetenv(name);
      if (auto it = saved_.find(name); it != saved_.end()) ::setenv(name, it->second.c_str(), 1);
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

  // Only variables the guard restores may be set.
  static void set(const std::string& name, const std::string& value) {
    if (!guarded(name)) ADD_FAILURE() << name << " is not restored by EnvGuard";
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  static void unset(const std::string& name) { ::unsetenv(name.c_str()); }
  static bool guarded(const std::string& name) {
    for (const char* n : names) {
      if (name == n) return true;
    }
    return false;
  }

  static constexpr const char* names[] = {
      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
      "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
      "HOME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
      "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
      "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_EC2_METADATA_V1_DISABLED",
      "AWS_METADATA_SERVICE_TIMEOUT", "AWS_METADATA_SERVICE_NUM_ATTEMPTS", "AWS_ENDPOINT_URL",
      "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_S3",
      "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_CA_BUNDLE"};

 private:
  std::map<std::string, std::string> saved_;
};

}  // namespace kclpp::aws::test_env
