// Reliability of the native worker against kinesalite (issue #3 §7):
//  - KillNineWhileRecordsFlow: a producer puts numbered records continuously while a
//    processor process (reliability_processor.cpp, kclpp::main in native mode, SQLite
//    checkpoints) is SIGKILLed at random moments and restarted, at least 20 rounds; every
//    record put is processed, re-deliveries after a restart start right after the durable
//    checkpoint and stay within one batch per shard, and the checkpoint never runs ahead of
//    what was durably processed.
//  - EveryRecordExactlyOnceThroughAFaultInjectingProxy: an in-process HTTP proxy in front
//    of kinesalite injects throttling, 500s, connection resets, slow replies and expired
//    iterators into a random share of the calls; an in-process Worker still delivers every
//    record exactly once, in order per shard.
// Both print their seed; set KCLPP_TEST_SEED=N to replay one
// (and KCLPP_RELIABILITY_FAULT_RATE=0..1 to change the proxy's fault share, 0.3).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/processor/error.hpp"
#include "fake_http_server.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"
#include "../test_seed.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::ExtendedSequenceNumber;
using kclpp::SequenceNumber;
using aws::KinesisClient;
using aws::PutRecordsEntry;
using kclpp::test::close_with_reset;
using kclpp::test::HttpRequest;
using kclpp::test::HttpRequestReader;
using kclpp::test::Kinesalite;
using kclpp::test::KinesisServer;
using kclpp::test::send_all;
using kclpp::test::Subprocess;
using SteadyClock = std::chrono::steady_clock;

std::filesystem::path make_temp_dir(const std::string& name) {
  static std::atomic<int> counter{0};
  const auto dir = std::filesystem::temp_directory_path() /
                   ("kclpp-reliability-" + name + "-" + std::to_string(::getpid()) + "-" +
                    std::to_string(counter++));
  std::filesystem::create_directories(dir);
  return dir;
}

// --- producer ------------------------------------------------------------------------------

// One record the producer put, as the service acknowledged it.
struct PutRecord {
  SequenceNumber seq;
  std::string data;
};

// Puts numbered records ("p0", "p1", ...) with PutRecords from its own thread, straight to
// the server, until stop(); remembers where each one landed. Entries the service rejects
// are put again. A put call that fails as a whole (in doubt) is counted: its records may or
// may not be in the stream. Thread safety: stop() and the accessors from the test thread.
class Producer {
 public:
  Producer(aws::KinesisOptions options, std::string stream, std::uint64_t seed,
           std::chrono::milliseconds pause, int max_batch)
      : client_(std::move(options)), stream_(std::move(stream)), rng_(seed), pause_(pause),
        max_batch_(max_batch) {
    thread_ = std::thread([this] { run(); });
  }
  ~Producer() { stop(); }
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Blocks until at least n records were acknowledged (or the timeout).
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      if (acknowledged() >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  std::size_t acknowledged() {
    const std::lock_guard lock(mutex_);
    return acknowledged_;
  }
  // After stop(): per shard, in stream order.
  std::map<std::string, std::vector<PutRecord>> by_shard() {
    const std::lock_guard lock(mutex_);
    auto copy = put_;
    for (auto& [shard, records] : copy) {
      std::sort(records.begin(), records.end(),
                [](const PutRecord& a, const PutRecord& b) { return a.seq < b.seq; });
    }
    return copy;
  }
  [[nodiscard]] int failed_calls() const noexcept { return failed_calls_.load(); }
  [[nodiscard]] std::string last_error() {
    const std::lock_guard lock(mutex_);
    return last_error_;
  }

 private:
  void run() {
    std::vector<PutRecordsEntry> pending;
    std::uniform_int_distribution<int> batch(1, max_batch_);
    while (!stop_) {
      const int n = batch(rng_);
      for (int i = 0; i < n; ++i) {
        const std::uint64_t number = next_++;
        pending.push_back({"p" + std::to_string(number), "key-" + std::to_string(rng_()), {}});
      }
      try {
        const auto results = client_.put_records(stream_, pending);
        std::vector<PutRecordsEntry> rejected;
        const std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < results.size() && i < pending.size(); ++i) {
          if (results[i].ok()) {
            put_[results[i].shard_id].push_back({SequenceNumber(results[i].sequence_number), pending[i].data});
            ++acknowledged_;
          } else {
            rejected.push_back(std::move(pending[i]));
          }
        }
        pending = std::move(rejected);
      } catch (const kclpp::Error& e) {
        ++failed_calls_;
        const std::lock_guard lock(mutex_);
        last_error_ = e.what();
        pending.clear();
      }
      std::this_thread::sleep_for(pause_);
    }
  }

  KinesisClient client_;
  std::string stream_;
  std::mt19937_64 rng_;
  std::chrono::milliseconds pause_;
  int max_batch_;
  std::uint64_t next_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_calls_{0};
  std::mutex mutex_;  // guards put_, acknowledged_, last_error_
  std::string last_error_;
  std::map<std::string, std::vector<PutRecord>> put_;
  std::size_t acknowledged_ = 0;
  std::thread thread_;
};

