// Leases in the memory, SQLite and Postgres stores: the LeaseTable contract
// (lease_table_contract.hpp) on each, then what only one store has: schema migration from
// version 1, unreadable rows, ids a comma list cannot carry, a Postgres restart.
#include <sqlite3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/error.hpp"
#include "lease_table_contract.hpp"
#include "postgres_fixture.hpp"
#include "test_files.hpp"

namespace kclpp::native::lease_contract {
namespace {

// A handle on a store shared with other handles: memory: stores are separate objects each,
// so the backend hands out handles on one of them.
class SharedStore final : public CheckpointStore {
 public:
  explicit SharedStore(std::shared_ptr<CheckpointStore> store) : store_(std::move(store)) {}
  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override { return store_->load(key); }
  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    return store_->load_all(application, stream);
  }
  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    store_->save(key, position);
  }
  std::vector<StoredCheckpoint> list(const std::string& application) override { return store_->list(application); }
  std::unique_ptr<LeaseTable> leases(const std::string& application, const std::string& stream) override {
    return store_->leases(application, stream);
  }
  std::unique_ptr<StoreClaim> claim(const std::string& application, const std::string& stream) override {
    return store_->claim(application, stream);
  }

 private:
  std::shared_ptr<CheckpointStore> store_;
};

class MemoryBackend final : public LeaseBackend {
 public:
  std::string name() const override { return "Memory"; }
  std::string prepare() override { return {}; }
  void fresh() override { store_ = open_checkpoint_store("memory:"); }
  std::unique_ptr<CheckpointStore> open() override { return std::make_unique<SharedStore>(store_); }
  std::string expected_describe() const override { return "memory:"; }
  void release() noexcept override { store_.reset(); }

 private:
  std::shared_ptr<CheckpointStore> store_;
};

class SqliteBackend final : public LeaseBackend {
 public:
  std::string name() const override { return "Sqlite"; }
  std::string prepare() override { return {}; }
  void fresh() override {
    dir_ = std::make_unique<test::TempDir>("kclpp-leases");
    path_ = dir_->file("leases.db");
  }
  std::unique_ptr<CheckpointStore> open() override { return open_checkpoint_store("sqlite:" + path_); }
  std::string expected_describe() const override { return "sqlite:" + path_; }
  void release() noexcept override { dir_.reset(); }

 private:
  std::unique_ptr<test::TempDir> dir_;
  std::string path_;
};

// One Postgres server for the suite, started on the first test; a new database per test.
class PostgresBackend final : public LeaseBackend {
 public:
  std::string name() const override { return "Postgres"; }
  std::string prepare() override {
    if (server_ != nullptr) return {};
    if (auto reason = test::Postgres::unavailable_reason()) return *reason;
    server_ = std::make_unique<test::Postgres>();  // throws (the test fails) if it cannot start
    return {};
  }
  void fresh() override {
    uri_ = server_->create_database();
    database_ = uri_.substr(uri_.rfind('/') + 1, uri_.find('?') - uri_.rfind('/') - 1);
  }
  std::unique_ptr<CheckpointStore> open() override { return open_checkpoint_store(uri_); }
  std::string expected_describe() const override {
    return "postgres://127.0.0.1:" + std::to_string(server_->port()) + "/" + database_;
  }
  void release() noexcept override { server_.reset(); }

  test::Postgres& server() { return *server_; }
  const std::string& uri() const { return uri_; }
  const std::string& database() const { return database_; }

 private:
  std::unique_ptr<test::Postgres> server_;
  std::string uri_;
  std::string database_;
};

MemoryBackend& memory_backend() {
  static MemoryBackend backend;
  return backend;
}
SqliteBackend& sqlite_backend() {
  static SqliteBackend backend;
  return backend;
}
PostgresBackend& postgres_backend() {
  static PostgresBackend backend;
  return backend;
}

