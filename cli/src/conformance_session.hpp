#pragma once
// The pieces `kclpp conformance` builds its scenarios from (conformance.cpp): a scripted
// daemon-side checkpointer, one child session per scenario, the findings of a scenario,
// and what the whole run saw (docs/operations.md §5).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance.hpp"
#include "kclpp/kcl/child_process.hpp"
#include "kclpp/processor/checkpointer.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp::app::detail::conformance {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Failed checkpoint requests for the same position in a row, in one call, that count as
// a loop: the child is killed there.
inline constexpr std::size_t loop_limit = 10;
inline constexpr std::string_view shard_id = "shardId-000000000000";

// --- records ---------------------------------------------------------------------------

// A 56-digit sequence number (as real ones) ending in `n`, increasing with n.
[[nodiscard]] std::string sequence_number(std::uint64_t n);
[[nodiscard]] Record make_record(std::uint64_t n, std::int64_t sub, std::string partition_key, std::string data);
// `size` bytes going through every byte value (NUL, invalid UTF-8, '\n' included).
[[nodiscard]] std::string binary_data(std::size_t size, std::size_t seed);
[[nodiscard]] std::size_t data_bytes(const RecordBatch& batch);
// "...000001004/2" for a position; a sentinel by name.
[[nodiscard]] std::string describe(const ExtendedSequenceNumber& at);
// A checkpoint request as the child sent it: "null", "...000001004/2", "...000001004 (no subSequenceNumber)".
[[nodiscard]] std::string describe_request(const std::optional<std::string>& sequence_number,
                                           std::optional<std::int64_t> sub_sequence_number);
[[nodiscard]] std::string format_ms(milliseconds ms);

// --- the checkpointer ------------------------------------------------------------------

// A daemon's checkpointer that follows a script. Each position is first validated as the
// KCL validates it (docs/kcl-protocol.md §5: within [last checkpoint, largest delivered];
// SHARD_END, or the last record, only inside shardEnded), then answered with the next of
// `errors`, then `always`, then success. Rejections are described in `rejections`.
// Not thread-safe (used inside the ChildProcess call that serves the child).
class ScriptedCheckpointer final : public Checkpointer {
 public:
  explicit ScriptedCheckpointer(ExtendedSequenceNumber last = {});

  // The batch is about to be handed over: its last record is the largest delivered.
  void delivered(const RecordBatch& batch);
  void enter_shard_end() noexcept { shard_end_ = true; }

  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override;

  [[nodiscard]] const ExtendedSequenceNumber& last() const noexcept { return last_; }
  [[nodiscard]] const ExtendedSequenceNumber& largest() const noexcept { return largest_; }
  [[nodiscard]] std::size_t stored() const noexcept { return stored_; }

  std::deque<std::string> errors;  // KCL exception names answered in order
  std::string always;              // then this one (empty: success)
  std::vector<std::string> rejections;

 private:
  [[nodiscard]] ExtendedSequenceNumber resolve(const std::optional<ExtendedSequenceNumber>& at);

  ExtendedSequenceNumber last_;
  ExtendedSequenceNumber largest_;
  bool shard_end_ = false;
  std::size_t stored_ = 0;
};

// --- what a run saw ---------------------------------------------------------------------

// Something the child wrote that is not part of a round trip.
struct Sighting {
  std::string scenario;
  std::string during;
  std::string line;    // cut
  std::string detail;  // the keys of a non-strict message, "unknown action", ...
};

struct Timing {
  std::string scenario;
  std::string call;
  milliseconds reply{0};
  bool timed_out = false;
  bool excused = false;  // a checkpoint error was answered: the child's backoff is expected
};

// The child's stderr lines (through the log, tagged per session), for a failure's report;
// with --verbose, everything the log says also goes to stderr. Thread-safe (a log sink).
class StderrTail {
 public:
  explicit StderrTail(bool verbose) : verbose_(verbose) {}
  void begin(std::string tag);
  void on_log(std::string_view message);
  [[nodiscard]] std::vector<std::string> lines() const;

 private:
  mutable std::mutex mutex_;
  bool verbose_;
  std::string prefix_;
  std::deque<std::string> lines_;  // the last lines of the current session
};

