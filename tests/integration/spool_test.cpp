// The tritond-compatible spool (docs/triton.md §7): py-triton's frames from a Python
// PUSH client through `kclpp spoold` into kinesalite, the C++ SpoolClient through an
// in-process SpoolDaemon, SIGTERM flushing, drops that are counted (unknown stream,
// malformed, buffer full) and retries before dropping (fault-injecting fake Kinesis).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <functional>
#include <mutex>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "kclpp/internal/hex.hpp"
#include "kclpp/pipeline/spool.hpp"
#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/log.hpp"
#include "fake_http_server.hpp"
#include "kinesalite_fixture.hpp"
#include "support.hpp"

namespace aws = kclpp::aws;

namespace {

using namespace std::chrono_literals;
using aws::KinesisClient;
using kclpp::test::FakeHttpServer;
using kclpp::test::HttpReply;
using kclpp::test::HttpRequest;
using kclpp::test::Subprocess;
using kclpp::test::TempDir;
using namespace kclpp::pipeline;

constexpr const char* python = "/usr/bin/python3";

constexpr const char* config_yaml =
    "events:\n"
    "  name: events_v1\n"
    "  partition_key: user_id\n"
    "  region: us-east-1\n"
    "clicks:\n"
    "  name: clicks_v1\n"
    "  partition_key: id\n";

// py-triton's NonblockingStream on the wire (docs/triton.md §7): PUSH, HWM 3500, send_multipart with
// NOBLOCK of [header, msgpack.packb(record)] (use_bin_type=False, as msgpack-python < 1.0
// packed). argv: endpoint, count, binary|json, stream. Prints "KEY HEXDATA" per record sent.
constexpr const char* python_client = R"PY(
import json, struct, sys, zmq, msgpack
endpoint, count, fmt, stream = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.setsockopt(zmq.SNDHWM, 3500)
sock.setsockopt(zmq.LINGER, 3000)
sock.connect(endpoint)
out = []
for i in range(count):
    record = {'user_id': 'user-%d' % (i % 7), 'n': i, 'msg': u'h\u00e9llo %s' % fmt, 'f': i / 4.0}
    key = record['user_id']
    if fmt == 'binary':
        header = struct.pack('!B64p64p', 4, stream.encode('utf-8'), key.encode('utf-8'))
    else:
        header = json.dumps({'stream_name': stream, 'partition_key': key}).encode('utf-8')
    data = msgpack.packb(record, use_bin_type=False)
    sock.send_multipart([header, data], zmq.NOBLOCK)
    out.append('%s %s' % (key, data.hex()))
sock.close()
ctx.term()
sys.stdout.write('\n'.join(out) + '\n')
)PY";

// "KEY HEXDATA" lines of every record in `stream`, sorted.
std::vector<std::string> stream_contents(aws::KinesisClient& client, const std::string& stream) {
  std::vector<std::string> out;
  for (const auto& r : kclpp::test::read_stream(client, stream)) out.push_back(r.partition_key + " " + kclpp::detail::to_hex(r.data));
  std::sort(out.begin(), out.end());
  return out;
}

// Polls until the stream holds `n` records (or the deadline): the spool writes
// asynchronously.
std::vector<std::string> wait_for_records(aws::KinesisClient& client, const std::string& stream, std::size_t n,
                                          std::chrono::milliseconds deadline = 15s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  auto got = stream_contents(client, stream);
  while (got.size() < n && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(100ms);
    got = stream_contents(client, stream);
  }
  return got;
}

bool python_has_zmq_and_msgpack() {
  if (!std::filesystem::exists(python)) return false;
  Subprocess p({python, "-c", "import zmq, msgpack"});
  const auto status = p.wait(20s);
  return status && status->exited && status->code == 0;
}

#define REQUIRE_PYTHON()                                                                            \
  KCLPP_REQUIRE_PRESENT(python_has_zmq_and_msgpack() ? ""                                           \
                                                     : "/usr/bin/python3 with python3-zmq and python3-msgpack is missing")

