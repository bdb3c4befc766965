// The operations endpoint end to end (docs/operations.md §1), against a kinesalite each test
// starts: a native worker (the count example, kclpp::main --stream) and `kclpp daemon` with
// the echo example as its child serve /metrics, scraped with curl, whose per-shard record
// counts match what was put, with leases held and the process_records histogram, and which
// promtool (Debian prometheus) accepts; the worker's statsd push reaches a UDP socket the
// test binds; bad or busy --metrics-listen addresses stop the program naming them.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "../udp_server.hpp"
#include "e2e_support.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kinesalite_fixture.hpp"
#include "local_server.hpp"
#include "support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using kclpp::test::eventually;
using kclpp::test::Kinesalite;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;

// The output of a shell command (stdout), and its exit status.
std::pair<std::string, int> shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  if (pipe == nullptr) return {out, -1};
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  return {out, ::pclose(pipe)};
}

// GET with curl: the status line's code and the body; 0 when nothing answered.
std::pair<int, std::string> curl_get(const std::string& url) {
  auto [out, rc] = shell("curl -s --max-time 5 -w '\\n%{http_code}' " + url + " 2>/dev/null");
  const auto last = out.rfind('\n');
  if (last == std::string::npos) return {0, {}};
  return {std::atoi(out.c_str() + last + 1), out.substr(0, last)};
}

// The value of the sample `series` (name with its labels, as printed), or -1.
double sample(const std::string& page, const std::string& series) {
  const auto at = page.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + series.size() + 2));
}

// promtool check metrics on `page`: "" when it passes (or promtool is missing outside CI,
// after a note), else what it said.
std::string promtool_problems(const TempDir& dir, const std::string& page) {
  if (kclpp::test::find_on_path("promtool").empty()) {
    if (kclpp::test::in_ci()) return "promtool is not installed (Debian prometheus): required in CI";
    std::fprintf(stderr, "[ skipped  ] promtool check metrics: promtool is not installed (Debian prometheus)\n");
    return {};
  }
  const std::string path = dir.file("metrics.txt");
  std::ofstream(path) << page;
  auto [out, rc] = shell("promtool check metrics < " + path + " 2>&1");
  return rc == 0 ? std::string() : "promtool check metrics failed:\n" + out;
}

// statsd datagrams on a loopback UDP socket, read on the test's thread.
class UdpSink {
 public:
  [[nodiscard]] std::string address() const { return server_.address(); }
  // Reads what arrived, waiting up to `wait` for the first datagram; sums counters by name.
  void drain(std::chrono::milliseconds wait) {
    for (std::string datagram = server_.receive(wait); !datagram.empty(); datagram = server_.receive(0ms)) {
      for (const auto& line : kclpp::test::split_lines(datagram)) {
        static const std::regex counter(R"(^([^:]+):(-?\d+)\|c$)");
        std::smatch m;
        if (std::regex_match(line, m, counter)) counters_[m[1]] += std::stoll(m[2]);
      }
    }
  }
  [[nodiscard]] long long counter(const std::string& name) const {
    const auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second;
  }

