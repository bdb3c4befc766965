// SubscribeToShard over HTTP/2 (docs/aws.md §5). One libcurl multi handle, driven by one
// I/O thread, carries every subscription of a KinesisSubscriber: libcurl multiplexes them
// as streams of one HTTP/2 connection (CURLPIPE_MULTIPLEX, and PIPEWAIT so that a new
// subscription waits for the connection being set up instead of opening another), and opens
// another connection only once the server's SETTINGS_MAX_CONCURRENT_STREAMS is reached.
//
// The I/O thread only frames: it checks the event-stream CRCs and queues whole messages.
// The consumer thread of each subscription parses its events' JSON (next()), so the CPU
// cost of decoding records is spread over the shard threads as with polling. A
// subscription whose queue holds `buffer_bytes` is paused (CURL_WRITEFUNC_PAUSE): libcurl
// then closes the stream's HTTP/2 window and the server stops sending on that stream only;
// next() resumes it once the queue has drained to half.
#include "kclpp/aws/kinesis_subscriber.hpp"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "error_codes.hpp"
#include "event_stream.hpp"
#include "http.hpp"
#include "json_service.hpp"
#include "kclpp/aws/config.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kinesis_json.hpp"
#include "sigv4.hpp"
#include "start_position.hpp"

namespace kclpp::aws {

namespace {

using Clock = std::chrono::steady_clock;

// The largest error reply body kept (error replies are small JSON objects).
constexpr std::size_t max_error_body = 64 * 1024;

// What a subscription's consumer thread and the I/O thread share. Guarded by `mutex`.
struct Shared {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<detail::EventStreamMessage> messages;
  std::size_t queued_bytes = 0;
  bool paused = false;         // the I/O thread paused the stream: the queue is full
  bool done = false;           // the stream is over: no message will be added
  std::exception_ptr failure;  // why it is over, unless it ended cleanly
};

std::size_t message_bytes(const detail::EventStreamMessage& m) noexcept {
  std::size_t n = m.payload.size();
  for (const auto& h : m.headers) n += h.name.size() + h.value.size();
  return n;
}

std::string request_body(const std::string& consumer_arn, const std::string& shard_id,
                         const StartPosition& position) {
  std::string b = "{";
  detail::append_json_key(b, "ConsumerARN");
  detail::append_json_string(b, consumer_arn);
  b += ',';
  detail::append_json_key(b, "ShardId");
  detail::append_json_string(b, shard_id);
  b += ',';
  detail::append_json_key(b, "StartingPosition");
  b += '{';
  detail::append_json_key(b, "Type");
  detail::append_json_string(b, detail::iterator_type_name(position.type));
  switch (position.type) {
    case IteratorType::AtSequenceNumber:
    case IteratorType::AfterSequenceNumber:
      if (position.sequence_number.empty()) {
        throw ConfigError(std::string("SubscribeToShard (shard ") + shard_id + "): " +
                          detail::iterator_type_name(position.type) + " needs a sequence number");
      }
      b += ',';
      detail::append_json_key(b, "SequenceNumber");
      detail::append_json_string(b, position.sequence_number);
      break;
    case IteratorType::AtTimestamp:
      b += ',';
      detail::append_json_key(b, "Timestamp");
      b += detail::epoch_seconds_json(position.timestamp);
      break;
    default:
      break;
  }
  b += "}}";
  return b;
}

// An in-stream exception message as the error it stands for.
std::exception_ptr in_stream_exception(const std::string& where, std::string_view type, const std::string& message) {
  const std::string what = where + ": " + std::string(type) + (message.empty() ? "" : ": " + message);
  if (detail::throttling_code(type)) return std::make_exception_ptr(ThrottledError(what));
  if (detail::auth_code(type)) return std::make_exception_ptr(AuthError(what));
  // The service's own failures: subscribing again is the cure.
  if (type == "InternalFailureException" || type.rfind("KMS", 0) == 0) {
    return std::make_exception_ptr(TransportError(what));
  }
  const Retry retry = type == "ResourceInUseException" ? Retry::Yes : Retry::No;
  return std::make_exception_ptr(AwsError(what, std::string(type), 400, retry));
}

}  // namespace

namespace detail {

// One SubscribeToShard request and its stream; owned by the I/O thread once added.
struct SubscribeTransfer {
  std::uint64_t id = 0;
  std::shared_ptr<Shared> shared;
  std::string where;  // "Kinesis SubscribeToShard (shard s, consumer c) at endpoint"
  std::string url;
  std::string body;
  curl_slist* headers = nullptr;
  CURL* easy = nullptr;
  std::size_t limit = 0;
  detail::ReplySecrets secrets;
  std::string secret, token;  // what `secrets` views
  detail::EventStreamDecoder decoder;
  detail::EventStreamMessage message;  // decoded, not yet queued
  long status = 0;
  std::string error_body;
  std::exception_ptr failure;  // a corrupt frame
  bool paused = false;
  bool in_multi = false;
  Clock::time_point last_bytes = Clock::now();
  char error[CURL_ERROR_SIZE] = {};

