#include "dynamodb_store.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "dynamodb_lease_item.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::native::detail {
namespace {

using aws::AttributeValue;
using aws::DynamoDbClient;
using aws::Item;
using namespace std::chrono_literals;

// How long leases() waits for a table it (or a concurrent worker) created to become ACTIVE:
// DynamoDB takes seconds for an empty on-demand table; a minute is already unusual.
constexpr std::chrono::milliseconds table_active_timeout = 3min;

// DynamoDbClient is not thread-safe: each concurrent caller takes a client of its own,
// made on first need (construction makes no request) and kept for the next caller, so the
// pool grows to the number of threads that ever called at once. Thread-safe.
class ClientPool {
 public:
  // Builds the first client now, so that a bad region, endpoint or credentials setting
  // fails when the store opens (what DynamoDbClient's constructor throws).
  explicit ClientPool(aws::DynamoDbOptions options) : options_(std::move(options)) {
    idle_.push_back(std::make_unique<DynamoDbClient>(options_));
  }

  // A client for one caller, back in the pool when the handle goes. Move-only.
  class Handle {
   public:
    Handle(ClientPool& pool, std::unique_ptr<DynamoDbClient> client) : pool_(pool), client_(std::move(client)) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { pool_.give_back(std::move(client_)); }
    DynamoDbClient* operator->() const noexcept { return client_.get(); }
    DynamoDbClient& operator*() const noexcept { return *client_; }

   private:
    ClientPool& pool_;
    std::unique_ptr<DynamoDbClient> client_;
  };

  [[nodiscard]] Handle take() {
    const std::lock_guard lock(mutex_);
    if (idle_.empty()) return Handle(*this, std::make_unique<DynamoDbClient>(options_));
    auto client = std::move(idle_.back());
    idle_.pop_back();
    return Handle(*this, std::move(client));
  }

 private:
  void give_back(std::unique_ptr<DynamoDbClient> client) noexcept {
    try {
      const std::lock_guard lock(mutex_);
      idle_.push_back(std::move(client));
    } catch (...) {
      // Out of memory: the client is dropped (closed) and a later caller makes another.
    }
  }

  aws::DynamoDbOptions options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<DynamoDbClient>> idle_;
};

bool table_missing(const aws::AwsError& e) { return e.type() == "ResourceNotFoundException"; }

Retry retry_unless_no(const Error& e) { return e.retry() == Retry::No ? Retry::No : Retry::Yes; }

// The one place where the DynamoDB client's errors become StoreErrors (call inside a catch
// block): an unreachable, slow, throttled or failing service, and a write whose reply was
// lost, are worth another try (Retry::Yes); refused credentials or permissions, a table
// that is gone (ResourceNotFoundException), a validation error and an unreadable reply are
// not. The client's messages name the operation, the table and the key, never credentials.
[[noreturn]] void rethrow_as_store_error(const std::string& doing) {
  try {
    throw;
  } catch (const StoreError&) {
    throw;
  } catch (const ThrottledError& e) {
    throw StoreError(doing + ": throttled: " + e.what(), Retry::Yes);
  } catch (const InDoubtError& e) {
    throw StoreError(doing + ": " + e.what() + "; read the lease again", Retry::Yes);
  } catch (const TransportError& e) {
    throw StoreError(doing + ": " + e.what(), retry_unless_no(e));
  } catch (const aws::AwsError& e) {
    if (table_missing(e)) throw StoreError(doing + ": the table does not exist (deleted?): " + e.what(), Retry::No);
    throw StoreError(doing + ": " + e.what(), retry_unless_no(e));
  } catch (const Error& e) {
    // AuthError (credentials, AccessDeniedException), ConfigError (a client that could not
    // be made), ProtocolError (an unreadable reply).
    throw StoreError(doing + ": " + e.what(), retry_unless_no(e));
  }
}

// Runs fn(), turning the client's errors into StoreErrors that say what was being done.
template <class Fn>
auto store_call(const std::string& doing, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (...) {
    rethrow_as_store_error(doing);
  }
}

// What every call shares: the clients and the table named in the URI (empty: one per
// application). Thread-safe.
struct DynamoState {
  DynamoState(std::string fixed, const aws::DynamoDbOptions& options) : fixed_table(std::move(fixed)), pool(options) {}

