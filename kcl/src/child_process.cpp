// kcl::ChildProcess: the daemon side of the MultiLangDaemon protocol (docs/kcl-protocol.md §1, §3, §4, §5).
//
// One child process per shard. The process itself (spawn, pipes, stderr forwarding, exit
// and reaping) is a detail::Subprocess (subprocess.hpp); this file holds the conversation:
// send an action, serve the child's checkpoint requests, wait for its status, and turn
// what went wrong into the public errors. No threads.

#include "kclpp/kcl/child_process.hpp"

#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "subprocess.hpp"

namespace kclpp::kcl {

std::vector<std::string> split_command(const std::string& command) {
  // Java: executableName.split(" +"). Only spaces separate (a tab stays in its word); we
  // also drop the empty word a leading space would give, which cannot name a program.
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < command.size()) {
    while (i < command.size() && command[i] == ' ') ++i;
    if (i == command.size()) break;
    const std::size_t start = i;
    while (i < command.size() && command[i] != ' ') ++i;
    words.emplace_back(command, start, i - start);
  }
  return words;
}

namespace {

using detail::Action;
using detail::Clock;
using detail::IoError;
using detail::Reap;

enum class ErrorKind { Protocol, Transport };

// Why a call failed; fail() turns it into the public error.
struct Failure {
  ErrorKind kind;
  std::string what;
  Reap reap;
};

// What the buffered child lines amounted to while waiting for a status.
enum class Lines { NeedMore, StatusArrived, WrongStatus };

bool blank(std::string_view line) noexcept {
  return line.find_first_not_of(" \t\r\f\v") == std::string_view::npos;
}

Failure io_failure(const IoError& e, std::string_view action_name) {
  switch (e.kind) {
    case IoError::Kind::StdinClosed:
      return {ErrorKind::Transport,
              "child closed its stdin (EPIPE) while sending " + std::string(action_name), Reap::Graceful};
    case IoError::Kind::WriteFailed:
      return {ErrorKind::Transport,
              "write to child failed while sending " + std::string(action_name) + ": " +
                  std::strerror(e.error),
              Reap::Kill};
    case IoError::Kind::PollFailed:
      break;
  }
  return {ErrorKind::Transport, std::string("poll failed: ") + std::strerror(e.error), Reap::Kill};
}

// The error name sent to the child. A kclpp::Error that carries a KCL name sends it; one
// that does not (a store or transport failure of the native checkpointer) is a failed
// dependency when retryable (as the KCL's DynamoDBCheckpointer maps DependencyException)
// and InvalidStateException (never retried by the child) otherwise.
std::string kcl_name_for(const Error& e) {
  if (!e.kcl_name().empty()) return e.kcl_name();
  if (e.retry() != Retry::No) return "KinesisClientLibDependencyException";
  return "InvalidStateException";
}

// The position a checkpoint request names: `at` nullopt for "the largest delivered";
// not `valid` for a number the child must not send (IllegalArgumentException).
struct RequestedPosition {
  bool valid = true;
  std::optional<ExtendedSequenceNumber> at;
};

RequestedPosition requested_position(const detail::Message& message) {
  if (!message.sequence_number) return {};
  try {
    // seq without sub means sub 0 (docs/kcl-protocol.md §5), even inside an aggregate.
    auto at = ExtendedSequenceNumber::parse(*message.sequence_number, message.sub_sequence_number.value_or(0));
    if (at.is_sentinel() && at.sentinel() != Sentinel::ShardEnd) return {false, std::nullopt};
    return {true, std::move(at)};
  } catch (const Error&) {
    return {false, std::nullopt};
  }
}

}  // namespace

struct ChildProcess::Impl {
  enum class State { NotStarted, Running, Ended, Failed };

