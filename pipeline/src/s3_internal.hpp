#pragma once
// Pure pieces of the S3 client, separate so that unit tests reach them without a network:
// S3's URI encoding, the SigV4 signer (OpenSSL), and a tiny tolerant XML reader for the
// few replies the client understands.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/native/aws.hpp"
#include "kclpp/pipeline/s3_client.hpp"

namespace kclpp::pipeline::detail {

// --- encoding --------------------------------------------------------------------------

// RFC 3986 percent-encoding as SigV4 wants it: A-Z a-z 0-9 - _ . ~ stay, every other byte
// becomes %XX (upper-case hex); '/' stays when keep_slash (object keys in paths).
[[nodiscard]] std::string uri_encode(std::string_view s, bool keep_slash);

// "k1=v1&k2=v2" with keys and values uri_encode()d, sorted by encoded key then value: both
// the URL's query string and SigV4's canonical query string (an empty value gives "k=").
[[nodiscard]] std::string canonical_query(
    const std::vector<std::pair<std::string, std::string>>& params);

// --- addressing ----------------------------------------------------------------------

struct Endpoint {
  std::string scheme;  // "https" / "http"
  std::string host;    // "s3.us-east-1.amazonaws.com", "127.0.0.1:4569" (no default port)
  bool explicit_endpoint = false;
};
// `endpoint` (empty: https://s3.<region>.amazonaws.com) split for request building; a
// default port (:443, :80) is dropped, as libcurl drops it from the Host header it sends
// (which we sign). Throws ConfigError for anything but scheme://host[:port][/].
[[nodiscard]] Endpoint parse_endpoint(const std::string& endpoint, const std::string& region);

struct Target {
  std::string host;  // the Host header: "bucket.s3.amazonaws.com" or the endpoint's host
  std::string path;  // "/bucket/key" (path-style) or "/key", encoded as sent and signed
};
// Where a request for `bucket`/`key` (empty key: a bucket-level call) goes. Auto:
// path-style for an explicit endpoint or a bucket name with dots (TLS wildcard
// certificates do not cover "a.b.s3.amazonaws.com"), else virtual-hosted. Throws
// ConfigError for an empty bucket name or one with '/'.
[[nodiscard]] Target request_target(const Endpoint& endpoint, Addressing addressing, const std::string& bucket,
                                    const std::string& key);

// --- SigV4 -------------------------------------------------------------------------------

[[nodiscard]] std::string sha256_hex(std::string_view data);
inline constexpr std::string_view empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// "YYYYMMDDTHHMMSSZ" for a Unix time in seconds.
[[nodiscard]] std::string amz_date(std::int64_t unix_seconds);

// One request to sign. Header names lower-case; `headers` must include host,
// x-amz-content-sha256 and x-amz-date (and x-amz-security-token for temporary
// credentials). Every header given is signed.
struct SigningInput {
  std::string method;
  std::string canonical_uri;    // the URL's path exactly as sent (already encoded)
  std::string canonical_query;  // the URL's query exactly as sent (canonical_query())
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string amz_date;      // same as the x-amz-date header
  std::string region;
  std::string service = "s3";
};

// The canonical request (step 1 of SigV4), for tests and debug logs.
[[nodiscard]] std::string canonical_request(const SigningInput& in);
// The Authorization header's value:
// "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request, SignedHeaders=..., Signature=...".
[[nodiscard]] std::string authorization(const SigningInput& in, const native::Credentials& credentials);

// --- XML -----------------------------------------------------------------------------------

// The text of the first element <name>...</name> in `xml` at or after `from` (entities
// decoded), or nullopt. `end` (if given) receives the position just past its end tag.
// Tolerates attributes on the start tag and a self-closing <name/> (empty text).
[[nodiscard]] std::optional<std::string> xml_element(std::string_view xml, std::string_view name,
                                                     std::size_t from = 0,
                                                     std::size_t* end = nullptr);
// Decodes &amp; &lt; &gt; &quot; &apos; &#N; &#xN; (and CDATA sections). Throws
// ProtocolError for a malformed entity.
[[nodiscard]] std::string xml_unescape(std::string_view text);
// Escapes & < > " ' for element text.
[[nodiscard]] std::string xml_escape(std::string_view text);

// An S3 error reply <Error><Code>..</Code><Message>..</Message></Error>: nullopt when the
// body is not one.
struct S3ErrorReply {
  std::string code;
  std::string message;
};
[[nodiscard]] std::optional<S3ErrorReply> parse_error_reply(std::string_view xml);

// One page of ListObjectsV2. Throws ProtocolError when the reply is not a
// ListBucketResult or an entry lacks its Key.
struct ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_token;
};
[[nodiscard]] ListPage parse_list_page(std::string_view xml);

// The UploadId of an InitiateMultipartUploadResult. Throws ProtocolError.
[[nodiscard]] std::string parse_upload_id(std::string_view xml);

// The CompleteMultipartUpload request body for parts 1..N with these ETags (quoted as S3
// sends them in UploadPart replies).
[[nodiscard]] std::string complete_multipart_body(const std::vector<std::string>& etags);

// An ETag without its surrounding double quotes (S3 sends "\"hex\"").
[[nodiscard]] std::string unquote_etag(std::string_view etag);

// An HTTP date ("Tue, 01 Dec 2026 09:29:42 GMT", as HEAD's Last-Modified) as ISO 8601
// ("2026-12-01T09:29:42.000Z", as ListObjectsV2 sends it); unchanged when it does not parse.
[[nodiscard]] std::string http_date_to_iso8601(std::string_view http_date);

}  // namespace kclpp::pipeline::detail
