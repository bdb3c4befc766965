#pragma once
// The one error root of kclpp and its few actionable subclasses. Every kclpp function
// throws only kclpp::Error (or a subclass); retry() says what the caller should do.

#include <stdexcept>
#include <string>
#include <string_view>

namespace kclpp {

// What a caller should do with an error: give up, retry with backoff, or retry with a
// longer (throttling) backoff.
enum class Retry { No, Yes, Throttled };

// Root of every kclpp exception. kcl_name() is the KCL exception's simple class name
// where the error maps to the MultiLangDaemon protocol (e.g. "ThrottlingException"),
// otherwise empty.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, Retry retry = Retry::No, std::string kcl_name = {});
  [[nodiscard]] Retry retry() const noexcept { return retry_; }
  [[nodiscard]] const std::string& kcl_name() const noexcept { return kcl_name_; }

 private:
  Retry retry_;
  std::string kcl_name_;
};

// A bad option, property or argument given by the user. Not retryable: fix the config.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what);
};

// The peer broke the MultiLangDaemon protocol (malformed line, wrong responseFor, ...).
// Not retryable on the same peer.
class ProtocolError : public Error {
 public:
  explicit ProtocolError(const std::string& what);
};

// An I/O failure: a pipe closed, a child exited, a read timed out. Retryable (Retry::Yes)
// by default; pass Retry::No where retrying cannot help.
class TransportError : public Error {
 public:
  explicit TransportError(const std::string& what, Retry retry = Retry::Yes);
};

// The checkpoint store (or Kinesis) throttled the call: kcl_name "ThrottlingException".
class ThrottledError : public Error {
 public:
  explicit ThrottledError(const std::string& what);
};

// The lease is no longer held: kcl_name "ShutdownException". Not retryable: stop
// checkpointing; the shard now belongs to someone else.
class LeaseLostError : public Error {
 public:
  explicit LeaseLostError(const std::string& what);
};

// Any other failed checkpoint, carrying the KCL name: "InvalidStateException" and
// "IllegalArgumentException" (not retryable), "KinesisClientLibDependencyException"
// (retryable), or whatever name the daemon sent (not retryable).
class CheckpointError : public Error {
 public:
  CheckpointError(const std::string& what, std::string kcl_name);
};

// A user processor threw and the failure policy gave up on it. Not retryable.
class ProcessorError : public Error {
 public:
  explicit ProcessorError(const std::string& what);
};

// A remote service refused our credentials or signature (AWS UnrecognizedClientException,
// InvalidSignatureException, AccessDeniedException, ExpiredTokenException, ...). Not
// retryable with the same credentials.
class AuthError : public Error {
 public:
  explicit AuthError(const std::string& what);
};

// A checkpoint store failed (SQLite, Postgres), or refused because another worker holds
// the same application and stream. retry() says whether trying again can help (a busy or
// unreachable database: Yes; a schema or conflict problem: No).
class StoreError : public Error {
 public:
  explicit StoreError(const std::string& what, Retry retry = Retry::No);
};

// A non-idempotent call (PutRecord, a store write) may or may not have taken effect: the
// connection broke after the request was sent. Never retried automatically by kclpp.
class InDoubtError : public Error {
 public:
  explicit InDoubtError(const std::string& what);
};

// The retry classification of a KCL exception name (docs/kcl-protocol.md §5 error table).
[[nodiscard]] Retry kcl_error_retry(std::string_view kcl_name) noexcept;

// Throws the typed error for a KCL exception name: ThrottledError for
// "ThrottlingException", LeaseLostError for "ShutdownException", CheckpointError for
// anything else. `context` goes in front of the name in what().
[[noreturn]] void throw_kcl_error(std::string_view kcl_name, std::string_view context);

namespace detail {
// Inside a catch block: what() of the exception being handled, or a note that it is not a
// std::exception. For logs of user code that threw.
[[nodiscard]] std::string describe_current_exception();
}  // namespace detail

}  // namespace kclpp
