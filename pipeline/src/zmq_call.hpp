#pragma once
// The one place of kclpp::pipeline where ZeroMQ's errors (cppzmq throws zmq::error_t)
// become kclpp errors, or outcomes where they are not failures: a signal (EINTR) and the
// context closing (ETERM). Private to the spool client and daemon.
#include <cerrno>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline::detail {

// How a ZeroMQ call ended when it did not fail.
enum class ZmqStatus {
  Done,
  Interrupted,  // EINTR: a signal arrived (an embedding program's handler): try again
  Terminated,   // ETERM: the context is being closed: stop using the socket
};

// Throws the kclpp error for ZeroMQ error `num`: a TransportError "<what>: <zmq's text>",
// retryable for the transient codes (EAGAIN, EINTR, ENOBUFS, EHOSTUNREACH), else with
// `otherwise` (a bad endpoint or an address in use does not get better by retrying).
[[noreturn]] inline void throw_zmq_error(int num, std::string_view what, Retry otherwise) {
  const bool transient = num == EAGAIN || num == EINTR || num == ENOBUFS || num == EHOSTUNREACH;
  throw TransportError(std::string(what) + ": " + zmq_strerror(num), transient ? Retry::Yes : otherwise);
}

// Runs `fn` (cppzmq calls). EINTR and ETERM come back as a status; every other ZeroMQ
// error is thrown by throw_zmq_error(num, what, otherwise).
template <class Fn>
[[nodiscard]] ZmqStatus zmq_call(std::string_view what, Retry otherwise, Fn&& fn) {
  try {
    fn();
    return ZmqStatus::Done;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return ZmqStatus::Interrupted;
    if (e.num() == ETERM) return ZmqStatus::Terminated;
    throw_zmq_error(e.num(), what, otherwise);
  }
}

// Runs `fn` (cppzmq calls) where neither a signal nor a closing context is an outcome to
// act on (socket setup, close): every ZeroMQ error is thrown, not retryable unless
// transient.
template <class Fn>
void zmq_setup(std::string_view what, Fn&& fn) {
  try {
    fn();
  } catch (const zmq::error_t& e) {
    throw_zmq_error(e.num(), what, Retry::No);
  }
}

}  // namespace kclpp::pipeline::detail
