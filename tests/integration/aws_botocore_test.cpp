// The default credential chain against botocore's (python3-botocore, run as /usr/bin/python3):
// for scenarios where exactly one source applies, both resolve credentials from the same
// loopback fakes and the same environment, and must end with the same credentials after the
// same requests (IMDSv2 or v1, the same STS parameters, the same container token). kclpp's
// AssumeRole signature is also re-computed by botocore's signer (botocore_signer.hpp).
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "aws_credentials_fakes.hpp"
#include "botocore_signer.hpp"
#include "kclpp/aws/credentials.hpp"
#include "support.hpp"

namespace kclpp::aws {
namespace {

using namespace std::chrono_literals;
using namespace kclpp::test::creds;
using test::HttpReply;
using test::HttpRequest;
using Env = std::map<std::string, std::string>;

// Resolves the chain with botocore.session.Session().get_credentials(). Shims for an older
// botocore are applied only where the installed version lacks the feature, and reported on
// the first output line.
constexpr const char* python_script = R"PY(
import os, sys
import botocore
import botocore.configprovider
import botocore.credentials
import botocore.session

shims = []
# Configured endpoint URLs (AWS_ENDPOINT_URL_<SERVICE>) came with botocore 1.31: on an older
# one, point the STS client the credential providers create at AWS_ENDPOINT_URL_STS.
if ('ignore_configured_endpoint_urls' not in botocore.configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES
        and os.environ.get('AWS_ENDPOINT_URL_STS')):
    original_create_client = botocore.session.Session.create_client
    def create_client(self, service_name, *args, **kwargs):
        if service_name == 'sts' and not kwargs.get('endpoint_url'):
            kwargs['endpoint_url'] = os.environ['AWS_ENDPOINT_URL_STS']
        return original_create_client(self, service_name, *args, **kwargs)
    botocore.session.Session.create_client = create_client
    shims.append('AWS_ENDPOINT_URL_STS')
# AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (EKS Pod Identity) came later too: read the file
# into AWS_CONTAINER_AUTHORIZATION_TOKEN as newer versions do on each fetch.
if (not hasattr(botocore.credentials.ContainerProvider, 'ENV_VAR_AUTH_TOKEN_FILE')
        and os.environ.get('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE')):
    with open(os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE']) as f:
        os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN'] = f.read()
    shims.append('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE')
print('botocore=' + botocore.__version__ + ' shims=' + ','.join(shims))

session = botocore.session.Session()
try:
    creds = session.get_credentials()
except Exception as e:
    print('error')
    print(type(e).__name__)
    sys.exit(0)
if creds is None:
    print('none')
    sys.exit(0)
frozen = creds.get_frozen_credentials()
print('ok')
print(frozen.access_key)
print(frozen.secret_key)
print(frozen.token or '')
print(creds.method)
)PY";

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

struct Resolved {
  std::string status;  // ok, none, error
  std::string key;
  std::string secret;
  std::string token;
  std::string detail;  // botocore's provider method, or the error type
};

// What a scenario's fakes saw from each side.
struct Seen {
  std::vector<HttpRequest> botocore;
  std::vector<HttpRequest> kclpp;
};

class AwsBotocore : public CredentialsTest {
 protected:
  void SetUp() override {
    CredentialsTest::SetUp();
    KCLPP_REQUIRE_BOTOCORE();
    script_ = write("botocore_chain.py", python_script);
  }

  // Runs the script in a clean environment: PATH, HOME=dir_ and `env` only.
  std::vector<std::string> python(const Env& env) {
    std::string cmd = "cd " + quote(dir_.string()) + " && env -i PATH=/usr/bin:/bin HOME=" + quote(dir_.string());
    for (const auto& [k, v] : env) cmd += " " + k + "=" + quote(v);
    const std::string err = (dir_ / "python.err").string();
    cmd += " /usr/bin/python3 " + quote(script_) + " 2>" + quote(err);
    const std::vector<std::string> out = lines_of(test::shell_output(cmd));
    std::ifstream in(err);
    python_stderr_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!out.empty() && out[0].rfind("botocore=", 0) == 0) {
      RecordProperty("botocore", out[0]);
      std::cout << "[ botocore ] " << out[0] << "\n";
    }
    return out.size() > 1 ? std::vector<std::string>(out.begin() + 1, out.end()) : std::vector<std::string>{};
  }

  Resolved botocore_resolve(const Env& env) {
    const auto out = python(env);
    Resolved r;
    if (out.empty()) return r;
    r.status = out[0];
    if (r.status == "ok" && out.size() >= 5) {
      r.key = out[1];
      r.secret = out[2];
      r.token = out[3];
      r.detail = out[4];
    } else if (r.status == "error" && out.size() >= 2) {
      r.detail = out[1];
    }
    return r;
  }

