// RegistryClient: the OCI distribution API (shared/specs/layer-formats.md §3) over HttpTransport.
// Authentication follows the registry's 401 challenge: Basic with the configured credentials, or
// Bearer (RFC 6750; Docker token protocol: GET realm?service=&scope= with Basic credentials when
// there are any) with one token cached per scope. The realm must be https unless the client is
// --insecure (plain_http): an https registry never makes us send a password in clear. A realm on
// another host is used, credentials included (Docker Hub's registry-1.docker.io names
// auth.docker.io; docker and skopeo do the same): the registry chose it over TLS, and TLS checks
// that host in turn. Errors about the token request name the realm's host when it is another. Whole
// blobs are hashed while they arrive and only become visible (renamed into place / returned) when
// they match their digest; a download to a file resumes its "<path>.partial" of N bytes with
// "Range: bytes=N-1-" (RFC 9110 §14.2: a 206 must start there; a 200 means the registry ignored the
// Range, and the file starts over; a 416 means the file is longer than the blob, and it starts over
// too). Range GETs cannot be checked against the blob digest (their callers hold per-chunk
// digests); a registry that answers a range request with the whole blob (200) gets that blob
// checked instead.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "registry/http_transport.h"
#include "strata/registry.h"

namespace strata::registry {

using detail::HttpRequest;
using detail::HttpResponse;
using detail::HttpTransport;

namespace {

constexpr std::size_t kMaxTagPages = 1000;
constexpr std::size_t kRangesPerRequest = 100;
constexpr std::string_view kManifestAccept =
    "Accept: application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4U]);
      out.push_back(kHex[c & 15U]);
    }
  }
  return out;
}

std::string base64_encode(std::string_view text) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < text.size(); i += 3) {
    const auto v = static_cast<std::uint32_t>(static_cast<unsigned char>(text[i]) << 16U |
                                              static_cast<unsigned char>(text[i + 1]) << 8U |
                                              static_cast<unsigned char>(text[i + 2]));
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kAlphabet[(v >> shift) & 63U]);
  }
  if (i < text.size()) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(text[i]) << 16U);
    if (i + 1 < text.size())
      v |= static_cast<std::uint32_t>(static_cast<unsigned char>(text[i + 1]) << 8U);
    out.push_back(kAlphabet[(v >> 18U) & 63U]);
    out.push_back(kAlphabet[(v >> 12U) & 63U]);
    out.push_back(i + 1 < text.size() ? kAlphabet[(v >> 6U) & 63U] : '=');
    out.push_back('=');
  }
  return out;
}

std::string pull_scope(const std::string& repository) {
  return "repository:" + repository + ":pull";
}
std::string push_scope(const std::string& repository) {
  return "repository:" + repository + ":pull,push";
}

std::string blob_path(const std::string& repository, const Digest& digest) {
  return "/v2/" + repository + "/blobs/" + digest.to_string();
}

Error status_error(const HttpResponse& response, const std::string& what) {
  ErrorCode code = ErrorCode::kIo;
  if (response.status == 404) code = ErrorCode::kNotFound;
  if (response.status == 401 || response.status == 403) code = ErrorCode::kInvalidArgument;
  return make_error(code, what + ": " + response.describe());
}

// "Content-Type: a/b; charset=x" -> "a/b".
std::string media_type_of(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type;
}

