#pragma once
// Helpers for the tests that run several `kclpp daemon` processes, each driving the Node
// aws-kcl processor (tests/node/kcl_processor.js), on one lease store: daemon_fleet_test.cpp
// and kcl_table_takeover_test.cpp (binary kclpp_fleet_tests). Each daemon's children
// append their events to a log of their own, so the test knows which worker handed which
// record to which child process.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e_support.hpp"
#include "kclpp/native/checkpoint_store.hpp"
#include "kclpp/native/lease_table.hpp"
#include "local_server.hpp"
#include "support.hpp"
#include "../test_files.hpp"

namespace kclpp::test::fleet {

using Clock = std::chrono::steady_clock;

inline std::chrono::milliseconds ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

// One record as the Node child received it.
struct SeenRecord {
  std::string data;
  std::string sequence_number;
  long long sub_sequence_number = 0;
  int pid = 0;
  std::string shard;
  std::int64_t ns = 0;  // when the child got its batch (CLOCK_MONOTONIC, as steady_clock)
};

// One child process as its log tells it.
struct ChildLife {
  int pid = 0;
  std::string shard;
  std::string initialize_sequence_number;  // what initialize told it ("" for null)
  std::vector<std::string> actions;        // "initialize", "processRecords", ..., "exit N"
  std::vector<std::int64_t> action_ns;     // when each action was logged (steady_clock ns)
  std::vector<std::vector<SeenRecord>> batches;
  [[nodiscard]] bool exited() const { return !actions.empty() && actions.back().rfind("exit", 0) == 0; }
  // When `action` was first logged at or after `after` (steady_clock ns), or nullopt.
  [[nodiscard]] std::optional<std::int64_t> first(const std::string& action, std::int64_t after = 0) const {
    for (std::size_t i = 0; i < actions.size(); ++i)
      if (actions[i] == action && action_ns[i] >= after) return action_ns[i];
    return std::nullopt;
  }
};

// What the children of one daemon saw (its log, read again on every call).
struct WorkerView {
  std::map<int, ChildLife> children;  // by pid

  [[nodiscard]] std::vector<SeenRecord> records() const {
    std::vector<SeenRecord> out;
    for (const auto& [pid, c] : children)
      for (const auto& b : c.batches) out.insert(out.end(), b.begin(), b.end());
    return out;
  }
  [[nodiscard]] std::string dump() const {
    std::ostringstream out;
    for (const auto& [pid, c] : children) {
      out << "    pid " << pid << " (" << c.shard << ", from '" << c.initialize_sequence_number << "'):";
      for (const auto& a : c.actions) out << ' ' << a;
      std::size_t n = 0;
      for (const auto& b : c.batches) n += b.size();
      out << " [" << n << " records]\n";
    }
    return out.str();
  }
};

inline WorkerView read_view(const std::string& log) {
  WorkerView v;
  std::istringstream lines(read_file(log));
  std::string line;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("event") || !j.contains("pid")) continue;
    const int pid = j["pid"].get<int>();
    const std::string event = j["event"].get<std::string>();
    if (event == "checkpointResult") continue;
    const std::int64_t at = j.contains("ns") && j["ns"].is_number() ? j["ns"].get<std::int64_t>() : 0;
    ChildLife& c = v.children[pid];
    c.pid = pid;
    if (event == "initialize") {
      c.shard = j["shardId"].get<std::string>();
      c.initialize_sequence_number = j["sequenceNumber"].is_string() ? j["sequenceNumber"].get<std::string>() : "";
    }
    if (event == "processRecords") {
      std::vector<SeenRecord> batch;
      for (const auto& r : j["records"]) {
        SeenRecord s;
        s.data = r["data"].get<std::string>();
        s.sequence_number = r["sequenceNumber"].get<std::string>();
        s.sub_sequence_number = r["subSequenceNumber"].is_number() ? r["subSequenceNumber"].get<long long>() : 0;
        s.pid = pid;
        s.shard = c.shard;
        s.ns = at;
        batch.push_back(std::move(s));
      }
      c.batches.push_back(std::move(batch));
    }
    c.actions.push_back(event == "exit" ? "exit " + std::to_string(j["code"].get<int>()) : event);
    c.action_ns.push_back(at);
  }
  return v;
}

