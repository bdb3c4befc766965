#pragma once
// The retrieval half of a shard consumer (as the Java KCL's KinesisDataFetcher): the shard
// iterator, GetRecords within the per-shard budget, retries that keep the position, and
// expired iterators re-created right after what was handed on.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"

namespace kclpp::native::detail {

class StopSignal;

// Kinesis allows 5 GetRecords calls per second per shard.
inline constexpr std::chrono::milliseconds min_get_records_interval{200};

// What a read call came back with. A stop is a value: nothing was read, and the caller
// winds its processor down.
enum class ReadStatus {
  Ok,        // the iterator is open, or records were fetched and the shard goes on
  ShardEnd,  // the records fetched are the shard's last (no next iterator)
  Stopped,   // a stop was requested before or while reading
};

// Owns the shard's connection. Retryable failures (throttling, an unreachable service, an
// expired iterator) are retried here for as long as it takes, keeping the position; what
// retrying cannot fix is thrown (kclpp::Error with Retry::No). Not thread-safe: used on
// its shard's thread only.
class ShardFetcher {
 public:
  ShardFetcher(std::unique_ptr<StreamConnection> connection, std::string shard_id,
               const WorkerOptions& options, StopSignal& stop);
  ~ShardFetcher();
  ShardFetcher(const ShardFetcher&) = delete;
  ShardFetcher& operator=(const ShardFetcher&) = delete;

  // Opens an iterator at `start` for a new round and forgets the last round's position.
  // Returns Ok or Stopped.
  [[nodiscard]] ReadStatus start(const aws::StartPosition& start);
  // Fills `out` (reusing the storage of the records in it) and moves to the next iterator.
  [[nodiscard]] ReadStatus fetch(aws::GetRecordsResult& out);
  // The sequence number of the last record fetched this round, if any.
  [[nodiscard]] const std::optional<std::string>& last_fetched() const noexcept { return last_fetched_; }

 private:
  [[nodiscard]] std::optional<std::string> open_iterator(const aws::StartPosition& position);
  [[nodiscard]] ReadStatus renew_iterator(int expirations);
  [[nodiscard]] aws::StartPosition restart_position() const;
  [[nodiscard]] ReadStatus pace();
  // Sleeps after a failure that every attempt of the retry policy hit; Stopped if a stop
  // came meanwhile.
  [[nodiscard]] ReadStatus wait_after_failures();

  std::unique_ptr<StreamConnection> connection_;
  std::string shard_id_;
  const WorkerOptions& options_;
  StopSignal& stop_;
  // Across rounds: the GetRecords budget is the shard's, not the processor's.
  std::optional<std::chrono::steady_clock::time_point> last_get_records_;
  // This round's.
  aws::StartPosition round_start_;
  std::string iterator_;
  std::optional<std::string> last_fetched_;
  std::optional<std::chrono::system_clock::time_point> latest_opened_at_;
};

}  // namespace kclpp::native::detail
