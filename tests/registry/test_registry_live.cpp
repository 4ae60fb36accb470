// RegistryClient against a real docker-registry, and through the fault-injecting proxy
// (tests/integration/registry_fault_proxy.py). tests/integration/registry_push_pull.sh starts
// both on 127.0.0.1 and runs this suite with STRATA_TEST_REGISTRY=host:port and
// STRATA_TEST_PROXY=host:port; without them (the plain unit run) every test skips. Expected bytes
// are the test's own random blobs, so every check compares against data the registry never saw
// in any other form. Facts: shared/specs/layer-formats.md §3 (docker-registry 2.8.2 behaviour).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "strata/registry.h"
#include "tests/test_support.h"

namespace strata::registry {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

ClientOptions fast_options() {
  ClientOptions options;
  options.plain_http = true;
  options.retry.initial_backoff = std::chrono::milliseconds(20);
  options.retry.max_total = std::chrono::seconds(20);
  options.stall_timeout = std::chrono::seconds(10);
  return options;
}

BlobReader reader_of(const std::vector<std::uint8_t>& bytes) {
  return [&bytes](std::uint64_t offset, MutableByteSpan out) -> Result<std::size_t> {
    const auto n = std::min<std::size_t>(out.size(), bytes.size() - offset);
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(offset), n, out.begin());
    return n;
  };
}

class RegistryLive : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = env("STRATA_TEST_REGISTRY");
    proxy_ = env("STRATA_TEST_PROXY");
    if (registry_.empty() || proxy_.empty()) {
      GTEST_SKIP() << "needs STRATA_TEST_REGISTRY and STRATA_TEST_PROXY (registry_push_pull.sh)";
    }
  }

  // A fresh random blob pushed directly (not through the proxy) into `repository`.
  std::pair<std::vector<std::uint8_t>, Digest> push_random_blob(const std::string& repository,
                                                                std::size_t size,
                                                                std::uint64_t seed) {
    auto bytes = strata::test::splitmix64_bytes(seed, size);
    const Digest digest = sha256_of(bytes);
    auto client = RegistryClient::create(registry_, fast_options());
    EXPECT_TRUE(client.ok());
    auto pushed = client->push_blob(repository, digest, bytes.size(), reader_of(bytes));
    EXPECT_TRUE(pushed.ok()) << pushed.error().to_string();
    return {std::move(bytes), digest};
  }

  std::string registry_;
  std::string proxy_;
};

std::uint64_t unique_seed() {
  return std::random_device{}() | (std::uint64_t{1} << 40U);
}

TEST_F(RegistryLive, MonolithicAndChunkedUploadsReadBackWholeAndInRanges) {
  for (const std::uint64_t chunk : {std::uint64_t{0}, std::uint64_t{64} << 10U}) {
    ClientOptions options = fast_options();
    options.upload_chunk_bytes = chunk;
    auto client = RegistryClient::create(registry_, options);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client->ping().ok());
    const auto bytes = strata::test::splitmix64_bytes(unique_seed(), 300001);
    const Digest digest = sha256_of(bytes);
    auto before = client->stat_blob("live/a", digest);
    ASSERT_TRUE(before.ok()) << before.error().to_string();
    EXPECT_FALSE(before->has_value());
    auto pushed = client->push_blob("live/a", digest, bytes.size(), reader_of(bytes));
    ASSERT_TRUE(pushed.ok()) << pushed.error().to_string();
    auto after = client->stat_blob("live/a", digest);
    ASSERT_TRUE(after.ok() && after->has_value());
    EXPECT_EQ((*after)->size, bytes.size());

    auto whole = client->fetch_blob("live/a", digest, bytes.size());
    ASSERT_TRUE(whole.ok()) << whole.error().to_string();
    EXPECT_EQ(*whole, bytes);
    auto too_small = client->fetch_blob("live/a", digest, bytes.size() - 1);
    ASSERT_FALSE(too_small.ok());
    EXPECT_EQ(too_small.error().code, ErrorCode::kLimitExceeded);

    auto range = client->fetch_range("live/a", digest, 1000, 777);
    ASSERT_TRUE(range.ok()) << range.error().to_string();
    EXPECT_EQ(*range, std::vector<std::uint8_t>(bytes.begin() + 1000, bytes.begin() + 1777));
    // The registry answers multi-range requests with multipart/byteranges (206).
    const std::vector<ByteRange> ranges{{299000, 1001}, {5, 10}, {7, 3}, {100000, 65536}};
    auto many = client->fetch_ranges("live/a", digest, ranges);
    ASSERT_TRUE(many.ok()) << many.error().to_string();
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const auto begin = bytes.begin() + static_cast<std::ptrdiff_t>(ranges[i].offset);
      EXPECT_EQ((*many)[i], std::vector<std::uint8_t>(
                                begin, begin + static_cast<std::ptrdiff_t>(ranges[i].length)));
    }
    auto past_end = client->fetch_range("live/a", digest, bytes.size(), 1);
    EXPECT_FALSE(past_end.ok());
  }
}

