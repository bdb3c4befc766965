// msgpack records (docs/triton.md §2).
//
// Decoding is hand-written rather than msgpack-cxx's visitor parser (msgpack::parse): on
// Triton-like records (five short fields and one 800-byte text, half repetitive, half
// random; 20 000 records, -O2, one core of the 2-core build machine) it decodes at
// ~2.1 GB/s against ~1.35 GB/s for a msgpack::parse visitor building the same Value tree,
// and Python's msgpack.Unpacker reads the same bytes at ~345 MB/s: 3.9× Python with
// msgpack-cxx for the msgpack step alone, 6× hand-written, and the archive reader's ≥ 4×
// target must also pay for snappy and the CRCs. msgpack-cxx's parser also allocates its container stack on
// every call, which msgpack_value_size must not do (it scans at ~5.5 GB/s).
// Encoding uses msgpack-cxx's packer, except for floats (see encode()).
#include "kclpp/pipeline/value.hpp"

#include <msgpack/pack.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "kclpp/internal/hex.hpp"
#include "kclpp/processor/error.hpp"
#include "msgpack_scan.hpp"

namespace kclpp::pipeline {

namespace detail {
namespace {

inline std::uint16_t load16(const unsigned char* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t load32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}
inline std::uint64_t load64(const unsigned char* p) noexcept {
  return (std::uint64_t{load32(p)} << 32) | load32(p + 4);
}

inline bool is_text_lead(unsigned char b) noexcept {
  return (b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb || b == 0xc4 ||
         b == 0xc5 || b == 0xc6;
}

}  // namespace

ScanResult scan_value(std::string_view bytes, bool text_keys) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  // remaining[d]: values still to read in the container at nesting level d (0 = the top,
  // which holds the one value). A map of k pairs counts 2k values; a key is read when the
  // count left is even. Fixed arrays: no allocation, no recursion.
  std::uint64_t remaining[kMaxDepth + 1];
  bool is_map[kMaxDepth + 1];
  int depth = 0;
  remaining[0] = 1;
  is_map[0] = false;
  std::size_t pos = 0;
  for (;;) {
    while (remaining[depth] == 0) {
      if (depth == 0) {
        return ScanResult{pos, ScanFail::None, 0, 0};
      }
      --depth;
    }
    const bool key = is_map[depth] && (remaining[depth] % 2 == 0);
    --remaining[depth];
    if (pos >= n) {
      return ScanResult{0, ScanFail::Truncated, pos, 0};
    }
    const unsigned char b = p[pos];
    if (key && text_keys && !is_text_lead(b)) {
      return ScanResult{0, ScanFail::BadKey, pos, b};
    }
    if (b <= 0x7f || b >= 0xe0) {  // positive / negative fixint
      ++pos;
      continue;
    }
    std::size_t header = 1;     // bytes before the payload, the lead byte included
    std::size_t len_bytes = 0;  // width of the big-endian length/count field after the lead
    std::uint64_t payload = 0;  // bytes after the header
    std::uint64_t count = 0;    // container entries
    bool container = false;
    bool map = false;
    const std::size_t avail = n - pos;
    if (b <= 0x8f) {
      container = map = true;
      count = b & 0x0fU;
    } else if (b <= 0x9f) {
      container = true;
      count = b & 0x0fU;
    } else if (b <= 0xbf) {
      payload = b & 0x1fU;
    } else {
      switch (b) {
        case 0xc0: case 0xc2: case 0xc3: break;                   // nil, false, true
        case 0xc1: return ScanResult{0, ScanFail::BadByte, pos, b};
        case 0xc4: case 0xd9: len_bytes = 1; break;               // bin8, str8
        case 0xc5: case 0xda: len_bytes = 2; break;               // bin16, str16
        case 0xc6: case 0xdb: len_bytes = 4; break;               // bin32, str32
        case 0xc7: len_bytes = 1; break;                          // ext8 (+ type byte)
        case 0xc8: len_bytes = 2; break;                          // ext16
        case 0xc9: len_bytes = 4; break;                          // ext32
        case 0xca: payload = 4; break;                            // float32
        case 0xcb: payload = 8; break;                            // float64
        case 0xcc: case 0xd0: payload = 1; break;                 // (u)int8
        case 0xcd: case 0xd1: payload = 2; break;                 // (u)int16
        case 0xce: case 0xd2: payload = 4; break;                 // (u)int32
        case 0xcf: case 0xd3: payload = 8; break;                 // (u)int64
        case 0xd4: payload = 2; break;                            // fixext1..16: type + data
        case 0xd5: payload = 3; break;
        case 0xd6: payload = 5; break;
        case 0xd7: payload = 9; break;
        case 0xd8: payload = 17; break;
        case 0xdc: case 0xde: len_bytes = 2; container = true; map = b == 0xde; break;
        case 0xdd: case 0xdf: len_bytes = 4; container = true; map = b == 0xdf; break;
        default: break;  // unreachable: every byte value is covered above
      }
      if (len_bytes > 0) {
        header += len_bytes;
        if (b >= 0xc7 && b <= 0xc9) header += 1;  // the ext type byte
        if (avail < header) {
          return ScanResult{0, ScanFail::Truncated, pos, b};
        }
        const unsigned char* h = p + pos + 1;
        const std::uint64_t len = len_bytes == 1 ? h[0] : len_bytes == 2 ? load16(h) : load32(h);
        if (container) {
          count = len;
        } else {
          payload = len;
        }
      }
    }
    if (container) {
      if (depth >= kMaxDepth) {
        return ScanResult{0, ScanFail::TooDeep, pos, b};
      }
      if (avail < header) {
        return ScanResult{0, ScanFail::Truncated, pos, b};
      }
      pos += header;
      if (count > 0) {
        ++depth;
        remaining[depth] = map ? count * 2 : count;
        is_map[depth] = map;
      }
      continue;
    }
    if (avail < header || avail - header < payload) {
      return ScanResult{0, ScanFail::Truncated, pos, b};
    }
    pos += header + static_cast<std::size_t>(payload);
  }
}

const char* describe_lead(unsigned char b) noexcept {
  if (b <= 0x7f || b >= 0xe0) return "an int";
  if (b <= 0x8f) return "a map";
  if (b <= 0x9f) return "an array";
  if (b <= 0xbf) return "a str";
  switch (b) {
    case 0xc0: return "nil";
    case 0xc1: return "the unused byte 0xc1";
    case 0xc2: case 0xc3: return "a bool";
    case 0xc4: case 0xc5: case 0xc6: return "a bin";
    case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
      return "an ext";
    case 0xca: case 0xcb: return "a float";
    case 0xd9: case 0xda: case 0xdb: return "a str";
    case 0xdc: case 0xdd: return "an array";
    case 0xde: case 0xdf: return "a map";
    default: return "an int";  // 0xcc..0xd3
  }
}

namespace {
std::string hex_byte(unsigned char b) {
  std::string s = "0x";
  kclpp::detail::append_hex_byte(s, b);
  return s;
}
}  // namespace

std::string describe_failure(const ScanResult& r, std::size_t size) {
  const std::string at = std::to_string(r.at);
  switch (r.fail) {
    case ScanFail::None: return {};
    case ScanFail::Truncated:
      if (r.at >= size) {
        return "truncated msgpack: " + std::to_string(size) + " bytes end where a value should start";
      }
      return "truncated msgpack: the value at byte " + at + " (" + describe_lead(r.byte) +
             ") runs past the end of the " + std::to_string(size) + " bytes";
    case ScanFail::BadByte:
      return "invalid msgpack: byte " + hex_byte(r.byte) + " at byte " + at;
    case ScanFail::TooDeep:
      return "msgpack nests deeper than " + std::to_string(kMaxDepth) + " levels at byte " + at;
    case ScanFail::BadKey:
      return std::string("map key at byte ") + at + " is " + describe_lead(r.byte) +
             ", not a str or bin";
  }
  return {};
}

}  // namespace detail

using detail::ScanFail;
using detail::ScanResult;

namespace {

constexpr std::int8_t kGoTimeExt = 5;  // msgp's private time.Time extension (docs/triton.md §2)

// Builds the Value tree directly from the bytes (speed: see the top of this file). Reports
// failures exactly as scan_value does, so that validate_record and decode_record agree
// word for word (the msgpack_record fuzz target checks it). pos_ is the next unread byte.
class Decoder {
 public:
  explicit Decoder(std::string_view bytes) noexcept
      : p_(reinterpret_cast<const unsigned char*>(bytes.data())), n_(bytes.size()) {}

