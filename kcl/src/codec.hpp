#pragma once
// MultiLangDaemon message codec (private to kclpp::kcl): a lenient reader for every
// message and version variant of docs/kcl-protocol.md §2, §3 and §8, and a strict, ASCII-only writer that
// emits exactly the keys the Java daemon accepts (docs/kcl-protocol.md §1 "Strict parsing").

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/internal/json_string.hpp"
#include "kclpp/processor/record.hpp"
#include "kclpp/processor/sequence_number.hpp"

namespace kclpp::kcl::detail {

enum class Action {
  Initialize,
  ProcessRecords,
  Checkpoint,         // daemon -> child: response; child -> daemon: request
  LeaseLost,
  ShardEnded,
  ShutdownRequested,
  Shutdown,           // KCL 1.x, with reason TERMINATE | ZOMBIE (docs/kcl-protocol.md §8)
  Status,             // child -> daemon
  Unknown,            // valid JSON object with an action we do not know
};

[[nodiscard]] std::string_view action_name(Action action) noexcept;

// One decoded line. Fields not carried by the action keep their reset values.
struct Message {
  Action action = Action::Unknown;
  std::string action_name;  // as received
  // initialize
  std::string shard_id;
  // initialize, checkpoint request / response. From the legacy "checkpoint" key too.
  std::optional<std::string> sequence_number;
  std::optional<std::int64_t> sub_sequence_number;
  // checkpoint response
  std::optional<std::string> error;
  // shutdown (1.x)
  std::string reason;
  // status
  std::string response_for;
  // Keys the Java daemon's strict reader would reject in a child message: anything beyond
  // those of docs/kcl-protocol.md §3 for the action, and the legacy "checkpoint" key (docs/kcl-protocol.md §1, §8).
  std::vector<std::string> unexpected_keys;
  bool legacy_checkpoint_key = false;

  void reset();
};

// Bytes that must be readable (any value) after the end of a line given to decode().
inline constexpr std::size_t decode_padding = 64;

// Reusable decoder (holds the JSON parser's buffers). Not thread-safe.
class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Decodes one line (no '\n'; a trailing '\r' is tolerated). For processRecords the
  // records go into `batch` (reusing its storage); undecodable base64 becomes
  // Record::data_error. Throws ProtocolError naming what is wrong: not JSON, not an object,
  // no "action", a field of the wrong type, a bad record. An unknown action is not an
  // error: it returns Action::Unknown. After a ProtocolError, `batch` may have been emptied.
  // `line.data()` must be followed by decode_padding readable bytes.
  void decode(std::string_view line, Message& message, RecordBatch& batch);

  // The two halves of decode(), for the tests and the fuzz target that compare them.
  // try_decode_fast() takes only a processRecords line in the exact shape the Java
  // daemon's Jackson writes (docs/kcl-protocol.md §2: that key order, no whitespace, no escapes, integers or
  // null for the numbers, data that decodes) and returns false for anything else, leaving
  // `message` and `batch` unspecified; it throws no ProtocolError (only std::bad_alloc).
  // decode_general() is the simdjson path that reads every variant. Whenever
  // try_decode_fast() returns true, decode_general() gives the same message and batch.
  [[nodiscard]] bool try_decode_fast(std::string_view line, Message& message, RecordBatch& batch);
  void decode_general(std::string_view line, Message& message, RecordBatch& batch);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writers: each appends exactly one JSON object (no newline) to `out`. ASCII only:
// non-ASCII text is written as \uXXXX escapes (invalid UTF-8 as U+FFFD).
void encode_status(std::string& out, std::string_view response_for);
// sequence_number nullopt -> null (checkpoint at the largest delivered record).
void encode_checkpoint_request(std::string& out, const std::optional<std::string>& sequence_number,
                               std::optional<std::int64_t> sub_sequence_number);
void encode_initialize(std::string& out, std::string_view shard_id,
                       const ExtendedSequenceNumber& position);
// Base64-encodes each record's data; approximateArrivalTimestamp in epoch ms or null.
void encode_process_records(std::string& out, const RecordBatch& batch);
void encode_checkpoint_response(std::string& out, const std::optional<std::string>& sequence_number,
                                std::optional<std::int64_t> sub_sequence_number,
                                const std::optional<std::string>& error);
// leaseLost, shardEnded, shutdownRequested: {"action":"..."}.
void encode_bare(std::string& out, Action action);
// KCL 1.x: {"action":"shutdown","reason":"TERMINATE"|"ZOMBIE"} (docs/kcl-protocol.md §2).
void encode_shutdown(std::string& out, std::string_view reason);
// Appends `s` as a JSON string literal (quotes included), ASCII-only: the strict writer
// (docs/kcl-protocol.md §3).
inline void append_json_string(std::string& out, std::string_view s) {
  kclpp::detail::append_json_string<kclpp::detail::JsonText::Ascii>(out, s);
}

// A line cut for error messages: at most `max` bytes, with "...(N bytes)" when cut.
[[nodiscard]] std::string cut_line(std::string_view line, std::size_t max = 200);

}  // namespace kclpp::kcl::detail
