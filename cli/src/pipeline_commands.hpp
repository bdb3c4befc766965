#pragma once
// The Triton pipeline commands of the `kclpp` tool (docs/triton.md §8): store, cat,
// spoold, stats.
#include <string>
#include <vector>

namespace kclpp::app::detail {

// Each takes the arguments after its name and returns the exit code; throws ConfigError
// for bad options and kclpp::Error for failed calls (the caller logs them).
int store_command(const std::vector<std::string>& argv);   // store_command.cpp
int cat_command(const std::vector<std::string>& argv);     // cat_command.cpp
int spoold_command(const std::vector<std::string>& argv);  // spoold_command.cpp
int stats_command(const std::vector<std::string>& argv);   // stats_command.cpp

}  // namespace kclpp::app::detail
