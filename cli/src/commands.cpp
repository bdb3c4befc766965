#include "commands.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "kclpp/native/deaggregate.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/aws/kinesis_client.hpp"
#include "kclpp/aws/kinesis_subscriber.hpp"
#include "kclpp/internal/utf8.hpp"
#include "kclpp/processor/base64.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "native_runner.hpp"

namespace kclpp::app::detail {
namespace {

std::string required_stream(const Args& args) {
  auto stream = args.get("stream");
  if (!stream || stream->empty()) throw ConfigError("--stream NAME is required (see --help)");
  return *stream;
}

Args stream_args(const std::string& usage, const std::string& description) {
  Args args(usage, description);
  args.option("stream", "NAME", "the Kinesis stream");
  add_client_options(args);
  return args;
}

// Throttling and transient failures of the tool's own calls.
RetryPolicy tool_retry() {
  RetryPolicy policy;
  policy.max_attempts = 10;
  return policy;
}

// The first call of a command: a wrong --endpoint (connection refused, DNS) must fail in
// about a second, not after tool_retry()'s ten attempts (about 20 s of backoff). Once the
// endpoint has answered, later calls get the patient policy.
RetryPolicy first_contact_retry() {
  RetryPolicy policy;
  policy.max_attempts = 3;
  policy.initial_backoff = std::chrono::milliseconds(100);
  policy.max_backoff = std::chrono::milliseconds(400);
  return policy;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

// Printable UTF-8 text (control bytes other than tab/newline make it binary for us; so
// does ill-formed UTF-8, which JSON text cannot carry).
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = kclpp::detail::decode_utf8(s, i);
    if (!c.valid || c.code_point == 0x7F) return false;
    if (c.code_point < 0x20 && c.code_point != '\t' && c.code_point != '\n') return false;
    i += c.length;
  }
  return true;
}

std::string encoded(std::string_view data) {
  std::string out;
  base64_encode(data, out);
  return out;
}

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

}  // namespace

int shards_command(const std::vector<std::string>& argv) {
  Args args = stream_args("kclpp shards --stream NAME [options]",
                          "Lists the shards of a stream, one JSON object per line (closed shards too).");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  aws::KinesisClient client(client_options(args));
  const std::string stream = required_stream(args);
  const auto shards = retry(first_contact_retry(), [&] { return client.list_shards(stream); });
  for (const aws::Shard& shard : shards) {
    nlohmann::json j{{"shardId", shard.shard_id},
                     {"startingHashKey", shard.starting_hash_key},
                     {"endingHashKey", shard.ending_hash_key},
                     {"startingSequenceNumber", shard.starting_sequence_number},
                     {"open", !shard.closed()}};
    if (shard.parent_shard_id) j["parentShardId"] = *shard.parent_shard_id;
    if (shard.adjacent_parent_shard_id) j["adjacentParentShardId"] = *shard.adjacent_parent_shard_id;
    if (shard.ending_sequence_number) j["endingSequenceNumber"] = *shard.ending_sequence_number;
    std::cout << j.dump() << '\n';
  }
  return 0;
}

