// Checkpoint stores with no network: the memory store and SQLite files. The same contract
// runs against Postgres in tests/integration/checkpoint_store_test.cpp.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/error.hpp"
#include "../store_test_support.hpp"

namespace kclpp::native {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace store_test;

// --- the contract, for memory and SQLite -----------------------------------------------

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  // A fresh store URI of the kind under test.
  std::string fresh_uri() {
    if (GetParam() == "memory") return "memory:";
    return "sqlite:" + (dir_.path() / ("store-" + std::to_string(++n_) + ".db")).string();
  }
  std::unique_ptr<CheckpointStore> open(const std::string& uri) { return open_checkpoint_store(uri); }

  TempDir dir_;
  int n_ = 0;
};

TEST_P(StoreContract, RoundTripsLongNumbersSubSequencesAndShardEnd) {
  const Deadline deadline(20s);
  const std::string uri = fresh_uri();
  const auto p56 = seq(digits(56, 1), 0);
  const auto p129 = seq(digits(129, 2), 17);
  const auto p_max_sub = seq(digits(56, 3), INT64_MAX);
  const ExtendedSequenceNumber end(Sentinel::ShardEnd);
  const auto check = [&](CheckpointStore& store) {
    EXPECT_EQ(store.load({"app", "stream", "shardId-000000000000"}), p56);
    EXPECT_EQ(store.load({"app", "stream", "shardId-000000000001"}), p129);
    EXPECT_EQ(store.load({"app", "stream", "shardId-000000000002"}), p_max_sub);
    const auto e = store.load({"app", "stream", "shardId-000000000003"});
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->sentinel(), Sentinel::ShardEnd);
    EXPECT_EQ(store.load({"app", "stream", "shardId-000000000001"})->sub_sequence_number(), 17);
    EXPECT_EQ(store.load({"app", "stream", "shardId-000000000001"})->str().size(), 129u);
  };
  auto store = open(uri);
  store->save({"app", "stream", "shardId-000000000000"}, p56);
  store->save({"app", "stream", "shardId-000000000001"}, p129);
  store->save({"app", "stream", "shardId-000000000002"}, p_max_sub);
  store->save({"app", "stream", "shardId-000000000003"}, end);
  check(*store);
  if (GetParam() == "sqlite") {
    store.reset();
    auto reopened = open(uri);
    check(*reopened);
  }
}

TEST_P(StoreContract, UnknownShardLoadsNothing) {
  const Deadline deadline(10s);
  auto store = open(fresh_uri());
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000000"}), std::nullopt);
  store->save({"app", "stream", "shardId-000000000000"}, seq("1"));
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000001"}), std::nullopt);
  EXPECT_EQ(store->load({"app", "other", "shardId-000000000000"}), std::nullopt);
  EXPECT_EQ(store->load({"other", "stream", "shardId-000000000000"}), std::nullopt);
  EXPECT_TRUE(store->load_all("app", "nothing-here").empty());
}

TEST_P(StoreContract, LoadAllReturnsOneApplicationsStream) {
  const Deadline deadline(10s);
  auto store = open(fresh_uri());
  store->save({"app", "s1", "shard-a"}, seq("11"));
  store->save({"app", "s1", "shard-b"}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  store->save({"app", "s2", "shard-a"}, seq("21"));
  store->save({"app2", "s1", "shard-a"}, seq("31"));
  // A prefix of another application must not leak in.
  store->save({"ap", "s1", "shard-c"}, seq("41"));
  const auto all = store->load_all("app", "s1");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("shard-a"), seq("11"));
  EXPECT_EQ(all.at("shard-b").sentinel(), Sentinel::ShardEnd);
}

TEST_P(StoreContract, SaveOverwritesWithAnyValue) {
  const Deadline deadline(10s);
  auto store = open(fresh_uri());
  const CheckpointKey key{"app", "stream", "shardId-000000000007"};
  store->save(key, seq("500", 3));
  store->save(key, seq("900", 0));
  EXPECT_EQ(store->load(key), seq("900", 0));
  store->save(key, seq("100", 2));  // backwards too: range rules are the Checkpointer's
  EXPECT_EQ(store->load(key), seq("100", 2));
  store->save(key, ExtendedSequenceNumber(Sentinel::ShardEnd));
  EXPECT_EQ(store->load(key)->sentinel(), Sentinel::ShardEnd);
  EXPECT_EQ(store->load_all("app", "stream").size(), 1u);
}