  bool value(Value& out, int depth);
  bool map_body(Map& m, std::uint64_t count, int depth);
  // The top-level map (the lead byte must be a map's), as value(top, 0) would read it.
  bool top_map(Map& m);

  std::size_t pos() const noexcept { return pos_; }
  const ScanResult& failure() const noexcept { return fail_; }

 private:
  bool fail(ScanFail f, std::size_t at, unsigned char byte) noexcept {
    fail_ = ScanResult{0, f, at, byte};
    return false;
  }
  // True when `k` bytes follow pos_; else records a truncation of the value at `at`.
  bool need(std::size_t k, std::size_t at, unsigned char lead) noexcept {
    if (n_ - pos_ >= k) return true;
    return fail(ScanFail::Truncated, at, lead);
  }
  const char* ptr() const noexcept { return reinterpret_cast<const char*>(p_ + pos_); }
  bool key(std::string& out);
  bool ext(Value::Storage& s, std::int8_t type, std::size_t len);

  const unsigned char* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
  ScanResult fail_;
};

bool Decoder::key(std::string& out) {
  if (pos_ >= n_) return fail(ScanFail::Truncated, pos_, 0);
  const std::size_t at = pos_;
  const unsigned char b = p_[pos_++];
  std::size_t len = 0;
  if (b >= 0xa0 && b <= 0xbf) {
    len = b & 0x1fU;
  } else if (b == 0xd9 || b == 0xc4) {
    if (!need(1, at, b)) return false;
    len = p_[pos_];
    pos_ += 1;
  } else if (b == 0xda || b == 0xc5) {
    if (!need(2, at, b)) return false;
    len = detail::load16(p_ + pos_);
    pos_ += 2;
  } else if (b == 0xdb || b == 0xc6) {
    if (!need(4, at, b)) return false;
    len = detail::load32(p_ + pos_);
    pos_ += 4;
  } else {
    return fail(ScanFail::BadKey, at, b);
  }
  if (!need(len, at, b)) return false;
  // The previous record's key in the same place is usually the same key. Keys are short:
  // a byte loop beats a call to memcmp.
  bool same = out.size() == len;
  const char* k = ptr();
  for (std::size_t i = 0; same && i < len; ++i) same = out[i] == k[i];
  if (!same) out.assign(k, len);
  pos_ += len;
  return true;
}

bool Decoder::ext(Value::Storage& s, std::int8_t type, std::size_t len) {
  // Go's time.Time: exactly 12 bytes (docs/triton.md §2). Another length under type 5 is not a time
  // msgp wrote; keep it opaque rather than guess.
  if (type == kGoTimeExt && len == 12) {
    Time t;
    t.seconds = static_cast<std::int64_t>(detail::load64(p_ + pos_));
    t.nanoseconds = static_cast<std::int32_t>(detail::load32(p_ + pos_ + 8));
    s.emplace<Time>(t);
  } else {
    s.emplace<Extension>(Extension{type, std::string(ptr(), len)});
  }
  pos_ += len;
  return true;
}

// Every decode writes into `out` as it finds it: a fresh Value for decode_record, the
// previous record's tree for decode_record_into. Strings, maps and arrays already there are
// assigned into (their capacity reused), so that a reader decoding records of one shape in
// a loop allocates nothing per record in steady state; anything else is replaced.
template <class T>
inline void assign_scalar(Value::Storage& s, T v) noexcept {
  if (auto* x = std::get_if<T>(&s)) {
    *x = v;  // no variant reset when the type repeats
  } else {
    s.emplace<T>(v);
  }
}

inline void assign_text(Value::Storage& s, const char* p, std::size_t len) {
  if (auto* str = std::get_if<std::string>(&s)) {
    str->assign(p, len);
  } else {
    s.emplace<std::string>(p, len);
  }
}

bool Decoder::map_body(Map& m, std::uint64_t count, int depth) {
  // Never trust a count for the reservation: each pair takes at least 2 bytes.
  m.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(count, (n_ - pos_) / 2)));
  std::size_t i = 0;
  for (; i < count; ++i) {
    auto& entry = i < m.size() ? m[i] : m.emplace_back();
    if (!key(entry.first)) return false;
    // Inline fast paths for a Triton event's usual values (fixint, fixstr/str8, float64)
    // when they are whole; anything else, or a truncated one, goes through value(), which
    // also reports every failure.
    if (pos_ < n_) {
      const unsigned char b = p_[pos_];
      const std::size_t left = n_ - pos_ - 1;
      Value::Storage& s = entry.second.storage();
      if (b <= 0x7f) {
        assign_scalar<std::int64_t>(s, b);
        pos_ += 1;
        continue;
      }
      if (b >= 0xa0 && b <= 0xbf && left >= (b & 0x1fU)) {
        const std::size_t len = b & 0x1fU;
        assign_text(s, reinterpret_cast<const char*>(p_ + pos_ + 1), len);
        pos_ += 1 + len;
        continue;
      }
      if (b == 0xd9 && left >= 1 && left - 1 >= p_[pos_ + 1]) {
        const std::size_t len = p_[pos_ + 1];
        assign_text(s, reinterpret_cast<const char*>(p_ + pos_ + 2), len);
        pos_ += 2 + len;
        continue;
      }
      if (b == 0xda && left >= 2 && left - 2 >= detail::load16(p_ + pos_ + 1)) {
        const std::size_t len = detail::load16(p_ + pos_ + 1);
        assign_text(s, reinterpret_cast<const char*>(p_ + pos_ + 3), len);
        pos_ += 3 + len;
        continue;
      }
      if (b == 0xcb && left >= 8) {
        assign_scalar<double>(s, std::bit_cast<double>(detail::load64(p_ + pos_ + 1)));
        pos_ += 9;
        continue;
      }
    }
    if (!value(entry.second, depth + 1)) return false;
  }
  if (m.size() > i) m.erase(m.begin() + static_cast<std::ptrdiff_t>(i), m.end());
  return true;
}

