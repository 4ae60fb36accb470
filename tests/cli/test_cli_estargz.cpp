// `strata convert --to estargz` on the reference gzip image, checked against independent
// references: `gzip -d` (the blob stays a valid tar+gzip whose tar hashes to the new config
// diff_id), `tar -t` (landmark first, stargz.index.json last), and the eStargz TOC that ctr-remote
// wrote for the same files (estargz-ctr-remote:v1), whose entries and file digests strata's must
// match; then strata's own reader verifies every chunk, and a pull plan finds the files it has.
#include <gtest/gtest.h>

#include <filesystem>

#include "strata/fastpull.h"
#include "strata/oci.h"
#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata::fastpull {
namespace {

namespace fs = std::filesystem;

struct Converted {
  oci::Descriptor layer;
  Digest diff_id;
  std::string blob_path;
};

Converted load(const std::string& directory, const std::string& tag) {
  auto layout = oci::OciLayout::open(directory);
  EXPECT_TRUE(layout.ok());
  auto image = layout->load_image(tag);
  EXPECT_TRUE(image.ok()) << image.error().to_string();
  return Converted{image->manifest.layers.at(0), image->config.diff_ids.at(0),
                   layout->blob_path(image->manifest.layers.at(0).digest)};
}

Toc toc_of(const Converted& layer) {
  const auto blob = test::read_file(layer.blob_path);
  auto toc = read_chunked_toc(
      blob.size(), layer.layer.annotations, [&](std::uint64_t offset, std::uint64_t length) {
        return Result<std::vector<std::uint8_t>>(
            std::vector<std::uint8_t>(blob.begin() + static_cast<std::ptrdiff_t>(offset),
                                      blob.begin() + static_cast<std::ptrdiff_t>(offset + length)));
      });
  EXPECT_TRUE(toc.ok()) << toc.error().to_string();
  return toc.ok() ? toc->toc : Toc{};
}

TEST(EstargzCli, ConvertedImageIsValidGzipAndMatchesCtrRemotesToc) {
  const fs::path root =
      fs::temp_directory_path() / ("strata_estargz_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string out = (root / "out").string();
  const auto result = test::run_tool("convert " + test::testdata_path("oci/layouts/gzip-v1") +
                                     ":v1 --to estargz --layout " + out + " --tag v1 --store " +
                                     (root / "store").string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const Converted layer = load(out, "v1");
  EXPECT_EQ(layer.layer.media_type, oci::kMediaTypeLayerTarGzip);
  EXPECT_EQ(test::shell_output("gzip -dc " + layer.blob_path + " | sha256sum | cut -c1-64"),
            layer.diff_id.hex() + "\n");
  const std::string listing = test::shell_output("gzip -dc " + layer.blob_path + " | tar -t");
  EXPECT_TRUE(listing.starts_with(".no.prefetch.landmark\n"));
  EXPECT_TRUE(listing.ends_with("stargz.index.json\n"));
  EXPECT_EQ(layer.layer.annotations.at(std::string(kEstargzUncompressedSizeKey)),
            test::shell_output("gzip -dc " + layer.blob_path + " | wc -c | tr -d ' \\n'"));

  const auto blob = test::read_file(layer.blob_path);
  auto verified = verify_chunked_blob(blob, layer.layer.annotations, layer.diff_id);
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();
  auto footer = parse_estargz_footer(ByteSpan(blob).last(kEstargzFooterBytes));
  ASSERT_TRUE(footer.ok());

  // Same entries, names, types, sizes and file digests as ctr-remote's TOC of the same tar.
  const Toc ours = toc_of(layer);
  const Toc reference = toc_of(load(test::testdata_path("oci/layouts/estargz-ctr-remote"), "v1"));
  std::vector<const TocEntry*> a;
  std::vector<const TocEntry*> b;
  for (const auto& e : ours.entries) {
    if (e.type != "chunk") a.push_back(&e);
  }
  for (const auto& e : reference.entries) {
    if (e.type != "chunk") b.push_back(&e);
  }
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(b[i]->name);
    EXPECT_EQ(a[i]->name, b[i]->name);
    EXPECT_EQ(a[i]->type, b[i]->type);
    EXPECT_EQ(a[i]->size, b[i]->size);
    EXPECT_EQ(a[i]->link_name, b[i]->link_name);
    EXPECT_EQ(a[i]->digest, b[i]->digest);
    EXPECT_EQ(a[i]->mode, b[i]->mode);
  }
  // The store holds the chunks: a plan needs only the pieces that carry tar headers.
  const auto plan = test::run_tool("pull-plan " + out + ":v1 --store " + (root / "store").string());
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  const auto pull =
      test::run_tool("pull --from " + out + ":v1 --store " + (root / "store").string());
  EXPECT_EQ(pull.exit_code, 0) << pull.err;
  fs::remove_all(root);
}

}  // namespace
}  // namespace strata::fastpull
