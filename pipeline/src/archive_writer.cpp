// ArchiveWriter: the snappy framing format (docs/triton.md §3.2) around back-to-back msgpack
// maps. Records are copied into one 64 KiB chunk buffer (they straddle chunk boundaries, as
// in both Triton writers); each full chunk is compressed into an output buffer that already
// holds room for its 8-byte header, so a chunk reaches the sink in one call and with no
// further copy. The chunk buffer has the same 8 bytes of headroom, so that a chunk stored
// uncompressed is also handed over in place.
#include <snappy.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "crc32c.hpp"
#include "kclpp/pipeline/archive.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

constexpr std::size_t max_chunk_data = 65536;  // framing_format.txt §4.2: at most 64 KiB uncompressed
constexpr std::size_t header_size = 8;          // type, 3-byte length, 4-byte masked CRC
constexpr char stream_identifier[] = {'\xff', '\x06', '\x00', '\x00', 's', 'N', 'a', 'P', 'p', 'Y'};
constexpr unsigned char chunk_compressed = 0x00;
constexpr unsigned char chunk_uncompressed = 0x01;

void put_header(char* out, unsigned char type, std::size_t payload, std::uint32_t masked_crc) {
  const std::size_t length = payload + 4;  // the CRC counts as chunk data
  out[0] = static_cast<char>(type);
  out[1] = static_cast<char>(length & 0xffU);
  out[2] = static_cast<char>((length >> 8) & 0xffU);
  out[3] = static_cast<char>((length >> 16) & 0xffU);
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<char>((masked_crc >> (8 * i)) & 0xffU);
}

std::size_t out_buffer_size() noexcept {
  return header_size + std::max(snappy::MaxCompressedLength(max_chunk_data), max_chunk_data);
}

// Packs `size` bytes at `data` into one chunk and returns it: in `out` (room for
// out_buffer_size()), or in place when stored uncompressed with `headroom` (== data -
// header_size, writable; nullptr when `data` is the caller's bytes).
std::string_view pack_chunk(const char* data, std::size_t size, char* headroom, char* out) {
  const std::uint32_t crc = detail::mask_crc32c(detail::crc32c(0, data, size));
  std::size_t packed = 0;
  snappy::RawCompress(data, size, out + header_size, &packed);
  // Go's snappy.Writer rule (py-triton's is the same up to rounding): keep the compressed
  // form only when it saves at least 1/8.
  if (packed < size - size / 8) {
    put_header(out, chunk_compressed, packed, crc);
    return {out, header_size + packed};
  }
  if (headroom != nullptr) {
    put_header(headroom, chunk_uncompressed, size, crc);
    return {headroom, header_size + size};
  }
  std::memcpy(out + header_size, data, size);
  put_header(out, chunk_uncompressed, size, crc);
  return {out, header_size + size};
}

// Compresses chunks and hands them to the sink. A chunk buffer has header_size bytes of
// headroom before its data, so that a chunk stored uncompressed is handed over in place.
struct Emitter {
  explicit Emitter(ByteSink s)
      : sink(std::move(s)),
        out(std::make_unique_for_overwrite<char[]>(out_buffer_size())) {}

  ByteSink sink;
  std::unique_ptr<char[]> out;  // header, then the compressed block
  bool started = false;
  std::atomic<std::uint64_t> compressed{0};

  void start() {
    if (started) return;
    sink(std::string_view(stream_identifier, sizeof stream_identifier));
    started = true;
    compressed += sizeof stream_identifier;
  }

  // Emits `size` bytes at `data` as one chunk. With `headroom` (== data - header_size,
  // writable) an uncompressed chunk goes out in place; without, `data` is the caller's bytes.
  void emit(const char* data, std::size_t size, char* headroom) {
    start();
    put(pack_chunk(data, size, headroom, out.get()));
  }

  // Hands a chunk packed elsewhere to the sink.
  void put(std::string_view piece) {
    start();
    sink(piece);
    compressed += piece.size();
  }
};

using ChunkBuffer = std::unique_ptr<char[]>;
ChunkBuffer new_chunk_buffer() { return std::make_unique_for_overwrite<char[]>(header_size + max_chunk_data); }

// The compress-behind thread: full chunk buffers queue up (at most `depth`), the thread
// compresses them and calls the sink, in order. Every other chunk is compressed by the
// caller's thread before it is queued (the thread then only hands it to the sink): with
// all compression on the helper, the caller would only copy records and wait, and two
// threads would be no faster than one. A failure is kept and rethrown to the caller by
// its next call.
class CompressBehind {
 public:
  CompressBehind(Emitter& emitter, std::size_t depth) : emitter_(emitter), depth_(depth) {
    thread_ = std::thread([this] { run(); });
  }
  ~CompressBehind() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  CompressBehind(const CompressBehind&) = delete;
  CompressBehind& operator=(const CompressBehind&) = delete;

