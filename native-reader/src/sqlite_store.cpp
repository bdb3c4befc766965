#include "sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

#include "kclpp/internal/unique_fd.hpp"
#include "kclpp/processor/error.hpp"
#include "lease_rows.hpp"
#include "store_common.hpp"

namespace kclpp::native::detail {
namespace {

constexpr int busy_timeout_ms = 10'000;

// The current time as kclpp_checkpoints.updated_at holds it (ISO 8601, UTC, milliseconds).
constexpr const char* sqlite_now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// The one place SQLite result codes become exceptions. A busy or locked database may free
// up (another process held the write lock past the busy timeout): Retry::Yes. Anything
// else (corrupt file, not a database, read-only, I/O error, schema) will not fix itself.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view doing, const std::string& where) {
  const int primary = rc & 0xff;
  const Retry retry = (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) ? Retry::Yes : Retry::No;
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw StoreError("checkpoint store sqlite:" + where + ": " + std::string(doing) + ": " + detail +
                       " (SQLite code " + std::to_string(rc) + ")",
                   retry);
}

void check(sqlite3* db, int rc, std::string_view doing, const std::string& where) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) throw_sqlite(db, rc, doing, where);
}

// Resets a cached statement when a call is done with it (also on exceptions).
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StmtUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;
  [[nodiscard]] sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

using detail::claim_hash;
using detail::host_name;

using kclpp::detail::UniqueFd;

// An exclusive flock on PATH.lock-HASH. flock (not fcntl) locks belong to the open file
// description, so a second claim in the same process conflicts too, and closing some other
// descriptor of the file (as SQLite's own fcntl locking would) cannot drop it. The kernel
// releases it when the process dies, however it dies. The file itself stays: deleting it
// would race with a concurrent claimer that has it open.
class SqliteClaim final : public StoreClaim {
 public:
  explicit SqliteClaim(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;
};

// Processes opening one store file at once take turns through its set-up (WAL switch,
// schema): an exclusive flock on PATH.lock-init, held while the store is constructed. SQLite
// answers SQLITE_BUSY at once to the WAL switch of every process but one holding a shared
// lock, and processes that all retry can starve each other past any timeout (seen under
// ASan: 8 processes, 1 run in 15). Waits up to `timeout`; without a lock file (a read-only
// directory) set-up goes on unserialised, as before.
UniqueFd lock_setup(const std::string& path, std::chrono::milliseconds timeout) {
  auto fd = UniqueFd(
      ::open((path + ".lock-init").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return {};
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if ((errno != EWOULDBLOCK && errno != EINTR) || std::chrono::steady_clock::now() >= until) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return fd;
}

// One SQLite connection and the calls every statement goes through (their result codes
// reach throw_sqlite). Not thread-safe: its store serialises.
class SqliteDb {
 public:
  explicit SqliteDb(std::string path) : path_(std::move(path)) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path_.c_str(), &raw,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                                   nullptr);
    db_.reset(raw);  // SQLite hands out a handle even on failure; it must be closed.
    check(db_.get(), rc, "cannot open the database file", path_);
    check(db_.get(), sqlite3_busy_timeout(db_.get(), busy_timeout_ms), "setting busy timeout", path_);
    // WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL at every
    // commit, so a save() that returned survives a power cut, not just a crash. Where WAL
    // is impossible (no shared memory), SQLite keeps the rollback journal, which FULL also
    // makes durable.
    use_wal();
    exec("PRAGMA synchronous=FULL", "setting synchronous=FULL");
  }

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] sqlite3* get() const noexcept { return db_.get(); }