// --- kill -9 rounds ------------------------------------------------------------------------

// One line of the processor's durable output (see reliability_processor.cpp).
struct ProcessedLine {
  int round = 0;
  std::string shard;
  SequenceNumber seq;
  std::int64_t sub = 0;
  std::string data;
};

struct ProcessedFile {
  std::vector<ProcessedLine> lines;
  int torn = 0;  // lines cut by a SIGKILL in the middle of a write()
};

ProcessedFile read_processed(const std::filesystem::path& path) {
  ProcessedFile out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string tag;
    std::string round;
    std::string seq;
    std::string sub;
    ProcessedLine p;
    std::string extra;
    if (!(fields >> tag >> round >> p.shard >> seq >> sub >> p.data) || (fields >> extra) || tag != "R" ||
        !SequenceNumber::valid(seq) || p.data.size() < 2 || p.data[0] != 'p') {
      ++out.torn;
      continue;
    }
    p.round = std::stoi(round);
    p.seq = SequenceNumber(seq);
    p.sub = std::stoll(sub);
    out.lines.push_back(std::move(p));
  }
  return out;
}

// The processor makes each batch durable, then checkpoints at its last record. Per round r
// and shard, with C the checkpoint in the store when round r starts (read after round r-1
// was killed) and L the last record that rounds before r processed:
//  - after each kill, the checkpoint is a record in the processor's durable output (so
//    never ahead of the processing);
//  - round r delivers C+1, C+2, ... in stream order: nothing at or before C again, no gap;
//  - its re-deliveries are the records of (C, L] it got to, and L - C <= max_records (the
//    one batch a kill can catch between its write and its checkpoint);
//  - in the end every record put was processed, and after SIGTERM (exit code 0) every
//    shard's checkpoint is its last record.
// How a kill -9 run reads: polling on kinesalite, or enhanced fan-out on kinesis-local.
struct KillNineMode {
  KinesisServer server;
  std::vector<std::string> extra_args;
  int rounds;
  int min_lifetime_ms;
  int max_lifetime_ms;
  // The most records one batch can hold: what a kill can catch between a batch's durable
  // write and its checkpoint. Polling: --max-records. Fan-out: an event holds what arrived
  // since kinesis-local's previous poll of its store (about a second of the producer's
  // records, more after a restart's backlog).
  int max_batch;
};

void kill_nine_while_records_flow(const KillNineMode& mode);

TEST(ReliabilityTest, KillNineWhileRecordsFlow) {
  kill_nine_while_records_flow({KinesisServer::Kinesalite, {}, 30, 50, 700, 40});
}

// The same with enhanced fan-out (SubscribeToShard over HTTP/2), on kinesis-local: a killed
// worker's subscriptions die with its connections, the next one subscribes again from the
// checkpoint. Rounds live longer: kinesis-local pushes an event about once a second.
TEST(ReliabilityTest, KillNineWhileRecordsFlowWithFanOut) {
  kill_nine_while_records_flow(
      {KinesisServer::KinesisLocal, {"--fan-out", "--consumer-name", "reliability-efo"}, 6, 1500, 5000, 1000});
}

