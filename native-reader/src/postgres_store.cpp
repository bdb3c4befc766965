#include "postgres_store.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <mutex>
#include <string_view>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "lease_rows.hpp"
#include "store_common.hpp"

namespace kclpp::native::detail {
namespace {

// libpq's default is to wait forever; a store that cannot be reached should say so soon.
// A connect_timeout in the URI wins.
constexpr const char* default_connect_timeout_s = "10";

// The schema transaction serialises on this two-key advisory lock ('kclp', 1). Two-key
// locks (objsubid 2) never collide with the one-key claim locks (objsubid 1).
constexpr const char* schema_lock_sql = "SELECT pg_advisory_xact_lock(1801677936, 1)";

struct ConnCloser {
  void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct ResultClear {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;
using Result = std::unique_ptr<PGresult, ResultClear>;

// Where the store lives, for messages: user@host:port/dbname, never the password.
struct Target {
  std::string uri;
  std::string display;
  // LeaseTable::describe(): postgres://HOST:PORT/DB as the first connection resolved them.
  std::string lease_display;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

// The one place libpq errors become exceptions. Retry::Yes when trying again can help: the
// connection is gone or could not be made (SQLSTATE class 08, or no result at all), the
// server is shutting down or starting (57P01..57P03), a serialization failure or deadlock
// (40001, 40P01), or it ran out of resources (class 53). Everything else (permissions,
// missing objects, bad data) needs a person: Retry::No.
[[noreturn]] void throw_pg(const Target& target, std::string_view doing, PGconn* conn,
                           const PGresult* result) {
  std::string sqlstate;
  std::string message;
  if (result != nullptr) {
    if (const char* s = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = s;
    message = PQresultErrorMessage(result);
  }
  if (message.empty() && conn != nullptr) message = PQerrorMessage(conn);
  if (message.empty()) message = "no detail from libpq (out of memory?)";
  // libpq's messages span lines ("...failed: Connection refused\n\tIs the server
  // running..."): one line reads better in a log.
  {
    const std::string raw = trim(message);
    message.clear();
    bool in_break = false;  // folding a run of newlines/tabs (and the blanks after them)
    for (const char c : raw) {
      if (c == '\n' || c == '\t' || (in_break && c == ' ')) {
        if (!in_break) message.push_back(' ');
        in_break = true;
      } else {
        message.push_back(c);
        in_break = false;
      }
    }
  }
  const bool broken = conn == nullptr || PQstatus(conn) == CONNECTION_BAD;
  const bool transient = broken || sqlstate.rfind("08", 0) == 0 || sqlstate == "40001" ||
                         sqlstate == "40P01" || sqlstate == "57P01" || sqlstate == "57P02" ||
                         sqlstate == "57P03" || sqlstate.rfind("53", 0) == 0;
  std::string what = "checkpoint store " + target.display + ": " + std::string(doing) + ": " + message;
  if (!sqlstate.empty()) what += " (SQLSTATE " + sqlstate + ")";
  throw StoreError(what, transient ? Retry::Yes : Retry::No);
}

// "user:password@" in a URI's authority, for scrubbing libpq's parse errors.
std::string uri_password(std::string_view uri) {
  const auto start = uri.find("://");
  if (start == std::string_view::npos) return {};
  const auto authority = uri.substr(start + 3, uri.find_first_of("/?", start + 3) - (start + 3));
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return {};
  const auto userinfo = authority.substr(0, at);
  const auto colon = userinfo.find(':');
  return colon == std::string_view::npos ? std::string() : std::string(userinfo.substr(colon + 1));
}

Target parse_target(const std::string& uri) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &error);
  if (options == nullptr) {
    std::string message = error != nullptr ? trim(error) : "out of memory";
    PQfreemem(error);
    const std::string password = uri_password(uri);
    if (!password.empty()) {
      for (auto pos = message.find(password); pos != std::string::npos;
           pos = message.find(password, pos)) {
        message.replace(pos, password.size(), "***");
      }
    }
    throw ConfigError("checkpoint store: invalid Postgres URI: " + message);
  }
  std::string user, host, port, dbname;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "user") user = o->val;
    if (key == "host") host = o->val;
    if (key == "hostaddr" && host.empty()) host = o->val;
    if (key == "port") port = o->val;
    if (key == "dbname") dbname = o->val;
  }
  PQconninfoFree(options);
  std::string display = "postgresql://";
  if (!user.empty()) display += user + "@";
  display += host.empty() ? "localhost" : host;
  if (!port.empty()) display += ":" + port;
  if (!dbname.empty()) display += "/" + dbname;
  return {uri, display, {}};
}

// Server notices go to the kclpp logger, never straight to stderr (libpq's default).
void forward_notice(void* /*unused*/, const char* message) {
  const std::string text = trim(message);
  if (text.rfind("WARNING", 0) == 0) {
    log_warn("checkpoint store (Postgres): ", text);
  } else {
    log_debug("checkpoint store (Postgres): ", text);
  }
}

// Connects and prepares the session. Throws StoreError (Retry::Yes: unreachable).
Conn connect(const Target& target, const std::string& application_name) {
  // With expand_dbname, the URI's own parameters override the ones before it.
  const std::array<const char*, 4> keys{"connect_timeout", "application_name", "dbname", nullptr};
  const std::array<const char*, 4> values{default_connect_timeout_s, application_name.c_str(),
                                          target.uri.c_str(), nullptr};
  Conn conn(PQconnectdbParams(keys.data(), values.data(), 1));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    throw_pg(target, "cannot connect", conn.get(), nullptr);
  }
  PQsetNoticeProcessor(conn.get(), forward_notice, nullptr);
  // A checkpoint must be durable when save() returns, whatever the server's default. The
  // schema's CREATE ... IF NOT EXISTS would otherwise NOTICE on every open.
  Result set(PQexec(conn.get(), "SET synchronous_commit = on; SET client_min_messages = warning"));
  if (PQresultStatus(set.get()) != PGRES_COMMAND_OK) {
    throw_pg(target, "setting synchronous_commit", conn.get(), set.get());
  }
  return conn;
}

// Text parameters; nullopt is NULL.
using Params = std::vector<std::optional<std::string>>;

// One statement with text parameters, no reconnect. Throws through throw_pg.
Result run(const Target& target, PGconn* conn, std::string_view doing, const char* sql, const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  Result result(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(),
                             nullptr, nullptr, 0));
  const auto status = PQresultStatus(result.get());
  if (result == nullptr || (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)) {
    throw_pg(target, doing, conn, result.get());
  }
  return result;
}

