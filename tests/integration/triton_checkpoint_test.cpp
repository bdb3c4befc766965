// The triton layout of the SQLite and Postgres checkpoint stores against go-triton's own SQL
// (docs/triton.md §4, run with the sqlite3 CLI and psql): rows Triton wrote are loaded, rows
// kclpp wrote are read by Triton's SELECTs, what Triton's table cannot hold (sub-sequence
// numbers, SHARD_END) round-trips through the side table, and Triton's later writes win.
// Also list() of every store, for `kclpp stats`.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/error.hpp"
#include "local_server.hpp"
#include "postgres_fixture.hpp"
#include "support.hpp"
#include "../store_test_support.hpp"

namespace kclpp::native {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace store_test;

// Triton's statements, verbatim from docs/triton.md §4 (Go's $n placeholders, filled in as SQL
// literals because the CLIs take no parameters).
constexpr const char* triton_ddl =
    "CREATE TABLE IF NOT EXISTS triton_checkpoint (\n"
    "  client  VARCHAR(255) NOT NULL,\n"
    "  stream  VARCHAR(255) NOT NULL,\n"
    "  shard   VARCHAR(255) NOT NULL,\n"
    "  seq_num VARCHAR(255) NOT NULL,\n"
    "  updated INTEGER NOT NULL,\n"
    "  PRIMARY KEY (client, stream, shard))";
constexpr const char* triton_exists = "SELECT 1 FROM triton_checkpoint WHERE client=$1 AND stream=$2 AND shard=$3";
constexpr const char* triton_update =
    "UPDATE triton_checkpoint SET seq_num=$1, updated=$2 WHERE client=$3 AND stream=$4 AND shard=$5";
constexpr const char* triton_insert = "INSERT INTO triton_checkpoint VALUES ($1, $2, $3, $4, $5)";
constexpr const char* triton_read = "SELECT seq_num FROM triton_checkpoint WHERE client=$1 AND stream=$2 AND shard=$3";
constexpr const char* triton_stats = "SELECT updated, stream, shard FROM triton_checkpoint WHERE client=$1";

std::string quote(const std::string& v) {
  std::string out = "'";
  for (const char c : v) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

// Replaces $1..$9 with the values (numbers unquoted when `numeric` says so).
std::string fill(std::string sql, const std::vector<std::string>& values) {
  for (std::size_t i = values.size(); i-- > 0;) {
    const std::string mark = "$" + std::to_string(i + 1);
    const bool number = !values[i].empty() && values[i].find_first_not_of("0123456789.") == std::string::npos &&
                        values[i].size() < 16;
    for (auto pos = sql.find(mark); pos != std::string::npos; pos = sql.find(mark, pos)) {
      sql.replace(pos, mark.size(), number ? values[i] : quote(values[i]));
    }
  }
  return sql;
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A database both Triton (through a CLI) and kclpp (through open_checkpoint_store) use.
class Database {
 public:
  virtual ~Database() = default;
  [[nodiscard]] virtual std::string uri() const = 0;  // triton+...
  // Runs SQL outside kclpp; returns the output rows, columns joined by '|'.
  virtual std::vector<std::string> sql(const std::string& sql) = 0;

  // go-triton's Checkpoint(shard, seq): select, then update or insert (docs/triton.md §4).
  void triton_checkpoint(const std::string& client, const std::string& stream, const std::string& shard,
                         const std::string& seq_num, const std::string& updated = std::to_string(now_s())) {
    sql(triton_ddl);
    if (!sql(fill(triton_exists, {client, stream, shard})).empty()) {
      sql(fill(triton_update, {seq_num, updated, client, stream, shard}));
    } else {
      sql(fill(triton_insert, {client, stream, shard, seq_num, updated}));
    }
  }
  // go-triton's LastSequenceNumber(shard): "" without a row.
  std::string triton_last(const std::string& client, const std::string& stream, const std::string& shard) {
    const auto rows = sql(fill(triton_read, {client, stream, shard}));
    return rows.empty() ? std::string() : rows.front();
  }
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(fs::path path) : path_(std::move(path)) {}
  [[nodiscard]] std::string uri() const override { return "triton+sqlite:" + path_.string(); }
  std::vector<std::string> sql(const std::string& text) override {
    test::Subprocess cli({test::find_on_path("sqlite3"), "-batch", "-bail", path_.string(), text});
    auto lines = cli.read_lines_until_eof(10s);
    const auto status = cli.wait(10s);
    if (!status || !status->exited || status->code != 0) {
      throw std::runtime_error("sqlite3 failed on '" + text + "': " + cli.stderr_text());
    }
    return lines;
  }

 private:
  fs::path path_;
};

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(test::Postgres& pg, std::string uri) : pg_(pg), uri_(std::move(uri)) {
    name_ = uri_.substr(uri_.rfind('/') + 1, uri_.find('?') - uri_.rfind('/') - 1);
  }
  [[nodiscard]] std::string uri() const override { return "triton+" + uri_; }
  std::vector<std::string> sql(const std::string& text) override { return split_lines(pg_.psql(text, name_)); }

 private:
  test::Postgres& pg_;
  std::string uri_;
  std::string name_;
};

// --- the scenarios, run on both databases ------------------------------------------------

const std::string shard0 = "shardId-000000000000";
const std::string shard1 = "shardId-000000000001";

void rows_triton_wrote_are_loaded(Database& db) {
  const std::string s1 = digits(56, 1);
  const std::string s2 = digits(56, 2);
  db.triton_checkpoint("store", "events_v3", shard0, digits(56, 9));
  db.triton_checkpoint("store", "events_v3", shard0, s1, "1436553581");  // the update path
  db.triton_checkpoint("store", "events_v3", shard1, s2, "1436553590");
  db.triton_checkpoint("other", "events_v3", shard0, digits(56, 3));
  db.triton_checkpoint("store", "orders", shard0, digits(56, 4));

  auto store = open_checkpoint_store(db.uri());
  EXPECT_EQ(store->load({"store", "events_v3", shard0}), seq(s1));
  EXPECT_EQ(store->load({"store", "events_v3", "shardId-000000000009"}), std::nullopt);
  const auto all = store->load_all("store", "events_v3");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at(shard0), seq(s1));
  EXPECT_EQ(all.at(shard1), seq(s2));

  const auto listed = store->list("store");
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].stream, "events_v3");
  EXPECT_EQ(listed[0].shard_id, shard0);
  EXPECT_EQ(listed[0].updated, std::chrono::system_clock::time_point(1436553581s));
  EXPECT_EQ(listed[1].shard_id, shard1);
  EXPECT_EQ(listed[1].updated, std::chrono::system_clock::time_point(1436553590s));
  EXPECT_EQ(listed[2].stream, "orders");
  EXPECT_EQ(listed[2].position, seq(digits(56, 4)));
}

