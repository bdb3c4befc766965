#include <algorithm>
#include <optional>
#include <utility>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "kclpp/pipeline/spool.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "spool_wire.hpp"
#include "zmq_call.hpp"

// Two threads, as tritond is not (docs/triton.md §7: it flushes synchronously in its receive loop,
// so a slow Kinesis backs up into the clients, which then drop): run()'s thread only
// takes messages off the PULL socket and appends them to `pending` under a mutex held for
// an append; the sender thread swaps `pending` out every flush_interval and writes it
// with PutRecords and the retries. `buffered_bytes` counts what is held from receipt until
// Kinesis accepted or finally refused it, which bounds memory even while Kinesis hangs.

namespace kclpp::pipeline {
namespace {

// After request_stop(): the socket is read until it has been quiet this long (messages
// the clients had already sent are still arriving), but not longer than drain_limit.
constexpr auto drain_quiet = std::chrono::milliseconds{100};
constexpr auto drain_limit = std::chrono::milliseconds{2'000};
constexpr auto poll_interval = std::chrono::milliseconds{50};
// Messages taken per pass before the batch is handed over (keeps the lock hold short).
constexpr std::size_t receive_batch = 1'000;

std::string region_of(const aws::KinesisOptions& client, const StreamConfig& stream) {
  return client.region.empty() ? stream.region : client.region;
}

}  // namespace

struct SpoolDaemon::Impl {
  struct Pending {
    const StreamConfig* stream = nullptr;
    std::vector<aws::PutRecordsEntry> entries;
  };
  struct Received {
    const StreamConfig* stream;
    aws::PutRecordsEntry entry;
  };

  TritonConfig config;
  SpoolDaemonOptions options;
  zmq::context_t context{1};
  zmq::socket_t socket;
  std::string endpoint;
  std::string receive_failed;  // "spool daemon: receiving on <endpoint> failed"
  // One client per region (streams of one config may live in several); used by the sender
  // thread only, once run() started.
  std::map<std::string, aws::KinesisClient> clients;

  std::atomic<bool> stop_requested{false};
  std::atomic<bool> started{false};
  // SpoolStats, kept in the registry's lock-free counters so that the endpoint and stats()
  // read the same numbers.
  std::shared_ptr<MetricsRegistry> registry;
  Counter received, written, malformed, unknown_stream, dropped_full, failed, retried;
  Gauge buffer_bytes;  // = buffered_bytes, set under `mutex` with it

  std::mutex mutex;  // guards pending, buffered_bytes, receiving_done
  std::condition_variable flush_now;
  std::map<std::string, Pending> pending;  // by logical name
  std::size_t buffered_bytes = 0;
  bool receiving_done = false;

  detail::LogLimiter malformed_log, unknown_log, full_log, failed_log;

  Impl(TritonConfig c, SpoolDaemonOptions o) : config(std::move(c)), options(std::move(o)) {
    register_metrics();
    if (options.endpoint.empty()) options.endpoint = default_spool_endpoint();
    for (const auto& [name, stream] : config.streams()) {
      const std::string region = region_of(options.client, stream);
      if (clients.count(region) != 0) continue;
      aws::KinesisOptions client = options.client;
      client.region = region;
      clients.emplace(region, aws::KinesisClient(std::move(client)));
    }
    detail::zmq_setup("spool daemon: cannot bind '" + options.endpoint + "'", [&] {
      socket = zmq::socket_t(context, zmq::socket_type::pull);
      socket.set(zmq::sockopt::rcvhwm, options.receive_high_water_mark);
      socket.set(zmq::sockopt::linger, 0);
      socket.bind(options.endpoint);
      endpoint = socket.get(zmq::sockopt::last_endpoint);
    });
    receive_failed = "spool daemon: receiving on " + endpoint + " failed";
  }

  void register_metrics() {
    registry = options.metrics ? options.metrics : std::make_shared<MetricsRegistry>();
    received = registry->counter("kclpp_spool_received_total", "Messages taken off the ZeroMQ socket");
    written = registry->counter("kclpp_spool_written_total", "Records Kinesis accepted");
    retried = registry->counter("kclpp_spool_retried_total", "Records resent to Kinesis at least once");
    const auto dropped = [&](const char* reason) {
      return registry->counter("kclpp_spool_dropped_total", "Records dropped, by reason", {{"reason", reason}});
    };
    malformed = dropped("malformed");
    unknown_stream = dropped("unknown_stream");
    dropped_full = dropped("buffer_full");
    failed = dropped("failed_after_retries");
    buffer_bytes = registry->gauge("kclpp_spool_buffer_bytes", "Bytes of records held for Kinesis (data + keys)");
  }

