// libFuzzer target for the .tri archive reader (pipeline/src/archive_reader.cpp): the snappy
// framing format and the msgpack record splitter over outside bytes (S3 objects). Each input
// is read as is and behind a stream identifier (so that the fuzzer reaches the chunk parser);
// its first byte picks the size of the source's reads and whether to compare with a
// read-ahead reader. Reading must never crash or throw anything but ProtocolError; records
// must lie back to back in the decompressed stream; the outcome must not depend on the read
// size or on read-ahead; and the records of an archive that reads cleanly must survive a
// round trip through ArchiveWriter byte for byte.
// Seed corpus: tests/fuzz/corpus/snappy_frames/.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/pipeline/archive.hpp"
#include "kclpp/processor/error.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace kclpp::pipeline;

using kclpp::fuzz::bug;
using kclpp::fuzz::check;

ByteSource chunked(std::string_view bytes, std::size_t step) {
  return [bytes, step, offset = std::size_t{0}](char* buffer, std::size_t size) mutable -> std::size_t {
    const std::size_t n = std::min({size, step, bytes.size() - offset});
    if (n > 0) std::memcpy(buffer, bytes.data() + offset, n);
    offset += n;
    return n;
  };
}

// Reads `archive` to its end or its first error; the raw records it gave.
std::vector<std::string> read(std::string_view archive, std::size_t step, bool& clean, std::size_t ahead = 0) {
  std::vector<std::string> records;
  clean = false;
  try {
    ArchiveReader reader(chunked(archive, step), "fuzz.tri", ArchiveReaderOptions{ahead});
    std::uint64_t next_offset = 0;
    while (auto r = reader.next_raw()) {
      check(!r->bytes.empty(), "empty record");
      check(r->offset == next_offset, "records are not back to back");
      next_offset += r->bytes.size();
      records.emplace_back(r->bytes);
      if (records.size() % 2 == 0) {
        const DecodedRecord d = decode_record(r->bytes);
        check(d.ok() || d.map.empty(), "a bad record with a map");
      }
    }
    check(reader.records() == records.size(), "records() disagrees");
    clean = true;
  } catch (const kclpp::ProtocolError& e) {
    check(std::strstr(e.what(), "fuzz.tri") != nullptr, "error does not name the archive");
  }
  return records;
}

void run(std::string_view archive, std::size_t step, bool with_read_ahead) {
  bool clean = false;
  const std::vector<std::string> records = read(archive, step, clean);
  // Another read size must not change the outcome.
  bool clean_whole = false;
  const std::vector<std::string> again = read(archive, 1 << 20, clean_whole);
  check(clean == clean_whole && records == again, "the outcome depends on the source's read size");
  if (with_read_ahead) {  // a thread per reader: only for some inputs, to keep the pace
    bool clean_ahead = false;
    const std::vector<std::string> ahead = read(archive, step, clean_ahead, 1);
    check(clean == clean_ahead && records == ahead, "the outcome depends on read-ahead");
  }
  if (!clean) return;
  std::string out;
  ArchiveWriter w([&](std::string_view piece) { out.append(piece); });
  for (const auto& r : records) w.append(r);
  w.finish();
  bool clean_out = false;
  check(read(out, step, clean_out) == records && clean_out, "records do not survive a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte: the source's read size (low 6 bits), and read-ahead (both high bits).
  const std::size_t step = 1 + data[0] % 64;
  const bool with_read_ahead = (data[0] & 0xc0) == 0xc0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  run(input, step, with_read_ahead);
  static const std::string identifier("\xff\x06\x00\x00sNaPpY", 10);
  run(identifier + std::string(input), step, with_read_ahead);
  return 0;
}