std::optional<std::uint64_t> parse_length(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > (UINT64_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

struct RegistryClient::Impl {
  std::string registry;
  ClientOptions options;
  std::string base_url;
  HttpTransport transport;
  std::mutex auth_mutex;
  std::string basic_header;                   // "Authorization: Basic ..." once a registry asked
  std::map<std::string, std::string> tokens;  // scope -> "Authorization: Bearer ..."

  Impl(std::string name, ClientOptions client_options)
      : registry(std::move(name)),
        options(std::move(client_options)),
        base_url((options.plain_http ? "http://" : "https://") + registry),
        transport(options) {}

  std::string url(const std::string& path) const { return base_url + path; }

  // An absolute URL from a Location header (absolute, or a path on the registry).
  std::string resolve_location(const std::string& location) const {
    if (location.starts_with("http://") || location.starts_with("https://")) return location;
    if (location.starts_with("/")) return base_url + location;
    return base_url + "/" + location;
  }

  std::string authorization_for(const std::string& scope) {
    std::lock_guard lock(auth_mutex);
    if (const auto found = tokens.find(scope); found != tokens.end()) return found->second;
    return basic_header;
  }

  Result<void> fetch_token(const AuthChallenge& challenge, const std::string& scope) {
    const auto realm = challenge.params.find("realm");
    if (realm == challenge.params.end() ||
        !(realm->second.starts_with("https://") || realm->second.starts_with("http://"))) {
      return make_error(ErrorCode::kCorruptInput,
                        registry + ": Bearer challenge without an http(s) realm");
    }
    const std::string shown_realm = realm->second.substr(0, 200);
    if (realm->second.starts_with("http://") && !options.plain_http) {
      return make_error(ErrorCode::kUnsupported,
                        registry + ": Bearer realm '" + shown_realm +
                            "' is not https: no token request (it would carry the credentials in "
                            "clear) to a realm of an https registry without --insecure");
    }
    // host[:port] of the realm (userinfo dropped), for errors when it is not the registry.
    std::string realm_host = realm->second.substr(realm->second.find("://") + 3);
    realm_host = realm_host.substr(0, realm_host.find_first_of("/?#"));
    if (const auto at = realm_host.rfind('@'); at != std::string::npos) {
      realm_host = realm_host.substr(at + 1);
    }
    const std::string where =
        registry + ": token request" + (realm_host == registry ? "" : " to " + realm_host);
    std::string token_url = realm->second;
    char separator = token_url.find('?') == std::string::npos ? '?' : '&';
    if (const auto service = challenge.params.find("service"); service != challenge.params.end()) {
      token_url += separator + std::string("service=") + percent_encode(service->second);
      separator = '&';
    }
    // Our scope (space-separated pieces become one parameter each), else the challenge's.
    std::string scopes = scope;
    if (scopes.empty()) {
      if (const auto asked = challenge.params.find("scope"); asked != challenge.params.end()) {
        scopes = asked->second;
      }
    }
    std::size_t start = 0;
    while (start < scopes.size()) {
      const auto space = scopes.find(' ', start);
      const std::string piece = scopes.substr(start, space - start);
      if (!piece.empty()) {
        token_url += separator + std::string("scope=") + percent_encode(piece);
        separator = '&';
      }
      if (space == std::string::npos) break;
      start = space + 1;
    }
    HttpRequest request;
    request.url = token_url;
    request.max_body = kMaxTokenBytes * 2 + 4096;
    if (options.credentials) {
      request.headers.push_back(
          "Authorization: Basic " +
          base64_encode(options.credentials->username + ":" + options.credentials->password));
    }
    auto response = transport.perform(request);
    if (!response.ok()) {
      Error error = std::move(response).error();
      error.message = where + ": " + error.message;
      return error;
    }
    if (response->status != 200) return status_error(*response, where);
    const auto document =
        nlohmann::json::parse(response->body.begin(), response->body.end(), nullptr, false);
    if (document.is_discarded() || !document.is_object()) {
      return make_error(ErrorCode::kCorruptInput, where + ": the answer is not JSON");
    }
    std::string token;
    for (const char* key : {"token", "access_token"}) {
      if (const auto found = document.find(key); found != document.end() && found->is_string()) {
        token = found->get<std::string>();
        break;
      }
    }
    const bool clean =
        std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c < 127; });
    if (token.empty() || token.size() > kMaxTokenBytes || !clean) {
      return make_error(ErrorCode::kCorruptInput, where + ": the answer has no usable token");
    }
    std::lock_guard lock(auth_mutex);
    tokens[scope] = "Authorization: Bearer " + token;
    return {};
  }

  // Answers a 401: Bearer token for the scope, or Basic credentials.
  Result<void> authenticate(const HttpResponse& unauthorized, const std::string& scope) {
    const std::string header = unauthorized.header("www-authenticate");
    if (header.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        registry + ": 401 without a WWW-Authenticate challenge");
    }
    auto challenges = parse_www_authenticate(header);
    if (!challenges.ok()) return std::move(challenges).error();
    for (const AuthChallenge& challenge : *challenges) {
      if (challenge.scheme == "bearer") return fetch_token(challenge, scope);
    }
    for (const AuthChallenge& challenge : *challenges) {
      if (challenge.scheme != "basic") continue;
      if (!options.credentials) {
        return make_error(ErrorCode::kInvalidArgument,
                          registry + " requires credentials (--creds or an auth.json entry)");
      }
      std::lock_guard lock(auth_mutex);
      basic_header = "Authorization: Basic " + base64_encode(options.credentials->username + ":" +
                                                             options.credentials->password);
      return {};
    }
    return make_error(
        ErrorCode::kUnsupported,
        registry + ": no supported authentication scheme in '" + header.substr(0, 100) + "'");
  }

  // Sends a request with the scope's authorization, answering one 401 challenge.
  Result<HttpResponse> send(HttpRequest request, const std::string& scope) {
    const std::vector<std::string> base_headers = request.headers;
    for (int round = 0; round < 2; ++round) {
      request.headers = base_headers;
      // Credentials go only to the registry itself, never to a host a Location points at.
      if (const std::string authorization = authorization_for(scope);
          !authorization.empty() && request.url.starts_with(base_url + "/")) {
        request.headers.push_back(authorization);
      }
      auto response = transport.perform(request);
      if (!response.ok() || response->status != 401 || round == 1) return response;
      STRATA_TRY(authenticate(*response, scope));
    }
    return make_error(ErrorCode::kInternal, "unreachable");
  }
};

RegistryClient::RegistryClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegistryClient::RegistryClient(RegistryClient&&) noexcept = default;
RegistryClient& RegistryClient::operator=(RegistryClient&&) noexcept = default;
RegistryClient::~RegistryClient() = default;

Result<RegistryClient> RegistryClient::create(std::string registry, ClientOptions options) {
  if (registry.empty() || registry.find_first_of("/?#@ \r\n") != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument, "invalid registry host '" + registry + "'");
  }
  return RegistryClient(std::make_unique<Impl>(std::move(registry), std::move(options)));
}

const std::string& RegistryClient::registry() const {
  return impl_->registry;
}
TransferCounters RegistryClient::counters() const {
  return impl_->transport.counters();
}

