#pragma once
// Pieces shared by the bench's Kinesis stand-ins (native_server.cpp: GetRecords over
// HTTP/1.1; fanout_server.cpp: SubscribeToShard over HTTP/2 and the JSON calls over
// HTTP/1.1): records shaped like the service's, the shard list, a blocking HTTP/1.1
// keep-alive loop (plain or TLS: tls.hpp), the loopback listener and the latency mode's
// arrival schedule.
// Bench-internal: header-only, no kclpp library needed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "tls.hpp"

namespace kclpp::bench {

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline void base64_append(std::string& out, std::string_view in) {
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

// `width` decimal digits of `value`, zero-padded on the left.
inline void append_padded(std::string& out, std::uint64_t value, std::size_t width) {
  const std::size_t at = out.size();
  out.append(width, '0');
  for (std::size_t i = width; i-- > 0 && value != 0;) {
    out[at + i] = static_cast<char>('0' + static_cast<int>(value % 10));
    value /= 10;
  }
}

// A 56-digit decimal number: a fixed 38-digit head (like the shard's starting sequence
// number) followed by an 18-digit counter.
inline constexpr std::string_view sequence_head = "49590338271490256608559692538361571095";

inline std::string sequence_number(std::uint64_t counter) {
  std::string out(sequence_head);
  append_padded(out, counter, 18);
  return out;
}

// A UUID-like 36-character partition key.
inline std::string partition_key(std::uint64_t& rng) {
  const std::uint64_t k1 = splitmix64(rng);
  const std::uint64_t k2 = splitmix64(rng);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(k1 >> 32),
                static_cast<unsigned>((k1 >> 16) & 0xFFFF), static_cast<unsigned>(k1 & 0xFFFF),
                static_cast<unsigned>(k2 >> 48), static_cast<unsigned long long>(k2 & 0xFFFFFFFFFFFFULL));
  return buf;
}

inline void random_bytes(std::string& out, std::uint64_t& rng) {
  for (std::size_t i = 0; i < out.size(); i += 8) {
    const std::uint64_t v = splitmix64(rng);
    std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, out.size() - i));
  }
}

// Appends one record as the service writes it: fields in alphabetical order,
// ApproximateArrivalTimestamp as epoch seconds in Java's Double.toString notation
// (1.715367226547E9: trailing zeros of the fraction dropped, as Jackson writes it), base64
// Data. The caller adds the separating commas.
inline void append_record_json(std::string& out, std::int64_t arrival_ms, std::string_view payload,
                               std::string_view key, std::string_view sequence) {
  std::string digits = std::to_string(arrival_ms);  // 13 digits
  while (digits.size() > 2 && digits.back() == '0') digits.pop_back();
  out.append("{\"ApproximateArrivalTimestamp\":");
  out.append(digits, 0, 1);
  out.push_back('.');
  out.append(digits.size() > 1 ? std::string_view(digits).substr(1) : std::string_view("0"));
  out.append("E9,\"Data\":\"");
  base64_append(out, payload);
  out.append("\",\"PartitionKey\":\"");
  out.append(key);
  out.append("\",\"SequenceNumber\":\"");
  out.append(sequence);
  out.append("\"}");
}

inline std::string shard_id(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shardId-%012d", index);
  return buf;
}

// The shard whose id is `id`, or -1.
inline int shard_index(std::string_view id, int shards) {
  constexpr std::string_view prefix = "shardId-";
  if (id.size() != prefix.size() + 12 || id.substr(0, prefix.size()) != prefix) return -1;
  int index = -1;
  const auto [end, ec] = std::from_chars(id.data() + prefix.size(), id.data() + id.size(), index);
  if (ec != std::errc() || end != id.data() + id.size() || index < 0 || index >= shards) return -1;
  return index;
}

inline constexpr std::string_view stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/bench";

