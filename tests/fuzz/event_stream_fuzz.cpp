// libFuzzer target for the SubscribeToShard stream (aws/src/event_stream.cpp,
// aws/src/kinesis_json.cpp): the event-stream decoder, classify_subscribe_message and the
// SubscribeToShardEvent parser, the bytes of a reply body arriving from the network.
//
// Input: a flags byte, a split point (u16 big-endian), then the stream. Flag bit 0 rewrites
// the CRCs of every frame the stream's lengths outline, so that mutations reach the headers
// and payloads behind the CRC checks (random bytes almost never carry a right CRC32); with
// it clear the CRC checks themselves are fuzzed. The stream is fed in two pieces cut at the
// split point and also in one piece: both must give the same messages and the same error.
// Every message is classified and every event's payload parsed. ProtocolError is the one
// accepted refusal; any other exception, a crash or a sanitizer report is a bug.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "event_stream.hpp"
#include "fuzz_check.hpp"
#include "kinesis_json.hpp"

namespace {

using kclpp::aws::SubscribeToShardEvent;
using kclpp::aws::detail::classify_subscribe_message;
using kclpp::aws::detail::EventStreamDecoder;
using kclpp::aws::detail::EventStreamMessage;
using kclpp::aws::detail::ReplyParser;
using kclpp::aws::detail::SubscribeMessageKind;
using kclpp::fuzz::bug;
using kclpp::fuzz::check;
using kclpp::fuzz::parses;

std::uint32_t read_be32(const std::string& s, std::size_t pos) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[pos + i]);
  return v;
}

void write_be32(std::string& s, std::size_t pos, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) s[pos + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}

// Gives each frame the lengths outline its right prelude and message CRCs.
void fix_crcs(std::string& s) {
  using kclpp::aws::detail::crc32;
  std::size_t pos = 0;
  while (s.size() - pos >= 12) {
    write_be32(s, pos + 8, crc32(std::string_view(s).substr(pos, 8)));
    const std::size_t total = read_be32(s, pos);
    if (total < 16 || total > s.size() - pos) return;
    write_be32(s, pos + total - 4, crc32(std::string_view(s).substr(pos, total - 4)));
    pos += total;
  }
}

// A message's length on the wire, from what was decoded.
std::size_t wire_size(const EventStreamMessage& m) {
  std::size_t n = 16 + m.payload.size();
  for (const auto& h : m.headers) {
    n += 2 + h.name.size();
    switch (h.type) {
      case 0: case 1: break;
      case 2: n += 1; break;
      case 3: n += 2; break;
      case 4: n += 4; break;
      case 5: case 8: n += 8; break;
      case 6: case 7: n += 2 + h.value.size(); break;
      case 9: n += 16; break;
      default: bug("a header of unknown type was accepted");
    }
  }
  return n;
}

struct Outcome {
  std::vector<EventStreamMessage> messages;
  bool failed = false;
};

// Feeds the pieces, taking the messages after each; a ProtocolError ends the feeding but
// the messages complete before it are still taken.
Outcome decode(const std::vector<std::string_view>& pieces) {
  Outcome out;
  EventStreamDecoder decoder;
  EventStreamMessage m;
  std::size_t fed = 0;
  std::size_t taken = 0;
  for (const auto piece : pieces) {
    if (!parses([&] { decoder.feed(piece); })) {
      out.failed = true;
      break;
    }
    fed += piece.size();
    const bool ok = parses([&] {
      while (decoder.next(m)) {
        taken += wire_size(m);
        out.messages.push_back(std::move(m));
        m = EventStreamMessage{};
      }
    });
    if (!ok) bug("next() failed although feed() did not");
    check(decoder.buffered() == fed - taken, "buffered() is not the bytes fed minus those returned");
  }
  if (out.failed) {
    while (parses([&] { check(decoder.next(m), "a failed decoder neither returned nor threw"); })) {
      out.messages.push_back(std::move(m));
      m = EventStreamMessage{};
    }
    check(!parses([&] { decoder.feed("x"); }), "a failed decoder took more bytes");
  }
  return out;
}

bool same(const EventStreamMessage& a, const EventStreamMessage& b) {
  if (a.payload != b.payload || a.headers.size() != b.headers.size()) return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].type != b.headers[i].type ||
        a.headers[i].value != b.headers[i].value) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ReplyParser parser;
  static SubscribeToShardEvent event;  // reused across inputs, as a subscription reuses it
  if (size < 3) return 0;
  const bool fix = (data[0] & 1) != 0;
  std::string stream(reinterpret_cast<const char*>(data) + 3, size - 3);
  if (fix) fix_crcs(stream);
  const std::size_t split = ((std::size_t{data[1]} << 8) | data[2]) % (stream.size() + 1);
  const std::string_view all(stream);

  const Outcome two = decode({all.substr(0, split), all.substr(split)});
  const Outcome one = decode({all});
  if (two.failed != one.failed) bug("the split stream and the whole one disagree on failing");
  if (two.messages.size() != one.messages.size()) bug("the split stream and the whole one differ in messages");
  for (std::size_t i = 0; i < one.messages.size(); ++i) {
    if (!same(one.messages[i], two.messages[i])) bug("a message differs between the split stream and the whole one");
  }

  for (const auto& m : one.messages) {
    const auto c = classify_subscribe_message(m);
    if (c.kind != SubscribeMessageKind::Event) continue;
    if (!parses([&] { parser.subscribe_event(m.payload, event); })) {
      event = SubscribeToShardEvent{};  // a failed parse leaves the event unspecified
      continue;
    }
    for (const auto& r : event.records) {
      if (r.sequence_number.empty()) bug("a record without sequence number was accepted");
      if (!r.data_error.empty() && !r.data.empty()) bug("data_error with data");
    }
  }
  return 0;
}
