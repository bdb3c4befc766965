// The simple providers (static, environment), the shared profile with its roles, and the
// default chain in the AWS SDKs' order (docs/aws.md §2).
#include "kclpp/aws/credentials.hpp"

#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "shared_config.hpp"

namespace kclpp::aws {

namespace {

class StaticProvider final : public CredentialsProvider {
 public:
  StaticProvider(Credentials c, std::string description)
      : credentials_(std::move(c)), description_(std::move(description)) {}
  Credentials credentials() override { return credentials_; }
  std::string describe() const override { return description_; }

 private:
  const Credentials credentials_;
  const std::string description_;
};

CredentialsProviderPtr make_static(Credentials c, std::string description) {
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    throw ConfigError(description + ": empty access key id or secret access key");
  }
  return std::make_shared<StaticProvider>(std::move(c), std::move(description));
}

// Both environment keys, nullopt when neither is set; ConfigError when only one is.
std::optional<Credentials> environment_keys() {
  Credentials c;
  c.access_key_id = detail::env("AWS_ACCESS_KEY_ID");
  c.secret_access_key = detail::env("AWS_SECRET_ACCESS_KEY");
  c.session_token = detail::env("AWS_SESSION_TOKEN");
  if (c.session_token.empty()) c.session_token = detail::env("AWS_SECURITY_TOKEN");
  if (c.access_key_id.empty() && c.secret_access_key.empty()) return std::nullopt;
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    throw ConfigError("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
  }
  return c;
}

// Resolves one profile of the shared files into a provider (nullptr: the profile holds no
// credential setting). `visited` breaks source_profile loops.
class ProfileResolver {
 public:
  // `chain` gives the profile options and the settings of the sources a role may name
  // (STS, credential_source EcsContainer / Ec2InstanceMetadata).
  ProfileResolver(detail::SharedFiles files, ChainOptions chain)
      : files_(std::move(files)), chain_(std::move(chain)) {
    // A role's STS calls use the region and endpoint_url of the profile being resolved, as
    // botocore's session does (the STS client alone would look at $AWS_PROFILE's only).
    const ProfileOptions& p = chain_.sts.profile;
    if (p.profile.empty() && p.credentials_file.empty() && p.config_file.empty()) chain_.sts.profile = chain_.profile;
    if (chain_.sts.region.empty()) {
      try {
        chain_.sts.region = resolve_region({}, chain_.profile);
      } catch (const ConfigError&) {
        chain_.sts.region.clear();  // none: the STS client's global endpoint
      }
    }
  }

  CredentialsProviderPtr resolve(const std::string& name, std::set<std::string>& visited) {
    const std::string label = "profile '" + name + "'";
    const auto section = detail::find_profile(files_, name);
    if (!section) return nullptr;
    for (const auto& [key, value] : *section) {
      if (key.rfind("sso_", 0) == 0) {
        throw ConfigError(label + " uses AWS IAM Identity Center (SSO, key '" + key +
                          "'), which kclpp does not support: use a role, credential_process or exported keys");
      }
    }
    const std::string role_arn = detail::get(*section, "role_arn");
    if (!role_arn.empty()) return role(name, *section, role_arn, visited);
    if (!detail::get(*section, "web_identity_token_file").empty()) {
      throw ConfigError(label + " has web_identity_token_file but no role_arn");
    }
    if (auto c = static_keys(*section, label)) return make_static(std::move(*c), label);
    if (std::string command = detail::get(*section, "credential_process"); !command.empty()) {
      ProcessOptions o;
      o.command = command;
      return process_credentials(std::move(o));
    }
    return nullptr;
  }

  [[nodiscard]] const detail::SharedFiles& files() const { return files_; }

