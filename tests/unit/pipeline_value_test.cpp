// Triton records (docs/triton.md §2): msgpack decoding of every type from exact bytes,
// encoding, validation, the record splitter, JSON rendering and partition keys.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>

#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

std::string hex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// The one value of a one-entry map {"v": <bytes>}.
Value decode_field(std::string_view value_bytes) {
  const std::string rec = hex("81a176") + std::string(value_bytes);
  const DecodedRecord d = decode_record(rec);
  EXPECT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(validate_record(rec), "");
  if (!d.ok() || d.map.size() != 1) return {};
  EXPECT_EQ(d.map[0].first, "v");
  return d.map[0].second;
}

TEST(PipelineValue, DecodesEveryIntegerFamily) {
  EXPECT_EQ(decode_field(hex("00")), Value(std::int64_t{0}));        // positive fixint
  EXPECT_EQ(decode_field(hex("7f")), Value(std::int64_t{127}));
  EXPECT_EQ(decode_field(hex("ff")), Value(std::int64_t{-1}));       // negative fixint
  EXPECT_EQ(decode_field(hex("e0")), Value(std::int64_t{-32}));
  EXPECT_EQ(decode_field(hex("ccc8")), Value(std::int64_t{200}));    // uint8
  EXPECT_EQ(decode_field(hex("cd1234")), Value(std::int64_t{0x1234}));
  EXPECT_EQ(decode_field(hex("ce12345678")), Value(std::int64_t{0x12345678}));
  EXPECT_EQ(decode_field(hex("cf7fffffffffffffff")),
            Value(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(decode_field(hex("cfffffffffffffffff")),  // above INT64_MAX: stays unsigned
            Value(std::numeric_limits<std::uint64_t>::max()));
  EXPECT_EQ(decode_field(hex("d080")), Value(std::int64_t{-128}));   // int8
  EXPECT_EQ(decode_field(hex("d07f")), Value(std::int64_t{127}));
  EXPECT_EQ(decode_field(hex("d1ff00")), Value(std::int64_t{-256}));  // int16
  EXPECT_EQ(decode_field(hex("d2ffff0000")), Value(std::int64_t{-65536}));
  EXPECT_EQ(decode_field(hex("d38000000000000000")),
            Value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(decode_field(hex("d300000000000000c8")), Value(std::int64_t{200}));  // msgp's int64
}

TEST(PipelineValue, DecodesScalarsStringsAndBinaries) {
  EXPECT_EQ(decode_field(hex("c0")), Value(Nil{}));
  EXPECT_EQ(decode_field(hex("c2")), Value(false));
  EXPECT_EQ(decode_field(hex("c3")), Value(true));
  EXPECT_EQ(decode_field(hex("ca3fc00000")), Value(Float32{1.5F}));  // float32 kept apart
  EXPECT_EQ(decode_field(hex("cb3ff8000000000000")), Value(1.5));
  EXPECT_EQ(decode_field(hex("a0")), Value(std::string()));
  EXPECT_EQ(decode_field(hex("a3616263")), Value("abc"));
  // Go writes strings of 32 bytes and more as str8 (docs/triton.md §2).
  EXPECT_EQ(decode_field(hex("d920") + std::string(32, 'a')), Value(std::string(32, 'a')));
  EXPECT_EQ(decode_field(hex("da0003") + "xyz"), Value("xyz"));
  EXPECT_EQ(decode_field(hex("db00000003") + "xyz"), Value("xyz"));
  EXPECT_EQ(decode_field(hex("c4020001")), Value(Binary{std::string("\x00\x01", 2)}));
  EXPECT_EQ(decode_field(hex("c50002ffee")), Value(Binary{"\xff\xee"}));
  EXPECT_EQ(decode_field(hex("c600000001ab")), Value(Binary{"\xab"}));
}

TEST(PipelineValue, DecodesGoTimeAndOtherExtensions) {
  // msgp's time.Time: ext8, 12 bytes, type 5: BE int64 1466026755 s, BE int32 300000000 ns.
  EXPECT_EQ(decode_field(hex("c70c05000000005761cb0311e1a300")),
            Value(Time{1466026755, 300000000}));
  // Type 5 with another length is not a Go time: kept opaque.
  EXPECT_EQ(decode_field(hex("d60501020304")), Value(Extension{5, "\x01\x02\x03\x04"}));
  EXPECT_EQ(decode_field(hex("d4ff07")), Value(Extension{-1, "\x07"}));  // msgpack timestamp
  EXPECT_EQ(decode_field(hex("d50301ff")), Value(Extension{3, "\x01\xff"}));
  EXPECT_EQ(decode_field(hex("d7") + "\x04" + std::string(8, 'x')),
            Value(Extension{4, std::string(8, 'x')}));
  EXPECT_EQ(decode_field(hex("d8") + "\x09" + std::string(16, 'y')),
            Value(Extension{9, std::string(16, 'y')}));
  EXPECT_EQ(decode_field(hex("c8000209abcd")), Value(Extension{9, "\xab\xcd"}));
  EXPECT_EQ(decode_field(hex("c9000000010901")), Value(Extension{9, "\x01"}));
}

TEST(PipelineValue, DecodesNestedContainersAndBinKeys) {
  EXPECT_EQ(decode_field(hex("90")), Value(Array{}));
  EXPECT_EQ(decode_field(hex("9201a178")), Value(Array{1, "x"}));
  EXPECT_EQ(decode_field(hex("dc000201c0")), Value(Array{1, Nil{}}));
  EXPECT_EQ(decode_field(hex("dd0000000101")), Value(Array{1}));
  EXPECT_EQ(decode_field(hex("81a16b81a16aff")), Value(Map{{"k", Map{{"j", -1}}}}));
  EXPECT_EQ(decode_field(hex("de0001a16b01")), Value(Map{{"k", 1}}));
  EXPECT_EQ(decode_field(hex("df00000001a16b01")), Value(Map{{"k", 1}}));
  // Keys may be bin (msgp ReadMapStrIntfBytes accepts both) and keep wire order.
  const DecodedRecord d = decode_record(hex("82c4017a01a16102"));
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.map, (Map{{"z", 1}, {"a", 2}}));
}

TEST(PipelineValue, DecodesARecordPackedByPythonMsgpack) {
  // /usr/bin/python3 -c "import msgpack; print(msgpack.packb({'s':'hi','n':-33,'u':200,
  //   'big':2**64-1,'f':1.5,'b':b'\x00\x01','t':True,'z':None,'a':[1,'x'],'m':{'k':-1}},
  //   use_bin_type=True).hex())"
  const std::string bytes = hex(
      "8aa173a26869a16ed0dfa175ccc8a3626967cfffffffffffffffffa166cb3ff8000000000000a162c402"
      "0001a174c3a17ac0a1619201a178a16d81a16bff");
  const DecodedRecord d = decode_record(bytes);
  ASSERT_TRUE(d.ok()) << d.error;
  const Map expected{{"s", "hi"},
                     {"n", -33},
                     {"u", 200},
                     {"big", std::numeric_limits<std::uint64_t>::max()},
                     {"f", 1.5},
                     {"b", Binary{std::string("\x00\x01", 2)}},
                     {"t", true},
                     {"z", Nil{}},
                     {"a", Array{1, "x"}},
                     {"m", Map{{"k", -1}}}};
  EXPECT_EQ(d.map, expected);
  // And we write it back byte for byte as msgpack-python did.
  EXPECT_EQ(encode_record(d.map), bytes);
}

TEST(PipelineValue, EncodesShortestFormatsLikeMsgpackPython) {
  auto enc = [](const Value& v) {
    std::string s;
    encode_value(v, s);
    return s;
  };
  EXPECT_EQ(enc(5), hex("05"));
  EXPECT_EQ(enc(-1), hex("ff"));
  EXPECT_EQ(enc(-33), hex("d0df"));
  EXPECT_EQ(enc(200), hex("ccc8"));
  EXPECT_EQ(enc(std::int64_t{-129}), hex("d1ff7f"));
  EXPECT_EQ(enc(std::int64_t{70000}), hex("ce00011170"));
  EXPECT_EQ(enc(std::uint64_t{5}), hex("05"));
  EXPECT_EQ(enc(std::int64_t{1} << 40), hex("cf0000010000000000"));
  EXPECT_EQ(enc(1.0), hex("cb3ff0000000000000"));  // stays float64 though integral
  EXPECT_EQ(enc(Float32{2.0F}), hex("ca40000000"));
  EXPECT_EQ(enc(std::string(31, 'a')), hex("bf") + std::string(31, 'a'));
  EXPECT_EQ(enc(std::string(32, 'a')), hex("d920") + std::string(32, 'a'));
  EXPECT_EQ(enc(std::string(256, 'a')), hex("da0100") + std::string(256, 'a'));
  EXPECT_EQ(enc(Binary{"ab"}), hex("c4026162"));
  EXPECT_EQ(enc(Time{1466026755, 300000000}), hex("c70c05000000005761cb0311e1a300"));
  EXPECT_EQ(enc(Extension{3, "\x01\x02"}), hex("d5030102"));
  EXPECT_EQ(enc(Extension{3, "abc"}), hex("c70303616263"));
  EXPECT_EQ(enc(Array{Nil{}, true, false}), hex("93c0c3c2"));
  EXPECT_EQ(encode_record(Map{{"k", Map{}}}), hex("81a16b80"));
  EXPECT_EQ(encode_record(Map{}), hex("80"));
}

TEST(PipelineValue, RoundTripsEveryType) {
  const Map rec{{"nil", Nil{}},
                {"t", true},
                {"neg", std::numeric_limits<std::int64_t>::min()},
                {"u", std::numeric_limits<std::uint64_t>::max()},
                {"f32", Float32{-0.25F}},
                {"f64", 1e300},
                {"s", std::string(70000, 'q')},
                {"b", Binary{std::string(300, '\0')}},
                {"a", Array{Array{}, Map{}, Array{1, 2}}},
                {"m", Map{{"deep", Map{{"er", "x"}}}}},
                {"time", Time{-5, 999999999}},
                {"ext", Extension{-1, std::string(16, 'e')}}};
  const std::string bytes = encode_record(rec);
  EXPECT_EQ(validate_record(bytes), "");
  const DecodedRecord d = decode_record(bytes);
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.map, rec);
  std::string err;
  EXPECT_EQ(msgpack_value_size(bytes, err), bytes.size());
  EXPECT_EQ(err, "");
}

// Python's msgpack (what py-triton readers use) reads what we write, and packs it back
// byte for byte (use_bin_type=True): the same formats for every type. ~50 ms.
TEST(PipelineValue, PythonMsgpackReadsAndRewritesOurBytesExactly) {
  if (::access("/usr/bin/python3", X_OK) != 0) {
    if (std::getenv("KCLPP_CI") != nullptr) FAIL() << "/usr/bin/python3 missing in CI";
    GTEST_SKIP() << "/usr/bin/python3 missing";
  }
  const Map rec{{"nil", Nil{}}, {"t", true}, {"f", false},
                {"ints", Array{0, 127, 128, 255, 256, 65535, 65536, std::int64_t{1} << 32, -1,
                               -32, -33, -128, -129, -32768, -32769,
                               std::numeric_limits<std::int64_t>::min()}},
                {"umax", std::numeric_limits<std::uint64_t>::max()},
                {"d", 1.0}, {"pi", 3.141592653589793},
                {"s0", ""}, {"s31", std::string(31, 'a')}, {"s32", std::string(32, 'b')},
                {"s256", std::string(256, 'c')}, {"s70k", std::string(70000, 'd')},
                {"utf8", "h\xc3\xa9llo"},
                {"bin", Binary{std::string(300, '\x01')}},
                {"arr16", Array(20, Value(1))},
                {"map16", [] { Map m; for (int i = 0; i < 20; ++i) m.emplace_back("k" + std::to_string(i), i); return m; }()},
                {"nested", Map{{"a", Map{{"b", Array{Map{}}}}}}},
                {"time", Time{1466026755, 300000000}},
                {"e1", Extension{1, "x"}}, {"e16", Extension{2, std::string(16, 'y')}},
                {"e3", Extension{3, "abc"}}};
  const std::string ours = encode_record(rec);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("kclpp-value-" + std::to_string(::getpid()) + ".msgpack")).string();
  std::ofstream(path, std::ios::binary) << ours;
  const std::string cmd =
      "/usr/bin/python3 -c \"import sys, msgpack; "
      "r = msgpack.unpackb(open(sys.argv[1], 'rb').read(), raw=False); "
      "assert r['time'].code == 5 and len(r['time'].data) == 12; "
      "assert r['s32'] == 'b' * 32 and r['bin'] == b'\\x01' * 300 and r['utf8'] == 'h\\xe9llo'; "
      "sys.stdout.buffer.write(msgpack.packb(r, use_bin_type=True))\" " + path;
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string theirs;
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) theirs.append(buf, n);
  const int status = ::pclose(p);
  std::filesystem::remove(path);
  ASSERT_EQ(status, 0) << "python3 failed (is python3-msgpack installed?)";
  EXPECT_EQ(theirs.size(), ours.size());
  EXPECT_TRUE(theirs == ours) << "Python packs these values differently";
  const DecodedRecord d = decode_record(theirs);
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.map, rec);
}