void kill_nine_while_records_flow(const KillNineMode& mode) {
  const kclpp::test::TestSeed test_seed;
  const std::uint64_t seed = test_seed.value();
  std::mt19937_64 rng(seed);

  Kinesalite server(mode.server);
  KCLPP_REQUIRE_SERVER(server);
  const std::string stream = "reliability-kill";
  const std::string application = "reliability";
  {
    KinesisClient admin(server.client_options());
    admin.create_stream(stream, 2);
    admin.wait_for_active(stream, 10s);
  }
  const auto dir = make_temp_dir("kill");
  const auto out_path = dir / "processed.log";
  const std::string store_uri = "sqlite:" + (dir / "checkpoints.db").string();
  constexpr int max_records = 40;  // GetRecords' limit when polling
  const int max_batch = mode.max_batch;  // the bound on re-deliveries per shard and round
  const int rounds = mode.rounds;
  // Between the durable write of a batch and its checkpoint (see reliability_processor.cpp).
  constexpr int pause_ms = 40;

  std::vector<std::string> argv{KCLPP_RELIABILITY_PROCESSOR,
                                      "--stream", stream,
                                      "--endpoint", server.endpoint(),
                                      "--region", "us-east-1",
                                      "--application", application,
                                      "--checkpoint-store", store_uri,
                                      "--initial-position", "TRIM_HORIZON",
                                      "--max-records", std::to_string(max_records),
                                      "--idle-time-ms", "50",
                                      "--shutdown-grace-ms", "5000"};
  argv.insert(argv.end(), mode.extra_args.begin(), mode.extra_args.end());
  auto spawn = [&](int round) {
    kclpp::test::SpawnOptions options;
    options.env = {"KCLPP_RELIABILITY_OUT=" + out_path.string(), "KCLPP_RELIABILITY_ROUND=" + std::to_string(round),
                   "AWS_ACCESS_KEY_ID=AKIDKCLPPTEST", "AWS_SECRET_ACCESS_KEY=kclpp-test-secret",
                   "AWS_SESSION_TOKEN=", "KCLPP_LOG_LEVEL=warn",
                   "KCLPP_RELIABILITY_PAUSE_MS=" + std::to_string(pause_ms)};
    return std::make_unique<Subprocess>(argv, options);
  };

  // About 200 records/s; the reader does up to 5 x 40 records/s per shard.
  Producer producer(server.client_options(), stream, seed ^ 0x9e3779b97f4a7c15ULL, 25ms, 10);
  ASSERT_TRUE(producer.wait_for(20, 10s)) << producer.last_error();

  // checkpoints[r]: the store's content after round r was killed (index 0: before round 1).
  std::vector<std::map<std::string, ExtendedSequenceNumber>> checkpoints(1);
  std::vector<int> alive_ms(1, 0);
  std::uniform_int_distribution<int> lifetime(mode.min_lifetime_ms, mode.max_lifetime_ms);
  const auto started = SteadyClock::now();
  for (int round = 1; round <= rounds; ++round) {
    const int ms = lifetime(rng);
    alive_ms.push_back(ms);
    auto process = spawn(round);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    const auto early = process->wait(0ms);
    ASSERT_FALSE(early.has_value()) << "round " << round << ": the processor ended by itself ("
                                    << early->str() << "):\n" << process->stderr_text();
    process->kill();  // SIGKILL + reap

    // After every kill: the checkpoint is a record that is durably processed (so never
    // ahead of the processing).
    std::map<std::string, ExtendedSequenceNumber> stored;
    {
      auto store = kclpp::native::open_checkpoint_store(store_uri);
      stored = store->load_all(application, stream);
    }
    const ProcessedFile file = read_processed(out_path);
    for (const auto& [shard, position] : stored) {
      // A sentinel (the lease's start, TRIM_HORIZON) means nothing was checkpointed yet: a
      // fan-out round can be killed before its first event.
      if (position.is_sentinel()) continue;
      const bool processed = std::any_of(file.lines.begin(), file.lines.end(), [&](const ProcessedLine& l) {
        return l.shard == shard && l.seq == position.sequence_number() && l.sub == position.sub_sequence_number();
      });
      EXPECT_TRUE(processed) << "round " << round << ": the checkpoint of " << shard << " ("
                             << position.str() << ") is not a record the processor durably processed";
    }
    checkpoints.push_back(std::move(stored));
  }

  // Last run: no more records, let it catch up, then SIGTERM.
  producer.stop();
  EXPECT_EQ(producer.failed_calls(), 0) << producer.last_error();
  const auto put = producer.by_shard();
  std::size_t total_put = 0;
  for (const auto& [shard, records] : put) total_put += records.size();
  ASSERT_EQ(put.size(), 2u) << "the producer's records all landed on one shard";

  const int final_round = rounds + 1;
  auto last = spawn(final_round);
  auto all_processed = [&] {
    std::map<std::string, std::set<std::string>> seen;
    for (const auto& l : read_processed(out_path).lines) seen[l.shard].insert(l.seq.str());
    for (const auto& [shard, records] : put) {
      for (const auto& r : records) {
        if (seen[shard].count(r.seq.str()) == 0) return false;
      }
    }
    return true;
  };
  const auto catch_up_deadline = SteadyClock::now() + 60s;
  while (!all_processed() && SteadyClock::now() < catch_up_deadline) std::this_thread::sleep_for(100ms);
  if (!all_processed()) {
    const std::string log = last->stderr_text();
    ADD_FAILURE() << "the last round did not catch up within 60 s; its stderr ends:\n"
                  << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
  }
  ASSERT_EQ(::kill(last->pid(), SIGTERM), 0);
  const auto status = last->wait(20s);
  ASSERT_TRUE(status.has_value()) << "no exit within 20 s of SIGTERM:\n" << last->stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << last->stderr_text();
  {
    auto store = kclpp::native::open_checkpoint_store(store_uri);
    checkpoints.push_back(store->load_all(application, stream));
  }
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();

  // --- analysis ---------------------------------------------------------------------------
  const ProcessedFile file = read_processed(out_path);
  // Index of each put record in its shard's order.
  std::map<std::string, std::map<std::string, std::size_t>> index;
  for (const auto& [shard, records] : put) {
    for (std::size_t i = 0; i < records.size(); ++i) index[shard][records[i].seq.str()] = i;
  }
  // Per shard: how often each record was processed, the largest index processed so far.
  std::map<std::string, std::vector<int>> times;
  for (const auto& [shard, records] : put) times[shard].assign(records.size(), 0);
  std::map<std::string, long> largest;  // -1: none yet
  for (const auto& [shard, records] : put) largest[shard] = -1;

  int total_duplicates = 0;
  int max_duplicates = 0;
  int rounds_with_duplicates = 0;
  std::ostringstream table;
  for (int round = 1; round <= final_round; ++round) {
    table << "round " << round << " (" << (round == final_round ? std::string("until SIGTERM")
                                                                : std::to_string(alive_ms[static_cast<std::size_t>(round)]) + " ms")
          << "):";
    for (const auto& [shard, records] : put) {
      // What this round delivered for the shard, in order.
      std::vector<std::size_t> delivered;
      for (const auto& l : file.lines) {
        if (l.round != round || l.shard != shard) continue;
        ASSERT_EQ(l.sub, 0) << "no aggregates are put";
        const auto it = index[shard].find(l.seq.str());
        ASSERT_NE(it, index[shard].end()) << "round " << round << " processed " << shard << " " << l.seq.str()
                                          << " (" << l.data << "), a record the producer never put";
        EXPECT_EQ(records[it->second].data, l.data) << shard << " " << l.seq.str();
        delivered.push_back(it->second);
      }
      // Where this round must start: right after the checkpoint its start found.
      const auto& before = checkpoints[static_cast<std::size_t>(round - 1)];
      const auto cp = before.find(shard);
      long checkpoint_index = -1;
      if (cp != before.end() && !cp->second.is_sentinel()) {
        const auto at = index[shard].find(cp->second.sequence_number().str());
        ASSERT_NE(at, index[shard].end()) << "round " << round << ": " << shard << " checkpointed at "
                                          << cp->second.str() << ", a record the producer never put";
        checkpoint_index = static_cast<long>(at->second);
      }
      // The un-checkpointed tail left by the previous round: at most one batch.
      const long tail = largest[shard] - checkpoint_index;
      EXPECT_LE(tail, max_batch) << "round " << round << ", " << shard << ": " << tail
                                   << " records were processed after the durable checkpoint";
      int duplicates = 0;
      for (std::size_t k = 0; k < delivered.size(); ++k) {
        const long expected = k == 0 ? checkpoint_index + 1 : static_cast<long>(delivered[k - 1]) + 1;
        EXPECT_EQ(static_cast<long>(delivered[k]), expected)
            << "round " << round << ", " << shard << ": delivery #" << k << " is record " << delivered[k]
            << " of the shard, expected " << expected << (k == 0 ? " (right after the checkpoint)" : " (in order)");
        if (static_cast<long>(delivered[k]) <= largest[shard]) ++duplicates;
      }
      // Re-deliveries are exactly the un-checkpointed tail (or its beginning, when the
      // round was killed before it got through it): within one batch.
      EXPECT_LE(duplicates, std::max<long>(tail, 0)) << "round " << round << ", " << shard;
      EXPECT_LE(duplicates, max_batch) << "round " << round << ", " << shard;
      for (const std::size_t i : delivered) {
        ++times[shard][i];
        largest[shard] = std::max(largest[shard], static_cast<long>(i));
      }
      total_duplicates += duplicates;
      max_duplicates = std::max(max_duplicates, duplicates);
      if (duplicates > 0) ++rounds_with_duplicates;
      table << " " << shard << " +" << delivered.size() << " dup " << duplicates << " tail "
            << std::max<long>(tail, 0) << ";";
    }
    table << "\n";
  }
  for (const auto& [shard, counts] : times) {
    for (std::size_t i = 0; i < counts.size(); ++i) {
      EXPECT_GE(counts[i], 1) << shard << " record " << i << " (" << put.at(shard)[i].data << ", "
                              << put.at(shard)[i].seq.str() << ") was never processed";
    }
  }
  // After the clean shutdown every shard is checkpointed at its last record.
  for (const auto& [shard, records] : put) {
    const auto& final_checkpoints = checkpoints.back();
    const auto cp = final_checkpoints.find(shard);
    ASSERT_NE(cp, final_checkpoints.end()) << shard;
    EXPECT_EQ(cp->second.sequence_number(), records.back().seq) << shard;
  }
  std::cout << table.str();
  std::cout << "[ figures  ] " << rounds << " SIGKILL rounds + 1 SIGTERM, " << total_put << " records put, "
            << file.lines.size() << " processed, " << total_duplicates << " re-delivered (max " << max_duplicates
            << " per round and shard, " << rounds_with_duplicates << " round/shard pairs with any; bound "
            << max_batch << "), " << file.torn << " torn lines, " << seconds << " s" << std::endl;
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

// --- fault-injecting proxy -----------------------------------------------------------------

enum class Fault {
  None,
  Throttle,       // 400 ProvisionedThroughputExceededException, not forwarded
  Error500,       // 500 InternalFailure, not forwarded
  Error500After,  // forwarded, then the reply replaced by a 500
  ResetBefore,    // connection reset, not forwarded
  ResetAfter,     // forwarded, then the connection reset instead of the reply
  Slow,           // forwarded, the reply sent after the client's timeout
  Truncated,      // forwarded, then half of the reply's body sent and the connection closed
  ExpiredBefore,  // GetRecords only: 400 ExpiredIteratorException, not forwarded
  ExpiredAfter,   // GetRecords only: forwarded (records read), then ExpiredIteratorException
};
constexpr int fault_kinds = 10;

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::None: return "none";
    case Fault::Throttle: return "throttle";
    case Fault::Error500: return "500";
    case Fault::Error500After: return "500-after-forward";
    case Fault::ResetBefore: return "reset";
    case Fault::ResetAfter: return "reset-after-forward";
    case Fault::Slow: return "slow";
    case Fault::Truncated: return "truncated";
    case Fault::ExpiredBefore: return "expired-iterator";
    case Fault::ExpiredAfter: return "expired-iterator-after-forward";
  }
  return "?";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Which faults a FaultProxy injects, and how often.
