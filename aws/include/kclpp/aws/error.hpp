#pragma once
// The error type of an AWS service's error reply, shared by every client in kclpp::aws.
#include <string>

#include "kclpp/processor/error.hpp"

namespace kclpp::aws {

// An error reply of an AWS service that has no more specific kclpp type: `type()` is the
// AWS error code without its namespace prefix (`__type` "...#ResourceNotFoundException" →
// "ResourceNotFoundException"; S3's and STS's <Code>). Throttling replies are
// ThrottledError, credential and signature replies AuthError, 5xx and network failures
// TransportError (retryable).
class AwsError : public Error {
 public:
  AwsError(const std::string& what, std::string type, int http_status, Retry retry);
  [[nodiscard]] const std::string& type() const noexcept { return type_; }
  [[nodiscard]] int http_status() const noexcept { return http_status_; }

 private:
  std::string type_;
  int http_status_;
};

}  // namespace kclpp::aws
