// Unit tests of the registry client's parsers (registry/registry_parsers.cpp): image references,
// WWW-Authenticate challenges (examples from RFC 6750 §3 and the Docker token protocol), Link
// pagination (RFC 8288, distribution-spec tags/list), Content-Range and multipart/byteranges
// (RFC 9110 §14.4, §14.6; the multipart example is written out by hand here) — hostile inputs
// included — Retry-After, and Docker-style auth.json (base64 checked against OpenSSL's encoder).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "strata/registry.h"

namespace strata::registry {
namespace {

ByteSpan as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string openssl_base64(std::string_view text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

TEST(ImageReference, RegistryRepositoryTagAndDigest) {
  auto reference = parse_image_reference("127.0.0.1:5000/strata/test:v1");
  ASSERT_TRUE(reference.ok()) << reference.error().to_string();
  EXPECT_EQ(reference->registry, "127.0.0.1:5000");
  EXPECT_EQ(reference->repository, "strata/test");
  EXPECT_EQ(reference->tag, "v1");
  EXPECT_EQ(reference->reference(), "v1");

  const std::string digest = "sha256:" + std::string(64, 'a');
  auto pinned = parse_image_reference("localhost/x@" + digest);
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(pinned->registry, "localhost");
  EXPECT_TRUE(pinned->tag.empty());
  EXPECT_EQ(pinned->reference(), digest);

  auto hub = parse_image_reference("busybox");
  ASSERT_TRUE(hub.ok());
  EXPECT_EQ(hub->registry, "docker.io");
  EXPECT_EQ(hub->repository, "library/busybox");
  EXPECT_EQ(hub->tag, "latest");
}

TEST(ImageReference, RefusesBadNames) {
  EXPECT_FALSE(parse_image_reference("").ok());
  EXPECT_FALSE(parse_image_reference("host:5000/UPPER:tag").ok());
  EXPECT_FALSE(parse_image_reference("host:5000/a//b").ok());
  EXPECT_FALSE(parse_image_reference("host:5000/a:bad tag").ok());
  EXPECT_FALSE(parse_image_reference("host:5000/a@sha256:short").ok());
  EXPECT_FALSE(parse_image_reference(std::string(5000, 'a')).ok());
}

TEST(Credentials, PasswordMayHoldColons) {
  auto credentials = parse_credentials("user:pa:ss");
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(credentials->username, "user");
  EXPECT_EQ(credentials->password, "pa:ss");
  EXPECT_FALSE(parse_credentials("nocolon").ok());
  EXPECT_FALSE(parse_credentials(":pass").ok());
}

TEST(WwwAuthenticate, DockerBearerChallenge) {
  auto challenges = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
      R"(scope="repository:samalba/my-app:pull,push")");
  ASSERT_TRUE(challenges.ok()) << challenges.error().to_string();
  ASSERT_EQ(challenges->size(), 1U);
  EXPECT_EQ((*challenges)[0].scheme, "bearer");
  EXPECT_EQ((*challenges)[0].params.at("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*challenges)[0].params.at("service"), "registry.docker.io");
  EXPECT_EQ((*challenges)[0].params.at("scope"), "repository:samalba/my-app:pull,push");
}

TEST(WwwAuthenticate, SeveralChallengesEscapesAndTokens) {
  auto challenges = parse_www_authenticate(
      R"(Basic realm="a \"quoted\" realm", charset=UTF-8, Bearer realm=x,error="invalid_token")");
  ASSERT_TRUE(challenges.ok()) << challenges.error().to_string();
  ASSERT_EQ(challenges->size(), 2U);
  EXPECT_EQ((*challenges)[0].scheme, "basic");
  EXPECT_EQ((*challenges)[0].params.at("realm"), "a \"quoted\" realm");
  EXPECT_EQ((*challenges)[0].params.at("charset"), "UTF-8");
  EXPECT_EQ((*challenges)[1].scheme, "bearer");
  EXPECT_EQ((*challenges)[1].params.at("realm"), "x");
  EXPECT_EQ((*challenges)[1].params.at("error"), "invalid_token");
}

TEST(WwwAuthenticate, HostileInputs) {
  EXPECT_FALSE(parse_www_authenticate("").ok());
  EXPECT_FALSE(parse_www_authenticate("Bearer realm=\"unterminated").ok());
  EXPECT_FALSE(parse_www_authenticate("Bearer realm=\"x\\").ok());
  EXPECT_FALSE(parse_www_authenticate("\"quoted-scheme\"").ok());
  const auto huge = parse_www_authenticate("Bearer realm=\"" + std::string(100000, 'x') + "\"");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, ErrorCode::kLimitExceeded);
}

TEST(LinkHeader, NextPage) {
  auto next = parse_next_link(R"(</v2/strata/test/tags/list?last=b&n=2>; rel="next")");
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(**next, "/v2/strata/test/tags/list?last=b&n=2");

  auto among = parse_next_link(R"(<https://x/prev>; rel="prev", <https://x/next>;rel=next)");
  ASSERT_TRUE(among.ok());
  ASSERT_TRUE(among->has_value());
  EXPECT_EQ(**among, "https://x/next");

  auto none = parse_next_link(R"(<https://x/prev>; rel="prev")");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(parse_next_link("<unterminated; rel=next").ok());
  EXPECT_FALSE(parse_next_link("<>; rel=next").ok());
}

TEST(ContentRange, ParsesAndChecks) {
  auto range = parse_content_range("bytes 0-99/1234");
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(*range, (ContentRange{0, 99, 1234}));
  auto unknown = parse_content_range("bytes 5-5/*");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->complete_length.has_value());
  EXPECT_FALSE(parse_content_range("bytes 9-5/100").ok());
  EXPECT_FALSE(parse_content_range("bytes 0-100/100").ok());
  EXPECT_FALSE(parse_content_range("bytes 0-99999999999999999999999/*").ok());
  EXPECT_FALSE(parse_content_range("items 0-1/2").ok());
  EXPECT_FALSE(parse_content_range("bytes -1-2/3").ok());
  EXPECT_FALSE(parse_content_range("bytes */100").ok());
}

TEST(Multipart, BoundaryFromContentType) {
  auto boundary = parse_multipart_boundary("multipart/byteranges; boundary=THIS_STRING");
  ASSERT_TRUE(boundary.ok());
  EXPECT_EQ(*boundary, "THIS_STRING");
  auto quoted = parse_multipart_boundary("Multipart/ByteRanges;boundary=\"a b\"");
  ASSERT_TRUE(quoted.ok());
  EXPECT_EQ(*quoted, "a b");
  EXPECT_EQ(parse_multipart_boundary("application/octet-stream").error().code,
            ErrorCode::kUnsupported);
  EXPECT_FALSE(parse_multipart_boundary("multipart/byteranges").ok());
  EXPECT_FALSE(parse_multipart_boundary("multipart/byteranges; boundary=").ok());
  EXPECT_FALSE(
      parse_multipart_boundary("multipart/byteranges; boundary=" + std::string(71, 'b')).ok());
}

// RFC 9110 §14.6's example shape, with the part data containing the boundary text itself (the
// parser must go by Content-Range lengths, not by searching for the boundary).
const std::string kMultipartBody =
    "preamble\r\n"
    "--B\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Range: bytes 500-504/1000\r\n"
    "\r\n"
    "ab--B\r\n"
    "--B\r\n"
    "content-range: bytes 10-12/1000\r\n"
    "\r\n"
    "xyz\r\n"
    "--B--\r\n";

TEST(Multipart, SplitsPartsByTheirLengths) {
  auto parts = parse_multipart_byteranges(as_bytes(kMultipartBody), "B", 1000);
  ASSERT_TRUE(parts.ok()) << parts.error().to_string();
  ASSERT_EQ(parts->size(), 2U);
  EXPECT_EQ((*parts)[0].range, (ContentRange{500, 504, 1000}));
  EXPECT_EQ(std::string((*parts)[0].bytes.begin(), (*parts)[0].bytes.end()), "ab--B");
  EXPECT_EQ((*parts)[1].range, (ContentRange{10, 12, 1000}));

  // Ranges asked in another order, one inside a part: extraction keeps the request order.
  const std::vector<ByteRange> wanted{{11, 2}, {500, 5}, {502, 1}};
  auto extracted = extract_ranges(*parts, wanted);
  ASSERT_TRUE(extracted.ok()) << extracted.error().to_string();
  ASSERT_EQ(extracted->size(), 3U);
  EXPECT_EQ(std::string((*extracted)[0].begin(), (*extracted)[0].end()), "yz");
  EXPECT_EQ(std::string((*extracted)[1].begin(), (*extracted)[1].end()), "ab--B");
  EXPECT_EQ(std::string((*extracted)[2].begin(), (*extracted)[2].end()), "-");
}

TEST(Multipart, OverlappingPartsAreFine) {
  const std::string body =
      "--B\r\nContent-Range: bytes 0-3/10\r\n\r\n0123\r\n"
      "--B\r\nContent-Range: bytes 2-5/10\r\n\r\n2345\r\n--B--";
  auto parts = parse_multipart_byteranges(as_bytes(body), "B", 10);
  ASSERT_TRUE(parts.ok()) << parts.error().to_string();
  const std::vector<ByteRange> wanted{{3, 3}, {0, 2}};
  auto extracted = extract_ranges(*parts, wanted);
  ASSERT_TRUE(extracted.ok());
  EXPECT_EQ(std::string((*extracted)[0].begin(), (*extracted)[0].end()), "345");
  EXPECT_EQ(std::string((*extracted)[1].begin(), (*extracted)[1].end()), "01");
  // A range straddling two parts but inside neither is not served.
  const std::vector<ByteRange> straddling{{1, 5}};
  EXPECT_FALSE(extract_ranges(*parts, straddling).ok());
}

TEST(Multipart, HostileBodies) {
  const auto parse = [](const std::string& body) {
    return parse_multipart_byteranges(as_bytes(body), "B", 1000);
  };
  // No boundary at all.
  EXPECT_FALSE(parse("Content-Range: bytes 0-1/1000\r\n\r\nab").ok());
  // A huge claimed length: refused without allocating it.
  EXPECT_FALSE(
      parse("--B\r\nContent-Range: bytes 0-999999999999/9999999999999\r\n\r\nab\r\n--B--").ok());
  EXPECT_FALSE(parse("--B\r\nContent-Range: bytes 0-1/1000\r\n\r\nabc\r\n--B--").ok());
  // Part beyond the blob, or announcing another blob length.
  EXPECT_FALSE(parse("--B\r\nContent-Range: bytes 1000-1001/2000\r\n\r\nab\r\n--B--").ok());
  // Missing Content-Range, unterminated headers, missing closing delimiter after data.
  EXPECT_FALSE(parse("--B\r\nContent-Type: x\r\n\r\nab\r\n--B--").ok());
  EXPECT_FALSE(parse("--B\r\nContent-Range: bytes 0-1/1000\r\n").ok());
  EXPECT_FALSE(parse("--B\r\nContent-Range: bytes 0-1/1000\r\n\r\nab").ok());
  EXPECT_FALSE(parse("--Bjunk").ok());
  // Too many parts.
  std::string many;
  for (std::size_t i = 0; i <= kMaxMultipartParts; ++i) {
    many += "--B\r\nContent-Range: bytes 0-0/1000\r\n\r\na\r\n";
  }
  many += "--B--";
  const auto limited = parse(many);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code, ErrorCode::kLimitExceeded);
}

TEST(RetryAfter, SecondsAndDates) {
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // 06 Nov 1994 08:49:37
  EXPECT_EQ(parse_retry_after("120", now), std::chrono::seconds(120));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), std::chrono::seconds(10));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now), std::chrono::seconds(0));
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now), std::nullopt);
  // Found by fuzz_registry_parsers: the far future overflowed a nanosecond duration (UBSan).
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 9395 08:49:37 GMT", now), std::chrono::hours(24));
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
}