bool Decoder::top_map(Map& m) {
  const std::size_t at = pos_;
  const unsigned char b = p_[pos_++];
  std::uint64_t count = 0;
  if (b <= 0x8f) {
    count = b & 0x0fU;
  } else if (b == 0xde) {
    if (!need(2, at, b)) return false;
    count = detail::load16(p_ + pos_);
    pos_ += 2;
  } else {
    if (!need(4, at, b)) return false;
    count = detail::load32(p_ + pos_);
    pos_ += 4;
  }
  return map_body(m, count, 0);
}

bool Decoder::value(Value& out, int depth) {
  if (pos_ >= n_) return fail(ScanFail::Truncated, pos_, 0);
  const std::size_t at = pos_;
  const unsigned char b = p_[pos_++];
  Value::Storage& s = out.storage();
  // Non-negative integers become int64 whatever their wire family (fixint, uint8..64,
  // int8..64), unsigned only above INT64_MAX: the shortest re-encoding (as msgpack-python
  // writes) then decodes to an equal value, and callers test one type for ordinary ints.
  if (b <= 0x7f) {
    assign_scalar<std::int64_t>(s, b);
    return true;
  }
  if (b >= 0xe0) {
    assign_scalar<std::int64_t>(s, static_cast<std::int8_t>(b));
    return true;
  }
  std::uint64_t count = 0;
  bool is_map = false;
  std::size_t len = 0;
  if (b <= 0x8f) {
    is_map = true;
    count = b & 0x0fU;
  } else if (b <= 0x9f) {
    count = b & 0x0fU;
  } else if (b <= 0xbf) {
    len = b & 0x1fU;
    if (!need(len, at, b)) return false;
    assign_text(s, ptr(), len);
    pos_ += len;
    return true;
  } else {
    switch (b) {
      case 0xc0: s.emplace<Nil>(); return true;
      case 0xc1: return fail(ScanFail::BadByte, at, b);
      case 0xc2: s.emplace<bool>(false); return true;
      case 0xc3: s.emplace<bool>(true); return true;
      case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: {
        const std::size_t hl = (b == 0xc4 || b == 0xd9) ? 1 : (b == 0xc5 || b == 0xda) ? 2 : 4;
        if (!need(hl, at, b)) return false;
        len = hl == 1 ? p_[pos_] : hl == 2 ? detail::load16(p_ + pos_) : detail::load32(p_ + pos_);
        pos_ += hl;
        if (!need(len, at, b)) return false;
        if (b >= 0xd9) {
          assign_text(s, ptr(), len);
        } else if (auto* bin = std::get_if<Binary>(&s)) {
          bin->bytes.assign(ptr(), len);
        } else {
          s.emplace<Binary>(Binary{std::string(ptr(), len)});
        }
        pos_ += len;
        return true;
      }
      case 0xc7: case 0xc8: case 0xc9: {
        const std::size_t hl = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
        if (!need(hl + 1, at, b)) return false;
        len = hl == 1 ? p_[pos_] : hl == 2 ? detail::load16(p_ + pos_) : detail::load32(p_ + pos_);
        const auto type = static_cast<std::int8_t>(p_[pos_ + hl]);
        pos_ += hl + 1;
        if (!need(len, at, b)) return false;
        return ext(s, type, len);
      }
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
        len = std::size_t{1} << (b - 0xd4);
        if (!need(len + 1, at, b)) return false;
        const auto type = static_cast<std::int8_t>(p_[pos_]);
        pos_ += 1;
        return ext(s, type, len);
      }
      case 0xca: {
        if (!need(4, at, b)) return false;
        s.emplace<Float32>(Float32{std::bit_cast<float>(detail::load32(p_ + pos_))});
        pos_ += 4;
        return true;
      }
      case 0xcb: {
        if (!need(8, at, b)) return false;
        assign_scalar<double>(s, std::bit_cast<double>(detail::load64(p_ + pos_)));
        pos_ += 8;
        return true;
      }
      case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        const std::size_t w = std::size_t{1} << (b - 0xcc);
        if (!need(w, at, b)) return false;
        const std::uint64_t u = w == 1 ? p_[pos_] : w == 2 ? detail::load16(p_ + pos_)
                                : w == 4 ? detail::load32(p_ + pos_) : detail::load64(p_ + pos_);
        pos_ += w;
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          assign_scalar<std::uint64_t>(s, u);
        } else {
          assign_scalar<std::int64_t>(s, static_cast<std::int64_t>(u));
        }
        return true;
      }
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        const std::size_t w = std::size_t{1} << (b - 0xd0);
        if (!need(w, at, b)) return false;
        std::int64_t i = 0;
        switch (w) {
          case 1: i = static_cast<std::int8_t>(p_[pos_]); break;
          case 2: i = static_cast<std::int16_t>(detail::load16(p_ + pos_)); break;
          case 4: i = static_cast<std::int32_t>(detail::load32(p_ + pos_)); break;
          default: i = static_cast<std::int64_t>(detail::load64(p_ + pos_)); break;
        }
        pos_ += w;
        assign_scalar<std::int64_t>(s, i);
        return true;
      }
      case 0xdc: case 0xde:
        if (!need(2, at, b)) return false;
        count = detail::load16(p_ + pos_);
        pos_ += 2;
        is_map = b == 0xde;
        break;
      case 0xdd: case 0xdf:
        if (!need(4, at, b)) return false;
        count = detail::load32(p_ + pos_);
        pos_ += 4;
        is_map = b == 0xdf;
        break;
      default: return fail(ScanFail::BadByte, at, b);  // unreachable
    }
  }
  // A container at nesting level depth + 1.
  if (depth >= detail::kMaxDepth) return fail(ScanFail::TooDeep, at, b);
  if (is_map) {
    Map* m = std::get_if<Map>(&s);
    return map_body(m != nullptr ? *m : s.emplace<Map>(), count, depth);
  }
  Array* old = std::get_if<Array>(&s);
  Array& a = old != nullptr ? *old : s.emplace<Array>();
  a.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(count, n_ - pos_)));
  std::size_t i = 0;
  for (; i < count; ++i) {
    if (!value(i < a.size() ? a[i] : a.emplace_back(), depth + 1)) return false;
  }
  if (a.size() > i) a.erase(a.begin() + static_cast<std::ptrdiff_t>(i), a.end());
  return true;
}