INSTANTIATE_TEST_SUITE_P(Memory, LeaseTableContract, ::testing::Values(&memory_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, LeaseTableContract, ::testing::Values(&sqlite_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Postgres, LeaseTableContract, ::testing::Values(&postgres_backend()), backend_name);

// --- SQLite only ----------------------------------------------------------------------

// Runs SQL on the file through a connection of its own; the first column of each row
// ("NULL" for NULL).
std::vector<std::string> sqlite_rows(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("sqlite3_open " + path + " failed");
  }
  std::vector<std::string> out;
  char* error = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* rows, int, char** values, char**) {
        static_cast<std::vector<std::string>*>(rows)->emplace_back(values[0] != nullptr ? values[0] : "NULL");
        return 0;
      },
      &out, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error("sqlite3_exec: " + message);
  return out;
}

// Version 1's DDL as kclpp created it, with one checkpoint row.
constexpr const char* sqlite_version_1 =
    "CREATE TABLE kclpp_schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "INSERT INTO kclpp_schema_version VALUES (1, 1, '2024-01-01T00:00:00.000Z');"
    "CREATE TABLE kclpp_checkpoints (application TEXT NOT NULL, stream TEXT NOT NULL, shard_id TEXT NOT NULL,"
    " sequence_number TEXT NOT NULL, sub_sequence_number BIGINT NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,"
    " lease_owner TEXT, lease_counter BIGINT, lease_expires_at TEXT,"
    " PRIMARY KEY (application, stream, shard_id));"
    "INSERT INTO kclpp_checkpoints (application, stream, shard_id, sequence_number, sub_sequence_number,"
    " updated_at) VALUES ('app', 'stream', 'shardId-000000000001',"
    " '49590338271490256608559692538361571095921575989136588818', 5, '2024-01-01T00:00:00.000Z');";

TEST(SqliteLeases, VersionOneFileMigratesAndItsRowsReadAsFreeLeases) {
  test::TempDir dir;
  const std::string path = dir.file("v1.db");
  sqlite_rows(path, sqlite_version_1);
  auto store = open_checkpoint_store("sqlite:" + path);
  EXPECT_EQ(sqlite_rows(path, "SELECT version FROM kclpp_schema_version"), std::vector<std::string>{"2"});
  const auto checkpoint =
      ExtendedSequenceNumber(SequenceNumber("49590338271490256608559692538361571095921575989136588818"), 5);
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000001"}), checkpoint);
  auto leases = store->leases("app", "stream");
  ASSERT_NE(leases, nullptr);
  const auto lease = leases->get("shardId-000000000001");
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(*lease, bare_lease("shardId-000000000001", checkpoint));  // free, counter 0
  Lease taken = *lease;
  taken.owner = "worker-a";
  taken.counter = 1;
  EXPECT_TRUE(leases->update(taken, 0, std::nullopt));
  store.reset();
  // Opening the migrated file again changes nothing.
  auto again = open_checkpoint_store("sqlite:" + path);
  EXPECT_EQ(again->leases("app", "stream")->get("shardId-000000000001"), taken);
  EXPECT_EQ(sqlite_rows(path, "SELECT version FROM kclpp_schema_version"), std::vector<std::string>{"2"});
}

TEST(SqliteLeases, NewFileHasVersionTwoWithEveryLeaseColumn) {
  test::TempDir dir;
  const std::string path = dir.file("new.db");
  (void)open_checkpoint_store("sqlite:" + path);
  EXPECT_EQ(sqlite_rows(path, "SELECT version FROM kclpp_schema_version"), std::vector<std::string>{"2"});
  EXPECT_EQ(sqlite_rows(path, "SELECT group_concat(name || ':' || type, ',') FROM "
                              "(SELECT name, type FROM pragma_table_info('kclpp_checkpoints') ORDER BY cid)"),
            std::vector<std::string>{
                "application:TEXT,stream:TEXT,shard_id:TEXT,sequence_number:TEXT,sub_sequence_number:BIGINT,"
                "updated_at:TEXT,lease_owner:TEXT,lease_counter:BIGINT,lease_expires_at:TEXT,"
                "pending_checkpoint:TEXT,pending_sub_sequence_number:BIGINT,pending_checkpoint_state:BLOB,"
                "owner_switches_since_checkpoint:BIGINT,parent_shard_ids:TEXT,child_shard_ids:TEXT,"
                "starting_hash_key:TEXT,ending_hash_key:TEXT,throughput_kbps:TEXT,checkpoint_owner:TEXT"});
}

