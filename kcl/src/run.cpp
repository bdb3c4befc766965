// The child side of the MultiLangDaemon protocol: kcl::run() reads actions from the daemon
// (stdin), calls the RecordProcessor, and answers with checkpoint requests and statuses
// (stdout). Outcomes of every odd input are listed in kcl/README.md ("Outcomes").
//
// Hot path (processRecords lines of up to tens of MB, docs/kcl-protocol.md §1): read() in large chunks
// into one LineBuffer, decode the line in place (no copy; LineBuffer keeps the decoder's
// padding after every line), reuse one Message and one RecordBatch for every line, and
// write each status with a single write().

#include "kclpp/kcl/run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "codec.hpp"
#include "io.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::kcl {
namespace {

using detail::Action;
using detail::Message;

constexpr std::size_t min_read_chunk = std::size_t{1} << 20;
constexpr std::size_t max_read_chunk = std::size_t{16} << 20;

// ---------------------------------------------------------------------------------------
// stdout guard. docs/kcl-protocol.md §1: the daemon skips stdout lines it cannot parse, but a stray
// printf without a newline would glue itself to the next protocol message and that
// message would be lost (a hang). So the protocol gets a private duplicate of fd 1 and
// fd 1 itself is pointed at stderr, which the daemon logs line by line.
// Not thread-safe (run() is called once, from one thread).
class StdoutRedirect {
 public:
  StdoutRedirect() = default;
  StdoutRedirect(const StdoutRedirect&) = delete;
  StdoutRedirect& operator=(const StdoutRedirect&) = delete;

  // Returns the fd the protocol must write to.
  int activate(int output_fd, StdoutGuard guard) {
    if (guard != StdoutGuard::On || output_fd != STDOUT_FILENO) return output_fd;
    // CLOEXEC: a program the processor spawns must not inherit the protocol pipe (the
    // daemon waits for EOF on it at shutdown, docs/kcl-protocol.md §4.1 step 3).
    detail::UniqueFd saved(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3));
    if (!saved.valid()) {
      log_warn("kcl::run: cannot duplicate stdout (", std::strerror(errno),
               "); the stdout guard is off");
      return output_fd;
    }
    if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
      log_warn("kcl::run: cannot point stdout at stderr (", std::strerror(errno),
               "); the stdout guard is off");
      return output_fd;
    }
    saved_ = std::move(saved);
    return saved_.get();
  }

  [[nodiscard]] bool active() const noexcept { return saved_.valid(); }

  // Sends what user code buffered in stdio / std::cout to stderr now, so it shows up in
  // the daemon's log next to the action that printed it.
  void flush_user_output() const {
    if (!active()) return;
    std::fflush(stdout);
    std::cout.flush();
  }

  // Restores fd 1 (after sending buffered user output to stderr, where it belongs).
  ~StdoutRedirect() {
    if (!active()) return;
    try {
      flush_user_output();
    } catch (...) {  // a user stream with exceptions enabled: nothing to do about it here
    }
    (void)::dup2(saved_.get(), STDOUT_FILENO);
  }

 private:
  detail::UniqueFd saved_;
};

// ---------------------------------------------------------------------------------------
// Writes protocol messages. A daemon that died closes our stdout; the write must then
// fail with TransportError (exit_protocol_error), not kill us with SIGPIPE. When SIGPIPE
// has its default disposition, it is blocked for the duration of each write() and a
// SIGPIPE raised by it is consumed: no process-wide state changes, nothing leaks into
// programs the processor spawns (an ignored SIGPIPE would be inherited across exec).
// A user-installed handler or SIG_IGN is left alone (write() then returns EPIPE anyway).
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd) {
    struct sigaction current{};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0) {
      mask_sigpipe_ = (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL;
    }
  }

  // Throws TransportError.
  void write(std::string_view data) {
    if (!mask_sigpipe_) {
      detail::write_all(fd_, data);
      return;
    }
    sigset_t pipe_set;
    sigset_t old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    (void)::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    try {
      detail::write_all(fd_, data);
    } catch (...) {
      if (sigismember(&old_set, SIGPIPE) == 0) consume_sigpipe(pipe_set);
      (void)::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
      throw;
    }
    (void)::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  }

 private:
  static void consume_sigpipe(const sigset_t& pipe_set) {
    sigset_t pending;
    sigemptyset(&pending);
    if (::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec no_wait{0, 0};
      while (::sigtimedwait(&pipe_set, nullptr, &no_wait) < 0 && errno == EINTR) {
      }
    }
  }

  int fd_;
  bool mask_sigpipe_ = false;
};