bool is_map_lead(unsigned char b) noexcept {
  return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

std::string not_a_map(std::string_view bytes) {
  if (bytes.empty()) return "not a msgpack map: the record is empty";
  const auto b = static_cast<unsigned char>(bytes[0]);
  return std::string("not a msgpack map: the record is ") + detail::describe_lead(b);
}

std::string trailing(std::size_t end, std::size_t size) {
  return "trailing bytes: the map ends at byte " + std::to_string(end) + " of " +
         std::to_string(size);
}

// --- encoding -----------------------------------------------------------------------------

struct StringSink {
  std::string* out;
  void write(const char* p, std::size_t n) { out->append(p, n); }
};
using Packer = msgpack::packer<StringSink>;

std::uint32_t length32(std::size_t n, const char* what) {
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(std::string("cannot encode msgpack: ") + what + " of " + std::to_string(n) +
                " entries/bytes exceeds the format's 32-bit length");
  }
  return static_cast<std::uint32_t>(n);
}

void put_be(std::string& out, unsigned char lead, std::uint64_t bits, int bytes) {
  char buf[9];
  buf[0] = static_cast<char>(lead);
  for (int i = 0; i < bytes; ++i) {
    buf[1 + i] = static_cast<char>((bits >> (8 * (bytes - 1 - i))) & 0xffU);
  }
  out.append(buf, static_cast<std::size_t>(bytes + 1));
}