Result<void> RegistryClient::ping() {
  HttpRequest request;
  request.url = impl_->url("/v2/");
  auto response = impl_->send(request, "");
  if (!response.ok()) return std::move(response).error();
  if (response->status != 200) return status_error(*response, impl_->registry + " /v2/");
  return {};
}

Result<std::optional<BlobInfo>> RegistryClient::stat_blob(const std::string& repository,
                                                          const Digest& digest) {
  HttpRequest request;
  request.method = "HEAD";
  request.url = impl_->url(blob_path(repository, digest));
  auto response = impl_->send(request, pull_scope(repository));
  if (!response.ok()) return std::move(response).error();
  if (response->status == 404) return std::optional<BlobInfo>();
  if (response->status != 200) {
    return status_error(*response, "HEAD " + repository + "@" + digest.to_string());
  }
  BlobInfo info;
  info.size = parse_length(response->header("content-length")).value_or(0);
  if (auto announced = Digest::parse(response->header("docker-content-digest")); announced.ok()) {
    info.digest = *announced;
  }
  return std::optional<BlobInfo>(info);
}

namespace {

// A verified whole-blob download: bytes go to `write`, are hashed and counted; the caller learns
// the result only after the digest matched.
struct BlobDownload {
  Sha256 hasher;
  std::uint64_t size = 0;
};

}  // namespace

Result<std::vector<std::uint8_t>> RegistryClient::fetch_blob(const std::string& repository,
                                                             const Digest& digest,
                                                             std::uint64_t max_bytes) {
  const std::string what = repository + "@" + digest.to_string();
  Error last = make_error(ErrorCode::kInternal, "no attempt");
  // A digest mismatch may be corruption in transit: one more try, then it is the blob.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<std::uint8_t> bytes;
    HttpRequest request;
    request.url = impl_->url(blob_path(repository, digest));
    request.expected_bytes = max_bytes;
    request.begin_attempt = [&bytes] { bytes.clear(); };
    request.sink = [&](long, ByteSpan data) -> Result<void> {
      if (bytes.size() + data.size() > max_bytes) {
        return make_error(ErrorCode::kLimitExceeded,
                          what + ": blob larger than " + std::to_string(max_bytes) + " bytes");
      }
      bytes.insert(bytes.end(), data.begin(), data.end());
      return {};
    };
    auto response = impl_->send(request, pull_scope(repository));
    if (!response.ok()) return std::move(response).error();
    if (response->status != 200) return status_error(*response, "GET " + what);
    const Digest got = sha256_of(bytes);
    if (got == digest) return bytes;
    last = make_error(ErrorCode::kDigestMismatch,
                      "GET " + what + ": received bytes hash to " + got.to_string());
  }
  return last;
}

namespace {

// A download to a file that may resume: the hash of the bytes held so far and the last of them.
struct FileDownload {
  Sha256 hasher;
  std::uint64_t size = 0;
  std::uint8_t last_byte = 0;
  bool overlap_pending = false;  // the answer's first byte repeats last_byte (see below)

  void add(ByteSpan bytes) {
    if (bytes.empty()) return;
    hasher.update(bytes);
    size += bytes.size();
    last_byte = bytes.back();
  }
};

// Feeds the bytes already in `fd` (a partial download) to the hasher and leaves the file offset
// at their end, so the download goes on from there.
Result<void> resume_from_file(int fd, const std::string& path, FileDownload& download) {
  std::vector<std::uint8_t> buffer(std::size_t{1} << 20U);
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(ErrorCode::kIo, path + ": read failed: " + std::strerror(errno));
    if (n == 0) return {};
    download.add(ByteSpan(buffer).first(static_cast<std::size_t>(n)));
  }
}

}  // namespace