TEST(AuthJson, FindsRegistryByHostOrUrl) {
  const std::string json = R"({"auths":{"https://other:1/v1/":{"auth":")" + openssl_base64("a:b") +
                           R"("},"127.0.0.1:5000":{"auth":")" + openssl_base64("user:pa:ss") +
                           R"("},"helper.example":{}}})";
  auto found = parse_auth_json(as_bytes(json), "127.0.0.1:5000");
  ASSERT_TRUE(found.ok()) << found.error().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->username, "user");
  EXPECT_EQ((*found)->password, "pa:ss");
  auto by_url = parse_auth_json(as_bytes(json), "other:1");
  ASSERT_TRUE(by_url.ok());
  ASSERT_TRUE(by_url->has_value());
  EXPECT_EQ((*by_url)->username, "a");
  auto absent = parse_auth_json(as_bytes(json), "helper.example");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
  // One- and two-byte padding decode to the right lengths.
  for (const std::string& pair : {std::string("u:p"), std::string("u:pw"), std::string("u:pwd")}) {
    const std::string single = R"({"auths":{"h":{"auth":")" + openssl_base64(pair) + "\"}}}";
    auto decoded = parse_auth_json(as_bytes(single), "h");
    ASSERT_TRUE(decoded.ok() && decoded->has_value()) << pair;
    EXPECT_EQ((*decoded)->username + ":" + (*decoded)->password, pair);
  }
}

