#pragma once
// An AWS STS client (Query API over HTTP(S), XML replies): AssumeRole and
// AssumeRoleWithWebIdentity, the two calls the credential providers need.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/error.hpp"

namespace kclpp::aws {

struct StsOptions {
  // Empty: resolve_region(); when none is configured, the global endpoint (us-east-1).
  std::string region;
  // Empty: resolve_endpoint("STS", ...), else https://sts.<region>.amazonaws.com.
  std::string endpoint;
  // Signs AssumeRole. Null: shared_default_credentials(profile), resolved at the first
  // signed call (AssumeRoleWithWebIdentity is unsigned and needs none).
  CredentialsProviderPtr credentials;
  ProfileOptions profile;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{10'000};
};

struct AssumeRoleRequest {
  std::string role_arn;
  std::string session_name;
  std::string external_id;                       // empty: none
  std::optional<std::chrono::seconds> duration;  // empty: STS's default
};

struct WebIdentityRequest {
  std::string role_arn;
  std::string session_name;
  std::string token;  // the OIDC token itself (never logged)
  std::optional<std::chrono::seconds> duration;
};

// Not thread-safe: one per thread. Move-only. The constructor resolves region and endpoint
// (ConfigError); it makes no request. Calls throw AuthError (AccessDenied,
// InvalidIdentityToken, ExpiredTokenException, InvalidClientTokenId: not retryable),
// ThrottledError, TransportError (network, 5xx, IDPCommunicationError: retryable),
// AwsError (any other error reply), ProtocolError (a reply that is not the expected XML;
// its body is never quoted, as it may hold credentials). The client never retries.
class StsClient {
 public:
  explicit StsClient(StsOptions options);
  ~StsClient();
  StsClient(StsClient&&) noexcept;
  StsClient& operator=(StsClient&&) noexcept;

  [[nodiscard]] const StsOptions& options() const noexcept;
  // The signing region actually used ("us-east-1" for the global endpoint).
  [[nodiscard]] const std::string& region() const noexcept;

  [[nodiscard]] Credentials assume_role(const AssumeRoleRequest& request);
  [[nodiscard]] Credentials assume_role_with_web_identity(const WebIdentityRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::aws
