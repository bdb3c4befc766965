#pragma once
// systemd's service notifications (sd_notify(3); systemd.service(5) Type=notify and
// WatchdogSec) for the long-running commands: READY=1 once started, WATCHDOG=1 while healthy,
// STOPPING=1 at shutdown, STATUS= a one-line summary. docs/operations.md §2. libsystemd
// stays behind this header.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace kclpp::native {
class Worker;
}  // namespace kclpp::native

namespace kclpp::app::detail {

// What the notifier asks its probe at each tick.
struct ServiceState {
  bool ready = false;    // started: READY=1 goes out the first time this is true
  bool healthy = false;  // WATCHDOG=1 goes out only while this is true
  std::string status;    // STATUS=, sent whenever it changes
};

// Outside systemd (no NOTIFY_SOCKET) it does nothing and starts no thread. Under systemd it
// runs one thread, joined by the destructor, that calls the probe every 100 ms until ready,
// then every min(1 s, WatchdogSec / 2) (the watchdog period systemd passes in WATCHDOG_USEC,
// for this pid: WATCHDOG_PID), and pings the watchdog at that period while healthy: a
// process that is stuck, or whose probe says unhealthy, misses its pings and systemd
// restarts it. Thread-safe: stopping() may be called from any thread (a signal handler's
// thread); the probe runs on the notifier's thread.
class SystemdNotifier {
 public:
  explicit SystemdNotifier(std::function<ServiceState()> probe);
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // STOPPING=1 with `status` (systemd then waits for the exit, TimeoutStopSec).
  void stopping(const std::string& status) noexcept;
  [[nodiscard]] bool active() const noexcept { return thread_.joinable(); }

 private:
  void run() noexcept;

  std::function<ServiceState()> probe_;
  std::chrono::microseconds watchdog_{0};  // 0: no watchdog asked for
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mutex_
  std::thread thread_;  // last: started once everything else exists
};

// The probe of a native worker (the native mode of kclpp::main, `kclpp daemon`, `kclpp store`):
// ready once it has started, healthy while alive with no processor call past its timeout
// (WorkerHealth, docs/operations.md §2), the status naming the leases held or the first problem.
[[nodiscard]] ServiceState worker_service_state(const native::Worker& worker);

}  // namespace kclpp::app::detail
