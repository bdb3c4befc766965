#include "kclpp/native/checkpoint_store.hpp"

#include <algorithm>
#include <cctype>
#include <string>

#include "kclpp/processor/error.hpp"
#include "memory_store.hpp"
#include "postgres_store.hpp"
#include "sqlite_store.hpp"

namespace kclpp::native {

std::unique_ptr<CheckpointStore> open_checkpoint_store(std::string_view uri) {
  const auto colon = uri.find(':');
  // Only the scheme ever goes into a message: the rest may hold a password.
  if (colon == std::string_view::npos || colon == 0) {
    throw ConfigError(
        "checkpoint store: no URI scheme (expected sqlite:PATH, postgres://..., "
        "postgresql://... or memory:)");
  }
  std::string scheme(uri.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string_view rest = uri.substr(colon + 1);

  if (scheme == "sqlite") {
    if (rest.empty()) throw ConfigError("checkpoint store: sqlite: needs a file path (sqlite:PATH)");
    return detail::open_sqlite_store(std::string(rest));
  }
  if (scheme == "postgres" || scheme == "postgresql") {
    return detail::open_postgres_store(std::string(uri));
  }
  if (scheme == "memory") {
    if (!rest.empty()) {
      throw ConfigError("checkpoint store: memory: takes nothing after the colon");
    }
    return detail::make_memory_store();
  }
  throw ConfigError("checkpoint store: unknown URI scheme '" + scheme +
                    "' (expected sqlite, postgres, postgresql or memory)");
}

}  // namespace kclpp::native