 private:
  kclpp::test::UdpServer server_;
  std::map<std::string, long long> counters_;
};

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Kinesalite>();
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    client_->create_stream(stream_, 2);
    client_->wait_for_active(stream_, 10s);
  }
  std::unique_ptr<Subprocess> spawn(const std::vector<std::string>& argv) {
    kclpp::test::SpawnOptions options;
    options.env = kclpp::test::tool_env();
    auto p = std::make_unique<Subprocess>(argv, options);
    reaper_.add(p->pid());
    return p;
  }
  std::vector<std::string> count_worker(std::vector<std::string> extra) const {
    std::vector<std::string> argv{KCLPP_EXAMPLE_COUNT, "--stream", stream_, "--endpoint", server_->endpoint(),
                                  "--region", "us-east-1", "--application", "metrics-app", "--checkpoint-store",
                                  "sqlite:" + dir_.file("count.db"), "--initial-position", "TRIM_HORIZON",
                                  "--idle-time-ms", "200"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  // Waits until the page of `url` counts `want` records for every shard; the last page.
  std::string scrape_until_counted(const std::string& url, const std::map<std::string, std::size_t>& want,
                                   Subprocess& program) {
    std::string page;
    const bool counted = eventually(
        [&] {
          page = curl_get(url).second;
          for (const auto& [shard, n] : want) {
            if (sample(page, "kclpp_records_processed_total{shard=\"" + shard + "\"}") != static_cast<double>(n))
              return false;
          }
          return true;
        },
        20s);
    EXPECT_TRUE(counted) << "last page:\n" << page << "\nstderr:\n" << program.stderr_text();
    return page;
  }
  static void stop(Subprocess& p) {
    ASSERT_EQ(::kill(p.pid(), SIGTERM), 0);
    const auto status = p.wait(15s);
    ASSERT_TRUE(status.has_value()) << p.stderr_text();
    EXPECT_TRUE(status->exited && status->code == 0) << status->str() << "\n" << p.stderr_text();
  }
  std::map<std::string, std::size_t> put(std::size_t n) {
    std::map<std::string, std::size_t> counts;
    for (const auto& [shard, seqs] : kclpp::test::put_all(*client_, stream_, kclpp::test::numbered("m", n)))
      counts[shard] = seqs.size();
    return counts;
  }

  const std::string stream_ = "metrics";
  TempDir dir_{"kclpp-metrics-test"};
  std::unique_ptr<Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  kclpp::test::PidReaper reaper_;
};

TEST_F(MetricsEndpointTest, NativeWorkerServesPrometheusTextAndPushesStatsd) {
  const auto want = put(30);
  ASSERT_EQ(want.size(), 2u);
  UdpSink statsd;
  const std::string listen = "127.0.0.1:" + std::to_string(kclpp::test::unused_port());
  auto worker = spawn(count_worker({"--metrics-listen", listen, "--statsd", statsd.address(), "--statsd-interval-ms",
                                    "200"}));
  const std::string page = scrape_until_counted("http://" + listen + "/metrics", want, *worker);

  EXPECT_EQ(sample(page, "kclpp_leases_held{application=\"metrics-app\",stream=\"metrics\"}"), 2) << page;
  for (const auto& [shard, n] : want) {
    const std::string labels = "{shard=\"" + shard + "\"";
    // count checkpoints every batch: at least one process_records call per shard, timed.
    EXPECT_GE(sample(page, "kclpp_process_records_seconds_count" + labels + "}"), 1) << page;
    EXPECT_EQ(sample(page, "kclpp_process_records_seconds_bucket" + labels + ",le=\"+Inf\"}"),
              sample(page, "kclpp_process_records_seconds_count" + labels + "}"));
    EXPECT_GE(sample(page, "kclpp_get_records_calls_total" + labels + "}"), 1) << page;
    EXPECT_GE(sample(page, "kclpp_checkpoint_age_seconds" + labels + "}"), 0) << page;
    EXPECT_GT(sample(page, "kclpp_bytes_processed_total" + labels + "}"), static_cast<double>(n)) << page;
  }
  EXPECT_EQ(promtool_problems(dir_, page), "");
  const auto [health, body] = curl_get("http://" + listen + "/healthz");
  EXPECT_EQ(health, 200);
  EXPECT_EQ(body, "ok\n");

  // The same counts reach statsd as deltas: their sums are the totals.
  for (const auto& [shard, n] : want) {
    const std::string name = "kclpp.records_processed_total." + shard;
    EXPECT_TRUE(eventually(
        [&] {
          statsd.drain(100ms);
          return statsd.counter(name) == static_cast<long long>(n);
        },
        10s))
        << name << " = " << statsd.counter(name);
  }
  stop(*worker);
  // Nothing listens once it stopped.
  EXPECT_EQ(curl_get("http://" + listen + "/healthz").first, 0);
}

TEST_F(MetricsEndpointTest, DaemonServesTheMetricsOfItsChildren) {
  const auto want = put(20);
  const int port = kclpp::test::unused_port();
  const std::string properties = dir_.file("app.properties");
  std::ofstream(properties) << "executableName = " << KCLPP_EXAMPLE_ECHO << "\n"
                            << "streamName = " << stream_ << "\n"
                            << "applicationName = daemon-app\n"
                            << "initialPositionInStream = TRIM_HORIZON\n"
                            << "kinesisEndpoint = " << server_->endpoint() << "\n"
                            << "regionName = us-east-1\n"
                            << "idleTimeBetweenReadsInMillis = 200\n"
                            << "checkpointStore = sqlite:" << dir_.file("daemon.db") << "\n"
                            << "metricsListen = " << port << "\n";  // a bare port: 127.0.0.1
  auto daemon = spawn({KCLPP_TOOL, "daemon", properties});
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  const std::string page = scrape_until_counted(base + "/metrics", want, *daemon);
  EXPECT_EQ(sample(page, "kclpp_leases_held{application=\"daemon-app\",stream=\"metrics\"}"), 2) << page;
  EXPECT_NE(page.find("# TYPE kclpp_process_records_seconds histogram\n"), std::string::npos) << page;
  EXPECT_EQ(promtool_problems(dir_, page), "");
  EXPECT_EQ(curl_get(base + "/readyz").first, 200);
  stop(*daemon);
}

TEST_F(MetricsEndpointTest, BadOrBusyListenAddressesStopTheProgramNamingThem) {
  for (const std::string bad : {"nope", "127.0.0.1:70000", "::1:9102"}) {
    const auto r = kclpp::test::run_program(count_worker({"--metrics-listen", bad}), {}, 20s);
    EXPECT_TRUE(r.status && r.status->exited && r.status->code == 1) << r.describe();
    EXPECT_NE(r.err.find("--metrics-listen: '" + bad + "'"), std::string::npos) << r.err;
  }
  const auto daemon = kclpp::test::run_program({KCLPP_TOOL, "daemon", "--metrics-listen", "nope", "x.properties"});
  EXPECT_NE(daemon.err.find("--metrics-listen: 'nope'"), std::string::npos) << daemon.err;
  // A port another socket listens on: the worker stops before reading anything.
  int port = 0;
  const int busy = kclpp::test::listen_on_loopback(1, port, "metrics test");
  const std::string taken = "127.0.0.1:" + std::to_string(port);
  const auto r = kclpp::test::run_program(count_worker({"--metrics-listen", taken}), {}, 20s);
  ::close(busy);
  EXPECT_TRUE(r.status && r.status->exited && r.status->code == 1) << r.describe();
  EXPECT_NE(r.err.find("cannot listen on " + taken), std::string::npos) << r.err;
}

}  // namespace
