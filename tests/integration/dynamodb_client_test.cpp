// aws::DynamoDbClient against dynalite (tables, items, conditional writes as the lease table
// will use them, scan paging, large numbers), against a fault-injecting in-process HTTP
// server (error classification, the expired-token retry, request shapes), and its SigV4
// signatures against botocore's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "botocore_signer.hpp"
#include "dynalite_fixture.hpp"
#include "kclpp/aws/dynamodb_client.hpp"
#include "fake_http_server.hpp"
#include "local_server.hpp"
#include "support.hpp"

namespace kclpp::aws {
// gtest prints values and items in DynamoDB's JSON.
void PrintTo(const AttributeValue& v, std::ostream* os) { *os << v.to_json(); }
}  // namespace kclpp::aws

namespace kclpp::aws {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::Dynalite;
using test::FakeHttpServer;
using test::HttpReply;
using test::HttpRequest;
using AV = AttributeValue;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

Item lease_key(const std::string& shard) { return {{"leaseKey", AV::s(shard)}}; }

// --- against dynalite ----------------------------------------------------------------------

// One dynalite for the suite (it starts in about a second); each test uses its own tables.
class DynaliteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<Dynalite>(); }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    KCLPP_REQUIRE_SERVER(*server_);
    client_ = std::make_unique<DynamoDbClient>(server_->client_options());
  }

  // A new lease-shaped table (hash key leaseKey, S), ACTIVE.
  std::string make_table(const std::string& name) {
    client_->create_table(name, {"leaseKey", KeyAttribute::Type::S});
    client_->wait_for_active(name, 10s);
    return name;
  }

  static std::unique_ptr<Dynalite> server_;
  std::unique_ptr<DynamoDbClient> client_;
};

std::unique_ptr<Dynalite> DynaliteTest::server_;

TEST_F(DynaliteTest, CreateDescribeAndDeleteTables) {
  EXPECT_EQ(client_->describe_table("leases"), std::nullopt);
  client_->create_table("leases", {"leaseKey", KeyAttribute::Type::S});
  client_->wait_for_active("leases", 10s);
  const auto d = client_->describe_table("leases");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->table_name, "leases");
  EXPECT_EQ(d->status, "ACTIVE");
  EXPECT_EQ(d->hash_key.name, "leaseKey");
  EXPECT_EQ(d->hash_key.type, KeyAttribute::Type::S);
  EXPECT_FALSE(d->range_key.has_value());
  EXPECT_TRUE(contains(d->table_arn, "table/leases")) << d->table_arn;

  client_->create_table("numbers", {"id", KeyAttribute::Type::N});
  client_->wait_for_active("numbers", 10s);
  EXPECT_EQ(client_->describe_table("numbers")->hash_key.type, KeyAttribute::Type::N);

  // Creating it again: the lease code's "create if not exists" tells this apart.
  try {
    client_->create_table("leases", {"leaseKey", KeyAttribute::Type::S});
    FAIL() << "no throw";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceInUseException");
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "CreateTable (table leases)")) << e.what();
  }

  client_->delete_table("leases");
  for (int i = 0; i < 100 && client_->describe_table("leases").has_value(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(client_->describe_table("leases"), std::nullopt);
  try {
    client_->delete_table("leases");
    FAIL() << "no throw";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
  }
  try {
    (void)client_->get_item("leases", lease_key("shardId-0"));
    FAIL() << "no throw";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ResourceNotFoundException");
    EXPECT_TRUE(contains(e.what(), "key leaseKey=shardId-0")) << e.what();
  }
}

TEST_F(DynaliteTest, PutGetUpdateDeleteItems) {
  const std::string table = make_table("items");
  const Item item{
      {"leaseKey", AV::s("shardId-000000000001")},
      {"leaseOwner", AV::s("worker-ü")},
      {"leaseCounter", AV::n(7)},
      {"blob", AV::b(std::string("\0\x01\xff bytes", 9))},
      {"done", AV::boolean(false)},
      {"nothing", AV::null()},
      {"parentShardId", AV::ss({"shardId-a", "shardId-b"})},
      {"sizes", AV::ns({"1", "22", "-3.5"})},
      {"blobs", AV::bs({"x", std::string("\0y", 2)})},
      {"hashKeyRange", AV::m({{"start", AV::s("0")}, {"end", AV::s("340282366920938463463374607431768211455")}})},
      {"history", AV::l({AV::s("a"), AV::n(1), AV::l({AV::boolean(true)})})},
  };
  EXPECT_EQ(client_->put_item(table, item), std::nullopt);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-000000000001"), ReadConsistency::Strong), item);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-000000000001")), item);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-missing"), ReadConsistency::Strong), std::nullopt);

  WriteOptions w;
  w.names = {{"#o", "leaseOwner"}};
  w.values = {{":o", AV::s("worker-2")}, {":one", AV::n(1)}};
  w.return_values = ReturnValues::AllNew;
  const auto updated = client_->update_item(
      table, lease_key("shardId-000000000001"), "SET #o = :o, leaseCounter = leaseCounter + :one REMOVE nothing", w);
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->at("leaseOwner"), AV::s("worker-2"));
  EXPECT_EQ(updated->at("leaseCounter").as_int64(), 8);
  EXPECT_FALSE(updated->contains("nothing"));
  EXPECT_EQ(*updated, *client_->get_item(table, lease_key("shardId-000000000001"), ReadConsistency::Strong));

  WriteOptions old_values;
  old_values.values = {{":two", AV::n(2)}};
  old_values.return_values = ReturnValues::UpdatedOld;
  const auto before = client_->update_item(table, lease_key("shardId-000000000001"),
                                           "SET leaseCounter = leaseCounter + :two", old_values);
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(*before, (Item{{"leaseCounter", AV::n(8)}}));

  // update_item creates a missing item (the key and what the expression sets).
  WriteOptions create;
  create.values = {{":o", AV::s("w")}};
  (void)client_->update_item(table, lease_key("shardId-new"), "SET leaseOwner = :o", create);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-new"), ReadConsistency::Strong),
            (Item{{"leaseKey", AV::s("shardId-new")}, {"leaseOwner", AV::s("w")}}));

  // put_item replaces the whole item and can hand back the old one.
  WriteOptions all_old;
  all_old.return_values = ReturnValues::AllOld;
  const Item replacement{{"leaseKey", AV::s("shardId-new")}, {"checkpoint", AV::s("TRIM_HORIZON")}};
  const auto old_item = client_->put_item(table, replacement, all_old);
  ASSERT_TRUE(old_item.has_value());
  EXPECT_EQ(old_item->at("leaseOwner"), AV::s("w"));
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-new"), ReadConsistency::Strong), replacement);

  EXPECT_EQ(client_->delete_item(table, lease_key("shardId-new"), all_old), replacement);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-new"), ReadConsistency::Strong), std::nullopt);
  EXPECT_EQ(client_->delete_item(table, lease_key("shardId-new"), all_old), std::nullopt);  // already gone
  EXPECT_EQ(client_->delete_item(table, lease_key("shardId-new")), std::nullopt);
}

