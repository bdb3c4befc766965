#include "spool_wire.hpp"

#include <algorithm>
#include <numeric>

#include <nlohmann/json.hpp>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/internal/json_string.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline::detail {
namespace {

void append_pascal64(std::string_view field, std::string& out) {
  out.push_back(static_cast<char>(field.size()));
  out.append(field);
  out.append(64 - 1 - field.size(), '\0');
}

// struct.unpack's 'p': the length byte, clamped to the field (CPython's _struct does
// `if (n >= size) n = size - 1`), so a sender's oversized length byte is not an error for
// tritond either.
std::string read_pascal64(std::string_view field) {
  std::size_t n = static_cast<unsigned char>(field[0]);
  n = std::min(n, binary_header_max_field);
  return std::string(field.substr(1, n));
}

bool retryable_entry_code(std::string_view code) {
  return code == "ProvisionedThroughputExceededException" || code == "InternalFailure" ||
         code == "KMSThrottlingException" || code == "ServiceUnavailable";
}
bool throttling_entry_code(std::string_view code) {
  return code == "ProvisionedThroughputExceededException" || code == "KMSThrottlingException";
}

std::string error_code_of(const Error& e) {
  if (const auto* aws = dynamic_cast<const aws::AwsError*>(&e)) return aws->type();
  if (dynamic_cast<const ThrottledError*>(&e) != nullptr) return "ThrottledError";
  if (dynamic_cast<const InDoubtError*>(&e) != nullptr) return "InDoubtError";
  if (dynamic_cast<const AuthError*>(&e) != nullptr) return "AuthError";
  if (dynamic_cast<const TransportError*>(&e) != nullptr) return "TransportError";
  if (dynamic_cast<const ProtocolError*>(&e) != nullptr) return "ProtocolError";
  if (dynamic_cast<const ConfigError*>(&e) != nullptr) return "ConfigError";
  return "Error";
}

}  // namespace

bool append_binary_header(std::string_view stream, std::string_view key, std::string& out) {
  if (stream.size() > binary_header_max_field || key.size() > binary_header_max_field) return false;
  out.push_back(static_cast<char>(binary_header_version));
  append_pascal64(stream, out);
  append_pascal64(key, out);
  return true;
}

void append_json_header(std::string_view stream, std::string_view key, std::string& out) {
  out.append("{\"stream_name\":");
  kclpp::detail::append_json_string<kclpp::detail::JsonText::Verbatim>(out, stream);
  out.append(",\"partition_key\":");
  kclpp::detail::append_json_string<kclpp::detail::JsonText::Verbatim>(out, key);
  out.push_back('}');
}

std::optional<SpoolHeader> decode_header(std::string_view frame, std::string& error) {
  error.clear();
  if (frame.empty()) {
    error = "empty header frame";
    return std::nullopt;
  }
  SpoolHeader header;
  if (static_cast<unsigned char>(frame[0]) == binary_header_version) {
    if (frame.size() != binary_header_size) {
      error = "binary header of " + std::to_string(frame.size()) + " bytes (expected 129: struct '!B64p64p')";
      return std::nullopt;
    }
    header.stream_name = read_pascal64(frame.substr(1, 64));
    header.partition_key = read_pascal64(frame.substr(65, 64));
  } else if (frame[0] == '{') {
    const auto json = nlohmann::json::parse(frame, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      error = "JSON header is not a JSON object";
      return std::nullopt;
    }
    const auto stream = json.find("stream_name");
    const auto key = json.find("partition_key");
    if (stream == json.end() || !stream->is_string() || key == json.end() || !key->is_string()) {
      error = "JSON header needs string fields stream_name and partition_key";
      return std::nullopt;
    }
    header.stream_name = stream->get<std::string>();
    header.partition_key = key->get<std::string>();
  } else {
    error = "unknown header format (first byte " + std::to_string(static_cast<unsigned char>(frame[0])) +
            "; expected 4 or '{')";
    return std::nullopt;
  }
  if (header.stream_name.empty()) {
    error = "header names no stream";
    return std::nullopt;
  }
  return header;
}

