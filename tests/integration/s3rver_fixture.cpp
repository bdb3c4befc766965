#include "s3rver_fixture.hpp"

#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "kclpp/processor/error.hpp"
#include "support.hpp"

namespace kclpp::test {

namespace fs = std::filesystem;

S3rver::S3rver(const std::vector<std::string>& extra_access_keys) {
  const std::string node = find_on_path("node");
  const fs::path script = fs::path(KCLPP_SOURCE_DIR) / "node_modules" / "s3rver" / "bin" / "s3rver.js";
  if (node.empty()) {
    unavailable_reason_ = "node is not on PATH (needed for s3rver)";
    return;
  }
  if (!fs::exists(script)) {
    unavailable_reason_ = script.string() + " is missing: run `npm ci` in " + KCLPP_SOURCE_DIR;
    return;
  }
  static int counter = 0;
  data_dir_ = fs::temp_directory_path() /
              ("kclpp_s3rver_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
  fs::remove_all(data_dir_);
  fs::create_directories(data_dir_);
  // A free port can be taken between unused_port() and the server's bind: try again.
  std::string last_log;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int port = unused_port();
    // s3rver encrypts its ListObjectsV2 continuation tokens with DES, which Node 17+
    // (OpenSSL 3) only offers from the legacy provider: without it every truncated listing
    // is an InternalError.
    std::vector<std::string> argv{node, "--openssl-legacy-provider", script.string(), "-d", data_dir_.string(), "-a", "127.0.0.1",
                                  "-p", std::to_string(port), "--silent"};
    if (!extra_access_keys.empty()) {
      std::string keys;
      for (const auto& k : extra_access_keys) keys += (keys.empty() ? "" : ",") + k;
      const fs::path wrapper = fs::path(KCLPP_SOURCE_DIR) / "tests" / "node" / "s3rver_keys.js";
      argv.insert(argv.begin() + 2, {wrapper.string(), keys});
    }
    endpoint_ = "http://127.0.0.1:" + std::to_string(port);
    process_ = std::make_unique<Subprocess>(argv);

    aws::S3Options probe_options = s3_options();
    probe_options.connect_timeout = std::chrono::milliseconds{500};
    probe_options.low_speed_timeout = std::chrono::milliseconds{2'000};
    aws::S3Client probe(probe_options);
    // (NoSuchBucket is an answer.)
    const ServerStart started = wait_until_answering(
        *process_, [&probe] { (void)probe.head_object("kclpp-readiness-probe", "k"); }, std::chrono::seconds{30});
    if (started == ServerStart::Answering) return;
    last_log = process_->stderr_text();
    process_.reset();
    if (started == ServerStart::TimedOut) break;  // it runs but never answered: retrying will not help
  }
  std::error_code ec;
  fs::remove_all(data_dir_, ec);
  throw std::runtime_error("s3rver did not start; its stderr:\n" + last_log);
}

S3rver::~S3rver() {
  process_.reset();  // SIGKILL + reap before its files go
  if (!data_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(data_dir_, ec);
  }
}

aws::S3Options S3rver::s3_options() const {
  aws::S3Options o;
  o.endpoint = endpoint_;
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

std::string S3rver::server_log() const { return process_ ? process_->stderr_text() : std::string{}; }

}  // namespace kclpp::test
