// The event-stream decoder and encoder (docs/aws.md §5). The decoder is a small state
// machine over the fed pieces: the prelude and headers gather in head_, the payload goes
// straight into the message being built (its size is known from the prelude, so it is
// reserved once), the trailing CRC into trailer_. The message CRC runs along as the bytes
// arrive, so a complete message is never read twice nor moved.
#include "event_stream.hpp"

#include <simdjson.h>
#include <zlib.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "kclpp/processor/error.hpp"
#include "kinesis_json.hpp"

namespace kclpp::aws::detail {

namespace {

constexpr std::size_t prelude_size = 12;
constexpr std::size_t crc_size = 4;
// A payload buffer larger than this is given back when the next message needs less than a
// quarter of it: one 10 MB event must not pin 10 MB per subscription for its lifetime
// (likewise the headers' buffer, after a message whose headers were that large).
constexpr std::size_t keep_payload_capacity = 1u << 20;
// An exception payload that is not the JSON expected is quoted up to this many bytes.
constexpr std::size_t max_quoted_payload = 1024;

[[noreturn]] void corrupt(const std::string& what) { throw ProtocolError("event stream: " + what); }

std::uint64_t read_be(std::string_view s, std::size_t pos, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
  return v;
}

void append_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, v);
  return buf;
}

// A header name for a message: printable ASCII as it is, anything else as '?' (the bytes
// came off the network and go to a log).
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('\'');
  for (const char c : s) out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  out.push_back('\'');
  return out;
}

// Reads the value of header `h` (its type already set) from `block` at `pos`; the position
// after it. A flat switch over the ten types.
std::size_t read_value(std::string_view block, std::size_t pos, EventStreamHeader& h) {
  const std::size_t left = block.size() - pos;
  auto need = [&](std::size_t n) {
    if (n > left) {
      corrupt("the value of header " + printable(h.name) + " (type " + std::to_string(h.type) + ", " +
              std::to_string(n) + " bytes) runs past the headers block");
    }
  };
  switch (h.type) {
    case 0:
      h.value = "true";
      return pos;
    case 1:
      h.value = "false";
      return pos;
    case 2:
      need(1);
      h.value = std::to_string(static_cast<std::int8_t>(read_be(block, pos, 1)));
      return pos + 1;
    case 3:
      need(2);
      h.value = std::to_string(static_cast<std::int16_t>(read_be(block, pos, 2)));
      return pos + 2;
    case 4:
      need(4);
      h.value = std::to_string(static_cast<std::int32_t>(read_be(block, pos, 4)));
      return pos + 4;
    case 5:
    case 8:  // timestamp: milliseconds since the epoch
      need(8);
      h.value = std::to_string(static_cast<std::int64_t>(read_be(block, pos, 8)));
      return pos + 8;
    case 6:
    case 7: {
      need(2);
      const auto n = static_cast<std::size_t>(read_be(block, pos, 2));
      need(2 + n);
      h.value.assign(block.substr(pos + 2, n));
      return pos + 2 + n;
    }
    case 9:
      need(16);
      h.value.assign(block.substr(pos, 16));
      return pos + 16;
    default:
      corrupt("header " + printable(h.name) + " has the unknown value type " + std::to_string(h.type));
  }
}

