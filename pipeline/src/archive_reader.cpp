// ArchiveReader: a streaming reader of the snappy framing format (docs/triton.md §3.2)
// holding back-to-back msgpack values. Two buffers: `in` holds framed bytes read from the
// source (at least one whole chunk), `data` the decompressed stream not yet handed out
// (the tail of a record that straddles chunks, then the next chunk's bytes). Records that
// lie inside `data` are returned as views, without a copy; a record larger than a chunk
// grows `data`. A memory_source() is read in place (no input buffer, no copy). Every failure names the archive and the byte offset of the chunk in the
// archive (or of the record in the decompressed stream).
#include <snappy.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "archive_io.hpp"
#include "crc32c.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

constexpr std::size_t max_chunk_data = 65536;  // framing_format.txt §4.2 / §4.3
constexpr std::size_t chunk_header = 4;
constexpr unsigned char chunk_compressed = 0x00;
constexpr unsigned char chunk_uncompressed = 0x01;
constexpr unsigned char chunk_stream_identifier = 0xff;
constexpr char identifier_body[] = {'s', 'N', 'a', 'P', 'p', 'Y'};
constexpr std::size_t read_size = 256 * 1024;  // per call to the source

std::uint32_t le32(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<std::uint32_t>(u[0]) | static_cast<std::uint32_t>(u[1]) << 8 |
         static_cast<std::uint32_t>(u[2]) << 16 | static_cast<std::uint32_t>(u[3]) << 24;
}

// Framed bytes in, one decompressed and checked chunk out at a time. Used by the caller's
// thread, or by the read-ahead thread alone.
struct Framer {
  Framer(ByteSource s, const std::string& n) : source(std::move(s)), name(n) {
    // The largest chunk that must be held whole: a compressed chunk of a 64 KiB block.
    max_data_chunk = 4 + snappy::MaxCompressedLength(max_chunk_data);
    if (const auto* memory = source.target<detail::MemorySource>()) {
      const std::string_view rest = memory->bytes.substr(std::min(memory->offset, memory->bytes.size()));
      in_data = rest.data();
      in_end = rest.size();
      source_done = true;
    } else {
      in_capacity = max_data_chunk + chunk_header + read_size;
      in = std::make_unique_for_overwrite<char[]>(in_capacity);
      in_data = in.get();
    }
  }

  ByteSource source;
  const std::string& name;
  std::size_t max_data_chunk = 0;

  std::unique_ptr<char[]> in;  // empty when reading a memory_source in place
  const char* in_data = nullptr;  // in.get() or the memory_source's bytes
  std::size_t in_capacity = 0;
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  std::uint64_t in_offset = 0;  // archive offset of in_data[in_begin]
  bool source_done = false;
  bool seen_identifier = false;
  // Set by the read-ahead thread: next_chunk() leaves the CRC check of each data chunk to
  // the caller's thread (check_crc), which has less to do; the last chunk's CRC and offset.
  bool defer_crc = false;
  std::uint32_t deferred_crc = 0;
  std::uint64_t deferred_offset = 0;

  void check_crc(const char* bytes, std::size_t size, std::uint32_t expected, std::uint64_t chunk_offset) const {
    if (detail::mask_crc32c(detail::crc32c(0, bytes, size)) != expected) {
      fail(chunk_offset, "CRC-32C mismatch in chunk");
    }
  }

  [[noreturn]] void fail(std::uint64_t offset, const std::string& what) const {
    throw ProtocolError(name + ": " + what + " at byte " + std::to_string(offset));
  }

  std::size_t available() const noexcept { return in_end - in_begin; }

  // Makes at least `need` bytes available (need <= in_capacity); false at the end of the
  // source with fewer.
  bool fill(std::size_t need) {
    if (available() >= need || source_done) return available() >= need;
    if (in_capacity - in_begin < need) {
      std::memmove(in.get(), in.get() + in_begin, available());
      in_end -= in_begin;
      in_begin = 0;
    }
    while (available() < need && !source_done) {
      const std::size_t room = in_capacity - in_end;
      const std::size_t n = source(in.get() + in_end, std::min(room, read_size));
      if (n == 0) {
        source_done = true;
      } else {
        in_end += n;
      }
    }
    return available() >= need;
  }

  void consume(std::size_t n) noexcept {
    in_begin += n;
    in_offset += n;
  }

