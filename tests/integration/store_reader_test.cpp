// The archive reader (list_archives, StoreReader) against s3rver: archives written with
// ArchiveWriter over three days, listed page by page, ordered by (day, timestamp), read
// through small ranged GETs; prefixes shared with other streams, .metadata keys, several
// clients, a corrupt archive.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kclpp/pipeline/archive.hpp"
#include "kclpp/aws/s3_client.hpp"
#include "kclpp/pipeline/store_reader.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"
#include "fake_http_server.hpp"
#include "local_server.hpp"
#include "s3rver_fixture.hpp"

namespace kclpp::pipeline {
namespace {

// 2001-09-09 01:46:40 UTC: timestamps 999999999 and 1000000000 fall on the same day and
// sort differently as text than as numbers.
constexpr std::int64_t day1 = 1000000000 - 6400;  // 20010909 00:00:00
constexpr std::int64_t day_s = 86400;

std::string archive_of(const std::vector<Map>& records) {
  std::string bytes;
  ArchiveWriter writer([&](std::string_view piece) { bytes.append(piece); });
  for (const Map& r : records) writer.append(r);
  writer.finish();
  return bytes;
}

std::string key_of(const std::string& stream, const std::string& client, std::int64_t ts) {
  return ArchiveKey{stream, client, ts, {}}.str();
}

// One s3rver for the suite (starting one takes most of a second); a bucket per test.
class StoreReaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server() = std::make_unique<test::S3rver>(); }
  static void TearDownTestSuite() { server().reset(); }
  static std::unique_ptr<test::S3rver>& server() {
    static std::unique_ptr<test::S3rver> s;
    return s;
  }

  void SetUp() override {
    KCLPP_REQUIRE_SERVER(*server());
    bucket_ = "archive" + std::to_string(++buckets_);
    server()->create_bucket(bucket_);
    client_ = std::make_unique<aws::S3Client>(server()->s3_options());
  }

  // Uploads an archive of `count` records {"n": next, "key": ...} under `key`.
  void put(const std::string& key, int count, const std::string& text = "x") {
    std::vector<Map> records;
    for (int i = 0; i < count; ++i) {
      records.push_back(Map{{"n", Value(static_cast<std::int64_t>(next_n_++))}, {"key", Value(key)},
                            {"text", Value(text)}});
    }
    (void)client_->put_object(bucket_, key, archive_of(records));
  }

  StoreReaderOptions options(const std::string& stream, const std::string& start, const std::string& end = {}) {
    StoreReaderOptions o;
    o.bucket = bucket_;
    o.stream = stream;
    o.start_day = start;
    o.end_day = end;
    o.s3 = server()->s3_options();
    o.list_page_size = 2;
    return o;
  }

  // Every record's "n", in reading order.
  static std::vector<std::int64_t> numbers(StoreReader& reader) {
    std::vector<std::int64_t> out;
    while (auto r = reader.next()) {
      EXPECT_TRUE(r->ok()) << r->error;
      const Value map(r->map);
      out.push_back(*map.find("n")->get_if<std::int64_t>());
    }
    return out;
  }

  inline static int buckets_ = 0;
  std::string bucket_;
  std::unique_ptr<aws::S3Client> client_;
  int next_n_ = 0;
};

