// The hostile-registry fixture checked against RegistryClient: serve_layout answers manifests by
// tag and digest, blobs, single ranges (206), multi-range requests (200, whole blob), HEAD and
// 404s as a distribution registry does, over http and over its TLS mode; pull_image copies a real
// image through it, and plan_image_pull predicts what pull_image then fetches; the reply modes
// (drip, endless, stall) deliver what they promise and the fixture stops while clients are
// mid-answer. No timing assertions: a hang is ctest's to catch.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "strata/fastpull.h"
#include "strata/registry.h"
#include "strata/store.h"
#include "tests/hostile_registry.h"
#include "tests/layer_fixtures.h"
#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata::registry {
namespace {

using strata::testing::HostileRegistry;
using strata::testing::Reply;
using strata::testing::SeenRequest;
using strata::testing::serve_layout;

ClientOptions quick_options() {
  ClientOptions options;
  options.plain_http = true;
  options.retry.initial_backoff = std::chrono::milliseconds(10);
  options.retry.max_attempts = 2;
  options.connect_timeout = std::chrono::seconds(5);
  options.stall_timeout = std::chrono::seconds(2);
  return options;
}

std::string text_of(const std::vector<std::uint8_t>& bytes) {
  return {bytes.begin(), bytes.end()};
}

// A layout with one image tagged "v1": a 300-byte "layer" (not a real tar: the fixture does not
// care), an image config and the manifest.
struct SmallLayout {
  test::TempDir directory;
  std::string layer_bytes;
  oci::Descriptor layer;
  oci::Descriptor manifest;
  std::string manifest_bytes;

  SmallLayout() {
    for (int i = 0; i < 300; ++i) layer_bytes.push_back(static_cast<char>('a' + i % 26));
    auto layout = oci::OciLayout::open_or_create(directory.path());
    EXPECT_TRUE(layout.ok());
    layer = *layout->write_blob(oci::kMediaTypeLayerTarGzip, test::bytes_of(layer_bytes));
    oci::ImageConfig config;
    config.diff_ids.push_back(layer.digest);
    const std::string config_bytes = oci::write_image_config(config);
    oci::Manifest image;
    image.config = *layout->write_blob(oci::kMediaTypeImageConfig, test::bytes_of(config_bytes));
    image.layers.push_back(layer);
    manifest_bytes = oci::write_manifest(image);
    manifest = *layout->write_blob(oci::kMediaTypeImageManifest, test::bytes_of(manifest_bytes));
    EXPECT_TRUE(layout->set_tag("v1", manifest).ok());
  }
};

TEST(HostileRegistry, ServesManifestsBlobsAndRangesOfALayout) {
  SmallLayout layout;
  HostileRegistry server(serve_layout(layout.directory.path()));
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->ping().ok());

  auto by_tag = client->fetch_manifest("any/repo", "v1");
  ASSERT_TRUE(by_tag.ok()) << by_tag.error().to_string();
  EXPECT_EQ(by_tag->digest, layout.manifest.digest);
  EXPECT_EQ(by_tag->media_type, oci::kMediaTypeImageManifest);
  EXPECT_EQ(text_of(by_tag->bytes), layout.manifest_bytes);
  auto by_digest = client->fetch_manifest("other", layout.manifest.digest.to_string());
  ASSERT_TRUE(by_digest.ok()) << by_digest.error().to_string();
  EXPECT_EQ(text_of(by_digest->bytes), layout.manifest_bytes);

  auto blob = client->fetch_blob("any/repo", layout.layer.digest, 1 << 20);
  ASSERT_TRUE(blob.ok()) << blob.error().to_string();
  EXPECT_EQ(text_of(*blob), layout.layer_bytes);
  auto info = client->stat_blob("any/repo", layout.layer.digest);
  ASSERT_TRUE(info.ok() && info->has_value());
  EXPECT_EQ((*info)->size, 300U);
  EXPECT_EQ((*info)->digest, layout.layer.digest);

  auto range = client->fetch_range("any/repo", layout.layer.digest, 100, 50);
  ASSERT_TRUE(range.ok()) << range.error().to_string();
  EXPECT_EQ(text_of(*range), layout.layer_bytes.substr(100, 50));
  // Several ranges in one request: answered with the whole blob, cut up by the client.
  const std::vector<ByteRange> wanted{{0, 10}, {290, 10}};
  auto ranges = client->fetch_ranges("any/repo", layout.layer.digest, wanted);
  ASSERT_TRUE(ranges.ok()) << ranges.error().to_string();
  ASSERT_EQ(ranges->size(), 2U);
  EXPECT_EQ(text_of((*ranges)[0]), layout.layer_bytes.substr(0, 10));
  EXPECT_EQ(text_of((*ranges)[1]), layout.layer_bytes.substr(290, 10));

