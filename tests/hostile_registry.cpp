// The misbehaving-registry test fixture (see hostile_registry.h): a blocking-socket HTTP/1.1
// server, one thread per connection, one answer per connection. Stopping rests on shutdown(2):
// it wakes a thread blocked in accept, recv, send, SSL_read or SSL_write, and sleeps between drips
// wait on a condition variable, so the destructor never waits on a client. TLS uses OpenSSL with
// a P-256 key and a self-signed certificate made once per process; SIGPIPE is ignored (OpenSSL
// writes to the socket with write(2)). serve_layout reads index.json and blobs at request time.
#include "tests/hostile_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "strata/digest.h"

namespace strata::testing {
namespace {

constexpr std::size_t kMaxRequestHead = std::size_t{1} << 20U;
constexpr std::size_t kMaxRequestBody = std::size_t{64} << 20U;

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

std::string reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

// A key and self-signed certificate for 127.0.0.1, made once per process.
struct TlsIdentity {
  EVP_PKEY* key = nullptr;
  X509* certificate = nullptr;
};

const TlsIdentity& tls_identity() {
  static const TlsIdentity identity = [] {
    TlsIdentity made;
    made.key = EVP_EC_gen("P-256");
    made.certificate = X509_new();
    if (made.key == nullptr || made.certificate == nullptr) {
      throw std::runtime_error("hostile registry: cannot make a TLS key");
    }
    X509* cert = made.certificate;
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600);
    X509_set_pubkey(cert, made.key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, "IP:127.0.0.1");
    if (san != nullptr) {
      X509_add_ext(cert, san, -1);
      X509_EXTENSION_free(san);
    }
    if (X509_sign(cert, made.key, EVP_sha256()) == 0) {
      throw std::runtime_error("hostile registry: cannot sign the TLS certificate");
    }
    return made;
  }();
  return identity;
}

// One accepted connection, plain or TLS.
struct Connection {
  int fd = -1;
  SSL* ssl = nullptr;

