// base64_decode / base64_encode: RFC 4648 vectors, random round trips, every invalid
// form the decoder must reject, and a large input.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kclpp/processor/base64.hpp"
#include "../test_seed.hpp"

namespace kclpp::detail {
// Defined in processor/src/base64.cpp for these tests, not part of the public API:
// base64_decode() without the AVX2 blocks, and whether base64_decode() uses them here.
bool base64_decode_scalar(std::string_view in, std::string& out);
bool base64_avx2_supported() noexcept;
}  // namespace kclpp::detail

namespace kclpp {
namespace {

// RFC 4648 §10 test vectors.
const std::vector<std::pair<std::string, std::string>> rfc4648 = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

std::string encode(std::string_view in) {
  std::string out;
  base64_encode(in, out);
  return out;
}

TEST(Base64, EncodesRfc4648Vectors) {
  for (const auto& [plain, coded] : rfc4648) EXPECT_EQ(encode(plain), coded) << plain;
}

TEST(Base64, DecodesRfc4648Vectors) {
  for (const auto& [plain, coded] : rfc4648) {
    std::string out = "previous content";
    ASSERT_TRUE(base64_decode(coded, out)) << coded;
    EXPECT_EQ(out, plain) << coded;
  }
}

TEST(Base64, EncodeAppends) {
  std::string out = "prefix:";
  base64_encode("foobar", out);
  EXPECT_EQ(out, "prefix:Zm9vYmFy");
}

TEST(Base64, UsesTheStandardAlphabetFor62And63) {
  // 0xFB 0xEF 0xBE -> 111110 111110 111110 111110 = "++++"; 0xFF 0xFF 0xFF -> "////".
  EXPECT_EQ(encode("\xfb\xef\xbe"), "++++");
  EXPECT_EQ(encode("\xff\xff\xff"), "////");
  std::string out;
  ASSERT_TRUE(base64_decode("++++////", out));
  EXPECT_EQ(out, "\xfb\xef\xbe\xff\xff\xff");
}

TEST(Base64, RoundTripsRandomBytesOfEveryLengthUpTo300) {
  const kclpp::test::TestSeed seed;
  std::mt19937 rng(seed.value());
  std::uniform_int_distribution<int> byte(0, 255);
  std::string decoded;
  for (std::size_t len = 0; len <= 300; ++len) {
    std::string plain(len, '\0');
    for (auto& c : plain) c = static_cast<char>(byte(rng));
    const std::string coded = encode(plain);
    ASSERT_EQ(coded.size(), (len + 2) / 3 * 4);
    ASSERT_TRUE(base64_decode(coded, decoded)) << "len " << len;
    ASSERT_EQ(decoded, plain) << "len " << len;
  }
}

TEST(Base64, DecodeReplacesContentAndReusesCapacity) {
  std::string out;
  out.reserve(4096);
  out = std::string(1000, 'x');
  const char* storage = out.data();
  ASSERT_TRUE(base64_decode("Zm9vYmFy", out));
  EXPECT_EQ(out, "foobar");
  EXPECT_EQ(out.data(), storage);
}

TEST(Base64, RejectsLengthNotAMultipleOfFour) {
  std::string out;
  for (const char* in : {"Z", "Zm", "Zm9", "Zm9vY", "Zm9vYmF", "Zg=", "Zg==="}) {
    EXPECT_FALSE(base64_decode(in, out)) << in;
  }
}

TEST(Base64, RejectsEveryByteOutsideTheAlphabetInEveryPosition) {
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string valid = "Zm9vYmFyYmF6";  // three quads: first, middle and last position
  std::string out;
  ASSERT_TRUE(base64_decode(valid, out));
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (alphabet.find(c) != std::string::npos) continue;
    for (std::size_t pos = 0; pos < valid.size(); ++pos) {
      if (c == '=' && pos >= valid.size() - 2) continue;  // legal padding, tested below
      std::string in = valid;
      in[pos] = c;
      EXPECT_FALSE(base64_decode(in, out)) << "byte " << b << " at " << pos;
    }
  }
  // URL-safe alphabet, whitespace and line breaks are not accepted either.
  for (const char* in : {"Zm9v-_Fy", "Zm9v YmFy", "Zm9v\nYmFy", "Zm9vYmFy\r\n"}) {
    EXPECT_FALSE(base64_decode(in, out)) << in;
  }
}

TEST(Base64, RejectsMisplacedPadding) {
  std::string out;
  for (const char* in : {"====", "Z===", "=m9v", "Zm=v", "Zg==Zm9v", "Zm9=Zm9v", "Zg=a",
                         "Zm9vYmF=YmFy", "Zm9v====", "Zm==Zg=="}) {
    EXPECT_FALSE(base64_decode(in, out)) << in;
  }
}

TEST(Base64, AcceptsNonZeroBitsUnderPadding) {
  // "Zh==" carries bits the padding hides; the JDK's decoder accepts it and so do we,
  // decoding to the same byte as the canonical "Zg==".
  std::string out;
  ASSERT_TRUE(base64_decode("Zh==", out));
  EXPECT_EQ(out, "f");
}

TEST(Base64, LargeInputRoundTrips) {
  constexpr std::size_t size = 8 * 1024 * 1024 + 1;  // not a multiple of 3
  std::string plain(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    plain[i] = static_cast<char>((i * 131 + (i >> 9)) & 0xFF);
  }
  const std::string coded = encode(plain);
  ASSERT_EQ(coded.size(), (size + 2) / 3 * 4);
  std::string out;
  ASSERT_TRUE(base64_decode(coded, out));
  EXPECT_EQ(out, plain);

  // A single bad byte deep inside still fails the whole input.
  std::string corrupt = coded;
  corrupt[coded.size() / 2] = '*';
  EXPECT_FALSE(base64_decode(corrupt, out));
}

// ---- the AVX2 path against the scalar one ------------------------------------------------
// base64_decode() decodes 32-character blocks with AVX2 when the CPU has it, and leaves the
// rest (at least the last 16 characters) to the scalar code. The two must agree on every
// input: same bytes when valid, both false when not.

const std::string alphabet64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void expect_paths_agree(const std::string& in, const std::string& context) {
  std::string fast = "previous";
  std::string scalar = "previous";
  const bool fast_ok = base64_decode(in, fast);
  const bool scalar_ok = detail::base64_decode_scalar(in, scalar);
  ASSERT_EQ(fast_ok, scalar_ok) << context;
  if (fast_ok) {
    ASSERT_EQ(fast, scalar) << context;
  }
}

TEST(Base64Avx2, ReportsWhichPathRuns) {
  std::printf("base64_decode uses AVX2 on this CPU: %s\n", detail::base64_avx2_supported() ? "yes" : "no");
  std::string out;
  ASSERT_TRUE(detail::base64_decode_scalar("Zm9vYmFy", out));
  EXPECT_EQ(out, "foobar");
}

TEST(Base64Avx2, AgreesWithScalarAroundBlockBoundaries) {
  const kclpp::test::TestSeed seed;
  std::mt19937 rng(seed.value());
  std::uniform_int_distribution<int> byte(0, 255);
  // Encoded lengths 0..520 cover 0 to 16 blocks, each with every remainder mod 32.
  for (std::size_t len = 0; len <= 390; ++len) {
    std::string plain(len, '\0');
    for (auto& c : plain) c = static_cast<char>(byte(rng));
    const std::string coded = encode(plain);
    expect_paths_agree(coded, "len " + std::to_string(len));
    std::string out;
    ASSERT_TRUE(base64_decode(coded, out)) << "len " << len;
    ASSERT_EQ(out, plain) << "len " << len;
  }
}

TEST(Base64Avx2, EveryCharacterDecodesToItsValueInEveryPosition) {
  // Each block position sees each of the 64 characters (a lookup mistake for one character
  // in one lane would show up here, not in random data).
  for (const std::size_t length : {48u, 64u, 96u, 100u}) {
    for (std::size_t shift = 0; shift < 64; ++shift) {
      std::string in(length, 'A');
      for (std::size_t i = 0; i < length; ++i) in[i] = alphabet64[(i + shift) % 64];
      expect_paths_agree(in, "length " + std::to_string(length) + " shift " + std::to_string(shift));
    }
  }
}

TEST(Base64Avx2, RejectsEveryInvalidByteInEveryPositionOfABlock) {
  // Lengths: the smallest that uses one block, two blocks, and two blocks plus a partial
  // tail, so every position of the first blocks, of the scalar tail and of the padded last
  // quad is hit.
  std::string out;
  for (const std::size_t length : {48u, 80u, 92u}) {
    std::string valid(length, 'A');
    for (std::size_t i = 0; i < length; ++i) valid[i] = alphabet64[(i * 7 + 3) % 64];
    ASSERT_TRUE(base64_decode(valid, out));
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      if (alphabet64.find(c) != std::string::npos) continue;
      for (std::size_t pos = 0; pos < length; ++pos) {
        std::string in = valid;
        in[pos] = c;
        const std::string context = "length " + std::to_string(length) + " byte " + std::to_string(b) +
                                    " at " + std::to_string(pos);
        expect_paths_agree(in, context);
        if (c != '=' || pos < length - 2) {
          EXPECT_FALSE(base64_decode(in, out)) << context;
        }
      }
    }
  }
}

TEST(Base64Avx2, AgreesWithScalarOnPaddingAndLengthMistakes) {
  const kclpp::test::TestSeed seed;
  std::mt19937 rng(seed.value());
  for (int iter = 0; iter < 2000; ++iter) {
    std::string in(rng() % 200, 'A');
    for (char& c : in) c = alphabet64[rng() % 64];
    switch (rng() % 4) {
      case 0: break;
      case 1:
        if (!in.empty()) in[rng() % in.size()] = '=';
        break;
      case 2:
        if (in.size() >= 2) in[in.size() - 1 - rng() % 2] = '=';
        break;
      default:
        if (!in.empty()) in[rng() % in.size()] = static_cast<char>(rng() & 0xFF);
        break;
    }
    expect_paths_agree(in, "input " + in);
  }
}

}  // namespace
}  // namespace kclpp