// Shared by the scenarios of one run. Not thread-safe.
struct Run {
  explicit Run(const ConformanceOptions& o) : options(o), stderr_tail(o.verbose) {}
  const ConformanceOptions& options;
  StderrTail stderr_tail;
  std::vector<Sighting> strays;
  std::vector<Sighting> non_strict;
  std::vector<Timing> timings;
  [[nodiscard]] milliseconds exit_grace() const;
};

// --- one scenario ----------------------------------------------------------------------

// What a scenario found: the worst verdict heads its report line.
class Findings {
 public:
  explicit Findings(std::string name) : name_(std::move(name)) {}
  void add(Verdict verdict, std::string text);
  [[nodiscard]] Verdict worst() const noexcept;
  [[nodiscard]] ScenarioReport report(const std::vector<std::string>& stderr_tail) const;

 private:
  std::string name_;
  std::vector<std::pair<Verdict, std::string>> findings_;
};

// A checkpoint request the child sent.
struct CheckpointSeen {
  std::size_t call = 0;  // index of the call during which it came
  std::string during;
  std::optional<std::string> sequence_number;
  std::optional<std::int64_t> sub_sequence_number;
  std::optional<std::string> error;  // the answer
  Clock::time_point at;
};

// Same sequenceNumber and subSequenceNumber, as sent.
[[nodiscard]] bool same_position(const CheckpointSeen& a, const CheckpointSeen& b) noexcept;

struct CallResult {
  bool ok = true;
  bool timed_out = false;
  bool looped = false;    // killed after loop_limit failed checkpoint requests in a row
  std::string failure;    // what went wrong, in the protocol's words (looped: the error answered)
  milliseconds reply{0};  // until the status (or the failure)
  Clock::time_point status_at{};
  Clock::time_point returned_at{};
};

// One child for one scenario, driven through kcl::ChildProcess; records its checkpoint
// requests, what it wrote besides, and how long each reply took. Not thread-safe; not
// movable (the child's observer points at it).
class Session {
 public:
  Session(Run& run, std::string scenario,
          kcl::TerminalMessages terminal = kcl::TerminalMessages::Kcl2);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Each throws ConfigError only when the child cannot be started; other failures come back.
  CallResult initialize(const ExtendedSequenceNumber& at = {});
  CallResult process(const RecordBatch& batch, ScriptedCheckpointer& checkpointer);
  CallResult shutdown_requested(ScriptedCheckpointer& checkpointer);
  CallResult shard_ended(ScriptedCheckpointer& checkpointer);
  CallResult lease_lost();

  // Checkpoint requests of call `call` (the last call by default).
  [[nodiscard]] std::vector<CheckpointSeen> requests(std::optional<std::size_t> call = std::nullopt) const;
  [[nodiscard]] const std::vector<CheckpointSeen>& all_requests() const noexcept { return requests_; }
  [[nodiscard]] std::size_t calls() const noexcept { return calls_; }

  // After a terminal call: how the child left once its stdin closed. Adds a Fail when it
  // had to be signalled, a Warn for a non-zero exit.
  void check_exit(Findings& findings, const CallResult& terminal);
  // A Fail for each checkpoint answered IllegalArgumentException.
  void check_positions(Findings& findings, const ScriptedCheckpointer& checkpointer) const;

  [[nodiscard]] const std::string& scenario() const noexcept { return scenario_; }
  [[nodiscard]] Run& run() noexcept { return run_; }

 private:
  CallResult call(std::string_view name, const std::function<void()>& fn);
  void on_event(const kcl::ChildEvent& event);

  Run& run_;
  std::string scenario_;
  kcl::TerminalMessages terminal_;
  std::string last_error_;  // the last error answered to a checkpoint request
  std::size_t calls_ = 0;
  std::size_t errors_in_a_row_ = 0;
  bool looped_ = false;
  bool excused_ = false;
  std::optional<Clock::time_point> status_at_;
  std::vector<CheckpointSeen> requests_;
  std::unique_ptr<kcl::ChildProcess> child_;
};

// "expected status for ACTION ..., got ...": a call that did not end in its status.
[[nodiscard]] std::string expected_status(std::string_view action, const CallResult& result, const Run& run);

}  // namespace kclpp::app::detail::conformance
