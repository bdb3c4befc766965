// The command-line parser of `kclpp` and kclpp::main (cli/src/args.cpp): parsing, its
// errors, and the --help layout.
#include "args.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "kclpp/processor/error.hpp"

namespace {

using kclpp::app::detail::Args;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Args, LongHelpTextsWrapAtWordsUnderOneHundredColumns) {
  Args args("prog [options]", "A program.");
  args.option("checkpoint-db", "URI",
              "where checkpoints go: sqlite:PATH | postgres://user@host/db | memory: (the "
              "default keeps them next to the application, which is what a laptop wants)",
              "sqlite:app.db");
  args.flag("verbose", "say more");
  const auto lines = lines_of(args.help());
  std::string joined;
  bool in_option = false;
  for (const auto& line : lines) {
    EXPECT_LE(line.size(), 100u) << line;
    if (line.rfind("  --checkpoint-db", 0) == 0) {
      in_option = true;
      joined = line.substr(30);
    } else if (in_option && line.rfind(std::string(30, ' '), 0) == 0) {
      joined += " " + line.substr(30);  // a continuation line starts at the option column
    } else {
      in_option = false;
    }
  }
  EXPECT_EQ(joined,
            "where checkpoints go: sqlite:PATH | postgres://user@host/db | memory: (the default "
            "keeps them next to the application, which is what a laptop wants) (default: "
            "sqlite:app.db)");
  EXPECT_NE(args.help().find("  --verbose                   say more\n"), std::string::npos);
}

TEST(Args, AWordWiderThanTheLineIsKeptWhole) {
  Args args("prog", "P.");
  const std::string url(120, 'x');
  args.option("endpoint", "URL", "for example " + url);
  const std::string help = args.help();
  EXPECT_NE(help.find("\n" + std::string(30, ' ') + url + "\n"), std::string::npos) << help;
}

TEST(Args, ValuesFlagsAndPositionalsAreParsed) {
  Args args("prog", "P.");
  args.option("stream", "NAME", "the stream").option("max", "N", "a limit", "5").flag("follow", "keep reading");
  ASSERT_TRUE(args.parse({"--stream=orders", "file.properties", "--follow", "--max", "7"}));
  EXPECT_EQ(args.get("stream"), "orders");
  EXPECT_EQ(args.get_int("max", 1, 10), 7);
  EXPECT_TRUE(args.has("follow"));
  EXPECT_EQ(args.positional(), std::vector<std::string>{"file.properties"});
}

TEST(Args, MistakesAreConfigErrorsNamingTheOption) {
  Args args("prog", "P.");
  args.option("max", "N", "a limit").flag("follow", "keep reading");
  try {
    Args a = args;
    (void)a.parse({"--nope"});
    FAIL() << "accepted an unknown option";
  } catch (const kclpp::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--nope"), std::string::npos) << e.what();
  }
  Args b = args;
  EXPECT_THROW((void)b.parse({"--follow=yes"}), kclpp::ConfigError);
  Args c = args;
  EXPECT_THROW((void)c.parse({"--max"}), kclpp::ConfigError);
  Args d = args;
  ASSERT_TRUE(d.parse({"--max", "11"}));
  EXPECT_THROW((void)d.get_int("max", 1, 10), kclpp::ConfigError);
  Args e = args;
  EXPECT_FALSE(e.parse({"--help"}));
}

}  // namespace
