#include "kclpp/native/stream_source.hpp"

#include <utility>

namespace kclpp::native {

namespace {

// One shard-reader thread's connection: its own client (and so its own HTTP connection).
class KinesisConnection final : public StreamConnection {
 public:
  KinesisConnection(const std::string& stream, const ClientOptions& options)
      : stream_(stream), client_(options) {}

  std::vector<Shard> list_shards() override { return client_.list_shards(stream_); }
  std::string get_shard_iterator(const std::string& shard_id, const StartPosition& position) override {
    return client_.get_shard_iterator(stream_, shard_id, position);
  }
  GetRecordsResult get_records(const std::string& shard_iterator, int limit) override {
    return client_.get_records(shard_iterator, limit);
  }
  void get_records_into(const std::string& shard_iterator, int limit, GetRecordsResult& out) override {
    client_.get_records(shard_iterator, limit, out);
  }

 private:
  std::string stream_;
  KinesisClient client_;
};

}  // namespace

KinesisStream::KinesisStream(std::string stream_name, ClientOptions options)
    : stream_name_(std::move(stream_name)), options_(std::move(options)) {
  // Resolve once, here, so that every connection agrees and a missing region or
  // credentials fails at start-up rather than in a shard thread.
  options_.region = resolve_region(options_.region, options_.credential_options);
  if (!options_.credentials) options_.credentials = resolve_credentials(options_.credential_options);
}

std::unique_ptr<StreamConnection> KinesisStream::connect() {
  return std::make_unique<KinesisConnection>(stream_name_, options_);
}

}  // namespace kclpp::native
