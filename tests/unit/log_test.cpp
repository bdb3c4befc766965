// The logger (docs/operations.md §3): JSON lines that parse whatever the message bytes,
// context fields that nest and unwind, levels, the text format and the syslog rendering.
// The built-in sink is checked where it writes, fd 2, redirected to a file for the test.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kclpp/processor/log.hpp"

namespace {

using kclpp::LogContext;
using kclpp::LogField;
using kclpp::LogFormat;
using kclpp::LogLevel;

// Points fd 2 at a temporary file while it lives; text() reads what was written.
class StderrCapture {
 public:
  StderrCapture() : file_(std::tmpfile()), saved_(::dup(STDERR_FILENO)) {
    EXPECT_NE(file_, nullptr);
    EXPECT_GE(saved_, 0);
    EXPECT_EQ(::dup2(::fileno(file_), STDERR_FILENO), STDERR_FILENO);
  }
  ~StderrCapture() {
    restore();
    std::fclose(file_);
  }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  // Restores fd 2 and returns everything written meanwhile.
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* file_;
  int saved_;
};

// Resets the logger's global settings after each test.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kclpp::set_log_sink({});
    kclpp::set_log_level(LogLevel::Info);
  }
  void TearDown() override {
    kclpp::set_log_sink({});
    kclpp::set_log_level(LogLevel::Info);
    kclpp::set_log_format(LogFormat::Text);
  }
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start) + "<no newline>");
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// RFC 3339 UTC with milliseconds, and within a minute of now.
void expect_recent_time(const std::string& time) {
  static const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  ASSERT_TRUE(std::regex_match(time, rfc3339)) << time;
  std::tm tm{};
  ASSERT_NE(strptime(time.c_str(), "%Y-%m-%dT%H:%M:%S", &tm), nullptr);
  const auto logged = std::chrono::system_clock::from_time_t(timegm(&tm));
  const auto skew = std::chrono::system_clock::now() - logged;
  EXPECT_LT(std::chrono::abs(skew), std::chrono::minutes(1)) << time;
}

TEST_F(LogTest, JsonLinesParseForAnyMessageBytes) {
  const std::string big(64 * 1024, 'x');
  struct Case {
    std::string message;
    std::string expected;  // the message as JSON gives it back
  };
  const std::vector<Case> cases = {
      {R"(say "hi" \ back\slash)", R"(say "hi" \ back\slash)"},
      {"two\nlines\r\nand a tab\t", "two\nlines\r\nand a tab\t"},
      {std::string("nul\0bell\a esc\x1b del\x7f us\x1f", 22), std::string("nul\0bell\a esc\x1b del\x7f us\x1f", 22)},
      {"utf-8 \xC3\xBC \xE2\x82\xAC \xF0\x9F\x98\x80", "utf-8 \xC3\xBC \xE2\x82\xAC \xF0\x9F\x98\x80"},
      // Ill-formed UTF-8: each maximal ill-formed subpart becomes one U+FFFD.
      {"bad \xFF\xFE end", "bad \xEF\xBF\xBD\xEF\xBF\xBD end"},
      {"cut \xE2\x82", "cut \xEF\xBF\xBD"},
      {"overlong \xC0\xAF surrogate \xED\xA0\x80", "overlong \xEF\xBF\xBD\xEF\xBF\xBD surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {big, big},
      {"", ""},
  };
  kclpp::set_log_format(LogFormat::Json);
  std::string out;
  {
    StderrCapture capture;
    LogContext shard("shard", "shardId-000000000001");
    for (const Case& c : cases) kclpp::log(LogLevel::Info, c.message);
    kclpp::log_warn("warned ", 42);
    out = capture.text();
  }
  const auto lines = split_lines(out);
  ASSERT_EQ(lines.size(), cases.size() + 1) << "one line per record, whatever the message holds";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i], nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "line " << i << " is not JSON: " << lines[i].substr(0, 200);
    ASSERT_TRUE(j.is_object());
    std::set<std::string> keys;
    for (const auto& [key, value] : j.items()) keys.insert(key);
    EXPECT_EQ(keys, (std::set<std::string>{"time", "level", "message", "shard"})) << lines[i].substr(0, 200);
    expect_recent_time(j.value("time", ""));
    EXPECT_EQ(j.value("shard", ""), "shardId-000000000001");
    if (i < cases.size()) {
      EXPECT_EQ(j.value("level", ""), "INFO");
      EXPECT_EQ(j.value("message", ""), cases[i].expected) << "case " << i;
    } else {
      EXPECT_EQ(j.value("level", ""), "WARN");
      EXPECT_EQ(j.value("message", ""), "warned 42");
    }
  }
  // The big line went out whole, in one piece.
  EXPECT_GT(lines[cases.size() - 2].size(), big.size());
}

