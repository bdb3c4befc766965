#pragma once
// The pieces of credential_process, separate for unit tests.
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/aws/credentials.hpp"

namespace kclpp::aws::detail {

// Words of a command as a POSIX shell splits them: blanks separate, '...' is literal,
// "..." keeps blanks and takes \" \\ \$ \` escapes, a backslash outside quotes escapes the
// next character. Nothing is expanded. Throws ConfigError for an unterminated quote.
[[nodiscard]] std::vector<std::string> split_command(std::string_view command);

struct ProcessOutput {
  std::string out;
  std::string err;
  int exit_code = -1;  // 128 + signal when killed by one
  bool timed_out = false;
};
// Runs argv (PATH searched) with stdin from /dev/null, collecting stdout and stderr, and
// SIGKILLs it after `timeout`. Throws AuthError when it cannot be started.
[[nodiscard]] ProcessOutput run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// The credential document (Version 1). Throws AuthError naming the missing or bad field;
// never quotes the output.
[[nodiscard]] Credentials parse_process_output(const std::string& out, const std::string& program);

}  // namespace kclpp::aws::detail
