#pragma once
// The stream commands of the `kclpp` tool: shards, put, get, create-stream, delete-stream.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/stream_source.hpp"

namespace kclpp::app::detail {

// Each takes the arguments after its name and returns the exit code; throws ConfigError
// for bad options and kclpp::Error for failed calls (the caller logs them).
int shards_command(const std::vector<std::string>& argv);
int put_command(const std::vector<std::string>& argv);
int get_command(const std::vector<std::string>& argv);
int create_stream_command(const std::vector<std::string>& argv);
int delete_stream_command(const std::vector<std::string>& argv);
// `kclpp conformance` (conformance_command.cpp): exit 0, 1 (a scenario failed) or 2 (usage);
// it reports bad options itself rather than throwing.
int conformance_command(const std::vector<std::string>& argv);
[[nodiscard]] Args conformance_args();

// `kclpp get`, parsed (for tests: touches no network).
struct GetRequest {
  std::string stream;
  aws::StartPosition from;
  std::optional<std::string> shard;  // only this shard
  bool follow = false;               // keep reading past the end
  // Stop after this long even if not caught up (--timeout-ms); unset: no limit.
  std::optional<std::chrono::milliseconds> timeout;
  // Set: read through enhanced fan-out as this consumer (--fan-out, --consumer-name,
  // --consumer-arn; the name defaults to "kclpp-get"); unset: GetRecords.
  std::optional<native::FanOutOptions> fan_out;
};
[[nodiscard]] Args get_args();
// ConfigError naming the option that is wrong.
[[nodiscard]] GetRequest get_request(const Args& args);

}  // namespace kclpp::app::detail
