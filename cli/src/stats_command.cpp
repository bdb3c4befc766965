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
#include "kclpp/aws/dynamodb_client.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/pipeline/metrics.hpp"
#include "kclpp/processor/error.hpp"
#include "native_runner.hpp"
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

// The same for a DynamoDB table: the store would create a missing one.
void require_existing_table(const StatsStore& store) {
  if (!is_dynamodb_uri(store.uri)) return;
  aws::DynamoDbClient client(store.options.dynamodb);
  if (!client.describe_table(dynamodb_table(store.uri)))
    throw ConfigError("DynamoDB table " + dynamodb_table(store.uri) + " does not exist (at " +
                      (client.options().endpoint.empty() ? std::string("the default endpoint")
                                                         : client.options().endpoint) +
                      ")");
}

}  // namespace

StatsStore stats_store(const Args& args, const std::string& url, const std::string& client) {
  StatsStore store;
  store.uri = native::triton_db_uri(url);
  aws::KinesisOptions aws_options;  // the region and profile every kclpp client resolves alike
  aws_options.region = args.get_or("region", "");
  aws_options.profile.profile = args.get_or("profile", "");
  const std::string endpoint = args.get_or("dynamodb-endpoint", "");
  if (!is_dynamodb_uri(store.uri)) {
    for (const char* option : {"dynamodb-endpoint", "region", "profile"}) {
      if (args.has(option))
        throw ConfigError(std::string("--") + option + " is for a dynamodb: store; the store is " +
                          store_uri_for_log(store.uri));
    }
    return store;
  }
  // The lease table's default name, as for the workers: the application (client) name.
  if (dynamodb_table(store.uri).empty()) store.uri = "dynamodb:" + client;
  store.options = store_options_like(aws_options, endpoint);
  return store;
}

Args stats_args() {
  Args args("kclpp stats --checkpoint-db URL --client NAME",
            "Prints the age of every checkpoint of a client, one line per shard in Graphite's\n"
            "plaintext format: <client>.<stream>.<shard>.age <seconds> <unix_now> (what\n"
            "go-triton's `triton stats` prints; pipe it to Graphite port 2003). URLs as go-triton\n"
            "takes them mean its triton_checkpoint table: sqlite://PATH (go-triton itself always\n"
            "opened ./triton-s3.db) or postgres://...; kclpp's own store URIs work too\n"
            "(sqlite:PATH, triton+sqlite:PATH, triton+postgres://..., dynamodb:TABLE: a Java KCL\n"
            "or kclpp lease table, whose default name is the client name; it keeps no write time,\n"
            "so its ages print as \"-\").");
  args.option("checkpoint-db", "URL", "the checkpoint database (default: $TRITON_DB, else triton+sqlite:triton.db, "
              "where `kclpp store` writes by default)")
      .option("checkpoint-store", "URL", "the same as --checkpoint-db")
      .option("client", "NAME", "the client (application) name (default: $TRITON_CLIENT; required)")
      .option("client-name", "NAME", "go-triton's name for --client")
      .option("dynamodb-endpoint", "URL",
              "DynamoDB endpoint of a dynamodb: store, e.g. http://127.0.0.1:8000 (default: "
              "$AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL, the profile's, else "
              "https://dynamodb.REGION.amazonaws.com)")
      .option("region", "REGION", "AWS region of a dynamodb: store (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)")
      .option("profile", "NAME", "profile of ~/.aws/credentials and ~/.aws/config (default: $AWS_PROFILE)")
      .flag("skip-shard-end", "leave out shards checkpointed at SHARD_END (closed and finished)");
  return args;
}

int stats_command(const std::vector<std::string>& argv) {
  Args args = stats_args();
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  std::string url = args.get_or("checkpoint-db", args.get_or("checkpoint-store", env_or_empty("TRITON_DB")));
  if (url.empty()) url = "triton+sqlite:triton.db";
  std::string client = args.get_or("client", args.get_or("client-name", env_or_empty("TRITON_CLIENT")));
  if (client.empty()) throw ConfigError("--client NAME (or $TRITON_CLIENT) is required (see --help)");

  const StatsStore where = stats_store(args, url, client);
  require_existing_sqlite(where.uri);
  require_existing_table(where);
  const auto store = native::open_checkpoint_store(where.uri, where.options);
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
