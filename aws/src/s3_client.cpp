// The S3 client: the one transport (http.cpp: a kept-alive connection per client and per
// multipart helper), the one SigV4 signer (sigv4.cpp) and the XML reader (s3_xml.cpp). Every
// HTTP outcome becomes an exception in exactly one place: Impl::fail().
//
// Idempotency: every S3 call we make can be repeated without harm (PUT of a whole object
// or of one part replaces it, DELETE of a missing key succeeds, CreateMultipartUpload only
// leaves an unused upload behind that the caller aborts or S3's lifecycle rules reap), so a
// failure after the request was sent is a retryable TransportError, never an InDoubtError.
#include "kclpp/aws/s3_client.hpp"

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
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
#include "error_codes.hpp"
#include "http.hpp"
#include "s3_internal.hpp"

namespace kclpp::aws {

namespace {

struct FileDeleter {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};


// S3 refuses parts below 5 MiB (except the last) and uploads of more than 10,000 parts.
constexpr std::uint64_t max_parts = 10'000;

bool s3_throttling_code(std::string_view code) {
  return code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" ||
         code == "RequestLimitExceeded" || code == "TooManyRequests" || code == "RequestThrottled";
}

// Replies after which fresh credentials may succeed: the provider refetches, one retry.
bool s3_expired_code(std::string_view code) {
  return code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "ExpiredTokenException";
}

bool s3_auth_code(std::string_view code) {
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

std::string snippet(const std::string& body) { return detail::reply_snippet(body); }

// A reply as the client reads it.
struct Reply {
  detail::HttpResult result;  // outcome, status, headers, bytes given to a sink
  std::string body;           // error bodies, and every body not given to a sink
  [[nodiscard]] bool ok() const {
    return result.outcome == detail::HttpResult::Outcome::Response && result.status >= 200 && result.status < 300;
  }
  // The secret and session token the request was signed with, to keep out of messages.
  std::string secret;
  std::string token;
  [[nodiscard]] bool responded(long status) const {
    return result.outcome == detail::HttpResult::Outcome::Response && result.status == status;
  }
};

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
    t.path = "/" + uri_encode(bucket, Slash::Encode);
    if (!key.empty()) t.path += "/" + uri_encode(key, Slash::Keep);
  } else {
    t.host = bucket + "." + endpoint.host;
    t.path = "/" + uri_encode(key, Slash::Keep);
  }
  return t;
}

}  // namespace detail

struct S3Client::Impl {
  S3Options options;
  detail::Endpoint endpoint;
  std::optional<detail::HttpClient> http;  // the client's own connection

  std::string describe(const Call& c) const {
    std::string s = "S3 " + std::string(c.op) + " s3://" + c.bucket;
    if (!c.key.empty()) s += "/" + c.key;
    return s + " at " + endpoint.scheme + "://" + endpoint.host;
  }

  // What SigV4 signs of `c` sent to `target`: the method, path, query, payload hash and
  // every header we send.
  detail::SigningInput signing_input(const Call& c, const detail::Target& target, const std::string& query) const {
    const bool has_body = c.method == "PUT" || c.method == "POST";
    detail::SigningInput in;
    in.method = c.method;
    in.canonical_uri = target.path;
    in.canonical_query = query;
    in.payload_hash = has_body && !c.body.empty() ? detail::sha256_hex(c.body) : std::string(detail::empty_sha256);
    in.region = options.region;
    in.service = "s3";
    in.headers = {{"host", target.host}, {"x-amz-content-sha256", in.payload_hash}};
    for (const auto& header : c.headers) in.headers.push_back(header);
    return in;
  }

  // The header lines of a request: the signed headers (sign() adds x-amz-date and the
  // session token to them), then its Authorization.
  static std::vector<std::string> header_lines(detail::SigningInput in, const Credentials& credentials) {
    const std::string auth = detail::sign(in, credentials, std::chrono::system_clock::now());
    std::vector<std::string> lines;
    lines.reserve(in.headers.size() + 1);
    for (const auto& [name, value] : in.headers) lines.push_back(name + ": " + value);
    lines.push_back("Authorization: " + auth);
    return lines;
  }

  // Sends `c` on `on`, signed with `credentials`.
  Reply perform(const Call& c, detail::HttpClient& on, const Credentials& credentials) {
    const detail::Target target = detail::request_target(endpoint, options.addressing, c.bucket, c.key);
    const std::string query = detail::canonical_query(c.query);
    const std::string url = endpoint.scheme + "://" + target.host + target.path + (query.empty() ? "" : "?" + query);
    const std::vector<std::string> lines = header_lines(signing_input(c, target, query), credentials);
    Reply reply;
    reply.result = on.perform({c.method, url, &lines, c.body, 0, c.sink});
    reply.body = std::move(on.body());
    reply.secret = credentials.secret_access_key;
    reply.token = credentials.session_token;
    return reply;
  }

