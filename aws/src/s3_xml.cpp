// The S3 replies the client understands (ListBucketResult, Error,
// InitiateMultipartUploadResult, CompleteMultipartUploadResult), read from the XML
// document (xml.cpp), and the request body of CompleteMultipartUpload.
#include <curl/curl.h>

#include <charconv>
#include <cstdio>
#include <ctime>

#include "kclpp/processor/error.hpp"
#include "s3_internal.hpp"

namespace kclpp::aws::detail {

namespace {

std::string snippet(std::string_view xml) {
  std::string s(xml.substr(0, 160));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s.empty() ? "(empty body)" : "'" + s + (xml.size() > 160 ? "...'" : "'");
}

// `xml` parsed, when its document element is `root`; nullopt for anything else (another
// reply, an HTML error page, bytes that are not XML).
std::optional<XmlDocument> reply_named(std::string_view xml, std::string_view root) {
  try {
    XmlDocument doc(xml);
    if (doc.name(XmlDocument::root) == root) return doc;
  } catch (const ProtocolError&) {
  }
  return std::nullopt;
}

// One <Contents> entry of a ListBucketResult.
S3Object list_entry(const XmlDocument& doc, XmlDocument::Element entry) {
  S3Object o;
  auto key = doc.child_text(entry, "Key");
  if (!key) throw ProtocolError("ListObjectsV2: an entry without <Key>");
  o.key = std::move(*key);
  const std::string size = doc.child_text(entry, "Size").value_or("0");
  const auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), o.size);
  if (ec != std::errc{} || ptr != size.data() + size.size()) {
    throw ProtocolError("ListObjectsV2: bad <Size> '" + size + "' for key '" + o.key + "'");
  }
  o.etag = unquote_etag(doc.child_text(entry, "ETag").value_or(""));
  o.last_modified = doc.child_text(entry, "LastModified").value_or("");
  return o;
}

}  // namespace

std::optional<S3ErrorReply> parse_error_reply(std::string_view xml) {
  const auto doc = reply_named(xml, "Error");
  if (!doc) return std::nullopt;
  auto code = doc->child_text(XmlDocument::root, "Code");
  if (!code || code->empty()) return std::nullopt;
  return S3ErrorReply{std::move(*code), doc->child_text(XmlDocument::root, "Message").value_or("")};
}

ListPage parse_list_page(std::string_view xml) {
  const auto doc = reply_named(xml, "ListBucketResult");
  if (!doc) throw ProtocolError("ListObjectsV2: not a ListBucketResult: " + snippet(xml));
  ListPage page;
  for (const XmlDocument::Element entry : doc->children(XmlDocument::root, "Contents")) {
    page.objects.push_back(list_entry(*doc, entry));
  }
  page.truncated = doc->child_text(XmlDocument::root, "IsTruncated").value_or("false") == "true";
  page.next_token = doc->child_text(XmlDocument::root, "NextContinuationToken").value_or("");
  if (page.truncated && page.next_token.empty()) {
    throw ProtocolError("ListObjectsV2: IsTruncated without a NextContinuationToken");
  }
  return page;
}

std::string parse_upload_id(std::string_view xml) {
  const auto doc = reply_named(xml, "InitiateMultipartUploadResult");
  if (!doc) {
    throw ProtocolError("CreateMultipartUpload: not an InitiateMultipartUploadResult: " + snippet(xml));
  }
  auto id = doc->child_text(XmlDocument::root, "UploadId");
  if (!id || id->empty()) throw ProtocolError("CreateMultipartUpload: reply without an UploadId");
  return std::move(*id);
}

std::optional<std::string> parse_complete_etag(std::string_view xml) {
  const auto doc = reply_named(xml, "CompleteMultipartUploadResult");
  if (!doc) return std::nullopt;
  auto etag = doc->child_text(XmlDocument::root, "ETag");
  if (!etag) return std::nullopt;
  return unquote_etag(*etag);
}

std::string complete_multipart_body(const std::vector<std::string>& etags) {
  std::string out = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (std::size_t i = 0; i < etags.size(); ++i) {
    out += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
           xml_escape(etags[i]) + "</ETag></Part>";
  }
  out += "</CompleteMultipartUpload>";
  return out;
}

std::string unquote_etag(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return std::string(etag);
}

std::string http_date_to_iso8601(std::string_view http_date) {
  // S3 sends IMF-fixdate ("Tue, 01 Dec 2026 09:29:42 GMT"); curl_getdate also reads the
  // obsolete forms, and refuses fields out of range (the s3_xml fuzz target once found a
  // minute of 206929).
  const std::string s(http_date);
  const time_t t = curl_getdate(s.c_str(), nullptr);
  std::tm tm{};
  if (t < 0 || ::gmtime_r(&t, &tm) == nullptr) return s;
  const int year = tm.tm_year + 1900;
  if (year > 9999) return s;  // ISO 8601 without an expanded year
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace kclpp::aws::detail
