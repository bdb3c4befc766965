// .tri archives both ways against the Python references (docs/triton.md §3.2): Debian's
// python3-snappy stream (de)compressor, which py-triton uses, and python3-msgpack. Python
// reads archives we write (several chunks, every record type, records larger than a
// chunk); we read archives py-triton's StreamArchiveWriter design writes, and a file of two
// concatenated Python streams, as Go's store writes them (repeated stream identifiers).
// Without /usr/bin/python3 and those modules the tests skip (fail when KCLPP_CI is set).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kclpp/pipeline/archive.hpp"
#include "kclpp/pipeline/value.hpp"
#include "local_server.hpp"
#include "support.hpp"
#include "../test_seed.hpp"

namespace {

using namespace kclpp::pipeline;
using kclpp::test::Subprocess;

const char* const python = "/usr/bin/python3";

// The reference side. `read TRI RAW`: decompresses TRI with StreamDecompressor (8 KiB
// reads, as py-triton's S3 reader), unpacks it with msgpack.Unpacker and compares with the
// plain msgpack stream RAW, value by value and byte by byte. `write TRI RAW SEED N
// [SEGMENTS]`: N random records (every msgpack type Python makes) packed into RAW and framed
// into TRI the way py-triton's StreamArchiveWriter does (1 MiB buffer, one add_chunk per
// flush, one identifier) or, with SEGMENTS > 1, as that many separate streams concatenated.
const char* const script = R"PY(
import io, json, random, sys
import crc32c, msgpack, snappy, snappy.snappy
snappy.snappy._crc32c = crc32c.crc32c  # Debian's helper fails on Python 3.11

def read_tri(path):
    d = snappy.StreamDecompressor()
    out = []
    with open(path, 'rb') as f:
        while True:
            b = f.read(8192)
            if not b:
                break
            out.append(d.decompress(b))
    d.flush()  # raises on a truncated chunk
    return b''.join(out)

def unpack(data):
    return list(msgpack.Unpacker(io.BytesIO(data), raw=False, strict_map_key=False))

def text(rng, n):
    alphabet = 'abcdefghij klmnopqrstuvwxyz0123456789\u00e9\u6f22\U0001f600'
    return ''.join(rng.choices(alphabet, k=n))

def record(rng, i):
    if i == 0:
        return {'a': 1}
    r = {'i': i, 'event': rng.choice(['click', 'view', 'buy']), 'text': text(rng, rng.choice([0, 5, 40, 300, 2000]))}
    k = rng.randrange(6)
    if k == 0:
        r.update({'n': None, 't': True, 'f': False, 'neg': -rng.randrange(2**63), 'u64': 2**64 - 1 - rng.randrange(1000)})
    elif k == 1:
        r.update({'bin': rng.randbytes(rng.randrange(300)), 'float': rng.random() * 1e6})
    elif k == 2:
        r.update({'arr': [1, -1, 'x', [True, None, 2.5]], 'm': {'nested': {'k': -129, 'empty': {}}}, 'e': []})
    elif k == 3:
        r['time'] = msgpack.ExtType(5, rng.randrange(2**63).to_bytes(8, 'big') + (123456789).to_bytes(4, 'big'))
        r['other_ext'] = msgpack.ExtType(42, b'opaque')
    elif k == 4:
        r['big'] = text(rng, rng.randrange(70000, 150000))  # larger than a chunk
    else:
        r.update({'int8': -100, 'int16': -30000, 'uint8': 200, 'uint16': 60000, 'int32': -2**31, 'uint32': 2**32 - 1})
    return r

mode = sys.argv[1]
if mode == 'read':
    data = read_tri(sys.argv[2])
    raw = open(sys.argv[3], 'rb').read()
    got, want = unpack(data), unpack(raw)
    print(json.dumps({'records': len(got), 'bytes_equal': data == raw, 'records_equal': got == want,
                      'all_maps': all(isinstance(r, dict) for r in got), 'first': repr(got[0]) if got else None}))
elif mode == 'write':
    tri, raw_path, seed, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    segments = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    rng = random.Random(seed)
    packed = [msgpack.packb(record(rng, i), use_bin_type=True) for i in range(n)]
    per_segment = (n + segments - 1) // segments
    out = []
    for s in range(segments):
        c = snappy.StreamCompressor()
        buf, size = [], 0
        for p in packed[s * per_segment:(s + 1) * per_segment]:
            buf.append(p)
            size += len(p)
            if size >= 1 << 20:
                out.append(c.add_chunk(b''.join(buf)))
                buf, size = [], 0
        if buf:
            out.append(c.add_chunk(b''.join(buf)))
    open(tri, 'wb').write(b''.join(out))
    open(raw_path, 'wb').write(b''.join(packed))
    print(json.dumps({'records': n}))
)PY";