TEST(PipelineValue, ReportsRecordsThatAreNotMaps) {
  for (const char* h : {"93010203", "a3616263", "01", "c0"}) {
    const std::string bytes = hex(h);
    const DecodedRecord d = decode_record(bytes);
    EXPECT_FALSE(d.ok()) << h;
    EXPECT_NE(d.error.find("not a msgpack map"), std::string::npos) << d.error;
    EXPECT_EQ(validate_record(bytes), d.error);
  }
  EXPECT_NE(decode_record(hex("93010203")).error.find("an array"), std::string::npos);
  EXPECT_NE(decode_record("").error.find("empty"), std::string::npos);
}

TEST(PipelineValue, ReportsTrailingBytesWithTheOffset) {
  const std::string bytes = hex("81a16101") + "xy";
  const DecodedRecord d = decode_record(bytes);
  EXPECT_FALSE(d.ok());
  EXPECT_EQ(d.error, "trailing bytes: the map ends at byte 4 of 6");
  EXPECT_EQ(validate_record(bytes), d.error);
}

TEST(PipelineValue, ReportsTruncationAtEveryCut) {
  const std::string full = encode_record(Map{{"s", std::string(40, 'z')},
                                             {"i", std::int64_t{1} << 40},
                                             {"t", Time{1, 2}},
                                             {"a", Array{1.5, Float32{2}}}});
  for (std::size_t cut = 1; cut < full.size(); ++cut) {
    const std::string part = full.substr(0, cut);
    const DecodedRecord d = decode_record(part);
    EXPECT_FALSE(d.ok()) << cut;
    EXPECT_NE(d.error.find("truncated"), std::string::npos) << cut << ": " << d.error;
    EXPECT_EQ(validate_record(part), d.error) << cut;
    std::string err = "stale";
    EXPECT_EQ(msgpack_value_size(part, err), 0U) << cut;
    EXPECT_EQ(err, "") << cut;  // partial, not bad
    std::string_view view = part;
    EXPECT_FALSE(decode_value(view, err).has_value());
    EXPECT_EQ(err, "");
    EXPECT_EQ(view.size(), part.size());  // nothing consumed
  }
  EXPECT_EQ(decode_record(hex("81a161d920") + "abc").error,
            "truncated msgpack: the value at byte 3 (a str) runs past the end of the 8 bytes");
}