Result<std::uint64_t> RegistryClient::fetch_blob_to_file(
    const std::string& repository, const Digest& digest, std::uint64_t size,
    const std::string& path, const std::function<void(std::uint64_t)>& progress) {
  const std::string what = repository + "@" + digest.to_string();
  const std::string partial = path + ".partial";
  const std::string too_long = "GET " + what + ": the registry sends more than the " +
                               std::to_string(size) + " bytes its descriptor says";
  Error last = make_error(ErrorCode::kInternal, "no attempt");
  // A digest mismatch may be corruption in transit or a stale partial file: one more try from 0.
  for (int attempt = 0; attempt < 2; ++attempt) {
    // O_NOFOLLOW: a symbolic link planted at the partial path is never written through.
    const int fd = ::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      const int error = errno;
      return make_error(ErrorCode::kIo,
                        partial + ": cannot open" +
                            (error == ELOOP ? " (a symbolic link, not followed)" : "") + ": " +
                            std::strerror(error));
    }
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    auto download = std::make_unique<FileDownload>();
    const auto restart = [&]() -> Result<void> {
      download = std::make_unique<FileDownload>();
      if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
        return make_error(ErrorCode::kIo, partial + ": cannot truncate");
      }
      return {};
    };
    // A partial longer than the blob cannot be a prefix of it: discarded without asking.
    struct stat held {};
    if (::fstat(fd, &held) != 0) {
      return make_error(ErrorCode::kIo, partial + ": cannot stat: " + std::strerror(errno));
    }
    if (static_cast<std::uint64_t>(held.st_size) > size) {
      STRATA_TRY(restart());
    } else {
      STRATA_TRY(resume_from_file(fd, partial, *download));
    }
    bool disagreed = false;
    bool overran = false;
    HttpRequest request;
    request.url = impl_->url(blob_path(repository, digest));
    request.expected_bytes = size;
    // Every attempt (this call's first, and the transport's retries after a dropped connection)
    // asks for the bytes after those in the file, starting one byte early: the range is then
    // never empty (docker-registry 2.8 answers "bytes=<size>-" with a 416 whose body is shorter
    // than its Content-Length), and the repeated byte checks that the file and the blob agree.
    request.attempt_header = [&]() -> std::string {
      download->overlap_pending = download->size != 0;
      if (download->size == 0) return {};
      return "Range: bytes=" + std::to_string(download->size - 1) + "-";
    };
    request.on_response = [&](const HttpResponse& response) -> Result<void> {
      if (response.status == 206) {
        auto range = parse_content_range(response.header("content-range"));
        if (!download->overlap_pending || !range.ok() || range->first != download->size - 1) {
          return make_error(ErrorCode::kCorruptInput,
                            "GET " + what + ": resumed at byte " + std::to_string(download->size) +
                                ", answer has Content-Range '" +
                                response.header("content-range").substr(0, 100) + "'");
        }
        return {};
      }
      // 200: the registry ignored the Range (or none was sent) and sends the blob from byte 0.
      download->overlap_pending = false;
      if (const auto length = parse_length(response.header("content-length"));
          length && *length > size) {
        overran = true;
        return make_error(ErrorCode::kCorruptInput,
                          too_long + " (Content-Length " + std::to_string(*length) + ")");
      }
      if (download->size != 0) return restart();
      return {};
    };
    request.sink = [&](long, ByteSpan data) -> Result<void> {
      if (download->overlap_pending && !data.empty()) {
        download->overlap_pending = false;
        if (data.front() != download->last_byte) {
          disagreed = true;
          return make_error(ErrorCode::kDigestMismatch,
                            "GET " + what + ": resumed bytes disagree with " + partial);
        }
        data = data.subspan(1);
      }
      if (data.size() > size - download->size) {
        overran = true;
        return make_error(ErrorCode::kCorruptInput, too_long);
      }
      std::size_t written = 0;
      while (written < data.size()) {
        const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          return make_error(ErrorCode::kIo, partial + ": write failed: " + std::strerror(errno));
        }
        written += static_cast<std::size_t>(n);
      }
      download->add(data);
      if (progress) progress(download->size);
      return {};
    };
    auto response = impl_->send(request, pull_scope(repository));
    if (!response.ok() && disagreed) {
      std::filesystem::remove(partial);
      last = std::move(response).error();
      continue;
    }
    // Bytes from a registry that sends more than the blob are not worth resuming from.
    if (!response.ok() && overran) {
      std::filesystem::remove(partial);
      return std::move(response).error();
    }
    // A transfer that failed keeps its partial file: the next call resumes from it.
    if (!response.ok()) return std::move(response).error();
    // The resuming range starts past the blob's end: the partial file is longer than the blob
    // (which it then cannot be a prefix of), so it is discarded and the blob fetched from 0.
    if (response->status == 416 && download->size != 0) {
      std::filesystem::remove(partial);
      last = status_error(
          *response, "GET " + what + " (resuming at byte " + std::to_string(download->size) + ")");
      continue;
    }
    if (response->status != 200 && response->status != 206) {
      std::filesystem::remove(partial);
      return status_error(*response, "GET " + what);
    }
    const Digest got = download->hasher.finish();
    if (got != digest) {
      std::filesystem::remove(partial);
      last = make_error(ErrorCode::kDigestMismatch,
                        "GET " + what + ": received bytes hash to " + got.to_string());
      continue;
    }
    if (download->size != size) {  // the digest matched: the descriptor's size is wrong
      std::filesystem::remove(partial);
      return make_error(ErrorCode::kCorruptInput,
                        "GET " + what + ": blob has " + std::to_string(download->size) +
                            " bytes, its descriptor says " + std::to_string(size));
    }
    if (::fsync(fd) != 0) {
      return make_error(ErrorCode::kIo, partial + ": fsync failed: " + std::strerror(errno));
    }
    std::error_code error;
    std::filesystem::rename(partial, path, error);
    if (error) return make_error(ErrorCode::kIo, path + ": cannot rename: " + error.message());
    return download->size;
  }
  return last;
}

