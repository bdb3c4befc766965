#pragma once
// The retrieval half of a shard consumer: RecordFetcher, with two kinds. PollingFetcher (as
// the Java KCL's KinesisDataFetcher): the shard iterator, GetRecords within the per-shard
// budget, retries that keep the position, and expired iterators re-created right after
// what was handed on. FanOutFetcher (fan_out_fetcher.hpp, as the KCL's
// FanOutRecordsPublisher): SubscribeToShard streams.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "kclpp/native/stream_source.hpp"
#include "kclpp/native/worker.hpp"

namespace kclpp::native::detail {

class StopSignal;
struct ShardMetrics;

// Kinesis allows 5 GetRecords calls per second per shard.
inline constexpr std::chrono::milliseconds min_get_records_interval{200};

// What a read call came back with. A stop is a value: nothing was read, and the caller
// winds its processor down.
enum class ReadStatus {
  Ok,        // the iterator is open, or records were fetched and the shard goes on
  ShardEnd,  // the records fetched are the shard's last (no next iterator)
  Stopped,   // a stop was requested before or while reading
};

// A shard's reader for one round after another. Retryable failures (throttling, an
// unreachable service, an expired iterator, a dropped subscription) are retried inside
// for as long as it takes, keeping the position: a round resumes right after the last
// record it handed on. What retrying cannot fix is thrown (kclpp::Error with Retry::No).
// Not thread-safe: used on its shard's thread only.
class RecordFetcher {
 public:
  virtual ~RecordFetcher() = default;
  // Starts a new round at `start` and forgets the last round's position. Ok or Stopped.
  [[nodiscard]] virtual ReadStatus start(const aws::StartPosition& start) = 0;
  // Fills `out` (reusing the storage of the records in it) with the next records: a
  // GetRecords reply, or an event of a subscription (out.next_shard_iterator is then only
  // absent or not, for ShardEnd). Ok, ShardEnd or Stopped.
  [[nodiscard]] virtual ReadStatus fetch(aws::GetRecordsResult& out) = 0;
  // True when records are pushed (fan-out): the consumer does not wait between reads.
  [[nodiscard]] virtual bool pushed() const noexcept = 0;
  // The sequence number of the last record fetched this round, if any.
  [[nodiscard]] const std::optional<std::string>& last_fetched() const noexcept { return last_fetched_; }

 protected:
  std::optional<std::string> last_fetched_;
};

// "LATEST", "AFTER_SEQUENCE_NUMBER 4958…", for logs.
[[nodiscard]] std::string describe_position(const aws::StartPosition& position);

// The fetcher the source calls for: FanOutFetcher when source.fan_out(), else PollingFetcher.
// `metrics` (read calls, retries, throttles, iterator renewals) outlives the fetcher.
[[nodiscard]] std::unique_ptr<RecordFetcher> make_fetcher(StreamSource& source, std::string shard_id,
                                                          const WorkerOptions& options, StopSignal& stop,
                                                          const ShardMetrics& metrics);

// Owns the shard's connection.
class PollingFetcher final : public RecordFetcher {
 public:
  PollingFetcher(std::unique_ptr<StreamConnection> connection, std::string shard_id,
                 const WorkerOptions& options, StopSignal& stop, const ShardMetrics& metrics);
  ~PollingFetcher() override;
  PollingFetcher(const PollingFetcher&) = delete;
  PollingFetcher& operator=(const PollingFetcher&) = delete;

  // Opens an iterator at `start`.
  [[nodiscard]] ReadStatus start(const aws::StartPosition& start) override;
  // One GetRecords call within the budget; moves to the next iterator.
  [[nodiscard]] ReadStatus fetch(aws::GetRecordsResult& out) override;
  [[nodiscard]] bool pushed() const noexcept override { return false; }

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
  const ShardMetrics& metrics_;
  // Across rounds: the GetRecords budget is the shard's, not the processor's.
  std::optional<std::chrono::steady_clock::time_point> last_get_records_;
  // This round's.
  aws::StartPosition round_start_;
  std::string iterator_;
  std::optional<std::chrono::system_clock::time_point> latest_opened_at_;
};

}  // namespace kclpp::native::detail