struct FaultPlan {
  // Share of the GetRecords requests, and of the other requests, that get a fault.
  double get_records_rate = 0.3;
  double other_rate = 0.3;
  // The kinds drawn from (each kind once per shuffled deck). Empty: every kind that
  // applies (expired iterators only for GetRecords).
  std::vector<Fault> get_records_faults;
  std::vector<Fault> other_faults;
  // How late a Slow reply comes (make it longer than the client's timeout).
  std::chrono::milliseconds slow_delay{1'000};
};

struct ProxyReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

// An HTTP/1.1 proxy on 127.0.0.1 and an ephemeral port in front of one upstream server:
// a thread per client connection (each shard's client keeps its own connection alive),
// each request forwarded on a fresh upstream connection, unless the fault chosen for it
// (at random, with a seed, for a `rate` share of the requests) says otherwise. The
// destructor stops and joins every thread. Thread safety: counts() from any thread.
class FaultProxy {
 public:
  FaultProxy(int upstream_port, std::uint64_t seed, FaultPlan plan)
      : upstream_port_(upstream_port), rng_(seed), plan_(std::move(plan)) {
    if (plan_.get_records_faults.empty()) {
      for (int f = 1; f < fault_kinds; ++f) plan_.get_records_faults.push_back(static_cast<Fault>(f));
    }
    if (plan_.other_faults.empty()) {
      for (int f = 1; f < fault_kinds - 2; ++f) plan_.other_faults.push_back(static_cast<Fault>(f));
    }
    int port = 0;
    listen_fd_ = kclpp::test::listen_on_loopback(64, port, "FaultProxy");
    endpoint_ = "http://127.0.0.1:" + std::to_string(port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~FaultProxy() {
    stop_ = true;
    if (accept_thread_.joinable()) accept_thread_.join();
    for (auto& c : connections_) {
      if (c.thread.joinable()) c.thread.join();
    }
    ::close(listen_fd_);
  }
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  // Requests per operation and fault.
  [[nodiscard]] std::map<std::string, std::map<std::string, int>> counts() const {
    const std::lock_guard lock(mutex_);
    return counts_;
  }
  [[nodiscard]] int upstream_failures() const noexcept { return upstream_failures_.load(); }

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      // Join the threads of connections that ended (keeps the list short).
      for (auto it = connections_.begin(); it != connections_.end();) {
        if (it->done) {
          it->thread.join();
          it = connections_.erase(it);
        } else {
          ++it;
        }
      }
      Connection& c = connections_.emplace_back();
      c.thread = std::thread([this, fd, &c] {
        serve(fd);
        c.done = true;
      });
    }
  }

