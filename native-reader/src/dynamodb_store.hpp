#pragma once
// The store behind "dynamodb:" and "dynamodb:TABLE": checkpoints and leases in the Java
// KCL's DynamoDB lease table (docs/checkpoints.md §4).
#include <memory>
#include <string>

#include "kclpp/aws/dynamodb_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"

namespace kclpp::native::detail {

// Whether DynamoDB accepts `name` as a table name: 3 to 255 of [A-Za-z0-9_.-].
[[nodiscard]] bool valid_dynamodb_table_name(const std::string& name) noexcept;

// A store on table `table`, or, when `table` is empty, on the table named after the
// application of each call. Builds one DynamoDB client from `options` and makes no request:
// throws what aws::DynamoDbClient's constructor throws (ConfigError for a region or
// endpoint that cannot be resolved, AuthError for credentials), and ConfigError for a
// `table` DynamoDB would refuse (naming it).
//
// leases() makes the table when it is missing (hash key leaseKey S, on-demand billing) and
// waits until it is ACTIVE; an existing table is used as it is. The stream is not part of
// the key: one table holds one stream's leases (the KCL's single-stream mode). load() and
// load_all() read the leases' checkpoints (nothing for a missing table); save() writes one
// unconditionally (making the item, with leaseCounter 0, when missing); list() reports
// `updated` as the epoch (the KCL table keeps no time) and an empty stream; claim() throws
// StoreError(Retry::No): workers on DynamoDB coordinate through leases.
// Thread-safe: a small pool of clients, one per concurrent call.
[[nodiscard]] std::unique_ptr<CheckpointStore> open_dynamodb_store(std::string table,
                                                                   const aws::DynamoDbOptions& options);

}  // namespace kclpp::native::detail