std::size_t utf8_length(std::string_view text) noexcept {
  std::size_t n = 0;
  for (const char ch : text) {
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string partition_key_problem(std::string_view key) {
  if (key.empty()) return "empty partition key";
  if (utf8_length(key) > max_partition_key_chars)
    return "partition key of " + std::to_string(utf8_length(key)) + " characters (Kinesis allows 256)";
  return {};
}

std::vector<std::pair<std::size_t, std::size_t>> split_requests(
    std::span<const aws::PutRecordsEntry> entries) {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  std::size_t begin = 0;
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::size_t size = entries[i].data.size() + entries[i].partition_key.size();
    if (i > begin && (i - begin == max_records_per_request || bytes + size > max_request_bytes)) {
      ranges.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (begin < entries.size()) ranges.emplace_back(begin, entries.size());
  return ranges;
}

PutOutcome put_with_retry(aws::KinesisClient& client, const std::string& stream,
                          std::span<const aws::PutRecordsEntry> entries, const RetryPolicy& policy) {
  PutOutcome out;
  out.results.resize(entries.size());
  if (entries.empty()) return out;
  std::vector<std::size_t> todo(entries.size());
  std::iota(todo.begin(), todo.end(), std::size_t{0});
  std::vector<bool> resent(entries.size(), false);
  std::vector<aws::PutRecordsEntry> again_entries;
  // The last whole-request failure, cleared by a round that got a reply.
  std::string whole_code;
  std::string whole_message;
  int attempt = 0;
  try {
    // One kclpp::retry (no loop of our own): each attempt sends only what has no result.
    retry(policy, [&] {
      std::span<const aws::PutRecordsEntry> send = entries;
      if (++attempt > 1) {
        again_entries.clear();
        for (const std::size_t i : todo) {
          if (!resent[i]) {
            resent[i] = true;
            ++out.retried;
          }
          again_entries.push_back(entries[i]);
        }
        send = again_entries;
      }
      std::vector<aws::PutRecordsResultEntry> replies;
      try {
        replies = client.put_records(stream, send);
      } catch (const InDoubtError& e) {
        // A spool or batch producer prefers a possible duplicate to a certain loss: Kinesis
        // producers are at-least-once anyway (docs/triton.md §5 "Writes": py-triton resends 5xx too).
        whole_code = "InDoubtError";
        whole_message = e.what();
        throw TransportError(e.what(), Retry::Yes);
      } catch (const Error& e) {
        whole_code = error_code_of(e);
        whole_message = e.what();
        throw;
      }
      whole_code.clear();
      whole_message.clear();
      std::vector<std::size_t> failed;
      bool throttled = false;
      std::string first_error;
      for (std::size_t k = 0; k < replies.size() && k < todo.size(); ++k) {
        const std::size_t i = todo[k];
        out.results[i] = std::move(replies[k]);
        if (out.results[i].ok()) continue;
        if (!retryable_entry_code(out.results[i].error_code)) continue;  // reported as is
        if (failed.empty()) first_error = out.results[i].error_code + ": " + out.results[i].error_message;
        throttled = throttled || throttling_entry_code(out.results[i].error_code);
        failed.push_back(i);
      }
      todo = std::move(failed);
      if (todo.empty()) return;
      const std::string what = std::to_string(todo.size()) + " of " + std::to_string(send.size()) +
                               " records not put to " + stream + ": " + first_error;
      if (throttled) throw ThrottledError(what);
      throw TransportError(what, Retry::Yes);
    });
  } catch (const Error&) {
    if (!whole_code.empty()) {
      for (const std::size_t i : todo) {
        out.results[i] = aws::PutRecordsResultEntry{{}, {}, whole_code, whole_message};
      }
    }
  }
  out.failed = static_cast<std::size_t>(
      std::count_if(out.results.begin(), out.results.end(), [](const auto& r) { return !r.ok(); }));
  return out;
}

}  // namespace kclpp::pipeline::detail

namespace kclpp::pipeline::detail {

std::uint64_t LogLimiter::allow() noexcept {
  const std::uint64_t count = count_.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t next = next_ns_.load(std::memory_order_relaxed);
  if (now < next) return 0;
  if (!next_ns_.compare_exchange_strong(next, now + period_ns_, std::memory_order_relaxed)) return 0;
  // Occurrences counted after this exchange are reported by the next allowed line.
  const std::uint64_t taken = count_.exchange(0, std::memory_order_relaxed);
  return taken == 0 ? count : taken;
}

}  // namespace kclpp::pipeline::detail