TEST_F(DynaliteTest, ConditionalWritesSucceedOrThrowConditionFailed) {
  const std::string table = make_table("conditions");
  const Item lease{{"leaseKey", AV::s("shardId-1")}, {"leaseOwner", AV::s("A")}, {"leaseCounter", AV::n(1)}};
  WriteOptions create_only;
  create_only.condition = "attribute_not_exists(leaseKey)";
  (void)client_->put_item(table, lease, create_only);
  // A second worker creating the same lease: a distinct, catchable outcome.
  Item other = lease;
  other["leaseOwner"] = AV::s("B");
  try {
    (void)client_->put_item(table, other, create_only);
    FAIL() << "no throw";
  } catch (const ConditionFailedError& e) {
    EXPECT_EQ(e.type(), "ConditionalCheckFailedException");
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.retry(), Retry::No);
    // dynalite drops ReturnValuesOnConditionCheckFailure: no item (DynamoDB sends it).
    EXPECT_EQ(e.item(), std::nullopt);
    EXPECT_TRUE(contains(e.what(), "PutItem (table conditions)")) << e.what();
  }

  // Renew: increment the counter only if it is still what we read (fenced by the counter).
  WriteOptions renew;
  renew.condition = "leaseCounter = :expected AND #owner = :me";
  renew.names = {{"#owner", "leaseOwner"}};
  renew.values = {{":expected", AV::n(1)}, {":me", AV::s("A")}, {":one", AV::n(1)}};
  (void)client_->update_item(table, lease_key("shardId-1"), "SET leaseCounter = leaseCounter + :one", renew);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-1"), ReadConsistency::Strong)->at("leaseCounter").as_int64(), 2);
  // The same renew again: the counter moved on, so someone else (here: we) changed the lease.
  EXPECT_THROW((void)client_->update_item(table, lease_key("shardId-1"), "SET leaseCounter = leaseCounter + :one",
                                          renew),
               ConditionFailedError);
  // ... and nothing was written.
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-1"), ReadConsistency::Strong)->at("leaseCounter").as_int64(), 2);

  // A condition on a missing item fails too (update_item would otherwise create it).
  WriteOptions must_exist;
  must_exist.condition = "attribute_exists(leaseKey)";
  must_exist.values = {{":o", AV::s("C")}};
  try {
    (void)client_->update_item(table, lease_key("shardId-gone"), "SET leaseOwner = :o", must_exist);
    FAIL() << "no throw";
  } catch (const AwsError& e) {  // also an AwsError, for code that only knows those
    EXPECT_EQ(e.type(), "ConditionalCheckFailedException");
  }
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-gone"), ReadConsistency::Strong), std::nullopt);

  // Delete only while we own it.
  WriteOptions owned_by_b;
  owned_by_b.condition = "leaseOwner = :b";
  owned_by_b.values = {{":b", AV::s("B")}};
  EXPECT_THROW((void)client_->delete_item(table, lease_key("shardId-1"), owned_by_b), ConditionFailedError);
  WriteOptions owned_by_a = owned_by_b;
  owned_by_a.values = {{":b", AV::s("A")}};
  (void)client_->delete_item(table, lease_key("shardId-1"), owned_by_a);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-1"), ReadConsistency::Strong), std::nullopt);

  // A malformed expression is a ValidationException, not a failed condition.
  WriteOptions bad;
  bad.condition = "leaseCounter = :undefined";
  try {
    (void)client_->put_item(table, lease, bad);
    FAIL() << "no throw";
  } catch (const ConditionFailedError& e) {
    FAIL() << e.what();
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ValidationException");
  }
}

