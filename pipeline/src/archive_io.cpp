// Byte sinks and sources of the archive format: a file written through one descriptor (the
// archiver fsyncs it before upload), a file read in whatever pieces the reader asks for, and
// a view of bytes in memory.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "archive_io.hpp"
#include "kclpp/internal/unique_fd.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void fail(const std::string& what, const std::string& path, int err, Retry retry = Retry::Yes) {
  throw TransportError(what + " " + path + ": " + errno_text(err), retry);
}

}  // namespace

FileSink::FileSink(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Not retryable: a missing directory or a permission does not fix itself.
  if (fd_ < 0) fail("cannot create", path, errno, Retry::No);
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

FileSink::FileSink(FileSink&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), written_(other.written_) {}

FileSink& FileSink::operator=(FileSink&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    written_ = other.written_;
  }
  return *this;
}

void FileSink::write(std::string_view bytes) {
  if (fd_ < 0) throw TransportError("write to closed file " + path_, Retry::No);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", path_, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    written_ += static_cast<std::uint64_t>(n);
  }
}

void FileSink::close() {
  if (fd_ < 0) return;
  const int fd = std::exchange(fd_, -1);
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot fsync", path_, err);
  }
  if (::close(fd) != 0) fail("cannot close", path_, errno);
}

ByteSink FileSink::sink() {
  // Holds `this`: the FileSink must outlive the sink and must not be moved meanwhile.
  return [this](std::string_view bytes) { write(bytes); };
}

ByteSource file_source(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open", path, errno, Retry::No);
  auto file = std::make_shared<kclpp::detail::UniqueFd>(fd);
  return [file, path](char* buffer, std::size_t size) -> std::size_t {
    for (;;) {
      const ssize_t n = ::read(file->get(), buffer, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) fail("cannot read", path, errno);
    }
  };
}

ByteSource memory_source(std::string_view bytes) { return detail::MemorySource{bytes, 0}; }

}  // namespace kclpp::pipeline
