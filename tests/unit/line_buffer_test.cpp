// LineBuffer: the stdin/stdout line splitter of both protocol sides (docs/kcl-protocol.md §1 framing:
// lines of any length, '\r' stripped, empty lines kept for the caller to skip).

#include "io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "codec.hpp"
#include "../test_seed.hpp"

namespace kclpp::kcl::detail {
namespace {

// Appends `bytes` to the buffer as one commit.
void feed(LineBuffer& lb, std::string_view bytes) {
  char* p = lb.prepare(bytes.size());
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  lb.commit(bytes.size());
}

std::vector<std::string> drain(LineBuffer& lb) {
  std::vector<std::string> lines;
  std::string_view line;
  while (lb.next_line(line)) lines.emplace_back(line);
  return lines;
}

TEST(LineBuffer, SplitsLinesWithinOneCommit) {
  LineBuffer lb;
  feed(lb, "{\"a\":1}\n{\"b\":2}\nx\n");
  EXPECT_EQ(drain(lb), (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "x"}));
  EXPECT_EQ(lb.pending(), 0u);
}

TEST(LineBuffer, JoinsLinesSplitAcrossCommits) {
  LineBuffer lb;
  const std::string stream = "{\"action\":\"leaseLost\"}\nsecond line\r\nthird\n";
  std::vector<std::string> lines;
  for (const char c : stream) {  // one byte per commit
    feed(lb, std::string_view(&c, 1));
    for (auto& l : drain(lb)) lines.push_back(std::move(l));
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"action\":\"leaseLost\"}", "second line", "third"}));
}

TEST(LineBuffer, StripsOnlyTheTrailingCarriageReturn) {
  LineBuffer lb;
  feed(lb, "abc\r\n\r\na\rb\n\r\r\n");
  EXPECT_EQ(drain(lb), (std::vector<std::string>{"abc", "", "a\rb", "\r"}));
}

TEST(LineBuffer, KeepsEmptyLines) {
  LineBuffer lb;
  feed(lb, "\n\nx\n\n");
  EXPECT_EQ(drain(lb), (std::vector<std::string>{"", "", "x", ""}));
}

TEST(LineBuffer, KeepsThePendingTail) {
  LineBuffer lb;
  std::string_view line;
  EXPECT_FALSE(lb.next_line(line));
  EXPECT_EQ(lb.pending(), 0u);
  feed(lb, "abc\nde");
  ASSERT_TRUE(lb.next_line(line));
  EXPECT_EQ(line, "abc");
  EXPECT_FALSE(lb.next_line(line));
  EXPECT_EQ(lb.pending(), 2u);
  EXPECT_EQ(lb.pending_view(), "de");
  EXPECT_FALSE(lb.next_line(line));  // asking again changes nothing
  EXPECT_EQ(lb.pending_view(), "de");
  feed(lb, "f");
  EXPECT_FALSE(lb.next_line(line));
  EXPECT_EQ(lb.pending_view(), "def");
  feed(lb, "\r\ng");
  ASSERT_TRUE(lb.next_line(line));
  EXPECT_EQ(line, "def");
  EXPECT_EQ(lb.pending_view(), "g");
}

TEST(LineBuffer, HandlesTwentyMegabyteLine) {
  LineBuffer lb;
  std::string big(20u * 1024 * 1024, 'A');
  for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  std::size_t commits = 0;
  for (std::size_t off = 0; off < big.size(); off += 65536) {
    feed(lb, std::string_view(big).substr(off, 65536));
    std::string_view line;
    ASSERT_FALSE(lb.next_line(line));
    ++commits;
  }
  EXPECT_EQ(lb.pending(), big.size());
  feed(lb, "\r\nnext\n");
  std::string_view line;
  ASSERT_TRUE(lb.next_line(line));
  EXPECT_EQ(line.size(), big.size());
  EXPECT_TRUE(line == big);
  ASSERT_TRUE(lb.next_line(line));
  EXPECT_EQ(line, "next");
  EXPECT_GT(commits, 300u);
}