  // Transaction<SqliteDb> (store_common.hpp). BEGIN IMMEDIATE takes the write lock first
  // (waiting up to the busy timeout), so that two processes cannot both write.
  void begin_transaction(std::string_view doing) { exec("BEGIN IMMEDIATE", doing); }
  void commit_transaction(std::string_view doing) { exec("COMMIT", doing); }
  void rollback_transaction() noexcept { sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr); }

  void exec(const char* sql, std::string_view doing) {
    check(db_.get(), sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr), doing, path_);
  }

  Stmt prepare(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    Stmt stmt(raw);
    check(db_.get(), rc, "preparing a statement", path_);
    return stmt;
  }

  void bind(sqlite3_stmt* stmt, int index, const std::string& value) {
    // SQLITE_STATIC: every bound string outlives the statement's use (StmtUse resets it).
    check(db_.get(),
          sqlite3_bind_text(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC),
          "binding", path_);
  }

  void bind(sqlite3_stmt* stmt, int index, std::int64_t value) {
    check(db_.get(), sqlite3_bind_int64(stmt, index, value), "binding", path_);
  }

  // NULL for nullopt. Integer columns take decimal text too: their INTEGER affinity stores
  // it as an integer.
  void bind(sqlite3_stmt* stmt, int index, const std::optional<std::string>& value) {
    if (value) {
      bind(stmt, index, *value);
    } else {
      check(db_.get(), sqlite3_bind_null(stmt, index), "binding", path_);
    }
  }

  // Raw bytes (NUL included) as a BLOB; NULL for nullopt. An empty string stays an empty
  // BLOB, not NULL: data() is never a null pointer.
  void bind_blob(sqlite3_stmt* stmt, int index, const std::optional<std::string>& value) {
    if (!value) {
      check(db_.get(), sqlite3_bind_null(stmt, index), "binding", path_);
      return;
    }
    check(db_.get(),
          sqlite3_bind_blob(stmt, index, value->data(), static_cast<int>(value->size()), SQLITE_STATIC),
          "binding", path_);
  }

  // Rows the last INSERT, UPDATE or DELETE on this connection changed.
  [[nodiscard]] std::int64_t changes() const noexcept { return sqlite3_changes64(db_.get()); }

  // SQLITE_ROW or SQLITE_DONE; anything else throws.
  int step(sqlite3_stmt* stmt, std::string_view doing) {
    const int rc = sqlite3_step(stmt);
    check(db_.get(), rc, doing, path_);
    return rc;
  }

  static std::string text(sqlite3_stmt* stmt, int column) {
    const auto* p = sqlite3_column_text(stmt, column);
    const int n = sqlite3_column_bytes(stmt, column);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }

  // A column's bytes (text, or a blob's raw bytes; an integer as decimal text); nullopt for NULL.
  static std::optional<std::string> optional_value(sqlite3_stmt* stmt, int column) {
    switch (sqlite3_column_type(stmt, column)) {
      case SQLITE_NULL: return std::nullopt;
      case SQLITE_BLOB: {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, column));
        const auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt, column));
        return p == nullptr ? std::string() : std::string(p, n);
      }
      default: return text(stmt, column);
    }
  }

  ExtendedSequenceNumber decode(sqlite3_stmt* stmt, int column, const std::string& shard) {
    const std::string value = text(stmt, column);
    const std::int64_t sub = sqlite3_column_int64(stmt, column + 1);
    try {
      return ExtendedSequenceNumber::parse(value, sub);
    } catch (const Error& e) {
      throw StoreError("checkpoint store sqlite:" + path_ + ": shard " + shard +
                       " has an unreadable checkpoint '" + value + "'/" + std::to_string(sub) +
                       ": " + e.what());
    }
  }

 private:
  static std::minstd_rand& jitter() {
    thread_local std::minstd_rand engine(static_cast<unsigned>(::getpid()) ^
                                         static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    return engine;
  }

  // Switching to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
  // instead of calling the busy handler when waiting could deadlock (another process
  // opening the same new file holds a shared lock and wants the same). So this one waits
  // itself, up to the busy timeout. Once a file is in WAL mode (persistent), nothing waits.
  void use_wal() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
    for (unsigned attempt = 0;; ++attempt) {
      const int rc = sqlite3_exec(db_.get(), "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
      if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= until) {
        check(db_.get(), rc, "setting journal_mode=WAL", path_);
        return;
      }
      // A random pause of up to 1, 2, 4 ... 32 ms: processes that started together must not
      // retry in lockstep, or each keeps the others from the exclusive lock (a deterministic
      // pause livelocked 8 processes for the whole timeout under ASan).
      std::uniform_int_distribution<unsigned> pause(1, 1u << std::min(attempt, 5u));
      std::this_thread::sleep_for(std::chrono::milliseconds(pause(jitter())));
    }
  }

  std::string path_;
  Db db_;
};