// Runs the Python client; returns its sorted "KEY HEXDATA" lines.
std::vector<std::string> run_python_client(const std::string& endpoint, int count, const std::string& format,
                                           const std::string& stream = "events") {
  Subprocess p({python, "-c", python_client, endpoint, std::to_string(count), format, stream});
  auto lines = p.read_lines_until_eof(30s);
  const auto status = p.wait(30s);
  EXPECT_TRUE(status && status->exited && status->code == 0) << p.stderr_text();
  std::sort(lines.begin(), lines.end());
  return lines;
}

std::vector<std::string> merged(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  return a;
}

class SpoolKinesalite : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<kclpp::test::Kinesalite>();
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<aws::KinesisClient>(server_->client_options());
    for (const char* s : {"events_v1", "clicks_v1"}) {
      client_->create_stream(s, 2);
      client_->wait_for_active(s, 10s);
    }
  }

  // `kclpp spoold` on a free port; waits until it is bound.
  std::unique_ptr<Subprocess> start_spoold(const std::string& config_path, std::string& endpoint,
                                           std::vector<std::string> extra = {}) {
    endpoint = "tcp://127.0.0.1:" + std::to_string(kclpp::test::unused_port());
    std::vector<std::string> argv{KCLPP_TOOL, "spoold", "--config", config_path, "--endpoint", endpoint,
                                  "--kinesis-endpoint", server_->endpoint(), "--region", "us-east-1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    kclpp::test::SpawnOptions options;
    options.env = {"AWS_ACCESS_KEY_ID=AKIDKCLPPTEST", "AWS_SECRET_ACCESS_KEY=kclpp-test-secret",
                   "KCLPP_LOG_LEVEL=info"};
    auto p = std::make_unique<Subprocess>(argv, options);
    EXPECT_TRUE(p->wait_stderr("listening on", 10s)) << p->stderr_text();
    return p;
  }

  SpoolDaemonOptions daemon_options() const {
    SpoolDaemonOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.client = server_->client_options();
    o.retry = kclpp::RetryPolicy{3, 1ms, 5ms, 1ms};
    return o;
  }

  std::unique_ptr<kclpp::test::Kinesalite> server_;
  std::unique_ptr<aws::KinesisClient> client_;
  TempDir dir_;
};

TEST_F(SpoolKinesalite, PyTritonFramesOfBothHeaderFormatsReachKinesisThroughKclppSpoold) {
  REQUIRE_PYTHON();
  std::string endpoint;
  auto spoold = start_spoold(dir_.write("triton.yaml", config_yaml), endpoint);
  const auto binary = run_python_client(endpoint, 300, "binary");
  const auto json = run_python_client(endpoint, 300, "json");
  ASSERT_EQ(binary.size(), 300u);
  ASSERT_EQ(json.size(), 300u);
  const auto expected = merged(binary, json);
  // Both formats carry the same keys: the data (the 'msg' field) tells them apart.
  const auto got = wait_for_records(*client_, "events_v1", expected.size());
  EXPECT_EQ(got, expected);
  ::kill(spoold->pid(), SIGTERM);
  const auto status = spoold->wait(15s);
  ASSERT_TRUE(status) << spoold->stderr_text();
  EXPECT_TRUE(status->exited && status->code == 0) << status->str() << spoold->stderr_text();
  EXPECT_TRUE(spoold->stdout_raw().empty()) << "spoold wrote to stdout: " << spoold->stdout_raw();
  EXPECT_NE(spoold->stderr_text().find("written 600"), std::string::npos) << spoold->stderr_text();
}