class ArchivePython : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("kclpp_archive_python_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    script_ = (dir_ / "ref.py").string();
    std::ofstream(script_) << script;
    if (::access(python, X_OK) != 0) {
      unavailable_ = std::string(python) + " not found";
      return;
    }
    Subprocess probe({python, "-c", "import crc32c, msgpack, snappy"});
    const auto status = probe.wait(std::chrono::seconds(30));
    if (!status || !status->exited || status->code != 0) {
      unavailable_ = "python3-snappy, python3-msgpack or python3-crc32c missing: " + probe.stderr_text();
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the script; its one JSON output line.
  std::string run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {python, script_};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess p(argv);
    const auto status = p.wait(std::chrono::seconds(120));
    EXPECT_TRUE(status && status->exited && status->code == 0)
        << (status ? status->str() : "timeout") << "\n" << p.stderr_text();
    const auto lines = p.read_lines_until_eof(std::chrono::seconds(5));
    return lines.empty() ? std::string() : lines.back();
  }

  std::string path(const char* name) const { return (dir_ / name).string(); }

  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::filesystem::path dir_;
  std::string script_;
  std::string unavailable_;
};

#define KCLPP_REQUIRE_PYTHON() KCLPP_REQUIRE_PRESENT(unavailable_)

std::string random_text(std::mt19937_64& rng, std::size_t n, bool repetitive) {
  static const std::string words[] = {"delivery ", "courier ", "pickup ", "order ", "é", "漢字 "};
  std::string s;
  while (s.size() < n) {
    if (repetitive) {
      s += words[rng() % 6];
    } else {
      s.push_back(static_cast<char>('0' + rng() % 75));
    }
  }
  return s;
}

// A record using every Value type; some larger than a 64 KiB chunk.
Map random_record(std::mt19937_64& rng, std::uint64_t i) {
  Map m;
  m.emplace_back("i", Value(static_cast<std::int64_t>(i)));
  m.emplace_back("text", Value(random_text(rng, rng() % 4 == 0 ? rng() % 3000 : rng() % 200, rng() % 2 == 0)));
  switch (rng() % 6) {
    case 0:
      m.emplace_back("nil", Value(Nil{}));
      m.emplace_back("yes", Value(true));
      m.emplace_back("min", Value(std::numeric_limits<std::int64_t>::min()));
      m.emplace_back("max", Value(std::numeric_limits<std::uint64_t>::max()));
      break;
    case 1:
      m.emplace_back("f32", Value(Float32{1.5F}));
      m.emplace_back("f64", Value(static_cast<double>(rng() % 1000000) / 7.0));
      m.emplace_back("bin", Value(Binary{random_text(rng, rng() % 300, false) + std::string(3, '\0')}));
      break;
    case 2:
      m.emplace_back("arr", Value(Array{Value(1), Value("x"), Value(Array{Value(false), Value(Nil{})})}));
      m.emplace_back("map", Value(Map{{"nested", Value(Map{{"k", Value(-129)}})}, {"empty", Value(Map{})}}));
      break;
    case 3:
      m.emplace_back("time", Value(Time{1436553581, 300000000}));
      m.emplace_back("ext", Value(Extension{42, "opaque"}));
      m.emplace_back("ts", Value(Extension{-1, std::string("\x00\x00\x00\x01", 4)}));
      break;
    case 4:
      m.emplace_back("big", Value(random_text(rng, 70'000 + rng() % 80'000, rng() % 2 == 0)));
      break;
    default:
      m.emplace_back("ints", Value(Array{Value(-100), Value(-30000), Value(std::uint64_t{200}),
                                         Value(std::uint64_t{60000}), Value(std::int64_t{-2147483648LL}),
                                         Value(std::uint64_t{4294967295ULL})}));
  }
  return m;
}

