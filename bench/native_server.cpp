// The Kinesis stand-in of bench/native_throughput and bench/fanout's polling side: a tiny
// HTTP/1.1 keep-alive server that answers ListShards, DescribeStreamSummary,
// GetShardIterator and GetRecords, so that the reader is what gets measured.
//
//   kclpp_bench_native_server --port=0 --shards=32 --responses=5 --batch=10000 --record-size=1000
//   kclpp_bench_native_server --latency-rate=200 --latency-records=62 --shards=48
//
// Replay mode (the default): replies computed once at start-up, no latency. Every shard
// serves `--responses` GetRecords replies of `--batch` records, then SHARD_END (a reply with
// no NextShardIterator). The shards are listed as closed, so a reader that starts at
// TRIM_HORIZON reads each one to its end. The records block (the JSON of the Records array)
// is the same in every reply; only the NextShardIterator and MillisBehindLatest before it
// change. Records look like what Kinesis sends (replay_server.hpp, append_record_json): a
// 36-character partition key and a 56-digit sequence number increasing with random gaps.
//
// Latency mode (--latency-rate > 0): each shard's `--latency-records` records appear at the
// known times of replay_server.hpp's ArrivalSchedule; GetRecords returns those that have
// arrived (MillisBehindLatest 0 once caught up), and SHARD_END after the last one. Each
// record's data starts with its arrival time, for the reader to measure its latency.
//
// With --tls-cert and --tls-key it serves HTTPS (HTTP/1.1) instead of plain HTTP.
//
// It prints "PORT <n>" on stdout once listening. A line "stats" on stdin prints
// "STATS connections=<accepted so far>"; it exits when stdin reaches EOF (the driver closes
// it) or on SIGTERM/SIGINT. One thread per connection, joined at exit.
#include <poll.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include "replay_server.hpp"

namespace {

using namespace kclpp::bench;

struct Options {
  int port = 0;
  int shards = 32;
  long responses = 5;       // GetRecords replies per shard before SHARD_END
  long batch = 10'000;      // records per reply
  long record_size = 1'000;  // payload bytes per record
  std::uint64_t seed = 42;
  double latency_rate = 0;   // > 0: latency mode, records per second over all shards
  long latency_records = 62;  // latency mode: records per shard
  std::string tls_cert, tls_key;  // PEM files: serve HTTPS (HTTP/1.1 by ALPN)
};

// The "Records":[...] array, shared by every reply.
std::string make_records(const Options& o) {
  std::uint64_t rng = o.seed;
  std::string out;
  out.reserve(static_cast<std::size_t>(o.batch) *
              static_cast<std::size_t>(o.record_size * 4 / 3 + 240));
  out.append("\"Records\":[");
  std::uint64_t counter = splitmix64(rng) % 100'000'000'000'000'000ULL;
  std::int64_t arrival_ms = 1'715'367'226'547;
  std::string payload(static_cast<std::size_t>(o.record_size), '\0');
  for (long r = 0; r < o.batch; ++r) {
    counter += 1 + splitmix64(rng) % 1'000'000'000ULL;  // < 10^13 in all for 10,000 records
    arrival_ms += static_cast<std::int64_t>(splitmix64(rng) % 3);
    random_bytes(payload, rng);
    const std::string key = partition_key(rng);
    if (r != 0) out.push_back(',');
    append_record_json(out, arrival_ms, payload, key, sequence_number(counter));
  }
  out.push_back(']');
  return out;
}

// Real iterators are ~230 characters of base64; ours end in "-<shard>-<reply>" (replay
// mode) or "-<shard>-<next record>" (latency mode).
std::string iterator_for(int shard, long reply) {
  static const std::string head =
      "AAAAAAAAAAHsW8zCWf9164uy8Epue6WS3w6wmj4a4USt+CNvMd6uXQ+HL5vAJMznqqC0DLKsIjuoiTi1BpT6nW0LN2M2D56"
      "zM5H8anHm30Gbri9ua+qaGgj+3XTyvbhpERfrezgLHbPB/rIcVpykJbaSj5tmcXYRmFnqZBEyHwtZYFmh6hvWVFkIwLuMZLM"
      "rpWhG5r5hzkE";
  return head + "-" + std::to_string(shard) + "-" + std::to_string(reply);
}

// (shard, position) of an iterator, or shard -1.
std::pair<int, long> parse_iterator(std::string_view it) {
  const std::size_t d2 = it.rfind('-');
  const std::size_t d1 = d2 == std::string_view::npos || d2 == 0 ? std::string_view::npos : it.rfind('-', d2 - 1);
  int shard = -1;
  long position = -1;
  if (d1 != std::string_view::npos) {
    std::from_chars(it.data() + d1 + 1, it.data() + d2, shard);
    std::from_chars(it.data() + d2 + 1, it.data() + it.size(), position);
  }
  return {shard, position};
}

std::atomic<bool> stopping{false};
std::atomic<long> connections{0};
std::mutex fds_mutex;
std::set<int> open_fds;

struct Server {
  Options options;
  std::string records;         // "Records":[...]
  std::string shards_reply;
  std::string summary_reply;
  ArrivalSchedule schedule;
  // Latency mode: when each shard was first asked for (0: not yet).
  std::vector<std::atomic<std::int64_t>> t0;