TEST_F(RegistryLive, WrongDigestUploadIsRefused) {
  auto client = RegistryClient::create(registry_, fast_options());
  ASSERT_TRUE(client.ok());
  const auto bytes = strata::test::splitmix64_bytes(unique_seed(), 1000);
  const Digest wrong = sha256_of(strata::test::splitmix64_bytes(unique_seed(), 10));
  auto pushed = client->push_blob("live/a", wrong, bytes.size(), reader_of(bytes));
  ASSERT_FALSE(pushed.ok());
  EXPECT_EQ(pushed.error().code, ErrorCode::kDigestMismatch);
}

TEST_F(RegistryLive, MountAcrossRepositories) {
  auto [bytes, digest] = push_random_blob("live/source", 5000, unique_seed());
  auto client = RegistryClient::create(registry_, fast_options());
  ASSERT_TRUE(client.ok());
  auto mounted = client->mount_blob("live/target", digest, "live/source");
  ASSERT_TRUE(mounted.ok()) << mounted.error().to_string();
  EXPECT_TRUE(*mounted);
  auto fetched = client->fetch_blob("live/target", digest, bytes.size());
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(*fetched, bytes);
  // A blob the source does not have: the registry declines and opens an upload instead.
  const Digest absent = sha256_of(strata::test::splitmix64_bytes(unique_seed(), 99));
  auto declined = client->mount_blob("live/target", absent, "live/source");
  ASSERT_TRUE(declined.ok()) << declined.error().to_string();
  EXPECT_FALSE(*declined);
}

TEST_F(RegistryLive, ManifestsByTagAndDigestAndPagedTags) {
  auto client = RegistryClient::create(registry_, fast_options());
  ASSERT_TRUE(client.ok());
  const std::string config =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  const ByteSpan config_bytes(reinterpret_cast<const std::uint8_t*>(config.data()), config.size());
  const Digest config_digest = sha256_of(config_bytes);
  ASSERT_TRUE(
      client
          ->push_blob("live/tags", config_digest, config.size(),
                      [&](std::uint64_t offset, MutableByteSpan out) -> Result<std::size_t> {
                        const auto n = std::min<std::size_t>(out.size(), config.size() - offset);
                        std::copy_n(config_bytes.begin() + static_cast<std::ptrdiff_t>(offset), n,
                                    out.begin());
                        return n;
                      })
          .ok());
  oci::Manifest manifest;
  manifest.config = oci::describe_bytes(oci::kMediaTypeImageConfig, config_bytes);
  const std::string manifest_json = oci::write_manifest(manifest);
  const ByteSpan manifest_bytes(reinterpret_cast<const std::uint8_t*>(manifest_json.data()),
                                manifest_json.size());
  const std::vector<std::string> tags{"t1", "t2", "t3", "t4", "t5"};
  for (const auto& tag : tags) {
    auto pushed =
        client->push_manifest("live/tags", tag, oci::kMediaTypeImageManifest, manifest_bytes);
    ASSERT_TRUE(pushed.ok()) << pushed.error().to_string();
    EXPECT_EQ(*pushed, sha256_of(manifest_bytes));
  }
  auto by_tag = client->fetch_manifest("live/tags", "t3");
  ASSERT_TRUE(by_tag.ok()) << by_tag.error().to_string();
  EXPECT_EQ(by_tag->digest, sha256_of(manifest_bytes));
  EXPECT_EQ(by_tag->media_type, oci::kMediaTypeImageManifest);
  auto by_digest = client->fetch_manifest("live/tags", by_tag->digest.to_string());
  ASSERT_TRUE(by_digest.ok());
  EXPECT_EQ(by_digest->bytes, by_tag->bytes);
  auto missing = client->fetch_manifest("live/tags", "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  // docker-registry 2.8 ignores ?n= (one page, its own order); the proxy paginates.
  auto listed = client->list_tags("live/tags");
  ASSERT_TRUE(listed.ok()) << listed.error().to_string();
  std::sort(listed->begin(), listed->end());
  EXPECT_EQ(*listed, tags);
  auto proxied = RegistryClient::create(proxy_, fast_options());
  ASSERT_TRUE(proxied.ok());
  auto paged = proxied->list_tags("live/tags", 2);  // three pages, joined by Link headers
  ASSERT_TRUE(paged.ok()) << paged.error().to_string();
  EXPECT_EQ(*paged, tags);
  EXPECT_EQ(proxied->counters().requests, 3U);
}

TEST_F(RegistryLive, ProxyFaultsAreSurvivedOrRefused) {
  auto [bytes, digest] = push_random_blob("live/faults", 200000, unique_seed());
  auto client = RegistryClient::create(proxy_, fast_options());
  ASSERT_TRUE(client.ok());
  // The proxy drops the first whole-blob GET half-way: the client retries and verifies.
  auto whole = client->fetch_blob("live/faults", digest, bytes.size());
  ASSERT_TRUE(whole.ok()) << whole.error().to_string();
  EXPECT_EQ(*whole, bytes);
  EXPECT_GE(client->counters().retries, 1U);
  // Multi-range answered with the whole blob (200): cut up locally after checking its digest.
  const std::vector<ByteRange> ranges{{10, 20}, {150000, 4096}};
  auto many = client->fetch_ranges("live/faults", digest, ranges);
  ASSERT_TRUE(many.ok()) << many.error().to_string();
  EXPECT_EQ((*many)[0], std::vector<std::uint8_t>(bytes.begin() + 10, bytes.begin() + 30));
  EXPECT_EQ((*many)[1], std::vector<std::uint8_t>(bytes.begin() + 150000, bytes.begin() + 154096));
  // Same, but the whole blob is larger than the client will cut up: single ranges instead.
  ClientOptions small = fast_options();
  small.max_full_body_for_ranges = 1000;
  auto singles_client = RegistryClient::create(proxy_, small);
  ASSERT_TRUE(singles_client.ok());
  auto singles = singles_client->fetch_ranges("live/faults", digest, ranges);
  ASSERT_TRUE(singles.ok()) << singles.error().to_string();
  EXPECT_EQ(*singles, *many);
}

std::string scratch_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("strata-live-" + name + "-" + std::to_string(::getpid())))
      .string();
}