// Parses a headers block into `out`, reusing the storage of the headers already there.
void parse_headers(std::string_view block, std::vector<EventStreamHeader>& out) {
  std::size_t n = 0;
  std::size_t pos = 0;
  while (pos < block.size()) {
    const auto name_size = static_cast<unsigned char>(block[pos++]);
    // The name and its type byte must both fit.
    if (name_size + std::size_t{1} > block.size() - pos) {
      corrupt("header " + std::to_string(n + 1) + " (name of " + std::to_string(name_size) +
              " bytes and its type) runs past the headers block");
    }
    if (n == out.size()) out.emplace_back();
    EventStreamHeader& h = out[n++];
    h.name.assign(block.substr(pos, name_size));
    pos += name_size;
    h.type = static_cast<std::uint8_t>(block[pos++]);
    pos = read_value(block, pos, h);
  }
  out.resize(n);
}

}  // namespace

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc) noexcept {
  // zlib returns 0 for a null buffer whatever the running value: an empty piece is a no-op.
  if (bytes.empty()) return crc;
  return static_cast<std::uint32_t>(
      ::crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

std::string_view EventStreamMessage::header(std::string_view name) const noexcept {
  for (const auto& h : headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

// --- decoder ---------------------------------------------------------------------------

void EventStreamDecoder::feed(std::string_view bytes) {
  if (!error_.empty()) throw ProtocolError(error_);
  buffered_ += bytes.size();
  try {
    while (!bytes.empty()) {
      switch (phase_) {
        case Phase::Head: bytes = take_head(bytes); break;
        case Phase::Payload: bytes = take_payload(bytes); break;
        case Phase::Trailer: bytes = take_trailer(bytes); break;
      }
    }
  } catch (const ProtocolError& e) {
    error_ = e.what();
    throw;
  } catch (...) {  // bad_alloc: the state is no longer trustworthy
    error_ = "event stream: decoding stopped by an earlier failure";
    throw;
  }
}

std::string_view EventStreamDecoder::take_head(std::string_view bytes) {
  const std::size_t n = std::min(head_size_ - head_.size(), bytes.size());
  head_.append(bytes.substr(0, n));
  bytes.remove_prefix(n);
  if (head_.size() < head_size_) return bytes;
  if (total_ == 0) {
    check_prelude();  // sets head_size_ to the prelude and the headers
    if (head_.size() < head_size_) return bytes;
  }
  start_payload();
  return bytes;
}

void EventStreamDecoder::check_prelude() {
  const auto total = static_cast<std::size_t>(read_be(head_, 0, 4));
  const auto headers = static_cast<std::size_t>(read_be(head_, 4, 4));
  const auto said = static_cast<std::uint32_t>(read_be(head_, 8, 4));
  const std::uint32_t computed = crc32(std::string_view(head_).substr(0, 8));
  if (computed != said) {
    corrupt("prelude CRC mismatch (the frame says " + hex32(said) + ", its bytes give " + hex32(computed) + ")");
  }
  if (total < prelude_size + crc_size) {
    corrupt("message length " + std::to_string(total) + " is less than the 16 bytes of prelude and CRC");
  }
  if (total > max_event_stream_message) {
    corrupt("message length " + std::to_string(total) + " exceeds the limit of " +
            std::to_string(max_event_stream_message) + " bytes");
  }
  if (headers > total - prelude_size - crc_size) {
    corrupt("headers length " + std::to_string(headers) + " runs past the message of " + std::to_string(total) +
            " bytes");
  }
  total_ = total;
  head_size_ = prelude_size + headers;
  payload_size_ = total - prelude_size - crc_size - headers;
}

void EventStreamDecoder::start_payload() {
  crc_ = crc32(head_);
  std::string& p = current_.payload;
  const std::size_t need = payload_size_ + json_padding;
  if (p.capacity() > keep_payload_capacity && p.capacity() / 4 > need) p = std::string();
  p.clear();
  p.reserve(need);
  phase_ = payload_size_ > 0 ? Phase::Payload : Phase::Trailer;
}

std::string_view EventStreamDecoder::take_payload(std::string_view bytes) {
  std::string& p = current_.payload;
  const std::size_t n = std::min(payload_size_ - p.size(), bytes.size());
  const std::string_view piece = bytes.substr(0, n);
  p.append(piece);
  crc_ = crc32(piece, crc_);
  if (p.size() == payload_size_) phase_ = Phase::Trailer;
  return bytes.substr(n);
}

std::string_view EventStreamDecoder::take_trailer(std::string_view bytes) {
  const std::size_t n = std::min(crc_size - trailer_have_, bytes.size());
  std::copy_n(bytes.data(), n, trailer_.data() + trailer_have_);
  trailer_have_ += n;
  if (trailer_have_ == crc_size) finish_message();
  return bytes.substr(n);
}

void EventStreamDecoder::finish_message() {
  const auto said = static_cast<std::uint32_t>(read_be(std::string_view(trailer_.data(), crc_size), 0, 4));
  if (said != crc_) {
    corrupt("message CRC mismatch (the frame says " + hex32(said) + ", its " + std::to_string(total_) +
            " bytes give " + hex32(crc_) + ")");
  }
  // Headers are read only once the CRC vouches for them: a damaged frame is reported as
  // damaged, not as a header encoding error.
  parse_headers(std::string_view(head_).substr(prelude_size), current_.headers);
  ready_.push_back(Ready{std::move(current_), total_});
  current_ = std::move(spare_);
  spare_ = EventStreamMessage{};
  head_.clear();
  if (head_.capacity() > keep_payload_capacity) head_.shrink_to_fit();  // a freak headers block
  head_size_ = prelude_size;
  total_ = 0;
  payload_size_ = 0;
  trailer_have_ = 0;
  phase_ = Phase::Head;
}

bool EventStreamDecoder::next(EventStreamMessage& out) {
  if (!ready_.empty()) {
    Ready& r = ready_.front();
    std::swap(out, r.message);
    buffered_ -= r.bytes;
    spare_ = std::move(r.message);  // `out`'s old storage, for a later message
    ready_.pop_front();
    return true;
  }
  if (!error_.empty()) throw ProtocolError(error_);
  return false;
}

std::size_t EventStreamDecoder::buffered() const noexcept { return buffered_; }

// --- encoder ---------------------------------------------------------------------------

std::string encode_event_stream_message(const std::vector<std::pair<std::string, std::string>>& headers,
                                        std::string_view payload) {
  std::string block;
  for (const auto& [name, value] : headers) {
    if (name.size() > std::numeric_limits<std::uint8_t>::max()) {
      throw ProtocolError("event stream: header name " + printable(name.substr(0, 32)) + "... over 255 bytes");
    }
    if (value.size() > std::numeric_limits<std::uint16_t>::max()) {
      throw ProtocolError("event stream: the value of header " + printable(name) + " is over 65535 bytes");
    }
    block.push_back(static_cast<char>(name.size()));
    block += name;
    block.push_back(7);
    block.push_back(static_cast<char>(value.size() >> 8));
    block.push_back(static_cast<char>(value.size() & 0xFF));
    block += value;
  }
  const std::size_t total = prelude_size + block.size() + payload.size() + crc_size;
  if (total > std::numeric_limits<std::uint32_t>::max()) throw ProtocolError("event stream: message over 4 GiB");
  std::string out;
  out.reserve(total);
  append_be32(out, static_cast<std::uint32_t>(total));
  append_be32(out, static_cast<std::uint32_t>(block.size()));
  append_be32(out, crc32(out));
  out += block;
  out += payload;
  append_be32(out, crc32(out));
  return out;
}

// --- SubscribeToShard messages -----------------------------------------------------------

namespace {

// An exception's payload is {"message": "..."} (the service, kinesis-local) or
// {"Message": "..."}; anything else is quoted as it is, cut short.
std::string exception_message(const std::string& payload) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object o;
  std::string_view m;
  if (parser.parse(payload).get(doc) == simdjson::SUCCESS && doc.get_object().get(o) == simdjson::SUCCESS &&
      (o.at_key("message").get_string().get(m) == simdjson::SUCCESS ||
       o.at_key("Message").get_string().get(m) == simdjson::SUCCESS)) {
    return std::string(m);
  }
  if (payload.size() <= max_quoted_payload) return payload;
  return payload.substr(0, max_quoted_payload) + "...";
}

}  // namespace

SubscribeMessage classify_subscribe_message(const EventStreamMessage& m) {
  const std::string_view message_type = m.header(":message-type");
  if (message_type == "event") {
    const std::string_view event_type = m.header(":event-type");
    if (event_type == "SubscribeToShardEvent") return {SubscribeMessageKind::Event, event_type, {}};
    if (event_type == "initial-response") return {SubscribeMessageKind::InitialResponse, event_type, {}};
    return {SubscribeMessageKind::Other, event_type, {}};
  }
  if (message_type == "exception") {
    return {SubscribeMessageKind::Exception, m.header(":exception-type"), exception_message(m.payload)};
  }
  if (message_type == "error") {
    return {SubscribeMessageKind::Error, m.header(":error-code"), std::string(m.header(":error-message"))};
  }
  return {SubscribeMessageKind::Other, message_type, {}};
}

}  // namespace kclpp::aws::detail
