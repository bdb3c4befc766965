#pragma once
// The contract every LeaseTable passes (kclpp/native/lease_table.hpp), as one
// value-parameterised suite, LeaseTableContract, over a LeaseBackend: how to get stores on
// fresh data. A store joins with a LeaseBackend and one line:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, LeaseTableContract, ::testing::Values(&sqlite_backend()),
//                            lease_contract::backend_name);
//
// This header defines the tests: include it from one source file per test binary
// (tests/integration/lease_table_test.cpp).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/lease_table.hpp"
#include "kclpp/processor/error.hpp"
#include "local_server.hpp"

namespace kclpp::native {

// For GoogleTest's failure messages.
inline void PrintTo(const Lease& lease, std::ostream* os) {
  const auto opt = [](const std::optional<std::string>& v) { return v ? "'" + *v + "'" : std::string("-"); };
  const auto set = [](const std::vector<std::string>& ids) {
    std::string s = "{";
    for (const auto& id : ids) s += (s.size() > 1 ? "," : "") + id;
    return s + "}";
  };
  *os << "Lease{" << lease.key << " owner=" << opt(lease.owner) << " counter=" << lease.counter
      << " checkpoint=" << lease.checkpoint.str() << "/" << lease.checkpoint.sub_sequence_number() << " pending="
      << (lease.pending_checkpoint ? lease.pending_checkpoint->str() + "/" +
                                         std::to_string(lease.pending_checkpoint->sub_sequence_number())
                                   : "-")
      << " state=" << (lease.pending_checkpoint_state ? std::to_string(lease.pending_checkpoint_state->size()) + " bytes" : "-")
      << " switches=" << lease.owner_switches_since_checkpoint << " parents=" << set(lease.parent_shard_ids)
      << " children=" << set(lease.child_shard_ids) << " hash=" << opt(lease.starting_hash_key) << ".."
      << opt(lease.ending_hash_key) << " kbps=" << opt(lease.throughput_kbps)
      << " checkpoint_owner=" << opt(lease.checkpoint_owner) << "}";
}

}  // namespace kclpp::native

namespace kclpp::native::lease_contract {

// One store kind under the contract. Used from the test thread only; the stores it opens
// are thread-safe as CheckpointStore promises. Backends are long-lived objects (function
// statics): each registers itself so that a finished suite can release what it started.
class LeaseBackend {
 public:
  LeaseBackend() { registry().push_back(this); }
  virtual ~LeaseBackend() = default;
  LeaseBackend(const LeaseBackend&) = delete;
  LeaseBackend& operator=(const LeaseBackend&) = delete;

  // For test names: letters and digits only ("Sqlite").
  [[nodiscard]] virtual std::string name() const = 0;
  // Called before each test. Why the backend cannot run here (a server that is not
  // installed), or ""; starts what its tests share (a server) on first use and throws
  // when that fails although it is installed.
  virtual std::string prepare() = 0;
  // Fresh, empty data for the next test: a new file, database or table.
  virtual void fresh() = 0;
  // A store on the current test's data. Every call a new store object, with a connection of
  // its own where the store has connections (the memory store: a handle on one store).
  [[nodiscard]] virtual std::unique_ptr<CheckpointStore> open() = 0;
  // What LeaseTable::describe() must say for the current data.
  [[nodiscard]] virtual std::string expected_describe() const = 0;
  // False where leases of one application's streams share one table (DynamoDB's lease
  // table holds one application's stream): the isolation test is skipped.
  [[nodiscard]] virtual bool isolates_streams() const { return true; }
  // Stops what prepare() started. Never throws.
  virtual void release() noexcept {}

  static void release_all() noexcept {
    for (auto* backend : registry()) backend->release();
  }

