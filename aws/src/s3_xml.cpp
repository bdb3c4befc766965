// A tiny, tolerant reader for the handful of S3 XML replies the client understands
// (ListBucketResult, Error, InitiateMultipartUploadResult, CompleteMultipartUploadResult).
// S3 escapes element text, so a literal '<' never appears inside one and a search for the
// start tag is enough; no DTDs, namespaces are ignored (attributes on start tags skipped).
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "kclpp/processor/error.hpp"
#include "s3_internal.hpp"

namespace kclpp::aws::detail {

namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

std::string xml_unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 9, "<![CDATA[") == 0) {
      const std::size_t end = text.find("]]>", i + 9);
      if (end == std::string_view::npos) throw ProtocolError("XML: unterminated CDATA section");
      out.append(text.substr(i + 9, end - i - 9));
      i = end + 3;
      continue;
    }
    const char c = text[i];
    if (c != '&') {
      out.push_back(c);
      ++i;
      continue;
    }
    const std::size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      throw ProtocolError("XML: malformed entity near '" + std::string(text.substr(i, 12)) + "'");
    }
    const std::string_view name = text.substr(i + 1, semi - i - 1);
    if (name == "amp") {
      out.push_back('&');
    } else if (name == "lt") {
      out.push_back('<');
    } else if (name == "gt") {
      out.push_back('>');
    } else if (name == "quot") {
      out.push_back('"');
    } else if (name == "apos") {
      out.push_back('\'');
    } else if (name.size() > 1 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const std::string_view digits = name.substr(hex ? 2 : 1);
      std::uint32_t cp = 0;
      const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (ec != std::errc{} || ptr != digits.data() + digits.size() || digits.empty() || cp > 0x10FFFF) {
        throw ProtocolError("XML: bad character reference '&" + std::string(name) + ";'");
      }
      append_utf8(out, cp);
    } else {
      throw ProtocolError("XML: unknown entity '&" + std::string(name) + ";'");
    }
    i = semi + 1;
  }
  return out;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string> xml_element(std::string_view xml, std::string_view name, std::size_t from,
                                       std::size_t* end) {
  std::size_t pos = from;
  while (pos < xml.size()) {
    pos = xml.find('<', pos);
    if (pos == std::string_view::npos) return std::nullopt;
    if (xml.compare(pos + 1, name.size(), name) != 0 || pos + 1 + name.size() >= xml.size()) {
      ++pos;
      continue;
    }
    const std::size_t after = pos + 1 + name.size();
    const char next = xml[after];
    if (next != '>' && next != ' ' && next != '/' && next != '\t' && next != '\n' && next != '\r') {
      ++pos;  // a longer name with the same prefix (<Key> vs <KeyCount>)
      continue;
    }
    const std::size_t close = xml.find('>', after);
    if (close == std::string_view::npos) return std::nullopt;
    if (xml[close - 1] == '/') {  // <Name/>
      if (end != nullptr) *end = close + 1;
      return std::string{};
    }
    const std::string end_tag = "</" + std::string(name) + ">";
    const std::size_t stop = xml.find(end_tag, close + 1);
    if (stop == std::string_view::npos) return std::nullopt;
    if (end != nullptr) *end = stop + end_tag.size();
    return xml_unescape(xml.substr(close + 1, stop - close - 1));
  }
  return std::nullopt;
}

namespace {

// The raw (still escaped) content of the first <name> element at or after `from`.
std::optional<std::string_view> raw_element(std::string_view xml, std::string_view name, std::size_t from,
                                            std::size_t& end) {
  std::size_t pos = from;
  for (;;) {
    pos = xml.find('<', pos);
    if (pos == std::string_view::npos) return std::nullopt;
    const std::size_t after = pos + 1 + name.size();
    if (xml.compare(pos + 1, name.size(), name) != 0 || after >= xml.size() ||
        (xml[after] != '>' && xml[after] != ' ')) {
      ++pos;
      continue;
    }
    const std::size_t close = xml.find('>', after);
    if (close == std::string_view::npos) return std::nullopt;
    const std::string end_tag = "</" + std::string(name) + ">";
    const std::size_t stop = xml.find(end_tag, close + 1);
    if (stop == std::string_view::npos) return std::nullopt;
    end = stop + end_tag.size();
    return xml.substr(close + 1, stop - close - 1);
  }
}

bool has_root(std::string_view xml, std::string_view name) {
  // The first element that is not the <?xml ...?> declaration or a comment.
  std::size_t pos = 0;
  for (;;) {
    pos = xml.find('<', pos);
    if (pos == std::string_view::npos) return false;
    if (xml.compare(pos, 2, "<?") == 0 || xml.compare(pos, 2, "<!") == 0) {
      ++pos;
      continue;
    }
    const std::size_t after = pos + 1 + name.size();
    return xml.compare(pos + 1, name.size(), name) == 0 && after < xml.size() &&
           (xml[after] == '>' || xml[after] == ' ' || xml[after] == '/' || xml[after] == '\n' ||
            xml[after] == '\r' || xml[after] == '\t');
  }
}

std::string snippet(std::string_view xml) {
  std::string s(xml.substr(0, 160));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s.empty() ? "(empty body)" : "'" + s + (xml.size() > 160 ? "...'" : "'");
}

}  // namespace