TEST_P(StoreContract, ConcurrentSavesFromEightThreads) {
  const Deadline deadline(60s);
  auto store = open(fresh_uri());
  constexpr int threads = 8;
  constexpr int saves = 50;
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mutex;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        for (int i = 1; i <= saves; ++i) {
          const auto value = seq(digits(56, static_cast<unsigned>(t)).substr(0, 40) + std::to_string(1000 + i), i);
          store->save({"app", "stream", "shard-" + std::to_string(t)}, value);
          store->save({"app", "stream", "shared"}, value);
          if (i % 10 == 0) (void)store->load_all("app", "stream");
        }
      } catch (const std::exception& e) {
        const std::lock_guard lock(failure_mutex);
        if (failures++ == 0) first_failure = e.what();
      }
    });
  }
  for (auto& th : pool) th.join();
  ASSERT_EQ(failures.load(), 0) << first_failure;
  const auto all = store->load_all("app", "stream");
  ASSERT_EQ(all.size(), static_cast<std::size_t>(threads + 1));
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(all.at("shard-" + std::to_string(t)),
              seq(digits(56, static_cast<unsigned>(t)).substr(0, 40) + std::to_string(1000 + saves), saves));
  }
  EXPECT_GE(all.at("shared").sub_sequence_number(), 1);
}

TEST_P(StoreContract, SecondClaimInTheSameProcessIsRefused) {
  const Deadline deadline(10s);
  const std::string uri = fresh_uri();
  auto store = open(uri);
  auto first = store->claim("my-app", "my-stream");
  ASSERT_NE(first, nullptr);
  try {
    auto second = store->claim("my-app", "my-stream");
    FAIL() << "second claim succeeded";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(what.find("my-app"), std::string::npos) << what;
    EXPECT_NE(what.find("my-stream"), std::string::npos) << what;
    EXPECT_NE(what.find(GetParam() == "memory" ? "memory:" : uri), std::string::npos) << what;
    EXPECT_NE(what.find("pid " + std::to_string(::getpid())), std::string::npos) << what;
  }
  // Other streams and applications are independent.
  auto other_stream = store->claim("my-app", "other-stream");
  auto other_app = store->claim("other-app", "my-stream");
  // Released by the destructor.
  first.reset();
  EXPECT_NE(store->claim("my-app", "my-stream"), nullptr);
}