  Resolved kclpp_resolve(const Env& env) {
    for (const auto& [k, v] : env) EnvGuard::set(k, v);
    Resolved r;
    try {
      const Credentials c = default_credentials()->credentials();
      r = {"ok", c.access_key_id, c.secret_access_key, c.session_token, ""};
    } catch (const Error& e) {
      messages_.emplace_back(e.what());
      r.status = "error";
      r.detail = e.what();
    }
    for (const auto& [k, v] : env) EnvGuard::unset(k);
    EnvGuard::set("HOME", dir_.string());
    return r;
  }

  // Resolves with both on `env` (HOME is dir_, nothing else set), expects the same
  // credentials from botocore's `method`; returns what `service` saw from each.
  Seen compare(const Env& env, const FakeService* service, const std::string& method) {
    EnvGuard::unset("AWS_EC2_METADATA_DISABLED");  // only as `env` says
    Seen seen;
    const std::size_t start = service != nullptr ? service->count() : 0;
    const Resolved b = botocore_resolve(env);
    const std::size_t middle = service != nullptr ? service->count() : 0;
    const Resolved k = kclpp_resolve(env);
    if (service != nullptr) {
      const auto all = service->requests();
      seen.botocore.assign(all.begin() + static_cast<long>(start), all.begin() + static_cast<long>(middle));
      seen.kclpp.assign(all.begin() + static_cast<long>(middle), all.end());
    }
    EXPECT_EQ(b.status, "ok") << "botocore: " << b.detail << "\n" << python_stderr_;
    EXPECT_EQ(b.detail, method) << "botocore used another source";
    EXPECT_EQ(k.status, "ok") << "kclpp: " << k.detail;
    EXPECT_FALSE(b.key.empty());
    EXPECT_EQ(k.key, b.key);
    EXPECT_EQ(k.secret, b.secret);
    EXPECT_EQ(k.token, b.token);
    if (service != nullptr) {
      EXPECT_EQ(calls(seen.kclpp), calls(seen.botocore));
    }
    return seen;
  }

  std::string script_;
  std::string python_stderr_;
};

// The header of each request, side by side.
std::vector<std::string> headers(const std::vector<HttpRequest>& requests, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& r : requests) out.push_back(r.header(name));
  return out;
}

TEST_F(AwsBotocore, InstanceMetadataV2TokenFlowMatchesBotocore) {
  ImdsBehaviour b;
  b.v2_only = true;
  FakeService imds(imds_handler(b));
  const Seen seen = compare({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()}}, &imds, "iam-role");
  EXPECT_EQ(calls(seen.kclpp), std::vector<std::string>({"PUT /latest/api/token",
                                                         "GET /latest/meta-data/iam/security-credentials/",
                                                         "GET /latest/meta-data/iam/security-credentials/"
                                                         "kclpp-test-role"}));
  EXPECT_EQ(headers(seen.kclpp, "x-aws-ec2-metadata-token"), headers(seen.botocore, "x-aws-ec2-metadata-token"));
  EXPECT_EQ(headers(seen.kclpp, "x-aws-ec2-metadata-token-ttl-seconds"),
            headers(seen.botocore, "x-aws-ec2-metadata-token-ttl-seconds"));
}

TEST_F(AwsBotocore, InstanceMetadataV1WhenTheTokenIsRefused) {
  ImdsBehaviour b;
  b.token_status = 403;
  FakeService imds(imds_handler(b));
  const Seen seen = compare({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()}}, &imds, "iam-role");
  ASSERT_EQ(seen.kclpp.size(), 3u);
  EXPECT_EQ(headers(seen.kclpp, "x-aws-ec2-metadata-token"), std::vector<std::string>(3, ""));
  EXPECT_EQ(headers(seen.kclpp, "x-aws-ec2-metadata-token"), headers(seen.botocore, "x-aws-ec2-metadata-token"));
}

TEST_F(AwsBotocore, InstanceMetadataV1WhenTheTokenRequestTimesOut) {
  // Both wait 1 s for the token by default.
  ImdsBehaviour b;
  b.token_delay = 1'600ms;
  FakeService imds(imds_handler(b));
  const Seen seen = compare({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()}}, &imds, "iam-role");
  ASSERT_EQ(seen.kclpp.size(), 3u);
  EXPECT_EQ(headers(seen.kclpp, "x-aws-ec2-metadata-token"), headers(seen.botocore, "x-aws-ec2-metadata-token"));
  EXPECT_EQ(seen.kclpp[2].header("x-aws-ec2-metadata-token"), "");
}