void rows_kclpp_wrote_are_read_by_triton(Database& db) {
  const std::string s1 = digits(56, 5);
  const auto before = now_s();
  {
    auto store = open_checkpoint_store(db.uri());  // creates the table as Triton would
    store->save({"store", "events_v3", shard0}, seq(digits(56, 1)));
    store->save({"store", "events_v3", shard0}, seq(s1));  // the update path of the upsert
    store->save({"store", "events_v3", shard1}, seq(digits(56, 6)));
  }
  EXPECT_EQ(db.triton_last("store", "events_v3", shard0), s1);
  EXPECT_EQ(db.triton_last("store", "events_v3", shard1), digits(56, 6));
  EXPECT_EQ(db.triton_last("store", "orders", shard0), "");
  const auto stats = db.sql(fill(triton_stats, {"store"}));
  ASSERT_EQ(stats.size(), 2u);
  for (const auto& row : stats) {
    const auto updated = std::stoll(row.substr(0, row.find('|')));
    EXPECT_GE(updated, before);
    EXPECT_LE(updated, now_s() + 1);
    EXPECT_NE(row.find("|events_v3|shardId-00000000000"), std::string::npos) << row;
  }
  // Triton's own write path works on kclpp's rows, and kclpp reads the result.
  db.triton_checkpoint("store", "events_v3", shard0, digits(56, 7));
  EXPECT_EQ(open_checkpoint_store(db.uri())->load({"store", "events_v3", shard0}), seq(digits(56, 7)));
}

