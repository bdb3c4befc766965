// The worker process of bench/lease_scale: one kclpp native Worker in lease mode on the
// benchmark's kinesalite stream, its store wrapped so that every LeaseTable call is counted.
// It reports to the driver on stdout, one line per event (each line is one write(2) of less
// than PIPE_BUF bytes, so lines from different threads never interleave):
//   I <shard> <t>    a processor was initialized on <shard> (the shard is processed here)
//   L <shard> <t>    the processor got lease_lost (lease lost, or the worker shuts down)
//   S <t> <list> <get> <create> <update> <remove> <checkpoints>   cumulative counts, every 200 ms
// <t> is CLOCK_MONOTONIC in seconds, the same clock in every process on the host.
#include "lease_scale_worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::bench {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void emit(const std::string& line) {
  const std::string text = line + "\n";
  (void)!::write(STDOUT_FILENO, text.data(), text.size());
}

struct Counters {
  std::atomic<long> list{0}, get{0}, create{0}, update{0}, remove{0}, checkpoints{0};
};

// Counts each call and forwards it. One call is one request to the table: a DynamoDB Scan
// of a few hundred leases fits one 1 MB page, and every other call is one item request or
// one SQL statement.
class CountingLeaseTable final : public native::LeaseTable {
 public:
  CountingLeaseTable(std::unique_ptr<native::LeaseTable> inner, Counters& counters)
      : inner_(std::move(inner)), counters_(counters) {}
  std::vector<native::Lease> list() override {
    ++counters_.list;
    return inner_->list();
  }
  std::optional<native::Lease> get(const std::string& key) override {
    ++counters_.get;
    return inner_->get(key);
  }
  bool create(const native::Lease& lease) override {
    ++counters_.create;
    return inner_->create(lease);
  }
  bool update(const native::Lease& next, std::int64_t expected_counter,
              const std::optional<std::string>& expected_owner) override {
    ++counters_.update;
    return inner_->update(next, expected_counter, expected_owner);
  }
  bool remove(const std::string& key, std::int64_t expected_counter) override {
    ++counters_.remove;
    return inner_->remove(key, expected_counter);
  }
  std::string describe() const override { return inner_->describe(); }
  bool single_host() const override { return inner_->single_host(); }

 private:
  std::unique_ptr<native::LeaseTable> inner_;
  Counters& counters_;
};

// Forwards everything; leases() hands out a counting table.
class CountingStore final : public native::CheckpointStore {
 public:
  CountingStore(std::unique_ptr<native::CheckpointStore> inner, Counters& counters)
      : inner_(std::move(inner)), counters_(counters) {}
  std::optional<ExtendedSequenceNumber> load(const native::CheckpointKey& key) override { return inner_->load(key); }
  std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                         const std::string& stream) override {
    return inner_->load_all(application, stream);
  }
  void save(const native::CheckpointKey& key, const ExtendedSequenceNumber& position) override {
    inner_->save(key, position);
  }
  std::vector<native::StoredCheckpoint> list(const std::string& application) override {
    return inner_->list(application);
  }
  std::unique_ptr<native::LeaseTable> leases(const std::string& application, const std::string& stream) override {
    auto table = inner_->leases(application, stream);
    if (!table) return nullptr;
    return std::make_unique<CountingLeaseTable>(std::move(table), counters_);
  }
  std::unique_ptr<native::StoreClaim> claim(const std::string& application, const std::string& stream) override {
    return inner_->claim(application, stream);
  }

 private:
  std::unique_ptr<native::CheckpointStore> inner_;
  Counters& counters_;
};

// Checkpoints every batch with records, as a typical application does; reports its life.
class BenchProcessor final : public RecordProcessor {
 public:
  explicit BenchProcessor(Counters& counters) : counters_(counters) {}
  void initialize(const std::string& shard_id, const ExtendedSequenceNumber&) override {
    shard_ = shard_id;
    emit("I " + shard_ + " " + std::to_string(now_s()));
  }
  void process_records(const RecordBatch& batch, Checkpointer& checkpointer) override {
    if (batch.records.empty()) return;
    checkpointer.checkpoint();
    ++counters_.checkpoints;
  }
  void lease_lost() override { emit("L " + shard_ + " " + std::to_string(now_s())); }
  void shard_ended(Checkpointer& checkpointer) override {
    checkpointer.checkpoint();
    ++counters_.checkpoints;
  }
  void shutdown_requested(Checkpointer& checkpointer) override {
    checkpointer.checkpoint();
    ++counters_.checkpoints;
  }

 private:
  Counters& counters_;
  std::string shard_;
};

void report_counts(const Counters& c) {
  emit("S " + std::to_string(now_s()) + " " + std::to_string(c.list.load()) + " " + std::to_string(c.get.load()) +
       " " + std::to_string(c.create.load()) + " " + std::to_string(c.update.load()) + " " +
       std::to_string(c.remove.load()) + " " + std::to_string(c.checkpoints.load()));
}

}  // namespace

int run_worker(const WorkerArgs& args) {
  // SIGTERM is waited for by one thread (sigwait), so it is blocked before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const auto credentials = aws::static_credentials({"AKIDKCLPPBENCH", "kclpp-bench-secret", ""});
  aws::KinesisOptions kinesis;
  kinesis.endpoint = args.kinesis_endpoint;
  kinesis.region = "us-east-1";
  kinesis.credentials = credentials;
  native::StoreOptions store_options;
  store_options.dynamodb.endpoint = args.dynamodb_endpoint;
  store_options.dynamodb.region = "us-east-1";
  store_options.dynamodb.credentials = credentials;

  Counters counters;
  native::KinesisStream source(args.stream, kinesis);
  CountingStore store(native::open_checkpoint_store(args.store_uri, store_options), counters);
  native::WorkerOptions options;
  options.application = args.application;
  options.idle_time_between_reads = args.idle_time;
  options.leases.worker_id = args.worker_id;
  options.leases.failover_time = args.failover;
  options.leases.max_leases_to_steal = args.max_leases_to_steal;
  native::Worker worker(source, store, [&](const std::string&) { return std::make_unique<BenchProcessor>(counters); },
                        options);

  std::atomic<bool> done{false};
  std::thread stats([&] {
    while (!done) {
      report_counts(counters);
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
  });
  std::thread terminator([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (!done) worker.request_shutdown();
  });
  int rc = 0;
  try {
    worker.run();
  } catch (const std::exception& e) {
    log_error("lease_scale worker ", args.worker_id, ": ", e.what());
    rc = 1;
  }
  done = true;
  report_counts(counters);
  ::kill(::getpid(), SIGTERM);  // wakes the sigwait thread (the signal is blocked: no exit)
  terminator.join();
  stats.join();
  return rc;
}

}  // namespace kclpp::bench