Result<std::vector<std::uint8_t>> RegistryClient::fetch_range(const std::string& repository,
                                                              const Digest& digest,
                                                              std::uint64_t offset,
                                                              std::uint64_t length) {
  const std::string what = repository + "@" + digest.to_string();
  if (length == 0) return std::vector<std::uint8_t>();
  if (offset + length < offset || length > impl_->options.max_ranges_bytes) {
    return make_error(ErrorCode::kInvalidArgument, "range " + std::to_string(offset) + "+" +
                                                       std::to_string(length) + " out of bounds");
  }
  const std::uint64_t last_byte = offset + length - 1;
  std::vector<std::uint8_t> bytes;
  std::unique_ptr<BlobDownload> whole;
  HttpRequest request;
  request.url = impl_->url(blob_path(repository, digest));
  request.headers.push_back("Range: bytes=" + std::to_string(offset) + "-" +
                            std::to_string(last_byte));
  request.expected_bytes = length;
  request.begin_attempt = [&] {
    bytes.clear();
    bytes.reserve(static_cast<std::size_t>(length));  // one buffer, filled as the bytes arrive
    whole.reset();
  };
  request.sink = [&](long status, ByteSpan data) -> Result<void> {
    if (status == 206) {
      if (bytes.size() + data.size() > length) {
        return make_error(ErrorCode::kCorruptInput, "GET " + what + ": range answer too long");
      }
      bytes.insert(bytes.end(), data.begin(), data.end());
      return {};
    }
    // 200: the registry ignored Range and sends the whole blob. Keep the wanted slice, hash all.
    if (!whole) whole = std::make_unique<BlobDownload>();
    const std::uint64_t start = whole->size;
    const std::uint64_t end = start + data.size();
    if (end > offset && start <= last_byte) {
      const std::uint64_t from = std::max(start, offset);
      const std::uint64_t to = std::min(end, last_byte + 1);
      bytes.insert(bytes.end(), data.begin() + static_cast<std::ptrdiff_t>(from - start),
                   data.begin() + static_cast<std::ptrdiff_t>(to - start));
    }
    whole->hasher.update(data);
    whole->size = end;
    return {};
  };
  auto response = impl_->send(request, pull_scope(repository));
  if (!response.ok()) return std::move(response).error();
  if (response->status == 416) {
    return make_error(ErrorCode::kInvalidArgument,
                      "GET " + what + ": range " + std::to_string(offset) + "-" +
                          std::to_string(last_byte) + " not satisfiable");
  }
  if (response->status == 206) {
    auto range = parse_content_range(response->header("content-range"));
    if (!range.ok())
      return make_error(range.error().code, "GET " + what + ": " + range.error().message);
    if (range->first != offset || range->last != last_byte || bytes.size() != length) {
      return make_error(ErrorCode::kCorruptInput,
                        "GET " + what + ": asked for bytes " + std::to_string(offset) + "-" +
                            std::to_string(last_byte) + ", got " + std::to_string(range->first) +
                            "-" + std::to_string(range->last) + " (" +
                            std::to_string(bytes.size()) + " bytes)");
    }
    return bytes;
  }
  if (response->status == 200) {
    const Digest got = whole ? whole->hasher.finish() : sha256_of({});
    if (got != digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        "GET " + what + ": whole-blob answer hashes to " + got.to_string());
    }
    if (bytes.size() != length) {
      return make_error(ErrorCode::kInvalidArgument,
                        "GET " + what + ": range ends past the blob's end");
    }
    return bytes;
  }
  return status_error(*response, "GET " + what + " (range)");
}

Result<void> RegistryClient::stream_range(const std::string& repository, const Digest& digest,
                                          std::uint64_t offset, std::uint64_t length,
                                          const std::function<Result<void>(ByteSpan)>& sink) {
  const std::string what = repository + "@" + digest.to_string();
  if (length == 0) return {};
  if (offset + length < offset) {
    return make_error(ErrorCode::kInvalidArgument, "range " + std::to_string(offset) + "+" +
                                                       std::to_string(length) + " out of bounds");
  }
  const std::uint64_t last_byte = offset + length - 1;
  std::uint64_t delivered = 0;  // across attempts
  std::uint8_t last_delivered = 0;
  // This attempt: the first byte of its range repeats the last one delivered (a resumption), and
  // for a 200 answer, the whole blob's bytes seen so far.
  bool overlap_pending = false;
  std::uint64_t whole_seen = 0;
  bool whole_done = false;  // a 200 answer gave every wanted byte: the rest is not read
  HttpRequest request;
  request.url = impl_->url(blob_path(repository, digest));
  request.expected_bytes = length;
  request.begin_attempt = [&] {
    whole_seen = 0;
    whole_done = false;
  };
  request.attempt_header = [&]() -> std::string {
    overlap_pending = delivered != 0;
    const std::uint64_t first = offset + delivered - (overlap_pending ? 1 : 0);
    return "Range: bytes=" + std::to_string(first) + "-" + std::to_string(last_byte);
  };
  request.on_response = [&](const HttpResponse& response) -> Result<void> {
    if (response.status != 206) {
      overlap_pending = false;  // 200: the whole blob from byte 0
      return {};
    }
    auto range = parse_content_range(response.header("content-range"));
    const std::uint64_t first = offset + delivered - (overlap_pending ? 1 : 0);
    if (!range.ok() || range->first != first || range->last != last_byte) {
      return make_error(ErrorCode::kCorruptInput,
                        "GET " + what + ": asked for bytes " + std::to_string(first) + "-" +
                            std::to_string(last_byte) + ", answer has Content-Range '" +
                            response.header("content-range").substr(0, 100) + "'");
    }
    return {};
  };
  const auto deliver = [&](ByteSpan data) -> Result<void> {
    if (data.empty()) return {};
    if (data.size() > length - delivered) {
      return make_error(ErrorCode::kCorruptInput, "GET " + what + ": range answer too long");
    }
    STRATA_TRY(sink(data));
    delivered += data.size();
    last_delivered = data.back();
    return {};
  };
  request.sink = [&](long status, ByteSpan data) -> Result<void> {
    if (status == 206) {
      if (overlap_pending && !data.empty()) {
        overlap_pending = false;
        if (data.front() != last_delivered) {
          return make_error(ErrorCode::kCorruptInput,
                            "GET " + what + ": resumed range disagrees with the bytes before it");
        }
        data = data.subspan(1);
      }
      return deliver(data);
    }
    // 200: the registry ignored Range and sends the whole blob; the wanted bytes are cut out.
    const std::uint64_t start = whole_seen;
    whole_seen += data.size();
    const std::uint64_t want = offset + delivered;
    if (whole_seen > want && start <= last_byte) {
      const std::uint64_t from = std::max(start, want);
      const std::uint64_t to = std::min(whole_seen, last_byte + 1);
      STRATA_TRY(deliver(data.subspan(static_cast<std::size_t>(from - start),
                                      static_cast<std::size_t>(to - from))));
    }
    if (delivered == length) {
      whole_done = true;
      return make_error(ErrorCode::kInternal, "every wanted byte is in");  // ends the transfer
    }
    return {};
  };
  auto response = impl_->send(request, pull_scope(repository));
  if (!response.ok()) {
    if (whole_done && delivered == length) return {};
    return std::move(response).error();
  }
  if (response->status == 416) {
    return make_error(ErrorCode::kInvalidArgument,
                      "GET " + what + ": range " + std::to_string(offset) + "-" +
                          std::to_string(last_byte) + " not satisfiable");
  }
  if (response->status != 200 && response->status != 206) {
    return status_error(*response, "GET " + what + " (range)");
  }
  if (delivered != length) {
    return make_error(ErrorCode::kCorruptInput,
                      "GET " + what + ": bytes " + std::to_string(offset) + "-" +
                          std::to_string(last_byte) + " came back with " +
                          std::to_string(delivered) + " of " + std::to_string(length) + " bytes");
  }
  return {};
}