using SqliteTransaction = Transaction<SqliteDb>;

// kclpp's own layout: kclpp_checkpoints under a schema version, whose rows are also the
// leases (lease_rows.hpp). Not thread-safe.
class SqliteKclppTables final : public CheckpointTables, public LeaseRows {
 public:
  explicit SqliteKclppTables(SqliteDb& db) : db_(db) {
    create_schema();
    list_ = db_.prepare(
        "SELECT stream, shard_id, sequence_number, sub_sequence_number, "
        "CAST(round((julianday(updated_at) - 2440587.5) * 86400000.0) AS INTEGER) "
        "FROM kclpp_checkpoints WHERE application = ?1 ORDER BY stream, shard_id");
    load_ = db_.prepare(
        "SELECT sequence_number, sub_sequence_number FROM kclpp_checkpoints "
        "WHERE application = ?1 AND stream = ?2 AND shard_id = ?3");
    load_all_ = db_.prepare(
        "SELECT shard_id, sequence_number, sub_sequence_number FROM kclpp_checkpoints "
        "WHERE application = ?1 AND stream = ?2");
    // Leaves the lease columns alone: they belong to the lease protocol.
    save_ = db_.prepare((std::string("INSERT INTO kclpp_checkpoints (application, stream, shard_id, "
                                     "sequence_number, sub_sequence_number, updated_at) "
                                     "VALUES (?1, ?2, ?3, ?4, ?5, ") +
                         sqlite_now +
                         ") ON CONFLICT (application, stream, shard_id) DO UPDATE SET "
                         "sequence_number = excluded.sequence_number, "
                         "sub_sequence_number = excluded.sub_sequence_number, updated_at = excluded.updated_at")
                            .c_str());
    prepare_lease_statements();
  }

  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    const StmtUse use(load_.get());
    db_.bind(use.get(), 1, key.application);
    db_.bind(use.get(), 2, key.stream);
    db_.bind(use.get(), 3, key.shard_id);
    if (db_.step(use.get(), "loading a checkpoint") == SQLITE_DONE) return std::nullopt;
    return db_.decode(use.get(), 0, key.shard_id);
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    const StmtUse use(load_all_.get());
    db_.bind(use.get(), 1, application);
    db_.bind(use.get(), 2, stream);
    std::map<std::string, ExtendedSequenceNumber> result;
    while (db_.step(use.get(), "loading checkpoints") == SQLITE_ROW) {
      std::string shard = SqliteDb::text(use.get(), 0);
      auto position = db_.decode(use.get(), 1, shard);
      result.insert_or_assign(std::move(shard), std::move(position));
    }
    return result;
  }

  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::string value = position.str();
    const StmtUse use(save_.get());
    db_.bind(use.get(), 1, key.application);
    db_.bind(use.get(), 2, key.stream);
    db_.bind(use.get(), 3, key.shard_id);
    db_.bind(use.get(), 4, value);
    db_.bind(use.get(), 5, position.sub_sequence_number());
    // Autocommit: the statement is its own transaction, committed (and fsynced, see
    // SqliteDb) before step returns.
    db_.step(use.get(), "saving a checkpoint");
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    const StmtUse use(list_.get());
    db_.bind(use.get(), 1, application);
    std::vector<StoredCheckpoint> result;
    while (db_.step(use.get(), "listing checkpoints") == SQLITE_ROW) {
      StoredCheckpoint c;
      c.stream = SqliteDb::text(use.get(), 0);
      c.shard_id = SqliteDb::text(use.get(), 1);
      c.position = db_.decode(use.get(), 2, c.shard_id);
      c.updated = std::chrono::system_clock::time_point(
          std::chrono::milliseconds(sqlite3_column_int64(use.get(), 4)));
      result.push_back(std::move(c));
    }
    return result;
  }

  // The lease statements below are autocommit statements, each its own transaction,
  // committed and fsynced before step returns (as save()). Their conditions and the write
  // happen under SQLite's write lock, so of two connections updating from one counter,
  // exactly one changes the row.

  std::vector<Lease> list_leases(const std::string& application, const std::string& stream) override {
    const StmtUse use(list_leases_.get());
    db_.bind(use.get(), 1, application);
    db_.bind(use.get(), 2, stream);
    std::vector<Lease> result;
    while (db_.step(use.get(), "listing leases") == SQLITE_ROW) result.push_back(read_lease(use.get()));
    return result;
  }

  std::optional<Lease> get_lease(const std::string& application, const std::string& stream,
                                 const std::string& key) override {
    const StmtUse use(get_lease_.get());
    db_.bind(use.get(), 1, application);
    db_.bind(use.get(), 2, stream);
    db_.bind(use.get(), 3, key);
    if (db_.step(use.get(), "reading a lease") == SQLITE_DONE) return std::nullopt;
    return read_lease(use.get());
  }

  bool create_lease(const std::string& application, const std::string& stream, const Lease& lease) override {
    const auto values = encode_lease(lease, describe_leases());
    const StmtUse use(create_lease_.get());
    bind_lease(use.get(), application, stream, lease.key, values);
    db_.step(use.get(), "creating a lease");
    return db_.changes() == 1;
  }

  bool update_lease(const std::string& application, const std::string& stream, const Lease& next,
                    std::int64_t expected_counter, const std::optional<std::string>& expected_owner) override {
    const auto values = encode_lease(next, describe_leases());
    const StmtUse use(update_lease_.get());
    bind_lease(use.get(), application, stream, next.key, values);
    db_.bind(use.get(), 18, expected_counter);
    db_.bind(use.get(), 19, expected_owner);
    db_.step(use.get(), "updating a lease");
    return db_.changes() == 1;
  }

  bool remove_lease(const std::string& application, const std::string& stream, const std::string& key,
                    std::int64_t expected_counter) override {
    const StmtUse use(remove_lease_.get());
    db_.bind(use.get(), 1, application);
    db_.bind(use.get(), 2, stream);
    db_.bind(use.get(), 3, key);
    db_.bind(use.get(), 4, expected_counter);
    db_.step(use.get(), "removing a lease");
    return db_.changes() == 1;
  }

  [[nodiscard]] std::string describe_leases() const override { return "sqlite:" + db_.path(); }
  [[nodiscard]] bool single_host_leases() const override { return true; }

 private:
  void prepare_lease_statements() {
    const SqlDialect dialect{"?", sqlite_now, "IS"};
    const std::string select = std::string("SELECT ") + lease_select_columns +
                               " FROM kclpp_checkpoints WHERE application = ?1 AND stream = ?2";
    // BINARY collation: byte order, as std::string compares.
    list_leases_ = db_.prepare((select + " ORDER BY shard_id").c_str());
    get_lease_ = db_.prepare((select + " AND shard_id = ?3").c_str());
    create_lease_ = db_.prepare(lease_insert_sql(dialect).c_str());
    update_lease_ = db_.prepare(lease_update_sql(dialect).c_str());
    remove_lease_ = db_.prepare(
        "DELETE FROM kclpp_checkpoints WHERE application = ?1 AND stream = ?2 AND shard_id = ?3 "
        "AND coalesce(lease_counter, 0) = ?4");
  }

  // Parameters 1..17 of the insert and update statements (lease_rows.hpp).
  void bind_lease(sqlite3_stmt* stmt, const std::string& application, const std::string& stream,
                  const std::string& key, const LeaseWriteValues& values) {
    db_.bind(stmt, 1, application);
    db_.bind(stmt, 2, stream);
    db_.bind(stmt, 3, key);
    for (std::size_t i = 0; i < values.size(); ++i) {
      const int index = static_cast<int>(4 + i);
      if (i == lease_write_state_index) {
        db_.bind_blob(stmt, index, values[i]);
      } else {
        db_.bind(stmt, index, values[i]);
      }
    }
  }

  Lease read_lease(sqlite3_stmt* stmt) const {
    LeaseRowValues row;
    for (std::size_t i = 0; i < row.size(); ++i) row[i] = SqliteDb::optional_value(stmt, static_cast<int>(i));
    return decode_lease(row, describe_leases());
  }

  // In a write transaction, so two processes opening the same new file cannot both create
  // or migrate the schema.
  void create_schema() {
    SqliteTransaction transaction(db_, "starting the schema transaction");
    db_.exec(
        "CREATE TABLE IF NOT EXISTS kclpp_schema_version ("
        " id INTEGER PRIMARY KEY CHECK (id = 1),"
        " version INTEGER NOT NULL,"
        " updated_at TEXT NOT NULL)",
        "creating kclpp_schema_version");
    std::optional<std::int64_t> found;
    {
      const Stmt get = db_.prepare("SELECT version FROM kclpp_schema_version WHERE id = 1");
      if (db_.step(get.get(), "reading the schema version") == SQLITE_ROW) found = sqlite3_column_int64(get.get(), 0);
    }
    if (found) {
      check_version(*found);
    } else {
      create_version_1();
    }
    migrate(found.value_or(1));
    transaction.commit("committing the schema");
  }

  void check_version(std::int64_t found) const {
    if (found > sqlite_schema_version) {
      throw StoreError("checkpoint store sqlite:" + db_.path() + " has schema version " +
                       std::to_string(found) + ", newer than version " +
                       std::to_string(sqlite_schema_version) +
                       " that this kclpp knows: upgrade kclpp or use another file");
    }
    if (found < 1) {
      throw StoreError("checkpoint store sqlite:" + db_.path() + " has an invalid schema version " +
                       std::to_string(found) + " (this kclpp knows version " +
                       std::to_string(sqlite_schema_version) + ")");
    }
  }

  // A new file gets the first version's schema and then every migration, so a new file and
  // a migrated one cannot differ.
  void create_version_1() {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS kclpp_checkpoints ("
        " application TEXT NOT NULL,"
        " stream TEXT NOT NULL,"
        " shard_id TEXT NOT NULL,"
        " sequence_number TEXT NOT NULL,"  // digits, or a sentinel name such as SHARD_END
        " sub_sequence_number BIGINT NOT NULL DEFAULT 0,"
        " updated_at TEXT NOT NULL,"
        // The lease's owner and counter (version 2 on; NULL: free, counter 0).
        " lease_owner TEXT,"
        " lease_counter BIGINT,"
        // Unused: expiry is judged on each worker's monotonic clock from when it last saw
        // the counter move (docs/checkpoints.md §4), never from a time another host wrote.
        " lease_expires_at TEXT,"
        " PRIMARY KEY (application, stream, shard_id))",
        "creating kclpp_checkpoints");
    const std::string insert =
        std::string("INSERT INTO kclpp_schema_version (id, version, updated_at) VALUES (1, 1, ") + sqlite_now + ")";
    db_.exec(insert.c_str(), "recording the schema version");
  }

  // From version `from` to sqlite_schema_version, inside create_schema's transaction.
  void migrate(std::int64_t from) {
    if (from >= sqlite_schema_version) return;
    if (from < 2) {
      // Version 2: the rest of a lease's fields (lease_rows.hpp). Existing rows read as
      // free leases with counter 0.
      for (const auto& column : lease_v2_columns) {
        const std::string sql = std::string("ALTER TABLE kclpp_checkpoints ADD COLUMN ") + column.name + " " +
                                column.sqlite_type;
        db_.exec(sql.c_str(), "adding the lease columns (schema version 2)");
      }
    }
    const std::string sql = "UPDATE kclpp_schema_version SET version = " + std::to_string(sqlite_schema_version) +
                            ", updated_at = " + sqlite_now + " WHERE id = 1";
    db_.exec(sql.c_str(), "recording the schema version");
  }

  SqliteDb& db_;
  Stmt load_;
  Stmt load_all_;
  Stmt save_;
  Stmt list_;
  Stmt list_leases_;
  Stmt get_lease_;
  Stmt create_lease_;
  Stmt update_lease_;
  Stmt remove_lease_;
};