 private:
  static std::optional<Credentials> static_keys(const detail::Section& section, const std::string& label) {
    Credentials c;
    c.access_key_id = detail::get(section, "aws_access_key_id");
    c.secret_access_key = detail::get(section, "aws_secret_access_key");
    c.session_token = detail::get(section, "aws_session_token");
    if (c.session_token.empty()) c.session_token = detail::get(section, "aws_security_token");
    if (c.access_key_id.empty() && c.secret_access_key.empty()) return std::nullopt;
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      throw ConfigError(label + " has only one of aws_access_key_id and aws_secret_access_key");
    }
    return c;
  }

  CredentialsProviderPtr role(const std::string& name, const detail::Section& section, const std::string& role_arn,
                              std::set<std::string>& visited) {
    const std::string label = "profile '" + name + "'";
    if (std::string token_file = detail::get(section, "web_identity_token_file"); !token_file.empty()) {
      WebIdentityOptions o;
      o.role_arn = role_arn;
      o.token_file = token_file;
      o.session_name = detail::get(section, "role_session_name");
      o.sts = chain_.sts;
      return web_identity_credentials(std::move(o));
    }
    AssumeRoleOptions o;
    o.role_arn = role_arn;
    o.session_name = detail::get(section, "role_session_name");
    o.external_id = detail::get(section, "external_id");
    o.sts = chain_.sts;
    if (std::string d = detail::get(section, "duration_seconds"); !d.empty()) {
      try {
        std::size_t used = 0;
        const long long seconds = std::stoll(d, &used);
        if (used != d.size() || seconds < 900 || seconds > 43'200) throw std::invalid_argument("range");
        o.duration = std::chrono::seconds(seconds);
      } catch (const std::exception&) {
        throw ConfigError(label + ": duration_seconds '" + d + "' must be a number of seconds from 900 to 43200");
      }
    }
    o.source = source(name, section, visited);
    return assume_role_credentials(std::move(o));
  }

  CredentialsProviderPtr source(const std::string& name, const detail::Section& section,
                                std::set<std::string>& visited) {
    const std::string label = "profile '" + name + "'";
    const std::string source_profile = detail::get(section, "source_profile");
    const std::string credential_source = detail::get(section, "credential_source");
    if (!source_profile.empty() && !credential_source.empty()) {
      throw ConfigError(label + " has both source_profile and credential_source: keep one");
    }
    if (!credential_source.empty()) {
      if (credential_source == "Environment") {
        auto c = environment_keys();
        if (!c) throw AuthError(label + ": credential_source Environment, but AWS_ACCESS_KEY_ID is not set");
        return make_static(std::move(*c), "environment");
      }
      if (credential_source == "Ec2InstanceMetadata") {
        if (!instance_metadata_enabled()) {
          throw AuthError(label + ": credential_source Ec2InstanceMetadata, but AWS_EC2_METADATA_DISABLED is true");
        }
        return instance_metadata_credentials(chain_.instance_metadata);
      }
      if (credential_source == "EcsContainer") return container_credentials(chain_.container);
      throw ConfigError(label + ": credential_source '" + credential_source +
                        "' is not one of Environment, Ec2InstanceMetadata, EcsContainer");
    }
    if (source_profile.empty()) {
      throw ConfigError(label + " has role_arn but neither source_profile nor credential_source");
    }
    if (source_profile == name) {
      // A profile that names itself: its own static keys are the source (botocore).
      const auto self = detail::find_profile(files_, name);
      if (auto c = static_keys(*self, label)) return make_static(std::move(*c), label);
      throw ConfigError(label + " is its own source_profile but has no static keys");
    }
    if (!visited.insert(name).second || visited.count(source_profile) != 0) {
      throw ConfigError(label + ": source_profile loop through '" + source_profile + "'");
    }
    auto p = resolve(source_profile, visited);
    if (!p) {
      throw ConfigError(label + ": its source_profile '" + source_profile +
                        (detail::find_profile(files_, source_profile) ? "' holds no credentials" : "' does not exist"));
    }
    return p;
  }

  detail::SharedFiles files_;
  ChainOptions chain_;
};

}  // namespace