void write_bytes(const std::string& path, ByteSpan bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

TEST_F(RegistryLive, DroppedDownloadResumesWithoutFetchingTwice) {
  auto [bytes, digest] = push_random_blob("live/resume", 400000, unique_seed());
  auto client = RegistryClient::create(proxy_, fast_options());
  ASSERT_TRUE(client.ok());
  const std::string path = scratch_path("resume");
  // The proxy cuts the first whole-blob GET after half the body; the retry asks for the rest.
  auto size = client->fetch_blob_to_file("live/resume", digest, bytes.size(), path);
  ASSERT_TRUE(size.ok()) << size.error().to_string();
  EXPECT_EQ(*size, bytes.size());
  EXPECT_EQ(strata::test::read_file(path), bytes);
  EXPECT_GE(client->counters().retries, 1U);
  // Restarting from 0 would receive about 1.5 times the blob.
  EXPECT_LE(client->counters().bytes_received, bytes.size() + bytes.size() / 20);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  std::filesystem::remove(path);
}

TEST_F(RegistryLive, RegistryIgnoringRangeRestartsTheDownloadFromZero) {
  auto [bytes, digest] = push_random_blob("live/norange", 300000, unique_seed());
  auto client = RegistryClient::create(proxy_, fast_options());
  ASSERT_TRUE(client.ok());
  const std::string path = scratch_path("norange");
  // Dropped half-way, then the resuming Range is answered 200 with the whole blob.
  auto size = client->fetch_blob_to_file("live/norange", digest, bytes.size(), path);
  ASSERT_TRUE(size.ok()) << size.error().to_string();
  EXPECT_EQ(strata::test::read_file(path), bytes);
  EXPECT_GE(client->counters().retries, 1U);
  EXPECT_GE(client->counters().bytes_received, bytes.size() + bytes.size() / 4);
  std::filesystem::remove(path);
}

TEST_F(RegistryLive, ExistingPartialFileIsResumedOrDiscarded) {
  auto [bytes, digest] = push_random_blob("live/partial", 250000, unique_seed());
  const std::string path = scratch_path("partial");
  const std::size_t held = 100000;
  {  // the first bytes already there: only the rest crosses the wire
    auto client = RegistryClient::create(registry_, fast_options());
    ASSERT_TRUE(client.ok());
    write_bytes(path + ".partial", ByteSpan(bytes).first(held));
    auto size = client->fetch_blob_to_file("live/partial", digest, bytes.size(), path);
    ASSERT_TRUE(size.ok()) << size.error().to_string();
    EXPECT_EQ(strata::test::read_file(path), bytes);
    // The resuming range starts one byte early (a check that file and blob agree).
    EXPECT_EQ(client->counters().bytes_received, bytes.size() - held + 1);
  }
  {  // the whole blob already there: one byte fetched, the digest matches
    auto client = RegistryClient::create(registry_, fast_options());
    ASSERT_TRUE(client.ok());
    write_bytes(path + ".partial", bytes);
    auto size = client->fetch_blob_to_file("live/partial", digest, bytes.size(), path);
    ASSERT_TRUE(size.ok()) << size.error().to_string();
    EXPECT_EQ(strata::test::read_file(path), bytes);
    EXPECT_EQ(client->counters().bytes_received, 1U);
  }
  {  // a stale partial with other bytes: the digest fails, the file starts over from 0

    auto client = RegistryClient::create(registry_, fast_options());
    ASSERT_TRUE(client.ok());
    std::vector<std::uint8_t> stale(bytes.begin(), bytes.begin() + held);
    stale[held / 2] ^= 0x5AU;
    write_bytes(path + ".partial", stale);
    auto size = client->fetch_blob_to_file("live/partial", digest, bytes.size(), path);
    ASSERT_TRUE(size.ok()) << size.error().to_string();
    EXPECT_EQ(strata::test::read_file(path), bytes);
    EXPECT_EQ(client->counters().bytes_received, bytes.size() - held + 1 + bytes.size());
  }
  // A partial longer than the blob (a blob that was replaced, a bad copy): longer than the size
  // the caller expects, so it is discarded before asking and the blob fetched from 0 in the same
  // call. (A registry answering the resume with 416 anyway: test_registry_client.)
  for (const std::size_t extra : {std::size_t{1}, std::size_t{5000}}) {
    SCOPED_TRACE(extra);
    auto client = RegistryClient::create(registry_, fast_options());
    ASSERT_TRUE(client.ok());
    std::vector<std::uint8_t> longer = bytes;
    longer.resize(bytes.size() + extra, 0x5AU);
    write_bytes(path + ".partial", longer);
    auto size = client->fetch_blob_to_file("live/partial", digest, bytes.size(), path);
    ASSERT_TRUE(size.ok()) << size.error().to_string();
    EXPECT_EQ(*size, bytes.size());
    EXPECT_EQ(strata::test::read_file(path), bytes);
    EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
    EXPECT_LE(client->counters().bytes_received, bytes.size() + 1000);
  }
  {  // a partial whose last byte is not the blob's: discarded at the first byte, fetched anew
    auto client = RegistryClient::create(registry_, fast_options());
    ASSERT_TRUE(client.ok());
    std::vector<std::uint8_t> stale(bytes.begin(), bytes.begin() + held);
    stale.back() ^= 0x5AU;
    write_bytes(path + ".partial", stale);
    auto size = client->fetch_blob_to_file("live/partial", digest, bytes.size(), path);
    ASSERT_TRUE(size.ok()) << size.error().to_string();
    EXPECT_EQ(strata::test::read_file(path), bytes);
    EXPECT_LT(client->counters().bytes_received, 2 * bytes.size() - held);
  }
  std::filesystem::remove(path);
}

TEST_F(RegistryLive, CorruptBlobIsRefusedWithDigestMismatch) {
  auto [bytes, digest] = push_random_blob("live/corrupt", 100000, unique_seed());
  auto client = RegistryClient::create(proxy_, fast_options());
  ASSERT_TRUE(client.ok());
  auto whole = client->fetch_blob("live/corrupt", digest, bytes.size());
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.error().code, ErrorCode::kDigestMismatch) << whole.error().to_string();
  const auto file =
      std::filesystem::temp_directory_path() / ("strata-corrupt-" + std::to_string(::getpid()));
  auto to_file = client->fetch_blob_to_file("live/corrupt", digest, bytes.size(), file.string());
  ASSERT_FALSE(to_file.ok());
  EXPECT_EQ(to_file.error().code, ErrorCode::kDigestMismatch);
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_FALSE(std::filesystem::exists(file.string() + ".partial"));
  const std::vector<ByteRange> ranges{{0, 10}, {50000, 10}};
  auto many = client->fetch_ranges("live/corrupt", digest, ranges);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().code, ErrorCode::kDigestMismatch);
}

TEST_F(RegistryLive, UnreachableRegistryFailsWithinTheRetryBudget) {
  ClientOptions options = fast_options();
  options.retry.max_attempts = 3;
  // Port 1 on loopback: nothing listens, connections are refused at once.
  auto client = RegistryClient::create("127.0.0.1:1", options);
  ASSERT_TRUE(client.ok());
  auto pinged = client->ping();
  ASSERT_FALSE(pinged.ok());
  EXPECT_EQ(pinged.error().code, ErrorCode::kIo);
  EXPECT_EQ(client->counters().retries, 2U);
}

}  // namespace
}  // namespace strata::registry