  // The table of an application: the URI's, else the application's name when DynamoDB
  // accepts it as a table name.
  [[nodiscard]] std::string table_for(const std::string& application) const {
    if (!fixed_table.empty()) return fixed_table;
    if (!valid_dynamodb_table_name(application)) {
      throw StoreError("dynamodb: the lease table is named after the application, but '" + application +
                           "' is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -): name the table "
                           "with dynamodb:TABLE (tableName)",
                       Retry::No);
    }
    return application;
  }

  const std::string fixed_table;
  ClientPool pool;
};

// The condition that keeps kclpp's writes off the KCL 3.x coordinator's items that share
// the table (entityType other than LEASE). Uses #entityType and :leaseEntity.
constexpr const char* lease_entity_condition = "(attribute_not_exists(#entityType) OR #entityType = :leaseEntity)";

void add_lease_entity_placeholders(aws::WriteOptions& options) {
  options.names.emplace("#entityType", lease_attr::entity_type);
  options.values.emplace(":leaseEntity", AttributeValue::s(lease_entity_type));
}

// Makes `table` usable: creates it when missing (a concurrent creator is fine), waits for
// ACTIVE, and checks that its key is the KCL's. Never alters an existing table.
void ensure_table(DynamoDbClient& client, const std::string& table) {
  const std::string where = "dynamodb:" + table;
  auto description = client.describe_table(table);
  if (!description) {
    try {
      client.create_table(table, {lease_attr::key, aws::KeyAttribute::Type::S});
    } catch (const aws::AwsError& e) {
      if (e.type() != "ResourceInUseException") throw;  // else: another worker made it meanwhile
    } catch (const AuthError& e) {
      throw StoreError(where + ": the lease table " + table +
                           " does not exist and this worker may not create it (" + e.what() +
                           "): create it beforehand (hash key leaseKey, type S) or name an existing one "
                           "with dynamodb:TABLE (tableName)",
                       Retry::No);
    }
    client.wait_for_active(table, table_active_timeout);
    description = client.describe_table(table);
    if (!description) throw StoreError(where + ": the table vanished right after it became ACTIVE", Retry::Yes);
  } else if (description->status == "CREATING") {
    client.wait_for_active(table, table_active_timeout);
  } else if (description->status == "DELETING") {
    throw StoreError(where + ": the table is being deleted", Retry::Yes);
  }
  if (description->hash_key.name != lease_attr::key || description->hash_key.type != aws::KeyAttribute::Type::S ||
      description->range_key) {
    throw StoreError(where + ": not a KCL lease table: its key is " + description->hash_key.name +
                         (description->range_key ? " + " + description->range_key->name : std::string()) +
                         ", expected the hash key leaseKey (S) alone",
                     Retry::No);
  }
}

// One application's leases in one table. Thread-safe (clients from the pool).
class DynamoLeaseTable final : public LeaseTable {
 public:
  DynamoLeaseTable(std::shared_ptr<DynamoState> state, std::string table)
      : state_(std::move(state)), table_(std::move(table)), where_("dynamodb:" + table_) {}

  std::vector<Lease> list() override {
    return store_call(where_ + ": listing leases", [&] {
      auto items = state_->pool.take()->scan(table_, {0, aws::ReadConsistency::Strong});
      std::vector<Lease> leases;
      for (const auto& item : items) {
        if (is_lease_item(item)) leases.push_back(lease_from_item(item, where_));
      }
      std::sort(leases.begin(), leases.end(), [](const Lease& a, const Lease& b) { return a.key < b.key; });
      return leases;
    });
  }

  std::optional<Lease> get(const std::string& key) override {
    return store_call(where_ + ": reading lease " + key, [&]() -> std::optional<Lease> {
      const auto item = state_->pool.take()->get_item(table_, lease_item_key(key), aws::ReadConsistency::Strong);
      if (!item || !is_lease_item(*item)) return std::nullopt;
      return lease_from_item(*item, where_);
    });
  }