TEST(PipelineValue, RefusesNestingDeeperThan256) {
  // The top map is level 1; 255 arrays inside it make 256 levels: accepted.
  std::string ok = hex("81a161") + std::string(255, '\x91') + hex("01");
  EXPECT_TRUE(decode_record(ok).ok()) << decode_record(ok).error;
  EXPECT_EQ(validate_record(ok), "");
  std::string err;
  EXPECT_EQ(msgpack_value_size(ok, err), ok.size());
  // One more level is refused, with the offset of the container that is too deep.
  const std::string deep = hex("81a161") + std::string(256, '\x91') + hex("01");
  const DecodedRecord d = decode_record(deep);
  EXPECT_FALSE(d.ok());
  EXPECT_EQ(d.error, "msgpack nests deeper than 256 levels at byte 258");
  EXPECT_EQ(validate_record(deep), d.error);
  EXPECT_EQ(msgpack_value_size(deep, err), 0U);
  EXPECT_EQ(err, d.error);
  // A hostile record of a million nested arrays fails fast instead of overflowing the stack.
  const std::string hostile = hex("81a161") + std::string(1'000'000, '\x91');
  EXPECT_FALSE(decode_record(hostile).ok());
}

TEST(PipelineValue, RefusesBadBytesAndNonTextKeys) {
  const DecodedRecord bad = decode_record(hex("81a161c1"));
  EXPECT_EQ(bad.error, "invalid msgpack: byte 0xc1 at byte 3");
  std::string err;
  EXPECT_EQ(msgpack_value_size(hex("c1"), err), 0U);
  EXPECT_EQ(err, "invalid msgpack: byte 0xc1 at byte 0");

  const std::string int_key = hex("810102");
  EXPECT_EQ(decode_record(int_key).error, "map key at byte 1 is an int, not a str or bin");
  EXPECT_EQ(validate_record(int_key), decode_record(int_key).error);
  const std::string nested = hex("81a16181c0c0");
  EXPECT_EQ(validate_record(nested), "map key at byte 4 is nil, not a str or bin");
  // The splitter does not care about key types: it only measures msgpack.
  EXPECT_EQ(msgpack_value_size(int_key, err), 3U);
  EXPECT_EQ(err, "");
}