// The triton layout (triton_layout.hpp, docs/triton.md §4). Not thread-safe.
class SqliteTritonTables final : public TritonTables {
 public:
  explicit SqliteTritonTables(SqliteDb& db) : db_(db) {
    create_schema();
    load_ = db_.prepare(triton_select(TritonFilter::Shard, "?").c_str());
    load_all_ = db_.prepare(triton_select(TritonFilter::Stream, "?").c_str());
    list_ = db_.prepare(triton_select(TritonFilter::Client, "?").c_str());
    // A real UPSERT: row-compatible with Triton's select-then-update/insert (§11.5).
    save_main_ = db_.prepare(
        "INSERT INTO triton_checkpoint (client, stream, shard, seq_num, updated) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (client, stream, shard) DO UPDATE SET "
        "seq_num = excluded.seq_num, updated = excluded.updated");
    // A sentinel keeps the main row's last real sequence number (Triton resumes after it)
    // and only touches `updated`.
    touch_main_ = db_.prepare(
        "UPDATE triton_checkpoint SET updated = ?4 WHERE client = ?1 AND stream = ?2 AND shard = ?3");
    // seq_num NULL: the main row's current value ('' without one), read in the same
    // transaction.
    save_side_ = db_.prepare(
        "INSERT INTO kclpp_triton_checkpoint_ext "
        "(client, stream, shard, seq_num, sub_sequence_number, sentinel, updated) "
        "VALUES (?1, ?2, ?3, coalesce(?4, (SELECT seq_num FROM triton_checkpoint "
        "WHERE client = ?1 AND stream = ?2 AND shard = ?3), ''), ?5, ?6, ?7) "
        "ON CONFLICT (client, stream, shard) DO UPDATE SET seq_num = excluded.seq_num, "
        "sub_sequence_number = excluded.sub_sequence_number, sentinel = excluded.sentinel, "
        "updated = excluded.updated");
  }