// ---------------------------------------------------------------------------------------
// Reads lines from the daemon. Blank lines are skipped (docs/kcl-protocol.md §1: the daemon never sends
// them, but the child→daemon direction uses them as separators, so tolerate them).
class Reader {
 public:
  Reader(int fd, std::size_t chunk) : fd_(fd), chunk_(chunk) {}

  // The next non-blank line ('\r' stripped), valid until the next call; false on EOF.
  // Throws TransportError on a read error.
  bool next(std::string_view& line) {
    for (;;) {
      while (buffer_.next_line(line)) {
        if (!is_blank(line)) return true;
      }
      if (eof_) return false;
      fill();
    }
  }

  // Bytes of an unterminated last line (only meaningful after EOF).
  [[nodiscard]] std::size_t unterminated() const noexcept { return buffer_.pending(); }

 private:
  static bool is_blank(std::string_view line) noexcept {
    // The first byte of any real message is '{', so this returns at once for them.
    return line.find_first_not_of(" \t\f\v") == std::string_view::npos;
  }

  void fill() {
    char* dst = buffer_.prepare(chunk_);
    for (;;) {
      const ssize_t n = ::read(fd_, dst, chunk_);
      if (n > 0) {
        buffer_.commit(static_cast<std::size_t>(n));
        return;
      }
      if (n == 0) {
        eof_ = true;
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // a non-blocking stdin: wait for it
        pollfd pfd{fd_, POLLIN, 0};
        (void)::poll(&pfd, 1, -1);
        continue;
      }
      throw TransportError(std::string("read from the daemon failed: ") + std::strerror(errno),
                           Retry::No);
    }
  }

  int fd_;
  std::size_t chunk_;
  detail::LineBuffer buffer_;
  bool eof_ = false;
};

// ---------------------------------------------------------------------------------------

class Runtime;

// The Checkpointer handed to process_records / shard_ended / shutdown_requested: each
// attempt is one synchronous request/response round trip on the protocol pipes.
// Not thread-safe (a concurrent or reentrant call is refused, never interleaved).
class ProtocolCheckpointer final : public Checkpointer {
 public:
  ProtocolCheckpointer(Runtime& runtime, const RetryPolicy& policy)
      : Checkpointer(policy), runtime_(runtime) {}
  void checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) override;

 private:
  Runtime& runtime_;
};

// One run of the protocol. Not thread-safe: everything happens on run()'s thread.
class Runtime {
 public:
  Runtime(RecordProcessor& processor, const RunOptions& options, int output_fd,
          const StdoutRedirect& redirect, std::size_t read_chunk)
      : processor_(processor),
        options_(options),
        redirect_(redirect),
        reader_(options.input_fd, read_chunk),
        writer_(output_fd),
        checkpointer_(*this, options.checkpoint_retry) {}

  int run();
  void checkpoint(const std::optional<ExtendedSequenceNumber>& at);

 private:
  // std::nullopt: go on reading; a value: return it from run().
  using Step = std::optional<int>;

  Step dispatch(std::string_view line);
  Step on_initialize(std::string_view line);
  Step on_process_records();
  Step on_lease_lost();
  Step on_shard_ended();
  Step on_shutdown_requested();
  Step reply();
  Step processor_failed(const std::string& what);
  void refuse_checkpoint_without_round_trip() const;
  void send_checkpoint_request(const std::optional<ExtendedSequenceNumber>& at);
  std::string_view read_checkpoint_reply(const std::optional<ExtendedSequenceNumber>& at);

  template <class Fn>
  std::optional<std::string> invoke(bool checkpoint_allowed, Fn&& fn);