TEST_F(AwsBotocore, ContainerFullUriWithTokenFile) {
  FakeService container(container_handler(container_auth));
  const std::string token_file = write("pod-identity/token", container_auth);
  const Seen seen = compare({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", container.endpoint() + container_path},
                             {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file},
                             {"AWS_EC2_METADATA_DISABLED", "true"}},
                            &container, "container-role");
  EXPECT_EQ(calls(seen.kclpp), std::vector<std::string>({"GET " + container_path}));
  EXPECT_EQ(headers(seen.kclpp, "authorization"), headers(seen.botocore, "authorization"));
  EXPECT_EQ(headers(seen.kclpp, "accept"), headers(seen.botocore, "accept"));
}

TEST_F(AwsBotocore, WebIdentityFromTheEnvironment) {
  FakeService sts(sts_ok());
  const std::string token_file = write("irsa/token", web_token);
  const Seen seen = compare({{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                             {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa"},
                             {"AWS_ROLE_SESSION_NAME", "irsa-session"},
                             {"AWS_DEFAULT_REGION", "us-east-1"},
                             {"AWS_ENDPOINT_URL_STS", sts.endpoint()},
                             {"AWS_EC2_METADATA_DISABLED", "true"}},
                            &sts, "assume-role-with-web-identity");
  ASSERT_EQ(seen.kclpp.size(), 1u);
  ASSERT_EQ(seen.botocore.size(), 1u);
  EXPECT_EQ(parse_form(seen.kclpp[0].body), parse_form(seen.botocore[0].body));
  EXPECT_EQ(seen.kclpp[0].header("authorization"), "");
  EXPECT_EQ(seen.botocore[0].header("authorization"), "");
}

// "Credential=AK/<date>/REGION/sts/aws4_request, SignedHeaders=..." without the date and
// the signature.
std::string scope(const std::string& authorization) {
  const std::size_t cred = authorization.find("Credential=");
  const std::size_t sig = authorization.find(", Signature=");
  if (cred == std::string::npos || sig == std::string::npos) return authorization;
  std::string s = authorization.substr(cred, sig - cred);
  const std::size_t first = s.find('/');
  const std::size_t second = s.find('/', first + 1);
  if (first != std::string::npos && second != std::string::npos) s.erase(first, second - first);
  return s;
}

TEST_F(AwsBotocore, ProfileRoleWithSourceProfile) {
  FakeService sts(sts_ok());
  write(".aws/credentials", "[base]\naws_access_key_id = " + source_key + "\naws_secret_access_key = " +
                                source_secret + "\naws_session_token = " + source_session + "\n");
  write(".aws/config", "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n"
                       "role_session_name = dev-session\nexternal_id = ext-dev\nduration_seconds = 1800\n");
  const Seen seen = compare({{"AWS_PROFILE", "dev"},
                             {"AWS_DEFAULT_REGION", "us-east-1"},
                             {"AWS_ENDPOINT_URL_STS", sts.endpoint()},
                             {"AWS_EC2_METADATA_DISABLED", "true"}},
                            &sts, "assume-role");
  ASSERT_EQ(seen.kclpp.size(), 1u);
  ASSERT_EQ(seen.botocore.size(), 1u);
  const HttpRequest& k = seen.kclpp[0];
  const HttpRequest& b = seen.botocore[0];
  EXPECT_EQ(parse_form(k.body), parse_form(b.body));
  EXPECT_EQ(scope(k.header("authorization")), scope(b.header("authorization")));
  EXPECT_EQ(k.header("x-amz-security-token"), b.header("x-amz-security-token"));

  // kclpp's signature, recomputed by botocore over the request kclpp sent.
  EXPECT_EQ(k.header("authorization"),
            test::botocore_authorization(sts.endpoint() + "/", k, {source_key, source_secret, source_session}, "sts"));
}

TEST_F(AwsBotocore, CredentialProcessWithQuotedArguments) {
  const std::string exe = script("my tools/creds.sh",
                                 "printf '{\"Version\":1,\"AccessKeyId\":\"ASIAPROCESS\",\"SecretAccessKey\":\"%s\","
                                 "\"SessionToken\":\"%s|%s|%s\"}' '" +
                                     process_secret + "' \"$1\" \"$2\" \"$#\"\n");
  write(".aws/config", "[default]\ncredential_process = '" + exe + "' \"arg one\" plain\\ two\n");
  const Seen seen = compare({{"AWS_EC2_METADATA_DISABLED", "true"}}, nullptr, "custom-process");
  (void)seen;
  EXPECT_EQ(kclpp_resolve({{"AWS_EC2_METADATA_DISABLED", "true"}}).token, "arg one|plain two|2");
}

TEST_F(AwsBotocore, NothingConfiguredIsAnErrorAsInBotocore) {
  const Env env{{"AWS_EC2_METADATA_DISABLED", "true"}};
  EXPECT_EQ(botocore_resolve(env).status, "none") << python_stderr_;
  EXPECT_EQ(kclpp_resolve(env).status, "error");
}

}  // namespace
}  // namespace kclpp::aws