  // Skips `length` bytes of a skippable chunk body, without holding them.
  void skip(std::uint64_t chunk_offset, std::size_t length) {
    while (length > 0) {
      if (available() == 0 && !fill(1)) fail(chunk_offset, "truncated skippable chunk");
      const std::size_t n = std::min(length, available());
      consume(n);
      length -= n;
    }
  }

  static constexpr std::size_t end_of_stream = static_cast<std::size_t>(-1);

  // Reads chunks until a data chunk, whose checked bytes it writes at `target` (room for
  // 65,536). Their count, or end_of_stream at a clean end of the source (at a chunk boundary).
  std::size_t next_chunk(char* target) {
    for (;;) {
      if (!fill(chunk_header)) {
        if (available() == 0) return end_of_stream;
        fail(in_offset, "truncated chunk header");
      }
      const char* h = in_data + in_begin;
      const auto type = static_cast<unsigned char>(h[0]);
      const std::size_t length = static_cast<std::size_t>(le32(h) >> 8);
      const std::uint64_t chunk_offset = in_offset;

      if (type == chunk_stream_identifier) {
        // Allowed again later: Go's store starts every flushed segment with one (§3.2).
        if (length != sizeof identifier_body) fail(chunk_offset, "bad stream identifier length");
        if (!fill(chunk_header + length)) fail(chunk_offset, "truncated stream identifier");
        if (std::memcmp(in_data + in_begin + chunk_header, identifier_body, sizeof identifier_body) != 0) {
          fail(chunk_offset, "bad stream identifier");
        }
        consume(chunk_header + length);
        seen_identifier = true;
        continue;
      }
      // Go's snappy.Reader requires the identifier before any other chunk, skippable ones too.
      if (!seen_identifier) fail(chunk_offset, "not a snappy framed stream (no stream identifier)");

      if (type == chunk_compressed || type == chunk_uncompressed) {
        if (length < 4) fail(chunk_offset, "data chunk shorter than its checksum");
        const std::size_t body_length = length - 4;
        if ((type == chunk_uncompressed && body_length > max_chunk_data) || length > max_data_chunk) {
          fail(chunk_offset, "chunk over 65536 uncompressed bytes");
        }
        if (!fill(chunk_header + length)) fail(chunk_offset, "truncated chunk");
        const char* c = in_data + in_begin + chunk_header;
        const std::uint32_t expected = le32(c);
        const char* body = c + 4;
        std::size_t size = body_length;
        if (type == chunk_compressed) {
          if (!snappy::GetUncompressedLength(body, body_length, &size)) fail(chunk_offset, "corrupt snappy block");
          if (size > max_chunk_data) fail(chunk_offset, "chunk over 65536 uncompressed bytes");
          if (!snappy::RawUncompress(body, body_length, target)) fail(chunk_offset, "corrupt snappy block");
        } else {
          std::memcpy(target, body, size);
        }
        if (defer_crc) {
          deferred_crc = expected;
          deferred_offset = chunk_offset;
        } else {
          check_crc(target, size, expected, chunk_offset);
        }
        consume(chunk_header + length);
        return size;
      }
      if (type < 0x80) fail(chunk_offset, "reserved unskippable chunk type " + std::to_string(type));
      // 0x80-0xfd reserved skippable, 0xfe padding: skipped unread.
      consume(chunk_header);
      skip(chunk_offset, length);
    }
  }
};