  RecordProcessor& processor_;
  const RunOptions& options_;
  const StdoutRedirect& redirect_;
  Reader reader_;
  Writer writer_;
  detail::Decoder decoder_;
  // The current action, reused for every line.
  Message message_;
  RecordBatch batch_;
  // The line read while waiting for a checkpoint response, when it was another action
  // (docs/kcl-protocol.md §9): kept, and dispatched once the current action is done.
  Message aside_message_;
  RecordBatch aside_batch_;
  bool has_aside_ = false;
  std::string aside_line_;  // cut, for error messages
  std::string out_;         // status
  std::string request_;     // checkpoint request
  std::string shard_id_;
  ProtocolCheckpointer checkpointer_;
  // Checkpoint state of the current action.
  bool checkpoint_allowed_ = false;
  std::atomic<bool> checkpoint_in_flight_{false};
  int checkpoint_attempts_ = 0;
  bool null_checkpoint_done_ = false;
  // Set when the protocol broke while the processor ran (EOF, a malformed line, a failed
  // write): the action ends without a status and run() returns this code.
  std::optional<int> fatal_;
};

void ProtocolCheckpointer::checkpoint_once(const std::optional<ExtendedSequenceNumber>& at) {
  runtime_.checkpoint(at);
}

std::string describe(const std::optional<ExtendedSequenceNumber>& at) {
  if (!at) return "the largest record delivered (null)";
  return at->str() + "/" + std::to_string(at->sub_sequence_number());
}

void Runtime::checkpoint(const std::optional<ExtendedSequenceNumber>& at) {
  // One outstanding checkpoint at a time (Node's client refuses a second one the same
  // way, docs/kcl-protocol.md §9 case 19): a second request would take the first one's response.
  if (checkpoint_in_flight_.exchange(true)) {
    throw CheckpointError(
        "Cannot checkpoint while another checkpoint is already in progress (a reentrant or "
        "concurrent call; the Checkpointer is not thread-safe)",
        "InvalidStateException");
  }
  struct InFlight {
    std::atomic<bool>& flag;
    ~InFlight() { flag.store(false); }
  } in_flight{checkpoint_in_flight_};

  refuse_checkpoint_without_round_trip();
  ++checkpoint_attempts_;
  send_checkpoint_request(at);
  const std::string_view line = read_checkpoint_reply(at);
  if (aside_message_.action == Action::Checkpoint) {
    if (!aside_message_.error) {
      if (!at) null_checkpoint_done_ = true;
      return;
    }
    throw_kcl_error(*aside_message_.error, "checkpoint at " + describe(at) + " failed");
  }
  // docs/kcl-protocol.md §9: another action instead of the response. Unlike Python's client,
  // keep the line and dispatch it after the current action.
  const std::string_view action = message_.action_name;
  has_aside_ = true;
  aside_line_ = detail::cut_line(line);
  log_warn("kcl::run: expected a checkpoint response during ", action, " but the daemon sent ",
           aside_message_.action_name, "; the checkpoint fails with InvalidStateException and ",
           aside_message_.action_name, " runs after ", action);
  throw CheckpointError("expected a checkpoint response, the daemon sent " +
                            aside_message_.action_name,
                        "InvalidStateException");
}

// Throws where a checkpoint cannot be asked for at all.
void Runtime::refuse_checkpoint_without_round_trip() const {
  if (fatal_) {
    throw TransportError("checkpoint impossible: the protocol with the daemon already failed",
                         Retry::No);
  }
  if (!checkpoint_allowed_) {
    // docs/kcl-protocol.md §5: the daemon has no checkpointer during initialize and leaseLost and
    // would answer InvalidStateException; answer it here without a round trip.
    const std::string_view action = message_.action_name;
    throw CheckpointError("checkpoint impossible outside processRecords, shardEnded and "
                          "shutdownRequested (current action: " +
                              std::string(action.empty() ? "none" : action) + ")",
                          "InvalidStateException");
  }
  if (has_aside_) {
    throw CheckpointError("checkpoint impossible: the daemon already sent the next action ("
                          + aside_message_.action_name + ") instead of a checkpoint response",
                          "InvalidStateException");
  }
}

