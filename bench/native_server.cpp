// The Kinesis stand-in of bench/native_throughput: a tiny HTTP/1.1 keep-alive server that
// answers ListShards, DescribeStreamSummary, GetShardIterator and GetRecords from bytes
// computed once at start-up, with no latency, so that the reader is what gets measured.
//
//   kclpp_bench_native_server --port=0 --shards=32 --responses=5 --batch=10000 --record-size=1000
//
// Every shard serves `--responses` GetRecords replies of `--batch` records, then SHARD_END
// (a reply with no NextShardIterator). The shards are listed as closed, so a reader that
// starts at TRIM_HORIZON reads each one to its end. The records block (the JSON of the
// Records array) is the same in every reply; only the NextShardIterator and
// MillisBehindLatest before it change. Records look like what Kinesis sends: fields in the
// service's (alphabetical) order, ApproximateArrivalTimestamp as epoch seconds in Java's
// double notation (1.715367226547E9), base64 Data, a 36-character partition key and a
// 56-digit sequence number increasing with random gaps.
//
// It prints "PORT <n>" on stdout once listening, and exits when stdin reaches EOF (the
// driver closes it) or on SIGTERM/SIGINT. One thread per connection, joined at exit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Options {
  int port = 0;
  int shards = 32;
  long responses = 5;       // GetRecords replies per shard before SHARD_END
  long batch = 10'000;      // records per reply
  long record_size = 1'000;  // payload bytes per record
  std::uint64_t seed = 42;
};

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void base64_append(std::string& out, const std::string& in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(table[(v >> 6) & 63]);
    out.push_back(table[v & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest != 0) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    if (rest == 2) v |= std::uint32_t{p[i + 1]} << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(rest == 2 ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

// A 56-digit decimal number: a fixed 38-digit head (like the shard's starting sequence
// number) followed by an 18-digit counter.
std::string sequence_number(std::uint64_t counter) {
  std::string tail(18, '0');
  for (std::size_t i = 18; i-- > 0 && counter != 0;) {
    tail[i] = static_cast<char>('0' + static_cast<int>(counter % 10));
    counter /= 10;
  }
  return "49590338271490256608559692538361571095" + tail;
}

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
  char buf[64];
  for (long r = 0; r < o.batch; ++r) {
    counter += 1 + splitmix64(rng) % 1'000'000'000ULL;  // < 10^13 in all for 10,000 records
    arrival_ms += static_cast<std::int64_t>(splitmix64(rng) % 3);
    for (std::size_t i = 0; i < payload.size(); i += 8) {
      const std::uint64_t v = splitmix64(rng);
      std::memcpy(payload.data() + i, &v, std::min<std::size_t>(8, payload.size() - i));
    }
    const std::uint64_t k1 = splitmix64(rng);
    const std::uint64_t k2 = splitmix64(rng);
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(k1 >> 32),
                  static_cast<unsigned>((k1 >> 16) & 0xFFFF), static_cast<unsigned>(k1 & 0xFFFF),
                  static_cast<unsigned>(k2 >> 48),
                  static_cast<unsigned long long>(k2 & 0xFFFFFFFFFFFFULL));
    if (r != 0) out.push_back(',');
    // Java's Double.toString(seconds): 1.715367226547E9 (trailing zeros of the fraction
    // dropped, as Jackson writes it).
    std::string digits = std::to_string(arrival_ms);  // 13 digits
    while (digits.size() > 2 && digits.back() == '0') digits.pop_back();
    out.append("{\"ApproximateArrivalTimestamp\":");
    out.append(digits.substr(0, 1));
    out.push_back('.');
    out.append(digits.size() > 1 ? digits.substr(1) : "0");
    out.append("E9,\"Data\":\"");
    base64_append(out, payload);
    out.append("\",\"PartitionKey\":\"");
    out.append(buf);
    out.append("\",\"SequenceNumber\":\"");
    out.append(sequence_number(counter));
    out.append("\"}");
  }
  out.push_back(']');
  return out;
}

std::string shard_id(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shardId-%012d", index);
  return buf;
}

// Real iterators are ~230 characters of base64; ours end in "-<shard>-<reply>".
std::string iterator_for(int shard, long reply) {
  static const std::string head =
      "AAAAAAAAAAHsW8zCWf9164uy8Epue6WS3w6wmj4a4USt+CNvMd6uXQ+HL5vAJMznqqC0DLKsIjuoiTi1BpT6nW0LN2M2D56"
      "zM5H8anHm30Gbri9ua+qaGgj+3XTyvbhpERfrezgLHbPB/rIcVpykJbaSj5tmcXYRmFnqZBEyHwtZYFmh6hvWVFkIwLuMZLM"
      "rpWhG5r5hzkE";
  return head + "-" + std::to_string(shard) + "-" + std::to_string(reply);
}

std::string list_shards_reply(const Options& o) {
  std::string out = "{\"Shards\":[";
  // Hash ranges split 2^128 evenly enough for show; the reader does not use them.
  for (int i = 0; i < o.shards; ++i) {
    if (i != 0) out.push_back(',');
    out += "{\"HashKeyRange\":{\"EndingHashKey\":\"" + std::to_string(i + 1) +
           "0000000000000000000000000000000000\",\"StartingHashKey\":\"" + std::to_string(i) +
           "0000000000000000000000000000000000\"},\"SequenceNumberRange\":{\"EndingSequenceNumber\":"
           "\"49590338271490256608999999999999999999999999999999999999\",\"StartingSequenceNumber\":"
           "\"49590338271490256608000000000000000000000000000000000000\"},\"ShardId\":\"" +
           shard_id(i) + "\"}";
  }
  out += "]}";
  return out;
}

std::atomic<bool> stopping{false};
std::mutex fds_mutex;
std::set<int> open_fds;

bool write_all(int fd, std::vector<iovec> parts) {
  std::size_t index = 0;
  while (index < parts.size()) {
    const ssize_t n = ::writev(fd, parts.data() + index, static_cast<int>(std::min<std::size_t>(parts.size() - index, IOV_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto left = static_cast<std::size_t>(n);
    while (index < parts.size() && left >= parts[index].iov_len) {
      left -= parts[index].iov_len;
      ++index;
    }
    if (index < parts.size()) {
      parts[index].iov_base = static_cast<char*>(parts[index].iov_base) + left;
      parts[index].iov_len -= left;
    }
  }
  return true;
}

std::string_view header_value(std::string_view head, std::string_view name) {
  std::size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    if (head.size() - pos < name.size() + 1) return {};
    bool match = true;
    for (std::size_t i = 0; i < name.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(head[pos + i])) != name[i]) {
        match = false;
        break;
      }
    }
    if (match && head[pos + name.size()] == ':') {
      std::size_t b = pos + name.size() + 1;
      std::size_t e = head.find("\r\n", b);
      if (e == std::string_view::npos) e = head.size();
      while (b < e && head[b] == ' ') ++b;
      return head.substr(b, e - b);
    }
  }
  return {};
}

struct Server {
  Options options;
  std::string records;         // "Records":[...]
  std::string shards_reply;
  std::string summary_reply;

  void send(int fd, int status, std::string_view prefix, std::string_view big, std::string_view suffix) {
    const std::size_t length = prefix.size() + big.size() + suffix.size();
    std::string head = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Bad Request") +
                       "\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: "
                       "c0ffee00-0000-4000-8000-000000000000\r\nContent-Length: " +
                       std::to_string(length) + "\r\n\r\n";
    std::vector<iovec> parts;
    for (std::string_view s : {std::string_view(head), prefix, big, suffix}) {
      if (!s.empty()) parts.push_back({const_cast<char*>(s.data()), s.size()});
    }
    (void)write_all(fd, std::move(parts));
  }

  void error(int fd, std::string_view type, std::string_view message) {
    send(fd, 400, "{\"__type\":\"" + std::string(type) + "\",\"message\":\"" + std::string(message) + "\"}",
         {}, {});
  }

  static std::string_view json_string_field(std::string_view body, std::string_view key) {
    std::string pattern;
    pattern.reserve(key.size() + 2);
    pattern.push_back('"');
    pattern.append(key);
    pattern.push_back('"');
    std::size_t p = body.find(pattern);
    if (p == std::string_view::npos) return {};
    p = body.find('"', body.find(':', p + pattern.size()));
    if (p == std::string_view::npos) return {};
    const std::size_t e = body.find('"', p + 1);
    if (e == std::string_view::npos) return {};
    return body.substr(p + 1, e - p - 1);
  }

  void answer(int fd, std::string_view target, std::string_view body) {
    const std::size_t dot = target.rfind('.');
    const std::string_view op = dot == std::string_view::npos ? target : target.substr(dot + 1);
    if (op == "GetRecords") {
      std::string_view it = json_string_field(body, "ShardIterator");
      // "...-<shard>-<reply>"
      const std::size_t d2 = it.rfind('-');
      const std::size_t d1 = d2 == std::string_view::npos ? d2 : it.rfind('-', d2 - 1);
      int shard = -1;
      long reply = -1;
      if (d1 != std::string_view::npos) {
        std::from_chars(it.data() + d1 + 1, it.data() + d2, shard);
        std::from_chars(it.data() + d2 + 1, it.data() + it.size(), reply);
      }
      if (shard < 0 || shard >= options.shards || reply < 0 || reply >= options.responses) {
        error(fd, "ExpiredIteratorException", "Iterator expired or invalid");
        return;
      }
      std::string prefix;
      if (reply + 1 < options.responses) {
        // Behind the tip by the replies still to come (2 s per reply of data).
        prefix = "{\"MillisBehindLatest\":" + std::to_string((options.responses - reply - 1) * 2000) +
                 ",\"NextShardIterator\":\"" + iterator_for(shard, reply + 1) + "\",";
      } else {
        prefix = "{\"ChildShards\":[],\"MillisBehindLatest\":0,";
      }
      send(fd, 200, prefix, records, "}");
    } else if (op == "GetShardIterator") {
      const std::string_view id = json_string_field(body, "ShardId");
      int shard = -1;
      for (int i = 0; i < options.shards; ++i) {
        if (id == shard_id(i)) shard = i;
      }
      if (shard < 0) {
        error(fd, "ResourceNotFoundException", "Shard not found");
        return;
      }
      send(fd, 200, "{\"ShardIterator\":\"" + iterator_for(shard, 0) + "\"}", {}, {});
    } else if (op == "ListShards") {
      send(fd, 200, shards_reply, {}, {});
    } else if (op == "DescribeStreamSummary") {
      send(fd, 200, summary_reply, {}, {});
    } else {
      error(fd, "UnknownOperationException", "not supported by the bench server");
    }
  }

  void serve(int fd) {
    std::string in;
    in.reserve(64 * 1024);
    char buf[64 * 1024];
    for (;;) {
      const std::size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      const std::string_view head(in.data(), end);
      std::size_t length = 0;
      const std::string_view cl = header_value(head, "content-length");
      std::from_chars(cl.data(), cl.data() + cl.size(), length);
      const std::string target(header_value(head, "x-amz-target"));
      if (header_value(head, "expect") == "100-continue") {
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)write_all(fd, {{const_cast<char*>(cont.data()), cont.size()}});
      }
      const std::size_t need = end + 4 + length;
      bool closed = false;
      while (in.size() < need) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          closed = true;
          break;
        }
        in.append(buf, static_cast<std::size_t>(n));
      }
      if (closed) break;
      answer(fd, target, std::string_view(in).substr(end + 4, length));
      in.erase(0, need);
    }
    {
      const std::lock_guard lock(fds_mutex);
      open_fds.erase(fd);
    }
    ::close(fd);
  }
};

