// The STS client: Query API requests (form-encoded POST), XML replies. Replies carry
// credentials, so no reply body is ever quoted in an error message.
#include "kclpp/aws/sts_client.hpp"

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "error_codes.hpp"
#include "http.hpp"
#include "iso8601.hpp"
#include "kclpp/processor/error.hpp"
#include "sigv4.hpp"
#include "xml.hpp"

namespace kclpp::aws {

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

using detail::is_one_of;
using detail::redact;

}  // namespace

struct StsClient::Impl {
  StsOptions options;
  std::string signing_region;
  std::string url;
  std::string host;
  detail::HttpClient http;
  std::vector<std::string> headers;

  Impl(StsOptions o, std::string region, std::string u, detail::HttpOptions h)
      : options(std::move(o)), signing_region(std::move(region)), url(std::move(u)), host(detail::split_url(url).host),
        http(h) {}

  // Posts the form; returns the body of a 200 reply, throws for anything else (never
  // quoting `credentials` or `token`).
  const std::string& call(std::string_view action, const Params& params, const Credentials* credentials,
                          std::string_view token = {}) {
    Params all = params;
    all.emplace_back("Action", std::string(action));
    all.emplace_back("Version", "2011-06-15");
    const std::string body = detail::canonical_query(all);
    detail::SigningInput in;
    in.method = "POST";
    in.canonical_uri = "/";
    in.region = signing_region;
    in.service = "sts";
    in.headers = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}, {"host", host}};
    headers.clear();
    if (credentials != nullptr) {
      in.payload_hash = detail::sha256_hex(body);
      const std::string authorization = detail::sign(in, *credentials, std::chrono::system_clock::now());
      for (const auto& [name, value] : in.headers) headers.push_back(name + ": " + value);
      headers.push_back("authorization: " + authorization);
    } else {
      for (const auto& [name, value] : in.headers) headers.push_back(name + ": " + value);
    }
    const detail::HttpResult r = http.perform({"POST", url, &headers, body, 0});
    const std::string where = "STS " + std::string(action) + " at " + options.endpoint;
    if (r.outcome != detail::HttpResult::Outcome::Response) {
      const char* stage = r.outcome == detail::HttpResult::Outcome::NotSent ? ": request not sent: "
                          : r.timed_out                                      ? ": timed out: "
                                                                             : ": connection failed: ";
      throw TransportError(where + stage + r.error);
    }
    if (r.status == 200) return http.body();
    fail(where, r.status,
         {credentials != nullptr ? std::string_view(credentials->secret_access_key) : std::string_view(),
          credentials != nullptr ? std::string_view(credentials->session_token) : std::string_view(), token});
  }

  [[noreturn]] void fail(const std::string& where, long status, std::initializer_list<std::string_view> secrets) {
    const std::string& body = http.body();
    std::string code;
    std::string message;
    if (const auto doc = reply_document(body)) {  // <ErrorResponse><Error><Code>...
      code = redact(text_of(*doc, "Code"), secrets);
      message = redact(text_of(*doc, "Message"), secrets);
    }
    const std::string what = where + ": " + (code.empty() ? "HTTP " + std::to_string(status) : code) +
                             (message.empty() ? "" : ": " + message) + " (HTTP " + std::to_string(status) + ")";
    if (is_one_of(code, {"Throttling", "ThrottlingException", "RequestLimitExceeded"}) || status == 429) {
      throw ThrottledError(what);
    }
    if (is_one_of(code, {"IDPCommunicationError", "InternalFailure", "ServiceUnavailable"}) || status >= 500) {
      throw TransportError(what);
    }
    if (is_one_of(code, {"AccessDenied", "InvalidIdentityToken", "ExpiredTokenException", "ExpiredToken",
                      "InvalidClientTokenId", "SignatureDoesNotMatch", "IDPRejectedClaim",
                      "MissingAuthenticationToken", "RegionDisabledException"}) ||
        status == 403) {
      throw AuthError(what);
    }
    if (code.empty()) throw ProtocolError(where + ": unparseable error reply (HTTP " + std::to_string(status) + ")");
    throw AwsError(what, code, static_cast<int>(status), Retry::No);
  }

  // Whether the last reply says the signing credentials expired.
  bool expired_reply() {
    const auto doc = reply_document(http.body());
    return doc && detail::expired_code(text_of(*doc, "Code"));
  }

  // An error reply's document; nullopt when the body is not XML (a proxy's page).
  static std::optional<detail::XmlDocument> reply_document(std::string_view body) {
    try {
      return detail::XmlDocument(body);
    } catch (const ProtocolError&) {
      return std::nullopt;
    }
  }

  // The text of the first element `name` at any depth below `within`, or "".
  static std::string text_of(const detail::XmlDocument& doc, std::string_view name,
                             detail::XmlDocument::Element within = detail::XmlDocument::root) {
    const auto e = doc.find(name, within);
    return e ? doc.text(*e) : std::string();
  }

  Credentials parse_credentials(std::string_view action) {
    const std::string& body = http.body();
    const std::string where = "STS " + std::string(action) + " at " + options.endpoint;
    const auto doc = reply_document(body);
    // The body is not quoted: it carries the secrets.
    if (!doc) {
      throw ProtocolError(where + ": the reply is not well-formed XML (" + std::to_string(body.size()) + " bytes)");
    }
    const auto credentials = doc->find("Credentials");
    if (!credentials) {
      throw ProtocolError(where + ": the reply has no <Credentials> (" + std::to_string(body.size()) + " bytes)");
    }
    Credentials c;
    c.access_key_id = text_of(*doc, "AccessKeyId", *credentials);
    c.secret_access_key = text_of(*doc, "SecretAccessKey", *credentials);
    c.session_token = text_of(*doc, "SessionToken", *credentials);
    const std::string expiration = text_of(*doc, "Expiration", *credentials);
    if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty()) {
      throw ProtocolError(where + ": the reply's <Credentials> lacks AccessKeyId, SecretAccessKey or SessionToken");
    }
    c.expiration = detail::parse_iso8601(expiration);
    if (!c.expiration) throw ProtocolError(where + ": the reply's Expiration '" + expiration + "' is not an ISO 8601 time");
    return c;
  }
};

