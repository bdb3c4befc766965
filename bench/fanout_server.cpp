// The Kinesis stand-in of bench/fanout: SubscribeToShard over HTTP/2 (h2c with prior
// knowledge, libnghttp2) streaming event-stream messages, plus the JSON calls a fan-out
// worker makes (ListShards, DescribeStreamSummary, Register/Describe/ListStreamConsumers),
// on one port: a connection that opens with the HTTP/2 preface is HTTP/2, any other is
// HTTP/1.1 (the JSON client's). See bench/README.md, "fanout".
//
//   kclpp_bench_fanout_server --shards=48 --events=200 --event-records=1000 --record-size=1000
//   kclpp_bench_fanout_server --shards=48 --latency-rate=200 --latency-records=62
//
// Replay mode (the default): every shard serves `--events` SubscribeToShardEvents of
// `--event-records` records, as fast as the client takes them, then a last event with
// ContinuationSequenceNumber null and empty ChildShards (SHARD_END) and the end of the
// stream. The records are those of native_server (replay_server.hpp: the same sizes and
// shapes), computed once; each event differs only in the 8 digits of the event number
// inside every sequence number (30-digit head, 8-digit event, 18-digit counter), so that
// sequence numbers increase across events. A subscription patches those digits into its
// own copy of the records and derives the message CRC from the template's (crc32_combine,
// below) instead of running CRC32 over every byte sent.
//
// Latency mode (--latency-rate > 0): records arrive at the times of replay_server.hpp's
// ArrivalSchedule and each is sent, in an event of its own (or with those due at the same
// moment), as soon as it has arrived; its data starts with its arrival time.
//
// Flow control: the bytes of DATA frames are never copied into nghttp2
// (NGHTTP2_DATA_FLAG_NO_COPY): frame headers and views into the events queue up per
// connection and go out by writev. A stream's data source returns NGHTTP2_ERR_DEFERRED only
// while the socket has not yet taken its previous event (its buffer is about to be reused)
// or, in latency mode, while no record is due; the HTTP/2 windows of the client pace the
// rest. One thread, ppoll. "PORT <n>" on stdout once listening; a line "stats" on stdin
// prints "STATS h2_connections=.. subscribe_connections=.. h1_connections=.. subscriptions=..
// events=.. bytes=.." (subscribe_connections: those that carried a SubscribeToShard);
// EOF on stdin or SIGTERM/SIGINT ends it.
//
// With --tls-cert and --tls-key every connection is TLS and ALPN picks the protocol: "h2"
// (as against AWS; libcurl 7.88 multiplexes HTTP/2 only over TLS, curl issue #10634) or
// HTTP/1.1. DATA bytes are then copied once, into the TLS output, which encrypts them anyway.
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <zlib.h>

#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "replay_server.hpp"

