#pragma once
// POSIX file-descriptor helpers shared by both protocol sides (private to kclpp::kcl).

#include <cstddef>
#include <string>
#include <string_view>

namespace kclpp::kcl::detail {

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

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
