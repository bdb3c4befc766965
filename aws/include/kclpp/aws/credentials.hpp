#pragma once
// AWS credentials: the value, the provider every client signs through, and the providers
// of the AWS SDKs' default chain (environment, web identity, the shared profile with its
// roles and credential_process, container, instance metadata), refreshed before expiry.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/aws/config.hpp"

namespace kclpp::aws {

// A set of AWS credentials. Value type. Never log or print one: kclpp itself never puts
// the secret or the session token in a message.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
  // When temporary credentials stop working; nullopt: they do not expire.
  std::optional<std::chrono::system_clock::time_point> expiration = std::nullopt;
};

// The source of the credentials a client signs with.
// Thread safety: every provider may be shared by any number of clients and threads.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Credentials that are valid now. Temporary ones are refreshed ahead of their expiry
  // (see RefreshOptions); while one thread refreshes, the others keep getting the valid
  // ones. Throws AuthError (a source refused, or none has credentials: not retryable),
  // TransportError (a credential service could not be reached and nothing valid is
  // cached: retryable), ConfigError (a malformed setting).
  [[nodiscard]] virtual Credentials credentials() = 0;
  // A service replied that these credentials have expired (clock skew, revoked session):
  // the next credentials() fetches anew. A no-op for credentials that never expire.
  virtual void expire() noexcept {}
  // Where the credentials come from ("environment", "instance metadata (IMDSv2)",
  // "profile 'dev': role arn:aws:iam::1:role/r"), for logs. Never contains a secret.
  [[nodiscard]] virtual std::string describe() const = 0;
};
using CredentialsProviderPtr = std::shared_ptr<CredentialsProvider>;

// When temporary credentials are refreshed, as botocore does: inside the advisory window
// before expiry one caller refreshes while the others go on with the current ones (a
// failure is a warning); inside the mandatory window every caller waits for the refresh
// (a failure is a warning while the old credentials are still valid, an error after).
// For short-lived credentials the windows shrink to half and a quarter of the lifetime
// seen when they were fetched, so that a 15-minute session is not refreshed on each use.
struct RefreshOptions {
  std::chrono::seconds advisory_window{15 * 60};
  std::chrono::seconds mandatory_window{10 * 60};
};