  void error(Socket& fd, std::string_view type, std::string_view message) {
    send_json(fd, 400, json_error(type, message));
  }

  void get_records(Socket& fd, std::string_view body) {
    const auto [shard, position] = parse_iterator(json_string_field(body, "ShardIterator"));
    const long last = options.latency_rate > 0 ? options.latency_records : options.responses - 1;
    if (shard < 0 || shard >= options.shards || position < 0 || position > last) {
      error(fd, "ExpiredIteratorException", "Iterator expired or invalid");
      return;
    }
    if (options.latency_rate > 0) {
      latency_get_records(fd, shard, position, json_int_field(body, "Limit", 10'000));
      return;
    }
    std::string prefix;
    if (position + 1 < options.responses) {
      // Behind the tip by the replies still to come (2 s per reply of data).
      prefix = "{\"MillisBehindLatest\":" + std::to_string((options.responses - position - 1) * 2000) +
               ",\"NextShardIterator\":\"" + iterator_for(shard, position + 1) + "\",";
    } else {
      prefix = "{\"ChildShards\":[],\"MillisBehindLatest\":0,";
    }
    send_json(fd, 200, prefix, records, "}");
  }

  // The records of `shard` from `position` that have arrived by now (at most `limit`).
  void latency_get_records(Socket& fd, int shard, long position, long limit) {
    const std::int64_t now = monotonic_ns();
    const std::int64_t start = t0[static_cast<std::size_t>(shard)].load();
    std::string out = "{";
    std::string list = "\"Records\":[";
    long next = position;
    while (next < options.latency_records && next - position < limit) {
      const std::int64_t arrival = schedule.arrival_ns(start, shard, next);
      if (arrival > now) break;
      if (next != position) list.push_back(',');
      append_latency_record(list, shard, next, arrival, options.record_size);
      ++next;
    }
    list.push_back(']');
    if (next == options.latency_records) {
      out += "\"ChildShards\":[],\"MillisBehindLatest\":0,";
    } else {
      const std::int64_t behind = std::max<std::int64_t>(0, now - schedule.arrival_ns(start, shard, next));
      // Behind: at least 1 ms, so that "0 = caught up" never hides a record that has arrived.
      const std::int64_t millis = behind > 0 ? std::max<std::int64_t>(1, behind / 1'000'000) : 0;
      out += "\"MillisBehindLatest\":" + std::to_string(millis) + ",\"NextShardIterator\":\"" +
             iterator_for(shard, next) + "\",";
    }
    send_json(fd, 200, out, list, "}");
  }

  void get_shard_iterator(Socket& fd, std::string_view body) {
    const int shard = shard_index(json_string_field(body, "ShardId"), options.shards);
    if (shard < 0) {
      error(fd, "ResourceNotFoundException", "Shard not found");
      return;
    }
    long position = 0;
    if (options.latency_rate > 0) {
      std::int64_t unset = 0;
      t0[static_cast<std::size_t>(shard)].compare_exchange_strong(unset, monotonic_ns());
      if (json_string_field(body, "ShardIteratorType") == "AFTER_SEQUENCE_NUMBER") {
        position = latency_index_after(json_string_field(body, "StartingSequenceNumber"));
        if (position < 0 || position > options.latency_records) {
          error(fd, "InvalidArgumentException", "StartingSequenceNumber is not one of this shard's");
          return;
        }
      }
    }
    send_json(fd, 200, "{\"ShardIterator\":\"" + iterator_for(shard, position) + "\"}");
  }

  void answer(Socket& fd, std::string_view op, std::string_view body) {
    if (op == "GetRecords") {
      get_records(fd, body);
    } else if (op == "GetShardIterator") {
      get_shard_iterator(fd, body);
    } else if (op == "ListShards") {
      send_json(fd, 200, shards_reply);
    } else if (op == "DescribeStreamSummary") {
      send_json(fd, 200, summary_reply);
    } else {
      error(fd, "UnknownOperationException", "not supported by the bench server");
    }
  }

  SslCtxPtr tls;  // set: every connection is TLS
  std::string alpn = alpn_wire({"http/1.1"});

  void serve(int fd) {
    SslPtr ssl;
    if (tls) {
      ssl.reset(SSL_new(tls.get()));
      SSL_set_fd(ssl.get(), fd);
      if (SSL_accept(ssl.get()) != 1) ssl.reset();
    }
    if (!tls || ssl) {
      Socket socket(fd, ssl.get());
      serve_http1(socket, [this](Socket& out, std::string_view op, std::string_view body) { answer(out, op, body); });
    }
    {
      const std::lock_guard lock(fds_mutex);
      open_fds.erase(fd);
    }
    ssl.reset();
    ::close(fd);
  }
};

void on_signal(int) { stopping = true; }

// Reads the driver's commands; false at EOF.
bool read_commands() {
  char c[256];
  const ssize_t n = ::read(STDIN_FILENO, c, sizeof c);
  if (n <= 0) return false;
  if (std::string_view(c, static_cast<std::size_t>(n)).find("stats") != std::string_view::npos) {
    std::printf("STATS connections=%ld\n", connections.load());
    std::fflush(stdout);
  }
  return true;
}

// Parses the command line into `o`: 0 to go on, else the exit code (--help: 0 after the
// usage, so -1 there).
int parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      o.port = std::atoi(argv[++i]);
      continue;
    }
    o.port = static_cast<int>(arg_long(a, "--port=", o.port));
    o.shards = static_cast<int>(arg_long(a, "--shards=", o.shards));
    o.responses = arg_long(a, "--responses=", o.responses);
    o.batch = arg_long(a, "--batch=", o.batch);
    o.record_size = arg_long(a, "--record-size=", o.record_size);
    o.seed = static_cast<std::uint64_t>(arg_long(a, "--seed=", static_cast<long>(o.seed)));
    o.latency_rate = static_cast<double>(arg_long(a, "--latency-rate=", static_cast<long>(o.latency_rate)));
    o.latency_records = arg_long(a, "--latency-records=", o.latency_records);
    if (a.rfind("--tls-cert=", 0) == 0) o.tls_cert = a.substr(11);
    if (a.rfind("--tls-key=", 0) == 0) o.tls_key = a.substr(10);
    if (a == "--help") {
      std::puts("kclpp_bench_native_server [--port=0] [--shards=32] [--responses=5] [--batch=10000] "
                "[--record-size=1000] [--seed=42] [--latency-rate=0 --latency-records=62] [--tls-cert=PEM --tls-key=PEM]");
      return -1;
    }
  }
  if (o.shards < 1 || o.responses < 1 || o.batch < 0 || o.record_size < 0 || o.latency_rate < 0 ||
      o.latency_records < 1 || (o.latency_rate > 0 && o.record_size < 8)) {
    std::fprintf(stderr, "native_server: bad options\n");
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Server server;
  Options& o = server.options;
  if (const int rc = parse_options(argc, argv, o); rc != 0) return rc < 0 ? 0 : rc;
  if (o.latency_rate > 0) {
    server.schedule = {o.shards, o.latency_rate, o.latency_records};
    server.t0 = std::vector<std::atomic<std::int64_t>>(static_cast<std::size_t>(o.shards));
  } else {
    server.records = make_records(o);
  }
  server.shards_reply = list_shards_reply(o.shards);
  server.summary_reply = stream_summary_reply(o.shards, 0);
  if (!o.tls_cert.empty()) {
    server.tls = server_context(o.tls_cert, o.tls_key, server.alpn);
    if (!server.tls) return 1;
  }

  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int port = 0;
  const int listener = listen_loopback(o.port, port);
  if (listener < 0) {
    std::perror("native_server: bind/listen");
    return 1;
  }
  std::printf("PORT %d\n", port);
  std::fflush(stdout);
  if (o.latency_rate > 0) {
    std::fprintf(stderr, "native_server: port %d, latency mode: %d shards x %ld records of %ld bytes at %.0f/s\n",
                 port, o.shards, o.latency_records, o.record_size, o.latency_rate);
  } else {
    std::fprintf(stderr, "native_server: port %d, %d shards x %ld replies x %ld records of %ld bytes; reply %.2f MB\n",
                 port, o.shards, o.responses, o.batch, o.record_size,
                 static_cast<double>(server.records.size()) / 1e6);
  }

  std::vector<std::thread> threads;
  const int one = 1;
  for (;;) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int n = ::poll(fds, 2, 500);
    if (stopping) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0 && !read_commands()) break;  // EOF: the driver is done
    if ((fds[0].revents & POLLIN) != 0) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      {
        const std::lock_guard lock(fds_mutex);
        open_fds.insert(fd);
      }
      threads.emplace_back([&server, fd] { server.serve(fd); });
    }
  }
  ::close(listener);
  {
    const std::lock_guard lock(fds_mutex);
    for (const int fd : open_fds) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads) t.join();
  return 0;
}