void sub_sequence_and_shard_end_round_trip(Database& db) {
  const std::string s1 = digits(56, 1);
  {
    auto store = open_checkpoint_store(db.uri());
    store->save({"store", "s", shard0}, seq(s1, 7));
    EXPECT_EQ(store->load({"store", "s", shard0}), seq(s1, 7));
    store->save({"store", "s", shard1}, seq(digits(56, 2)));
    store->save({"store", "s", shard1}, ExtendedSequenceNumber(Sentinel::ShardEnd));
    // A shard that ends before anything was checkpointed: no row Triton could read.
    store->save({"store", "s", "shardId-000000000002"}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  }
  auto store = open_checkpoint_store(db.uri());  // a new connection sees the committed rows
  EXPECT_EQ(store->load({"store", "s", shard0}), seq(s1, 7));
  EXPECT_EQ(store->load({"store", "s", shard1}), ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_EQ(store->load({"store", "s", "shardId-000000000002"}), ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_EQ(store->load_all("store", "s").size(), 3u);
  EXPECT_EQ(store->list("store").size(), 3u);
  // Triton sees valid rows: the aggregate's sequence number, and the ended shard's last
  // real sequence number (it resumes AFTER it and finds nothing more).
  EXPECT_EQ(db.triton_last("store", "s", shard0), s1);
  EXPECT_EQ(db.triton_last("store", "s", shard1), digits(56, 2));
  EXPECT_EQ(db.triton_last("store", "s", "shardId-000000000002"), "");
  EXPECT_EQ(db.sql("SELECT count(*) FROM triton_checkpoint"), std::vector<std::string>{"2"});
  // Back from SHARD_END to a number (any value is accepted).
  store->save({"store", "s", shard1}, seq(digits(56, 3), 1));
  EXPECT_EQ(store->load({"store", "s", shard1}), seq(digits(56, 3), 1));
  EXPECT_EQ(db.triton_last("store", "s", shard1), digits(56, 3));
}

void triton_update_after_kclpp_wins(Database& db) {
  auto store = open_checkpoint_store(db.uri());
  store->save({"store", "s", shard0}, seq(digits(56, 1)));
  store->save({"store", "s", shard0}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  store->save({"store", "s", shard1}, seq(digits(56, 2), 5));
  ASSERT_EQ(store->load({"store", "s", shard0}), ExtendedSequenceNumber(Sentinel::ShardEnd));
  // A Triton process (knowing nothing of SHARD_END or sub-sequences) moves both rows on.
  db.triton_checkpoint("store", "s", shard0, digits(56, 8));
  db.triton_checkpoint("store", "s", shard1, digits(56, 9));
  EXPECT_EQ(store->load({"store", "s", shard0}), seq(digits(56, 8)));
  EXPECT_EQ(store->load({"store", "s", shard1}), seq(digits(56, 9)));
  const auto all = store->load_all("store", "s");
  EXPECT_EQ(all.at(shard0), seq(digits(56, 8)));
  EXPECT_EQ(all.at(shard1), seq(digits(56, 9)));
  // And if Triton's row disappears, a stale SHARD_END does not come back either.
  db.sql("DELETE FROM triton_checkpoint WHERE shard = '" + shard0 + "'");
  EXPECT_EQ(store->load({"store", "s", shard0}), std::nullopt);
}

void second_claim_is_refused_until_the_first_is_released(Database& db) {
  auto store = open_checkpoint_store(db.uri());
  auto first = store->claim("store", "events_v3");
  EXPECT_THROW((void)store->claim("store", "events_v3"), StoreError);
  auto other = open_checkpoint_store(db.uri());
  EXPECT_THROW((void)other->claim("store", "events_v3"), StoreError);
  EXPECT_NE(other->claim("store", "orders"), nullptr);
  first.reset();
  EXPECT_NE(other->claim("store", "events_v3"), nullptr);
}

// The schema Triton created is left as it was; ours sits beside it.
void table_layout_is_triton_s(Database& db, const std::string& columns_sql, const std::string& expected) {
  db.sql(triton_ddl);
  const auto before = db.sql(columns_sql);
  auto store = open_checkpoint_store(db.uri());
  store->save({"store", "s", shard0}, seq("5", 2));
  EXPECT_EQ(db.sql(columns_sql), before);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before.front(), expected);
  // Triton's positional INSERT still works beside kclpp's rows.
  db.sql(fill(triton_insert, {"store", "s", shard1, "77", std::to_string(now_s())}));
  EXPECT_EQ(store->load({"store", "s", shard1}), seq("77"));
}

// --- SQLite --------------------------------------------------------------------------------

class TritonSqlite : public ::testing::Test {
 protected:
  void SetUp() override {
    KCLPP_REQUIRE_PRESENT(test::program_unavailable("sqlite3"));
    db_ = std::make_unique<SqliteDatabase>(dir_.path() / "triton-s3.db");
  }
  test::TempDir dir_{"kclpp-triton"};
  std::unique_ptr<SqliteDatabase> db_;
};

TEST_F(TritonSqlite, RowsTritonWroteAreLoaded) {
  const Deadline deadline(30s);
  rows_triton_wrote_are_loaded(*db_);
}

TEST_F(TritonSqlite, PythonsFloatUpdatedIsReadAsSeconds) {
  const Deadline deadline(30s);
  // py-triton stores time.time(); SQLite keeps the REAL.
  db_->triton_checkpoint("store", "s", shard0, "123", "1436553581.75");
  const auto listed = open_checkpoint_store(db_->uri())->list("store");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].updated, std::chrono::system_clock::time_point(1436553581s));
}

TEST_F(TritonSqlite, RowsKclppWroteAreReadByTriton) {
  const Deadline deadline(30s);
  rows_kclpp_wrote_are_read_by_triton(*db_);
}

TEST_F(TritonSqlite, SubSequenceAndShardEndRoundTrip) {
  const Deadline deadline(30s);
  sub_sequence_and_shard_end_round_trip(*db_);
}

TEST_F(TritonSqlite, TritonUpdateAfterKclppShardEndWins) {
  const Deadline deadline(30s);
  triton_update_after_kclpp_wins(*db_);
}

TEST_F(TritonSqlite, SecondClaimIsRefusedUntilTheFirstIsReleased) {
  const Deadline deadline(30s);
  second_claim_is_refused_until_the_first_is_released(*db_);
}

TEST_F(TritonSqlite, TritonsTableIsNotAltered) {
  const Deadline deadline(30s);
  table_layout_is_triton_s(
      *db_,
      "SELECT group_concat(name || ':' || type || ':' || \"notnull\" || ':' || pk, ',') "
      "FROM pragma_table_info('triton_checkpoint')",
      "client:VARCHAR(255):1:1,stream:VARCHAR(255):1:2,shard:VARCHAR(255):1:3,"
      "seq_num:VARCHAR(255):1:0,updated:INTEGER:1:0");
}

TEST_F(TritonSqlite, KclppLayoutIsUntouchedByTheTritonOne) {
  const Deadline deadline(30s);
  // The same file may hold both layouts; each reads its own tables.
  const std::string path = dir_.file("triton-s3.db");
  open_checkpoint_store("sqlite:" + path)->save({"store", "s", shard0}, seq("1"));
  open_checkpoint_store("triton+sqlite:" + path)->save({"store", "s", shard0}, seq("2"));
  EXPECT_EQ(open_checkpoint_store("sqlite:" + path)->load({"store", "s", shard0}), seq("1"));
  EXPECT_EQ(open_checkpoint_store("triton+sqlite:" + path)->load({"store", "s", shard0}), seq("2"));
}

// --- Postgres ------------------------------------------------------------------------------

class TritonPostgres : public test::PostgresTest {
 protected:
  PostgresDatabase fresh() { return PostgresDatabase(pg(), pg().create_database()); }
};

TEST_F(TritonPostgres, RowsTritonWroteAreLoaded) {
  const Deadline deadline(30s);
  auto db = fresh();
  rows_triton_wrote_are_loaded(db);
}

TEST_F(TritonPostgres, RowsKclppWroteAreReadByTriton) {
  const Deadline deadline(30s);
  auto db = fresh();
  rows_kclpp_wrote_are_read_by_triton(db);
}

TEST_F(TritonPostgres, SubSequenceAndShardEndRoundTrip) {
  const Deadline deadline(30s);
  auto db = fresh();
  sub_sequence_and_shard_end_round_trip(db);
}

TEST_F(TritonPostgres, TritonUpdateAfterKclppShardEndWins) {
  const Deadline deadline(30s);
  auto db = fresh();
  triton_update_after_kclpp_wins(db);
}

TEST_F(TritonPostgres, SecondClaimIsRefusedUntilTheFirstIsReleased) {
  const Deadline deadline(30s);
  auto db = fresh();
  second_claim_is_refused_until_the_first_is_released(db);
}

TEST_F(TritonPostgres, TritonsTableIsNotAltered) {
  const Deadline deadline(30s);
  auto db = fresh();
  table_layout_is_triton_s(
      db,
      "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ',' "
      "ORDER BY ordinal_position) FROM information_schema.columns "
      "WHERE table_name = 'triton_checkpoint'",
      "client:character varying:NO,stream:character varying:NO,shard:character varying:NO,"
      "seq_num:character varying:NO,updated:integer:NO");
}

TEST_F(TritonPostgres, ConcurrentSavesStayConsistent) {
  const Deadline deadline(60s);
  auto db = fresh();
  auto store = open_checkpoint_store(db.uri());
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 1; i <= 50; ++i) {
        store->save({"store", "s", "shard-" + std::to_string(t)}, seq(std::to_string(1000 + i), i));
      }
      store->save({"store", "s", "shard-" + std::to_string(t)}, ExtendedSequenceNumber(Sentinel::ShardEnd));
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(store->load({"store", "s", "shard-" + std::to_string(t)}), ExtendedSequenceNumber(Sentinel::ShardEnd));
    EXPECT_EQ(db.triton_last("store", "s", "shard-" + std::to_string(t)), "1050");
  }
}

