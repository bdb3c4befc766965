// SigV4 for every service, done here rather than by libcurl's CURLOPT_AWS_SIGV4: S3 needs
// the x-amz-content-sha256 header in the signature and an exact canonical query string for
// ListObjectsV2 and multipart calls, credentials change under a running client when they
// are refreshed (libcurl's signer takes them once per handle), and our own signer can be
// checked byte for byte against botocore (tests/unit/aws_sigv4_test.cpp).
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "kclpp/internal/hex.hpp"
#include "kclpp/internal/openssl_error.hpp"
#include "kclpp/processor/error.hpp"
#include "sigv4.hpp"

namespace kclpp::aws::detail {

namespace {

using kclpp::detail::hex_upper;

using Digest = std::array<unsigned char, 32>;

Digest hmac(std::string_view key, std::string_view message) {
  Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    kclpp::detail::throw_openssl_error("SigV4: HMAC-SHA256");
  }
  return out;
}

std::string_view as_view(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// SigV4's Trimall: no leading/trailing blanks, runs of blanks become one space.
std::string trim_all(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

}  // namespace

std::string uri_encode(std::string_view s, Slash slash) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (slash == Slash::Keep && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex_upper[c >> 4]);
      out.push_back(hex_upper[c & 0xF]);
    }
  }
  return out;
}

std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const auto& [k, v] : params) encoded.emplace_back(uri_encode(k, Slash::Encode), uri_encode(v, Slash::Encode));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Digest d{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != d.size()) {
    kclpp::detail::throw_openssl_error("SigV4: SHA-256");
  }
  return kclpp::detail::to_hex(as_view(d));
}

std::string amz_date(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return {buf, n};
}

namespace {

// Sorted (name, trimmed value) with duplicate names joined by ',' as SigV4 says.
std::vector<std::pair<std::string, std::string>> sorted_headers(const SigningInput& in) {
  std::vector<std::pair<std::string, std::string>> h;
  for (const auto& [name, value] : in.headers) {
    std::string lname = name;
    for (char& c : lname) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    h.emplace_back(std::move(lname), trim_all(value));
  }
  std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, std::string>> merged;
  for (auto& [name, value] : h) {
    if (!merged.empty() && merged.back().first == name) {
      merged.back().second += "," + value;
    } else {
      merged.emplace_back(std::move(name), std::move(value));
    }
  }
  return merged;
}

std::string signed_header_names(const std::vector<std::pair<std::string, std::string>>& h) {
  std::string out;
  for (const auto& [name, value] : h) {
    if (!out.empty()) out.push_back(';');
    out += name;
  }
  return out;
}

}  // namespace

std::string canonical_request(const SigningInput& in) {
  const auto headers = sorted_headers(in);
  std::string cr;
  cr.reserve(512);
  cr += in.method;
  cr += '\n';
  cr += in.canonical_uri;
  cr += '\n';
  cr += in.canonical_query;
  cr += '\n';
  for (const auto& [name, value] : headers) {
    cr += name;
    cr += ':';
    cr += value;
    cr += '\n';
  }
  cr += '\n';
  cr += signed_header_names(headers);
  cr += '\n';
  cr += in.payload_hash;
  return cr;
}

std::string authorization(const SigningInput& in, const Credentials& credentials) {
  const std::string date = in.amz_date.substr(0, 8);
  const std::string scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  const std::string string_to_sign =
      "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request(in));
  const Digest k_date = hmac("AWS4" + credentials.secret_access_key, date);
  const Digest k_region = hmac(as_view(k_date), in.region);
  const Digest k_service = hmac(as_view(k_region), in.service);
  const Digest k_signing = hmac(as_view(k_service), "aws4_request");
  const Digest signature = hmac(as_view(k_signing), string_to_sign);
  return "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
         ", SignedHeaders=" + signed_header_names(sorted_headers(in)) +
         ", Signature=" + kclpp::detail::to_hex(as_view(signature));
}

std::string sign(SigningInput& in, const Credentials& credentials,
                 std::chrono::system_clock::time_point now) {
  in.amz_date = amz_date(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  in.headers.emplace_back("x-amz-date", in.amz_date);
  if (!credentials.session_token.empty()) {
    in.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  return authorization(in, credentials);
}

}  // namespace kclpp::aws::detail
