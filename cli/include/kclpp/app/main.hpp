#pragma once
// The one entry point for user programs. The same binary runs its processor
//   - behind the MultiLangDaemon protocol on stdin/stdout when started with no mode option
//     (as the Java daemon's or `kclpp daemon`'s executableName), or
//   - natively, reading Kinesis itself, with --stream NAME (see --help).
#include <functional>
#include <memory>
#include <string>

#include "kclpp/processor/record_processor.hpp"

namespace kclpp {

// Makes the processor of one shard (native mode: one per shard, on that shard's thread;
// protocol mode: one, when initialize names the shard).
using ProcessorFactory = std::function<std::unique_ptr<RecordProcessor>(const std::string& shard_id)>;

// Parses argv and runs. Returns the exit code for main(): 0 after a clean end (stdin EOF,
// or SIGTERM/SIGINT in native mode), 1 for bad options or a fatal error (logged), and in
// protocol mode kcl::run's codes (2 protocol error, 3 processor failed). Never throws.
//
//   int main(int argc, char** argv) {
//     return kclpp::main([](const std::string&) { return std::make_unique<MyProcessor>(); },
//                        argc, argv);
//   }
int main(const ProcessorFactory& factory, int argc, char** argv);

}  // namespace kclpp
