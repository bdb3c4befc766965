// `kclpp stats`: checkpoint ages per shard in Graphite's plaintext format, as go-triton's
// `triton stats` prints them (docs/triton.md §8): `<client>.<stream>.<shard>.age <seconds>
// <unix_now>`, one line per checkpoint row, on stdout.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/pipeline/metrics.hpp"
#include "kclpp/processor/error.hpp"
#include "pipeline_commands.hpp"

namespace kclpp::app::detail {
namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

// A monitoring tool must not create a database where there was none (a typo in the path
// would otherwise print nothing, forever, and leave an empty file behind).
void require_existing_sqlite(const std::string& uri) {
  for (const std::string scheme : {"sqlite:", "triton+sqlite:"}) {
    if (uri.size() > scheme.size() && uri.compare(0, scheme.size(), scheme) == 0) {
      const std::string path = uri.substr(scheme.size());
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        throw ConfigError("checkpoint database " + path + " does not exist");
      }
    }
  }
}

}  // namespace

int stats_command(const std::vector<std::string>& argv) {
  Args args("kclpp stats --checkpoint-db URL --client NAME",
            "Prints the age of every checkpoint of a client, one line per shard in Graphite's\n"
            "plaintext format: <client>.<stream>.<shard>.age <seconds> <unix_now> (what\n"
            "go-triton's `triton stats` prints; pipe it to Graphite port 2003). URLs as go-triton\n"
            "takes them mean its triton_checkpoint table: sqlite://PATH (go-triton itself always\n"
            "opened ./triton-s3.db) or postgres://...; kclpp's own store URIs work too\n"
            "(sqlite:PATH, triton+sqlite:PATH, triton+postgres://..., dynamodb:[TABLE]). The\n"
            "Java KCL's DynamoDB lease table keeps no write time: its ages print as \"-\".");
  args.option("checkpoint-db", "URL", "the checkpoint database (default: $TRITON_DB, else triton+sqlite:triton.db, "
              "where `kclpp store` writes by default)")
      .option("checkpoint-store", "URL", "the same as --checkpoint-db")
      .option("client", "NAME", "the client (application) name (default: $TRITON_CLIENT; required)")
      .option("client-name", "NAME", "go-triton's name for --client")
      .flag("skip-shard-end", "leave out shards checkpointed at SHARD_END (closed and finished)");
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  std::string url = args.get_or("checkpoint-db", args.get_or("checkpoint-store", env_or_empty("TRITON_DB")));
  if (url.empty()) url = "triton+sqlite:triton.db";
  std::string client = args.get_or("client", args.get_or("client-name", env_or_empty("TRITON_CLIENT")));
  if (client.empty()) throw ConfigError("--client NAME (or $TRITON_CLIENT) is required (see --help)");

  const std::string uri = native::triton_db_uri(url);
  require_existing_sqlite(uri);
  const auto store = native::open_checkpoint_store(uri);
  const auto checkpoints = store->list(client);
  const auto now = std::chrono::system_clock::now();
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::string client_part = pipeline::metric_name_part(client);
  std::string out;
  for (const auto& c : checkpoints) {
    if (args.has("skip-shard-end") && c.position.sentinel() == Sentinel::ShardEnd) continue;
    // Whole seconds as Triton prints them; a clock step back shows as 0, not negative. A
    // store that keeps no write time (the KCL's DynamoDB lease table) reports the epoch:
    // its age is unknown and printed as "-" (Graphite drops such a line) rather than as
    // half a century.
    const bool time_known = c.updated != std::chrono::system_clock::time_point{};
    const auto age = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(now - c.updated).count());
    // Graphite splits names on '.': a part with one (or a space) would shift the path. The
    // KCL's lease table holds one stream and does not name it: no empty part for it.
    out += client_part + "." + (c.stream.empty() ? std::string() : pipeline::metric_name_part(c.stream) + ".") +
           pipeline::metric_name_part(c.shard_id) + ".age " + (time_known ? std::to_string(age) : "-") + " " +
           std::to_string(now_s) + "\n";
  }
  std::cout << out << std::flush;
  return 0;
}

}  // namespace kclpp::app::detail
