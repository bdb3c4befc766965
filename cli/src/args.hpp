#pragma once
// A small command-line parser for `kclpp ...` and kclpp::main: GNU-style long options
// (`--name value` or `--name=value`), flags, positional arguments, generated --help.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kclpp::app::detail {

class Args {
 public:
  // `usage` is the first line of --help, `description` the paragraph after it.
  Args(std::string usage, std::string description);

  // An option taking a value; `value_name` appears in --help (e.g. "NAME").
  Args& option(const std::string& name, const std::string& value_name, const std::string& help,
               std::optional<std::string> default_value = std::nullopt);
  // An option without a value.
  Args& flag(const std::string& name, const std::string& help);

  // Throws ConfigError naming the unknown option or the missing value. Returns false when
  // --help was given (help() has the text).
  bool parse(const std::vector<std::string>& argv);

  [[nodiscard]] std::optional<std::string> get(const std::string& name) const;
  [[nodiscard]] std::string get_or(const std::string& name, const std::string& fallback) const;
  [[nodiscard]] bool has(const std::string& name) const;  // given on the command line
  // An option parsed as an integer in [min, max]; ConfigError naming it otherwise.
  [[nodiscard]] std::optional<long long> get_int(const std::string& name, long long min,
                                                 long long max) const;
  [[nodiscard]] const std::vector<std::string>& positional() const noexcept { return positional_; }
  [[nodiscard]] std::string help() const;

 private:
  struct Spec {
    std::string value_name;  // empty: a flag
    std::string help;
    std::optional<std::string> default_value;
  };
  std::string usage_;
  std::string description_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// --log-to stderr|syslog, on the commands that run long (docs/operations.md §3).
void add_log_to_option(Args& args);
// Sends the logs to `value` ("stderr" or "syslog"); `where` names the option or key in
// the ConfigError thrown for any other value.
void apply_log_to(const std::string& value, const std::string& where);
// apply_log_to(--log-to) when it was given; returns whether it was.
bool apply_log_to_option(const Args& args);
// The last words of a command that fails: logged at ERROR, and also written to stderr when
// the logs go to syslog, where nothing may be listening (no /dev/log) while the
// supervisor that sees the exit reads stderr.
void log_fatal(const std::string& message);

}  // namespace kclpp::app::detail