TEST_F(SpoolKinesalite, SigtermAndSigintFlushEverythingHeld) {
  REQUIRE_PYTHON();
  const std::string config = dir_.write("triton.yaml", config_yaml);
  for (const auto& [sig, logical, real] : {std::tuple{SIGTERM, "events", "events_v1"}, std::tuple{SIGINT, "clicks", "clicks_v1"}}) {
    SCOPED_TRACE(sig == SIGTERM ? "SIGTERM" : "SIGINT");
    std::string endpoint;
    // A flush interval far beyond the test: only the flush at the signal can write them.
    auto spoold = start_spoold(config, endpoint, {"--flush-interval-ms", "600000"});
    const auto sent = run_python_client(endpoint, 2'000, "binary", logical);
    ASSERT_EQ(sent.size(), 2'000u);
    ::kill(spoold->pid(), sig);
    const auto status = spoold->wait(20s);
    ASSERT_TRUE(status) << spoold->stderr_text();
    EXPECT_TRUE(status->exited && status->code == 0) << status->str() << spoold->stderr_text();
    EXPECT_EQ(stream_contents(*client_, real), sent);
    EXPECT_TRUE(spoold->stdout_raw().empty());
  }
}

TEST_F(SpoolKinesalite, SpooldFailsClearlyOnAMissingConfigOrABusyEndpoint) {
  kclpp::test::SpawnOptions options;
  options.env = {"AWS_ACCESS_KEY_ID=AKIDKCLPPTEST", "AWS_SECRET_ACCESS_KEY=kclpp-test-secret"};
  {
    Subprocess p({KCLPP_TOOL, "spoold", "--config", "/nonexistent/triton.yaml", "--endpoint", "tcp://127.0.0.1:1"},
                 options);
    const auto status = p.wait(10s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(status->exited && status->code == 1) << status->str();
    EXPECT_NE(p.stderr_text().find("/nonexistent/triton.yaml"), std::string::npos) << p.stderr_text();
  }
  std::string endpoint;
  auto first = start_spoold(dir_.write("triton.yaml", config_yaml), endpoint);
  Subprocess second({KCLPP_TOOL, "spoold", "--config", dir_.write("triton.yaml", config_yaml), "--endpoint", endpoint,
                     "--kinesis-endpoint", server_->endpoint(), "--region", "us-east-1"},
                    options);
  const auto status = second.wait(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited && status->code == 1) << status->str();
  EXPECT_NE(second.stderr_text().find(endpoint), std::string::npos) << second.stderr_text();
}

TEST_F(SpoolKinesalite, CppClientThroughInProcessDaemonWithBothHeadersAndUnknownStreamsCounted) {
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), daemon_options());
  std::thread runner([&] { daemon.run(); });
  std::vector<std::string> expected_events;
  std::vector<std::string> expected_clicks;
  for (const HeaderFormat format : {HeaderFormat::Binary, HeaderFormat::Json}) {
    SpoolClientOptions options;
    options.endpoint = daemon.endpoint();
    options.header = format;
    SpoolClient client(options);
    for (int i = 0; i < 250; ++i) {
      const Map record{{"user_id", "u-" + std::to_string(i % 3)}, {"id", i}, {"binary", format == HeaderFormat::Binary}};
      ASSERT_TRUE(client.send("events", "user_id", record));
      expected_events.push_back("u-" + std::to_string(i % 3) + " " + kclpp::detail::to_hex(encode_record(record)));
      const std::string packed = encode_record(Map{{"id", i}});
      ASSERT_TRUE(client.send("clicks", "c" + std::to_string(i), packed));
      expected_clicks.push_back("c" + std::to_string(i) + " " + kclpp::detail::to_hex(packed));
    }
    EXPECT_TRUE(client.send("nope", "k", encode_record(Map{{"a", 1}})));
    EXPECT_FALSE(client.send("events", "missing_field", Map{{"user_id", "u"}}));
    client.close();
    EXPECT_EQ(client.sent(), 501u);
    EXPECT_EQ(client.dropped(), 1u);
  }
  std::sort(expected_events.begin(), expected_events.end());
  std::sort(expected_clicks.begin(), expected_clicks.end());
  EXPECT_EQ(wait_for_records(*client_, "events_v1", 500), expected_events);
  EXPECT_EQ(wait_for_records(*client_, "clicks_v1", 500), expected_clicks);
  daemon.request_stop();
  runner.join();
  const SpoolStats s = daemon.stats();
  EXPECT_EQ(s.received, 1'002u);
  EXPECT_EQ(s.written, 1'000u);
  EXPECT_EQ(s.unknown_stream, 2u);
  EXPECT_EQ(s.malformed, 0u);
  EXPECT_EQ(s.dropped_full, 0u);
  EXPECT_EQ(s.failed, 0u);
}

TEST_F(SpoolKinesalite, MalformedMessagesAreCountedAndTheDaemonCarriesOn) {
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), daemon_options());
  std::thread runner([&] { daemon.run(); });
  {
    zmq::context_t context;
    zmq::socket_t push(context, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 5'000);
    push.connect(daemon.endpoint());
    const std::string data = encode_record(Map{{"user_id", "u"}});
    auto send = [&](std::vector<std::string> frames) {
      for (std::size_t i = 0; i < frames.size(); ++i)
        push.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    };
    std::string good_header(1, '\x04');
    good_header += '\x06';
    good_header += "events";
    good_header.append(57, '\0');
    good_header += '\x01';
    good_header += 'u';
    good_header.append(62, '\0');
    ASSERT_EQ(good_header.size(), 129u);
    send({data});                                                              // one frame
    send({good_header, data, data});                                           // three frames
    send({"\x05" + good_header.substr(1), data});                              // version 5
    send({R"({"stream_name":"events"})", data});                               // no key
    send({R"({"stream_name":"events","partition_key":""})", data});            // empty key
    send({good_header, data});                                                 // fine
  }
  EXPECT_EQ(wait_for_records(*client_, "events_v1", 1).size(), 1u);
  daemon.request_stop();
  runner.join();
  const SpoolStats s = daemon.stats();
  EXPECT_EQ(s.received, 6u);
  EXPECT_EQ(s.malformed, 5u);
  EXPECT_EQ(s.written, 1u);
}

// --- against a fake Kinesis ---------------------------------------------------------------

std::size_t record_count(const HttpRequest& request) {
  return nlohmann::json::parse(request.body).at("Records").size();
}

HttpReply all_ok(std::size_t n) {
  nlohmann::json records = nlohmann::json::array();
  for (std::size_t k = 0; k < n; ++k)
    records.push_back({{"ShardId", "shardId-000000000000"}, {"SequenceNumber", std::to_string(k + 1)}});
  return HttpReply::json(nlohmann::json{{"FailedRecordCount", 0}, {"Records", records}}.dump());
}

SpoolDaemonOptions fake_daemon_options(const FakeHttpServer& server, int attempts = 3) {
  SpoolDaemonOptions o;
  o.endpoint = "tcp://127.0.0.1:*";
  o.client = server.client_options(10s);
  o.retry = kclpp::RetryPolicy{attempts, 1ms, 5ms, 1ms};
  o.flush_interval = 20ms;
  return o;
}

void send_records(const std::string& endpoint, int n, std::size_t size) {
  SpoolClientOptions options;
  options.endpoint = endpoint;
  SpoolClient client(options);
  const std::string data = encode_record(Map{{"pad", std::string(size, 'p')}});
  for (int i = 0; i < n; ++i) ASSERT_TRUE(client.send("events", "k" + std::to_string(i), data));
  client.close();
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds deadline = 10s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Bodies that are not one msgpack map (docs/triton.md §2) would reach Kinesis only for
// `kclpp store` to skip them later: the daemon refuses them, counts each as malformed and
// logs why, while the valid messages between them go through.
TEST_F(SpoolKinesalite, BodiesThatAreNotTritonRecordsAreMalformedAndNeverReachKinesis) {
  std::mutex log_mutex;
  std::vector<std::string> warnings;
  kclpp::set_log_sink([&](kclpp::LogLevel level, std::string_view message) {
    if (level != kclpp::LogLevel::Warn) return;
    const std::lock_guard lock(log_mutex);
    warnings.emplace_back(message);
  });
  struct RestoreSink {
    ~RestoreSink() { kclpp::set_log_sink({}); }
  } restore;
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), daemon_options());
  std::thread runner([&] { daemon.run(); });
  const std::string good = encode_record(Map{{"user_id", "u"}});
  const std::vector<std::pair<std::string, std::string>> bad{
      {"three 0xc1 bytes", "\xc1\xc1\xc1"},
      {"a truncated map", good.substr(0, good.size() - 1)},
      {"trailing bytes", good + "\x01"},
  };
  zmq::context_t context;
  zmq::socket_t push(context, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 5'000);
  push.connect(daemon.endpoint());
  const std::string header = R"({"stream_name":"events","partition_key":"u"})";
  auto send = [&](const std::string& body) {
    push.send(zmq::buffer(header), zmq::send_flags::sndmore);
    push.send(zmq::buffer(body), zmq::send_flags::none);
  };
  std::vector<std::string> expected;
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const std::string before = encode_record(Map{{"user_id", "u"}, {"n", static_cast<int>(i)}});
    send(before);
    expected.push_back("u " + kclpp::detail::to_hex(before));
    send(bad[i].second);
    ASSERT_TRUE(wait_until([&] { return daemon.stats().malformed == i + 1; })) << bad[i].first;
    // The warnings are rate-limited to one a second: wait for the next one to be allowed.
    std::this_thread::sleep_for(1'100ms);
  }
  send(good);
  expected.push_back("u " + kclpp::detail::to_hex(good));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(wait_for_records(*client_, "events_v1", expected.size()), expected);
  daemon.request_stop();
  runner.join();
  const SpoolStats s = daemon.stats();
  EXPECT_EQ(s.received, 7u);
  EXPECT_EQ(s.malformed, 3u);
  EXPECT_EQ(s.written, 4u);
  EXPECT_EQ(stream_contents(*client_, "events_v1"), expected);  // nothing else arrived late

  const std::lock_guard lock(log_mutex);
  std::vector<std::string> reasons;
  for (const std::string& w : warnings) {
    if (w.find("malformed message dropped") != std::string::npos) reasons.push_back(w);
  }
  ASSERT_EQ(reasons.size(), 3u) << ::testing::PrintToString(warnings);
  EXPECT_NE(reasons[0].find("not a msgpack map"), std::string::npos) << reasons[0];
  EXPECT_NE(reasons[1].find("truncated msgpack"), std::string::npos) << reasons[1];
  EXPECT_NE(reasons[2].find("trailing bytes"), std::string::npos) << reasons[2];
  for (const std::string& r : reasons) EXPECT_NE(r.find("stream 'events'"), std::string::npos) << r;
}

TEST(SpoolFaults, BoundedMemoryDropsAndCountsWhileKinesisHangs) {
  std::atomic<std::size_t> accepted{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    HttpReply r = all_ok(record_count(req));
    accepted += record_count(req);
    r.delay = 1'500ms;  // a hanging Kinesis
    return r;
  });
  SpoolDaemonOptions options = fake_daemon_options(server);
  options.max_buffered_bytes = 20 * 1'100;  // about 20 of the records below
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), options);
  std::thread runner([&] { daemon.run(); });
  send_records(daemon.endpoint(), 200, 1'000);
  // Receiving does not wait for Kinesis: all 200 are taken off the socket while the first
  // request still hangs.
  EXPECT_TRUE(wait_until([&] { return daemon.stats().received == 200; }, 1'400ms));
  daemon.request_stop();
  runner.join();
  const SpoolStats s = daemon.stats();
  EXPECT_EQ(s.received, 200u);
  EXPECT_GE(s.dropped_full, 150u);
  EXPECT_LE(s.written, 25u);
  EXPECT_GT(s.written, 0u);
  EXPECT_EQ(s.written + s.dropped_full, 200u);
  EXPECT_EQ(accepted.load(), s.written);
}

TEST(SpoolFaults, ThrottledEntriesAreRetriedBeforeAnythingIsDropped) {
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const HttpRequest& req) {
    const std::size_t n = record_count(req);
    if (calls++ == 0) {
      nlohmann::json records = nlohmann::json::array();
      for (std::size_t k = 0; k < n; ++k)
        records.push_back({{"ErrorCode", "ProvisionedThroughputExceededException"}, {"ErrorMessage", "slow"}});
      return HttpReply::json(nlohmann::json{{"FailedRecordCount", n}, {"Records", records}}.dump());
    }
    if (calls == 2) return HttpReply::aws_error(500, "InternalFailure", "injected");
    return all_ok(n);
  });
  // One flush holds everything: a long interval, records sent before the first flush.
  SpoolDaemonOptions options = fake_daemon_options(server);
  options.flush_interval = 1s;
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), options);
  std::thread runner([&] { daemon.run(); });
  send_records(daemon.endpoint(), 40, 10);
  EXPECT_TRUE(wait_until([&] { return daemon.stats().written == 40; }));
  daemon.request_stop();
  runner.join();
  const SpoolStats s = daemon.stats();
  EXPECT_EQ(s.written, 40u);
  EXPECT_EQ(s.retried, 40u);
  EXPECT_EQ(s.failed, 0u);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(record_count(requests[2]), 40u);
}