namespace {

using namespace kclpp::bench;

struct Options {
  int port = 0;
  int shards = 48;
  long events = 200;          // replay: events per shard before SHARD_END
  long event_records = 1'000;  // replay: records per event
  long record_size = 1'000;
  std::uint64_t seed = 42;
  double latency_rate = 0;    // > 0: latency mode
  long latency_records = 62;  // latency mode: records per shard
  int max_streams = 100;      // SETTINGS_MAX_CONCURRENT_STREAMS
  bool initial_response = true;  // the service sends one; kinesis-local does not
  std::string tls_cert, tls_key;  // PEM files: TLS, HTTP/2 or HTTP/1.1 by ALPN
};

// --- event-stream framing (docs/aws.md §5) ----------------------------------------------
// The bench's own encoder rather than kclpp's (aws/src/event_stream.hpp): the server then
// checks kclpp's decoder independently (a mistake shared by an encoder and its decoder
// would cancel out), stays free of the kclpp libraries, and the replay events need their
// CRC assembled from pieces (crc32_combine), which a whole-message encoder cannot do.

std::uint32_t crc(std::string_view bytes, std::uint32_t start = 0) {
  return static_cast<std::uint32_t>(
      ::crc32(start, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::uint32_t crc_combine(std::uint32_t first, std::uint32_t second, std::size_t second_length) {
  return static_cast<std::uint32_t>(::crc32_combine(first, second, static_cast<z_off_t>(second_length)));
}

void append_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// String-typed headers (type 7), as the service sends them.
std::string encode_headers(std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    out.push_back(static_cast<char>(name.size()));
    out.append(name);
    out.push_back(7);
    out.push_back(static_cast<char>((value.size() >> 8) & 0xFF));
    out.push_back(static_cast<char>(value.size() & 0xFF));
    out.append(value);
  }
  return out;
}

// Prelude + headers of a message whose payload is `payload_length` bytes.
std::string message_head(std::string_view headers, std::size_t payload_length) {
  std::string out;
  append_be32(out, static_cast<std::uint32_t>(12 + headers.size() + payload_length + 4));
  append_be32(out, static_cast<std::uint32_t>(headers.size()));
  append_be32(out, crc(out));
  out.append(headers);
  return out;
}

std::string encode_message(std::string_view headers, std::string_view payload) {
  std::string out = message_head(headers, payload.size());
  out.append(payload);
  append_be32(out, crc(out));
  return out;
}

const std::string& event_headers() {
  static const std::string h = encode_headers(
      {{":event-type", "SubscribeToShardEvent"}, {":content-type", "application/json"}, {":message-type", "event"}});
  return h;
}

// --- the replay template ---------------------------------------------------------------

// The CRC32 of `count` copies of a block whose CRC32 is `block_crc`, by doubling.
std::uint32_t crc_repeat(std::uint32_t block_crc, std::size_t block_length, std::size_t count) {
  std::uint32_t result = 0;  // the CRC32 of no bytes
  std::uint32_t power = block_crc;
  std::size_t power_length = block_length;
  while (count != 0) {
    if ((count & 1) != 0) result = crc_combine(result, power, power_length);
    power = crc_combine(power, power, power_length);
    power_length *= 2;
    count >>= 1;
  }
  return result;
}

// The Records array of every replay event: `[` + records of equal length L joined by `,` +
// `]`, so that record i starts at 1 + i * (L + 1). Event k's differs from the template (event
// 0) only at `event_offset` of each record: its 8-digit event number. CRC32 is affine: for
// equal lengths, crc(a ^ b ^ c) = crc(a) ^ crc(b) ^ crc(c); so crc(event k) = crc(template)
// ^ crc(delta) ^ crc(zeros), and delta is one (L + 1)-byte pattern repeated.
struct ReplayTemplate {
  static constexpr std::size_t event_digits = 8;
  std::string block;
  std::size_t record_length = 0;
  std::size_t record_count = 0;
  std::size_t event_offset = 0;  // of the event digits within a record
  std::uint32_t block_crc = 0;
  std::uint32_t zeros_crc = 0;  // of block.size() zero bytes

  [[nodiscard]] std::size_t record_start(std::size_t i) const { return 1 + i * (record_length + 1); }

  void patch(std::string& copy, long event) const {
    std::string digits;
    append_padded(digits, static_cast<std::uint64_t>(event), event_digits);
    for (std::size_t i = 0; i < record_count; ++i) {
      std::memcpy(copy.data() + record_start(i) + event_offset, digits.data(), event_digits);
    }
  }

  [[nodiscard]] std::uint32_t event_crc(long event) const {
    std::string digits;
    append_padded(digits, static_cast<std::uint64_t>(event), event_digits);
    std::string pattern(record_length + 1, '\0');
    for (std::size_t d = 0; d < event_digits; ++d) pattern[event_offset + d] = static_cast<char>(digits[d] ^ '0');
    const std::uint32_t delta = crc_combine(crc(std::string_view("\0", 1)),
                                            crc_repeat(crc(pattern), pattern.size(), record_count),
                                            record_count * pattern.size());
    return block_crc ^ delta ^ zeros_crc;
  }

  // The sequence number of event `event`'s last record.
  [[nodiscard]] std::string last_sequence(long event) const {
    const std::size_t at = record_start(record_count - 1) + event_offset - (56 - 18 - event_digits);
    std::string s = block.substr(at, 56);
    std::string digits;
    append_padded(digits, static_cast<std::uint64_t>(event), event_digits);
    s.replace(56 - 18 - event_digits, event_digits, digits);
    return s;
  }
};

ReplayTemplate make_template(const Options& o) {
  ReplayTemplate t;
  std::uint64_t rng = o.seed;
  t.record_count = static_cast<std::size_t>(o.event_records);
  t.block.push_back('[');
  std::uint64_t counter = splitmix64(rng) % 1'000'000'000'000ULL;
  std::int64_t arrival_ms = 1'715'367'226'547;
  std::string payload(static_cast<std::size_t>(o.record_size), '\0');
  const std::string head(sequence_head.substr(0, 56 - 18 - ReplayTemplate::event_digits));
  for (std::size_t r = 0; r < t.record_count; ++r) {
    counter += 1 + splitmix64(rng) % 1'000'000'000ULL;
    // A last digit that is not 0 keeps every timestamp at 13 digits in Java's notation
    // (trailing zeros are dropped): every record has the same length.
    arrival_ms += 1 + static_cast<std::int64_t>(splitmix64(rng) % 3);
    if (arrival_ms % 10 == 0) ++arrival_ms;
    random_bytes(payload, rng);
    std::string sequence = head;
    append_padded(sequence, 0, ReplayTemplate::event_digits);
    append_padded(sequence, counter, 18);
    if (r != 0) t.block.push_back(',');
    const std::size_t start = t.block.size();
    append_record_json(t.block, arrival_ms, payload, partition_key(rng), sequence);
    const std::size_t length = t.block.size() - start;
    if (r == 0) {
      t.record_length = length;
      t.event_offset = t.block.find("\"SequenceNumber\":\"", start) - start + 18 + head.size();
    } else if (length != t.record_length) {
      std::fprintf(stderr, "fanout_server: record %zu is %zu bytes, not %zu\n", r, length, t.record_length);
      std::exit(1);
    }
  }
  t.block.push_back(']');
  t.block_crc = crc(t.block);
  t.zeros_crc = crc(std::string(t.block.size(), '\0'));
  // The shortcut must agree with the plain CRC32: checked on two events at start-up.
  for (const long event : {1L, std::max(1L, o.events - 1)}) {
    std::string copy = t.block;
    t.patch(copy, event);
    if (crc(copy) != t.event_crc(event) || copy.find(t.last_sequence(event)) == std::string::npos) {
      std::fprintf(stderr, "fanout_server: the event CRC shortcut disagrees with crc32 (event %ld)\n", event);
      std::exit(1);
    }
  }
  return t;
}

// --- the JSON calls ----------------------------------------------------------------------

struct JsonReply {
  int status = 200;
  std::string body;
};

std::atomic<bool> stopping{false};

// Consumers registered (RegisterStreamConsumer), shared with the HTTP/1.1 threads.
class Consumers {
 public:
  static std::string arn_of(std::string_view name) {
    return std::string(stream_arn) + "/consumer/" + std::string(name) + ":1715367226";
  }
  // The name in a consumer ARN of the bench stream, "" when it is none.
  static std::string_view name_in(std::string_view arn) {
    const std::string prefix = std::string(stream_arn) + "/consumer/";
    if (arn.substr(0, prefix.size()) != prefix) return {};
    const std::string_view rest = arn.substr(prefix.size());
    return rest.substr(0, rest.find(':'));
  }
  JsonReply answer(std::string_view op, std::string_view body);

 private:
  static std::string description(std::string_view name, std::string_view status, bool with_stream) {
    return "{\"ConsumerARN\":\"" + arn_of(name) + "\",\"ConsumerCreationTimestamp\":1.715367226E9,\"ConsumerName\":\"" +
           std::string(name) + "\",\"ConsumerStatus\":\"" + std::string(status) + "\"" +
           (with_stream ? ",\"StreamARN\":\"" + std::string(stream_arn) + "\"}" : "}");
  }
  std::mutex mutex_;
  std::set<std::string, std::less<>> names_;
};

JsonReply Consumers::answer(std::string_view op, std::string_view body) {
  const std::lock_guard lock(mutex_);
  if (op == "RegisterStreamConsumer") {
    const std::string_view name = json_string_field(body, "ConsumerName");
    if (json_string_field(body, "StreamARN") != stream_arn || name.empty()) {
      return {400, json_error("ResourceNotFoundException", "Stream not found: the bench stream is " +
                                                               std::string(stream_arn))};
    }
    if (!names_.insert(std::string(name)).second) {
      return {400, json_error("ResourceInUseException", "Consumer " + std::string(name) + " exists")};
    }
    // CREATING here, ACTIVE from the first DescribeStreamConsumer on: the wait is exercised.
    return {200, "{\"Consumer\":" + description(name, "CREATING", false) + "}"};
  }
  if (op == "DescribeStreamConsumer") {
    // By ARN: any consumer ARN of the bench stream is ACTIVE (the driver may pass one that
    // was never registered). By name: registered ones only.
    std::string_view name = name_in(json_string_field(body, "ConsumerARN"));
    if (name.empty() && json_string_field(body, "StreamARN") == stream_arn) {
      const auto it = names_.find(json_string_field(body, "ConsumerName"));
      if (it != names_.end()) name = *it;
    }
    if (name.empty()) return {400, json_error("ResourceNotFoundException", "Consumer not found")};
    return {200, "{\"ConsumerDescription\":" + description(name, "ACTIVE", true) + "}"};
  }
  // ListStreamConsumers: one page.
  std::string out = "{\"Consumers\":[";
  for (const auto& name : names_) {
    if (out.back() != '[') out.push_back(',');
    out += description(name, "ACTIVE", false);
  }
  return {200, out + "]}"};
}

struct Stats {
  std::atomic<long> h2_connections{0};
  std::atomic<long> subscribe_connections{0};  // HTTP/2 connections that carried a SubscribeToShard
  std::atomic<long> h1_connections{0};
  std::atomic<long> subscriptions{0};
  std::atomic<long> events{0};
  std::atomic<long long> bytes{0};
};

struct Server;

// --- one HTTP/2 stream -----------------------------------------------------------------

// A request and its reply. The reply's bytes are views (`segments`) into the stream's own
// strings or the server's shared ones; the connection's queue refers to them until written
// (`in_flight` bytes), so they are replaced only when in_flight is 0.
struct H2Stream {
  std::int32_t id = 0;
  std::string target;
  std::string body;
  bool subscription = false;
  int shard = -1;
  std::string consumer;
  // Reply state.
  std::vector<std::string_view> segments;
  std::size_t segment = 0;
  std::size_t offset = 0;   // in segments[segment]
  bool last = false;        // the segments end the reply
  bool initial_sent = false;
  long next = 0;            // replay: the next event; latency: the next record
  std::string head, tail, message;  // this stream's bytes of the current event
  std::string records;      // replay: this subscription's copy of the template, patched
  std::size_t in_flight = 0;
  bool deferred = false;
  bool closed = false;

  [[nodiscard]] std::size_t remaining() const {
    std::size_t n = 0;
    for (std::size_t i = segment; i < segments.size(); ++i) n += segments[i].size();
    return n - offset;
  }
  void set(std::vector<std::string_view> parts, bool ends) {
    segments = std::move(parts);
    segment = 0;
    offset = 0;
    last = ends;
  }
};

// --- one HTTP/2 connection ---------------------------------------------------------------

struct SessionDeleter {
  void operator()(nghttp2_session* s) const { nghttp2_session_del(s); }
};

class H2Connection {
 public:
  H2Connection(Server& server, int fd, SslPtr ssl);
  ~H2Connection() {
    ssl_.reset();
    ::close(fd_);
  }
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool wants_output() const { return !idle(); }
  [[nodiscard]] bool done() const { return done_; }
  // Reads what the socket has and answers it.
  void on_readable();
  // Produces and writes until the socket is full or nothing is left to send.
  void pump();
  // The earliest arrival (latency mode) a deferred stream waits for, or INT64_MAX.
  [[nodiscard]] std::int64_t next_wakeup() const;

 private:
  struct Piece {
    const char* data;  // nullptr: bytes of owned_ from `at`
    std::size_t at;
    std::size_t length;
    H2Stream* stream;  // whose in_flight it counts, or nullptr
  };
  static constexpr std::size_t queue_limit = 256 * 1024;

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_header(nghttp2_session*, const nghttp2_frame*, const std::uint8_t*, std::size_t,
                       const std::uint8_t*, std::size_t, std::uint8_t, void*);
  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t, const std::uint8_t*, std::size_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_stream_close(nghttp2_session*, std::int32_t, std::uint32_t, void*);
  static ssize_t read_data(nghttp2_session*, std::int32_t, std::uint8_t*, std::size_t, std::uint32_t*,
                           nghttp2_data_source*, void*);
  static int send_data(nghttp2_session*, nghttp2_frame*, const std::uint8_t*, std::size_t, nghttp2_data_source*,
                       void*);

  void answer(H2Stream& stream);
  void respond_json(H2Stream& stream, const JsonReply& reply);
  void subscribe(H2Stream& stream);
  ssize_t read_stream(H2Stream& stream, std::size_t length, std::uint32_t& flags);
  void take(H2Stream& stream, std::size_t length);
  bool produce();
  bool flush();
  bool flush_tls();
  void forget_closed();
  // Nothing queued and nothing waiting in the TLS output.
  [[nodiscard]] bool idle() const { return head_ == queue_.size() && tls_at_ == tls_out_.size(); }

  Server& server_;
  int fd_;
  SslPtr ssl_;  // null: plain h2c
  // TLS: the queue's bytes copied out (the records encrypt them anyway), and how far
  // SSL_write has got; a write that would block is retried with the same bytes.
  std::string tls_out_;
  std::size_t tls_at_ = 0;
  std::unique_ptr<nghttp2_session, SessionDeleter> session_;
  std::unordered_map<std::int32_t, std::unique_ptr<H2Stream>> streams_;
  std::vector<Piece> queue_;
  std::size_t head_ = 0;
  std::size_t queued_ = 0;
  std::string owned_;
  bool done_ = false;
  bool subscribed_ = false;  // counted in stats.subscribe_connections
};

struct Server {
  Options options;
  ReplayTemplate replay;
  ArrivalSchedule schedule;
  std::vector<std::int64_t> t0;  // latency mode: when each shard was first subscribed to
  std::string shards_reply;
  std::string initial_response;
  std::string final_event;
  Consumers consumers;
  Stats stats;
  std::set<std::pair<std::string, int>> active;  // (consumer, shard) subscribed now
  SslCtxPtr tls;  // set: every connection is TLS
  std::string alpn = alpn_wire({"h2", "http/1.1"});

  JsonReply answer_json(std::string_view op, std::string_view body) {
    if (op == "ListShards") return {200, shards_reply};
    if (op == "DescribeStreamSummary") {
      return {200, stream_summary_reply(options.shards, 0)};
    }
    if (op == "RegisterStreamConsumer" || op == "DescribeStreamConsumer" || op == "ListStreamConsumers") {
      return consumers.answer(op, body);
    }
    return {400, json_error("UnknownOperationException", "not supported by the bench fan-out server: " +
                                                             std::string(op))};
  }

  // Prepares the next event of a subscription; false when nothing is due yet (latency).
  bool next_event(H2Stream& s, std::int64_t now);

 private:
  void replay_event(H2Stream& s);
  bool latency_event(H2Stream& s, std::int64_t now);
};

void Server::replay_event(H2Stream& s) {
  if (s.records.empty()) s.records = replay.block;
  replay.patch(s.records, s.next);
  const long left = options.events - s.next - 1;
  const std::string json_head = "{\"ContinuationSequenceNumber\":\"" + replay.last_sequence(s.next) +
                                "\",\"MillisBehindLatest\":" + std::to_string(left * 500) + ",\"Records\":";
  s.head = message_head(event_headers(), json_head.size() + replay.block.size() + 1);
  s.head += json_head;
  const std::uint32_t message_crc =
      crc_combine(crc_combine(crc(s.head), replay.event_crc(s.next), replay.block.size()), crc("}"), 1);
  s.tail = "}";
  append_be32(s.tail, message_crc);
  s.set({s.head, s.records, s.tail}, false);
  ++s.next;
}

bool Server::latency_event(H2Stream& s, std::int64_t now) {
  const std::int64_t start = t0[static_cast<std::size_t>(s.shard)];
  std::string list = "[";
  long next = s.next;
  while (next < options.latency_records && schedule.arrival_ns(start, s.shard, next) <= now) {
    if (next != s.next) list.push_back(',');
    append_latency_record(list, s.shard, next, schedule.arrival_ns(start, s.shard, next), options.record_size);
    ++next;
  }
  if (next == s.next) return false;
  list.push_back(']');
  s.message = encode_message(event_headers(), "{\"ContinuationSequenceNumber\":\"" +
                                                  latency_sequence_number(next - 1) +
                                                  "\",\"MillisBehindLatest\":0,\"Records\":" + list + "}");
  s.set({s.message}, false);
  s.next = next;
  return true;
}

bool Server::next_event(H2Stream& s, std::int64_t now) {
  if (options.initial_response && !s.initial_sent) {
    s.initial_sent = true;
    s.set({initial_response}, false);
    return true;
  }
  const long count = options.latency_rate > 0 ? options.latency_records : options.events;
  if (s.next >= count) {
    s.set({final_event}, true);
  } else if (options.latency_rate > 0) {
    if (!latency_event(s, now)) return false;
  } else {
    replay_event(s);
  }
  ++stats.events;
  return true;
}

H2Connection::H2Connection(Server& server, int fd, SslPtr ssl) : server_(server), fd_(fd), ssl_(std::move(ssl)) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_send_data_callback(callbacks, send_data);
  nghttp2_session* session = nullptr;
  nghttp2_session_server_new(&session, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  session_.reset(session);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, static_cast<std::uint32_t>(server_.options.max_streams)}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1);
  ++server_.stats.h2_connections;
}

int H2Connection::on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto& self = *static_cast<H2Connection*>(user);
  auto stream = std::make_unique<H2Stream>();
  stream->id = frame->hd.stream_id;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream.get());
  self.streams_[frame->hd.stream_id] = std::move(stream);
  return 0;
}