TEST(SqliteLeases, SetsAreStoredAsSortedCommaLists) {
  test::TempDir dir;
  const std::string path = dir.file("c.db");
  auto store = open_checkpoint_store("sqlite:" + path);
  Lease lease = bare_lease(shard(3));
  lease.parent_shard_ids = {shard(2), shard(1), shard(2)};
  ASSERT_TRUE(store->leases("app", "stream")->create(lease));
  EXPECT_EQ(sqlite_rows(path, "SELECT parent_shard_ids FROM kclpp_checkpoints"),
            std::vector<std::string>{shard(1) + "," + shard(2)});
  EXPECT_EQ(sqlite_rows(path, "SELECT child_shard_ids FROM kclpp_checkpoints"), std::vector<std::string>{"NULL"});
  EXPECT_EQ(store->leases("app", "stream")->get(shard(3))->parent_shard_ids,
            (std::vector<std::string>{shard(1), shard(2)}));
}

TEST(SqliteLeases, AnIdWithACommaIsRefusedNamingTheShardAndTheColumn) {
  test::TempDir dir;
  auto store = open_checkpoint_store("sqlite:" + dir.file("c.db"));
  auto leases = store->leases("app", "stream");
  Lease lease = bare_lease(shard(1));
  lease.child_shard_ids = {"a,b"};
  try {
    (void)leases->create(lease);
    FAIL() << "wrote an id with a comma";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(what.find(shard(1)), std::string::npos) << what;
    EXPECT_NE(what.find("child_shard_ids"), std::string::npos) << what;
  }
  EXPECT_TRUE(leases->list().empty());
}

TEST(SqliteLeases, AnUnreadableRowNamesTheShardAndTheColumn) {
  test::TempDir dir;
  const std::string path = dir.file("c.db");
  auto store = open_checkpoint_store("sqlite:" + path);
  auto leases = store->leases("app", "stream");
  ASSERT_TRUE(leases->create(bare_lease(shard(1))));
  ASSERT_TRUE(leases->create(bare_lease(shard(2))));
  const auto expect_unreadable = [&](const std::string& column) {
    try {
      (void)leases->list();
      ADD_FAILURE() << "read a broken " << column;
    } catch (const StoreError& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.retry(), Retry::No);
      EXPECT_NE(what.find(shard(2)), std::string::npos) << what;
      EXPECT_NE(what.find(column), std::string::npos) << what;
    }
  };
  sqlite_rows(path, "UPDATE kclpp_checkpoints SET lease_counter = 'many' WHERE shard_id = '" + shard(2) + "'");
  expect_unreadable("lease_counter");
  sqlite_rows(path, "UPDATE kclpp_checkpoints SET lease_counter = 1, parent_shard_ids = 'a,,b' WHERE shard_id = '" +
                        shard(2) + "'");
  expect_unreadable("parent_shard_ids");
  sqlite_rows(path, "UPDATE kclpp_checkpoints SET parent_shard_ids = NULL, pending_checkpoint = 'soon' "
                    "WHERE shard_id = '" + shard(2) + "'");
  expect_unreadable("pending_checkpoint");
  EXPECT_TRUE(leases->get(shard(1)).has_value());  // the other rows still read
}

TEST(SqliteLeases, RenewalsLeaveUpdatedAtAloneCheckpointsMoveIt) {
  test::TempDir dir;
  const std::string path = dir.file("c.db");
  auto store = open_checkpoint_store("sqlite:" + path);
  auto leases = store->leases("app", "stream");
  ASSERT_TRUE(leases->create(bare_lease(shard(1))));
  sqlite_rows(path, "UPDATE kclpp_checkpoints SET updated_at = '2000-01-01T00:00:00.000Z'");
  Lease next = bare_lease(shard(1));
  next.owner = "worker-a";
  next.counter = 1;
  ASSERT_TRUE(leases->update(next, 0, std::nullopt));
  EXPECT_EQ(sqlite_rows(path, "SELECT updated_at FROM kclpp_checkpoints"),
            std::vector<std::string>{"2000-01-01T00:00:00.000Z"});
  Lease checkpointed = next;
  checkpointed.counter = 2;
  checkpointed.checkpoint = ExtendedSequenceNumber(SequenceNumber("123"), 0);
  ASSERT_TRUE(leases->update(checkpointed, 1, next.owner));
  EXPECT_EQ(sqlite_rows(path, "SELECT updated_at LIKE '20%Z' AND updated_at > '2001' FROM kclpp_checkpoints"),
            std::vector<std::string>{"1"});
}

