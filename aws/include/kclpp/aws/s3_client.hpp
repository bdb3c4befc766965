#pragma once
// A small Amazon S3 client over libcurl with SigV4: PUT (multipart above a threshold),
// streaming GET, ListObjectsV2 with pagination, DELETE, bucket creation (for tools/tests).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/aws/error.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::aws {

enum class Addressing { Auto, PathStyle, VirtualHosted };

struct S3Options {
  // Empty: resolve_region().
  std::string region;
  // Empty: resolve_endpoint("S3", ...): $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, the
  // profile's endpoint_url, else https://s3.<region>.amazonaws.com. For local servers, e.g.
  // "http://127.0.0.1:4569".
  std::string endpoint;
  // Auto: path-style when an endpoint is given or the bucket name has dots, else
  // virtual-hosted.
  Addressing addressing = Addressing::Auto;
  // Null: shared_default_credentials(profile), the process's one default chain.
  CredentialsProviderPtr credentials;
  ProfileOptions profile;
  std::chrono::milliseconds connect_timeout{5'000};
  // Without any byte moving for this long, a request fails (large bodies may take longer
  // in total).
  std::chrono::milliseconds low_speed_timeout{30'000};
  // Files of at least this size go up as multipart uploads of part_size parts.
  std::uint64_t multipart_threshold = 16ull << 20;
  std::uint64_t part_size = 8ull << 20;  // S3's minimum is 5 MiB (except the last part)
  // Parts of a multipart upload in flight at once, each on its own connection (the
  // caller's thread and upload_parallelism - 1 helper threads, joined before put_file
  // returns; memory: about upload_parallelism * part_size). go-triton's uploader sends 5.
  int upload_parallelism = 4;
  // put_file's retries of each of its requests (a whole-object PUT, each multipart call):
  // all are idempotent. The only retries the client makes; other calls never retry.
  RetryPolicy retry{};
};

struct S3Object {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;  // without S3's surrounding double quotes (everywhere in this API)
  std::string last_modified;  // as S3 sends it (ISO 8601)
};

struct PutObjectResult {
  std::string etag;  // unquoted; empty if the server sent none
  int parts = 1;  // 1 for a single PUT
};

// Not thread-safe: one per thread (each holds its own connection). Move-only.
// Every call throws: AwsError with the S3 error code (NoSuchKey, NoSuchBucket,
// AccessDenied; not retryable), AuthError (InvalidAccessKeyId, SignatureDoesNotMatch),
// ThrottledError (SlowDown, 503), TransportError (network, 5xx; retryable), ProtocolError
// (unparseable reply). Every S3 call made here is idempotent, so a connection lost after
// the request was sent is a TransportError, never an InDoubtError. The client never
// retries by itself except inside put_file (see there). Messages name bucket and key.
class S3Client {
 public:
  // Resolves region, endpoint and the credentials provider when not given. Requests are
  // signed with the provider's current credentials (refreshed as they near expiry); a reply
  // saying they expired makes the provider fetch new ones, and the request goes once more. Throws ConfigError (no region, an
  // endpoint that is not scheme://host[:port], part_size 0), AuthError (no credentials
  // anywhere). An invalid bucket name (empty, '/') in a call: ConfigError.
  explicit S3Client(S3Options options);
  ~S3Client();
  S3Client(S3Client&&) noexcept;
  S3Client& operator=(S3Client&&) noexcept;

  [[nodiscard]] const S3Options& options() const noexcept;

  PutObjectResult put_object(const std::string& bucket, const std::string& key,
                             std::string_view body, const std::string& content_type = {});
  // Uploads a file: a single PUT below multipart_threshold, else a multipart upload (parts
  // of part_size, raised so that there are at most 10,000; upload_parallelism of them at
  // a time). Every request is retried with kclpp::retry (idempotent); when a part fails
  // after its retries, no further part starts, the ones in flight finish, the upload is
  // aborted and that part's error propagates. A file that cannot be read:
  // TransportError(Retry::No).
  PutObjectResult put_file(const std::string& bucket, const std::string& key,
                           const std::string& path, const std::string& content_type = {});
  // Streams the object's body into `sink` as it arrives (memory bounded by the transfer
  // buffer). Returns the object's size. A sink that throws aborts the transfer (its
  // exception propagates).
  std::uint64_t get_object(const std::string& bucket, const std::string& key,
                           const std::function<void(std::string_view)>& sink);
  [[nodiscard]] std::string get_object(const std::string& bucket, const std::string& key);
  // Bytes [offset, offset + length) of the object (fewer at its end; empty past it): a
  // ranged GET, so that a pulling reader needs no thread.
  [[nodiscard]] std::string get_object_range(const std::string& bucket, const std::string& key,
                                             std::uint64_t offset, std::uint64_t length);
  // Every object under `prefix`, following continuation tokens; `page_size` is max-keys
  // (0: S3's default of 1,000). In key order.
  [[nodiscard]] std::vector<S3Object> list_objects(const std::string& bucket,
                                                   const std::string& prefix,
                                                   int page_size = 0);
  // nullopt when the object does not exist (404). last_modified converted to ISO 8601.
  [[nodiscard]] std::optional<S3Object> head_object(const std::string& bucket,
                                                    const std::string& key);
  // Deleting a missing key succeeds (as on S3).
  void delete_object(const std::string& bucket, const std::string& key);
  // With a LocationConstraint outside us-east-1. A bucket we already own counts as created
  // (BucketAlreadyOwnedByYou); one owned by someone else is AwsError BucketAlreadyExists.
  void create_bucket(const std::string& bucket);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kclpp::aws