  ~SubscribeTransfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);
  }
};

}  // namespace detail

using detail::SubscribeTransfer;

struct KinesisSubscriber::Impl {
  SubscriberOptions options;
  std::string url;
  std::string host;
  CURLM* multi = nullptr;
  std::atomic<long> connections{0};
  std::atomic<long> open{0};

  enum class Op { Add, Cancel, Resume };
  struct Command {
    Op op;
    std::uint64_t id;
    std::unique_ptr<SubscribeTransfer> transfer;  // Add
  };
  std::mutex commands_mutex;
  std::vector<Command> commands;
  bool stopping = false;  // under commands_mutex
  std::atomic<std::uint64_t> next_id{1};

  // I/O thread only.
  std::unordered_map<std::uint64_t, std::unique_ptr<SubscribeTransfer>> transfers;
  detail::ReplyParser error_parser;
  Clock::time_point last_stall_check = Clock::now();

  std::thread io;

  void command(Op op, std::uint64_t id, std::unique_ptr<SubscribeTransfer> t = nullptr) {
    {
      std::lock_guard lock(commands_mutex);
      if (!stopping) {
        commands.push_back({op, id, std::move(t)});
      } else if (t) {
        std::lock_guard shared_lock(t->shared->mutex);
        t->shared->done = true;
        t->shared->failure =
            std::make_exception_ptr(TransportError(t->where + ": the subscriber is shutting down"));
        --open;
        return;
      } else {
        return;
      }
    }
    curl_multi_wakeup(multi);
  }

  void run() noexcept;
  bool apply_commands();
  void add(std::unique_ptr<SubscribeTransfer> t);
  void finish(SubscribeTransfer& t, CURLcode code);
  void remove(std::uint64_t id, std::exception_ptr failure);
  void check_stalls();
  std::exception_ptr reply_failure(SubscribeTransfer& t);
};

namespace {

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<SubscribeTransfer*>(user);
  const std::size_t n = size * count;
  if (t.status == 0) curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &t.status);
  if (t.status != 200) {
    if (t.error_body.size() < max_error_body) t.error_body.append(data, std::min(n, max_error_body));
    return n;
  }
  {
    std::lock_guard lock(t.shared->mutex);
    if (t.shared->queued_bytes >= t.limit) {
      // Not taken: libcurl keeps these bytes and gives them again after the resume.
      t.shared->paused = true;
      t.paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
  }
  t.last_bytes = Clock::now();
  try {
    t.decoder.feed(std::string_view(data, n));
    bool any = false;
    while (t.decoder.next(t.message)) {
      const std::size_t bytes = message_bytes(t.message);
      std::lock_guard lock(t.shared->mutex);
      t.shared->messages.push_back(std::move(t.message));
      t.shared->queued_bytes += bytes;
      t.message = {};
      any = true;
    }
    if (any) t.shared->ready.notify_all();
  } catch (const Error& e) {
    t.failure = std::make_exception_ptr(ProtocolError(t.where + ": " + e.what()));
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  return n;
}

// Whether this libcurl multiplexes streams on an HTTP/2 connection with prior knowledge
// (plain http); TLS connections (ALPN h2, as AWS's) multiplex with every libcurl.
bool h2c_multiplexes() noexcept {
  static const bool yes = curl_version_info(CURLVERSION_NOW)->version_num >= 0x080000;
  return yes;
}

int on_socket(void* user, curl_socket_t, curlsocktype purpose) {
  if (purpose == CURLSOCKTYPE_IPCXN) ++*static_cast<std::atomic<long>*>(user);
  return CURL_SOCKOPT_OK;
}

}  // namespace

