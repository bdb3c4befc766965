// KPL de-aggregation against the live producer: runs tests/node/make_kpl_vectors.js (the
// aws-kinesis-agg npm package) into a temporary directory and checks that
// - every aggregate it produces expands into exactly its user records (including the
//   near-1 MB aggregates of --with-split, too big to commit), and
// - the committed vectors in tests/data/kpl/ are byte-identical to what the package makes
//   today (else they are stale: regenerate them with the command the script names).
// Needs node and node_modules/aws-kinesis-agg: skipped without them, failed when KCLPP_CI is set.

#include "kclpp/native/deaggregate.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/log.hpp"
#include "local_server.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;
using kclpp::Record;
using kclpp::test::find_on_path;
using kclpp::test::read_file;
using kclpp::test::TempDir;

constexpr const char* seq = "49590338271490256608559692538361571095921575989136588898";

class DeaggregateLive : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = KCLPP_SOURCE_DIR;
    script_ = source_ / "tests" / "node" / "make_kpl_vectors.js";
    KCLPP_REQUIRE_PRESENT(kclpp::test::node_unavailable("aws-kinesis-agg/index.js"));
    node_ = find_on_path("node");
  }

  // Runs the generator into `dir`; fails the test if it does not exit 0.
  void generate(const fs::path& dir, bool with_split) {
    std::vector<std::string> argv{node_, script_.string(), dir.string()};
    if (with_split) argv.emplace_back("--with-split");
    kclpp::test::Subprocess node(argv);
    node.close_stdin();
    const auto status = node.wait(std::chrono::seconds(60));
    ASSERT_TRUE(status.has_value()) << "make_kpl_vectors.js did not finish";
    ASSERT_TRUE(status->exited && status->code == 0)
        << "make_kpl_vectors.js " << status->str() << "\n" << node.stderr_text();
  }

  std::string node_;
  fs::path source_;
  fs::path script_;
};

TEST_F(DeaggregateLive, EveryAggregateTheProducerMakesExpandsIntoItsUserRecords) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(generate(dir.path(), true));
  const auto manifest = nlohmann::json::parse(read_file(dir.path() / "manifest.json"));
  std::size_t aggregates = 0;
  std::size_t user_records = 0;
  bool saw_split = false;
  std::size_t warnings = 0;
  struct RestoreSink {
    ~RestoreSink() { kclpp::set_log_sink({}); }
  } restore_sink;
  kclpp::set_log_sink([&](kclpp::LogLevel level, std::string_view) {
    warnings += level == kclpp::LogLevel::Warn ? 1 : 0;
  });
  for (const auto& vector : manifest.at("vectors")) {
    const auto& list = vector.at("aggregates");
    saw_split = saw_split || list.size() > 1;
    // The same batch the worker would build: every aggregate of a vector appended to one `out`.
    std::vector<Record> out;
    std::vector<std::pair<std::string, std::string>> expected;
    std::vector<std::int64_t> expected_sub;
    for (const auto& aggregate : list) {
      const std::string file = aggregate.at("file").get<std::string>();
      Record r;
      r.data = read_file(dir.path() / file);
      ASSERT_TRUE(kclpp::native::is_aggregated(r.data)) << file;
      ASSERT_LE(r.data.size(), 1024U * 1024U) << file << " exceeds the Kinesis record limit";
      r.partition_key = aggregate.at("partition_key").get<std::string>();
      r.sequence_number = kclpp::SequenceNumber(seq);
      kclpp::native::deaggregate(std::move(r), out);
      std::int64_t sub = 0;
      for (const auto& u : aggregate.at("records")) {
        std::string data;
        ASSERT_TRUE(kclpp::base64_decode(u.at("data").get<std::string>(), data));
        expected.emplace_back(u.at("partition_key").get<std::string>(), std::move(data));
        expected_sub.push_back(sub++);
      }
      ++aggregates;
    }
    SCOPED_TRACE(vector.at("name").get<std::string>());
    ASSERT_EQ(out.size(), expected.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(out[i].partition_key, expected[i].first) << i;
      ASSERT_EQ(out[i].data, expected[i].second) << i;
      ASSERT_EQ(out[i].sub_sequence_number, expected_sub[i]) << i;
      ASSERT_EQ(out[i].sequence_number.str(), seq);
    }
    user_records += out.size();
  }
  EXPECT_EQ(warnings, 0U);
  EXPECT_TRUE(saw_split) << "--with-split produced a single aggregate";
  EXPECT_GE(aggregates, 8U);
  EXPECT_GE(user_records, 3500U);
}

TEST_F(DeaggregateLive, TheCommittedVectorsAreWhatTheProducerMakesToday) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(generate(dir.path(), false));
  const fs::path committed = source_ / "tests" / "data" / "kpl";
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    const fs::path name = entry.path().filename();
    SCOPED_TRACE(name.string());
    ASSERT_TRUE(fs::exists(committed / name)) << "not committed; regenerate with: node tests/node/make_kpl_vectors.js tests/data/kpl";
    EXPECT_TRUE(read_file(entry.path()) == read_file(committed / name))
        << "tests/data/kpl/" << name.string()
        << " is stale; regenerate with: node tests/node/make_kpl_vectors.js tests/data/kpl";
    ++files;
  }
  std::size_t committed_files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(committed)) ++committed_files;
  EXPECT_EQ(files, committed_files) << "tests/data/kpl holds files the generator no longer makes";
  EXPECT_GE(files, 7U);
}

}  // namespace
