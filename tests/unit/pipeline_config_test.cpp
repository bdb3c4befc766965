// Triton stream config (docs/triton.md §1): YAML parsing, errors that name the file, the
// stream and the key, and the --config / $TRITON_CONFIG / /etc/triton.yaml resolution.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "kclpp/pipeline/config.hpp"
#include "kclpp/processor/error.hpp"

namespace kclpp::pipeline {
namespace {

namespace fs = std::filesystem;

// The message of the ConfigError `fn` throws (fails the test when it throws nothing).
template <class Fn>
std::string config_error(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError thrown";
  return {};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Sets (or unsets) $TRITON_CONFIG for one test and restores it afterwards.
class ScopedTritonConfigEnv {
 public:
  explicit ScopedTritonConfigEnv(const char* value) {
    if (const char* old = std::getenv("TRITON_CONFIG")) saved_ = old;
    if (value != nullptr) ::setenv("TRITON_CONFIG", value, 1); else ::unsetenv("TRITON_CONFIG");
  }
  ~ScopedTritonConfigEnv() {
    if (saved_) ::setenv("TRITON_CONFIG", saved_->c_str(), 1); else ::unsetenv("TRITON_CONFIG");
  }
  ScopedTritonConfigEnv(const ScopedTritonConfigEnv&) = delete;
  ScopedTritonConfigEnv& operator=(const ScopedTritonConfigEnv&) = delete;

 private:
  std::optional<std::string> saved_;
};

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    std::string pattern = (fs::temp_directory_path() / "kclpp-triton-XXXXXX").string();
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = pattern;
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::error_code ec; fs::remove(path_, ec); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr const char* kTwoStreams = R"(
# docs/triton.md §1 example, plus a stream without region and unknown keys
user_events:
  name: user_events_v3
  partition_key: user_id
  region: us-west-2
orders:
  name: orders-prod
  partition_key: order_id
  owner: team-x        # unknown keys are ignored, as go-triton does
)";

TEST(PipelineConfig, ParsesStreams) {
  const TritonConfig cfg = TritonConfig::parse(kTwoStreams, "triton.yaml");
  EXPECT_EQ(cfg.source(), "triton.yaml");
  ASSERT_EQ(cfg.streams().size(), 2U);
  const StreamConfig& s = cfg.stream("user_events");
  EXPECT_EQ(s.logical_name, "user_events");
  EXPECT_EQ(s.name, "user_events_v3");
  EXPECT_EQ(s.partition_key, "user_id");
  EXPECT_EQ(s.region, "us-west-2");
  const StreamConfig* o = cfg.find("orders");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->name, "orders-prod");
  EXPECT_EQ(o->region, "");  // callers fall back to the AWS chain
  EXPECT_EQ(cfg.find("orders-prod"), nullptr);  // logical names only
}

TEST(PipelineConfig, MissingStreamNamesItAndTheFile) {
  const TritonConfig cfg = TritonConfig::parse(kTwoStreams, "/srv/triton.yaml");
  const std::string msg = config_error([&] { (void)cfg.stream("clicks"); });
  EXPECT_TRUE(contains(msg, "'clicks'")) << msg;
  EXPECT_TRUE(contains(msg, "/srv/triton.yaml")) << msg;
  EXPECT_TRUE(contains(msg, "orders, user_events")) << msg;  // what is configured
}

TEST(PipelineConfig, MissingKeysNameTheStreamAndTheKey) {
  std::string msg = config_error([] {
    (void)TritonConfig::parse("a:\n  name: x\n  partition_key: k\nb:\n  partition_key: k\n", "f.yaml");
  });
  EXPECT_TRUE(contains(msg, "f.yaml")) << msg;
  EXPECT_TRUE(contains(msg, "'b'")) << msg;
  EXPECT_TRUE(contains(msg, "'name'")) << msg;

  msg = config_error([] { (void)TritonConfig::parse("b:\n  name: real\n", "f.yaml"); });
  EXPECT_TRUE(contains(msg, "'b'")) << msg;
  EXPECT_TRUE(contains(msg, "'partition_key'")) << msg;

  msg = config_error([] { (void)TritonConfig::parse("b:\n  name: [1, 2]\n  partition_key: k\n", "f.yaml"); });
  EXPECT_TRUE(contains(msg, "'name'")) << msg;
}

TEST(PipelineConfig, RejectsWhatIsNotAMappingOfMappings) {
  std::string msg = config_error([] { (void)TritonConfig::parse("- a\n- b\n", "list.yaml"); });
  EXPECT_TRUE(contains(msg, "list.yaml")) << msg;
  EXPECT_TRUE(contains(msg, "not a mapping")) << msg;

  msg = config_error([] { (void)TritonConfig::parse("", "empty.yaml"); });
  EXPECT_TRUE(contains(msg, "empty.yaml")) << msg;
  EXPECT_TRUE(contains(msg, "empty")) << msg;

  msg = config_error([] { (void)TritonConfig::parse("s: just-a-string\n", "f.yaml"); });
  EXPECT_TRUE(contains(msg, "'s'")) << msg;
  EXPECT_TRUE(contains(msg, "not a mapping")) << msg;
}

TEST(PipelineConfig, BadYamlNamesTheFileAndLine) {
  const std::string msg = config_error([] {
    (void)TritonConfig::parse("a:\n  name: x\n  partition_key: [unclosed\n", "bad.yaml");
  });
  EXPECT_TRUE(contains(msg, "bad.yaml")) << msg;
  EXPECT_TRUE(contains(msg, "invalid YAML")) << msg;
  EXPECT_TRUE(contains(msg, "line")) << msg;
}

TEST(PipelineConfig, LoadsAFileAndNamesAMissingOne) {
  const TempFile f(kTwoStreams);
  const TritonConfig cfg = TritonConfig::load_file(f.path());
  EXPECT_EQ(cfg.source(), f.path());
  EXPECT_EQ(cfg.stream("orders").partition_key, "order_id");

  const std::string missing = f.path() + ".does-not-exist";
  const std::string msg = config_error([&] { (void)TritonConfig::load_file(missing); });
  EXPECT_TRUE(contains(msg, missing)) << msg;
  EXPECT_TRUE(contains(msg, "No such file")) << msg;

  const std::string dir = fs::temp_directory_path().string();
  EXPECT_TRUE(contains(config_error([&] { (void)TritonConfig::load_file(dir); }), "directory"));

  // A parse error in a file names the file.
  const TempFile bad("a: {name: x\n");
  EXPECT_TRUE(contains(config_error([&] { (void)TritonConfig::load_file(bad.path()); }), bad.path()));
}

TEST(PipelineConfig, ResolvesExplicitThenEnvThenEtc) {
  {
    const ScopedTritonConfigEnv env("/from/env.yaml");
    EXPECT_EQ(TritonConfig::resolve_path("/explicit.yaml"), "/explicit.yaml");
    EXPECT_EQ(TritonConfig::resolve_path(""), "/from/env.yaml");
  }
  {
    const ScopedTritonConfigEnv env(nullptr);
    EXPECT_EQ(TritonConfig::resolve_path(""), "/etc/triton.yaml");
  }
  {
    const ScopedTritonConfigEnv env("");  // empty counts as unset
    EXPECT_EQ(TritonConfig::resolve_path(""), "/etc/triton.yaml");
  }
}

TEST(PipelineConfig, LoadUsesTritonConfig) {
  const TempFile f(kTwoStreams);
  const ScopedTritonConfigEnv env(f.path().c_str());
  EXPECT_EQ(TritonConfig::load().stream("user_events").name, "user_events_v3");
  const ScopedTritonConfigEnv gone((f.path() + ".missing").c_str());
  EXPECT_TRUE(contains(config_error([] { (void)TritonConfig::load(); }), f.path() + ".missing"));
}

}  // namespace
}  // namespace kclpp::pipeline
