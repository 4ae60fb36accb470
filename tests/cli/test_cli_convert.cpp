// `strata convert`, `pull-plan` and `pull` end to end on the reference gzip images
// (shared/testdata/oci/layouts/gzip-v1, gzip-v2). Checked against independent references: the
// config diff_ids (made by GNU tar + sha256sum), the `zstd` and `tar` command-line tools, and the
// tar-split and TOC that upstream containers/storage wrote for the same tar
// (zstd-chunked-cstorage-v2format), which strata's must equal entry for entry.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/chunked/toc_json.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata::fastpull {
namespace {

namespace fs = std::filesystem;

class ConvertCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("strata_convert_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string path(const std::string& name) const { return (root_ / name).string(); }
  static std::string layout(const std::string& name) {
    return test::testdata_path("oci/layouts/" + name);
  }
  fs::path root_;
};

struct LoadedLayer {
  oci::Descriptor descriptor;
  Digest diff_id;
  std::string blob_path;
};

LoadedLayer load_layer(const std::string& directory, const std::string& tag) {
  auto layout = oci::OciLayout::open(directory);
  EXPECT_TRUE(layout.ok());
  auto image = layout->load_image(tag);
  EXPECT_TRUE(image.ok()) << image.error().to_string();
  return LoadedLayer{image->manifest.layers.at(0), image->config.diff_ids.at(0),
                     layout->blob_path(image->manifest.layers.at(0).digest)};
}

Result<ChunkedLayerToc> read_toc(const LoadedLayer& layer, const std::vector<std::uint8_t>& blob) {
  return read_chunked_toc(
      blob.size(), layer.descriptor.annotations, [&](std::uint64_t offset, std::uint64_t length) {
        return Result<std::vector<std::uint8_t>>(
            std::vector<std::uint8_t>(blob.begin() + static_cast<std::ptrdiff_t>(offset),
                                      blob.begin() + static_cast<std::ptrdiff_t>(offset + length)));
      });
}

TEST_F(ConvertCli, EveryTargetKeepsTheDiffIdsOfEveryGzipImage) {
  for (const auto& [name, tag] : {std::pair{"gzip-v1", "v1"}, std::pair{"gzip-v2", "v2"}}) {
    const LoadedLayer source = load_layer(layout(name), tag);
    for (const std::string target : {"tar", "gzip", "zstd", "zstd:chunked", "zstd:chunked-v1"}) {
      SCOPED_TRACE(std::string(name) + " -> " + target);
      const std::string out =
          path(std::string(name) + "-" + target.substr(0, 4) + std::to_string(target.size()));
      const auto result = test::run_tool("convert " + layout(name) + ":" + tag + " --to " + target +
                                         " --layout " + out + " --tag t --store " + path("store"));
      ASSERT_EQ(result.exit_code, 0) << "convert " << result.err;
      auto converted = oci::OciLayout::open(out);
      ASSERT_TRUE(converted.ok());
      auto image = converted->load_image("t");
      ASSERT_TRUE(image.ok()) << image.error().to_string();
      ASSERT_EQ(image->config.diff_ids.size(), 1U);
      EXPECT_EQ(image->config.diff_ids[0], source.diff_id);
      const auto verified = converted->verify_image("t");
      EXPECT_TRUE(verified.ok()) << verified.error().to_string();
    }
  }
}

TEST_F(ConvertCli, ZstdChunkedBlobIsReadByZstdAndTarAndMatchesUpstreamTarSplitAndToc) {
  ASSERT_EQ(test::run_tool("convert " + layout("gzip-v1") + ":v1 --to zstd:chunked --layout " +
                           path("out") + " --tag v1")
                .exit_code,
            0);
  const LoadedLayer layer = load_layer(path("out"), "v1");
  const LoadedLayer reference_layer = load_layer(layout("zstd-chunked-cstorage-v2format"), "v1");
  EXPECT_EQ(layer.descriptor.media_type, oci::kMediaTypeLayerTarZstd);
  // Independent tools: zstd skips the skippable frames and yields the exact tar.
  EXPECT_EQ(test::shell_output("zstd -dc " + layer.blob_path + " | sha256sum | cut -c1-64"),
            layer.diff_id.hex() + "\n");
  EXPECT_NE(test::shell_output("zstd -dc " + layer.blob_path + " | tar -t").find("./etc/hello.txt"),
            std::string::npos);

  const auto blob = test::read_file(layer.blob_path);
  auto verified = verify_chunked_blob(blob, layer.descriptor.annotations, layer.diff_id);
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();

  auto ours = read_toc(layer, blob);
  ASSERT_TRUE(ours.ok()) << ours.error().to_string();
  const auto reference_blob = test::read_file(reference_layer.blob_path);
  auto reference = read_toc(reference_layer, reference_blob);
  ASSERT_TRUE(reference.ok());
  // The tar-split of the same tar must be what upstream's writer produced, byte for byte.
  EXPECT_EQ(ours->tar_split, reference->tar_split);
  // TOC metadata (chunking aside) must agree with upstream's, entry for entry.
  std::vector<const TocEntry*> a;
  std::vector<const TocEntry*> b;
  for (const auto& e : ours->toc.entries) {
    if (e.type != "chunk") a.push_back(&e);
  }
  for (const auto& e : reference->toc.entries) {
    if (e.type != "chunk") b.push_back(&e);
  }
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(b[i]->name);
    EXPECT_EQ(a[i]->type, b[i]->type);
    EXPECT_EQ(a[i]->name, b[i]->name);
    EXPECT_EQ(a[i]->link_name, b[i]->link_name);
    EXPECT_EQ(a[i]->mode, b[i]->mode);
    EXPECT_EQ(a[i]->size, b[i]->size);
    EXPECT_EQ(a[i]->modtime, b[i]->modtime);
    EXPECT_EQ(a[i]->digest, b[i]->digest);
  }
  // The footer agrees with the annotations.
  auto footer = parse_zstd_chunked_footer(blob);
  ASSERT_TRUE(footer.ok());
  EXPECT_EQ(footer->format, ChunkedFormat::kZstdChunked);
  EXPECT_EQ(layer.descriptor.annotations.at(std::string(kZstdChunkedManifestPositionKey)),
            std::to_string(footer->toc_offset) + ":" + std::to_string(footer->toc_compressed_size) +
                ":" + std::to_string(footer->toc_size) + ":1");
}

