// Reading chunked layers made by real tools (shared/testdata/oci: skopeo, containers/storage,
// ctr-remote): every zstd:chunked (both variants) and eStargz layer's TOC is read through a range
// fetcher, checked against its annotation, every chunk and file digest verified, the tar rebuilt
// and compared with the config diff_id recorded independently in expected.json, the TOC checked
// against the tar and the tar-split against its bytes. Hostile variants must be refused.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/chunked/toc_json.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "tests/test_support.h"

namespace strata::fastpull {
namespace {

struct FixtureLayer {
  std::string key;
  std::vector<std::uint8_t> blob;
  oci::Annotations annotations;
  Digest diff_id;
};

std::vector<FixtureLayer> load_chunked_fixtures() {
  const auto expected_bytes = test::read_file(test::testdata_path("oci/expected.json"));
  const auto expected = nlohmann::json::parse(expected_bytes.begin(), expected_bytes.end());
  std::vector<FixtureLayer> layers;
  for (const auto& [key, value] : expected.items()) {
    if (key.starts_with("gzip-")) continue;
    const auto colon = key.find(':');
    const std::string layout_dir = test::testdata_path("oci/layouts/" + key.substr(0, colon));
    const std::string digest_hex = value["layer_digest"].get<std::string>().substr(7);
    FixtureLayer layer;
    layer.key = key;
    layer.blob = test::read_file(layout_dir + "/blobs/sha256/" + digest_hex);
    for (const auto& [name, text] : value["layer_annotations"].items()) {
      layer.annotations[name] = text.get<std::string>();
    }
    layer.diff_id = *Digest::parse(value["diff_id"].get<std::string>());
    layers.push_back(std::move(layer));
  }
  return layers;
}

RangeFetcher memory_fetcher(const std::vector<std::uint8_t>& blob, std::uint64_t* counter) {
  return [&blob, counter](std::uint64_t offset,
                          std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    if (offset > blob.size() || length > blob.size() - offset) {
      return make_error(ErrorCode::kCorruptInput, "range outside the blob");
    }
    if (counter != nullptr) *counter += length;
    return std::vector<std::uint8_t>(blob.begin() + static_cast<std::ptrdiff_t>(offset),
                                     blob.begin() + static_cast<std::ptrdiff_t>(offset + length));
  };
}

TEST(ChunkedReader, EveryFixtureLayerVerifiesAndRebuildsItsDiffId) {
  const auto layers = load_chunked_fixtures();
  ASSERT_EQ(layers.size(), 8U);
  for (const FixtureLayer& layer : layers) {
    SCOPED_TRACE(layer.key);
    auto report = verify_chunked_blob(layer.blob, layer.annotations, layer.diff_id);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    EXPECT_EQ(report->diff_id, layer.diff_id);
    EXPECT_GT(report->entries_checked, 10U);
  }
}

TEST(ChunkedReader, FormatsAndTocCountsMatchTheReference) {
  const auto expected_bytes = test::read_file(test::testdata_path("oci/expected.json"));
  const auto expected = nlohmann::json::parse(expected_bytes.begin(), expected_bytes.end());
  for (const FixtureLayer& layer : load_chunked_fixtures()) {
    SCOPED_TRACE(layer.key);
    auto toc =
        read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob, nullptr));
    ASSERT_TRUE(toc.ok()) << toc.error().to_string();
    EXPECT_TRUE(toc->toc_digest_verified);
    const auto& reference = expected[layer.key];
    if (reference.contains("toc_entries")) {
      EXPECT_EQ(toc->toc.entries.size(), reference["toc_entries"].get<std::size_t>());
    }
    if (reference.contains("tarSplitDigest") && reference["tarSplitDigest"].is_string() &&
        !reference["tarSplitDigest"].get<std::string>().empty()) {
      ASSERT_TRUE(toc->toc.tar_split_digest.has_value());
      EXPECT_EQ(toc->toc.tar_split_digest->to_string(), reference["tarSplitDigest"]);
      EXPECT_EQ(toc->format, ChunkedFormat::kZstdChunked);
      EXPECT_FALSE(toc->tar_split.empty());
    }
    if (reference.contains("estargz_toc_offset")) {
      EXPECT_EQ(toc->toc_offset, reference["estargz_toc_offset"].get<std::uint64_t>());
      EXPECT_EQ(toc->format, ChunkedFormat::kEstargz);
    }
    if (reference.contains("zstd_chunked_footer")) {
      const auto& fields = reference["zstd_chunked_footer"]["fields_le_u64"];
      auto footer = parse_zstd_chunked_footer(layer.blob);
      ASSERT_TRUE(footer.ok()) << footer.error().to_string();
      EXPECT_EQ(footer->toc_offset, fields[0].get<std::uint64_t>());
      EXPECT_EQ(footer->toc_compressed_size, fields[1].get<std::uint64_t>());
      EXPECT_EQ(footer->toc_size, fields[2].get<std::uint64_t>());
    }
  }
}