TEST_F(DynaliteTest, StringSetsRoundTripAndUpdate) {
  const std::string table = make_table("sets");
  const std::vector<std::string> parents{"shardId-000000000000", "shardId-000000000003", "shard ü"};
  (void)client_->put_item(table, {{"leaseKey", AV::s("shardId-9")}, {"parentShardId", AV::ss(parents)}});
  const auto got = client_->get_item(table, lease_key("shardId-9"), ReadConsistency::Strong);
  ASSERT_TRUE(got.has_value());
  const auto& ss = got->at("parentShardId").as_ss();
  EXPECT_EQ(std::set<std::string>(ss.begin(), ss.end()), std::set<std::string>(parents.begin(), parents.end()));
  EXPECT_EQ(ss.size(), parents.size());
  EXPECT_THROW((void)got->at("parentShardId").as_s(), ProtocolError);

  WriteOptions add;
  add.values = {{":add", AV::ss({"shardId-000000000007"})}};
  (void)client_->update_item(table, lease_key("shardId-9"), "ADD parentShardId :add", add);
  WriteOptions del;
  del.values = {{":del", AV::ss({"shard ü"})}};
  (void)client_->update_item(table, lease_key("shardId-9"), "DELETE parentShardId :del", del);
  EXPECT_EQ(client_->get_item(table, lease_key("shardId-9"), ReadConsistency::Strong)->at("parentShardId"),
            AV::ss({"shardId-000000000007", "shardId-000000000003", "shardId-000000000000"}));

  // The service refuses empty sets; the error names it.
  try {
    (void)client_->put_item(table, {{"leaseKey", AV::s("x")}, {"childShardIds", AV::ss({})}});
    FAIL() << "no throw";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ValidationException");
  }
}

TEST_F(DynaliteTest, ScanFollowsPagesWithASmallLimit) {
  const std::string table = make_table("scan");
  EXPECT_TRUE(client_->scan(table).empty());
  std::set<std::string> keys;
  for (int i = 0; i < 23; ++i) {
    const std::string key = "shardId-" + std::to_string(1000 + i);
    keys.insert(key);
    (void)client_->put_item(table, {{"leaseKey", AV::s(key)}, {"leaseCounter", AV::n(i)}});
  }
  for (int page_size : {0, 1, 4, 23, 100}) {
    ScanOptions o;
    o.page_size = page_size;
    o.consistency = page_size == 4 ? ReadConsistency::Strong : ReadConsistency::Eventual;
    const auto items = client_->scan(table, o);
    std::set<std::string> seen;
    for (const auto& item : items) {
      seen.insert(item.at("leaseKey").as_s());
      EXPECT_EQ(item.at("leaseCounter").as_int64(), std::stoi(item.at("leaseKey").as_s().substr(8)) - 1000);
    }
    EXPECT_EQ(items.size(), 23u) << "page size " << page_size;
    EXPECT_EQ(seen, keys) << "page size " << page_size;
  }
}

