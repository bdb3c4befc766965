#pragma once
// TLS for the bench's servers (--tls-cert/--tls-key): an OpenSSL server context that picks
// the ALPN protocol, and Socket, a connection read and written the same way plain or
// through TLS. Against AWS every call goes over TLS, and libcurl 7.88 multiplexes HTTP/2
// only over TLS (curl issue #10634), so bench/fanout's --tls mode is the like of the real
// service. Bench-internal, header-only.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kclpp::bench {

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// The server's ALPN protocols in wire format (length-prefixed), most preferred first.
inline std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string out;
  for (const auto& p : protocols) {
    out.push_back(static_cast<char>(p.size()));
    out += p;
  }
  return out;
}

// The first of the server's protocols that the client offers; none (the handshake goes on
// without ALPN, so HTTP/1.1) when it offers none of them.
inline int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                       unsigned int inlen, void* arg) {
  const auto& server = *static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(server.data()),
                            static_cast<unsigned>(server.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// A server context from PEM files, or nullptr (with OpenSSL's reason on stderr).
// `alpn` (from alpn_wire) must outlive the context.
inline SslCtxPtr server_context(const std::string& cert, const std::string& key, const std::string& alpn) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, const_cast<std::string*>(&alpn));
  return ctx;
}

// The protocol ALPN chose for a connection ("" when none).
inline std::string_view alpn_of(const SSL* ssl) {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  return {reinterpret_cast<const char*>(p), n};
}

// A blocking connection, plain (ssl null) or TLS after its handshake. Owns neither.
class Socket {
 public:
  explicit Socket(int fd, SSL* ssl = nullptr) : fd_(fd), ssl_(ssl) {}
  [[nodiscard]] int fd() const { return fd_; }

  // As read(2): > 0 bytes, 0 at EOF, < 0 on error.
  ssize_t read(void* buf, std::size_t n) {
    if (ssl_ == nullptr) {
      for (;;) {
        const ssize_t r = ::read(fd_, buf, n);
        if (r >= 0 || errno != EINTR) return r;
      }
    }
    const int r = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(n, INT_MAX)));
    return r > 0 ? r : (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
  }

  // Writes every part; false when the connection failed.
  bool write_all(std::vector<iovec> parts) {
    if (ssl_ != nullptr) {
      for (const iovec& p : parts) {
        const char* data = static_cast<const char*>(p.iov_base);
        std::size_t left = p.iov_len;
        while (left > 0) {
          const int r = SSL_write(ssl_, data, static_cast<int>(std::min<std::size_t>(left, 1 << 20)));
          if (r <= 0) return false;
          data += r;
          left -= static_cast<std::size_t>(r);
        }
      }
      return true;
    }
    std::size_t index = 0;
    while (index < parts.size()) {
      const ssize_t n = ::writev(fd_, parts.data() + index,
                                 static_cast<int>(std::min<std::size_t>(parts.size() - index, IOV_MAX)));
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      auto left = static_cast<std::size_t>(n);
      while (index < parts.size() && left >= parts[index].iov_len) {
        left -= parts[index].iov_len;
        ++index;
      }
      if (index < parts.size()) {
        parts[index].iov_base = static_cast<char*>(parts[index].iov_base) + left;
        parts[index].iov_len -= left;
      }
    }
    return true;
  }

 private:
  int fd_;
  SSL* ssl_;
};

}  // namespace kclpp::bench
