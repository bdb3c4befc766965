#pragma once
// Where checkpoints live in native mode: one interface, three stores (SQLite file, the
// default; Postgres; memory), the first two also in go-triton's `triton_checkpoint` layout.
// Keyed by application, stream and shard.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/aws/dynamodb_client.hpp"
#include "kclpp/native/lease_table.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp::native {

struct CheckpointKey {
  std::string application;
  std::string stream;
  std::string shard_id;
};

// One stored checkpoint with where it belongs and when it was last written (`kclpp stats`).
struct StoredCheckpoint {
  std::string stream;
  std::string shard_id;
  ExtendedSequenceNumber position;
  // The last save: milliseconds in kclpp's layout, whole seconds in the triton layout.
  std::chrono::system_clock::time_point updated;
};

// Held while a worker runs an application on a stream; released by its destructor (and
// by the operating system when the process dies, even by SIGKILL). Not copyable: own it
// through the unique_ptr claim() returns. SQLite: an flock on PATH.lock-HASH next to the
// database; Postgres: a session advisory lock on a connection of its own (lost if the
// server restarts); memory: per store object. Its destructor never throws.
class StoreClaim {
 public:
  StoreClaim() = default;
  StoreClaim(const StoreClaim&) = delete;
  StoreClaim& operator=(const StoreClaim&) = delete;
  virtual ~StoreClaim() = default;
};

// Thread-safe: the worker calls it from every shard thread. Every call may throw
// StoreError (retry() says whether trying again can help: Yes for a busy or unreachable
// database, No for schema, permission or data problems). Not copyable.
class CheckpointStore {
 public:
  CheckpointStore() = default;
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;
  virtual ~CheckpointStore() = default;

  // The checkpoint of one shard, if any: a sequence number with its sub-sequence number,
  // or the SHARD_END sentinel.
  [[nodiscard]] virtual std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) = 0;
  // Every checkpoint of an application's stream, by shard id.
  [[nodiscard]] virtual std::map<std::string, ExtendedSequenceNumber> load_all(
      const std::string& application, const std::string& stream) = 0;
  // Durable (committed, fsynced by the database) before it returns. Accepts any value:
  // range rules are the Checkpointer's job.
  virtual void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) = 0;
  // Every checkpoint of an application, on every stream, ordered by (stream, shard id).
  // Every store of open_checkpoint_store implements it; the default (for test doubles)
  // throws StoreError(Retry::No).
  [[nodiscard]] virtual std::vector<StoredCheckpoint> list(const std::string& application);

  // The leases of an application's stream (lease_table.hpp), kept in this store beside
  // (DynamoDB: as) its checkpoints: load() and save() read and write the same rows' checkpoint.
  // Every store of open_checkpoint_store has them but the triton layout (whose table has no
  // room for them); nullptr there (the default): such a store runs one worker per
  // application and stream, held by claim(). Throws StoreError when the store cannot hold
  // them (a DynamoDB table that is missing and cannot be created).
  [[nodiscard]] virtual std::unique_ptr<LeaseTable> leases(const std::string& application,
                                                           const std::string& stream);

  // For stores without leases: only one worker may run an application on a stream against
  // one store. Throws StoreError(Retry::No) naming the application, the stream and what
  // holds it (e.g. the pid) when another live worker has claimed it. The worker claims
  // only stores without leases; stores with leases may throw StoreError(Retry::No) here.
  [[nodiscard]] virtual std::unique_ptr<StoreClaim> claim(const std::string& application,
                                                          const std::string& stream) = 0;
};

// How open_checkpoint_store reaches stores that need more than their URI.
struct StoreOptions {
  // "dynamodb:[TABLE]": region, endpoint (dynamoDBEndpoint) and credentials
  // (AWSCredentialsProviderDynamoDB) of the DynamoDB client; empty fields resolve as
  // aws::DynamoDbOptions says.
  aws::DynamoDbOptions dynamodb;
};

// Opens a store from a URI: "sqlite:PATH" (file created with its schema; PATH relative to
// the working directory or absolute), "postgres://..." or "postgresql://..." (libpq
// connection URI; schema created and versioned by kclpp), "memory:" (process-local, for
// tests), "dynamodb:" or "dynamodb:TABLE" (the Java KCL's lease table, docs/checkpoints.md
// §4: TABLE, else the application name; created on demand with on-demand billing when it
// is missing, used as it is when present; the client from options.dynamodb). The scheme is
// case-insensitive.
//
// "triton+sqlite:PATH", "triton+postgres://..." and "triton+postgresql://..." open the same
// databases in go-triton's layout (docs/triton.md §4), so that a Triton deployment can
// switch to kclpp, or back, without losing its position: application = `client`, stream =
// `stream` (the real stream name), shard = `shard`, the sequence number = `seq_num`,
// `updated` = Unix seconds. The table is created as Triton creates it (CREATE TABLE IF NOT
// EXISTS triton_checkpoint ...) and never altered; rows are written with an UPSERT, which
// Triton's readers see as their own rows. What the table cannot hold (a sub-sequence
// number, SHARD_END or another sentinel) goes into kclpp's side table
// kclpp_triton_checkpoint_ext, keyed the same way, while the triton_checkpoint row keeps
// the last real sequence number (Triton resumes AFTER it). A side row counts only while its
// seq_num equals the main row's: a Triton process that wrote the row since then wins.
// Claims work as in kclpp's layout (Triton processes take none).
//
// Throws ConfigError for an unknown scheme or a malformed URI; StoreError when the
// database cannot be opened (Retry::Yes if unreachable or busy) or has a schema version
// newer than this kclpp knows (Retry::No). Messages name the host, never the password.
[[nodiscard]] std::unique_ptr<CheckpointStore> open_checkpoint_store(std::string_view uri,
                                                                      const StoreOptions& options = {});

// A database URL as go-triton's --checkpoint-db / $TRITON_DB takes it, as a URI for
// open_checkpoint_store: "sqlite://PATH" -> "triton+sqlite:PATH" (go-triton itself opened
// ./triton-s3.db whatever PATH said, docs/kcl-protocol.md §1: pass sqlite://triton-s3.db for that file),
// "postgres://..." / "postgresql://..." -> "triton+postgres..."; anything else (kclpp's own
// URIs, "sqlite:PATH" included) unchanged. Never throws.
[[nodiscard]] std::string triton_db_uri(std::string_view url);

}  // namespace kclpp::native