TEST(PipelineValue, HugeClaimedCountsDoNotAllocate) {
  // array32 / map32 claiming 4 billion entries in a few bytes: truncated, quickly.
  EXPECT_NE(decode_record(hex("81a161ddffffffff01")).error.find("truncated"), std::string::npos);
  EXPECT_NE(decode_record(hex("dfffffffffa16101")).error.find("truncated"), std::string::npos);
  EXPECT_NE(decode_record(hex("81a161dbffffffff")).error.find("truncated"), std::string::npos);
}

TEST(PipelineValue, SplitsAStreamOfMapsWithValueSize) {
  std::string stream;
  const Map a{{"a", 1}};
  const Map b{{"b", std::string(100, 'x')}};
  encode_record(a, stream);
  const std::size_t first = stream.size();
  encode_record(b, stream);
  std::string err;
  EXPECT_EQ(msgpack_value_size(stream, err), first);
  EXPECT_EQ(msgpack_value_size(std::string_view(stream).substr(first), err), stream.size() - first);
  EXPECT_EQ(msgpack_value_size(std::string_view(stream).substr(first, 10), err), 0U);
  EXPECT_EQ(err, "");
  EXPECT_EQ(msgpack_value_size({}, err), 0U);
  EXPECT_EQ(err, "");

  std::string_view rest = stream;
  auto v1 = decode_value(rest, err);
  ASSERT_TRUE(v1.has_value()) << err;
  EXPECT_EQ(*v1, Value(a));
  EXPECT_EQ(rest.size(), stream.size() - first);
  auto v2 = decode_value(rest, err);
  ASSERT_TRUE(v2.has_value()) << err;
  EXPECT_EQ(*v2, Value(b));
  EXPECT_TRUE(rest.empty());
  std::string_view bad = "\xc1";
  EXPECT_FALSE(decode_value(bad, err).has_value());
  EXPECT_NE(err, "");
}