// STS (AssumeRole, AssumeRoleWithWebIdentity) as the credential providers reach it.
struct StsSettings {
  // Empty: resolve_region(); when that finds none, the global endpoint in us-east-1.
  std::string region;
  // Empty: resolve_endpoint("STS", ...), regional by default.
  std::string endpoint;
  // The profile whose region and endpoint_url apply (a profile's role: that profile).
  ProfileOptions profile;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{10'000};
};

// --- providers -----------------------------------------------------------------------------

// Fixed credentials given by the program. Throws ConfigError for an empty key or secret.
[[nodiscard]] CredentialsProviderPtr static_credentials(Credentials credentials);

// $AWS_ACCESS_KEY_ID + $AWS_SECRET_ACCESS_KEY (+ $AWS_SESSION_TOKEN or
// $AWS_SECURITY_TOKEN), read now. Throws AuthError when they are not set, ConfigError
// when only one of the two is.
[[nodiscard]] CredentialsProviderPtr environment_credentials();

struct WebIdentityOptions {
  std::string role_arn;
  std::string token_file;  // re-read on every refresh (the kubelet rotates it)
  std::string session_name;  // empty: "kclpp-<unix time in ms>"
  StsSettings sts;
  RefreshOptions refresh;
};
// STS AssumeRoleWithWebIdentity with the token in `token_file` (IRSA on EKS). Fetches on
// first use. Throws (from credentials()) AuthError for a refused token or a missing file.
[[nodiscard]] CredentialsProviderPtr web_identity_credentials(WebIdentityOptions options);
// The same from $AWS_WEB_IDENTITY_TOKEN_FILE, $AWS_ROLE_ARN, $AWS_ROLE_SESSION_NAME;
// nullptr when the two required variables are not both set.
[[nodiscard]] CredentialsProviderPtr web_identity_credentials_from_environment(StsSettings sts = {});

struct AssumeRoleOptions {
  CredentialsProviderPtr source;  // the credentials that call sts:AssumeRole
  std::string role_arn;
  std::string session_name;  // empty: "kclpp-<unix time in ms>"
  std::string external_id;   // empty: none
  std::optional<std::chrono::seconds> duration;  // empty: STS's default (1 hour)
  StsSettings sts;
  RefreshOptions refresh;
};
// STS AssumeRole with the source's credentials. Throws ConfigError without a source or
// role ARN; credentials() throws AuthError when STS refuses.
[[nodiscard]] CredentialsProviderPtr assume_role_credentials(AssumeRoleOptions options);

struct ProcessOptions {
  std::string command;  // split as a POSIX shell would split words, run without a shell
  std::chrono::milliseconds timeout{60'000};
  RefreshOptions refresh;
};
// credential_process: runs the command, reads its JSON (Version 1, AccessKeyId,
// SecretAccessKey, optional SessionToken and Expiration) from stdout; runs it again before
// an Expiration. credentials() throws AuthError for a failed or timed-out command, or
// output that is not that JSON (the output itself is never quoted: it holds secrets).
[[nodiscard]] CredentialsProviderPtr process_credentials(ProcessOptions options);

// The shared files' profile: static keys; role_arn with source_profile or
// credential_source (Environment, Ec2InstanceMetadata, EcsContainer), external_id,
// role_session_name, duration_seconds; web_identity_token_file; credential_process.
// Throws AuthError when the profile has none of these (naming the files looked in),
// ConfigError for an SSO profile (not supported), a source_profile loop, or a malformed
// file.
[[nodiscard]] CredentialsProviderPtr profile_credentials(const ProfileOptions& profile = {},
                                                         StsSettings sts = {});

struct ContainerOptions {
  // Empty: from the environment: http://169.254.170.2 + $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
  // else $AWS_CONTAINER_CREDENTIALS_FULL_URI (plain http only to a loopback address or the
  // ECS / EKS Pod Identity hosts 169.254.170.2, 169.254.170.23, fd00:ec2::23).
  std::string full_uri;
  // Empty: $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read each fetch), else
  // $AWS_CONTAINER_AUTHORIZATION_TOKEN.
  std::string authorization_token;
  std::string authorization_token_file;
  std::chrono::milliseconds timeout{2'000};
  int attempts = 3;
  RefreshOptions refresh;
};
// ECS task roles and EKS Pod Identity. Throws ConfigError when no URI is configured or a
// URI is not allowed.
[[nodiscard]] CredentialsProviderPtr container_credentials(ContainerOptions options = {});
// True when the environment configures container credentials.
[[nodiscard]] bool container_credentials_configured();

struct InstanceMetadataOptions {
  // Empty: $AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
  std::string endpoint;
  // Short, so that a machine off EC2 does not hang at start-up (botocore: 1 s, 1 attempt).
  std::chrono::milliseconds timeout{1'000};
  int attempts = 1;
  std::chrono::seconds token_ttl{21'600};
  // Refuse IMDSv1 (also $AWS_EC2_METADATA_V1_DISABLED=true).
  bool v1_disabled = false;
  RefreshOptions refresh;
};
// EC2 instance metadata: IMDSv2 (a token PUT, then the role and its credentials with the
// token); IMDSv1 only where the token PUT is refused (403, 404, 405) or times out, as
// botocore does. credentials() throws TransportError when the service cannot be reached,
// AuthError when the instance has no role.
[[nodiscard]] CredentialsProviderPtr instance_metadata_credentials(InstanceMetadataOptions options = {});
// False when $AWS_EC2_METADATA_DISABLED is "true".
[[nodiscard]] bool instance_metadata_enabled();

// --- the chain -------------------------------------------------------------------------------

struct ChainOptions {
  ProfileOptions profile;
  StsSettings sts;
  ContainerOptions container;
  InstanceMetadataOptions instance_metadata;
};
// The default chain, in the AWS SDKs' order: environment keys; web identity from the
// environment; the profile (static keys, roles, web identity, credential_process); container
// credentials; instance metadata. The first source that is configured is used, and its
// failures are errors (it does not fall through to the next, as the SDKs do not). Resolves
// now: throws AuthError naming every place it looked when none has credentials.
[[nodiscard]] CredentialsProviderPtr default_credentials(const ChainOptions& options = {});

// The default chain for these profile options, resolved once per process and shared by
// every client that asks (so that one refresh serves them all). Throws as
// default_credentials() (and tries again on the next call after a failure).
[[nodiscard]] CredentialsProviderPtr shared_default_credentials(const ProfileOptions& profile = {});

}  // namespace kclpp::aws
