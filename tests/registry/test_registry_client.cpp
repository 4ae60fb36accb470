// RegistryClient against a scripted HTTP server in this process (raw sockets on 127.0.0.1): each
// connection gets the next canned response, so retry, time-out and size-cap behaviour is checked
// against exactly the bytes a hostile or overloaded registry would send (RFC 9110 status codes,
// Retry-After; RFC 6750 Bearer challenges). Every test is bounded by short time-outs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "strata/registry.h"
#include "tests/hostile_registry.h"
#include "tests/oci_test_helpers.h"

namespace strata::registry {
namespace {

// Serves `responses` in order, one per connection; an empty string means "read the request and
// never answer" (a stalled server). Records each request's head (request line and headers).
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> responses) : responses_(std::move(responses)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    ::listen(listener_, 16);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> request_lines() {
    std::lock_guard lock(mutex_);
    return request_lines_;
  }

 private:
  void serve() {
    for (std::size_t next = 0; !stop_; ++next) {
      const int connection = ::accept(listener_, nullptr, nullptr);
      if (connection < 0) break;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mutex_);
        request_lines_.push_back(request);
      }
      const std::string& response = responses_[std::min(next, responses_.size() - 1)];
      if (response.empty()) {
        stalled_.push_back(connection);  // left open and silent until the server ends
        continue;
      }
      std::size_t sent = 0;
      while (sent < response.size()) {
        const ssize_t n =
            ::send(connection, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::close(connection);
    }
    for (int connection : stalled_) ::close(connection);
  }

  std::vector<std::string> responses_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> request_lines_;
  std::vector<int> stalled_;
};

std::string response(const std::string& status, const std::string& headers,
                     const std::string& body = "") {
  return "HTTP/1.1 " + status + "\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

ClientOptions quick_options() {
  ClientOptions options;
  options.plain_http = true;
  options.retry.initial_backoff = std::chrono::milliseconds(10);
  options.retry.max_attempts = 3;
  options.connect_timeout = std::chrono::seconds(2);
  options.stall_timeout = std::chrono::seconds(1);
  return options;
}

TEST(RegistryClient, RetriesServiceUnavailableHonouringRetryAfter) {
  ScriptedServer server({response("503 Service Unavailable", "Retry-After: 0\r\n"),
                         response("429 Too Many Requests", "Retry-After: 0\r\n"),
                         response("200 OK", "")});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_TRUE(pinged.ok()) << pinged.error().to_string();
  EXPECT_EQ(client->counters().retries, 2U);
  EXPECT_EQ(server.request_lines().size(), 3U);
}

TEST(RegistryClient, GivesUpAfterTheAttemptBudget) {
  ScriptedServer server({response("503 Service Unavailable", "")});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_FALSE(pinged.ok());
  EXPECT_NE(pinged.error().message.find("503"), std::string::npos) << pinged.error().message;
  EXPECT_EQ(server.request_lines().size(), 3U);
}

TEST(RegistryClient, StalledServerTimesOut) {
  ScriptedServer server({""});
  ClientOptions options = quick_options();
  options.retry.max_attempts = 2;
  auto client = RegistryClient::create(server.host(), options);
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_FALSE(pinged.ok());
  EXPECT_EQ(pinged.error().code, ErrorCode::kIo);
  EXPECT_EQ(server.request_lines().size(), 2U);
}

TEST(RegistryClient, ResumeAnswered416StartsOverFromByteZero) {
  const std::string blob = "the whole blob, 32 bytes of it..";
  const Digest digest =
      sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()));
  // docker-registry 2.8 answers a range past the end with a 416 whose body is shorter than its
  // Content-Length; then the whole blob from byte 0. (A partial file longer than the expected
  // size is discarded before asking: RegistryClientBlobSize below.)
  ScriptedServer server(
      {"HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Length: 100\r\n"
       "Connection: close\r\n\r\nshort",
       response("200 OK", "", blob)});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  const std::string path =
      ::testing::TempDir() + "strata-partial-416-" + std::to_string(::getpid());
  std::ofstream(path + ".partial", std::ios::binary) << blob.substr(0, 20);
  auto size = client->fetch_blob_to_file("app", digest, blob.size(), path);
  ASSERT_TRUE(size.ok()) << size.error().to_string();
  EXPECT_EQ(*size, blob.size());
  const auto requests = server.request_lines();
  ASSERT_EQ(requests.size(), 2U);
  // The resume keeps its range one byte early; the retry from 0 sends none.
  EXPECT_NE(requests[0].find("Range: bytes=19-"), std::string::npos) << requests[0];
  EXPECT_EQ(requests[1].find("Range:"), std::string::npos) << requests[1];
  std::ifstream written(path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(written), {}), blob);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  std::filesystem::remove(path);
}

