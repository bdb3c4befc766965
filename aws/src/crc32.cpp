// CRC32 (IEEE, zlib's) for the event-stream frames: every byte of a fan-out stream goes
// through it, and zlib 1.2.13's table-driven crc32 runs at about 2.5 GB/s, a quarter of
// the CPU a fan-out worker spends (bench/fanout). On x86-64 with PCLMULQDQ the bulk is
// folded with carry-less multiplications, 64 bytes a step (Gopal, Ozturk et al., "Fast
// CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction", Intel 2009, with
// the bit-reflected constants of its appendix for the IEEE polynomial); the tail, and
// other CPUs, use zlib. tests/unit/event_stream_test.cpp checks it against zlib.
#include <zlib.h>

#include <cstdint>
#include <string_view>

#include "event_stream.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KCLPP_CRC32_PCLMUL 1
#endif

namespace kclpp::aws::detail {

namespace {

std::uint32_t crc32_zlib(const unsigned char* data, std::size_t size, std::uint32_t crc) noexcept {
  return static_cast<std::uint32_t>(::crc32_z(crc, data, size));
}

#ifdef KCLPP_CRC32_PCLMUL

// x * k (both 64-bit halves, carry-less) folded onto `next`: one step of the fold.
__attribute__((target("pclmul,sse4.1"))) inline __m128i fold(__m128i x, __m128i k, __m128i next) noexcept {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x11), _mm_clmulepi64_si128(x, k, 0x00)), next);
}

inline __m128i load(const unsigned char* p) noexcept { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// The CRC of `size` bytes (a multiple of 16, at least 64) on the raw register value
// (callers complement before and after, as the CRC's definition does).
__attribute__((target("pclmul,sse4.1"))) std::uint32_t fold_pclmul(const unsigned char* buf, std::size_t size,
                                                                    std::uint32_t crc) noexcept {
  alignas(16) static const std::uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const std::uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const std::uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const std::uint64_t poly[] = {0x01db710641, 0x01f7011641};

  __m128i x1 = _mm_xor_si128(load(buf), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = load(buf + 16);
  __m128i x3 = load(buf + 32);
  __m128i x4 = load(buf + 48);
  buf += 64;
  size -= 64;
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  for (; size >= 64; buf += 64, size -= 64) {  // four lanes in parallel
    x1 = fold(x1, k, load(buf));
    x2 = fold(x2, k, load(buf + 16));
    x3 = fold(x3, k, load(buf + 32));
    x4 = fold(x4, k, load(buf + 48));
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));  // four lanes into one
  x1 = fold(x1, k, x2);
  x1 = fold(x1, k, x3);
  x1 = fold(x1, k, x4);
  for (; size >= 16; buf += 16, size -= 16) x1 = fold(x1, k, load(buf));

  // 128 bits to 64.
  const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
  __m128i x2r = _mm_clmulepi64_si128(x1, k, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2r);
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2r = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask), k, 0x00), x2r);
  // Barrett reduction to 32 bits.
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2r = _mm_clmulepi64_si128(_mm_and_si128(x1, mask), k, 0x10);
  x2r = _mm_clmulepi64_si128(_mm_and_si128(x2r, mask), k, 0x00);
  x1 = _mm_xor_si128(x1, x2r);
  return static_cast<std::uint32_t>(_mm_extract_epi32(x1, 1));
}

bool has_pclmul() noexcept {
  static const bool yes = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return yes;
}

#endif

}  // namespace

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc) noexcept {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t size = bytes.size();
  // zlib returns 0 for a null buffer whatever the running value: an empty piece is a no-op.
  if (size == 0) return crc;
#ifdef KCLPP_CRC32_PCLMUL
  if (size >= 64 && has_pclmul()) {
    const std::size_t bulk = size & ~std::size_t{15};
    crc = ~fold_pclmul(data, bulk, ~crc);
    data += bulk;
    size -= bulk;
    if (size == 0) return crc;
  }
#endif
  return crc32_zlib(data, size, crc);
}

}  // namespace kclpp::aws::detail
