// libcurl underneath RegistryClient: pooled easy handles, time-outs, capped bodies and bounded
// retries with exponential backoff (RFC 9110 §10.2.3 Retry-After honoured up to a cap). Each
// request has one deadline (RetryPolicy::max_total plus its expected bytes at the policy's
// minimum average rate): every attempt runs with CURLOPT_TIMEOUT_MS = the time left, and no
// retry starts that would begin past it. A retried
// request starts over: the body reader is read again from offset 0 and the sink is told to reset
// (or, for a resuming download, the attempt's own Range header says where to pick up).
// Only http and https are allowed, for requests and for redirects.
#include "registry/http_transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

namespace strata::registry::detail {
namespace {

constexpr std::size_t kMaxErrorBody = std::size_t{64} << 10U;
constexpr std::size_t kMaxHeaderBytes = std::size_t{256} << 10U;
constexpr std::size_t kMaxHeaderCount = 256;
constexpr long kReceiveBufferBytes = 256L << 10U;

void initialize_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// State shared with the curl callbacks of one attempt.
struct Attempt {
  const HttpRequest* request = nullptr;
  CURL* handle = nullptr;
  HttpResponse response;
  std::size_t header_bytes = 0;
  std::optional<Error> failure;  // why a callback stopped the transfer
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  bool answer_seen = false;  // on_response ran for this attempt
};

long response_code(CURL* handle) {
  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& attempt = *static_cast<Attempt*>(user);
  const std::size_t length = size * count;
  attempt.header_bytes += length;
  std::string_view line(data, length);
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or a 100 Continue): its headers replace the old ones.
    attempt.response.headers.clear();
    return length;
  }
  if (attempt.header_bytes > kMaxHeaderBytes ||
      attempt.response.headers.size() >= kMaxHeaderCount) {
    attempt.failure = make_error(ErrorCode::kLimitExceeded, "response headers too large");
    return 0;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return length;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  attempt.response.headers.emplace(lowercase(std::string(line.substr(0, colon))),
                                   std::string(value));
  return length;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto& attempt = *static_cast<Attempt*>(user);
  const std::size_t length = size * count;
  attempt.received += length;
  const long status = response_code(attempt.handle);
  const ByteSpan bytes(reinterpret_cast<const std::uint8_t*>(data), length);
  const bool success = status >= 200 && status < 300;
  if (success && attempt.request->on_response && !attempt.answer_seen) {
    attempt.answer_seen = true;
    attempt.response.status = status;
    auto accepted = attempt.request->on_response(attempt.response);
    if (!accepted.ok()) {
      attempt.failure = std::move(accepted).error();
      return 0;
    }
  }
  if (success && attempt.request->sink) {
    auto consumed = attempt.request->sink(status, bytes);
    if (!consumed.ok()) {
      attempt.failure = std::move(consumed).error();
      return 0;
    }
    return length;
  }
  const std::size_t limit = success ? attempt.request->max_body : kMaxErrorBody;
  auto& body = attempt.response.body;
  if (body.size() + length > limit) {
    if (!success) return length;  // the start of an error body is enough for the message
    attempt.failure = make_error(ErrorCode::kLimitExceeded,
                                 "response body larger than " + std::to_string(limit) + " bytes");
    return 0;
  }
  body.insert(body.end(), bytes.begin(), bytes.end());
  return length;
}

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto& attempt = *static_cast<Attempt*>(user);
  const HttpRequest& request = *attempt.request;
  const std::uint64_t left = request.body_size - attempt.sent;
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, size * count));
  if (want == 0) return 0;
  auto read =
      request.body(attempt.sent, MutableByteSpan(reinterpret_cast<std::uint8_t*>(buffer), want));
  if (!read.ok()) {
    attempt.failure = std::move(read).error();
    return CURL_READFUNC_ABORT;
  }
  if (*read == 0 || *read > want) {
    attempt.failure = make_error(
        ErrorCode::kIo, "upload source ended early at byte " + std::to_string(attempt.sent));
    return CURL_READFUNC_ABORT;
  }
  attempt.sent += *read;
  if (request.on_sent) request.on_sent(attempt.sent);
  return *read;
}

bool is_retryable_curl_error(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_COULDNT_RESOLVE_HOST: return true;
    default: return false;
  }
}

bool is_retryable_status(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  const auto found = headers.find(name);
  return found == headers.end() ? std::string() : found->second;
}

std::string HttpResponse::describe() const {
  std::string text = "HTTP " + std::to_string(status);
  // Distribution errors: {"errors":[{"code":"...","message":"..."}]}.
  const auto document = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (!document.is_discarded() && document.is_object() && document.contains("errors") &&
      document["errors"].is_array() && !document["errors"].empty()) {
    const auto& first = document["errors"][0];
    if (first.is_object()) {
      if (first.contains("code") && first["code"].is_string()) {
        text += " " + first["code"].get<std::string>();
      }
      if (first.contains("message") && first["message"].is_string()) {
        text += ": " + first["message"].get<std::string>().substr(0, 200);
      }
    }
  }
  return text;
}

HttpTransport::HttpTransport(const ClientOptions& options) : options_(options) {
  initialize_curl_once();
}