// Where the leases live, as a daemon's properties and as the test opens it.
struct StoreSpec {
  std::string properties;  // the properties lines ("checkpointStore = ...\n...")
  std::string uri;         // for open_checkpoint_store
  native::StoreOptions options;
};

// Settings every daemon of a fleet shares.
struct FleetSettings {
  std::string stream;
  std::string application;
  std::string kinesis_endpoint;
  StoreSpec store;
  std::string initial_position = "TRIM_HORIZON";  // initialPositionInStream
  int failover_ms = 1500;
  int take_interval_ms = 500;
  std::string extra_properties;  // more lines, e.g. cleanupLeasesUponShardCompletion
};

// The daemons of one fleet: a properties file and a children's log per worker id.
// Thread safety: one test thread.
class Fleet {
 public:
  Fleet(FleetSettings settings, const TempDir& dir) : settings_(std::move(settings)), dir_(dir) {
    const std::filesystem::path source(KCLPP_SOURCE_DIR);
    node_ = find_on_path("node");
    script_ = (source / "tests" / "node" / "kcl_processor.js").string();
  }

  // Why the fleet cannot run here ("" when it can): node or aws-kcl missing.
  static std::string unavailable() { return node_unavailable("aws-kcl/index.js"); }

  [[nodiscard]] std::string log_of(const std::string& worker) const { return dir_.file(worker + ".children.log"); }

  std::unique_ptr<Subprocess> start(const std::string& worker) {
    const std::string path = dir_.file(worker + ".properties");
    {
      std::ofstream out(path);
      out << "# kclpp daemon fleet test (Java MultiLangDaemon format)\n"
          << "executableName = " << node_ << " " << script_ << "\n"
          << "streamName = " << settings_.stream << "\n"
          << "applicationName = " << settings_.application << "\n"
          << "initialPositionInStream = " << settings_.initial_position << "\n"
          << "kinesisEndpoint = " << settings_.kinesis_endpoint << "\n"
          << "regionName = us-east-1\n"
          << "idleTimeBetweenReadsInMillis = 200\n"
          << "workerIdentifier = " << worker << "\n"
          << "failoverTimeMillis = " << settings_.failover_ms << "\n"
          << "leaseTakeIntervalMillis = " << settings_.take_interval_ms << "\n"
          << "shutdownGraceMillis = 5000\n"
          << settings_.store.properties << settings_.extra_properties;
    }
    SpawnOptions options;
    options.env = tool_env("info", {"KCLPP_NODE_LOG=" + log_of(worker), "KCLPP_NODE_LOG_IDS=1"});
    return std::make_unique<Subprocess>(std::vector<std::string>{KCLPP_TOOL, "daemon", path}, options);
  }

  [[nodiscard]] WorkerView view(const std::string& worker) const { return read_view(log_of(worker)); }

  // The lease table as a new reader sees it.
  [[nodiscard]] std::vector<native::Lease> leases() const {
    const auto store = native::open_checkpoint_store(settings_.store.uri, settings_.store.options);
    return store->leases(settings_.application, settings_.stream)->list();
  }
  // owner -> shards it holds ("" for free leases); SHARD_END leases left out.
  [[nodiscard]] std::map<std::string, std::set<std::string>> owners() const {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& l : leases()) {
      if (l.checkpoint.sentinel() == Sentinel::ShardEnd) continue;
      out[l.owner.value_or("")].insert(l.key);
    }
    return out;
  }

  [[nodiscard]] const FleetSettings& settings() const { return settings_; }

 private:
  FleetSettings settings_;
  const TempDir& dir_;
  std::string node_;
  std::string script_;
};

inline std::string describe(const std::map<std::string, std::set<std::string>>& owners) {
  std::ostringstream out;
  for (const auto& [owner, shards] : owners) {
    out << "  " << (owner.empty() ? "(free)" : owner) << ":";
    for (const auto& s : shards) out << ' ' << s;
    out << '\n';
  }
  return out.str();
}

}  // namespace kclpp::test::fleet