  const auto requests = server.requests();
  const auto multi = std::find_if(requests.begin(), requests.end(), [](const SeenRequest& seen) {
    const auto range_header = seen.headers.find("range");
    return range_header != seen.headers.end() &&
           range_header->second.find(',') != std::string::npos;
  });
  ASSERT_NE(multi, requests.end());
  EXPECT_EQ(multi->method, "GET");
  EXPECT_EQ(multi->target, "/v2/any/repo/blobs/" + layout.layer.digest.to_string());
  EXPECT_EQ(multi->headers.at("range"), "bytes=0-9,290-299");
}

TEST(HostileRegistry, AnswersUnknownThingsWithDistributionErrors) {
  SmallLayout layout;
  HostileRegistry server(serve_layout(layout.directory.path()));
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto missing_tag = client->fetch_manifest("r", "nope");
  ASSERT_FALSE(missing_tag.ok());
  EXPECT_EQ(missing_tag.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing_tag.error().message.find("MANIFEST_UNKNOWN"), std::string::npos)
      << missing_tag.error().message;
  const Digest absent = sha256_of(test::bytes_of("absent"));
  auto stat = client->stat_blob("r", absent);
  ASSERT_TRUE(stat.ok());
  EXPECT_FALSE(stat->has_value());
  auto blob = client->fetch_blob("r", absent, 100);
  ASSERT_FALSE(blob.ok());
  EXPECT_NE(blob.error().message.find("BLOB_UNKNOWN"), std::string::npos) << blob.error().message;
  auto referrers = client->fetch_referrers("r", layout.manifest.digest);
  ASSERT_TRUE(referrers.ok());
  EXPECT_FALSE(referrers->has_value());
  auto past_end = client->fetch_range("r", layout.layer.digest, 300, 5);
  ASSERT_FALSE(past_end.ok());
  EXPECT_NE(past_end.error().message.find("not satisfiable"), std::string::npos)
      << past_end.error().message;
}

TEST(HostileRegistry, OverridesMakeARegistryThatLies) {
  SmallLayout layout;
  const std::string other_manifest = R"({"schemaVersion":2,"lie":true})";
  HostileRegistry server(
      serve_layout(layout.directory.path(), {{layout.layer.digest.to_string(), "not the layer"}},
                   {{"v9", {"application/vnd.oci.image.manifest.v1+json", other_manifest}}}));
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto blob = client->fetch_blob("r", layout.layer.digest, 1 << 20);
  ASSERT_FALSE(blob.ok());
  EXPECT_EQ(blob.error().code, ErrorCode::kDigestMismatch);
  auto manifest = client->fetch_manifest("r", "v9");
  ASSERT_TRUE(manifest.ok()) << manifest.error().to_string();
  EXPECT_EQ(text_of(manifest->bytes), other_manifest);
}

TEST(HostileRegistry, PullImageCopiesAReferenceImageThroughIt) {
  const std::string source = test::testdata_path("oci/layouts/gzip-v1");
  HostileRegistry server(serve_layout(source));
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  test::TempDir out;
  auto layout = oci::OciLayout::open_or_create(out / "layout");
  ASSERT_TRUE(layout.ok());
  auto reference = parse_image_reference(server.host() + "/mirror/gzip:v1");
  ASSERT_TRUE(reference.ok());
  PullOptions options;
  options.work_directory = out.path();
  auto pulled = pull_image(*client, *reference, nullptr, &*layout, "copy", options);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_TRUE(layout->verify_image("copy").ok());
  auto original = oci::OciLayout::open(source);
  ASSERT_TRUE(original.ok());
  EXPECT_EQ(pulled->manifest_digest, original->resolve("v1")->digest);
}

ChunkStore open_store(const std::string& path) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = ChunkStore::open(path, options);
  EXPECT_TRUE(store.ok()) << store.error().to_string();
  return std::move(store).value();
}

