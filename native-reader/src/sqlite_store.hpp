#pragma once
// The SQLite checkpoint store behind "sqlite:PATH" (the embedded default).
#include <memory>
#include <string>

#include "kclpp/native/checkpoint_store.hpp"
#include "triton_layout.hpp"

namespace kclpp::native::detail {

// The schema version this build creates and understands (2: the lease columns,
// docs/checkpoints.md §2); a file of an older version is migrated when it opens.
inline constexpr int sqlite_schema_version = 2;

// Opens (creating if needed) the database file at `path` and the schema of `layout`
// (kclpp's versioned tables, or triton_checkpoint + kclpp's side table: triton_layout.hpp). Throws
// StoreError naming the path (Retry::Yes only when the database was busy).
[[nodiscard]] std::unique_ptr<CheckpointStore> open_sqlite_store(const std::string& path,
                                                                StoreLayout layout = StoreLayout::Kclpp);

}  // namespace kclpp::native::detail
