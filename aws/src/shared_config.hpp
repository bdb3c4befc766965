#pragma once
// The AWS shared files (~/.aws/credentials, ~/.aws/config) as botocore reads them: INI
// sections, lower-cased keys, `[profile NAME]` in the config file, and a profile's keys
// merged from both files (the credentials file wins).
#include <map>
#include <optional>
#include <string>

#include "kclpp/aws/config.hpp"

namespace kclpp::aws::detail {

using Section = std::map<std::string, std::string>;
using Ini = std::map<std::string, Section>;

// The value of an environment variable, "" when unset.
[[nodiscard]] std::string env(const char* name);
// True for "true" in any case (how the SDKs read boolean settings).
[[nodiscard]] bool env_true(const char* name);

// Reads an AWS shared file. Missing file: nullopt. Indented lines continue the previous
// key (botocore's nested `s3 =` blocks) and are ignored; comments start with '#' or ';'.
// Anything else that is not `[section]` or `key = value` is a ConfigError naming the file
// and line.
[[nodiscard]] std::optional<Ini> read_ini(const std::string& path);

struct SharedFiles {
  std::string credentials_path;
  std::string config_path;
  std::optional<Ini> credentials;
  std::optional<Ini> config;
};
// Both files of these options, read now.
[[nodiscard]] SharedFiles load_shared_files(const ProfileOptions& options);

// The profile's name: options.profile, $AWS_PROFILE, $AWS_DEFAULT_PROFILE, "default".
[[nodiscard]] std::string profile_name(const ProfileOptions& options);

// The profile's keys from both files (the credentials file's win), nullopt when neither
// file has it.
[[nodiscard]] std::optional<Section> find_profile(const SharedFiles& files, const std::string& name);

// section[key], "" when absent.
[[nodiscard]] std::string get(const Section& section, const char* key);

}  // namespace kclpp::aws::detail
