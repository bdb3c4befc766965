#pragma once
// The error codes AWS JSON services (Kinesis, DynamoDB) reply with, sorted into the kclpp
// errors they become, and the reply snippet error messages quote. One list for every client.
#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

namespace kclpp::aws::detail {

[[nodiscard]] inline bool is_one_of(std::string_view code, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), code) != names.end();
}

// ThrottledError: retry with a longer backoff.
[[nodiscard]] inline bool throttling_code(std::string_view c) {
  return is_one_of(c, {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException",
                       "Throttling", "KMSThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"});
}

// AuthError: the credentials or the signature were refused.
[[nodiscard]] inline bool auth_code(std::string_view c) {
  return is_one_of(c, {"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
                       "ExpiredTokenException", "ExpiredToken", "IncompleteSignature", "IncompleteSignatureException",
                       "MissingAuthenticationToken", "MissingAuthenticationTokenException", "InvalidClientTokenId",
                       "SignatureDoesNotMatch"});
}

// Replies after which fresh credentials may succeed: the provider refetches, one retry
// (docs/aws.md §3).
[[nodiscard]] inline bool expired_code(std::string_view c) {
  return is_one_of(c, {"ExpiredTokenException", "ExpiredToken", "RequestExpired"});
}

// At most 200 bytes of a reply body with control characters blanked, quoted, for messages
// about unparseable error replies (never used for replies that may carry credentials).
[[nodiscard]] inline std::string reply_snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (char& ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  return s.empty() ? "(empty body)" : "'" + s + (body.size() > 200 ? "...'" : "'");
}

// `text` with every occurrence of each secret replaced by "<redacted>": an error reply may
// quote the request (SignatureDoesNotMatch / InvalidSignatureException quote the canonical
// request, the session token included), and messages never carry secrets (docs/aws.md §2).
[[nodiscard]] inline std::string redact(std::string text, std::initializer_list<std::string_view> secrets) {
  constexpr std::string_view mark = "<redacted>";
  for (const std::string_view secret : secrets) {
    if (secret.empty()) continue;
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + mark.size())) {
      text.replace(at, secret.size(), mark);
    }
  }
  return text;
}

}  // namespace kclpp::aws::detail
