#pragma once
// The AWS event-stream framing (content type application/vnd.amazon.eventstream), as
// SubscribeToShard streams it (docs/aws.md §5): messages of
//   prelude: total length (u32 BE), headers length (u32 BE), prelude CRC32 (of those 8 bytes)
//   headers: name length (u8), name, type (u8), value (by type)
//   payload
//   message CRC32 (of everything before it)
// CRC32 is the IEEE one (zlib's). Header value types: 0 true, 1 false, 2 byte, 3 short,
// 4 integer, 5 long, 6 byte array (u16 length), 7 string (u16 length), 8 timestamp (i64 ms),
// 9 uuid (16 bytes). Only what the client needs is decoded: header values are kept as
// their text (strings) or their decimal value (numbers), see EventStreamHeader.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kclpp::aws::detail {

// The largest message accepted (the service's is 16 MiB); larger is a ProtocolError.
inline constexpr std::size_t max_event_stream_message = 24u << 20;

struct EventStreamHeader {
  std::string name;
  std::uint8_t type = 7;
  // Strings and byte arrays: their bytes; booleans "true"/"false"; integers and
  // timestamps: decimal; uuid: its 16 raw bytes.
  std::string value;
};

struct EventStreamMessage {
  std::vector<EventStreamHeader> headers;
  std::string payload;
  // The value of header `name`, "" when absent.
  [[nodiscard]] std::string_view header(std::string_view name) const noexcept;
};

// Incremental decoder: feed bytes as they arrive, in pieces of any size; complete messages
// come out of next(). Throws ProtocolError (message names what was wrong: CRC mismatch of
// the prelude or the message, a length out of range, a header running past its block, an
// unknown header type) and stays failed afterwards. Memory: the bytes of at most one
// incomplete message plus the undelivered complete ones. Thread safety: none.
class EventStreamDecoder {
 public:
  void feed(std::string_view bytes);
  // Moves the next complete message into `out`, reusing its storage; false when none is
  // complete yet.
  bool next(EventStreamMessage& out);
  // Bytes fed but not yet returned as messages (for back-pressure accounting).
  [[nodiscard]] std::size_t buffered() const noexcept;

 private:
  std::string buffer_;
  std::size_t start_ = 0;  // first byte of buffer_ not yet returned
  bool failed_ = false;
};

// Encodes one message (string headers only, type 7), for test and bench servers.
[[nodiscard]] std::string encode_event_stream_message(
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view payload);

// CRC32 (IEEE 802.3, as zlib's crc32), continued from `crc`.
[[nodiscard]] std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0) noexcept;

}  // namespace kclpp::aws::detail
