#pragma once
// An Amazon DynamoDB client: JSON 1.0 over HTTP(S) with SigV4, items as maps of typed
// attribute values, conditional writes whose failed condition is its own error type.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/error.hpp"

namespace kclpp::aws {

struct DynamoDbOptions {
  // Empty: resolve_region() (AWS_REGION, AWS_DEFAULT_REGION, the profile's region).
  std::string region;
  // Empty: resolve_endpoint("DYNAMODB", ...): $AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL,
  // the profile's endpoint_url, else https://dynamodb.<region>.amazonaws.com. For local
  // servers, e.g. "http://127.0.0.1:4567". TLS certificates are always verified for https.
  std::string endpoint;
  // Null: shared_default_credentials(profile), the process's one default chain.
  CredentialsProviderPtr credentials;
  ProfileOptions profile;
  std::chrono::milliseconds connect_timeout{5'000};
  // Whole-request limit (items are at most 400 KB, scan pages at most 1 MB).
  std::chrono::milliseconds request_timeout{10'000};
};

class AttributeValue;
// An item, or a key (the key attributes only), or a map of expression values: attribute
// name → value.
using Item = std::map<std::string, AttributeValue>;

// One DynamoDB attribute value: S, N, B, SS, NS, BS, BOOL, NULL, M or L. Value type (M and
// L share their immutable contents between copies). A number (N, NS) is its decimal
// string, never converted to floating point: the service accepts up to 38 significant
// digits (more is a ValidationException, so a 56-digit Kinesis sequence number goes in an
// S, as the KCL's lease table stores it) and replies with the number normalised ("007" →
// "7", "1.50" → "1.5"). B and BS hold raw bytes (base64 only on the wire).
// Thread safety: const access from any number of threads.
class AttributeValue {
 public:
  enum class Type { S, N, B, SS, NS, BS, Bool, Null, M, L };

  AttributeValue() = default;  // NULL
  [[nodiscard]] static AttributeValue s(std::string value);
  [[nodiscard]] static AttributeValue n(std::string decimal);
  [[nodiscard]] static AttributeValue n(std::int64_t value);
  [[nodiscard]] static AttributeValue b(std::string bytes);
  // Sets must not be empty nor hold duplicates (the service refuses them). Order does not
  // matter: operator== compares sets as sets.
  [[nodiscard]] static AttributeValue ss(std::vector<std::string> values);
  [[nodiscard]] static AttributeValue ns(std::vector<std::string> decimals);
  [[nodiscard]] static AttributeValue bs(std::vector<std::string> values);
  [[nodiscard]] static AttributeValue boolean(bool value);
  [[nodiscard]] static AttributeValue null();
  [[nodiscard]] static AttributeValue m(Item value);
  [[nodiscard]] static AttributeValue l(std::vector<AttributeValue> values);

  [[nodiscard]] Type type() const noexcept { return type_; }
  // "S", "N", ..., "BOOL", "NULL", "M", "L": the type's name on the wire.
  [[nodiscard]] const char* type_name() const noexcept;

  // The value as the given type. Each throws ProtocolError (an item that does not have
  // the shape its reader expects, e.g. a lease written by other software) when the value
  // is of another type: "expected N, got S".
  [[nodiscard]] const std::string& as_s() const;
  [[nodiscard]] const std::string& as_n() const;  // the decimal string
  [[nodiscard]] const std::string& as_b() const;
  [[nodiscard]] const std::vector<std::string>& as_ss() const;
  [[nodiscard]] const std::vector<std::string>& as_ns() const;
  [[nodiscard]] const std::vector<std::string>& as_bs() const;
  [[nodiscard]] bool as_bool() const;
  [[nodiscard]] const Item& as_m() const;
  [[nodiscard]] const std::vector<AttributeValue>& as_l() const;
  // An N that is an integer in range of int64 (a lease counter). ProtocolError otherwise.
  [[nodiscard]] std::int64_t as_int64() const;

  // The value in DynamoDB's JSON form ({"S":"x"}, {"B":"<base64>"}), for logs and tests.
  [[nodiscard]] std::string to_json() const;

  // Same type and value; sets compare as sets, numbers as their strings.
  friend bool operator==(const AttributeValue& a, const AttributeValue& b);

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  std::string scalar_;            // S, N, B
  std::vector<std::string> set_;  // SS, NS, BS
  std::shared_ptr<const Item> map_;                         // M
  std::shared_ptr<const std::vector<AttributeValue>> list_;  // L
};

// An item in DynamoDB's JSON form ({"k":{"S":"x"},...}), for logs and tests.
[[nodiscard]] std::string to_json(const Item& item);

// A write's condition was false for the item as stored (DynamoDB's
// ConditionalCheckFailedException): someone else changed the item, or it is (not) there.
// The write did not happen. Not retryable as is: read the item and decide. An AwsError
// with type() "ConditionalCheckFailedException" and http_status() 400, so that code that
// only knows AwsError still sees the service's name. item(): the item as stored when the
// write asked for it (WriteOptions::return_item_on_condition_failure) and the service
// sent it (DynamoDB does; dynalite does not); nullopt also when there is no such item.
class ConditionFailedError : public AwsError {
 public:
  ConditionFailedError(const std::string& what, std::optional<Item> item);
  [[nodiscard]] const std::optional<Item>& item() const noexcept { return *item_; }

 private:
  std::shared_ptr<const std::optional<Item>> item_;  // shared: exceptions are copied
};

enum class ReadConsistency {
  Eventual,  // the service's default: may miss writes of the last second
  Strong,    // ConsistentRead: every write acknowledged before the read (what leases need)
};

// What a write (put_item, update_item, delete_item) returns (DynamoDB's ReturnValues).
// put_item and delete_item accept None and AllOld only.
enum class ReturnValues { None, AllOld, AllNew, UpdatedOld, UpdatedNew };

// A write's condition and what it returns. `names` and `values` are the placeholders of
// the condition and of update_item's expression: "#n" → attribute name
// (ExpressionAttributeNames), ":v" → value (ExpressionAttributeValues); the service
// refuses placeholders that an expression does not use.
struct WriteOptions {
  // ConditionExpression, e.g. "attribute_not_exists(leaseKey)" or "#c = :expected". The
  // write happens only if it holds for the item as stored; otherwise the call throws
  // ConditionFailedError. Empty: unconditional.
  std::string condition;
  std::map<std::string, std::string> names;
  Item values;
  ReturnValues return_values = ReturnValues::None;
  // ReturnValuesOnConditionCheckFailure ALL_OLD: a ConditionFailedError carries the item.
  bool return_item_on_condition_failure = false;
};

struct ScanOptions {
  // Limit of each Scan request (items read per page); 0: the service's (1 MB pages).
  int page_size = 0;
  ReadConsistency consistency = ReadConsistency::Eventual;
};

// A key attribute of a table and its type (S, N or B).
struct KeyAttribute {
  enum class Type { S, N, B };
  std::string name;
  Type type = Type::S;
};

struct TableDescription {
  std::string table_name;
  std::string table_arn;
  std::string status;  // CREATING, ACTIVE, UPDATING, DELETING
  KeyAttribute hash_key;
  std::optional<KeyAttribute> range_key;
  std::int64_t item_count = 0;  // updated by the service about every six hours
};

// Not thread-safe: use one client per thread (each holds its own connection). Move-only.
// The constructor resolves region, endpoint and the credentials provider (ConfigError /
// AuthError; see config.hpp, credentials.hpp) and makes no request. Every request is signed
// with the provider's current credentials; a reply saying they expired makes the provider
// fetch new ones and the request is sent once more (the first was refused, so this is
// safe for writes too).
// Every call throws: ThrottledError (ProvisionedThroughputExceededException,
// ThrottlingException, RequestLimitExceeded, LimitExceededException; retryable with
// backoff), AuthError (credentials or signature refused), TransportError (network,
// timeouts, 5xx; retryable), InDoubtError (a put/update/delete item whose reply was lost
// or was a 5xx: it may have been applied; after one, a retried conditional write may fail
// its condition because of the first: read the item to find out), AwsError (any other
// service error: ResourceNotFoundException, ResourceInUseException, ValidationException,
// ...; not retryable, except TransactionConflictException), ProtocolError (an unparseable
// reply). The writes throw ConditionFailedError when their condition is false. Messages
// name the operation, the table and the key; never credentials. The client itself never
// retries (except after an expired-token reply): callers wrap calls in kclpp::retry().
class DynamoDbClient {
 public:
  explicit DynamoDbClient(DynamoDbOptions options);
  ~DynamoDbClient();
  DynamoDbClient(DynamoDbClient&&) noexcept;
  DynamoDbClient& operator=(DynamoDbClient&&) noexcept;
  DynamoDbClient(const DynamoDbClient&) = delete;
  DynamoDbClient& operator=(const DynamoDbClient&) = delete;

  [[nodiscard]] const DynamoDbOptions& options() const noexcept;

  // --- tables -----------------------------------------------------------------------------
  // An on-demand (PAY_PER_REQUEST) table keyed by `hash_key`. The table starts CREATING:
  // see wait_for_active. An existing table: AwsError ResourceInUseException.
  void create_table(const std::string& table, const KeyAttribute& hash_key);
  // nullopt when the table does not exist.
  [[nodiscard]] std::optional<TableDescription> describe_table(const std::string& table);
  // Polls describe_table until ACTIVE (a table not visible yet counts as not ACTIVE);
  // throws TransportError(Retry::No) on timeout.
  void wait_for_active(const std::string& table, std::chrono::milliseconds timeout);
  // The table starts DELETING. A missing table: AwsError ResourceNotFoundException.
  void delete_table(const std::string& table);

  // --- items ------------------------------------------------------------------------------
  // The item with this key (all key attributes, and only those); nullopt when there is
  // none. A missing table: AwsError ResourceNotFoundException.
  [[nodiscard]] std::optional<Item> get_item(const std::string& table, const Item& key,
                                             ReadConsistency consistency = ReadConsistency::Eventual);
  // Creates or replaces the whole item. Returns the old item with ReturnValues::AllOld
  // (nullopt when there was none, or when nothing was asked for).
  std::optional<Item> put_item(const std::string& table, const Item& item, const WriteOptions& options = {});
  // UpdateItem with `update_expression` ("SET #c = #c + :one REMOVE pendingCheckpoint";
  // empty: none), creating the item when it is missing (unless the condition forbids it).
  // Returns the attributes options.return_values asks for (nullopt when none).
  std::optional<Item> update_item(const std::string& table, const Item& key,
                                  const std::string& update_expression, const WriteOptions& options = {});
  // Deleting a missing item succeeds (unless the condition forbids it). Returns the old item
  // with ReturnValues::AllOld (nullopt when there was none).
  std::optional<Item> delete_item(const std::string& table, const Item& key, const WriteOptions& options = {});
  // Every item of the table, following LastEvaluatedKey from page to page.
  [[nodiscard]] std::vector<Item> scan(const std::string& table, const ScanOptions& options = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::aws
