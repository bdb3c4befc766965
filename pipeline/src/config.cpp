#include "kclpp/pipeline/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

constexpr const char* kDefaultPath = "/etc/triton.yaml";  // py-triton's default (docs/triton.md §1)

// The text of a scalar key of one stream entry; nullopt when absent or null. A key that is
// present but not a scalar (a list, a mapping) is an error: it cannot be a stream name.
std::optional<std::string> scalar_key(const YAML::Node& entry, const char* key,
                                      const std::string& source, const std::string& stream) {
  const YAML::Node node = entry[key];
  if (!node || node.IsNull()) {
    return std::nullopt;
  }
  if (!node.IsScalar()) {
    throw ConfigError("Triton config " + source + ": stream '" + stream + "': '" + key +
                      "' must be a string");
  }
  return node.Scalar();
}

std::string required_key(const YAML::Node& entry, const char* key, const std::string& source,
                         const std::string& stream) {
  auto v = scalar_key(entry, key, source, stream);
  if (!v || v->empty()) {
    throw ConfigError("Triton config " + source + ": stream '" + stream + "' has no '" + key +
                      "'");
  }
  return std::move(*v);
}

}  // namespace

TritonConfig TritonConfig::parse(std::string_view yaml, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    // yaml-cpp's what() already carries "yaml-cpp: error at line L, column C: ...".
    throw ConfigError("Triton config " + source + ": invalid YAML: " + e.what());
  }
  if (!root.IsMap()) {
    throw ConfigError("Triton config " + source +
                      (root.IsNull() ? std::string(" is empty")
                                     : std::string(" is not a mapping of stream names")) +
                      " (expected 'logical_name: {name: ..., partition_key: ...}')");
  }
  TritonConfig cfg;
  cfg.source_ = source;
  try {
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) {
        throw ConfigError("Triton config " + source + ": a stream name must be a string");
      }
      StreamConfig s;
      s.logical_name = kv.first.Scalar();
      const YAML::Node& entry = kv.second;
      if (!entry.IsMap()) {
        throw ConfigError("Triton config " + source + ": stream '" + s.logical_name +
                          "' is not a mapping (expected name, partition_key, region)");
      }
      // Unknown keys are ignored, as go-triton's yaml.v2 decoding does (docs/triton.md §1).
      s.name = required_key(entry, "name", source, s.logical_name);
      s.partition_key = required_key(entry, "partition_key", source, s.logical_name);
      s.region = scalar_key(entry, "region", source, s.logical_name).value_or(std::string());
      const std::string logical = s.logical_name;
      cfg.streams_.insert_or_assign(logical, std::move(s));
    }
  } catch (const YAML::Exception& e) {
    throw ConfigError("Triton config " + source + ": " + e.what());
  }
  return cfg;
}

TritonConfig TritonConfig::load_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    // ifstream opens a directory on Linux and then reads nothing: say what is wrong.
    throw ConfigError("cannot read Triton config " + path + ": it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw ConfigError("cannot read Triton config " + path + ": " +
                      (err != 0 ? std::strerror(err) : "open failed"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw ConfigError("cannot read Triton config " + path + ": read failed");
  }
  return parse(text.str(), path);
}

std::string TritonConfig::resolve_path(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    return explicit_path;
  }
  if (const char* env = std::getenv("TRITON_CONFIG"); env != nullptr && *env != '\0') {
    return env;
  }
  return kDefaultPath;
}

TritonConfig TritonConfig::load(const std::string& explicit_path) {
  return load_file(resolve_path(explicit_path));
}

const StreamConfig* TritonConfig::find(const std::string& logical_name) const noexcept {
  const auto it = streams_.find(logical_name);
  return it == streams_.end() ? nullptr : &it->second;
}

const StreamConfig& TritonConfig::stream(const std::string& logical_name) const {
  if (const StreamConfig* s = find(logical_name)) {
    return *s;
  }
  std::string known;
  for (const auto& [name, _] : streams_) {
    known += known.empty() ? "" : ", ";
    known += name;
  }
  throw ConfigError("stream '" + logical_name + "' is not configured in " + source_ +
                    (known.empty() ? std::string(" (it has no streams)")
                                   : " (configured: " + known + ")"));
}

}  // namespace kclpp::pipeline