  // Both rows in one transaction, committed (fsynced) on return.
  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::string value = position.str();
    const std::int64_t now = unix_now();
    SqliteTransaction transaction(db_, "starting a checkpoint transaction");
    {
      const StmtUse use(position.is_sentinel() ? touch_main_.get() : save_main_.get());
      bind_key(use.get(), key);
      if (position.is_sentinel()) {
        db_.bind(use.get(), 4, now);
      } else {
        db_.bind(use.get(), 4, value);
        db_.bind(use.get(), 5, now);
      }
      db_.step(use.get(), "saving a checkpoint (triton_checkpoint)");
    }
    {
      const std::string sentinel = position.is_sentinel() ? value : std::string();
      const StmtUse use(save_side_.get());
      bind_key(use.get(), key);
      if (!position.is_sentinel()) db_.bind(use.get(), 4, value);  // else NULL: the main row's
      db_.bind(use.get(), 5, position.sub_sequence_number());
      db_.bind(use.get(), 6, sentinel);
      db_.bind(use.get(), 7, now);
      db_.step(use.get(), "saving a checkpoint (kclpp_triton_checkpoint_ext)");
    }
    transaction.commit("committing a checkpoint");
  }

 protected:
  std::vector<StoredCheckpoint> read(TritonFilter filter, const std::string& client, const std::string& stream,
                                     const std::string& shard) override {
    const StmtUse use(filter == TritonFilter::Shard    ? load_.get()
                      : filter == TritonFilter::Stream ? load_all_.get()
                                                       : list_.get());
    db_.bind(use.get(), 1, client);
    if (filter != TritonFilter::Client) db_.bind(use.get(), 2, stream);
    if (filter == TritonFilter::Shard) db_.bind(use.get(), 3, shard);
    std::vector<TritonRow> rows;
    while (db_.step(use.get(), "loading checkpoints") == SQLITE_ROW) {
      TritonRow row;
      row.side = sqlite3_column_int64(use.get(), 0) != 0;
      row.stream = SqliteDb::text(use.get(), 1);
      row.shard = SqliteDb::text(use.get(), 2);
      row.seq_num = SqliteDb::text(use.get(), 3);
      row.sub_sequence_number = sqlite3_column_int64(use.get(), 4);
      row.sentinel = SqliteDb::text(use.get(), 5);
      row.updated = sqlite3_column_int64(use.get(), 6);
      rows.push_back(std::move(row));
    }
    return merge_triton_rows(rows, "triton+sqlite:" + db_.path());
  }

 private:
  // No kclpp_schema_version here: the database is Triton's as much as ours, and its table
  // is never altered. In a write transaction as SqliteKclppTables::create_schema().
  void create_schema() {
    SqliteTransaction transaction(db_, "starting the schema transaction");
    db_.exec(triton_table_ddl, "creating triton_checkpoint");
    db_.exec(triton_ext_ddl, "creating kclpp_triton_checkpoint_ext");
    transaction.commit("committing the schema");
  }

  void bind_key(sqlite3_stmt* stmt, const CheckpointKey& key) {
    db_.bind(stmt, 1, key.application);
    db_.bind(stmt, 2, key.stream);
    db_.bind(stmt, 3, key.shard_id);
  }

  SqliteDb& db_;
  Stmt load_;
  Stmt load_all_;
  Stmt list_;
  Stmt save_main_;
  Stmt touch_main_;
  Stmt save_side_;
};