TEST(RegistryClient, OversizedManifestIsRefused) {
  const std::string huge(std::size_t{5} << 20U, 'a');
  ScriptedServer server({response("200 OK", "Content-Type: application/json\r\n", huge)});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto manifest = client->fetch_manifest("x/y", "latest");
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.error().code, ErrorCode::kLimitExceeded) << manifest.error().to_string();
}

TEST(RegistryClient, ManifestNotMatchingItsDigestIsRefused) {
  const std::string body = R"({"schemaVersion":2})";
  ScriptedServer server({response("200 OK", "Content-Type: application/json\r\n", body)});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  const std::string other = "sha256:" + std::string(64, '0');
  auto manifest = client->fetch_manifest("x/y", other);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.error().code, ErrorCode::kDigestMismatch);
}

TEST(RegistryClient, BearerChallengeWithANonHttpRealmIsRefused) {
  ScriptedServer server(
      {response("401 Unauthorized", "WWW-Authenticate: Bearer realm=\"file:///etc/passwd\"\r\n")});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_FALSE(pinged.ok());
  EXPECT_EQ(pinged.error().code, ErrorCode::kCorruptInput);
  EXPECT_EQ(server.request_lines().size(), 1U);
}

TEST(RegistryClient, BearerTokenIsFetchedWithBasicCredentialsAndUsed) {
  ScriptedServer token_server(
      {response("200 OK", "Content-Type: application/json\r\n", R"({"token":"abc.def"})")});
  ScriptedServer real_registry(
      {response("401 Unauthorized", "WWW-Authenticate: Bearer realm=\"http://" +
                                        token_server.host() +
                                        "/token\",service=\"svc\",scope=\"x\"\r\n"),
       response("200 OK", "")});
  ClientOptions options = quick_options();
  options.credentials = Credentials{"user", "pass"};
  auto client = RegistryClient::create(real_registry.host(), options);
  ASSERT_TRUE(client.ok());
  auto info = client->stat_blob("x/y", Digest{});
  ASSERT_TRUE(info.ok()) << info.error().to_string();
  const auto token_requests = token_server.request_lines();
  ASSERT_EQ(token_requests.size(), 1U);
  EXPECT_NE(token_requests[0].find("/token?service=svc&scope=repository%3Ax%2Fy%3Apull"),
            std::string::npos)
      << token_requests[0];
  // base64("user:pass") = dXNlcjpwYXNz
  EXPECT_NE(token_requests[0].find("Authorization: Basic dXNlcjpwYXNz"), std::string::npos);
  const auto registry_requests = real_registry.request_lines();
  ASSERT_EQ(registry_requests.size(), 2U);
  EXPECT_EQ(registry_requests[0].find("Authorization"), std::string::npos);
  EXPECT_NE(registry_requests[1].find("Authorization: Bearer abc.def"), std::string::npos);
}