// Plans `tag`, pulls it, and checks that the plan named each layer's fate and bytes exactly.
void expect_plan_predicts_pull(RegistryClient& client, const std::string& host, ChunkStore& store,
                               const std::string& tag, const std::string& work) {
  auto reference = parse_image_reference(host + "/img:" + tag);
  ASSERT_TRUE(reference.ok());
  PullOptions options;
  options.work_directory = work;
  auto stats_before = store.stats();
  ASSERT_TRUE(stats_before.ok());
  auto plan = plan_image_pull(client, *reference, store, options);
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  auto stats_after = store.stats();
  ASSERT_TRUE(stats_after.ok());
  EXPECT_EQ(stats_after->chunks, stats_before->chunks) << "planning wrote to the store";
  EXPECT_EQ(stats_after->layers, stats_before->layers);
  EXPECT_GT(plan->image_bytes, 0U);
  auto pulled = pull_image(client, *reference, &store, nullptr, tag, options);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(plan->manifest_digest, pulled->manifest_digest);
  ASSERT_EQ(plan->layers.size(), pulled->layers.size());
  std::uint64_t fetch_bytes = 0;
  for (std::size_t i = 0; i < plan->layers.size(); ++i) {
    const PlannedLayer& planned = plan->layers[i];
    const PulledLayer& layer = pulled->layers[i];
    SCOPED_TRACE(tag + " layer " + std::to_string(i));
    EXPECT_EQ(planned.descriptor.digest, layer.descriptor.digest);
    EXPECT_EQ(planned.diff_id, layer.diff_id);
    EXPECT_EQ(planned.chunked, layer.chunked);
    EXPECT_EQ(planned.chunked_format, layer.chunked_format);
    EXPECT_EQ(planned.whole_reason, layer.whole_reason);
    EXPECT_EQ(planned.fetch_bytes, layer.bytes_fetched);
    EXPECT_EQ(planned.chunks_local, layer.chunks_local);
    EXPECT_EQ(planned.chunks_missing, layer.chunks_fetched);
    EXPECT_EQ(planned.delta_chunks, layer.delta_chunks);
    if (planned.already_present) {
      EXPECT_EQ(planned.fetch_bytes, 0U);
    }
    fetch_bytes += planned.fetch_bytes;
  }
  EXPECT_EQ(plan->fetch_bytes, fetch_bytes);
  EXPECT_EQ(plan->layer_bytes, pulled->layer_bytes);
}

TEST(HostileRegistry, PlanImagePullPredictsWhatThePullFetches) {
  const std::string source = test::testdata_path("oci/layouts/zstd-chunked-skopeo");
  HostileRegistry server(serve_layout(source));
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  test::TempDir out;
  ChunkStore store = open_store(out / "store");
  auto reference = parse_image_reference(server.host() + "/img:v1");
  ASSERT_TRUE(reference.ok());

  // A cold store: every layer chunked, every chunk missing; whole layers when partial is off.
  auto cold = plan_image_pull(*client, *reference, store, {});
  ASSERT_TRUE(cold.ok()) << cold.error().to_string();
  ASSERT_FALSE(cold->layers.empty());
  for (const auto& layer : cold->layers) {
    EXPECT_TRUE(layer.chunked) << layer.whole_reason;
    EXPECT_EQ(layer.chunked_format, "zstd:chunked-v1");  // skopeo: no tar-split
    EXPECT_GT(layer.chunks, 0U);
    EXPECT_EQ(layer.chunks_missing + layer.chunks_local, layer.chunks);
    EXPECT_GT(layer.metadata_bytes, 0U);
    EXPECT_GT(layer.ranges, 0U);
  }
  PullOptions whole;
  whole.partial = false;
  auto whole_plan = plan_image_pull(*client, *reference, store, whole);
  ASSERT_TRUE(whole_plan.ok()) << whole_plan.error().to_string();
  EXPECT_EQ(whole_plan->fetch_bytes, whole_plan->layer_bytes);
  for (const auto& layer : whole_plan->layers) {
    EXPECT_FALSE(layer.chunked);
    EXPECT_EQ(layer.whole_reason, "partial pull turned off");
  }

  // v1 into the empty store, v2 against v1's chunks, then v1 again (every layer present).
  expect_plan_predicts_pull(*client, server.host(), store, "v1", out.path());
  expect_plan_predicts_pull(*client, server.host(), store, "v2", out.path());
  auto again = plan_image_pull(*client, *reference, store, {});
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(again->fetch_bytes, 0U);
  for (const auto& layer : again->layers) EXPECT_TRUE(layer.already_present);
}

