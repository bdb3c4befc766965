// placeholder: being written
#include "pipeline_commands.hpp"
#include "kclpp/processor/error.hpp"
namespace kclpp::app::detail {
int cat_command(const std::vector<std::string>&) { throw ConfigError("cat_command: not built yet"); }
}