Result<std::vector<std::vector<std::uint8_t>>> RegistryClient::fetch_ranges(
    const std::string& repository, const Digest& digest, std::span<const ByteRange> ranges) {
  const std::string what = repository + "@" + digest.to_string();
  std::uint64_t total = 0;
  for (const ByteRange& range : ranges) {
    if (range.offset + range.length < range.offset) {
      return make_error(ErrorCode::kInvalidArgument, "range overflows 64 bits");
    }
    total += range.length;
    if (total > impl_->options.max_ranges_bytes) {
      return make_error(ErrorCode::kLimitExceeded,
                        "ranges ask for more than " +
                            std::to_string(impl_->options.max_ranges_bytes) + " bytes at once");
    }
  }
  std::vector<std::vector<std::uint8_t>> out;
  out.reserve(ranges.size());
  const auto fetch_singles = [&](std::span<const ByteRange> batch) -> Result<void> {
    for (const ByteRange& range : batch) {
      auto bytes = fetch_range(repository, digest, range.offset, range.length);
      if (!bytes.ok()) return std::move(bytes).error();
      out.push_back(std::move(*bytes));
    }
    return {};
  };
  for (std::size_t begin = 0; begin < ranges.size(); begin += kRangesPerRequest) {
    const auto batch = ranges.subspan(begin, std::min(kRangesPerRequest, ranges.size() - begin));
    std::string header = "Range: bytes=";
    std::uint64_t batch_bytes = 0;
    std::size_t nonempty = 0;
    for (const ByteRange& range : batch) {
      if (range.length == 0) continue;
      if (nonempty++ > 0) header += ",";
      header +=
          std::to_string(range.offset) + "-" + std::to_string(range.offset + range.length - 1);
      batch_bytes += range.length;
    }
    if (nonempty <= 1) {
      STRATA_TRY(fetch_singles(batch));
      continue;
    }
    // Multipart overhead per part is a few hundred bytes of headers.
    const std::uint64_t cap_206 = batch_bytes + 1024 * (batch.size() + 1);
    const std::uint64_t cap_200 = impl_->options.max_full_body_for_ranges;
    std::vector<std::uint8_t> body;
    bool too_big_whole = false;
    HttpRequest request;
    request.url = impl_->url(blob_path(repository, digest));
    request.headers.push_back(header);
    request.expected_bytes = std::max(cap_206, cap_200);
    request.begin_attempt = [&] {
      body.clear();
      body.reserve(static_cast<std::size_t>(cap_206));
      too_big_whole = false;
    };
    request.sink = [&](long status, ByteSpan data) -> Result<void> {
      const std::uint64_t cap = status == 206 ? cap_206 : cap_200;
      if (body.size() + data.size() > cap) {
        too_big_whole = status != 206;
        return make_error(ErrorCode::kLimitExceeded, "GET " + what + ": range answer too long");
      }
      body.insert(body.end(), data.begin(), data.end());
      return {};
    };
    auto response = impl_->send(request, pull_scope(repository));
    if (!response.ok()) {
      if (too_big_whole) {  // a whole blob too large to cut up here: ask range by range
        STRATA_TRY(fetch_singles(batch));
        continue;
      }
      return std::move(response).error();
    }
    if (response->status == 400 || response->status == 416) {
      STRATA_TRY(fetch_singles(batch));
      continue;
    }
    std::vector<BytePart> parts;
    if (response->status == 200) {
      const Digest got = sha256_of(body);
      if (got != digest) {
        return make_error(ErrorCode::kDigestMismatch,
                          "GET " + what + ": whole-blob answer hashes to " + got.to_string());
      }
      parts.push_back(BytePart{ContentRange{0, body.empty() ? 0 : body.size() - 1, body.size()},
                               ByteSpan(body)});
      if (body.empty()) parts.clear();
    } else if (response->status == 206) {
      const std::string content_type = response->header("content-type");
      auto boundary = parse_multipart_boundary(content_type);
      if (boundary.ok()) {
        auto parsed = parse_multipart_byteranges(body, *boundary, std::nullopt);
        if (parsed.ok()) parts = std::move(*parsed);
      } else if (auto range = parse_content_range(response->header("content-range"));
                 range.ok() && range->last - range->first + 1 == body.size()) {
        parts.push_back(BytePart{*range, ByteSpan(body)});  // coalesced into one range
      }
    } else {
      return status_error(*response, "GET " + what + " (ranges)");
    }
    auto extracted = extract_ranges(parts, batch);
    if (!extracted.ok()) {
      // An answer we cannot use (malformed multipart, missing ranges): ask range by range.
      STRATA_TRY(fetch_singles(batch));
      continue;
    }
    for (auto& bytes : *extracted) out.push_back(std::move(bytes));
  }
  return out;
}

