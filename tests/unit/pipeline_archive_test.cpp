// The .tri archive format (docs/triton.md §3): CRC-32C, the snappy framing writer and
// reader (golden bytes of §3.2, chunking, corrupt input), file sinks/sources, archive keys
// (§3.1) and the .metadata document (§3.5).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "crc32c.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"
#include "../test_seed.hpp"

namespace {

using namespace kclpp::pipeline;
namespace detail = kclpp::pipeline::detail;

const std::string identifier("\xff\x06\x00\x00sNaPpY", 10);

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (const int c : b) s.push_back(static_cast<char>(c));
  return s;
}

std::string write_archive(const std::vector<std::string>& records) {
  std::string out;
  ArchiveWriter w([&](std::string_view piece) { out.append(piece); });
  for (const auto& r : records) w.append(r);
  w.finish();
  EXPECT_EQ(w.compressed_bytes(), out.size());
  return out;
}

std::vector<std::string> read_all(ByteSource source, const std::string& name = "test.tri") {
  ArchiveReader reader(std::move(source), name);
  std::vector<std::string> out;
  while (auto r = reader.next_raw()) out.emplace_back(r->bytes);
  EXPECT_EQ(reader.records(), out.size());
  return out;
}

// A msgpack str8/16/32 of n bytes of `fill` text, inside a one-entry map {"t": ...}.
std::string text_record(const std::string& text) {
  std::string r = bytes({0x81, 0xa1, 't'});
  const std::size_t n = text.size();
  if (n < 32) {
    r.push_back(static_cast<char>(0xa0 | n));
  } else if (n < 256) {
    r += bytes({0xd9, static_cast<int>(n)});
  } else if (n < 65536) {
    r += bytes({0xda, static_cast<int>(n >> 8), static_cast<int>(n & 0xff)});
  } else {
    r += bytes({0xdb, static_cast<int>(n >> 24), static_cast<int>((n >> 16) & 0xff),
                static_cast<int>((n >> 8) & 0xff), static_cast<int>(n & 0xff)});
  }
  return r + text;
}

std::string random_text(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, ' ');
  for (auto& c : s) c = static_cast<char>('!' + rng() % 90);
  return s;
}

struct Chunk {
  unsigned type;
  std::size_t offset;
  std::string body;
};
// An independent walk over the chunk headers of a framed stream.
std::vector<Chunk> chunks_of(const std::string& s) {
  std::vector<Chunk> out;
  std::size_t i = 0;
  while (i + 4 <= s.size()) {
    const auto* u = reinterpret_cast<const unsigned char*>(s.data() + i);
    const std::size_t len = u[1] | (std::size_t{u[2]} << 8) | (std::size_t{u[3]} << 16);
    out.push_back({u[0], i, s.substr(i + 4, len)});
    i += 4 + len;
  }
  EXPECT_EQ(i, s.size());
  return out;
}

std::uint32_t le32(const std::string& s, std::size_t at) {
  const auto* u = reinterpret_cast<const unsigned char*>(s.data() + at);
  return u[0] | (std::uint32_t{u[1]} << 8) | (std::uint32_t{u[2]} << 16) | (std::uint32_t{u[3]} << 24);
}

// A framed uncompressed data chunk holding `data`, with its (correct) CRC.
std::string uncompressed_chunk(const std::string& data) {
  const std::uint32_t crc = masked_crc32c(data);
  const std::size_t len = data.size() + 4;
  std::string c = bytes({0x01, static_cast<int>(len & 0xff), static_cast<int>((len >> 8) & 0xff),
                         static_cast<int>(len >> 16)});
  for (int i = 0; i < 4; ++i) c.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return c + data;
}

// A source that is not a memory_source (read through the reader's buffer), 3 bytes a call.
ByteSource streaming(const std::string& bytes) {
  return [&bytes, offset = std::size_t{0}](char* buf, std::size_t size) mutable -> std::size_t {
    const std::size_t n = std::min({size, bytes.size() - offset, std::size_t{3}});
    std::copy_n(bytes.data() + offset, n, buf);
    offset += n;
    return n;
  };
}