std::string value(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return {};
  return std::string(PQgetvalue(result, row, column),
                     static_cast<std::size_t>(PQgetlength(result, row, column)));
}

using detail::claim_hash;
using detail::host_name;

// Holds a session-level advisory lock on its own connection: closing the connection (the
// destructor, or the kernel when the process dies) ends the session and frees the lock.
// If the server restarts, the session and so the claim are lost silently.
class PostgresClaim final : public StoreClaim {
 public:
  explicit PostgresClaim(Conn conn) : conn_(std::move(conn)) {}

 private:
  Conn conn_;
};

// The store's connection: reconnects when it finds it broken. Not thread-safe: its store
// serialises.
class PgSession {
 public:
  explicit PgSession(Target target) : target_(std::move(target)), conn_(connect(target_, "kclpp")) {
    const auto text = [](const char* s) { return std::string(s != nullptr ? s : ""); };
    target_.lease_display = "postgres://" + text(PQhost(conn_.get())) + ":" + text(PQport(conn_.get())) + "/" +
                            text(PQdb(conn_.get()));
  }

  [[nodiscard]] const Target& target() const noexcept { return target_; }

  // Runs one statement; if the connection turns out broken (server restarted, idle
  // connection cut), reconnects once and runs it again. Safe because every statement run
  // this way is idempotent: a SELECT, or an upsert of the same value. A second failure, or
  // a failed reconnect, is a StoreError with Retry::Yes for the caller's retry policy.
  Result exec(std::string_view doing, const char* sql, const Params& params) {
    if (conn_ == nullptr || PQstatus(conn_.get()) == CONNECTION_BAD) {
      conn_.reset();
      conn_ = connect(target_, "kclpp");
    }
    try {
      return run(target_, conn_.get(), doing, sql, params);
    } catch (const StoreError&) {
      if (PQstatus(conn_.get()) != CONNECTION_BAD) throw;
    }
    conn_.reset();
    conn_ = connect(target_, "kclpp");
    return run(target_, conn_.get(), doing, sql, params);
  }

