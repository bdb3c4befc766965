#include "commands.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "kclpp/native/deaggregate.hpp"
#include "kclpp/aws/kinesis_client.hpp"
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

int get_command(const std::vector<std::string>& argv) {
  Args args = stream_args("kclpp get --stream NAME [options]",
                          "Prints the records of a stream as JSON lines: shardId, sequenceNumber,\n"
                          "subSequenceNumber, partitionKey, approximateArrivalTimestamp (RFC 3339),\n"
                          "data (base64) and, when the data is UTF-8 text, text. KPL aggregates are\n"
                          "expanded. Stops when every shard is caught up, unless --follow.");
  args.option("from", "POS", "LATEST | TRIM_HORIZON | AT_TIMESTAMP:<epoch seconds or RFC 3339>", "TRIM_HORIZON")
      .option("shard", "ID", "only this shard (default: all)")
      .flag("follow", "keep reading new records until SIGINT/SIGTERM");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  const std::string stream = required_stream(args);
  const aws::StartPosition from = parse_start_position(args.get_or("from", "TRIM_HORIZON"), "--from");
  const bool follow = args.has("follow");
  aws::KinesisClient client(client_options(args));
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);

  struct Cursor {
    std::string shard_id;
    std::optional<std::string> iterator;
    bool caught_up = false;
  };
  std::vector<Cursor> cursors;
  for (const auto& shard : retry(first_contact_retry(), [&] { return client.list_shards(stream); })) {
    if (args.get("shard") && *args.get("shard") != shard.shard_id) continue;
    cursors.push_back({shard.shard_id,
                       retry(tool_retry(), [&] { return client.get_shard_iterator(stream, shard.shard_id, from); }),
                       false});
  }
  if (cursors.empty()) throw ConfigError("no such shard in stream '" + stream + "'");
  std::vector<Record> expanded;
  while (!interrupted.load()) {
    bool all_done = true;
    bool any_records = false;
    for (Cursor& c : cursors) {
      if (!c.iterator) continue;
      auto result = retry(tool_retry(), [&] { return client.get_records(*c.iterator, 10'000); });
      c.iterator = result.next_shard_iterator;
      expanded.clear();
      for (Record& r : result.records) native::deaggregate(std::move(r), expanded);
      for (const Record& r : expanded) {
        nlohmann::json j{{"shardId", c.shard_id},
                         {"sequenceNumber", r.sequence_number.str()},
                         {"subSequenceNumber", r.sub_sequence_number},
                         {"partitionKey", r.partition_key},
                         {"data", encoded(r.data)}};
        if (r.approximate_arrival_timestamp) j["approximateArrivalTimestamp"] = rfc3339(*r.approximate_arrival_timestamp);
        if (printable_utf8(r.data)) j["text"] = r.data;
        std::cout << j.dump() << '\n';
      }
      any_records = any_records || !expanded.empty();
      c.caught_up = result.records.empty() && result.millis_behind_latest == 0;
      if (c.iterator && !c.caught_up) all_done = false;
    }
    std::cout.flush();
    if (all_done && !follow) break;
    if (!any_records) std::this_thread::sleep_for(std::chrono::milliseconds(follow ? 1000 : 200));
  }
  return 0;
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