  // A share of the requests, at random, get a fault; which one comes from a shuffled deck
  // of the plan's kinds (per operation family), so that each kind is injected once every
  // few faults rather than maybe never in a short run.
  Fault choose(const std::string& op) {
    const std::lock_guard lock(mutex_);
    Fault fault = Fault::None;
    const bool get_records = op == "GetRecords";
    const double rate = get_records ? plan_.get_records_rate : plan_.other_rate;
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < rate) {
      std::vector<Fault>& deck = get_records ? get_records_deck_ : other_deck_;
      if (deck.empty()) {
        deck = get_records ? plan_.get_records_faults : plan_.other_faults;
        std::shuffle(deck.begin(), deck.end(), rng_);
      }
      fault = deck.back();
      deck.pop_back();
    }
    ++counts_[op][fault_name(fault)];
    return fault;
  }

  // Waits for input in short slices so that stop_ is honoured; false on stop or deadline.
  bool wait_readable(int fd, SteadyClock::time_point deadline) const {
    while (!stop_ && SteadyClock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
    }
    return false;
  }

  // Forwards on a fresh upstream connection ("Connection: close"); nullopt on failure.
  std::optional<ProxyReply> forward(const HttpRequest& req) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return std::nullopt;
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(upstream_port_));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return std::nullopt;
    std::string out = req.method + " " + req.path + " HTTP/1.1\r\n";
    for (const auto& [name, value] : req.headers) {
      if (name == "connection" || name == "expect" || name == "content-length") continue;
      out += name + ": " + value + "\r\n";
    }
    out += "Content-Length: " + std::to_string(req.body.size()) + "\r\nConnection: close\r\n\r\n" + req.body;
    if (!send_all(fd, out)) return std::nullopt;
    std::string in;
    char chunk[65536];
    const auto deadline = SteadyClock::now() + 10s;
    for (;;) {
      if (!wait_readable(fd, deadline)) return std::nullopt;
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0) return std::nullopt;
      if (n == 0) break;
      in.append(chunk, static_cast<std::size_t>(n));
    }
    const std::size_t head_end = in.find("\r\n\r\n");
    if (head_end == std::string::npos || in.compare(0, 5, "HTTP/") != 0) return std::nullopt;
    ProxyReply reply;
    reply.status = std::atoi(in.c_str() + in.find(' ') + 1);
    reply.content_type = "application/x-amz-json-1.1";
    std::optional<std::size_t> content_length;
    bool chunked = false;
    std::istringstream head(in.substr(0, head_end));
    std::string line;
    std::getline(head, line);  // status line
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string name = lower(line.substr(0, colon));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (name == "content-type") reply.content_type = value;
      if (name == "content-length") content_length = std::stoul(value);
      if (name == "transfer-encoding" && lower(value).find("chunked") != std::string::npos) chunked = true;
    }
    std::string rest = in.substr(head_end + 4);
    if (chunked) {
      std::size_t pos = 0;
      for (;;) {
        const std::size_t eol = rest.find("\r\n", pos);
        if (eol == std::string::npos) return std::nullopt;
        const std::size_t size = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
        if (size == 0) break;
        if (eol + 2 + size > rest.size()) return std::nullopt;
        reply.body.append(rest, eol + 2, size);
        pos = eol + 2 + size + 2;
      }
    } else if (content_length) {
      if (rest.size() < *content_length) return std::nullopt;
      reply.body = rest.substr(0, *content_length);
    } else {
      reply.body = std::move(rest);
    }
    return reply;
  }

  static bool send_reply(int fd, const ProxyReply& reply) {
    return send_all(fd, kclpp::test::http_response(reply.status, reply.content_type, reply.body));
  }
  static ProxyReply aws_error(int status, const std::string& type) {
    return {status, "application/x-amz-json-1.1",
            R"({"__type":")" + type + R"(","message":"injected by the kclpp reliability test"})"};
  }
  void serve(int fd) {
    HttpRequestReader reader(fd, [this, fd] { return wait_readable(fd, SteadyClock::now() + 60s); });
    for (;;) {
      const std::optional<HttpRequest> request = reader.next();
      if (!request) return (void)::close(fd);
      const HttpRequest& req = *request;
      const std::string target = req.header("x-amz-target");
      const std::string op = target.substr(target.find('.') + 1);
      const Fault fault = choose(op);
      ProxyReply reply;
      switch (fault) {
        case Fault::Throttle:
          reply = aws_error(400, "ProvisionedThroughputExceededException");
          break;
        case Fault::Error500:
          reply = aws_error(500, "InternalFailure");
          break;
        case Fault::ResetBefore:
          return close_with_reset(fd);
        case Fault::ExpiredBefore:
          reply = aws_error(400, "ExpiredIteratorException");
          break;
        default: {
          auto forwarded = forward(req);
          if (!forwarded) {
            ++upstream_failures_;
            reply = aws_error(503, "ServiceUnavailable");
            break;
          }
          reply = std::move(*forwarded);
          if (fault == Fault::ResetAfter) return close_with_reset(fd);
          if (fault == Fault::Truncated) {
            // The whole reply's head, then half its body.
            const std::string whole = kclpp::test::http_response(200, reply.content_type, reply.body);
            send_all(fd, std::string_view(whole).substr(0, whole.size() - (reply.body.size() + 1) / 2));
            return (void)::close(fd);
          }
          if (fault == Fault::Error500After) reply = aws_error(500, "InternalFailure");
          if (fault == Fault::ExpiredAfter) reply = aws_error(400, "ExpiredIteratorException");
          if (fault == Fault::Slow) {
            const auto until = SteadyClock::now() + plan_.slow_delay;
            while (!stop_ && SteadyClock::now() < until) std::this_thread::sleep_for(5ms);
          }
        }
      }
      if (stop_ || !send_reply(fd, reply)) return (void)::close(fd);
    }
  }

  int upstream_port_;
  int listen_fd_ = -1;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> upstream_failures_{0};
  mutable std::mutex mutex_;  // guards rng_, the decks, counts_
  std::mt19937_64 rng_;
  FaultPlan plan_;  // const after the constructor
  std::vector<Fault> get_records_deck_;
  std::vector<Fault> other_deck_;
  std::map<std::string, std::map<std::string, int>> counts_;
  std::thread accept_thread_;
  std::list<Connection> connections_;  // owned by the accept thread until the destructor
};

