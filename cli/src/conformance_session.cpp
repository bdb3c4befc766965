// The building blocks of `kclpp conformance` (conformance_session.hpp).
#include "conformance_session.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail::conformance {

// --- records ---------------------------------------------------------------------------

std::string sequence_number(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out = "49590338271490256608559692538361571095921575989";  // 47 digits
  if (digits.size() < 9) out.append(9 - digits.size(), '0');
  return out + digits;
}

Record make_record(std::uint64_t n, std::int64_t sub, std::string partition_key, std::string data) {
  Record r;
  r.data = std::move(data);
  r.partition_key = std::move(partition_key);
  r.sequence_number = SequenceNumber(sequence_number(n));
  r.sub_sequence_number = sub;
  r.approximate_arrival_timestamp =
      std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
  return r;
}

std::string binary_data(std::size_t size, std::size_t seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + seed * 7) & 0xFF);
  return out;
}

std::size_t data_bytes(const RecordBatch& batch) {
  std::size_t n = 0;
  for (const Record& r : batch.records) n += r.data.size();
  return n;
}

namespace {
std::string short_sequence(std::string_view s) {
  if (s.size() <= 12) return std::string(s);
  return "..." + std::string(s.substr(s.size() - 9));
}
}  // namespace

std::string describe(const ExtendedSequenceNumber& at) {
  if (at.is_sentinel()) return at.str();
  return short_sequence(at.sequence_number().str()) + "/" + std::to_string(at.sub_sequence_number());
}

std::string describe_request(const std::optional<std::string>& sequence_number,
                             std::optional<std::int64_t> sub_sequence_number) {
  if (!sequence_number) return "null";
  std::string out = "'" + short_sequence(*sequence_number) + "'";
  if (sub_sequence_number) return out + "/" + std::to_string(*sub_sequence_number);
  return out + " (no subSequenceNumber)";
}

bool same_position(const CheckpointSeen& a, const CheckpointSeen& b) noexcept {
  return a.sequence_number == b.sequence_number && a.sub_sequence_number == b.sub_sequence_number;
}

