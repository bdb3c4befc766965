// libFuzzer target for the MultiLangDaemon line decoder (kcl/src/codec.cpp).
// Each input is one line. It is decoded by a fresh Decoder and by one reused across inputs;
// both must agree, and so must the general (simdjson) path alone: decode() tries the
// processRecords fast path first, which must never change the outcome. ProtocolError is an accepted outcome; any other exception, a crash or a
// sanitizer report is a bug. Decoded messages are re-encoded (must be ASCII) and decoded
// again (must round-trip).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "codec.hpp"
#include "kclpp/processor/error.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace kclpp::kcl::detail;

using kclpp::fuzz::bug;
using kclpp::fuzz::check;
using kclpp::fuzz::parses;

// decode() into (message, batch); false on ProtocolError.
bool try_decode(Decoder& decoder, std::string_view line, Message& message, kclpp::RecordBatch& batch) {
  return parses([&] { decoder.decode(line, message, batch); });
}

// decode_general() into (message, batch); false on ProtocolError.
bool try_decode_general(Decoder& decoder, std::string_view line, Message& message, kclpp::RecordBatch& batch) {
  return parses([&] { decoder.decode_general(line, message, batch); });
}

bool same_message(const Message& a, const Message& b) {
  return a.action == b.action && a.action_name == b.action_name && a.shard_id == b.shard_id &&
         a.sequence_number == b.sequence_number && a.sub_sequence_number == b.sub_sequence_number &&
         a.error == b.error && a.reason == b.reason && a.response_for == b.response_for &&
         a.unexpected_keys == b.unexpected_keys && a.legacy_checkpoint_key == b.legacy_checkpoint_key;
}

bool same_records(const kclpp::RecordBatch& a, const kclpp::RecordBatch& b, bool compare_errors) {
  if (a.records.size() != b.records.size() || a.millis_behind_latest != b.millis_behind_latest) return false;
  for (std::size_t i = 0; i < a.records.size(); ++i) {
    const kclpp::Record& x = a.records[i];
    const kclpp::Record& y = b.records[i];
    if (x.data != y.data || x.partition_key != y.partition_key || x.sequence_number != y.sequence_number ||
        x.sub_sequence_number != y.sub_sequence_number ||
        x.approximate_arrival_timestamp != y.approximate_arrival_timestamp) {
      return false;
    }
    if (compare_errors && x.data_error != y.data_error) return false;
  }
  return true;
}

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Decodes `line` (copied with padding into an exact-size allocation).
bool decode_copy(Decoder& decoder, const std::string& line, Message& message, kclpp::RecordBatch& batch) {
  auto buf = std::make_unique<char[]>(line.size() + decode_padding);
  std::memcpy(buf.get(), line.data(), line.size());
  return try_decode(decoder, std::string_view(buf.get(), line.size()), message, batch);
}

void round_trip(const Message& m, const kclpp::RecordBatch& batch) {
  std::string out;
  switch (m.action) {
    case Action::ProcessRecords: encode_process_records(out, batch); break;
    case Action::Status: encode_status(out, m.response_for); break;
    case Action::Checkpoint:
      encode_checkpoint_response(out, m.sequence_number, m.sub_sequence_number, m.error);
      break;
    case Action::Initialize:
      try {
        const auto position = kclpp::ExtendedSequenceNumber::parse(
            m.sequence_number.value_or("TRIM_HORIZON"), m.sub_sequence_number.value_or(0));
        encode_initialize(out, m.shard_id, position);
      } catch (const kclpp::Error&) {
        return;  // not a valid position: nothing to re-encode
      }
      break;
    case Action::LeaseLost:
    case Action::ShardEnded:
    case Action::ShutdownRequested:
      encode_bare(out, m.action);
      break;
    case Action::Shutdown:
    case Action::Unknown:
      return;
  }
  check(is_ascii(out), "writer produced non-ASCII output");
  Decoder decoder;
  Message again;
  kclpp::RecordBatch again_batch;
  if (!decode_copy(decoder, out, again, again_batch)) bug("re-encoded line does not decode");
  check(again.action == m.action, "round trip changed the action");
  switch (m.action) {
    case Action::ProcessRecords:
      // Undecodable data was written back as "" (no error on the way back).
      check(same_records(batch, again_batch, false), "processRecords round trip differs");
      break;
    case Action::Status: check(again.response_for == m.response_for, "status round trip differs"); break;
    case Action::Checkpoint:
      check(again.sequence_number == m.sequence_number && again.sub_sequence_number == m.sub_sequence_number &&
                again.error == m.error,
            "checkpoint round trip differs");
      break;
    case Action::Initialize: check(again.shard_id == m.shard_id, "initialize round trip differs"); break;
    default: break;
  }
  // Child-side writer too.
  out.clear();
  encode_checkpoint_request(out, m.sequence_number, m.sub_sequence_number);
  check(is_ascii(out), "checkpoint request not ASCII");
  if (!decode_copy(decoder, out, again, again_batch)) bug("checkpoint request does not decode");
  check(again.unexpected_keys.empty() && again.sequence_number == m.sequence_number &&
            again.sub_sequence_number == m.sub_sequence_number,
        "checkpoint request round trip differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Decoder reused;
  static Message reused_message;
  static kclpp::RecordBatch reused_batch;

  // Exact-size allocation: reading past the padding is an ASan report.
  auto buf = std::make_unique<char[]>(size + decode_padding);
  if (size > 0) std::memcpy(buf.get(), data, size);
  for (std::size_t i = 0; i < decode_padding; ++i) buf[size + i] = static_cast<char>(i * 37);
  const std::string_view line(buf.get(), size);

  Decoder fresh;
  Message message;
  kclpp::RecordBatch batch;
  const bool ok = try_decode(fresh, line, message, batch);
  const bool ok_reused = try_decode(reused, line, reused_message, reused_batch);
  check(ok == ok_reused, "fresh and reused decoders disagree on success");
  {
    Decoder general;
    Message general_message;
    kclpp::RecordBatch general_batch;
    const bool ok_general = try_decode_general(general, line, general_message, general_batch);
    check(ok == ok_general, "decode() and decode_general() disagree on success");
    if (ok) {
      check(same_message(message, general_message), "decode() and decode_general() disagree on the message");
      if (message.action == Action::ProcessRecords) {
        check(same_records(batch, general_batch, true), "decode() and decode_general() disagree on the records");
      }
    }
  }
  if (!ok) return 0;
  check(same_message(message, reused_message), "fresh and reused decoders disagree on the message");
  if (message.action == Action::ProcessRecords) {
    check(same_records(batch, reused_batch, true), "fresh and reused decoders disagree on the records");
  }
  (void)cut_line(line, 16);
  round_trip(message, batch);
  return 0;
}