  // The one place where transport failures and S3 error replies become exceptions.
  [[noreturn]] void fail(const Call& c, const Reply& r) const {
    const std::string where = describe(c);
    if (r.result.outcome != detail::HttpResult::Outcome::Response) {
      const char* stage = r.result.outcome == detail::HttpResult::Outcome::NotSent ? ": request not sent: "
                          : r.result.timed_out                                       ? ": timed out: "
                                                                                     : ": connection failed: ";
      throw TransportError(where + stage + r.result.error);
    }
    fail_reply(where, r.result.status, r.body, {r.secret, r.token});
  }
  [[noreturn]] static void fail_reply(const std::string& where, long status, const std::string& body,
                                      std::initializer_list<std::string_view> secrets) {
    const auto reply = detail::parse_error_reply(body);
    const std::string code = reply ? reply->code : status_code_name(status);
    const std::string what =
        where + ": " + detail::redact(code + (reply && !reply->message.empty() ? ": " + reply->message : ""), secrets) +
        " (HTTP " + std::to_string(status) + ")";
    if (s3_throttling_code(code) || status == 503 || status == 429) throw ThrottledError(what);
    if (s3_auth_code(code)) throw AuthError(what);
    if (status >= 500 || transient_code(code)) throw TransportError(what);
    if (!reply && !body.empty() && status != 404 && status != 403) {
      throw ProtocolError(where + ": unparseable error reply (HTTP " + std::to_string(status) +
                          "): " + snippet(detail::redact(body, secrets)));
    }
    throw AwsError(what, code, static_cast<int>(status), Retry::No);
  }

  // Performs `c`; returns the reply of a 2xx, throws otherwise.
  Reply call(const Call& c) { return call(c, *http); }
  Reply call(const Call& c, detail::HttpClient& on) {
    Reply r = exchange(c, on);
    if (!r.ok()) fail(c, r);
    return r;
  }

  // Performs `c` signed with the provider's credentials; after a reply saying they expired
  // (early, or a skewed clock) the provider refetches and the request goes once more: it
  // was refused, so sending it again is safe (docs/aws.md §3). Any status comes back.
  Reply exchange(const Call& c) { return exchange(c, *http); }
  Reply exchange(const Call& c, detail::HttpClient& on) {
    Reply r = perform(c, on, options.credentials->credentials());
    if ((r.responded(400) || r.responded(403)) && expired_reply(r.body)) {
      options.credentials->expire();
      r = perform(c, on, options.credentials->credentials());
    }
    return r;
  }

  static bool expired_reply(const std::string& body) {
    const auto reply = detail::parse_error_reply(body);
    return reply && s3_expired_code(reply->code);
  }

  detail::HttpOptions http_options() const {
    detail::HttpOptions h;
    h.connect_timeout = options.connect_timeout;
    h.request_timeout = std::chrono::milliseconds(0);  // objects of any size: no total limit
    h.low_speed_timeout = options.low_speed_timeout;
    return h;
  }

  PutObjectResult put(const std::string& bucket, const std::string& key, std::string_view body,
                      const std::string& content_type) {
    Call c{"PutObject", bucket, key};
    c.method = "PUT";
    c.body = body;
    if (!content_type.empty()) c.headers.emplace_back("content-type", content_type);
    const Reply r = call(c);
    return {detail::unquote_etag(r.result.header("etag")), 1};
  }

  PutObjectResult multipart(const std::string& bucket, const std::string& key, std::FILE* file,
                            std::uint64_t size, const std::string& path, const std::string& content_type);
  // The steps of a multipart upload (each retried with options.retry but the abort).
  std::string create_upload(const std::string& bucket, const std::string& key, const std::string& content_type);
  std::string complete_upload(const std::string& bucket, const std::string& key, const std::string& upload_id,
                              const std::vector<std::string>& etags);
  void abort_upload(const std::string& bucket, const std::string& key, const std::string& upload_id) noexcept;
  // Uploads parts 1..N of `upload_id` (N = ceil(size / part_size)), returning their ETags.
  std::vector<std::string> upload_parts(const std::string& bucket, const std::string& key,
                                        const std::string& upload_id, int fd, std::uint64_t size,
                                        std::uint64_t part_size, const std::string& path);

  // Handles of the multipart helper threads, kept between uploads (their connections
  // stay open, as the client's own does). Each is used by one thread at a time.
  std::vector<std::unique_ptr<detail::HttpClient>> helpers;
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
  m.http.emplace(m.http_options());
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
  const std::string upload_id = create_upload(bucket, key, content_type);
  try {
    const std::vector<std::string> etags = upload_parts(bucket, key, upload_id, ::fileno(file), size, part_size, path);
    return {complete_upload(bucket, key, upload_id, etags), static_cast<int>(etags.size())};
  } catch (...) {
    abort_upload(bucket, key, upload_id);
    throw;
  }
}