void encode(const Value& v, Packer& pk, std::string& out);

void encode_map(const Map& m, Packer& pk, std::string& out) {
  pk.pack_map(length32(m.size(), "a map"));
  for (const auto& [k, val] : m) {
    const std::uint32_t kl = length32(k.size(), "a key");
    pk.pack_str(kl);
    pk.pack_str_body(k.data(), kl);
    encode(val, pk, out);
  }
}

void encode(const Value& v, Packer& pk, std::string& out) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Nil>) {
          pk.pack_nil();
        } else if constexpr (std::is_same_v<T, bool>) {
          if (x) pk.pack_true(); else pk.pack_false();
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          pk.pack_int64(x);  // shortest; non-negative as fixint/uint8..64 like msgpack-python
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          pk.pack_uint64(x);
        } else if constexpr (std::is_same_v<T, Float32>) {
          // Not pk.pack_float: msgpack-cxx 4.x writes an integral float as an int (1.0 → 1),
          // which would change the type a Python or Go reader sees.
          put_be(out, 0xca, std::bit_cast<std::uint32_t>(x.value), 4);
        } else if constexpr (std::is_same_v<T, double>) {
          put_be(out, 0xcb, std::bit_cast<std::uint64_t>(x), 8);
        } else if constexpr (std::is_same_v<T, std::string>) {
          const std::uint32_t l = length32(x.size(), "a str");
          pk.pack_str(l);
          pk.pack_str_body(x.data(), l);
        } else if constexpr (std::is_same_v<T, Binary>) {
          const std::uint32_t l = length32(x.bytes.size(), "a bin");
          pk.pack_bin(l);
          pk.pack_bin_body(x.bytes.data(), l);
        } else if constexpr (std::is_same_v<T, Array>) {
          pk.pack_array(length32(x.size(), "an array"));
          for (const auto& e : x) encode(e, pk, out);
        } else if constexpr (std::is_same_v<T, Map>) {
          encode_map(x, pk, out);
        } else if constexpr (std::is_same_v<T, Time>) {
          // ext8, type 5, 12 bytes: BE int64 seconds, BE int32 nanoseconds, as msgp (docs/triton.md §2).
          char body[12];
          const auto s = static_cast<std::uint64_t>(x.seconds);
          const auto ns = static_cast<std::uint32_t>(x.nanoseconds);
          for (int i = 0; i < 8; ++i) body[i] = static_cast<char>((s >> (56 - 8 * i)) & 0xffU);
          for (int i = 0; i < 4; ++i) body[8 + i] = static_cast<char>((ns >> (24 - 8 * i)) & 0xffU);
          pk.pack_ext(12, kGoTimeExt);
          pk.pack_ext_body(body, 12);
        } else if constexpr (std::is_same_v<T, Extension>) {
          const std::uint32_t l = length32(x.bytes.size(), "an ext");
          pk.pack_ext(l, x.type);  // fixext for 1/2/4/8/16 bytes, as msgpack-python
          pk.pack_ext_body(x.bytes.data(), l);
        }
      },
      v.storage());
}

