#pragma once
// The process-local checkpoint store behind "memory:" (tests, LocalStream demos).
#include <memory>

#include "kclpp/native/checkpoint_store.hpp"

namespace kclpp::native::detail {

// A new, empty store. Its claims conflict with other claims on the same store object.
[[nodiscard]] std::unique_ptr<CheckpointStore> make_memory_store();

}  // namespace kclpp::native::detail