void on_signal(int) { stopping = true; }

long arg_long(std::string_view arg, std::string_view name, long fallback) {
  if (arg.substr(0, name.size()) != name) return fallback;
  return std::strtol(std::string(arg.substr(name.size())).c_str(), nullptr, 10);
}

}  // namespace

int main(int argc, char** argv) {
  Server server;
  Options& o = server.options;
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
    if (a == "--help") {
      std::puts("kclpp_bench_native_server [--port=0] [--shards=32] [--responses=5] [--batch=10000] "
                "[--record-size=1000] [--seed=42]");
      return 0;
    }
  }
  if (o.shards < 1 || o.responses < 1 || o.batch < 0 || o.record_size < 0) {
    std::fprintf(stderr, "native_server: bad options\n");
    return 2;
  }
  server.records = make_records(o);
  server.shards_reply = list_shards_reply(o);
  server.summary_reply =
      "{\"StreamDescriptionSummary\":{\"ConsumerCount\":0,\"EncryptionType\":\"NONE\","
      "\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],\"OpenShardCount\":" +
      std::to_string(o.shards) +
      ",\"RetentionPeriodHours\":24,\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/bench\","
      "\"StreamCreationTimestamp\":1.715367E9,\"StreamName\":\"bench\",\"StreamStatus\":\"ACTIVE\"}}";

  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 256) != 0) {
    std::perror("native_server: bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("PORT %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  std::fprintf(stderr, "native_server: port %d, %d shards x %ld replies x %ld records of %ld bytes; reply %.2f MB\n",
               ntohs(addr.sin_port), o.shards, o.responses, o.batch, o.record_size,
               static_cast<double>(server.records.size()) / 1e6);

  std::vector<std::thread> threads;
  for (;;) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int n = ::poll(fds, 2, 500);
    if (stopping) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      char c[256];
      if (::read(STDIN_FILENO, c, sizeof c) <= 0) break;  // EOF: the driver is done
    }
    if ((fds[0].revents & POLLIN) != 0) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
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
