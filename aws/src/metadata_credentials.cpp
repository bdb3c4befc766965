// Credentials from the metadata services: the ECS / EKS Pod Identity container endpoint
// and EC2 instance metadata (IMDSv2, IMDSv1 only where the token call is refused, as
// botocore does). Their replies hold secrets: no error message quotes a reply body.
#include <arpa/inet.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>

#include "http.hpp"
#include "iso8601.hpp"
#include "kclpp/aws/credentials.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "refreshing_provider.hpp"
#include "shared_config.hpp"

namespace kclpp::aws {

namespace {

// {AccessKeyId, SecretAccessKey, Token, Expiration} as both services send them.
Credentials parse_credentials_json(const std::string& body, const std::string& where) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception&) {
    throw AuthError(where + ": the reply is not JSON (" + std::to_string(body.size()) + " bytes)");
  }
  if (!doc.is_object()) throw AuthError(where + ": the reply is not a JSON object");
  auto text = [&](const char* key) -> std::string {
    auto it = doc.find(key);
    if (it == doc.end() || !it->is_string() || it->get<std::string>().empty()) {
      throw AuthError(where + ": the reply has no " + key);
    }
    return it->get<std::string>();
  };
  if (auto code = doc.find("Code"); code != doc.end() && code->is_string() && code->get<std::string>() != "Success") {
    throw AuthError(where + ": the service answered Code '" + code->get<std::string>() + "'");
  }
  Credentials c;
  c.access_key_id = text("AccessKeyId");
  c.secret_access_key = text("SecretAccessKey");
  c.session_token = text("Token");
  const std::string expiration = text("Expiration");
  c.expiration = detail::parse_iso8601(expiration);
  if (!c.expiration) throw AuthError(where + ": Expiration '" + expiration + "' is not an ISO 8601 time");
  return c;
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw AuthError(std::string("container credentials: cannot read ") + what + " '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A plain-http full URI may only point at this machine or the container credential hosts.
bool allowed_http_host(std::string host) {
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    const std::size_t close = host.find(']');
    host = host.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string::npos) {
    host.resize(colon);
  }
  if (host == "localhost" || host == "169.254.170.2" || host == "169.254.170.23" || host == "fd00:ec2::23" ||
      host == "::1") {
    return true;
  }
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

std::string container_uri(const ContainerOptions& o) {
  if (!o.full_uri.empty()) return o.full_uri;
  if (std::string rel = detail::env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); !rel.empty()) {
    return "http://169.254.170.2" + rel;
  }
  return detail::env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

}  // namespace

bool container_credentials_configured() {
  return !detail::env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty() ||
         !detail::env("AWS_CONTAINER_CREDENTIALS_FULL_URI").empty();
}

CredentialsProviderPtr container_credentials(ContainerOptions options) {
  const std::string uri = container_uri(options);
  if (uri.empty()) {
    throw ConfigError("container credentials: neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI is set");
  }
  const detail::UrlParts url = detail::split_url(uri);
  if (url.scheme == "http" && !allowed_http_host(url.host)) {
    throw ConfigError("container credentials: '" + uri + "' is plain http to a host that is neither loopback nor "
                      "a container credential host (169.254.170.2, 169.254.170.23, fd00:ec2::23); use https");
  }
  if (options.authorization_token.empty() && options.authorization_token_file.empty()) {
    options.authorization_token_file = detail::env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (options.authorization_token_file.empty()) {
      options.authorization_token = detail::env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    }
  }
  auto http = std::make_shared<detail::HttpClient>(detail::HttpOptions{options.timeout, options.timeout});
  auto fetch = [options, uri, http]() -> Credentials {
    const std::string where = "container credentials from " + uri;
    std::string token = options.authorization_token_file.empty()
                            ? options.authorization_token
                            : read_file(options.authorization_token_file, "the authorization token file");
    if (token.find_first_of("\r\n") != std::string::npos) {
      throw ConfigError(where + ": the authorization token contains a line break (a trailing newline in " +
                        (options.authorization_token_file.empty() ? std::string("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                                                                  : options.authorization_token_file) +
                        "?)");
    }
    std::vector<std::string> headers{"Accept: application/json"};
    if (!token.empty()) headers.push_back("Authorization: " + token);
    std::string failure;
    for (int attempt = 1; attempt <= std::max(1, options.attempts); ++attempt) {
      const detail::HttpResult r = http->perform({"GET", uri, &headers, {}, 0});
      if (r.outcome == detail::HttpResult::Outcome::Response && r.status == 200) {
        return parse_credentials_json(http->body(), where);
      }
      if (r.outcome == detail::HttpResult::Outcome::Response && r.status < 500) {
        // 4xx: a wrong token or URI; asking again will not help.
        throw AuthError(where + ": HTTP " + std::to_string(r.status));
      }
      failure = r.outcome == detail::HttpResult::Outcome::Response ? "HTTP " + std::to_string(r.status) : r.error;
      if (attempt < options.attempts) std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    }
    throw TransportError(where + ": " + failure + " (after " + std::to_string(options.attempts) + " attempts)");
  };
  return std::make_shared<detail::RefreshingProvider>("container credentials (" + uri + ")", std::move(fetch),
                                                      options.refresh);
}

// --- instance metadata ------------------------------------------------------------------------

bool instance_metadata_enabled() { return !detail::env_true("AWS_EC2_METADATA_DISABLED"); }

namespace {

class Imds {
 public:
  explicit Imds(InstanceMetadataOptions o) : options_(std::move(o)), http_({options_.timeout, options_.timeout}) {
    if (options_.endpoint.empty()) options_.endpoint = detail::env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (options_.endpoint.empty()) {
      std::string mode = detail::env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
      for (char& c : mode) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      options_.endpoint = mode == "ipv6" ? "http://[fd00:ec2::254]" : "http://169.254.169.254";
    }
    while (!options_.endpoint.empty() && options_.endpoint.back() == '/') options_.endpoint.pop_back();
    (void)detail::split_url(options_.endpoint);  // ConfigError for a malformed endpoint
    if (detail::env_true("AWS_EC2_METADATA_V1_DISABLED")) options_.v1_disabled = true;
  }

  [[nodiscard]] const std::string& endpoint() const { return options_.endpoint; }

  Credentials fetch() {
    const std::optional<std::string> token = fetch_token();
    if (!token && options_.v1_disabled) {
      throw AuthError(where() + ": the IMDSv2 token request failed and IMDSv1 is disabled");
    }
    if (token.has_value() != last_v2_) {
      log_info("instance metadata at ", options_.endpoint, ": ",
               token ? "IMDSv2" : "IMDSv1 (the token request was refused or timed out)");
      last_v2_ = token.has_value();
    }
    const std::string role = first_line(get("/latest/meta-data/iam/security-credentials/", token, "the role name"));
    if (role.empty()) throw AuthError(where() + ": the instance has no IAM role");
    return parse_credentials_json(get("/latest/meta-data/iam/security-credentials/" + role, token, "the credentials"),
                                  where() + " (role " + role + ")");
  }

 private:
  std::string where() const { return "instance metadata at " + options_.endpoint; }

  static std::string first_line(std::string s) {
    const std::size_t nl = s.find_first_of("\r\n");
    if (nl != std::string::npos) s.resize(nl);
    return s;
  }

  // The IMDSv2 session token; nullopt means "use IMDSv1" (the PUT was refused with 403,
  // 404 or 405, timed out, or could not connect), as botocore decides.
  std::optional<std::string> fetch_token() {
    const std::vector<std::string> headers{"X-aws-ec2-metadata-token-ttl-seconds: " +
                                           std::to_string(options_.token_ttl.count())};
    for (int attempt = 1; attempt <= std::max(1, options_.attempts); ++attempt) {
      const detail::HttpResult r = http_.perform({"PUT", options_.endpoint + "/latest/api/token", &headers, {}, 0});
      if (r.outcome != detail::HttpResult::Outcome::Response) {
        if (r.timed_out) return std::nullopt;
        continue;
      }
      if (r.status == 200) return http_.body();
      if (r.status == 403 || r.status == 404 || r.status == 405) return std::nullopt;
      if (r.status == 400) throw AuthError(where() + ": the token request was refused as malformed (HTTP 400)");
    }
    return std::nullopt;
  }

  std::string get(const std::string& path, const std::optional<std::string>& token, const char* what) {
    std::vector<std::string> headers;
    if (token) headers.push_back("X-aws-ec2-metadata-token: " + *token);
    std::string failure;
    for (int attempt = 1; attempt <= std::max(1, options_.attempts); ++attempt) {
      const detail::HttpResult r = http_.perform({"GET", options_.endpoint + path, &headers, {}, 0});
      if (r.outcome == detail::HttpResult::Outcome::Response) {
        if (r.status == 200 && !http_.body().empty()) return http_.body();
        if (r.status == 404) throw AuthError(where() + ": no " + what + " (HTTP 404: the instance has no IAM role?)");
        if (r.status == 401 || r.status == 403) {
          throw AuthError(where() + ": " + what + " refused (HTTP " + std::to_string(r.status) + ")");
        }
        failure = "HTTP " + std::to_string(r.status);
      } else {
        failure = r.error;
      }
    }
    throw TransportError(where() + ": cannot read " + what + ": " + failure);
  }

  InstanceMetadataOptions options_;
  detail::HttpClient http_;
  bool last_v2_ = true;
};

}  // namespace

CredentialsProviderPtr instance_metadata_credentials(InstanceMetadataOptions options) {
  const RefreshOptions refresh = options.refresh;
  auto imds = std::make_shared<Imds>(std::move(options));
  std::string description = "instance metadata (" + imds->endpoint() + ")";
  return std::make_shared<detail::RefreshingProvider>(std::move(description), [imds] { return imds->fetch(); },
                                                      refresh);
}

}  // namespace kclpp::aws
