// triton_producer: writes N Triton events (msgpack maps) to a logical stream of a Triton
// config, either blocking with Producer::put_many (prints where the records went) or through
// a running `kclpp spoold` with the non-blocking SpoolClient (prints sent/dropped counts).
//
//   kclpp_triton_producer --config triton.yaml --stream NAME [--count N] [--first SEQ]
//       [--endpoint http://127.0.0.1:4567]             blocking (Kinesis endpoint, optional)
//       [--spool [--spool-endpoint tcp://HOST:PORT]]   through spoold (default tcp://127.0.0.1:3515)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include <kclpp/pipeline/config.hpp>
#include <kclpp/pipeline/producer.hpp>
#include <kclpp/pipeline/spool.hpp>

namespace kp = kclpp::pipeline;

// A Triton event: the kind of map py-triton's Stream.put(**kwargs) or a Go service writes.
kp::Map make_event(int i) {
  static const char* const actions[] = {"signup", "login", "view", "purchase"};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now);
  return {{"user_id", "user-" + std::to_string(i % 7)},   // the partition_key field below
          {"action", actions[i % 4]},
          {"seq", i},
          {"ts", kp::Time{seconds.count(),                // Go time.Time (msgp ext 5)
                          static_cast<std::int32_t>((now - seconds).count() % 1'000'000'000)}},
          {"text", "event " + std::to_string(i) + " from kclpp_triton_producer"}};
}

int main(int argc, char** argv) {
  // Options with a value, and their defaults; --spool takes none.
  std::map<std::string, std::string> opt{{"config", ""}, {"stream", ""}, {"count", "10"}, {"first", "0"},
                                         {"endpoint", ""}, {"spool-endpoint", ""}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--spool") opt["spool"] = "1";
    else if (arg.starts_with("--") && opt.contains(arg.substr(2)) && i + 1 < argc) opt[arg.substr(2)] = argv[++i];
    else return std::fprintf(stderr, "kclpp_triton_producer: bad argument '%s' (see triton_producer.cpp)\n", argv[i]), 2;
  }
  try {
    // --config, else $TRITON_CONFIG, else /etc/triton.yaml (as every Triton tool).
    const kp::TritonConfig config = kp::TritonConfig::load(opt["config"]);
    const kp::StreamConfig& stream = config.stream(opt["stream"]);  // throws if not configured
    std::vector<kp::Map> events;
    const int first = std::stoi(opt["first"]);  // events are numbered (field "seq") from here
    for (int i = first; i < first + std::stoi(opt["count"]); ++i) events.push_back(make_event(i));

    if (opt.contains("spool")) {
      // Never blocks: each send() only copies into a bounded queue (or counts a drop).
      kp::SpoolClient spool({.endpoint = opt["spool-endpoint"]});
      for (const kp::Map& event : events) spool.send(stream.logical_name, stream.partition_key, event);
      spool.close();  // waits (up to its linger, 3 s) for the queue to reach the daemon
      std::fprintf(stderr, "spool: %llu sent, %llu dropped\n",
                   static_cast<unsigned long long>(spool.sent()), static_cast<unsigned long long>(spool.dropped()));
      return spool.dropped() == 0 ? 0 : 1;
    }

    kp::ProducerOptions options;
    options.client.endpoint = opt["endpoint"];  // empty: the AWS endpoint of the stream's region
    kp::Producer producer(stream, options);
    const kp::PutManyResult result = producer.put_many(events);  // retries, then reports failures
    std::map<std::string, std::pair<int, std::string>> per_shard;  // shard -> (count, last seq)
    for (const auto& r : result.results)
      if (!r.shard_id.empty()) per_shard[r.shard_id] = {per_shard[r.shard_id].first + 1, r.sequence_number};
    for (const auto& [shard, s] : per_shard)
      std::fprintf(stderr, "put: %s: %d records, last sequence number %s\n", shard.c_str(), s.first, s.second.c_str());
    for (const auto& f : result.failed)
      std::fprintf(stderr, "put: record %zu failed: %s %s\n", f.index, f.error_code.c_str(), f.error_message.c_str());
    return result.ok() ? 0 : 1;
  } catch (const std::exception& e) {  // kclpp::Error: config, credentials, Kinesis after retries
    std::fprintf(stderr, "kclpp_triton_producer: %s\n", e.what());
    return 1;
  }
}
