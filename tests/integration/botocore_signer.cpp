#include "botocore_signer.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support.hpp"

namespace kclpp::test {

namespace {

// The names in "..., SignedHeaders=a;b;c, Signature=...".
std::vector<std::string> signed_headers(const std::string& authorization) {
  std::vector<std::string> out;
  const auto at = authorization.find("SignedHeaders=");
  if (at == std::string::npos) return out;
  const auto end = authorization.find(',', at);
  std::stringstream list(authorization.substr(at + 14, end == std::string::npos ? std::string::npos : end - at - 14));
  for (std::string name; std::getline(list, name, ';');) out.push_back(name);
  return out;
}

constexpr const char* kScript = R"PY(
import datetime, json, sys
from unittest import mock
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
spec = json.load(open(sys.argv[1]))
body = open(sys.argv[2], 'rb').read()
req = AWSRequest(method=spec['method'], url=spec['url'], data=body, headers=spec['headers'])
fixed = datetime.datetime.strptime(spec['amz_date'], '%Y%m%dT%H%M%SZ')
with mock.patch('botocore.auth.datetime') as dt:
    dt.datetime.utcnow.return_value = fixed
    dt.datetime.now.return_value = fixed
    creds = Credentials(spec['ak'], spec['sk'], spec['token'] or None)
    SigV4Auth(creds, spec['service'], spec['region']).add_auth(req)
print(req.headers['Authorization'])
)PY";

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

}  // namespace

bool botocore_available() {
  return ::access("/usr/bin/python3", X_OK) == 0 &&
         std::system("/usr/bin/python3 -c 'import botocore' >/dev/null 2>&1") == 0;
}

std::string botocore_authorization(const std::string& url, const HttpRequest& req, const aws::Credentials& credentials,
                                   const std::string& service, const std::string& region) {
  namespace fs = std::filesystem;
  static int counter = 0;
  const fs::path dir =
      fs::temp_directory_path() / ("kclpp_botocore_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
  fs::create_directories(dir);
  std::string headers = "{";
  for (const auto& name : signed_headers(req.header("authorization"))) {
    if (name == "host" || name == "x-amz-date" || name == "x-amz-security-token") continue;
    headers += (headers.size() > 1 ? "," : "") + json_string(name) + ":" + json_string(req.header(name));
  }
  headers += "}";
  std::ofstream(dir / "spec.json") << "{\"method\":" << json_string(req.method) << ",\"url\":" << json_string(url)
                                   << ",\"headers\":" << headers << ",\"amz_date\":"
                                   << json_string(req.header("x-amz-date")) << ",\"ak\":"
                                   << json_string(credentials.access_key_id) << ",\"sk\":"
                                   << json_string(credentials.secret_access_key) << ",\"token\":"
                                   << json_string(credentials.session_token) << ",\"service\":" << json_string(service)
                                   << ",\"region\":" << json_string(region) << "}";
  std::ofstream(dir / "body", std::ios::binary) << req.body;
  std::ofstream(dir / "sign.py") << kScript;
  std::string out = shell_output("/usr/bin/python3 " + (dir / "sign.py").string() + " " +
                                 (dir / "spec.json").string() + " " + (dir / "body").string() + " 2>&1");
  fs::remove_all(dir);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace kclpp::test