// Another process holding the write lock past the busy timeout (10 s): reads go on (WAL),
// a lease write throws StoreError(Retry::Yes) and changes nothing.
TEST(SqliteLeases, AWriteLockHeldElsewhereMakesWritesRetryable) {
  test::TempDir dir;
  const std::string path = dir.file("c.db");
  auto store = open_checkpoint_store("sqlite:" + path);
  auto leases = store->leases("app", "stream");
  ASSERT_TRUE(leases->create(bare_lease(shard(1))));
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(leases->get(shard(1)), bare_lease(shard(1)));
  Lease next = bare_lease(shard(1));
  next.owner = "worker-a";
  next.counter = 1;
  try {
    (void)leases->update(next, 0, std::nullopt);
    ADD_FAILURE() << "wrote past another connection's write lock";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes) << e.what();
  }
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  EXPECT_EQ(leases->get(shard(1)), bare_lease(shard(1)));
  EXPECT_TRUE(leases->update(next, 0, std::nullopt));
}

TEST(SqliteLeases, TheTritonLayoutHasNoLeases) {
  test::TempDir dir;
  auto store = open_checkpoint_store("triton+sqlite:" + dir.file("t.db"));
  EXPECT_EQ(store->leases("app", "stream"), nullptr);
}

// --- Postgres only --------------------------------------------------------------------

class PostgresLeases : public test::PostgresTest {
 protected:
  static std::string database_of(const std::string& uri) {
    return uri.substr(uri.rfind('/') + 1, uri.find('?') - uri.rfind('/') - 1);
  }
};

TEST_F(PostgresLeases, VersionOneDatabaseMigratesAndItsRowsReadAsFreeLeases) {
  const std::string uri = pg().create_database();
  const std::string db = database_of(uri);
  pg().psql(
      "CREATE TABLE kclpp_schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL,"
      " updated_at TIMESTAMPTZ NOT NULL DEFAULT now());"
      "INSERT INTO kclpp_schema_version (id, version) VALUES (1, 1);"
      "CREATE TABLE kclpp_checkpoints (application TEXT NOT NULL, stream TEXT NOT NULL, shard_id TEXT NOT NULL,"
      " sequence_number TEXT NOT NULL, sub_sequence_number BIGINT NOT NULL DEFAULT 0,"
      " updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), lease_owner TEXT, lease_counter BIGINT,"
      " lease_expires_at TIMESTAMPTZ, PRIMARY KEY (application, stream, shard_id));"
      "INSERT INTO kclpp_checkpoints (application, stream, shard_id, sequence_number, sub_sequence_number)"
      " VALUES ('app', 'stream', 'shardId-000000000001', 'SHARD_END', 0),"
      " ('app', 'stream', 'shardId-000000000002', '49590338271490256608559692538361571095921575989136588818', 7);",
      db);
  auto store = open_checkpoint_store(uri);
  EXPECT_EQ(pg().psql("SELECT version FROM kclpp_schema_version", db), "2");
  auto leases = store->leases("app", "stream");
  ASSERT_NE(leases, nullptr);
  const auto got = leases->list();
  const auto second =
      ExtendedSequenceNumber(SequenceNumber("49590338271490256608559692538361571095921575989136588818"), 7);
  EXPECT_EQ(got, (std::vector<Lease>{bare_lease("shardId-000000000001", ExtendedSequenceNumber(Sentinel::ShardEnd)),
                                     bare_lease("shardId-000000000002", second)}));
  Lease full = full_lease("shardId-000000000002");
  full.counter = 1;
  EXPECT_TRUE(leases->update(full, 0, std::nullopt));
  EXPECT_EQ(open_checkpoint_store(uri)->leases("app", "stream")->get("shardId-000000000002"), full);
  EXPECT_EQ(pg().psql("SELECT version FROM kclpp_schema_version", db), "2");
}

