#include "args.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string_view>

#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail {

Args::Args(std::string usage, std::string description)
    : usage_(std::move(usage)), description_(std::move(description)) {}

Args& Args::option(const std::string& name, const std::string& value_name, const std::string& help,
                   std::optional<std::string> default_value) {
  order_.push_back(name);
  specs_[name] = Spec{value_name.empty() ? "VALUE" : value_name, help, std::move(default_value)};
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{{}, help, std::nullopt};
  return *this;
}

bool Args::parse(const std::vector<std::string>& argv) {
  bool options_done = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (options_done || arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      if (arg == "--") {
        options_done = true;
        continue;
      }
      if (!options_done && arg == "-h") return false;
      if (!options_done && arg.size() > 1 && arg[0] == '-' && arg != "-")
        throw ConfigError("unknown option '" + arg + "' (see --help)");
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (name == "help") return false;
    const auto spec = specs_.find(name);
    if (spec == specs_.end()) throw ConfigError("unknown option '--" + name + "' (see --help)");
    if (spec->second.value_name.empty()) {
      if (value) throw ConfigError("option '--" + name + "' takes no value");
      values_[name] = "1";
      continue;
    }
    if (!value) {
      if (i + 1 >= argv.size())
        throw ConfigError("option '--" + name + "' needs a value (" + spec->second.value_name + ")");
      value = argv[++i];
    }
    values_[name] = *value;
  }
  return true;
}

std::optional<std::string> Args::get(const std::string& name) const {
  if (const auto it = values_.find(name); it != values_.end()) return it->second;
  if (const auto spec = specs_.find(name); spec != specs_.end()) return spec->second.default_value;
  return std::nullopt;
}

std::string Args::get_or(const std::string& name, const std::string& fallback) const {
  return get(name).value_or(fallback);
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::optional<long long> Args::get_int(const std::string& name, long long min, long long max) const {
  const auto text = get(name);
  if (!text) return std::nullopt;
  long long value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc{} || end != text->data() + text->size() || value < min || value > max) {
    throw ConfigError("option '--" + name + "': '" + *text + "' is not an integer in [" +
                      std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return value;
}

namespace {

constexpr std::size_t help_column = 30;  // where option texts start
constexpr std::size_t help_width = 100;  // the widest line, unless one word is wider

// Appends `text` word by word, breaking lines before help_width; continuation lines start
// at help_column. `column` is where the first line already is.
void append_wrapped(std::string& out, std::string_view text, std::size_t column) {
  bool first = true;
  while (!text.empty()) {
    const auto start = text.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    text.remove_prefix(start);
    const auto end = std::min(text.find(' '), text.size());
    const std::string_view word = text.substr(0, end);
    if (!first && column + 1 + word.size() > help_width) {
      out += "\n" + std::string(help_column, ' ');
      column = help_column;
    } else if (!first) {
      out += ' ';
      ++column;
    }
    out.append(word);
    column += word.size();
    first = false;
    text.remove_prefix(end);
  }
}

}  // namespace

std::string Args::help() const {
  std::string out = "usage: " + usage_ + "\n\n" + description_ + "\n\noptions:\n";
  for (const std::string& name : order_) {
    const Spec& spec = specs_.at(name);
    std::string left = "  --" + name + (spec.value_name.empty() ? "" : " " + spec.value_name);
    if (left.size() < help_column) left.resize(help_column, ' ');
    else left += "\n" + std::string(help_column, ' ');
    out += left;
    std::string text = spec.help;
    if (spec.default_value) text += " (default: " + *spec.default_value + ")";
    append_wrapped(out, text, help_column);
    out += "\n";
  }
  out += "  --help                      this text\n";
  return out;
}

void add_log_to_option(Args& args) {
  args.option("log-to", "stderr|syslog",
              "where logs go: stderr (under systemd: the journal) or syslog(3), facility daemon; "
              "KCLPP_LOG_FORMAT=json makes each line a JSON object",
              "stderr");
}

void apply_log_to(const std::string& value, const std::string& where) {
  const std::optional<LogOutput> output = parse_log_output(value);
  if (!output) throw ConfigError(where + ": '" + value + "' is neither 'stderr' nor 'syslog'");
  set_log_output(*output);
}

void log_fatal(const std::string& message) {
  log(LogLevel::Error, message);
  if (log_output() != LogOutput::Syslog) return;
  const std::string line = format_log_line(LogLevel::Error, message, log_format()) + "\n";
  std::fputs(line.c_str(), stderr);
}

bool apply_log_to_option(const Args& args) {
  const auto value = args.get("log-to");
  if (!value || !args.has("log-to")) return false;
  apply_log_to(*value, "--log-to");
  return true;
}

}  // namespace kclpp::app::detail