TEST_F(DynaliteTest, LargeNumbersRoundTripExactlyWithinDynamoDbLimits) {
  const std::string table = make_table("big_numbers");
  // A Kinesis sequence number: 56 digits. As an S it comes back byte for byte (the KCL's
  // lease table stores checkpoints this way).
  const std::string seq = "49590338271490256608559692538361571095921575989136588898";
  ASSERT_EQ(seq.size(), 56u);
  const std::string n38 = "12345678901234567890123456789012345678";  // DynamoDB's maximum precision
  const std::string n38_max = "99999999999999999999999999999999999998";
  const Item item{{"leaseKey", AV::s(seq)},
                  {"checkpoint", AV::s(seq)},
                  {"big", AV::n(n38)},
                  {"counter", AV::n(n38_max)},
                  {"negative", AV::n("-" + n38)},
                  {"fraction", AV::n("0.000000000000000000000000000000000000012345")},
                  {"padded", AV::n("0042.500")},
                  {"seqs", AV::ns({n38, "1"})}};
  (void)client_->put_item(table, item);
  const auto got = client_->get_item(table, lease_key(seq), ReadConsistency::Strong);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->at("leaseKey").as_s(), seq);
  EXPECT_EQ(got->at("checkpoint").as_s(), seq);
  EXPECT_EQ(got->at("big").as_n(), n38);
  EXPECT_EQ(got->at("negative").as_n(), "-" + n38);
  EXPECT_EQ(got->at("fraction").as_n(), "0.000000000000000000000000000000000000012345");
  EXPECT_EQ(got->at("padded").as_n(), "42.5");  // the service normalises numbers
  EXPECT_EQ(got->at("seqs"), AV::ns({"1", n38}));
  EXPECT_THROW((void)got->at("big").as_int64(), ProtocolError);  // beyond int64
  EXPECT_THROW((void)got->at("padded").as_int64(), ProtocolError);  // not an integer

  // Arithmetic on 38 digits stays exact (no floating point anywhere).
  WriteOptions w;
  w.names = {{"#c", "counter"}};
  w.values = {{":one", AV::n(1)}};
  w.return_values = ReturnValues::UpdatedNew;
  const auto after = client_->update_item(table, lease_key(seq), "SET #c = #c + :one", w);
  EXPECT_EQ(after, (Item{{"counter", AV::n("99999999999999999999999999999999999999")}}));

  // 56 significant digits do not fit DynamoDB's numbers: refused (not rounded), not retryable.
  try {
    (void)client_->put_item(table, {{"leaseKey", AV::s("n56")}, {"checkpoint", AV::n(seq)}});
    FAIL() << "no throw";
  } catch (const AwsError& e) {
    EXPECT_EQ(e.type(), "ValidationException");
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "38 significant digits")) << e.what();
  }
  EXPECT_EQ(client_->get_item(table, lease_key("n56"), ReadConsistency::Strong), std::nullopt);
  // A 56-digit N with trailing zeros has few significant digits: stored exactly.
  const std::string round = "10000000000000000000000000000000000000000000000000000000";
  (void)client_->put_item(table, {{"leaseKey", AV::s("n56-round")}, {"checkpoint", AV::n(round)}});
  EXPECT_EQ(client_->get_item(table, lease_key("n56-round"), ReadConsistency::Strong)->at("checkpoint").as_n(), round);
}

// --- fault injection ------------------------------------------------------------------------

const std::string table_reply =
    R"({"Table":{"TableName":"t","TableStatus":"ACTIVE","TableArn":"arn:aws:dynamodb:us-east-1:1:table/t",)"
    R"("ItemCount":3,"KeySchema":[{"AttributeName":"leaseKey","KeyType":"HASH"}],)"
    R"("AttributeDefinitions":[{"AttributeName":"leaseKey","AttributeType":"S"}]}})";

HttpReply dynamodb_error(int status, const std::string& type, const std::string& message) {
  HttpReply r = HttpReply::aws_error(status, "com.amazonaws.dynamodb.v20120810#" + type, message);
  r.content_type = "application/x-amz-json-1.0";
  return r;
}

