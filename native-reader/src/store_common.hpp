#pragma once
// Pieces the SQLite and Postgres stores share: how a claim is named and who holds it, the
// interface of one layout's tables, and the store over a connection and those tables.
#include <unistd.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "lease_rows.hpp"

namespace kclpp::native::detail {

// A stable key for one (application, stream): FNV-1a 64 over "application\0stream". The
// same in every process and build, so two workers meet on the same lock (the Postgres
// advisory lock, the SQLite side file's name).
inline std::uint64_t claim_hash(std::string_view application, std::string_view stream) noexcept {
  std::uint64_t h = 14695981039346656037ULL;
  const auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (const char c : application) mix(static_cast<unsigned char>(c));
  mix(0);
  for (const char c : stream) mix(static_cast<unsigned char>(c));
  return h;
}

// For "held by pid N on HOST" messages.
inline std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "unknown host";
  return buf.data();
}

// One layout's tables (kclpp's, or Triton's: triton_layout.hpp) in a SQL store: the data
// half of CheckpointStore, with the same contract. A store picks its layout once, when it
// opens, and serialises the calls; implementations are not thread-safe.
class CheckpointTables {
 public:
  virtual ~CheckpointTables() = default;
  [[nodiscard]] virtual std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) = 0;
  [[nodiscard]] virtual std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                                               const std::string& stream) = 0;
  virtual void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) = 0;
  [[nodiscard]] virtual std::vector<StoredCheckpoint> list(const std::string& application) = 0;
};

// A transaction guard (libpqxx's model) on a store connection `Db` that has
// begin_transaction(doing) and commit_transaction(doing) (both throw StoreError) and
// rollback_transaction() (noexcept): begins in the constructor, commit() ends it, and a
// transaction still open when the guard goes (an exception) is rolled back. The destructor
// never throws. Not thread-safe (the store's lock covers it).
template <class Db>
class Transaction {
 public:
  Transaction(Db& db, std::string_view doing) : db_(db) { db_.begin_transaction(doing); }
  ~Transaction() {
    if (open_) db_.rollback_transaction();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit(std::string_view doing) {
    db_.commit_transaction(doing);
    open_ = false;
  }

 private:
  Db& db_;
  bool open_ = true;
};

// Where a SQL store keeps its checkpoints: kclpp's own tables, or Triton's (triton_layout.hpp).
enum class StoreLayout { Kclpp, Triton };

// A CheckpointStore over one `Connection` and the tables of the layout it opened with
// (`KclppTables` or `TritonTables`, each constructed from `Connection&`, which creates and
// checks them): the data calls are serialised by one mutex and passed on. Tables that can
// hold leases (kclpp's layout) also implement LeaseRows; leases() hands out LeaseTables
// that take the same mutex, so lease writes and checkpoints share one connection in turn.
// Subclasses add claim(). Thread-safe.
template <class Connection, class KclppTables, class TritonTables>
class TablesStore : public CheckpointStore {
 public:
  std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) override {
    const std::lock_guard lock(mutex_);
    return tables_->load(key);
  }

  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    const std::lock_guard lock(mutex_);
    return tables_->load_all(application, stream);
  }

  void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    const std::lock_guard lock(mutex_);
    tables_->save(key, position);
  }

  std::vector<StoredCheckpoint> list(const std::string& application) override {
    const std::lock_guard lock(mutex_);
    return tables_->list(application);
  }

  // nullptr in the triton layout (no room for leases: CheckpointStore::leases).
  std::unique_ptr<LeaseTable> leases(const std::string& application, const std::string& stream) override {
    if (lease_rows_ == nullptr) return nullptr;
    return std::make_unique<LockedLeaseTable>(mutex_, *lease_rows_, application, stream);
  }

 protected:
  template <class Arg>
  TablesStore(Arg&& connection_argument, StoreLayout layout)
      : connection_(std::forward<Arg>(connection_argument)),
        tables_(open_tables(connection_, layout)),
        lease_rows_(dynamic_cast<LeaseRows*>(tables_.get())) {}

  // Subclasses may use it without the lock only for what never changes (its target).
  Connection connection_;

 private:
  static std::unique_ptr<CheckpointTables> open_tables(Connection& connection, StoreLayout layout) {
    if (layout == StoreLayout::Triton) return std::make_unique<TritonTables>(connection);
    return std::make_unique<KclppTables>(connection);
  }

  std::mutex mutex_;
  std::unique_ptr<CheckpointTables> tables_;  // after connection_: destroyed before it
  LeaseRows* lease_rows_;                     // tables_ when its layout holds leases, else nullptr
};

}  // namespace kclpp::native::detail
