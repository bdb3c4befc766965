#pragma once
// DynamoDB's JSON wire form of an item ({"name": {"S": "..."}, ...}), for the fuzz target.
#include <string_view>

#include "kclpp/aws/dynamodb_client.hpp"

namespace kclpp::aws::detail {

// The item in `json_text`. Throws ProtocolError for anything that is not one (bad JSON, an
// unknown type, a set that is not an array of strings, bad base64, nesting past the limit).
[[nodiscard]] Item parse_item_json(std::string_view json_text);

}  // namespace kclpp::aws::detail