// A rebuilt "library": v2 is v1 with 4 bytes changed every 20 KB; tarred with one header.
std::vector<std::uint8_t> library_tar(bool second) {
  auto noise = test::splitmix64_bytes(31, 600'000);
  std::string content;
  for (std::uint8_t byte : noise) content.push_back(static_cast<char>('a' + byte % 23));
  if (second) {
    for (std::size_t at = 700; at + 4 < content.size(); at += 20'000) content[at] ^= 0x15;
  }
  std::vector<std::uint8_t> tar;
  for (const auto& [name, body] : {std::pair<std::string, std::string>{"usr/lib/liby.so", content},
                                   {"etc/version", second ? "2\n" : "1\n"}}) {
    auto header = test::make_header(name, '0', body.size());
    tar.insert(tar.end(), header.begin(), header.end());
    tar.insert(tar.end(), body.begin(), body.end());
    tar.resize((tar.size() + 511) / 512 * 512, 0);
  }
  tar.resize(tar.size() + 1024, 0);
  return tar;
}

TEST(HostileRegistry, PlanImagePullCountsTheDeltasAPullUses) {
  test::TempDir work;
  for (const char* version : {"v1", "v2"}) {
    const auto tar = library_tar(std::string(version) == "v2");
    std::ofstream(work / (std::string(version) + ".tar"), std::ios::binary)
        .write(reinterpret_cast<const char*>(tar.data()), static_cast<std::streamsize>(tar.size()));
  }
  const std::string pusher = work / "pusher";
  const std::string layout_dir = work / "layout";
  for (const std::string& command :
       {"ingest --store '" + pusher + "' '" + (work / "v1.tar") + "'",
        "build '" + (work / "v1.tar") + "' --format zstd:chunked --store '" + pusher +
            "' --layout '" + layout_dir + "' --tag v1",
        "ingest --delta-base auto --store '" + pusher + "' '" + (work / "v2.tar") + "'",
        "build '" + (work / "v2.tar") + "' --format zstd:chunked --store '" + pusher +
            "' --layout '" + layout_dir + "' --tag v2"}) {
    const auto result = test::run_tool(command);
    ASSERT_EQ(result.exit_code, 0) << command << ": " << result.err;
  }
  {
    auto store = ChunkStore::open(pusher);
    ASSERT_TRUE(store.ok());
    auto layout = oci::OciLayout::open_or_create(layout_dir);
    ASSERT_TRUE(layout.ok());
    auto referrer = fastpull::write_delta_referrer(*store, *layout, "v2");
    ASSERT_TRUE(referrer.ok()) << referrer.error().to_string();
    ASSERT_GT(referrer->delta_chunks, 0U);
    // What push_delta_referrer puts under the fallback tag of a registry without the referrers
    // API: an image index listing the referrer (serve_layout serves the layout's tags as they are).
    oci::Index fallback;
    fallback.manifests.push_back(referrer->referrer);
    const std::string text = oci::write_index(fallback);
    auto written = layout->write_blob(oci::kMediaTypeImageIndex, test::bytes_of(text));
    ASSERT_TRUE(written.ok());
    ASSERT_TRUE(layout->set_tag("sha256-" + referrer->subject.hex(), *written).ok());
  }
  HostileRegistry server(serve_layout(layout_dir));
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  ChunkStore store = open_store(work / "receiver");
  expect_plan_predicts_pull(*client, server.host(), store, "v1", work.path());
  // v2: the plan finds the referrer (the fallback tag) and counts the delta ranges as the pull
  // fetches them.
  auto reference = parse_image_reference(server.host() + "/img:v2");
  ASSERT_TRUE(reference.ok());
  auto plan = plan_image_pull(*client, *reference, store, {});
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  EXPECT_EQ(plan->delta_referrer, "tag") << plan->delta_refused;
  EXPECT_GT(plan->delta_referrer_bytes, 0U);
  ASSERT_EQ(plan->layers.size(), 1U);
  EXPECT_GT(plan->layers[0].delta_chunks, 0U);
  EXPECT_GT(plan->layers[0].delta_fetch_bytes, 0U);
  expect_plan_predicts_pull(*client, server.host(), store, "v2", work.path());
  auto pulled_again = plan_image_pull(*client, *reference, store, {});
  ASSERT_TRUE(pulled_again.ok());
  EXPECT_EQ(pulled_again->fetch_bytes, 0U);
}

TEST(HostileRegistry, TlsModeServesHttpsToAClientThatSkipsVerification) {
  SmallLayout layout;
  HostileRegistry server(serve_layout(layout.directory.path()), strata::testing::UseTls{});
  ClientOptions options = quick_options();
  options.plain_http = false;
  options.tls_verify = false;
  auto client = RegistryClient::create(server.host(), options);
  ASSERT_TRUE(client.ok());
  auto blob = client->fetch_blob("r", layout.layer.digest, 1 << 20);
  ASSERT_TRUE(blob.ok()) << blob.error().to_string();
  EXPECT_EQ(text_of(*blob), layout.layer_bytes);
  // A client checking certificates refuses the self-signed one.
  options.tls_verify = true;
  options.retry.max_attempts = 1;
  auto strict = RegistryClient::create(server.host(), options);
  ASSERT_TRUE(strict.ok());
  EXPECT_FALSE(strict->ping().ok());
}

// A registry (or a man in the middle of its CDN redirect) must not move an https client onto
// plain http: the redirect is refused and the http host sees nothing, so no token or credential
// leaves in clear. An https -> https redirect (a CDN) still works.
TEST(HostileRegistry, HttpsClientRefusesARedirectDownToHttp) {
  SmallLayout layout;
  const std::string blob_path = "/v2/r/blobs/" + layout.layer.digest.to_string();
  HostileRegistry plain(serve_layout(layout.directory.path()));
  HostileRegistry cdn(serve_layout(layout.directory.path()), strata::testing::UseTls{});
  std::string target_host;
  std::string target_scheme;
  HostileRegistry registry(
      [&](const SeenRequest& request) {
        if (request.target != blob_path) return Reply{};
        Reply reply;
        reply.status = 307;
        reply.headers.emplace_back("Location", target_scheme + "://" + target_host + blob_path);
        return reply;
      },
      strata::testing::UseTls{});
  ClientOptions options = quick_options();
  options.plain_http = false;
  options.tls_verify = false;
  options.retry.max_attempts = 1;
  auto client = RegistryClient::create(registry.host(), options);
  ASSERT_TRUE(client.ok());

  target_scheme = "http";
  target_host = plain.host();
  auto downgraded = client->fetch_blob("r", layout.layer.digest, 1 << 20);
  ASSERT_FALSE(downgraded.ok());
  EXPECT_NE(downgraded.error().message.find(blob_path), std::string::npos)
      << downgraded.error().message;
  EXPECT_TRUE(plain.requests().empty());

  target_scheme = "https";
  target_host = cdn.host();
  auto redirected = client->fetch_blob("r", layout.layer.digest, 1 << 20);
  ASSERT_TRUE(redirected.ok()) << redirected.error().to_string();
  EXPECT_EQ(text_of(*redirected), layout.layer_bytes);
}

TEST(HostileRegistry, DripDeliversTheWholeBody) {
  const std::string body = "twelve bytes";
  HostileRegistry server([&](const SeenRequest&) {
    Reply reply;
    reply.body = body;
    reply.mode = Reply::Mode::kDrip;
    reply.drip_bytes = 5;
    reply.drip_interval = std::chrono::milliseconds(20);
    return reply;
  });
  auto client = RegistryClient::create(server.host(), quick_options());
  ASSERT_TRUE(client.ok());
  auto blob = client->fetch_blob("r", sha256_of(test::bytes_of(body)), 100);
  ASSERT_TRUE(blob.ok()) << blob.error().to_string();
  EXPECT_EQ(text_of(*blob), body);
}

TEST(HostileRegistry, EndlessZerosGoOnUntilTheClientGivesUp) {
  for (const bool omit_length : {false, true}) {
    HostileRegistry server([&](const SeenRequest&) {
      Reply reply;
      reply.body = "start";
      reply.mode = Reply::Mode::kEndless;
      reply.omit_length = omit_length;
      if (!omit_length) reply.headers.emplace_back("Content-Length", "1099511627776");
      return reply;
    });
    auto client = RegistryClient::create(server.host(), quick_options());
    ASSERT_TRUE(client.ok());
    auto blob = client->fetch_blob("r", sha256_of(test::bytes_of("start")), 1 << 20);
    ASSERT_FALSE(blob.ok());
    EXPECT_EQ(blob.error().code, ErrorCode::kLimitExceeded) << blob.error().to_string();
    EXPECT_GT(client->counters().bytes_received, std::uint64_t{1} << 20U);
  }
}

// The chunked pull keeps several range batches in flight: one that stalls (headers, then no byte)
// must end the pull, after the client's retries, with an error naming the layer blob, and leave
// nothing in the store.
TEST(HostileRegistry, AStalledRangeEndsAChunkedPullNamingTheBlobAndCommitsNothing) {
  const std::string source = test::testdata_path("oci/layouts/zstd-chunked-skopeo");
  const auto handler = serve_layout(source);
  HostileRegistry server([&](const SeenRequest& request) {
    const auto range = request.headers.find("range");
    // The layer's data from its first byte (skopeo's layers have no tar-split: the pull fetches
    // from offset 0); the footer and TOC reads at the blob's end are answered.
    if (request.target.find("/blobs/") != std::string::npos && range != request.headers.end() &&
        range->second.starts_with("bytes=0-")) {
      Reply stalled;
      stalled.status = 206;
      stalled.body = std::string(4096, 'x');
      stalled.mode = Reply::Mode::kStall;
      return stalled;
    }
    return handler(request);
  });
  ClientOptions options = quick_options();
  options.stall_timeout = std::chrono::seconds(1);
  auto client = RegistryClient::create(server.host(), options);
  ASSERT_TRUE(client.ok());
  test::TempDir out;
  ChunkStore store = open_store(out / "store");
  auto reference = parse_image_reference(server.host() + "/img:v1");
  ASSERT_TRUE(reference.ok());
  PullOptions pull_options;
  pull_options.work_directory = out.path();
  auto pulled = pull_image(*client, *reference, &store, nullptr, "v1", pull_options);
  ASSERT_FALSE(pulled.ok());
  auto layout = oci::OciLayout::open(source);
  ASSERT_TRUE(layout.ok());
  auto image = layout->load_image("v1");
  ASSERT_TRUE(image.ok());
  bool named = false;
  for (const auto& layer : image->manifest.layers) {
    named = named || pulled.error().message.find(layer.digest.to_string()) != std::string::npos;
  }
  EXPECT_TRUE(named) << pulled.error().to_string();
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_EQ(stats->chunks, 0U);
}

// The layer's one run of chunks streams in 1 MiB requests: a later one whose 206 answer comes back
// a byte short (the registry's Content-Range says more) must end the pull with an error naming the
// layer blob, after the requests before it were served, and leave nothing new in the store. The
// store holds one unrelated chunk, so the pull is not a first pull. Into an empty store the chunk
// frames come in one early request from the start (registry/early_stream.h): when its answer
// comes back half as long as its Content-Range says (and any request to resume it fails), the
// pull must end alike.
TEST(HostileRegistry, AShortRangeInALaterBatchEndsAChunkedPullNamingTheBlobAndCommitsNothing) {
  test::TempDir work;
  std::vector<std::uint8_t> tar;
  for (int i = 0; i < 3; ++i) {  // 4.5 MiB that do not compress: several batches
    const auto body = test::splitmix64_bytes(50 + static_cast<std::uint64_t>(i), 1'500'000);
    const auto header = test::make_header("data/file" + std::to_string(i), '0', body.size());
    tar.insert(tar.end(), header.begin(), header.end());
    tar.insert(tar.end(), body.begin(), body.end());
    tar.resize((tar.size() + 511) / 512 * 512, 0);
  }
  tar.resize(tar.size() + 1024, 0);
  std::ofstream(work / "v1.tar", std::ios::binary)
      .write(reinterpret_cast<const char*>(tar.data()), static_cast<std::streamsize>(tar.size()));
  const std::string layout_dir = work / "layout";
  const auto built =
      test::run_tool("build '" + (work / "v1.tar") + "' --format zstd:chunked --layout '" +
                     layout_dir + "' --tag v1");
  ASSERT_EQ(built.exit_code, 0) << built.err;
  auto layout = oci::OciLayout::open(layout_dir);
  ASSERT_TRUE(layout.ok());
  auto image = layout->load_image("v1");
  ASSERT_TRUE(image.ok());
  ASSERT_EQ(image->manifest.layers.size(), 1U);
  const oci::Descriptor layer = image->manifest.layers[0];
  const std::string position =
      layer.annotations.at("io.github.containers.zstd-chunked.manifest-position");
  const std::uint64_t toc_offset = std::stoull(position.substr(0, position.find(':')));
  ASSERT_GT(toc_offset, std::uint64_t{3} << 20U);
  const auto handler = serve_layout(layout_dir);
  for (const bool first_pull : {false, true}) {
    SCOPED_TRACE(first_pull ? "first pull" : "store holding a chunk");
    // Data requests from this offset on come back a byte short (a later batch), or the first
    // pull's one request breaks off half way and its resumptions fail.
    const std::uint64_t short_from = std::uint64_t{2} << 20U;
    std::atomic<int> data_ranges{0};
    HostileRegistry server([&](const SeenRequest& request) {
      Reply reply = handler(request);
      const auto range = request.headers.find("range");
      if (reply.status != 206 || range == request.headers.end() ||
          request.target.find(layer.digest.to_string()) == std::string::npos) {
        return reply;
      }
      const std::uint64_t start = std::stoull(range->second.substr(std::string("bytes=").size()));
      if (start >= toc_offset) return reply;  // the TOC and tar-split reads
      ++data_ranges;
      if (first_pull && start == 0) {
        reply.body.resize(reply.body.size() / 2);
      } else if (first_pull) {
        reply.status = 503;
        reply.body.clear();
      } else if (start >= short_from && !reply.body.empty()) {
        reply.body.pop_back();
      }
      return reply;
    });
    auto client = RegistryClient::create(server.host(), quick_options());
    ASSERT_TRUE(client.ok());
    ChunkStore store = open_store(work / (first_pull ? "store-first" : "store"));
    std::uint64_t chunks_before = 0;
    if (!first_pull) {
      const std::vector<std::uint8_t> other = test::splitmix64_bytes(99, 4096);
      const Digest other_digest = sha256_of(other);
      auto writer = store.writer();
      ASSERT_TRUE(writer.ok());
      ASSERT_TRUE(writer->put_chunk(other_digest, other, other, Codec::kRaw).ok());
      LayerRecord unrelated;
      unrelated.diff_id = sha256_of(ByteSpan(other).first(100));
      unrelated.layer_digest = unrelated.diff_id;
      unrelated.media_type = "application/vnd.oci.image.layer.v1.tar";
      unrelated.size = other.size();
      ASSERT_TRUE(writer->commit_layer(unrelated, std::vector<Digest>{other_digest}).ok());
      chunks_before = 1;
    }
    auto reference = parse_image_reference(server.host() + "/img:v1");
    ASSERT_TRUE(reference.ok());
    PullOptions pull_options;
    pull_options.work_directory = work.path();
    pull_options.stream_batch_bytes = 1 << 20;
    auto pulled = pull_image(*client, *reference, &store, nullptr, "v1", pull_options);
    ASSERT_FALSE(pulled.ok());
    EXPECT_NE(pulled.error().message.find(layer.digest.to_string()), std::string::npos)
        << pulled.error().to_string();
    EXPECT_NE(pulled.error().message.find("bytes"), std::string::npos)
        << pulled.error().to_string();
    EXPECT_GE(data_ranges.load(), first_pull ? 1 : 3);
    auto stats = store.stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->layers, first_pull ? 0U : 1U);
    EXPECT_EQ(stats->chunks, chunks_before);
  }
}

TEST(HostileRegistry, StopsWhileClientsAreMidAnswer) {
  // Clients stuck in a stall and a slow drip; the fixture's destructor must end both.
  for (const auto mode : {Reply::Mode::kStall, Reply::Mode::kDrip, Reply::Mode::kEndless}) {
    std::thread client_thread;
    {
      HostileRegistry server([&](const SeenRequest&) {
        Reply reply;
        reply.body = std::string(1000, 'x');
        reply.mode = mode;
        reply.drip_interval = std::chrono::milliseconds(60000);
        return reply;
      });
      ClientOptions options = quick_options();
      options.retry.max_attempts = 1;
      options.stall_timeout = std::chrono::seconds(600);
      auto client = RegistryClient::create(server.host(), options);
      ASSERT_TRUE(client.ok());
      client_thread = std::thread([&, c = std::move(*client)]() mutable {
        auto blob = c.fetch_blob("r", Digest{}, 1 << 20);
        EXPECT_FALSE(blob.ok());
      });
      while (server.requests().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }  // the server stops here, with the client mid-answer
    client_thread.join();
  }
}

}  // namespace
}  // namespace strata::registry
