// The S3 client: one libcurl easy handle per client (its connection cache gives
// keep-alive), the one SigV4 signer (sigv4.cpp) and the XML reader (s3_xml.cpp). Every
// HTTP outcome becomes an exception in exactly one place: Impl::fail().
//
// Idempotency: every S3 call we make can be repeated without harm (PUT of a whole object
// or of one part replaces it, DELETE of a missing key succeeds, CreateMultipartUpload only
// leaves an unused upload behind that the caller aborts or S3's lifecycle rules reap), so a
// failure after the request was sent is a retryable TransportError, never an InDoubtError.
#include "kclpp/aws/s3_client.hpp"

#include <curl/curl.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "kclpp/aws/credentials.hpp"
#include "kclpp/processor/error.hpp"
#include "kclpp/processor/log.hpp"
#include "kclpp/processor/retry.hpp"
#include "http.hpp"
#include "s3_internal.hpp"

namespace kclpp::aws {

namespace {

struct EasyDeleter {
  void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
struct FileDeleter {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};


// S3 refuses parts below 5 MiB (except the last) and uploads of more than 10,000 parts.
constexpr std::uint64_t max_parts = 10'000;

bool throttling_code(std::string_view code) {
  return code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" ||
         code == "RequestLimitExceeded" || code == "TooManyRequests" || code == "RequestThrottled";
}

// Replies after which fresh credentials may succeed: the provider refetches, one retry.
bool expired_code(std::string_view code) {
  return code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "ExpiredTokenException";
}

bool auth_code(std::string_view code) {
  return code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "ExpiredToken" ||
         code == "InvalidToken" || code == "TokenRefreshRequired" || code == "RequestTimeTooSkewed" ||
         code == "AuthorizationHeaderMalformed" || code == "InvalidSecurity";
}

// Codes S3 documents as "retry the request" although some come with a 4xx status.
bool transient_code(std::string_view code) {
  return code == "InternalError" || code == "RequestTimeout" || code == "ServiceUnavailable" ||
         code == "OperationAborted";
}

// A status with no XML body (HEAD replies, proxies): a code like the ones S3 sends.
std::string status_code_name(long status) {
  switch (status) {
    case 301: return "PermanentRedirect";
    case 307: return "TemporaryRedirect";
    case 400: return "BadRequest";
    case 403: return "AccessDenied";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 416: return "InvalidRange";
    default: return "HTTP" + std::to_string(status);
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (char& ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  return s.empty() ? "(empty body)" : "'" + s + (body.size() > 200 ? "...'" : "'");
}

// The per-request state the libcurl callbacks see.
struct Transfer {
  CURL* easy = nullptr;
  std::string_view upload;
  std::size_t upload_pos = 0;
  const std::function<void(std::string_view)>* sink = nullptr;
  std::exception_ptr sink_error;
  std::uint64_t delivered = 0;  // bytes given to the sink
  std::string body;             // the reply body (error bodies, and everything without a sink)
  // Reply headers we use (of the final response: reset on each status line).
  std::string etag;
  std::string last_modified;
  std::string content_length;
};

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = std::min(size * count, t->upload.size() - t->upload_pos);
  std::copy_n(t->upload.data() + t->upload_pos, n, buffer);
  t->upload_pos += n;
  return n;
}

// libcurl rewinds the body when it must send it again (a redirect, an auth retry, a
// connection that died before the reply on a reused handle).
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > t->upload.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->upload_pos = static_cast<std::size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (t->sink != nullptr && status >= 200 && status < 300) {
    try {
      (*t->sink)(std::string_view(data, n));
    } catch (...) {
      // Returning a short count aborts the transfer (CURLE_WRITE_ERROR); the exception
      // is rethrown once curl_easy_perform returns.
      t->sink_error = std::current_exception();
      return 0;
    }
    t->delivered += n;
    return n;
  }
  if (t->body.empty()) {
    curl_off_t length = -1;
    if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK &&
        length > 0 && length < (curl_off_t{1} << 31)) {
      t->body.reserve(static_cast<std::size_t>(length));
    }
  }
  t->body.append(data, n);
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after 100 Continue, a redirect)
    t->etag.clear();
    t->last_modified.clear();
    t->content_length.clear();
    return n;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  const std::string_view name = line.substr(0, colon);
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  if (iequals(name, "etag")) t->etag = std::string(value);
  if (iequals(name, "last-modified")) t->last_modified = std::string(value);
  if (iequals(name, "content-length")) t->content_length = std::string(value);
  return n;
}

using Params = std::vector<std::pair<std::string, std::string>>;

// One S3 call as the client builds it.
struct Call {
  Call(std::string_view o, const std::string& b, const std::string& k) : op(o), bucket(b), key(k) {}
  std::string_view op;  // S3's operation name, for messages
  const std::string& bucket;
  const std::string& key;  // empty: a bucket-level call
  std::string method = "GET";
  Params query;
  Params headers;  // extra headers to send and sign (lower-case names)
  std::string_view body;
  const std::function<void(std::string_view)>* sink = nullptr;
};

}  // namespace