StsClient::StsClient(StsOptions options) {
  std::string region = options.region;
  if (region.empty()) {
    try {
      region = resolve_region({}, options.profile);
    } catch (const ConfigError&) {
      region.clear();
    }
  }
  const std::string fallback = region.empty() ? "https://sts.amazonaws.com" : regional_endpoint("sts", region);
  options.endpoint = resolve_endpoint("STS", options.endpoint, fallback, options.profile);
  if (region.empty()) region = "us-east-1";
  options.region = region;
  detail::HttpOptions h;
  h.connect_timeout = options.connect_timeout;
  h.request_timeout = options.request_timeout;
  std::string url = options.endpoint + "/";
  impl_ = std::make_unique<Impl>(std::move(options), region, std::move(url), h);
}

StsClient::~StsClient() = default;
StsClient::StsClient(StsClient&&) noexcept = default;
StsClient& StsClient::operator=(StsClient&&) noexcept = default;

const StsOptions& StsClient::options() const noexcept { return impl_->options; }
const std::string& StsClient::region() const noexcept { return impl_->signing_region; }

Credentials StsClient::assume_role(const AssumeRoleRequest& request) {
  Impl& m = *impl_;
  if (request.role_arn.empty() || request.session_name.empty()) {
    throw ConfigError("STS AssumeRole needs a role ARN and a session name");
  }
  if (!m.options.credentials) m.options.credentials = shared_default_credentials(m.options.profile);
  Params p{{"RoleArn", request.role_arn}, {"RoleSessionName", request.session_name}};
  if (!request.external_id.empty()) p.emplace_back("ExternalId", request.external_id);
  if (request.duration) p.emplace_back("DurationSeconds", std::to_string(request.duration->count()));
  for (int attempt = 1;; ++attempt) {
    const Credentials source = m.options.credentials->credentials();
    try {
      (void)m.call("AssumeRole", p, &source);
      break;
    } catch (const AuthError&) {
      // The source credentials expired earlier than stated (or the clock is skewed): the
      // provider refetches and the call goes once more (docs/aws.md §3).
      if (attempt > 1 || !m.expired_reply()) throw;
      m.options.credentials->expire();
    }
  }
  return m.parse_credentials("AssumeRole");
}

Credentials StsClient::assume_role_with_web_identity(const WebIdentityRequest& request) {
  Impl& m = *impl_;
  if (request.role_arn.empty() || request.session_name.empty() || request.token.empty()) {
    throw ConfigError("STS AssumeRoleWithWebIdentity needs a role ARN, a session name and a token");
  }
  Params p{{"RoleArn", request.role_arn}, {"RoleSessionName", request.session_name},
           {"WebIdentityToken", request.token}};
  if (request.duration) p.emplace_back("DurationSeconds", std::to_string(request.duration->count()));
  (void)m.call("AssumeRoleWithWebIdentity", p, nullptr, request.token);
  return m.parse_credentials("AssumeRoleWithWebIdentity");
}

}  // namespace kclpp::aws
