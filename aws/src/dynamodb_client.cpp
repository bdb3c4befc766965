// The DynamoDB client: requests and replies in DynamoDB's JSON (nlohmann; the lease table
// is not a hot path), every failure classified in one place (Impl::fail / Impl::call).
#include "kclpp/aws/dynamodb_client.hpp"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <string_view>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "dynamodb_wire.hpp"
#include "json_service.hpp"
#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::aws {

using nlohmann::json;

// --- AttributeValue -------------------------------------------------------------------------

AttributeValue AttributeValue::s(std::string value) {
  AttributeValue v;
  v.type_ = Type::S;
  v.scalar_ = std::move(value);
  return v;
}

AttributeValue AttributeValue::n(std::string decimal) {
  AttributeValue v;
  v.type_ = Type::N;
  v.scalar_ = std::move(decimal);
  return v;
}

AttributeValue AttributeValue::n(std::int64_t value) { return n(std::to_string(value)); }

AttributeValue AttributeValue::b(std::string bytes) {
  AttributeValue v;
  v.type_ = Type::B;
  v.scalar_ = std::move(bytes);
  return v;
}

AttributeValue AttributeValue::ss(std::vector<std::string> values) {
  AttributeValue v;
  v.type_ = Type::SS;
  v.set_ = std::move(values);
  return v;
}

AttributeValue AttributeValue::ns(std::vector<std::string> decimals) {
  AttributeValue v;
  v.type_ = Type::NS;
  v.set_ = std::move(decimals);
  return v;
}

AttributeValue AttributeValue::bs(std::vector<std::string> values) {
  AttributeValue v;
  v.type_ = Type::BS;
  v.set_ = std::move(values);
  return v;
}

AttributeValue AttributeValue::boolean(bool value) {
  AttributeValue v;
  v.type_ = Type::Bool;
  v.bool_ = value;
  return v;
}

AttributeValue AttributeValue::null() { return {}; }

AttributeValue AttributeValue::m(Item value) {
  AttributeValue v;
  v.type_ = Type::M;
  v.map_ = std::make_shared<const Item>(std::move(value));
  return v;
}

AttributeValue AttributeValue::l(std::vector<AttributeValue> values) {
  AttributeValue v;
  v.type_ = Type::L;
  v.list_ = std::make_shared<const std::vector<AttributeValue>>(std::move(values));
  return v;
}

const char* AttributeValue::type_name() const noexcept {
  switch (type_) {
    case Type::S: return "S";
    case Type::N: return "N";
    case Type::B: return "B";
    case Type::SS: return "SS";
    case Type::NS: return "NS";
    case Type::BS: return "BS";
    case Type::Bool: return "BOOL";
    case Type::Null: return "NULL";
    case Type::M: return "M";
    case Type::L: return "L";
  }
  return "?";
}

namespace {

[[noreturn]] void wrong_type(const char* expected, const AttributeValue& v) {
  throw ProtocolError(std::string("DynamoDB attribute value: expected ") + expected + ", got " + v.type_name());
}

}  // namespace

const std::string& AttributeValue::as_s() const {
  if (type_ != Type::S) wrong_type("S", *this);
  return scalar_;
}
const std::string& AttributeValue::as_n() const {
  if (type_ != Type::N) wrong_type("N", *this);
  return scalar_;
}
const std::string& AttributeValue::as_b() const {
  if (type_ != Type::B) wrong_type("B", *this);
  return scalar_;
}
const std::vector<std::string>& AttributeValue::as_ss() const {
  if (type_ != Type::SS) wrong_type("SS", *this);
  return set_;
}
const std::vector<std::string>& AttributeValue::as_ns() const {
  if (type_ != Type::NS) wrong_type("NS", *this);
  return set_;
}
const std::vector<std::string>& AttributeValue::as_bs() const {
  if (type_ != Type::BS) wrong_type("BS", *this);
  return set_;
}
bool AttributeValue::as_bool() const {
  if (type_ != Type::Bool) wrong_type("BOOL", *this);
  return bool_;
}
const Item& AttributeValue::as_m() const {
  if (type_ != Type::M) wrong_type("M", *this);
  return *map_;
}
const std::vector<AttributeValue>& AttributeValue::as_l() const {
  if (type_ != Type::L) wrong_type("L", *this);
  return *list_;
}