void KinesisSubscriber::Impl::run() noexcept {
  for (;;) {
    if (!apply_commands()) break;
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      SubscribeTransfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
      if (t != nullptr) finish(*t, m->data.result);
    }
    check_stalls();
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  // Shutting down: every subscription still open learns it.
  std::vector<std::uint64_t> ids;
  for (const auto& [id, t] : transfers) ids.push_back(id);
  for (const auto id : ids) {
    remove(id, std::make_exception_ptr(TransportError("Kinesis SubscribeToShard: the subscriber shut down")));
  }
}

// False once the subscriber is stopping.
bool KinesisSubscriber::Impl::apply_commands() {
  std::vector<Command> batch;
  {
    std::lock_guard lock(commands_mutex);
    if (stopping) return false;
    batch.swap(commands);
  }
  for (auto& c : batch) {
    switch (c.op) {
      case Op::Add:
        add(std::move(c.transfer));
        break;
      case Op::Cancel:
        remove(c.id, nullptr);
        break;
      case Op::Resume:
        if (const auto it = transfers.find(c.id); it != transfers.end() && it->second->paused) {
          SubscribeTransfer& t = *it->second;
          t.paused = false;
          t.last_bytes = Clock::now();
          // May call on_write at once with what libcurl held back.
          curl_easy_pause(t.easy, CURLPAUSE_CONT);
        }
        break;
    }
  }
  return true;
}

void KinesisSubscriber::Impl::add(std::unique_ptr<SubscribeTransfer> owned) {
  SubscribeTransfer& t = *owned;
  t.easy = curl_easy_init();
  if (t.easy == nullptr) {
    remove(t.id, std::make_exception_ptr(TransportError(t.where + ": libcurl could not create a handle")));
    return;
  }
  CURL* h = t.easy;
  detail::set_common_options(h);
  curl_easy_setopt(h, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, t.headers);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, t.body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size()));
  const bool tls = t.url.rfind("https://", 0) == 0;
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                   tls ? static_cast<long>(CURL_HTTP_VERSION_2TLS) : static_cast<long>(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE));
  if (tls || h2c_multiplexes()) {
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
  } else {
    // libcurl before 8.0.0 fails a second stream on a reused prior-knowledge connection
    // ("Error in the HTTP2 framing layer", curl issue #10634): a connection each.
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  }
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.kinesis.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, &on_socket);
  curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, &connections);
  t.last_bytes = Clock::now();
  const std::uint64_t id = t.id;
  transfers.emplace(id, std::move(owned));
  if (curl_multi_add_handle(multi, h) != CURLM_OK) {
    remove(id, std::make_exception_ptr(TransportError(transfers[id]->where + ": libcurl refused the transfer")));
    return;
  }
  transfers[id]->in_multi = true;
}

// Why a finished reply was not a clean end of the stream, or nullptr.
std::exception_ptr KinesisSubscriber::Impl::reply_failure(SubscribeTransfer& t) {
  t.error_body.reserve(t.error_body.size() + detail::json_padding);
  std::optional<detail::ErrorReply> e(std::in_place);
  if (!error_parser.error(t.error_body, e->type, e->message)) e.reset();
  if (e && detail::expired_code(e->type)) {
    // As JsonService does: the provider refetches; the caller subscribes again.
    options.kinesis.credentials->expire();
    return std::make_exception_ptr(TransportError(t.where + ": " + e->type + " (the credentials are refetched)"));
  }
  try {
    detail::throw_error_reply(t.where, detail::Effect::Idempotent, static_cast<int>(t.status), t.error_body, e,
                              t.secrets, [](std::string_view type) {
                                // Another subscription of this consumer to the shard is still
                                // open (e.g. a former lease holder's): it ends within 5 minutes.
                                return type == "ResourceInUseException" ? Retry::Yes : Retry::No;
                              });
  } catch (...) {
    return std::current_exception();
  }
}

void KinesisSubscriber::Impl::finish(SubscribeTransfer& t, CURLcode code) {
  if (t.status == 0) curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &t.status);
  std::exception_ptr failure;
  if (t.failure) {
    failure = t.failure;
  } else if (code != CURLE_OK) {
    const std::string detail = t.error[0] != '\0' ? t.error : curl_easy_strerror(code);
    failure = std::make_exception_ptr(TransportError(t.where + ": connection failed: " + detail));
  } else if (t.status != 200) {
    failure = reply_failure(t);
  } else if (t.decoder.buffered() > 0) {
    failure = std::make_exception_ptr(
        TransportError(t.where + ": the stream ended inside an event (" + std::to_string(t.decoder.buffered()) +
                       " bytes of an incomplete message)"));
  }
  remove(t.id, failure);
}

