#pragma once
// Fault injection and call inspection for LocalStream, for kclpp's own tests of the worker
// (expired iterators, throttling, the per-shard GetRecords budget). Not a public API: a
// processor's author never needs it, because these faults are the worker's business.
#include <chrono>
#include <string>
#include <vector>

#include "kclpp/native/local_stream.hpp"

namespace kclpp::native::detail {

enum class LocalFault { Throttled, Transport, ExpiredIterator };

struct LocalStreamTesting {
  // Every shard iterator handed out so far becomes expired: the next get_records() with
  // it throws aws::AwsError "ExpiredIteratorException" (as after 5 idle minutes on Kinesis).
  static void expire_iterators(LocalStream& stream);
  // The next `count` get_records() calls (any shard) throw `fault` before doing anything.
  static void fail_next_get_records(LocalStream& stream, int count, LocalFault fault);
  // When each get_records() call on `shard_id` started, oldest first.
  [[nodiscard]] static std::vector<std::chrono::steady_clock::time_point> get_records_calls(
      LocalStream& stream, const std::string& shard_id);
  // How many get_shard_iterator() calls were made (all shards).
  [[nodiscard]] static int get_shard_iterator_calls(LocalStream& stream);
};

}  // namespace kclpp::native::detail
