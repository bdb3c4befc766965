// `kclpp stats` and `kclpp cat` end to end: the kclpp tool as a subprocess against rows in
// triton_checkpoint (written with go-triton's SQL through the sqlite3 CLI and psql) and
// against archives in s3rver.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/aws/dynamodb_client.hpp"
#include "kclpp/aws/s3_client.hpp"
#include "kclpp/pipeline/value.hpp"
#include "dynalite_fixture.hpp"
#include "e2e_support.hpp"
#include "postgres_fixture.hpp"
#include "s3rver_fixture.hpp"
#include "support.hpp"

namespace kclpp::pipeline {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::Subprocess;
using test::TempDir;

struct ToolRun {
  int code = -1;
  std::vector<std::string> out;
  std::string err;
};

ToolRun run_tool(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{KCLPP_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  test::SpawnOptions options;
  options.env = env;
  Subprocess tool(argv, options);
  ToolRun r;
  r.out = tool.read_lines_until_eof(30s);
  const auto status = tool.wait(30s);
  r.err = tool.stderr_text();
  r.code = status && status->exited ? status->code : -1;
  return r;
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "<client>.<stream>.<shard>.age <seconds> <unix_now>" → checks the name and returns the age,
// after checking that unix_now is now.
double graphite_age(const std::string& line, const std::string& name) {
  const auto space = line.find(' ');
  const auto space2 = line.find(' ', space + 1);
  EXPECT_EQ(line.substr(0, space), name) << line;
  EXPECT_NE(space2, std::string::npos) << line;
  const std::int64_t now = std::stoll(line.substr(space2 + 1));
  EXPECT_LE(std::abs(now - now_s()), 5) << line;
  return static_cast<double>(std::stoll(line.substr(space + 1, space2 - space - 1)));
}

// --- kclpp stats ---------------------------------------------------------------------------

TEST(KclppStats, SqliteRowsWrittenByTritonPrintAsGraphiteLines) {
  KCLPP_REQUIRE_PRESENT(test::program_unavailable("sqlite3"));
  const std::string sqlite3 = test::find_on_path("sqlite3");
  TempDir dir{"kclpp-pipeline-cli"};
  const std::string db = (dir.path() / "triton.db").string();
  const std::int64_t now = now_s();
  // go-triton's DDL and positional INSERT (docs/triton.md §4).
  const std::string sql =
      "CREATE TABLE IF NOT EXISTS triton_checkpoint (client VARCHAR(255) NOT NULL, stream VARCHAR(255) NOT NULL, "
      "shard VARCHAR(255) NOT NULL, seq_num VARCHAR(255) NOT NULL, updated INTEGER NOT NULL, "
      "PRIMARY KEY (client, stream, shard));"
      "INSERT INTO triton_checkpoint VALUES ('store', 'events_v3', 'shardId-000000000000', '4960', " +
      std::to_string(now - 100) + ");"
      "INSERT INTO triton_checkpoint VALUES ('store', 'events_v3', 'shardId-000000000001', '4961', " +
      std::to_string(now - 3600) + ");"
      "INSERT INTO triton_checkpoint VALUES ('other', 'events_v3', 'shardId-000000000000', '4962', " +
      std::to_string(now) + ");";
  {
    Subprocess cli({sqlite3, "-bail", db, sql});
    ASSERT_TRUE(cli.wait(10s).has_value());
  }
  const auto r = run_tool({"stats", "--checkpoint-db", "sqlite://" + db, "--client", "store"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 2u) << r.err;
  EXPECT_NEAR(graphite_age(r.out[0], "store.events_v3.shardId-000000000000.age"), 100, 3);
  EXPECT_NEAR(graphite_age(r.out[1], "store.events_v3.shardId-000000000001.age"), 3600, 3);

  // $TRITON_DB / $TRITON_CLIENT as go-triton takes them.
  const auto env = run_tool({"stats"}, {"TRITON_DB=sqlite://" + db, "TRITON_CLIENT=other"});
  ASSERT_EQ(env.code, 0) << env.err;
  ASSERT_EQ(env.out.size(), 1u);
  EXPECT_NEAR(graphite_age(env.out[0], "other.events_v3.shardId-000000000000.age"), 0, 3);

  // A client without rows prints nothing.
  const auto nobody = run_tool({"stats", "--checkpoint-db", "sqlite://" + db, "--client-name", "nobody"});
  EXPECT_EQ(nobody.code, 0) << nobody.err;
  EXPECT_TRUE(nobody.out.empty());
}

TEST(KclppStats, KclppLayoutShardEndAndErrors) {
  TempDir dir{"kclpp-pipeline-cli"};
  const std::string db = (dir.path() / "app.checkpoints.db").string();
  {
    auto store = native::open_checkpoint_store("sqlite:" + db);
    store->save({"app", "orders", "shardId-000000000000"}, ExtendedSequenceNumber(SequenceNumber("5"), 0));
    store->save({"app", "orders", "shardId-000000000001"}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  }
  const auto all = run_tool({"stats", "--checkpoint-db", "sqlite:" + db, "--client", "app"});
  ASSERT_EQ(all.code, 0) << all.err;
  ASSERT_EQ(all.out.size(), 2u);
  EXPECT_NEAR(graphite_age(all.out[0], "app.orders.shardId-000000000000.age"), 0, 3);
  const auto open = run_tool({"stats", "--checkpoint-db", "sqlite:" + db, "--client", "app", "--skip-shard-end"});
  ASSERT_EQ(open.code, 0) << open.err;
  EXPECT_EQ(open.out.size(), 1u);

  const auto no_client = run_tool({"stats", "--checkpoint-db", "sqlite:" + db}, {"TRITON_CLIENT="});
  EXPECT_EQ(no_client.code, 1);
  EXPECT_NE(no_client.err.find("--client"), std::string::npos) << no_client.err;
  const std::string missing = (dir.path() / "typo.db").string();
  const auto typo = run_tool({"stats", "--checkpoint-db", "sqlite://" + missing, "--client", "app"});
  EXPECT_EQ(typo.code, 1);
  EXPECT_NE(typo.err.find("does not exist"), std::string::npos) << typo.err;
  EXPECT_FALSE(fs::exists(missing)) << "stats created a database";
}

TEST(KclppStats, KclLeaseTableAgesAreUnknown) {
  test::Dynalite server;
  KCLPP_REQUIRE_SERVER(server);
  {
    native::StoreOptions options;
    options.dynamodb = server.client_options();
    auto store = native::open_checkpoint_store("dynamodb:", options);
    store->save({"kclapp", "s", "shardId-000000000000"}, ExtendedSequenceNumber(SequenceNumber("5"), 0));
    store->save({"kclapp", "s", "shardId-000000000001"}, ExtendedSequenceNumber(Sentinel::ShardEnd));
  }
  // The KCL table keeps neither a write time nor the stream's name.
  const auto r = run_tool({"stats", "--checkpoint-db", "dynamodb:", "--client", "kclapp"},
                          {"AWS_ENDPOINT_URL_DYNAMODB=" + server.endpoint(), "AWS_REGION=us-east-1",
                           "AWS_ACCESS_KEY_ID=AKIDSTATSTEST", "AWS_SECRET_ACCESS_KEY=stats-test-secret"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 2u) << r.err;
  EXPECT_EQ(r.out[0].rfind("kclapp.shardId-000000000000.age - ", 0), 0u) << r.out[0];
  EXPECT_EQ(r.out[1].rfind("kclapp.shardId-000000000001.age - ", 0), 0u) << r.out[1];
  EXPECT_LE(std::abs(std::stoll(r.out[0].substr(r.out[0].rfind(' ') + 1)) - now_s()), 5) << r.out[0];
}

// A lease table is read through --dynamodb-endpoint; a monitoring tool must not create a
// table because of a typo in its name (the store would create a missing one).
TEST(KclppStats, MissingDynamodbTableIsAnErrorAndIsNotCreated) {
  test::Dynalite server;
  KCLPP_REQUIRE_SERVER(server);
  const auto env = test::tool_env();
  const auto typo = run_tool({"stats", "--checkpoint-store", "dynamodb:typo", "--dynamodb-endpoint",
                              server.endpoint(), "--client", "app"},
                             env);
  EXPECT_EQ(typo.code, 1) << typo.err;
  EXPECT_NE(typo.err.find("DynamoDB table typo does not exist"), std::string::npos) << typo.err;
  // "dynamodb:" names the client's table, as the workers do.
  const auto by_client = run_tool({"stats", "--checkpoint-store", "dynamodb:", "--dynamodb-endpoint",
                                   server.endpoint(), "--client", "billing"},
                                  env);
  EXPECT_EQ(by_client.code, 1) << by_client.err;
  EXPECT_NE(by_client.err.find("DynamoDB table billing does not exist"), std::string::npos) << by_client.err;
  aws::DynamoDbClient client(server.client_options());
  EXPECT_FALSE(client.describe_table("typo").has_value()) << "stats created a table";
  EXPECT_FALSE(client.describe_table("billing").has_value()) << "stats created a table";
}

class KclppStatsPostgres : public test::PostgresTest {};

TEST_F(KclppStatsPostgres, TritonTableInPostgres) {
  const std::string uri = pg().create_database();
  const std::string name = uri.substr(uri.rfind('/') + 1, uri.find('?') - uri.rfind('/') - 1);
  pg().psql(
      "CREATE TABLE IF NOT EXISTS triton_checkpoint (client VARCHAR(255) NOT NULL, stream VARCHAR(255) NOT NULL, "
      "shard VARCHAR(255) NOT NULL, seq_num VARCHAR(255) NOT NULL, updated INTEGER NOT NULL, "
      "PRIMARY KEY (client, stream, shard));"
      "INSERT INTO triton_checkpoint VALUES ('store', 'events_v3', 'shardId-000000000007', '1', " +
          std::to_string(now_s() - 42) + ")",
      name);
  const auto r = run_tool({"stats", "--checkpoint-db", uri, "--client", "store"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 1u) << r.err;
  EXPECT_NEAR(graphite_age(r.out[0], "store.events_v3.shardId-000000000007.age"), 42, 3);
}

// --- kclpp cat -----------------------------------------------------------------------------

class KclppCat : public ::testing::Test {
 protected:
  void SetUp() override {
    KCLPP_REQUIRE_SERVER(s3_);
    s3_.create_bucket("archive");
    client_ = std::make_unique<aws::S3Client>(s3_.s3_options());
    config_ = (dir_.path() / "triton.yaml").string();
    std::ofstream(config_) << "events:\n  name: events_v3\n  partition_key: user\n  region: us-east-1\n";
  }

  void put(const std::string& key, const std::vector<Map>& records) {
    std::string bytes;
    ArchiveWriter writer([&](std::string_view piece) { bytes.append(piece); });
    for (const Map& r : records) writer.append(r);
    writer.finish();
    (void)client_->put_object("archive", key, bytes);
  }

  ToolRun cat(std::vector<std::string> extra) {
    std::vector<std::string> args{"cat", "--config", config_, "--stream", "events", "--bucket", "archive",
                                  "--s3-endpoint", s3_.endpoint(), "--list-page-size", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_tool(args, {"AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER", "AWS_REGION=us-east-1",
                           "TRITON_CLIENT=", "TRITON_BUCKET="});
  }

  TempDir dir_{"kclpp-pipeline-cli"};
  std::string config_;
  test::S3rver s3_;
  std::unique_ptr<aws::S3Client> client_;
};

TEST_F(KclppCat, PrintsRecordsOfEveryDayInOrderAsJsonLines) {
  // 20200101 00:00:00 UTC = 1577836800.
  put("20200102/events_v3-store-1577923300.tri", {Map{{"n", Value(std::int64_t{3})}}});
  put("20200101/events_v3-store-1577836900.tri",
      {Map{{"n", Value(std::int64_t{1})}, {"user", Value("ann")}, {"bin", Value(Binary{"\x01\x02"})},
           {"at", Value(Time{1577836800, 500000000})}},
       Map{{"n", Value(std::int64_t{2})}, {"f", Value(1.5)}, {"list", Value(Array{Value(true), Value(Nil{})})}}});
  put("20200103/events_v3-store-1578009700.tri", {Map{{"n", Value(std::int64_t{4})}}});
  put("20200103/events_v3-store-1578009701.tri", {Map{{"n", Value(std::int64_t{5})}}});
  put("20200104/events_v3-store-1578096000.tri", {Map{{"n", Value(std::int64_t{6})}}});   // after the range
  put("20200101/events_v3_old-store-1577836901.tri", {Map{{"n", Value(std::int64_t{99})}}});  // another stream
  (void)client_->put_object("archive", "20200101/events_v3-store-1577836900.tri.metadata", "{}");

  const auto r = cat({"--start-date", "20200101", "--end-date", "20200103"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 5u) << r.err;
  std::vector<std::int64_t> order;
  for (const auto& line : r.out) order.push_back(nlohmann::json::parse(line).at("n").get<std::int64_t>());
  EXPECT_EQ(order, (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  const auto first = nlohmann::json::parse(r.out[0]);
  EXPECT_EQ(first.at("user"), "ann");
  EXPECT_EQ(first.at("bin"), "AQI=");  // bin as base64
  EXPECT_EQ(first.at("at"), "2020-01-01T00:00:00.5Z") << r.out[0];
  const auto second = nlohmann::json::parse(r.out[1]);
  EXPECT_EQ(second.at("f"), 1.5);
  EXPECT_EQ(second.at("list"), nlohmann::json::parse("[true, null]"));

  const auto one = cat({"--start-date", "20200102"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(one.out, std::vector<std::string>{"{\"n\":3}"});
}

TEST_F(KclppCat, SeveralClientsNeedClientAndBadOptionsFail) {
  put("20200101/events_v3-store-1577836900.tri", {Map{{"n", Value(std::int64_t{1})}}});
  put("20200101/events_v3-replay-1577836901.tri", {Map{{"n", Value(std::int64_t{2})}}});
  const auto both = cat({"--start-date", "20200101"});
  EXPECT_EQ(both.code, 1);
  EXPECT_TRUE(both.out.empty());
  EXPECT_NE(both.err.find("multiple clients"), std::string::npos) << both.err;
  const auto replay = cat({"--start-date", "20200101", "--client", "replay"});
  ASSERT_EQ(replay.code, 0) << replay.err;
  EXPECT_EQ(replay.out, std::vector<std::string>{"{\"n\":2}"});

  const auto bad_date = cat({"--start-date", "2020-01-01"});
  EXPECT_EQ(bad_date.code, 1);
  EXPECT_NE(bad_date.err.find("2020-01-01"), std::string::npos) << bad_date.err;
  const auto unknown = run_tool({"cat", "--config", config_, "--stream", "nope", "--bucket", "archive",
                                 "--start-date", "20200101"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("nope"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace kclpp::pipeline
