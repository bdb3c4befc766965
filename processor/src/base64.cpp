#include "kclpp/processor/base64.hpp"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

namespace kclpp {
namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// A byte outside the alphabet sets this bit, which no valid lookup sets: the decode loop
// ORs every lookup into one accumulator and tests it once per call, so the hot loop has
// no branch per character.
constexpr std::uint32_t bad = 0x0100'0000U;

// Four tables, one per position in a quad, each holding that character's 6 bits already
// shifted into place within the 3 output bytes laid out as b0 | b1 << 8 | b2 << 16.
// OR-ing the four lookups gives the three bytes at once.
struct DecodeTables {
  std::array<std::uint32_t, 256> t0{}, t1{}, t2{}, t3{};
};

constexpr DecodeTables make_decode_tables() {
  DecodeTables t;
  for (std::size_t i = 0; i < 256; ++i) {
    t.t0[i] = t.t1[i] = t.t2[i] = t.t3[i] = bad;
  }
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    const auto c = static_cast<unsigned char>(alphabet[i]);
    const auto v = static_cast<std::uint32_t>(i);
    t.t0[c] = v << 2;                                          // b0 bits 7..2
    t.t1[c] = (v >> 4) | ((v & 0x0FU) << 12);                  // b0 bits 1..0, b1 bits 7..4
    t.t2[c] = ((v >> 2) << 8) | ((v & 0x03U) << 22);           // b1 bits 3..0, b2 bits 7..6
    t.t3[c] = v << 16;                                         // b2 bits 5..0
  }
  return t;
}

constexpr DecodeTables tables = make_decode_tables();

inline std::uint32_t decode_quad(const unsigned char* p) noexcept {
  return tables.t0[p[0]] | tables.t1[p[1]] | tables.t2[p[2]] | tables.t3[p[3]];
}

inline void store3(char* out, std::uint32_t word) noexcept {
  out[0] = static_cast<char>(word & 0xFFU);
  out[1] = static_cast<char>((word >> 8) & 0xFFU);
  out[2] = static_cast<char>((word >> 16) & 0xFFU);
}

}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
  const std::size_t n = in.size();
  if (n % 4 != 0) return false;
  if (n == 0) {
    out.clear();
    return true;
  }
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t padding = src[n - 1] != '=' ? 0 : (src[n - 2] != '=' ? 1 : 2);
  out.resize(n / 4 * 3 - padding);
  char* dst = out.data();

  // Every quad but the last has no padding ('=' is outside the tables, so a misplaced one
  // sets `bad`). Those quads are stored with one 4-byte write each: the fourth byte is
  // overwritten by the next quad, and the last quad, decoded separately, always follows.
  const std::size_t full_quads = n / 4 - 1;
  std::uint32_t acc = 0;
  for (std::size_t q = 0; q < full_quads; ++q) {
    const std::uint32_t word = decode_quad(src + 4 * q);
    acc |= word;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(dst + 3 * q, &word, sizeof word);
    } else {
      store3(dst + 3 * q, word);
    }
  }

  const unsigned char* last = src + 4 * full_quads;
  char* last_out = dst + 3 * full_quads;
  // Padding: "xx==" or "xxx=". "x===" and "xx=x" are rejected: a '=' that is not in the
  // last one or two positions maps to `bad` below. Non-zero bits under the padding are
  // accepted, as the JDK and Jackson decoders accept them.
  constexpr unsigned char zero_bits = 'A';
  const unsigned char pad_free[4] = {last[0], last[1], padding == 2 ? zero_bits : last[2],
                                     padding >= 1 ? zero_bits : last[3]};
  const std::uint32_t word = decode_quad(pad_free);
  acc |= word;
  if ((acc & bad) != 0) return false;
  last_out[0] = static_cast<char>(word & 0xFFU);
  if (padding < 2) last_out[1] = static_cast<char>((word >> 8) & 0xFFU);
  if (padding < 1) last_out[2] = static_cast<char>((word >> 16) & 0xFFU);
  return true;
}

void base64_encode(std::string_view in, std::string& out) {
  const std::size_t n = in.size();
  const std::size_t start = out.size();
  out.resize(start + (n + 2) / 3 * 4);
  char* dst = out.data() + start;
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{src[i]} << 16) | (std::uint32_t{src[i + 1]} << 8) |
                            std::uint32_t{src[i + 2]};
    *dst++ = alphabet[(v >> 18) & 0x3FU];
    *dst++ = alphabet[(v >> 12) & 0x3FU];
    *dst++ = alphabet[(v >> 6) & 0x3FU];
    *dst++ = alphabet[v & 0x3FU];
  }
  if (const std::size_t rest = n - i; rest > 0) {
    std::uint32_t v = std::uint32_t{src[i]} << 16;
    if (rest == 2) v |= std::uint32_t{src[i + 1]} << 8;
    *dst++ = alphabet[(v >> 18) & 0x3FU];
    *dst++ = alphabet[(v >> 12) & 0x3FU];
    *dst++ = rest == 2 ? alphabet[(v >> 6) & 0x3FU] : '=';
    *dst = '=';
  }
}

}  // namespace kclpp
