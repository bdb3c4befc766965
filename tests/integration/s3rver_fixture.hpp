#pragma once
// Integration-test helper for the S3 client and everything built on it (archiver, archive
// reader): a local S3 server (s3rver from the project's node_modules) on a free loopback
// port with its own temporary data directory.
//
//   kclpp::test::S3rver s3;
//   KCLPP_REQUIRE_SERVER(s3);                       // skip locally / fail in CI without node
//   s3.create_bucket("archive");
//   aws::S3Client client(s3.s3_options());
//
// s3rver knows only the access key S3RVER (others: InvalidAccessKeyId → AuthError) and does
// not verify SigV4 signatures (the signing tests compare against python3-botocore instead).
// Quirks of its filesystem store that real S3 does not have: "." and ".." path segments in
// keys are collapsed; a paginated listing over keys "p/..." and "p+x/..." (a directory
// name that is a prefix of a sibling's) skips keys; multipart ETags have no "-N" suffix;
// re-creating an existing bucket is BucketAlreadyExists.

#include <filesystem>
#include <string>
#include <vector>

#include "kclpp/aws/s3_client.hpp"
#include "local_server.hpp"  // in_ci(), KCLPP_REQUIRE_SERVER, unused_port()

namespace kclpp::test {

// An s3rver process on 127.0.0.1 and a free port, ready (it answered a request) when the
// constructor returns; the destructor SIGKILLs and reaps it and removes its data directory.
// When node or the npm package is missing the server is unavailable() (use
// KCLPP_REQUIRE_SERVER); when it is there but does not start, the constructor throws
// std::runtime_error. Thread safety: the const accessors may be called from any thread;
// create_bucket from one thread at a time.
class S3rver {
 public:
  // `extra_access_keys`: keys s3rver accepts besides S3RVER (tests whose credentials rotate).
  explicit S3rver(const std::vector<std::string>& extra_access_keys = {});
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  [[nodiscard]] bool available() const noexcept { return server_.available(); }
  // Why the server could not be started (empty when it runs).
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return server_.unavailable_reason(); }
  // "http://127.0.0.1:PORT".
  [[nodiscard]] const std::string& endpoint() const noexcept { return server_.endpoint(); }
  // Endpoint (path-style addressing), region us-east-1, s3rver's default credentials
  // S3RVER/S3RVER (nothing read from the environment), short timeouts.
  [[nodiscard]] aws::S3Options s3_options() const { return options_for(endpoint()); }
  // The same options for another endpoint.
  [[nodiscard]] static aws::S3Options options_for(const std::string& endpoint);
  // Creates `bucket` (through S3Client::create_bucket). Throws kclpp::Error on failure.
  void create_bucket(const std::string& bucket) const;
  // The server's data directory (removed by the destructor).
  [[nodiscard]] const std::filesystem::path& data_dir() const noexcept { return data_dir_.path(); }
  // Everything the server wrote to stderr so far (for failure messages).
  [[nodiscard]] std::string server_log() const { return server_.server_log(); }

 private:
  TempDir data_dir_;   // declared first: removed after the server is gone
  NodeServer server_;
};

}  // namespace kclpp::test