int H2Connection::on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                            std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                            void*) {
  auto* stream = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (stream == nullptr) return 0;
  if (std::string_view(reinterpret_cast<const char*>(name), namelen) == "x-amz-target") {
    stream->target.assign(reinterpret_cast<const char*>(value), valuelen);
  }
  return 0;
}

int H2Connection::on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                                std::size_t length, void*) {
  auto* stream = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, id));
  if (stream != nullptr && stream->body.size() < (1u << 20)) {
    stream->body.append(reinterpret_cast<const char*>(data), length);
  }
  return 0;
}

int H2Connection::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return 0;
  }
  auto* stream = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (stream != nullptr) static_cast<H2Connection*>(user)->answer(*stream);
  return 0;
}

int H2Connection::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t, void* user) {
  auto& self = *static_cast<H2Connection*>(user);
  const auto it = self.streams_.find(id);
  if (it == self.streams_.end()) return 0;
  H2Stream& s = *it->second;
  s.closed = true;
  if (s.subscription) self.server_.active.erase({s.consumer, s.shard});
  return 0;
}

void H2Connection::answer(H2Stream& stream) {
  const std::string_view op = operation(stream.target);
  if (op == "SubscribeToShard") {
    subscribe(stream);
  } else {
    respond_json(stream, server_.answer_json(op, stream.body));
  }
}