Result<void> RegistryClient::push_blob(const std::string& repository, const Digest& digest,
                                       std::uint64_t size, const BlobReader& reader,
                                       const std::function<void(std::uint64_t)>& progress) {
  const std::string what = repository + "@" + digest.to_string();
  const std::string scope = push_scope(repository);
  HttpRequest start;
  start.method = "POST";
  start.url = impl_->url("/v2/" + repository + "/blobs/uploads/");
  auto started = impl_->send(start, scope);
  if (!started.ok()) return std::move(started).error();
  if (started->status != 202) return status_error(*started, "POST upload " + what);
  std::string location = started->header("location");
  if (location.empty()) {
    return make_error(ErrorCode::kCorruptInput, "POST upload " + what + ": no Location");
  }
  location = impl_->resolve_location(location);
  const std::uint64_t chunk = impl_->options.upload_chunk_bytes;
  std::uint64_t offset = 0;
  if (chunk != 0 && size > chunk) {
    while (offset < size) {
      const std::uint64_t length = std::min(chunk, size - offset);
      HttpRequest patch;
      patch.method = "PATCH";
      patch.url = location;
      patch.headers = {
          "Content-Type: application/octet-stream",
          "Content-Range: " + std::to_string(offset) + "-" + std::to_string(offset + length - 1)};
      patch.body_size = length;
      patch.expected_bytes = length;
      const std::uint64_t base = offset;
      patch.body = [&reader, base](std::uint64_t at, MutableByteSpan out) {
        return reader(base + at, out);
      };
      if (progress) {
        patch.on_sent = [&progress, base](std::uint64_t sent) { progress(base + sent); };
      }
      auto patched = impl_->send(patch, scope);
      if (!patched.ok()) return std::move(patched).error();
      if (patched->status != 202) return status_error(*patched, "PATCH " + what);
      if (const std::string next = patched->header("location"); !next.empty()) {
        location = impl_->resolve_location(next);
      }
      offset += length;
    }
  }
  HttpRequest finish;
  finish.method = "PUT";
  finish.url = location + (location.find('?') == std::string::npos ? "?" : "&") +
               "digest=" + percent_encode(digest.to_string());
  finish.headers = {"Content-Type: application/octet-stream"};
  finish.body_size = size - offset;
  finish.expected_bytes = size - offset;
  const std::uint64_t base = offset;
  finish.body = [&reader, base](std::uint64_t at, MutableByteSpan out) {
    return reader(base + at, out);
  };
  if (progress) {
    finish.on_sent = [&progress, base](std::uint64_t sent) { progress(base + sent); };
  }
  auto finished = impl_->send(finish, scope);
  if (!finished.ok()) return std::move(finished).error();
  if (finished->status != 201) {
    Error error = status_error(*finished, "PUT upload " + what);
    if (finished->describe().find("DIGEST_INVALID") != std::string::npos) {
      error.code = ErrorCode::kDigestMismatch;
    }
    return error;
  }
  return {};
}

Result<bool> RegistryClient::mount_blob(const std::string& repository, const Digest& digest,
                                        const std::string& from_repository) {
  HttpRequest request;
  request.method = "POST";
  request.url = impl_->url("/v2/" + repository +
                           "/blobs/uploads/?mount=" + percent_encode(digest.to_string()) +
                           "&from=" + percent_encode(from_repository));
  auto response = impl_->send(request, push_scope(repository) + " " + pull_scope(from_repository));
  if (!response.ok()) return std::move(response).error();
  if (response->status == 201) return true;
  if (response->status == 202) {
    // The registry opened an upload session instead; close it rather than leave it to expire.
    if (const std::string location = response->header("location"); !location.empty()) {
      HttpRequest cancel;
      cancel.method = "DELETE";
      cancel.url = impl_->resolve_location(location);
      (void)impl_->send(cancel, push_scope(repository));
    }
    return false;
  }
  return status_error(*response, "mount " + digest.to_string() + " from " + from_repository);
}