  long read(char* buffer, std::size_t size) const {
    if (ssl != nullptr) return SSL_read(ssl, buffer, static_cast<int>(size));
    while (true) {
      const ssize_t n = ::recv(fd, buffer, size, 0);
      if (n < 0 && errno == EINTR) continue;
      return static_cast<long>(n);
    }
  }
  bool write_all(std::string_view bytes) const {
    while (!bytes.empty()) {
      long n = 0;
      if (ssl != nullptr) {
        n = SSL_write(ssl, bytes.data(),
                      static_cast<int>(std::min<std::size_t>(bytes.size(), 1U << 20U)));
      } else {
        n = static_cast<long>(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL));
        if (n < 0 && errno == EINTR) continue;
      }
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
};

// Reads one request; nullopt when the client went away or sent something unusable.
std::optional<SeenRequest> read_request(const Connection& connection) {
  std::string data;
  char buffer[16384];
  std::size_t head_end = std::string::npos;
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
    if (data.size() > kMaxRequestHead) return std::nullopt;
    const long n = connection.read(buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  SeenRequest request;
  std::istringstream head(data.substr(0, head_end));
  std::string line;
  if (!std::getline(head, line)) return std::nullopt;
  {
    std::istringstream request_line(line);
    std::string version;
    request_line >> request.method >> request.target >> version;
    if (request.method.empty() || request.target.empty()) return std::nullopt;
  }
  while (std::getline(head, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = lowercase(trim(std::string_view(line).substr(0, colon)));
    const std::string value = trim(std::string_view(line).substr(colon + 1));
    auto [it, inserted] = request.headers.emplace(name, value);
    if (!inserted) it->second += ", " + value;
  }
  request.body = data.substr(head_end + 4);
  if (const auto expect = request.headers.find("expect");
      expect != request.headers.end() && lowercase(expect->second) == "100-continue") {
    if (!connection.write_all("HTTP/1.1 100 Continue\r\n\r\n")) return std::nullopt;
  }
  std::size_t wanted = 0;
  bool chunked = false;
  if (const auto length = request.headers.find("content-length"); length != request.headers.end()) {
    try {
      wanted = static_cast<std::size_t>(std::stoull(length->second));
    } catch (...) {
      return std::nullopt;
    }
  } else if (const auto encoding = request.headers.find("transfer-encoding");
             encoding != request.headers.end() &&
             lowercase(encoding->second).find("chunked") != std::string::npos) {
    chunked = true;
  }
  if (wanted > kMaxRequestBody) return std::nullopt;
  // A chunked body is kept raw, read up to its last (empty) chunk.
  while (chunked ? request.body.find("0\r\n\r\n") == std::string::npos
                 : request.body.size() < wanted) {
    if (request.body.size() > kMaxRequestBody) return std::nullopt;
    const long n = connection.read(buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    request.body.append(buffer, static_cast<std::size_t>(n));
  }
  return request;
}

bool has_header(const Reply& reply, std::string_view name) {
  return std::any_of(reply.headers.begin(), reply.headers.end(),
                     [&](const auto& header) { return lowercase(header.first) == name; });
}

std::string sha256_string(std::string_view bytes) {
  return sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()))
      .to_string();
}

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool is_sha256_digest(std::string_view text) {
  if (!text.starts_with("sha256:") || text.size() != 7 + 64) return false;
  return std::all_of(text.begin() + 7, text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

struct HostileRegistry::State {
  Handler handler;
  SSL_CTX* tls = nullptr;
  int listener = -1;
  std::uint16_t port = 0;
  std::thread acceptor;

  mutable std::mutex mutex;  // guards everything below
  std::condition_variable stopped;
  bool stopping = false;
  std::vector<SeenRequest> seen;
  std::vector<int> open_fds;
  std::vector<std::thread> workers;

  // Sleeps `interval` unless the server stops first; false when it did.
  bool sleep_unless_stopped(std::chrono::milliseconds interval) {
    std::unique_lock lock(mutex);
    return !stopped.wait_for(lock, interval, [this] { return stopping; });
  }

  void accept_loop() {
    while (true) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // the listener was shut down
      }
      std::lock_guard lock(mutex);
      if (stopping) {
        ::close(fd);
        return;
      }
      open_fds.push_back(fd);
      workers.emplace_back([this, fd] { serve_connection(fd); });
    }
  }

  void close_connection(Connection& connection) {
    if (connection.ssl != nullptr) SSL_free(connection.ssl);
    std::lock_guard lock(mutex);
    open_fds.erase(std::remove(open_fds.begin(), open_fds.end(), connection.fd), open_fds.end());
    ::close(connection.fd);  // under the lock: the destructor never shuts down a reused number
  }

  void serve_connection(int fd) {
    Connection connection{fd, nullptr};
    if (tls != nullptr) {
      connection.ssl = SSL_new(tls);
      if (connection.ssl == nullptr || SSL_set_fd(connection.ssl, fd) != 1 ||
          SSL_accept(connection.ssl) != 1) {
        ERR_clear_error();
        close_connection(connection);
        return;
      }
    }
    if (auto request = read_request(connection)) {
      {
        std::lock_guard lock(mutex);
        seen.push_back(*request);
      }
      Reply reply;
      try {
        reply = handler(*request);
      } catch (const std::exception& error) {
        reply = error_reply(500, "UNKNOWN", std::string("handler threw: ") + error.what());
      }
      answer(connection, *request, reply);
    }
    ERR_clear_error();
    close_connection(connection);
  }

  void answer(const Connection& connection, const SeenRequest& request, const Reply& reply) {
    std::string head =
        "HTTP/1.1 " + std::to_string(reply.status) + " " + reason_phrase(reply.status) + "\r\n";
    for (const auto& [name, value] : reply.headers) head += name + ": " + value + "\r\n";
    const bool length_given = has_header(reply, "content-length");
    if (!length_given && !(reply.mode == Reply::Mode::kEndless && reply.omit_length)) {
      head += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
    }
    head += "Connection: close\r\n\r\n";
    if (!connection.write_all(head)) return;
    if (request.method == "HEAD") {
      finish(connection);
      return;
    }
    switch (reply.mode) {
      case Reply::Mode::kNormal:
        if (connection.write_all(reply.body)) finish(connection);
        return;
      case Reply::Mode::kDrip: {
        const std::size_t step = std::max<std::size_t>(1, reply.drip_bytes);
        for (std::size_t sent = 0; sent < reply.body.size(); sent += step) {
          if (sent != 0 && !sleep_unless_stopped(reply.drip_interval)) return;
          if (!connection.write_all(std::string_view(reply.body).substr(sent, step))) return;
        }
        finish(connection);
        return;
      }
      case Reply::Mode::kEndless: {
        if (!connection.write_all(reply.body)) return;
        const std::string zeros(std::size_t{64} << 10U, '\0');
        while (connection.write_all(zeros)) {
        }
        return;  // the client closed (or the server stops)
      }
      case Reply::Mode::kStall: {
        char buffer[4096];
        while (connection.read(buffer, sizeof buffer) > 0) {
        }
        return;
      }
    }
  }

  // Ends the answer politely: no more bytes from us, then wait for the client to close, so that
  // closing does not reset a connection whose last bytes the client has not read yet.
  static void finish(const Connection& connection) {
    if (connection.ssl != nullptr) SSL_shutdown(connection.ssl);
    ::shutdown(connection.fd, SHUT_WR);
    timeval timeout{2, 0};
    ::setsockopt(connection.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buffer[4096];
    while (::recv(connection.fd, buffer, sizeof buffer, 0) > 0) {
    }
  }
};

namespace {

std::unique_ptr<HostileRegistry::State> start(Handler handler, bool use_tls) {
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  auto state = std::make_unique<HostileRegistry::State>();
  state->handler = std::move(handler);
  if (use_tls) {
    const TlsIdentity& identity = tls_identity();
    state->tls = SSL_CTX_new(TLS_server_method());
    if (state->tls == nullptr || SSL_CTX_use_certificate(state->tls, identity.certificate) != 1 ||
        SSL_CTX_use_PrivateKey(state->tls, identity.key) != 1) {
      throw std::runtime_error("hostile registry: cannot set up TLS");
    }
  }
  state->listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (state->listener < 0 ||
      ::bind(state->listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(state->listener, 64) != 0 ||
      ::getsockname(state->listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("hostile registry: cannot listen on 127.0.0.1");
  }
  state->port = ntohs(address.sin_port);
  state->acceptor = std::thread([raw = state.get()] { raw->accept_loop(); });
  return state;
}

}  // namespace

HostileRegistry::HostileRegistry(Handler handler) : state_(start(std::move(handler), false)) {}

HostileRegistry::HostileRegistry(Handler handler, UseTls)
    : state_(start(std::move(handler), true)) {}

HostileRegistry::~HostileRegistry() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    for (int fd : state_->open_fds) ::shutdown(fd, SHUT_RDWR);
  }
  state_->stopped.notify_all();
  ::shutdown(state_->listener, SHUT_RDWR);
  state_->acceptor.join();
  // No thread adds workers any more.
  for (std::thread& worker : state_->workers) worker.join();
  ::close(state_->listener);
  if (state_->tls != nullptr) SSL_CTX_free(state_->tls);
}

std::string HostileRegistry::host() const {
  return "127.0.0.1:" + std::to_string(state_->port);
}

std::vector<SeenRequest> HostileRegistry::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->seen;
}

Reply error_reply(int status, const std::string& code, const std::string& message) {
  Reply reply;
  reply.status = status;
  reply.headers.emplace_back("Content-Type", "application/json");
  reply.body =
      nlohmann::json{
          {"errors", nlohmann::json::array({nlohmann::json{{"code", code}, {"message", message}}})}}
          .dump();
  return reply;
}

namespace {

// The descriptor of index.json naming `tag` (org.opencontainers.image.ref.name) or, for a
// digest, listing it; nullopt when none does.
std::optional<nlohmann::json> find_in_index(const std::string& layout, const std::string& key,
                                            bool by_digest) {
  const auto text = read_whole_file(layout + "/index.json");
  if (!text) return std::nullopt;
  const auto index = nlohmann::json::parse(*text, nullptr, false);
  if (index.is_discarded() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return std::nullopt;
  }
  for (const auto& descriptor : index["manifests"]) {
    if (!descriptor.is_object()) continue;
    if (by_digest) {
      if (descriptor.value("digest", "") == key) return descriptor;
      continue;
    }
    const auto annotations = descriptor.find("annotations");
    if (annotations != descriptor.end() && annotations->is_object() &&
        annotations->value("org.opencontainers.image.ref.name", "") == key) {
      return descriptor;
    }
  }
  return std::nullopt;
}

// A single byte range of a blob of `size` bytes: [first, last], or nullopt when the header is
// not one range we understand (then the whole blob is served); first > last marks unsatisfiable.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_single_range(const std::string& header,
                                                                          std::uint64_t size) {
  const std::string text = trim(header);
  if (!text.starts_with("bytes=") || text.find(',') != std::string::npos) return std::nullopt;
  const std::string spec = text.substr(6);
  const auto dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  const std::string first_text = spec.substr(0, dash);
  const std::string last_text = spec.substr(dash + 1);
  const auto number = [](const std::string& digits) -> std::optional<std::uint64_t> {
    if (digits.empty() || digits.size() > 19 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    return std::stoull(digits);
  };
  if (first_text.empty()) {  // suffix: the last N bytes
    const auto suffix = number(last_text);
    if (!suffix || *suffix == 0 || size == 0) return std::pair<std::uint64_t, std::uint64_t>{1, 0};
    return std::pair<std::uint64_t, std::uint64_t>{size - std::min(*suffix, size), size - 1};
  }
  const auto first = number(first_text);
  if (!first) return std::nullopt;
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_text.empty()) {
    const auto asked = number(last_text);
    if (!asked || *asked < *first) return std::nullopt;
    last = std::min(last, *asked);
  }
  if (*first >= size) return std::pair<std::uint64_t, std::uint64_t>{1, 0};
  return std::pair<std::uint64_t, std::uint64_t>{*first, last};
}

Reply blob_reply(const std::string& digest, const std::string& bytes, const SeenRequest& request) {
  Reply reply;
  reply.headers.emplace_back("Docker-Content-Digest", digest);
  reply.headers.emplace_back("Accept-Ranges", "bytes");
  const auto range_header = request.headers.find("range");
  if (range_header == request.headers.end()) {
    reply.headers.emplace_back("Content-Type", "application/octet-stream");
    reply.body = bytes;
    return reply;
  }
  const auto range = parse_single_range(range_header->second, bytes.size());
  if (!range) {  // several ranges (or one we do not read): the whole blob, as many registries do
    reply.headers.emplace_back("Content-Type", "application/octet-stream");
    reply.body = bytes;
    return reply;
  }
  if (range->first > range->second) {
    reply.status = 416;
    reply.headers.emplace_back("Content-Range", "bytes */" + std::to_string(bytes.size()));
    return reply;
  }
  reply.status = 206;
  reply.headers.emplace_back("Content-Type", "application/octet-stream");
  reply.headers.emplace_back("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                                  std::to_string(range->second) + "/" +
                                                  std::to_string(bytes.size()));
  reply.body = bytes.substr(range->first, range->second - range->first + 1);
  return reply;
}

}  // namespace

Handler serve_layout(
    std::string layout_directory, std::map<std::string, std::string> blob_overrides,
    std::map<std::string, std::pair<std::string, std::string>> manifest_overrides) {
  return [layout = std::move(layout_directory), blobs = std::move(blob_overrides),
          manifests = std::move(manifest_overrides)](const SeenRequest& request) -> Reply {
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (request.method != "GET" && request.method != "HEAD") {
      return error_reply(405, "UNSUPPORTED", "this registry is read-only");
    }
    if (path == "/v2/" || path == "/v2") {
      Reply reply;
      reply.headers.emplace_back("Content-Type", "application/json");
      reply.headers.emplace_back("Docker-Distribution-API-Version", "registry/2.0");
      reply.body = "{}";
      return reply;
    }
    if (!path.starts_with("/v2/")) return error_reply(404, "NOT_FOUND", path + " is not /v2/");
    const auto read_blob = [&](const std::string& digest) -> std::optional<std::string> {
      if (const auto lie = blobs.find(digest); lie != blobs.end()) return lie->second;
      if (!is_sha256_digest(digest)) return std::nullopt;
      return read_whole_file(layout + "/blobs/sha256/" + digest.substr(7));
    };
    for (const std::string kind : {"/manifests/", "/blobs/", "/referrers/"}) {
      const auto at = path.rfind(kind);
      if (at == std::string::npos || at <= 4) continue;
      const std::string reference = path.substr(at + kind.size());
      if (reference.empty() || reference.find('/') != std::string::npos) continue;
      if (kind == "/referrers/") return error_reply(404, "NOT_FOUND", "no referrers API");
      if (kind == "/blobs/") {
        const auto bytes = read_blob(reference);
        if (!bytes) return error_reply(404, "BLOB_UNKNOWN", "blob unknown to registry");
        return blob_reply(reference, *bytes, request);
      }
      Reply reply;
      if (const auto lie = manifests.find(reference); lie != manifests.end()) {
        reply.headers.emplace_back("Content-Type", lie->second.first);
        reply.headers.emplace_back("Docker-Content-Digest", sha256_string(lie->second.second));
        reply.body = lie->second.second;
        return reply;
      }
      const bool by_digest = reference.starts_with("sha256:");
      const auto descriptor = find_in_index(layout, reference, by_digest);
      if (!by_digest && !descriptor) {
        return error_reply(404, "MANIFEST_UNKNOWN", "manifest unknown: " + reference);
      }
      const std::string digest = by_digest ? reference : descriptor->value("digest", "");
      const auto bytes = read_blob(digest);
      if (!bytes) return error_reply(404, "MANIFEST_UNKNOWN", "manifest unknown: " + reference);
      std::string media_type;
      if (descriptor) media_type = descriptor->value("mediaType", "");
      if (media_type.empty()) {
        const auto document = nlohmann::json::parse(*bytes, nullptr, false);
        if (!document.is_discarded() && document.is_object()) {
          media_type = document.value("mediaType", "");
        }
      }
      if (media_type.empty()) media_type = "application/vnd.oci.image.manifest.v1+json";
      reply.headers.emplace_back("Content-Type", media_type);
      reply.headers.emplace_back("Docker-Content-Digest", digest);
      reply.body = *bytes;
      return reply;
    }
    return error_reply(404, "NAME_UNKNOWN", "no route for " + path);
  };
}

}  // namespace strata::testing
