// The Kinesis client: requests built by hand (small, fixed shapes), replies parsed by
// kinesis_json, every failure classified in one place (Impl::fail / Impl::call).
#include "kclpp/aws/kinesis_client.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <optional>
#include <thread>
#include <type_traits>

#include "json_service.hpp"
#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "kinesis_json.hpp"
#include "start_position.hpp"

namespace kclpp::aws {

namespace {

using detail::iterator_type_name;
using detail::Effect;

// What a call is about, for error messages: "PutRecord (stream s) at http://...".
// `stream` is a name or, for the consumer calls, an ARN; `consumer` a name or an ARN.
struct Context {
  std::string_view op;
  std::string_view stream;
  std::string_view shard;
  Effect effect = Effect::Idempotent;
  std::string_view consumer = {};
};

}  // namespace

struct KinesisClient::Impl {
  KinesisOptions options;
  detail::ReplyParser parser;
  detail::JsonService service;
  std::string request;  // reused between calls

  Impl(KinesisOptions o, detail::JsonServiceSettings settings)
      : options(std::move(o)), service(std::move(settings), [this](const std::string& body) {
          std::optional<detail::ErrorReply> e(std::in_place);
          if (!parser.error(body, e->type, e->message)) e.reset();
          return e;
        }) {}

  std::string describe(const Context& c) const {
    std::string about;
    for (const auto& [label, value] : {std::pair{"stream ", c.stream}, std::pair{"shard ", c.shard},
                                       std::pair{"consumer ", c.consumer}}) {
      if (value.empty()) continue;
      about += (about.empty() ? "" : ", ") + std::string(label) + std::string(value);
    }
    return "Kinesis " + std::string(c.op) + (about.empty() ? "" : " (" + about + ")") + " at " + options.endpoint;
  }

  // POSTs `request` as operation c.op; returns the body of a 200 reply (with padding).
  // Every failure becomes an exception in JsonService::fail.
  const std::string& call(const Context& c) {
    const detail::HttpResult r = service.post(c.op, request);
    if (r.outcome != detail::HttpResult::Outcome::Response || r.status != 200) service.fail(describe(c), c.effect, r);
    return service.body();
  }

  // Runs a reply parser, adding the call's context to a ProtocolError.
  template <class Fn>
  auto parse(const Context& c, Fn&& fn) {
    try {
      return fn(service.body());
    } catch (const ProtocolError& e) {
      if (c.effect == Effect::NotIdempotent) {
        throw InDoubtError(describe(c) + ": " + e.what() + " (the write may have taken effect)");
      }
      throw ProtocolError(describe(c) + ": " + e.what());
    }
  }