void Runtime::send_checkpoint_request(const std::optional<ExtendedSequenceNumber>& at) {
  // docs/kcl-protocol.md §3, §5: always both keys; a record's position carries its sub-sequence number
  // (without it the KCL would store sub 0, only the first user record of a KPL aggregate).
  request_.clear();
  request_ += '\n';  // docs/kcl-protocol.md §1: isolate the message from stray output
  if (at) {
    detail::encode_checkpoint_request(request_, at->str(), at->sub_sequence_number());
  } else {
    detail::encode_checkpoint_request(request_, std::nullopt, std::nullopt);
  }
  request_ += '\n';
  try {
    writer_.write(request_);
  } catch (const TransportError& e) {
    fatal_ = exit_protocol_error;
    log_error("kcl::run: cannot send a checkpoint request to the daemon: ", e.what());
    throw TransportError(std::string("cannot send the checkpoint request: ") + e.what(),
                         Retry::No);
  }
}

// Reads the daemon's next line into aside_message_ and returns it (valid until the next
// read). A read error, EOF or a malformed line breaks the protocol: fatal_, and throws.
std::string_view Runtime::read_checkpoint_reply(const std::optional<ExtendedSequenceNumber>& at) {
  // docs/kcl-protocol.md §3: the response is the NEXT line; read it before anything else.
  std::string_view line;
  bool got = false;
  try {
    got = reader_.next(line);
  } catch (const TransportError& e) {
    fatal_ = exit_protocol_error;
    log_error("kcl::run: waiting for a checkpoint response: ", e.what());
    throw;
  }
  if (!got) {
    fatal_ = exit_protocol_error;
    log_error("kcl::run: stdin reached EOF while waiting for the response to a checkpoint at ",
              describe(at), " during ", message_.action_name, " (shard ", shard_id_, ")");
    throw TransportError("stdin reached EOF while waiting for a checkpoint response", Retry::No);
  }
  try {
    decoder_.decode(line, aside_message_, aside_batch_);
  } catch (const ProtocolError& e) {
    fatal_ = exit_protocol_error;
    log_error("kcl::run: malformed line from the daemon while waiting for a checkpoint "
              "response: ", e.what(), "; line: ", detail::cut_line(line));
    throw;
  }
  return line;
}

std::string exception_text(const Error& e) {
  std::string text = e.what();
  if (!e.kcl_name().empty() && text.find(e.kcl_name()) == std::string::npos) {
    text += " (" + e.kcl_name() + ")";
  }
  return text;
}

// Runs one processor callback. Returns what it threw, if it did.
template <class Fn>
std::optional<std::string> Runtime::invoke(bool checkpoint_allowed, Fn&& fn) {
  checkpoint_allowed_ = checkpoint_allowed;
  checkpoint_attempts_ = 0;
  null_checkpoint_done_ = false;
  std::optional<std::string> failure;
  try {
    fn();
  } catch (const Error& e) {
    failure = exception_text(e);
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "an exception not derived from std::exception";
  }
  checkpoint_allowed_ = false;
  return failure;
}

// OnProcessorError for initialize / processRecords / shardEnded.
Runtime::Step Runtime::processor_failed(const std::string& what) {
  if (options_.on_processor_error == OnProcessorError::Fail) {
    // docs/kcl-protocol.md §4.2: no status; the daemon sees EOF on our stdout and restarts the shard
    // (with the Java daemon: every shard) from the last checkpoint. Nothing is lost.
    log_error("kcl::run: the processor threw in ", message_.action_name, " (shard ", shard_id_,
              "): ", what, "; exiting with code ", exit_processor_failed,
              " without a status (OnProcessorError::Fail)");
    return exit_processor_failed;
  }
  log_error("kcl::run: the processor threw in ", message_.action_name, " (shard ", shard_id_,
            "): ", what, "; continuing (OnProcessorError::LogAndContinue)");
  return std::nullopt;
}

Runtime::Step Runtime::reply() {
  redirect_.flush_user_output();
  // docs/kcl-protocol.md §1, §3: "\n" + the status + "\n", in one write; responseFor is the action
  // exactly as received (the daemon compares with equals).
  out_.clear();
  out_ += '\n';
  detail::encode_status(out_, message_.action_name);
  out_ += '\n';
  try {
    writer_.write(out_);
  } catch (const Error& e) {
    log_error("kcl::run: cannot send the status for ", message_.action_name,
              " to the daemon: ", e.what());
    return exit_protocol_error;
  }
  return std::nullopt;
}

