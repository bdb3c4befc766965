#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "kclpp/pipeline/spool.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "spool_wire.hpp"
#include "zmq_call.hpp"

// Design (measured with bench/spool_latency, see bench/README.md): send() copies the two
// frames into a slot of a bounded lock-free ring (Vyukov's bounded MPMC queue, used with
// one consumer) and returns; one sender thread owns the PUSH socket (ZeroMQ sockets are
// not thread-safe) and moves slots into it. The caller never makes a system call: the
// sender is not woken per record but polls every millisecond when idle, and is woken only
// when the ring gets a quarter full. A full ring is a counted drop, never a wait.

namespace kclpp::pipeline {

std::string default_spool_endpoint() {
  const char* host = std::getenv("TRITON_ZMQ_HOST");
  const char* port = std::getenv("TRITON_ZMQ_PORT");
  return std::string("tcp://") + (host != nullptr && *host != '\0' ? host : "127.0.0.1") + ":" +
         (port != nullptr && *port != '\0' ? port : "3515");
}

namespace {

constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
constexpr auto idle_wait = std::chrono::milliseconds{1};
// A ZMQ send waits this long at most, so that the sender notices close() in time.
constexpr int send_timeout_ms = 50;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

struct SpoolClient::Impl {
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> sequence{0};
    std::string header;
    std::string body;
  };

  SpoolClientOptions options;
  std::string send_failed;  // "spool client: send to <endpoint> failed", built once
  zmq::context_t context{1};
  zmq::socket_t socket;
  std::vector<Slot> slots;
  std::uint64_t mask = 0;

  alignas(64) std::atomic<std::uint64_t> enqueue_pos{0};  // + closed_bit once closed
  alignas(64) std::atomic<std::uint64_t> dequeue_pos{0};  // written by the sender only
  alignas(64) std::atomic<bool> sender_sleeping{false};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> lost_at_close{0};  // accepted, then not handed to ZeroMQ in time
  std::atomic<bool> closing{false};
  std::atomic<std::uint64_t> accepted_at_close{0};
  std::chrono::steady_clock::time_point close_deadline{};
  std::mutex wake_mutex;
  std::condition_variable wake;
  std::once_flag close_once;
  detail::LogLimiter key_log;
  std::thread sender;  // last: started once everything above exists

  explicit Impl(SpoolClientOptions o) : options(std::move(o)) {
    if (options.endpoint.empty()) options.endpoint = default_spool_endpoint();
    send_failed = "spool client: send to " + options.endpoint + " failed";
    const int hwm = std::max(options.high_water_mark, 1);
    const std::size_t capacity = std::bit_ceil(static_cast<std::size_t>(std::max(hwm, 2)));
    slots = std::vector<Slot>(capacity);
    mask = capacity - 1;
    for (std::size_t i = 0; i < capacity; ++i) {
      slots[i].sequence.store(i, std::memory_order_relaxed);
      // Typical Triton events fit: no allocation in send() once warm.
      slots[i].header.reserve(detail::binary_header_size);
      slots[i].body.reserve(256);
    }
    detail::zmq_setup("spool client: cannot connect to '" + options.endpoint + "'", [&] {
      socket = zmq::socket_t(context, zmq::socket_type::push);
      socket.set(zmq::sockopt::sndhwm, hwm);
      socket.set(zmq::sockopt::sndtimeo, send_timeout_ms);
      socket.set(zmq::sockopt::linger, static_cast<int>(options.linger.count()));
      socket.connect(options.endpoint);
    });
    sender = std::thread([this] { run_sender(); });
  }

