#include "io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "codec.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::kcl::detail {

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) throw TransportError("write failed: the peer closed its input (EPIPE)");
      throw TransportError(std::string("write failed: ") + std::strerror(errno));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    throw TransportError(std::string("fcntl(O_NONBLOCK) failed: ") + std::strerror(errno));
}

void set_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
    throw TransportError(std::string("fcntl(FD_CLOEXEC) failed: ") + std::strerror(errno));
}

std::size_t set_pipe_size(int fd, std::size_t bytes) noexcept {
  if (bytes > 0) {
    // May fail above /proc/sys/fs/pipe-max-size for unprivileged users: keep what we have.
    // Clamped to 1 GiB (the kernel's own ceiling) so that the int argument cannot wrap to
    // a small or negative size that would shrink the pipe.
    const std::size_t clamped = std::min(bytes, max_pipe_size);
    (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(clamped));
  }
  const int size = ::fcntl(fd, F_GETPIPE_SZ);
  return size < 0 ? 0 : static_cast<std::size_t>(size);
}

char* LineBuffer::prepare(std::size_t min) {
  // Compact when the consumed prefix is large, then make room for `min` bytes plus the
  // decoder's padding after the last byte.
  if (begin_ > 0 && (begin_ == end_ || begin_ >= buf_.size() / 2)) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    scan_ = scan_ > begin_ ? scan_ - begin_ : 0;
    begin_ = 0;
  }
  const std::size_t need = end_ + min + decode_padding;
  if (buf_.size() < need) {
    std::size_t grown = buf_.empty() ? std::size_t{1} << 16 : buf_.size();
    while (grown < need) grown *= 2;
    buf_.resize(grown);
  }
  return buf_.data() + end_;
}

void LineBuffer::commit(std::size_t n) { end_ += n; }

bool LineBuffer::next_line(std::string_view& line) {
  const std::size_t from = scan_ > begin_ ? scan_ : begin_;
  const void* nl = from < end_ ? std::memchr(buf_.data() + from, '\n', end_ - from) : nullptr;
  if (nl == nullptr) {
    scan_ = end_;
    return false;
  }
  const auto pos = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data());
  std::size_t len = pos - begin_;
  if (len > 0 && buf_[begin_ + len - 1] == '\r') --len;
  line = std::string_view(buf_.data() + begin_, len);
  begin_ = pos + 1;
  scan_ = begin_;
  // The bytes after the line (the '\n' and beyond, up to the buffer's padding) are
  // readable: prepare() always keeps decode_padding spare bytes after end_.
  return true;
}

}  // namespace kclpp::kcl::detail
