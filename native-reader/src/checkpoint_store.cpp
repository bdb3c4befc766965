#include "kclpp/native/checkpoint_store.hpp"

#include <algorithm>
#include <cctype>
#include <string>

#include "kclpp/processor/error.hpp"
#include "dynamodb_store.hpp"
#include "memory_store.hpp"
#include "postgres_store.hpp"
#include "sqlite_store.hpp"

namespace kclpp::native {

std::vector<StoredCheckpoint> CheckpointStore::list(const std::string& application) {
  throw StoreError("this checkpoint store cannot list the checkpoints of application '" +
                   application + "'");
}

std::unique_ptr<LeaseTable> CheckpointStore::leases(const std::string& /*application*/,
                                                    const std::string& /*stream*/) {
  return nullptr;
}

std::string triton_db_uri(std::string_view url) {
  const auto starts = [&](std::string_view prefix) {
    if (url.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(url[i])) != prefix[i]) return false;
    }
    return true;
  };
  if (starts("sqlite://")) return "triton+sqlite:" + std::string(url.substr(9));
  if (starts("postgres://") || starts("postgresql://")) return "triton+" + std::string(url);
  return std::string(url);
}

std::unique_ptr<CheckpointStore> open_checkpoint_store(std::string_view uri, const StoreOptions& options) {
  const auto colon = uri.find(':');
  // Only the scheme ever goes into a message: the rest may hold a password.
  if (colon == std::string_view::npos || colon == 0) {
    throw ConfigError(
        "checkpoint store: no URI scheme (expected sqlite:PATH, postgres://..., "
        "postgresql://..., dynamodb:[TABLE], memory:, triton+sqlite:PATH or triton+postgres://...)");
  }
  std::string scheme(uri.substr(0, colon));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string_view rest = uri.substr(colon + 1);

  if (scheme == "sqlite" || scheme == "triton+sqlite") {
    if (rest.empty()) {
      throw ConfigError("checkpoint store: " + scheme + ": needs a file path (" + scheme + ":PATH)");
    }
    return detail::open_sqlite_store(std::string(rest), scheme == "sqlite"
                                                            ? detail::StoreLayout::Kclpp
                                                            : detail::StoreLayout::Triton);
  }
  if (scheme == "postgres" || scheme == "postgresql") {
    return detail::open_postgres_store(std::string(uri), detail::StoreLayout::Kclpp);
  }
  if (scheme == "triton+postgres" || scheme == "triton+postgresql") {
    // libpq gets the URI without "triton+".
    return detail::open_postgres_store(std::string(uri.substr(7)), detail::StoreLayout::Triton);
  }
  if (scheme == "dynamodb") {
    return detail::open_dynamodb_store(std::string(rest), options.dynamodb);
  }
  if (scheme == "memory") {
    if (!rest.empty()) {
      throw ConfigError("checkpoint store: memory: takes nothing after the colon");
    }
    return detail::make_memory_store();
  }
  throw ConfigError("checkpoint store: unknown URI scheme '" + scheme +
                    "' (expected sqlite, postgres, postgresql, dynamodb, memory, triton+sqlite, triton+postgres or "
                    "triton+postgresql)");
}

}  // namespace kclpp::native
