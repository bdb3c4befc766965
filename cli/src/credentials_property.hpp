#pragma once
// The Java MultiLangDaemon's AWSCredentialsProvider values (and their DynamoDB / CloudWatch
// variants) as kclpp providers: docs/aws.md §4.
#include <map>
#include <string>
#include <vector>

#include "kclpp/aws/credentials.hpp"

namespace kclpp::app::detail {

// One entry of the value: `Name|arg|arg|key=value`. Name without its Java package.
struct ProviderSpec {
  std::string name;
  std::vector<std::string> args;
  std::map<std::string, std::string> properties;
};

// Parses a comma-separated list of provider entries. Throws ConfigError naming `where`
// (e.g. "app.properties:7: AwsCredentialsProvider") for an empty value, an unknown
// provider, or a provider missing its arguments.
[[nodiscard]] std::vector<ProviderSpec> parse_credentials_providers(const std::string& value,
                                                                    const std::string& where);

// The provider for a parsed list: one entry as itself; several as a chain whose first
// entry that yields credentials is used (as the SDK's chain). Resolves now. Throws
// AuthError / ConfigError / TransportError as the providers do, naming `where`.
[[nodiscard]] aws::CredentialsProviderPtr make_credentials_provider(const std::vector<ProviderSpec>& specs,
                                                                    const std::string& region,
                                                                    const std::string& where);

}  // namespace kclpp::app::detail