  ~Impl() { close(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  bool push(std::string_view stream, std::string_view key, std::string_view body) noexcept {
    // What the daemon would refuse (docs/triton.md §7 limits, Kinesis limits) is dropped here, where
    // the caller's dropped() shows it.
    if (stream.empty() || key.empty() || detail::utf8_length(key) > detail::max_partition_key_chars ||
        body.size() + key.size() > detail::max_record_bytes ||
        (options.header == HeaderFormat::Binary &&
         (stream.size() > detail::binary_header_max_field || key.size() > detail::binary_header_max_field))) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    std::uint64_t pos = enqueue_pos.load(std::memory_order_relaxed);
    Slot* slot = nullptr;
    for (;;) {
      if ((pos & closed_bit) != 0) {
        dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      slot = &slots[pos & mask];
      const std::uint64_t seq = slot->sequence.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(seq - pos);
      if (diff == 0) {
        if (enqueue_pos.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
      } else if (diff < 0) {  // full
        dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      } else {
        pos = enqueue_pos.load(std::memory_order_relaxed);
      }
    }
    try {
      slot->header.clear();
      if (options.header == HeaderFormat::Binary) {
        (void)detail::append_binary_header(stream, key, slot->header);
      } else {
        detail::append_json_header(stream, key, slot->header);
      }
      slot->body.assign(body);
    } catch (...) {  // bad_alloc: the claimed slot is published empty; the sender skips it
      slot->header.clear();
      dropped.fetch_add(1, std::memory_order_relaxed);
    }
    slot->sequence.store(pos + 1, std::memory_order_release);
    if (sender_sleeping.load(std::memory_order_relaxed) &&
        pos - dequeue_pos.load(std::memory_order_relaxed) >= (mask + 1) / 4 &&
        sender_sleeping.exchange(false, std::memory_order_relaxed)) {
      wake.notify_one();
    }
    return true;
  }

  std::uint64_t accepted() const noexcept {
    return (enqueue_pos.load(std::memory_order_acquire) & ~closed_bit) - lost_at_close.load();
  }

  // Sends one slot's frames; false when close()'s deadline passed first.
  bool send_slot(Slot& slot) {
    if (slot.header.empty()) return true;  // could not be filled (bad_alloc): skipped
    for (;;) {
      bool sent = false;
      try {
        const auto status = detail::zmq_call(send_failed, Retry::Yes, [&] {
          zmq::message_t header(slot.header.data(), slot.header.size());
          if (!socket.send(header, zmq::send_flags::sndmore)) return;
          zmq::message_t body(slot.body.data(), slot.body.size());
          // A message's later frames are never refused for the high-water mark (it counts
          // whole messages), so this completes the message.
          (void)socket.send(body, zmq::send_flags::none);
          sent = true;
        });
        if (status == detail::ZmqStatus::Terminated) return false;
      } catch (const TransportError& e) {
        log_warn(e.what());
        return true;  // dropped by ZeroMQ: skip this record
      }
      if (sent) return true;
      // EAGAIN (or a signal): ZeroMQ's queue is full (no daemon, or a slow one). Keep the
      // record until close()'s deadline; meanwhile the ring fills and send() counts drops.
      if (closing.load(std::memory_order_acquire) && std::chrono::steady_clock::now() >= close_deadline)
        return false;
    }
  }

  void run_sender() {
    int idle = 0;
    for (;;) {
      const std::uint64_t pos = dequeue_pos.load(std::memory_order_relaxed);
      Slot& slot = slots[pos & mask];
      if (slot.sequence.load(std::memory_order_acquire) == pos + 1) {
        const bool ok = send_slot(slot);
        slot.sequence.store(pos + mask + 1, std::memory_order_release);
        dequeue_pos.store(pos + 1, std::memory_order_relaxed);
        idle = 0;
        if (!ok) {
          // The deadline passed: what is still in the ring is lost, and counted.
          const std::uint64_t lost = accepted_at_close.load() - pos;
          lost_at_close.store(lost);
          dropped.fetch_add(lost, std::memory_order_relaxed);
          log_warn("spool client: close() linger ran out with ", lost, " records not handed to ZeroMQ");
          return;
        }
        continue;
      }
      if (closing.load(std::memory_order_acquire) && pos >= accepted_at_close.load()) return;
      if (++idle < 200) {
        cpu_relax();
        continue;
      }
      sender_sleeping.store(true);
      std::unique_lock lock(wake_mutex);
      wake.wait_for(lock, idle_wait);
      sender_sleeping.store(false, std::memory_order_relaxed);
    }
  }

  void close() noexcept {
    std::call_once(close_once, [this] {
      const std::uint64_t before = enqueue_pos.fetch_or(closed_bit);
      accepted_at_close.store(before & ~closed_bit);
      close_deadline = std::chrono::steady_clock::now() + options.linger;
      closing.store(true, std::memory_order_release);
      wake.notify_one();
      if (sender.joinable()) sender.join();
      // What is left in ZeroMQ's own queue gets the rest of the linger.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          close_deadline - std::chrono::steady_clock::now());
      try {
        detail::zmq_setup("spool client: close", [&] {
          socket.set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
          socket.close();
          context.close();
        });
      } catch (const TransportError& e) {
        log_warn(e.what());
      }
    });
  }
};

SpoolClient::SpoolClient(SpoolClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
SpoolClient::~SpoolClient() = default;

bool SpoolClient::send(std::string_view logical_stream, std::string_view partition_key,
                       std::string_view msgpack_map) noexcept {
  return impl_->push(logical_stream, partition_key, msgpack_map);
}

bool SpoolClient::send(std::string_view logical_stream, const std::string& partition_key_field,
                       const Map& record) noexcept {
  try {
    const std::string key = partition_key_of(record, partition_key_field);
    const std::string body = encode_record(record);
    return impl_->push(logical_stream, key, body);
  } catch (const std::exception& e) {
    impl_->dropped.fetch_add(1, std::memory_order_relaxed);
    if (const std::uint64_t n = impl_->key_log.allow(); n != 0)
      log_warn("spool client: record for ", logical_stream, " dropped: ", e.what(), " (", n,
               " such drops since the last message)");
    return false;
  }
}

std::uint64_t SpoolClient::sent() const noexcept { return impl_->accepted(); }
std::uint64_t SpoolClient::dropped() const noexcept { return impl_->dropped.load(std::memory_order_relaxed); }
void SpoolClient::close() noexcept { impl_->close(); }

}  // namespace kclpp::pipeline
