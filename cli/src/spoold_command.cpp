// placeholder: being written
#include "pipeline_commands.hpp"
#include "kclpp/processor/error.hpp"
namespace kclpp::app::detail {
int spoold_command(const std::vector<std::string>&) { throw ConfigError("spoold_command: not built yet"); }
}
