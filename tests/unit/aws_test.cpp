// Kinesis client internals without a network: the credential chain and region resolution
// (temp files, env vars), the request JSON writer, the reply parsers (GetRecords above all).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "iso8601.hpp"
#include "kclpp/aws/config.hpp"
#include "kclpp/aws/credentials.hpp"
#include "kclpp/processor/base64.hpp"
#include "kinesis_json.hpp"
#include "../aws_env_guard.hpp"
#include "process_credentials.hpp"

namespace kclpp::aws {
namespace {

namespace fs = std::filesystem;

using test_env::EnvGuard;

class AwsChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kclpp_aws_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / ".aws");
    EnvGuard::set("HOME", dir_.string());  // never read the real ~/.aws
    EnvGuard::set("AWS_EC2_METADATA_DISABLED", "true");  // no 169.254.169.254 from unit tests
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = dir_ / rel;
    std::ofstream(p) << text;
    return p.string();
  }

  EnvGuard env_;
  fs::path dir_;
};

// The default chain's credentials, resolved now.
Credentials resolve_credentials(const ProfileOptions& profile = {}) {
  ChainOptions o;
  o.profile = profile;
  return default_credentials(o)->credentials();
}

TEST_F(AwsChainTest, EnvironmentVariablesComeFirst) {
  write(".aws/credentials", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n");
  EnvGuard::set("AWS_ACCESS_KEY_ID", "ENVKEY");
  EnvGuard::set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
  EnvGuard::set("AWS_SESSION_TOKEN", "ENVTOKEN");
  const Credentials c = resolve_credentials();
  EXPECT_EQ(c.access_key_id, "ENVKEY");
  EXPECT_EQ(c.secret_access_key, "ENVSECRET");
  EXPECT_EQ(c.session_token, "ENVTOKEN");
}

TEST_F(AwsChainTest, HalfSetEnvironmentIsAConfigError) {
  EnvGuard::set("AWS_ACCESS_KEY_ID", "ENVKEY");
  EXPECT_THROW((void)resolve_credentials(), ConfigError);
}

TEST_F(AwsChainTest, DefaultProfileFromHomeCredentialsFile) {
  write(".aws/credentials",
        "# comment\n[other]\naws_access_key_id=O\naws_secret_access_key=OS\n\n"
        "[default]\r\nAWS_Access_Key_Id = K1 \r\naws_secret_access_key= S1\r\n"
        "aws_session_token = T1\r\n");
  const Credentials c = resolve_credentials();
  EXPECT_EQ(c.access_key_id, "K1");
  EXPECT_EQ(c.secret_access_key, "S1");
  EXPECT_EQ(c.session_token, "T1");
}

TEST_F(AwsChainTest, AwsProfileSelectsTheSection) {
  write(".aws/credentials",
        "[default]\naws_access_key_id=D\naws_secret_access_key=DS\n"
        "[dev]\naws_access_key_id=DEV\naws_secret_access_key=DEVS\n");
  EnvGuard::set("AWS_PROFILE", "dev");
  EXPECT_EQ(resolve_credentials().access_key_id, "DEV");
  // An explicit option wins over AWS_PROFILE.
  ProfileOptions o;
  o.profile = "default";
  EXPECT_EQ(resolve_credentials(o).access_key_id, "D");
}

TEST_F(AwsChainTest, ExplicitProfileSkipsEnvironment) {
  write(".aws/credentials", "[dev]\naws_access_key_id=DEV\naws_secret_access_key=DEVS\n");
  EnvGuard::set("AWS_ACCESS_KEY_ID", "ENVKEY");
  EnvGuard::set("AWS_SECRET_ACCESS_KEY", "ENVSECRET");
  ProfileOptions o;
  o.profile = "dev";
  EXPECT_EQ(resolve_credentials(o).access_key_id, "DEV");
  EnvGuard::set("AWS_PROFILE", "dev");  // AWS_PROFILE alone does not beat env credentials
  EXPECT_EQ(resolve_credentials().access_key_id, "ENVKEY");
}

TEST_F(AwsChainTest, ConfigFileProfileSectionsAndNestedValues) {
  write(".aws/config",
        "[default]\nregion = eu-west-1\n"
        "[profile ci]\nregion = us-west-2\ns3 =\n  max_concurrent_requests = 10\n"
        "aws_access_key_id = CIKEY\naws_secret_access_key = CISECRET\naws_session_token = CITOKEN\n"
        "[ci]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n");
  ProfileOptions o;
  o.profile = "ci";
  const Credentials c = resolve_credentials(o);
  EXPECT_EQ(c.access_key_id, "CIKEY");
  EXPECT_EQ(c.session_token, "CITOKEN");
  EXPECT_EQ(resolve_region("", o), "us-west-2");
  EXPECT_EQ(resolve_region(""), "eu-west-1");
}

TEST_F(AwsChainTest, CredentialsFileWinsOverConfigFile) {
  write(".aws/credentials", "[default]\naws_access_key_id=CRED\naws_secret_access_key=S\n");
  write(".aws/config", "[default]\naws_access_key_id=CONF\naws_secret_access_key=S\n");
  EXPECT_EQ(resolve_credentials().access_key_id, "CRED");
}

TEST_F(AwsChainTest, FileLocationsFromOptionsAndEnvironment) {
  const std::string creds = write("elsewhere_credentials", "[p]\naws_access_key_id=X\naws_secret_access_key=Y\n");
  const std::string conf = write("elsewhere_config", "[profile p]\nregion=ap-south-1\n");
  EnvGuard::set("AWS_SHARED_CREDENTIALS_FILE", creds);
  EnvGuard::set("AWS_CONFIG_FILE", conf);
  EnvGuard::set("AWS_PROFILE", "p");
  EXPECT_EQ(resolve_credentials().access_key_id, "X");
  EXPECT_EQ(resolve_region(""), "ap-south-1");
  ::unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  ProfileOptions o;
  o.credentials_file = creds;
  EXPECT_EQ(resolve_credentials(o).access_key_id, "X");
}

TEST_F(AwsChainTest, NothingFoundIsAnAuthErrorNamingThePlaces) {
  try {
    (void)resolve_credentials();
    FAIL() << "no throw";
  } catch (const AuthError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("AWS_ACCESS_KEY_ID"), std::string::npos) << what;
    EXPECT_NE(what.find(".aws/credentials"), std::string::npos) << what;
    EXPECT_NE(what.find(".aws/config"), std::string::npos) << what;
    EXPECT_EQ(e.retry(), Retry::No);
  }
}

