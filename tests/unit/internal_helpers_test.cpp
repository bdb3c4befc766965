// The shared private helpers (internal/): JSON strings in their three modes, UTF-8, hex.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "kclpp/internal/hex.hpp"
#include "kclpp/internal/json_string.hpp"
#include "kclpp/internal/utf8.hpp"

namespace {

using kclpp::detail::JsonText;

template <JsonText Mode>
std::string json(std::string_view s) {
  std::string out;
  kclpp::detail::append_json_string<Mode>(out, s);
  return out;
}

TEST(JsonString, EscapesQuotesBackslashesAndControlsAlikeInEveryMode) {
  const std::string_view in = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f";
  const std::string want = R"("a\"b\\c\n\r\t\b\f\u0001\u001f)" "\x7f\"";
  EXPECT_EQ(json<JsonText::Ascii>(in), want);
  EXPECT_EQ(json<JsonText::Utf8>(in), want);
  EXPECT_EQ(json<JsonText::Verbatim>(in), want);
  EXPECT_EQ(json<JsonText::Ascii>(std::string_view("\0", 1)), R"("\u0000")");
}

TEST(JsonString, NonAsciiIsEscapedPassedOrKeptAsTheModeSays) {
  // é (2 bytes), € (3 bytes), 😀 (4 bytes: a surrogate pair when escaped).
  const std::string in = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  EXPECT_EQ(json<JsonText::Ascii>(in), R"("\u00e9\u20ac\ud83d\ude00")");
  EXPECT_EQ(json<JsonText::Utf8>(in), "\"" + in + "\"");
  EXPECT_EQ(json<JsonText::Verbatim>(in), "\"" + in + "\"");
}

TEST(JsonString, IllFormedUtf8BecomesOneReplacementPerMaximalSubpart) {
  // A truncated 3-byte sequence, a lone continuation byte, an overlong '/', a surrogate.
  const std::string in = "x\xE2\x82y\x80z\xC0\xAF\xED\xA0\x80";
  EXPECT_EQ(json<JsonText::Ascii>(in), R"("x\ufffdy\ufffdz\ufffd\ufffd\ufffd\ufffd\ufffd")");
  const std::string r(kclpp::detail::utf8_replacement);
  EXPECT_EQ(json<JsonText::Utf8>(in), "\"x" + r + "y" + r + "z" + r + r + r + r + r + "\"");
  EXPECT_EQ(json<JsonText::Verbatim>(in), "\"" + in + "\"");  // AWS validates its own input
}

TEST(Utf8, EveryScalarValueRoundTrips) {
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string bytes;
    kclpp::detail::append_utf8(bytes, cp);
    const auto got = kclpp::detail::decode_utf8(bytes, 0);
    ASSERT_TRUE(got.valid) << cp;
    ASSERT_EQ(got.code_point, cp);
    ASSERT_EQ(got.length, bytes.size()) << cp;
  }
}

TEST(Utf8, DecodingStopsAtTheFirstByteThatCannotContinue) {
  const auto truncated = kclpp::detail::decode_utf8("\xF0\x9F\x98" "A", 0);
  EXPECT_FALSE(truncated.valid);
  EXPECT_EQ(truncated.code_point, 0xFFFDu);
  EXPECT_EQ(truncated.length, 3u);  // 'A' is not swallowed
  const auto above_max = kclpp::detail::decode_utf8("\xF4\x90\x80\x80", 0);
  EXPECT_FALSE(above_max.valid);
  EXPECT_EQ(above_max.length, 1u);
}

TEST(Hex, EncodesLowerCaseAndReadsEitherCase) {
  EXPECT_EQ(kclpp::detail::to_hex(std::string_view("\x00\x7f\xff\x10", 4)), "007fff10");
  EXPECT_EQ(kclpp::detail::hex_value('a'), 10);
  EXPECT_EQ(kclpp::detail::hex_value('F'), 15);
  EXPECT_EQ(kclpp::detail::hex_value('9'), 9);
  EXPECT_EQ(kclpp::detail::hex_value('g'), -1);
}

}  // namespace
