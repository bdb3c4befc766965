#pragma once
// Pieces the SQLite and Postgres stores share: how a claim is named and who holds it, and
// the interface of one layout's tables.
#include <unistd.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/native/checkpoint_store.hpp"

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

// One layout's tables (kclpp's, or Triton's: triton_layout.hpp) in a SQL store: the data
// half of CheckpointStore, with the same contract. A store picks its layout once, when it
// opens, and serialises the calls; implementations are not thread-safe.
class CheckpointTables {
 public:
  virtual ~CheckpointTables() = default;
  [[nodiscard]] virtual std::optional<ExtendedSequenceNumber> load(const CheckpointKey& key) = 0;
  [[nodiscard]] virtual std::map<std::string, ExtendedSequenceNumber> load_all(const std::string& application,
                                                                               const std::string& stream) = 0;
  virtual void save(const CheckpointKey& key, const ExtendedSequenceNumber& position) = 0;
  [[nodiscard]] virtual std::vector<StoredCheckpoint> list(const std::string& application) = 0;
};

}  // namespace kclpp::native::detail
