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
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
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
  // From the decoder: with json_padding (kinesis_json.hpp) bytes of spare capacity, so
  // that a JSON payload parses where it is.
  std::string payload;
  // The value of header `name`, "" when absent.
  [[nodiscard]] std::string_view header(std::string_view name) const noexcept;
};

// Incremental decoder: feed bytes as they arrive, in pieces of any size; complete messages
// come out of next(). A payload is copied once, from the fed pieces straight into the
// message that next() hands out (no reassembly buffer, no compaction).
// Errors: ProtocolError naming what was wrong (CRC mismatch of the prelude or the message,
// a length out of range, a header running past its block, an unknown header type). feed()
// throws when the bytes it was given hold the corruption; the messages complete before it
// still come out of next(), which then throws the same error. After that the decoder stays
// failed: every feed() and next() throws. Memory: the bytes of at most one incomplete
// message plus the undelivered complete ones. Thread safety: none.
class EventStreamDecoder {
 public:
  void feed(std::string_view bytes);
  // Moves the next complete message into `out`, reusing its storage; false when none is
  // complete yet.
  bool next(EventStreamMessage& out);
  // Bytes fed but not yet returned as messages (for back-pressure accounting).
  [[nodiscard]] std::size_t buffered() const noexcept;

 private:
  std::string_view take_head(std::string_view bytes);
  std::string_view take_payload(std::string_view bytes);
  std::string_view take_trailer(std::string_view bytes);
  void check_prelude();
  void start_payload();
  void finish_message();
  [[noreturn]] void fail(std::string what);

  enum class Phase { Head, Payload, Trailer };
  struct Ready {
    EventStreamMessage message;
    std::size_t bytes = 0;  // its length on the wire
  };

  Phase phase_ = Phase::Head;
  std::string head_;                  // prelude + headers of the message being read
  std::size_t head_size_ = 12;        // bytes head_ needs: the prelude, then with headers
  std::size_t total_ = 0;             // the message's length (from its prelude)
  std::size_t payload_size_ = 0;
  std::uint32_t crc_ = 0;             // running CRC32 of the message so far
  std::array<char, 4> trailer_{};
  std::size_t trailer_have_ = 0;
  EventStreamMessage current_;        // its payload fills as bytes arrive
  std::deque<Ready> ready_;
  EventStreamMessage spare_;          // storage handed back by next(), for the next message
  std::size_t buffered_ = 0;
  std::string error_;                 // non-empty: failed
};

// Encodes one message (string headers only, type 7), for test and bench servers. Throws
// ProtocolError for a header name over 255 bytes or a value over 65535.
[[nodiscard]] std::string encode_event_stream_message(
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view payload);

// CRC32 (IEEE 802.3, as zlib's crc32), continued from `crc`.
[[nodiscard]] std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0) noexcept;

// What one decoded message of a SubscribeToShard stream is (docs/aws.md §5).
enum class SubscribeMessageKind { Event, InitialResponse, Exception, Error, Other };
struct SubscribeMessage {
  SubscribeMessageKind kind;
  // Event, InitialResponse: :event-type; Exception: :exception-type; Error: :error-code;
  // Other: :event-type, or :message-type when that is not "event". Points into the message.
  std::string_view type;
  // Exception: the payload's "message" / "Message", else the payload (cut at 1 KiB);
  // Error: :error-message. Empty otherwise.
  std::string message;
};
// Never throws for a message's content (a payload that is not JSON is quoted as it is).
SubscribeMessage classify_subscribe_message(const EventStreamMessage& m);

}  // namespace kclpp::aws::detail
