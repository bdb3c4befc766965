#pragma once
// Integration-test helpers for the Kinesis client and everything built on it: a local
// Kinesis server (kinesalite or kinesis-local from the project's node_modules) started on a
// free loopback port. (The in-process fake server is fake_http_server.hpp.)
//
//   kclpp::test::Kinesalite server;           // or Kinesalite(KinesisServer::KinesisLocal)
//   KCLPP_REQUIRE_SERVER(server);             // skip locally / fail in CI when node is missing
//   aws::KinesisClient client(server.client_options());

#include <filesystem>
#include <string>
#include <vector>

#include "kclpp/aws/kinesis_client.hpp"
#include "local_server.hpp"

namespace kclpp::test {

enum class KinesisServer { Kinesalite, KinesisLocal };

// "kinesalite" / "kinesis-local" (for test names).
[[nodiscard]] const char* server_name(KinesisServer kind) noexcept;

// A local Kinesis server process on 127.0.0.1 and a free port, ready (it answered a request)
// when the constructor returns; SIGKILLed and reaped by the destructor. Stream creation,
// deletion and resharding take no time. When node or the npm package is missing the
// server is unavailable() (use KCLPP_REQUIRE_SERVER); when it is there but does not start,
// the constructor throws std::runtime_error. Thread safety: the accessors are const.
class Kinesalite {
 public:
  explicit Kinesalite(KinesisServer kind = KinesisServer::Kinesalite);
  // kinesis-local with its TLS port serving `tls_certificate`, a server.json as kinesis-local
  // reads it ({"server":{"key":PEM,"cert":PEM}}; see write_tls_certificate).
  explicit Kinesalite(const std::filesystem::path& tls_certificate);
  Kinesalite(const Kinesalite&) = delete;
  Kinesalite& operator=(const Kinesalite&) = delete;

  [[nodiscard]] bool available() const noexcept { return server_.available(); }
  // Why the server could not be started (empty when it runs).
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return server_.unavailable_reason(); }
  [[nodiscard]] KinesisServer kind() const noexcept { return kind_; }
  // "http://127.0.0.1:PORT".
  [[nodiscard]] const std::string& endpoint() const noexcept { return server_.endpoint(); }
  // "https://127.0.0.1:TLS_PORT" of a kinesis-local started with a certificate, else "".
  [[nodiscard]] std::string tls_endpoint() const {
    return tls_port_ > 0 ? "https://127.0.0.1:" + std::to_string(tls_port_) : std::string();
  }
  // Endpoint, region us-east-1 and fixed dummy credentials (nothing read from the
  // environment), short timeouts.
  [[nodiscard]] aws::KinesisOptions client_options() const;
  // Everything the server wrote to stderr so far (for failure messages).
  [[nodiscard]] std::string server_log() const { return server_.server_log(); }

 private:
  KinesisServer kind_;
  int tls_port_ = 0;
  NodeServer server_;
};

// A self-signed certificate for 127.0.0.1 made with the openssl tool: `dir`/ca.pem (trust it
// with AWS_CA_BUNDLE) and `dir`/server.json for Kinesalite(tls_certificate). Returns the
// server.json path; throws std::runtime_error when openssl fails.
std::filesystem::path write_tls_certificate(const std::filesystem::path& dir);

// Every record of `stream` as stored, shard by shard in ListShards order: GetRecords from
// TRIM_HORIZON until each shard is caught up or closed (at most `max_reads` per shard).
// Throws what the client throws.
[[nodiscard]] std::vector<Record> read_stream(aws::KinesisClient& client, const std::string& stream,
                                              int max_reads = 1000);

}  // namespace kclpp::test