// The decoder reads up to decode_padding bytes past the end of a line; LineBuffer must keep
// them inside its allocation even when the line ends at the last committed byte.
TEST(LineBuffer, PaddingIsReadableAfterEveryLine) {
  for (const std::size_t size : {std::size_t{1}, std::size_t{63}, std::size_t{65536 - decode_padding},
                                 std::size_t{65536}, std::size_t{200000}}) {
    LineBuffer lb;
    std::string bytes(size, 'x');
    bytes.back() = '\n';
    feed(lb, bytes);
    std::string_view line;
    ASSERT_TRUE(lb.next_line(line));
    ASSERT_EQ(line.size(), size - 1);
    unsigned sum = 0;
    for (std::size_t k = 0; k < decode_padding; ++k) sum += static_cast<unsigned char>(line.data()[line.size() + k]);
    EXPECT_GE(sum, static_cast<unsigned>('\n'));  // reads are fine (ASan checks the bounds)
  }
}

TEST(LineBuffer, LinesDecodeInPlace) {
  LineBuffer lb;
  Decoder decoder;
  Message message;
  RecordBatch batch;
  const std::string stream =
      "\n{\"action\":\"status\",\"responseFor\":\"initialize\"}\n\r\n"
      "{\"action\":\"processRecords\",\"records\":[{\"data\":\"bWVvdw==\",\"partitionKey\":\"cat\","
      "\"sequenceNumber\":\"1\"}],\"millisBehindLatest\":0}\r\n";
  std::vector<Action> actions;
  for (std::size_t off = 0; off < stream.size(); off += 7) {
    feed(lb, std::string_view(stream).substr(off, 7));
    std::string_view line;
    while (lb.next_line(line)) {
      if (line.empty()) continue;
      decoder.decode(line, message, batch);
      actions.push_back(message.action);
    }
  }
  EXPECT_EQ(actions, (std::vector<Action>{Action::Status, Action::ProcessRecords}));
  ASSERT_EQ(batch.records.size(), 1u);
  EXPECT_EQ(batch.records[0].data, "meow");
}

// Random streams in random chunks (exercises compaction and growth with a pending tail).
TEST(LineBuffer, RandomChunkingMatchesSplit) {
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  for (int round = 0; round < 30; ++round) {
    std::vector<std::string> expected;
    std::string stream;
    const int n = 1 + static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) {
      std::size_t len = rng() % 8 == 0 ? rng() % 300000 : rng() % 100;
      std::string line(len, '\0');
      for (char& c : line) {
        c = static_cast<char>('a' + rng() % 26);
        if (rng() % 50 == 0) c = '\r';
      }
      if (!line.empty() && line.back() == '\r') line.back() = 'z';
      expected.push_back(line);
      stream += line;
      stream += rng() % 2 ? "\n" : "\r\n";
    }
    LineBuffer lb;
    std::vector<std::string> got;
    std::size_t off = 0;
    while (off < stream.size()) {
      const std::size_t chunk = std::min<std::size_t>(stream.size() - off, 1 + rng() % (rng() % 4 == 0 ? 200000 : 5000));
      // Like a reader: ask for room, use part of it.
      const std::size_t room = chunk + rng() % 1000;
      char* p = lb.prepare(room);
      std::memcpy(p, stream.data() + off, chunk);
      lb.commit(chunk);
      off += chunk;
      for (auto& l : drain(lb)) got.push_back(std::move(l));
    }
    EXPECT_EQ(lb.pending(), 0u);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected[i]) << "line " << i;
  }
}

// F_SETPIPE_SZ takes an int: a request above INT_MAX must not wrap to a tiny size and
// shrink the pipe (regression: it used to be cast straight to int).
TEST(PipeSize, HugeRequestNeverShrinksThePipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const std::size_t before = set_pipe_size(write_end.get(), 0);
  ASSERT_GT(before, 0U);
  for (const std::size_t huge : {(std::size_t{1} << 32) + 4096, std::size_t{1} << 31,
                                 static_cast<std::size_t>(-1)}) {
    EXPECT_GE(set_pipe_size(write_end.get(), huge), before) << huge;
  }
  UniqueFd not_a_pipe(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_GE(not_a_pipe.get(), 0);
  EXPECT_EQ(set_pipe_size(not_a_pipe.get(), std::size_t{1} << 20), 0U);
}

}  // namespace
}  // namespace kclpp::kcl::detail