  // One statement on the current connection, never run again: for the steps of a
  // transaction, which a new connection would not be in.
  Result run_once(std::string_view doing, const char* sql, const Params& params = {}) {
    return run(target_, conn_.get(), doing, sql, params);
  }

  // A write that must not run twice (a conditional lease write: run again after a lost
  // reply, it would find its own change and report a conflict). A connection already seen
  // broken is replaced first; a failure on the way throws StoreError(Retry::Yes) through
  // throw_pg without running it again, and the caller reads the lease anew (LeaseTable's
  // contract for a write that may or may not have happened).
  Result write_once(std::string_view doing, const char* sql, const Params& params) {
    if (conn_ == nullptr || PQstatus(conn_.get()) == CONNECTION_BAD) {
      conn_.reset();
      conn_ = connect(target_, "kclpp");
    }
    return run(target_, conn_.get(), doing, sql, params);
  }

  // Transaction<PgSession> (store_common.hpp): on this session's connection, never rerun
  // after a reconnect (a new connection has no transaction to go on with).
  void begin_transaction(std::string_view doing) { (void)run_once(doing, "BEGIN"); }
  void commit_transaction(std::string_view doing) { (void)run_once(doing, "COMMIT"); }
  void rollback_transaction() noexcept {
    if (conn_ != nullptr) Result ignored(PQexec(conn_.get(), "ROLLBACK"));
  }

  ExtendedSequenceNumber decode(const PGresult* r, int row, int column, const std::string& shard) const {
    const std::string text = value(r, row, column);
    const std::string sub_text = value(r, row, column + 1);
    std::int64_t sub = 0;
    try {
      sub = sub_text.empty() ? 0 : std::stoll(sub_text);
      return ExtendedSequenceNumber::parse(text, sub);
    } catch (const std::exception& e) {
      throw StoreError("checkpoint store " + target_.display + ": shard " + shard +
                       " has an unreadable checkpoint '" + text + "'/" + sub_text + ": " +
                       e.what());
    }
  }

 private:
  Target target_;
  Conn conn_;
};

using PgTransaction = Transaction<PgSession>;

