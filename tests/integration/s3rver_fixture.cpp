#include "s3rver_fixture.hpp"

#include <chrono>
#include <vector>

namespace kclpp::test {

namespace fs = std::filesystem;

namespace {

NodeServerSpec s3rver_spec(const fs::path& data_dir, const std::vector<std::string>& extra_access_keys) {
  NodeServerSpec spec;
  spec.name = "s3rver";
  spec.script = "s3rver/bin/s3rver.js";
  spec.argv = [data_dir, extra_access_keys](const std::string& node, const std::string& script, int port) {
    // s3rver encrypts its ListObjectsV2 continuation tokens with DES, which Node 17+
    // (OpenSSL 3) only offers from the legacy provider: without it every truncated listing
    // is an InternalError.
    std::vector<std::string> argv{node, "--openssl-legacy-provider", script, "-d", data_dir.string(),
                                  "-a", "127.0.0.1", "-p", std::to_string(port), "--silent"};
    if (!extra_access_keys.empty()) {
      std::string keys;
      for (const auto& k : extra_access_keys) keys += (keys.empty() ? "" : ",") + k;
      const fs::path wrapper = fs::path(KCLPP_SOURCE_DIR) / "tests" / "node" / "s3rver_keys.js";
      argv.insert(argv.begin() + 2, {wrapper.string(), keys});
    }
    return argv;
  };
  // (NoSuchBucket is an answer.)
  spec.probe = [](const std::string& endpoint) {
    aws::S3Options options = S3rver::options_for(endpoint);
    options.connect_timeout = std::chrono::milliseconds{500};
    options.low_speed_timeout = std::chrono::milliseconds{2'000};
    aws::S3Client probe(options);
    (void)probe.head_object("kclpp-readiness-probe", "k");
  };
  return spec;
}

}  // namespace

S3rver::S3rver(const std::vector<std::string>& extra_access_keys)
    : data_dir_("kclpp_s3rver"), server_(s3rver_spec(data_dir_.path(), extra_access_keys)) {}

aws::S3Options S3rver::options_for(const std::string& endpoint) {
  aws::S3Options o;
  o.endpoint = endpoint;
  o.region = "us-east-1";
  o.addressing = aws::Addressing::PathStyle;
  o.credentials = aws::static_credentials({"S3RVER", "S3RVER", ""});
  o.connect_timeout = std::chrono::milliseconds{2'000};
  o.low_speed_timeout = std::chrono::milliseconds{20'000};
  return o;
}

void S3rver::create_bucket(const std::string& bucket) const {
  aws::S3Client client(s3_options());
  client.create_bucket(bucket);
}

}  // namespace kclpp::test