namespace detail {

Endpoint parse_endpoint(const std::string& endpoint, const std::string& region) {
  Endpoint e;
  e.explicit_endpoint = !endpoint.empty();
  std::string url = e.explicit_endpoint ? endpoint : "https://s3." + region + ".amazonaws.com";
  while (!url.empty() && url.back() == '/') url.pop_back();
  const std::size_t sep = url.find("://");
  if (sep == std::string::npos || (url.compare(0, sep, "http") != 0 && url.compare(0, sep, "https") != 0)) {
    throw ConfigError("S3 endpoint '" + endpoint + "' must start with http:// or https://");
  }
  e.scheme = url.substr(0, sep);
  e.host = url.substr(sep + 3);
  if (e.host.empty() || e.host.find_first_of("/?#@ ") != std::string::npos) {
    throw ConfigError("S3 endpoint '" + endpoint + "' must be scheme://host[:port] (no path)");
  }
  const std::string default_port = e.scheme == "https" ? ":443" : ":80";
  if (e.host.size() > default_port.size() &&
      e.host.compare(e.host.size() - default_port.size(), default_port.size(), default_port) == 0) {
    e.host.resize(e.host.size() - default_port.size());
  }
  return e;
}

Target request_target(const Endpoint& endpoint, Addressing addressing, const std::string& bucket,
                      const std::string& key) {
  if (bucket.empty() || bucket.find('/') != std::string::npos) {
    throw ConfigError("S3: invalid bucket name '" + bucket + "'");
  }
  bool path_style = endpoint.explicit_endpoint || bucket.find('.') != std::string::npos;
  if (addressing == Addressing::PathStyle) path_style = true;
  if (addressing == Addressing::VirtualHosted) path_style = false;
  Target t;
  if (path_style) {
    t.host = endpoint.host;
    t.path = "/" + uri_encode(bucket, false);
    if (!key.empty()) t.path += "/" + uri_encode(key, true);
  } else {
    t.host = bucket + "." + endpoint.host;
    t.path = "/" + uri_encode(key, true);
  }
  return t;
}

}  // namespace detail

struct S3Client::Impl {
  S3Options options;
  detail::Endpoint endpoint;
  std::unique_ptr<CURL, EasyDeleter> easy;
  char error[CURL_ERROR_SIZE] = {};

  std::string describe(const Call& c) const {
    std::string s = "S3 " + std::string(c.op) + " s3://" + c.bucket;
    if (!c.key.empty()) s += "/" + c.key;
    return s + " at " + endpoint.scheme + "://" + endpoint.host;
  }

  // The outcome of one request: a response (status + Transfer), or a libcurl failure.
  struct Result {
    CURLcode code = CURLE_OK;
    long status = 0;
    std::string error;
  };