TEST(ChunkedReader, TarSplitCrcMatchesTheReferenceWriter) {
  // "./bin/tool.sh" (20 bytes) has payload z9g6sYgSixw= in the c/storage fixture's tar-split.
  for (const FixtureLayer& layer : load_chunked_fixtures()) {
    if (layer.key != "zstd-chunked-cstorage-v2format:v1") continue;
    auto toc =
        read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob, nullptr));
    ASSERT_TRUE(toc.ok());
    const std::string text(toc->tar_split.begin(), toc->tar_split.end());
    EXPECT_NE(text.find("\"name\":\"./bin/tool.sh\",\"size\":20,\"payload\":\"z9g6sYgSixw=\""),
              std::string::npos);
  }
}

// c/storage writes the TOC and the tar-split frames back to back: one request brings both, and
// what the layer reports as metadata is exactly what was fetched.
TEST(ChunkedReader, TocAndTarSplitComeInOneRequest) {
  std::size_t checked = 0;
  for (const FixtureLayer& layer : load_chunked_fixtures()) {
    if (!layer.key.starts_with("zstd-chunked-cstorage-v2format")) continue;
    std::uint64_t bytes = 0;
    std::size_t requests = 0;
    const RangeFetcher inner = memory_fetcher(layer.blob, &bytes);
    auto toc = read_chunked_toc(layer.blob.size(), layer.annotations,
                                [&](std::uint64_t offset, std::uint64_t length) {
                                  ++requests;
                                  return inner(offset, length);
                                });
    ASSERT_TRUE(toc.ok()) << toc.error().to_string();
    EXPECT_EQ(requests, 1U) << layer.key;
    EXPECT_EQ(toc->metadata_bytes, bytes) << layer.key;
    EXPECT_FALSE(toc->tar_split.empty());
    ++checked;
  }
  EXPECT_EQ(checked, 2U);
}

// Go's hash/crc64 with the ISO table: the catalogued check value of "123456789", and chaining
// over pieces (how the streaming writers feed a body) equals one pass, also across the
// 8/16/64-byte boundaries where a folding implementation changes method.
TEST(ChunkedReader, Crc64IsoMatchesGoAndChains) {
  const std::string check = "123456789";
  EXPECT_EQ(detail::crc64_iso(
                0, ByteSpan(reinterpret_cast<const std::uint8_t*>(check.data()), check.size())),
            0xb90956c775a41001ULL);
  EXPECT_EQ(detail::crc64_iso(0, ByteSpan()), 0U);
  const std::vector<std::uint8_t> data = test::splitmix64_bytes(7, 4099);
  const std::uint64_t whole = detail::crc64_iso(0, data);
  for (std::size_t cut : {1U, 7U, 8U, 15U, 16U, 63U, 64U, 65U, 2048U, 4098U}) {
    const ByteSpan all(data);
    EXPECT_EQ(detail::crc64_iso(detail::crc64_iso(0, all.first(cut)), all.subspan(cut)), whole)
        << "cut at " << cut;
  }
}

TEST(ChunkedReader, WrongTocDigestAnnotationIsRefused) {
  for (FixtureLayer layer : load_chunked_fixtures()) {
    SCOPED_TRACE(layer.key);
    for (auto& [key, value] : layer.annotations) {
      if (key.ends_with("manifest-checksum") || key.ends_with("toc.digest")) {
        value = "sha256:" + std::string(64, '0');
      }
    }
    auto report = verify_chunked_blob(layer.blob, layer.annotations, layer.diff_id);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.error().code, ErrorCode::kDigestMismatch) << report.error().to_string();
  }
}

TEST(ChunkedReader, PositionsOutsideTheBlobAndHugeTocsAreRefused) {
  for (FixtureLayer layer : load_chunked_fixtures()) {
    if (!layer.annotations.contains(std::string(kZstdChunkedManifestPositionKey))) continue;
    SCOPED_TRACE(layer.key);
    auto outside = layer.annotations;
    outside[std::string(kZstdChunkedManifestPositionKey)] =
        std::to_string(layer.blob.size() - 10) + ":100:100:1";
    auto report = verify_chunked_blob(layer.blob, outside, layer.diff_id);
    ASSERT_FALSE(report.ok());
    EXPECT_NE(report.error().message.find("outside"), std::string::npos)
        << report.error().to_string();

    auto huge = layer.annotations;
    huge[std::string(kZstdChunkedManifestPositionKey)] = "100:100:999999999999:1";
    auto capped = read_chunked_toc(layer.blob.size(), huge, memory_fetcher(layer.blob, nullptr));
    ASSERT_FALSE(capped.ok());
    EXPECT_EQ(capped.error().code, ErrorCode::kLimitExceeded);
  }
}

