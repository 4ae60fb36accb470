// `strata build --format zstd:chunked|zstd:chunked-v1|estargz` end to end (project issue 6),
// checked against independent tools: `zstd -d` / `gzip -d` and `tar -t` read every blob, and
// sha256sum of the decompressed blob is the config's diff_id (for zstd:chunked also the plain
// tar's, which `--format tar` writes as is); strata's TOC reader then verifies every chunk. Two
// builds give the same blobs, and the layer equals what `convert` makes of the gzip build of the
// same tree (the same cuts as an ingest, the same frames): with or without --store.
#include <gtest/gtest.h>

#include <filesystem>

#include "strata/fastpull.h"
#include "strata/oci.h"
#include "strata/store.h"
#include "tests/cli_build_helpers.h"

namespace strata::fastpull {
namespace {

using test::TempDir;

struct BuiltLayer {
  oci::Descriptor descriptor;
  Digest diff_id;  // from the config
  std::string blob_path;
};

BuiltLayer load_layer(const std::string& directory) {
  auto layout = oci::OciLayout::open(directory);
  EXPECT_TRUE(layout.ok());
  auto image = layout->load_image("t");
  EXPECT_TRUE(image.ok()) << image.error().to_string();
  return BuiltLayer{image->manifest.layers.at(0), image->config.diff_ids.at(0),
                    layout->blob_path(image->manifest.layers.at(0).digest)};
}

nlohmann::json build(const TempDir& temp, const std::string& format, const std::string& layout,
                     const std::string& extra = "") {
  return test::run_tool_json("build " + (temp / "src") + " --layout " + (temp / layout) +
                             " --tag t --json --format " + format + extra);
}

const std::vector<std::string>& chunked_formats() {
  static const std::vector<std::string> formats = {"zstd:chunked", "zstd:chunked-v1", "estargz"};
  return formats;
}

TEST(CliBuildChunked, EveryFormatIsReadByStandardToolsAndVerifiedChunkByChunk) {
  TempDir temp;
  test::make_build_source(temp / "src");
  const auto plain = build(temp, "tar", "plain");
  for (const std::string& format : chunked_formats()) {
    SCOPED_TRACE(format);
    const std::string out = "out-" + std::to_string(format.size());
    const auto report = build(temp, format, out);
    const BuiltLayer layer = load_layer(temp / out);
    EXPECT_EQ(report["layers"][0]["diff_id"], layer.diff_id.to_string());
    EXPECT_EQ(report["layers"][0]["digest"], layer.descriptor.digest.to_string());
    const bool estargz = format == "estargz";
    const std::string decompress = (estargz ? "gzip -dc " : "zstd -qdc ") + layer.blob_path;
    EXPECT_EQ(layer.descriptor.media_type,
              estargz ? oci::kMediaTypeLayerTarGzip : oci::kMediaTypeLayerTarZstd);
    const auto& annotations = layer.descriptor.annotations;
    if (format == "zstd:chunked") {
      EXPECT_TRUE(annotations.contains(std::string(kZstdChunkedManifestChecksumKey)));
      EXPECT_TRUE(annotations.contains(std::string(kZstdChunkedTarSplitPositionKey)));
    } else if (format == "zstd:chunked-v1") {
      EXPECT_TRUE(annotations.contains(std::string(kZstdChunkedV1ManifestChecksumKey)));
    } else {
      EXPECT_TRUE(annotations.contains(std::string(kEstargzTocDigestKey)));
      EXPECT_EQ(annotations.at(std::string(kEstargzUncompressedSizeKey)),
                test::shell_output(decompress + " | wc -c | tr -d ' \\n'"));
    }

    const std::string listing = test::shell_output(decompress + " | tar -t");
    EXPECT_NE(listing.find("etc/hello.txt\n"), std::string::npos) << listing;
    EXPECT_NE(listing.find("bin/data.bin\n"), std::string::npos) << listing;
    EXPECT_NE(listing.find("bin/hello\n"), std::string::npos) << listing;
    EXPECT_EQ(test::shell_output(decompress + " | sha256sum | cut -c1-64"),
              layer.diff_id.hex() + "\n");
    // zstd:chunked keeps the tar; eStargz adds its landmark and TOC entries (a new diff_id).
    EXPECT_EQ(layer.diff_id.to_string() == plain["layers"][0]["diff_id"], !estargz);

    auto verified =
        verify_chunked_blob(test::read_file(layer.blob_path), annotations, layer.diff_id);
    ASSERT_TRUE(verified.ok()) << verified.error().to_string();
    EXPECT_GE(verified->entries_checked, 4U);
    const auto inspected = test::run_tool_json("inspect " + (temp / out) + ":t --json --verify");
    EXPECT_EQ(inspected["verified"], true);
    // The tar spooled into the layout is gone.
    for (const auto& entry : std::filesystem::directory_iterator(temp / out)) {
      EXPECT_FALSE(entry.path().filename().string().starts_with(".strata-build-tar"))
          << entry.path();
    }
  }
}

TEST(CliBuildChunked, SameInputSameBlobs) {
  TempDir temp;
  test::make_build_source(temp / "src");
  for (const std::string& format : chunked_formats()) {
    SCOPED_TRACE(format);
    const std::string name = std::to_string(format.size());
    const auto first = build(temp, format, "a-" + name);
    const auto second = build(temp, format, "b-" + name);
    const auto stored = build(temp, format, "c-" + name, " --store " + (temp / "store"));
    EXPECT_EQ(first["manifest_digest"], second["manifest_digest"]);
    EXPECT_EQ(first["layers"][0]["digest"], second["layers"][0]["digest"]);
    // The store's frames are the ones the writer would make (zstd level 3, the same parameters).
    EXPECT_EQ(first["manifest_digest"], stored["manifest_digest"]);
  }
}

TEST(CliBuildChunked, EqualsConvertOfTheGzipBuild) {
  TempDir temp;
  test::make_build_source(temp / "src");
  build(temp, "gzip", "gzip");
  for (const std::string& format : chunked_formats()) {
    SCOPED_TRACE(format);
    const std::string name = std::to_string(format.size());
    const auto converted = test::run_tool("convert " + (temp / "gzip") + ":t --to " + format +
                                          " --layout " + (temp / ("conv-" + name)) + " --tag t");
    ASSERT_EQ(converted.exit_code, 0) << converted.err;
    build(temp, format, "built-" + name);
    const BuiltLayer from_convert = load_layer(temp / ("conv-" + name));
    const BuiltLayer from_build = load_layer(temp / ("built-" + name));
    EXPECT_EQ(from_build.diff_id, from_convert.diff_id);
    EXPECT_EQ(from_build.descriptor, from_convert.descriptor);
  }
}

TEST(CliBuildChunked, StoreGetsTheLayerAndGivesItsFrames) {
  TempDir temp;
  test::make_build_source(temp / "src");
  const auto plain = build(temp, "tar", "plain");
  const auto unstored = build(temp, "zstd:chunked", "unstored");
  EXPECT_EQ(unstored["layers"][0]["reused_frames"], 0);
  const auto stored = build(temp, "zstd:chunked", "stored", " --store " + (temp / "store"));
  // data.bin (200 kB of random bytes) is at least one chunk; hello.txt is one.
  EXPECT_GE(stored["layers"][0]["reused_frames"].get<std::uint64_t>(), 2U);
  auto store = ChunkStore::open(temp / "store");
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  auto diff_id = Digest::parse(plain["layers"][0]["diff_id"].get<std::string>());
  ASSERT_TRUE(diff_id.ok());
  EXPECT_TRUE(store->find_layer(*diff_id).ok());
}

TEST(CliBuildChunked, StoreWithAPlainFormatIsAUsageError) {
  TempDir temp;
  test::make_build_source(temp / "src");
  const auto result = test::run_tool("build " + (temp / "src") + " --layout " + (temp / "out") +
                                     " --tag t --format gzip --store " + (temp / "store"));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--store applies to --format zstd:chunked"), std::string::npos)
      << result.err;
  const auto unknown = test::run_tool("build " + (temp / "src") + " --layout " + (temp / "out") +
                                      " --tag t --format zstd:seekable");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("estargz"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace strata::fastpull