  // `c` on handle `h` (its error buffer `error_buffer`, CURL_ERROR_SIZE bytes): the
  // client's own, or a multipart helper thread's.
  Result perform(const Call& c, Transfer& t, CURL* h, char* error_buffer, const Credentials& credentials) {
    const detail::Target target = detail::request_target(endpoint, options.addressing, c.bucket, c.key);
    const std::string& request_host = target.host;
    const std::string& path = target.path;
    const std::string query = detail::canonical_query(c.query);
    const std::string url = endpoint.scheme + "://" + request_host + path + (query.empty() ? "" : "?" + query);

    const bool has_body = c.method == "PUT" || c.method == "POST";
    detail::SigningInput in;
    in.method = c.method;
    in.canonical_uri = path;
    in.canonical_query = query;
    in.payload_hash = has_body && !c.body.empty() ? detail::sha256_hex(c.body)
                                                  : std::string(detail::empty_sha256);
    in.region = options.region;
    in.service = "s3";
    in.headers = {{"host", request_host}, {"x-amz-content-sha256", in.payload_hash}};
    for (const auto& header : c.headers) in.headers.push_back(header);
    const std::string auth = detail::sign(in, credentials, std::chrono::system_clock::now());

    std::vector<std::string> lines;
    lines.reserve(in.headers.size() + 3);
    for (const auto& [name, value] : in.headers) lines.push_back(name + ": " + value);
    lines.push_back("Authorization: " + auth);
    lines.emplace_back("Expect:");  // no 100-continue round trip
    std::unique_ptr<curl_slist, SlistDeleter> list;
    for (const auto& line : lines) {
      curl_slist* next = curl_slist_append(list.get(), line.c_str());
      if (next == nullptr) throw TransportError("libcurl: out of memory", Retry::No);
      (void)list.release();
      list.reset(next);
    }

    // Reset keeps the connection cache (keep-alive) but forgets the previous call's method,
    // body and callbacks, so no option leaks from one call into the next.
    curl_easy_reset(h);
    error_buffer[0] = '\0';
    t.easy = h;
    t.upload = c.body;
    t.sink = c.sink;
    detail::curl_set_common_options(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);  // keys with "../" are keys, not paths
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>((options.low_speed_timeout.count() + 999) / 1000)));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    if (has_body) {
      // PUT and POST both go as an "upload" (read callback, Content-Length, no
      // Content-Type that libcurl would add to a POST: S3 would store it on the object).
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &on_seek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(c.body.size()));
      curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024L);
      if (c.method == "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
    } else if (c.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (c.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c.method.c_str());
    }

    Result r;
    r.code = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // `list` dies here
    if (t.sink_error) std::rethrow_exception(t.sink_error);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    if (r.code != CURLE_OK) {
      r.error = error_buffer[0] != '\0' ? std::string(error_buffer) : std::string(curl_easy_strerror(r.code));
    }
    return r;
  }

  // The one place where libcurl failures and S3 error replies become exceptions.
  [[noreturn]] void fail(const Call& c, const Result& r, const Transfer& t) const {
    const std::string where = describe(c);
    if (r.code != CURLE_OK) {
      const char* stage = detail::curl_failed_before_send(r.code) ? ": request not sent: "
                          : r.code == CURLE_OPERATION_TIMEDOUT               ? ": timed out: "
                                                                             : ": connection failed: ";
      throw TransportError(where + stage + r.error);
    }
    fail_reply(where, r.status, t.body);
  }

  [[noreturn]] static void fail_reply(const std::string& where, long status, const std::string& body) {
    const auto reply = detail::parse_error_reply(body);
    const std::string code = reply ? reply->code : status_code_name(status);
    const std::string what = where + ": " + code + (reply && !reply->message.empty() ? ": " + reply->message : "") +
                             " (HTTP " + std::to_string(status) + ")";
    if (throttling_code(code) || status == 503 || status == 429) throw ThrottledError(what);
    if (auth_code(code)) throw AuthError(what);
    if (status >= 500 || transient_code(code)) throw TransportError(what);
    if (!reply && !body.empty() && status != 404 && status != 403) {
      throw ProtocolError(where + ": unparseable error reply (HTTP " + std::to_string(status) + "): " + snippet(body));
    }
    throw AwsError(what, code, static_cast<int>(status), Retry::No);
  }

  // Performs `c`; returns its Transfer for a 2xx reply, throws otherwise.
  Transfer call(const Call& c) { return call(c, easy.get(), error); }
  Transfer call(const Call& c, CURL* h, char* error_buffer) {
    Transfer t;
    const Result r = exchange(c, t, h, error_buffer);
    if (r.code != CURLE_OK || r.status < 200 || r.status >= 300) fail(c, r, t);
    return t;
  }

  // Performs `c` signed with the provider's credentials; after a reply saying they expired
  // (early, or a skewed clock) the provider refetches and the request goes once more: it
  // was refused, so sending it again is safe. Any status comes back as a Result.
  Result exchange(const Call& c, Transfer& t) { return exchange(c, t, easy.get(), error); }
  Result exchange(const Call& c, Transfer& t, CURL* h, char* error_buffer) {
    Result r = perform(c, t, h, error_buffer, options.credentials->credentials());
    if (r.code == CURLE_OK && (r.status == 400 || r.status == 403) && expired_reply(t.body)) {
      options.credentials->expire();
      t = Transfer{};
      r = perform(c, t, h, error_buffer, options.credentials->credentials());
    }
    return r;
  }

  static bool expired_reply(const std::string& body) {
    try {
      const auto reply = detail::parse_error_reply(body);
      return reply && expired_code(reply->code);
    } catch (const ProtocolError&) {
      return false;
    }
  }

  PutObjectResult put(const std::string& bucket, const std::string& key, std::string_view body,
                      const std::string& content_type) {
    Call c{"PutObject", bucket, key};
    c.method = "PUT";
    c.body = body;
    if (!content_type.empty()) c.headers.emplace_back("content-type", content_type);
    const Transfer t = call(c);
    return {detail::unquote_etag(t.etag), 1};
  }

  PutObjectResult multipart(const std::string& bucket, const std::string& key, std::FILE* file,
                            std::uint64_t size, const std::string& path, const std::string& content_type);
  // Uploads parts 1..N of `upload_id` (N = ceil(size / part_size)), returning their ETags.
  std::vector<std::string> upload_parts(const std::string& bucket, const std::string& key,
                                        const std::string& upload_id, int fd, std::uint64_t size,
                                        std::uint64_t part_size, const std::string& path);

  // Handles of the multipart helper threads, kept between uploads (their connections
  // stay open, as the client's own does). Each is used by one thread at a time.
  struct Helper {
    std::unique_ptr<CURL, EasyDeleter> easy;
    char error[CURL_ERROR_SIZE] = {};
  };
  std::vector<std::unique_ptr<Helper>> helpers;
};