HttpTransport::~HttpTransport() {
  for (void* handle : pool_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

void* HttpTransport::acquire_handle() {
  {
    std::lock_guard lock(pool_mutex_);
    if (!pool_.empty()) {
      void* handle = pool_.back();
      pool_.pop_back();
      curl_easy_reset(static_cast<CURL*>(handle));
      return handle;
    }
  }
  return curl_easy_init();
}

void HttpTransport::release_handle(void* handle) {
  std::lock_guard lock(pool_mutex_);
  pool_.push_back(handle);
}

TransferCounters HttpTransport::counters() const {
  return TransferCounters{bytes_received_.load(), bytes_sent_.load(), requests_.load(),
                          retries_.load()};
}

Result<HttpResponse> HttpTransport::perform_once(const HttpRequest& request, bool& retryable,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 const std::string& deadline_text) {
  retryable = false;
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) {
    return make_error(ErrorCode::kIo, request.method + " " + request.url +
                                          ": ran past its deadline (" + deadline_text + ")");
  }
  CURL* handle = static_cast<CURL*>(acquire_handle());
  if (handle == nullptr) return make_error(ErrorCode::kInternal, "curl_easy_init failed");
  struct Releaser {
    HttpTransport* transport;
    CURL* handle;
    curl_slist* headers = nullptr;
    ~Releaser() {
      curl_slist_free_all(headers);
      transport->release_handle(handle);
    }
  } releaser{this, handle};

  Attempt attempt;
  attempt.request = &request;
  attempt.handle = handle;
  if (request.begin_attempt) request.begin_attempt();

  curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  // An https request follows redirects to https only: a redirect down to http would carry the
  // Range, the Authorization header of a same-host hop and the content in clear.
  const bool secure = request.url.rfind("https://", 0) == 0;
  curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, secure ? "https" : "http,https");
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(handle, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(options_.stall_timeout.count()));
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "strata-registry-client");
  // Larger reads than libcurl's 16 KiB: a blob or a range batch arrives in a few hundred calls
  // of the sink instead of thousands.
  curl_easy_setopt(handle, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  if (!options_.tls_verify) {
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &attempt);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &attempt);

  for (const std::string& header : request.headers) {
    releaser.headers = curl_slist_append(releaser.headers, header.c_str());
  }
  if (request.attempt_header) {
    if (const std::string header = request.attempt_header(); !header.empty()) {
      releaser.headers = curl_slist_append(releaser.headers, header.c_str());
    }
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (request.body) {
    curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(handle, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(handle, CURLOPT_READDATA, &attempt);
    curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_size));
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    // No "Expect: 100-continue" round trip: registries answer auth failures before reading.
    releaser.headers = curl_slist_append(releaser.headers, "Expect:");
  } else if (request.method == "POST") {
    curl_easy_setopt(handle, CURLOPT_POST, 1L);
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, "");
  } else if (request.method != "GET") {
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, releaser.headers);

  const CURLcode code = curl_easy_perform(handle);
  requests_.fetch_add(1);
  bytes_received_.fetch_add(attempt.received);
  bytes_sent_.fetch_add(attempt.sent);
  if (attempt.failure) return std::move(*attempt.failure);
  // An error answer whose body ends before its Content-Length is still that answer: its status is
  // what the caller acts on (docker-registry 2.8 answers an unsatisfiable Range so, with a 416).
  const bool cut_error_answer = code == CURLE_PARTIAL_FILE && response_code(handle) >= 400;
  // Timed out at (or within a hair of) the request's deadline: its time is up, no retry.
  if (code == CURLE_OPERATION_TIMEDOUT &&
      std::chrono::steady_clock::now() + std::chrono::milliseconds(20) >= deadline) {
    return make_error(ErrorCode::kIo, request.method + " " + request.url +
                                          ": ran past its deadline (" + deadline_text + ")");
  }
  if (code != CURLE_OK && !cut_error_answer) {
    retryable = is_retryable_curl_error(code);
    return make_error(ErrorCode::kIo,
                      request.method + " " + request.url + ": " + curl_easy_strerror(code));
  }
  attempt.response.status = response_code(handle);
  char* effective = nullptr;
  curl_easy_getinfo(handle, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective != nullptr) attempt.response.effective_url = effective;
  retryable = is_retryable_status(attempt.response.status);
  return std::move(attempt.response);
}

Result<HttpResponse> HttpTransport::perform(const HttpRequest& request) {
  const RetryPolicy& policy = options_.retry;
  const std::uint64_t rate = std::max<std::uint64_t>(1, policy.min_bytes_per_second);
  // Milliseconds for the expected bytes, saturating (a huge expectation: no practical deadline).
  const std::uint64_t transfer_ms = request.expected_bytes > UINT64_MAX / 1000
                                        ? UINT64_MAX / 1000
                                        : request.expected_bytes * 1000 / rate;
  const auto budget = policy.max_total + std::chrono::milliseconds(static_cast<std::int64_t>(
                                             std::min<std::uint64_t>(transfer_ms, 1ULL << 50U)));
  const auto deadline = std::chrono::steady_clock::now() + budget;
  const std::string deadline_text =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(budget).count()) +
      " s: retry max_total " +
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(policy.max_total).count()) +
      " s + " + std::to_string(request.expected_bytes) + " bytes at " + std::to_string(rate) +
      " B/s";
  auto backoff = policy.initial_backoff;
  for (unsigned attempt = 1;; ++attempt) {
    bool retryable = false;
    auto response = perform_once(request, retryable, deadline, deadline_text);
    const bool last = attempt >= std::max(1U, policy.max_attempts);
    if (!retryable || last) return response;
    auto wait = backoff;
    if (response.ok()) {
      if (auto retry_after = parse_retry_after(response->header("retry-after"),
                                               std::chrono::system_clock::now())) {
        wait = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::min(*retry_after, policy.max_retry_after));
      }
    }
    if (std::chrono::steady_clock::now() + wait >= deadline) {
      if (response.ok()) return response;  // the caller reports the status it got
      Error error = std::move(response).error();
      error.message += "; not retried: the request's deadline (" + deadline_text + ") is near";
      return error;
    }
    retries_.fetch_add(1);
    std::this_thread::sleep_for(wait);
    backoff = std::min(backoff * 2, policy.max_backoff);
  }
}

}  // namespace strata::registry::detail
