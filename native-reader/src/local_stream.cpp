#include "kclpp/native/local_stream.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/internal/hex.hpp"
#include "kclpp/internal/openssl_error.hpp"
#include "kclpp/processor/error.hpp"
#include "local_stream_testing.hpp"
#include "md5.hpp"

namespace kclpp::native {
namespace {

using Clock = std::chrono::system_clock;
// Hash keys are 128-bit unsigned integers (MD5 of the partition key). __extension__ keeps
// -Wpedantic quiet about the GCC/Clang builtin type.
__extension__ using HashKey = unsigned __int128;
constexpr HashKey max_hash_key = ~HashKey{0};

// Kinesis iterators are valid for five minutes after they are handed out.
constexpr std::chrono::minutes iterator_lifetime{5};
constexpr int max_get_records_limit = 10'000;

[[noreturn]] void throw_aws(const std::string& type, const std::string& message) {
  throw aws::AwsError(type + ": " + message, type, 400, Retry::No);
}

std::string to_decimal(HashKey value) {
  if (value == 0) return "0";
  std::string digits;
  while (value != 0) {
    digits.push_back(static_cast<char>('0' + static_cast<int>(value % 10)));
    value /= 10;
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::optional<HashKey> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 39) return std::nullopt;
  HashKey value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<HashKey>(c - '0');
    if (value > (max_hash_key - digit) / 10) return std::nullopt;  // beyond 2^128 - 1
    value = value * 10 + digit;
  }
  return value;
}

// MD5 of the partition key read as a big-endian 128-bit number, as Kinesis maps keys.
HashKey hash_of(std::string_view partition_key) {
  detail::Md5Digest digest{};
  if (!detail::md5(partition_key, digest)) {
    kclpp::detail::throw_openssl_error("LocalStream: MD5 of the partition key");
  }
  HashKey value = 0;
  for (const unsigned char byte : digest) value = (value << 8) | byte;
  return value;
}

// 56 digits like real sequence numbers; the counter makes them increase across the stream.
std::string make_sequence_number(std::uint64_t counter) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "4959%052llu", static_cast<unsigned long long>(counter));
  return buffer;
}

std::string hex_encode(std::string_view bytes) { return kclpp::detail::to_hex(bytes); }

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = kclpp::detail::hex_value(hex[i]);
    const int lo = kclpp::detail::hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

std::int64_t epoch_millis(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::uint64_t next_stream_uid() {
  static std::atomic<std::uint64_t> counter{1};
  return counter.fetch_add(1);
}

struct StoredRecord {
  SequenceNumber sequence_number;
  std::string data;
  std::string partition_key;
  Clock::time_point arrival;
};

struct LocalShard {
  aws::Shard info;
  HashKey start = 0;
  HashKey end = 0;
  std::deque<StoredRecord> records;
  std::size_t trimmed = 0;  // absolute position of records.front()
  std::optional<Clock::time_point> closed_at;
  bool expired = false;  // closed and older than the retention: gone from ListShards

  [[nodiscard]] bool open() const { return !info.closed(); }
  [[nodiscard]] std::size_t end_position() const { return trimmed + records.size(); }
};

// What an iterator string encodes.
struct IteratorState {
  std::uint64_t stream_uid = 0;
  std::size_t shard_index = 0;
  std::size_t position = 0;  // absolute record position
  std::uint64_t epoch = 0;
  std::int64_t issued_ms = 0;
};

}  // namespace

struct LocalStream::State {
  std::mutex mutex;
  std::string name;
  std::uint64_t uid = next_stream_uid();
  std::vector<LocalShard> shards;  // index == number in the shard id
  std::uint64_t next_sequence = 1;
  std::optional<std::chrono::milliseconds> retention;

  // Test hooks (detail::LocalStreamTesting).
  std::uint64_t iterator_epoch = 0;
  int pending_faults = 0;
  detail::LocalFault fault_kind = detail::LocalFault::Throttled;
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> get_records_calls;
  int get_shard_iterator_calls = 0;

  std::string allocate_sequence_number() { return make_sequence_number(next_sequence++); }

  LocalShard& add_shard(HashKey start, HashKey end, std::optional<std::string> parent,
                        std::optional<std::string> adjacent_parent) {
    char id[32];
    std::snprintf(id, sizeof id, "shardId-%012zu", shards.size());
    LocalShard shard;
    shard.info.shard_id = id;
    shard.info.parent_shard_id = std::move(parent);
    shard.info.adjacent_parent_shard_id = std::move(adjacent_parent);
    shard.info.starting_hash_key = to_decimal(start);
    shard.info.ending_hash_key = to_decimal(end);
    shard.info.starting_sequence_number = allocate_sequence_number();
    shard.start = start;
    shard.end = end;
    shards.push_back(std::move(shard));
    return shards.back();
  }