// The read-ahead thread: runs a Framer into a bounded queue of chunk buffers. The caller
// takes chunks in order; a failure travels as the last item, after every chunk before it,
// so that both modes hand out the same records before the same error.
class ReadAhead {
 public:
  ReadAhead(std::unique_ptr<Framer> framer, std::size_t depth) : framer_(std::move(framer)), depth_(depth) {
    framer_->defer_crc = true;
    thread_ = std::thread([this] { run(); });
  }
  ~ReadAhead() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();  // waits for a source() call in progress
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Copies the next chunk to `target` and checks its CRC there (the helper thread, which
  // decompresses, is the slower of the two); its size, or Framer::end_of_stream. Rethrows
  // the framer's failure. A chunk's CRC error comes before any later failure the helper
  // queued, as without read-ahead.
  std::size_t take(char* target) {
    if (crc_error_) std::rethrow_exception(crc_error_);
    std::unique_lock lock(mutex_);
    if (ready_.empty() && !finished_) {
      caller_waiting_ = true;
      changed_.wait(lock, [&] { return !ready_.empty() || finished_; });
      caller_waiting_ = false;
    }
    if (ready_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return Framer::end_of_stream;
    }
    Chunk c = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    std::memcpy(target, c.bytes.get(), c.size);
    const std::size_t size = c.size;
    try {
      framer_->check_crc(target, size, c.crc, c.offset);  // reads the name only: safe beside the helper
    } catch (...) {
      crc_error_ = std::current_exception();  // sticky, as the helper's failures are
      throw;
    }
    lock.lock();
    free_.push_back(std::move(c.bytes));
    // A wake-up (a futex call) only when the helper sleeps: one per chunk otherwise.
    const bool wake = helper_waiting_;
    lock.unlock();
    if (wake) changed_.notify_all();
    return size;
  }

 private:
  struct Chunk {
    std::unique_ptr<char[]> bytes;
    std::size_t size = 0;
    std::uint32_t crc = 0;     // masked CRC-32C from the chunk, not yet checked
    std::uint64_t offset = 0;  // of the chunk in the archive
  };

  void run() noexcept {
    try {
      for (;;) {
        std::unique_ptr<char[]> buffer;
        {
          std::unique_lock lock(mutex_);
          if (!stop_ && ready_.size() >= depth_) {
            helper_waiting_ = true;
            changed_.wait(lock, [&] { return stop_ || ready_.size() < depth_; });
            helper_waiting_ = false;
          }
          if (stop_) return;
          if (!free_.empty()) {
            buffer = std::move(free_.back());
            free_.pop_back();
          }
        }
        if (!buffer) buffer = std::make_unique_for_overwrite<char[]>(max_chunk_data);
        const std::size_t n = framer_->next_chunk(buffer.get());
        bool wake = false;
        {
          const std::lock_guard lock(mutex_);
          if (n == Framer::end_of_stream) {
            finished_ = true;
          } else {
            ready_.push_back(Chunk{std::move(buffer), n, framer_->deferred_crc, framer_->deferred_offset});
          }
          wake = caller_waiting_ || finished_;
        }
        if (wake) changed_.notify_all();
        if (n == Framer::end_of_stream) return;
      }
    } catch (...) {
      {
        const std::lock_guard lock(mutex_);
        error_ = std::current_exception();
        finished_ = true;
      }
      changed_.notify_all();
    }
  }

  std::unique_ptr<Framer> framer_;
  std::size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Chunk> ready_;
  std::vector<std::unique_ptr<char[]>> free_;
  bool finished_ = false;
  bool stop_ = false;
  bool caller_waiting_ = false;  // in take(), for a chunk
  bool helper_waiting_ = false;  // in run(), for room in the queue
  std::exception_ptr error_;
  std::exception_ptr crc_error_;  // the caller's thread only
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace

struct ArchiveReader::Impl {
  Impl(ByteSource s, std::string n, const ArchiveReaderOptions& options) : name(std::move(n)) {
    auto f = std::make_unique<Framer>(std::move(s), name);
    if (options.read_ahead_chunks > 0) {
      ahead = std::make_unique<ReadAhead>(std::move(f), options.read_ahead_chunks);
    } else {
      framer = std::move(f);
    }
    data_capacity = 2 * max_chunk_data;
    data = std::make_unique_for_overwrite<char[]>(data_capacity);
  }

  std::string name;  // before the framer, which refers to it
  std::unique_ptr<Framer> framer;   // without read-ahead
  std::unique_ptr<ReadAhead> ahead;  // with read-ahead

  std::unique_ptr<char[]> data;
  std::size_t data_capacity = 0;
  std::size_t pos = 0;
  std::size_t end = 0;
  std::uint64_t data_offset = 0;  // decompressed-stream offset of data[pos]
  std::uint64_t records = 0;

  // Room for one more decompressed chunk after `end`, keeping data[pos, end).
  void make_room() {
    if (pos > 0) {
      std::memmove(data.get(), data.get() + pos, end - pos);
      end -= pos;
      pos = 0;
    }
    if (data_capacity - end < max_chunk_data) {
      const std::size_t capacity = std::max(2 * data_capacity, end + max_chunk_data);
      auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
      std::memcpy(bigger.get(), data.get(), end);
      data = std::move(bigger);
      data_capacity = capacity;
    }
  }

  // Appends the next data chunk to `data`; false at a clean end of the stream.
  bool next_chunk() {
    make_room();
    const std::size_t n = ahead ? ahead->take(data.get() + end) : framer->next_chunk(data.get() + end);
    if (n == Framer::end_of_stream) return false;
    end += n;
    return true;
  }

  [[noreturn]] void fail_not_msgpack(const std::string& error) const {
    throw ProtocolError(name + ": not msgpack at byte " + std::to_string(data_offset) +
                        " of the decompressed stream: " + error);
  }

  // Decompresses the next chunk behind what is left; false (or a throw for a cut record)
  // at the end of the stream.
  bool more() {
    if (next_chunk()) return true;
    if (pos < end) {
      throw ProtocolError(name + ": truncated record at byte " + std::to_string(data_offset) +
                          " of the decompressed stream (" + std::to_string(end - pos) + " bytes at the end)");
    }
    return false;
  }

  std::string_view take(std::size_t n) noexcept {
    const std::string_view r(data.get() + pos, n);
    pos += n;
    data_offset += n;
    ++records;
    return r;
  }

  std::optional<ArchiveRecord> next_raw() {
    for (;;) {
      if (pos < end) {
        std::string error;
        const std::size_t n = msgpack_value_size(std::string_view(data.get() + pos, end - pos), error);
        if (n > 0) {
          const std::uint64_t offset = data_offset;
          return ArchiveRecord{take(n), offset};
        }
        if (!error.empty()) fail_not_msgpack(error);
      }
      if (!more()) return std::nullopt;
    }
  }

  // One pass over each record's bytes: decode_value finds its end while it builds the
  // tree (a separate msgpack_value_size scan would read every byte twice). Anything it
  // refuses goes through the exact path of next_raw() + decode_record, for the same
  // outcome: a record error for valid msgpack that is not a Triton map, a ProtocolError for
  // bytes that are not msgpack.
  std::optional<DecodedRecord> next() {
    for (;;) {
      if (pos < end) {
        const std::string_view view(data.get() + pos, end - pos);
        std::string_view rest = view;
        std::string error;
        std::optional<Value> value = decode_value(rest, error);
        if (value) {
          if (Map* map = std::get_if<Map>(&value->storage())) {
            DecodedRecord d;
            d.map = std::move(*map);
            (void)take(view.size() - rest.size());
            return d;
          }
        }
        const std::size_t n = msgpack_value_size(view, error);
        if (n > 0) {
          const std::uint64_t offset = data_offset;
          DecodedRecord d = decode_record(take(n));
          if (!d.ok()) d.error = "record at byte " + std::to_string(offset) + " of " + name + ": " + d.error;
          return d;
        }
        if (!error.empty()) fail_not_msgpack(error);
      }
      if (!more()) return std::nullopt;
    }
  }

  // next() into the caller's record, reusing its storage (decode_map_prefix): the same
  // records, errors and throws as next(), without allocating per record in steady state.
  bool next_into(DecodedRecord& out) {
    for (;;) {
      if (pos < end) {
        const std::string_view view(data.get() + pos, end - pos);
        std::string_view rest = view;
        std::string error;
        if (decode_map_prefix(rest, out.map, error)) {
          out.error.clear();
          (void)take(view.size() - rest.size());
          return true;
        }
        const std::size_t n = msgpack_value_size(view, error);
        if (n > 0) {
          const std::uint64_t offset = data_offset;
          decode_record_into(take(n), out);
          if (!out.ok()) out.error = "record at byte " + std::to_string(offset) + " of " + name + ": " + out.error;
          return true;
        }
        if (!error.empty()) fail_not_msgpack(error);
      }
      if (!more()) return false;
    }
  }
};

ArchiveReader::ArchiveReader(ByteSource source, std::string name)
    : ArchiveReader(std::move(source), std::move(name), ArchiveReaderOptions{}) {}
ArchiveReader::ArchiveReader(ByteSource source, std::string name, ArchiveReaderOptions options)
    : impl_(std::make_unique<Impl>(std::move(source), std::move(name), options)) {}
ArchiveReader::~ArchiveReader() = default;
ArchiveReader::ArchiveReader(ArchiveReader&&) noexcept = default;
ArchiveReader& ArchiveReader::operator=(ArchiveReader&&) noexcept = default;

std::optional<ArchiveRecord> ArchiveReader::next_raw() { return impl_->next_raw(); }

std::optional<DecodedRecord> ArchiveReader::next() { return impl_->next(); }

bool ArchiveReader::next(DecodedRecord& out) { return impl_->next_into(out); }

std::uint64_t ArchiveReader::records() const noexcept { return impl_->records; }

}  // namespace kclpp::pipeline