TEST(DynamoDbClientFaults, RequestsAreJson10WithTheOperationAndOptions) {
  FakeHttpServer server([](const HttpRequest& req) {
    if (contains(req.header("x-amz-target"), "DescribeTable")) return HttpReply::json(table_reply);
    return HttpReply::json(R"({"Attributes":{"leaseCounter":{"N":"5"}}})");
  });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  WriteOptions w;
  w.condition = "#c = :expected";
  w.names = {{"#c", "leaseCounter"}};
  w.values = {{":expected", AV::n(4)}, {":one", AV::n(1)}, {":b", AV::b("\x01\x02")}};
  w.return_values = ReturnValues::UpdatedNew;
  w.return_item_on_condition_failure = true;
  const auto attrs = client.update_item("leases", lease_key("shardId-1"), "SET #c = #c + :one", w);
  EXPECT_EQ(attrs, (Item{{"leaseCounter", AV::n(5)}}));
  (void)client.get_item("leases", lease_key("shardId-1"), ReadConsistency::Strong);
  (void)client.put_item("leases", {{"leaseKey", AV::s("k")}});
  const auto d = client.describe_table("t");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->item_count, 3);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 4u);
  for (const auto& req : requests) {
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.path, "/");
    EXPECT_EQ(req.header("content-type"), "application/x-amz-json-1.0");
    EXPECT_TRUE(contains(req.header("authorization"), "/us-east-1/dynamodb/aws4_request")) << req.header("authorization");
  }
  EXPECT_EQ(requests[0].header("x-amz-target"), "DynamoDB_20120810.UpdateItem");
  EXPECT_EQ(json::parse(requests[0].body), json::parse(R"({"TableName":"leases",
      "Key":{"leaseKey":{"S":"shardId-1"}},
      "UpdateExpression":"SET #c = #c + :one",
      "ConditionExpression":"#c = :expected",
      "ExpressionAttributeNames":{"#c":"leaseCounter"},
      "ExpressionAttributeValues":{":expected":{"N":"4"},":one":{"N":"1"},":b":{"B":"AQI="}},
      "ReturnValues":"UPDATED_NEW",
      "ReturnValuesOnConditionCheckFailure":"ALL_OLD"})"));
  EXPECT_EQ(requests[1].header("x-amz-target"), "DynamoDB_20120810.GetItem");
  EXPECT_EQ(json::parse(requests[1].body),
            json::parse(R"({"TableName":"leases","Key":{"leaseKey":{"S":"shardId-1"}},"ConsistentRead":true})"));
  // Nothing optional is sent when not asked for (the service refuses empty maps).
  EXPECT_EQ(requests[2].header("x-amz-target"), "DynamoDB_20120810.PutItem");
  EXPECT_EQ(json::parse(requests[2].body), json::parse(R"({"TableName":"leases","Item":{"leaseKey":{"S":"k"}}})"));
  EXPECT_EQ(requests[3].header("x-amz-target"), "DynamoDB_20120810.DescribeTable");
}

TEST(DynamoDbClientFaults, ConditionFailureCarriesTheStoredItemWhenTheServiceSendsIt) {
  FakeHttpServer server([](const HttpRequest&) {
    HttpReply r = dynamodb_error(400, "ConditionalCheckFailedException", "The conditional request failed");
    r.body = R"({"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",)"
             R"("message":"The conditional request failed",)"
             R"("Item":{"leaseKey":{"S":"shardId-1"},"leaseOwner":{"S":"B"},"leaseCounter":{"N":"9"}}})";
    return r;
  });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  WriteOptions w;
  w.condition = "leaseCounter = :c";
  w.values = {{":c", AV::n(3)}};
  w.return_item_on_condition_failure = true;
  try {
    (void)client.delete_item("leases", lease_key("shardId-1"), w);
    FAIL() << "no throw";
  } catch (const ConditionFailedError& e) {
    ASSERT_TRUE(e.item().has_value());
    EXPECT_EQ(e.item()->at("leaseOwner"), AV::s("B"));
    EXPECT_EQ(e.item()->at("leaseCounter").as_int64(), 9);
    EXPECT_TRUE(contains(e.what(), "DeleteItem (table leases, key leaseKey=shardId-1)")) << e.what();
    // The exception is copied around by value: the item goes with it.
    const ConditionFailedError copy = e;
    EXPECT_EQ(copy.item(), e.item());
  }
}

TEST(DynamoDbClientFaults, ThrottlingRepliesAreThrottledErrors) {
  for (const char* type : {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
                           "LimitExceededException"}) {
    FakeHttpServer server([&](const HttpRequest&) { return dynamodb_error(400, type, "slow down"); });
    DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
    try {
      (void)client.get_item("t", lease_key("k"));
      FAIL() << type;
    } catch (const ThrottledError& e) {
      EXPECT_EQ(e.retry(), Retry::Throttled);
      EXPECT_TRUE(contains(e.what(), type)) << e.what();
    }
    // A throttled write was refused, not applied: throttled, not in doubt.
    EXPECT_THROW((void)client.put_item("t", lease_key("k")), ThrottledError) << type;
    EXPECT_THROW((void)client.scan("t"), ThrottledError) << type;
  }
}