TEST_F(AwsChainTest, MissingProfileAndRoleProfilesAreExplained) {
  write(".aws/config", "[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n");
  ProfileOptions o;
  o.profile = "nope";
  try {
    (void)resolve_credentials(o);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'nope' does not exist"), std::string::npos) << e.what();
  }
  // A role whose source profile is missing: named, before any request is made.
  o.profile = "role";
  try {
    (void)resolve_credentials(o);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("source_profile 'default' does not exist"), std::string::npos) << e.what();
  }
}

TEST_F(AwsChainTest, MalformedFileIsAConfigErrorWithFileAndLine) {
  const std::string path = write(".aws/credentials", "[default]\naws_access_key_id=K\nthis line is bad\n");
  try {
    (void)resolve_credentials();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":3"), std::string::npos) << e.what();
  }
  write(".aws/credentials", "[default\n");
  EXPECT_THROW((void)resolve_credentials(), ConfigError);
  write(".aws/credentials", "[default]\naws_access_key_id=K\n");  // no secret
  EXPECT_THROW((void)resolve_credentials(), ConfigError);
}

TEST_F(AwsChainTest, RegionExplicitBeatsEnvironmentBeatsConfig) {
  write(".aws/config", "[default]\nregion = from-config\n");
  EXPECT_EQ(resolve_region(""), "from-config");
  EnvGuard::set("AWS_DEFAULT_REGION", "from-default");
  EXPECT_EQ(resolve_region(""), "from-default");
  EnvGuard::set("AWS_REGION", "from-region");
  EXPECT_EQ(resolve_region(""), "from-region");
  EXPECT_EQ(resolve_region("explicit"), "explicit");
}

TEST_F(AwsChainTest, NoRegionIsAConfigError) { EXPECT_THROW((void)resolve_region(""), ConfigError); }

