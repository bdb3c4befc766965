// libFuzzer: the java.util.Properties reader and the daemon's key mapping must never crash
// or hang on any bytes; a bad file is a ConfigError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon.hpp"
#include "kclpp/processor/error.hpp"
#include "properties.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto properties = kclpp::app::detail::parse_properties(text, "fuzz");
    for (const auto& [key, property] : properties) {
      if (property.line < 1) __builtin_trap();
    }
    (void)kclpp::app::detail::daemon_config(properties, "fuzz");
  } catch (const kclpp::ConfigError&) {
  }
  return 0;
}