TEST_F(TritonPostgres, ReadOnlyRoleReadsTritonsTable) {
  const Deadline deadline(30s);
  const std::string uri = pg().create_database();
  PostgresDatabase db(pg(), uri);
  const std::string role = "monitor_" + uri.substr(uri.rfind('/') + 1, uri.find('?') - uri.rfind('/') - 1);
  db.triton_checkpoint("store", "s", shard0, "41");
  db.sql("CREATE ROLE " + role + " LOGIN; GRANT SELECT ON triton_checkpoint TO " + role +
         "; REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  std::string monitor_uri = "triton+" + uri;
  monitor_uri.replace(monitor_uri.find("kclpp@"), 6, role + "@");
  {
    // No side table, no right to create it: the main rows still read (`kclpp stats`).
    auto monitor = open_checkpoint_store(monitor_uri);
    const auto listed = monitor->list("store");
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].position, seq("41"));
    EXPECT_THROW(monitor->save({"store", "s", shard0}, seq("42")), StoreError);
  }
  EXPECT_EQ(db.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'kclpp_triton_checkpoint_ext'"),
            std::vector<std::string>{"0"});
  // kclpp (allowed to create) ends the shard; without SELECT on the side table the monitor
  // still sees the main row, with it the SHARD_END.
  open_checkpoint_store(db.uri())->save({"store", "s", shard0}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_EQ(open_checkpoint_store(monitor_uri)->load({"store", "s", shard0}), seq("41"));
  db.sql("GRANT SELECT ON kclpp_triton_checkpoint_ext TO " + role);
  EXPECT_EQ(open_checkpoint_store(monitor_uri)->load({"store", "s", shard0}),
            ExtendedSequenceNumber(Sentinel::ShardEnd));
}

