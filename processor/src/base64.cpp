#include "kclpp/processor/base64.hpp"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

#if defined(__x86_64__)
// AVX2: 32 characters -> 24 bytes per step (W. Muła and D. Lemire, "Faster Base64 Encoding
// and Decoding Using AVX2 Instructions", ACM TOW 2018). Two nibble lookups validate the 32
// characters at once: a byte is in the alphabet iff lut_lo[low nibble] & lut_hi[high
// nibble] == 0 (every byte >= 0x80 and '=' fail). A third lookup turns each character into
// its 6-bit value, and two multiply-adds plus two shuffles pack four 6-bit values into
// three bytes. Compiled for AVX2 only in this function, so the library stays generic
// x86-64 and dispatches at run time.
//
// Decodes whole 32-character blocks from the start of `src` while at least 16 more
// characters follow the block: the last quad (which may hold padding) is left to the scalar
// code, and the 32-byte store of a block's 24 bytes stays inside `dst` (n / 4 * 3 - padding
// bytes). Returns the number of characters decoded (a multiple of 32), or `invalid` if a
// block holds a byte outside the alphabet.
constexpr std::size_t invalid = static_cast<std::size_t>(-1);
constexpr std::size_t avx2_min_length = 48;

__attribute__((target("avx2"))) std::size_t decode_avx2_blocks(const unsigned char* src, std::size_t n,
                                                                char* dst) noexcept {
  const __m256i lut_lo = _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                          0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11,
                                          0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B,
                                          0x1B, 0x1A);
  const __m256i lut_hi = _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10,
                                          0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02,
                                          0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
                                          0x10, 0x10);
  // Added to a character to get its value, indexed by its high nibble ('/' gets index 1:
  // the compare below subtracts 1 from its high nibble 2, as it shares that nibble with '+').
  const __m256i lut_roll = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                            16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
  // 0x2F both masks the nibbles (bit 5 is ignored by the shuffles, bit 7 must be clear) and
  // is the character '/'.
  const __m256i mask_2f = _mm256_set1_epi8(0x2F);
  const __m256i merge_ab_and_bc = _mm256_set1_epi32(0x01400140);
  const __m256i merge_abc = _mm256_set1_epi32(0x00011000);
  const __m256i pack_lanes = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1,
                                              0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  const __m256i pack_words = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, -1, -1);

  std::size_t i = 0;
  for (; i + avx2_min_length <= n; i += 32, dst += 24) {
    __m256i str = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i hi_nibbles = _mm256_and_si256(_mm256_srli_epi32(str, 4), mask_2f);
    const __m256i lo_nibbles = _mm256_and_si256(str, mask_2f);
    const __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nibbles);
    const __m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nibbles);
    if (_mm256_testz_si256(lo, hi) == 0) return invalid;
    const __m256i eq_2f = _mm256_cmpeq_epi8(str, mask_2f);
    const __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nibbles));
    str = _mm256_add_epi8(str, roll);
    // Each 32-bit group 00aaaaaa 00bbbbbb 00cccccc 00dddddd -> aaaaaabb bbbbcccc ccdddddd.
    str = _mm256_maddubs_epi16(str, merge_ab_and_bc);
    str = _mm256_madd_epi16(str, merge_abc);
    str = _mm256_shuffle_epi8(str, pack_lanes);
    str = _mm256_permutevar8x32_epi32(str, pack_words);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), str);
  }
  return i;
}

bool have_avx2() noexcept {
  static const bool supported = __builtin_cpu_supports("avx2") != 0;
  return supported;
}
#endif

enum class DecodeWith { Scalar, Fastest };

bool decode(std::string_view in, std::string& out, DecodeWith with) {
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

  std::size_t first_quad = 0;  // quads before it were decoded (and validated) by AVX2
#if defined(__x86_64__)
  if (with == DecodeWith::Fastest && n >= avx2_min_length && have_avx2()) {
    const std::size_t done = decode_avx2_blocks(src, n, dst);
    if (done == invalid) return false;
    first_quad = done / 4;
  }
#else
  (void)with;
#endif

  // Every quad but the last has no padding ('=' is outside the tables, so a misplaced one
  // sets `bad`). Those quads are stored with one 4-byte write each: the fourth byte is
  // overwritten by the next quad, and the last quad, decoded separately, always follows.
  const std::size_t full_quads = n / 4 - 1;
  std::uint32_t acc = 0;
  for (std::size_t q = first_quad; q < full_quads; ++q) {
    const std::uint32_t word = decode_quad(src + 4 * q);
    acc |= word;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(dst + 3 * q, &word, sizeof word);
    } else {
      dst[3 * q] = static_cast<char>(word & 0xFFU);
      dst[3 * q + 1] = static_cast<char>((word >> 8) & 0xFFU);
      dst[3 * q + 2] = static_cast<char>((word >> 16) & 0xFFU);
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

}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
  return decode(in, out, DecodeWith::Fastest);
}

namespace detail {

// For the tests, which compare the two paths (declared there: not part of the public API).
bool base64_decode_scalar(std::string_view in, std::string& out) {
  return decode(in, out, DecodeWith::Scalar);
}

bool base64_avx2_supported() noexcept {
#if defined(__x86_64__)
  return have_avx2();
#else
  return false;
#endif
}

}  // namespace detail

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
