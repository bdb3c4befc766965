// `kclpp store` end to end (issue #4 §4), as a user runs it, against kinesalite + s3rver
// started by each test and checkpoints in SQLite (or Postgres from the fixture):
//   - a full run: nothing uploaded or checkpointed before the rotation, SIGTERM uploads
//     and checkpoints, every record once, .metadata (shards, records, bytes, sha256),
//     the notify hook, statsd lines on a UDP socket;
//   - rotation by size, and at the interval boundary while the stream is idle;
//   - a bucket that is missing at first (failed uploads: nothing checkpointed, recovery);
//   - a split shard archived to SHARD_END before its children;
//   - resuming from go-triton's triton_checkpoint rows in SQLite and Postgres;
//   - SIGKILL between spool, upload, metadata and checkpoint (a test-only hook,
//     KCLPP_STORE_TEST_CRASH, and a notify hook that blocks): after a restart every record
//     put is in S3, the checkpoint was never ahead of the uploads, duplicates only when
//     the crash fell after an upload, at most one copy more.
// KCLPP_STORE_TEST_VERBOSE=1 prints the restarted store's log in the crash tests.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_support.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/aws/s3_client.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"
#include "kinesalite_fixture.hpp"
#include "postgres_fixture.hpp"
#include "s3rver_fixture.hpp"
#include "support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::SequenceNumber;
using kclpp::test::eventually;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;
namespace pipeline = kclpp::pipeline;

constexpr const char* kStream = "store_stream";  // the real name
constexpr const char* kLogical = "archive";       // its name in the Triton YAML
constexpr const char* kBucket = "archive-bucket";

