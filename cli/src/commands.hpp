#pragma once
// The stream commands of the `kclpp` tool: shards, put, get, create-stream, delete-stream.
#include <string>
#include <vector>

namespace kclpp::app::detail {

// Each takes the arguments after its name and returns the exit code; throws ConfigError
// for bad options and kclpp::Error for failed calls (the caller logs them).
int shards_command(const std::vector<std::string>& argv);
int put_command(const std::vector<std::string>& argv);
int get_command(const std::vector<std::string>& argv);
int create_stream_command(const std::vector<std::string>& argv);
int delete_stream_command(const std::vector<std::string>& argv);

}  // namespace kclpp::app::detail