TEST(ChunkedReader, ContentThatDisagreesWithTheTocIsRefused) {
  for (FixtureLayer layer : load_chunked_fixtures()) {
    if (layer.key != "zstd-chunked-cstorage-v2format:v1") continue;
    auto toc =
        read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob, nullptr));
    ASSERT_TRUE(toc.ok());
    // A TOC that renames a file: the rebuilt tar (and tar-split) say otherwise.
    auto renamed = *toc;
    for (TocEntry& entry : renamed.toc.entries) {
      if (entry.name == "./etc/hello.txt") entry.name = "./etc/evil.txt";
    }
    auto plan = plan_pull(renamed, {});
    ASSERT_TRUE(plan.ok());
    std::vector<std::uint8_t> tar;
    auto rebuilt = rebuild_chunked_layer(renamed, *plan, memory_fetcher(layer.blob, nullptr), {},
                                         layer.diff_id, tar);
    ASSERT_FALSE(rebuilt.ok());
    EXPECT_NE(rebuilt.error().message.find("name"), std::string::npos);
    // A chunk digest that is wrong.
    auto wrong = *toc;
    for (TocEntry& entry : wrong.toc.entries) {
      if (entry.type == "chunk") {
        entry.chunk_digest = sha256_of(ByteSpan());
        break;
      }
    }
    auto wrong_plan = plan_pull(wrong, {});
    ASSERT_TRUE(wrong_plan.ok());
    auto bad = rebuild_chunked_layer(wrong, *wrong_plan, memory_fetcher(layer.blob, nullptr), {},
                                     layer.diff_id, tar);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::kDigestMismatch);
    // A tar-split that describes another tar.
    auto split = *toc;
    split.tar_split.resize(split.tar_split.size() / 2);
    auto split_plan = plan_pull(split, {});
    ASSERT_TRUE(split_plan.ok());
    auto split_bad = rebuild_chunked_layer(split, *split_plan, memory_fetcher(layer.blob, nullptr),
                                           {}, layer.diff_id, tar);
    ASSERT_FALSE(split_bad.ok());
  }
}

TEST(ChunkedReader, PlanWithV1PresentFetchesOnlyTheChangedChunks) {
  // The c/storage fixture: v2 differs from v1 by one chunk of random-hex.txt and hello.txt.
  const auto layers = load_chunked_fixtures();
  const FixtureLayer* v1 = nullptr;
  const FixtureLayer* v2 = nullptr;
  for (const FixtureLayer& layer : layers) {
    if (layer.key == "zstd-chunked-cstorage-v2format:v1") v1 = &layer;
    if (layer.key == "zstd-chunked-cstorage-v2format:v2") v2 = &layer;
  }
  ASSERT_NE(v1, nullptr);
  ASSERT_NE(v2, nullptr);
  auto toc1 = read_chunked_toc(v1->blob.size(), v1->annotations, memory_fetcher(v1->blob, nullptr));
  auto toc2 = read_chunked_toc(v2->blob.size(), v2->annotations, memory_fetcher(v2->blob, nullptr));
  ASSERT_TRUE(toc1.ok() && toc2.ok());
  std::map<Digest, std::vector<std::uint8_t>> have;
  {
    auto plan = plan_pull(*toc1, {});
    ASSERT_TRUE(plan.ok());
    std::vector<std::uint8_t> tar;
    ASSERT_TRUE(
        rebuild_chunked_layer(*toc1, *plan, memory_fetcher(v1->blob, nullptr), {}, v1->diff_id, tar)
            .ok());
    // The plan only asks whether a digest is present.
    for (const BlobPiece& piece : plan->pieces) {
      if (piece.is_chunk) have[piece.digest] = {};
    }
  }
  PullPlanOptions options;
  options.gap_bridge_bytes = 1024;
  auto plan = plan_pull(
      *toc2, [&](const Digest& d) { return have.contains(d); }, options);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->missing_chunks, 2U);  // hello.txt and the changed random-hex.txt chunk
  EXPECT_LT(plan->fetch_bytes, v2->blob.size() / 10);
}

}  // namespace
}  // namespace strata::fastpull