// statsd lines received on a loopback UDP socket, by a thread joined by the destructor.
class StatsdSink {
 public:
  StatsdSink() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("statsd sink: cannot bind");
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::jthread([this](const std::stop_token& stop) {
      char buffer[65536];
      while (!stop.stop_requested()) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) continue;
        std::istringstream in(std::string(buffer, static_cast<std::size_t>(n)));
        std::lock_guard lock(mutex_);
        for (std::string line; std::getline(in, line);)
          if (!line.empty()) lines_.push_back(line);
      }
    });
  }
  ~StatsdSink() {
    thread_.request_stop();
    thread_.join();
    ::close(fd_);
  }
  StatsdSink(const StatsdSink&) = delete;
  StatsdSink& operator=(const StatsdSink&) = delete;
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  // The sum of the counter `name` ("NAME:V|c").
  [[nodiscard]] long long counter(const std::string& name) const {
    long long sum = 0;
    for (const auto& line : lines()) {
      if (line.rfind(name + ":", 0) != 0 || line.find("|c") == std::string::npos) continue;
      sum += std::stoll(line.substr(name.size() + 1));
    }
    return sum;
  }
  [[nodiscard]] bool has_prefix(const std::string& prefix) const {
    const auto all = lines();
    return std::any_of(all.begin(), all.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  std::jthread thread_;
};

struct Archive {
  std::string key;
  std::string body;
  std::vector<long long> numbers;  // field "n" of each record, in order
  std::optional<pipeline::ArchiveMetadata> metadata;
};

std::string sha256_hex(const std::string& bytes, const TempDir& dir) {
  const std::string path = dir.file("sha-input");
  { std::ofstream(path, std::ios::binary) << bytes; }
  std::FILE* pipe = ::popen(("sha256sum " + path).c_str(), "r");
  if (pipe == nullptr) return {};
  char out[65] = {};
  const std::size_t n = std::fread(out, 1, 64, pipe);
  ::pclose(pipe);
  return std::string(out, n);
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KCLPP_REQUIRE_SERVER(kinesis_);
    KCLPP_REQUIRE_SERVER(s3_);
    s3_.create_bucket(kBucket);
    client_.emplace(kinesis_.client_options());
    client_->create_stream(kStream, 2);
    // Kinesalite activates a new stream asynchronously, even with --createStreamMs 0.
    ASSERT_TRUE(eventually([&] { return client_->describe_stream_summary(kStream).status == "ACTIVE"; }, 10s));
    config_ = dir_.file("triton.yaml");
    std::ofstream(config_) << kLogical << ":\n  name: " << kStream
                           << "\n  partition_key: pk\n  region: us-east-1\n";
    checkpoint_db_ = checkpoint_uri();
  }

  // The triton_checkpoint table (docs/triton.md §4) in SQLite; StorePostgresTest: in Postgres.
  virtual std::string checkpoint_uri() { return "triton+sqlite:" + dir_.file("triton.db"); }

  // Puts `n` records {pk, n, pad}; remembers which shard and sequence number each got.
  void put(int n, std::size_t pad = 16) {
    std::vector<std::string> data;
    const int first = next_number_;
    for (int i = 0; i < n; ++i) {
      const int number = next_number_++;
      std::string padding;
      for (std::size_t j = 0; j < pad; ++j)
        padding.push_back(static_cast<char>('a' + (static_cast<std::size_t>(number) * 7919 + j * 104729) % 26));
      data.push_back(pipeline::encode_record(
          pipeline::Map{{"pk", "pk-" + std::to_string(number)}, {"n", number}, {"pad", padding}}));
    }
    const auto by_shard = kclpp::test::put_all(*client_, kStream, data, static_cast<std::size_t>(first));
    // put_all keys are "pk-<offset+i>" and its results come per shard in put order.
    for (const auto& [shard, sequence_numbers] : by_shard) {
      for (const auto& s : sequence_numbers) last_[shard] = s;
    }
    for (int i = 0; i < n; ++i) put_.push_back(first + i);
  }

  std::unique_ptr<Subprocess> start_store(std::vector<std::string> extra_args = {},
                                          std::vector<std::string> extra_env = {}) {
    std::vector<std::string> argv{KCLPP_TOOL, "store", "--config", config_, "--stream", kLogical,
                                  "--bucket", kBucket, "--checkpoint-db", checkpoint_db_,
                                  "--spool-dir", dir_.path().string(), "--s3-endpoint", s3_.endpoint(),
                                  "--endpoint", kinesis_.endpoint(), "--region", "us-east-1",
                                  "--idle-time-ms", "100", "--shard-sync-ms", "1000"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    return std::make_unique<Subprocess>(argv, spawn_options(std::move(extra_env)));
  }

  static kclpp::test::SpawnOptions spawn_options(std::vector<std::string> extra_env = {}) {
    kclpp::test::SpawnOptions options;
    options.env = kclpp::test::tool_env("info", std::move(extra_env));
    // s3rver knows only its own access key (Kinesalite takes any).
    for (auto& e : options.env) {
      if (e.rfind("AWS_ACCESS_KEY_ID=", 0) == 0) e = "AWS_ACCESS_KEY_ID=S3RVER";
      if (e.rfind("AWS_SECRET_ACCESS_KEY=", 0) == 0) e = "AWS_SECRET_ACCESS_KEY=S3RVER";
    }
    return options;
  }

  std::map<std::string, kclpp::ExtendedSequenceNumber> checkpoints() {
    return kclpp::native::open_checkpoint_store(checkpoint_db_)->load_all("store", kStream);
  }
  // Every shard checkpointed at its last record put.
  bool all_checkpointed() {
    const auto cps = checkpoints();
    for (const auto& [shard, seq] : last_) {
      const auto it = cps.find(shard);
      if (it == cps.end() || it->second.sequence_number().str() != seq) return false;
    }
    return true;
  }

  std::vector<Archive> archives() {
    aws::S3Client s3(s3_.s3_options());
    std::vector<Archive> out;
    for (const auto& object : s3.list_objects(kBucket, "")) {
      if (!pipeline::ArchiveKey::parse(object.key)) continue;
      Archive a;
      a.key = object.key;
      a.body = s3.get_object(kBucket, object.key);
      pipeline::ArchiveReader reader(pipeline::memory_source(a.body), a.key);
      while (auto record = reader.next()) {
        EXPECT_TRUE(record->ok()) << a.key << ": " << record->error;
        for (const auto& [k, v] : record->map)
          if (k == "n") {
            if (const auto* i = v.get_if<std::int64_t>()) a.numbers.push_back(*i);
            if (const auto* u = v.get_if<std::uint64_t>()) a.numbers.push_back(static_cast<long long>(*u));
          }
      }
      if (s3.head_object(kBucket, pipeline::metadata_key(object.key)))
        a.metadata = pipeline::ArchiveMetadata::from_json(s3.get_object(kBucket, pipeline::metadata_key(object.key)));
      out.push_back(std::move(a));
    }
    return out;
  }
  static std::map<long long, int> copies(const std::vector<Archive>& all) {
    std::map<long long, int> out;
    for (const auto& a : all)
      for (const long long n : a.numbers) ++out[n];
    return out;
  }
  // Every record put is in S3; returns the largest number of copies of one record.
  int expect_all_archived(const std::vector<Archive>& all) {
    const auto c = copies(all);
    int most = 0;
    for (const long long n : put_) {
      const auto it = c.find(n);
      EXPECT_TRUE(it != c.end()) << "record " << n << " is in no archive";
      if (it != c.end()) most = std::max(most, it->second);
    }
    for (const auto& [n, count] : c)
      EXPECT_TRUE(std::find(put_.begin(), put_.end(), n) != put_.end()) << "record " << n << " was never put";
    return most;
  }
  // The checkpoint of each shard is not past the last record of the shard in an archive
  // with metadata (metadata is written after the upload, before the checkpoint).
  void expect_checkpoints_not_ahead(const std::vector<Archive>& all) { expect_not_ahead(all, checkpoints()); }
  static void expect_not_ahead(const std::vector<Archive>& all,
                               const std::map<std::string, kclpp::ExtendedSequenceNumber>& positions) {
    for (const auto& [shard, position] : positions) {
      if (position.is_sentinel()) continue;
      std::optional<SequenceNumber> uploaded;
      for (const auto& a : all) {
        if (!a.metadata) continue;
        const auto it = a.metadata->shards.find(shard);
        if (it == a.metadata->shards.end()) continue;
        const SequenceNumber max(it->second.max_sequence_number);
        if (!uploaded || *uploaded < max) uploaded = max;
      }
      ASSERT_TRUE(uploaded.has_value()) << shard << " is checkpointed but none of its records is uploaded";
      EXPECT_LE(position.sequence_number(), *uploaded) << shard << ": checkpoint ahead of the uploads";
    }
  }
  void resume_from_triton_checkpoints(const std::function<std::string(const std::string&)>& sql);
  static void stop(Subprocess& store) {
    ::kill(store.pid(), SIGTERM);
    const auto status = store.wait(30s);
    ASSERT_TRUE(status.has_value()) << "still running 30 s after SIGTERM\n" << store.stderr_text();
    EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << store.stderr_text();
  }

  TempDir dir_{"kclpp-store-test"};
  kclpp::test::Kinesalite kinesis_;
  kclpp::test::S3rver s3_;
  std::optional<aws::KinesisClient> client_;
  std::string config_;
  std::string checkpoint_db_;
  std::map<std::string, std::string> last_;  // shard -> last sequence number put
  std::vector<long long> put_;               // numbers of the records put
  int next_number_ = 0;
};

TEST_F(StoreTest, UploadsAtShutdownWithMetadataNotifyAndStatsdAndOnlyThenCheckpoints) {
  StatsdSink statsd;
  const std::string notified = dir_.file("notified");
  put(50);
  auto store = start_store({"--statsd", statsd.address(), "--notify", "echo >>" + notified});
  ASSERT_TRUE(eventually([&] { return statsd.counter("kclpp.store.records") >= 50; }, 20s))
      << "records counted: " << statsd.counter("kclpp.store.records") << "\n" << store->stderr_text();
  // Spooled, but the hour has not turned: nothing uploaded, nothing checkpointed.
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(archives().empty());
  EXPECT_TRUE(checkpoints().empty()) << "checkpointed before any upload";

  stop(*store);
  const auto all = archives();
  ASSERT_EQ(all.size(), 1u) << store->stderr_text();
  EXPECT_EQ(expect_all_archived(all), 1) << "duplicates in a clean run";
  EXPECT_TRUE(all_checkpointed()) << store->stderr_text();
  expect_checkpoints_not_ahead(all);

  const Archive& a = all.front();
  const auto key = pipeline::ArchiveKey::parse(a.key);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->stream, kStream);
  EXPECT_EQ(key->client, "store");
  ASSERT_TRUE(a.metadata) << "no " << pipeline::metadata_key(a.key);
  EXPECT_EQ(a.metadata->records, 50u);
  EXPECT_EQ(a.metadata->bytes, a.body.size());
  EXPECT_EQ(a.metadata->sha256, sha256_hex(a.body, dir_));
  ASSERT_EQ(a.metadata->shards.size(), last_.size());
  for (const auto& [shard, seq] : last_) EXPECT_EQ(a.metadata->shards.at(shard).max_sequence_number, seq);

  std::ifstream in(notified);
  std::string line;
  ASSERT_TRUE(std::getline(in, line)) << "the notify hook did not run\n" << store->stderr_text();
  EXPECT_EQ(line, a.key + " " + std::to_string(a.body.size()) + " 50 " + a.metadata->sha256);
  EXPECT_FALSE(std::getline(in, line)) << "notified twice";

  EXPECT_EQ(statsd.counter("kclpp.store.uploads"), 1);
  EXPECT_TRUE(statsd.has_prefix("kclpp.store.upload_ms:"));
  EXPECT_TRUE(statsd.has_prefix("kclpp.store.bytes:"));
  EXPECT_TRUE(statsd.has_prefix("kclpp.store.lag_ms.shardId-"));
  EXPECT_TRUE(statsd.has_prefix("kclpp.store.checkpoint_age_s.shardId-"));
  EXPECT_FALSE(std::filesystem::exists(dir_.file(std::string(kStream) + "-store.tri")))
      << "the spool file is left after its upload";
}