TEST(DynamoDbClientFaults, AuthRepliesAreAuthErrors) {
  for (const char* type : {"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
                           "IncompleteSignatureException", "MissingAuthenticationTokenException"}) {
    FakeHttpServer server([&](const HttpRequest&) { return dynamodb_error(400, type, "denied"); });
    DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
    try {
      (void)client.update_item("t", lease_key("k"), "SET a = :a", {});
      FAIL() << type;
    } catch (const AuthError& e) {
      EXPECT_EQ(e.retry(), Retry::No);
      EXPECT_TRUE(contains(e.what(), type)) << e.what();
      EXPECT_FALSE(contains(e.what(), "kclpp-test-secret")) << e.what();
    }
  }
}

TEST(DynamoDbClientFaults, ServerErrorsAreTransportErrorsButWritesAreInDoubt) {
  FakeHttpServer server([](const HttpRequest&) { return dynamodb_error(500, "InternalServerError", "oops"); });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  try {
    (void)client.get_item("t", lease_key("k"), ReadConsistency::Strong);
    FAIL() << "no throw";
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
    EXPECT_TRUE(contains(e.what(), "InternalServerError")) << e.what();
  }
  EXPECT_THROW((void)client.scan("t"), TransportError);
  EXPECT_THROW((void)client.describe_table("t"), TransportError);
  try {
    (void)client.put_item("t", lease_key("k"));
    FAIL() << "no throw";
  } catch (const InDoubtError& e) {
    EXPECT_EQ(e.retry(), Retry::No);
    EXPECT_TRUE(contains(e.what(), "may or may not have taken effect")) << e.what();
  }
  EXPECT_THROW((void)client.update_item("t", lease_key("k"), "SET a = :a", {}), InDoubtError);
  EXPECT_THROW((void)client.delete_item("t", lease_key("k")), InDoubtError);

  // A 503 page from something in between, not JSON at all.
  FakeHttpServer html([](const HttpRequest&) {
    HttpReply r;
    r.status = 503;
    r.content_type = "text/html";
    r.body = "<html>Service Unavailable</html>";
    return r;
  });
  DynamoDbClient html_client(test::dynamodb_test_options(html.endpoint()));
  EXPECT_THROW((void)html_client.get_item("t", lease_key("k")), TransportError);
  EXPECT_THROW((void)html_client.put_item("t", lease_key("k")), InDoubtError);
}

TEST(DynamoDbClientFaults, LostRepliesAreTransportErrorsButWritesAreInDoubt) {
  FakeHttpServer server([](const HttpRequest&) { return HttpReply::reset(); });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  EXPECT_THROW((void)client.get_item("t", lease_key("k")), TransportError);
  EXPECT_THROW((void)client.put_item("t", lease_key("k")), InDoubtError);

  FakeHttpServer slow([](const HttpRequest&) {
    HttpReply r = HttpReply::json("{}");
    r.delay = 1'500ms;
    return r;
  });
  DynamoDbClient slow_client(test::dynamodb_test_options(slow.endpoint(), 300ms));
  try {
    (void)slow_client.update_item("t", lease_key("k"), "SET a = :a", {});
    FAIL() << "no throw";
  } catch (const InDoubtError& e) {
    EXPECT_TRUE(contains(e.what(), "timed out")) << e.what();
  }

  // Nothing listening: the request never left, so even a write is not in doubt.
  DynamoDbClient nowhere(test::dynamodb_test_options("http://127.0.0.1:" + std::to_string(test::unused_port())));
  try {
    (void)nowhere.put_item("t", lease_key("k"));
    FAIL() << "no throw";
  } catch (const InDoubtError& e) {
    FAIL() << e.what();
  } catch (const TransportError& e) {
    EXPECT_EQ(e.retry(), Retry::Yes);
  }
}

// A provider whose expire() is observable: each expiry hands out a new session.
class RotatingProvider : public CredentialsProvider {
 public:
  Credentials credentials() override {
    ++fetches;
    return {"AKIDROTATING", "rotating-secret-" + std::to_string(generation.load()),
            "session-" + std::to_string(generation.load())};
  }
  void expire() noexcept override {
    ++expirations;
    ++generation;
  }
  [[nodiscard]] std::string describe() const override { return "rotating test provider"; }

