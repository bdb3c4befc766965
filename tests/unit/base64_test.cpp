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
  const auto seed = std::random_device{}();
  std::printf("Base64 round-trip seed: %u\n", seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
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

}  // namespace
}  // namespace kclpp