S3Client::S3Client(S3Options options) : impl_(std::make_unique<Impl>()) {
  detail::curl_global_init_once();
  Impl& m = *impl_;
  options.region = resolve_region(options.region, options.profile);
  const std::string regional = regional_endpoint("s3", options.region);
  options.endpoint = resolve_endpoint("S3", options.endpoint, regional, options.profile);
  // A configured endpoint (not the regional default) means path-style addressing.
  m.endpoint = detail::parse_endpoint(options.endpoint == regional ? std::string() : options.endpoint, options.region);
  if (!options.credentials) options.credentials = shared_default_credentials(options.profile);
  if (options.part_size == 0) throw ConfigError("S3 client: part_size must be positive");
  if (options.upload_parallelism < 1 || options.upload_parallelism > 64) {
    throw ConfigError("S3 client: upload_parallelism must be between 1 and 64, not " +
                      std::to_string(options.upload_parallelism));
  }
  m.options = std::move(options);
  m.easy.reset(curl_easy_init());
  if (!m.easy) throw TransportError("libcurl: curl_easy_init failed", Retry::No);
}

S3Client::~S3Client() = default;
S3Client::S3Client(S3Client&&) noexcept = default;
S3Client& S3Client::operator=(S3Client&&) noexcept = default;

const S3Options& S3Client::options() const noexcept { return impl_->options; }