  bool create(const Lease& lease) override {
    return store_call(where_ + ": creating lease " + lease.key, [&] {
      aws::WriteOptions options;
      options.condition = "attribute_not_exists(#leaseKey)";
      options.names.emplace("#leaseKey", lease_attr::key);
      try {
        state_->pool.take()->put_item(table_, lease_to_item(lease), options);
        return true;
      } catch (const aws::ConditionFailedError&) {
        return false;
      }
    });
  }

  bool update(const Lease& next, std::int64_t expected_counter,
              const std::optional<std::string>& expected_owner) override {
    return store_call(where_ + ": updating lease " + next.key, [&] {
      LeaseUpdate u = lease_update(next);
      auto& o = u.options;
      // lease_update named every attribute of Lease (#leaseCounter, #leaseOwner among them).
      o.names.emplace("#leaseKey", lease_attr::key);
      o.values.emplace(":expectedCounter", AttributeValue::n(expected_counter));
      std::string owner_condition = "attribute_not_exists(#leaseOwner)";
      if (expected_owner) {
        owner_condition = "#leaseOwner = :expectedOwner";
        o.values.emplace(":expectedOwner", AttributeValue::s(*expected_owner));
      }
      add_lease_entity_placeholders(o);
      o.condition = "attribute_exists(#leaseKey) AND #leaseCounter = :expectedCounter AND " + owner_condition +
                    " AND " + lease_entity_condition;
      try {
        state_->pool.take()->update_item(table_, lease_item_key(next.key), u.expression, o);
        return true;
      } catch (const aws::ConditionFailedError&) {
        return false;
      }
    });
  }

  bool remove(const std::string& key, std::int64_t expected_counter) override {
    return store_call(where_ + ": removing lease " + key, [&] {
      aws::WriteOptions o;
      o.names.emplace("#leaseCounter", lease_attr::counter);
      o.values.emplace(":expectedCounter", AttributeValue::n(expected_counter));
      add_lease_entity_placeholders(o);
      o.condition = std::string("#leaseCounter = :expectedCounter AND ") + lease_entity_condition;
      try {
        state_->pool.take()->delete_item(table_, lease_item_key(key), o);
        return true;
      } catch (const aws::ConditionFailedError&) {
        return false;
      }
    });
  }

  [[nodiscard]] std::string describe() const override { return where_; }