TEST_F(StoreReaderTest, ListsEveryDayPageByPageInDayAndTimestampOrder) {
  // Uploaded out of order; n counts in upload order, so expected reading order is explicit.
  put(key_of("a", "store", day1 + 2 * day_s + 10), 2);   // n 0,1    day 3
  put(key_of("a", "store", 1000000000), 3);              // n 2,3,4  day 1, second
  put(key_of("a", "store", 999999999), 1);               // n 5      day 1, first (text order says last)
  put(key_of("a", "store", day1 + day_s + 5), 2);        // n 6,7    day 2
  put(key_of("a", "store", day1 + day_s + 7), 1);        // n 8      day 2
  put(key_of("a", "store", day1 + 3 * day_s), 1);        // n 9      day 4: outside the range
  put(key_of("a", "store", day1 - 1), 1);                // n 10     the day before
  put(key_of("a_b", "store", day1 + 100), 1);            // n 11     a stream whose name starts with "a"
  put(key_of("ab", "store", day1 + 100), 1);             // n 12
  (void)client_->put_object(bucket_, key_of("a", "store", 1000000000) + ".metadata", "{\"shards\":{}}");
  (void)client_->put_object(bucket_, "20010909/a-shardId-000000000001-999999990.tri", "legacy");
  (void)client_->put_object(bucket_, "20010909/a-store-notanumber.tri", "junk");

  const auto listed = list_archives(*client_, options("a", "20010909", "20010911"));
  std::vector<std::string> keys;
  for (const auto& e : listed) keys.push_back(e.s3_key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "20010909/a-store-999999999.tri", "20010909/a-store-1000000000.tri",
                      "20010910/a-store-1000080005.tri", "20010910/a-store-1000080007.tri",
                      "20010911/a-store-1000166410.tri"}));
  ASSERT_EQ(listed.size(), 5u);
  EXPECT_EQ(listed[0].key.stream, "a");
  EXPECT_EQ(listed[0].key.client, "store");
  EXPECT_EQ(listed[0].key.unix_seconds, 999999999);
  EXPECT_GT(listed[0].size, 10u);

  StoreReader reader(options("a", "20010909", "20010911"));
  EXPECT_EQ(reader.current(), nullptr);
  EXPECT_EQ(numbers(reader), (std::vector<std::int64_t>{5, 2, 3, 4, 6, 7, 8, 0, 1}));
  ASSERT_NE(reader.current(), nullptr);
  EXPECT_EQ(reader.current()->s3_key, "20010911/a-store-1000166410.tri");
  EXPECT_EQ(reader.next(), std::nullopt);  // stays at the end

  // One day (end defaults to start), and the longer stream names on their own.
  StoreReader one_day(options("a", "20010910"));
  EXPECT_EQ(numbers(one_day), (std::vector<std::int64_t>{6, 7, 8}));
  StoreReader other(options("a_b", "20010909"));
  EXPECT_EQ(numbers(other), (std::vector<std::int64_t>{11}));
  StoreReader none(options("a", "20000101", "20000131"));
  EXPECT_TRUE(none.archives().empty());
  EXPECT_EQ(none.next(), std::nullopt);
}