TEST(PipelineValue, FindsMapEntries) {
  const Value v = Map{{"a", 1}, {"b", "two"}};
  ASSERT_NE(v.find("b"), nullptr);
  EXPECT_EQ(*v.find("b"), Value("two"));
  EXPECT_EQ(v.find("c"), nullptr);
  EXPECT_EQ(Value(1).find("a"), nullptr);
  // A repeated key: the last value wins, as in Go's map and Python's dict.
  const Value dup = Map{{"k", 1}, {"k", 2}};
  EXPECT_EQ(*dup.find("k"), Value(2));
  EXPECT_EQ(partition_key_of(std::get<Map>(dup.storage()), "k"), "2");
}

TEST(PipelineValueJson, RendersEveryTypeOnOneLine) {
  const Map rec{{"nil", Nil{}},
                {"t", true},
                {"f", false},
                {"i", -7},
                {"u", std::numeric_limits<std::uint64_t>::max()},
                {"d", 0.1},
                {"e", 1e20},
                {"f32", Float32{0.1F}},
                {"nan", std::nan("")},
                {"inf", -std::numeric_limits<double>::infinity()},
                {"s", "a\"b\\c\n\t\x01/é"},
                {"b", Binary{std::string("\x00\xff\x10", 3)}},
                {"a", Array{1, Array{}, Map{}}},
                {"m", Map{{"z", 1}, {"a", 2}}},
                {"time", Time{1466026755, 0}},
                {"ns", Time{1466026755, 300000000}},
                {"x", Extension{3, "ab"}}};
  EXPECT_EQ(to_json(rec),
            R"({"nil":null,"t":true,"f":false,"i":-7,"u":18446744073709551615,"d":0.1,)"
            R"("e":1e+20,"f32":0.1,"nan":null,"inf":null,"s":"a\"b\\c\n\t\u0001/é",)"
            R"("b":"AP8Q","a":[1,[],{}],"m":{"z":1,"a":2},"time":"2016-06-15T21:39:15Z",)"
            R"("ns":"2016-06-15T21:39:15.3Z","x":{"$ext":3,"data":"YWI="}})");
}