// kclpp's own layout: kclpp_checkpoints under a schema version, whose rows are also the
// leases (lease_rows.hpp). Not thread-safe.
class PgKclppTables final : public CheckpointTables, public LeaseRows {
 public:
  explicit PgKclppTables(PgSession& session)
      : session_(session),
        select_leases_(std::string("SELECT ") + lease_select_columns +
                       " FROM kclpp_checkpoints WHERE application = $1 AND stream = $2"),
        list_leases_sql_(select_leases_ + " ORDER BY shard_id COLLATE \"C\""),  // byte order, as std::string
        get_lease_sql_(select_leases_ + " AND shard_id = $3"),
        create_lease_sql_(lease_insert_sql(dialect)),
        update_lease_sql_(lease_update_sql(dialect)) {
    create_schema();
  }

  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    const Result r = session_.exec("loading a checkpoint",
                                   "SELECT sequence_number, sub_sequence_number FROM kclpp_checkpoints "
                                   "WHERE application = $1 AND stream = $2 AND shard_id = $3",
                                   {key.application, key.stream, key.shard_id});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return session_.decode(r.get(), 0, 0, key.shard_id);
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    const Result r = session_.exec("loading checkpoints",
                                   "SELECT shard_id, sequence_number, sub_sequence_number "
                                   "FROM kclpp_checkpoints WHERE application = $1 AND stream = $2",
                                   {application, stream});
    std::map<std::string, ExtendedSequenceNumber> result;
    for (int row = 0; row < PQntuples(r.get()); ++row) {
      std::string shard = value(r.get(), row, 0);
      auto position = session_.decode(r.get(), row, 1, shard);
      result.insert_or_assign(std::move(shard), std::move(position));
    }
    return result;
  }

  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    // One autocommit statement: committed (synchronous_commit = on) when it returns. Leaves
    // the lease columns alone: they belong to the lease protocol.
    (void)session_.exec("saving a checkpoint",
                        "INSERT INTO kclpp_checkpoints (application, stream, shard_id, sequence_number, "
                        "sub_sequence_number, updated_at) VALUES ($1, $2, $3, $4, $5::bigint, now()) "
                        "ON CONFLICT (application, stream, shard_id) DO UPDATE SET "
                        "sequence_number = EXCLUDED.sequence_number, "
                        "sub_sequence_number = EXCLUDED.sub_sequence_number, "
                        "updated_at = EXCLUDED.updated_at",
                        {key.application, key.stream, key.shard_id, position.str(),
                         std::to_string(position.sub_sequence_number())});
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    const Result r = session_.exec("listing checkpoints",
                                   "SELECT stream, shard_id, sequence_number, sub_sequence_number, "
                                   "(extract(epoch FROM updated_at) * 1000)::bigint "
                                   "FROM kclpp_checkpoints WHERE application = $1 ORDER BY stream, shard_id",
                                   {application});
    std::vector<StoredCheckpoint> result;
    for (int row = 0; row < PQntuples(r.get()); ++row) {
      StoredCheckpoint c;
      c.stream = value(r.get(), row, 0);
      c.shard_id = value(r.get(), row, 1);
      c.position = session_.decode(r.get(), row, 2, c.shard_id);
      c.updated = std::chrono::system_clock::time_point(
          std::chrono::milliseconds(std::stoll(value(r.get(), row, 4))));
      result.push_back(std::move(c));
    }
    return result;
  }

  // Reads may be run again on a new connection (PgSession::exec); the writes are single
  // autocommit statements (committed with synchronous_commit = on when they return) run at
  // most once (PgSession::write_once). Postgres re-checks an UPDATE's or DELETE's WHERE on
  // the newest row version after waiting for a concurrent writer (READ COMMITTED), so of
  // two sessions writing from one counter exactly one changes the row.

  std::vector<Lease> list_leases(const std::string& application, const std::string& stream) override {
    const Result r = session_.exec("listing leases", list_leases_sql_.c_str(), {application, stream});
    std::vector<Lease> result;
    for (int row = 0; row < PQntuples(r.get()); ++row) result.push_back(read_lease(r.get(), row));
    return result;
  }

  std::optional<Lease> get_lease(const std::string& application, const std::string& stream,
                                 const std::string& key) override {
    const Result r = session_.exec("reading a lease", get_lease_sql_.c_str(), {application, stream, key});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return read_lease(r.get(), 0);
  }

  bool create_lease(const std::string& application, const std::string& stream, const Lease& lease) override {
    const Result r = session_.write_once("creating a lease", create_lease_sql_.c_str(),
                                         lease_params(application, stream, lease));
    return affected(r.get()) == 1;
  }

  bool update_lease(const std::string& application, const std::string& stream, const Lease& next,
                    std::int64_t expected_counter, const std::optional<std::string>& expected_owner) override {
    Params params = lease_params(application, stream, next);
    params.emplace_back(std::to_string(expected_counter));
    params.push_back(expected_owner);
    const Result r = session_.write_once("updating a lease", update_lease_sql_.c_str(), params);
    return affected(r.get()) == 1;
  }

  bool remove_lease(const std::string& application, const std::string& stream, const std::string& key,
                    std::int64_t expected_counter) override {
    const Result r = session_.write_once(
        "removing a lease",
        "DELETE FROM kclpp_checkpoints WHERE application = $1 AND stream = $2 AND shard_id = $3 "
        "AND coalesce(lease_counter, 0) = $4::bigint",
        {application, stream, key, std::to_string(expected_counter)});
    return affected(r.get()) == 1;
  }

  [[nodiscard]] std::string describe_leases() const override { return session_.target().lease_display; }

 private:
  static constexpr SqlDialect dialect{"$", "now()", "IS NOT DISTINCT FROM"};

  static long long affected(PGresult* r) {
    const char* n = PQcmdTuples(r);
    return n == nullptr || *n == '\0' ? 0 : std::atoll(n);
  }

  // Parameters 1..17 of the insert and update statements (lease_rows.hpp). The pending
  // state goes as bytea's hex input form, so any byte (NUL too) survives a text parameter.
  Params lease_params(const std::string& application, const std::string& stream, const Lease& lease) const {
    auto values = encode_lease(lease, describe_leases());
    Params params{application, stream, lease.key};
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i == lease_write_state_index && values[i]) values[i] = bytea_hex(*values[i]);
      params.push_back(std::move(values[i]));
    }
    return params;
  }

  static std::string bytea_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex = "\\x";
    hex.reserve(2 + 2 * bytes.size());
    for (const char c : bytes) {
      const auto b = static_cast<unsigned char>(c);
      hex.push_back(digits[b >> 4]);
      hex.push_back(digits[b & 0xf]);
    }
    return hex;
  }

  Lease read_lease(const PGresult* r, int row) const {
    LeaseRowValues values;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const int column = static_cast<int>(i);
      if (PQgetisnull(r, row, column)) continue;
      values[i] = i == static_cast<std::size_t>(LeaseColumn::PendingState) ? unescape_bytea(r, row, column)
                                                                            : value(r, row, column);
    }
    return decode_lease(values, describe_leases());
  }

  std::string unescape_bytea(const PGresult* r, int row, int column) const {
    std::size_t length = 0;
    const auto* text = reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, column));
    std::unique_ptr<unsigned char, decltype(&PQfreemem)> bytes(PQunescapeBytea(text, &length), &PQfreemem);
    if (bytes == nullptr) {
      throw StoreError("checkpoint store " + describe_leases() + ": the lease of shard " + value(r, row, 0) +
                       " has an unreadable pending_checkpoint_state (out of memory)");
    }
    return {reinterpret_cast<const char*>(bytes.get()), length};
  }

  // One transaction under a transaction-level advisory lock, so two processes creating
  // or migrating the schema of a database at once cannot collide (CREATE TABLE IF NOT
  // EXISTS alone races on the catalogs).
  void create_schema() {
    PgTransaction transaction(session_, "starting the schema transaction");
    session_.run_once("locking the schema", schema_lock_sql);
    session_.run_once("creating kclpp_schema_version",
                      "CREATE TABLE IF NOT EXISTS kclpp_schema_version ("
                      " id INTEGER PRIMARY KEY CHECK (id = 1),"
                      " version INTEGER NOT NULL,"
                      " updated_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    const Result v = session_.run_once("reading the schema version",
                                       "SELECT version FROM kclpp_schema_version WHERE id = 1");
    long long found = 1;
    if (PQntuples(v.get()) > 0) {
      found = std::stoll(value(v.get(), 0, 0));
      check_version(found);
    } else {
      create_version_1();
    }
    migrate(found);
    transaction.commit("committing the schema");
  }

  void check_version(long long found) const {
    const std::string& display = session_.target().display;
    if (found > postgres_schema_version) {
      throw StoreError("checkpoint store " + display + " has schema version " +
                       std::to_string(found) + ", newer than version " +
                       std::to_string(postgres_schema_version) +
                       " that this kclpp knows: upgrade kclpp or use another database");
    }
    if (found < 1) {
      throw StoreError("checkpoint store " + display + " has an invalid schema version " +
                       std::to_string(found) + " (this kclpp knows version " +
                       std::to_string(postgres_schema_version) + ")");
    }
  }

  // A new database gets the first version's schema and then every migration, so a new
  // database and a migrated one cannot differ.
  void create_version_1() {
    session_.run_once("creating kclpp_checkpoints",
                      "CREATE TABLE IF NOT EXISTS kclpp_checkpoints ("
                      " application TEXT NOT NULL,"
                      " stream TEXT NOT NULL,"
                      " shard_id TEXT NOT NULL,"
                      " sequence_number TEXT NOT NULL,"  // digits, or a sentinel name such as SHARD_END
                      " sub_sequence_number BIGINT NOT NULL DEFAULT 0,"
                      " updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                      // The lease's owner and counter (version 2 on; NULL: free, counter 0).
                      " lease_owner TEXT,"
                      " lease_counter BIGINT,"
                      // Unused: expiry is judged on each worker's monotonic clock from when it
                      // last saw the counter move (docs/checkpoints.md §4), never from a time
                      // another host wrote.
                      " lease_expires_at TIMESTAMPTZ,"
                      " PRIMARY KEY (application, stream, shard_id))");
    (void)session_.run_once("recording the schema version",
                            "INSERT INTO kclpp_schema_version (id, version) VALUES (1, 1)");
  }

  // From version `from` to postgres_schema_version, inside create_schema's transaction.
  void migrate(long long from) {
    if (from >= postgres_schema_version) return;
    if (from < 2) {
      // Version 2: the rest of a lease's fields (lease_rows.hpp). Existing rows read as
      // free leases with counter 0.
      std::string sql = "ALTER TABLE kclpp_checkpoints";
      const char* separator = " ";
      for (const auto& column : lease_v2_columns) {
        sql += std::string(separator) + "ADD COLUMN " + column.name + " " + column.postgres_type;
        separator = ", ";
      }
      session_.run_once("adding the lease columns (schema version 2)", sql.c_str());
    }
    (void)session_.run_once("recording the schema version",
                            "UPDATE kclpp_schema_version SET version = $1::integer, updated_at = now() WHERE id = 1",
                            {std::to_string(postgres_schema_version)});
  }

  PgSession& session_;
  const std::string select_leases_;
  const std::string list_leases_sql_;
  const std::string get_lease_sql_;
  const std::string create_lease_sql_;
  const std::string update_lease_sql_;
};