TEST_F(ArchivePython, PythonReadsOurArchives) {
  KCLPP_REQUIRE_PYTHON();
  const kclpp::test::TestSeed seed;
  std::mt19937_64 rng(seed.value());
  std::string raw;
  std::uint64_t records = 0;
  {
    FileSink file(path("ours.tri"));
    ArchiveWriter w(file.sink());
    w.append(Map{{"a", Value(1)}});
    raw += encode_record(Map{{"a", Value(1)}});
    for (std::uint64_t i = 1; i < 600; ++i) {
      const Map m = random_record(rng, i);
      const std::string bytes = encode_record(m);
      raw += bytes;
      if (i % 2 == 0) {
        w.append(m);
      } else {
        w.append(bytes);
      }
      if (i % 97 == 0) w.flush();  // short chunks in the middle too
    }
    w.finish();
    file.close();
    records = w.records();
    EXPECT_GT(w.compressed_bytes() / 65536, 20U) << "want many chunks";
  }
  std::ofstream(path("ours.raw"), std::ios::binary) << raw;
  const std::string result = run({"read", path("ours.tri"), path("ours.raw")});
  EXPECT_NE(result.find("\"records\": " + std::to_string(records)), std::string::npos) << result;
  EXPECT_NE(result.find("\"bytes_equal\": true"), std::string::npos) << result;
  EXPECT_NE(result.find("\"records_equal\": true"), std::string::npos) << result;
  EXPECT_NE(result.find("\"all_maps\": true"), std::string::npos) << result;
  EXPECT_NE(result.find("\"first\": \"{'a': 1}\""), std::string::npos) << result;
}

TEST_F(ArchivePython, WeReadPythonArchivesAndConcatenatedStreams) {
  KCLPP_REQUIRE_PYTHON();
  for (const int segments : {1, 2}) {
    SCOPED_TRACE("segments " + std::to_string(segments));
    const std::string result = run({"write", path("py.tri"), path("py.raw"), "1234", "500", std::to_string(segments)});
    ASSERT_NE(result.find("\"records\": 500"), std::string::npos) << result;
    const std::string raw = slurp(path("py.raw"));
    const std::string tri = slurp(path("py.tri"));
    // Count identifiers: one per Python stream.
    const std::string identifier("\xff\x06\x00\x00sNaPpY", 10);
    std::size_t identifiers = 0;
    for (std::size_t at = tri.find(identifier); at != std::string::npos; at = tri.find(identifier, at + 1)) {
      ++identifiers;
    }
    EXPECT_GE(identifiers, static_cast<std::size_t>(segments));

    ArchiveReader raw_reader(file_source(path("py.tri")), "py.tri");
    std::string stream;
    while (auto r = raw_reader.next_raw()) stream.append(r->bytes);
    EXPECT_EQ(raw_reader.records(), 500U);
    EXPECT_TRUE(stream == raw) << "decompressed stream differs from Python's msgpack bytes";

    ArchiveReader reader(file_source(path("py.tri")), "py.tri");
    std::uint64_t n = 0;
    std::uint64_t big = 0;
    while (auto d = reader.next()) {
      ASSERT_TRUE(d->ok()) << d->error;
      if (n == 0) {
        EXPECT_EQ(d->map, (Map{{"a", Value(1)}}));
      } else {
        const Value* i = nullptr;
        for (const auto& [k, v] : d->map) {
          if (k == "i") i = &v;
          if (k == "big") ++big;
          if (k == "time") {
            EXPECT_TRUE(v.is<Time>()) << "ext 5 is Go's time";
          }
        }
        ASSERT_NE(i, nullptr);
        const auto* as_int = i->get_if<std::int64_t>();
        const auto* as_uint = i->get_if<std::uint64_t>();
        EXPECT_EQ(as_int ? static_cast<std::uint64_t>(*as_int) : as_uint ? *as_uint : 0, n);
      }
      ++n;
    }
    EXPECT_EQ(n, 500U);
    EXPECT_GT(big, 0U) << "no record larger than a chunk";
  }
}

}  // namespace