TEST_F(AwsChainTest, EndpointExplicitBeatsServiceVariableBeatsGlobalBeatsProfile) {
  const std::string fallback = "https://kinesis.us-east-1.amazonaws.com";
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), fallback);
  write(".aws/config", "[default]\nendpoint_url = https://profile.example/\n"
                       "[profile other]\nendpoint_url = http://other.example:8080\n");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), "https://profile.example");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback, {"other", "", ""}), "http://other.example:8080");
  EnvGuard::set("AWS_ENDPOINT_URL", "http://global.example/");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), "http://global.example");
  EnvGuard::set("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:4567");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), "http://127.0.0.1:4567");
  // Another service's variable does not apply; the global one does.
  EXPECT_EQ(resolve_endpoint("STS", "", "https://sts.amazonaws.com"), "http://global.example");
  EnvGuard::set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9999");
  EXPECT_EQ(resolve_endpoint("STS", "", "https://sts.amazonaws.com"), "http://127.0.0.1:9999");
  EXPECT_EQ(resolve_endpoint("KINESIS", "https://explicit.example//", fallback), "https://explicit.example");

  // Ignoring configured endpoints: the variable (any case) skips variables and profile, not
  // the explicit endpoint.
  EnvGuard::set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), fallback);
  EXPECT_EQ(resolve_endpoint("KINESIS", "https://explicit.example", fallback), "https://explicit.example");
  EnvGuard::set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), "http://127.0.0.1:4567");
  // The profile's setting, unless the variable says otherwise (it wins, as in botocore).
  write(".aws/config", "[default]\nendpoint_url = https://profile.example\nignore_configured_endpoint_urls = True\n");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), "http://127.0.0.1:4567");
  ::unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  EXPECT_EQ(resolve_endpoint("KINESIS", "", fallback), fallback);

  // A URL without http(s):// is a ConfigError naming where it came from.
  write(".aws/config", "[default]\n");
  EnvGuard::set("AWS_ENDPOINT_URL_KINESIS", "127.0.0.1:4567");
  try {
    (void)resolve_endpoint("KINESIS", "", fallback);
    FAIL() << "no throw";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_ENDPOINT_URL_KINESIS"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)resolve_endpoint("KINESIS", "ftp://x", fallback), ConfigError);
  EXPECT_EQ(regional_endpoint("kinesis", "eu-west-1"), "https://kinesis.eu-west-1.amazonaws.com");
  EXPECT_EQ(regional_endpoint("sts", "cn-north-1"), "https://sts.cn-north-1.amazonaws.com.cn");
}

// --- credential_process pieces ----------------------------------------------------------------

using Words = std::vector<std::string>;

TEST(ProcessCommand, SplitsWordsAsAPosixShellWouldWithoutExpanding) {
  using detail::split_command;
  EXPECT_EQ(split_command("a b\tc\n d"), (Words{"a", "b", "c", "d"}));
  EXPECT_EQ(split_command("  spaced   out  "), (Words{"spaced", "out"}));
  EXPECT_EQ(split_command(R"('/opt/my tools/cred' --profile "my profile")"),
            (Words{"/opt/my tools/cred", "--profile", "my profile"}));
  EXPECT_EQ(split_command(R"(a\ b c\\d \'e)"), (Words{"a b", R"(c\d)", "'e"}));
  // In double quotes a backslash escapes only " \ $ `; in single quotes nothing.
  EXPECT_EQ(split_command(R"("x \" \\ \$ \` \n y")"), (Words{R"(x " \ $ ` \n y)"}));
  EXPECT_EQ(split_command(R"('single \ "keeps" $all')"), (Words{R"(single \ "keeps" $all)"}));
  EXPECT_EQ(split_command(R"(pre'quoted'post"mixed"end)"), (Words{"prequotedpostmixedend"}));
  EXPECT_EQ(split_command(R"('' "" x)"), (Words{"", "", "x"}));
  // Nothing is expanded or interpreted: no variables, globs, tildes, separators or pipes.
  EXPECT_EQ(split_command("$HOME ~ *.sh a;b a|b `id`"), (Words{"$HOME", "~", "*.sh", "a;b", "a|b", "`id`"}));
  EXPECT_TRUE(split_command("").empty());
  EXPECT_TRUE(split_command(" \t\n").empty());
  EXPECT_THROW((void)split_command("'open"), ConfigError);
  EXPECT_THROW((void)split_command("\"open"), ConfigError);
  EXPECT_THROW((void)split_command(R"(a "b\")"), ConfigError);  // an escaped quote does not close
}