  std::atomic<int> fetches{0};
  std::atomic<int> expirations{0};
  std::atomic<int> generation{1};
};

TEST(DynamoDbClientFaults, ExpiredTokenMakesTheProviderRefetchAndTheRequestGoOnceMore) {
  // The first request with each session is refused as expired, until session-2.
  FakeHttpServer server([](const HttpRequest& req) {
    if (req.header("x-amz-security-token") == "session-1") {
      return dynamodb_error(400, "ExpiredTokenException", "The security token included in the request is expired");
    }
    return HttpReply::json(R"({"Attributes":{"leaseCounter":{"N":"2"}}})");
  });
  auto provider = std::make_shared<RotatingProvider>();
  DynamoDbOptions o = test::dynamodb_test_options(server.endpoint());
  o.credentials = provider;
  DynamoDbClient client(o);
  WriteOptions w;
  w.condition = "leaseCounter = :c";
  w.values = {{":c", AV::n(1)}};
  w.return_values = ReturnValues::AllNew;
  EXPECT_EQ(client.update_item("t", lease_key("k"), "", w), (Item{{"leaseCounter", AV::n(2)}}));
  EXPECT_EQ(provider->expirations.load(), 1);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].header("x-amz-security-token"), "session-1");
  EXPECT_EQ(requests[1].header("x-amz-security-token"), "session-2");
  EXPECT_EQ(requests[0].body, requests[1].body);

  // A service that keeps saying "expired": exactly one retry, then AuthError.
  FakeHttpServer always([](const HttpRequest&) { return dynamodb_error(400, "ExpiredTokenException", "expired"); });
  auto provider2 = std::make_shared<RotatingProvider>();
  DynamoDbOptions o2 = test::dynamodb_test_options(always.endpoint());
  o2.credentials = provider2;
  DynamoDbClient client2(o2);
  try {
    (void)client2.get_item("t", lease_key("k"));
    FAIL() << "no throw";
  } catch (const AuthError& e) {
    EXPECT_FALSE(contains(e.what(), "rotating-secret")) << e.what();
    EXPECT_FALSE(contains(e.what(), "session-")) << e.what();
  }
  EXPECT_EQ(always.requests().size(), 2u);
  EXPECT_EQ(provider2->expirations.load(), 1);
}

TEST(DynamoDbClientFaults, UnparseableRepliesAreProtocolErrorsButWritesAreInDoubt) {
  std::atomic<int> mode{0};
  FakeHttpServer server([&](const HttpRequest&) {
    switch (mode.load()) {
      case 0: return HttpReply::json("this is not json");
      case 1: return HttpReply::json(R"({"Item":{"a":{"X":"1"}}})");  // unknown type
      case 2: return HttpReply::json(R"({"Item":{"a":{"B":"not base64!"}}})");
      case 3: return HttpReply::json(R"({"Items":[{"a":{"S":"x"}}],"LastEvaluatedKey":"oops"})");
      default: return HttpReply::json(R"({"Table":{"TableName":"t"}})");
    }
  });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  try {
    (void)client.get_item("t", lease_key("k"));
    FAIL() << "no throw";
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(contains(e.what(), "GetItem (table t, key leaseKey=k)")) << e.what();
    EXPECT_FALSE(contains(e.what(), "this is not json")) << e.what();  // replies may hold user data
  }
  EXPECT_THROW((void)client.put_item("t", lease_key("k")), InDoubtError);
  mode = 1;
  EXPECT_THROW((void)client.get_item("t", lease_key("k")), ProtocolError);
  mode = 2;
  EXPECT_THROW((void)client.get_item("t", lease_key("k")), ProtocolError);
  mode = 3;
  EXPECT_THROW((void)client.scan("t"), ProtocolError);
  mode = 4;
  EXPECT_THROW((void)client.describe_table("t"), ProtocolError);

  // An error reply that is not JSON, with a status that is neither 5xx nor throttling.
  FakeHttpServer teapot([](const HttpRequest&) {
    HttpReply r;
    r.status = 400;
    r.content_type = "text/plain";
    r.body = "bad";
    return r;
  });
  DynamoDbClient teapot_client(test::dynamodb_test_options(teapot.endpoint()));
  EXPECT_THROW((void)teapot_client.get_item("t", lease_key("k")), ProtocolError);
}

