#pragma once
// A connection to an AWS JSON-protocol service (Kinesis: JSON 1.1, DynamoDB: JSON 1.0):
// POST / with X-Amz-Target, signed per request with the provider's current credentials,
// one more send after an expired-credentials reply, and the classification of failures
// every such client shares (docs/aws.md §1, §3).
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http.hpp"
#include "kclpp/aws/credentials.hpp"

namespace kclpp::aws::detail {

// What a failure after the request was sent means for a retry (kclpp::retry resends only
// retryable errors). Idempotent: sending the call again cannot apply it twice (reads, and
// changes whose repeat is refused instead of repeated: a second CreateStream gets
// ResourceInUseException, a second SplitShard finds its shard closed), so a lost reply
// or a 5xx is a retryable TransportError. NotIdempotent: a resend could apply it twice (PutRecord,
// PutItem), so the outcome is unknown: InDoubtError, never retried automatically.
enum class Effect { Idempotent, NotIdempotent };

// An error reply's code (without its namespace prefix) and message.
struct ErrorReply {
  std::string type;
  std::string message;
};

// The secret key and session token a request was signed with: kept out of messages.
struct ReplySecrets {
  std::string_view secret;
  std::string_view token;
};

// The classification of an error reply (HTTP status != 200, `e` its parsed code and
// message) every JSON client shares: ThrottledError, AuthError, TransportError /
// InDoubtError (5xx, as `effect` says), ProtocolError (unparseable), else AwsError with
// `retry` as `other_retry` says for the code. `where` starts the message.
[[noreturn]] void throw_error_reply(const std::string& where, Effect effect, int status, const std::string& body,
                                   const std::optional<ErrorReply>& e, const ReplySecrets& secrets,
                                   const std::function<Retry(std::string_view type)>& other_retry = {});

struct JsonServiceSettings {
  std::string service;        // SigV4 service name: "kinesis", "dynamodb"
  std::string target_prefix;  // "Kinesis_20131202."
  std::string content_type;   // "application/x-amz-json-1.1"
  std::string region;
  std::string endpoint;  // scheme://host[:port], no trailing slash
  CredentialsProviderPtr credentials;
  HttpOptions http;
  std::size_t padding = 0;  // spare capacity kept past each reply body
};

// Thread safety: none (one per client). Move-only.
class JsonService {
 public:
  // Reads an error reply out of a body; nullopt when the body is not one.
  using ErrorParser = std::function<std::optional<ErrorReply>(const std::string& body)>;

  JsonService(JsonServiceSettings settings, ErrorParser parse_error);

  // POSTs `body` as operation `op`; the reply's body is in body(). Returns the transport
  // result of the last send: after a reply saying the credentials expired, the provider
  // refetches and the request goes once more (it was refused, so even a write is safe).
  HttpResult post(std::string_view op, std::string_view body);
  [[nodiscard]] std::string& body() noexcept { return http_.body(); }
  [[nodiscard]] const JsonServiceSettings& settings() const noexcept { return settings_; }

  // The one classification of a failed call: not sent → TransportError; failed after
  // sending → InDoubtError for a NotIdempotent call, else TransportError; an error reply → ThrottledError,
  // AuthError, TransportError / InDoubtError (5xx), ProtocolError (unparseable), else AwsError
  // with `retry` (as `other_retry` says for the code). `where` starts every message.
  [[noreturn]] void fail(const std::string& where, Effect effect, const HttpResult& r,
                         const std::function<Retry(std::string_view type)>& other_retry = {});

 private:
  JsonServiceSettings settings_;
  ErrorParser parse_error_;
  std::string url_;
  std::string host_;
  HttpClient http_;
  std::vector<std::string> headers_;
  // The secret and session token of the last request, to keep them out of messages.
  std::string last_secret_;
  std::string last_token_;
};

}  // namespace kclpp::aws::detail
