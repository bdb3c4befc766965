// The archiver (pipeline/src/archive_store.cpp) without S3: options, the leftover spool,
// spooling without checkpointing, bad records, failed uploads (S3 on a closed loopback
// port), the native worker over LocalStream, and the notify hook (notify.cpp).
// Uploads that succeed are tested against s3rver in tests/integration/store_test.cpp.
#include "kclpp/pipeline/store.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/local_stream.hpp"
#include "kclpp/native/worker.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"
#include "notify.hpp"
#include "../store_test_support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::ExtendedSequenceNumber;
using kclpp::test::read_file;
using kclpp::Record;
using kclpp::RecordBatch;
using kclpp::SequenceNumber;
using kclpp::pipeline::ArchiveStore;
using kclpp::pipeline::ArchiveStoreOptions;
namespace fs = std::filesystem;

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

using kclpp::native::store_test::TempDir;

// Records every checkpoint a processor makes.
class RecordingCheckpointer final : public kclpp::Checkpointer {
 public:
  RecordingCheckpointer() : Checkpointer(kclpp::RetryPolicy::none()) {}
  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override { calls.push_back(at); }
  std::vector<std::optional<ExtendedSequenceNumber>> calls;
};

Record make_record(const std::string& data, const std::string& sequence_number) {
  Record r;
  r.data = data;
  r.partition_key = "k";
  r.sequence_number = SequenceNumber(sequence_number);
  return r;
}

std::string triton_record(int n) {
  return kclpp::pipeline::encode_record(kclpp::pipeline::Map{{"n", n}, {"msg", "hello"}});
}

class StoreUnitTest : public ::testing::Test {
 protected:
  ArchiveStoreOptions options() const {
    ArchiveStoreOptions o;
    o.stream = "unit_stream";
    o.bucket = "bucket";
    o.spool_dir = dir.path().string();
    o.rotate_interval = 3'600s;
    o.s3.endpoint = "http://127.0.0.1:" + std::to_string(port);
    o.s3.region = "us-east-1";
    o.s3.credentials = aws::static_credentials({"AKIDEXAMPLE", "secret", ""});
    o.s3.connect_timeout = 1'000ms;
    o.upload_retry = kclpp::RetryPolicy::none();
    return o;
  }
  [[nodiscard]] fs::path spool() const { return dir.path() / "unit_stream-store.tri"; }

  TempDir dir{"kclpp-store-unit"};
  int port = closed_port();
};

TEST_F(StoreUnitTest, RejectsBadOptions) {
  auto o = options();
  o.stream = "has-dash";
  EXPECT_THROW(ArchiveStore{o}, kclpp::ConfigError);
  o = options();
  o.client = "a-b";
  EXPECT_THROW(ArchiveStore{o}, kclpp::ConfigError);
  o = options();
  o.bucket.clear();
  EXPECT_THROW(ArchiveStore{o}, kclpp::ConfigError);
  o = options();
  o.rotate_interval = 0s;
  EXPECT_THROW(ArchiveStore{o}, kclpp::ConfigError);
  o = options();
  o.spool_dir = (dir.path() / "missing").string();
  EXPECT_THROW(ArchiveStore{o}, kclpp::TransportError);
}

TEST_F(StoreUnitTest, ASecondStoreOnTheSameSpoolIsRefused) {
  ArchiveStore first(options());
  auto processor = first.make_processor("shardId-000000000000");
  processor->initialize("shardId-000000000000", ExtendedSequenceNumber{});
  RecordingCheckpointer checkpointer;
  RecordBatch batch;
  batch.records.push_back(make_record(triton_record(1), "1"));
  processor->process_records(batch, checkpointer);
  EXPECT_THROW(ArchiveStore{options()}, kclpp::TransportError);
  EXPECT_TRUE(fs::exists(spool())) << "the second store discarded the first one's spool";
  auto other = options();
  other.client = "other";
  EXPECT_NO_THROW(ArchiveStore{other});
}

TEST_F(StoreUnitTest, DiscardsALeftoverSpoolFileAtStart) {
  { std::ofstream(spool()) << "records of a run that crashed"; }
  ASSERT_TRUE(fs::exists(spool()));
  ArchiveStore store(options());
  EXPECT_FALSE(fs::exists(spool()));
}

TEST_F(StoreUnitTest, SpoolsWithoutCheckpointingBeforeTheUpload) {
  ArchiveStore store(options());
  auto processor = store.make_processor("shardId-000000000000");
  processor->initialize("shardId-000000000000", ExtendedSequenceNumber{});
  RecordingCheckpointer checkpointer;
  RecordBatch batch;
  for (int i = 1; i <= 3; ++i) batch.records.push_back(make_record(triton_record(i), std::to_string(100 + i)));
  processor->process_records(batch, checkpointer);
  processor->process_records(RecordBatch{}, checkpointer);  // an idle poll
  EXPECT_TRUE(checkpointer.calls.empty()) << "checkpointed records that are not uploaded";
  EXPECT_EQ(store.stats().records, 3u);
  EXPECT_EQ(store.stats().uploads, 0u);
  EXPECT_TRUE(fs::exists(spool()));
}

