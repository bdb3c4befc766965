#pragma once
// Pieces the SQLite and Postgres stores share: how a claim is named and who holds it.
#include <unistd.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kclpp::native::detail {

// A stable key for one (application, stream): FNV-1a 64 over "application\0stream". The
// same in every process and build, so two workers meet on the same lock (the Postgres
// advisory lock, the SQLite side file's name).
inline std::uint64_t claim_hash(std::string_view application, std::string_view stream) noexcept {
  std::uint64_t h = 14695981039346656037ULL;
  const auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (const char c : application) mix(static_cast<unsigned char>(c));
  mix(0);
  for (const char c : stream) mix(static_cast<unsigned char>(c));
  return h;
}

// For "held by pid N on HOST" messages.
inline std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "unknown host";
  return buf.data();
}

}  // namespace kclpp::native::detail
