#pragma once
// POSIX file-descriptor helpers shared by both protocol sides (private to kclpp::kcl).

#include <cstddef>
#include <string>
#include <string_view>

#include "kclpp/internal/unique_fd.hpp"

namespace kclpp::kcl::detail {

using kclpp::detail::UniqueFd;

// Writes all of `data` to a blocking fd, retrying on EINTR and short writes.
// Throws TransportError (EPIPE: "peer closed its input").
void write_all(int fd, std::string_view data);
void set_nonblocking(int fd);
void set_cloexec(int fd);
// The largest pipe size Linux allows (pipe-max-size cannot exceed it); larger requests
// are clamped to it.
inline constexpr std::size_t max_pipe_size = std::size_t{1} << 30;
// F_SETPIPE_SZ (clamped to max_pipe_size); returns the resulting size, or 0 if fd is not
// a pipe. Never throws.
std::size_t set_pipe_size(int fd, std::size_t bytes) noexcept;

// Accumulates bytes and hands out complete lines ('\n'-terminated, '\r' stripped) with
// decode_padding readable bytes after each line, as the decoder needs. Lines of any
// length. Not thread-safe.
class LineBuffer {
 public:
  // Space to read into: at least `min` bytes at write_ptr().
  char* prepare(std::size_t min);
  void commit(std::size_t n);
  // The next complete line, or false. The view stays valid until the next prepare()/next_line().
  bool next_line(std::string_view& line);
  // Bytes buffered after the last complete line (an unterminated tail).
  [[nodiscard]] std::size_t pending() const noexcept { return end_ - begin_; }
  [[nodiscard]] std::string_view pending_view() const noexcept {
    return {buf_.data() + begin_, end_ - begin_};
  }

 private:
  std::string buf_;
  std::size_t begin_ = 0;  // first unread byte
  std::size_t scan_ = 0;   // bytes before this contain no '\n' (from begin_)
  std::size_t end_ = 0;    // one past the last valid byte
};

}  // namespace kclpp::kcl::detail
