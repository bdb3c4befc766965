// The `kclpp` command-line tool.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "daemon.hpp"
#include "pipeline_commands.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"

namespace {

constexpr const char* usage =
    "usage: kclpp COMMAND [options]     (kclpp COMMAND --help for its options)\n"
    "\n"
    "commands:\n"
    "  daemon app.properties   run multilang children per shard, in place of the Java MultiLangDaemon\n"
    "  shards                  list the shards of a stream\n"
    "  put                     put stdin lines as records\n"
    "  get                     print records as JSON lines (--follow to keep reading)\n"
    "  create-stream           create a stream and wait until it is active\n"
    "  delete-stream           delete a stream\n"
    "  conformance -- CHILD    check a multilang child against the daemon's scenarios (a report, exit 0/1/2)\n"
    "\n"
    "Triton pipeline (logical stream names from --config, $TRITON_CONFIG or /etc/triton.yaml):\n"
    "  store                   archive a stream to S3 as .tri files, checkpointing after each upload\n"
    "  cat                     print archived records of a day range as JSON lines\n"
    "  spoold                  the non-blocking spool daemon (tritond wire) feeding PutRecords\n"
    "  stats                   checkpoint ages per shard, Graphite plaintext\n"
    "\n"
    "Common options: --stream NAME, --endpoint URL (e.g. http://127.0.0.1:4567), --region,\n"
    "--profile. Credentials, as the AWS SDKs find them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n"
    "[/AWS_SESSION_TOKEN]; web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, EKS IRSA);\n"
    "the profile of ~/.aws/credentials and ~/.aws/config (AWS_PROFILE: keys, role_arn,\n"
    "credential_process, web_identity_token_file); ECS/EKS container credentials; EC2\n"
    "instance metadata (IMDSv2). Temporary credentials are refreshed before they expire.\n"
    "Endpoints: --endpoint, else AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the profile's\n"
    "endpoint_url. Logs: stderr, KCLPP_LOG_LEVEL.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  using namespace kclpp::app::detail;
  try {
    if (command == "daemon") return daemon_command(args);
    if (command == "conformance") return conformance_command(args);
    if (command == "shards") return shards_command(args);
    if (command == "put") return put_command(args);
    if (command == "get") return get_command(args);
    if (command == "create-stream") return create_stream_command(args);
    if (command == "delete-stream") return delete_stream_command(args);
    if (command == "store") return store_command(args);
    if (command == "cat") return cat_command(args);
    if (command == "spoold") return spoold_command(args);
    if (command == "stats") return stats_command(args);
    kclpp::log_error("kclpp: unknown command '", command, "'\n", usage);
    return 1;
  } catch (const std::exception& e) {
    log_fatal("kclpp " + command + ": " + e.what());
    return 1;
  }
}
