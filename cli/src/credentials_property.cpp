#include "credentials_property.hpp"

#include <cstdlib>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(sep, start);
    out.push_back(trim(s.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// The names kclpp maps, SDK v1 and v2 spellings; the kind they map to.
enum class Kind { Default, Profile, Environment, WebIdentity, InstanceProfile, Container, AssumeRole };

const std::map<std::string, Kind>& known() {
  static const std::map<std::string, Kind> names{
      {"DefaultCredentialsProvider", Kind::Default},
      {"DefaultAWSCredentialsProviderChain", Kind::Default},
      {"ProfileCredentialsProvider", Kind::Profile},
      {"EnvironmentVariableCredentialsProvider", Kind::Environment},
      // Java system properties do not exist outside a JVM: the environment stands in.
      {"SystemPropertyCredentialsProvider", Kind::Environment},
      {"SystemPropertiesCredentialsProvider", Kind::Environment},
      {"WebIdentityTokenFileCredentialsProvider", Kind::WebIdentity},
      {"WebIdentityTokenCredentialsProvider", Kind::WebIdentity},
      {"InstanceProfileCredentialsProvider", Kind::InstanceProfile},
      {"ContainerCredentialsProvider", Kind::Container},
      {"EC2ContainerCredentialsProviderWrapper", Kind::Container},
      {"StsAssumeRoleCredentialsProvider", Kind::AssumeRole},
      {"STSAssumeRoleSessionCredentialsProvider", Kind::AssumeRole},
  };
  return names;
}

std::string known_list() {
  std::string s;
  for (const auto& [name, kind] : known()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

aws::CredentialsProviderPtr make_one(const ProviderSpec& spec, const std::string& region, const std::string& where) {
  aws::StsSettings sts;
  sts.region = region;
  if (auto it = spec.properties.find("endpointRegion"); it != spec.properties.end()) sts.region = it->second;
  switch (known().at(spec.name)) {
    case Kind::Default:
      return aws::shared_default_credentials();
    case Kind::Profile: {
      aws::ProfileOptions p;
      if (!spec.args.empty()) p.profile = spec.args.front();
      return aws::profile_credentials(p, sts);
    }
    case Kind::Environment:
      return aws::environment_credentials();
    case Kind::WebIdentity: {
      auto p = aws::web_identity_credentials_from_environment(sts);
      if (!p) throw AuthError(where + ": " + spec.name + " needs AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN");
      return p;
    }
    case Kind::InstanceProfile:
      return aws::instance_metadata_credentials();
    case Kind::Container:
      return aws::container_credentials();
    case Kind::AssumeRole: {
      aws::AssumeRoleOptions o;
      o.role_arn = spec.args.at(0);
      o.session_name = spec.args.at(1);
      if (auto it = spec.properties.find("externalId"); it != spec.properties.end()) o.external_id = it->second;
      if (auto it = spec.properties.find("durationSeconds"); it != spec.properties.end()) {
        char* end = nullptr;
        const long long seconds = std::strtoll(it->second.c_str(), &end, 10);
        if (end == it->second.c_str() || *end != '\0' || seconds < 900 || seconds > 43'200) {
          throw ConfigError(where + ": durationSeconds '" + it->second + "' is not a number of seconds in [900, 43200]");
        }
        o.duration = std::chrono::seconds(seconds);
      }
      o.source = aws::shared_default_credentials();
      o.sts = sts;
      return aws::assume_role_credentials(std::move(o));
    }
  }
  throw ConfigError(where + ": unknown provider " + spec.name);
}

// Inside a catch block: the same kind of error, its message prefixed with `where`.
[[noreturn]] void rethrow_naming(const std::string& where) {
  try {
    throw;
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  } catch (const AuthError& e) {
    throw AuthError(where + ": " + e.what());
  } catch (const TransportError& e) {
    throw TransportError(where + ": " + e.what(), e.retry());
  }
}

}  // namespace

std::vector<ProviderSpec> parse_credentials_providers(const std::string& value, const std::string& where) {
  if (trim(value).empty()) throw ConfigError(where + ": empty value (e.g. DefaultCredentialsProvider)");
  std::vector<ProviderSpec> specs;
  for (const std::string& entry : split(value, ',')) {
    const std::vector<std::string> parts = split(entry, '|');
    ProviderSpec spec;
    spec.name = parts.front();
    if (const auto dot = spec.name.rfind('.'); dot != std::string::npos) spec.name = spec.name.substr(dot + 1);
    if (known().count(spec.name) == 0) {
      throw ConfigError(where + ": unknown credentials provider '" + parts.front() + "' (kclpp knows " + known_list() +
                        ")");
    }
    for (std::size_t i = 1; i < parts.size(); ++i) {
      if (const auto eq = parts[i].find('='); eq != std::string::npos) {
        spec.properties[trim(parts[i].substr(0, eq))] = trim(parts[i].substr(eq + 1));
      } else {
        spec.args.push_back(parts[i]);
      }
    }
    if (known().at(spec.name) == Kind::AssumeRole && spec.args.size() < 2) {
      throw ConfigError(where + ": " + spec.name + " needs |ROLE_ARN|SESSION_NAME");
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

aws::CredentialsProviderPtr make_credentials_provider(const std::vector<ProviderSpec>& specs, const std::string& region,
                                                      const std::string& where) {
  std::string failures;
  for (const ProviderSpec& spec : specs) {
    try {
      auto p = make_one(spec, region, where);
      (void)p->credentials();  // fail at start-up, not at the first request
      log_info(where, ": credentials from ", p->describe());
      return p;
    } catch (const Error& e) {
      if (specs.size() == 1) rethrow_naming(where);
      failures += std::string(failures.empty() ? "" : "; ") + spec.name + ": " + e.what();
    }
  }
  throw AuthError(where + ": no provider of the chain has credentials: " + failures);
}

}  // namespace kclpp::app::detail