 private:
  std::shared_ptr<DynamoState> state_;
  const std::string table_;
  const std::string where_;
};

// The checkpoint-store face of the lease table. Thread-safe.
class DynamoStore final : public CheckpointStore {
 public:
  explicit DynamoStore(std::shared_ptr<DynamoState> state) : state_(std::move(state)) {}

  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    const std::string table = state_->table_for(key.application);
    const std::string where = "dynamodb:" + table;
    return store_call(where + ": loading the checkpoint of " + key.shard_id,
                      [&]() -> std::optional<ExtendedSequenceNumber> {
                        const auto item = get_or_missing(table, key.shard_id);
                        if (!item || !is_lease_item(*item)) return std::nullopt;
                        return checkpoint_from_item(*item, where);
                      });
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& /*stream: one per table*/) override {
    const std::string table = state_->table_for(application);
    const std::string where = "dynamodb:" + table;
    return store_call(where + ": loading checkpoints", [&] {
      std::map<std::string, ExtendedSequenceNumber> result;
      for (const auto& item : scan_or_missing(table, aws::ReadConsistency::Strong)) {
        if (!is_lease_item(item)) continue;
        if (auto position = checkpoint_from_item(item, where)) {
          result.emplace(item.at(lease_attr::key).as_s(), std::move(*position));
        }
      }
      return result;
    });
  }

  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::string table = state_->table_for(key.application);
    const std::string where = "dynamodb:" + table;
    store_call(where + ": saving the checkpoint of " + key.shard_id, [&] {
      auto client = state_->pool.take();
      try {
        write_checkpoint(*client, table, key.shard_id, position);
      } catch (const aws::ConditionFailedError&) {
        throw StoreError(where + ": item " + key.shard_id + " is not a lease (its entityType is not LEASE): "
                             "its checkpoint is not written",
                         Retry::No);
      } catch (const aws::AwsError& e) {
        if (!table_missing(e)) throw;
        // The first save of an application that never asked for its leases.
        ensure_table(*client, table);
        write_checkpoint(*client, table, key.shard_id, position);
      }
    });
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    const std::string table = state_->table_for(application);
    const std::string where = "dynamodb:" + table;
    return store_call(where + ": listing checkpoints", [&] {
      std::vector<StoredCheckpoint> result;
      for (const auto& item : scan_or_missing(table, aws::ReadConsistency::Eventual)) {
        if (!is_lease_item(item)) continue;
        if (auto position = checkpoint_from_item(item, where)) {
          // The KCL table keeps no write time: the epoch says "unknown" (kclpp stats prints "-").
          result.push_back({std::string(), item.at(lease_attr::key).as_s(), std::move(*position),
                            std::chrono::system_clock::time_point{}});
        }
      }
      std::sort(result.begin(), result.end(),
                [](const StoredCheckpoint& a, const StoredCheckpoint& b) { return a.shard_id < b.shard_id; });
      return result;
    });
  }

  std::unique_ptr<LeaseTable> leases(const std::string& application, const std::string& /*stream*/) override {
    std::string table = state_->table_for(application);
    store_call("dynamodb:" + table + ": opening the lease table",
               [&] { ensure_table(*state_->pool.take(), table); });
    return std::make_unique<DynamoLeaseTable>(state_, std::move(table));
  }

  std::unique_ptr<StoreClaim> claim(const std::string& application, const std::string& stream) override {
    throw StoreError("dynamodb: workers coordinate through leases: no claim of application '" + application +
                         "' on stream '" + stream + "' (use the store's leases())",
                     Retry::No);
  }

 private:
  // ExtendedSequenceNumber and sub-sequence number, ownerSwitchesSinceCheckpoint reset,
  // leaseCounter 0 for an item made here; on a lease item only (the KCL 3.x coordinator's
  // items share the table).
  static void write_checkpoint(DynamoDbClient& client, const std::string& table, const std::string& shard_id,
                               const ExtendedSequenceNumber& position) {
    aws::WriteOptions o;
    o.names = {{"#checkpoint", lease_attr::checkpoint},
               {"#checkpointSub", lease_attr::checkpoint_sub},
               {"#ownerSwitches", lease_attr::owner_switches},
               {"#leaseCounter", lease_attr::counter}};
    o.values = {{":checkpoint", AttributeValue::s(position.str())},
                {":checkpointSub", AttributeValue::n(position.sub_sequence_number())},
                {":zero", AttributeValue::n(std::int64_t{0})}};
    add_lease_entity_placeholders(o);
    o.condition = lease_entity_condition;
    client.update_item(table, lease_item_key(shard_id),
                       "SET #checkpoint = :checkpoint, #checkpointSub = :checkpointSub, #ownerSwitches = :zero, "
                       "#leaseCounter = if_not_exists(#leaseCounter, :zero)",
                       o);
  }

  // A missing table reads as empty: nothing was ever checkpointed there.
  std::optional<Item> get_or_missing(const std::string& table, const std::string& shard_id) {
    try {
      return state_->pool.take()->get_item(table, lease_item_key(shard_id), aws::ReadConsistency::Strong);
    } catch (const aws::AwsError& e) {
      if (table_missing(e)) return std::nullopt;
      throw;
    }
  }

  std::vector<Item> scan_or_missing(const std::string& table, aws::ReadConsistency consistency) {
    try {
      return state_->pool.take()->scan(table, {0, consistency});
    } catch (const aws::AwsError& e) {
      if (table_missing(e)) return {};
      throw;
    }
  }

  std::shared_ptr<DynamoState> state_;
};

}  // namespace

bool valid_dynamodb_table_name(const std::string& name) noexcept {
  if (name.size() < 3 || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

std::unique_ptr<CheckpointStore> open_dynamodb_store(std::string table, const aws::DynamoDbOptions& options) {
  if (!table.empty() && !valid_dynamodb_table_name(table)) {
    throw ConfigError("checkpoint store: dynamodb:" + table + ": '" + table +
                      "' is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)");
  }
  return std::make_unique<DynamoStore>(std::make_shared<DynamoState>(std::move(table), options));
}

}  // namespace kclpp::native::detail
