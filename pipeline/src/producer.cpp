#include "kclpp/pipeline/producer.hpp"

#include <algorithm>
#include <utility>

#include "kclpp/processor/error.hpp"
#include "spool_wire.hpp"

namespace kclpp::pipeline {
namespace {

aws::KinesisOptions with_region(aws::KinesisOptions client, const StreamConfig& stream) {
  if (client.region.empty()) client.region = stream.region;
  return client;
}

}  // namespace

struct Producer::Impl {
  StreamConfig stream;
  ProducerOptions options;
  aws::KinesisClient client;

  Impl(StreamConfig s, ProducerOptions o)
      : stream(std::move(s)), options(std::move(o)), client(with_region(options.client, stream)) {}

  PutManyResult put_entries(std::vector<aws::PutRecordsEntry> entries) {
    PutManyResult result;
    result.results.resize(entries.size());
    // Records Kinesis would refuse are reported without being sent: one oversized record in
    // a request makes Kinesis reject the whole request (a 400 for all 500 entries).
    std::vector<aws::PutRecordsEntry> sendable;
    std::vector<std::size_t> index;  // sendable[k] is entries[index[k]]
    sendable.reserve(entries.size());
    index.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const std::size_t size = entries[i].data.size() + entries[i].partition_key.size();
      if (size > detail::max_record_bytes) {
        result.failed.push_back({i, "RecordTooLarge",
                                 "record of " + std::to_string(size) +
                                     " bytes (data + partition key) is over the 1 MiB Kinesis limit"});
        continue;
      }
      if (auto problem = detail::partition_key_problem(entries[i].partition_key); !problem.empty()) {
        result.failed.push_back({i, "InvalidPartitionKey", std::move(problem)});
        continue;
      }
      sendable.push_back(std::move(entries[i]));
      index.push_back(i);
    }
    const std::span<const aws::PutRecordsEntry> all = sendable;
    for (const auto& [begin, end] : detail::split_requests(all)) {
      detail::PutOutcome outcome =
          detail::put_with_retry(client, stream.name, all.subspan(begin, end - begin), options.retry);
      for (std::size_t k = 0; k < outcome.results.size(); ++k) {
        aws::PutRecordsResultEntry& r = outcome.results[k];
        const std::size_t i = index[begin + k];
        if (r.ok()) {
          result.results[i] = {std::move(r.shard_id), std::move(r.sequence_number)};
        } else {
          result.failed.push_back({i, std::move(r.error_code), std::move(r.error_message)});
        }
      }
    }
    std::sort(result.failed.begin(), result.failed.end(),
              [](const FailedRecord& a, const FailedRecord& b) { return a.index < b.index; });
    return result;
  }
};

Producer::Producer(StreamConfig stream, ProducerOptions options)
    : impl_(std::make_unique<Impl>(std::move(stream), std::move(options))) {}
Producer::~Producer() = default;
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&&) noexcept = default;

const StreamConfig& Producer::stream() const noexcept { return impl_->stream; }

aws::PutRecordResult Producer::put(const Map& record) {
  const std::string key = partition_key_of(record, impl_->stream.partition_key);
  const std::string data = encode_record(record);
  return put_packed(data, key);
}

aws::PutRecordResult Producer::put_packed(std::string_view data, const std::string& partition_key) {
  if (auto problem = detail::partition_key_problem(partition_key); !problem.empty())
    throw ConfigError("stream " + impl_->stream.logical_name + ": " + problem);
  // PutRecord is not idempotent: InDoubtError (a lost reply, a 5xx) is not retried here
  // (kclpp::retry never retries it); throttling and unsent requests are.
  return retry(impl_->options.retry,
               [&] { return impl_->client.put_record(impl_->stream.name, data, partition_key); });
}

PutManyResult Producer::put_many(std::span<const Map> records) {
  std::vector<aws::PutRecordsEntry> entries;
  entries.reserve(records.size());
  // Every key first: a missing field throws before anything is sent.
  for (const Map& record : records) {
    entries.push_back({{}, partition_key_of(record, impl_->stream.partition_key), {}});
  }
  for (std::size_t i = 0; i < records.size(); ++i) encode_record(records[i], entries[i].data);
  return impl_->put_entries(std::move(entries));
}

PutManyResult Producer::put_many_packed(std::span<const PackedRecord> records) {
  std::vector<aws::PutRecordsEntry> entries;
  entries.reserve(records.size());
  for (const PackedRecord& r : records) entries.push_back({r.data, r.partition_key, {}});
  return impl_->put_entries(std::move(entries));
}

}  // namespace kclpp::pipeline