// Every record handed to the processors, per shard in order, and how often each shard's
// processor was (re)started. Thread-safe.
class Delivered {
 public:
  void add(const std::string& shard, const kclpp::Record& r) {
    const std::lock_guard lock(mutex_);
    records_[shard].push_back({r.sequence_number, r.data});
    ++count_;
  }
  void started(const std::string& shard) {
    const std::lock_guard lock(mutex_);
    ++starts_[shard];
  }
  std::size_t count() {
    const std::lock_guard lock(mutex_);
    return count_;
  }
  std::map<std::string, std::vector<PutRecord>> records() {
    const std::lock_guard lock(mutex_);
    return records_;
  }
  std::map<std::string, int> starts() {
    const std::lock_guard lock(mutex_);
    return starts_;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<PutRecord>> records_;
  std::map<std::string, int> starts_;
  std::size_t count_ = 0;
};

enum class Checkpoints { EveryBatch, Never };

class RecordingProcessor final : public kclpp::RecordProcessor {
 public:
  RecordingProcessor(Delivered& delivered, Checkpoints checkpoints)
      : delivered_(delivered), checkpoints_(checkpoints) {}
  void initialize(const std::string& shard_id, const ExtendedSequenceNumber&) override {
    shard_ = shard_id;
    delivered_.started(shard_);
  }
  void process_records(const kclpp::RecordBatch& batch, kclpp::Checkpointer& checkpointer) override {
    for (const auto& r : batch.records) delivered_.add(shard_, r);
    if (checkpoints_ == Checkpoints::EveryBatch && !batch.records.empty()) {
      checkpointer.checkpoint(batch.records.back());
    }
  }
  void shutdown_requested(kclpp::Checkpointer& checkpointer) override {
    if (checkpoints_ == Checkpoints::EveryBatch) checkpointer.checkpoint();
  }

