#pragma once
// `kclpp conformance` (docs/operations.md §5): drives a multilang child process (any
// language) through what a MultiLangDaemon can send, one fresh child per scenario, and
// judges what it answers against docs/kcl-protocol.md.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kclpp::app::detail {

// Pass: conformant. Info: legal, or nothing to check (e.g. a child that never
// checkpoints). Warn: works, but costs duplicates, time, or another daemon version.
// Fail: a daemon would fail, hang or lose progress with this child.
enum class Verdict { Pass, Info, Warn, Fail };
[[nodiscard]] std::string_view verdict_name(Verdict verdict) noexcept;

// One line of the report, plus indented notes (other findings, the child's stderr tail).
struct ScenarioReport {
  std::string name;
  Verdict verdict = Verdict::Pass;
  std::string summary;
  std::vector<std::string> notes;
};

struct ConformanceOptions {
  std::string command;  // the child, split on spaces as the daemons split executableName
  // Each wait for a reply (the daemon's timeoutInSeconds); the child is killed on expiry.
  std::chrono::milliseconds timeout{10'000};
  // Replies slower than this are flagged (reply-time).
  std::chrono::milliseconds slow{1'000};
  std::size_t throughput_records = 20'000;
  std::size_t throughput_batch = 500;
  std::size_t record_size = 1'024;
  std::vector<std::string> scenarios;  // a subset of conformance_scenarios(); empty: all
  bool verbose = false;                // the child's stderr and kclpp's log go to stderr
};

struct ConformanceReport {
  std::vector<ScenarioReport> scenarios;
  [[nodiscard]] bool failed() const noexcept;
};

// The driven scenarios, in the order they run. The checks over the whole run
// (stray-stdout, strict-messages, reply-time) follow them in every report.
[[nodiscard]] const std::vector<std::string_view>& conformance_scenarios();

// Runs the scenarios. Throws ConfigError for an unknown scenario name or a child that
// cannot be started at all (not a verdict: nothing was tested). Replaces the log sink
// while it runs (restored on return). Not thread-safe: one run per process at a time.
[[nodiscard]] ConformanceReport run_conformance(const ConformanceOptions& options);

// The report as printed: one line per scenario, notes indented, a totals line.
[[nodiscard]] std::string format_report(const ConformanceReport& report, const ConformanceOptions& options);

}  // namespace kclpp::app::detail