std::int64_t AttributeValue::as_int64() const {
  const std::string& d = as_n();
  std::int64_t out = 0;
  const char* end = d.data() + d.size();
  const auto [ptr, ec] = std::from_chars(d.data(), end, out);
  if (d.empty() || ec != std::errc{} || ptr != end) {
    throw ProtocolError("DynamoDB attribute value: N '" + d + "' is not an integer in the range of int64");
  }
  return out;
}

bool operator==(const AttributeValue& a, const AttributeValue& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case AttributeValue::Type::S:
    case AttributeValue::Type::N:
    case AttributeValue::Type::B:
      return a.scalar_ == b.scalar_;
    case AttributeValue::Type::SS:
    case AttributeValue::Type::NS:
    case AttributeValue::Type::BS: {
      std::vector<std::string> x = a.set_;
      std::vector<std::string> y = b.set_;
      std::sort(x.begin(), x.end());
      std::sort(y.begin(), y.end());
      return x == y;
    }
    case AttributeValue::Type::Bool: return a.bool_ == b.bool_;
    case AttributeValue::Type::Null: return true;
    case AttributeValue::Type::M: return *a.map_ == *b.map_;
    case AttributeValue::Type::L: return *a.list_ == *b.list_;
  }
  return false;
}

// --- DynamoDB JSON ----------------------------------------------------------------------------