std::string format_ms(milliseconds ms) {
  if (ms < milliseconds{10'000}) return std::to_string(ms.count()) + " ms";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

// --- the checkpointer ------------------------------------------------------------------

ScriptedCheckpointer::ScriptedCheckpointer(ExtendedSequenceNumber last)
    : last_(std::move(last)), largest_(last_) {}

void ScriptedCheckpointer::delivered(const RecordBatch& batch) {
  if (!batch.records.empty()) largest_ = batch.records.back().position();
}

ExtendedSequenceNumber ScriptedCheckpointer::resolve(const std::optional<ExtendedSequenceNumber>& at) {
  auto reject = [&](const std::string& why) -> ExtendedSequenceNumber {
    rejections.push_back("checkpoint at " + (at ? describe(*at) : std::string("null")) + ": " + why);
    throw CheckpointError("kclpp conformance: " + why, "IllegalArgumentException");
  };
  if (!at) return shard_end_ ? ExtendedSequenceNumber(Sentinel::ShardEnd) : largest_;
  if (at->is_sentinel()) {
    if (at->sentinel() == Sentinel::ShardEnd && shard_end_) return *at;
    return reject("SHARD_END outside shardEnded (docs/kcl-protocol.md §5)");
  }
  if (!last_.is_sentinel() && compare_positions(*at, last_) < 0)
    return reject("before the last checkpoint " + describe(last_) + " (docs/kcl-protocol.md §5)");
  if (largest_.is_sentinel() || compare_positions(*at, largest_) > 0)
    return reject("beyond the largest record delivered (" + describe(largest_) + ", docs/kcl-protocol.md §5)");
  // The KCL stores the last record of a finished shard as SHARD_END.
  if (shard_end_ && *at == largest_) return ExtendedSequenceNumber(Sentinel::ShardEnd);
  return *at;
}

void ScriptedCheckpointer::checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) {
  ExtendedSequenceNumber target = resolve(at);
  std::string error = always;
  if (!errors.empty()) {
    error = errors.front();
    errors.pop_front();
  }
  if (!error.empty()) throw_kcl_error(error, "scripted by kclpp conformance");
  last_ = std::move(target);
  ++stored_;
}

// --- what a run saw ---------------------------------------------------------------------

void StderrTail::begin(std::string tag) {
  const std::lock_guard<std::mutex> lock(mutex_);
  prefix_ = "[" + tag + "] ";
  lines_.clear();
}

void StderrTail::on_log(std::string_view message) {
  constexpr std::size_t keep = 30;
  constexpr std::size_t width = 300;
  const std::lock_guard<std::mutex> lock(mutex_);
  if (verbose_) std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
  // The child's own lines are the records that carry its pid (docs/operations.md §3); the
  // subprocess puts the log tag in front of their text.
  const auto fields = log_fields();
  const bool from_child = std::any_of(fields.begin(), fields.end(), [](const LogField& f) { return f.key == "child_pid"; });
  if (prefix_.empty() || !from_child) return;
  if (message.substr(0, prefix_.size()) == prefix_) message.remove_prefix(prefix_.size());
  std::string line(message.substr(0, width));
  // The report is text: a child that logs binary data must not put control bytes in it.
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  if (message.size() > width) line += "...";
  lines_.push_back(std::move(line));
  if (lines_.size() > keep) lines_.pop_front();
}

std::vector<std::string> StderrTail::lines() const {
  // What went wrong is usually one line inside a stack trace ("TypeError: ...", Python's
  // last line): the lines that say error, then the last two.
  constexpr std::size_t salient_max = 4;
  constexpr std::size_t last = 2;
  const std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  const std::size_t tail_from = lines_.size() > last ? lines_.size() - last : 0;
  for (std::size_t i = 0; i < tail_from && out.size() < salient_max; ++i) {
    const std::string& l = lines_[i];
    for (const char* word : {"Error", "error:", "Exception", "Traceback", "panic", "fatal", "FATAL"})
      if (l.find(word) != std::string::npos) {
        out.push_back(l);
        break;
      }
  }
  for (std::size_t i = tail_from; i < lines_.size(); ++i)
    if (!lines_[i].empty()) out.push_back(lines_[i]);
  return out;
}

milliseconds Run::exit_grace() const {
  // The Java daemon waits for the child without limit; a few seconds tell a child that
  // exits on stdin EOF from one that does not, without making every run that long.
  return std::min(options.timeout, milliseconds{3'000});
}

// --- findings ---------------------------------------------------------------------------

void Findings::add(Verdict verdict, std::string text) { findings_.emplace_back(verdict, std::move(text)); }

Verdict Findings::worst() const noexcept {
  Verdict v = Verdict::Pass;
  for (const auto& f : findings_) v = std::max(v, f.first);
  return v;
}

ScenarioReport Findings::report(const std::vector<std::string>& stderr_tail) const {
  ScenarioReport r;
  r.name = name_;
  r.verdict = worst();
  bool headed = false;
  for (const auto& [verdict, text] : findings_) {
    if (!headed && verdict == r.verdict) {
      r.summary = text;
      headed = true;
      continue;
    }
    r.notes.push_back(verdict == Verdict::Pass ? text : std::string(verdict_name(verdict)) + ": " + text);
  }
  if (r.verdict == Verdict::Fail)
    for (const std::string& l : stderr_tail) r.notes.push_back("child stderr: " + l);
  return r;
}

// --- one scenario ----------------------------------------------------------------------

Session::Session(Run& run, std::string scenario, kcl::TerminalMessages terminal)
    : run_(run), scenario_(std::move(scenario)), terminal_(terminal) {
  kcl::ChildProcessOptions o;
  o.command = run.options.command;
  o.reply_timeout = run.options.timeout;
  o.exit_grace = run.exit_grace();
  o.log_tag = "conformance " + scenario_;
  o.terminal_messages = terminal;
  o.observer = [this](const kcl::ChildEvent& e) { on_event(e); };
  run_.stderr_tail.begin(o.log_tag);
  child_ = std::make_unique<kcl::ChildProcess>(std::move(o));
}

Session::~Session() = default;  // ChildProcess reaps the child

void Session::on_event(const kcl::ChildEvent& e) {
  const auto cut = [](std::string_view line) {
    return line.size() > 200 ? std::string(line.substr(0, 200)) + "..." : std::string(line);
  };
  switch (e.kind) {
    case kcl::ChildEvent::Kind::Status:
      status_at_ = Clock::now();
      return;
    case kcl::ChildEvent::Kind::StrayLine:
    case kcl::ChildEvent::Kind::IgnoredMessage:
      run_.strays.push_back({scenario_, std::string(e.during), cut(e.line), std::string(e.detail)});
      return;
    case kcl::ChildEvent::Kind::NonStrictMessage:
      run_.non_strict.push_back({scenario_, std::string(e.during), cut(e.line), std::string(e.detail)});
      return;
    case kcl::ChildEvent::Kind::CheckpointRequest:
      break;
  }
  CheckpointSeen seen{calls_, std::string(e.during), std::nullopt, e.sub_sequence_number, std::nullopt, Clock::now()};
  if (e.sequence_number) seen.sequence_number = std::string(*e.sequence_number);
  if (e.error) {
    seen.error = std::string(*e.error);
    last_error_ = *seen.error;
    excused_ = true;
  }
  // A child that keeps asking for the same position after errors never goes quiet, so the
  // reply timeout cannot stop it. Successful requests, or a new position after an error
  // (a per-record checkpointer moving on), are progress, whatever their number.
  const bool repeat = !requests_.empty() && requests_.back().call == calls_ && requests_.back().error &&
                      same_position(requests_.back(), seen);
  const bool failed = seen.error.has_value();
  requests_.push_back(std::move(seen));
  errors_in_a_row_ = failed ? (repeat ? errors_in_a_row_ + 1 : 1) : 0;
  if (errors_in_a_row_ >= loop_limit && !looped_) {
    looped_ = true;
    if (const auto pid = child_->pid()) ::kill(*pid, SIGKILL);
  }
}

CallResult Session::call(std::string_view name, const std::function<void()>& fn) {
  ++calls_;
  errors_in_a_row_ = 0;
  looped_ = false;
  excused_ = false;
  status_at_.reset();
  CallResult r;
  const Clock::time_point start = Clock::now();
  try {
    fn();
  } catch (const ConfigError&) {
    throw;  // the child cannot be started: not a verdict
  } catch (const Error& e) {
    r.ok = false;
    r.failure = e.what();
    // ChildProcess's words for an expired reply_timeout.
    r.timed_out = r.failure.find("no reply from child within") != std::string::npos;
  }
  r.returned_at = Clock::now();
  r.looped = looped_;
  if (looped_) r.failure = last_error_;
  r.status_at = status_at_.value_or(r.returned_at);
  r.reply = std::chrono::duration_cast<milliseconds>(r.status_at - start);
  run_.timings.push_back({scenario_, std::string(name), r.reply, r.timed_out, excused_});
  return r;
}

CallResult Session::initialize(const ExtendedSequenceNumber& at) {
  return call("initialize", [&] { child_->initialize(std::string(shard_id), at); });
}

CallResult Session::process(const RecordBatch& batch, ScriptedCheckpointer& checkpointer) {
  checkpointer.delivered(batch);
  return call("processRecords", [&] { child_->process_records(batch, checkpointer); });
}

CallResult Session::shutdown_requested(ScriptedCheckpointer& checkpointer) {
  return call("shutdownRequested", [&] { child_->shutdown_requested(checkpointer); });
}

CallResult Session::shard_ended(ScriptedCheckpointer& checkpointer) {
  checkpointer.enter_shard_end();
  return call(terminal_ == kcl::TerminalMessages::Kcl2 ? "shardEnded" : "shutdown TERMINATE",
              [&] { child_->shard_ended(checkpointer); });
}

CallResult Session::lease_lost() {
  return call(terminal_ == kcl::TerminalMessages::Kcl2 ? "leaseLost" : "shutdown ZOMBIE",
              [&] { child_->lease_lost(); });
}

std::vector<CheckpointSeen> Session::requests(std::optional<std::size_t> which) const {
  const std::size_t index = which.value_or(calls_);
  std::vector<CheckpointSeen> out;
  for (const CheckpointSeen& s : requests_)
    if (s.call == index) out.push_back(s);
  return out;
}

void Session::check_exit(Findings& findings, const CallResult& terminal) {
  const std::optional<int> status = child_->close();
  if (!terminal.ok || !status) return;
  const auto took = std::chrono::duration_cast<milliseconds>(terminal.returned_at - terminal.status_at);
  if (took >= run_.exit_grace()) {
    findings.add(Verdict::Fail,
                 "expected the child to exit when its stdin closed after its last status, got no exit within " +
                     format_ms(run_.exit_grace()) + " (then signalled); the Java daemon waits for it without "
                     "limit, so the shard never finishes shutting down (docs/kcl-protocol.md §4.1)");
    return;
  }
  if (WIFSIGNALED(*status)) {
    findings.add(Verdict::Warn, "died of signal " + std::to_string(WTERMSIG(*status)) +
                                    " after its stdin closed (the daemon only logs it)");
    return;
  }
  if (WEXITSTATUS(*status) != 0) {
    findings.add(Verdict::Warn, "exited with code " + std::to_string(WEXITSTATUS(*status)) +
                                    " after its stdin closed (the daemon only logs it)");
    return;
  }
  findings.add(Verdict::Pass, "exited with code 0 " + format_ms(took) + " after its stdin closed");
}

void Session::check_positions(Findings& findings, const ScriptedCheckpointer& checkpointer) const {
  for (const std::string& why : checkpointer.rejections)
    findings.add(Verdict::Fail, why + ": the daemon answers IllegalArgumentException");
}

std::string expected_status(std::string_view action, const CallResult& result, const Run& run) {
  const std::string expected = "expected status for " + std::string(action);
  if (result.looped)
    return expected + ", got " + std::to_string(loop_limit) +
           " checkpoint requests for the same position in a row, each answered " + result.failure +
           ", without it: a loop (stopped by killing the child)";
  if (result.timed_out)
    return expected + " within " + format_ms(run.options.timeout) +
           " (--timeout-ms), got no reply; a daemon with timeoutInSeconds halts here (docs/kcl-protocol.md §4.2)";
  return expected + ", got: " + result.failure;
}

}  // namespace kclpp::app::detail::conformance