TEST(RegistryClient, CredentialsAreNotSentToAnotherHostNamedByLocation) {
  ScriptedServer elsewhere({response("201 Created", "")});
  ScriptedServer registry(
      {response("401 Unauthorized", "WWW-Authenticate: Basic realm=\"r\"\r\n"),
       response("202 Accepted", "Location: http://" + elsewhere.host() + "/upload/1\r\n")});
  ClientOptions options = quick_options();
  options.credentials = Credentials{"user", "pass"};
  auto client = RegistryClient::create(registry.host(), options);
  ASSERT_TRUE(client.ok());
  const std::string blob = "blob bytes";
  auto pushed = client->push_blob(
      "x/y", sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size())),
      blob.size(), [&](std::uint64_t offset, MutableByteSpan out) -> Result<std::size_t> {
        const auto n = std::min<std::size_t>(out.size(), blob.size() - offset);
        std::copy_n(blob.begin() + static_cast<std::ptrdiff_t>(offset), n, out.begin());
        return n;
      });
  ASSERT_TRUE(pushed.ok()) << pushed.error().to_string();
  const auto registry_requests = registry.request_lines();
  ASSERT_EQ(registry_requests.size(), 2U);
  EXPECT_NE(registry_requests[1].find("Authorization: Basic dXNlcjpwYXNz"), std::string::npos);
  const auto other_requests = elsewhere.request_lines();
  ASSERT_EQ(other_requests.size(), 1U);
  EXPECT_EQ(other_requests[0].rfind("PUT /upload/1?digest=sha256%3A", 0), 0U) << other_requests[0];
  EXPECT_EQ(other_requests[0].find("Authorization"), std::string::npos);
}

// ---- against the hostile-registry fixture -------------------------------------------------------

using strata::testing::HostileRegistry;
using strata::testing::Reply;
using strata::testing::SeenRequest;

bool carries_basic_credentials(const std::vector<SeenRequest>& requests) {
  return std::any_of(requests.begin(), requests.end(), [](const SeenRequest& seen) {
    const auto authorization = seen.headers.find("authorization");
    return authorization != seen.headers.end() && authorization->second.starts_with("Basic ");
  });
}

// A registry that answers everything with a Bearer challenge naming `realm`, and 200 to requests
// carrying a Bearer token.
strata::testing::Handler challenging_registry(std::string realm) {
  return [realm = std::move(realm)](const SeenRequest& seen) {
    Reply reply;
    const auto authorization = seen.headers.find("authorization");
    if (authorization == seen.headers.end() || !authorization->second.starts_with("Bearer ")) {
      reply.status = 401;
      reply.headers.emplace_back("WWW-Authenticate",
                                 "Bearer realm=\"" + realm + "\",service=\"svc\"");
    }
    return reply;
  };
}

strata::testing::Handler token_server(int status = 200) {
  return [status](const SeenRequest&) {
    Reply reply;
    reply.status = status;
    reply.headers.emplace_back("Content-Type", "application/json");
    reply.body = status == 200 ? R"({"token":"abc.def"})" : R"({"errors":[]})";
    return reply;
  };
}

ClientOptions tls_options() {
  ClientOptions options = quick_options();
  options.plain_http = false;
  options.tls_verify = false;
  options.credentials = Credentials{"user", "pass"};
  return options;
}

TEST(RegistryClientRealm, HttpsRegistryRefusesAPlainHttpRealmBeforeSendingCredentials) {
  HostileRegistry tokens(token_server());
  const std::string realm = "http://" + tokens.host() + "/token";
  HostileRegistry registry(challenging_registry(realm), strata::testing::UseTls{});
  auto client = RegistryClient::create(registry.host(), tls_options());
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_FALSE(pinged.ok());
  EXPECT_NE(pinged.error().message.find(realm), std::string::npos) << pinged.error().message;
  EXPECT_NE(pinged.error().message.find("https"), std::string::npos) << pinged.error().message;
  EXPECT_FALSE(carries_basic_credentials(tokens.requests()));
  EXPECT_TRUE(tokens.requests().empty());
}

TEST(RegistryClientRealm, InsecureRegistryMayUseAPlainHttpRealm) {
  HostileRegistry tokens(token_server());
  HostileRegistry registry(challenging_registry("http://" + tokens.host() + "/token"));
  ClientOptions options = quick_options();
  options.credentials = Credentials{"user", "pass"};
  auto client = RegistryClient::create(registry.host(), options);
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_TRUE(pinged.ok()) << pinged.error().to_string();
  EXPECT_TRUE(carries_basic_credentials(tokens.requests()));
}