  void begin() {
    request.clear();
    request.push_back('{');
  }
  void field(std::string_view key, std::string_view value) {
    if (request.size() > 1) request.push_back(',');
    detail::append_json_key(request, key);
    detail::append_json_string(request, value);
  }
  void field_raw(std::string_view key, std::string_view json) {
    if (request.size() > 1) request.push_back(',');
    detail::append_json_key(request, key);
    request.append(json);
  }
  void end() { request.push_back('}'); }
};

KinesisClient::KinesisClient(KinesisOptions options) {
  options.region = resolve_region(options.region, options.profile);
  options.endpoint = resolve_endpoint("KINESIS", options.endpoint, regional_endpoint("kinesis", options.region),
                                      options.profile);
  if (!options.credentials) options.credentials = shared_default_credentials(options.profile);
  detail::JsonServiceSettings s;
  s.service = "kinesis";
  s.target_prefix = "Kinesis_20131202.";
  s.content_type = "application/x-amz-json-1.1";
  s.region = options.region;
  s.endpoint = options.endpoint;
  s.credentials = options.credentials;
  s.http.connect_timeout = options.connect_timeout;
  s.http.request_timeout = options.request_timeout;
  s.padding = detail::json_padding;
  impl_ = std::make_unique<Impl>(std::move(options), std::move(s));
}

KinesisClient::~KinesisClient() = default;
KinesisClient::KinesisClient(KinesisClient&&) noexcept = default;
KinesisClient& KinesisClient::operator=(KinesisClient&&) noexcept = default;

const KinesisOptions& KinesisClient::options() const noexcept { return impl_->options; }

std::vector<Shard> KinesisClient::list_shards(const std::string& stream) {
  Impl& m = *impl_;
  const Context c{"ListShards", stream, {}, Effect::Idempotent};
  std::vector<Shard> shards;
  std::string token;
  for (int page = 0;; ++page) {
    m.begin();
    // NextToken identifies the stream: the API refuses StreamName next to it.
    if (token.empty()) {
      m.field("StreamName", stream);
    } else {
      m.field("NextToken", token);
    }
    if (m.options.list_shards_page_size > 0) {
      m.field_raw("MaxResults", std::to_string(m.options.list_shards_page_size));
    }
    m.end();
    (void)m.call(c);
    std::string next = m.parse(c, [&](const std::string& b) { return m.parser.list_shards(b, shards); });
    if (next.empty()) break;
    if (next == token || page > 100'000) {
      throw ProtocolError(m.describe(c) + ": NextToken does not advance");
    }
    token = std::move(next);
  }
  return shards;
}

StreamSummary KinesisClient::describe_stream_summary(const std::string& stream) {
  Impl& m = *impl_;
  const Context c{"DescribeStreamSummary", stream, {}, Effect::Idempotent};
  m.begin();
  m.field("StreamName", stream);
  m.end();
  (void)m.call(c);
  return m.parse(c, [&](const std::string& b) { return m.parser.stream_summary(b); });
}

std::string KinesisClient::get_shard_iterator(const std::string& stream, const std::string& shard_id,
                                              const StartPosition& position) {
  Impl& m = *impl_;
  const Context c{"GetShardIterator", stream, shard_id, Effect::Idempotent};
  m.begin();
  m.field("StreamName", stream);
  m.field("ShardId", shard_id);
  m.field("ShardIteratorType", iterator_type_name(position.type));
  switch (position.type) {
    case IteratorType::AtSequenceNumber:
    case IteratorType::AfterSequenceNumber:
      if (position.sequence_number.empty()) {
        throw ConfigError(m.describe(c) + ": " + iterator_type_name(position.type) +
                          " needs a sequence number");
      }
      m.field("StartingSequenceNumber", position.sequence_number);
      break;
    case IteratorType::AtTimestamp: {
      const std::string ts = detail::epoch_seconds_json(position.timestamp);
      m.field_raw("Timestamp", ts);
      break;
    }
    default:
      break;
  }
  m.end();
  (void)m.call(c);
  return m.parse(c, [&](const std::string& b) { return m.parser.shard_iterator(b); });
}

GetRecordsResult KinesisClient::get_records(const std::string& shard_iterator, int limit) {
  GetRecordsResult result;
  get_records(shard_iterator, limit, result);
  return result;
}

void KinesisClient::get_records(const std::string& shard_iterator, int limit, GetRecordsResult& out) {
  Impl& m = *impl_;
  const Context c{"GetRecords", {}, {}, Effect::Idempotent};
  m.begin();
  m.field("ShardIterator", shard_iterator);
  if (limit > 0) m.field_raw("Limit", std::to_string(limit));
  m.end();
  (void)m.call(c);
  m.parse(c, [&](const std::string& b) {
    m.parser.get_records(b, out);
    return 0;
  });
}

PutRecordResult KinesisClient::put_record(const std::string& stream, std::string_view data,
                                          const std::string& partition_key,
                                          const std::string& explicit_hash_key) {
  Impl& m = *impl_;
  const Context c{"PutRecord", stream, {}, Effect::NotIdempotent};
  m.request.reserve(data.size() / 3 * 4 + partition_key.size() + stream.size() + 128);
  m.begin();
  m.field("StreamName", stream);
  m.field("PartitionKey", partition_key);
  if (!explicit_hash_key.empty()) m.field("ExplicitHashKey", explicit_hash_key);
  m.request.append(",\"Data\":\"");
  base64_encode(data, m.request);
  m.request.push_back('"');
  m.end();
  (void)m.call(c);
  return m.parse(c, [&](const std::string& b) { return m.parser.put_record(b); });
}

std::vector<PutRecordsResultEntry> KinesisClient::put_records(const std::string& stream,
                                                              std::span<const PutRecordsEntry> entries) {
  Impl& m = *impl_;
  const Context c{"PutRecords", stream, {}, Effect::NotIdempotent};
  std::size_t size = stream.size() + 64;
  for (const auto& e : entries) size += e.data.size() / 3 * 4 + e.partition_key.size() + 96;
  m.request.reserve(size);
  m.begin();
  m.field("StreamName", stream);
  m.request.append(",\"Records\":[");
  bool first = true;
  for (const auto& e : entries) {
    if (!first) m.request.push_back(',');
    first = false;
    m.request.append("{\"Data\":\"");
    base64_encode(e.data, m.request);
    m.request.append("\",");
    detail::append_json_key(m.request, "PartitionKey");
    detail::append_json_string(m.request, e.partition_key);
    if (!e.explicit_hash_key.empty()) {
      m.request.push_back(',');
      detail::append_json_key(m.request, "ExplicitHashKey");
      detail::append_json_string(m.request, e.explicit_hash_key);
    }
    m.request.push_back('}');
  }
  m.request.push_back(']');
  m.end();
  (void)m.call(c);
  auto results = m.parse(c, [&](const std::string& b) { return m.parser.put_records(b); });
  if (results.size() != entries.size()) {
    throw InDoubtError(m.describe(c) + ": the reply has " + std::to_string(results.size()) +
                       " results for " + std::to_string(entries.size()) + " records");
  }
  return results;
}

// Registering again after a lost reply is harmless (ResourceInUseException, which
// ensure_stream_consumer reads as "someone registered it": it describes the consumer), so
// the call counts as idempotent rather than in doubt.
StreamConsumer KinesisClient::register_stream_consumer(const std::string& stream_arn,
                                                      const std::string& consumer_name) {
  Impl& m = *impl_;
  const Context c{"RegisterStreamConsumer", stream_arn, {}, Effect::Idempotent, consumer_name};
  m.begin();
  m.field("StreamARN", stream_arn);
  m.field("ConsumerName", consumer_name);
  m.end();
  (void)m.call(c);
  StreamConsumer consumer = m.parse(c, [&](const std::string& b) { return m.parser.stream_consumer(b, "Consumer"); });
  if (consumer.stream_arn.empty()) consumer.stream_arn = stream_arn;  // Register's reply has none
  return consumer;
}

StreamConsumer KinesisClient::describe_stream_consumer(const std::string& stream_arn,
                                                      const std::string& consumer_name) {
  Impl& m = *impl_;
  const Context c{"DescribeStreamConsumer", stream_arn, {}, Effect::Idempotent, consumer_name};
  m.begin();
  m.field("StreamARN", stream_arn);
  m.field("ConsumerName", consumer_name);
  m.end();
  (void)m.call(c);
  StreamConsumer consumer =
      m.parse(c, [&](const std::string& b) { return m.parser.stream_consumer(b, "ConsumerDescription"); });
  if (consumer.stream_arn.empty()) consumer.stream_arn = stream_arn;
  return consumer;
}

StreamConsumer KinesisClient::describe_stream_consumer(const std::string& consumer_arn) {
  Impl& m = *impl_;
  const Context c{"DescribeStreamConsumer", {}, {}, Effect::Idempotent, consumer_arn};
  m.begin();
  m.field("ConsumerARN", consumer_arn);
  m.end();
  (void)m.call(c);
  return m.parse(c, [&](const std::string& b) { return m.parser.stream_consumer(b, "ConsumerDescription"); });
}

std::vector<StreamConsumer> KinesisClient::list_stream_consumers(const std::string& stream_arn) {
  Impl& m = *impl_;
  const Context c{"ListStreamConsumers", stream_arn, {}, Effect::Idempotent};
  std::vector<StreamConsumer> consumers;
  std::string token;
  for (int page = 0;; ++page) {
    // Unlike ListShards, StreamARN is required next to NextToken.
    m.begin();
    m.field("StreamARN", stream_arn);
    if (!token.empty()) m.field("NextToken", token);
    m.end();
    (void)m.call(c);
    std::string next = m.parse(c, [&](const std::string& b) { return m.parser.stream_consumers(b, consumers); });
    if (next.empty()) break;
    if (next == token || page > 10'000) throw ProtocolError(m.describe(c) + ": NextToken does not advance");
    token = std::move(next);
  }
  for (StreamConsumer& consumer : consumers) {
    if (consumer.stream_arn.empty()) consumer.stream_arn = stream_arn;  // summaries have none
  }
  return consumers;
}

void KinesisClient::deregister_stream_consumer(const std::string& consumer_arn) {
  Impl& m = *impl_;
  const Context c{"DeregisterStreamConsumer", {}, {}, Effect::Idempotent, consumer_arn};
  m.begin();
  m.field("ConsumerARN", consumer_arn);
  m.end();
  (void)m.call(c);
}

void KinesisClient::create_stream(const std::string& stream, int shard_count) {
  Impl& m = *impl_;
  const Context c{"CreateStream", stream, {}, Effect::Idempotent};
  m.begin();
  m.field("StreamName", stream);
  m.field_raw("ShardCount", std::to_string(shard_count));
  m.end();
  (void)m.call(c);
}

void KinesisClient::delete_stream(const std::string& stream) {
  Impl& m = *impl_;
  const Context c{"DeleteStream", stream, {}, Effect::Idempotent};
  m.begin();
  m.field("StreamName", stream);
  m.end();
  (void)m.call(c);
}

void KinesisClient::split_shard(const std::string& stream, const std::string& shard_id,
                                const std::string& new_starting_hash_key) {
  Impl& m = *impl_;
  const Context c{"SplitShard", stream, shard_id, Effect::Idempotent};
  m.begin();
  m.field("StreamName", stream);
  m.field("ShardToSplit", shard_id);
  m.field("NewStartingHashKey", new_starting_hash_key);
  m.end();
  (void)m.call(c);
}

void KinesisClient::merge_shards(const std::string& stream, const std::string& shard_id,
                                 const std::string& adjacent_shard_id) {
  Impl& m = *impl_;
  const std::string shards = shard_id + " + " + adjacent_shard_id;
  const Context c{"MergeShards", stream, shards, Effect::Idempotent};
  m.begin();
  m.field("StreamName", stream);
  m.field("ShardToMerge", shard_id);
  m.field("AdjacentShardToMerge", adjacent_shard_id);
  m.end();
  (void)m.call(c);
}

void KinesisClient::wait_for_active(const std::string& stream, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::milliseconds pause{20};
  std::string status;
  for (;;) {
    try {
      status = describe_stream_summary(stream).status;
      if (status == "ACTIVE") return;
    } catch (const ThrottledError&) {
      status = "throttled";
    }
    if (std::chrono::steady_clock::now() + pause > deadline) {
      throw TransportError(impl_->describe({"DescribeStreamSummary", stream, {}, Effect::Idempotent}) +
                               ": stream not ACTIVE after " + std::to_string(timeout.count()) +
                               " ms (last status " + status + ")",
                           Retry::No);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{1'000});
  }
}

// --- ensure_stream_consumer -------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

// One ensure_stream_consumer call: its calls, each retried under kclpp::retry and never
// past the caller's deadline, and the poll until the consumer is ACTIVE.
class ConsumerEnsurer {
 public:
  ConsumerEnsurer(KinesisClient& client, const std::string& stream, const std::string& name,
                  std::chrono::milliseconds timeout)
      : client_(client),
        stream_(stream),
        name_(name),
        timeout_(timeout),
        deadline_(Clock::now() + timeout),
        where_("enhanced fan-out consumer '" + name + "' of stream '" + stream + "'") {}

  StreamConsumer run() {
    const std::string stream_arn =
        call(describe_policy(), [&] { return client_.describe_stream_summary(stream_).stream_arn; });
    if (stream_arn.empty())
      throw ProtocolError(where_ + ": DescribeStreamSummary at " + client_.options().endpoint +
                          " answered no StreamARN, which the consumer calls need");
    // 200 ms (kinesis-local makes a consumer ACTIVE after 500 ms), growing to 2 s (AWS takes
    // some seconds): quick where it can be, without spending the stream's 20 describes/s.
    std::chrono::milliseconds pause{200};
    for (;;) {
      std::optional<StreamConsumer> consumer = describe(stream_arn);
      if (!consumer) consumer = register_it(stream_arn);
      if (consumer && consumer->status == "ACTIVE") return *consumer;
      // A DELETING consumer is waited out: once gone, describe finds none and it is
      // registered again. Registered by another worker meanwhile: described next round.
      const std::string status = consumer ? consumer->status : "being registered by another worker";
      const auto now = Clock::now();
      if (now >= deadline_)
        throw TransportError(where_ + ": not ACTIVE after " + std::to_string(timeout_.count()) + " ms (last status " +
                                 status + ")",
                             Retry::No);
      log_debug(where_, ": ", status, ", waiting for ACTIVE");
      std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline_ - now));
      pause = std::min(pause * 3 / 2, std::chrono::milliseconds{2'000});
    }
  }

 private:
  // DescribeStreamConsumer allows 20 calls per second per stream, RegisterStreamConsumer 5
  // per second: a fleet that starts at once is throttled (LimitExceededException), so
  // throttling waits at least a floor sized to spread the fleet's calls over a few seconds.
  static RetryPolicy describe_policy() {
    RetryPolicy policy;
    policy.max_attempts = 10;
    policy.initial_backoff = std::chrono::milliseconds{200};
    policy.max_backoff = std::chrono::milliseconds{2'000};
    policy.throttle_floor = std::chrono::milliseconds{250};
    return policy;
  }
  static RetryPolicy register_policy() {
    RetryPolicy policy = describe_policy();
    policy.throttle_floor = std::chrono::milliseconds{1'000};
    return policy;
  }

  // fn() under kclpp::retry, except that no retry starts past the deadline: then the last
  // error becomes the timeout's TransportError (not retryable, or retry() would go on).
  template <class Fn>
  auto call(const RetryPolicy& policy, Fn&& fn) -> std::invoke_result_t<Fn&> {
    int attempt = 0;
    std::string last_error;
    return retry(policy, [&] {
      if (attempt++ > 0 && Clock::now() >= deadline_)
        throw TransportError(where_ + ": no answer within " + std::to_string(timeout_.count()) + " ms; last error: " +
                                 last_error,
                             Retry::No);
      try {
        return fn();
      } catch (const Error& e) {
        last_error = e.what();
        throw;
      }
    });
  }

  // The consumer of that name, or nullopt when the stream has none.
  std::optional<StreamConsumer> describe(const std::string& stream_arn) {
    try {
      return call(describe_policy(), [&] { return client_.describe_stream_consumer(stream_arn, name_); });
    } catch (const AwsError& e) {
      if (e.type() != "ResourceNotFoundException") throw;
      return std::nullopt;
    }
  }

  // The new consumer, or nullopt when another worker registered one of that name first.
  std::optional<StreamConsumer> register_it(const std::string& stream_arn) {
    try {
      log_info(where_, ": registering it");
      return call(register_policy(), [&] { return client_.register_stream_consumer(stream_arn, name_); });
    } catch (const AwsError& e) {
      if (e.type() != "ResourceInUseException") throw;
      return std::nullopt;
    }
  }

  KinesisClient& client_;
  const std::string& stream_;
  const std::string& name_;
  std::chrono::milliseconds timeout_;
  Clock::time_point deadline_;
  std::string where_;
};

}  // namespace

StreamConsumer ensure_stream_consumer(KinesisClient& client, const std::string& stream,
                                      const std::string& consumer_name, std::chrono::milliseconds timeout) {
  if (consumer_name.empty())
    throw ConfigError("enhanced fan-out on stream '" + stream + "': the consumer name is empty");
  return ConsumerEnsurer(client, stream, consumer_name, timeout).run();
}

}  // namespace kclpp::aws
