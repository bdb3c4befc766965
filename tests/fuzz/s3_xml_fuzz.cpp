// libFuzzer target for the XML reader of the S3 and STS clients (aws/src/xml.cpp, expat)
// and the S3 replies read with it (aws/src/s3_xml.cpp): the replies of ListObjectsV2,
// CreateMultipartUpload, CompleteMultipartUpload and S3's <Error> bodies are outside bytes
// (from S3, or from whatever answers at an endpoint override). Parsing must never crash nor
// throw anything but ProtocolError; parse_error_reply never throws; a ListObjectsV2 page
// that parses must parse to the same objects after being written back as XML (keys, ETags
// and dates escaped); text written with xml_escape reads back unchanged whenever it is
// text XML allows; http_date_to_iso8601 returns its input or a 24-character ISO 8601 time.
// Seed corpus: tests/fuzz/corpus/s3_xml/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kclpp/processor/error.hpp"
#include "s3_internal.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace kclpp::aws::detail;

using kclpp::fuzz::check;
using kclpp::fuzz::parses;

std::string list_xml(const ListPage& page) {
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>";
  for (const auto& o : page.objects) {
    xml += "<Contents><Key>" + xml_escape(o.key) + "</Key><LastModified>" + xml_escape(o.last_modified) +
           "</LastModified><ETag>\"" + xml_escape(o.etag) + "\"</ETag><Size>" + std::to_string(o.size) +
           "</Size></Contents>";
  }
  xml += std::string("<IsTruncated>") + (page.truncated ? "true" : "false") + "</IsTruncated>";
  if (!page.next_token.empty()) xml += "<NextContinuationToken>" + xml_escape(page.next_token) + "</NextContinuationToken>";
  return xml + "</ListBucketResult>";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);

  (void)parse_error_reply(xml);  // noexcept in practice: nullopt for anything not an <Error>
  (void)parse_complete_etag(xml);
  (void)parses([&] { (void)parse_upload_id(xml); });
  (void)parses([&] {
    const XmlDocument doc(xml);
    (void)doc.find("Key");
    (void)doc.children(XmlDocument::root, "Contents");
  });

  ListPage page;
  if (parses([&] { page = parse_list_page(xml); })) {
    ListPage again;
    check(parses([&] { again = parse_list_page(list_xml(page)); }), "a parsed page written back does not parse");
    check(again.objects.size() == page.objects.size(), "object count changed in the round trip");
    for (std::size_t i = 0; i < page.objects.size(); ++i) {
      check(again.objects[i].key == page.objects[i].key, "key changed in the round trip");
      check(again.objects[i].size == page.objects[i].size, "size changed in the round trip");
      check(again.objects[i].etag == page.objects[i].etag, "etag changed in the round trip");
      check(again.objects[i].last_modified == page.objects[i].last_modified, "date changed in the round trip");
    }
    check(again.truncated == page.truncated && again.next_token == page.next_token,
          "pagination changed in the round trip");
  }

  // Bytes that are not XML text (invalid UTF-8, most control characters) fail to parse:
  // that is the reader's job. Whatever parses must read back as it was written.
  std::string back;
  if (parses([&] { back = XmlDocument("<k>" + xml_escape(xml) + "</k>").text(XmlDocument::root); })) {
    check(back == xml, "escaped text read back differs");
  }

  const std::string date = http_date_to_iso8601(xml);
  check(date == xml || date.size() == 24, "http_date_to_iso8601: neither the input nor an ISO 8601 time");
  return 0;
}
