#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), the checksum of the snappy framing
// format (docs/triton.md §3.2). crc32c() picks the SSE4.2 path at run time when the CPU has
// it, else the table-driven one; both are exposed so that tests can check each.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kclpp::pipeline::detail {

// The CRC of `bytes` continuing from `crc` (0 to start): crc32c(crc32c(0, a), b) equals
// crc32c(0, a + b). Thread-safe (the tables are built before main).
[[nodiscard]] std::uint32_t crc32c(std::uint32_t crc, const char* bytes, std::size_t size) noexcept;
// Slicing-by-8, any CPU.
[[nodiscard]] std::uint32_t crc32c_portable(std::uint32_t crc, const char* bytes, std::size_t size) noexcept;
// The SSE4.2 crc32 instruction, three streams interleaved. Only when crc32c_hardware_available().
[[nodiscard]] std::uint32_t crc32c_sse42(std::uint32_t crc, const char* bytes, std::size_t size) noexcept;
[[nodiscard]] bool crc32c_hardware_available() noexcept;

[[nodiscard]] inline std::uint32_t crc32c(std::string_view bytes) noexcept {
  return crc32c(0, bytes.data(), bytes.size());
}
// The framing format's mask: rotate right by 15, add a constant (framing_format.txt §3).
[[nodiscard]] constexpr std::uint32_t mask_crc32c(std::uint32_t crc) noexcept {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8U;
}

}  // namespace kclpp::pipeline::detail