  explicit Impl(ChildProcessOptions o) : options(std::move(o)) {}
  ~Impl() { (void)close(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  ChildProcessOptions options;
  std::string tag;
  State state = State::NotStarted;
  ErrorKind error_kind = ErrorKind::Protocol;
  std::string error_what;

  detail::Subprocess child;
  // interrupt()'s way in from the watchdog's thread (the only state shared across threads).
  const std::shared_ptr<detail::KillSwitch> kill_switch = std::make_shared<detail::KillSwitch>();
  // Restarts at every sign of progress during a wait (ChildProcessOptions::reply_timeout).
  Clock::time_point last_activity{};

  detail::Decoder decoder;
  detail::Message message;
  RecordBatch scratch_batch;  // records of a (ignored) processRecords echoed by the child

  // Tells the observer, if any (ChildProcessOptions::observer).
  void notify(ChildEvent::Kind kind, Action action, std::string_view line, std::string_view note = {},
              const std::optional<std::string>& error = std::nullopt) const {
    if (!options.observer) return;
    ChildEvent event;
    event.kind = kind;
    event.during = detail::action_name(action);
    event.line = line;
    event.detail = note;
    if (kind == ChildEvent::Kind::CheckpointRequest) {
      if (message.sequence_number) event.sequence_number = *message.sequence_number;
      event.sub_sequence_number = message.sub_sequence_number;
      if (error) event.error = *error;
    }
    options.observer(event);
  }

  // --- lifecycle -------------------------------------------------------------------------

  void check_usable(std::string_view call) const {
    switch (state) {
      case State::Running:
        return;
      case State::NotStarted:
        throw ProtocolError(std::string(call) + " called before initialize()");
      case State::Ended:
        throw ProtocolError(std::string(call) + " called after the terminal call (the child [" +
                            tag + "] has been shut down)");
      case State::Failed: {
        const std::string what = std::string(call) + ": the child [" + tag +
                                 "] is unusable after an earlier error: " + error_what;
        if (error_kind == ErrorKind::Transport) throw TransportError(what, Retry::No);
        throw ProtocolError(what);
      }
    }
  }

  void spawn(const std::string& shard_id) {
    std::vector<std::string> words = split_command(options.command);
    if (words.empty()) throw ConfigError("kcl::ChildProcess: empty command");
    child = detail::Subprocess::spawn(detail::SubprocessOptions{
        std::move(words), options.command, options.pipe_size, options.exit_grace, tag, kill_switch, shard_id});
  }

  // Throws the public error for `f` after reaping the child; the instance becomes unusable.
  [[noreturn]] void fail(Failure f) {
    state = State::Failed;
    error_kind = f.kind;
    const std::optional<int> status = child.reap(f.reap);
    std::string what = std::move(f.what);
    if (status) what += " (child " + detail::describe_wait_status(*status) + ")";
    if (kill_switch->fired()) what += " (killed by interrupt(): the call ran past the processor timeout)";
    error_what = what;
    log_error("[", tag, "] ", what);
    if (f.kind == ErrorKind::Transport) throw TransportError(what);
    throw ProtocolError(what);
  }

  // Sends `action`'s line (already appended to the child's stdin buffer) and serves the
  // child until its status for `action` arrives.
  void send_and_wait(Action action, Checkpointer* checkpointer) {
    child.stdin_buffer().push_back('\n');
    if (auto failure = wait_for_status(action, checkpointer)) fail(std::move(*failure));
  }

  // --- the wait for a status ---------------------------------------------------------------

  // nullopt once the status for `action` has arrived; otherwise why it never will.
  std::optional<Failure> wait_for_status(Action action, Checkpointer* checkpointer) {
    const std::string_view name = detail::action_name(action);
    last_activity = Clock::now();
    for (;;) {
      // Lines already buffered first: a checkpoint request pipelined after the previous
      // status (docs/kcl-protocol.md §4.1, last paragraph) is served here, with this action's checkpointer.
      switch (process_lines(action, checkpointer)) {
        case Lines::StatusArrived:
          return std::nullopt;
        case Lines::WrongStatus:
          return wrong_status(name);
        case Lines::NeedMore:
          break;
      }
      if (child.exited())
        return Failure{ErrorKind::Transport, "child exited while waiting for status of " + std::string(name),
                       Reap::Graceful};
      if (child.stdout_closed())
        return Failure{ErrorKind::Transport, "child closed its stdout while waiting for status of " + std::string(name),
                       Reap::Graceful};

      Clock::duration wait = Clock::duration::max();
      if (options.reply_timeout.count() > 0) {
        const auto deadline = last_activity + options.reply_timeout;
        const auto now = Clock::now();
        if (now >= deadline)
          return Failure{ErrorKind::Transport,
                         "no reply from child within " + std::to_string(options.reply_timeout.count()) +
                             "ms while waiting for status of " + std::string(name),
                         Reap::Kill};
        wait = deadline - now;
      }
      const detail::Pumped pumped = child.pump(wait);
      if (pumped.error) return io_failure(*pumped.error, name);
      if (pumped.wrote) last_activity = Clock::now();
    }
  }

  // The child answered another action than the one we wait for.
  Failure wrong_status(std::string_view name) const {
    return Failure{ErrorKind::Protocol,
                   "child replied status for '" + message.response_for + "' while waiting for status of " +
                       std::string(name) +
                       " (the Java daemon exits the whole JVM here, docs/kcl-protocol.md §4.2; we fail this shard)",
                   Reap::Graceful};
  }

  // Handles the buffered complete lines up to the first status (the lines after it stay
  // buffered for the next call).
  Lines process_lines(Action action, Checkpointer* checkpointer) {
    while (const std::optional<std::string_view> line = child.next_stdout_line()) {
      last_activity = Clock::now();
      const Lines verdict = handle_line(*line, action, checkpointer);
      if (verdict != Lines::NeedMore) return verdict;
      last_activity = Clock::now();  // a checkpoint call may take a while
    }
    return Lines::NeedMore;
  }

  Lines handle_line(std::string_view line, Action action, Checkpointer* checkpointer) {
    // Blank lines are normal: the official clients write "\n" + json + "\n" (docs/kcl-protocol.md §1).
    if (blank(line)) return Lines::NeedMore;
    try {
      decoder.decode(line, message, scratch_batch);
    } catch (const Error&) {
      // Not a protocol message: the Java daemon logs and skips it (docs/kcl-protocol.md §1, §4.2).
      log_info("[", tag, "] child stdout: ", detail::cut_line(line, 1000));
      notify(ChildEvent::Kind::StrayLine, action, line);
      return Lines::NeedMore;
    }
    switch (message.action) {
      case Action::Status:
        warn_strict_keys(line, action);
        notify(ChildEvent::Kind::Status, action, line, message.response_for);
        if (message.response_for == detail::action_name(action)) return Lines::StatusArrived;
        return Lines::WrongStatus;
      case Action::Checkpoint:
        warn_strict_keys(line, action);
        serve_checkpoint(action, checkpointer, line);
        return Lines::NeedMore;
      case Action::Unknown:
        log_info("[", tag, "] skipping child line with unknown action '", message.action_name,
                 "': ", detail::cut_line(line));
        notify(ChildEvent::Kind::IgnoredMessage, action, line, "unknown action");
        return Lines::NeedMore;
      default:
        // Valid but not a child message (e.g. an echoed processRecords): the Java daemon
        // ignores it inside its wait loop (docs/kcl-protocol.md §3).
        log_debug("[", tag, "] ignoring child message '", message.action_name, "' while waiting for status of ",
                  detail::action_name(action));
        notify(ChildEvent::Kind::IgnoredMessage, action, line, "not a child message");
        return Lines::NeedMore;
    }
  }

  // We accept what the Java daemon's strict Jackson reader would silently skip (and then
  // hang on): say so, because the same child would not work under the Java daemon.
  void warn_strict_keys(std::string_view line, Action action) {
    if (message.unexpected_keys.empty() && !message.legacy_checkpoint_key) return;
    std::string keys;
    if (message.legacy_checkpoint_key) keys = "legacy key \"checkpoint\"";
    for (const std::string& k : message.unexpected_keys) {
      if (message.legacy_checkpoint_key && k == "checkpoint") continue;
      if (!keys.empty()) keys += ", ";
      keys += "\"" + k + "\"";
    }
    log_warn("[", tag, "] child message has ", keys,
             ": accepted, but the Java MultiLangDaemon would skip this line and wait forever "
             "(docs/kcl-protocol.md §1 strict parsing): ",
             detail::cut_line(line));
    notify(ChildEvent::Kind::NonStrictMessage, action, line, keys);
  }

  // --- checkpoint requests -----------------------------------------------------------------

  void serve_checkpoint(Action action, Checkpointer* checkpointer, std::string_view line) {
    const std::string at_text =
        message.sequence_number
            ? *message.sequence_number + "/" +
                  (message.sub_sequence_number ? std::to_string(*message.sub_sequence_number) : "null")
            : std::string("largest delivered");
    const std::optional<std::string> error = checkpoint_error(checkpointer, at_text);
    log_debug("[", tag, "] checkpoint request at ", at_text, " during ", detail::action_name(action), ": ",
              error ? *error : std::string("ok"));
    notify(ChildEvent::Kind::CheckpointRequest, action, line, {}, error);
    // The response echoes the request's numbers, not the stored value (docs/kcl-protocol.md §2).
    std::string& out = child.stdin_buffer();
    detail::encode_checkpoint_response(out, message.sequence_number, message.sub_sequence_number, error);
    out.push_back('\n');
  }

  // Runs the requested checkpoint; the KCL error name for the response, nullopt on success.
  std::optional<std::string> checkpoint_error(Checkpointer* checkpointer, const std::string& at_text) {
    // No checkpointer during initialize and leaseLost (docs/kcl-protocol.md §4.1, §5).
    if (checkpointer == nullptr) return "InvalidStateException";
    const RequestedPosition requested = requested_position(message);
    if (!requested.valid) return "IllegalArgumentException";
    try {
      checkpointer->checkpoint_once(requested.at);
      return std::nullopt;
    } catch (const Error& e) {
      log_warn("[", tag, "] checkpoint at ", at_text, " failed: ", e.what());
      return kcl_name_for(e);
    } catch (const std::exception& e) {
      log_warn("[", tag, "] checkpoint at ", at_text, " failed: ", e.what());
      return "InvalidStateException";
    } catch (...) {
      log_warn("[", tag, "] checkpoint at ", at_text, " failed with a non-standard exception");
      return "InvalidStateException";
    }
  }

  std::optional<int> close() noexcept {
    if (state == State::Running || state == State::NotStarted) state = State::Ended;
    return child.reap(Reap::Graceful);
  }
};

ChildProcess::ChildProcess(ChildProcessOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ChildProcess::~ChildProcess() = default;  // Impl's destructor closes and reaps
ChildProcess::ChildProcess(ChildProcess&&) noexcept = default;
ChildProcess& ChildProcess::operator=(ChildProcess&&) noexcept = default;

namespace {
void require(bool present, std::string_view call) {
  if (!present) throw ProtocolError(std::string(call) + " called on a moved-from kcl::ChildProcess");
}

// What a KCL 1.x daemon's checkpointer answers after a ZOMBIE shutdown: the lease is gone.
class ZombieCheckpointer final : public Checkpointer {
 public:
  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& /*at*/) override {
    throw LeaseLostError("shutdown with reason ZOMBIE: this worker no longer holds the lease");
  }
};
}  // namespace

void ChildProcess::initialize(const std::string& shard_id, const ExtendedSequenceNumber& position) {
  require(impl_ != nullptr, "initialize");
  Impl& d = *impl_;
  if (d.state != Impl::State::NotStarted) {
    d.check_usable("initialize");
    throw ProtocolError("initialize called twice");
  }
  d.tag = d.options.log_tag.empty() ? shard_id : d.options.log_tag;
  try {
    d.spawn(shard_id);
  } catch (const Error& e) {
    d.state = Impl::State::Failed;
    d.error_kind = ErrorKind::Protocol;
    d.error_what = e.what();
    (void)d.child.reap(Reap::Kill);
    throw;
  }
  d.state = Impl::State::Running;
  detail::encode_initialize(d.child.stdin_buffer(), shard_id, position);
  d.send_and_wait(Action::Initialize, nullptr);
}

void ChildProcess::process_records(const RecordBatch& batch, Checkpointer& checkpointer) {
  require(impl_ != nullptr, "process_records");
  Impl& d = *impl_;
  d.check_usable("process_records");
  detail::encode_process_records(d.child.stdin_buffer(), batch);
  d.send_and_wait(Action::ProcessRecords, &checkpointer);
}

void ChildProcess::shutdown_requested(Checkpointer& checkpointer) {
  require(impl_ != nullptr, "shutdown_requested");
  Impl& d = *impl_;
  d.check_usable("shutdown_requested");
  // Not terminal (docs/kcl-protocol.md §4.1 step 4): the child stays up and expects leaseLost next.
  detail::encode_bare(d.child.stdin_buffer(), Action::ShutdownRequested);
  d.send_and_wait(Action::ShutdownRequested, &checkpointer);
}

void ChildProcess::lease_lost() {
  require(impl_ != nullptr, "lease_lost");
  Impl& d = *impl_;
  d.check_usable("lease_lost");
  if (d.options.terminal_messages == TerminalMessages::Kcl1Shutdown) {
    // 1.x hands a ZOMBIE shutdown a checkpointer whose lease is gone (docs/kcl-protocol.md §8).
    ZombieCheckpointer zombie;
    detail::encode_shutdown(d.child.stdin_buffer(), "ZOMBIE");
    d.send_and_wait(Action::Shutdown, &zombie);
  } else {
    detail::encode_bare(d.child.stdin_buffer(), Action::LeaseLost);
    d.send_and_wait(Action::LeaseLost, nullptr);  // no checkpointer: InvalidStateException
  }
  d.state = Impl::State::Ended;
  (void)d.child.reap(Reap::Graceful);
}

void ChildProcess::shard_ended(Checkpointer& checkpointer) {
  require(impl_ != nullptr, "shard_ended");
  Impl& d = *impl_;
  d.check_usable("shard_ended");
  if (d.options.terminal_messages == TerminalMessages::Kcl1Shutdown) {
    detail::encode_shutdown(d.child.stdin_buffer(), "TERMINATE");
    d.send_and_wait(Action::Shutdown, &checkpointer);
  } else {
    detail::encode_bare(d.child.stdin_buffer(), Action::ShardEnded);
    d.send_and_wait(Action::ShardEnded, &checkpointer);
  }
  d.state = Impl::State::Ended;
  (void)d.child.reap(Reap::Graceful);
}

std::optional<int> ChildProcess::close() noexcept {
  if (!impl_) return std::nullopt;
  return impl_->close();
}

void ChildProcess::interrupt() noexcept {
  // SIGKILL: the running call sees the child exit and throws TransportError; the instance
  // is then unusable, and the worker starts a new child for the shard.
  if (impl_) impl_->kill_switch->fire();
}

std::optional<int> ChildProcess::pid() const noexcept {
  if (!impl_) return std::nullopt;
  return impl_->child.running_pid();
}

}  // namespace kclpp::kcl
