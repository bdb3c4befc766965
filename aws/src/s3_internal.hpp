#pragma once
// Pure pieces of the S3 client, separate so that unit tests reach them without a network:
// addressing (path-style, virtual-hosted) and the few XML replies the client understands.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "sigv4.hpp"
#include "xml.hpp"
#include "kclpp/aws/s3_client.hpp"

namespace kclpp::aws::detail {

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

// --- XML -----------------------------------------------------------------------------------

// An S3 error reply <Error><Code>..</Code><Message>..</Message></Error>: nullopt when the
// body is not one (or not XML). Never throws.
struct S3ErrorReply {
  std::string code;
  std::string message;
};
[[nodiscard]] std::optional<S3ErrorReply> parse_error_reply(std::string_view xml);

// One page of ListObjectsV2. Throws ProtocolError when the reply is not a well-formed
// ListBucketResult or an entry lacks its Key.
struct ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_token;
};
[[nodiscard]] ListPage parse_list_page(std::string_view xml);

// The UploadId of an InitiateMultipartUploadResult. Throws ProtocolError.
[[nodiscard]] std::string parse_upload_id(std::string_view xml);

// The ETag (unquoted) of a CompleteMultipartUploadResult; nullopt when the body is not one.
[[nodiscard]] std::optional<std::string> parse_complete_etag(std::string_view xml);

// The CompleteMultipartUpload request body for parts 1..N with these ETags (quoted as S3
// sends them in UploadPart replies).
[[nodiscard]] std::string complete_multipart_body(const std::vector<std::string>& etags);

// An ETag without its surrounding double quotes (S3 sends "\"hex\"").
[[nodiscard]] std::string unquote_etag(std::string_view etag);

// An HTTP date ("Tue, 01 Dec 2026 09:29:42 GMT", as HEAD's Last-Modified) as ISO 8601
// ("2026-12-01T09:29:42.000Z", as ListObjectsV2 sends it); unchanged when it does not parse
// (curl_getdate) or lies beyond the year 9999.
[[nodiscard]] std::string http_date_to_iso8601(std::string_view http_date);

}  // namespace kclpp::aws::detail