TEST(ProcessOutput, ParsesTheVersion1Document) {
  const Credentials c = detail::parse_process_output(
      R"({"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "SK", "SessionToken": "ST",
          "Expiration": "2030-01-02T03:04:05Z", "Other": [1, 2]})",
      "prog");
  EXPECT_EQ(c.access_key_id, "AK");
  EXPECT_EQ(c.secret_access_key, "SK");
  EXPECT_EQ(c.session_token, "ST");
  ASSERT_TRUE(c.expiration);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c.expiration), 1893553445);  // date -d 2030-01-02T03:04:05Z +%s

  const Credentials lasting = detail::parse_process_output(
      R"({"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SK","SessionToken":null})", "prog");
  EXPECT_EQ(lasting.session_token, "");
  EXPECT_FALSE(lasting.expiration);
}

TEST(ProcessOutput, RejectsOtherDocumentsWithoutQuotingThem) {
  const std::string secret = "PROCESSSECRETVALUE";
  for (const std::string& bad : {
           std::string("not json " + secret),
           std::string("[\"" + secret + "\"]"),
           std::string(R"({"AccessKeyId":"AK","SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":2,"AccessKeyId":"AK","SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":"1","AccessKeyId":"AK","SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":1.5,"AccessKeyId":"AK","SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":1,"SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":1,"AccessKeyId":"AK"})"),
           std::string(R"({"Version":1,"AccessKeyId":"","SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":1,"AccessKeyId":7,"SecretAccessKey":")" + secret + "\"}"),
           std::string(R"({"Version":1,"AccessKeyId":"AK","SecretAccessKey":")" + secret +
                       R"(","Expiration":"next week"})"),
       }) {
    try {
      (void)detail::parse_process_output(bad, "/usr/local/bin/creds");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const AuthError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("/usr/local/bin/creds"), std::string::npos) << what;
      EXPECT_EQ(what.find("PROCESSSECRET"), std::string::npos) << what;
    }
  }
}

// --- ISO 8601 --------------------------------------------------------------------------------------

// Seconds since the epoch, or -1 for nullopt.
long long unix_seconds(std::string_view text) {
  const auto t = detail::parse_iso8601(text);
  return t ? static_cast<long long>(std::chrono::system_clock::to_time_t(*t)) : -1;
}

