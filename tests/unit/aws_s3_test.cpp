// The S3 client's pure pieces without a network: S3's URI encoding and canonical query
// strings, the SigV4 signer (AWS's published S3 examples), and the XML replies it reads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "s3_internal.hpp"

namespace kclpp::aws::detail {
namespace {

const Credentials example_credentials{"AKIAIOSFODNN7EXAMPLE",
                                              "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};

TEST(S3Encoding, UriEncodeKeepsOnlyUnreservedAndOptionallySlash) {
  EXPECT_EQ(uri_encode("AZaz09-_.~", Slash::Encode), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b+c=d&e/f", Slash::Encode), "a%20b%2Bc%3Dd%26e%2Ff");
  EXPECT_EQ(uri_encode("a b+c=d&e/f", Slash::Keep), "a%20b%2Bc%3Dd%26e/f");
  EXPECT_EQ(uri_encode("ü", Slash::Keep), "%C3%BC");
  EXPECT_EQ(uri_encode("100%", Slash::Keep), "100%25");
  EXPECT_EQ(uri_encode(std::string("\0\xff", 2), Slash::Keep), "%00%FF");
  EXPECT_EQ(uri_encode("test$file.text", Slash::Keep), "test%24file.text");
}

TEST(S3Encoding, CanonicalQuerySortsEncodedPairs) {
  EXPECT_EQ(canonical_query({}), "");
  EXPECT_EQ(canonical_query({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(canonical_query({{"uploadId", "a/b+c"}, {"partNumber", "10"}}), "partNumber=10&uploadId=a%2Fb%2Bc");
  EXPECT_EQ(canonical_query({{"prefix", "J"}, {"max-keys", "2"}}), "max-keys=2&prefix=J");
  // Sorted by the encoded key: "continuation-token" < "list-type" < "prefix".
  EXPECT_EQ(canonical_query({{"list-type", "2"}, {"prefix", "a b/ü"}, {"continuation-token", "1m0=/+"}}),
            "continuation-token=1m0%3D%2F%2B&list-type=2&prefix=a%20b%2F%C3%BC");
}

TEST(S3Addressing, EndpointsParseAndAddressingPicksHostAndPath) {
  const Endpoint aws = parse_endpoint("", "eu-west-1");
  EXPECT_EQ(aws.scheme, "https");
  EXPECT_EQ(aws.host, "s3.eu-west-1.amazonaws.com");
  EXPECT_FALSE(aws.explicit_endpoint);
  const Endpoint local = parse_endpoint("http://127.0.0.1:4569/", "us-east-1");
  EXPECT_EQ(local.host, "127.0.0.1:4569");
  EXPECT_TRUE(local.explicit_endpoint);
  EXPECT_EQ(parse_endpoint("https://minio.example:443", "x").host, "minio.example");
  EXPECT_EQ(parse_endpoint("http://minio.example:80", "x").host, "minio.example");
  EXPECT_EQ(parse_endpoint("http://minio.example:8080", "x").host, "minio.example:8080");
  EXPECT_THROW((void)parse_endpoint("minio.example", "x"), ConfigError);
  EXPECT_THROW((void)parse_endpoint("ftp://minio.example", "x"), ConfigError);
  EXPECT_THROW((void)parse_endpoint("http://minio.example/base", "x"), ConfigError);

  // Auto: virtual-hosted on AWS, path-style for dotted buckets and explicit endpoints.
  Target t = request_target(aws, Addressing::Auto, "my-bucket", "a b/ü+1");
  EXPECT_EQ(t.host, "my-bucket.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.path, "/a%20b/%C3%BC%2B1");
  t = request_target(aws, Addressing::Auto, "my.dotted.bucket", "k");
  EXPECT_EQ(t.host, "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.path, "/my.dotted.bucket/k");
  t = request_target(aws, Addressing::Auto, "my-bucket", "");
  EXPECT_EQ(t.path, "/");
  t = request_target(local, Addressing::Auto, "b", "k/");
  EXPECT_EQ(t.host, "127.0.0.1:4569");
  EXPECT_EQ(t.path, "/b/k/");
  t = request_target(local, Addressing::Auto, "b", "");
  EXPECT_EQ(t.path, "/b");
  t = request_target(local, Addressing::VirtualHosted, "b", "k");
  EXPECT_EQ(t.host, "b.127.0.0.1:4569");
  EXPECT_EQ(t.path, "/k");
  t = request_target(aws, Addressing::PathStyle, "b", "k");
  EXPECT_EQ(t.host, "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.path, "/b/k");
  EXPECT_THROW((void)request_target(aws, Addressing::Auto, "", "k"), ConfigError);
  EXPECT_THROW((void)request_target(aws, Addressing::Auto, "a/b", "k"), ConfigError);
}

TEST(S3SigV4, Sha256AndAmzDateMatchKnownValues) {
  EXPECT_EQ(sha256_hex(""), std::string(empty_sha256));
  EXPECT_EQ(sha256_hex("Welcome to Amazon S3."), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(amz_date(1369353600), "20130524T000000Z");
  EXPECT_EQ(amz_date(0), "19700101T000000Z");
}

// The examples of AWS's "Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk" (S3 API reference), bucket examplebucket, 2013-05-24.
SigningInput example(std::string method, std::string uri, std::string query,
                     std::vector<std::pair<std::string, std::string>> extra, std::string payload_hash) {
  SigningInput in;
  in.method = std::move(method);
  in.canonical_uri = std::move(uri);
  in.canonical_query = std::move(query);
  in.headers = {{"host", "examplebucket.s3.amazonaws.com"},
                {"x-amz-content-sha256", payload_hash},
                {"x-amz-date", "20130524T000000Z"}};
  for (auto& h : extra) in.headers.push_back(std::move(h));
  in.payload_hash = std::move(payload_hash);
  in.amz_date = "20130524T000000Z";
  in.region = "us-east-1";
  in.service = "s3";
  return in;
}

TEST(S3SigV4, GetObjectWithRangeMatchesTheAwsExample) {
  const SigningInput in = example("GET", "/test.txt", "", {{"range", "bytes=0-9"}}, std::string(empty_sha256));
  EXPECT_EQ(canonical_request(in),
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(authorization(in, example_credentials),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(S3SigV4, PutObjectMatchesTheAwsExample) {
  const SigningInput in =
      example("PUT", "/" + uri_encode("test$file.text", Slash::Keep), "",
              {{"date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
              sha256_hex("Welcome to Amazon S3."));
  EXPECT_EQ(authorization(in, example_credentials),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(S3SigV4, GetBucketLifecycleAndListObjectsMatchTheAwsExamples) {
  const SigningInput lifecycle = example("GET", "/", canonical_query({{"lifecycle", ""}}), {}, std::string(empty_sha256));
  EXPECT_NE(authorization(lifecycle, example_credentials)
                .find("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
            std::string::npos);
  const SigningInput list =
      example("GET", "/", canonical_query({{"prefix", "J"}, {"max-keys", "2"}}), {}, std::string(empty_sha256));
  EXPECT_NE(authorization(list, example_credentials)
                .find("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
            std::string::npos);
}

TEST(S3SigV4, HeaderValuesAreTrimmedAndNamesLowerCased) {
  SigningInput a = example("GET", "/k", "", {{"X-Amz-Meta-Note", "  two   spaces  "}}, std::string(empty_sha256));
  SigningInput b = example("GET", "/k", "", {{"x-amz-meta-note", "two spaces"}}, std::string(empty_sha256));
  EXPECT_EQ(authorization(a, example_credentials), authorization(b, example_credentials));
  SigningInput c = example("GET", "/k", "", {{"x-amz-meta-note", "two  spaces!"}}, std::string(empty_sha256));
  EXPECT_NE(authorization(a, example_credentials), authorization(c, example_credentials));
  Credentials other = example_credentials;
  other.secret_access_key += "x";
  EXPECT_NE(authorization(a, example_credentials), authorization(a, other));
}

// The text of <t>...</t>, as the reader decodes it.
std::string text_of(std::string_view inner) {
  const XmlDocument doc("<t>" + std::string(inner) + "</t>");
  return doc.text(XmlDocument::root);
}

TEST(S3Xml, EntitiesAndEscaping) {
  EXPECT_EQ(text_of("a&amp;b&lt;c&gt;d&quot;e&apos;f"), "a&b<c>d\"e'f");
  EXPECT_EQ(text_of("&#65;&#x42;&#xFC;&#x65E5;"), "AB\xC3\xBC\xE6\x97\xA5");
  EXPECT_EQ(text_of("x<![CDATA[<raw> & ]]>y"), "x<raw> & y");
  EXPECT_THROW((void)text_of("a&bogus;"), ProtocolError);
  EXPECT_THROW((void)text_of("a & b"), ProtocolError);
  EXPECT_EQ(xml_escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
  EXPECT_EQ(text_of(xml_escape("k <&> \"'\r\n\t")), "k <&> \"'\r\n\t");
}

TEST(S3Xml, ElementsMatchWholeNames) {
  const XmlDocument doc("<R><KeyCount>3</KeyCount><Key a=\"1\">k&amp;1</Key><Empty/><s:Key>k2</s:Key></R>");
  EXPECT_EQ(doc.child_text(XmlDocument::root, "Key").value_or("?"), "k&1");
  EXPECT_EQ(doc.child_text(XmlDocument::root, "KeyCount").value_or("?"), "3");
  EXPECT_EQ(doc.child_text(XmlDocument::root, "Empty").value_or("?"), "");
  EXPECT_FALSE(doc.child_text(XmlDocument::root, "Missing"));
  const auto keys = doc.children(XmlDocument::root, "Key");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(doc.text(keys[1]), "k2");
}

TEST(S3Xml, ChildrenAndDescendants) {
  const XmlDocument doc("<R><A><Code>inner</Code></A><Code>outer</Code></R>");
  EXPECT_EQ(doc.child_text(XmlDocument::root, "Code").value_or("?"), "outer");
  const auto first = doc.find("Code");
  ASSERT_TRUE(first);
  EXPECT_EQ(doc.text(*first), "inner");
  const auto a = doc.child(XmlDocument::root, "A");
  ASSERT_TRUE(a);
  EXPECT_FALSE(doc.child(*a, "A"));
  EXPECT_EQ(doc.child_text(*a, "Code").value_or("?"), "inner");
}

TEST(S3Xml, MalformedDocumentsAndDtdsAreProtocolErrors) {
  EXPECT_THROW(XmlDocument(""), ProtocolError);
  EXPECT_THROW(XmlDocument("not xml"), ProtocolError);
  EXPECT_THROW(XmlDocument("<R><A></R>"), ProtocolError);
  EXPECT_THROW(XmlDocument("<R>"), ProtocolError);
  EXPECT_THROW(XmlDocument("<R>\xff</R>"), ProtocolError);
  // Entity expansion (the "billion laughs") needs a DTD: none is accepted.
  EXPECT_THROW(XmlDocument("<!DOCTYPE R [<!ENTITY a \"aaaa\">]><R>&a;</R>"), ProtocolError);
  // Deep nesting costs no stack.
  std::string deep;
  for (int i = 0; i < 100'000; ++i) deep += "<a>";
  for (int i = 0; i < 100'000; ++i) deep += "</a>";
  EXPECT_EQ(XmlDocument(deep).name(XmlDocument::root), "a");
}

constexpr const char* list_page_xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>a &amp; b/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>a &amp; b/&#252; &lt;1&gt;</Key>
    <LastModified>2026-12-01T09:00:00.000Z</LastModified>
    <ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag>
    <Size>12345678901</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents><Key>a &amp; b/IsTruncated</Key><Size>0</Size><ETag>"x-2"</ETag></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>)";

TEST(S3Xml, ListPageGivesUnescapedKeysSizesAndTheNextToken) {
  const ListPage page = parse_list_page(list_page_xml);
  ASSERT_EQ(page.objects.size(), 2u);
  EXPECT_EQ(page.objects[0].key, "a & b/\xC3\xBC <1>");
  EXPECT_EQ(page.objects[0].size, 12345678901u);
  EXPECT_EQ(page.objects[0].etag, "9dd4e461268c8034f5c8564e155c67a6");
  EXPECT_EQ(page.objects[0].last_modified, "2026-12-01T09:00:00.000Z");
  EXPECT_EQ(page.objects[1].key, "a & b/IsTruncated");
  EXPECT_EQ(page.objects[1].etag, "x-2");
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

  const ListPage last = parse_list_page(
      "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>");
  EXPECT_TRUE(last.objects.empty());
  EXPECT_FALSE(last.truncated);
}

TEST(S3Xml, MalformedListPagesAreProtocolErrors) {
  EXPECT_THROW((void)parse_list_page("<Error><Code>x</Code></Error>"), ProtocolError);
  EXPECT_THROW((void)parse_list_page("not xml"), ProtocolError);
  EXPECT_THROW((void)parse_list_page("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"),
               ProtocolError);
  EXPECT_THROW((void)parse_list_page(
                   "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"),
               ProtocolError);
  // Truncated without a token would loop forever.
  EXPECT_THROW((void)parse_list_page("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
               ProtocolError);
}

TEST(S3Xml, ErrorReplyGivesCodeAndMessageAnyOtherBodyNothing) {
  const auto e = parse_error_reply(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key "
      "does not exist.</Message><Key>a&amp;b</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, "NoSuchKey");
  EXPECT_EQ(e->message, "The specified key does not exist.");
  EXPECT_FALSE(parse_error_reply(""));
  EXPECT_FALSE(parse_error_reply("<html>502 Bad Gateway</html>"));
  EXPECT_FALSE(parse_error_reply(list_page_xml));
  // CompleteMultipartUpload's 200-with-error reply; S3 may send blanks first to keep the
  // connection alive while it assembles the parts.
  const auto c = parse_error_reply("    \n  <?xml version=\"1.0\"?>\n\n<Error>\n<Code>InternalError</Code></Error>");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->code, "InternalError");
  EXPECT_EQ(c->message, "");
}

TEST(S3Xml, UploadIdIsUnescapedAndCompleteBodyEscapesEtags) {
  EXPECT_EQ(parse_upload_id("<?xml version=\"1.0\"?><InitiateMultipartUploadResult xmlns=\"x\"><Bucket>b</Bucket>"
                            "<Key>k</Key><UploadId>VXBsb2FkIElE&amp;+/=</UploadId></InitiateMultipartUploadResult>"),
            "VXBsb2FkIElE&+/=");
  EXPECT_THROW((void)parse_upload_id("<InitiateMultipartUploadResult></InitiateMultipartUploadResult>"), ProtocolError);
  EXPECT_THROW((void)parse_upload_id("<Error><Code>x</Code></Error>"), ProtocolError);
  EXPECT_EQ(parse_complete_etag("<?xml version=\"1.0\"?>\n<CompleteMultipartUploadResult xmlns=\"x\"><Location>l"
                                "</Location><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
                                "</CompleteMultipartUploadResult>")
                .value_or("?"),
            "3858f62230ac3c915f300c664312c11f-9");
  EXPECT_FALSE(parse_complete_etag("<Error><Code>InternalError</Code></Error>"));
  EXPECT_FALSE(parse_complete_etag("<CompleteMultipartUploadResult>"));
  EXPECT_EQ(complete_multipart_body({"\"e1\"", "\"e2\""}),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>");
}

TEST(S3Xml, EtagsAreUnquotedAndHttpDatesBecomeIso8601) {
  EXPECT_EQ(unquote_etag("\"abc\""), "abc");
  EXPECT_EQ(unquote_etag("abc"), "abc");
  EXPECT_EQ(unquote_etag("\""), "\"");
  EXPECT_EQ(http_date_to_iso8601("Tue, 01 Dec 2026 09:29:42 GMT"), "2026-12-01T09:29:42.000Z");
  EXPECT_EQ(http_date_to_iso8601("Fri, 24 May 2013 00:00:00 GMT"), "2013-05-24T00:00:00.000Z");
  EXPECT_EQ(http_date_to_iso8601("garbage"), "garbage");
  // Fields out of range (found by the s3_xml fuzz target) come back unchanged.
  EXPECT_EQ(http_date_to_iso8601("Tue, 01 Dec 2 0:206929:42 GMT"), "Tue, 01 Dec 2 0:206929:42 GMT");
  EXPECT_EQ(http_date_to_iso8601("Tue, 32 Dec 2026 09:29:42 GMT"), "Tue, 32 Dec 2026 09:29:42 GMT");
  EXPECT_EQ(http_date_to_iso8601("Tue, 01 Dec 2026 24:00:00 GMT"), "Tue, 01 Dec 2026 24:00:00 GMT");
  EXPECT_EQ(http_date_to_iso8601("Tue, 01 Dec 99999 09:29:42 GMT"), "Tue, 01 Dec 99999 09:29:42 GMT");
  // The obsolete forms HTTP still allows.
  EXPECT_EQ(http_date_to_iso8601("Tuesday, 01-Dec-26 09:29:42 GMT"), "2026-12-01T09:29:42.000Z");
  EXPECT_EQ(http_date_to_iso8601("Tue Dec  1 09:29:42 2026"), "2026-12-01T09:29:42.000Z");
}

}  // namespace
}  // namespace kclpp::aws::detail