 private:
  static std::vector<LeaseBackend*>& registry() {
    static std::vector<LeaseBackend*> backends;
    return backends;
  }
};

// GetParam() in GoogleTest's failure lines.
inline void PrintTo(LeaseBackend* backend, std::ostream* os) { *os << backend->name(); }

// The name generator for INSTANTIATE_TEST_SUITE_P.
inline std::string backend_name(const ::testing::TestParamInfo<LeaseBackend*>& info) {
  return info.param->name();
}

// Shard ids as Kinesis writes them.
inline std::string shard(int n) {
  std::string digits = std::to_string(n);
  return "shardId-" + std::string(12 - digits.size(), '0') + digits;
}

// A sequence number of `n` digits ('1' then '0'..'9' cycling), as real ones have 56.
inline SequenceNumber digits(std::size_t n, int seed) {
  std::string s(1, '1');
  for (std::size_t i = 1; i < n; ++i) s.push_back(static_cast<char>('0' + (static_cast<int>(i) + seed) % 10));
  return SequenceNumber(s);
}

// A lease with every field set (a NUL and a high byte in the state).
inline Lease full_lease(const std::string& key) {
  Lease lease;
  lease.key = key;
  lease.owner = "worker-a";
  lease.counter = 7;
  lease.checkpoint = ExtendedSequenceNumber(digits(56, 1), 3);
  lease.pending_checkpoint = ExtendedSequenceNumber(digits(56, 2), 9);
  lease.pending_checkpoint_state = std::string("st\0ate\xff", 7);
  lease.owner_switches_since_checkpoint = 2;
  lease.parent_shard_ids = {shard(1), shard(2)};
  lease.child_shard_ids = {shard(10), shard(11), shard(12)};
  lease.starting_hash_key = "0";
  lease.ending_hash_key = "340282366920938463463374607431768211455";
  lease.throughput_kbps = "12.5";
  lease.checkpoint_owner = "worker-b";
  return lease;
}

// A lease with only a key and a checkpoint: every optional absent, every set empty.
inline Lease bare_lease(const std::string& key, ExtendedSequenceNumber checkpoint = ExtendedSequenceNumber()) {
  Lease lease;
  lease.key = key;
  lease.checkpoint = std::move(checkpoint);
  return lease;
}

class LeaseTableContract : public ::testing::TestWithParam<LeaseBackend*> {
 public:
  static void TearDownTestSuite() { LeaseBackend::release_all(); }

 protected:
  void SetUp() override {
    KCLPP_REQUIRE_PRESENT(backend().prepare());
    backend().fresh();
    store_ = backend().open();
    ASSERT_NE(store_, nullptr);
    table_ = store_->leases("app", "stream");
    ASSERT_NE(table_, nullptr) << "leases() returned no table";
  }

  void TearDown() override {
    table_.reset();
    store_.reset();
  }

  LeaseBackend& backend() { return *GetParam(); }
  LeaseTable& table() { return *table_; }

