// CRC-32C for the snappy framing format (docs/triton.md §3.2). Every chunk the archive
// writer emits and the reader accepts is checksummed, so this runs over every archived
// byte: the SSE4.2 path is chosen once at start-up. It runs three independent crc32
// streams over three adjacent blocks (the instruction has a latency of 3 cycles and a
// throughput of 1), then joins them by "shifting" a CRC over the length of a block with
// precomputed tables (the method of Mark Adler's crc32c.c).
#include "crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#define KCLPP_CRC32C_X86 1
#include <nmmintrin.h>
#endif

namespace kclpp::pipeline::detail {
namespace {

constexpr std::uint32_t poly = 0x82f63b78U;  // reflected Castagnoli polynomial

using Table = std::array<std::uint32_t, 256>;

// table[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
constexpr std::array<Table, 8> make_slicing_tables() {
  std::array<Table, 8> t{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t crc = n;
    for (int k = 0; k < 8; ++k) crc = (crc & 1U) != 0 ? (crc >> 1) ^ poly : crc >> 1;
    t[0][n] = crc;
  }
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t crc = t[0][n];
    for (std::size_t k = 1; k < 8; ++k) {
      crc = t[0][crc & 0xffU] ^ (crc >> 8);
      t[k][n] = crc;
    }
  }
  return t;
}
constexpr std::array<Table, 8> slicing = make_slicing_tables();

std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  return v;  // little-endian hosts only: the shifts below assume it (x86, aarch64)
}

// --- shifting a CRC over zeros (GF(2) matrices), for joining interleaved streams ---------
using Matrix = std::array<std::uint32_t, 32>;

constexpr std::uint32_t matrix_times(const Matrix& mat, std::uint32_t vec) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; vec != 0; ++i, vec >>= 1) {
    if ((vec & 1U) != 0) sum ^= mat[i];
  }
  return sum;
}
constexpr Matrix matrix_square(const Matrix& mat) {
  Matrix sq{};
  for (std::size_t n = 0; n < 32; ++n) sq[n] = matrix_times(mat, mat[n]);
  return sq;
}
// The operator that appends `len` zero bytes (len a power of two) to a CRC register.
constexpr Matrix zeros_operator(std::size_t len) {
  Matrix op{};  // one zero bit
  op[0] = poly;
  std::uint32_t row = 1;
  for (std::size_t n = 1; n < 32; ++n, row <<= 1) op[n] = row;
  op = matrix_square(op);  // two bits
  op = matrix_square(op);  // four bits
  for (std::size_t bytes = 1; bytes <= len; bytes <<= 1) op = matrix_square(op);  // 8 bits = 1 byte, ...
  return op;
}
using ShiftTables = std::array<Table, 4>;
constexpr ShiftTables make_shift_tables(std::size_t len) {
  const Matrix op = zeros_operator(len);
  ShiftTables t{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    t[0][n] = matrix_times(op, n);
    t[1][n] = matrix_times(op, n << 8);
    t[2][n] = matrix_times(op, n << 16);
    t[3][n] = matrix_times(op, n << 24);
  }
  return t;
}

// Block lengths of the interleaved loops: 3 x 8 KiB covers most of a 64 KiB chunk; the
// 3 x 256 B loop the rest.
constexpr std::size_t long_block = 8192;
constexpr std::size_t short_block = 256;
constexpr ShiftTables shift_long = make_shift_tables(long_block);
constexpr ShiftTables shift_short = make_shift_tables(short_block);

std::uint32_t shift(const ShiftTables& t, std::uint32_t crc) noexcept {
  return t[0][crc & 0xffU] ^ t[1][(crc >> 8) & 0xffU] ^ t[2][(crc >> 16) & 0xffU] ^ t[3][crc >> 24];
}

#ifdef KCLPP_CRC32C_X86
// Three streams over three adjacent `block`-byte blocks while 3 blocks remain.
__attribute__((target("sse4.2"))) inline void interleave(std::uint64_t& c0, const char*& p, std::size_t& size,
                                                         std::size_t block, const ShiftTables& tables) noexcept {
  while (size >= 3 * block) {
    std::uint64_t c1 = 0;
    std::uint64_t c2 = 0;
    const char* const end = p + block;
    do {
      c0 = _mm_crc32_u64(c0, load64(p));
      c1 = _mm_crc32_u64(c1, load64(p + block));
      c2 = _mm_crc32_u64(c2, load64(p + 2 * block));
      p += 8;
    } while (p < end);
    c0 = shift(tables, static_cast<std::uint32_t>(c0)) ^ c1;
    c0 = shift(tables, static_cast<std::uint32_t>(c0)) ^ c2;
    p += 2 * block;
    size -= 3 * block;
  }
}

__attribute__((target("sse4.2"))) std::uint32_t sse42_impl(std::uint32_t crc, const char* p,
                                                           std::size_t size) noexcept {
  std::uint64_t c0 = ~crc;
  // Single bytes to an 8-byte boundary.
  while (size > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7U) != 0) {
    c0 = _mm_crc32_u8(static_cast<std::uint32_t>(c0), static_cast<unsigned char>(*p++));
    --size;
  }
  interleave(c0, p, size, long_block, shift_long);
  interleave(c0, p, size, short_block, shift_short);
  for (; size >= 8; size -= 8, p += 8) c0 = _mm_crc32_u64(c0, load64(p));
  for (; size > 0; --size) c0 = _mm_crc32_u8(static_cast<std::uint32_t>(c0), static_cast<unsigned char>(*p++));
  return ~static_cast<std::uint32_t>(c0);
}

bool cpu_has_sse42() noexcept {
  __builtin_cpu_init();  // may run from a static initializer, before libgcc's own
  return __builtin_cpu_supports("sse4.2") != 0;
}
#endif

const bool use_hardware = crc32c_hardware_available();

}  // namespace

std::uint32_t crc32c_portable(std::uint32_t crc, const char* p, std::size_t size) noexcept {
  std::uint32_t c = ~crc;
  while (size > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7U) != 0) {
    c = slicing[0][(c ^ static_cast<unsigned char>(*p++)) & 0xffU] ^ (c >> 8);
    --size;
  }
  for (; size >= 8; size -= 8, p += 8) {
    const std::uint64_t v = load64(p) ^ c;
    c = slicing[7][v & 0xffU] ^ slicing[6][(v >> 8) & 0xffU] ^ slicing[5][(v >> 16) & 0xffU] ^
        slicing[4][(v >> 24) & 0xffU] ^ slicing[3][(v >> 32) & 0xffU] ^ slicing[2][(v >> 40) & 0xffU] ^
        slicing[1][(v >> 48) & 0xffU] ^ slicing[0][v >> 56];
  }
  for (; size > 0; --size) c = slicing[0][(c ^ static_cast<unsigned char>(*p++)) & 0xffU] ^ (c >> 8);
  return ~c;
}

std::uint32_t crc32c_sse42(std::uint32_t crc, const char* bytes, std::size_t size) noexcept {
#ifdef KCLPP_CRC32C_X86
  return sse42_impl(crc, bytes, size);
#else
  return crc32c_portable(crc, bytes, size);
#endif
}

bool crc32c_hardware_available() noexcept {
#ifdef KCLPP_CRC32C_X86
  static const bool has = cpu_has_sse42();
  return has;
#else
  return false;
#endif
}

std::uint32_t crc32c(std::uint32_t crc, const char* bytes, std::size_t size) noexcept {
  return use_hardware ? crc32c_sse42(crc, bytes, size) : crc32c_portable(crc, bytes, size);
}

}  // namespace kclpp::pipeline::detail