Runtime::Step Runtime::on_initialize(std::string_view line) {
  // docs/kcl-protocol.md §2: the lease's checkpoint or a sentinel. Absent/null (the legacy protocol
  // before KCL 1.7.2 sends only shardId, docs/kcl-protocol.md §8) means TRIM_HORIZON, the KCL's default
  // initial position; a null sub-sequence number means 0 (ExtendedSequenceNumber's default).
  ExtendedSequenceNumber position;
  if (message_.sequence_number) {
    try {
      position = ExtendedSequenceNumber::parse(*message_.sequence_number,
                                               message_.sub_sequence_number.value_or(0));
    } catch (const Error& e) {
      log_error("kcl::run: malformed line from the daemon: initialize carries a bad position (",
                e.what(), "); line: ", detail::cut_line(line));
      return exit_protocol_error;
    }
  }
  shard_id_ = message_.shard_id;
  const auto failure =
      invoke(false, [&] { processor_.initialize(shard_id_, position); });
  if (fatal_) return fatal_;
  if (failure) {
    if (auto step = processor_failed(*failure)) return step;
  }
  return reply();
}

Runtime::Step Runtime::on_process_records() {
  const auto failure =
      invoke(true, [&] { processor_.process_records(batch_, checkpointer_); });
  if (fatal_) return fatal_;
  if (failure) {
    if (auto step = processor_failed(*failure)) return step;
  }
  return reply();
}

Runtime::Step Runtime::on_lease_lost() {
  const auto failure = invoke(false, [&] { processor_.lease_lost(); });
  if (fatal_) return fatal_;
  if (failure) {
    // The lease is gone: nothing to retry and nothing to protect; the daemon only needs
    // the status to shut the child down (both policies).
    log_error("kcl::run: the processor threw in ", message_.action_name, " (shard ", shard_id_,
              "): ", *failure, "; logged only, replying status");
  }
  return reply();
}

Runtime::Step Runtime::on_shard_ended() {
  const auto failure = invoke(true, [&] { processor_.shard_ended(checkpointer_); });
  if (fatal_) return fatal_;
  if (failure) {
    if (auto step = processor_failed(*failure)) return step;
  }
  // docs/kcl-protocol.md §4.1: without a SHARD_END checkpoint the KCL never finishes the shard and
  // its children may never start. A null checkpoint records SHARD_END (re-checkpointing
  // it after the processor checkpointed the last record is a no-op success, docs/kcl-protocol.md §5).
  if (null_checkpoint_done_) return reply();
  if (checkpoint_attempts_ == 0 && !failure) {
    log_warn("kcl::run: the processor returned from shard_ended without checkpointing "
             "(shard ", shard_id_, "); checkpointing SHARD_END for it (docs/kcl-protocol.md §4.1)");
  }
  checkpoint_allowed_ = true;
  std::optional<std::string> net_failure;
  bool lease_lost = false;
  try {
    checkpointer_.checkpoint();  // with the retry policy (ThrottlingException, ...)
  } catch (const LeaseLostError& e) {
    net_failure = exception_text(e);
    lease_lost = true;
  } catch (const Error& e) {
    net_failure = exception_text(e);
  } catch (const std::exception& e) {
    net_failure = e.what();
  }
  checkpoint_allowed_ = false;
  if (fatal_) return fatal_;
  if (net_failure) {
    // ShutdownException: the shard now belongs to another worker, which will finish it;
    // reply normally. Otherwise this worker cannot finish the shard: follow the policy
    // (Fail: no status, the daemon restarts and shardEnded comes again).
    const bool give_up = !lease_lost && options_.on_processor_error == OnProcessorError::Fail;
    log_error("kcl::run: the SHARD_END checkpoint after shard_ended failed (shard ", shard_id_,
              "): ", *net_failure,
              give_up ? "; exiting without a status (OnProcessorError::Fail)"
                      : "; replying status");
    if (give_up) return exit_processor_failed;
  }
  return reply();
}

Runtime::Step Runtime::on_shutdown_requested() {
  const auto failure = invoke(true, [&] { processor_.shutdown_requested(checkpointer_); });
  if (fatal_) return fatal_;
  if (failure) {
    // docs/kcl-protocol.md §4.2: the Java daemon only logs a failed shutdownRequested; so do we,
    // in both policies. Not terminal: keep reading (leaseLost comes next).
    log_error("kcl::run: the processor threw in ", message_.action_name, " (shard ", shard_id_,
              "): ", *failure, "; logged only, replying status");
  }
  return reply();
}