TEST_F(LogTest, ContextFieldsNestShadowAndUnwindPerThread) {
  EXPECT_TRUE(kclpp::log_fields().empty());
  {
    LogContext shard("shard", "shardId-000000000007");
    EXPECT_EQ(kclpp::log_fields(), (std::vector<LogField>{{"shard", "shardId-000000000007", false}}));
    {
      LogContext pid("child_pid", 4242);
      LogContext reserved("message", "x");
      EXPECT_EQ(kclpp::log_fields(), (std::vector<LogField>{{"shard", "shardId-000000000007", false},
                                                            {"child_pid", "4242", true},
                                                            {"field_message", "x", false}}));
      EXPECT_EQ(kclpp::format_log_line(LogLevel::Info, "hello", LogFormat::Text, kclpp::LogLineFor::Syslog),
                "[shardId-000000000007 child_pid=4242 field_message=x] hello");
      const auto j = nlohmann::json::parse(kclpp::format_log_line(LogLevel::Error, "hello", LogFormat::Json));
      EXPECT_EQ(j.at("child_pid"), 4242) << "an integer field is a JSON number";
      EXPECT_EQ(j.at("field_message"), "x");
      EXPECT_EQ(j.at("message"), "hello");
      EXPECT_EQ(j.at("level"), "ERROR");
      {
        // An inner guard with the same key hides the outer value, once.
        LogContext inner("shard", "shardId-000000000008");
        const auto fields = kclpp::log_fields();
        ASSERT_EQ(fields.size(), 3U);
        EXPECT_EQ(fields[0], (LogField{"shard", "shardId-000000000008", false}));
        const std::string line = kclpp::format_log_line(LogLevel::Info, "m", LogFormat::Json);
        EXPECT_EQ(line.find("shardId-000000000007"), std::string::npos) << line;
        EXPECT_EQ(nlohmann::json::parse(line).at("shard"), "shardId-000000000008");
      }
      EXPECT_EQ(kclpp::log_fields().front().value, "shardId-000000000007");
      // Another thread has its own (empty) context.
      std::vector<LogField> other{{"x", "y", false}};
      std::thread([&] { other = kclpp::log_fields(); }).join();
      EXPECT_TRUE(other.empty());
    }
    EXPECT_EQ(kclpp::log_fields().size(), 1U);
  }
  EXPECT_TRUE(kclpp::log_fields().empty());
  EXPECT_EQ(kclpp::format_log_line(LogLevel::Info, "bare", LogFormat::Text, kclpp::LogLineFor::Syslog), "bare");
}

TEST_F(LogTest, TextStaysTheDefaultWithFieldsInBrackets) {
  std::string out;
  {
    StderrCapture capture;
    kclpp::log_info("no context, two\nlines");
    LogContext shard("shard", "shardId-000000000001");
    kclpp::log_error("with context");
    out = capture.text();
  }
  const auto lines = split_lines(out);
  ASSERT_EQ(lines.size(), 2U) << out;
  static const std::regex line0(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO no context, two lines)");
  static const std::regex line1(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR \[shardId-000000000001\] with context)");
  EXPECT_TRUE(std::regex_match(lines[0], line0)) << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], line1)) << lines[1];
}

TEST_F(LogTest, LevelsFilterAndNameEveryLine) {
  kclpp::set_log_format(LogFormat::Json);
  kclpp::set_log_level(LogLevel::Warn);
  std::string out;
  {
    StderrCapture capture;
    kclpp::log_debug("d");
    kclpp::log_info("i");
    kclpp::log_warn("w");
    kclpp::log_error("e");
    kclpp::set_log_level(LogLevel::Debug);
    kclpp::log_debug("d2");
    out = capture.text();
  }
  std::vector<std::string> got;
  for (const auto& line : split_lines(out)) {
    const auto j = nlohmann::json::parse(line);
    got.push_back(j.at("level").get<std::string>() + ":" + j.at("message").get<std::string>());
  }
  EXPECT_EQ(got, (std::vector<std::string>{"WARN:w", "ERROR:e", "DEBUG:d2"}));

  EXPECT_EQ(kclpp::parse_log_level("WARNING"), LogLevel::Warn);
  EXPECT_EQ(kclpp::parse_log_level("loud"), std::nullopt);
  EXPECT_EQ(kclpp::parse_log_format("JSON"), LogFormat::Json);
  EXPECT_EQ(kclpp::parse_log_format("xml"), std::nullopt);
  EXPECT_EQ(kclpp::parse_log_output("syslog"), kclpp::LogOutput::Syslog);
  EXPECT_EQ(kclpp::parse_log_output("journal"), std::nullopt);
}

// A user sink gets the bare message and can read the context on the logging thread.
TEST_F(LogTest, UserSinkSeesBareMessageAndFields) {
  std::vector<std::string> seen;
  kclpp::set_log_sink([&](LogLevel, std::string_view message) {
    std::string s(message);
    for (const auto& f : kclpp::log_fields()) s += " " + f.key + "=" + f.value;
    seen.push_back(s);
  });
  {
    LogContext shard("shard", "s-1");
    kclpp::log_info("m1");
  }
  kclpp::log_info("m2");
  EXPECT_EQ(seen, (std::vector<std::string>{"m1 shard=s-1", "m2"}));
}

// Syslog stamps time and priority itself: a text line starts at the fields; JSON lines are
// the same object as on stderr. (syslog(3) itself is not called: no /dev/log here.)
TEST_F(LogTest, SyslogRenderingLeavesTimeAndLevelToSyslog) {
  LogContext shard("shard", "shardId-000000000002");
  EXPECT_EQ(kclpp::format_log_line(LogLevel::Warn, "slow\nchild", LogFormat::Text, kclpp::LogLineFor::Syslog),
            "[shardId-000000000002] slow child");
  const auto j = nlohmann::json::parse(
      kclpp::format_log_line(LogLevel::Warn, "slow\nchild", LogFormat::Json, kclpp::LogLineFor::Syslog));
  EXPECT_EQ(j.at("message"), "slow\nchild");
  EXPECT_EQ(j.at("shard"), "shardId-000000000002");
  EXPECT_EQ(j.at("level"), "WARN");
}

}  // namespace