TEST_F(PostgresLeases, NewDatabaseHasVersionTwoWithEveryLeaseColumn) {
  const std::string uri = pg().create_database();
  (void)open_checkpoint_store(uri);
  const std::string db = database_of(uri);
  EXPECT_EQ(pg().psql("SELECT version FROM kclpp_schema_version", db), "2");
  EXPECT_EQ(pg().psql("SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) "
                      "FROM information_schema.columns WHERE table_name = 'kclpp_checkpoints'",
                      db),
            "application:text,stream:text,shard_id:text,sequence_number:text,sub_sequence_number:bigint,"
            "updated_at:timestamp with time zone,lease_owner:text,lease_counter:bigint,"
            "lease_expires_at:timestamp with time zone,pending_checkpoint:text,pending_sub_sequence_number:bigint,"
            "pending_checkpoint_state:bytea,owner_switches_since_checkpoint:bigint,parent_shard_ids:text,"
            "child_shard_ids:text,starting_hash_key:text,ending_hash_key:text,throughput_kbps:text,"
            "checkpoint_owner:text");
}

TEST_F(PostgresLeases, AnUnreachableServerIsRetryableAndTheTableRecovers) {
  const std::string uri = pg().create_database();
  auto store = open_checkpoint_store(uri);
  auto leases = store->leases("app", "stream");
  ASSERT_TRUE(leases->create(bare_lease(shard(1))));
  pg().stop();
  Lease next = bare_lease(shard(1));
  next.owner = "worker-a";
  next.counter = 1;
  try {
    (void)leases->update(next, 0, std::nullopt);
    FAIL() << "updated a lease on a stopped server";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes) << e.what();
  }
  try {
    (void)leases->list();
    FAIL() << "listed leases on a stopped server";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes) << e.what();
  }
  pg().start();
  // The same table object reconnects; the failed update changed nothing.
  EXPECT_EQ(leases->get(shard(1)), bare_lease(shard(1)));
  EXPECT_TRUE(leases->update(next, 0, std::nullopt));
  EXPECT_EQ(leases->get(shard(1)), next);
}

TEST_F(PostgresLeases, TheFirstWriteAfterARestartIsRetryableAndNotRunTwice) {
  const std::string uri = pg().create_database();
  auto store = open_checkpoint_store(uri);
  auto leases = store->leases("app", "stream");
  ASSERT_TRUE(leases->create(bare_lease(shard(1))));
  pg().restart();  // the store's connection is dead, and it does not know yet
  Lease next = bare_lease(shard(1));
  next.owner = "worker-a";
  next.counter = 1;
  bool done = false;
  try {
    done = leases->update(next, 0, std::nullopt);
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes) << e.what();
  }
  // Whatever happened, reading tells: either it was written (and reported) or not at all.
  const auto after = leases->get(shard(1));
  ASSERT_TRUE(after.has_value());
  if (done) {
    EXPECT_EQ(*after, next);
  } else {
    EXPECT_EQ(*after, bare_lease(shard(1)));
    EXPECT_TRUE(leases->update(next, 0, std::nullopt));
  }
}

TEST_F(PostgresLeases, TheTritonLayoutHasNoLeases) {
  const std::string uri = pg().create_database();
  auto store = open_checkpoint_store("triton+" + uri);
  EXPECT_EQ(store->leases("app", "stream"), nullptr);
}

// --- memory only ----------------------------------------------------------------------

TEST(MemoryLeases, EachMemoryStoreHasLeasesOfItsOwn) {
  auto one = open_checkpoint_store("memory:");
  auto two = open_checkpoint_store("memory:");
  ASSERT_TRUE(one->leases("app", "stream")->create(bare_lease(shard(1))));
  EXPECT_EQ(one->leases("app", "stream")->list().size(), 1u);  // a second table on the same store
  EXPECT_TRUE(two->leases("app", "stream")->list().empty());
}

}  // namespace
}  // namespace kclpp::native::lease_contract