void H2Connection::respond_json(H2Stream& stream, const JsonReply& reply) {
  stream.message = reply.body;
  stream.set({stream.message}, true);
  const std::string status = std::to_string(reply.status);
  const std::string length = std::to_string(reply.body.size());
  const auto nv = [](std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const nghttp2_nv headers[] = {nv(":status", status), nv("content-type", "application/x-amz-json-1.1"),
                                nv("content-length", length),
                                nv("x-amzn-requestid", "c0ffee00-0000-4000-8000-000000000000")};
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = read_data;
  nghttp2_submit_response(session_.get(), stream.id, headers, 4, &provider);
}

void H2Connection::subscribe(H2Stream& stream) {
  const int shard = shard_index(json_string_field(stream.body, "ShardId"), server_.options.shards);
  const std::string consumer(json_string_field(stream.body, "ConsumerARN"));
  if (shard < 0 || Consumers::name_in(consumer).empty()) {
    respond_json(stream, {400, json_error("ResourceNotFoundException",
                                          shard < 0 ? "Shard not found" : "Consumer not found: " + consumer)});
    return;
  }
  if (!server_.active.insert({consumer, shard}).second) {
    respond_json(stream, {400, json_error("ResourceInUseException",
                                          "Another active subscription exists for this consumer on " +
                                              shard_id(shard))});
    return;
  }
  if (!subscribed_) {
    subscribed_ = true;
    ++server_.stats.subscribe_connections;
  }
  stream.subscription = true;
  stream.shard = shard;
  stream.consumer = consumer;
  ++server_.stats.subscriptions;
  if (server_.options.latency_rate > 0) {
    auto& t0 = server_.t0[static_cast<std::size_t>(shard)];
    if (t0 == 0) t0 = monotonic_ns();
  }
  // Resuming: AFTER_SEQUENCE_NUMBER of a continuation sequence number (the end of an event)
  // or of a latency-mode record. Anything else starts at the shard's first record.
  if (json_string_field(stream.body, "Type") == "AFTER_SEQUENCE_NUMBER") {
    const std::string_view sequence = json_string_field(stream.body, "SequenceNumber");
    long next = -1;
    if (server_.options.latency_rate > 0) {
      next = latency_index_after(sequence);
    } else {
      for (long e = 0; e < server_.options.events && next < 0; ++e) {
        if (server_.replay.last_sequence(e) == sequence) next = e + 1;
      }
    }
    if (next < 0) {
      server_.active.erase({consumer, shard});
      respond_json(stream, {400, json_error("InvalidArgumentException",
                                            "the bench server resumes only after a ContinuationSequenceNumber")});
      return;
    }
    stream.next = next;
  }
  const auto nv = [](std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const nghttp2_nv headers[] = {nv(":status", "200"), nv("content-type", "application/vnd.amazon.eventstream"),
                                nv("x-amzn-requestid", "c0ffee00-0000-4000-8000-000000000001")};
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = read_data;
  nghttp2_submit_response(session_.get(), stream.id, headers, 3, &provider);
}

ssize_t H2Connection::read_data(nghttp2_session*, std::int32_t, std::uint8_t*, std::size_t length,
                                std::uint32_t* flags, nghttp2_data_source* source, void* user) {
  return static_cast<H2Connection*>(user)->read_stream(*static_cast<H2Stream*>(source->ptr), length, *flags);
}

ssize_t H2Connection::read_stream(H2Stream& stream, std::size_t length, std::uint32_t& flags) {
  std::size_t left = stream.remaining();
  if (left == 0) {
    // The previous event's bytes are still queued: its buffers cannot be reused yet.
    if (stream.in_flight > 0 || !stream.subscription || !server_.next_event(stream, monotonic_ns())) {
      stream.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    left = stream.remaining();
  }
  const std::size_t n = std::min(length, left);
  flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (stream.last && n == left) flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

int H2Connection::send_data(nghttp2_session*, nghttp2_frame* frame, const std::uint8_t* framehd, std::size_t length,
                            nghttp2_data_source* source, void* user) {
  auto& self = *static_cast<H2Connection*>(user);
  if (frame->data.padlen != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;  // never asked for
  self.queue_.push_back({nullptr, self.owned_.size(), 9, nullptr});
  self.owned_.append(reinterpret_cast<const char*>(framehd), 9);
  self.queued_ += 9;
  self.take(*static_cast<H2Stream*>(source->ptr), length);
  return self.queued_ >= queue_limit ? NGHTTP2_ERR_PAUSE : 0;
}

// Queues the next `length` bytes of the stream's reply (views, not copies).
void H2Connection::take(H2Stream& stream, std::size_t length) {
  stream.in_flight += length;
  queued_ += length;
  server_.stats.bytes += static_cast<long long>(length);
  while (length > 0) {
    const std::string_view part = stream.segments[stream.segment];
    const std::size_t n = std::min(length, part.size() - stream.offset);
    queue_.push_back({part.data() + stream.offset, 0, n, &stream});
    length -= n;
    stream.offset += n;
    if (stream.offset == part.size()) {
      ++stream.segment;
      stream.offset = 0;
    }
  }
}

void H2Connection::on_readable() {
  std::uint8_t buf[64 * 1024];
  if (ssl_) {
    // Drain: OpenSSL may hold decrypted bytes the socket no longer signals.
    for (;;) {
      const int n = SSL_read(ssl_.get(), buf, sizeof buf);
      if (n > 0) {
        if (nghttp2_session_mem_recv(session_.get(), buf, static_cast<std::size_t>(n)) < 0) done_ = true;
        continue;
      }
      const int e = SSL_get_error(ssl_.get(), n);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) done_ = true;
      return;
    }
  }
  const ssize_t n = ::read(fd_, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    done_ = true;
    return;
  }
  if (n > 0 && nghttp2_session_mem_recv(session_.get(), buf, static_cast<std::size_t>(n)) < 0) done_ = true;
}

// Serializes frames into the queue until it holds queue_limit bytes or nothing is left.
bool H2Connection::produce() {
  while (queued_ < queue_limit) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
    if (n < 0) return false;
    if (n == 0) break;
    queue_.push_back({nullptr, owned_.size(), static_cast<std::size_t>(n), nullptr});
    owned_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    queued_ += static_cast<std::size_t>(n);
  }
  return true;
}

// TLS: moves the queue into tls_out_ (its buffers are free again at once), then writes
// tls_out_; true when all of it went.
bool H2Connection::flush_tls() {
  for (; head_ < queue_.size(); ++head_) {
    const Piece& p = queue_[head_];
    tls_out_.append(p.data != nullptr ? p.data : owned_.data() + p.at, p.length);
    if (p.stream != nullptr) p.stream->in_flight -= p.length;
  }
  queue_.clear();
  owned_.clear();
  head_ = 0;
  queued_ = 0;
  while (tls_at_ < tls_out_.size()) {
    const int n = SSL_write(ssl_.get(), tls_out_.data() + tls_at_,
                            static_cast<int>(std::min<std::size_t>(tls_out_.size() - tls_at_, 1 << 20)));
    if (n > 0) {
      tls_at_ += static_cast<std::size_t>(n);
      continue;
    }
    const int e = SSL_get_error(ssl_.get(), n);
    if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) done_ = true;
    return false;
  }
  tls_out_.clear();
  tls_at_ = 0;
  return true;
}

// Writes the queue; true when it is empty afterwards.
bool H2Connection::flush() {
  if (ssl_) return flush_tls();
  while (head_ < queue_.size()) {
    iovec iov[IOV_MAX];
    int count = 0;
    for (std::size_t i = head_; i < queue_.size() && count < IOV_MAX; ++i, ++count) {
      const Piece& p = queue_[i];
      iov[count] = {const_cast<char*>(p.data != nullptr ? p.data : owned_.data() + p.at), p.length};
    }
    const ssize_t n = ::writev(fd_, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) done_ = true;
      return false;
    }
    auto left = static_cast<std::size_t>(n);
    queued_ -= left;
    while (left > 0) {
      Piece& p = queue_[head_];
      const std::size_t k = std::min(left, p.length);
      if (p.stream != nullptr) p.stream->in_flight -= k;
      p.length -= k;
      if (p.data != nullptr) p.data += k; else p.at += k;
      left -= k;
      if (p.length == 0) ++head_;
    }
  }
  queue_.clear();
  owned_.clear();
  head_ = 0;
  return true;
}

// Streams closed by the peer or finished, once nothing queued refers to them.
void H2Connection::forget_closed() {
  for (auto it = streams_.begin(); it != streams_.end();) {
    it = it->second->closed && it->second->in_flight == 0 ? streams_.erase(it) : std::next(it);
  }
}

void H2Connection::pump() {
  while (!done_) {
    if (idle()) {
      forget_closed();
      for (auto& [id, stream] : streams_) {
        if (stream->deferred && !stream->closed) {
          stream->deferred = false;
          nghttp2_session_resume_data(session_.get(), id);
        }
      }
      if (!produce()) {
        done_ = true;
        return;
      }
      if (idle()) break;
    }
    if (!flush()) return;  // the socket is full: wait for POLLOUT
  }
  if (!nghttp2_session_want_read(session_.get()) && !nghttp2_session_want_write(session_.get())) done_ = true;
}

std::int64_t H2Connection::next_wakeup() const {
  std::int64_t at = INT64_MAX;
  if (server_.options.latency_rate <= 0) return at;
  for (const auto& [id, s] : streams_) {
    if (s->subscription && s->deferred && !s->closed && s->next < server_.options.latency_records) {
      at = std::min(at, server_.schedule.arrival_ns(server_.t0[static_cast<std::size_t>(s->shard)], s->shard, s->next));
    }
  }
  return at;
}

// --- the accept loop -------------------------------------------------------------------

constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// What a new connection is: HTTP/2, HTTP/1.1, or not known yet. Plain: the first bytes say
// (the HTTP/2 preface or anything else). TLS: ALPN says, once the handshake is done.
enum class Sniff { Unknown, H2, H1, Closed };

Sniff sniff(int fd, SSL* ssl) {
  if (ssl != nullptr) {
    const int r = SSL_accept(ssl);
    if (r == 1) return alpn_of(ssl) == "h2" ? Sniff::H2 : Sniff::H1;
    const int e = SSL_get_error(ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? Sniff::Unknown : Sniff::Closed;
  }
  char buf[24];
  const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return Sniff::Closed;
  if (n < 0) return Sniff::Unknown;
  const std::string_view got(buf, static_cast<std::size_t>(n));
  if (h2_preface.substr(0, got.size()) != got) return Sniff::H1;
  return got.size() == h2_preface.size() ? Sniff::H2 : Sniff::Unknown;
}

void on_signal(int) { stopping = true; }

class Loop {
 public:
  explicit Loop(Server& server) : server_(server) {}
  ~Loop();
  int run(int listener);

 private:
  void accept_one(int listener);
  void sniff_pending();
  bool read_commands();
  timespec timeout() const;

  void serve_h1(int fd, SslPtr ssl);

  struct Pending {
    int fd;
    SslPtr ssl;  // TLS: handshake under way
  };
  Server& server_;
  std::vector<Pending> pending_;  // accepted, protocol not known yet
  std::vector<std::unique_ptr<H2Connection>> h2_;
  std::mutex h1_mutex_;
  std::set<int> h1_fds_;
  std::vector<std::thread> h1_threads_;
};

Loop::~Loop() {
  {
    const std::lock_guard lock(h1_mutex_);
    for (const int fd : h1_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : h1_threads_) t.join();
  for (auto& p : pending_) {
    p.ssl.reset();
    ::close(p.fd);
  }
}

void Loop::accept_one(int listener) {
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SslPtr ssl;
  if (server_.tls) {
    ssl.reset(SSL_new(server_.tls.get()));
    SSL_set_fd(ssl.get(), fd);
  }
  pending_.push_back({fd, std::move(ssl)});
}

// HTTP/2 connections join the loop; HTTP/1.1 ones get a blocking thread each (the JSON
// calls: a few per worker).
void Loop::sniff_pending() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    const Sniff s = sniff(it->fd, it->ssl.get());
    if (s == Sniff::Unknown) {
      ++it;
      continue;
    }
    const int fd = it->fd;
    SslPtr ssl = std::move(it->ssl);
    it = pending_.erase(it);
    if (s == Sniff::Closed) {
      ssl.reset();
      ::close(fd);
    } else if (s == Sniff::H2) {
      h2_.push_back(std::make_unique<H2Connection>(server_, fd, std::move(ssl)));
    } else {
      serve_h1(fd, std::move(ssl));
    }
  }
}

void Loop::serve_h1(int fd, SslPtr ssl) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  ++server_.stats.h1_connections;
  {
    const std::lock_guard lock(h1_mutex_);
    h1_fds_.insert(fd);
  }
  h1_threads_.emplace_back([this, fd, tls = std::move(ssl)]() mutable {
    Socket socket(fd, tls.get());
    serve_http1(socket, [this](Socket& out, std::string_view op, std::string_view body) {
      const JsonReply reply = server_.answer_json(op, body);
      send_json(out, reply.status, reply.body);
    });
    {
      const std::lock_guard lock(h1_mutex_);
      h1_fds_.erase(fd);
    }
    tls.reset();
    ::close(fd);
  });
}