int put_command(const std::vector<std::string>& argv) {
  Args args = stream_args("kclpp put --stream NAME [options] < lines",
                          "Puts each line of stdin (without its newline) as one record, in PutRecords\n"
                          "batches of up to 500 records, retrying failed entries with backoff. Prints\n"
                          "one JSON line per record (shard and sequence number) with --verbose.");
  args.option("partition-key", "KEY", "partition key of every record (default: a random key per record)")
      .flag("verbose", "print shard and sequence number of every record");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  const std::string stream = required_stream(args);
  aws::KinesisClient client(client_options(args));
  const auto fixed_key = args.get("partition-key");
  std::mt19937_64 random(std::random_device{}());
  const bool verbose = args.has("verbose");
  // Fails fast (unknown stream, unreachable endpoint) before stdin is read.
  (void)retry(first_contact_retry(), [&] { return client.describe_stream_summary(stream); });

  std::vector<aws::PutRecordsEntry> batch;
  std::size_t batch_bytes = 0;
  std::uint64_t total = 0;
  auto flush = [&] {
    std::vector<aws::PutRecordsEntry> pending = std::move(batch);
    batch.clear();
    batch_bytes = 0;
    std::vector<aws::PutRecordsResultEntry> results(pending.size());
    std::vector<std::size_t> todo(pending.size());
    for (std::size_t i = 0; i < todo.size(); ++i) todo[i] = i;
    // One retry loop (kclpp::retry) for both whole-call failures and failed entries: each
    // attempt sends only the entries without a result yet (PutRecords is per-entry), and
    // entries still failing count as throttling for the backoff.
    retry(tool_retry(), [&] {
      std::vector<aws::PutRecordsEntry> send;
      send.reserve(todo.size());
      for (std::size_t i : todo) send.push_back(pending[i]);
      const auto replies = client.put_records(stream, send);
      std::vector<std::size_t> failed;
      std::string first_error;  // of a failed entry (replies.front() may be a success)
      for (std::size_t k = 0; k < replies.size() && k < todo.size(); ++k) {
        if (replies[k].ok()) {
          results[todo[k]] = replies[k];
        } else {
          if (failed.empty()) first_error = replies[k].error_code + ": " + replies[k].error_message;
          failed.push_back(todo[k]);
        }
      }
      // A reply shorter than the request leaves entries without a result: send them again.
      for (std::size_t k = replies.size(); k < todo.size(); ++k) failed.push_back(todo[k]);
      if (!failed.empty() && first_error.empty()) first_error = "PutRecords answered fewer entries than sent";
      todo = std::move(failed);
      if (!todo.empty())
        throw ThrottledError(std::to_string(todo.size()) + " of " + std::to_string(pending.size()) +
                             " records not put: " + first_error);
    });
    if (verbose) {
      for (const auto& r : results)
        std::cout << nlohmann::json{{"shardId", r.shard_id}, {"sequenceNumber", r.sequence_number}}.dump() << '\n';
    }
    total += results.size();
  };
  std::string line;
  while (std::getline(std::cin, line)) {
    std::string key = fixed_key ? *fixed_key : std::to_string(random());
    const std::size_t size = line.size() + key.size();
    if (size > 1024 * 1024) throw ConfigError("line " + std::to_string(total + batch.size() + 1) + " is over 1 MiB");
    if (batch.size() == 500 || batch_bytes + size > 5 * 1024 * 1024) flush();
    batch_bytes += size;
    batch.push_back({std::move(line), std::move(key), {}});
  }
  if (!batch.empty()) flush();
  log_info("kclpp put: ", total, " records put to ", stream);
  return 0;
}

namespace {

// Prints records as JSON lines, KPL aggregates expanded. Not thread-safe.
class RecordPrinter {
 public:
  // Prints `records` (moved from) of `shard_id`; returns how many lines it printed.
  std::size_t print(const std::string& shard_id, std::vector<Record>& records) {
    expanded_.clear();
    for (Record& r : records) native::deaggregate(std::move(r), expanded_);
    for (const Record& r : expanded_) {
      nlohmann::json j{{"shardId", shard_id},
                       {"sequenceNumber", r.sequence_number.str()},
                       {"subSequenceNumber", r.sub_sequence_number},
                       {"partitionKey", r.partition_key},
                       {"data", encoded(r.data)}};
      if (r.approximate_arrival_timestamp) j["approximateArrivalTimestamp"] = rfc3339(*r.approximate_arrival_timestamp);
      if (printable_utf8(r.data)) j["text"] = r.data;
      std::cout << j.dump() << '\n';
    }
    std::cout.flush();
    return expanded_.size();
  }