TEST_F(StoreUnitTest, SkipsRecordsThatAreNotMapsAndCheckpointsThemWhenNothingIsPending) {
  ArchiveStore store(options());
  auto processor = store.make_processor("shardId-000000000001");
  processor->initialize("shardId-000000000001", ExtendedSequenceNumber{});
  RecordingCheckpointer checkpointer;
  RecordBatch batch;
  batch.records.push_back(make_record(std::string("\x01", 1), "7"));  // msgpack 1, not a map
  batch.records.push_back(make_record("plain text", "8"));
  processor->process_records(batch, checkpointer);
  EXPECT_EQ(store.stats().bad_records, 2u);
  EXPECT_EQ(store.stats().records, 0u);
  ASSERT_EQ(checkpointer.calls.size(), 1u);
  ASSERT_TRUE(checkpointer.calls[0].has_value());
  EXPECT_EQ(checkpointer.calls[0]->sequence_number().str(), "8");
  EXPECT_FALSE(fs::exists(spool()));
}

TEST_F(StoreUnitTest, AFailedUploadRestartsOnlyTheShardsWithRecordsInIt) {
  ArchiveStore store(options());
  auto a = store.make_processor("shardId-a");
  auto b = store.make_processor("shardId-b");
  a->initialize("shardId-a", ExtendedSequenceNumber{});
  b->initialize("shardId-b", ExtendedSequenceNumber{});
  RecordingCheckpointer cp_a;
  RecordingCheckpointer cp_b;
  RecordBatch batch;
  batch.records.push_back(make_record(triton_record(1), "11"));
  batch.records.push_back(make_record(triton_record(2), "12"));
  a->process_records(batch, cp_a);
  b->process_records(RecordBatch{}, cp_b);

  EXPECT_THROW(b->shutdown_requested(cp_b), kclpp::Error);  // S3 is not reachable
  EXPECT_EQ(store.stats().upload_failures, 1u);
  EXPECT_TRUE(cp_a.calls.empty());
  EXPECT_TRUE(cp_b.calls.empty());
  EXPECT_FALSE(fs::exists(spool())) << "the failed spool is discarded (its records are read again)";

  EXPECT_THROW(a->process_records(RecordBatch{}, cp_a), kclpp::TransportError);
  EXPECT_TRUE(cp_a.calls.empty());
  EXPECT_NO_THROW(b->process_records(RecordBatch{}, cp_b));

  // The restarted processor of shard a goes on normally.
  a.reset();
  auto a2 = store.make_processor("shardId-a");
  a2->initialize("shardId-a", ExtendedSequenceNumber{});
  EXPECT_NO_THROW(a2->process_records(batch, cp_a));
  EXPECT_TRUE(cp_a.calls.empty());
  EXPECT_EQ(store.stats().records, 4u);
}

TEST_F(StoreUnitTest, ShardEndIsNotCheckpointedUntilTheShardsRecordsAreUploaded) {
  ArchiveStore store(options());
  auto processor = store.make_processor("shardId-parent");
  processor->initialize("shardId-parent", ExtendedSequenceNumber{});
  RecordingCheckpointer checkpointer;
  RecordBatch batch;
  batch.records.push_back(make_record(triton_record(1), "21"));
  processor->process_records(batch, checkpointer);
  EXPECT_THROW(processor->shard_ended(checkpointer), kclpp::Error);
  EXPECT_TRUE(checkpointer.calls.empty()) << "SHARD_END checkpointed with records not uploaded";

  // A shard whose records were all skipped ends at once.
  auto other = store.make_processor("shardId-other");
  other->initialize("shardId-other", ExtendedSequenceNumber{});
  RecordingCheckpointer other_checkpointer;
  RecordBatch bad;
  bad.records.push_back(make_record(std::string("\x02", 1), "5"));
  other->process_records(bad, other_checkpointer);
  EXPECT_NO_THROW(other->shard_ended(other_checkpointer));
  ASSERT_EQ(other_checkpointer.calls.size(), 2u);
  EXPECT_FALSE(other_checkpointer.calls[1].has_value()) << "shard_ended checkpoints SHARD_END (no position)";
}

TEST_F(StoreUnitTest, RotatingAnEmptySpoolIsANoOp) {
  ArchiveStore store(options());
  EXPECT_NO_THROW(store.rotate());
  EXPECT_EQ(store.stats().uploads, 0u);
  EXPECT_EQ(store.stats().upload_failures, 0u);
}