  // A ZeroMQ call on the receiving side: a signal (Interrupted) is "nothing yet" for the
  // caller; the context closing under the daemon is an error.
  template <class Fn>
  detail::ZmqStatus receive_call(Fn&& fn) {
    const auto status = detail::zmq_call(receive_failed, Retry::Yes, std::forward<Fn>(fn));
    if (status == detail::ZmqStatus::Terminated) throw TransportError(receive_failed + ": the context was closed");
    return status;
  }

  // One message off the socket: its first two frames and how many it had.
  struct Message {
    zmq::message_t header;
    zmq::message_t body;
    std::size_t frames = 0;
  };

  // The next message waiting on the socket; nullopt when none is (or a signal came first).
  std::optional<Message> next_message() {
    Message m;
    (void)receive_call([&] {
      if (!socket.recv(m.header, zmq::recv_flags::dontwait)) return;
      m.frames = 1;
      bool more = m.header.more();
      while (more) {  // ZeroMQ delivers a message whole: its other frames are already here
        zmq::message_t part;
        (void)socket.recv(part, zmq::recv_flags::none);
        more = part.more();
        if (++m.frames == 2) m.body = std::move(part);
      }
    });
    if (m.frames == 0) return std::nullopt;
    return m;
  }

  // Takes one message off the socket into `batch`; false when none is waiting.
  bool receive_one(std::vector<Received>& batch) {
    std::optional<Message> message = next_message();
    if (!message) return false;
    received.add(1);
    if (message->frames != 2) return reject("message of " + std::to_string(message->frames) + " frames (expected 2)");
    const zmq::message_t& second = message->body;
    std::string error;
    auto header = detail::decode_header(message->header.to_string_view(), error);
    if (!header) return reject(error);
    const StreamConfig* stream = config.find(header->stream_name);
    if (stream == nullptr) {
      unknown_stream.add(1);
      if (const auto n = unknown_log.allow(); n != 0)
        log_warn("spool daemon: stream '", header->stream_name, "' is not in ", config.source(), "; dropped (", n,
                 " unknown-stream messages since the last warning)");
      return true;
    }
    // One record Kinesis refuses would fail its whole PutRecords request: refuse it here.
    if (auto problem = detail::partition_key_problem(header->partition_key); !problem.empty())
      return reject(problem + " for stream '" + header->stream_name + "'");
    if (second.size() + header->partition_key.size() > detail::max_record_bytes)
      return reject("record of " + std::to_string(second.size()) + " bytes for stream '" + header->stream_name +
                    "' is over the 1 MiB Kinesis limit");
    // What `kclpp store` would skip later (docs/triton.md §2, §7) never goes to Kinesis: the
    // scan is cheap next to the network and allocates nothing.
    if (auto problem = validate_record(second.to_string_view()); !problem.empty())
      return reject("record for stream '" + header->stream_name + "' is not a Triton record: " + problem);
    batch.push_back({stream, aws::PutRecordsEntry{std::string(second.to_string_view()),
                                                     std::move(header->partition_key), {}}});
    return true;
  }

  bool reject(const std::string& why) {
    malformed.add(1);
    if (const auto n = malformed_log.allow(); n != 0)
      log_warn("spool daemon: malformed message dropped: ", why, " (", n, " malformed since the last warning)");
    return true;
  }

  void hand_over(std::vector<Received>& batch) {
    if (batch.empty()) return;
    std::uint64_t full = 0;
    {
      std::lock_guard lock(mutex);
      for (Received& r : batch) {
        const std::size_t size = r.entry.data.size() + r.entry.partition_key.size();
        if (buffered_bytes + size > options.max_buffered_bytes) {
          ++full;
          continue;
        }
        buffered_bytes += size;
        buffer_bytes.set(static_cast<double>(buffered_bytes));
        Pending& p = pending[r.stream->logical_name];
        p.stream = r.stream;
        p.entries.push_back(std::move(r.entry));
      }
    }
    batch.clear();
    if (full != 0) {
      dropped_full.add(full);
      if (const auto n = full_log.allow(); n != 0)
        log_warn("spool daemon: buffer full (", options.max_buffered_bytes, " bytes held for Kinesis); ", full,
                 " records dropped");
    }
  }

  // Reads everything waiting now (at most a few batches), then returns.
  std::size_t drain_available(std::vector<Received>& batch) {
    std::size_t n = 0;
    while (true) {
      std::size_t taken = 0;
      while (taken < receive_batch && receive_one(batch)) ++taken;
      hand_over(batch);
      n += taken;
      if (taken < receive_batch || stop_requested.load(std::memory_order_relaxed)) return n;
    }
  }