  // Queues `buffer` (`size` bytes after the headroom; 0 = only the stream identifier) and
  // returns an empty buffer for the next chunk. Waits while `depth` chunks are queued.
  ChunkBuffer push(ChunkBuffer buffer, std::size_t size) {
    Job job{std::move(buffer), size, nullptr, {}};
    if (size > 0) compress_here_ = !compress_here_;
    if (size > 0 && compress_here_) {
      {
        const std::lock_guard lock(mutex_);
        if (!free_out_.empty()) {
          job.out = std::move(free_out_.back());
          free_out_.pop_back();
        }
      }
      if (!job.out) job.out = std::make_unique_for_overwrite<char[]>(out_buffer_size());
      job.piece = pack_chunk(job.buffer.get() + header_size, size, job.buffer.get(), job.out.get());
    }
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return queue_.size() < depth_ || error_; });
    rethrow();
    queue_.push_back(std::move(job));
    ChunkBuffer next;
    if (!free_.empty()) {
      next = std::move(free_.back());
      free_.pop_back();
    }
    lock.unlock();
    changed_.notify_all();
    return next ? std::move(next) : new_chunk_buffer();
  }

  // Waits until the sink has had every queued chunk.
  void drain() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return (queue_.empty() && !busy_) || error_; });
    rethrow();
  }

 private:
  struct Job {
    ChunkBuffer buffer;
    std::size_t size = 0;
    ChunkBuffer out;  // set when the caller packed the chunk: `piece` is in it or in `buffer`
    std::string_view piece;
  };

  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

  void run() noexcept {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;  // the destructor does not flush (ArchiveWriter's contract)
      Job job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      std::exception_ptr error;
      try {
        if (job.size == 0) {
          emitter_.start();
        } else if (job.out) {
          emitter_.put(job.piece);
        } else {
          emitter_.emit(job.buffer.get() + header_size, job.size, job.buffer.get());
        }
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      busy_ = false;
      free_.push_back(std::move(job.buffer));
      if (job.out) free_out_.push_back(std::move(job.out));
      if (error) {
        error_ = error;
        queue_.clear();
      }
      changed_.notify_all();
    }
  }

  Emitter& emitter_;
  std::size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  std::vector<ChunkBuffer> free_;
  std::vector<ChunkBuffer> free_out_;  // packed-chunk buffers of the caller's half
  bool compress_here_ = false;  // the caller's thread only: whose turn the next chunk is
  bool busy_ = false;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace

struct ArchiveWriter::Impl {
  Impl(ByteSink s, const ArchiveWriterOptions& options) : emitter(std::move(s)), chunk(new_chunk_buffer()) {
    if (options.compress_behind_chunks > 0) {
      behind = std::make_unique<CompressBehind>(emitter, options.compress_behind_chunks);
    }
  }

  Emitter emitter;
  ChunkBuffer chunk;  // header_size bytes of headroom, then `used` bytes of data
  std::size_t used = 0;
  bool finished = false;
  std::uint64_t records = 0;
  std::uint64_t uncompressed = 0;
  std::unique_ptr<CompressBehind> behind;  // last: stopped before the rest goes

  char* chunk_data() noexcept { return chunk.get() + header_size; }

  // Emits the buffered chunk (used > 0).
  void emit_buffered() {
    if (behind) {
      chunk = behind->push(std::move(chunk), used);
    } else {
      emitter.emit(chunk_data(), used, chunk.get());
    }
    used = 0;
  }

  void append(std::string_view bytes) {
    if (finished) throw Error("ArchiveWriter: append after finish()");
    const std::size_t total = bytes.size();
    while (!bytes.empty()) {
      if (used == 0 && bytes.size() >= max_chunk_data && !behind) {
        emitter.emit(bytes.data(), max_chunk_data, nullptr);  // a whole chunk of this record: no copy
        bytes.remove_prefix(max_chunk_data);
        continue;
      }
      const std::size_t n = std::min(max_chunk_data - used, bytes.size());
      std::memcpy(chunk_data() + used, bytes.data(), n);
      used += n;
      bytes.remove_prefix(n);
      if (used == max_chunk_data) emit_buffered();
    }
    ++records;
    uncompressed += total;
  }

  void flush() {
    if (used > 0) emit_buffered();
    if (behind) behind->drain();
  }

  void finish() {
    if (finished) return;
    if (used > 0) emit_buffered();
    // An archive without records is still a valid (empty) stream: the identifier at least.
    if (behind) {
      chunk = behind->push(std::move(chunk), 0);
      behind->drain();
    } else {
      emitter.start();
    }
    finished = true;
  }
};

ArchiveWriter::ArchiveWriter(ByteSink sink) : ArchiveWriter(std::move(sink), ArchiveWriterOptions{}) {}
ArchiveWriter::ArchiveWriter(ByteSink sink, ArchiveWriterOptions options)
    : impl_(std::make_unique<Impl>(std::move(sink), options)) {}
ArchiveWriter::~ArchiveWriter() = default;
ArchiveWriter::ArchiveWriter(ArchiveWriter&&) noexcept = default;
ArchiveWriter& ArchiveWriter::operator=(ArchiveWriter&&) noexcept = default;

void ArchiveWriter::append(std::string_view bytes) { impl_->append(bytes); }

void ArchiveWriter::append(const Map& record) {
  // One scratch buffer per thread: appending a Map must not allocate per record.
  thread_local std::string scratch;
  scratch.clear();
  encode_record(record, scratch);
  impl_->append(std::string_view(scratch));
}

void ArchiveWriter::flush() { impl_->flush(); }
void ArchiveWriter::finish() { impl_->finish(); }

std::uint64_t ArchiveWriter::records() const noexcept { return impl_->records; }
std::uint64_t ArchiveWriter::uncompressed_bytes() const noexcept { return impl_->uncompressed; }
std::uint64_t ArchiveWriter::compressed_bytes() const noexcept { return impl_->emitter.compressed; }

std::uint32_t masked_crc32c(std::string_view bytes) noexcept {
  return detail::mask_crc32c(detail::crc32c(bytes));
}

}  // namespace kclpp::pipeline