TEST(Iso8601, ParsesTheFormsCredentialServicesSend) {
  // Reference values from `date -u -d ... +%s`.
  EXPECT_EQ(unix_seconds("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(unix_seconds("2026-12-06T08:00:00Z"), 1796544000);
  EXPECT_EQ(unix_seconds("2026-12-06T08:00:00.999Z"), 1796544000);  // fractions dropped (earlier, not later)
  EXPECT_EQ(unix_seconds("2026-12-06t08:00:00z"), 1796544000);
  EXPECT_EQ(unix_seconds("2026-12-06 08:00:00Z"), 1796544000);
  EXPECT_EQ(unix_seconds("2026-12-06T08:00:00"), 1796544000);  // no zone: UTC
  EXPECT_EQ(unix_seconds("2026-12-06T08:00:00+02:00"), 1796544000 - 7200);
  EXPECT_EQ(unix_seconds("2026-12-06T08:00:00-05:30"), 1796544000 + 19800);
  EXPECT_EQ(unix_seconds("2024-02-29T23:59:59Z"), 1709251199);
  EXPECT_EQ(detail::format_iso8601(*detail::parse_iso8601("2031-02-03T04:05:06.5+00:00")), "2031-02-03T04:05:06Z");
  EXPECT_EQ(detail::format_iso8601(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00Z");
}

TEST(Iso8601, RejectsAnythingElse) {
  for (const char* bad : {"", "tomorrow", "2026-12-06", "2026-12-06T08:00", "2026-13-01T00:00:00Z",
                          "2026-00-10T00:00:00Z", "2026-12-32T00:00:00Z", "2026-12-06T24:00:00Z",
                          "2026-12-06T08:60:00Z", "2026-12-06T08:00:00+0200", "2026-12-06T08:00:00Zjunk",
                          "2026/12/06T08:00:00Z", "2026-12-06T8:00:00Z", "2026-12-06X08:00:00Z",
                          "+026-12-06T08:00:00Z", "2026-12-06T08:00:00+02:0x"}) {
    EXPECT_FALSE(detail::parse_iso8601(bad)) << bad;
  }
}

TEST(AwsError, CarriesTypeStatusAndRetry) {
  const AwsError e("ctx", "ResourceNotFoundException", 400, Retry::No);
  EXPECT_EQ(e.type(), "ResourceNotFoundException");
  EXPECT_EQ(e.http_status(), 400);
  EXPECT_EQ(e.retry(), Retry::No);
  const Error& base = e;
  EXPECT_STREQ(base.what(), "ctx");
}

// --- JSON ---------------------------------------------------------------------------------

std::string padded(std::string s) {
  s.reserve(s.size() + detail::json_padding);
  return s;
}

TEST(KinesisJson, WriterEscapes) {
  std::string out;
  detail::append_json_string(out, std::string("a\"b\\c\n\x01\x1f\t\r/é", 13));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\\u001f\\t\\r/é\"");
  out.clear();
  detail::append_json_string(out, "");
  EXPECT_EQ(out, "\"\"");
}

TEST(KinesisJson, GetRecordsDecodesRecordsAndFields) {
  std::string binary("\0\x01\xff\"\\z", 6);
  std::string b64;
  base64_encode(binary, b64);
  const std::string body = padded(
      R"({"MillisBehindLatest":1234,"NextShardIterator":"AAAA/+=","Records":[)"
      R"({"SequenceNumber":"49590338271490256608559692538361571095921575989136588898",)"
      R"("ApproximateArrivalTimestamp":1700000000.123,"Data":")" + b64 + R"(",)"
      R"("PartitionKey":"p\u00e9\"k","EncryptionType":"NONE","Unknown":{"x":[1,2]}},)"
      R"({"Data":"aGVsbG8\/","PartitionKey":"k2","SequenceNumber":"2","ApproximateArrivalTimestamp":1.7e9},)"
      R"({"Data":"!!notbase64","PartitionKey":"k3","SequenceNumber":"3"}]})");
  detail::ReplyParser parser;
  GetRecordsResult r;
  parser.get_records(body, r);
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.millis_behind_latest, 1234);
  EXPECT_EQ(r.next_shard_iterator, "AAAA/+=");
  EXPECT_TRUE(r.child_shards.empty());
  const Record& a = r.records[0];
  EXPECT_EQ(a.data, binary);
  EXPECT_TRUE(a.data_error.empty());
  EXPECT_EQ(a.partition_key, "p\xc3\xa9\"k");
  EXPECT_EQ(a.sequence_number.str(), "49590338271490256608559692538361571095921575989136588898");
  ASSERT_TRUE(a.approximate_arrival_timestamp);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(
                a.approximate_arrival_timestamp->time_since_epoch())
                .count(),
            1700000000123);
  EXPECT_EQ(r.records[1].data, "hello?");  // escaped '/' in the base64 takes the slow path
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(
                r.records[1].approximate_arrival_timestamp->time_since_epoch())
                .count(),
            1700000000000);
  EXPECT_TRUE(r.records[2].data.empty());
  EXPECT_FALSE(r.records[2].data_error.empty());
  EXPECT_FALSE(r.records[2].approximate_arrival_timestamp);

  // Reusing the result: fewer records, fields reset.
  parser.get_records(padded(R"({"Records":[{"SequenceNumber":"9","Data":"","PartitionKey":"x"}],)"
                            R"("MillisBehindLatest":0})"),
                     r);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].data, "");
  EXPECT_TRUE(r.records[0].data_error.empty());
  EXPECT_FALSE(r.next_shard_iterator);
}

TEST(KinesisJson, GetRecordsAtShardEndWithChildShards) {
  const std::string body = padded(
      R"({"Records":[],"NextShardIterator":null,"MillisBehindLatest":0,"ChildShards":[)"
      R"({"ShardId":"shardId-000000000003","ParentShards":["shardId-000000000000","shardId-000000000001"],)"
      R"("HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"}}]})");
  detail::ReplyParser parser;
  GetRecordsResult r;
  parser.get_records(body, r);
  EXPECT_FALSE(r.next_shard_iterator);
  ASSERT_EQ(r.child_shards.size(), 1u);
  EXPECT_EQ(r.child_shards[0].shard_id, "shardId-000000000003");
  EXPECT_EQ(r.child_shards[0].parent_shard_id, "shardId-000000000000");
  EXPECT_EQ(r.child_shards[0].adjacent_parent_shard_id, "shardId-000000000001");
  EXPECT_EQ(r.child_shards[0].ending_hash_key, "340282366920938463463374607431768211455");
}