namespace {

// DynamoDB nests documents at most 32 levels deep; deeper replies are refused rather than
// followed down the stack.
constexpr int max_depth = 64;

[[noreturn]] void bad_reply(const std::string& what) { throw ProtocolError("malformed reply: " + what); }

json to_wire(const AttributeValue& v);

json item_to_wire(const Item& item) {
  json out = json::object();
  for (const auto& [name, value] : item) out[name] = to_wire(value);
  return out;
}

json base64_array(const std::vector<std::string>& values) {
  json out = json::array();
  for (const auto& v : values) {
    std::string encoded;
    base64_encode(v, encoded);
    out.push_back(std::move(encoded));
  }
  return out;
}

json to_wire(const AttributeValue& v) {
  using T = AttributeValue::Type;
  switch (v.type()) {
    case T::S: return {{"S", v.as_s()}};
    case T::N: return {{"N", v.as_n()}};
    case T::B: {
      std::string encoded;
      base64_encode(v.as_b(), encoded);
      return {{"B", std::move(encoded)}};
    }
    case T::SS: return {{"SS", v.as_ss()}};
    case T::NS: return {{"NS", v.as_ns()}};
    case T::BS: return {{"BS", base64_array(v.as_bs())}};
    case T::Bool: return {{"BOOL", v.as_bool()}};
    case T::Null: return {{"NULL", true}};
    case T::M: return {{"M", item_to_wire(v.as_m())}};
    case T::L: {
      json list = json::array();
      for (const auto& e : v.as_l()) list.push_back(to_wire(e));
      return {{"L", std::move(list)}};
    }
  }
  return {{"NULL", true}};
}

std::string decode_base64(const json& j) {
  std::string out;
  if (!j.is_string() || !base64_decode(j.get_ref<const std::string&>(), out)) {
    bad_reply("a binary value that is not base64");
  }
  return out;
}

// The elements of an SS, NS or BS (BS: base64-decoded).
std::vector<std::string> set_elements(const json& j, const std::string& type) {
  if (!j.is_array()) bad_reply("a " + type + " that is not an array");
  std::vector<std::string> out;
  out.reserve(j.size());
  for (const auto& e : j) {
    if (!e.is_string()) bad_reply("a " + type + " element that is not a string");
    out.push_back(type == "BS" ? decode_base64(e) : e.get<std::string>());
  }
  return out;
}

Item item_from_wire(const json& j, int depth);

AttributeValue from_wire(const json& j, int depth) {
  if (depth > max_depth) bad_reply("attribute values nested more than " + std::to_string(max_depth) + " deep");
  if (!j.is_object() || j.size() != 1) bad_reply("an attribute value that is not an object with one type");
  const std::string& type = j.begin().key();
  const json& v = j.begin().value();
  const auto string_value = [&]() -> std::string {
    if (!v.is_string()) bad_reply("a " + type + " value that is not a string");
    return v.get<std::string>();
  };
  if (type == "S") return AttributeValue::s(string_value());
  if (type == "N") return AttributeValue::n(string_value());
  if (type == "B") return AttributeValue::b(decode_base64(v));
  if (type == "SS") return AttributeValue::ss(set_elements(v, type));
  if (type == "NS") return AttributeValue::ns(set_elements(v, type));
  if (type == "BS") return AttributeValue::bs(set_elements(v, type));
  if (type == "BOOL") {
    if (!v.is_boolean()) bad_reply("a BOOL value that is not true or false");
    return AttributeValue::boolean(v.get<bool>());
  }
  if (type == "NULL") return AttributeValue::null();
  if (type == "M") return AttributeValue::m(item_from_wire(v, depth + 1));
  if (type == "L") {
    if (!v.is_array()) bad_reply("an L value that is not an array");
    std::vector<AttributeValue> list;
    list.reserve(v.size());
    for (const auto& e : v) list.push_back(from_wire(e, depth + 1));
    return AttributeValue::l(std::move(list));
  }
  bad_reply("an attribute value of unknown type '" + type + "'");
}

Item item_from_wire(const json& j, int depth) {
  if (!j.is_object()) bad_reply("an item that is not an object");
  Item item;
  for (const auto& [name, value] : j.items()) item.emplace(name, from_wire(value, depth + 1));
  return item;
}

// "leaseKey=shardId-000000000001", for messages; values cut short.
std::string describe_key(const Item& key) {
  std::string out;
  for (const auto& [name, value] : key) {
    if (!out.empty()) out += ", ";
    out += name + "=";
    switch (value.type()) {
      case AttributeValue::Type::S: out += value.as_s(); break;
      case AttributeValue::Type::N: out += value.as_n(); break;
      default: out += std::string("(") + value.type_name() + ")"; break;
    }
    if (out.size() > 160) {
      out.resize(157);
      out += "...";
      break;
    }
  }
  return out;
}

const char* return_values_name(ReturnValues r) {
  switch (r) {
    case ReturnValues::None: return "NONE";
    case ReturnValues::AllOld: return "ALL_OLD";
    case ReturnValues::AllNew: return "ALL_NEW";
    case ReturnValues::UpdatedOld: return "UPDATED_OLD";
    case ReturnValues::UpdatedNew: return "UPDATED_NEW";
  }
  return "NONE";
}

const char* key_type_name(KeyAttribute::Type t) {
  switch (t) {
    case KeyAttribute::Type::S: return "S";
    case KeyAttribute::Type::N: return "N";
    case KeyAttribute::Type::B: return "B";
  }
  return "S";
}

void add_write_options(json& request, const WriteOptions& o) {
  if (!o.condition.empty()) request["ConditionExpression"] = o.condition;
  if (!o.names.empty()) request["ExpressionAttributeNames"] = o.names;
  if (!o.values.empty()) request["ExpressionAttributeValues"] = item_to_wire(o.values);
  if (o.return_values != ReturnValues::None) request["ReturnValues"] = return_values_name(o.return_values);
  if (o.return_item_on_condition_failure) request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD";
}

// The `Attributes` of a write's reply (nullopt when absent).
std::optional<Item> attributes(const json& reply) {
  const auto it = reply.find("Attributes");
  if (it == reply.end()) return std::nullopt;
  return item_from_wire(*it, 0);
}

const std::string& required_string(const json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end() || !it->is_string()) bad_reply(std::string("no string ") + key);
  return it->get_ref<const std::string&>();
}

KeyAttribute::Type key_type(const std::string& t) {
  if (t == "S") return KeyAttribute::Type::S;
  if (t == "N") return KeyAttribute::Type::N;
  if (t == "B") return KeyAttribute::Type::B;
  bad_reply("a key attribute of type '" + t + "'");
}

