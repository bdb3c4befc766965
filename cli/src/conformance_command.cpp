// `kclpp conformance [options] -- CHILD_COMMAND [ARGS...]` (docs/operations.md §5): the
// options, the report on stdout, and the exit status for CI (0: nothing failed, 1: a
// scenario failed, 2: bad usage or a child that cannot be started).
#include <cstdio>
#include <string>
#include <vector>

#include "commands.hpp"
#include "conformance.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace kclpp::app::detail {

namespace {

constexpr int exit_usage = 2;

std::string scenario_list() {
  std::string out;
  std::size_t line_start = 0;
  for (const std::string_view name : conformance_scenarios()) {
    if (!out.empty()) out += ",";
    if (out.size() - line_start + name.size() > 78) {
      out += "\n";
      line_start = out.size();
    } else if (!out.empty()) {
      out += " ";
    }
    out += name;
  }
  return out;
}

// The child's words joined as the daemons' executableName, which is split on spaces
// without a shell (docs/kcl-protocol.md §1): a word with a space cannot be passed.
std::string child_command(const std::vector<std::string>& words) {
  if (words.empty()) throw ConfigError("no child command: kclpp conformance [options] -- CHILD_COMMAND [ARGS...]");
  std::string command;
  for (const std::string& w : words) {
    if (w.empty() || w.find(' ') != std::string::npos)
      throw ConfigError("child argument '" + w + "' is empty or has a space: the daemons split executableName "
                        "on spaces, so it cannot be passed (use a wrapper script)");
    if (!command.empty()) command += ' ';
    command += w;
  }
  return command;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

ConformanceOptions conformance_options(const Args& args) {
  ConformanceOptions o;
  o.command = child_command(args.positional());
  o.timeout = std::chrono::milliseconds(*args.get_int("timeout-ms", 1, 3'600'000));
  o.slow = std::chrono::milliseconds(*args.get_int("slow-ms", 1, 3'600'000));
  o.throughput_records = static_cast<std::size_t>(*args.get_int("throughput-records", 1, 10'000'000));
  o.throughput_batch = static_cast<std::size_t>(*args.get_int("throughput-batch", 1, 10'000));
  o.record_size = static_cast<std::size_t>(*args.get_int("record-size", 0, 1 << 20));
  if (const auto list = args.get("scenarios")) o.scenarios = split_list(*list);
  o.verbose = args.has("verbose");
  return o;
}

}  // namespace

Args conformance_args() {
  Args args("kclpp conformance [options] -- CHILD_COMMAND [ARGS...]",
            "Drives a multilang record processor (any language) through what a MultiLangDaemon\n"
            "sends, a fresh child per scenario, and prints one line per scenario: PASS; INFO (legal,\n"
            "or nothing to check); WARN (works, but costs duplicates, time, or a daemon version);\n"
            "FAIL (a daemon would fail, hang or lose progress), with what the child did wrong. Then\n"
            "the checks over the whole run (stray-stdout, strict-messages, reply-time). The report\n"
            "goes to stdout. Exit status: 0 when nothing failed, 1 when a scenario failed, 2 for bad\n"
            "usage or a child that cannot be started.\n\nScenarios, in this order:\n" +
                scenario_list() + ".");
  args.option("timeout-ms", "MS",
              "longest wait for each reply, as the daemon's timeoutInSeconds; the child is killed then", "10000")
      .option("slow-ms", "MS", "flag replies slower than this (reply-time)", "1000")
      .option("scenarios", "LIST", "comma-separated scenarios to run (default: all)")
      .option("throughput-records", "N", "records sent in the throughput scenario", "20000")
      .option("throughput-batch", "N", "records per processRecords in the throughput scenario", "500")
      .option("record-size", "BYTES", "data bytes per record in the throughput scenario", "1024")
      .flag("verbose", "copy the child's stderr and kclpp's log to stderr");
  return args;
}

int conformance_command(const std::vector<std::string>& argv) {
  Args args = conformance_args();
  ConformanceOptions options;
  try {
    if (!args.parse(argv)) {
      std::fputs(args.help().c_str(), stdout);
      return 0;
    }
    options = conformance_options(args);
  } catch (const ConfigError& e) {
    log_error("kclpp conformance: ", e.what());
    return exit_usage;
  }
  ConformanceReport report;
  try {
    report = run_conformance(options);
  } catch (const ConfigError& e) {
    log_error("kclpp conformance: ", e.what());
    return exit_usage;
  }
  const std::string text = format_report(report, options);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  return report.failed() ? 1 : 0;
}

}  // namespace kclpp::app::detail