// The triton layout (triton_layout.hpp, docs/triton.md §4). Not thread-safe.
class PgTritonTables final : public TritonTables {
 public:
  explicit PgTritonTables(PgSession& session) : session_(session) { create_schema(); }

  // Each save is one statement (data-modifying CTE), so it is atomic, committed when it
  // returns, and idempotent for PgSession::exec's reconnect-and-rerun.
  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    if (side_ == SideTable::Absent) {
      throw StoreError("checkpoint store " + session_.target().display +
                       ": cannot save: this user may not read the table "
                       "kclpp_triton_checkpoint_ext, or it is missing and may not be created "
                       "(open the store once as a user who may, and grant access)");
    }
    const std::string now = std::to_string(unix_now());
    const std::string sub = std::to_string(position.sub_sequence_number());
    if (!position.is_sentinel()) {
      // A real UPSERT: row-compatible with Triton's select-then-update/insert (§11.5).
      (void)session_.exec("saving a checkpoint",
                          "WITH main AS (INSERT INTO triton_checkpoint (client, stream, shard, seq_num, updated) "
                          "VALUES ($1, $2, $3, $4, $6::integer) ON CONFLICT (client, stream, shard) DO UPDATE "
                          "SET seq_num = EXCLUDED.seq_num, updated = EXCLUDED.updated RETURNING 1) "
                          "INSERT INTO kclpp_triton_checkpoint_ext (client, stream, shard, seq_num, "
                          "sub_sequence_number, sentinel, updated) "
                          "VALUES ($1, $2, $3, $4, $5::bigint, '', $6::integer) "
                          "ON CONFLICT (client, stream, shard) DO UPDATE SET seq_num = EXCLUDED.seq_num, "
                          "sub_sequence_number = EXCLUDED.sub_sequence_number, sentinel = EXCLUDED.sentinel, "
                          "updated = EXCLUDED.updated",
                          {key.application, key.stream, key.shard_id, position.str(), sub, now});
      return;
    }
    // A sentinel keeps the main row's last real sequence number (Triton resumes after it)
    // and only touches `updated`; the side row records the main value it goes with.
    (void)session_.exec("saving a checkpoint",
                        "WITH main AS (UPDATE triton_checkpoint SET updated = $6::integer "
                        "WHERE client = $1 AND stream = $2 AND shard = $3 RETURNING seq_num) "
                        "INSERT INTO kclpp_triton_checkpoint_ext (client, stream, shard, seq_num, "
                        "sub_sequence_number, sentinel, updated) "
                        "VALUES ($1, $2, $3, coalesce((SELECT seq_num FROM main), ''), $5::bigint, $4, "
                        "$6::integer) "
                        "ON CONFLICT (client, stream, shard) DO UPDATE SET seq_num = EXCLUDED.seq_num, "
                        "sub_sequence_number = EXCLUDED.sub_sequence_number, sentinel = EXCLUDED.sentinel, "
                        "updated = EXCLUDED.updated",
                        {key.application, key.stream, key.shard_id, position.str(), sub, now});
  }

 protected:
  std::vector<StoredCheckpoint> read(TritonFilter filter, const std::string& client, const std::string& stream,
                                     const std::string& shard) override {
    Params params{client};
    if (filter != TritonFilter::Client) params.push_back(stream);
    if (filter == TritonFilter::Shard) params.push_back(shard);
    const std::string sql = triton_select(filter, "$", side_);
    const Result r = session_.exec("loading checkpoints", sql.c_str(), params);
    std::vector<TritonRow> rows;
    for (int i = 0; i < PQntuples(r.get()); ++i) rows.push_back(row(r.get(), i));
    return merge_triton_rows(rows, session_.target().display);
  }

 private:
  TritonRow row(const PGresult* r, int i) const {
    TritonRow row;
    row.side = value(r, i, 0) == "1";
    row.stream = value(r, i, 1);
    row.shard = value(r, i, 2);
    row.seq_num = value(r, i, 3);
    row.sentinel = value(r, i, 5);
    try {
      row.sub_sequence_number = std::stoll(value(r, i, 4));
      row.updated = std::stoll(value(r, i, 6));
    } catch (const std::exception&) {
      throw StoreError("checkpoint store " + session_.target().display + ": shard " + row.shard +
                       " has an unreadable row");
    }
    return row;
  }

  // No kclpp_schema_version: the database is Triton's as much as ours, and its table is
  // never altered. Serialised like PgKclppTables::create_schema(). Tables that exist are
  // not created again, so a user without CREATE (`kclpp stats` with a monitoring role, as
  // `triton stats` ran) can open a database set up before; without the side table and the
  // right to create it, the store reads the main table only and refuses to save.
  void create_schema() {
    const Result have = session_.run_once(
        "looking for the checkpoint tables",
        "SELECT to_regclass('triton_checkpoint') IS NOT NULL, "
        "to_regclass('kclpp_triton_checkpoint_ext') IS NOT NULL, "
        "coalesce(has_schema_privilege(current_schema(), 'CREATE'), false), "
        "CASE WHEN to_regclass('kclpp_triton_checkpoint_ext') IS NULL THEN false "
        "ELSE has_table_privilege('kclpp_triton_checkpoint_ext', 'SELECT') END");
    const bool have_main = value(have.get(), 0, 0) == "t";
    const bool have_side = value(have.get(), 0, 1) == "t";
    const bool may_create = value(have.get(), 0, 2) == "t";
    const bool may_read_side = value(have.get(), 0, 3) == "t";
    if (have_main && have_side && may_read_side) return;
    if (have_main && (have_side || !may_create)) {
      side_ = SideTable::Absent;
      log_info("checkpoint store ", session_.target().display, ": kclpp_triton_checkpoint_ext ",
               have_side ? "is not readable by this user" : "is missing and this user may not create it",
               ": reading triton_checkpoint only (saving needs that table)");
      return;
    }
    PgTransaction transaction(session_, "starting the schema transaction");
    session_.run_once("locking the schema", schema_lock_sql);
    session_.run_once("creating triton_checkpoint", triton_table_ddl);
    session_.run_once("creating kclpp_triton_checkpoint_ext", triton_ext_ddl);
    transaction.commit("committing the schema");
  }

  PgSession& session_;
  SideTable side_ = SideTable::Present;
};