// DescribeTable's {"Table":{...}}.
TableDescription table_description(const json& reply) {
  const auto t = reply.find("Table");
  if (t == reply.end() || !t->is_object()) bad_reply("no Table");
  TableDescription d;
  d.table_name = required_string(*t, "TableName");
  d.status = required_string(*t, "TableStatus");
  if (const auto arn = t->find("TableArn"); arn != t->end() && arn->is_string()) d.table_arn = arn->get<std::string>();
  if (const auto n = t->find("ItemCount"); n != t->end() && n->is_number_integer()) d.item_count = n->get<std::int64_t>();
  std::map<std::string, KeyAttribute::Type> types;
  if (const auto defs = t->find("AttributeDefinitions"); defs != t->end() && defs->is_array()) {
    for (const auto& def : *defs) {
      if (!def.is_object()) bad_reply("an attribute definition that is not an object");
      types[required_string(def, "AttributeName")] = key_type(required_string(def, "AttributeType"));
    }
  }
  const auto schema = t->find("KeySchema");
  if (schema == t->end() || !schema->is_array()) bad_reply("no KeySchema");
  for (const auto& k : *schema) {
    if (!k.is_object()) bad_reply("a key schema element that is not an object");
    KeyAttribute key{required_string(k, "AttributeName"), KeyAttribute::Type::S};
    if (const auto ty = types.find(key.name); ty != types.end()) key.type = ty->second;
    if (required_string(k, "KeyType") == "HASH") {
      d.hash_key = std::move(key);
    } else {
      d.range_key = std::move(key);
    }
  }
  return d;
}

// --- classification ---------------------------------------------------------------------------


// An error reply: {"__type":"com.amazonaws.dynamodb.v20120810#Name","message":"..."}.
struct DynamoErrorReply {
  std::string type;
  std::string message;
  json doc;
};

std::optional<DynamoErrorReply> parse_error(const std::string& body) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const auto t = doc.find("__type");
  if (t == doc.end() || !t->is_string()) return std::nullopt;
  std::string_view type = t->get_ref<const std::string&>();
  if (auto hash = type.rfind('#'); hash != std::string_view::npos) type.remove_prefix(hash + 1);
  if (auto colon = type.find(':'); colon != std::string_view::npos) type = type.substr(0, colon);
  DynamoErrorReply e{std::string(type), {}, {}};
  for (const char* key : {"message", "Message"}) {
    if (const auto m = doc.find(key); m != doc.end() && m->is_string()) {
      e.message = m->get<std::string>();
      break;
    }
  }
  e.doc = std::move(doc);
  return e;
}

using detail::Effect;

// What a call is about, for error messages: "PutItem (table t, key k) at http://...".
struct Context {
  std::string_view op;
  std::string_view table;
  std::string key;
  Effect effect = Effect::Idempotent;
};

}  // namespace

ConditionFailedError::ConditionFailedError(const std::string& what, std::optional<Item> item)
    : AwsError(what, "ConditionalCheckFailedException", 400, Retry::No),
      item_(std::make_shared<const std::optional<Item>>(std::move(item))) {}

std::string AttributeValue::to_json() const {
  return to_wire(*this).dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace detail {

Item parse_item_json(std::string_view json_text) {
  const json doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded()) throw ProtocolError("DynamoDB: an item that is not JSON");
  return item_from_wire(doc, 0);
}

}  // namespace detail

std::string to_json(const Item& item) {
  return item_to_wire(item).dump(-1, ' ', false, json::error_handler_t::replace);
}

// --- the client -------------------------------------------------------------------------------

struct DynamoDbClient::Impl {
  DynamoDbOptions options;
  detail::JsonService service;
  std::string request;  // the body, reused between calls

  Impl(DynamoDbOptions o, detail::JsonServiceSettings settings)
      : options(std::move(o)), service(std::move(settings), [](const std::string& body) {
          std::optional<detail::ErrorReply> out;
          if (auto e = parse_error(body)) out = detail::ErrorReply{std::move(e->type), std::move(e->message)};
          return out;
        }) {}

  std::string describe(const Context& c) const {
    std::string s = "DynamoDB " + std::string(c.op);
    if (!c.table.empty() || !c.key.empty()) {
      s += " (";
      if (!c.table.empty()) s += "table " + std::string(c.table);
      if (!c.table.empty() && !c.key.empty()) s += ", ";
      if (!c.key.empty()) s += "key " + c.key;
      s += ")";
    }
    return s + " at " + options.endpoint;
  }

  // The failure of a call: a failed condition here (with the stored item when the service
  // sent it), everything else in JsonService::fail.
  [[noreturn]] void fail(const Context& c, const detail::HttpResult& r) {
    if (r.outcome == detail::HttpResult::Outcome::Response) {
      if (const auto e = parse_error(service.body()); e && e->type == "ConditionalCheckFailedException") {
        throw ConditionFailedError(describe(c) + ": " + e->type + (e->message.empty() ? "" : ": " + e->message) +
                                       " (HTTP " + std::to_string(r.status) + ")",
                                   returned_item(*e));
      }
    }
    // Another transaction holds the item: nothing was written, trying again can succeed.
    service.fail(describe(c), c.effect, r, [](std::string_view type) {
      return type == "TransactionConflictException" ? Retry::Yes : Retry::No;
    });
  }