// --- partition keys -------------------------------------------------------------------------

// Python's repr(float) (the 'r' format, PyOS_double_to_string): shortest round-trip
// digits; positional when the decimal exponent is in [-4, 16), always with a '.0' when
// integral; else d.ddde±XX with at least two exponent digits. repr(1e16) == '1e+16',
// repr(1e-5) == '1e-05', repr(1.0) == '1.0'.
std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));  // -d.ddde±XX
  const std::size_t e = sci.find('e');
  std::string_view mant = sci.substr(0, e);
  int exp10 = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exp10);
  std::string out;
  if (!mant.empty() && mant[0] == '-') {
    out += '-';
    mant.remove_prefix(1);
  }
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  const int decpt = exp10 + 1;  // value = 0.DIGITS × 10^decpt
  const int nd = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-decpt), '0');
      out += digits;
    } else if (decpt >= nd) {
      out += digits;
      out.append(static_cast<std::size_t>(decpt - nd), '0');
      out += ".0";
    } else {
      out.append(digits, 0, static_cast<std::size_t>(decpt));
      out += '.';
      out.append(digits, static_cast<std::size_t>(decpt), std::string::npos);
    }
    return out;
  }
  out += digits[0];
  if (nd > 1) {
    out += '.';
    out.append(digits, 1, std::string::npos);
  }
  out += 'e';
  out += exp10 < 0 ? '-' : '+';
  const int ae = exp10 < 0 ? -exp10 : exp10;
  if (ae < 10) out += '0';
  out += std::to_string(ae);
  return out;
}

