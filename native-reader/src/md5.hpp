#pragma once
// MD5 over a byte string (OpenSSL EVP), for the KPL aggregate trailer. Private to
// kclpp::native: OpenSSL stays out of the public headers.

#include <array>
#include <string_view>

namespace kclpp::native::detail {

using Md5Digest = std::array<unsigned char, 16>;

// The MD5 of `data` into `out`. False only if OpenSSL cannot provide MD5 (e.g. a FIPS-only
// provider configuration); OpenSSL's reason is then in its error queue, which a caller
// that throws turns into the error with kclpp/internal/openssl_error.hpp. Never throws.
// Thread-safe (a context per thread).
[[nodiscard]] bool md5(std::string_view data, Md5Digest& out) noexcept;

}  // namespace kclpp::native::detail