TEST(DynamoDbClientFaults, ScanSendsLastEvaluatedKeyBackAndRefusesOneThatDoesNotAdvance) {
  std::atomic<bool> stuck{false};
  FakeHttpServer server([&](const HttpRequest& req) {
    const json body = json::parse(req.body);
    if (stuck) return HttpReply::json(R"({"Items":[],"LastEvaluatedKey":{"leaseKey":{"S":"a"}}})");
    if (!body.contains("ExclusiveStartKey")) {
      return HttpReply::json(R"({"Items":[{"leaseKey":{"S":"a"}}],"LastEvaluatedKey":{"leaseKey":{"S":"a"}}})");
    }
    return HttpReply::json(R"({"Items":[{"leaseKey":{"S":"b"}}]})");
  });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  ScanOptions o;
  o.page_size = 1;
  const auto items = client.scan("t", o);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].at("leaseKey").as_s(), "b");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(json::parse(requests[0].body), json::parse(R"({"TableName":"t","Limit":1})"));
  EXPECT_EQ(json::parse(requests[1].body),
            json::parse(R"({"TableName":"t","Limit":1,"ExclusiveStartKey":{"leaseKey":{"S":"a"}}})"));
  stuck = true;
  EXPECT_THROW((void)client.scan("t", o), ProtocolError);
}

TEST(DynamoDbClientFaults, InvalidUtf8IsAConfigErrorBeforeAnythingIsSent) {
  FakeHttpServer server([](const HttpRequest&) { return HttpReply::json("{}"); });
  DynamoDbClient client(test::dynamodb_test_options(server.endpoint()));
  EXPECT_THROW((void)client.put_item("t", {{"leaseKey", AV::s("bad \xff utf-8")}}), ConfigError);
  EXPECT_TRUE(server.requests().empty());
  // Bytes belong in B values, which go base64-encoded.
  (void)client.put_item("t", {{"leaseKey", AV::s("k")}, {"raw", AV::b("\xff\xfe")}});
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(contains(server.requests()[0].body, R"("raw":{"B":"//4="})")) << server.requests()[0].body;
}

// --- SigV4: our signature must equal botocore's -----------------------------------------

TEST(DynamoDbClientSigV4, SignaturesMatchBotocore) {
  KCLPP_REQUIRE_BOTOCORE();
  FakeHttpServer server([](const HttpRequest&) { return HttpReply::json("{}"); });
  for (const std::string token : {"", "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="}) {
    DynamoDbOptions o = test::dynamodb_test_options(server.endpoint());
    o.credentials = static_credentials({"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token});
    DynamoDbClient client(o);
    const std::size_t first = server.requests().size();
    WriteOptions create_only;
    create_only.condition = "attribute_not_exists(leaseKey)";
    (void)client.put_item("kclpp-leases",
                          {{"leaseKey", AV::s("shardId-000000000001")},
                           {"leaseOwner", AV::s("worker \"ü\"")},
                           {"leaseCounter", AV::n(1)},
                           {"checkpoint", AV::s("49590338271490256608559692538361571095921575989136588898")},
                           {"parentShardId", AV::ss({"shardId-000000000000"})},
                           {"blob", AV::b(std::string("\0\x01", 2))}},
                          create_only);
    WriteOptions renew;
    renew.condition = "#c = :expected AND leaseOwner = :me";
    renew.names = {{"#c", "leaseCounter"}};
    renew.values = {{":expected", AV::n(1)}, {":me", AV::s("worker \"ü\"")}, {":one", AV::n(1)}};
    renew.return_values = ReturnValues::AllNew;
    (void)client.update_item("kclpp-leases", lease_key("shardId-000000000001"), "SET #c = #c + :one", renew);
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), first + 2);
    EXPECT_EQ(requests[first].header("x-amz-target"), "DynamoDB_20120810.PutItem");
    EXPECT_EQ(requests[first + 1].header("x-amz-target"), "DynamoDB_20120810.UpdateItem");
    for (std::size_t i = first; i < requests.size(); ++i) {
      const HttpRequest& req = requests[i];
      EXPECT_EQ(req.header("x-amz-security-token"), token);
      const std::string expected = test::botocore_authorization(server.endpoint() + "/", req, o.credentials->credentials(), "dynamodb");
      EXPECT_TRUE(contains(expected, "/us-east-1/dynamodb/aws4_request")) << expected;
      EXPECT_EQ(req.header("authorization"), expected) << "body: " << req.body;
      EXPECT_EQ(contains(expected, "x-amz-security-token"), !token.empty()) << expected;
    }
  }
}

}  // namespace
}  // namespace kclpp::aws
