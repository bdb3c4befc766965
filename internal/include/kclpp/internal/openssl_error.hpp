#pragma once
// The one translation of an OpenSSL failure into a kclpp exception. Include only from
// sources of modules that link OpenSSL (aws, native-reader, pipeline).
//
// The class is ConfigError (not retryable): the digests kclpp uses (SHA-256, HMAC-SHA256,
// MD5) fail only when OpenSSL cannot provide the algorithm, which is its configuration
// (OPENSSL_CONF, a FIPS-only provider set that refuses MD5) or an allocation failure; a
// retry cannot help, and OpenSSL's own reason goes into the message.

#include <openssl/err.h>

#include <string>
#include <string_view>

#include "kclpp/processor/error.hpp"

namespace kclpp::detail {

// OpenSSL's queued errors of this thread, oldest first, joined by "; " (the queue is left
// empty), or a note that none was queued.
[[nodiscard]] inline std::string openssl_error_text() {
  std::string text;
  for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? std::string("no OpenSSL error queued") : text;
}

// Throws ConfigError "<what> failed (OpenSSL: <queued errors>)". `what` names the
// operation: "SHA-256 of the request body".
[[noreturn]] inline void throw_openssl_error(std::string_view what) {
  throw ConfigError(std::string(what) + " failed (OpenSSL: " + openssl_error_text() + ")");
}

}  // namespace kclpp::detail