// `kclpp store --multilang` as the child of `kclpp daemon` (as it would be of the Java
// MultiLangDaemon): one process per shard, each with its own spool file in the shared spool
// dir, archive keys kept apart by the key clock there, checkpoints kept by the daemon only
// once the records are uploaded.
TEST_F(StoreTest, RunsUnderKclppDaemonWithOneChildPerShard) {
  put(40);
  const std::string db = dir_.file("daemon.db");
  const std::string properties = dir_.file("store.properties");
  {
    std::ofstream out(properties);
    // executableName is split on spaces (KCL-PROTOCOL.md §1): the temp paths have none.
    out << "executableName = " << KCLPP_TOOL << " store --multilang --config " << config_ << " --stream " << kLogical
        << " --bucket " << kBucket << " --spool-dir " << dir_.path().string() << " --s3-endpoint " << s3_.endpoint()
        << " --region us-east-1 --rotate-interval-s 2\n"
        << "streamName = " << kStream << "\n"
        << "applicationName = store\n"
        << "initialPositionInStream = TRIM_HORIZON\n"
        << "kinesisEndpoint = " << kinesis_.endpoint() << "\n"
        << "regionName = us-east-1\n"
        << "idleTimeBetweenReadsInMillis = 100\n"
        << "callProcessRecordsEvenForEmptyRecordList = true\n"
        << "checkpointStore = sqlite:" << db << "\n"
        << "metricsLevel = NONE\n";
  }
  Subprocess daemon({KCLPP_TOOL, "daemon", properties}, spawn_options());
  const auto daemon_checkpoints = [&] {
    return kclpp::native::open_checkpoint_store("sqlite:" + db)->load_all("store", kStream);
  };
  const auto all_checkpointed_by_daemon = [&] {
    if (!std::filesystem::exists(db)) return false;
    const auto cps = daemon_checkpoints();
    for (const auto& [shard, seq] : last_) {
      const auto it = cps.find(shard);
      if (it == cps.end() || it->second.is_sentinel() || it->second.sequence_number().str() != seq) return false;
    }
    return true;
  };
  ASSERT_TRUE(eventually(all_checkpointed_by_daemon, 40s)) << daemon.stderr_text();
  expect_not_ahead(archives(), daemon_checkpoints());
  put(20);  // more, while both children run
  ASSERT_TRUE(eventually(all_checkpointed_by_daemon, 40s)) << daemon.stderr_text();

  ::kill(daemon.pid(), SIGTERM);
  const auto status = daemon.wait(40s);
  ASSERT_TRUE(status.has_value()) << "still running 40 s after SIGTERM\n" << daemon.stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << daemon.stderr_text();

  const auto all = archives();
  EXPECT_EQ(expect_all_archived(all), 1) << "duplicates in a clean run";
  std::set<std::string> shards;
  for (const auto& a : all) {
    ASSERT_TRUE(a.metadata) << a.key;
    EXPECT_EQ(a.metadata->shards.size(), 1u) << a.key << ": one child, one shard";
    for (const auto& [shard, range] : a.metadata->shards) shards.insert(shard);
  }
  EXPECT_EQ(shards.size(), last_.size()) << "every shard had its own child";
  expect_not_ahead(all, daemon_checkpoints());
  for (const auto& [shard, seq] : last_) {
    EXPECT_FALSE(std::filesystem::exists(dir_.file(std::string(kStream) + "-store-" + shard + ".tri")))
        << "the spool of " << shard << " is left after its upload";
  }
  EXPECT_TRUE(std::filesystem::exists(dir_.file(std::string(kStream) + "-store.keys")));
}