// Kinesis counts a partition key's length in (UTF-16) characters, not bytes: count code
// points, a 4-byte UTF-8 sequence as two.
std::size_t utf16_length(std::string_view s) noexcept {
  std::size_t n = 0;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if ((b & 0xc0U) != 0x80U) n += b >= 0xf0 ? 2 : 1;
  }
  return n;
}

}  // namespace

const Value* Value::find(std::string_view key) const noexcept {
  const Map* m = std::get_if<Map>(&v_);
  if (m == nullptr) return nullptr;
  // From the back: with a repeated key, Go's map and Python's dict keep the last value.
  for (auto it = m->rbegin(); it != m->rend(); ++it) {
    if (it->first == key) return &it->second;
  }
  return nullptr;
}

DecodedRecord decode_record(std::string_view bytes) {
  DecodedRecord rec;
  if (bytes.empty() || !is_map_lead(static_cast<unsigned char>(bytes[0]))) {
    rec.error = not_a_map(bytes);
    return rec;
  }
  Decoder d(bytes);
  Value top;
  if (!d.value(top, 0)) {
    rec.error = detail::describe_failure(d.failure(), bytes.size());
    return rec;
  }
  if (d.pos() != bytes.size()) {
    rec.error = trailing(d.pos(), bytes.size());
    return rec;
  }
  rec.map = std::move(std::get<Map>(top.storage()));
  return rec;
}