  // The stored item a failed condition sends back (ReturnValuesOnConditionCheckFailure). A
  // malformed one is dropped: the failed condition is the news.
  static std::optional<Item> returned_item(const DynamoErrorReply& e) {
    const auto it = e.doc.find("Item");
    if (it == e.doc.end()) return std::nullopt;
    try {
      return item_from_wire(*it, 0);
    } catch (const ProtocolError&) {
      return std::nullopt;
    }
  }

  // Encodes `body` and POSTs it as operation c.op; returns the parsed reply of a 200.
  json call(const Context& c, const json& body) {
    try {
      request = body.dump();
    } catch (const json::exception&) {
      throw ConfigError(describe(c) + ": a name or string value is not valid UTF-8");
    }
    const detail::HttpResult r = service.post(c.op, request);
    if (r.outcome != detail::HttpResult::Outcome::Response || r.status != 200) fail(c, r);
    json reply = json::parse(service.body(), nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) {
      const std::string what = describe(c) + ": the reply is not a JSON object (" +
                               std::to_string(service.body().size()) + " bytes)";
      if (c.effect == Effect::NotIdempotent) throw InDoubtError(what + " (the write may have taken effect)");
      throw ProtocolError(what);
    }
    return reply;
  }

  // Runs a reply reader, adding the call's context to its ProtocolError (an InDoubtError
  // for a write: the service applied something, but we cannot tell what).
  template <class Fn>
  auto read(const Context& c, Fn&& fn) {
    try {
      return fn();
    } catch (const ProtocolError& e) {
      if (c.effect == Effect::NotIdempotent) {
        throw InDoubtError(describe(c) + ": " + e.what() + " (the write may have taken effect)");
      }
      throw ProtocolError(describe(c) + ": " + e.what());
    }
  }
};

DynamoDbClient::DynamoDbClient(DynamoDbOptions options) {
  options.region = resolve_region(options.region, options.profile);
  options.endpoint = resolve_endpoint("DYNAMODB", options.endpoint, regional_endpoint("dynamodb", options.region),
                                      options.profile);
  if (!options.credentials) options.credentials = shared_default_credentials(options.profile);
  detail::JsonServiceSettings s;
  s.service = "dynamodb";
  s.target_prefix = "DynamoDB_20120810.";
  s.content_type = "application/x-amz-json-1.0";
  s.region = options.region;
  s.endpoint = options.endpoint;
  s.credentials = options.credentials;
  s.http.connect_timeout = options.connect_timeout;
  s.http.request_timeout = options.request_timeout;
  impl_ = std::make_unique<Impl>(std::move(options), std::move(s));
}

DynamoDbClient::~DynamoDbClient() = default;
DynamoDbClient::DynamoDbClient(DynamoDbClient&&) noexcept = default;
DynamoDbClient& DynamoDbClient::operator=(DynamoDbClient&&) noexcept = default;

const DynamoDbOptions& DynamoDbClient::options() const noexcept { return impl_->options; }

void DynamoDbClient::create_table(const std::string& table, const KeyAttribute& hash_key) {
  const Context c{"CreateTable", table, {}, Effect::Idempotent};
  const json body = {
      {"TableName", table},
      {"AttributeDefinitions", json::array({{{"AttributeName", hash_key.name},
                                             {"AttributeType", key_type_name(hash_key.type)}}})},
      {"KeySchema", json::array({{{"AttributeName", hash_key.name}, {"KeyType", "HASH"}}})},
      {"BillingMode", "PAY_PER_REQUEST"},
  };
  (void)impl_->call(c, body);
}

std::optional<TableDescription> DynamoDbClient::describe_table(const std::string& table) {
  const Context c{"DescribeTable", table, {}, Effect::Idempotent};
  json reply;
  try {
    reply = impl_->call(c, {{"TableName", table}});
  } catch (const AwsError& e) {
    if (e.type() == "ResourceNotFoundException") return std::nullopt;
    throw;
  }
  return impl_->read(c, [&] { return table_description(reply); });
}

