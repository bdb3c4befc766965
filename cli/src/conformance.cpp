// `kclpp conformance`: the scenarios (docs/operations.md §5). Each starts a fresh child,
// drives it as a daemon would, and judges its answers by docs/kcl-protocol.md. What is
// conformant follows the notes and the official libraries: a child may legally never
// checkpoint (INFO, nothing to check), retries ThrottlingException (amazon-kclpy's sample
// and aws-kcl's tests do), never loops on InvalidStateException / ShutdownException, must
// checkpoint at SHARD_END in shardEnded, and must exit on stdin EOF.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <utility>

#include "conformance_session.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail {

std::string_view verdict_name(Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::Pass: return "PASS";
    case Verdict::Info: return "INFO";
    case Verdict::Warn: return "WARN";
    case Verdict::Fail: return "FAIL";
  }
  return "?";
}

bool ConformanceReport::failed() const noexcept {
  return std::any_of(scenarios.begin(), scenarios.end(),
                     [](const ScenarioReport& s) { return s.verdict == Verdict::Fail; });
}

namespace conformance {
namespace {

// Sequence numbers: each scenario uses its own range, records numbered from there.
RecordBatch small_batch(std::uint64_t first, std::size_t n, std::size_t size = 64) {
  RecordBatch b;
  for (std::size_t i = 0; i < n; ++i)
    b.records.push_back(make_record(first + i, 0, "pk-" + std::to_string(first + i), binary_data(size, i)));
  b.millis_behind_latest = 0;
  return b;
}

// The opening of every scenario; false (with a Fail) when the child did not answer.
bool start(Session& s, Findings& f, const ExtendedSequenceNumber& at = {}) {
  const CallResult r = s.initialize(at);
  if (r.ok) return true;
  f.add(Verdict::Fail, expected_status("initialize", r, s.run()));
  return false;
}

bool step(Session& s, Findings& f, std::string_view action, const CallResult& r) {
  if (r.ok) return true;
  f.add(Verdict::Fail, expected_status(action, r, s.run()));
  return false;
}

ScenarioReport finish(Session& s, Findings& f) { return f.report(s.run().stderr_tail.lines()); }

// The requests as sent (and their error answers); the first three and the last of many.
std::string positions(const std::vector<CheckpointSeen>& requests) {
  std::string out;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (i == 3 && requests.size() > 5) {
      out += ", ... (" + std::to_string(requests.size()) + " in all)";
      i = requests.size() - 1;
    }
    const CheckpointSeen& r = requests[i];
    if (!out.empty()) out += ", ";
    out += describe_request(r.sequence_number, r.sub_sequence_number);
    if (r.error) out += " -> " + *r.error;
  }
  return out;
}

// Requests that repeat the position of the failed request just before them.
std::size_t retries(const std::vector<CheckpointSeen>& requests) {
  std::size_t n = 0;
  for (std::size_t i = 1; i < requests.size(); ++i)
    if (requests[i - 1].error && same_position(requests[i - 1], requests[i])) ++n;
  return n;
}

// --- the scenarios ---------------------------------------------------------------------

ScenarioReport initialize_scenario(Run& run) {
  Findings f("initialize");
  Session s(run, "initialize");
  const CallResult r = s.initialize();
  if (!step(s, f, "initialize", r)) return finish(s, f);
  f.add(Verdict::Pass, "status for initialize in " + format_ms(r.reply));
  if (!s.requests().empty())
    f.add(Verdict::Warn, "asked to checkpoint during initialize (" + positions(s.requests()) +
                             "): the daemon has no checkpointer yet and answers InvalidStateException "
                             "(docs/kcl-protocol.md §4.1)");
  return finish(s, f);
}

ScenarioReport large_records_scenario(Run& run) {
  Findings f("large-records");
  Session s(run, "large-records");
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  RecordBatch big;
  big.records.push_back(make_record(1001, 0, "clé-🔑-1", binary_data(1 << 20, 1)));
  big.records.push_back(make_record(1002, 0, "鍵 \"quoted\" \\ 2", "small"));
  big.records.push_back(make_record(1003, 0, "ключ-3-🐟", binary_data((1 << 20) - 256, 3)));
  big.records.push_back(make_record(1004, 0, "𝄞", std::string()));  // empty data, astral-plane key
  big.millis_behind_latest = 1234;
  RecordBatch many;
  for (std::uint64_t i = 0; i < 100; ++i)
    many.records.push_back(make_record(1005 + i, 0, "ünïcødé-" + std::to_string(i) + "-日本", binary_data(200, i)));
  const CallResult a = s.process(big, cp);
  if (!step(s, f, "processRecords", a)) return finish(s, f);
  const auto first = s.requests();
  const CallResult b = s.process(many, cp);
  if (!step(s, f, "processRecords", b)) return finish(s, f);
  const auto second = s.requests();
  f.add(Verdict::Pass, "2 batches answered: 4 records (" + std::to_string(data_bytes(big) >> 10) +
                           " KiB, two of 1 MiB, non-ASCII and quoted keys) in " + format_ms(a.reply) +
                           ", 100 records with non-ASCII keys in " + format_ms(b.reply));
  if (first.empty() && second.empty())
    f.add(Verdict::Pass, "no checkpoint requests (legal): positions not checked");
  else
    f.add(Verdict::Pass, "checkpoints: [" + positions(first) + "], [" + positions(second) + "]");
  s.check_positions(f, cp);
  return finish(s, f);
}

ScenarioReport kpl_scenario(Run& run) {
  Findings f("kpl-subsequence");
  Session s(run, "kpl-subsequence");
  // A restart inside an aggregate: the checkpoint was sub-record 2 of record 2001.
  if (!start(s, f, ExtendedSequenceNumber(SequenceNumber(sequence_number(2001)), 2))) return finish(s, f);
  RecordBatch batch;
  for (std::int64_t sub = 3; sub <= 5; ++sub)
    batch.records.push_back(make_record(2001, sub, "kpl-a-" + std::to_string(sub), "user record a" + std::to_string(sub)));
  for (std::int64_t sub = 0; sub <= 3; ++sub)
    batch.records.push_back(make_record(2002, sub, "kpl-b-" + std::to_string(sub), "user record b" + std::to_string(sub)));
  ScriptedCheckpointer cp(ExtendedSequenceNumber(SequenceNumber(sequence_number(2001)), 2));
  const CallResult r = s.process(batch, cp);
  if (!step(s, f, "processRecords", r)) return finish(s, f);
  const auto requests = s.requests();
  if (requests.empty()) {
    f.add(Verdict::Info, "no checkpoint request during processRecords: sub-sequence handling not checked "
                         "(initialize at .../2 and 7 sub-records answered)");
    return finish(s, f);
  }
  f.add(Verdict::Pass, "checkpoints: " + positions(requests));
  for (const CheckpointSeen& q : requests) {
    if (!q.sequence_number || q.sub_sequence_number) continue;
    if (*q.sequence_number != sequence_number(2002)) continue;  // 2001 without sub fails below
    f.add(Verdict::Warn, "checkpointed at " + describe_request(q.sequence_number, q.sub_sequence_number) +
                             ": the daemon stores sub-record 0, so sub-records 1-3 of that aggregate are "
                             "processed again after a restart; send subSequenceNumber (docs/kcl-protocol.md §5)");
  }
  s.check_positions(f, cp);
  return finish(s, f);
}

// ThrottlingException twice, then success: the child should retry until it is stored.
ScenarioReport throttled_scenario(Run& run) {
  Findings f("checkpoint-throttled");
  Session s(run, "checkpoint-throttled");
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  cp.errors = {"ThrottlingException", "ThrottlingException"};
  const CallResult r = s.process(small_batch(3001, 10), cp);
  const auto requests = s.requests();
  if (!step(s, f, "processRecords", r)) return finish(s, f);
  if (requests.empty()) {
    f.add(Verdict::Info, "no checkpoint request during processRecords: retries not checked");
    return finish(s, f);
  }
  // The first request and its retries (the same position), up to the first success.
  std::size_t tries = 1;
  std::string gaps;
  while (tries < requests.size() && requests[tries - 1].error && same_position(requests[tries - 1], requests[tries])) {
    gaps += (tries > 1 ? ", " : "") +
            format_ms(std::chrono::duration_cast<milliseconds>(requests[tries].at - requests[tries - 1].at));
    ++tries;
  }
  const bool stored = tries <= requests.size() && !requests[tries - 1].error;
  if (tries == 1) {
    f.add(Verdict::Fail, "expected a retry of " + positions({requests.front()}) +
                             " (ThrottlingException is retryable, docs/kcl-protocol.md §5), got " +
                             (requests.size() == 1 ? std::string("none") : "another position next") +
                             ": that checkpoint was dropped");
  } else if (!stored) {
    f.add(Verdict::Warn, "gave up after " + std::to_string(tries) + " ThrottlingExceptions (retries " + gaps +
                             " apart): that checkpoint was not stored");
  } else {
    f.add(Verdict::Pass, "retried after 2 ThrottlingExceptions (" + gaps + " apart) until stored, then answered "
                         "processRecords in " + format_ms(r.reply));
  }
  s.check_positions(f, cp);
  return finish(s, f);
}

// A checkpoint error that retrying cannot fix: one attempt, then the status.
ScenarioReport non_retryable_scenario(Run& run, const std::string& name, const std::string& error) {
  Findings f(name);
  Session s(run, name);
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  cp.always = error;
  const CallResult r = s.process(small_batch(4001, 10), cp);
  const auto requests = s.requests();
  if (!step(s, f, "processRecords", r)) return finish(s, f);
  if (requests.empty()) {
    f.add(Verdict::Info, "no checkpoint request during processRecords: the " + error + " answer not checked");
  } else if (retries(requests) == 0) {
    f.add(Verdict::Pass, "did not retry after " + error + " (" + positions(requests) +
                             ") and answered processRecords in " + format_ms(r.reply));
  } else {
    f.add(Verdict::Warn, "retried " + std::to_string(retries(requests)) + " times after " + error +
                             ", which is not retryable (docs/kcl-protocol.md §5), then answered processRecords in " +
                             format_ms(r.reply));
  }
  return finish(s, f);
}

ScenarioReport shard_end_scenario(Run& run) {
  Findings f("shard-end");
  Session s(run, "shard-end");
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  if (!step(s, f, "processRecords", s.process(small_batch(5001, 5), cp))) return finish(s, f);
  const CallResult r = s.shard_ended(cp);
  const auto requests = s.requests();
  if (!step(s, f, "shardEnded", r)) return finish(s, f);
  if (cp.last().sentinel() == Sentinel::ShardEnd) {
    f.add(Verdict::Pass, "checkpointed at SHARD_END (" + positions(requests) + ") and answered shardEnded in " +
                             format_ms(r.reply));
  } else if (requests.empty()) {
    f.add(Verdict::Fail, "expected a checkpoint at SHARD_END (null, or the last record) before status for "
                         "shardEnded, got none: the shard never completes and its child shards never start "
                         "(docs/kcl-protocol.md §4.1)");
  } else {
    f.add(Verdict::Fail, "expected a checkpoint at SHARD_END (null, or the last record), got " + positions(requests) +
                             ": the shard never completes (docs/kcl-protocol.md §4.1)");
  }
  s.check_positions(f, cp);
  s.check_exit(f, r);
  return finish(s, f);
}

ScenarioReport lease_lost_scenario(Run& run) {
  Findings f("lease-lost");
  Session s(run, "lease-lost");
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  if (!step(s, f, "processRecords", s.process(small_batch(6001, 5), cp))) return finish(s, f);
  const CallResult r = s.lease_lost();
  const auto requests = s.requests();
  if (!step(s, f, "leaseLost", r)) return finish(s, f);
  f.add(Verdict::Pass, "answered leaseLost in " + format_ms(r.reply));
  if (!requests.empty())
    f.add(Verdict::Warn, "asked to checkpoint after leaseLost (" + positions(requests) +
                             "): the lease belongs to another worker and the daemon has no checkpointer "
                             "(docs/kcl-protocol.md §4.1)");
  s.check_positions(f, cp);
  s.check_exit(f, r);
  return finish(s, f);
}

ScenarioReport shutdown_requested_scenario(Run& run) {
  Findings f("shutdown-requested");
  Session s(run, "shutdown-requested");
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  if (!step(s, f, "processRecords", s.process(small_batch(7001, 5), cp))) return finish(s, f);
  const std::size_t stored_before = cp.stored();
  const CallResult r = s.shutdown_requested(cp);
  const auto requests = s.requests();
  if (!step(s, f, "shutdownRequested", r)) return finish(s, f);
  if (cp.stored() > stored_before)
    f.add(Verdict::Pass, "checkpointed (" + positions(requests) + ") and answered shutdownRequested in " +
                             format_ms(r.reply));
  else
    f.add(Verdict::Pass, "answered shutdownRequested in " + format_ms(r.reply) +
                             " without a checkpoint (legal: the next owner processes again what came after "
                             "the last one)");
  const CallResult lost = s.lease_lost();
  if (!lost.ok) {
    f.add(Verdict::Fail, "expected the child to stay up after shutdownRequested (not terminal: leaseLost "
                         "follows, docs/kcl-protocol.md §4.1), " + expected_status("leaseLost", lost, run));
    return finish(s, f);
  }
  s.check_positions(f, cp);
  s.check_exit(f, lost);
  return finish(s, f);
}

// KCL 1.x: `shutdown` with reason TERMINATE (checkpoint at SHARD_END), then ZOMBIE (no
// checkpoint: the 1.x checkpointer answers ShutdownException). A child that does not
// answer the message at all (ignores it, crashes) only fails under a 1.x daemon: WARN; one
// that answers it must do it right.
ScenarioReport kcl1_scenario(Run& run) {
  Findings f("kcl1-shutdown");
  {
    Session s(run, "kcl1-shutdown", kcl::TerminalMessages::Kcl1Shutdown);
    if (!start(s, f)) return finish(s, f);
    ScriptedCheckpointer cp;
    if (!step(s, f, "processRecords", s.process(small_batch(8001, 3), cp))) return finish(s, f);
    const CallResult r = s.shard_ended(cp);
    const auto requests = s.requests();
    if (!r.ok) {
      // Only a KCL 1.x daemon sends it: a child for 2.x and 3.x may not know it.
      f.add(Verdict::Warn, "does not answer the KCL 1.x {\"action\":\"shutdown\",\"reason\":\"TERMINATE\"}: " +
                               expected_status("shutdown", r, run) +
                               "; this child runs under KCL 2.x and 3.x daemons only (docs/kcl-protocol.md §8)");
      // Context lines, not findings: Pass leaves the verdict and prints them bare.
      for (const std::string& l : run.stderr_tail.lines()) f.add(Verdict::Pass, "child stderr: " + l);
      return finish(s, f);
    }
    if (cp.last().sentinel() == Sentinel::ShardEnd)
      f.add(Verdict::Pass, "TERMINATE: checkpointed at SHARD_END and answered in " + format_ms(r.reply));
    else
      f.add(Verdict::Fail, "TERMINATE: expected a checkpoint at SHARD_END before status for shutdown, got " +
                               (requests.empty() ? std::string("none") : positions(requests)) +
                               " (docs/kcl-protocol.md §8)");
    s.check_exit(f, r);
  }
  Session s(run, "kcl1-shutdown", kcl::TerminalMessages::Kcl1Shutdown);
  if (!start(s, f)) return finish(s, f);
  ScriptedCheckpointer cp;
  if (!step(s, f, "processRecords", s.process(small_batch(8101, 3), cp))) return finish(s, f);
  const CallResult r = s.lease_lost();
  const auto requests = s.requests();
  if (!step(s, f, "shutdown (ZOMBIE)", r)) return finish(s, f);
  f.add(Verdict::Pass, "ZOMBIE: answered in " + format_ms(r.reply));
  if (!requests.empty())
    f.add(Verdict::Warn, "ZOMBIE: asked to checkpoint (" + positions(requests) +
                             "): the lease is gone, a 1.x daemon answers ShutdownException (docs/kcl-protocol.md §8)");
  s.check_exit(f, r);
  return finish(s, f);
}

ScenarioReport throughput_scenario(Run& run) {
  Findings f("throughput");
  Session s(run, "throughput");
  if (!start(s, f)) return finish(s, f);
  const ConformanceOptions& o = run.options;
  ScriptedCheckpointer cp;
  std::size_t sent = 0;
  std::size_t bytes = 0;
  auto elapsed = Clock::duration::zero();
  for (std::uint64_t next = 100'000; sent < o.throughput_records;) {
    const std::size_t n = std::min(o.throughput_batch, o.throughput_records - sent);
    const RecordBatch batch = small_batch(next, n, o.record_size);
    const auto t0 = Clock::now();
    const CallResult r = s.process(batch, cp);
    elapsed += Clock::now() - t0;
    if (!step(s, f, "processRecords", r)) return finish(s, f);
    sent += n;
    bytes += data_bytes(batch);
    next += n;
  }
  const double seconds = std::max(std::chrono::duration<double>(elapsed).count(), 1e-6);
  char text[256];
  std::snprintf(text, sizeof text,
                "%zu records (%.1f MB of data) in %.2f s: %.0f records/s, %.1f MB/s through processRecords "
                "(batches of %zu records of %zu bytes; %zu checkpoints)",
                sent, static_cast<double>(bytes) / 1e6, seconds, static_cast<double>(sent) / seconds,
                static_cast<double>(bytes) / 1e6 / seconds, o.throughput_batch, o.record_size, cp.stored());
  f.add(Verdict::Pass, text);
  s.check_positions(f, cp);
  return finish(s, f);
}

// --- the checks over the whole run -------------------------------------------------------

ScenarioReport stray_stdout_check(const Run& run) {
  Findings f("stray-stdout");
  if (run.strays.empty()) {
    f.add(Verdict::Pass, "nothing but protocol messages on stdout");
    return f.report({});
  }
  std::vector<const Sighting*> plain;
  for (const Sighting& s : run.strays) {
    // Text printed without a newline glues itself to the next message (docs/kcl-protocol.md §1).
    const auto brace = s.line.find("{\"action\"");
    if (brace != std::string::npos && brace > 0)
      f.add(Verdict::Fail, "a protocol message glued to stray text on stdout (" + s.scenario + ", during " +
                               s.during + "): '" + s.line + "'; the Java daemon drops the line and the shard hangs");
    else
      plain.push_back(&s);
  }
  if (plain.empty()) return f.report({});
  const Sighting& first = *plain.front();
  f.add(Verdict::Warn, std::to_string(plain.size()) + " stdout line(s) that are not protocol messages; first (" +
                           first.scenario + ", during " + first.during + (first.detail.empty() ? "" : ", " + first.detail) +
                           "): '" + first.line + "'. The daemons log and skip them (docs/kcl-protocol.md §1), but "
                           "text printed without a newline glues itself to the next message, which is then lost: "
                           "log to stderr");
  return f.report({});
}

ScenarioReport strict_messages_check(const Run& run) {
  Findings f("strict-messages");
  if (run.non_strict.empty()) {
    f.add(Verdict::Pass, "every status and checkpoint request has exactly the keys of docs/kcl-protocol.md §3");
    return f.report({});
  }
  for (const Sighting& s : run.non_strict)
    f.add(Verdict::Fail, "message with " + s.detail + " (" + s.scenario + ", during " + s.during + "): '" + s.line +
                             "'; the Java daemon's strict reader skips it and waits forever (docs/kcl-protocol.md §1)");
  return f.report({});
}

ScenarioReport reply_time_check(const Run& run) {
  Findings f("reply-time");
  std::vector<milliseconds> replies;
  const Timing* slowest = nullptr;
  std::vector<std::string> slow;
  for (const Timing& t : run.timings) {
    // No reply at all is its scenario's verdict; a checkpoint error's backoff is expected.
    if (t.timed_out || t.excused) continue;
    replies.push_back(t.reply);
    if (slowest == nullptr || t.reply > slowest->reply) slowest = &t;
    if (t.reply > run.options.slow) slow.push_back(t.call + " (" + t.scenario + ") in " + format_ms(t.reply));
  }
  if (!slow.empty()) {
    std::string list;
    for (std::size_t i = 0; i < slow.size() && i < 4; ++i) list += (i > 0 ? ", " : "") + slow[i];
    if (slow.size() > 4) list += ", ...";
    f.add(Verdict::Warn, std::to_string(slow.size()) + " replies slower than --slow-ms " + format_ms(run.options.slow) +
                             ": " + list + " (a daemon with timeoutInSeconds near that would halt)");
  }
  if (slowest != nullptr) {
    std::sort(replies.begin(), replies.end());
    f.add(Verdict::Pass, std::to_string(replies.size()) + " replies: median " + format_ms(replies[replies.size() / 2]) +
                             ", slowest " + format_ms(slowest->reply) + " (" + slowest->call + ", " +
                             slowest->scenario + "); calls answered a checkpoint error, or without a reply, are left out");
  }
  return f.report({});
}

using Scenario = std::function<ScenarioReport(Run&)>;

const std::vector<std::pair<std::string_view, Scenario>>& scenario_table() {
  static const std::vector<std::pair<std::string_view, Scenario>> table{
      {"initialize", initialize_scenario},
      {"large-records", large_records_scenario},
      {"kpl-subsequence", kpl_scenario},
      {"checkpoint-throttled", throttled_scenario},
      {"checkpoint-invalid-state",
       [](Run& r) { return non_retryable_scenario(r, "checkpoint-invalid-state", "InvalidStateException"); }},
      {"checkpoint-shutdown",
       [](Run& r) { return non_retryable_scenario(r, "checkpoint-shutdown", "ShutdownException"); }},
      {"shard-end", shard_end_scenario},
      {"lease-lost", lease_lost_scenario},
      {"shutdown-requested", shutdown_requested_scenario},
      {"kcl1-shutdown", kcl1_scenario},
      {"throughput", throughput_scenario},
  };
  return table;
}

// Installs the run's log sink (the child's stderr is kept for the report) and restores the
// stderr sink on the way out.
class SinkGuard {
 public:
  explicit SinkGuard(StderrTail& tail) {
    set_log_level(LogLevel::Info);
    set_log_sink([&tail](LogLevel, std::string_view message) { tail.on_log(message); });
  }
  ~SinkGuard() { set_log_sink({}); }
  SinkGuard(const SinkGuard&) = delete;
  SinkGuard& operator=(const SinkGuard&) = delete;
};

}  // namespace
}  // namespace conformance