TEST(SpoolFaults, PersistentFailureDropsAfterTheAttemptsAndCountsIt) {
  FakeHttpServer server([&](const HttpRequest&) { return HttpReply::aws_error(500, "InternalFailure", "down"); });
  SpoolDaemonOptions options = fake_daemon_options(server, 3);
  options.flush_interval = 1s;
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), options);
  std::thread runner([&] { daemon.run(); });
  send_records(daemon.endpoint(), 30, 10);
  EXPECT_TRUE(wait_until([&] { return daemon.stats().failed == 30; }));
  daemon.request_stop();
  runner.join();
  const SpoolStats s = daemon.stats();
  EXPECT_EQ(s.failed, 30u);
  EXPECT_EQ(s.written, 0u);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(SpoolFaults, ConcurrentSendersThroughOneClientLoseNothing) {
  std::mutex mutex;
  std::multiset<std::string> keys;
  FakeHttpServer server([&](const HttpRequest& req) {
    const auto body = nlohmann::json::parse(req.body);
    std::lock_guard lock(mutex);
    for (const auto& r : body.at("Records")) keys.insert(r.at("PartitionKey").get<std::string>());
    return all_ok(body.at("Records").size());
  });
  SpoolDaemon daemon(TritonConfig::parse(config_yaml, "test.yaml"), fake_daemon_options(server));
  std::thread runner([&] { daemon.run(); });
  {
    SpoolClientOptions options;
    options.endpoint = daemon.endpoint();
    options.high_water_mark = 16'384;  // more than all records: no drops, this test is about losing nothing
    SpoolClient client(options);
    std::vector<std::thread> senders;
    for (int t = 0; t < 4; ++t) {
      senders.emplace_back([&client, t] {
        const std::string data = encode_record(Map{{"t", t}});
        for (int i = 0; i < 2'500; ++i) client.send("events", std::to_string(t) + "-" + std::to_string(i), data);
      });
    }
    for (auto& s : senders) s.join();
    client.close();
    EXPECT_EQ(client.sent(), 10'000u);
    EXPECT_EQ(client.dropped(), 0u);
  }
  EXPECT_TRUE(wait_until([&] { return daemon.stats().written == 10'000; }));
  daemon.request_stop();
  runner.join();
  std::lock_guard lock(mutex);
  EXPECT_EQ(keys.size(), 10'000u);
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 2'500; i += 499) EXPECT_EQ(keys.count(std::to_string(t) + "-" + std::to_string(i)), 1u);
}

TEST(SpoolDaemonBind, EndpointInUseThrowsTransportErrorNamingIt) {
  SpoolDaemonOptions options;
  options.endpoint = "tcp://127.0.0.1:*";
  options.client.endpoint = "http://127.0.0.1:1";
  options.client.region = "us-east-1";
  options.client.credentials = aws::static_credentials({"AKID", "secret", {}});
  SpoolDaemon first(TritonConfig::parse(config_yaml, "test.yaml"), options);
  options.endpoint = first.endpoint();
  try {
    SpoolDaemon second(TritonConfig::parse(config_yaml, "test.yaml"), options);
    FAIL() << "bound twice";
  } catch (const kclpp::TransportError& e) {
    EXPECT_NE(std::string(e.what()).find(first.endpoint()), std::string::npos) << e.what();
  }
}

}  // namespace