TEST_F(StoreUnitTest, UnderTheWorkerNothingIsCheckpointedWhenUploadsFail) {
  kclpp::native::LocalStream stream("unit_stream", 2);
  for (int i = 0; i < 20; ++i) (void)stream.put(triton_record(i), "pk" + std::to_string(i));
  auto checkpoints = kclpp::native::open_checkpoint_store("memory:");
  ArchiveStore store(options());
  kclpp::native::WorkerOptions wo;
  wo.application = "store";
  wo.initial_position = aws::StartPosition::trim_horizon();
  wo.empty_batches = kclpp::native::EmptyBatches::Deliver;
  wo.idle_time_between_reads = 50ms;
  kclpp::native::Worker worker(stream, *checkpoints,
                               [&store](const std::string& shard) { return store.make_processor(shard); }, wo);
  std::thread runner([&] { worker.run(); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (store.stats().records < 20 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(store.stats().records, 20u);
  worker.request_shutdown();
  runner.join();
  EXPECT_GE(store.stats().upload_failures, 1u);
  // The shards' leases exist, at the initial position (a sentinel): no sequence number.
  for (const auto& [shard, position] : checkpoints->load_all("store", "unit_stream")) {
    EXPECT_TRUE(position.is_sentinel() && position.sentinel() != kclpp::Sentinel::ShardEnd)
        << shard << " has checkpoint " << position.str() << " although no archive was uploaded";
  }
}

// --- the notify hook ------------------------------------------------------------------

using kclpp::pipeline::detail::run_notify_command;

TEST(StoreNotifyTest, PassesTheValuesAsArgumentsAndEnvironment) {
  TempDir dir{"kclpp-store-unit"};
  const fs::path out = dir.path() / "out";
  const fs::path marker = dir.path() / "injected";
  const std::string command = "printf '%s|%s|%s|%s|%s\\n' >" + out.string() + " \"$KCLPP_ARCHIVE_KEY\"";
  const auto result = run_notify_command(command, {"20260101/s-c-1.tri", "$(touch " + marker.string() + ")", "3", "ab"},
                                         {"KCLPP_ARCHIVE_KEY=20260101/s-c-1.tri"}, 5'000ms);
  EXPECT_TRUE(result.ok()) << result.describe();
  EXPECT_EQ(read_file(out), "20260101/s-c-1.tri|20260101/s-c-1.tri|$(touch " + marker.string() + ")|3|ab\n");
  EXPECT_FALSE(fs::exists(marker)) << "an argument was interpreted by the shell";
}

TEST(StoreNotifyTest, DoesNotInheritTheStoresFileDescriptors) {
  TempDir dir{"kclpp-store-unit"};
  const fs::path out = dir.path() / "fds";
  // Like a lock file or a spool opened without O_CLOEXEC.
  const int fd = ::open((dir.path() / "held").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 3);
  const auto result = run_notify_command("ls /proc/$$/fd >" + out.string(), {}, {}, 5'000ms);
  ::close(fd);
  EXPECT_TRUE(result.ok()) << result.describe();
  std::istringstream fds(read_file(out));
  for (std::string line; std::getline(fds, line);)
    EXPECT_NE(line, std::to_string(fd)) << "the hook inherited descriptor " << fd;
}

TEST(StoreNotifyTest, ReportsTheExitCode) {
  const auto result = run_notify_command("exit 3", {}, {}, 5'000ms);
  EXPECT_TRUE(result.ran);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.exit_code, 3);
}

TEST(StoreNotifyTest, KillsACommandThatOverrunsItsTimeoutWithWhatItStarted) {
  TempDir dir{"kclpp-store-unit"};
  const fs::path pid_file = dir.path() / "pid";
  const auto started = std::chrono::steady_clock::now();
  const auto result =
      run_notify_command("sleep 30 & echo $! >" + pid_file.string() + "; wait", {}, {}, 300ms);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(result.timed_out);
  EXPECT_FALSE(result.ok());
  EXPECT_LT(took, 5s);
  const std::string pid_text = read_file(pid_file);
  ASSERT_FALSE(pid_text.empty());
  const pid_t grandchild = static_cast<pid_t>(std::stol(pid_text));
  // Dead: gone, or a zombie waiting for init.
  bool alive = true;
  for (int i = 0; i < 200 && alive; ++i) {
    const std::string stat = read_file("/proc/" + std::to_string(grandchild) + "/stat");
    const auto paren = stat.rfind(')');
    alive = !stat.empty() && paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] != 'Z';
    if (alive) std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(alive) << "the hook's background process survived the timeout";
}

}  // namespace
