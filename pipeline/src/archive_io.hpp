#pragma once
// The functor behind memory_source(). ArchiveReader recognises it (std::function::target)
// and reads the bytes in place instead of copying them through its input buffer.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

namespace kclpp::pipeline::detail {

struct MemorySource {
  std::string_view bytes;
  std::size_t offset = 0;
  std::size_t operator()(char* buffer, std::size_t size) {
    const std::size_t n = std::min(size, bytes.size() - offset);
    if (n > 0) std::memcpy(buffer, bytes.data() + offset, n);
    offset += n;
    return n;
  }
};

}  // namespace kclpp::pipeline::detail