// --- list() of every store (kclpp's layout), for `kclpp stats` ------------------------------

void list_returns_every_stream_of_one_application(const std::string& uri) {
  auto store = open_checkpoint_store(uri);
  const auto before = std::chrono::system_clock::now() - 2s;
  store->save({"app", "b-stream", shard1}, seq("12"));
  store->save({"app", "a-stream", shard0}, seq("11", 3));
  store->save({"app", "b-stream", shard0}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  store->save({"other", "a-stream", shard0}, seq("99"));
  const auto after = std::chrono::system_clock::now() + 2s;
  const auto listed = store->list("app");
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].stream, "a-stream");
  EXPECT_EQ(listed[0].position, seq("11", 3));
  EXPECT_EQ(listed[1].stream, "b-stream");
  EXPECT_EQ(listed[1].shard_id, shard0);
  EXPECT_EQ(listed[1].position, ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_EQ(listed[2].shard_id, shard1);
  for (const auto& c : listed) {
    EXPECT_GE(c.updated, before) << c.shard_id;
    EXPECT_LE(c.updated, after) << c.shard_id;
  }
  EXPECT_TRUE(store->list("nobody").empty());
}

TEST(CheckpointStoreList, GivesEveryStreamOfOneApplicationInMemoryAndSqlite) {
  const Deadline deadline(30s);
  list_returns_every_stream_of_one_application("memory:");
  const test::TempDir dir("kclpp-list");
  list_returns_every_stream_of_one_application("sqlite:" + dir.file("a.db"));
  list_returns_every_stream_of_one_application("triton+sqlite:" + dir.file("b.db"));
}

