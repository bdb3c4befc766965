#include "md5.hpp"

#include <openssl/evp.h>

#include <memory>

namespace kclpp::native::detail {
namespace {

struct MdDeleter {
  void operator()(EVP_MD* md) const noexcept { EVP_MD_free(md); }
};
struct CtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// Fetched once: OpenSSL 3's implicit fetch (EVP_md5() in EVP_DigestInit) looks the
// algorithm up in the provider store on every call, which shows up per aggregate.
const EVP_MD* md5_algorithm() noexcept {
  static const std::unique_ptr<EVP_MD, MdDeleter> md(EVP_MD_fetch(nullptr, "MD5", nullptr));
  return md.get();
}

}  // namespace

bool md5(std::string_view data, Md5Digest& out) noexcept {
  const EVP_MD* md = md5_algorithm();
  if (md == nullptr) return false;
  // One context per thread, reused: no allocation per aggregate.
  thread_local const std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  unsigned int size = 0;
  return EVP_DigestInit_ex(ctx.get(), md, nullptr) == 1 &&
         EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 &&
         EVP_DigestFinal_ex(ctx.get(), out.data(), &size) == 1 && size == out.size();
}

}  // namespace kclpp::native::detail