// A worker may drop its store before its claim: the claim goes on holding the application
// (SQLite: a store opened again on the same file is refused), and releasing it afterwards
// (which must not touch the destroyed store) frees the application for the next store.
TEST_P(StoreContract, ClaimOutlivesItsStore) {
  const Deadline deadline(10s);
  const std::string uri = fresh_uri();
  auto store = open(uri);
  auto claim = store->claim("app", "stream");
  store.reset();
  if (GetParam() == "sqlite") {  // every "memory:" store is a store of its own
    auto rival = open(uri);
    EXPECT_THROW((void)rival->claim("app", "stream"), StoreError) << "the claim ended with its store";
  }
  claim.reset();
  auto next = open(uri);
  EXPECT_NE(next->claim("app", "stream"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract, ::testing::Values("memory", "sqlite"),
                         [](const auto& param_info) { return param_info.param; });

// --- URIs --------------------------------------------------------------------------------

TEST(CheckpointStoreUri, UnknownSchemeIsAConfigErrorNamingItButNotThePassword) {
  const Deadline deadline(10s);
  try {
    (void)open_checkpoint_store("mysql://admin:hunter2@db.example:3306/x");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'mysql'"), std::string::npos) << what;
    EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
  }
  EXPECT_THROW((void)open_checkpoint_store("no-scheme-at-all"), ConfigError);
  EXPECT_THROW((void)open_checkpoint_store("sqlite:"), ConfigError);
  EXPECT_THROW((void)open_checkpoint_store("memory:extra"), ConfigError);
  EXPECT_THROW((void)open_checkpoint_store(""), ConfigError);
}

TEST(CheckpointStoreUri, MalformedPostgresUriIsAConfigErrorWithoutThePassword) {
  const Deadline deadline(10s);
  try {
    (void)open_checkpoint_store("postgresql://u:hunter2@localhost:5432/db?nonsense_option=1");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
}

TEST(CheckpointStoreUri, SchemeIsCaseInsensitiveAndRelativeSqlitePathsWork) {
  const Deadline deadline(10s);
  TempDir dir;
  const fs::path old = fs::current_path();
  fs::current_path(dir.path());
  try {
    auto store = open_checkpoint_store("SQLite:relative.db");
    store->save({"a", "s", "shard"}, seq("5"));
    store.reset();
    fs::current_path(old);
    EXPECT_TRUE(fs::exists(dir.path() / "relative.db"));
    auto again = open_checkpoint_store("sqlite:" + (dir.path() / "relative.db").string());
    EXPECT_EQ(again->load({"a", "s", "shard"}), seq("5"));
  } catch (...) {
    fs::current_path(old);
    throw;
  }
}

// --- SQLite specifics --------------------------------------------------------------------

// Runs SQL on a database file with plain SQLite, outside kclpp.
std::vector<std::string> sql_column(const fs::path& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::vector<std::string> out;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("sqlite3_open failed");
  }
  char* error = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* vec, int, char** values, char**) {
        static_cast<std::vector<std::string>*>(vec)->emplace_back(values[0] ? values[0] : "NULL");
        return 0;
      },
      &out, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  if (rc != SQLITE_OK) throw std::runtime_error("sqlite3_exec: " + message);
  return out;
}

TEST(SqliteStore, CreatesVersionedSchemaWithLeaseColumnsInWalMode) {
  const Deadline deadline(10s);
  TempDir dir;
  const auto path = dir.path() / "c.db";
  auto store = open_checkpoint_store("sqlite:" + path.string());
  store->save({"a", "s", "shard"}, seq("5"));
  store.reset();
  EXPECT_EQ(sql_column(path, "SELECT version FROM kclpp_schema_version"),
            std::vector<std::string>{"2"});
  const auto columns = sql_column(path, "SELECT name FROM pragma_table_info('kclpp_checkpoints')");
  for (const char* c : {"application", "stream", "shard_id", "sequence_number",
                        "sub_sequence_number", "updated_at", "lease_owner", "lease_counter",
                        "lease_expires_at", "pending_checkpoint", "pending_sub_sequence_number",
                        "pending_checkpoint_state", "owner_switches_since_checkpoint",
                        "parent_shard_ids", "child_shard_ids", "starting_hash_key",
                        "ending_hash_key", "throughput_kbps", "checkpoint_owner"}) {
    EXPECT_NE(std::find(columns.begin(), columns.end(), c), columns.end()) << c;
  }
  EXPECT_EQ(sql_column(path, "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  EXPECT_EQ(sql_column(path, "SELECT lease_owner FROM kclpp_checkpoints"),
            std::vector<std::string>{"NULL"});
  EXPECT_EQ(sql_column(path, "SELECT count(*) FROM kclpp_checkpoints WHERE updated_at LIKE '20%Z'"),
            std::vector<std::string>{"1"});
}

TEST(SqliteStore, NewerSchemaVersionIsRefusedNamingBothVersions) {
  const Deadline deadline(10s);
  TempDir dir;
  const auto path = dir.path() / "c.db";
  (void)open_checkpoint_store("sqlite:" + path.string());
  sql_column(path, "UPDATE kclpp_schema_version SET version = 42");
  try {
    (void)open_checkpoint_store("sqlite:" + path.string());
    FAIL() << "opened a newer schema";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(what.find("42"), std::string::npos) << what;
    EXPECT_NE(what.find("version 2"), std::string::npos) << what;
    EXPECT_NE(what.find(path.string()), std::string::npos) << what;
  }
}

TEST(SqliteStore, NotADatabaseOrMissingDirectoryIsAStoreErrorNamingThePath) {
  const Deadline deadline(10s);
  TempDir dir;
  const auto text = dir.path() / "notes.txt";
  {
    std::FILE* f = std::fopen(text.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not a database, just some text that is long enough to matter\n", f);
    std::fclose(f);
  }
  try {
    (void)open_checkpoint_store("sqlite:" + text.string());
    FAIL() << "opened a text file";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(text.string()), std::string::npos) << e.what();
  }
  const auto missing = dir.path() / "no" / "such" / "dir" / "c.db";
  try {
    (void)open_checkpoint_store("sqlite:" + missing.string());
    FAIL() << "opened in a missing directory";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
}

TEST(SqliteStore, CorruptRowIsAStoreErrorNotACrash) {
  const Deadline deadline(10s);
  TempDir dir;
  const auto path = dir.path() / "c.db";
  open_checkpoint_store("sqlite:" + path.string())->save({"a", "s", "shard"}, seq("5"));
  sql_column(path, "UPDATE kclpp_checkpoints SET sequence_number = 'garbage'");
  auto store = open_checkpoint_store("sqlite:" + path.string());
  EXPECT_THROW((void)store->load({"a", "s", "shard"}), StoreError);
  EXPECT_THROW((void)store->load_all("a", "s"), StoreError);
}

// The child saves increasing checkpoints and reports each one after save() returned; the
// parent SIGKILLs it mid-stream. Every reported checkpoint must be on disk.
TEST(SqliteStore, CheckpointSurvivesSigkillRightAfterSaveReturns) {
  const Deadline deadline(60s);
  TempDir dir;
  const std::string uri = "sqlite:" + (dir.path() / "c.db").string();
  for (int round = 0; round < 3; ++round) {
    Child child([&](int fd) {
      auto store = open_checkpoint_store(uri);
      for (int i = 1;; ++i) {
        store->save({"app", "stream", "shard"}, seq(digits(56, 9).substr(0, 50) + std::to_string(100000 + i), i));
        const std::string line = std::to_string(i) + "\n";
        write_all(fd, line);
      }
    });
    // Let it get going (at least 20 saves), then kill it without warning.
    const auto reports = child.kill_after(20 + round * 15);
    ASSERT_TRUE(reports.last) << "the child reported nothing or an error: " << reports.text;
    const int last_reported = *reports.last;
    ASSERT_GE(last_reported, 20);
    auto store = open_checkpoint_store(uri);
    const auto loaded = store->load({"app", "stream", "shard"});
    ASSERT_TRUE(loaded.has_value());
    // The row may be one save ahead of what was reported (killed between save and write).
    EXPECT_GE(loaded->sub_sequence_number(), last_reported) << "round " << round;
    EXPECT_LE(loaded->sub_sequence_number(), last_reported + 1) << "round " << round;
    EXPECT_EQ(loaded->str(), digits(56, 9).substr(0, 50) + std::to_string(100000 + loaded->sub_sequence_number()));
  }
}

TEST(SqliteStore, ClaimHeldByAnotherProcessNamesItsPidAndIsFreedBySigkill) {
  const Deadline deadline(30s);
  TempDir dir;
  const std::string path = (dir.path() / "c.db").string();
  // The child opens the store before the parent does: SQLite connections must not cross
  // a fork, so the parent has none yet.
  Child child([&](int fd) {
    auto store = open_checkpoint_store("sqlite:" + path);
    auto claim = store->claim("billing", "orders");
    write_all(fd, "C");
    for (;;) ::pause();
  });
  ASSERT_EQ(child.read(1), "C");
  auto store = open_checkpoint_store("sqlite:" + path);
  try {
    auto claim = store->claim("billing", "orders");
    FAIL() << "claimed while another process holds it";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(what.find("billing"), std::string::npos) << what;
    EXPECT_NE(what.find("orders"), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("held by pid " + std::to_string(child.pid())), std::string::npos) << what;
  }
  // A different stream is free meanwhile.
  EXPECT_NE(store->claim("billing", "refunds"), nullptr);
  child.kill();  // SIGKILL: no destructor runs; the kernel drops the lock
  auto claim = store->claim("billing", "orders");
  EXPECT_NE(claim, nullptr);
}

TEST(SqliteStore, ProcessesCreatingTheSameNewDatabaseAtOnceAllSucceed) {
  const Deadline deadline(60s);
  TempDir dir;
  const std::string uri = "sqlite:" + (dir.path() / "new.db").string();
  constexpr int processes = 6;
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  std::vector<std::unique_ptr<Child>> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(std::make_unique<Child>([&, p](int fd) {
      ::close(go[1]);
      char byte = 0;
      (void)!::read(go[0], &byte, 1);  // all start when the parent closes the pipe
      auto store = open_checkpoint_store(uri);
      store->save({"app", "stream", "shard-" + std::to_string(p)}, seq(std::to_string(p + 1)));
      write_all(fd, "K");
    }));
  }
  ::close(go[0]);
  ::close(go[1]);  // go
  for (auto& c : children) {
    const std::string got = c->read_exact(1, 30s);
    EXPECT_EQ(got.substr(0, 1), "K") << c->read_to_eof(1s) << got;
    EXPECT_EQ(c->wait(), 0);
  }
  auto store = open_checkpoint_store(uri);
  EXPECT_EQ(store->load_all("app", "stream").size(), static_cast<std::size_t>(processes));
  EXPECT_EQ(sql_column(dir.path() / "new.db", "SELECT count(*) FROM kclpp_schema_version"),
            std::vector<std::string>{"1"});
}

}  // namespace
}  // namespace kclpp::native
