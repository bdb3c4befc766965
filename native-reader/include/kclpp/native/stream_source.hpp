#pragma once
// What the worker reads shards from: a Kinesis stream (KinesisStream) or an in-memory
// LocalStream. The worker opens one connection per shard thread.
#include <memory>
#include <string>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"

namespace kclpp::native {

// One reader's view of a stream. Not thread-safe: one per thread. Throws what
// aws::KinesisClient throws (ThrottledError, TransportError, aws::AwsError "ExpiredIteratorException", ...).
class StreamConnection {
 public:
  virtual ~StreamConnection() = default;
  [[nodiscard]] virtual std::vector<aws::Shard> list_shards() = 0;
  [[nodiscard]] virtual std::string get_shard_iterator(const std::string& shard_id,
                                                       const aws::StartPosition& position) = 0;
  [[nodiscard]] virtual aws::GetRecordsResult get_records(const std::string& shard_iterator, int limit) = 0;
  // The same into `out`, reusing the storage of the records it holds where the connection
  // can (KinesisStream's do; see aws::KinesisClient::get_records). The worker calls this one.
  virtual void get_records_into(const std::string& shard_iterator, int limit, aws::GetRecordsResult& out) {
    out = get_records(shard_iterator, limit);
  }
};

// Thread-safe factory of connections to one stream.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  [[nodiscard]] virtual const std::string& stream_name() const noexcept = 0;
  [[nodiscard]] virtual std::unique_ptr<StreamConnection> connect() = 0;
};

// A Kinesis stream reached through aws::KinesisClient (each connection has its own client).
class KinesisStream final : public StreamSource {
 public:
  KinesisStream(std::string stream_name, aws::KinesisOptions options);
  [[nodiscard]] const std::string& stream_name() const noexcept override { return stream_name_; }
  [[nodiscard]] std::unique_ptr<StreamConnection> connect() override;

 private:
  std::string stream_name_;
  aws::KinesisOptions options_;  // credentials resolved once, in the constructor
};

}  // namespace kclpp::native
