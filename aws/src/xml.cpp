// The XML reader (expat) behind the S3 and STS clients: a reply becomes a flat list of its
// elements in document order, each knowing where its subtree ends, so that lookups never
// recurse (a hostile reply nested 100,000 deep costs memory, not stack).
#include "xml.hpp"

#include <expat.h>

#include <climits>
#include <type_traits>
#include <memory>

#include "kclpp/processor/error.hpp"

namespace kclpp::aws::detail {

namespace {

struct ParserDeleter {
  void operator()(XML_Parser p) const noexcept { XML_ParserFree(p); }
};
using ParserPtr = std::unique_ptr<std::remove_pointer_t<XML_Parser>, ParserDeleter>;

std::string_view local_name(const XML_Char* name) {
  const std::string_view n(name);
  const std::size_t colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

}  // namespace

// Expat's callbacks, filling a document's nodes.
struct XmlBuilder {
  std::vector<XmlDocument::Node>& nodes;
  XML_Parser parser;
  std::vector<std::size_t> open;  // the elements not yet closed, innermost last
  bool refused_dtd = false;

  static void start(void* self, const XML_Char* name, const XML_Char** /*attributes*/) {
    auto& b = *static_cast<XmlBuilder*>(self);
    b.open.push_back(b.nodes.size());
    b.nodes.push_back({std::string(local_name(name)), {}, 0});
  }
  static void end(void* self, const XML_Char* /*name*/) {
    auto& b = *static_cast<XmlBuilder*>(self);
    b.nodes[b.open.back()].end = b.nodes.size();
    b.open.pop_back();
  }
  static void text(void* self, const XML_Char* s, int len) {
    auto& b = *static_cast<XmlBuilder*>(self);
    if (!b.open.empty()) b.nodes[b.open.back()].text.append(s, static_cast<std::size_t>(len));
  }
  static void doctype(void* self, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    auto& b = *static_cast<XmlBuilder*>(self);
    b.refused_dtd = true;
    XML_StopParser(b.parser, XML_FALSE);
  }
};

XmlDocument::XmlDocument(std::string_view xml) {
  const std::size_t start = xml.find_first_not_of(" \t\r\n");
  xml.remove_prefix(start == std::string_view::npos ? xml.size() : start);
  if (xml.size() > static_cast<std::size_t>(INT_MAX)) throw ProtocolError("XML: a reply of over 2 GiB");
  const ParserPtr parser(XML_ParserCreate(nullptr));
  if (!parser) throw ProtocolError("XML: cannot create a parser (out of memory)");
  XmlBuilder builder{nodes_, parser.get(), {}, false};
  XML_SetUserData(parser.get(), &builder);
  XML_SetElementHandler(parser.get(), &XmlBuilder::start, &XmlBuilder::end);
  XML_SetCharacterDataHandler(parser.get(), &XmlBuilder::text);
  XML_SetStartDoctypeDeclHandler(parser.get(), &XmlBuilder::doctype);
  if (XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE) != XML_STATUS_OK) {
    if (builder.refused_dtd) throw ProtocolError("XML: a document type declaration (DTD) is not accepted");
    throw ProtocolError(std::string("XML: ") + XML_ErrorString(XML_GetErrorCode(parser.get())) + " at line " +
                        std::to_string(XML_GetCurrentLineNumber(parser.get())) + ", column " +
                        std::to_string(XML_GetCurrentColumnNumber(parser.get())));
  }
  // Expat reports a document without an element as an error; kept as a guard for root.
  if (nodes_.empty()) throw ProtocolError("XML: no element");
}

std::optional<XmlDocument::Element> XmlDocument::child(Element parent, std::string_view name) const {
  for (Element e = parent + 1; e < nodes_.at(parent).end; e = nodes_[e].end) {
    if (nodes_[e].name == name) return e;
  }
  return std::nullopt;
}

std::vector<XmlDocument::Element> XmlDocument::children(Element parent, std::string_view name) const {
  std::vector<Element> out;
  for (Element e = parent + 1; e < nodes_.at(parent).end; e = nodes_[e].end) {
    if (nodes_[e].name == name) out.push_back(e);
  }
  return out;
}

std::optional<std::string> XmlDocument::child_text(Element parent, std::string_view name) const {
  const auto e = child(parent, name);
  if (!e) return std::nullopt;
  return nodes_[*e].text;
}

std::optional<XmlDocument::Element> XmlDocument::find(std::string_view name, Element within) const {
  for (Element e = within + 1; e < nodes_.at(within).end; ++e) {
    if (nodes_[e].name == name) return e;
  }
  return std::nullopt;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\r': out += "&#13;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace kclpp::aws::detail