// Takes a transfer out of the multi handle and tells its consumer that the stream is over:
// with `failure`, or cleanly (nullptr). Unknown ids (already finished) are ignored.
void KinesisSubscriber::Impl::remove(std::uint64_t id, std::exception_ptr failure) {
  const auto it = transfers.find(id);
  if (it == transfers.end()) return;
  std::unique_ptr<SubscribeTransfer> t = std::move(it->second);
  transfers.erase(it);
  if (t->in_multi) curl_multi_remove_handle(multi, t->easy);
  {
    std::lock_guard lock(t->shared->mutex);
    t->shared->done = true;
    t->shared->failure = std::move(failure);
  }
  t->shared->ready.notify_all();
  --open;
}

// A stream that is not paused and has received nothing for stall_timeout is given up: the
// service sends an event every few seconds, so the connection or the server is stuck.
void KinesisSubscriber::Impl::check_stalls() {
  const auto now = Clock::now();
  if (now - last_stall_check < std::chrono::milliseconds(250)) return;
  last_stall_check = now;
  std::vector<std::uint64_t> stalled;
  for (const auto& [id, t] : transfers) {
    if (!t->paused && now - t->last_bytes > options.stall_timeout) stalled.push_back(id);
  }
  for (const auto id : stalled) {
    const std::string where = transfers[id]->where;
    remove(id, std::make_exception_ptr(TransportError(
                   where + ": no data for " + std::to_string(options.stall_timeout.count()) + " ms (stalled)")));
  }
}

namespace {

class Subscription final : public ShardSubscription {
 public:
  Subscription(std::shared_ptr<KinesisSubscriber::Impl> owner, std::uint64_t id, std::shared_ptr<Shared> shared,
               std::string where, std::size_t limit)
      : owner_(std::move(owner)), id_(id), shared_(std::move(shared)), where_(std::move(where)), limit_(limit) {}

  ~Subscription() override {
    bool done = false;
    {
      std::lock_guard lock(shared_->mutex);
      done = shared_->done;
    }
    if (!done) owner_->command(KinesisSubscriber::Impl::Op::Cancel, id_);
  }

  Status next(SubscribeToShardEvent& out, std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      std::unique_lock lock(shared_->mutex);
      if (!shared_->ready.wait_until(lock, deadline, [&] { return !shared_->messages.empty() || shared_->done; })) {
        return Status::Timeout;
      }
      if (shared_->messages.empty()) {
        if (shared_->failure) std::rethrow_exception(shared_->failure);
        return Status::Ended;
      }
      message_ = std::move(shared_->messages.front());
      shared_->messages.pop_front();
      shared_->queued_bytes -= std::min(shared_->queued_bytes, message_bytes(message_));
      const bool resume = shared_->paused && shared_->queued_bytes <= limit_ / 2;
      if (resume) shared_->paused = false;
      lock.unlock();
      if (resume) owner_->command(KinesisSubscriber::Impl::Op::Resume, id_);
      if (deliver(out)) return Status::Event;
    }
  }

 private:
  // True when message_ was an event (now in `out`); other kinds are skipped or thrown.
  bool deliver(SubscribeToShardEvent& out) {
    const detail::SubscribeMessage m = detail::classify_subscribe_message(message_);
    switch (m.kind) {
      case detail::SubscribeMessageKind::Event:
        message_.payload.reserve(message_.payload.size() + detail::json_padding);
        try {
          parser_.subscribe_event(message_.payload, out);
        } catch (const ProtocolError& e) {
          throw ProtocolError(where_ + ": " + e.what());
        }
        return true;
      case detail::SubscribeMessageKind::Exception:
        std::rethrow_exception(in_stream_exception(where_, m.type, m.message));
      case detail::SubscribeMessageKind::Error:
        throw TransportError(where_ + ": error " + std::string(m.type) + (m.message.empty() ? "" : ": " + m.message));
      case detail::SubscribeMessageKind::InitialResponse:
      case detail::SubscribeMessageKind::Other:
        return false;
    }
    return false;
  }

