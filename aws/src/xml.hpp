#pragma once
// A tiny tolerant XML reader for the few replies kclpp understands (S3, STS): the text of
// an element by name. No DTDs; namespaces and attributes are ignored.
#include <optional>
#include <string>
#include <string_view>

namespace kclpp::aws::detail {

// The text of the first element <name>...</name> in `xml` at or after `from` (entities
// decoded), or nullopt. `end` (if given) receives the position just past its end tag.
// Tolerates attributes on the start tag and a self-closing <name/> (empty text).
[[nodiscard]] std::optional<std::string> xml_element(std::string_view xml, std::string_view name,
                                                     std::size_t from = 0,
                                                     std::size_t* end = nullptr);
// Decodes &amp; &lt; &gt; &quot; &apos; &#N; &#xN; (and CDATA sections). Throws
// ProtocolError for a malformed entity.
[[nodiscard]] std::string xml_unescape(std::string_view text);
// Escapes & < > " ' for element text.
[[nodiscard]] std::string xml_escape(std::string_view text);

}  // namespace kclpp::aws::detail
