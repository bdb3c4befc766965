#pragma once
// Base64 (standard alphabet, '=' padding, no line breaks), as Jackson and the Kinesis
// API write record data. Fast enough for the protocol hot path (GB/s).

#include <string>
#include <string_view>

namespace kclpp {

// Replaces `out` with the decoded bytes (reusing its capacity). Returns false, with `out`
// unspecified, if `in` is not canonical-length base64 (length % 4 != 0, a byte outside the
// alphabet, misplaced padding).
[[nodiscard]] bool base64_decode(std::string_view in, std::string& out);
// Appends the encoding of `in` to `out`.
void base64_encode(std::string_view in, std::string& out);

}  // namespace kclpp