bool Loop::read_commands() {
  char c[256];
  const ssize_t n = ::read(STDIN_FILENO, c, sizeof c);
  if (n <= 0) return false;
  if (std::string_view(c, static_cast<std::size_t>(n)).find("stats") != std::string_view::npos) {
    const Stats& s = server_.stats;
    std::printf("STATS h2_connections=%ld subscribe_connections=%ld h1_connections=%ld subscriptions=%ld events=%ld "
                "bytes=%lld\n",
                s.h2_connections.load(), s.subscribe_connections.load(), s.h1_connections.load(),
                s.subscriptions.load(), s.events.load(), s.bytes.load());
    std::fflush(stdout);
  }
  return true;
}

timespec Loop::timeout() const {
  std::int64_t wait = 500'000'000;
  if (!pending_.empty()) wait = 1'000'000;  // a connection that has sent part of its preface
  std::int64_t at = INT64_MAX;
  for (const auto& c : h2_) at = std::min(at, c->next_wakeup());
  if (at != INT64_MAX) wait = std::clamp<std::int64_t>(at - monotonic_ns(), 0, wait);
  return {static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
}

int Loop::run(int listener) {
  std::vector<pollfd> fds;
  while (!stopping) {
    fds.clear();
    fds.push_back({listener, POLLIN, 0});
    fds.push_back({STDIN_FILENO, POLLIN, 0});
    for (const auto& p : pending_) fds.push_back({p.fd, POLLIN, 0});
    for (const auto& c : h2_) {
      fds.push_back({c->fd(), static_cast<short>(POLLIN | (c->wants_output() ? POLLOUT : 0)), 0});
    }
    const timespec wait = timeout();
    const int n = ::ppoll(fds.data(), fds.size(), &wait, nullptr);
    if (n < 0 && errno != EINTR) return 1;
    if (stopping) break;
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0 && !read_commands()) break;  // EOF: the driver is done
    // fds: listener, stdin, the pending connections, then the HTTP/2 ones as they were.
    const std::size_t first_h2 = fds.size() - h2_.size();
    const std::size_t polled_h2 = h2_.size();
    if ((fds[0].revents & POLLIN) != 0) accept_one(listener);
    if (!pending_.empty()) sniff_pending();
    for (std::size_t i = 0; i < h2_.size(); ++i) {
      if (i < polled_h2 && (fds[first_h2 + i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) h2_[i]->on_readable();
      h2_[i]->pump();  // POLLOUT, new requests, WINDOW_UPDATEs, records that have arrived
    }
    std::erase_if(h2_, [](const std::unique_ptr<H2Connection>& c) { return c->done(); });
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Server server;
  Options& o = server.options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    o.port = static_cast<int>(arg_long(a, "--port=", o.port));
    o.shards = static_cast<int>(arg_long(a, "--shards=", o.shards));
    o.events = arg_long(a, "--events=", o.events);
    o.event_records = arg_long(a, "--event-records=", o.event_records);
    o.record_size = arg_long(a, "--record-size=", o.record_size);
    o.seed = static_cast<std::uint64_t>(arg_long(a, "--seed=", static_cast<long>(o.seed)));
    o.latency_rate = static_cast<double>(arg_long(a, "--latency-rate=", static_cast<long>(o.latency_rate)));
    o.latency_records = arg_long(a, "--latency-records=", o.latency_records);
    o.max_streams = static_cast<int>(arg_long(a, "--max-streams=", o.max_streams));
    if (a.rfind("--tls-cert=", 0) == 0) o.tls_cert = a.substr(11);
    if (a.rfind("--tls-key=", 0) == 0) o.tls_key = a.substr(10);
    if (a == "--no-initial-response") o.initial_response = false;
    if (a == "--help") {
      std::puts("kclpp_bench_fanout_server [--port=0] [--shards=48] [--events=200] [--event-records=1000] "
                "[--record-size=1000] [--seed=42] [--latency-rate=0 --latency-records=62] [--max-streams=100] "
                "[--no-initial-response] [--tls-cert=PEM --tls-key=PEM]");
      return 0;
    }
  }
  if (o.shards < 1 || o.events < 1 || o.event_records < 1 || o.event_records > 10'000 || o.record_size < 8 ||
      o.latency_rate < 0 || o.latency_records < 1 || o.max_streams < 1 || o.events > 99'999'999) {
    std::fprintf(stderr, "fanout_server: bad options\n");
    return 2;
  }
  if (o.latency_rate > 0) {
    server.schedule = {o.shards, o.latency_rate, o.latency_records};
    server.t0.assign(static_cast<std::size_t>(o.shards), 0);
  } else {
    server.replay = make_template(o);
  }
  server.shards_reply = list_shards_reply(o.shards);
  if (!o.tls_cert.empty()) {
    server.tls = server_context(o.tls_cert, o.tls_key, server.alpn);
    if (!server.tls) return 1;
  }
  server.initial_response = encode_message(
      encode_headers({{":event-type", "initial-response"}, {":content-type", "application/json"},
                      {":message-type", "event"}}),
      "{}");
  server.final_event = encode_message(
      event_headers(), "{\"ChildShards\":[],\"ContinuationSequenceNumber\":null,\"MillisBehindLatest\":0,\"Records\":[]}");

  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int port = 0;
  const int listener = listen_loopback(o.port, port);
  if (listener < 0) {
    std::perror("fanout_server: bind/listen");
    return 1;
  }
  std::printf("PORT %d\n", port);
  std::fflush(stdout);
  if (o.latency_rate > 0) {
    std::fprintf(stderr, "fanout_server: port %d, latency mode: %d shards x %ld records of %ld bytes at %.0f/s\n",
                 port, o.shards, o.latency_records, o.record_size, o.latency_rate);
  } else {
    std::fprintf(stderr, "fanout_server: port %d, %d shards x %ld events x %ld records of %ld bytes; event %.2f MB\n",
                 port, o.shards, o.events, o.event_records, o.record_size,
                 static_cast<double>(server.replay.block.size()) / 1e6);
  }
  int rc = 0;
  {
    Loop loop(server);
    rc = loop.run(listener);
  }
  ::close(listener);
  return rc;
}
