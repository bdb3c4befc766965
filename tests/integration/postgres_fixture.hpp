#pragma once
// Integration-test fixture: a throwaway Postgres server (Debian's postgresql binaries) in a
// temp directory, on 127.0.0.1 and a free port, stopped and deleted by the destructor.
//
//   class MyTest : public kclpp::test::PostgresTest {};   // one server per test suite
//   TEST_F(MyTest, Works) { auto uri = pg().create_database(); ... }
//
// or standalone: `kclpp::test::Postgres pg; pg.uri();`.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kclpp::test {

// A running Postgres server owned by this object. Authentication is `trust` for the
// superuser `kclpp`; fsync is off (the server's durability is not under test). Startup
// copies a cluster initdb'ed once per machine (BASE/kclpp-pg-template-*; BASE is
// $KCLPP_PG_TMPDIR, else /dev/shm, else /tmp), well under a second. Running as root, initdb and pg_ctl run as the `postgres`
// user through runuser in a directory that user owns (Postgres refuses to run as root).
// Thread safety: none; use from the test thread.
class Postgres {
 public:
  // Why no server can be started here (binaries, runuser or the postgres user missing),
  // or nullopt. The bin dir is $KCLPP_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin.
  [[nodiscard]] static std::optional<std::string> unavailable_reason();

  // initdb + pg_ctl start, waits until it accepts connections. Throws std::runtime_error
  // (with the server log) if it cannot.
  Postgres();
  // pg_ctl stop -m immediate, then removes the directory. Never throws.
  ~Postgres();
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::string host() const { return "127.0.0.1"; }
  // postgresql://kclpp@127.0.0.1:PORT/DATABASE?connect_timeout=5
  [[nodiscard]] std::string uri(std::string_view database = "postgres") const;
  // A new empty database with a unique name; returns its uri().
  std::string create_database();
  // Runs SQL with psql (-At, ON_ERROR_STOP) and returns its output; throws
  // std::runtime_error with psql's messages on failure.
  std::string psql(std::string_view sql, std::string_view database = "postgres");

  // pg_ctl restart -m fast: every client connection is dropped; same port.
  void restart();
  // pg_ctl stop -m immediate / start again on the same port.
  void stop();
  void start();

  // The temp directory under BASE (data in DIR/data, log in DIR/server.log, socket in DIR).
  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }
  [[nodiscard]] std::string log() const;

 private:
  // Runs a server binary (as `postgres` when we are root); throws on failure or timeout.
  void run_server_tool(const std::vector<std::string>& argv, std::chrono::seconds timeout);
  void wait_ready(std::chrono::seconds timeout);
  // A cached, never-started initdb result to copy (see the .cpp).
  std::string cluster_template();

  std::string bin_dir_;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  int databases_ = 0;
};

// A GoogleTest base that shares one server across a test suite (SetUpTestSuite) and
// skips each test when Postgres is not installed, or fails it when $KCLPP_CI is set.
class PostgresTest : public ::testing::Test {
 public:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

 protected:
  void SetUp() override;
  // The suite's server (valid in a test body once SetUp did not skip).
  static Postgres& pg();

 private:
  static std::unique_ptr<Postgres>& server();
  static std::string& failure();
};

}  // namespace kclpp::test
