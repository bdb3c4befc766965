#pragma once
// What every fuzz target shares: how it reports a bug (a message on stderr, then abort(),
// which libFuzzer records as a crash together with the input), and the one accepted way
// for a parser to refuse bad bytes (kclpp::ProtocolError).

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kclpp/processor/error.hpp"

namespace kclpp::fuzz {

[[noreturn]] inline void bug(const char* what, const std::string& detail = {}) {
  if (detail.empty()) {
    std::fprintf(stderr, "%s\n", what);
  } else {
    std::fprintf(stderr, "%s %s\n", what, detail.c_str());
  }
  std::abort();
}

inline void check(bool ok, const char* what, const std::string& detail = {}) {
  if (!ok) bug(what, detail);
}

// Calls `fn`: true when it returned, false when it refused its input with ProtocolError.
// Any other exception escapes, and libFuzzer reports it.
template <class Fn>
bool parses(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const kclpp::ProtocolError&) {
    return false;
  }
}

}  // namespace kclpp::fuzz