TEST(AuthJson, HostileFiles) {
  EXPECT_FALSE(parse_auth_json(as_bytes("not json"), "h").ok());
  EXPECT_FALSE(parse_auth_json(as_bytes(R"({"auths":[]})"), "h").ok());
  EXPECT_FALSE(parse_auth_json(as_bytes(R"({"auths":{"h":{"auth":"!!!!"}}})"), "h").ok());
  EXPECT_FALSE(parse_auth_json(as_bytes(R"({"auths":{"h":{"auth":"abc"}}})"), "h").ok());
  EXPECT_FALSE(parse_auth_json(as_bytes(R"({"auths":{"h":{"auth":5}}})"), "h").ok());
  const std::string no_colon = R"({"auths":{"h":{"auth":")" + openssl_base64("nocolon") + "\"}}}";
  EXPECT_FALSE(parse_auth_json(as_bytes(no_colon), "h").ok());
  auto empty = parse_auth_json(as_bytes("{}"), "h");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
}

TEST(AuthJson, LoadsFromRegistryAuthFile) {
  const auto directory =
      std::filesystem::temp_directory_path() / ("strata-auth-" + std::to_string(::getpid()));
  std::filesystem::create_directories(directory);
  const auto path = directory / "auth.json";
  std::ofstream(path) << R"({"auths":{"reg.test:1":{"auth":")" << openssl_base64("me:secret")
                      << "\"}}}";
  ::setenv("REGISTRY_AUTH_FILE", path.c_str(), 1);
  auto loaded = load_credentials("reg.test:1");
  ::unsetenv("REGISTRY_AUTH_FILE");
  std::filesystem::remove_all(directory);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->password, "secret");
}

}  // namespace
}  // namespace strata::registry
