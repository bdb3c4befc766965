// Credential chain and region resolution, following botocore's order and file formats so
// that a machine set up for the AWS CLI works unchanged.
#include "kclpp/native/aws.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

namespace kclpp::native {

AwsError::AwsError(const std::string& what, std::string type, int http_status, Retry retry)
    : Error(what, retry), type_(std::move(type)), http_status_(http_status) {}

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string{} : std::string{v};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string home_dir() {
  std::string home = env("HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    return pw->pw_dir;
  }
  return {};
}

// Section name → key → value. Keys are lower-cased (as Python's configparser does).
using Ini = std::map<std::string, std::map<std::string, std::string>>;

// Reads an AWS shared file (INI). Missing file: nullopt. Indented lines continue the
// previous key (botocore's nested `s3 =` blocks) and are ignored; comments start with
// '#' or ';'. Anything else that is not `[section]` or `key = value` is a ConfigError.
std::optional<Ini> read_ini(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  Ini ini;
  std::string line;
  std::string section;
  bool in_section = false;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string_view t = trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    const bool indented = std::isspace(static_cast<unsigned char>(line.front())) != 0;
    if (t.front() == '[') {
      if (t.back() != ']') {
        throw ConfigError(path + ":" + std::to_string(line_no) + ": malformed section header '" +
                          std::string(t) + "'");
      }
      section = std::string(trim(t.substr(1, t.size() - 2)));
      ini[section];
      in_section = true;
      continue;
    }
    if (indented && in_section) continue;  // nested value of the previous key
    const auto eq = t.find('=');
    if (eq == std::string_view::npos || !in_section) {
      throw ConfigError(path + ":" + std::to_string(line_no) + ": expected '[section]' or " +
                        "'key = value', got '" + std::string(t) + "'");
    }
    ini[section][lower(trim(t.substr(0, eq)))] = std::string(trim(t.substr(eq + 1)));
  }
  return ini;
}

struct Files {
  std::string credentials;
  std::string config;
};

Files shared_files(const CredentialOptions& options) {
  Files f;
  f.credentials = options.credentials_file;
  if (f.credentials.empty()) f.credentials = env("AWS_SHARED_CREDENTIALS_FILE");
  if (f.credentials.empty()) f.credentials = home_dir() + "/.aws/credentials";
  f.config = options.config_file;
  if (f.config.empty()) f.config = env("AWS_CONFIG_FILE");
  if (f.config.empty()) f.config = home_dir() + "/.aws/config";
  return f;
}

std::string profile_name(const CredentialOptions& options) {
  if (!options.profile.empty()) return options.profile;
  std::string p = env("AWS_PROFILE");
  if (p.empty()) p = env("AWS_DEFAULT_PROFILE");
  return p.empty() ? "default" : p;
}

// The profile's section in the config file: `[profile NAME]`, or `[default]` for default.
const std::map<std::string, std::string>* config_section(const Ini& ini, const std::string& profile) {
  if (auto it = ini.find("profile " + profile); it != ini.end()) return &it->second;
  if (profile == "default") {
    if (auto it = ini.find("default"); it != ini.end()) return &it->second;
  }
  return nullptr;
}

std::string get(const std::map<std::string, std::string>& section, const char* key) {
  auto it = section.find(key);
  return it == section.end() ? std::string{} : it->second;
}

// Credentials from one profile section; nullopt if it has no access key. A key without
// its secret is a ConfigError.
std::optional<Credentials> from_section(const std::map<std::string, std::string>& section,
                                        const std::string& where) {
  Credentials c;
  c.access_key_id = get(section, "aws_access_key_id");
  c.secret_access_key = get(section, "aws_secret_access_key");
  c.session_token = get(section, "aws_session_token");
  if (c.session_token.empty()) c.session_token = get(section, "aws_security_token");
  if (c.access_key_id.empty() && c.secret_access_key.empty()) return std::nullopt;
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    throw ConfigError(where + " has only one of aws_access_key_id and aws_secret_access_key");
  }
  return c;
}

bool has_unsupported_source(const std::map<std::string, std::string>& section) {
  for (const auto& [key, value] : section) {
    if (key == "role_arn" || key == "credential_process" || key == "web_identity_token_file" ||
        key.rfind("sso_", 0) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

Credentials resolve_credentials(const CredentialOptions& options) {
  std::vector<std::string> looked;
  // Environment first, unless a profile was named explicitly (as the AWS CLI's --profile).
  if (options.profile.empty()) {
    Credentials c;
    c.access_key_id = env("AWS_ACCESS_KEY_ID");
    c.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
    c.session_token = env("AWS_SESSION_TOKEN");
    if (c.session_token.empty()) c.session_token = env("AWS_SECURITY_TOKEN");
    if (!c.access_key_id.empty() && !c.secret_access_key.empty()) return c;
    if (!c.access_key_id.empty() || !c.secret_access_key.empty()) {
      throw ConfigError("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
    }
    looked.emplace_back("environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
  }

  const std::string profile = profile_name(options);
  const Files files = shared_files(options);
  bool profile_found = false;
  bool unsupported = false;

  if (auto ini = read_ini(files.credentials)) {
    if (auto it = ini->find(profile); it != ini->end()) {
      profile_found = true;
      const std::string where = files.credentials + " [" + profile + "]";
      if (auto c = from_section(it->second, where)) return *c;
      unsupported = unsupported || has_unsupported_source(it->second);
    }
    looked.push_back(files.credentials + " [" + profile + "]");
  } else {
    looked.push_back(files.credentials + " (not found)");
  }

  if (auto ini = read_ini(files.config)) {
    if (const auto* section = config_section(*ini, profile)) {
      profile_found = true;
      const std::string where = files.config + " [profile " + profile + "]";
      if (auto c = from_section(*section, where)) return *c;
      unsupported = unsupported || has_unsupported_source(*section);
    }
    looked.push_back(files.config + " [profile " + profile + "]");
  } else {
    looked.push_back(files.config + " (not found)");
  }

  std::string what = "no AWS credentials found for profile '" + profile + "'";
  if (!profile_found && profile != "default") what += " (the profile does not exist)";
  if (unsupported) {
    what += " (the profile uses role_arn / credential_process / web identity / SSO, which "
            "kclpp does not support: export static or session credentials instead)";
  }
  what += "; looked in: ";
  for (std::size_t i = 0; i < looked.size(); ++i) {
    if (i > 0) what += ", ";
    what += looked[i];
  }
  throw AuthError(what);
}

std::string resolve_region(const std::string& explicit_region, const CredentialOptions& options) {
  if (!explicit_region.empty()) return explicit_region;
  if (std::string r = env("AWS_REGION"); !r.empty()) return r;
  if (std::string r = env("AWS_DEFAULT_REGION"); !r.empty()) return r;
  const std::string profile = profile_name(options);
  const Files files = shared_files(options);
  if (auto ini = read_ini(files.config)) {
    if (const auto* section = config_section(*ini, profile)) {
      if (std::string r = get(*section, "region"); !r.empty()) return r;
    }
  }
  throw ConfigError("no AWS region: give one explicitly, or set AWS_REGION / AWS_DEFAULT_REGION, "
                    "or 'region' in " + files.config + " for profile '" + profile + "'");
}

}  // namespace kclpp::native