Result<ManifestResponse> RegistryClient::fetch_manifest(const std::string& repository,
                                                        const std::string& reference) {
  const std::string what = repository + ":" + reference;
  HttpRequest request;
  request.url = impl_->url("/v2/" + repository + "/manifests/" + reference);
  request.headers.emplace_back(kManifestAccept);
  request.max_body = impl_->options.max_json_bytes;
  request.expected_bytes = impl_->options.max_json_bytes;
  auto response = impl_->send(request, pull_scope(repository));
  if (!response.ok()) {
    Error error = std::move(response).error();
    error.message = "GET manifest " + what + ": " + error.message;
    return error;
  }
  if (response->status != 200) return status_error(*response, "GET manifest " + what);
  ManifestResponse manifest;
  manifest.media_type = media_type_of(response->header("content-type"));
  manifest.bytes = std::move(response->body);
  manifest.digest = sha256_of(manifest.bytes);
  std::optional<Digest> expected;
  if (reference.starts_with("sha256:")) {
    auto asked = Digest::parse(reference);
    if (!asked.ok()) return std::move(asked).error();
    expected = *asked;
  } else if (auto announced = Digest::parse(response->header("docker-content-digest"));
             announced.ok()) {
    expected = *announced;
  }
  if (expected && *expected != manifest.digest) {
    return make_error(ErrorCode::kDigestMismatch, "GET manifest " + what + ": bytes hash to " +
                                                      manifest.digest.to_string() + ", expected " +
                                                      expected->to_string());
  }
  return manifest;
}

Result<Digest> RegistryClient::push_manifest(const std::string& repository,
                                             const std::string& reference,
                                             std::string_view media_type, ByteSpan bytes) {
  const std::string what = repository + ":" + reference;
  HttpRequest request;
  request.method = "PUT";
  request.url = impl_->url("/v2/" + repository + "/manifests/" + reference);
  request.headers.push_back("Content-Type: " + std::string(media_type));
  request.body_size = bytes.size();
  request.expected_bytes = bytes.size();
  request.body = [bytes](std::uint64_t offset, MutableByteSpan out) -> Result<std::size_t> {
    const auto n =
        std::min<std::size_t>(out.size(), bytes.size() - static_cast<std::size_t>(offset));
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(offset), n, out.begin());
    return n;
  };
  auto response = impl_->send(request, push_scope(repository));
  if (!response.ok()) return std::move(response).error();
  if (response->status != 201) return status_error(*response, "PUT manifest " + what);
  const Digest digest = sha256_of(bytes);
  if (auto announced = Digest::parse(response->header("docker-content-digest"));
      announced.ok() && *announced != digest) {
    return make_error(ErrorCode::kDigestMismatch, "PUT manifest " + what + ": registry says " +
                                                      announced->to_string() + ", bytes hash to " +
                                                      digest.to_string());
  }
  return digest;
}

Result<std::optional<oci::Index>> RegistryClient::fetch_referrers(const std::string& repository,
                                                                  const Digest& digest) {
  const std::string what = "GET referrers of " + repository + "@" + digest.to_string();
  HttpRequest request;
  request.url = impl_->url("/v2/" + repository + "/referrers/" + digest.to_string());
  request.headers.push_back("Accept: " + std::string(oci::kMediaTypeImageIndex));
  request.max_body = impl_->options.max_json_bytes;
  request.expected_bytes = impl_->options.max_json_bytes;
  auto response = impl_->send(request, pull_scope(repository));
  if (!response.ok()) return std::move(response).error();
  if (response->status == 404) return std::optional<oci::Index>();
  if (response->status != 200) return status_error(*response, what);
  auto index = oci::parse_index(response->body);
  if (!index.ok()) return make_error(index.error().code, what + ": " + index.error().message);
  return std::optional<oci::Index>(std::move(*index));
}

Result<std::vector<std::string>> RegistryClient::list_tags(const std::string& repository,
                                                           std::size_t page_size) {
  std::vector<std::string> tags;
  std::string url = impl_->url("/v2/" + repository + "/tags/list");
  if (page_size != 0) url += "?n=" + std::to_string(page_size);
  for (std::size_t page = 0; page < kMaxTagPages; ++page) {
    HttpRequest request;
    request.url = url;
    request.max_body = impl_->options.max_json_bytes;
    request.expected_bytes = impl_->options.max_json_bytes;
    auto response = impl_->send(request, pull_scope(repository));
    if (!response.ok()) return std::move(response).error();
    if (response->status != 200) return status_error(*response, "GET tags of " + repository);
    const auto document =
        nlohmann::json::parse(response->body.begin(), response->body.end(), nullptr, false);
    if (document.is_discarded() || !document.is_object()) {
      return make_error(ErrorCode::kCorruptInput, "tags of " + repository + ": not a JSON object");
    }
    if (const auto list = document.find("tags"); list != document.end() && !list->is_null()) {
      if (!list->is_array()) {
        return make_error(ErrorCode::kCorruptInput, "tags of " + repository + ": not an array");
      }
      for (const auto& tag : *list) {
        if (!tag.is_string()) {
          return make_error(ErrorCode::kCorruptInput, "tags of " + repository + ": not a string");
        }
        tags.push_back(tag.get<std::string>());
      }
    }
    auto next = parse_next_link(response->header("link"));
    if (!next.ok()) return std::move(next).error();
    if (!*next) return tags;
    url = impl_->resolve_location(**next);
  }
  return make_error(ErrorCode::kLimitExceeded, "tags of " + repository + ": more than " +
                                                   std::to_string(kMaxTagPages) + " pages");
}

}  // namespace strata::registry