void DynamoDbClient::wait_for_active(const std::string& table, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::milliseconds pause{20};
  std::string status;
  for (;;) {
    try {
      const auto d = describe_table(table);
      status = d ? d->status : "not found";
      if (status == "ACTIVE") return;
    } catch (const ThrottledError&) {
      status = "throttled";
    }
    if (std::chrono::steady_clock::now() + pause > deadline) {
      throw TransportError(impl_->describe({"DescribeTable", table, {}, Effect::Idempotent}) +
                               ": table not ACTIVE after " + std::to_string(timeout.count()) + " ms (last status " +
                               status + ")",
                           Retry::No);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{1'000});
  }
}

void DynamoDbClient::delete_table(const std::string& table) {
  const Context c{"DeleteTable", table, {}, Effect::Idempotent};
  (void)impl_->call(c, {{"TableName", table}});
}

std::optional<Item> DynamoDbClient::get_item(const std::string& table, const Item& key,
                                             ReadConsistency consistency) {
  const Context c{"GetItem", table, describe_key(key), Effect::Idempotent};
  json body = {{"TableName", table}, {"Key", item_to_wire(key)}};
  if (consistency == ReadConsistency::Strong) body["ConsistentRead"] = true;
  const json reply = impl_->call(c, body);
  return impl_->read(c, [&]() -> std::optional<Item> {
    const auto it = reply.find("Item");
    if (it == reply.end()) return std::nullopt;
    return item_from_wire(*it, 0);
  });
}

std::optional<Item> DynamoDbClient::put_item(const std::string& table, const Item& item,
                                             const WriteOptions& options) {
  const Context c{"PutItem", table, {}, Effect::NotIdempotent};
  json body = {{"TableName", table}, {"Item", item_to_wire(item)}};
  add_write_options(body, options);
  const json reply = impl_->call(c, body);
  return impl_->read(c, [&] { return attributes(reply); });
}

std::optional<Item> DynamoDbClient::update_item(const std::string& table, const Item& key,
                                                const std::string& update_expression,
                                                const WriteOptions& options) {
  const Context c{"UpdateItem", table, describe_key(key), Effect::NotIdempotent};
  json body = {{"TableName", table}, {"Key", item_to_wire(key)}};
  if (!update_expression.empty()) body["UpdateExpression"] = update_expression;
  add_write_options(body, options);
  const json reply = impl_->call(c, body);
  return impl_->read(c, [&] { return attributes(reply); });
}

std::optional<Item> DynamoDbClient::delete_item(const std::string& table, const Item& key,
                                                const WriteOptions& options) {
  const Context c{"DeleteItem", table, describe_key(key), Effect::NotIdempotent};
  json body = {{"TableName", table}, {"Key", item_to_wire(key)}};
  add_write_options(body, options);
  const json reply = impl_->call(c, body);
  return impl_->read(c, [&] { return attributes(reply); });
}

std::vector<Item> DynamoDbClient::scan(const std::string& table, const ScanOptions& options) {
  const Context c{"Scan", table, {}, Effect::Idempotent};
  std::vector<Item> items;
  json start_key;  // null: the first page
  for (int page = 0;; ++page) {
    json body = {{"TableName", table}};
    if (options.page_size > 0) body["Limit"] = options.page_size;
    if (options.consistency == ReadConsistency::Strong) body["ConsistentRead"] = true;
    if (!start_key.is_null()) body["ExclusiveStartKey"] = start_key;
    const json reply = impl_->call(c, body);
    json next = impl_->read(c, [&] {
      const auto list = reply.find("Items");
      if (list == reply.end() || !list->is_array()) bad_reply("no Items");
      for (const auto& i : *list) items.push_back(item_from_wire(i, 0));
      const auto last = reply.find("LastEvaluatedKey");
      if (last == reply.end() || last->is_null()) return json();
      if (!last->is_object() || last->empty()) bad_reply("a LastEvaluatedKey that is not a key");
      return *last;
    });
    if (next.is_null()) break;
    if (next == start_key || page > 1'000'000) {
      throw ProtocolError(impl_->describe(c) + ": LastEvaluatedKey does not advance");
    }
    start_key = std::move(next);
  }
  return items;
}

}  // namespace kclpp::aws