  void close(LocalShard& shard, Clock::time_point now) {
    shard.info.ending_sequence_number = allocate_sequence_number();
    shard.closed_at = now;
  }

  // Applies the retention: drops old records and forgets closed shards past it.
  void trim(Clock::time_point now) {
    if (!retention) return;
    const auto horizon = now - *retention;
    for (auto& shard : shards) {
      while (!shard.records.empty() && shard.records.front().arrival < horizon) {
        shard.records.pop_front();
        ++shard.trimmed;
      }
      if (shard.closed_at && *shard.closed_at < horizon) shard.expired = true;
    }
  }

  LocalShard* find(const std::string& shard_id) {
    for (auto& shard : shards) {
      if (shard.info.shard_id == shard_id && !shard.expired) return &shard;
    }
    return nullptr;
  }

  LocalShard& find_or_throw(const std::string& shard_id) {
    LocalShard* shard = find(shard_id);
    if (shard == nullptr) {
      throw_aws("ResourceNotFoundException",
                "Shard " + shard_id + " in stream " + name + " does not exist");
    }
    return *shard;
  }

  std::string encode(const IteratorState& it) const {
    const std::string plain = std::to_string(it.stream_uid) + "/" + std::to_string(it.shard_index) +
                              "/" + std::to_string(it.position) + "/" + std::to_string(it.epoch) +
                              "/" + std::to_string(it.issued_ms);
    return hex_encode(plain);
  }

  IteratorState decode(const std::string& iterator) const {
    const auto plain = hex_decode(iterator);
    IteratorState it;
    unsigned long long fields[5] = {};
    if (!plain || std::sscanf(plain->c_str(), "%llu/%llu/%llu/%llu/%llu", &fields[0], &fields[1],
                              &fields[2], &fields[3], &fields[4]) != 5) {
      throw_aws("InvalidArgumentException", "Invalid ShardIterator");
    }
    it.stream_uid = fields[0];
    it.shard_index = static_cast<std::size_t>(fields[1]);
    it.position = static_cast<std::size_t>(fields[2]);
    it.epoch = fields[3];
    it.issued_ms = static_cast<std::int64_t>(fields[4]);
    if (it.stream_uid != uid || it.shard_index >= shards.size()) {
      throw_aws("InvalidArgumentException", "ShardIterator does not belong to stream " + name);
    }
    return it;
  }

  IteratorState iterator_at(std::size_t shard_index, std::size_t position, Clock::time_point now) const {
    return {uid, shard_index, position, iterator_epoch, epoch_millis(now)};
  }

  void inject_fault() {
    if (pending_faults <= 0) return;
    --pending_faults;
    switch (fault_kind) {
      case detail::LocalFault::Throttled:
        throw ThrottledError("ProvisionedThroughputExceededException: Rate exceeded for shard (injected)");
      case detail::LocalFault::Transport:
        throw TransportError("LocalStream: injected network failure");
      case detail::LocalFault::ExpiredIterator:
        throw_aws("ExpiredIteratorException", "Iterator expired (injected)");
    }
  }

  std::string shard_iterator(const std::string& shard_id, const aws::StartPosition& position) {
    const auto now = Clock::now();
    trim(now);
    ++get_shard_iterator_calls;
    LocalShard& shard = find_or_throw(shard_id);
    const auto shard_index = static_cast<std::size_t>(&shard - shards.data());
    const auto& records = shard.records;
    std::size_t offset = 0;  // into records
    switch (position.type) {
      case aws::IteratorType::TrimHorizon:
        offset = 0;
        break;
      case aws::IteratorType::Latest:
        offset = records.size();
        break;
      case aws::IteratorType::AtSequenceNumber:
      case aws::IteratorType::AfterSequenceNumber: {
        const auto wanted = SequenceNumber::try_parse(position.sequence_number);
        if (!wanted || *wanted < SequenceNumber(shard.info.starting_sequence_number) ||
            (shard.info.ending_sequence_number &&
             SequenceNumber(*shard.info.ending_sequence_number) < *wanted)) {
          throw_aws("InvalidArgumentException",
                    "StartingSequenceNumber " + position.sequence_number +
                        " used in GetShardIterator on shard " + shard_id +
                        " is not valid for this shard");
        }
        const auto by_sequence = [](const StoredRecord& r, const SequenceNumber& s) {
          return r.sequence_number < s;
        };
        auto it = std::lower_bound(records.begin(), records.end(), *wanted, by_sequence);
        if (position.type == aws::IteratorType::AfterSequenceNumber && it != records.end() &&
            it->sequence_number == *wanted) {
          ++it;
        }
        offset = static_cast<std::size_t>(it - records.begin());
        break;
      }
      case aws::IteratorType::AtTimestamp: {
        auto it = std::find_if(records.begin(), records.end(), [&](const StoredRecord& r) {
          return r.arrival >= position.timestamp;
        });
        offset = static_cast<std::size_t>(it - records.begin());
        break;
      }
    }
    return encode(iterator_at(shard_index, shard.trimmed + offset, now));
  }