PutObjectResult S3Client::put_object(const std::string& bucket, const std::string& key, std::string_view body,
                                     const std::string& content_type) {
  return impl_->put(bucket, key, body, content_type);
}

namespace {

void read_exactly(std::FILE* file, std::uint64_t n, const std::string& path, std::string& buffer) {
  buffer.resize(static_cast<std::size_t>(n));
  const std::size_t got = n == 0 ? 0 : std::fread(buffer.data(), 1, buffer.size(), file);
  if (got != buffer.size()) {
    throw TransportError("S3 upload: reading '" + path + "' failed (short read: the file changed?)", Retry::No);
  }
}


// `n` bytes at `offset` of the file (pread: the threads of one upload share the descriptor).
void pread_exactly(int fd, std::uint64_t offset, std::uint64_t n, const std::string& path, std::string& buffer) {
  buffer.resize(static_cast<std::size_t>(n));
  std::size_t done = 0;
  while (done < buffer.size()) {
    const ssize_t got = ::pread(fd, buffer.data() + done, buffer.size() - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw TransportError("S3 upload: reading '" + path + "' failed (" +
                               (got < 0 ? std::string(std::strerror(errno)) : std::string("short read: the file changed?")) +
                               ")",
                           Retry::No);
    }
    done += static_cast<std::size_t>(got);
  }
}

}  // namespace

PutObjectResult S3Client::Impl::multipart(const std::string& bucket, const std::string& key, std::FILE* file,
                                          std::uint64_t size, const std::string& path,
                                          const std::string& content_type) {
  std::uint64_t part_size = options.part_size;
  if ((size + part_size - 1) / part_size > max_parts) part_size = (size + max_parts - 1) / max_parts;
  const RetryPolicy& policy = options.retry;

  Call create{"CreateMultipartUpload", bucket, key};
  create.method = "POST";
  create.query = {{"uploads", ""}};
  if (!content_type.empty()) create.headers.emplace_back("content-type", content_type);
  const std::string upload_id = retry(policy, [&] {
    const Transfer t = call(create);
    try {
      return detail::parse_upload_id(t.body);
    } catch (const ProtocolError& e) {
      throw ProtocolError(describe(create) + ": " + e.what());
    }
  });

  std::vector<std::string> etags;
  try {
    etags = upload_parts(bucket, key, upload_id, ::fileno(file), size, part_size, path);
    Call complete{"CompleteMultipartUpload", bucket, key};
    complete.method = "POST";
    complete.query = {{"uploadId", upload_id}};
    const std::string body = detail::complete_multipart_body(etags);
    complete.body = body;
    std::string etag = retry(policy, [&] {
      const Transfer t = call(complete);
      // S3 may answer 200 and then report a failure in the body (the status line goes out
      // before the parts are assembled).
      if (detail::parse_error_reply(t.body)) fail_reply(describe(complete), 500, t.body);
      const auto e = detail::xml_element(t.body, "ETag");
      if (!e) {
        throw ProtocolError(describe(complete) + ": not a CompleteMultipartUploadResult: " + snippet(t.body));
      }
      return detail::unquote_etag(*e);
    });
    return {std::move(etag), static_cast<int>(etags.size())};
  } catch (...) {
    // Without an abort, S3 keeps (and bills) the uploaded parts.
    try {
      Call abort{"AbortMultipartUpload", bucket, key};
      abort.method = "DELETE";
      abort.query = {{"uploadId", upload_id}};
      (void)call(abort);
    } catch (const Error& e) {
      log_warn("S3: aborting multipart upload ", upload_id, " of s3://", bucket, "/", key,
               " failed (its parts stay until a lifecycle rule removes them): ", e.what());
    }
    throw;
  }
}

