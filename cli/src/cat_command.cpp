// `kclpp cat`: replays the archives of a stream between two days as JSON lines on stdout
// (go-triton's `triton cat`, docs/triton.md §3.3 and §8, with pagination). A tool, not
// protocol mode: stdout is its output.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "args.hpp"
#include "kclpp/pipeline/config.hpp"
#include "kclpp/pipeline/store_reader.hpp"
#include "kclpp/pipeline/value.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "native_runner.hpp"
#include "pipeline_commands.hpp"

namespace kclpp::app::detail {
namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

// stdout in large writes; a failed write (disk full, closed pipe without SIGPIPE) is an
// error, not silently short output.
class Output {
 public:
  void line(const std::string& text) {
    buffer_ += text;
    buffer_.push_back('\n');
    if (buffer_.size() >= (1u << 16)) flush();
  }
  void flush() {
    if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), stdout) != buffer_.size()) {
      throw TransportError("kclpp cat: cannot write to stdout", Retry::No);
    }
    buffer_.clear();
    if (std::fflush(stdout) != 0) throw TransportError("kclpp cat: cannot write to stdout", Retry::No);
  }

 private:
  std::string buffer_;
};

}  // namespace

int cat_command(const std::vector<std::string>& argv) {
  Args args("kclpp cat --stream NAME --bucket BUCKET --start-date YYYYMMDD [--end-date YYYYMMDD] [options]",
            "Prints the archived records of a Triton stream as JSON lines, one per record: every\n"
            "YYYYMMDD/<stream>-<client>-<unix>.tri archive of the UTC days from --start-date to\n"
            "--end-date (both included), in (day, timestamp) order, every listing page of a day.\n"
            "bin values print as base64 strings, Go times as RFC 3339. Records that are not maps\n"
            "are skipped with a warning on stderr. More than one client in the range is an error\n"
            "unless --client picks one.");
  args.option("stream", "NAME", "the stream's logical name in the Triton config (required)")
      .option("config", "PATH", "Triton stream config (default: $TRITON_CONFIG, else /etc/triton.yaml)")
      .option("bucket", "BUCKET", "S3 bucket (default: $TRITON_BUCKET; required)")
      .option("start-date", "YYYYMMDD", "first day (UTC, required)")
      .option("end-date", "YYYYMMDD", "last day (UTC; default: the start date)")
      .option("client", "NAME", "only this client's archives (default: $TRITON_CLIENT, else any)")
      .option("client-name", "NAME", "go-triton's name for --client")
      .option("s3-endpoint", "URL", "S3 endpoint, e.g. http://127.0.0.1:4569 (default: AWS; path-style when set)")
      .option("read-size-mb", "MB", "bytes fetched per ranged GET, in MiB", "8")
      .option("list-page-size", "N", "keys per listing page, 1..1000", "1000");
  add_client_options(args);  // --region, --profile (--endpoint is Kinesis's: unused here)
  if (!args.parse(argv)) {
    std::fputs(args.help().c_str(), stderr);
    return 0;
  }
  if (!args.positional().empty()) {
    throw ConfigError("kclpp cat: unexpected argument '" + args.positional().front() + "' (see --help)");
  }
  const auto logical = args.get("stream");
  if (!logical || logical->empty()) throw ConfigError("kclpp cat: --stream NAME is required (see --help)");
  const auto start = args.get("start-date");
  if (!start) throw ConfigError("kclpp cat: --start-date YYYYMMDD is required (see --help)");
  const pipeline::TritonConfig config = pipeline::TritonConfig::load(args.get_or("config", ""));
  const pipeline::StreamConfig& stream = config.stream(*logical);

  pipeline::StoreReaderOptions options;
  options.stream = stream.name;  // archive keys carry the real name (docs/triton.md §1)
  options.bucket = args.get_or("bucket", env_or_empty("TRITON_BUCKET"));
  if (options.bucket.empty()) throw ConfigError("kclpp cat: --bucket (or $TRITON_BUCKET) is required");
  options.client = args.get_or("client", args.get_or("client-name", env_or_empty("TRITON_CLIENT")));
  options.start_day = *start;
  options.end_day = args.get_or("end-date", "");
  options.read_size = static_cast<std::uint64_t>(*args.get_int("read-size-mb", 1, 1024)) << 20;
  options.list_page_size = static_cast<int>(*args.get_int("list-page-size", 1, 1000));
  const aws::KinesisOptions aws = client_options(args);
  // --region, else the stream's region from the config (go-triton's cat hard-coded
  // us-west-1, docs/triton.md §1), else the AWS chain.
  options.s3.region = aws.region.empty() ? stream.region : aws.region;
  options.s3.endpoint = args.get_or("s3-endpoint", "");
  options.s3.profile = aws.profile;

  pipeline::StoreReader reader(options);
  log_info("kclpp cat: ", reader.archives().size(), " archive", reader.archives().size() == 1 ? "" : "s",
           " of stream '", stream.name, "' in s3://", options.bucket);
  Output out;
  std::uint64_t records = 0;
  std::uint64_t skipped = 0;
  while (auto record = reader.next()) {
    if (!record->ok()) {
      ++skipped;
      log_warn("kclpp cat: skipping a record of ", reader.current()->s3_key, ": ", record->error);
      continue;
    }
    out.line(pipeline::to_json(record->map));
    ++records;
  }
  out.flush();
  log_info("kclpp cat: ", records, " records printed", skipped > 0 ? ", " + std::to_string(skipped) + " skipped" : "");
  return 0;
}

}  // namespace kclpp::app::detail