TEST_F(ConvertCli, OldVariantHasTheOldFooterAndKeysAndNoTarSplit) {
  ASSERT_EQ(test::run_tool("convert " + layout("gzip-v1") + ":v1 --to zstd:chunked-v1 --layout " +
                           path("out") + " --tag v1")
                .exit_code,
            0);
  const LoadedLayer layer = load_layer(path("out"), "v1");
  EXPECT_TRUE(
      layer.descriptor.annotations.contains(std::string(kZstdChunkedV1ManifestPositionKey)));
  EXPECT_FALSE(layer.descriptor.annotations.contains(std::string(kZstdChunkedManifestPositionKey)));
  const auto blob = test::read_file(layer.blob_path);
  auto footer = parse_zstd_chunked_footer(blob);
  ASSERT_TRUE(footer.ok());
  EXPECT_EQ(footer->format, ChunkedFormat::kZstdChunkedV1);
  auto toc = read_toc(layer, blob);
  ASSERT_TRUE(toc.ok());
  EXPECT_TRUE(toc->tar_split.empty());
  EXPECT_FALSE(toc->toc.tar_split_digest.has_value());
  EXPECT_TRUE(verify_chunked_blob(blob, layer.descriptor.annotations, layer.diff_id).ok());
}

// --to zstd --store-frames: the store's chunk frames reused, no skippable frames, and the plain
// `zstd` tool decodes the blob to the exact tar (sha256sum of its output = the config diff_id).
TEST_F(ConvertCli, ZstdFromStoreFramesIsAPlainZstdLayerOfTheSameTar) {
  const auto result = test::run_tool("convert " + layout("gzip-v2") +
                                     ":v2 --to zstd --store-frames --json --layout " + path("out") +
                                     " --tag v2 --store " + path("store"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto report = nlohmann::json::parse(result.out);
  ASSERT_EQ(report["layers"].size(), 1U);
  EXPECT_GT(report["layers"][0]["reused_frames"].get<std::uint64_t>(), 0U);
  const LoadedLayer layer = load_layer(path("out"), "v2");
  EXPECT_EQ(layer.descriptor.media_type, oci::kMediaTypeLayerTarZstd);
  EXPECT_TRUE(layer.descriptor.annotations.empty());
  const auto blob = test::read_file(layer.blob_path);
  EXPECT_FALSE(parse_zstd_chunked_footer(blob).ok());
  const std::string decoded_sha =
      test::shell_output("zstd -dc " + layer.blob_path + " | sha256sum | cut -c1-64");
  EXPECT_EQ("sha256:" + decoded_sha.substr(0, 64), layer.diff_id.to_string());
  EXPECT_EQ(layer.diff_id, load_layer(layout("gzip-v2"), "v2").diff_id);
  // No skippable frame anywhere: `zstd -l` lists only regular frames.
  EXPECT_EQ(test::shell_output("zstd -lv " + layer.blob_path + " | grep -ci skippable"), "0\n");
}

TEST_F(ConvertCli, ConversionIsDeterministic) {
  for (const std::string out : {"a", "b"}) {
    ASSERT_EQ(
        test::run_tool("convert " + layout("gzip-v2") + ":v2 --layout " + path(out) + " --tag v2")
            .exit_code,
        0);
  }
  EXPECT_EQ(load_layer(path("a"), "v2").descriptor.digest,
            load_layer(path("b"), "v2").descriptor.digest);
}

// Plain targets are written from the tar stream while it is ingested; exporting the recipe
// from the store afterwards (--from-store) must give the very same blob, and so must any number
// of threads (zstd's multi-threaded format does not depend on the worker count).
TEST_F(ConvertCli, PlainTargetsWrittenWhileIngestingEqualTheStoreExport) {
  for (const std::string target : {"tar", "gzip", "zstd"}) {
    SCOPED_TRACE(target);
    std::vector<std::string> digests;
    for (const std::string options : {"--threads 1", "--threads 2", "--from-store --threads 2"}) {
      const std::string out = path(target + std::to_string(digests.size()));
      const auto result =
          test::run_tool("convert " + layout("gzip-v2") + ":v2 --to " + target + " --layout " +
                         out + " --tag t --store " + path("store-" + target) + " " + options);
      ASSERT_EQ(result.exit_code, 0) << options << ": " << result.err;
      const LoadedLayer layer = load_layer(out, "t");
      digests.push_back(layer.descriptor.digest.to_string());
      EXPECT_EQ(sha256_of(test::read_file(layer.blob_path)), layer.descriptor.digest);
    }
    EXPECT_EQ(digests[0], digests[1]);
    EXPECT_EQ(digests[1], digests[2]);
  }
  // The zstd blob decodes, with the zstd tool, to the config's tar.
  const LoadedLayer zstd_layer = load_layer(path("zstd0"), "t");
  EXPECT_EQ(test::shell_output("zstd -dc " + zstd_layer.blob_path + " | sha256sum | cut -c1-64"),
            zstd_layer.diff_id.hex() + "\n");
}

// Written from the store (--from-store, and eStargz always), a chunked layer is read ahead by
// worker threads; a damaged pack record must still stop the conversion with an error naming the
// chunk, and leave no tag behind. Written while ingesting, zstd:chunked takes the bytes from the
// source: a damaged stored frame is not copied, the writer compresses that chunk itself.
TEST_F(ConvertCli, DamagedStoreStopsAConversionFromTheStoreOnly) {
  const std::string store = path("store");
  ASSERT_EQ(test::run_tool("convert " + layout("gzip-v1") + ":v1 --to zstd:chunked --layout " +
                           path("first") + " --tag t --store " + store)
                .exit_code,
            0);
  std::vector<fs::path> packs;
  for (const auto& entry : fs::recursive_directory_iterator(store)) {
    if (entry.is_regular_file() && entry.path().parent_path().filename() == "packs") {
      packs.push_back(entry.path());
    }
  }
  ASSERT_FALSE(packs.empty());
  for (const fs::path& pack : packs) {
    auto bytes = test::read_file(pack.string());
    for (std::size_t at = 4096; at < bytes.size(); at += 8192) bytes[at] ^= 0x5A;
    std::ofstream(pack, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  for (const std::string options : {"--to zstd:chunked --from-store", "--to estargz"}) {
    SCOPED_TRACE(options);
    const std::string out = path("second-" + std::to_string(options.size()));
    const auto result = test::run_tool("convert " + layout("gzip-v1") + ":v1 " + options +
                                       " --layout " + out + " --tag t --store " + store);
    EXPECT_NE(result.exit_code, 0);
    EXPECT_NE(result.err.find("chunk sha256:"), std::string::npos) << result.err;
    auto converted = oci::OciLayout::open(out);
    if (converted.ok()) {
      EXPECT_FALSE(converted->load_image("t").ok());
    }
  }
  const auto result =
      test::run_tool("convert " + layout("gzip-v1") + ":v1 --to zstd:chunked --layout " +
                     path("third") + " --tag t --store " + store);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const LoadedLayer layer = load_layer(path("third"), "t");
  EXPECT_EQ(test::shell_output("zstd -dc " + layer.blob_path + " | sha256sum | cut -c1-64"),
            layer.diff_id.hex() + "\n");
  const auto blob = test::read_file(layer.blob_path);
  auto verified = verify_chunked_blob(blob, layer.descriptor.annotations, layer.diff_id);
  EXPECT_TRUE(verified.ok()) << verified.error().to_string();
  // And the same bytes as from the intact first conversion.
  EXPECT_EQ(layer.descriptor.digest, load_layer(path("first"), "t").descriptor.digest);
}

// zstd:chunked written while ingesting (the writer fed chunk by chunk by the ingest) must be the
// very blob written from the store's recipe afterwards, into an empty store and a full one, and
// with frames of a plain zstd layer (--store-frames) too.
TEST_F(ConvertCli, ChunkedTargetsWrittenWhileIngestingEqualTheStoreExport) {
  for (const std::string target : {"zstd:chunked", "zstd:chunked-v1", "zstd --store-frames"}) {
    SCOPED_TRACE(target);
    const std::string store = path("store-" + std::to_string(target.size()));
    std::vector<Digest> digests;
    std::vector<std::uint64_t> reused;
    for (const std::string options : {"", "", " --from-store"}) {  // cold, warm, from the store
      const std::string out =
          path("out" + std::to_string(digests.size()) + "-" + std::to_string(target.size()));
      const auto result =
          test::run_tool("convert " + layout("gzip-v2") + ":v2 --to " + target + options +
                         " --layout " + out + " --tag t --json --store " + store);
      ASSERT_EQ(result.exit_code, 0) << result.err;
      const auto report = nlohmann::json::parse(result.out);
      reused.push_back(report["layers"][0]["reused_frames"].get<std::uint64_t>());
      const LoadedLayer layer = load_layer(out, "t");
      digests.push_back(layer.descriptor.digest);
      EXPECT_EQ(sha256_of(test::read_file(layer.blob_path)), layer.descriptor.digest);
    }
    EXPECT_EQ(digests[0], digests[1]);
    EXPECT_EQ(digests[1], digests[2]);
    // Cold, the frames the ingest just made are the ones written: nothing compressed twice.
    EXPECT_GT(reused[0], 0U);
    EXPECT_EQ(reused[0], reused[1]);
    EXPECT_EQ(reused[1], reused[2]);
  }
}

TEST_F(ConvertCli, PullOfV2WithV1InTheStoreFetchesOnlyTheChangedChunks) {
  ASSERT_EQ(test::run_tool("convert " + layout("gzip-v1") + ":v1 --layout " + path("out") +
                           " --tag v1 --store " + path("store"))
                .exit_code,
            0);
  ASSERT_EQ(test::run_tool("convert " + layout("gzip-v2") + ":v2 --layout " + path("out") +
                           " --tag v2 --store " + path("other"))
                .exit_code,
            0);
  const auto plan =
      test::run_tool("pull-plan " + path("out") + ":v2 --store " + path("store") + " --json");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto json = nlohmann::json::parse(plan.out);
  const auto& layer = json["layers"][0];
  EXPECT_EQ(layer["chunked"], true);
  // hello.txt and the one changed FastCDC chunk of random-hex.txt.
  EXPECT_EQ(layer["missing_chunks"], 2);
  const LoadedLayer v2 = load_layer(path("out"), "v2");
  EXPECT_LT(layer["total_bytes"].get<std::uint64_t>(), v2.descriptor.size / 10);

  const auto pull =
      test::run_tool("pull --from " + path("out") + ":v2 --store " + path("store") + " --json");
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(nlohmann::json::parse(pull.out)["bytes_read"], layer["total_bytes"]);
  const auto again = nlohmann::json::parse(
      test::run_tool("pull-plan " + path("out") + ":v2 --store " + path("store") + " --json").out);
  EXPECT_EQ(again["layers"][0]["fetch_bytes"], 0);
  EXPECT_EQ(again["layers"][0]["missing_chunks"], 0);
}

TEST_F(ConvertCli, PullRefusesATamperedChunk) {
  ASSERT_EQ(
      test::run_tool("convert " + layout("gzip-v1") + ":v1 --layout " + path("out") + " --tag v1")
          .exit_code,
      0);
  const LoadedLayer layer = load_layer(path("out"), "v1");
  auto blob = test::read_file(layer.blob_path);
  auto toc = read_toc(layer, blob);
  ASSERT_TRUE(toc.ok());
  // Replace a chunk's frame by a valid frame of other bytes: decodes fine, digest is wrong.
  auto plan = plan_pull(*toc, {});
  ASSERT_TRUE(plan.ok());
  const BlobPiece* victim = nullptr;
  for (const auto& piece : plan->pieces) {
    if (piece.is_chunk && piece.end - piece.offset > 64) victim = &piece;
  }
  ASSERT_NE(victim, nullptr);
  blob[victim->offset + 40] ^= 0x5a;
  auto bad = rebuild_chunked_layer(
      *toc, *plan,
      [&](std::uint64_t offset, std::uint64_t length) {
        return Result<std::vector<std::uint8_t>>(
            std::vector<std::uint8_t>(blob.begin() + static_cast<std::ptrdiff_t>(offset),
                                      blob.begin() + static_cast<std::ptrdiff_t>(offset + length)));
      },
      {}, layer.diff_id, *std::make_unique<std::vector<std::uint8_t>>());
  EXPECT_FALSE(bad.ok());
}

TEST_F(ConvertCli, StoreFramesWithAnotherTargetIsAUsageError) {
  for (const std::string target : {"zstd:chunked", "gzip", "estargz"}) {
    SCOPED_TRACE(target);
    const auto result = test::run_tool("convert " + layout("gzip-v1") + ":v1 --to " + target +
                                       " --store-frames --layout " + path("out") + " --tag v1");
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_NE(result.err.find("--store-frames applies to --to zstd only, not --to '" + target),
              std::string::npos)
        << result.err;
    EXPECT_FALSE(fs::exists(path("out")));
  }
}

TEST_F(ConvertCli, UnknownTargetIsAUsageError) {
  const auto result = test::run_tool("convert " + layout("gzip-v1") + ":v1 --to lz4 --layout " +
                                     path("out") + " --tag v1");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("unknown target"), std::string::npos);
}

}  // namespace
}  // namespace strata::fastpull