// Thread-safe: one connection (TablesStore serialises its use).
class SqliteStore final : public TablesStore<SqliteDb, SqliteKclppTables, SqliteTritonTables> {
 public:
  // The layout's tables are created (if missing) and checked before the constructor returns.
  SqliteStore(std::string path, StoreLayout layout) : TablesStore(std::move(path), layout) {}

  std::unique_ptr<StoreClaim> claim(const std::string& application,
                                    const std::string& stream) override {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx",
                  static_cast<unsigned long long>(claim_hash(application, stream)));
    const std::string lock_path = connection_.path() + ".lock-" + suffix;
    const std::string what = "cannot claim application '" + application + "' on stream '" +
                             stream + "' in checkpoint store sqlite:" + connection_.path();
    // CLOEXEC: a child the worker spawns (kclpp daemon) must not keep the claim alive.
    auto fd = UniqueFd(
        ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      throw StoreError(what + ": cannot open lock file " + lock_path + ": " + std::strerror(errno));
    }
    int rc = 0;
    do {
      rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EWOULDBLOCK) {
        throw StoreError(what + ": cannot lock " + lock_path + ": " + std::strerror(errno));
      }
      std::array<char, 256> buf{};
      const ssize_t n = ::pread(fd.get(), buf.data(), buf.size() - 1, 0);
      std::string holder = n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : "";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      if (holder.empty()) holder = "another process (pid not yet written)";
      throw StoreError(what + ": held by " + holder + " (lock file " + lock_path +
                       "); only one worker may run an application on a stream in a store without leases "
                       "(the triton layout; kclpp\'s own layout shares shards through leases)");
    }
    const std::string holder =
        "pid " + std::to_string(::getpid()) + " on host " + host_name() + "\n";
    // Best effort: the lock is what counts, the text only feeds the error message.
    if (::ftruncate(fd.get(), 0) == 0) {
      (void)!::pwrite(fd.get(), holder.data(), holder.size(), 0);
    }
    return std::make_unique<SqliteClaim>(std::move(fd));
  }

};

}  // namespace

std::unique_ptr<CheckpointStore> open_sqlite_store(const std::string& path, StoreLayout layout) {
  std::error_code ec;
  auto absolute = std::filesystem::absolute(path, ec);
  // Absolute, so the claim's lock file stays next to the database if the cwd changes.
  std::string file = ec ? path : absolute.lexically_normal().string();
  const auto setup_lock = lock_setup(file, std::chrono::milliseconds(busy_timeout_ms));
  return std::make_unique<SqliteStore>(std::move(file), layout);
}

}  // namespace kclpp::native::detail
