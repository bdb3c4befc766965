#pragma once
// Helpers for the in-process tests of the native Worker against real servers
// (worker_test.cpp, fan_out_test.cpp, fan_out_fault_test.cpp): a worker's run() on a
// thread, and a processor that records every record's data per shard.
#include <cstddef>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "e2e_support.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/record_processor.hpp"

namespace kclpp::test {

// Runs a worker's run() on a thread; finish() requests shutdown, joins and returns what
// run() threw ("" when it returned).
class BackgroundWorker {
 public:
  explicit BackgroundWorker(native::Worker& worker) : worker_(worker), thread_([this] {
    try {
      worker_.run();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }) {}
  ~BackgroundWorker() {
    if (thread_.joinable()) finish();
  }
  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;
  std::string finish() {
    worker_.request_shutdown();
    thread_.join();
    return error_;
  }

 private:
  native::Worker& worker_;
  std::string error_;
  std::thread thread_;
};

// Every record's data per shard, in delivery order. Thread-safe.
class Seen {
 public:
  using PerShard = std::map<std::string, std::vector<std::string>>;
  void add(const std::string& shard, const std::string& data) {
    const std::lock_guard lock(mutex_);
    data_[shard].push_back(data);
    ++count_;
  }
  std::size_t count() {
    const std::lock_guard lock(mutex_);
    return count_;
  }
  PerShard by_shard() {
    const std::lock_guard lock(mutex_);
    return data_;
  }

 private:
  std::mutex mutex_;
  PerShard data_;
  std::size_t count_ = 0;
};

// Adds each record to a Seen, checkpoints after each non-empty batch and at shard end.
class SeenProcessor final : public RecordProcessor {
 public:
  explicit SeenProcessor(Seen& seen) : seen_(seen) {}
  void initialize(const std::string& shard_id, const ExtendedSequenceNumber&) override { shard_ = shard_id; }
  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) override {
    for (const auto& r : batch.records) seen_.add(shard_, r.data);
    if (!batch.records.empty()) checkpointer.checkpoint();
  }
  void shard_ended(Checkpointer& checkpointer) override { checkpointer.checkpoint(); }
  void lease_lost() override {}

 private:
  Seen& seen_;
  std::string shard_;
};

}  // namespace kclpp::test