TEST(PipelineValueJson, ReplacesInvalidUtf8) {
  auto j = [](std::string s) { return to_json(Map{{"k", s}}); };
  EXPECT_EQ(j("ok\xff"), "{\"k\":\"ok\xEF\xBF\xBD\"}");
  EXPECT_EQ(j("\xc3"), "{\"k\":\"\xEF\xBF\xBD\"}");              // cut 2-byte sequence
  EXPECT_EQ(j("\xe2\x82x"), "{\"k\":\"\xEF\xBF\xBDx\"}");        // one U+FFFD per subpart
  EXPECT_EQ(j("\xed\xa0\x80"), "{\"k\":\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"}");  // surrogate
  EXPECT_EQ(j("\xc0\xaf"), "{\"k\":\"\xEF\xBF\xBD\xEF\xBF\xBD\"}");  // overlong
  EXPECT_EQ(j("\xf0\x9f\x98\x80"), "{\"k\":\"\xf0\x9f\x98\x80\"}");  // valid 4-byte kept
  EXPECT_EQ(to_json(Map{{"\xff", 1}}), "{\"\xEF\xBF\xBD\":1}");      // keys too
}

TEST(PipelineValueJson, RendersTimesAsRfc3339Utc) {
  auto t = [](std::int64_t s, std::int32_t ns) { return to_json(Map{{"t", Time{s, ns}}}); };
  EXPECT_EQ(t(0, 0), R"({"t":"1970-01-01T00:00:00Z"})");
  EXPECT_EQ(t(0, 1), R"({"t":"1970-01-01T00:00:00.000000001Z"})");
  EXPECT_EQ(t(951782400, 120000000), R"({"t":"2000-02-29T00:00:00.12Z"})");
  EXPECT_EQ(t(-1, 0), R"({"t":"1969-12-31T23:59:59Z"})");
  EXPECT_EQ(t(-1, 1500000000), R"({"t":"1970-01-01T00:00:00.5Z"})");  // normalised like Go
  EXPECT_EQ(t(253402300799, 0), R"({"t":"9999-12-31T23:59:59Z"})");
}