  aws::GetRecordsResult get_records(const std::string& iterator, int limit) {
    const auto now = Clock::now();
    trim(now);
    const IteratorState it = decode(iterator);
    LocalShard& shard = shards[it.shard_index];
    get_records_calls[shard.info.shard_id].push_back(std::chrono::steady_clock::now());
    inject_fault();
    if (limit < 1 || limit > max_get_records_limit) {
      throw_aws("InvalidArgumentException", "Limit must be between 1 and 10000");
    }
    if (it.epoch != iterator_epoch ||
        epoch_millis(now) - it.issued_ms >
            std::chrono::duration_cast<std::chrono::milliseconds>(iterator_lifetime).count()) {
      throw_aws("ExpiredIteratorException", "Iterator expired");
    }
    if (shard.expired) {
      throw_aws("ResourceNotFoundException", "Shard " + shard.info.shard_id + " does not exist");
    }
    // A position before the trim horizon reads from the oldest record kept, like Kinesis.
    std::size_t position = std::max(it.position, shard.trimmed);
    aws::GetRecordsResult result;
    const std::size_t end = std::min(shard.end_position(), position + static_cast<std::size_t>(limit));
    result.records.reserve(end - position);
    for (; position < end; ++position) {
      const StoredRecord& stored = shard.records[position - shard.trimmed];
      Record record;
      record.data = stored.data;
      record.partition_key = stored.partition_key;
      record.sequence_number = stored.sequence_number;
      record.approximate_arrival_timestamp = stored.arrival;
      result.records.push_back(std::move(record));
    }
    if (position < shard.end_position()) {
      // Behind the tip: at least 1 so that "0 = caught up" never hides unread records.
      const auto behind = epoch_millis(now) - epoch_millis(shard.records[position - shard.trimmed].arrival);
      result.millis_behind_latest = std::max<std::int64_t>(1, behind);
    }
    if (shard.info.closed() && position == shard.end_position()) {
      // SHARD_END: no next iterator; the service names the children.
      for (const auto& other : shards) {
        if (other.info.parent_shard_id == shard.info.shard_id ||
            other.info.adjacent_parent_shard_id == shard.info.shard_id) {
          result.child_shards.push_back(other.info);
        }
      }
    } else {
      result.next_shard_iterator = encode(iterator_at(it.shard_index, position, now));
    }
    return result;
  }

  std::vector<aws::Shard> list_shards() {
    trim(Clock::now());
    std::vector<aws::Shard> out;
    for (const auto& shard : shards) {
      if (!shard.expired) out.push_back(shard.info);
    }
    return out;
  }

  // One reader's view; shares the state with the stream and its other connections.
  class Connection final : public StreamConnection {
   public:
    explicit Connection(std::shared_ptr<State> state) : state_(std::move(state)) {}

    std::vector<aws::Shard> list_shards() override {
      const std::lock_guard lock(state_->mutex);
      return state_->list_shards();
    }
    std::string get_shard_iterator(const std::string& shard_id, const aws::StartPosition& position) override {
      const std::lock_guard lock(state_->mutex);
      return state_->shard_iterator(shard_id, position);
    }
    aws::GetRecordsResult get_records(const std::string& shard_iterator, int limit) override {
      const std::lock_guard lock(state_->mutex);
      return state_->get_records(shard_iterator, limit);
    }

   private:
    std::shared_ptr<State> state_;
  };
};

LocalStream::LocalStream(std::string stream_name, int shard_count) : state_(std::make_shared<State>()) {
  if (stream_name.empty()) throw ConfigError("LocalStream: empty stream name");
  if (shard_count < 1) throw ConfigError("LocalStream: shard_count must be at least 1");
  state_->name = std::move(stream_name);
  // Split the 128-bit key space evenly, the last shard taking the remainder, as Kinesis's
  // CreateStream does: width = floor(2^128 / count), computed without 2^128 itself
  // (it wraps to 0 for one shard, which then simply spans [0, 2^128 - 1]).
  const auto count = static_cast<HashKey>(shard_count);
  const HashKey width = max_hash_key / count + (max_hash_key % count == count - 1 ? 1 : 0);
  for (HashKey i = 0; i < count; ++i) {
    const HashKey start = i * width;
    const HashKey end = (i + 1 == count) ? max_hash_key : start + width - 1;
    state_->add_shard(start, end, std::nullopt, std::nullopt);
  }
}

LocalStream::~LocalStream() = default;

const std::string& LocalStream::stream_name() const noexcept { return state_->name; }

std::unique_ptr<StreamConnection> LocalStream::connect() {
  return std::make_unique<State::Connection>(state_);
}

