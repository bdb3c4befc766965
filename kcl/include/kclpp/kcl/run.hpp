#pragma once
// The child side of the KCL MultiLangDaemon protocol: kcl::run() puts a RecordProcessor
// behind stdin/stdout so the Java daemon (or `kclpp daemon`) can drive it.

#include <cstddef>

#include "kclpp/processor/record_processor.hpp"
#include "kclpp/processor/retry.hpp"

namespace kclpp::kcl {

// Whether run() protects the protocol from stray writes to stdout by user code.
//  On: the protocol writes to a private duplicate of fd 1 and fd 1 is re-pointed to
//      stderr, so printf / std::cout land in the daemon's log instead of the protocol.
enum class StdoutGuard { On, Off };

struct RunOptions {
  // Applies to exceptions thrown by initialize / process_records / shard_ended.
  OnProcessorError on_processor_error = OnProcessorError::Fail;
  // Retries of the Checkpointer handed to the processor (ThrottlingException and
  // KinesisClientLibDependencyException only).
  RetryPolicy checkpoint_retry{};
  // F_SETPIPE_SZ for the input and output pipes (bytes; 0 keeps the OS default). Larger
  // pipes cut the number of context switches per processRecords line.
  std::size_t pipe_size = std::size_t{1} << 20;
  int input_fd = 0;
  int output_fd = 1;
  // Only acts when output_fd == 1.
  StdoutGuard stdout_guard = StdoutGuard::On;
};

// Exit codes returned by run() (a program's main returns them).
inline constexpr int exit_ok = 0;                // stdin reached EOF
inline constexpr int exit_protocol_error = 2;    // malformed line from the daemon, I/O error
inline constexpr int exit_processor_failed = 3;  // the processor threw (OnProcessorError::Fail)

// Runs the protocol until stdin reaches EOF. Never throws and never calls exit():
// returns one of the exit codes above. Logs to stderr only.
int run(RecordProcessor& processor, const RunOptions& options = {});

}  // namespace kclpp::kcl