TEST(RegistryClientRealm, HttpsRealmOnAnotherHostGetsCredentialsAndIsNamedInErrors) {
  // Docker Hub's realm is auth.docker.io for registry-1.docker.io: a foreign https realm is used
  // (with the credentials); when it refuses, the error names it, not only the registry.
  HostileRegistry tokens(token_server(401), strata::testing::UseTls{});
  HostileRegistry registry(challenging_registry("https://" + tokens.host() + "/token"),
                           strata::testing::UseTls{});
  auto client = RegistryClient::create(registry.host(), tls_options());
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_FALSE(pinged.ok());
  EXPECT_NE(pinged.error().message.find(tokens.host()), std::string::npos)
      << pinged.error().message;
  EXPECT_TRUE(carries_basic_credentials(tokens.requests()));

  HostileRegistry working_tokens(token_server(), strata::testing::UseTls{});
  HostileRegistry working(challenging_registry("https://" + working_tokens.host() + "/token"),
                          strata::testing::UseTls{});
  auto second = RegistryClient::create(working.host(), tls_options());
  ASSERT_TRUE(second.ok());
  auto ok = second->ping();
  EXPECT_TRUE(ok.ok()) << ok.error().to_string();
}

std::string blob_text(std::size_t size) {
  std::string text;
  for (std::size_t i = 0; i < size; ++i) text.push_back(static_cast<char>('A' + i % 23));
  return text;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(RegistryClientDeadline, ADrippingBlobEndsAtItsDeadline) {
  const std::string blob = blob_text(40);
  const Digest digest = sha256_of(test::bytes_of(blob));
  HostileRegistry server([&](const SeenRequest&) {
    Reply reply;
    reply.body = blob;
    reply.mode = Reply::Mode::kDrip;  // 2 bytes a second: above the 1 B/s stall rule
    reply.drip_bytes = 2;
    reply.drip_interval = std::chrono::milliseconds(1000);
    return reply;
  });
  ClientOptions options = quick_options();
  options.stall_timeout = std::chrono::seconds(30);
  options.retry.max_total = std::chrono::seconds(1);
  auto client = RegistryClient::create(server.host(), options);
  ASSERT_TRUE(client.ok());
  test::TempDir directory;
  const std::string path = directory / "blob";
  auto size = client->fetch_blob_to_file("slow/repo", digest, blob.size(), path);
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.error().message.find("deadline"), std::string::npos) << size.error().message;
  EXPECT_NE(size.error().message.find(digest.to_string()), std::string::npos)
      << size.error().message;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(RegistryClientBlobSize, EndlessZerosStopAtTheDescriptorSize) {
  const std::string blob = blob_text(151);
  const Digest digest = sha256_of(test::bytes_of(blob));
  for (const bool omit_length : {false, true}) {
    SCOPED_TRACE(omit_length ? "no Content-Length" : "Content-Length: 1 TiB");
    HostileRegistry server([&](const SeenRequest&) {
      Reply reply;
      reply.body = blob;
      reply.mode = Reply::Mode::kEndless;
      reply.omit_length = omit_length;
      if (!omit_length) reply.headers.emplace_back("Content-Length", "1099511627776");
      return reply;
    });
    auto client = RegistryClient::create(server.host(), quick_options());
    ASSERT_TRUE(client.ok());
    test::TempDir directory;
    const std::string path = directory / "layer";
    std::uint64_t most = 0;
    auto size = client->fetch_blob_to_file(
        "r", digest, blob.size(), path, [&](std::uint64_t held) { most = std::max(most, held); });
    ASSERT_FALSE(size.ok());
    EXPECT_NE(size.error().message.find(digest.to_string()), std::string::npos)
        << size.error().message;
    EXPECT_LE(most, 152U);
    EXPECT_FALSE(std::filesystem::exists(path));
    if (std::filesystem::exists(path + ".partial")) {
      EXPECT_LE(std::filesystem::file_size(path + ".partial"), 152U);
    }
  }
}

TEST(RegistryClientBlobSize, StalePartialLongerThanTheBlobIsDiscardedBeforeAsking) {
  const std::string blob = blob_text(151);
  const Digest digest = sha256_of(test::bytes_of(blob));
  HostileRegistry server([&](const SeenRequest& seen) {
    if (seen.headers.contains("range")) return strata::testing::error_reply(416, "X", "range");
    Reply reply;
    reply.body = blob;
    return reply;
  });
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  test::TempDir directory;
  const std::string path = directory / "layer";
  test::write_text(path + ".partial", blob + std::string(4096, 'z'));
  auto size = client->fetch_blob_to_file("r", digest, blob.size(), path);
  ASSERT_TRUE(size.ok()) << size.error().to_string();
  EXPECT_EQ(*size, blob.size());
  EXPECT_EQ(file_text(path), blob);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  for (const SeenRequest& seen : server.requests()) {
    EXPECT_FALSE(seen.headers.contains("range")) << seen.headers.at("range");
  }
}

TEST(RegistryClientBlobSize, SymlinkPlantedAtThePartialPathIsNotWrittenThrough) {
  const std::string blob = blob_text(151);
  const Digest digest = sha256_of(test::bytes_of(blob));
  HostileRegistry server([&](const SeenRequest&) {
    Reply reply;
    reply.body = blob;
    return reply;
  });
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  test::TempDir directory;
  const std::string path = directory / "layer";
  const std::string victim = directory / "victim";
  const std::string precious = blob.substr(0, 20);  // looks like a download to resume
  test::write_text(victim, precious);
  std::filesystem::create_symlink(victim, path + ".partial");
  auto size = client->fetch_blob_to_file("r", digest, blob.size(), path);
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.error().message.find(path + ".partial"), std::string::npos)
      << size.error().message;
  EXPECT_EQ(file_text(victim), precious);
  EXPECT_TRUE(std::filesystem::is_symlink(path + ".partial"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

// stream_range: the bytes reach the sink in order, each once, whatever the registry does with the
// connection or the Range header.
struct StreamedRange {
  std::string bytes;
  std::size_t calls = 0;
  Result<void> result = make_error(ErrorCode::kInternal, "not streamed");
};

StreamedRange stream_range_from(const ScriptedServer& server, const Digest& digest,
                                std::uint64_t offset, std::uint64_t length) {
  StreamedRange streamed;
  auto client = RegistryClient::create(server.host(), quick_options());
  EXPECT_TRUE(client.ok());
  if (!client.ok()) return streamed;
  streamed.result = client->stream_range("app", digest, offset, length, [&](ByteSpan bytes) {
    streamed.bytes.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    ++streamed.calls;
    return Result<void>{};
  });
  return streamed;
}

const std::string kStreamBlob = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

Digest stream_blob_digest() {
  return sha256_of(
      ByteSpan(reinterpret_cast<const std::uint8_t*>(kStreamBlob.data()), kStreamBlob.size()));
}

TEST(RegistryClientStreamRange, DroppedConnectionResumesOneByteEarlyAndEachByteArrivesOnce) {
  // Bytes 10..39 asked; the first answer announces 30 bytes and drops after 12; the resumption
  // asks from byte 21 (one before the first not delivered) and gets the rest.
  ScriptedServer server(
      {"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-39/62\r\nContent-Length: 30\r\n"
       "Connection: close\r\n\r\n" +
           kStreamBlob.substr(10, 12),
       response("206 Partial Content", "Content-Range: bytes 21-39/62\r\n",
                kStreamBlob.substr(21, 19))});
  const StreamedRange streamed = stream_range_from(server, stream_blob_digest(), 10, 30);
  ASSERT_TRUE(streamed.result.ok()) << streamed.result.error().to_string();
  EXPECT_EQ(streamed.bytes, kStreamBlob.substr(10, 30));
  const auto requests = server.request_lines();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_NE(requests[0].find("Range: bytes=10-39"), std::string::npos) << requests[0];
  EXPECT_NE(requests[1].find("Range: bytes=21-39"), std::string::npos) << requests[1];
}

TEST(RegistryClientStreamRange, AResumptionWhoseFirstByteDisagreesIsRefused) {
  std::string changed = kStreamBlob.substr(21, 19);
  changed[0] = '#';
  ScriptedServer server(
      {"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-39/62\r\nContent-Length: 30\r\n"
       "Connection: close\r\n\r\n" +
           kStreamBlob.substr(10, 12),
       response("206 Partial Content", "Content-Range: bytes 21-39/62\r\n", changed)});
  const StreamedRange streamed = stream_range_from(server, stream_blob_digest(), 10, 30);
  ASSERT_FALSE(streamed.result.ok());
  EXPECT_EQ(streamed.result.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(streamed.result.error().message.find("disagrees"), std::string::npos)
      << streamed.result.error().message;
  EXPECT_EQ(streamed.bytes, kStreamBlob.substr(10, 12));  // nothing after the disagreement
}

TEST(RegistryClientStreamRange, ARegistryIgnoringRangeHasTheBytesCutOutOfTheWholeBlob) {
  ScriptedServer server({response("200 OK", "", kStreamBlob)});
  const StreamedRange streamed = stream_range_from(server, stream_blob_digest(), 5, 20);
  ASSERT_TRUE(streamed.result.ok()) << streamed.result.error().to_string();
  EXPECT_EQ(streamed.bytes, kStreamBlob.substr(5, 20));
}

TEST(RegistryClientStreamRange, AnAnswerForOtherBytesOrTooFewIsCorruptInput) {
  {
    ScriptedServer server({response("206 Partial Content", "Content-Range: bytes 11-40/62\r\n",
                                    kStreamBlob.substr(11, 30))});
    const StreamedRange streamed = stream_range_from(server, stream_blob_digest(), 10, 30);
    ASSERT_FALSE(streamed.result.ok());
    EXPECT_EQ(streamed.result.error().code, ErrorCode::kCorruptInput);
    EXPECT_NE(streamed.result.error().message.find("Content-Range"), std::string::npos)
        << streamed.result.error().message;
    EXPECT_TRUE(streamed.bytes.empty());
  }
  {
    ScriptedServer server({response("206 Partial Content", "Content-Range: bytes 10-39/62\r\n",
                                    kStreamBlob.substr(10, 25))});
    const StreamedRange streamed = stream_range_from(server, stream_blob_digest(), 10, 30);
    ASSERT_FALSE(streamed.result.ok());
    EXPECT_EQ(streamed.result.error().code, ErrorCode::kCorruptInput);
    EXPECT_NE(streamed.result.error().message.find("25 of 30"), std::string::npos)
        << streamed.result.error().message;
  }
  {
    ScriptedServer server({response("206 Partial Content", "Content-Range: bytes 10-39/62\r\n",
                                    kStreamBlob.substr(10, 40))});
    const StreamedRange streamed = stream_range_from(server, stream_blob_digest(), 10, 30);
    ASSERT_FALSE(streamed.result.ok());
    EXPECT_EQ(streamed.result.error().code, ErrorCode::kCorruptInput);
    EXPECT_LE(streamed.bytes.size(), 30U);
  }
}

TEST(RegistryClientStreamRange, ASinkErrorEndsTheTransferAndIsReturned) {
  ScriptedServer server(
      {response("206 Partial Content", "Content-Range: bytes 0-61/62\r\n", kStreamBlob)});
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto streamed = client->stream_range(
      "app", stream_blob_digest(), 0, kStreamBlob.size(),
      [](ByteSpan) -> Result<void> { return make_error(ErrorCode::kLimitExceeded, "enough"); });
  ASSERT_FALSE(streamed.ok());
  EXPECT_EQ(streamed.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(server.request_lines().size(), 1U);  // not retried
}

}  // namespace
}  // namespace strata::registry