TEST(StoreCli, MultilangRefusesTheDaemonsOptions) {
  const auto r = kclpp::test::run_program(
      {KCLPP_TOOL, "store", "--multilang", "--stream", "s", "--bucket", "b", "--checkpoint-db", "sqlite:x.db"},
      {}, 20s);
  ASSERT_TRUE(r.status.has_value()) << r.describe();
  EXPECT_FALSE(r.status->exited && r.status->code == 0) << r.describe();
  EXPECT_NE(r.err.find("--checkpoint-db does not apply with --multilang"), std::string::npos) << r.describe();
}

TEST_F(StoreTest, RotatesAtTheSizeLimit) {
  StatsdSink statsd;
  put(60, 300);  // ~330 bytes a record, barely compressible
  auto store = start_store({"--max-file-mb", "0.004", "--max-records", "5", "--statsd", statsd.address()});
  // Rotated by size while running (the interval is an hour).
  ASSERT_TRUE(eventually([&] { return archives().size() >= 4; }, 30s)) << store->stderr_text();
  ASSERT_TRUE(eventually([&] { return statsd.counter("kclpp.store.records") >= 60; }, 20s));
  stop(*store);
  const auto all = archives();
  EXPECT_EQ(expect_all_archived(all), 1);
  EXPECT_TRUE(all_checkpointed());
  expect_checkpoints_not_ahead(all);
  std::set<std::string> keys;
  for (const auto& a : all) {
    keys.insert(a.key);
    // The limit, overshot by at most one batch (5 records).
    EXPECT_LE(a.body.size(), 4'195u + 5 * 400u) << a.key;
  }
  EXPECT_EQ(keys.size(), all.size());
}

TEST_F(StoreTest, RotatesAtTheIntervalBoundaryWhileTheStreamIsIdle) {
  put(10);
  auto store = start_store({"--rotate-interval-s", "2"});
  // No more records, no signal: the timer rotates, and the idle shards checkpoint.
  ASSERT_TRUE(eventually([&] { return all_checkpointed(); }, 15s)) << store->stderr_text();
  auto all = archives();
  ASSERT_EQ(all.size(), 1u);
  expect_checkpoints_not_ahead(all);

  put(10);
  ASSERT_TRUE(eventually([&] { return all_checkpointed(); }, 15s)) << store->stderr_text();
  std::this_thread::sleep_for(2'500ms);  // an idle boundary with nothing pending: no upload
  all = archives();
  ASSERT_EQ(all.size(), 2u) << store->stderr_text();
  EXPECT_LT(pipeline::ArchiveKey::parse(all[0].key)->unix_seconds,
            pipeline::ArchiveKey::parse(all[1].key)->unix_seconds);
  stop(*store);
  EXPECT_EQ(archives().size(), 2u) << "SIGTERM uploaded an empty spool";
  EXPECT_EQ(expect_all_archived(archives()), 1);
}

TEST_F(StoreTest, FailingUploadsCheckpointNothingAndRecoverWhenS3Does) {
  const std::string bucket = "created-later";
  put(20);
  auto store = start_store({"--rotate-interval-s", "2", "--bucket", bucket});
  ASSERT_TRUE(store->wait_stderr("archive upload failed", 15s)) << store->stderr_text();
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(checkpoints().empty()) << "checkpointed records whose upload failed";
  s3_.create_bucket(bucket);
  ASSERT_TRUE(eventually([&] { return all_checkpointed(); }, 30s)) << store->stderr_text();
  stop(*store);
  aws::S3Client s3(s3_.s3_options());
  std::map<long long, int> found;
  for (const auto& object : s3.list_objects(bucket, "")) {
    if (!pipeline::ArchiveKey::parse(object.key)) continue;
    const std::string body = s3.get_object(bucket, object.key);
    pipeline::ArchiveReader reader(pipeline::memory_source(body), object.key);
    while (auto record = reader.next())
      for (const auto& [k, v] : record->map)
        if (const auto* i = v.get_if<std::int64_t>(); k == "n" && i != nullptr) ++found[*i];
  }
  for (const long long n : put_) EXPECT_EQ(found[n], 1) << "record " << n;
}

TEST_F(StoreTest, ArchivesAClosedShardToItsEndBeforeItsChildren) {
  const std::string parent = "shardId-000000000000";
  put(10);
  auto store = start_store({"--rotate-interval-s", "2"});
  ASSERT_TRUE(eventually([&] { return all_checkpointed(); }, 15s)) << store->stderr_text();
  // Split the first shard (hash keys 0 .. 2^127-1) in the middle, then write on.
  client_->split_shard(kStream, parent, "85070591730234615865843651857942052864");
  ASSERT_TRUE(eventually([&] { return client_->describe_stream_summary(kStream).status == "ACTIVE"; }, 10s));
  put(20);
  ASSERT_TRUE(eventually(
      [&] {
        const auto cps = checkpoints();
        const auto p = cps.find(parent);
        if (p == cps.end() || p->second.sentinel() != kclpp::Sentinel::ShardEnd) return false;
        for (const auto& [shard, seq] : last_) {
          if (shard == parent) continue;
          const auto it = cps.find(shard);
          if (it == cps.end() || it->second.sequence_number().str() != seq) return false;
        }
        return true;
      },
      20s))
      << store->stderr_text();
  EXPECT_GE(last_.size(), 3u) << "no record went to a child shard";
  stop(*store);
  const auto all = archives();
  EXPECT_EQ(expect_all_archived(all), 1);
  expect_checkpoints_not_ahead(all);
}

// --- switching from Triton: its checkpoints are where the store resumes ------------------

// go-triton's DDL (docs/triton.md §4), then a row per shard at its last record so far, as a Triton
// store that archived them would have left; the store must archive only what follows,
// and keep writing the same rows.
void StoreTest::resume_from_triton_checkpoints(const std::function<std::string(const std::string&)>& sql) {
  put(10);
  (void)sql("CREATE TABLE IF NOT EXISTS triton_checkpoint (client VARCHAR(255) NOT NULL, "
            "stream VARCHAR(255) NOT NULL, shard VARCHAR(255) NOT NULL, seq_num VARCHAR(255) NOT NULL, "
            "updated INTEGER NOT NULL, PRIMARY KEY (client, stream, shard))");
  for (const auto& [shard, seq] : last_)
    (void)sql("INSERT INTO triton_checkpoint VALUES ('store', '" + std::string(kStream) + "', '" + shard + "', '" +
              seq + "', 1700000000)");
  const auto triton_position = put_;
  put_.clear();
  put(10);
  auto store = start_store({"--rotate-interval-s", "2"});
  ASSERT_TRUE(eventually([&] { return all_checkpointed(); }, 20s)) << store->stderr_text();
  stop(*store);
  const auto all = archives();
  EXPECT_EQ(expect_all_archived(all), 1);
  for (const long long n : triton_position)
    EXPECT_EQ(copies(all).count(n), 0u) << "record " << n << " was before Triton's checkpoint";
  std::string expected;
  for (const auto& [shard, seq] : last_) expected += (expected.empty() ? "" : "\n") + shard + "|" + seq;
  const auto trimmed = [](std::string text) {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  };
  EXPECT_EQ(trimmed(sql("SELECT shard, seq_num FROM triton_checkpoint WHERE client = 'store' AND stream = '" +
                std::string(kStream) + "' ORDER BY shard")),
            expected);
}

TEST_F(StoreTest, ResumesFromTritonCheckpointsInSqlite) {
  KCLPP_REQUIRE_PRESENT(kclpp::test::program_unavailable("sqlite3"));
  const std::string db = dir_.file("triton.db");
  resume_from_triton_checkpoints([&](const std::string& statement) {
    const auto r = kclpp::test::run_program({kclpp::test::find_on_path("sqlite3"), db, statement}, {}, 10s);
    EXPECT_TRUE(r.status && r.status->exited && r.status->code == 0) << r.describe();
    return r.out;
  });
}

class StorePostgresTest : public StoreTest {
 protected:
  static void SetUpTestSuite() {
    if (!kclpp::test::Postgres::unavailable_reason()) postgres() = std::make_unique<kclpp::test::Postgres>();
  }
  static void TearDownTestSuite() { postgres().reset(); }
  static std::unique_ptr<kclpp::test::Postgres>& postgres() {
    static std::unique_ptr<kclpp::test::Postgres> server;
    return server;
  }
  void SetUp() override {
    if (!postgres()) KCLPP_REQUIRE_PRESENT(kclpp::test::Postgres::unavailable_reason().value_or("no server"));
    database_ = postgres()->create_database();
    StoreTest::SetUp();
  }
  std::string checkpoint_uri() override { return "triton+" + database_; }
  std::string database_;
};

TEST_F(StorePostgresTest, ResumesFromTritonCheckpointsInPostgres) {
  const std::string name = database_.substr(database_.rfind('/') + 1, database_.find('?') - database_.rfind('/') - 1);
  resume_from_triton_checkpoints([&](const std::string& statement) { return postgres()->psql(statement, name); });
}

// --- crashes ------------------------------------------------------------------------------

struct CrashCase {
  const char* name;
  const char* hook;        // KCLPP_STORE_TEST_CRASH, or nullptr: kill during the notify hook
  bool uploaded;           // the archive reached S3 before the crash
  bool metadata;           // ... and its .metadata
};

class StoreCrashTest : public StoreTest, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(StoreCrashTest, LosesNothingAndNeverCheckpointsAheadOfTheUploads) {
  const CrashCase c = GetParam();
  put(30);
  {
    std::unique_ptr<Subprocess> store;
    if (c.hook != nullptr) {
      store = start_store({"--rotate-interval-s", "2"}, {std::string("KCLPP_STORE_TEST_CRASH=") + c.hook});
      const auto status = store->wait(20s);
      ASSERT_TRUE(status.has_value()) << "the crash hook did not fire\n" << store->stderr_text();
      ASSERT_FALSE(status->exited) << status->str() << "\n" << store->stderr_text();
      EXPECT_EQ(status->signal, SIGKILL);
    } else {
      const std::string marker = dir_.file("hook-running");
      store = start_store({"--rotate-interval-s", "2", "--notify", "exec >/dev/null 2>&1; touch " + marker + "; sleep 5; :"});
      ASSERT_TRUE(eventually([&] { return std::filesystem::exists(marker); }, 20s)) << store->stderr_text();
      store->kill();  // while the hook runs: uploaded, metadata written, not checkpointed
    }
    const auto all = archives();
    EXPECT_EQ(all.size(), c.uploaded ? 1u : 0u) << store->stderr_text();
    if (!all.empty()) {
      EXPECT_EQ(all.front().metadata.has_value(), c.metadata);
    }
    EXPECT_TRUE(checkpoints().empty()) << "checkpointed before the archive was complete";
  }
  put(10);  // while it was down
  auto store = start_store({"--rotate-interval-s", "2"});
  ASSERT_TRUE(eventually([&] { return all_checkpointed(); }, 20s)) << store->stderr_text();
  stop(*store);
  if (std::getenv("KCLPP_STORE_TEST_VERBOSE") != nullptr) std::fprintf(stderr, "%s", store->stderr_text().c_str());
  const auto all = archives();
  const int most = expect_all_archived(all);
  expect_checkpoints_not_ahead(all);
  if (c.uploaded) {
    EXPECT_LE(most, 2) << "more than one extra copy";
  } else {
    EXPECT_EQ(most, 1) << "duplicates although nothing was uploaded before the crash";
  }
}

INSTANTIATE_TEST_SUITE_P(Points, StoreCrashTest,
                         ::testing::Values(CrashCase{"BeforeUpload", "before_upload", false, false},
                                           CrashCase{"AfterUpload", "after_upload", true, false},
                                           CrashCase{"AfterMetadata", "after_metadata", true, true},
                                           CrashCase{"DuringNotifyHook", nullptr, true, true}),
                         [](const ::testing::TestParamInfo<CrashCase>& p) { return std::string(p.param.name); });

}  // namespace