  // One update round from `from`: `threads` callers each try to take the lease with their
  // own table (`tables[i]`), released together. Returns how many succeeded.
  static int race(std::vector<LeaseTable*> tables, const Lease& from) {
    std::latch start(static_cast<std::ptrdiff_t>(tables.size()));
    std::atomic<int> wins{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < tables.size(); ++i) {
      threads.emplace_back([&, i] {
        Lease next = from;
        next.owner = "worker-" + std::to_string(i);
        next.counter = from.counter + 1;
        start.arrive_and_wait();
        try {
          if (tables[i]->update(next, from.counter, from.owner)) ++wins;
        } catch (const std::exception&) {
          ++errors;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(errors.load(), 0) << "an update threw";
    return wins.load();
  }

  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<LeaseTable> table_;
};

TEST_P(LeaseTableContract, StartsEmpty) {
  EXPECT_TRUE(table().list().empty());
  EXPECT_EQ(table().get(shard(0)), std::nullopt);
}

TEST_P(LeaseTableContract, CreateWritesOnceAndNeverOverwrites) {
  const Lease first = full_lease(shard(0));
  EXPECT_TRUE(table().create(first));
  Lease second = bare_lease(shard(0));
  second.owner = "worker-z";
  second.counter = 99;
  EXPECT_FALSE(table().create(second));
  EXPECT_EQ(table().get(shard(0)), first);
  EXPECT_EQ(table().list(), std::vector<Lease>{first});
}

TEST_P(LeaseTableContract, ListIsSortedByKeyInByteOrder) {
  // Upper case sorts before lower case in byte order (not in most locales' collations).
  const std::vector<std::string> keys{shard(10), "b-shard", shard(2), "B-shard", shard(1), "a-shard"};
  for (const auto& k : keys) ASSERT_TRUE(table().create(bare_lease(k)));
  std::vector<std::string> expected = keys;
  std::sort(expected.begin(), expected.end());
  std::vector<std::string> got;
  for (const auto& lease : table().list()) got.push_back(lease.key);
  EXPECT_EQ(got, expected);
}

TEST_P(LeaseTableContract, EveryFieldRoundTripsThroughAnotherConnection) {
  const Lease lease = full_lease(shard(3));
  ASSERT_TRUE(table().create(lease));
  EXPECT_EQ(table().get(shard(3)), lease);
  // Committed: a store opened afterwards (its own connection) reads the same.
  auto other = backend().open();
  auto other_table = other->leases("app", "stream");
  EXPECT_EQ(other_table->get(shard(3)), lease);
  EXPECT_EQ(other_table->list(), std::vector<Lease>{lease});
}

TEST_P(LeaseTableContract, SentinelsAndLongSequenceNumbersRoundTrip) {
  const std::vector<ExtendedSequenceNumber> positions{
      ExtendedSequenceNumber(Sentinel::TrimHorizon), ExtendedSequenceNumber(Sentinel::Latest),
      ExtendedSequenceNumber(Sentinel::AtTimestamp), ExtendedSequenceNumber(Sentinel::ShardEnd),
      ExtendedSequenceNumber(digits(56, 5), 0), ExtendedSequenceNumber(digits(56, 6), INT64_MAX),
      ExtendedSequenceNumber(digits(129, 7), 42)};
  for (std::size_t i = 0; i < positions.size(); ++i) {
    Lease lease = bare_lease(shard(static_cast<int>(i)), positions[i]);
    lease.pending_checkpoint = positions[positions.size() - 1 - i];
    ASSERT_TRUE(table().create(lease)) << i;
  }
  const auto leases = table().list();
  ASSERT_EQ(leases.size(), positions.size());
  for (std::size_t i = 0; i < positions.size(); ++i) {
    EXPECT_EQ(leases[i].checkpoint.str(), positions[i].str()) << i;
    EXPECT_EQ(leases[i].checkpoint.sentinel(), positions[i].sentinel()) << i;
    EXPECT_EQ(leases[i].checkpoint.sub_sequence_number(), positions[i].sub_sequence_number()) << i;
    ASSERT_TRUE(leases[i].pending_checkpoint.has_value()) << i;
    EXPECT_EQ(leases[i].pending_checkpoint->str(), positions[positions.size() - 1 - i].str()) << i;
    EXPECT_EQ(leases[i].pending_checkpoint->sub_sequence_number(),
              positions[positions.size() - 1 - i].sub_sequence_number())
        << i;
  }
}

TEST_P(LeaseTableContract, AbsentOptionalsStayAbsentAndAnUpdateRemovesThem) {
  const Lease bare = bare_lease(shard(4), ExtendedSequenceNumber(Sentinel::Latest));
  ASSERT_TRUE(table().create(bare));
  const auto got = table().get(shard(4));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, bare);
  EXPECT_EQ(got->owner, std::nullopt);
  EXPECT_EQ(got->pending_checkpoint, std::nullopt);
  EXPECT_EQ(got->pending_checkpoint_state, std::nullopt);
  EXPECT_TRUE(got->parent_shard_ids.empty());
  EXPECT_TRUE(got->child_shard_ids.empty());
  EXPECT_EQ(got->starting_hash_key, std::nullopt);
  EXPECT_EQ(got->throughput_kbps, std::nullopt);
  EXPECT_EQ(got->checkpoint_owner, std::nullopt);

  Lease full = full_lease(shard(4));
  full.counter = 1;
  ASSERT_TRUE(table().update(full, 0, std::nullopt));
  EXPECT_EQ(table().get(shard(4)), full);
  // Back to bare: every absent optional and empty set removes what was there.
  Lease again = bare;
  again.counter = 2;
  ASSERT_TRUE(table().update(again, 1, full.owner));
  EXPECT_EQ(table().get(shard(4)), again);
}

TEST_P(LeaseTableContract, UpdateWithTheExpectedCounterAndOwnerSucceeds) {
  ASSERT_TRUE(table().create(bare_lease(shard(5))));
  Lease taken = bare_lease(shard(5));
  taken.owner = "worker-a";
  taken.counter = 1;
  EXPECT_TRUE(table().update(taken, 0, std::nullopt));
  EXPECT_EQ(table().get(shard(5)), taken);
  Lease renewed = taken;
  renewed.counter = 2;
  renewed.checkpoint = ExtendedSequenceNumber(digits(56, 3), 4);
  EXPECT_TRUE(table().update(renewed, 1, std::string("worker-a")));
  EXPECT_EQ(table().get(shard(5)), renewed);
}

TEST_P(LeaseTableContract, UpdateWithAWrongCounterOwnerOrKeyChangesNothing) {
  Lease held = full_lease(shard(6));
  held.owner = "worker-a";
  held.counter = 10;
  ASSERT_TRUE(table().create(held));
  Lease next = held;
  next.owner = "worker-b";
  next.counter = 11;
  next.checkpoint = ExtendedSequenceNumber(Sentinel::ShardEnd);
  EXPECT_FALSE(table().update(next, 9, std::string("worker-a")));   // stale counter
  EXPECT_FALSE(table().update(next, 11, std::string("worker-a")));  // counter ahead
  EXPECT_FALSE(table().update(next, 10, std::string("worker-b")));  // wrong owner
  EXPECT_FALSE(table().update(next, 10, std::nullopt));             // not free
  EXPECT_EQ(table().get(shard(6)), held);
  Lease missing = next;
  missing.key = shard(7);
  EXPECT_FALSE(table().update(missing, 10, std::string("worker-a")));
  EXPECT_FALSE(table().update(missing, 0, std::nullopt));
  EXPECT_EQ(table().get(shard(7)), std::nullopt);  // an update never creates
  EXPECT_EQ(table().list().size(), 1u);
}

TEST_P(LeaseTableContract, ExpectingNoOwnerMatchesOnlyAFreeLease) {
  Lease free_lease = bare_lease(shard(8));
  free_lease.counter = 3;
  ASSERT_TRUE(table().create(free_lease));
  Lease next = free_lease;
  next.counter = 4;
  next.owner = "worker-a";
  EXPECT_FALSE(table().update(next, 3, std::string("worker-a")));  // it has no owner
  EXPECT_EQ(table().get(shard(8)), free_lease);
  EXPECT_TRUE(table().update(next, 3, std::nullopt));
  Lease again = next;
  again.counter = 5;
  again.owner = "worker-b";
  EXPECT_FALSE(table().update(again, 4, std::nullopt));  // held now
  EXPECT_EQ(table().get(shard(8)), next);
  // Releasing (owner removed, counter bumped) makes it free again.
  Lease released = next;
  released.owner.reset();
  released.counter = 5;
  EXPECT_TRUE(table().update(released, 4, std::string("worker-a")));
  EXPECT_EQ(table().get(shard(8)), released);
}

TEST_P(LeaseTableContract, RemoveNeedsTheCounter) {
  Lease lease = full_lease(shard(9));
  ASSERT_TRUE(table().create(lease));
  ASSERT_TRUE(table().create(bare_lease(shard(10))));
  EXPECT_FALSE(table().remove(shard(9), lease.counter - 1));
  EXPECT_FALSE(table().remove(shard(9), lease.counter + 1));
  EXPECT_EQ(table().get(shard(9)), lease);
  EXPECT_TRUE(table().remove(shard(9), lease.counter));
  EXPECT_EQ(table().get(shard(9)), std::nullopt);
  EXPECT_FALSE(table().remove(shard(9), lease.counter));  // gone already
  EXPECT_FALSE(table().remove(shard(11), 0));             // never there
  ASSERT_EQ(table().list().size(), 1u);
  EXPECT_EQ(table().list()[0].key, shard(10));
  // A removed lease may be created again.
  EXPECT_TRUE(table().create(bare_lease(shard(9))));
}

TEST_P(LeaseTableContract, ApplicationsAndStreamsAreIsolated) {
  if (!backend().isolates_streams()) GTEST_SKIP() << backend().name() << " keeps one stream per table";
  auto other_stream = store_->leases("app", "other-stream");
  auto other_app = store_->leases("other-app", "stream");
  Lease mine = full_lease(shard(1));
  Lease theirs = bare_lease(shard(1));
  theirs.owner = "worker-other";
  theirs.counter = 7;  // the same counter as `mine`
  ASSERT_TRUE(table().create(mine));
  EXPECT_TRUE(other_stream->create(theirs));  // the same key elsewhere is another lease
  EXPECT_TRUE(other_app->create(theirs));
  EXPECT_EQ(table().list(), std::vector<Lease>{mine});
  EXPECT_EQ(other_stream->list(), std::vector<Lease>{theirs});
  EXPECT_EQ(other_app->list(), std::vector<Lease>{theirs});

  Lease next = theirs;
  next.counter = 8;
  EXPECT_TRUE(other_stream->update(next, 7, theirs.owner));
  EXPECT_EQ(table().get(shard(1)), mine);
  EXPECT_EQ(other_app->get(shard(1)), theirs);
  EXPECT_TRUE(other_app->remove(shard(1), 7));
  EXPECT_EQ(table().get(shard(1)), mine);
  EXPECT_EQ(other_stream->get(shard(1)), next);
  EXPECT_EQ(other_app->list(), std::vector<Lease>{});
}

TEST_P(LeaseTableContract, EightThreadsOnOneTableExactlyOneWinsEachRound) {
  Lease lease = bare_lease(shard(2));
  ASSERT_TRUE(table().create(lease));
  for (int round = 0; round < 5; ++round) {
    const Lease from = *table().get(shard(2));
    EXPECT_EQ(race(std::vector<LeaseTable*>(8, &table()), from), 1) << "round " << round;
    const auto after = table().get(shard(2));
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->counter, from.counter + 1) << "round " << round;
    EXPECT_TRUE(after->owner.has_value() && after->owner->rfind("worker-", 0) == 0);
  }
}

TEST_P(LeaseTableContract, EightStoresOnOneDataExactlyOneWinsEachRound) {
  std::vector<std::unique_ptr<CheckpointStore>> stores;
  std::vector<std::unique_ptr<LeaseTable>> tables;
  std::vector<LeaseTable*> raw;
  for (int i = 0; i < 8; ++i) {
    stores.push_back(backend().open());
    tables.push_back(stores.back()->leases("app", "stream"));
    raw.push_back(tables.back().get());
  }
  ASSERT_TRUE(table().create(bare_lease(shard(3))));
  for (int round = 0; round < 5; ++round) {
    const Lease from = *table().get(shard(3));
    EXPECT_EQ(race(raw, from), 1) << "round " << round;
    EXPECT_EQ(table().get(shard(3))->counter, from.counter + 1) << "round " << round;
  }
}

TEST_P(LeaseTableContract, CheckpointSaveAndLoadShareTheLeaseRowAndKeepItsOwner) {
  Lease lease = full_lease(shard(4));
  ASSERT_TRUE(table().create(lease));
  const CheckpointKey key{"app", "stream", shard(4)};
  EXPECT_EQ(store_->load(key), lease.checkpoint);
  const ExtendedSequenceNumber saved(digits(56, 8), 12);
  store_->save(key, saved);
  const auto after = table().get(shard(4));
  ASSERT_TRUE(after.has_value());
  Lease expected = lease;
  expected.checkpoint = saved;
  EXPECT_EQ(*after, expected);  // owner, counter and the rest as they were
  EXPECT_EQ(store_->load(key), saved);
  EXPECT_EQ(store_->load_all("app", "stream").at(shard(4)), saved);

  // A checkpoint saved where no lease was is a free lease with counter 0.
  store_->save({"app", "stream", shard(5)}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  const auto saved_only = table().get(shard(5));
  ASSERT_TRUE(saved_only.has_value());
  EXPECT_EQ(*saved_only, bare_lease(shard(5), ExtendedSequenceNumber(Sentinel::ShardEnd)));
  EXPECT_FALSE(table().create(bare_lease(shard(5))));
}

TEST_P(LeaseTableContract, DescribeNamesTheStore) {
  EXPECT_EQ(table().describe(), backend().expected_describe());
}

}  // namespace kclpp::native::lease_contract
