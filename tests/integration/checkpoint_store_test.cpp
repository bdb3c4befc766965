// Checkpoint stores against real databases: a Postgres started by the fixture (one server
// per suite). SQLite files and the memory store are covered in tests/unit.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/processor/error.hpp"
#include "postgres_fixture.hpp"
#include "../store_test_support.hpp"

namespace kclpp::native {
namespace {

using namespace std::chrono_literals;
using namespace store_test;

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // nothing listens there now
  return ntohs(addr.sin_port);
}

class PostgresStore : public kclpp::test::PostgresTest {};

TEST_F(PostgresStore, RoundTripsLongNumbersSubSequencesAndShardEnd) {
  const Deadline deadline(30s);
  const std::string uri = pg().create_database();
  const auto p56 = seq(digits(56, 1), 0);
  const auto p129 = seq(digits(129, 2), 17);
  const auto p_max_sub = seq(digits(56, 3), INT64_MAX);
  {
    auto store = open_checkpoint_store(uri);
    store->save({"app", "stream", "shardId-000000000000"}, p56);
    store->save({"app", "stream", "shardId-000000000001"}, p129);
    store->save({"app", "stream", "shardId-000000000002"}, p_max_sub);
    store->save({"app", "stream", "shardId-000000000003"}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  }
  auto store = open_checkpoint_store(uri);  // a new connection sees the committed rows
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000000"}), p56);
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000001"}), p129);
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000002"}), p_max_sub);
  EXPECT_EQ(store->load({"app", "stream", "shardId-000000000003"})->sentinel(), Sentinel::ShardEnd);
  EXPECT_EQ(pg().psql("SELECT sequence_number FROM kclpp_checkpoints WHERE shard_id = "
                      "'shardId-000000000003'",
                      uri.substr(uri.rfind('/') + 1, uri.find('?') - uri.rfind('/') - 1)),
            "SHARD_END");
}

TEST_F(PostgresStore, UnknownShardLoadAllAndOverwrite) {
  const Deadline deadline(30s);
  auto store = open_checkpoint_store(pg().create_database());
  EXPECT_EQ(store->load({"app", "s1", "shard-a"}), std::nullopt);
  EXPECT_TRUE(store->load_all("app", "s1").empty());
  store->save({"app", "s1", "shard-a"}, seq("11", 1));
  store->save({"app", "s1", "shard-b"}, seq("12"));
  store->save({"app", "s2", "shard-a"}, seq("21"));
  store->save({"app2", "s1", "shard-a"}, seq("31"));
  store->save({"app", "s1", "shard-a"}, seq("5", 2));  // overwrite, even backwards
  EXPECT_EQ(store->load({"app", "s1", "shard-c"}), std::nullopt);
  const auto all = store->load_all("app", "s1");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("shard-a"), seq("5", 2));
  EXPECT_EQ(all.at("shard-b"), seq("12"));
}

TEST_F(PostgresStore, CreatesVersionedSchemaWithLeaseColumns) {
  const Deadline deadline(30s);
  const std::string uri = pg().create_database();
  const std::string db = uri.substr(uri.rfind('/') + 1, uri.find('?') - uri.rfind('/') - 1);
  auto store = open_checkpoint_store(uri);
  store->save({"a", "s", "shard"}, seq("5"));
  EXPECT_EQ(pg().psql("SELECT version FROM kclpp_schema_version", db), "2");
  EXPECT_EQ(pg().psql("SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) "
                      "FROM information_schema.columns WHERE table_name = 'kclpp_checkpoints'",
                      db),
            "application:text,checkpoint_owner:text,child_shard_ids:text,ending_hash_key:text,"
            "lease_counter:bigint,lease_expires_at:timestamp with time zone,"
            "lease_owner:text,owner_switches_since_checkpoint:bigint,parent_shard_ids:text,"
            "pending_checkpoint:text,pending_checkpoint_state:bytea,pending_sub_sequence_number:bigint,"
            "sequence_number:text,shard_id:text,starting_hash_key:text,stream:text,"
            "sub_sequence_number:bigint,throughput_kbps:text,updated_at:timestamp with time zone");
  EXPECT_EQ(pg().psql("SELECT count(*) FROM kclpp_checkpoints WHERE lease_owner IS NULL "
                      "AND updated_at > now() - interval '1 minute'",
                      db),
            "1");
}

TEST_F(PostgresStore, NewerSchemaVersionIsRefusedNamingBothVersions) {
  const Deadline deadline(30s);
  const std::string uri = pg().create_database();
  const std::string db = uri.substr(uri.rfind('/') + 1, uri.find('?') - uri.rfind('/') - 1);
  (void)open_checkpoint_store(uri);
  pg().psql("UPDATE kclpp_schema_version SET version = 42", db);
  try {
    (void)open_checkpoint_store(uri);
    FAIL() << "opened a newer schema";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(what.find("42"), std::string::npos) << what;
    EXPECT_NE(what.find("version 2"), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1"), std::string::npos) << what;
  }
}

TEST_F(PostgresStore, ConnectionsCreatingTheSameNewSchemaAtOnceAllSucceed) {
  const Deadline deadline(60s);
  const std::string uri = pg().create_database();
  constexpr int openers = 8;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::string> errors(openers);
  std::vector<std::thread> pool;
  for (int i = 0; i < openers; ++i) {
    pool.emplace_back([&, i] {
      ++ready;
      while (!go.load()) std::this_thread::yield();
      try {
        auto store = open_checkpoint_store(uri);
        store->save({"app", "stream", "shard-" + std::to_string(i)}, seq(std::to_string(i + 1)));
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  while (ready.load() < openers) std::this_thread::yield();
  go = true;
  for (auto& t : pool) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(open_checkpoint_store(uri)->load_all("app", "stream").size(),
            static_cast<std::size_t>(openers));
}

TEST_F(PostgresStore, ConcurrentSavesFromEightThreads) {
  const Deadline deadline(60s);
  auto store = open_checkpoint_store(pg().create_database());
  constexpr int threads = 8;
  constexpr int saves = 100;
  std::mutex failure_mutex;
  std::string first_failure;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        for (int i = 1; i <= saves; ++i) {
          const auto value = seq(digits(50, static_cast<unsigned>(t)) + std::to_string(100000 + i), i);
          store->save({"app", "stream", "shard-" + std::to_string(t)}, value);
          store->save({"app", "stream", "shared"}, value);
          if (i % 10 == 0) (void)store->load_all("app", "stream");
        }
      } catch (const std::exception& e) {
        const std::lock_guard lock(failure_mutex);
        if (first_failure.empty()) first_failure = e.what();
      }
    });
  }
  for (auto& th : pool) th.join();
  ASSERT_EQ(first_failure, "");
  const auto all = store->load_all("app", "stream");
  ASSERT_EQ(all.size(), static_cast<std::size_t>(threads + 1));
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(all.at("shard-" + std::to_string(t)),
              seq(digits(50, static_cast<unsigned>(t)) + std::to_string(100000 + saves), saves));
  }
}

TEST_F(PostgresStore, CheckpointSurvivesSigkillRightAfterSaveReturns) {
  const Deadline deadline(60s);
  const std::string uri = pg().create_database();
  (void)open_checkpoint_store(uri);  // schema first; the parent keeps no connection
  Child child([&](int fd) {
    auto store = open_checkpoint_store(uri);
    for (int i = 1;; ++i) {
      store->save({"app", "stream", "shard"}, seq(std::to_string(1000000 + i), i));
      write_all(fd, std::to_string(i) + "\n");
    }
  });
  const auto reports = child.kill_after(30);
  ASSERT_TRUE(reports.last) << "the child reported nothing or an error: " << reports.text;
  const int last_reported = *reports.last;
  ASSERT_GE(last_reported, 30);
  const auto loaded = open_checkpoint_store(uri)->load({"app", "stream", "shard"});
  ASSERT_TRUE(loaded.has_value());
  EXPECT_GE(loaded->sub_sequence_number(), last_reported);
  EXPECT_LE(loaded->sub_sequence_number(), last_reported + 1);
}

TEST_F(PostgresStore, ClaimIsExclusiveNamesTheHolderAndIsFreedBySigkill) {
  const Deadline deadline(60s);
  const std::string uri = pg().create_database();
  auto store = open_checkpoint_store(uri);
  {
    // In one process: a second claim conflicts too.
    auto first = store->claim("billing", "orders");
    try {
      auto second = store->claim("billing", "orders");
      FAIL() << "second claim succeeded";
    } catch (const StoreError& e) {
      EXPECT_EQ(e.retry(), Retry::No);
      EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(::getpid())), std::string::npos)
          << e.what();
    }
  }
  EXPECT_NE(store->claim("billing", "orders"), nullptr) << "not released by the destructor";

  Child child([&](int fd) {
    auto child_store = open_checkpoint_store(uri);
    auto claim = child_store->claim("billing", "orders");
    write_all(fd, "C");
    for (;;) ::pause();
  });
  ASSERT_EQ(child.read(1, 20s), "C");
  try {
    auto claim = store->claim("billing", "orders");
    FAIL() << "claimed while another process holds it";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_NE(what.find("billing"), std::string::npos) << what;
    EXPECT_NE(what.find("orders"), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1"), std::string::npos) << what;
    EXPECT_NE(what.find("kclpp worker pid " + std::to_string(child.pid())), std::string::npos) << what;
  }
  EXPECT_NE(store->claim("billing", "refunds"), nullptr);
  child.kill();
  // The server notices the dead client's closed socket and ends its session.
  std::unique_ptr<StoreClaim> claim;
  std::string last;
  const auto until = Clock::now() + 10s;
  while (claim == nullptr && Clock::now() < until) {
    try {
      claim = store->claim("billing", "orders");
    } catch (const StoreError& e) {
      last = e.what();
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_NE(claim, nullptr) << "still held after the holder was killed: " << last;
}

TEST_F(PostgresStore, UnreachableServerFailsFastNamingTheHostButNotThePassword) {
  const Deadline deadline(30s);
  const int port = closed_port();
  const auto start = Clock::now();
  try {
    (void)open_checkpoint_store("postgresql://kclpp:hunter2@127.0.0.1:" + std::to_string(port) +
                                "/db");
    FAIL() << "connected to a closed port";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_NE(what.find("127.0.0.1"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(port)), std::string::npos) << what;
    EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
  }
  EXPECT_LT(Clock::now() - start, 5s);
  // A host that does not answer at all: connect_timeout bounds the wait.
  const auto start2 = Clock::now();
  EXPECT_THROW((void)open_checkpoint_store("postgres://u:hunter2@10.255.255.1:5432/db?connect_timeout=2"),
               StoreError);
  EXPECT_LT(Clock::now() - start2, 8s);
}

TEST_F(PostgresStore, SaveWorksAgainAfterTheServerRestarts) {
  const Deadline deadline(90s);
  const std::string uri = pg().create_database();
  auto store = open_checkpoint_store(uri);
  store->save({"app", "stream", "shard"}, seq("100"));
  pg().restart();
  try {
    store->save({"app", "stream", "shard"}, seq("200"));
  } catch (const StoreError& e) {
    // Allowed once, if retryable: the caller's retry policy handles it.
    EXPECT_EQ(e.retry(), Retry::Yes) << e.what();
    store->save({"app", "stream", "shard"}, seq("200"));
  }
  EXPECT_EQ(store->load({"app", "stream", "shard"}), seq("200"));
  EXPECT_EQ(open_checkpoint_store(uri)->load({"app", "stream", "shard"}), seq("200"));

  // While the server is down: a retryable error, and the store recovers when it is back.
  pg().stop();
  try {
    store->save({"app", "stream", "shard"}, seq("300"));
    ADD_FAILURE() << "saved with the server down";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
  pg().start();
  store->save({"app", "stream", "shard"}, seq("300"));
  EXPECT_EQ(store->load({"app", "stream", "shard"}), seq("300"));
}

}  // namespace
}  // namespace kclpp::native