// The ProtocolError message of reading `archive` to its end (empty if it did not throw),
// the same in place (memory_source) and through the reader's buffer, each with and
// without read-ahead; also the same records before it.
std::string read_error(const std::string& archive) {
  std::string messages[4];
  std::vector<std::string> records[4];
  for (int mode = 0; mode < 4; ++mode) {
    ArchiveReaderOptions options;
    options.read_ahead_chunks = mode >= 2 ? 2 : 0;
    ArchiveReader reader(mode % 2 == 1 ? streaming(archive) : memory_source(archive),
                         "s3://bucket/20150710/x-y-1.tri", options);
    try {
      while (auto r = reader.next_raw()) records[mode].emplace_back(r->bytes);
    } catch (const kclpp::ProtocolError& e) {
      messages[mode] = e.what();
    }
  }
  for (int mode = 1; mode < 4; ++mode) {
    EXPECT_EQ(messages[0], messages[mode]) << "mode " << mode;
    EXPECT_EQ(records[0], records[mode]) << "mode " << mode;
  }
  return messages[0];
}

// --- CRC-32C -------------------------------------------------------------------------------

TEST(Crc32c, KnownVectorsOnBothPaths) {
  using Fn = std::uint32_t (*)(std::uint32_t, const char*, std::size_t);
  std::vector<std::pair<const char*, Fn>> paths = {{"portable", detail::crc32c_portable}, {"dispatch", detail::crc32c}};
  if (detail::crc32c_hardware_available()) {
    paths.emplace_back("sse4.2", detail::crc32c_sse42);
  } else {
    std::fprintf(stderr, "note: no SSE4.2 on this CPU, hardware path not tested\n");
  }
  const std::string check = "123456789";
  const std::string zeros(32, '\0');
  const std::string ones(32, '\xff');
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  for (const auto& [name, fn] : paths) {
    SCOPED_TRACE(name);
    EXPECT_EQ(fn(0, check.data(), check.size()), 0xE3069283U);
    EXPECT_EQ(fn(0, nullptr, 0), 0U);
    // RFC 3720 (iSCSI) appendix B.4.
    EXPECT_EQ(fn(0, zeros.data(), zeros.size()), 0x8A9136AAU);
    EXPECT_EQ(fn(0, ones.data(), ones.size()), 0x62A8AB43U);
    EXPECT_EQ(fn(0, ascending.data(), ascending.size()), 0x46DD794EU);
  }
}