TEST(PipelinePartitionKey, FollowsPyTritonTextRules) {
  std::string wide(200, 'k');
  for (int i = 0; i < 56; ++i) wide += "\xe4\xb8\xad";  // U+4E2D: 3 bytes, 1 character
  const Map rec{{"s", "user-1"},
                {"b", Binary{"raw"}},
                {"i", -42},
                {"u", std::numeric_limits<std::uint64_t>::max()},
                {"one", 1.0},
                {"big", 1e20},
                {"e16", 1e16},
                {"e15", 1e15},
                {"small", 1e-5},
                {"tiny", 0.0001},
                {"frac", 1.5e-7},
                {"long", 123456789012345678.0},
                {"negz", -0.0},
                {"f32", Float32{0.1F}},
                {"t", true},
                {"f", false},
                {"n", Nil{}},
                {"empty", ""},
                {"arr", Array{1}},
                {"huge", std::string(257, 'k')},
                {"wide", wide}};
  EXPECT_EQ(partition_key_of(rec, "s"), "user-1");
  EXPECT_EQ(partition_key_of(rec, "b"), "raw");
  EXPECT_EQ(partition_key_of(rec, "i"), "-42");
  EXPECT_EQ(partition_key_of(rec, "u"), "18446744073709551615");
  EXPECT_EQ(partition_key_of(rec, "one"), "1.0");
  EXPECT_EQ(partition_key_of(rec, "big"), "1e+20");
  EXPECT_EQ(partition_key_of(rec, "e16"), "1e+16");
  EXPECT_EQ(partition_key_of(rec, "e15"), "1000000000000000.0");
  EXPECT_EQ(partition_key_of(rec, "small"), "1e-05");
  EXPECT_EQ(partition_key_of(rec, "tiny"), "0.0001");
  EXPECT_EQ(partition_key_of(rec, "frac"), "1.5e-07");
  EXPECT_EQ(partition_key_of(rec, "long"), "1.2345678901234568e+17");
  EXPECT_EQ(partition_key_of(rec, "negz"), "-0.0");
  EXPECT_EQ(partition_key_of(rec, "f32"), "0.10000000149011612");  // Python widens float32
  EXPECT_EQ(partition_key_of(rec, "t"), "True");
  EXPECT_EQ(partition_key_of(rec, "f"), "False");
  EXPECT_EQ(partition_key_of(rec, "n"), "None");
  // 256 characters in 368 bytes: Kinesis counts characters, so it is accepted.
  EXPECT_EQ(partition_key_of(rec, "wide").size(), 200U + 168U);
  try {
    (void)partition_key_of(rec, "user_id");
    FAIL() << "no throw";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'user_id'"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)partition_key_of(rec, "empty"), ConfigError);
  EXPECT_THROW((void)partition_key_of(rec, "huge"), ConfigError);
  EXPECT_THROW((void)partition_key_of(rec, "arr"), ConfigError);
}

}  // namespace
}  // namespace kclpp::pipeline