std::vector<std::string> S3Client::Impl::upload_parts(const std::string& bucket, const std::string& key,
                                                      const std::string& upload_id, int fd, std::uint64_t size,
                                                      std::uint64_t part_size, const std::string& path) {
  const std::uint64_t parts = (size + part_size - 1) / part_size;
  std::vector<std::string> etags(static_cast<std::size_t>(parts));
  std::atomic<std::uint64_t> next{0};  // the next part index to take
  std::atomic<bool> stop{false};       // a part failed: take no more
  std::mutex failure_mutex;
  std::exception_ptr failure;  // the first part that failed after its retries

  // One worker per connection: takes part indexes in order until none are left.
  const auto work = [&](CURL* h, char* error_buffer) noexcept {
    std::string buffer;
    try {
      for (;;) {
        if (stop.load()) return;
        const std::uint64_t i = next.fetch_add(1);
        if (i >= parts) return;
        const std::uint64_t offset = i * part_size;
        pread_exactly(fd, offset, std::min(part_size, size - offset), path, buffer);
        Call part{"UploadPart", bucket, key};
        part.method = "PUT";
        part.query = {{"partNumber", std::to_string(i + 1)}, {"uploadId", upload_id}};
        part.body = buffer;
        etags[static_cast<std::size_t>(i)] = retry(options.retry, [&] {
          const Transfer t = call(part, h, error_buffer);
          if (t.etag.empty()) throw ProtocolError(describe(part) + ": UploadPart reply without an ETag");
          return t.etag;
        });
      }
    } catch (...) {
      stop = true;
      const std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };

  const std::size_t helper_count =
      static_cast<std::size_t>(std::min<std::uint64_t>(parts, static_cast<std::uint64_t>(options.upload_parallelism)) - 1);
  while (helpers.size() < helper_count) {
    auto helper = std::make_unique<Helper>();
    helper->easy.reset(curl_easy_init());
    if (!helper->easy) throw TransportError("libcurl: curl_easy_init failed", Retry::No);
    helpers.push_back(std::move(helper));
  }
  {
    // jthreads: joined when this scope ends, whatever happens on the caller's thread.
    std::vector<std::jthread> threads;
    threads.reserve(helper_count);
    for (std::size_t k = 0; k < helper_count; ++k) {
      Helper& helper = *helpers[k];
      threads.emplace_back([&work, &helper] { work(helper.easy.get(), helper.error); });
    }
    work(easy.get(), error);
  }
  if (failure) std::rethrow_exception(failure);
  return etags;
}

PutObjectResult S3Client::put_file(const std::string& bucket, const std::string& key, const std::string& path,
                                   const std::string& content_type) {
  std::unique_ptr<std::FILE, FileDeleter> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw TransportError("S3 upload: cannot open '" + path + "'", Retry::No);
  if (::fseeko(file.get(), 0, SEEK_END) != 0) throw TransportError("S3 upload: cannot seek '" + path + "'", Retry::No);
  const off_t end = ::ftello(file.get());
  if (end < 0) throw TransportError("S3 upload: cannot size '" + path + "'", Retry::No);
  std::rewind(file.get());
  const auto size = static_cast<std::uint64_t>(end);
  if (size >= impl_->options.multipart_threshold && size > 0) {
    return impl_->multipart(bucket, key, file.get(), size, path, content_type);
  }
  std::string buffer;
  read_exactly(file.get(), size, path, buffer);
  // A whole-object PUT is idempotent: retried like the parts of a multipart upload.
  return retry(impl_->options.retry, [&] { return impl_->put(bucket, key, buffer, content_type); });
}

std::uint64_t S3Client::get_object(const std::string& bucket, const std::string& key,
                                   const std::function<void(std::string_view)>& sink) {
  Call c{"GetObject", bucket, key};
  c.sink = &sink;
  const Transfer t = impl_->call(c);
  return t.delivered;
}

std::string S3Client::get_object(const std::string& bucket, const std::string& key) {
  Call c{"GetObject", bucket, key};
  Transfer t = impl_->call(c);
  return std::move(t.body);
}

std::string S3Client::get_object_range(const std::string& bucket, const std::string& key, std::uint64_t offset,
                                       std::uint64_t length) {
  if (length == 0) return {};
  Call c{"GetObject", bucket, key};
  c.headers.emplace_back("range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  Transfer t;
  const Impl::Result r = impl_->exchange(c, t);
  if (r.code == CURLE_OK && r.status == 416) return {};  // offset at or past the end
  if (r.code != CURLE_OK || r.status < 200 || r.status >= 300) impl_->fail(c, r, t);
  if (r.status == 200) {
    // A server that ignores Range sends the whole object.
    if (offset >= t.body.size()) return {};
    return t.body.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }
  if (t.body.size() > length) t.body.resize(static_cast<std::size_t>(length));
  return std::move(t.body);
}

std::vector<S3Object> S3Client::list_objects(const std::string& bucket, const std::string& prefix, int page_size) {
  std::vector<S3Object> out;
  std::string token;
  const std::string no_key;
  for (;;) {
    Call c{"ListObjectsV2", bucket, no_key};
    c.query = {{"list-type", "2"}};
    if (!prefix.empty()) c.query.emplace_back("prefix", prefix);
    if (page_size > 0) c.query.emplace_back("max-keys", std::to_string(page_size));
    if (!token.empty()) c.query.emplace_back("continuation-token", token);
    const Transfer t = impl_->call(c);
    detail::ListPage page;
    try {
      page = detail::parse_list_page(t.body);
    } catch (const ProtocolError& e) {
      throw ProtocolError(impl_->describe(c) + ": " + e.what());
    }
    for (auto& o : page.objects) out.push_back(std::move(o));
    if (!page.truncated) break;
    if (page.next_token == token) {
      throw ProtocolError(impl_->describe(c) + ": the continuation token did not advance");
    }
    token = std::move(page.next_token);
  }
  return out;
}

std::optional<S3Object> S3Client::head_object(const std::string& bucket, const std::string& key) {
  Call c{"HeadObject", bucket, key};
  c.method = "HEAD";
  Transfer t;
  const Impl::Result r = impl_->exchange(c, t);
  if (r.code == CURLE_OK && r.status == 404) return std::nullopt;
  if (r.code != CURLE_OK || r.status < 200 || r.status >= 300) impl_->fail(c, r, t);
  S3Object o;
  o.key = key;
  o.etag = detail::unquote_etag(t.etag);
  o.last_modified = detail::http_date_to_iso8601(t.last_modified);
  curl_off_t length = -1;
  if (curl_easy_getinfo(impl_->easy.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length >= 0) {
    o.size = static_cast<std::uint64_t>(length);
  } else {
    throw ProtocolError(impl_->describe(c) + ": HEAD reply without Content-Length");
  }
  return o;
}

void S3Client::delete_object(const std::string& bucket, const std::string& key) {
  Call c{"DeleteObject", bucket, key};
  c.method = "DELETE";
  (void)impl_->call(c);
}

void S3Client::create_bucket(const std::string& bucket) {
  const std::string no_key;
  Call c{"CreateBucket", bucket, no_key};
  c.method = "PUT";
  std::string body;
  if (impl_->options.region != "us-east-1") {
    body = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>" +
           detail::xml_escape(impl_->options.region) + "</LocationConstraint></CreateBucketConfiguration>";
  }
  c.body = body;
  try {
    (void)impl_->call(c);
  } catch (const AwsError& e) {
    if (e.type() != "BucketAlreadyOwnedByYou") throw;  // ours already: done (as us-east-1 says)
  }
}

}  // namespace kclpp::aws
