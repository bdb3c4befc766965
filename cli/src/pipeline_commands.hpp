#pragma once
// The Triton pipeline commands of the `kclpp` tool (docs/triton.md §8): store, cat,
// spoold, stats.
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/native/checkpoint_store.hpp"

namespace kclpp::app::detail {

// Each takes the arguments after its name and returns the exit code; throws ConfigError
// for bad options and kclpp::Error for failed calls (the caller logs them).
int store_command(const std::vector<std::string>& argv);   // store_command.cpp
int cat_command(const std::vector<std::string>& argv);     // cat_command.cpp
int spoold_command(const std::vector<std::string>& argv);  // spoold_command.cpp
int stats_command(const std::vector<std::string>& argv);   // stats_command.cpp

// The options of `kclpp stats`.
[[nodiscard]] Args stats_args();
// The store `kclpp stats` reads: `url` as go-triton takes it (triton_db_uri), "dynamodb:"
// named after `client`, and for dynamodb: the client from --dynamodb-endpoint, --region and
// --profile (ConfigError naming them for any other store).
struct StatsStore {
  std::string uri;
  native::StoreOptions options;
};
[[nodiscard]] StatsStore stats_store(const Args& args, const std::string& url, const std::string& client);

}  // namespace kclpp::app::detail
