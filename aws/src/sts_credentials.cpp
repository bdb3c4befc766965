// Credentials from STS: AssumeRole with a source provider's credentials, and
// AssumeRoleWithWebIdentity with a token file (IRSA on EKS). Both refresh through
// RefreshingProvider; the STS client is made on the first fetch and kept (fetches never
// overlap: RefreshingProvider runs one at a time).
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/sts_client.hpp"
#include "kclpp/processor/error.hpp"
#include "refreshing_provider.hpp"
#include "shared_config.hpp"

namespace kclpp::aws {

namespace {

std::string default_session_name() {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return "kclpp-" + std::to_string(ms.count());
}

StsOptions sts_options(const StsSettings& s) {
  StsOptions o;
  o.region = s.region;
  o.endpoint = s.endpoint;
  o.profile = s.profile;
  o.connect_timeout = s.connect_timeout;
  o.request_timeout = s.request_timeout;
  return o;
}

// The token file's contents, read on every fetch (the kubelet rotates it).
std::string read_token(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw AuthError("web identity: cannot read the token file '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  std::string token = s.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) throw AuthError("web identity: the token file '" + path + "' is empty");
  return token;
}

}  // namespace

CredentialsProviderPtr web_identity_credentials(WebIdentityOptions options) {
  if (options.role_arn.empty()) throw ConfigError("web identity credentials need a role ARN");
  if (options.token_file.empty()) throw ConfigError("web identity credentials need a token file");
  if (options.session_name.empty()) options.session_name = default_session_name();
  std::string description = "web identity (role " + options.role_arn + ", token file " + options.token_file + ")";
  auto client = std::make_shared<std::unique_ptr<StsClient>>();
  auto fetch = [options, client]() -> Credentials {
    if (!*client) *client = std::make_unique<StsClient>(sts_options(options.sts));
    WebIdentityRequest request{options.role_arn, options.session_name, read_token(options.token_file), std::nullopt};
    return (*client)->assume_role_with_web_identity(request);
  };
  return std::make_shared<detail::RefreshingProvider>(std::move(description), std::move(fetch), options.refresh);
}

CredentialsProviderPtr web_identity_credentials_from_environment(StsSettings sts) {
  WebIdentityOptions o;
  o.token_file = detail::env("AWS_WEB_IDENTITY_TOKEN_FILE");
  o.role_arn = detail::env("AWS_ROLE_ARN");
  if (o.token_file.empty() || o.role_arn.empty()) return nullptr;
  o.session_name = detail::env("AWS_ROLE_SESSION_NAME");
  o.sts = std::move(sts);
  return web_identity_credentials(std::move(o));
}

CredentialsProviderPtr assume_role_credentials(AssumeRoleOptions options) {
  if (!options.source) throw ConfigError("assume-role credentials need source credentials");
  if (options.role_arn.empty()) throw ConfigError("assume-role credentials need a role ARN");
  if (options.session_name.empty()) options.session_name = default_session_name();
  std::string description = "role " + options.role_arn + " assumed with " + options.source->describe();
  auto client = std::make_shared<std::unique_ptr<StsClient>>();
  auto fetch = [options, client]() -> Credentials {
    if (!*client) {
      StsOptions o = sts_options(options.sts);
      o.credentials = options.source;
      *client = std::make_unique<StsClient>(std::move(o));
    }
    return (*client)->assume_role({options.role_arn, options.session_name, options.external_id, options.duration});
  };
  return std::make_shared<detail::RefreshingProvider>(std::move(description), std::move(fetch), options.refresh);
}

}  // namespace kclpp::aws
