#include "json_service.hpp"

#include <chrono>
#include <utility>

#include "error_codes.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/processor/error.hpp"
#include "sigv4.hpp"

namespace kclpp::aws::detail {

JsonService::JsonService(JsonServiceSettings settings, ErrorParser parse_error)
    : settings_(std::move(settings)),
      parse_error_(std::move(parse_error)),
      url_(settings_.endpoint + "/"),
      host_(split_url(url_).host),
      http_(settings_.http) {}

HttpResult JsonService::post(std::string_view op, std::string_view body) {
  const auto send = [&](const Credentials& credentials) {
    SigningInput in;
    in.method = "POST";
    in.canonical_uri = "/";
    in.region = settings_.region;
    in.service = settings_.service;
    std::string target = settings_.target_prefix;
    target += op;
    in.headers = {{"content-type", settings_.content_type}, {"host", host_}, {"x-amz-target", std::move(target)}};
    in.payload_hash = sha256_hex(body);
    const std::string authorization = sign(in, credentials, std::chrono::system_clock::now());
    last_secret_ = credentials.secret_access_key;
    last_token_ = credentials.session_token;
    headers_.clear();
    for (const auto& [name, value] : in.headers) headers_.push_back(name + ": " + value);
    headers_.push_back("authorization: " + authorization);
    return http_.perform({"POST", url_, &headers_, body, settings_.padding});
  };
  HttpResult r = send(settings_.credentials->credentials());
  if (r.outcome == HttpResult::Outcome::Response && r.status == 400) {
    const auto e = parse_error_(http_.body());
    if (e && expired_code(e->type)) {
      // Our temporary credentials expired earlier than stated (or the clock is skewed).
      settings_.credentials->expire();
      r = send(settings_.credentials->credentials());
    }
  }
  return r;
}

void JsonService::fail(const std::string& where, Effect effect, const HttpResult& r,
                       const std::function<Retry(std::string_view type)>& other_retry) {
  const bool in_doubt = effect == Effect::NotIdempotent;
  if (r.outcome == HttpResult::Outcome::NotSent) throw TransportError(where + ": request not sent: " + r.error);
  if (r.outcome == HttpResult::Outcome::Failed) {
    const std::string what = where + (r.timed_out ? ": timed out: " : ": connection failed: ") + r.error;
    if (in_doubt) throw InDoubtError(what + " (after the request was sent: it may or may not have taken effect)");
    throw TransportError(what);
  }
  const std::string& body = http_.body();
  throw_error_reply(where, effect, static_cast<int>(r.status), body, parse_error_(body), {last_secret_, last_token_},
                    other_retry);
}

void throw_error_reply(const std::string& where, Effect effect, int status, const std::string& body,
                       const std::optional<ErrorReply>& e, const ReplySecrets& secrets,
                       const std::function<Retry(std::string_view type)>& other_retry) {
  const bool in_doubt = effect == Effect::NotIdempotent;
  // Redacted before the snippet cuts the body short: no prefix of a secret survives.
  const std::string detail = e ? redact(e->type + (e->message.empty() ? "" : ": " + e->message),
                                        {secrets.secret, secrets.token})
                               : "HTTP " + std::to_string(status) + " " +
                                     reply_snippet(redact(body, {secrets.secret, secrets.token}));
  const std::string what = where + ": " + detail + (e ? " (HTTP " + std::to_string(status) + ")" : "");
  if (e && throttling_code(e->type)) throw ThrottledError(what);
  if (e && auth_code(e->type)) throw AuthError(what);
  if (status >= 500) {
    if (in_doubt) {
      throw InDoubtError(what + " (the server failed after receiving the request: it may or may not have taken "
                                "effect)");
    }
    throw TransportError(what);
  }
  if (!e) throw ProtocolError(where + ": unparseable error reply: " + detail);
  if (status == 429) throw ThrottledError(what);
  throw AwsError(what, e->type, status, other_retry ? other_retry(e->type) : Retry::No);
}

}  // namespace kclpp::aws::detail