aws::PutRecordResult LocalStream::put(std::string_view data, std::string_view partition_key,
                                 std::string_view explicit_hash_key) {
  if (partition_key.empty() || partition_key.size() > 256) {
    throw_aws("InvalidArgumentException", "partition key must have 1 to 256 characters");
  }
  HashKey key = 0;
  if (!explicit_hash_key.empty()) {
    const auto parsed = parse_decimal(explicit_hash_key);
    if (!parsed) {
      throw_aws("InvalidArgumentException",
                "explicit hash key " + std::string(explicit_hash_key) + " is not a 128-bit decimal number");
    }
    key = *parsed;
  } else {
    key = hash_of(partition_key);
  }
  const auto now = Clock::now();
  const std::lock_guard lock(state_->mutex);
  state_->trim(now);
  for (auto& shard : state_->shards) {
    if (shard.open() && shard.start <= key && key <= shard.end) {
      StoredRecord record;
      record.sequence_number = SequenceNumber(state_->allocate_sequence_number());
      record.data.assign(data);
      record.partition_key.assign(partition_key);
      // Kinesis reports arrival times in milliseconds.
      record.arrival = Clock::time_point(std::chrono::milliseconds(epoch_millis(now)));
      aws::PutRecordResult result{shard.info.shard_id, record.sequence_number.str()};
      shard.records.push_back(std::move(record));
      return result;
    }
  }
  throw Error("LocalStream: no open shard holds hash key " + to_decimal(key));  // unreachable
}

void LocalStream::split_shard(const std::string& shard_id, const std::string& new_starting_hash_key) {
  const auto now = Clock::now();
  const std::lock_guard lock(state_->mutex);
  state_->trim(now);
  LocalShard& parent = state_->find_or_throw(shard_id);
  if (!parent.open()) {
    throw_aws("InvalidArgumentException", "Shard " + shard_id + " is closed and cannot be split");
  }
  const auto key = parse_decimal(new_starting_hash_key);
  if (!key || *key <= parent.start || *key > parent.end) {
    throw_aws("InvalidArgumentException", "NewStartingHashKey " + new_starting_hash_key +
                                              " is not inside the hash key range of " + shard_id);
  }
  const HashKey start = parent.start;
  const HashKey end = parent.end;
  state_->close(parent, now);  // `parent` is invalid after add_shard (vector growth)
  state_->add_shard(start, *key - 1, shard_id, std::nullopt);
  state_->add_shard(*key, end, shard_id, std::nullopt);
}

void LocalStream::merge_shards(const std::string& shard_id, const std::string& adjacent_shard_id) {
  const auto now = Clock::now();
  const std::lock_guard lock(state_->mutex);
  state_->trim(now);
  LocalShard& first = state_->find_or_throw(shard_id);
  LocalShard& second = state_->find_or_throw(adjacent_shard_id);
  if (&first == &second || !first.open() || !second.open()) {
    throw_aws("InvalidArgumentException",
              "Shards " + shard_id + " and " + adjacent_shard_id + " must be two different open shards");
  }
  const bool adjacent = (first.end != max_hash_key && first.end + 1 == second.start) ||
                        (second.end != max_hash_key && second.end + 1 == first.start);
  if (!adjacent) {
    throw_aws("InvalidArgumentException",
              "Shards " + shard_id + " and " + adjacent_shard_id + " are not adjacent");
  }
  const HashKey start = std::min(first.start, second.start);
  const HashKey end = std::max(first.end, second.end);
  state_->close(first, now);
  state_->close(second, now);
  state_->add_shard(start, end, shard_id, adjacent_shard_id);
}

void LocalStream::set_retention(std::chrono::milliseconds retention) {
  const std::lock_guard lock(state_->mutex);
  state_->retention = retention;
}

// --- test hooks ---------------------------------------------------------------------------

namespace detail {

void LocalStreamTesting::expire_iterators(LocalStream& stream) {
  const std::lock_guard lock(stream.state_->mutex);
  ++stream.state_->iterator_epoch;
}

void LocalStreamTesting::fail_next_get_records(LocalStream& stream, int count, LocalFault fault) {
  const std::lock_guard lock(stream.state_->mutex);
  stream.state_->pending_faults = count;
  stream.state_->fault_kind = fault;
}

std::vector<std::chrono::steady_clock::time_point> LocalStreamTesting::get_records_calls(
    LocalStream& stream, const std::string& shard_id) {
  const std::lock_guard lock(stream.state_->mutex);
  return stream.state_->get_records_calls[shard_id];
}

int LocalStreamTesting::get_shard_iterator_calls(LocalStream& stream) {
  const std::lock_guard lock(stream.state_->mutex);
  return stream.state_->get_shard_iterator_calls;
}

}  // namespace detail

}  // namespace kclpp::native