Runtime::Step Runtime::dispatch(std::string_view line) {
  switch (message_.action) {
    case Action::Initialize:
      return on_initialize(line);
    case Action::ProcessRecords:
      return on_process_records();
    case Action::LeaseLost:
      return on_lease_lost();
    case Action::ShardEnded:
      return on_shard_ended();
    case Action::ShutdownRequested:
      return on_shutdown_requested();
    case Action::Shutdown:
      // KCL 1.x (docs/kcl-protocol.md §8): TERMINATE = the shard ended, ZOMBIE = the lease was lost; the
      // status answers "shutdown". An unknown reason takes the safe side (no checkpoint).
      if (message_.reason == "TERMINATE") return on_shard_ended();
      if (message_.reason != "ZOMBIE") {
        log_warn("kcl::run: shutdown with unknown reason \"", message_.reason,
                 "\" treated as ZOMBIE (lease lost); line: ", detail::cut_line(line));
      }
      return on_lease_lost();
    case Action::Checkpoint:
      log_warn("kcl::run: ignoring a checkpoint response with no outstanding request; line: ",
               detail::cut_line(line));
      return std::nullopt;
    case Action::Status:
      // A child→daemon message; answering it could loop forever if stdout were wired
      // back to stdin.
      log_warn("kcl::run: ignoring a status message from the daemon; line: ",
               detail::cut_line(line));
      return std::nullopt;
    case Action::Unknown:
      // Forward compatible: a newer daemon's action we cannot handle. Answer it, since the
      // daemon waits for a status whose responseFor equals the action (docs/kcl-protocol.md §3).
      log_warn("kcl::run: unknown action \"", message_.action_name,
               "\": replying status without calling the processor; line: ",
               detail::cut_line(line));
      return reply();
  }
  return reply();
}

int Runtime::run() {
  std::string_view line;
  for (;;) {
    if (has_aside_) {
      has_aside_ = false;
      std::swap(message_, aside_message_);
      std::swap(batch_, aside_batch_);
      // aside_line_ is not touched until the next aside, which cannot happen before this
      // action's dispatch has used `line`.
      line = aside_line_;
    } else {
      if (!reader_.next(line)) {
        if (reader_.unterminated() > 0) {
          log_warn("kcl::run: stdin reached EOF inside a line; ignoring its ",
                   reader_.unterminated(), " bytes");
        }
        log_debug("kcl::run: stdin reached EOF; exiting");
        return exit_ok;
      }
      try {
        decoder_.decode(line, message_, batch_);
      } catch (const ProtocolError& e) {
        // docs/kcl-protocol.md §4.2: the daemon waits for a status we cannot produce; exiting makes it
        // fail fast instead of hanging.
        log_error("kcl::run: malformed line from the daemon: ", e.what(),
                  "; line: ", detail::cut_line(line));
        return exit_protocol_error;
      }
    }
    if (auto step = dispatch(line)) return *step;
  }
}

}  // namespace

int run(RecordProcessor& processor, const RunOptions& options) {
  try {
    StdoutRedirect redirect;
    const int output_fd = redirect.activate(options.output_fd, options.stdout_guard);
    std::size_t input_pipe = 0;
    if (options.pipe_size > 0) {
      // Failures are ignored: a file or a terminal is not a pipe, and above
      // /proc/sys/fs/pipe-max-size an unprivileged process keeps the current size.
      input_pipe = detail::set_pipe_size(options.input_fd, options.pipe_size);
      (void)detail::set_pipe_size(output_fd, options.pipe_size);
    }
    const std::size_t chunk = std::clamp(input_pipe, min_read_chunk, max_read_chunk);
    Runtime runtime(processor, options, output_fd, redirect, chunk);
    return runtime.run();
  } catch (const std::exception& e) {
    try {
      log_error("kcl::run: ", e.what());
    } catch (...) {
    }
    return exit_protocol_error;
  } catch (...) {
    try {
      log_error("kcl::run: unknown failure");
    } catch (...) {
    }
    return exit_protocol_error;
  }
}

}  // namespace kclpp::kcl