std::string S3Client::Impl::create_upload(const std::string& bucket, const std::string& key,
                                          const std::string& content_type) {
  Call create{"CreateMultipartUpload", bucket, key};
  create.method = "POST";
  create.query = {{"uploads", ""}};
  if (!content_type.empty()) create.headers.emplace_back("content-type", content_type);
  return retry(options.retry, [&] {
    const Reply t = call(create);
    try {
      return detail::parse_upload_id(t.body);
    } catch (const ProtocolError& e) {
      throw ProtocolError(describe(create) + ": " + e.what());
    }
  });
}

std::string S3Client::Impl::complete_upload(const std::string& bucket, const std::string& key,
                                            const std::string& upload_id, const std::vector<std::string>& etags) {
  Call complete{"CompleteMultipartUpload", bucket, key};
  complete.method = "POST";
  complete.query = {{"uploadId", upload_id}};
  const std::string body = detail::complete_multipart_body(etags);
  complete.body = body;
  return retry(options.retry, [&] {
    const Reply t = call(complete);
    // S3 may answer 200 and then report a failure in the body (the status line goes out
    // before the parts are assembled).
    if (detail::parse_error_reply(t.body)) fail_reply(describe(complete), 500, t.body, {t.secret, t.token});
    auto etag = detail::parse_complete_etag(t.body);
    if (!etag) throw ProtocolError(describe(complete) + ": not a CompleteMultipartUploadResult: " + snippet(t.body));
    return std::move(*etag);
  });
}

// Without an abort, S3 keeps (and bills) the uploaded parts.
void S3Client::Impl::abort_upload(const std::string& bucket, const std::string& key,
                                  const std::string& upload_id) noexcept {
  try {
    Call abort{"AbortMultipartUpload", bucket, key};
    abort.method = "DELETE";
    abort.query = {{"uploadId", upload_id}};
    (void)call(abort);
  } catch (const Error& e) {
    log_warn("S3: aborting multipart upload ", upload_id, " of s3://", bucket, "/", key,
             " failed (its parts stay until a lifecycle rule removes them): ", e.what());
  } catch (const std::exception& e) {
    log_warn("S3: aborting multipart upload ", upload_id, " of s3://", bucket, "/", key, " failed: ", e.what());
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
  const auto work = [&](detail::HttpClient& on) noexcept {
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
          const Reply t = call(part, on);
          std::string etag = t.result.header("etag");
          if (etag.empty()) throw ProtocolError(describe(part) + ": UploadPart reply without an ETag");
          return etag;
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
    helpers.push_back(std::make_unique<detail::HttpClient>(http_options()));
  }
  {
    // jthreads: joined when this scope ends, whatever happens on the caller's thread.
    std::vector<std::jthread> threads;
    threads.reserve(helper_count);
    for (std::size_t k = 0; k < helper_count; ++k) {
      detail::HttpClient& helper = *helpers[k];
      threads.emplace_back([&work, &helper] { work(helper); });
    }
    work(*http);
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
  return impl_->call(c).result.delivered;
}

std::string S3Client::get_object(const std::string& bucket, const std::string& key) {
  Call c{"GetObject", bucket, key};
  return std::move(impl_->call(c).body);
}

std::string S3Client::get_object_range(const std::string& bucket, const std::string& key, std::uint64_t offset,
                                       std::uint64_t length) {
  if (length == 0) return {};
  Call c{"GetObject", bucket, key};
  c.headers.emplace_back("range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  Reply r = impl_->exchange(c);
  if (r.responded(416)) return {};  // offset at or past the end
  if (!r.ok()) impl_->fail(c, r);
  if (r.result.status == 200) {
    // A server that ignores Range sends the whole object.
    if (offset >= r.body.size()) return {};
    return r.body.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }
  if (r.body.size() > length) r.body.resize(static_cast<std::size_t>(length));
  return std::move(r.body);
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
    const Reply t = impl_->call(c);
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
  const Reply r = impl_->exchange(c);
  if (r.responded(404)) return std::nullopt;
  if (!r.ok()) impl_->fail(c, r);
  S3Object o;
  o.key = key;
  o.etag = detail::unquote_etag(r.result.header("etag"));
  o.last_modified = detail::http_date_to_iso8601(r.result.header("last-modified"));
  const std::string length = r.result.header("content-length");
  std::uint64_t size = 0;
  const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), size);
  if (length.empty() || ec != std::errc{} || end != length.data() + length.size()) {
    throw ProtocolError(impl_->describe(c) + ": HEAD reply without a valid Content-Length");
  }
  o.size = size;
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