// Every shard closed (an EndingSequenceNumber), so that a reader starting at TRIM_HORIZON
// reads each one to its end.
inline std::string list_shards_reply(int shards) {
  std::string out = "{\"Shards\":[";
  // Hash ranges split 2^128 evenly enough for show; the reader does not use them.
  for (int i = 0; i < shards; ++i) {
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

inline std::string stream_summary_reply(int shards, int consumers) {
  return "{\"StreamDescriptionSummary\":{\"ConsumerCount\":" + std::to_string(consumers) +
         ",\"EncryptionType\":\"NONE\",\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],\"OpenShardCount\":" +
         std::to_string(shards) + ",\"RetentionPeriodHours\":24,\"StreamARN\":\"" + std::string(stream_arn) +
         "\",\"StreamCreationTimestamp\":1.715367E9,\"StreamName\":\"bench\",\"StreamStatus\":\"ACTIVE\"}}";
}

// The value of header `name` (lower case) in an HTTP/1.1 head, "" when absent.
inline std::string_view header_value(std::string_view head, std::string_view name) {
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

// The string value of the first "key" in a request body: enough for the flat requests the
// readers send (no escapes in the values we look at).
inline std::string_view json_string_field(std::string_view body, std::string_view key) {
  std::string pattern;
  pattern.reserve(key.size() + 2);
  pattern.push_back('"');
  pattern.append(key);
  pattern.push_back('"');
  std::size_t p = body.find(pattern);
  if (p == std::string_view::npos) return {};
  p = body.find(':', p + pattern.size());
  if (p == std::string_view::npos) return {};
  ++p;
  while (p < body.size() && body[p] == ' ') ++p;
  if (p >= body.size() || body[p] != '"') return {};  // null, a number, an object
  const std::size_t e = body.find('"', p + 1);
  if (e == std::string_view::npos) return {};
  return body.substr(p + 1, e - p - 1);
}

// The integer value of the first "key", or `fallback`.
inline long json_int_field(std::string_view body, std::string_view key, long fallback) {
  const std::string pattern = "\"" + std::string(key) + "\"";
  std::size_t p = body.find(pattern);
  if (p == std::string_view::npos) return fallback;
  p = body.find(':', p + pattern.size());
  if (p == std::string_view::npos) return fallback;
  ++p;
  while (p < body.size() && body[p] == ' ') ++p;
  long value = fallback;
  std::from_chars(body.data() + p, body.data() + body.size(), value);
  return value;
}

// The operation of an X-Amz-Target ("Kinesis_20131202.GetRecords" -> "GetRecords").
inline std::string_view operation(std::string_view target) {
  const std::size_t dot = target.rfind('.');
  return dot == std::string_view::npos ? target : target.substr(dot + 1);
}

// One reply of the JSON protocol: `prefix`, `big` and `suffix` are sent as one body
// without being joined (`big` is the large shared part of GetRecords replies).
inline void send_json(Socket& socket, int status, std::string_view prefix, std::string_view big = {},
                      std::string_view suffix = {}) {
  const std::size_t length = prefix.size() + big.size() + suffix.size();
  const std::string head = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Bad Request") +
                           "\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: "
                           "c0ffee00-0000-4000-8000-000000000000\r\nContent-Length: " +
                           std::to_string(length) + "\r\n\r\n";
  std::vector<iovec> parts;
  for (std::string_view s : {std::string_view(head), prefix, big, suffix}) {
    if (!s.empty()) parts.push_back({const_cast<char*>(s.data()), s.size()});
  }
  (void)socket.write_all(std::move(parts));
}

// The body of an error reply of the JSON protocol.
inline std::string json_error(std::string_view type, std::string_view message) {
  return "{\"__type\":\"" + std::string(type) + "\",\"message\":\"" + std::string(message) + "\"}";
}

// Serves one blocking HTTP/1.1 keep-alive connection until the peer closes it:
// answer(socket, operation, body) writes the reply of each request (send_json). The caller
// closes the connection (after forgetting its fd: the number is free for the next accept
// once closed).
template <class Answer>
void serve_http1(Socket& socket, Answer&& answer) {
  std::string in;
  in.reserve(64 * 1024);
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const std::size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) {
      const ssize_t n = socket.read(buf.data(), buf.size());
      if (n <= 0) break;
      in.append(buf.data(), static_cast<std::size_t>(n));
      continue;
    }
    const std::string_view head(in.data(), end);
    std::size_t length = 0;
    const std::string_view cl = header_value(head, "content-length");
    std::from_chars(cl.data(), cl.data() + cl.size(), length);
    const std::string op(operation(header_value(head, "x-amz-target")));
    if (header_value(head, "expect") == "100-continue") {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      (void)socket.write_all({{const_cast<char*>(cont.data()), cont.size()}});
    }
    const std::size_t need = end + 4 + length;
    bool closed = false;
    while (in.size() < need) {
      const ssize_t n = socket.read(buf.data(), buf.size());
      if (n <= 0) {
        closed = true;
        break;
      }
      in.append(buf.data(), static_cast<std::size_t>(n));
    }
    if (closed) break;
    answer(socket, std::string_view(op), std::string_view(in).substr(end + 4, length));
    in.erase(0, need);
  }
}

// A listening socket on 127.0.0.1:port (0: any free port); -1 on failure (errno set).
inline int listen_loopback(int port, int& bound_port) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return -1;
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 256) != 0) {
    ::close(listener);
    return -1;
  }
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  bound_port = ntohs(addr.sin_port);
  return listener;
}