TEST_F(StoreReaderTest, ManyKeysInOneDayAreAllListed) {
  // More keys than pages of 2 (and a page size of 1 too): go-triton stopped at one page.
  for (int i = 0; i < 9; ++i) put(key_of("many", "store", day1 + 10 * i), 1);
  auto o = options("many", "20010909");
  EXPECT_EQ(list_archives(*client_, o).size(), 9u);
  o.list_page_size = 1;
  StoreReader reader(o);
  EXPECT_EQ(numbers(reader), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST_F(StoreReaderTest, SmallRangedReadsReassembleRecordsAcrossChunks) {
  // ~270 KB of mostly random text: several 64 KiB chunks, records straddling them, and
  // ranged reads of 1000 and 65,543 bytes that cut through both.
  std::mt19937 random(7);
  std::vector<Map> records;
  for (int i = 0; i < 300; ++i) {
    std::string text(static_cast<std::size_t>(200 + random() % 1200), ' ');
    for (char& c : text) c = static_cast<char>('a' + random() % 26);
    records.push_back(Map{{"n", Value(static_cast<std::int64_t>(i))}, {"text", Value(text)}});
  }
  const std::string bytes = archive_of(records);
  const std::string key = key_of("big", "store", day1 + 1);
  (void)client_->put_object(bucket_, key, bytes);
  for (const std::uint64_t read_size : {std::uint64_t{1000}, std::uint64_t{65543},
                                        static_cast<std::uint64_t>(bytes.size()), std::uint64_t{8} << 20}) {
    for (const bool prefetch : {true, false}) {
      auto o = options("big", "20010909");
      o.read_size = read_size;
      o.prefetch = prefetch;
      StoreReader reader(o);
      std::size_t i = 0;
      while (auto r = reader.next()) {
        ASSERT_LT(i, records.size());
        ASSERT_EQ(r->map, records[i]) << "record " << i << " with read_size " << read_size << ", prefetch "
                                      << prefetch;
        ++i;
      }
      EXPECT_EQ(i, records.size()) << "read_size " << read_size << ", prefetch " << prefetch;
    }
  }
}

// With prefetch, the next range is fetched on a helper thread while the current one is
// decoded. The records are the same as without it, and a range that cannot be read fails
// where that range is needed: the records before it come first, in both modes alike.
// (FakeHttpServer as S3: one archive, ranges from 150,000 on refused with AccessDenied.)
TEST(StoreReaderPrefetch, AFailingRangeFailsWhereItIsNeededWithAndWithoutPrefetch) {
  std::mt19937 random(3);
  std::vector<Map> records;
  for (int i = 0; i < 300; ++i) {
    std::string text(static_cast<std::size_t>(500 + random() % 1000), ' ');
    for (char& c : text) c = static_cast<char>('a' + random() % 26);
    records.push_back(Map{{"n", Value(static_cast<std::int64_t>(i))}, {"text", Value(text)}});
  }
  const std::string bytes = archive_of(records);
  const std::string key = key_of("s", "store", day1 + 5);
  constexpr std::size_t fail_from = 150'000;  // after two 64 KiB chunks (random text: stored)
  ASSERT_GT(bytes.size(), fail_from + 10'000);
  test::FakeHttpServer server([&](const test::HttpRequest& req) {
    test::HttpReply r;
    r.content_type = "application/xml";
    if (req.method == "GET" && req.path.find("list-type=2") != std::string::npos) {
      r.body = "<ListBucketResult><Contents><Key>" + key + "</Key><Size>" + std::to_string(bytes.size()) +
               "</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>";
      return r;
    }
    const std::string range = req.header("range");  // "bytes=A-B"
    if (req.method != "GET" || range.rfind("bytes=", 0) != 0) {
      r.status = 400;
      r.body = "<Error><Code>Unexpected</Code></Error>";
      return r;
    }
    const std::size_t dash = range.find('-');
    const std::size_t from = std::stoul(range.substr(6, dash - 6));
    const std::size_t to = std::min<std::size_t>(std::stoul(range.substr(dash + 1)) + 1, bytes.size());
    if (from >= fail_from) {
      r.status = 403;
      r.body = "<Error><Code>AccessDenied</Code><Message>injected</Message></Error>";
      return r;
    }
    r.status = 206;
    r.content_type = "application/octet-stream";
    r.body = bytes.substr(from, to - from);
    return r;
  });
  std::map<bool, std::size_t> delivered;
  for (const bool prefetch : {false, true}) {
    StoreReaderOptions o;
    o.bucket = "b";
    o.stream = "s";
    o.start_day = "20010909";
    o.s3.endpoint = server.endpoint();
    o.s3.region = "us-east-1";
    o.s3.credentials = aws::static_credentials({"AKIDKCLPPTEST", "kclpp-test-secret", ""});
    o.read_size = 10'000;
    o.prefetch = prefetch;
    StoreReader reader(o);
    std::size_t n = 0;
    bool failed = false;
    try {
      while (auto r = reader.next()) {
        ASSERT_LT(n, records.size());
        EXPECT_EQ(r->map, records[n]) << "record " << n << (prefetch ? " with" : " without") << " prefetch";
        ++n;
      }
    } catch (const aws::AwsError& e) {
      failed = true;
      EXPECT_EQ(e.type(), "AccessDenied");
    }
    EXPECT_TRUE(failed) << (prefetch ? "with" : "without") << " prefetch";
    delivered[prefetch] = n;
  }
  EXPECT_GT(delivered[false], 0u);
  EXPECT_LT(delivered[false], records.size());
  EXPECT_EQ(delivered[true], delivered[false]);
}

TEST_F(StoreReaderTest, SeveralClientsAreAnErrorUnlessOneIsChosen) {
  put(key_of("s", "store", day1 + 1), 1);  // n 0
  put(key_of("s", "replay", day1 + 2), 1);  // n 1
  put(key_of("s", "store", day1 + day_s + 3), 1);  // n 2
  try {
    StoreReader reader(options("s", "20010909", "20010910"));
    FAIL() << "no error for two clients";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("multiple clients"), std::string::npos) << what;
    EXPECT_NE(what.find("replay, store"), std::string::npos) << what;
  }
  auto o = options("s", "20010909", "20010910");
  o.client = "store";
  StoreReader store(o);
  EXPECT_EQ(numbers(store), (std::vector<std::int64_t>{0, 2}));
  o.client = "replay";
  StoreReader replay(o);
  EXPECT_EQ(numbers(replay), (std::vector<std::int64_t>{1}));
}

TEST_F(StoreReaderTest, CorruptArchiveIsAProtocolErrorNamingTheKey) {
  put(key_of("c", "store", day1 + 1), 3);
  std::string bytes = archive_of({Map{{"n", Value(std::int64_t{9})}}});
  bytes[bytes.size() - 1] = static_cast<char>(bytes[bytes.size() - 1] ^ 0x55);  // CRC no longer matches
  const std::string bad_key = key_of("c", "store", day1 + 2);
  (void)client_->put_object(bucket_, bad_key, bytes);
  StoreReader reader(options("c", "20010909"));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader.next().has_value());  // the good archive first
  try {
    (void)reader.next();
    FAIL() << "corrupt archive read without error";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find(bad_key), std::string::npos) << e.what();
  }
}

