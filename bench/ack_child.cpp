// The ceiling child of bench/protocol_throughput: acknowledges every daemon action with
// {"action":"status","responseFor":"<action>"} without parsing anything else, so the
// driver measures what its own writes and the pipes can carry. Never checkpoints.
//
// It reads stdin in large chunks and looks only at the first bytes of each line (Jackson
// writes "action" first, docs/kcl-protocol.md §2) and for the '\n' that ends it (memchr). Checkpoint
// responses ("action":"checkpoint") get no status, as in the protocol (docs/kcl-protocol.md §3).
// Pipe sizes: the OS default unless KCLPP_BENCH_PIPE_SIZE=<bytes> (> 0) is set, in which
// case stdin and stdout are enlarged with F_SETPIPE_SZ, as kcl::run does by default.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t read_chunk = std::size_t{4} << 20;
constexpr std::size_t header_max = 128;  // bytes kept from the start of each line

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// The value of the first "action":"..." in `header`, or empty.
std::string_view find_action(std::string_view header) {
  constexpr std::string_view key = "\"action\":\"";
  const std::size_t at = header.find(key);
  if (at == std::string_view::npos) return {};
  const std::size_t begin = at + key.size();
  const std::size_t end = header.find('"', begin);
  if (end == std::string_view::npos) return {};
  return header.substr(begin, end - begin);
}

std::size_t pipe_size_from_env() {
  const char* value = std::getenv("KCLPP_BENCH_PIPE_SIZE");
  if (value == nullptr || *value == '\0') return 0;
  return static_cast<std::size_t>(std::strtoull(value, nullptr, 10));
}

}  // namespace

int main() {
  if (const std::size_t pipe_size = pipe_size_from_env(); pipe_size > 0) {
    (void)::fcntl(0, F_SETPIPE_SZ, static_cast<int>(pipe_size));
    (void)::fcntl(1, F_SETPIPE_SZ, static_cast<int>(pipe_size));
  }

  std::vector<char> buf(read_chunk);
  std::string header;
  header.reserve(header_max);
  bool line_has_bytes = false;  // the current line has a non-'\r' byte
  std::string reply;
  std::size_t lines = 0;

  for (;;) {
    const ssize_t got = ::read(0, buf.data(), buf.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "ack_child: read failed: %s\n", std::strerror(errno));
      return 2;
    }
    if (got == 0) break;
    const char* p = buf.data();
    const char* const end = p + got;
    while (p < end) {
      const auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      const char* const seg_end = nl != nullptr ? nl : end;
      if (header.size() < header_max) {
        const auto take = std::min(header_max - header.size(), static_cast<std::size_t>(seg_end - p));
        header.append(p, take);
      }
      if (seg_end > p) line_has_bytes = true;
      if (nl == nullptr) break;
      if (line_has_bytes) {
        const std::string_view action = find_action(header);
        if (action.empty()) {
          std::fprintf(stderr, "ack_child: no action at the start of line %zu\n", lines + 1);
        } else if (action != "checkpoint") {
          reply.assign("{\"action\":\"status\",\"responseFor\":\"");
          reply.append(action);
          reply.append("\"}\n");
          if (!write_all(1, reply)) {
            std::fprintf(stderr, "ack_child: write failed: %s\n", std::strerror(errno));
            return 2;
          }
        }
        ++lines;
      }
      header.clear();
      line_has_bytes = false;
      p = nl + 1;
    }
  }
  return 0;
}