inline long arg_long(std::string_view arg, std::string_view name, long fallback) {
  if (arg.substr(0, name.size()) != name) return fallback;
  return std::strtol(std::string(arg.substr(name.size())).c_str(), nullptr, 10);
}

// --- latency mode ----------------------------------------------------------------------
// Records "arrive" at known times: record j of shard s at t0(s) + lead + (j + s/shards) *
// shards/rate, so that the stream as a whole takes `rate` records per second, evenly
// spread. t0(s) is when the shard was first asked for (GetShardIterator, SubscribeToShard):
// the reader's start-up does not count as latency. The first 8 bytes of each record's data
// are its arrival time (CLOCK_MONOTONIC, ns, little endian); the reader's processor
// subtracts it from the time process_records sees the record (the same host's clock).

inline std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct ArrivalSchedule {
  int shards = 48;
  double rate = 200;              // records per second, all shards together
  long per_shard = 0;             // records per shard, then SHARD_END
  std::int64_t lead_ns = 200'000'000;

  [[nodiscard]] std::int64_t arrival_ns(std::int64_t t0, int shard, long j) const {
    const double slot = (static_cast<double>(j) + static_cast<double>(shard) / shards) * shards / rate;
    return t0 + lead_ns + static_cast<std::int64_t>(slot * 1e9);
  }
};

// The sequence number of latency-mode record j (the same in every shard).
inline std::string latency_sequence_number(long j) { return sequence_number(static_cast<std::uint64_t>(j) + 1); }

// The record index after `sequence` (AFTER_SEQUENCE_NUMBER), or -1 when it is not one of
// latency_sequence_number's.
inline long latency_index_after(std::string_view sequence) {
  if (sequence.size() != sequence_head.size() + 18 || sequence.substr(0, sequence_head.size()) != sequence_head) {
    return -1;
  }
  long counter = -1;
  std::from_chars(sequence.data() + sequence_head.size(), sequence.data() + sequence.size(), counter);
  return counter;  // record counter - 1 was read; the next index is counter
}

// Appends latency-mode record j of `shard`, arrived at `arrival` (CLOCK_MONOTONIC ns).
inline void append_latency_record(std::string& out, int shard, long j, std::int64_t arrival, long record_size) {
  std::string payload(static_cast<std::size_t>(std::max(record_size, 8L)), '\0');
  std::uint64_t rng = (static_cast<std::uint64_t>(shard) << 32) ^ static_cast<std::uint64_t>(j);
  random_bytes(payload, rng);
  const auto stamp = static_cast<std::uint64_t>(arrival);
  for (int i = 0; i < 8; ++i) payload[static_cast<std::size_t>(i)] = static_cast<char>((stamp >> (8 * i)) & 0xFF);
  // Wall-clock milliseconds of the arrival, for ApproximateArrivalTimestamp only.
  timespec real{};
  clock_gettime(CLOCK_REALTIME, &real);
  const std::int64_t now_ms = static_cast<std::int64_t>(real.tv_sec) * 1000 + real.tv_nsec / 1'000'000;
  const std::int64_t arrival_ms = now_ms - (monotonic_ns() - arrival) / 1'000'000;
  append_record_json(out, arrival_ms, payload, partition_key(rng), latency_sequence_number(j));
}

}  // namespace kclpp::bench
