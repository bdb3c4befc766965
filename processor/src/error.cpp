#include "kclpp/processor/error.hpp"

#include <utility>

namespace kclpp {

Error::Error(const std::string& what, Retry retry, std::string kcl_name)
    : std::runtime_error(what), retry_(retry), kcl_name_(std::move(kcl_name)) {}

ConfigError::ConfigError(const std::string& what) : Error(what, Retry::No) {}

ProtocolError::ProtocolError(const std::string& what) : Error(what, Retry::No) {}

TransportError::TransportError(const std::string& what, Retry retry) : Error(what, retry) {}

ThrottledError::ThrottledError(const std::string& what)
    : Error(what, Retry::Throttled, "ThrottlingException") {}

LeaseLostError::LeaseLostError(const std::string& what)
    : Error(what, Retry::No, "ShutdownException") {}

CheckpointError::CheckpointError(const std::string& what, std::string kcl_name)
    // Copied, not moved: the order in which the two arguments are evaluated is
    // unspecified, and kcl_error_retry must see the name before it is moved from.
    : Error(what, kcl_error_retry(kcl_name), kcl_name) {}

ProcessorError::ProcessorError(const std::string& what) : Error(what, Retry::No) {}

AuthError::AuthError(const std::string& what) : Error(what, Retry::No) {}

StoreError::StoreError(const std::string& what, Retry retry) : Error(what, retry) {}

InDoubtError::InDoubtError(const std::string& what) : Error(what, Retry::No) {}

// docs/kcl-protocol.md §5 error table. InvalidStateException is deliberately not retryable (the official
// guidance, unlike the Python sample); an unknown name is treated as a plain failure.
Retry kcl_error_retry(std::string_view kcl_name) noexcept {
  if (kcl_name == "ThrottlingException") return Retry::Throttled;
  if (kcl_name == "KinesisClientLibDependencyException") return Retry::Yes;
  return Retry::No;
}

void throw_kcl_error(std::string_view kcl_name, std::string_view context) {
  std::string what;
  what.reserve(context.size() + kcl_name.size() + 2);
  what.append(context);
  if (!context.empty()) what.append(": ");
  what.append(kcl_name);
  if (kcl_name == "ThrottlingException") throw ThrottledError(what);
  if (kcl_name == "ShutdownException") throw LeaseLostError(what);
  throw CheckpointError(what, std::string(kcl_name));
}

std::string detail::describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

}  // namespace kclpp