 private:
  std::vector<Record> expanded_;
};

using Clock = std::chrono::steady_clock;

// When --timeout-ms runs out (never without it).
Clock::time_point give_up_at(const GetRequest& request) {
  return request.timeout ? Clock::now() + *request.timeout : Clock::time_point::max();
}

// The shards to read: every shard of the stream, or the one of --shard.
std::vector<std::string> shards_to_read(aws::KinesisClient& client, const GetRequest& request) {
  std::vector<std::string> ids;
  for (const auto& shard : retry(first_contact_retry(), [&] { return client.list_shards(request.stream); })) {
    if (!request.shard || *request.shard == shard.shard_id) ids.push_back(shard.shard_id);
  }
  if (ids.empty()) throw ConfigError("no such shard in stream '" + request.stream + "'");
  return ids;
}

int get_by_polling(aws::KinesisClient& client, const GetRequest& request) {
  struct Cursor {
    std::string shard_id;
    std::optional<std::string> iterator;
  };
  std::vector<Cursor> cursors;
  for (const std::string& id : shards_to_read(client, request)) {
    cursors.push_back(
        {id, retry(tool_retry(), [&] { return client.get_shard_iterator(request.stream, id, request.from); })});
  }
  const auto deadline = give_up_at(request);
  RecordPrinter printer;
  while (!interrupted.load() && Clock::now() < deadline) {
    bool all_done = true;
    bool any_records = false;
    for (Cursor& c : cursors) {
      if (!c.iterator) continue;
      auto result = retry(tool_retry(), [&] { return client.get_records(*c.iterator, 10'000); });
      c.iterator = result.next_shard_iterator;
      const bool caught_up = result.records.empty() && result.millis_behind_latest == 0;
      any_records = printer.print(c.shard_id, result.records) > 0 || any_records;
      if (c.iterator && !caught_up) all_done = false;
    }
    if (all_done && !request.follow) break;
    if (!any_records) std::this_thread::sleep_for(std::chrono::milliseconds(request.follow ? 1000 : 200));
  }
  return 0;
}

// One shard's SubscribeToShard stream in `kclpp get --fan-out`.
struct Subscribed {
  std::string shard_id;
  aws::StartPosition position;  // where the next subscription starts
  std::unique_ptr<aws::ShardSubscription> subscription;
  Clock::time_point resubscribe_at{};
  int failures = 0;  // in a row, for the backoff
  bool done = false;
};

// Subscriptions that fail are made again from the last event's continuation, with backoff:
// the service allows one SubscribeToShard per second per shard and consumer, and answers
// ResourceInUseException for a shard whose previous subscription has not ended yet.
RetryPolicy resubscribe_policy() {
  RetryPolicy policy;
  policy.max_attempts = 10;
  policy.initial_backoff = std::chrono::milliseconds(1000);
  policy.max_backoff = std::chrono::milliseconds(5000);
  return policy;
}

// Waits up to `wait` for `s`'s next event and prints it. Throws what the subscription
// throws once resubscribe_policy() gives up.
void fan_out_step(Subscribed& s, aws::KinesisSubscriber& subscriber, const std::string& consumer_arn,
                  const GetRequest& request, std::chrono::milliseconds wait, RecordPrinter& printer,
                  aws::SubscribeToShardEvent& event) {
  try {
    if (!s.subscription) s.subscription = subscriber.subscribe(consumer_arn, s.shard_id, s.position);
    switch (s.subscription->next(event, wait)) {
      case aws::ShardSubscription::Status::Event:
        s.failures = 0;
        (void)printer.print(s.shard_id, event.records);
        if (event.shard_end()) {
          s.done = true;
        } else {
          s.position = aws::StartPosition::after(event.continuation_sequence_number);
          s.done = !request.follow && event.millis_behind_latest == 0;
        }
        break;
      case aws::ShardSubscription::Status::Ended:  // the service's 5-minute end: go on
        s.subscription.reset();
        break;
      case aws::ShardSubscription::Status::Timeout:
        break;
    }
  } catch (const Error& e) {
    s.subscription.reset();
    const auto* aws_error = dynamic_cast<const aws::AwsError*>(&e);
    const bool in_use = aws_error != nullptr && aws_error->type() == "ResourceInUseException";
    const RetryPolicy policy = resubscribe_policy();
    if ((e.retry() == Retry::No && !in_use) || ++s.failures >= policy.max_attempts) throw;
    const auto delay = kclpp::detail::backoff_delay(policy, s.failures, in_use ? Retry::Throttled : e.retry());
    log_warn("kclpp get: shard ", s.shard_id, ": ", e.what(), "; subscribing again in ", delay.count(), " ms");
    s.resubscribe_at = Clock::now() + delay;
  }
}

int get_by_fan_out(aws::KinesisClient& client, const aws::KinesisOptions& options, const GetRequest& request) {
  const native::FanOutOptions& fan_out = *request.fan_out;
  const std::vector<std::string> shard_ids = shards_to_read(client, request);
  const std::string consumer_arn =
      !fan_out.consumer_arn.empty()
          ? fan_out.consumer_arn
          : aws::ensure_stream_consumer(client, request.stream, fan_out.consumer_name, fan_out.register_timeout)
                .consumer_arn;
  log_info("kclpp get: reading ", request.stream, " as enhanced fan-out consumer ", consumer_arn);
  aws::SubscriberOptions subscriber_options;
  subscriber_options.kinesis = options;
  aws::KinesisSubscriber subscriber(subscriber_options);
  std::vector<Subscribed> shards;  // after the subscriber: its subscriptions go first
  for (const std::string& id : shard_ids) shards.push_back({id, request.from, nullptr, {}, 0, false});
  // The shards take turns; a short wait each keeps every shard's events prompt.
  const auto wait = std::max(std::chrono::milliseconds(5),
                             std::chrono::milliseconds(200 / static_cast<long>(shards.size())));
  const auto deadline = give_up_at(request);
  RecordPrinter printer;
  aws::SubscribeToShardEvent event;
  while (!interrupted.load() && Clock::now() < deadline) {
    bool all_done = true;
    bool waited = false;
    for (Subscribed& s : shards) {
      if (s.done) continue;
      all_done = false;
      if (!s.subscription && Clock::now() < s.resubscribe_at) continue;
      fan_out_step(s, subscriber, consumer_arn, request, wait, printer, event);
      waited = true;
    }
    if (all_done) break;
    if (!waited) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // every shard backing off
  }
  return 0;
}

}  // namespace

Args get_args() {
  Args args = stream_args("kclpp get --stream NAME [options]",
                          "Prints the records of a stream as JSON lines: shardId, sequenceNumber,\n"
                          "subSequenceNumber, partitionKey, approximateArrivalTimestamp (RFC 3339),\n"
                          "data (base64) and, when the data is UTF-8 text, text. KPL aggregates are\n"
                          "expanded. Stops when every shard is caught up, unless --follow.");
  args.option("from", "POS", "LATEST | TRIM_HORIZON | AT_TIMESTAMP:<epoch seconds or RFC 3339>", "TRIM_HORIZON")
      .option("shard", "ID", "only this shard (default: all)")
      .flag("follow", "keep reading new records until SIGINT/SIGTERM")
      .option("timeout-ms", "MS", "stop after this long even if not caught up (default: no limit)")
      .flag("fan-out",
            "read through enhanced fan-out (SubscribeToShard over HTTP/2) instead of GetRecords, as the "
            "consumer of --consumer-name, registered when missing (never deregistered)")
      .option("consumer-name", "NAME",
              "the fan-out consumer; implies --fan-out. The service allows one reader per shard and "
              "consumer: two `kclpp get --fan-out` at once need two names (default: kclpp-get)")
      .option("consumer-arn", "ARN", "read as this registered consumer; implies --fan-out; not with --consumer-name");
  return args;
}

GetRequest get_request(const Args& args) {
  GetRequest request;
  request.stream = required_stream(args);
  request.from = parse_start_position(args.get_or("from", "TRIM_HORIZON"), "--from");
  request.shard = args.get("shard");
  request.follow = args.has("follow");
  if (const auto ms = args.get_int("timeout-ms", 1, 86'400'000)) request.timeout = std::chrono::milliseconds(*ms);
  request.fan_out = fan_out_options(args, request.stream, "kclpp-get");
  return request;
}

int get_command(const std::vector<std::string>& argv) {
  Args args = get_args();
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  const GetRequest request = get_request(args);
  const aws::KinesisOptions options = client_options(args);
  aws::KinesisClient client(options);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  return request.fan_out ? get_by_fan_out(client, options, request) : get_by_polling(client, request);
}

int create_stream_command(const std::vector<std::string>& argv) {
  Args args = stream_args("kclpp create-stream --stream NAME [--shards N] [options]",
                          "Creates a stream and waits until it is ACTIVE.");
  args.option("shards", "N", "number of shards", "1");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  const std::string stream = required_stream(args);
  const int shards = static_cast<int>(*args.get_int("shards", 1, 100'000));
  aws::KinesisClient client(client_options(args));
  client.create_stream(stream, shards);
  client.wait_for_active(stream, std::chrono::minutes(5));
  log_info("kclpp create-stream: ", stream, " is ACTIVE with ", shards, " shard", shards == 1 ? "" : "s");
  return 0;
}

int delete_stream_command(const std::vector<std::string>& argv) {
  Args args = stream_args("kclpp delete-stream --stream NAME [options]", "Deletes a stream.");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  aws::KinesisClient client(client_options(args));
  client.delete_stream(required_stream(args));
  return 0;
}

}  // namespace kclpp::app::detail
