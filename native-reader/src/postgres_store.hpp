#pragma once
// The Postgres checkpoint store behind "postgres://..." / "postgresql://...".
#include <memory>
#include <string>

#include "kclpp/native/checkpoint_store.hpp"
#include "triton_layout.hpp"

namespace kclpp::native::detail {

// The schema version this build creates and understands (2: the lease columns,
// docs/checkpoints.md §2); a database of an older version is migrated when it opens.
inline constexpr int postgres_schema_version = 2;

// Connects with a libpq URI and creates or checks the schema of `layout` (kclpp's
// versioned tables, or triton_checkpoint + kclpp's side table: triton_layout.hpp). Throws ConfigError for a
// malformed URI, StoreError naming the host otherwise (Retry::Yes when unreachable).
// Never puts the password in a message.
[[nodiscard]] std::unique_ptr<CheckpointStore> open_postgres_store(const std::string& uri,
                                                                  StoreLayout layout = StoreLayout::Kclpp);

}  // namespace kclpp::native::detail