TEST_F(StoreReaderTest, RecordThatIsNotAMapIsAValueNotAnError) {
  std::string bytes;
  ArchiveWriter writer([&](std::string_view piece) { bytes.append(piece); });
  writer.append(Map{{"n", Value(std::int64_t{1})}});
  writer.append(std::string_view("\x2a", 1));  // msgpack 42: not a map
  writer.append(Map{{"n", Value(std::int64_t{2})}});
  writer.finish();
  (void)client_->put_object(bucket_, key_of("m", "store", day1 + 1), bytes);
  StoreReader reader(options("m", "20010909"));
  auto first = reader.next();
  ASSERT_TRUE(first && first->ok());
  auto second = reader.next();
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(second->ok());
  auto third = reader.next();
  ASSERT_TRUE(third && third->ok());
  EXPECT_EQ(third->map, (Map{{"n", Value(std::int64_t{2})}}));
}

TEST_F(StoreReaderTest, BadDaysAndNamesAreConfigErrors) {
  for (const auto& [start, end] : std::vector<std::pair<std::string, std::string>>{
           {"2001099", ""}, {"20010231", ""}, {"2001-09-09", ""}, {"20011309", ""}, {"20010910", "20010909"},
           {"20010909", "x"}}) {
    EXPECT_THROW((void)list_archives(*client_, options("a", start, end)), ConfigError) << start << ".." << end;
  }
  EXPECT_THROW((void)list_archives(*client_, options("a-b", "20010909")), ConfigError);
  EXPECT_THROW((void)list_archives(*client_, options("", "20010909")), ConfigError);
  auto o = options("a", "20010909");
  o.client = "bad-client";
  EXPECT_THROW((void)list_archives(*client_, o), ConfigError);
  // A leap day is a day.
  EXPECT_NO_THROW((void)list_archives(*client_, options("a", "20000229")));
}

}  // namespace
}  // namespace kclpp::pipeline