TEST(Crc32c, HardwareMatchesPortableAtEveryLengthAndAlignment) {
  if (!detail::crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2";
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  std::string buf(3 * 65536 + 64, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  // Every length around the 3 x 256 and 3 x 8192 block sizes, plus random ones.
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n < 800; ++n) lengths.push_back(n);
  for (std::size_t n = 24576 - 20; n < 24576 + 20; ++n) lengths.push_back(n);
  for (int i = 0; i < 200; ++i) lengths.push_back(rng() % (3 * 65536));
  lengths.push_back(65536);
  for (const std::size_t n : lengths) {
    const std::size_t align = rng() % 16;
    const char* p = buf.data() + align;
    const std::uint32_t want = detail::crc32c_portable(0, p, n);
    ASSERT_EQ(detail::crc32c_sse42(0, p, n), want) << "length " << n << " alignment " << align;
    // Continuation: the CRC of a + b from the CRC of a.
    const std::size_t split = n == 0 ? 0 : rng() % n;
    ASSERT_EQ(detail::crc32c_sse42(detail::crc32c_sse42(0, p, split), p + split, n - split), want);
    ASSERT_EQ(detail::crc32c_portable(detail::crc32c_portable(0, p, split), p + split, n - split), want);
  }
}

TEST(Crc32c, MaskedAsTheFramingFormatSays) {
  // docs/triton.md §3.2: the CRC of 81 a1 61 01 is stored as c2 be b9 b2.
  EXPECT_EQ(masked_crc32c(bytes({0x81, 0xa1, 0x61, 0x01})), 0xb2b9bec2U);
  const std::uint32_t crc = detail::crc32c("123456789");
  EXPECT_EQ(masked_crc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8U);
}

// --- writer --------------------------------------------------------------------------------

TEST(ArchiveWriter, GoldenOneRecordExample) {
  // docs/triton.md §3.2, "Minimal example", byte for byte.
  const std::string golden = identifier + bytes({0x01, 0x08, 0x00, 0x00, 0xc2, 0xbe, 0xb9, 0xb2, 0x81, 0xa1, 0x61, 0x01});
  EXPECT_EQ(write_archive({bytes({0x81, 0xa1, 0x61, 0x01})}), golden);

  std::string out;
  ArchiveWriter w([&](std::string_view piece) { out.append(piece); });
  w.append(Map{{"a", Value(1)}});
  w.finish();
  EXPECT_EQ(out, golden);
  EXPECT_EQ(w.records(), 1U);
  EXPECT_EQ(w.uncompressed_bytes(), 4U);
  EXPECT_EQ(w.compressed_bytes(), golden.size());
}

TEST(ArchiveWriter, CompressBehindWritesTheSameBytes) {
  std::mt19937_64 rng(5);
  std::vector<std::string> records;
  for (int i = 0; i < 3000; ++i) {
    const std::size_t n = i % 500 == 7 ? 100'000 : rng() % 900;
    records.push_back(text_record(i % 2 == 0 ? random_text(rng, n) : std::string(n, 'w')));
  }
  for (const std::size_t depth : {std::size_t{1}, std::size_t{4}}) {
    SCOPED_TRACE("depth " + std::to_string(depth));
    for (const std::size_t count : {std::size_t{0}, std::size_t{1}, records.size()}) {
      const std::vector<std::string> some(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(count));
      std::string out;
      ArchiveWriter w([&](std::string_view piece) { out.append(piece); }, ArchiveWriterOptions{depth});
      for (std::size_t i = 0; i < some.size(); ++i) {
        w.append(some[i]);
        if (i == 1000) {
          w.flush();
          EXPECT_EQ(out.size(), w.compressed_bytes()) << "flush returns once the sink has everything";
        }
      }
      w.finish();
      EXPECT_EQ(out.size(), w.compressed_bytes());
      std::string sync;
      ArchiveWriter s([&](std::string_view piece) { sync.append(piece); });
      for (std::size_t i = 0; i < some.size(); ++i) {
        s.append(some[i]);
        if (i == 1000) s.flush();
      }
      s.finish();
      EXPECT_TRUE(out == sync) << count << " records";
    }
  }
}

TEST(ArchiveWriter, SinkErrorsComeBackFromTheNextCall) {
  for (const std::size_t depth : {std::size_t{0}, std::size_t{2}}) {
    SCOPED_TRACE("depth " + std::to_string(depth));
    int calls = 0;
    ArchiveWriter w(
        [&](std::string_view) {
          if (++calls == 3) throw kclpp::TransportError("disk full");
        },
        ArchiveWriterOptions{depth});
    const std::string record = text_record(std::string(1000, 'e'));
    bool thrown = false;
    try {
      for (int i = 0; i < 1000; ++i) w.append(record);
      w.finish();
    } catch (const kclpp::TransportError& e) {
      thrown = true;
      EXPECT_STREQ(e.what(), "disk full");
    }
    EXPECT_TRUE(thrown);
  }
  // Destroyed without finish(): no flush, no hang.
  std::string out;
  {
    ArchiveWriter w([&](std::string_view piece) { out.append(piece); }, ArchiveWriterOptions{2});
    w.append(text_record("x"));
  }
  EXPECT_TRUE(out.empty());
}

TEST(ArchiveWriter, EmptyArchiveIsOnlyTheStreamIdentifier) {
  EXPECT_EQ(write_archive({}), identifier);
  EXPECT_TRUE(read_all(memory_source(identifier)).empty());
}

TEST(ArchiveWriter, ChunksHoldAtMost64KiBAndCompressOnlyWhenWorthIt) {
  std::mt19937_64 rng(7);
  std::vector<std::string> records;
  std::string stream;
  // 300 KB of repetitive text, then 300 KB of random text: records straddle chunks.
  for (std::size_t i = 0; i < 400; ++i) {
    records.push_back(text_record(std::string(700 + i % 50, static_cast<char>('a' + i % 3))));
  }
  for (std::size_t i = 0; i < 400; ++i) records.push_back(text_record(random_text(rng, 700 + i % 50)));
  for (const auto& r : records) stream += r;
  const std::string archive = write_archive(records);
  const auto chunks = chunks_of(archive);
  ASSERT_GE(chunks.size(), 10U);
  EXPECT_EQ(chunks.front().type, 0xffU);
  EXPECT_EQ(archive.substr(0, 10), identifier);
  std::size_t compressed = 0;
  std::size_t uncompressed = 0;
  std::size_t random_from = 0;
  for (std::size_t i = 0; i < 400; ++i) random_from += records[i].size();
  std::size_t at = 0;  // uncompressed offset
  for (std::size_t i = 1; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    ASSERT_TRUE(c.type == 0x00 || c.type == 0x01) << c.type;
    if (c.type == 0x01) {
      ++uncompressed;
      const std::string data = c.body.substr(4);
      EXPECT_EQ(data, stream.substr(at, data.size()));
      EXPECT_EQ(le32(c.body, 0), masked_crc32c(data));
      EXPECT_GE(at + data.size(), random_from) << "repetitive text stored uncompressed";
      at += data.size();
      if (i + 1 < chunks.size()) {
        EXPECT_EQ(data.size(), 65536U);
      }
    } else {
      ++compressed;
      EXPECT_LT(at, random_from) << "random text compressed";
      EXPECT_LT(c.body.size(), 65536U * 7 / 8);
      at += 65536;  // every compressed chunk here is a full one (the repetitive part is 290 KB)
    }
  }
  EXPECT_GE(compressed, 3U);
  EXPECT_GE(uncompressed, 3U);
  EXPECT_EQ(read_all(memory_source(archive)), records);
}

TEST(ArchiveWriter, FlushEndsAChunkAndRecordsLargerThanAChunkRoundTrip) {
  std::mt19937_64 rng(11);
  std::vector<std::string> records = {text_record("x"), text_record(random_text(rng, 200'000)),
                                      text_record(std::string(70'000, 'q')), text_record("y")};
  std::string out;
  ArchiveWriter w([&](std::string_view piece) { out.append(piece); });
  w.append(records[0]);
  w.flush();
  EXPECT_EQ(out.size(), identifier.size() + 8 + records[0].size()) << "flush emits the short chunk";
  for (std::size_t i = 1; i < records.size(); ++i) w.append(records[i]);
  w.finish();
  for (const Chunk& c : chunks_of(out)) {
    if (c.type == 0x01) {
      EXPECT_LE(c.body.size(), 65540U);
    }
  }
  EXPECT_EQ(read_all(memory_source(out)), records);
  EXPECT_EQ(w.records(), records.size());
}

// --- reader --------------------------------------------------------------------------------

TEST(ArchiveReader, RoundTripRandomRecordsThroughTinyReads) {
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  std::vector<std::string> records;
  for (int i = 0; i < 500; ++i) {
    const std::size_t n = rng() % 4 == 0 ? rng() % 5000 : rng() % 300;
    records.push_back(rng() % 2 == 0 ? text_record(random_text(rng, n)) : text_record(std::string(n, 'z')));
  }
  const std::string archive = write_archive(records);
  // A source that hands out 1..7 bytes per call.
  std::size_t offset = 0;
  ByteSource trickle = [&](char* buf, std::size_t size) -> std::size_t {
    const std::size_t n = std::min({size, archive.size() - offset, std::size_t{1} + rng() % 7});
    std::copy_n(archive.data() + offset, n, buf);
    offset += n;
    return n;
  };
  for (const std::size_t ahead : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE("read-ahead " + std::to_string(ahead));
    offset = 0;
    ArchiveReader reader(trickle, "trickle", ArchiveReaderOptions{ahead});
    std::uint64_t at = 0;
    for (const auto& want : records) {
      auto r = reader.next_raw();
      ASSERT_TRUE(r);
      ASSERT_EQ(r->bytes, want);
      EXPECT_EQ(r->offset, at);
      at += want.size();
    }
    EXPECT_FALSE(reader.next_raw());
    EXPECT_FALSE(reader.next_raw());
  }
}

TEST(ArchiveReader, ReadAheadReaderStopsWhenDestroyedEarly) {
  std::vector<std::string> records;
  for (int i = 0; i < 2000; ++i) records.push_back(text_record(std::string(500, 'k')));
  const std::string archive = write_archive(records);
  for (int i = 0; i < 20; ++i) {
    ArchiveReader reader(streaming(archive), "early", ArchiveReaderOptions{2});
    ASSERT_TRUE(reader.next());
    // The destructor stops the helper thread while it waits for room or reads.
  }
  ArchiveReader reader(file_source("/dev/null"), "empty", ArchiveReaderOptions{4});
  EXPECT_FALSE(reader.next());
}

TEST(ArchiveReader, RepeatedIdentifiersSkippableAndPaddingChunks) {
  const std::string a = bytes({0x81, 0xa1, 'a', 0x01});
  const std::string b = bytes({0x81, 0xa1, 'b', 0x02});
  const std::string archive = identifier + uncompressed_chunk(a) + bytes({0xfe, 0x03, 0x00, 0x00, 0, 0, 0}) +
                              identifier + bytes({0x80, 0x02, 0x00, 0x00, 'h', 'i'}) + uncompressed_chunk(b) +
                              bytes({0xfd, 0x00, 0x00, 0x00}) + identifier;
  EXPECT_EQ(read_all(memory_source(archive)), (std::vector<std::string>{a, b}));
  // Go's store: one framed stream per flushed segment, concatenated.
  EXPECT_EQ(read_all(memory_source(write_archive({a}) + write_archive({b}))), (std::vector<std::string>{a, b}));
  EXPECT_TRUE(read_all(memory_source("")).empty());
}

TEST(ArchiveReader, RecordsStraddleChunks) {
  // One record cut over three chunks, the next one starting mid-chunk.
  const std::string big = text_record(std::string(100, 'r'));
  const std::string small = bytes({0x81, 0xa1, 's', 0xc3});
  const std::string stream = big + small;
  const std::string archive = identifier + uncompressed_chunk(stream.substr(0, 10)) +
                              uncompressed_chunk(stream.substr(10, 50)) + uncompressed_chunk(stream.substr(60));
  EXPECT_EQ(read_all(memory_source(archive)), (std::vector<std::string>{big, small}));
}

TEST(ArchiveReader, RejectsCorruptStreamsNamingArchiveAndOffset) {
  const std::string rec = bytes({0x81, 0xa1, 'a', 0x01});
  const std::string good = identifier + uncompressed_chunk(rec);
  const std::string name = "s3://bucket/20150710/x-y-1.tri";
  const auto expect_error = [&](const std::string& archive, const std::string& what, std::size_t offset) {
    const std::string msg = read_error(archive);
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find("at byte " + std::to_string(offset)), std::string::npos) << msg;
  };
  EXPECT_EQ(read_error(good), "");
  expect_error(uncompressed_chunk(rec), "no stream identifier", 0);
  expect_error(bytes({0xfe, 0x00, 0x00, 0x00}) + good, "no stream identifier", 0);
  expect_error(bytes({0xff, 0x06, 0x00, 0x00}) + "sNaPpZ", "bad stream identifier", 0);
  expect_error(good + bytes({0x02, 0x00, 0x00, 0x00}), "reserved unskippable chunk type 2", good.size());
  expect_error(good + bytes({0x7f, 0x01, 0x00, 0x00, 0x00}), "reserved unskippable chunk type 127", good.size());
  expect_error(good + uncompressed_chunk(std::string(65537, '\0')), "over 65536", good.size());
  std::string bad_crc = good;
  bad_crc.back() = 0x02;
  expect_error(bad_crc, "CRC-32C mismatch", identifier.size());
  std::string bad_crc_field = good;
  bad_crc_field[identifier.size() + 4] ^= 1;
  expect_error(bad_crc_field, "CRC-32C mismatch", identifier.size());
  expect_error(good.substr(0, good.size() - 1), "truncated chunk", identifier.size());
  expect_error(good + bytes({0x00, 0x01}), "truncated chunk header", good.size());
  expect_error(good + bytes({0x80, 0x10, 0x00, 0x00, 'x'}), "truncated skippable chunk", good.size());
  // A compressed chunk whose snappy block is garbage (a length varint, then a copy from
  // before the start of the output).
  const std::string garbage = bytes({0x10, 0x06, 0xff, 0xff});
  std::string corrupt = bytes({0x00, static_cast<int>(garbage.size() + 4), 0x00, 0x00, 0, 0, 0, 0}) + garbage;
  expect_error(good + corrupt, "corrupt snappy block", good.size());
  // A compressed chunk declaring more than 64 KiB uncompressed (varint 65537).
  const std::string huge = bytes({0x81, 0x80, 0x04, 0x00});
  expect_error(good + bytes({0x00, 0x08, 0x00, 0x00, 0, 0, 0, 0}) + huge, "over 65536", good.size());
  // A record cut at the end of the stream.
  const std::string cut = identifier + uncompressed_chunk(rec + rec.substr(0, 2));
  const std::string msg = read_error(cut);
  EXPECT_NE(msg.find("truncated record at byte 4"), std::string::npos) << msg;
  // Bytes that are not msgpack (0xc1 is never used).
  const std::string not_msgpack = read_error(identifier + uncompressed_chunk(rec + bytes({0xc1})));
  EXPECT_NE(not_msgpack.find("not msgpack at byte 4"), std::string::npos) << not_msgpack;
}

TEST(ArchiveReader, NextDecodesMapsAndReportsNonMapsWithoutStopping) {
  const std::string archive =
      identifier + uncompressed_chunk(bytes({0x81, 0xa1, 'a', 0x01, 0x07, 0x81, 0xa1, 'b', 0xc0, 0x81, 0x01, 0x02}));
  ArchiveReader reader(memory_source(archive), "mixed.tri");
  auto first = reader.next();
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->ok()) << first->error;
  EXPECT_EQ(first->map, (Map{{"a", Value(1)}}));
  auto second = reader.next();
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->ok());
  EXPECT_NE(second->error.find("byte 4"), std::string::npos) << second->error;
  EXPECT_NE(second->error.find("mixed.tri"), std::string::npos) << second->error;
  EXPECT_TRUE(second->map.empty());
  auto third = reader.next();
  ASSERT_TRUE(third);
  ASSERT_TRUE(third->ok()) << third->error;
  EXPECT_EQ(third->map, (Map{{"b", Value(Nil{})}}));
  auto fourth = reader.next();  // {1: 2}: msgpack, but not string keys
  ASSERT_TRUE(fourth);
  EXPECT_FALSE(fourth->ok());
  EXPECT_NE(fourth->error.find("byte 9"), std::string::npos) << fourth->error;
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.records(), 4U);
  // A record cut by the end of the stream, and bytes that are not msgpack, through next().
  const std::string cut_bytes = identifier + uncompressed_chunk(bytes({0x81, 0xa1, 'a', 0x01, 0x82, 0xa1}));
  ArchiveReader cut(memory_source(cut_bytes), "cut");  // the bytes must outlive the source
  ASSERT_TRUE(cut.next());
  EXPECT_THROW((void)cut.next(), kclpp::ProtocolError);
  const std::string junk_bytes = identifier + uncompressed_chunk(bytes({0x81, 0xa1, 'a', 0xc1}));
  ArchiveReader junk(memory_source(junk_bytes), "junk");
  EXPECT_THROW((void)junk.next(), kclpp::ProtocolError);
}

// The storage-reusing next(out) must give exactly what next() gives, also when the shape of
// the records changes from one to the next (fewer or more fields, a field changing type,
// nested maps and arrays growing and shrinking, a non-map in between).
TEST(ArchiveReader, ReusedRecordEqualsFreshDecodingWhateverTheShapes) {
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  std::vector<std::string> records;
  for (int i = 0; i < 400; ++i) {
    if (rng() % 17 == 0) {
      records.push_back(std::string(1, static_cast<char>(0x07)));  // a non-map value
      continue;
    }
    Map record;
    const std::size_t fields = rng() % 6;
    for (std::size_t f = 0; f < fields; ++f) {
      const std::string key = rng() % 2 ? "k" + std::to_string(f) : random_text(rng, rng() % 40);
      switch (rng() % 6) {
        case 0: record.emplace_back(key, Value(static_cast<std::int64_t>(rng() % 100'000) - 50'000)); break;
        case 1: record.emplace_back(key, Value(random_text(rng, rng() % 300))); break;
        case 2: record.emplace_back(key, Value(Binary{random_text(rng, rng() % 20)})); break;
        case 3: record.emplace_back(key, Value(static_cast<double>(rng() % 1000) / 8.0)); break;
        case 4: {
          Array items;
          for (std::size_t n = rng() % 4; n > 0; --n) items.emplace_back(Value(random_text(rng, rng() % 10)));
          record.emplace_back(key, Value(std::move(items)));
          break;
        }
        default: {
          Map inner;
          for (std::size_t n = rng() % 3; n > 0; --n) inner.emplace_back("i" + std::to_string(n), Value(Nil{}));
          record.emplace_back(key, Value(std::move(inner)));
          break;
        }
      }
    }
    records.push_back(encode_record(record));
  }
  const std::string archive = write_archive(records);
  ArchiveReader fresh(memory_source(archive), "shapes.tri");
  ArchiveReader reused(memory_source(archive), "shapes.tri");
  DecodedRecord out;
  std::size_t n = 0;
  while (auto want = fresh.next()) {
    ASSERT_TRUE(reused.next(out)) << "record " << n;
    EXPECT_EQ(out.error, want->error) << "record " << n;
    if (want->ok()) {
      EXPECT_EQ(out.map, want->map) << "record " << n;
    }
    ++n;
  }
  EXPECT_FALSE(reused.next(out));
  EXPECT_EQ(n, records.size());
  // decode_record_into on its own, over the same records in reverse order.
  DecodedRecord into;
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    const DecodedRecord want = decode_record(*it);
    decode_record_into(*it, into);
    EXPECT_EQ(into.error, want.error);
    if (want.ok()) {
      EXPECT_EQ(into.map, want.map);
    }
  }
}

// --- files -------------------------------------------------------------------------------

TEST(ArchiveFiles, FileSinkAndFileSourceRoundTrip) {
  const auto dir = std::filesystem::temp_directory_path() / ("kclpp_archive_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "a.tri").string();
  std::vector<std::string> records;
  for (int i = 0; i < 300; ++i) records.push_back(text_record(std::string(static_cast<std::size_t>(i * 10), 'f')));
  {
    FileSink file(path);
    ArchiveWriter w(file.sink());
    for (const auto& r : records) w.append(r);
    w.finish();
    file.close();
    EXPECT_EQ(file.bytes_written(), w.compressed_bytes());
    EXPECT_EQ(std::filesystem::file_size(path), w.compressed_bytes());
  }
  EXPECT_EQ(read_all(file_source(path)), records);
  {
    FileSink again(path);  // truncates
    again.close();
  }
  EXPECT_EQ(std::filesystem::file_size(path), 0U);
  try {
    FileSink bad((dir / "no/such/dir.tri").string());
    ADD_FAILURE() << "no error";
  } catch (const kclpp::TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir.tri"), std::string::npos) << e.what();
  }
  try {
    (void)file_source((dir / "missing.tri").string());
    ADD_FAILURE() << "no error";
  } catch (const kclpp::TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.tri"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

// --- keys --------------------------------------------------------------------------------

TEST(ArchiveKey, FormatsGoStoreKeysInUtc) {
  // docs/triton.md §3.1's example: 1436553581 is 2015-07-10T18:39:41Z.
  ArchiveKey k{"user_activity_prod", "store", 1436553581, ""};
  EXPECT_EQ(k.str(), "20150710/user_activity_prod-store-1436553581.tri");
  EXPECT_EQ(metadata_key(k.str()), "20150710/user_activity_prod-store-1436553581.tri.metadata");
  EXPECT_EQ((ArchiveKey{"s", "c", 1436572799, ""}.date()), "20150710");  // 23:59:59Z
  EXPECT_EQ((ArchiveKey{"s", "c", 1436572800, ""}.date()), "20150711");
  EXPECT_EQ((ArchiveKey{"s", "c", 0, ""}.str()), "19700101/s-c-0.tri");
  EXPECT_EQ(day_folder(std::chrono::system_clock::time_point(std::chrono::seconds(1454083201))), "20160129");
  // A parsed key keeps its own folder (go-triton ran in a local time zone).
  ArchiveKey local{"s", "c", 1436572800, "20150710"};
  EXPECT_EQ(local.str(), "20150710/s-c-1436572800.tri");
}

TEST(ArchiveKey, RefusesDashSlashAndEmptyNames) {
  const auto message = [](const ArchiveKey& k) -> std::string {
    try {
      (void)k.str();
    } catch (const kclpp::ConfigError& e) {
      return e.what();
    }
    return {};
  };
  EXPECT_NE(message({"user-activity", "store", 1, ""}).find("stream name \"user-activity\""), std::string::npos);
  EXPECT_NE(message({"s", "store-1", 1, ""}).find("client name \"store-1\""), std::string::npos);
  EXPECT_NE(message({"s/t", "c", 1, ""}).find("'/'"), std::string::npos);
  EXPECT_NE(message({"", "c", 1, ""}).find("stream"), std::string::npos);
  EXPECT_NE(message({"s", "", 1, ""}).find("client"), std::string::npos);
  EXPECT_THROW(check_key_part("a-b", "client"), kclpp::ConfigError);
  EXPECT_NO_THROW(check_key_part("a_b.c", "client"));
}

TEST(ArchiveKey, ParsesAsGoTritonDoes) {
  auto k = ArchiveKey::parse("20150710/user_activity_prod-store-1436553581.tri");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->stream, "user_activity_prod");
  EXPECT_EQ(k->client, "store");
  EXPECT_EQ(k->unix_seconds, 1436553581);
  EXPECT_EQ(k->folder, "20150710");
  EXPECT_EQ(k->str(), "20150710/user_activity_prod-store-1436553581.tri");
  k = ArchiveKey::parse("/20160129/courier_activity_prod-store_prod-1454083201.tri");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->client, "store_prod");
  EXPECT_EQ(k->folder, "20160129");
  k = ArchiveKey::parse("20150711/s-archive-1436572800.tri");  // folder != date() kept
  ASSERT_TRUE(k);
  EXPECT_EQ(k->folder, "20150711");
  for (const char* bad : {"20150710/s-shardId-000000000001-1436553581.tri",  // legacy per-shard
                          "20150710/s-store-1436553581.tri.metadata", "20150710/s-1436553581.tri",
                          "20150710/s-store-.tri", "20150710/s-store-12a.tri", "2015071/s-store-1.tri",
                          "x/20150710/s-store-1.tri", "20150710s-store-1.tri", "20150710/s-store-1.tar",
                          "20150710/-store-1.tri", "20150710/s--1.tri", "20150710/s-store-99999999999999999999.tri",
                          ""}) {
    EXPECT_FALSE(ArchiveKey::parse(bad)) << bad;
  }
}

// --- metadata ------------------------------------------------------------------------------

TEST(ArchiveMetadata, MinMaxNumericallyAndJsonRoundTrip) {
  ArchiveMetadata m;
  m.add("shardId-000000000000", "9");
  m.add("shardId-000000000000", "10");  // string comparison would keep "9" as the max
  m.add("shardId-000000000000", "100");
  m.add("shardId-000000000000", "11");
  m.add("shardId-000000000001", "49590338271490256608559692538361571095921575989136588898");
  EXPECT_EQ(m.shards.at("shardId-000000000000"), (ShardRange{"9", "100"}));
  EXPECT_THROW(m.add("shardId-000000000000", "12x"), kclpp::ProtocolError);
  m.records = 4;
  m.bytes = 1234;
  m.sha256 = std::string(64, 'a');
  const std::string json = m.to_json();
  EXPECT_EQ(json.rfind("{\"shards\":{\"shardId-000000000000\":{\"min_sequence_number\":\"9\","
                       "\"max_sequence_number\":\"100\"}",
                       0),
            0U)
      << json;
  const ArchiveMetadata back = ArchiveMetadata::from_json(json);
  EXPECT_EQ(back.shards, m.shards);
  EXPECT_EQ(back.records, 4U);
  EXPECT_EQ(back.bytes, 1234U);
  EXPECT_EQ(back.sha256, m.sha256);
}

TEST(ArchiveMetadata, ReadsPr5DocumentsAndRejectsBadOnes) {
  const ArchiveMetadata pr5 = ArchiveMetadata::from_json(
      R"({"shards": {"shardId-000000000003": {"min_sequence_number": "123", "max_sequence_number": "456"}}})");
  EXPECT_EQ(pr5.shards.at("shardId-000000000003"), (ShardRange{"123", "456"}));
  EXPECT_EQ(pr5.records, 0U);
  for (const char* bad : {"", "[]", "{}", R"({"shards": []})", R"({"shards": {"s": 1}})",
                          R"({"shards": {"s": {"min_sequence_number": "1"}}})",
                          R"({"shards": {"s": {"min_sequence_number": "1", "max_sequence_number": "x"}}})",
                          R"({"shards": {}, "records": -1})", R"({"shards": {}, "sha256": 5})"}) {
    EXPECT_THROW((void)ArchiveMetadata::from_json(bad), kclpp::ProtocolError) << bad;
  }
}

}  // namespace
