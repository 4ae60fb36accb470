// The HTTP layer under RegistryClient (internal, not installed): one libcurl easy handle per
// request taken from a small pool (so connections are reused across requests and threads),
// time-outs on connect and on stalled transfers, a deadline per request scaled to the bytes it
// moves (enforced inside attempts and between them), http/https only, capped response bodies, and
// retries with exponential backoff on dropped connections, 429 and 5xx (Retry-After honoured up to
// a bound). Facts: RFC 9110 (status codes, Retry-After), shared/specs/layer-formats.md §3.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "strata/registry.h"

namespace strata::registry::detail {

struct HttpResponse;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Request body: `body_size` bytes read through `body` (absent: no body).
  std::uint64_t body_size = 0;
  BlobReader body;
  std::function<void(std::uint64_t)> on_sent;  // body bytes sent so far
  // Response body of a 2xx answer: given to `sink` when set (which may fail the transfer), else
  // kept in memory up to `max_body` bytes (kLimitExceeded beyond). `begin_attempt` runs before
  // every attempt so a sink can start over. Error answers keep at most 64 KiB for the message.
  std::function<Result<void>(long status, ByteSpan bytes)> sink;
  std::function<void()> begin_attempt;
  // A header for this attempt only ("" for none), asked after begin_attempt: a download that
  // resumes sends a Range starting where the bytes it already holds end.
  std::function<std::string()> attempt_header;
  // Sees a 2xx answer's status and headers before its first body byte reaches `sink`; an error
  // ends the transfer (not retried).
  std::function<Result<void>(const HttpResponse& response)> on_response;
  std::size_t max_body = oci::kMaxJsonBytes;
  // The bytes this request is expected to move (response body, or request body; an upper bound
  // is fine): its deadline is RetryPolicy::max_total + expected_bytes / min_bytes_per_second.
  std::uint64_t expected_bytes = 0;
};

struct HttpResponse {
  long status = 0;
  std::multimap<std::string, std::string> headers;  // names lowercased, last response only
  std::vector<std::uint8_t> body;
  std::string effective_url;
  // The value of the first header `name` (lowercase), or "".
  [[nodiscard]] std::string header(const std::string& name) const;
  // A short description of an error answer: status plus the registry's error code/message.
  [[nodiscard]] std::string describe() const;
};

class HttpTransport {
 public:
  explicit HttpTransport(const ClientOptions& options);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Performs the request, retrying transport failures, 429 and 5xx per the retry policy. Returns
  // the last response (whatever its status) or the error that ended the attempts.
  Result<HttpResponse> perform(const HttpRequest& request);

  [[nodiscard]] TransferCounters counters() const;

 private:
  Result<HttpResponse> perform_once(const HttpRequest& request, bool& retryable,
                                    std::chrono::steady_clock::time_point deadline,
                                    const std::string& deadline_text);
  void* acquire_handle();
  void release_handle(void* handle);

  ClientOptions options_;
  std::mutex pool_mutex_;
  std::vector<void*> pool_;
  std::atomic<std::uint64_t> bytes_received_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> retries_{0};
};

}  // namespace strata::registry::detail
