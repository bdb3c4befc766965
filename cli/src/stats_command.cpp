// placeholder: being written
#include "pipeline_commands.hpp"
#include "kclpp/processor/error.hpp"
namespace kclpp::app::detail {
int stats_command(const std::vector<std::string>&) { throw ConfigError("stats_command: not built yet"); }
}
