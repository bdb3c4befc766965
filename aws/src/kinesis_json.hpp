#pragma once
// JSON of the Kinesis API: a small writer for requests and the reply parsers (simdjson;
// GetRecords with the On-Demand API, the hot path). simdjson.h stays in kinesis_json.cpp.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/aws/kinesis_subscriber.hpp"
#include "kclpp/internal/json_string.hpp"

namespace kclpp::aws::detail {

// Spare capacity every parsed buffer must have past its size (simdjson::SIMDJSON_PADDING).
inline constexpr std::size_t json_padding = 64;

// Appends `s` as a JSON string literal (quotes, escapes for '"', '\\' and control bytes;
// other bytes, UTF-8 included, as they are: Kinesis validates its own input).
inline void append_json_string(std::string& out, std::string_view s) {
  kclpp::detail::append_json_string<kclpp::detail::JsonText::Verbatim>(out, s);
}
// Appends `"key":` (key written verbatim: callers pass fixed ASCII names).
void append_json_key(std::string& out, std::string_view key);

// Parsers of the replies. Each throws ProtocolError (without the operation context, which
// the client adds) for a reply that is not what the API documents. `body` must have
// json_padding bytes of spare capacity. Thread safety: none (holds simdjson parsers).
class ReplyParser {
 public:
  ReplyParser();
  ~ReplyParser();
  ReplyParser(ReplyParser&&) noexcept;
  ReplyParser& operator=(ReplyParser&&) noexcept;

  // Fills `out`, reusing the storage of the records already in it.
  void get_records(const std::string& body, GetRecordsResult& out);
  // A SubscribeToShardEvent's JSON (an event-stream payload, docs/aws.md §5): its records
  // read as get_records reads them, into `out` reusing their storage.
  // ContinuationSequenceNumber null or absent (the end of a closed shard) → "".
  void subscribe_event(const std::string& body, SubscribeToShardEvent& out);
  // Appends the page's shards to `out`; returns NextToken ("" when none).
  std::string list_shards(const std::string& body, std::vector<Shard>& out);
  StreamSummary stream_summary(const std::string& body);
  std::string shard_iterator(const std::string& body);
  PutRecordResult put_record(const std::string& body);
  std::vector<PutRecordsResultEntry> put_records(const std::string& body);
  // RegisterStreamConsumer's `Consumer` or DescribeStreamConsumer's `ConsumerDescription`
  // (`wrapper`); stream_arn stays empty when the reply has none (Register's).
  StreamConsumer stream_consumer(const std::string& body, std::string_view wrapper);
  // Appends the page's consumers to `out`; returns NextToken ("" when none).
  std::string stream_consumers(const std::string& body, std::vector<StreamConsumer>& out);
  // An error reply's `__type` (the part after the last '#') and `message` / `Message`.
  // False when the body is not a JSON object with a string `__type`.
  bool error(const std::string& body, std::string& type, std::string& message);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::aws::detail
