#pragma once
// The XML of the S3 and STS replies, read with expat, and the one escaping of the XML
// bodies we send (CreateBucket, CompleteMultipartUpload).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kclpp::aws::detail {

// A parsed reply: its elements in document order, each with the character data directly
// inside it (entities, character references and CDATA decoded; UTF-8). Namespace prefixes
// are dropped and attributes ignored: the replies we read identify nothing by them.
// Immutable once built; thread-safe to read. Copyable.
class XmlDocument {
 public:
  // An element of this document (its position in document order).
  using Element = std::size_t;
  // The document element.
  static constexpr Element root = 0;

  // Parses `xml`. Blanks before the XML declaration are skipped (S3 sends some to keep a
  // CompleteMultipartUpload connection alive). Throws ProtocolError when it is not
  // well-formed XML, has no element, or has a DTD (none of our replies has one, and a DTD's
  // entities are how XML bombs work).
  explicit XmlDocument(std::string_view xml);

  [[nodiscard]] const std::string& name(Element e) const { return nodes_.at(e).name; }
  [[nodiscard]] const std::string& text(Element e) const { return nodes_.at(e).text; }
  // The first child of `parent` named `name`.
  [[nodiscard]] std::optional<Element> child(Element parent, std::string_view name) const;
  // Every child of `parent` named `name`, in order.
  [[nodiscard]] std::vector<Element> children(Element parent, std::string_view name) const;
  // The text of the first child of `parent` named `name`.
  [[nodiscard]] std::optional<std::string> child_text(Element parent, std::string_view name) const;
  // The first element named `name` at any depth below `within` (document order).
  [[nodiscard]] std::optional<Element> find(std::string_view name, Element within = root) const;

 private:
  struct Node {
    std::string name;  // local name
    std::string text;
    std::size_t end = 0;  // one past the last element of its subtree
  };
  friend struct XmlBuilder;
  std::vector<Node> nodes_;
};

// Escapes & < > " ' for element text, and CR (which a parser would read back as LF).
[[nodiscard]] std::string xml_escape(std::string_view text);

}  // namespace kclpp::aws::detail
