// A misbehaving registry for tests: a small HTTP/1.1 server on 127.0.0.1 (ephemeral port, raw
// sockets, optionally TLS with a self-signed certificate made on the spot by OpenSSL) that answers
// each request with whatever a test's handler returns, sent normally, dripped a few bytes at a
// time, followed by endless zeros, or stalled after the headers. One thread accepts, each
// connection runs on its own thread and gets one answer ("Connection: close"); the destructor
// wakes every connection (shutdown of its socket) and joins them, so it returns promptly even with
// clients mid-drip. serve_layout() turns an OCI image layout directory into a read-only
// distribution-API registry (with optional lies). Rests on RFC 9110 (Range, Content-Range) and
// the distribution spec's error body.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace strata::testing {

struct SeenRequest {
  std::string method;
  std::string target;                          // path+query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;  // the request body (Content-Length bytes; raw chunked encoding otherwise)
};

struct Reply {
  int status = 200;
  // Sent as given. A "Content-Length" here replaces the one the fixture would add (a registry
  // announcing a size it does not send); "Connection: close" is always added.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  enum class Mode { kNormal, kDrip, kEndless, kStall } mode = Mode::kNormal;
  // kDrip: body sent `drip_bytes` bytes every `drip_interval` (Content-Length as given by body
  // size) kEndless: Content-Length = body.size() announced (or none if omit_length), then the body
  // and
  //           zeros for ever (until the client closes)
  // kStall: headers sent, then nothing
  std::size_t drip_bytes = 2;
  std::chrono::milliseconds drip_interval{1000};
  bool omit_length = false;
};

using Handler = std::function<Reply(const SeenRequest&)>;

// TLS for the fixture: a fresh self-signed certificate (CN and SAN 127.0.0.1); clients connect
// with ClientOptions::tls_verify = false.
struct UseTls {};

class HostileRegistry {
 public:
  explicit HostileRegistry(Handler handler);
  HostileRegistry(Handler handler, UseTls);
  ~HostileRegistry();  // stops promptly even with clients mid-drip/endless
  HostileRegistry(const HostileRegistry&) = delete;
  HostileRegistry& operator=(const HostileRegistry&) = delete;

  [[nodiscard]] std::string host() const;  // "127.0.0.1:PORT"
  [[nodiscard]] std::vector<SeenRequest> requests() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Serves an OCI image layout directory (index.json, blobs/sha256/...) as a read-only registry for
// any repository name: GET/HEAD /v2/ (200), /v2/<repo>/manifests/<tag-or-digest> (Content-Type =
// the descriptor's mediaType, Docker-Content-Digest), /v2/<repo>/blobs/<digest> with single
// `Range: bytes=a-b` / `bytes=a-` (206 + Content-Range; 416 past the end; multi-range requests
// answered 200 with the whole blob, as many registries do), 404 with a distribution error JSON
// otherwise, referrers API 404. Files are read at request time.
// `blob_overrides`: digest string -> bytes served instead of the blob's own (a registry that lies).
// `manifest_overrides`: tag -> (media type, bytes) served for that tag.
Handler serve_layout(
    std::string layout_directory, std::map<std::string, std::string> blob_overrides = {},
    std::map<std::string, std::pair<std::string, std::string>> manifest_overrides = {});

// A distribution-spec error answer: {"errors":[{"code":code,"message":message}]}.
Reply error_reply(int status, const std::string& code, const std::string& message);

}  // namespace strata::testing