TEST(KinesisJson, GetRecordsRejectsMalformedReplies) {
  detail::ReplyParser parser;
  GetRecordsResult r;
  for (const char* bad :
       {"", "[]", "{", R"({"Records":{}})", R"({"Records":[{"Data":"AA=="}]})",
        R"({"Records":[{"SequenceNumber":"12x","Data":"AA=="}]})", R"({"MillisBehindLatest":"x"})",
        R"({"Records":[{"SequenceNumber":"1","Data":"AA==","ApproximateArrivalTimestamp":"now"}]})",
        R"({"Records":[1]})"}) {
    EXPECT_THROW(parser.get_records(padded(bad), r), ProtocolError) << bad;
  }
}

TEST(KinesisJson, ListShardsReadsLineageClosedShardsAndTheNextToken) {
  const std::string body = padded(
      R"({"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"},)"
      R"("SequenceNumberRange":{"StartingSequenceNumber":"100","EndingSequenceNumber":"200"}},)"
      R"({"ShardId":"shardId-000000000002","ParentShardId":"shardId-000000000000",)"
      R"("AdjacentParentShardId":"shardId-000000000001","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"},)"
      R"("SequenceNumberRange":{"StartingSequenceNumber":"300"}}],"NextToken":"tok"})");
  detail::ReplyParser parser;
  std::vector<Shard> shards;
  EXPECT_EQ(parser.list_shards(body, shards), "tok");
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_TRUE(shards[0].closed());
  EXPECT_EQ(shards[0].ending_sequence_number, "200");
  EXPECT_FALSE(shards[0].parent_shard_id);
  EXPECT_FALSE(shards[1].closed());
  EXPECT_EQ(shards[1].parent_shard_id, "shardId-000000000000");
  EXPECT_EQ(shards[1].adjacent_parent_shard_id, "shardId-000000000001");
  EXPECT_EQ(parser.list_shards(padded(R"({"Shards":[]})"), shards), "");
  EXPECT_THROW((void)parser.list_shards(padded(R"({"Shards":[{"ShardId":"x"}]})"), shards), ProtocolError);
}

TEST(KinesisJson, PutRecordsResultsInOrder) {
  detail::ReplyParser parser;
  const auto entries = parser.put_records(padded(
      R"({"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"s0"},)"
      R"({"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"}]})"));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_TRUE(entries[0].ok());
  EXPECT_EQ(entries[0].shard_id, "s0");
  EXPECT_FALSE(entries[1].ok());
  EXPECT_EQ(entries[1].error_code, "ProvisionedThroughputExceededException");
  EXPECT_EQ(entries[1].error_message, "slow down");
}

TEST(KinesisJson, ErrorTypeWithoutNamespaceAndBothMessageSpellings) {
  detail::ReplyParser parser;
  std::string type;
  std::string message;
  ASSERT_TRUE(parser.error(padded(R"({"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"gone"})"),
                           type, message));
  EXPECT_EQ(type, "ResourceNotFoundException");
  EXPECT_EQ(message, "gone");
  ASSERT_TRUE(parser.error(padded(R"({"__type":"AccessDeniedException","Message":"no"})"), type, message));
  EXPECT_EQ(type, "AccessDeniedException");
  EXPECT_EQ(message, "no");
  EXPECT_FALSE(parser.error(padded("<html>bad gateway</html>"), type, message));
  EXPECT_FALSE(parser.error(padded(R"({"message":"no type"})"), type, message));
}

TEST(KinesisJson, SmallRepliesParseAndANullIteratorIsAProtocolError) {
  detail::ReplyParser parser;
  const auto s = parser.stream_summary(padded(
      R"({"StreamDescriptionSummary":{"StreamName":"s","StreamARN":"arn:x","StreamStatus":"ACTIVE",)"
      R"("OpenShardCount":2,"RetentionPeriodHours":24,"StreamCreationTimestamp":1.7e9}})"));
  EXPECT_EQ(s.stream_name, "s");
  EXPECT_EQ(s.status, "ACTIVE");
  EXPECT_EQ(s.open_shard_count, 2);
  EXPECT_EQ(s.retention_period_hours, 24);
  EXPECT_EQ(parser.shard_iterator(padded(R"({"ShardIterator":"it"})")), "it");
  EXPECT_THROW((void)parser.shard_iterator(padded(R"({"ShardIterator":null})")), ProtocolError);
  const auto p = parser.put_record(padded(R"({"ShardId":"sh","SequenceNumber":"42","EncryptionType":"NONE"})"));
  EXPECT_EQ(p.shard_id, "sh");
  EXPECT_EQ(p.sequence_number, "42");
}

}  // namespace
}  // namespace kclpp::aws