CredentialsProviderPtr static_credentials(Credentials credentials) {
  return make_static(std::move(credentials), "static credentials");
}

CredentialsProviderPtr environment_credentials() {
  auto c = environment_keys();
  if (!c) throw AuthError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
  return make_static(std::move(*c), "environment");
}

CredentialsProviderPtr profile_credentials(const ProfileOptions& profile, StsSettings sts) {
  const std::string name = detail::profile_name(profile);
  ChainOptions chain;
  chain.profile = profile;
  chain.sts = std::move(sts);
  ProfileResolver resolver(detail::load_shared_files(profile), std::move(chain));
  std::set<std::string> visited;
  auto p = resolver.resolve(name, visited);
  if (!p) {
    const auto& f = resolver.files();
    throw AuthError("profile '" + name + "' has no credentials (" + f.credentials_path + ", " + f.config_path + ")");
  }
  return p;
}

CredentialsProviderPtr default_credentials(const ChainOptions& options) {
  std::vector<std::string> looked;
  auto use = [](CredentialsProviderPtr p) {
    (void)p->credentials();  // fail at start-up, not at the first request
    log_debug("AWS credentials from ", p->describe());
    return p;
  };
  // An explicitly named profile skips the environment, as the AWS CLI's --profile does.
  if (options.profile.profile.empty()) {
    if (auto c = environment_keys()) return use(make_static(std::move(*c), "environment"));
    looked.emplace_back("environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
    if (auto p = web_identity_credentials_from_environment(options.sts)) return use(std::move(p));
    looked.emplace_back("web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)");
  }

  const std::string name = detail::profile_name(options.profile);
  ProfileResolver resolver(detail::load_shared_files(options.profile), options);
  const auto& files = resolver.files();
  const bool named = !options.profile.profile.empty() || !detail::env("AWS_PROFILE").empty();
  if (named && !detail::find_profile(files, name)) {
    throw ConfigError("the AWS profile '" + name + "' does not exist in " + files.credentials_path + " or " +
                      files.config_path);
  }
  std::set<std::string> visited;
  if (auto p = resolver.resolve(name, visited)) return use(std::move(p));
  looked.push_back("profile '" + name + "' in " + files.credentials_path +
                   (files.credentials ? "" : " (not found)") + " and " + files.config_path +
                   (files.config ? "" : " (not found)"));

  if (container_credentials_configured()) return use(container_credentials(options.container));
  looked.emplace_back("container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, _FULL_URI)");

  if (instance_metadata_enabled()) {
    auto p = instance_metadata_credentials(options.instance_metadata);
    try {
      return use(std::move(p));
    } catch (const Error& e) {
      looked.push_back(std::string(e.what()));
    }
  } else {
    looked.emplace_back("instance metadata (disabled by AWS_EC2_METADATA_DISABLED)");
  }

  std::string what = "no AWS credentials found; looked in: ";
  for (std::size_t i = 0; i < looked.size(); ++i) {
    if (i > 0) what += "; ";
    what += looked[i];
  }
  throw AuthError(what);
}

CredentialsProviderPtr shared_default_credentials(const ProfileOptions& profile) {
  // Keyed by everything that changes the chain's choice (not by secrets), so that a
  // process that changes its environment (tests do) gets the chain it now asks for.
  std::string key = profile.profile + '\n' + profile.credentials_file + '\n' + profile.config_file;
  for (const char* v :
       {"HOME", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"}) {
    key += '\n';
    key += detail::env(v);
  }
  static std::mutex mutex;
  static std::map<std::string, CredentialsProviderPtr> providers;
  std::lock_guard lock(mutex);
  if (auto it = providers.find(key); it != providers.end()) return it->second;
  ChainOptions options;
  options.profile = profile;
  auto p = default_credentials(options);
  providers.emplace(std::move(key), p);
  return p;
}

}  // namespace kclpp::aws
