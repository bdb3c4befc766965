#pragma once
// The worker process of bench/lease_scale (lease_scale_worker.cpp): one native Worker in
// lease mode whose lease-table calls are counted and reported on stdout.
#include <chrono>
#include <string>

namespace kclpp::bench {

struct WorkerArgs {
  std::string kinesis_endpoint;
  std::string dynamodb_endpoint;  // for a dynamodb: store
  std::string stream;
  std::string store_uri;
  std::string application;
  std::string worker_id;
  std::chrono::milliseconds failover{3'000};
  std::chrono::milliseconds idle_time{1'000};
  int max_leases_to_steal = 1;
};

// Runs until SIGTERM (graceful shutdown: checkpoints, releases). Returns the exit code.
int run_worker(const WorkerArgs& args);

}  // namespace kclpp::bench
