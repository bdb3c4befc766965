#pragma once
// Triton stream configuration (docs/triton.md §1): a YAML mapping of logical stream names
// to the real Kinesis stream, the record field used as partition key, and the region.
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kclpp::pipeline {

// One configured stream. Value type.
struct StreamConfig {
  std::string logical_name;   // the YAML key: what applications, the CLI and tritond use
  std::string name;           // the real Kinesis stream name (S3 keys, checkpoints)
  std::string partition_key;  // the record field whose value is the partition key
  std::string region;         // empty when the YAML has none (callers fall back to the AWS chain)
};

// A loaded config file. Immutable after loading, so safe to share between threads.
class TritonConfig {
 public:
  // Parses YAML text. `source` names the file in error messages. Throws ConfigError naming
  // the source, and the stream and key when an entry lacks `name` or `partition_key`, or
  // is not a mapping. Unknown keys are ignored (as go-triton does).
  [[nodiscard]] static TritonConfig parse(std::string_view yaml, const std::string& source);
  // Reads and parses a file. Throws ConfigError naming the path when it cannot be read.
  [[nodiscard]] static TritonConfig load_file(const std::string& path);
  // The path to use: `explicit_path` if not empty, else $TRITON_CONFIG, else
  // /etc/triton.yaml (docs/triton.md §1).
  [[nodiscard]] static std::string resolve_path(const std::string& explicit_path);
  // load_file(resolve_path(explicit_path)).
  [[nodiscard]] static TritonConfig load(const std::string& explicit_path = {});

  // The stream with this logical name. Throws ConfigError naming it (and the file) when
  // the config has no such stream.
  [[nodiscard]] const StreamConfig& stream(const std::string& logical_name) const;
  [[nodiscard]] const StreamConfig* find(const std::string& logical_name) const noexcept;
  [[nodiscard]] const std::map<std::string, StreamConfig>& streams() const noexcept { return streams_; }
  [[nodiscard]] const std::string& source() const noexcept { return source_; }

 private:
  std::string source_;
  std::map<std::string, StreamConfig> streams_;
};

}  // namespace kclpp::pipeline