  std::shared_ptr<KinesisSubscriber::Impl> owner_;
  std::uint64_t id_;
  std::shared_ptr<Shared> shared_;
  std::string where_;
  std::size_t limit_;
  detail::EventStreamMessage message_;
  detail::ReplyParser parser_;
};

}  // namespace

KinesisSubscriber::KinesisSubscriber(SubscriberOptions options) : impl_(std::make_shared<Impl>()) {
  KinesisOptions& k = options.kinesis;
  k.region = resolve_region(k.region, k.profile);
  k.endpoint = resolve_endpoint("KINESIS", k.endpoint, regional_endpoint("kinesis", k.region), k.profile);
  if (!k.credentials) k.credentials = shared_default_credentials(k.profile);
  if (options.buffer_bytes == 0) throw ConfigError("KinesisSubscriber: buffer_bytes must be > 0");
  Impl& m = *impl_;
  m.url = k.endpoint + "/";
  m.host = detail::split_url(m.url).host;
  m.options = std::move(options);
  detail::curl_global_init_once();
  if (m.url.rfind("http://", 0) == 0 && !h2c_multiplexes()) {
    log_info("enhanced fan-out at ", m.options.kinesis.endpoint, ": libcurl ", curl_version_info(CURLVERSION_NOW)->version,
             " cannot multiplex HTTP/2 without TLS (curl issue #10634, fixed in 8.0.0): one connection per "
             "subscription to this plain-http endpoint (https endpoints, as AWS's, share one)");
  }
  m.multi = curl_multi_init();
  if (m.multi == nullptr) throw TransportError("KinesisSubscriber: libcurl could not create a multi handle");
  curl_multi_setopt(m.multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  // The I/O thread takes no process signal (SIGTERM, SIGINT, SIGHUP are the program's to
  // handle, e.g. on a sigwait thread): it starts with every signal blocked.
  sigset_t all;
  sigset_t before;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  m.io = std::thread([&m] { m.run(); });
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

KinesisSubscriber::~KinesisSubscriber() {
  {
    std::lock_guard lock(impl_->commands_mutex);
    impl_->stopping = true;
    impl_->commands.clear();
  }
  curl_multi_wakeup(impl_->multi);
  impl_->io.join();
  curl_multi_cleanup(impl_->multi);
  impl_->multi = nullptr;
}

std::unique_ptr<ShardSubscription> KinesisSubscriber::subscribe(const std::string& consumer_arn,
                                                                const std::string& shard_id,
                                                                const StartPosition& position) {
  Impl& m = *impl_;
  auto t = std::make_unique<SubscribeTransfer>();
  t->id = m.next_id++;
  t->shared = std::make_shared<Shared>();
  t->where = "Kinesis SubscribeToShard (shard " + shard_id + ", consumer " + consumer_arn + ") at " +
             m.options.kinesis.endpoint;
  t->url = m.url;
  t->body = request_body(consumer_arn, shard_id, position);
  t->limit = m.options.buffer_bytes;

  const Credentials credentials = m.options.kinesis.credentials->credentials();
  detail::SigningInput in;
  in.method = "POST";
  in.canonical_uri = "/";
  in.region = m.options.kinesis.region;
  in.service = "kinesis";
  in.headers = {{"content-type", "application/x-amz-json-1.1"},
                {"host", m.host},
                {"x-amz-target", "Kinesis_20131202.SubscribeToShard"}};
  in.payload_hash = detail::sha256_hex(t->body);
  const std::string authorization = detail::sign(in, credentials, std::chrono::system_clock::now());
  for (const auto& [name, value] : in.headers) {
    t->headers = curl_slist_append(t->headers, (name + ": " + value).c_str());
  }
  t->headers = curl_slist_append(t->headers, ("authorization: " + authorization).c_str());
  if (t->headers == nullptr) throw TransportError(t->where + ": out of memory");
  t->secret = credentials.secret_access_key;
  t->token = credentials.session_token;
  t->secrets = {t->secret, t->token};

  auto subscription = std::make_unique<Subscription>(impl_, t->id, t->shared, t->where, t->limit);
  ++m.open;
  const std::uint64_t id = t->id;
  m.command(Impl::Op::Add, id, std::move(t));
  return subscription;
}

KinesisSubscriber::Stats KinesisSubscriber::stats() const {
  return {impl_->connections.load(), impl_->open.load()};
}

}  // namespace kclpp::aws
