#include "systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "kclpp/native/worker.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail {
namespace {

constexpr std::chrono::milliseconds starting_tick{100};
constexpr std::chrono::milliseconds running_tick{1'000};

// sd_notify's own failures are not worth more than a debug line: the protocol is a
// datagram to a socket that systemd owns; a lost one is covered by the next.
void notify(const std::string& message) noexcept {
  const int r = ::sd_notify(0, message.c_str());
  if (r < 0) log_debug("sd_notify failed (", -r, ") for: ", message);
}

// STATUS= is one line: a newline would start another assignment.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

}  // namespace

SystemdNotifier::SystemdNotifier(std::function<ServiceState()> probe) : probe_(std::move(probe)) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') return;
  std::uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  if (::sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
  thread_ = std::thread([this] { run(); });
}

SystemdNotifier::~SystemdNotifier() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SystemdNotifier::stopping(const std::string& status) noexcept {
  if (!active()) return;
  try {
    notify("STOPPING=1\nSTATUS=" + one_line(status));
  } catch (...) {
    // Only allocation can throw here; systemd learns of the stop from the exit.
  }
}

void SystemdNotifier::run() noexcept {
  bool ready = false;
  std::string last_status;
  auto next_ping = std::chrono::steady_clock::now();
  const auto ping_every = std::chrono::duration_cast<std::chrono::milliseconds>(watchdog_ / 2);
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    try {
      const ServiceState state = probe_();
      std::string message;
      if (!ready && state.ready) {
        ready = true;
        message += "READY=1\n";
      }
      const auto now = std::chrono::steady_clock::now();
      if (watchdog_.count() > 0 && state.healthy && now >= next_ping) {
        message += "WATCHDOG=1\n";
        next_ping = now + ping_every;
      }
      if (state.status != last_status) {
        last_status = state.status;
        message += "STATUS=" + one_line(state.status) + "\n";
      }
      if (!message.empty()) notify(message);
    } catch (const std::exception& e) {
      // A failing probe is an unhealthy process: no ping this time.
      log_warn("systemd notifier: the health probe failed: ", e.what());
    }
    auto tick = ready ? running_tick : starting_tick;
    if (ping_every.count() > 0) tick = std::min(tick, std::max(ping_every, std::chrono::milliseconds{1}));
    lock.lock();
    cv_.wait_for(lock, tick, [&] { return stop_; });
  }
}

ServiceState worker_service_state(const native::Worker& worker) {
  const native::WorkerHealth health = worker.health();
  ServiceState state;
  state.ready = health.started;
  state.healthy = health.alive && health.calls_past_timeout == 0;
  if (!health.problems.empty()) {
    state.status = health.problems.front();
    if (health.problems.size() > 1) state.status += " (+" + std::to_string(health.problems.size() - 1) + " more)";
  } else if (health.started) {
    state.status = "processing " + std::to_string(health.leases_held) + " shard(s)";
  } else {
    state.status = "starting";
  }
  return state;
}

}  // namespace kclpp::app::detail
