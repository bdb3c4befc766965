#pragma once
// The seed of a randomised test: printed on every run, replayed with KCLPP_TEST_SEED=N
// (tests/README.md). Header-only, so unit tests use it without the integration support lib.
//
//   const kclpp::test::TestSeed seed;
//   std::mt19937_64 rng(seed.value());

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <source_location>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace kclpp::test {

// KCLPP_TEST_SEED when it is set (to replay a failure), else a fresh seed from
// std::random_device. While the object lives, every failure of the test names the seed (a
// SCOPED_TRACE at the line that made it); the seed is also printed to stderr and recorded
// as the test's "seed" property (--gtest_output=xml). Not copyable or movable (it holds a
// trace). Thread safety: make and destroy it on the test's thread; value() from any.
class TestSeed {
 public:
  explicit TestSeed(std::source_location where = std::source_location::current())
      : value_(choose()), trace_(where.file_name(), static_cast<int>(where.line()), replay_hint()) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::cerr << "[ seed     ] "
              << (test != nullptr ? std::string(test->test_suite_name()) + "." + test->name() + ": " : "")
              << replay_hint() << std::endl;
    ::testing::Test::RecordProperty("seed", std::to_string(value_));
  }
  TestSeed(const TestSeed&) = delete;
  TestSeed& operator=(const TestSeed&) = delete;

  [[nodiscard]] std::uint64_t value() const noexcept { return value_; }

 private:
  static std::uint64_t choose() {
    const char* env = std::getenv("KCLPP_TEST_SEED");
    if (env != nullptr && *env != '\0') {
      const std::string_view text(env);
      std::uint64_t seed = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seed);
      if (error == std::errc{} && end == text.data() + text.size()) return seed;
      // A typo must not silently replay some other run.
      ADD_FAILURE() << "KCLPP_TEST_SEED=" << text << " is not a decimal number; using a fresh seed";
    }
    std::random_device device;
    return (std::uint64_t{device()} << 32) | std::uint64_t{device()};
  }
  [[nodiscard]] std::string replay_hint() const { return "KCLPP_TEST_SEED=" + std::to_string(value_); }

  std::uint64_t value_;
  ::testing::ScopedTrace trace_;
};

}  // namespace kclpp::test