const std::vector<std::string_view>& conformance_scenarios() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const auto& entry : conformance::scenario_table()) out.push_back(entry.first);
    return out;
  }();
  return names;
}

ConformanceReport run_conformance(const ConformanceOptions& options) {
  for (const std::string& name : options.scenarios) {
    const auto& all = conformance_scenarios();
    if (std::find(all.begin(), all.end(), name) == all.end())
      throw ConfigError("unknown scenario '" + name + "' (see --help for the list)");
  }
  conformance::Run run(options);
  const conformance::SinkGuard sink(run.stderr_tail);
  ConformanceReport report;
  bool initialized = true;
  for (const auto& [name, scenario] : conformance::scenario_table()) {
    if (!options.scenarios.empty() &&
        std::find(options.scenarios.begin(), options.scenarios.end(), name) == options.scenarios.end())
      continue;
    if (!initialized) {
      // Every scenario starts with initialize: the same failure again says nothing new.
      report.scenarios.push_back({std::string(name), Verdict::Info, "not run: initialize failed", {}});
      continue;
    }
    report.scenarios.push_back(scenario(run));
    if (name == "initialize" && report.scenarios.back().verdict == Verdict::Fail) initialized = false;
  }
  report.scenarios.push_back(conformance::stray_stdout_check(run));
  report.scenarios.push_back(conformance::strict_messages_check(run));
  report.scenarios.push_back(conformance::reply_time_check(run));
  return report;
}

std::string format_report(const ConformanceReport& report, const ConformanceOptions& options) {
  std::string out = "kclpp conformance: " + options.command + "\n";
  std::map<Verdict, std::size_t> counts;
  for (const ScenarioReport& s : report.scenarios) {
    ++counts[s.verdict];
    std::string name = s.name;
    name.resize(std::max<std::size_t>(name.size(), 25), ' ');
    out += std::string(verdict_name(s.verdict)) + "  " + name + " " + s.summary + "\n";
    for (const std::string& note : s.notes) out += std::string(6, ' ') + "- " + note + "\n";
  }
  out += "result: " + std::to_string(counts[Verdict::Pass]) + " passed, " + std::to_string(counts[Verdict::Info]) +
         " info, " + std::to_string(counts[Verdict::Warn]) + " warnings, " + std::to_string(counts[Verdict::Fail]) +
         " failed\n";
  return out;
}

}  // namespace kclpp::app::detail
