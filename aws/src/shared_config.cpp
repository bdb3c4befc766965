// The AWS shared files, read as botocore reads them, so that a machine set up for the AWS
// CLI works unchanged.
#include "shared_config.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string_view>

#include "kclpp/processor/error.hpp"

namespace kclpp::aws::detail {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string{} : std::string{v};
}

bool env_true(const char* name) {
  std::string v = env(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return v == "true";
}

namespace {

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

}  // namespace

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

SharedFiles load_shared_files(const ProfileOptions& options) {
  SharedFiles f;
  f.credentials_path = options.credentials_file;
  if (f.credentials_path.empty()) f.credentials_path = env("AWS_SHARED_CREDENTIALS_FILE");
  if (f.credentials_path.empty()) f.credentials_path = home_dir() + "/.aws/credentials";
  f.config_path = options.config_file;
  if (f.config_path.empty()) f.config_path = env("AWS_CONFIG_FILE");
  if (f.config_path.empty()) f.config_path = home_dir() + "/.aws/config";
  f.credentials = read_ini(f.credentials_path);
  f.config = read_ini(f.config_path);
  return f;
}

std::string profile_name(const ProfileOptions& options) {
  if (!options.profile.empty()) return options.profile;
  std::string p = env("AWS_PROFILE");
  if (p.empty()) p = env("AWS_DEFAULT_PROFILE");
  return p.empty() ? "default" : p;
}

std::optional<Section> find_profile(const SharedFiles& files, const std::string& name) {
  std::optional<Section> merged;
  if (files.config) {
    // `[profile NAME]`, or `[default]` for the default profile.
    auto it = files.config->find("profile " + name);
    if (it == files.config->end() && name == "default") it = files.config->find("default");
    if (it != files.config->end()) merged = it->second;
  }
  if (files.credentials) {
    if (auto it = files.credentials->find(name); it != files.credentials->end()) {
      if (!merged) merged.emplace();
      for (const auto& [key, value] : it->second) (*merged)[key] = value;
    }
  }
  return merged;
}

std::string get(const Section& section, const char* key) {
  auto it = section.find(key);
  return it == section.end() ? std::string{} : it->second;
}

}  // namespace kclpp::aws::detail