std::optional<S3ErrorReply> parse_error_reply(std::string_view xml) {
  if (!has_root(xml, "Error")) return std::nullopt;
  try {
    auto code = xml_element(xml, "Code");
    if (!code || code->empty()) return std::nullopt;
    S3ErrorReply r;
    r.code = std::move(*code);
    r.message = xml_element(xml, "Message").value_or("");
    return r;
  } catch (const ProtocolError&) {
    return std::nullopt;
  }
}

ListPage parse_list_page(std::string_view xml) {
  if (!has_root(xml, "ListBucketResult")) {
    throw ProtocolError("ListObjectsV2: not a ListBucketResult: " + snippet(xml));
  }
  ListPage page;
  // Top-level fields live outside the <Contents> entries; cut those out first so that a
  // search for IsTruncated cannot land inside one (it cannot anyway: keys are escaped).
  std::string top;
  std::size_t pos = 0;
  for (;;) {
    std::size_t end = 0;
    const std::size_t start = xml.find("<Contents", pos);
    const auto entry = raw_element(xml, "Contents", pos, end);
    if (!entry) {
      top.append(xml.substr(pos));
      break;
    }
    top.append(xml.substr(pos, start - pos));
    pos = end;
    S3Object o;
    auto key = xml_element(*entry, "Key");
    if (!key) throw ProtocolError("ListObjectsV2: an entry without <Key>: " + snippet(*entry));
    o.key = std::move(*key);
    const std::string size = xml_element(*entry, "Size").value_or("0");
    const auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), o.size);
    if (ec != std::errc{} || ptr != size.data() + size.size()) {
      throw ProtocolError("ListObjectsV2: bad <Size> '" + size + "' for key '" + o.key + "'");
    }
    o.etag = unquote_etag(xml_element(*entry, "ETag").value_or(""));
    o.last_modified = xml_element(*entry, "LastModified").value_or("");
    page.objects.push_back(std::move(o));
  }
  const std::string truncated = xml_element(top, "IsTruncated").value_or("false");
  page.truncated = truncated == "true";
  page.next_token = xml_element(top, "NextContinuationToken").value_or("");
  if (page.truncated && page.next_token.empty()) {
    throw ProtocolError("ListObjectsV2: IsTruncated without a NextContinuationToken");
  }
  return page;
}

std::string parse_upload_id(std::string_view xml) {
  if (!has_root(xml, "InitiateMultipartUploadResult")) {
    throw ProtocolError("CreateMultipartUpload: not an InitiateMultipartUploadResult: " + snippet(xml));
  }
  auto id = xml_element(xml, "UploadId");
  if (!id || id->empty()) throw ProtocolError("CreateMultipartUpload: reply without an UploadId");
  return std::move(*id);
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
  // IMF-fixdate, the only form S3 sends: "Tue, 01 Dec 2026 09:29:42 GMT".
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::string s(http_date);
  char wday[4] = {};
  char mon[4] = {};
  int day = 0;
  int year = 0;
  int hh = 0;
  int mm = 0;
  int ss = 0;
  if (std::sscanf(s.c_str(), "%3s, %d %3s %d %d:%d:%d GMT", wday, &day, mon, &year, &hh, &mm, &ss) != 7) {
    return s;
  }
  int month = 0;
  for (int i = 0; i < 12; ++i) {
    if (std::strcmp(mon, months[i]) == 0) month = i + 1;
  }
  // Out-of-range fields are not a date S3 sent (found by the s3_xml fuzz target: a
  // minute of 206929 made a 28-character "time").
  if (month == 0 || year < 1000 || year > 9999 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
      ss < 0 || ss > 60) {
    return s;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", year, month, day, hh, mm, ss);
  return buf;
}

}  // namespace kclpp::aws::detail