 private:
  Delivered& delivered_;
  Checkpoints checkpoints_;
  std::string shard_;
};

struct ProxyRun {
  std::string name;  // of the stream, the application and the output
  int shards = 4;
  FaultPlan plan;
  Checkpoints checkpoints = Checkpoints::EveryBatch;
  std::chrono::milliseconds request_timeout{300};
  kclpp::RetryPolicy read_retry{6, std::chrono::milliseconds{10}, std::chrono::milliseconds{200},
                                std::chrono::milliseconds{50}};
  std::chrono::milliseconds produce_for{8'000};
  // Fault kinds that must have been injected at least once (the run exercised them).
  std::vector<Fault> must_inject;
};

// Runs an in-process Worker reading `run.shards` shards of kinesalite through a FaultProxy
// while a producer puts records straight into kinesalite; once every record was delivered
// (or 90 s passed) shuts it down, and checks that each shard's processors got exactly the
// records put, in order: no loss, no duplicate. Prints the faults and figures.
void run_through_proxy(const ProxyRun& run) {
  const kclpp::test::TestSeed test_seed;
  const std::uint64_t seed = test_seed.value();

  Kinesalite server;
  KCLPP_REQUIRE_SERVER(server);
  const std::string& stream = run.name;
  {
    KinesisClient admin(server.client_options());
    admin.create_stream(stream, run.shards);
    admin.wait_for_active(stream, 10s);
  }
  const int upstream_port = std::stoi(server.endpoint().substr(server.endpoint().rfind(':') + 1));
  FaultPlan plan = run.plan;
  // KCLPP_RELIABILITY_FAULT_RATE=0..1 overrides the share of requests that get a fault.
  if (const char* rate = std::getenv("KCLPP_RELIABILITY_FAULT_RATE"); rate != nullptr && *rate != '\0') {
    plan.get_records_rate = plan.other_rate = std::strtod(rate, nullptr);
  }
  std::cout << "[ faults   ] GetRecords " << plan.get_records_rate << ", other calls " << plan.other_rate
            << std::endl;
  FaultProxy proxy(upstream_port, seed, plan);

  aws::KinesisOptions client = server.client_options();
  client.endpoint = proxy.endpoint();
  client.connect_timeout = 500ms;
  client.request_timeout = run.request_timeout;
  kclpp::native::KinesisStream source(stream, client);
  auto store = kclpp::native::open_checkpoint_store("memory:");
  Delivered delivered;
  kclpp::native::WorkerOptions options;
  options.application = run.name;
  options.initial_position = aws::StartPosition::trim_horizon();
  options.max_records = 20;  // many small reads: many faults in the middle of the stream
  options.idle_time_between_reads = 50ms;
  options.shutdown_grace = 5s;
  options.read_retry = run.read_retry;
  const Checkpoints checkpoints = run.checkpoints;
  kclpp::native::Worker worker(
      source, *store,
      [&](const std::string&) { return std::make_unique<RecordingProcessor>(delivered, checkpoints); }, options);

  const auto started = SteadyClock::now();
  Producer producer(server.client_options(), stream, seed ^ 0x5851f42d4c957f2dULL, 20ms, 8);
  std::exception_ptr worker_error;
  std::thread runner([&] {
    try {
      worker.run();
    } catch (...) {
      worker_error = std::current_exception();
    }
  });
  std::this_thread::sleep_for(run.produce_for);
  producer.stop();
  const auto put = producer.by_shard();
  std::size_t total_put = 0;
  for (const auto& [shard, records] : put) total_put += records.size();
  const auto deadline = SteadyClock::now() + 90s;
  while (delivered.count() < total_put && SteadyClock::now() < deadline && !worker_error) {
    std::this_thread::sleep_for(50ms);
  }
  // A little longer: duplicates arriving after the last new record would show up too.
  std::this_thread::sleep_for(500ms);
  worker.request_shutdown();
  runner.join();
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();

  if (worker_error) {
    try {
      std::rethrow_exception(worker_error);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "Worker::run threw: " << e.what();
    }
  }
  EXPECT_EQ(producer.failed_calls(), 0) << producer.last_error();
  ASSERT_EQ(put.size(), static_cast<std::size_t>(run.shards)) << "the producer's records did not reach every shard";
  const auto got = delivered.records();
  for (const auto& [shard, expected] : put) {
    const auto it = got.find(shard);
    ASSERT_NE(it, got.end()) << shard << ": nothing delivered";
    const auto& actual = it->second;
    // Exactly the records put, in order: no loss, no duplicate, no reordering.
    std::size_t k = 0;
    for (; k < std::min(actual.size(), expected.size()); ++k) {
      if (!(actual[k].seq == expected[k].seq) || actual[k].data != expected[k].data) break;
    }
    EXPECT_EQ(k, expected.size()) << shard << ": deliveries diverge at #" << k << " (got "
                                  << (k < actual.size() ? actual[k].seq.str() + " " + actual[k].data : "nothing")
                                  << ", expected "
                                  << (k < expected.size() ? expected[k].seq.str() + " " + expected[k].data : "nothing")
                                  << ")";
    EXPECT_EQ(actual.size(), expected.size()) << shard << ": " << actual.size() << " deliveries for "
                                              << expected.size() << " records";
  }
  const auto counts = proxy.counts();
  std::map<std::string, int> by_fault;
  int requests = 0;
  std::ostringstream table;
  for (const auto& [op, faults] : counts) {
    table << "  " << op << ":";
    for (const auto& [fault, n] : faults) {
      table << " " << fault << "=" << n;
      by_fault[fault] += n;
      requests += n;
    }
    table << "\n";
  }
  std::ostringstream starts;
  for (const auto& [shard, n] : delivered.starts()) starts << " " << shard << "=" << n;
  std::cout << "[ faults   ] " << requests << " requests through the proxy, " << proxy.upstream_failures()
            << " upstream failures:\n"
            << table.str() << "[ starts   ] processor starts per shard:" << starts.str() << "\n"
            << "[ figures  ] " << total_put << " records put, " << delivered.count() << " delivered in "
            << seconds << " s" << std::endl;
  for (const Fault f : run.must_inject) {
    EXPECT_GT(by_fault[fault_name(f)], 0) << "no '" << fault_name(f) << "' fault was injected";
  }
}

// Every kind of fault on every call, 30% of the calls: the processors, which checkpoint
// every batch, get every record exactly once, in order.
TEST(ReliabilityTest, EveryRecordExactlyOnceThroughAFaultInjectingProxy) {
  ProxyRun run;
  run.name = "reliability-faults";
  run.plan.slow_delay = run.request_timeout * 3;
  for (int f = 1; f < fault_kinds; ++f) run.must_inject.push_back(static_cast<Fault>(f));
  run_through_proxy(run);
}

// Expired iterators while re-creating them is throttled or failing, for processors that
// never checkpoint: an iterator must be re-created after the last record handed to the
// processor however long that takes, never by restarting the shard from its (absent)
// checkpoint, which would deliver everything again.
TEST(ReliabilityTest, ExpiredIteratorsWithFailingGetShardIterator) {
  ProxyRun run;
  run.name = "reliability-expiry";
  run.shards = 2;
  run.checkpoints = Checkpoints::Never;
  run.produce_for = 5s;
  run.read_retry.max_attempts = 3;
  run.plan.get_records_rate = 0.25;
  run.plan.get_records_faults = {Fault::ExpiredBefore, Fault::ExpiredAfter};
  run.plan.other_rate = 0.6;
  run.plan.other_faults = {Fault::Throttle, Fault::Error500, Fault::ResetBefore, Fault::ResetAfter,
                           Fault::Truncated};
  run.must_inject = {Fault::ExpiredBefore, Fault::ExpiredAfter};
  run_through_proxy(run);
}

}  // namespace