void decode_record_into(std::string_view bytes, DecodedRecord& out) {
  if (bytes.empty() || !is_map_lead(static_cast<unsigned char>(bytes[0]))) {
    out.map.clear();
    out.error = not_a_map(bytes);
    return;
  }
  Decoder d(bytes);
  if (!d.top_map(out.map)) {
    out.map.clear();
    out.error = detail::describe_failure(d.failure(), bytes.size());
    return;
  }
  if (d.pos() != bytes.size()) {
    out.map.clear();
    out.error = trailing(d.pos(), bytes.size());
    return;
  }
  out.error.clear();
}

bool decode_map_prefix(std::string_view& bytes, Map& out, std::string& error) {
  error.clear();
  if (bytes.empty() || !is_map_lead(static_cast<unsigned char>(bytes[0]))) return false;
  Decoder d(bytes);
  if (!d.top_map(out)) {
    if (d.failure().fail != ScanFail::Truncated) {
      error = detail::describe_failure(d.failure(), bytes.size());
    }
    return false;
  }
  bytes.remove_prefix(d.pos());
  return true;
}

std::string validate_record(std::string_view bytes) {
  if (bytes.empty() || !is_map_lead(static_cast<unsigned char>(bytes[0]))) {
    return not_a_map(bytes);
  }
  const ScanResult r = detail::scan_value(bytes, true);
  if (r.fail != ScanFail::None) return detail::describe_failure(r, bytes.size());
  if (r.end != bytes.size()) return trailing(r.end, bytes.size());
  return {};
}

std::optional<Value> decode_value(std::string_view& bytes, std::string& error) {
  error.clear();
  Decoder d(bytes);
  Value v;
  if (!d.value(v, 0)) {
    if (d.failure().fail != ScanFail::Truncated) {
      error = detail::describe_failure(d.failure(), bytes.size());
    }
    return std::nullopt;
  }
  bytes.remove_prefix(d.pos());
  return v;
}

std::size_t msgpack_value_size(std::string_view bytes, std::string& error) noexcept {
  error.clear();
  const ScanResult r = detail::scan_value(bytes, false);
  if (r.fail == ScanFail::None) return r.end;
  if (r.fail != ScanFail::Truncated) {
    try {
      error = detail::describe_failure(r, bytes.size());
    } catch (...) {
      error.clear();  // cannot describe it without memory: report a partial value instead
    }
  }
  return 0;
}

void encode_record(const Map& record, std::string& out) {
  StringSink sink{&out};
  Packer pk(sink);
  encode_map(record, pk, out);
}

std::string encode_record(const Map& record) {
  std::string out;
  encode_record(record, out);
  return out;
}

void encode_value(const Value& value, std::string& out) {
  StringSink sink{&out};
  Packer pk(sink);
  encode(value, pk, out);
}

std::string partition_key_of(const Map& record, const std::string& field) {
  const Value* v = nullptr;
  for (auto it = record.rbegin(); it != record.rend(); ++it) {  // the last of repeated keys
    if (it->first == field) {
      v = &it->second;
      break;
    }
  }
  if (v == nullptr) {
    throw ConfigError("record has no partition key field '" + field + "'");
  }
  std::string key = std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return x;
        } else if constexpr (std::is_same_v<T, Binary>) {
          return x.bytes;  // py-triton decodes bytes as UTF-8 (docs/triton.md §2)
        } else if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t>) {
          return std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          return python_float_repr(x);
        } else if constexpr (std::is_same_v<T, Float32>) {
          return python_float_repr(static_cast<double>(x.value));  // Python widens to float
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "True" : "False";
        } else if constexpr (std::is_same_v<T, Nil>) {
          return "None";
        } else {
          throw ConfigError("partition key field '" + field +
                            "' holds an array, map or extension, not a scalar");
        }
      },
      v->storage());
  if (key.empty()) {
    throw ConfigError("partition key field '" + field + "' is empty (Kinesis needs 1 to 256 characters)");
  }
  if (utf16_length(key) > 256) {
    throw ConfigError("partition key field '" + field + "' is longer than 256 characters (" +
                      std::to_string(utf16_length(key)) + ")");
  }
  return key;
}

}  // namespace kclpp::pipeline