  void write_stream(const Pending& p) {
    aws::KinesisClient& client = clients.at(region_of(options.client, *p.stream));
    const std::span<const aws::PutRecordsEntry> all = p.entries;
    for (const auto& [begin, end] : detail::split_requests(all)) {
      const auto part = all.subspan(begin, end - begin);
      std::size_t bytes = 0;
      for (const auto& e : part) bytes += e.data.size() + e.partition_key.size();
      try {
        const detail::PutOutcome outcome = detail::put_with_retry(client, p.stream->name, part, options.retry);
        written.add(part.size() - outcome.failed);
        failed.add(outcome.failed);
        retried.add(outcome.retried);
        if (outcome.failed != 0) {
          const auto first = std::find_if(outcome.results.begin(), outcome.results.end(),
                                          [](const auto& r) { return !r.ok(); });
          if (const auto n = failed_log.allow(); n != 0)
            log_error("spool daemon: ", outcome.failed, " of ", part.size(), " records for stream ", p.stream->name,
                      " dropped after the retries: ", first->error_code, ": ", first->error_message);
        }
      } catch (const std::exception& e) {  // bad_alloc and the like: the records are lost
        failed.add(part.size());
        log_error("spool daemon: ", part.size(), " records for stream ", p.stream->name, " dropped: ", e.what());
      }
      std::lock_guard lock(mutex);
      buffered_bytes -= bytes;
      buffer_bytes.set(static_cast<double>(buffered_bytes));
    }
  }

  void run_sender() {
    auto next_flush = std::chrono::steady_clock::now() + options.flush_interval;
    for (;;) {
      std::map<std::string, Pending> work;
      bool done = false;
      {
        std::unique_lock lock(mutex);
        flush_now.wait_until(lock, next_flush, [&] { return receiving_done; });
        done = receiving_done;
        work.swap(pending);
      }
      next_flush = std::chrono::steady_clock::now() + options.flush_interval;
      for (const auto& [name, p] : work) write_stream(p);
      if (done) {
        std::lock_guard lock(mutex);
        if (pending.empty()) return;
      }
    }
  }

  // zmq::poll that treats a signal (EINTR) as "nothing yet": an embedding program's
  // signal handler must not end the daemon.
  bool readable(zmq::pollitem_t& item, std::chrono::milliseconds timeout) {
    item.revents = 0;
    const auto status = receive_call([&] { zmq::poll(&item, 1, timeout); });
    return status == detail::ZmqStatus::Done && (item.revents & ZMQ_POLLIN) != 0;
  }

  void run() {
    if (started.exchange(true)) throw ConfigError("SpoolDaemon::run() called twice");
    log_info("spool daemon: listening on ", endpoint, ", ", config.streams().size(), " streams from ",
             config.source());
    std::vector<Received> batch;
    batch.reserve(receive_batch);
    // Joined on every path out of this function, after receiving_done is set.
    struct SenderGuard {
      Impl& impl;
      std::thread thread;
      ~SenderGuard() {
        {
          std::lock_guard lock(impl.mutex);
          impl.receiving_done = true;
        }
        impl.flush_now.notify_all();
        thread.join();
      }
    } sender{*this, std::thread([this] { run_sender(); })};

    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop_requested.load()) {
      if (readable(item, poll_interval)) drain_available(batch);
    }
    // Messages the clients sent before the stop are still arriving: take them.
    const auto limit = std::chrono::steady_clock::now() + drain_limit;
    while (std::chrono::steady_clock::now() < limit) {
      if (!readable(item, drain_quiet)) break;
      std::size_t taken = 0;
      while (receive_one(batch)) {
        if (++taken % receive_batch == 0) hand_over(batch);
      }
      hand_over(batch);
    }
    detail::zmq_setup(receive_failed, [&] { socket.close(); });
  }
};

SpoolDaemon::SpoolDaemon(TritonConfig config, SpoolDaemonOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(options))) {}
SpoolDaemon::~SpoolDaemon() = default;

const std::string& SpoolDaemon::endpoint() const noexcept { return impl_->endpoint; }

void SpoolDaemon::run() {
  impl_->run();
  const SpoolStats s = stats();
  log_info("spool daemon stopped: received ", s.received, ", written ", s.written, ", malformed ", s.malformed,
           ", unknown stream ", s.unknown_stream, ", dropped (buffer full) ", s.dropped_full,
           ", failed after retries ", s.failed, ", retried ", s.retried);
}

void SpoolDaemon::request_stop() noexcept { impl_->stop_requested.store(true); }

SpoolStats SpoolDaemon::stats() const noexcept {
  const Impl& m = *impl_;
  SpoolStats s;
  s.received = m.received.value();
  s.written = m.written.value();
  s.malformed = m.malformed.value();
  s.unknown_stream = m.unknown_stream.value();
  s.dropped_full = m.dropped_full.value();
  s.failed = m.failed.value();
  s.retried = m.retried.value();
  return s;
}

}  // namespace kclpp::pipeline