// Thread-safe: one connection for the data (TablesStore serialises its use); each claim has
// a connection of its own.
class PostgresStore final : public TablesStore<PgSession, PgKclppTables, PgTritonTables> {
 public:
  // The layout's tables are created (if missing) and checked before the constructor returns.
  PostgresStore(Target target, StoreLayout layout) : TablesStore(std::move(target), layout) {}

  std::unique_ptr<StoreClaim> claim(const std::string& application,
                                    const std::string& stream) override {
    const Target& target = connection_.target();  // never changes: no lock needed
    const std::uint64_t key = claim_hash(application, stream);
    // Named so that the refused worker can say who holds the lock (truncated at 63 bytes).
    Conn conn = connect(target, "kclpp worker pid " + std::to_string(::getpid()) + " on " + host_name());
    const Result got = run(target, conn.get(), "claiming", "SELECT pg_try_advisory_lock($1::bigint)",
                           {std::to_string(static_cast<std::int64_t>(key))});
    if (value(got.get(), 0, 0) == "t") return std::make_unique<PostgresClaim>(std::move(conn));

    // A one-key advisory lock shows in pg_locks as classid = high 32 bits, objid = low 32
    // bits, objsubid = 1.
    const Result who = run(
        target, conn.get(), "finding the holder of a claim",
        "SELECT coalesce(a.application_name, ''), l.pid, "
        "coalesce(host(a.client_addr), 'local socket') "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = $1::bigint AND l.objid::bigint = $2::bigint "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        {std::to_string(key >> 32), std::to_string(key & 0xffffffffULL)});
    std::string holder = "another session (it ended while we looked)";
    if (PQntuples(who.get()) > 0) {
      const std::string name = value(who.get(), 0, 0);
      holder = (name.empty() ? std::string("a session") : "'" + name + "'") +
               " (Postgres backend pid " + value(who.get(), 0, 1) + ", client " +
               value(who.get(), 0, 2) + ")";
    }
    throw StoreError("cannot claim application '" + application + "' on stream '" + stream +
                     "' in checkpoint store " + target.display + ": held by " + holder +
                     "; only one worker may run an application on a stream in a store without leases "
                     "(the triton layout; kclpp\'s own layout shares shards through leases)");
  }

};

}  // namespace

std::unique_ptr<CheckpointStore> open_postgres_store(const std::string& uri, StoreLayout layout) {
  Target target = parse_target(uri);
  if (layout == StoreLayout::Triton) target.display = "triton+" + target.display;
  return std::make_unique<PostgresStore>(std::move(target), layout);
}

}  // namespace kclpp::native::detail
