#pragma once
// The SQLite checkpoint store behind "sqlite:PATH" (the embedded default).
#include <memory>
#include <string>

#include "kclpp/native/checkpoint_store.hpp"

namespace kclpp::native::detail {

// The schema version this build creates and understands.
inline constexpr int sqlite_schema_version = 1;

// Opens (creating if needed) the database file at `path` and its schema. Throws
// StoreError naming the path (Retry::Yes only when the database was busy).
[[nodiscard]] std::unique_ptr<CheckpointStore> open_sqlite_store(const std::string& path);

}  // namespace kclpp::native::detail