TEST_F(TritonPostgres, ListGivesEveryStreamOfOneApplicationInBothLayouts) {
  const Deadline deadline(30s);
  list_returns_every_stream_of_one_application(pg().create_database());
  list_returns_every_stream_of_one_application("triton+" + pg().create_database());
}

TEST(CheckpointStoreUri, TritonDbUrlsMapToTheTritonLayout) {
  EXPECT_EQ(triton_db_uri("sqlite://triton.db"), "triton+sqlite:triton.db");
  EXPECT_EQ(triton_db_uri("sqlite:///var/lib/triton.db"), "triton+sqlite:/var/lib/triton.db");
  EXPECT_EQ(triton_db_uri("postgres://u@h/db"), "triton+postgres://u@h/db");
  EXPECT_EQ(triton_db_uri("PostgreSQL://u@h/db"), "triton+PostgreSQL://u@h/db");
  EXPECT_EQ(triton_db_uri("sqlite:kclpp.db"), "sqlite:kclpp.db");
  EXPECT_EQ(triton_db_uri("triton+sqlite:x.db"), "triton+sqlite:x.db");
  EXPECT_EQ(triton_db_uri("memory:"), "memory:");
  EXPECT_THROW((void)open_checkpoint_store("triton+sqlite:"), ConfigError);
  EXPECT_THROW((void)open_checkpoint_store("triton+mysql://x"), ConfigError);
}

}  // namespace
}  // namespace kclpp::native
