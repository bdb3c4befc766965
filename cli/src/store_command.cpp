// placeholder: being written
#include "pipeline_commands.hpp"
#include "kclpp/processor/error.hpp"
namespace kclpp::app::detail {
int store_command(const std::vector<std::string>&) { throw ConfigError("store_command: not built yet"); }
}
