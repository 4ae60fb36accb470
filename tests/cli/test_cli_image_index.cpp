// `strata inspect` and `strata convert` on image indexes (project issue 5): two images made by
// `strata build` (linux/amd64 and linux/arm64/v8, sharing their bottom layer), an index of both,
// a nested index (image + attestation-like artifact inside an index), a flat index of all three,
// and hostile indexes: a cycle, nesting past the depth cap, fan-out past the node cap, a
// descriptor size mismatch, an unknown media type and a multi-image index without platforms.
// Digests of written blobs are checked with sha256sum, and the converted indexes are read back by
// skopeo when it is installed.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata {
namespace {

using test::TempDir;

nlohmann::json run_json(const std::string& arguments) {
  const auto result = test::run_tool(arguments);
  EXPECT_EQ(result.exit_code, 0) << arguments << ": " << result.err;
  const auto parsed = nlohmann::json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << result.out;
  return parsed;
}

oci::Platform platform(const std::string& os, const std::string& architecture,
                       const std::string& variant = "") {
  oci::Platform value;
  value.os = os;
  value.architecture = architecture;
  value.variant = variant;
  return value;
}

// Writes `index` as a blob of `layout` and returns its descriptor.
oci::Descriptor write_index_blob(const oci::OciLayout& layout, const oci::Index& index) {
  const std::string json = oci::write_index(index);
  auto written = layout.write_blob(index.media_type, test::bytes_of(json));
  EXPECT_TRUE(written.ok()) << written.error().to_string();
  return *written;
}

class ImageIndexCli : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string name : {"base", "amd", "arm"}) {
      std::filesystem::create_directories(temp_ / name);
      test::write_text(temp_ / (name + "/" + name + ".txt"), "the " + name + " layer\n");
    }
    test::write_bytes(temp_ / "base/shared.bin", test::splitmix64_bytes(5, 100000));
    ASSERT_EQ(test::run_tool("build " + (temp_ / "base") + " " + (temp_ / "amd") + " --layout " +
                             source() + " --tag amd64 --arch amd64")
                  .exit_code,
              0);
    ASSERT_EQ(test::run_tool("build " + (temp_ / "base") + " " + (temp_ / "arm") + " --layout " +
                             source() + " --tag arm64 --arch arm64 --variant v8")
                  .exit_code,
              0);
    auto layout = oci::OciLayout::open(source());
    ASSERT_TRUE(layout.ok());
    amd64_ = *layout->resolve("amd64");
    arm64_ = *layout->resolve("arm64");
    amd64_.annotations.clear();
    arm64_.annotations.clear();
    amd64_.platform = platform("linux", "amd64");
    arm64_.platform = platform("linux", "arm64", "v8");

    // An attestation-like artifact: its config is not an image config.
    const std::string statement = R"({"_type":"https://in-toto.io/Statement/v1"})";
    auto statement_blob =
        layout->write_blob("application/vnd.in-toto+json", test::bytes_of(statement));
    auto empty_config =
        layout->write_blob("application/vnd.oci.empty.v1+json", test::bytes_of("{}"));
    oci::Manifest attestation;
    attestation.artifact_type = "application/vnd.in-toto+json";
    attestation.config = *empty_config;
    attestation.layers = {*statement_blob};
    artifact_ = *layout->write_blob(oci::kMediaTypeImageManifest,
                                    test::bytes_of(oci::write_manifest(attestation)));
    artifact_.platform = platform("unknown", "unknown");
    artifact_.annotations["vnd.docker.reference.type"] = "attestation-manifest";

    oci::Index multi;
    multi.manifests = {amd64_, arm64_};
    multi.annotations["org.example.note"] = "two platforms";
    ASSERT_TRUE(layout->set_tag("multi", write_index_blob(*layout, multi)).ok());
    oci::Index flat;
    flat.manifests = {amd64_, arm64_, artifact_};
    ASSERT_TRUE(layout->set_tag("flat", write_index_blob(*layout, flat)).ok());

    oci::Index inner;
    inner.manifests = {arm64_, artifact_};
    oci::Descriptor inner_descriptor = write_index_blob(*layout, inner);
    inner_descriptor.annotations["org.example.level"] = "inner";
    oci::Index outer;
    outer.manifests = {amd64_, inner_descriptor};
    outer.annotations["org.example.note"] = "outer";
    ASSERT_TRUE(layout->set_tag("nested", write_index_blob(*layout, outer)).ok());
  }

  [[nodiscard]] std::string source() const { return temp_ / "src"; }

  TempDir temp_;
  oci::Descriptor amd64_;
  oci::Descriptor arm64_;
  oci::Descriptor artifact_;
};

std::vector<const oci::ImageTree*> images_of(const oci::ImageTree& node) {
  std::vector<const oci::ImageTree*> images;
  if (node.kind == oci::ImageTreeKind::kImage) images.push_back(&node);
  for (const auto& child : node.children) {
    for (const auto* image : images_of(child)) images.push_back(image);
  }
  return images;
}

// Every blob of a layout hashes to its name (checked by sha256sum, not by strata).
void expect_blobs_hash_to_their_names(const std::string& layout) {
  std::size_t blobs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(layout + "/blobs/sha256")) {
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(test::shell_output("sha256sum " + entry.path().string() + " | cut -c1-64"),
              name + "\n");
    ++blobs;
  }
  EXPECT_GT(blobs, 0U);
}

TEST_F(ImageIndexCli, InspectShowsTheNestedTree) {
  const auto report = run_json("inspect " + source() + ":nested --json --verify");
  EXPECT_EQ(report["kind"], "index");
  EXPECT_EQ(report["verified"], true);
  ASSERT_EQ(report["manifests"].size(), 2U);
  const auto& amd = report["manifests"][0];
  EXPECT_EQ(amd["kind"], "image");
  EXPECT_EQ(amd["digest"], amd64_.digest.to_string());
  EXPECT_EQ(amd["platform"]["architecture"], "amd64");
  const auto& inner = report["manifests"][1];
  EXPECT_EQ(inner["kind"], "index");
  EXPECT_EQ(inner["annotations"]["org.example.level"], "inner");
  ASSERT_EQ(inner["manifests"].size(), 2U);
  EXPECT_EQ(inner["manifests"][0]["platform"]["variant"], "v8");
  EXPECT_EQ(inner["manifests"][1]["kind"], "artifact");
  EXPECT_EQ(inner["manifests"][1]["config"]["mediaType"], "application/vnd.oci.empty.v1+json");

  // Each image's layers and diff_ids are what inspect shows for that image's own tag.
  const auto own_amd = run_json("inspect " + source() + ":amd64 --json");
  EXPECT_EQ(amd["layers"], own_amd["layers"]);
  const auto own_arm = run_json("inspect " + source() + ":arm64 --json");
  EXPECT_EQ(inner["manifests"][0]["layers"], own_arm["layers"]);
  EXPECT_EQ(amd["layers"][0]["digest"], own_arm["layers"][0]["digest"]);  // the shared layer

  const auto text = test::run_tool("inspect " + source() + ":nested");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("image linux/amd64"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("image linux/arm64/v8"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("artifact " + artifact_.digest.to_string()), std::string::npos);

  // --platform picks one image and reports it as a plain manifest tag is reported.
  auto picked = run_json("inspect " + source() + ":nested --platform linux/arm64 --json");
  picked.erase("reference");
  auto own = own_arm;
  own.erase("reference");
  EXPECT_EQ(picked, own);
  const auto missing = test::run_tool("inspect " + source() + ":multi --platform linux/s390x");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no image for platform linux/s390x"), std::string::npos)
      << missing.err;
}

TEST_F(ImageIndexCli, ConvertToZstdAndBackKeepsEveryDiffIdAndPlatform) {
  const std::string zstd_out = temp_ / "zstd";
  const auto report = run_json("convert " + source() + ":nested --to zstd --layout " + zstd_out +
                               " --tag t --json");
  // Three distinct layers (the shared base once), although the images list four.
  ASSERT_EQ(report["layers"].size(), 3U);
  std::set<std::string> sources;
  for (const auto& layer : report["layers"]) sources.insert(layer["source_digest"]);
  EXPECT_EQ(sources.size(), 3U);
  EXPECT_EQ(report["mediaType"], std::string(oci::kMediaTypeImageIndex));

  auto source_layout = oci::OciLayout::open(source());
  ASSERT_TRUE(source_layout.ok());
  auto source_tree = source_layout->load_tree("nested");
  ASSERT_TRUE(source_tree.ok()) << source_tree.error().to_string();
  std::map<std::string, std::vector<Digest>> source_diff_ids;
  for (const auto* image : images_of(*source_tree)) {
    source_diff_ids[oci::platform_name(oci::platform_of(*image))] = image->image->config.diff_ids;
  }
  ASSERT_EQ(source_diff_ids.size(), 2U);

  const std::string gzip_out = temp_ / "gzip";
  ASSERT_EQ(test::run_tool("convert " + zstd_out + ":t --to gzip --layout " + gzip_out + " --tag t")
                .exit_code,
            0);
  for (const auto& [out, media_type] : {std::pair{zstd_out, oci::kMediaTypeLayerTarZstd},
                                        std::pair{gzip_out, oci::kMediaTypeLayerTarGzip}}) {
    SCOPED_TRACE(out);
    auto layout = oci::OciLayout::open(out);
    ASSERT_TRUE(layout.ok());
    auto tree = layout->load_tree("t");
    ASSERT_TRUE(tree.ok()) << tree.error().to_string();
    ASSERT_EQ(tree->kind, oci::ImageTreeKind::kIndex);
    EXPECT_EQ(tree->index->annotations.at("org.example.note"), "outer");
    ASSERT_EQ(tree->children.size(), 2U);
    ASSERT_EQ(tree->children[1].kind, oci::ImageTreeKind::kIndex);
    EXPECT_EQ(tree->children[1].descriptor.annotations.at("org.example.level"), "inner");
    // The artifact is copied unchanged: same digest, platform and annotations.
    const oci::ImageTree& artifact = tree->children[1].children[1];
    EXPECT_EQ(artifact.kind, oci::ImageTreeKind::kArtifact);
    EXPECT_EQ(artifact.descriptor, artifact_);
    std::map<std::string, std::vector<Digest>> diff_ids;
    std::set<std::string> first_layers;
    for (const auto* image : images_of(*tree)) {
      diff_ids[oci::platform_name(oci::platform_of(*image))] = image->image->config.diff_ids;
      for (const auto& layer : image->image->manifest.layers)
        EXPECT_EQ(layer.media_type, media_type);
      first_layers.insert(image->image->manifest.layers.at(0).digest.to_string());
      EXPECT_TRUE(layout->verify_layers(*image->image).ok());
    }
    EXPECT_EQ(diff_ids, source_diff_ids);
    EXPECT_EQ(first_layers.size(), 1U);  // both images name the one converted shared layer
    expect_blobs_hash_to_their_names(out);
  }
  // 3 layers, 2 configs, 2 manifests, 2 indexes, and the artifact's manifest, config and layer.
  std::size_t blobs = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator(zstd_out + "/blobs/sha256")) {
    ++blobs;
  }
  EXPECT_EQ(blobs, 12U);
}

TEST_F(ImageIndexCli, ConvertWithPlatformWritesOneImageManifest) {
  const std::string out = temp_ / "one";
  const auto result = test::run_tool("convert " + source() + ":nested --platform linux/arm64/v8 " +
                                     "--to zstd:chunked --layout " + out + " --tag arm");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto layout = oci::OciLayout::open(out);
  ASSERT_TRUE(layout.ok());
  auto tagged = layout->resolve("arm");
  ASSERT_TRUE(tagged.ok());
  EXPECT_EQ(tagged->media_type, oci::kMediaTypeImageManifest);
  ASSERT_TRUE(tagged->platform.has_value());
  EXPECT_EQ(tagged->platform->variant, "v8");
  auto image = layout->load_image("arm");
  ASSERT_TRUE(image.ok()) << image.error().to_string();
  EXPECT_EQ(image->config.architecture, "arm64");
  EXPECT_TRUE(layout->verify_image("arm").ok());

  const auto malformed = test::run_tool("convert " + source() + ":multi --platform linux " +
                                        "--to zstd --layout " + (temp_ / "x") + " --tag x");
  EXPECT_EQ(malformed.exit_code, 2) << malformed.err;
  EXPECT_NE(malformed.err.find("is not os/arch"), std::string::npos) << malformed.err;
}

TEST_F(ImageIndexCli, SkopeoReadsAndCopiesTheConvertedIndex) {
  // scripts/install-deps.sh installs skopeo: without it this check must fail, not vanish.
  ASSERT_FALSE(test::shell_output("command -v skopeo").empty())
      << "skopeo is not installed (scripts/install-deps.sh)";
  // skopeo's caches and configuration stay inside the test's directory (as root, skopeo 1.9.3
  // still keeps its blob-info cache in /var/lib/containers/cache: it has no option for it).
  const std::string sandbox = temp_ / "skopeo";
  std::filesystem::create_directories(sandbox + "/tmp");
  test::write_text(sandbox + "/registries.conf", "");
  const std::string environment =
      "HOME=" + sandbox + " XDG_DATA_HOME=" + sandbox + " XDG_CACHE_HOME=" + sandbox +
      " TMPDIR=" + sandbox + "/tmp CONTAINERS_REGISTRIES_CONF=" + sandbox + "/registries.conf ";
  for (const auto& [tag, entries] : {std::pair{"nested", 2U}, std::pair{"flat", 3U}}) {
    SCOPED_TRACE(tag);
    const std::string out = temp_ / (std::string("out-") + tag);
    ASSERT_EQ(test::run_tool("convert " + source() + ":" + tag + " --to zstd --layout " + out +
                             " --tag t")
                  .exit_code,
              0);
    const auto raw = nlohmann::json::parse(
        test::shell_output(environment + "skopeo inspect --raw oci:" + out + ":t"), nullptr, false);
    ASSERT_FALSE(raw.is_discarded());
    EXPECT_EQ(raw["mediaType"], std::string(oci::kMediaTypeImageIndex));
    ASSERT_EQ(raw["manifests"].size(), entries);
    EXPECT_EQ(raw["manifests"][0]["platform"]["architecture"], "amd64");
  }
  // skopeo 1.9.3 copies one level of index only ("Unexpectedly received a manifest list instead
  // of a manifest for a single image" for a nested one), so the copy is of the flat index, whose
  // artifact entry it copies as well.
  const std::string copy = temp_ / "copy";
  EXPECT_EQ(test::shell(environment + "skopeo --insecure-policy copy --quiet --all oci:" +
                        (temp_ / "out-flat") + ":t oci:" + copy + ":t"),
            0);
  expect_blobs_hash_to_their_names(copy);
  auto copied = oci::OciLayout::open(copy);
  ASSERT_TRUE(copied.ok());
  auto tree = copied->load_tree("t");
  ASSERT_TRUE(tree.ok()) << tree.error().to_string();
  EXPECT_EQ(tree->children.size(), 3U);
}

// ---- hostile indexes ---------------------------------------------------------------------------

TEST_F(ImageIndexCli, HostileIndexesFailWithTheBlobNamed) {
  auto layout = oci::OciLayout::open(source());
  ASSERT_TRUE(layout.ok());
  const auto expect_failure = [&](const std::string& tag, const std::string& words) {
    SCOPED_TRACE(tag);
    for (const std::string& command : {"inspect " + source() + ":" + tag,
                                       "convert " + source() + ":" + tag + " --to zstd --layout " +
                                           (temp_ / "bad") + " --tag t"}) {
      const auto result = test::run_tool(command);
      EXPECT_EQ(result.exit_code, 1) << command;
      EXPECT_NE(result.err.find(words), std::string::npos) << result.err;
    }
  };

  // Nine indexes, each listing the one below: one more than the cap of 8.
  oci::Descriptor chain = amd64_;
  for (int level = 0; level < 9; ++level) {
    oci::Index index;
    index.manifests = {chain};
    chain = write_index_blob(*layout, index);
  }
  ASSERT_TRUE(layout->set_tag("deep", chain).ok());
  expect_failure("deep", "is nested deeper than 8 indexes");

  oci::Descriptor wrong_size = amd64_;
  wrong_size.size += 1;
  oci::Index sized;
  sized.manifests = {wrong_size};
  ASSERT_TRUE(layout->set_tag("sized", write_index_blob(*layout, sized)).ok());
  expect_failure("sized", "blob " + amd64_.digest.to_string() + " is " +
                              std::to_string(amd64_.size) + " bytes but its descriptor says " +
                              std::to_string(amd64_.size + 1));

  // A blob whose content is not what its name says (same size, other bytes).
  oci::Descriptor forged = amd64_;
  forged.digest = sha256_of(test::bytes_of("forged"));
  std::string other_bytes = test::read_text(layout->blob_path(amd64_.digest));
  other_bytes.back() = other_bytes.back() == ' ' ? '\t' : ' ';
  test::write_text(layout->blob_path(forged.digest), other_bytes);
  oci::Index forging;
  forging.manifests = {forged};
  ASSERT_TRUE(layout->set_tag("forged", write_index_blob(*layout, forging)).ok());
  expect_failure("forged", "blob " + forged.digest.to_string() + " does not hash to its name");

  oci::Descriptor strange = amd64_;
  strange.media_type = "application/x-strange";
  oci::Index unknown;
  unknown.manifests = {strange};
  ASSERT_TRUE(layout->set_tag("unknown", write_index_blob(*layout, unknown)).ok());
  expect_failure("unknown", "blob " + amd64_.digest.to_string() +
                                " has media type 'application/x-strange', neither");

  oci::Index anonymous;
  anonymous.manifests = {amd64_, arm64_};
  anonymous.manifests[1].platform.reset();
  const oci::Descriptor anonymous_descriptor = write_index_blob(*layout, anonymous);
  ASSERT_TRUE(layout->set_tag("anonymous", anonymous_descriptor).ok());
  expect_failure("anonymous", "index blob " + anonymous_descriptor.digest.to_string() +
                                  ": entry 1 (image " + arm64_.digest.to_string() +
                                  ") has no platform");

  // Fan-out: one index listing the same image 5000 times, over the 4096-blob cap.
  oci::Index wide;
  wide.manifests.assign(5000, amd64_);
  const oci::Descriptor wide_descriptor = write_index_blob(*layout, wide);
  ASSERT_TRUE(layout->set_tag("wide", wide_descriptor).ok());
  expect_failure("wide", "index blob " + wide_descriptor.digest.to_string() +
                             " lists 5000 entries: the image tree would hold more than 4096");
}

TEST(ImageTree, CycleAndDiamondsAreBounded) {
  // With content checked against digests a cycle cannot be built; a fetcher that does not check
  // (a registry proxy, a bug) can serve one, and the walk must still end with an error.
  oci::Descriptor self;
  self.media_type = std::string(oci::kMediaTypeImageIndex);
  self.digest = sha256_of(test::bytes_of("not the content"));
  oci::Index looping;
  looping.manifests = {self};
  const std::string looping_json = oci::write_index(looping);
  self.size = looping_json.size();
  const oci::BlobFetcher serve_loop = [&](const oci::Descriptor&) {
    return Result<std::vector<std::uint8_t>>(
        std::vector<std::uint8_t>(looping_json.begin(), looping_json.end()));
  };
  auto cycle = oci::load_image_tree(self, serve_loop);
  ASSERT_FALSE(cycle.ok());
  EXPECT_EQ(cycle.error().message,
            "index blob " + self.digest.to_string() + " lists itself below itself (a cycle)");

  // A diamond at every level: 2^k paths from 2 k blobs. The node cap ends the walk.
  std::map<Digest, std::string> blobs;
  oci::Descriptor level;
  level.media_type = std::string(oci::kMediaTypeImageIndex);
  {
    oci::Index bottom;
    const std::string json = oci::write_index(bottom);
    level.digest = sha256_of(test::bytes_of(json));
    level.size = json.size();
    blobs[level.digest] = json;
  }
  for (int i = 0; i < 7; ++i) {
    oci::Index index;
    index.manifests = {level, level, level, level};
    const std::string json = oci::write_index(index);
    level.digest = sha256_of(test::bytes_of(json));
    level.size = json.size();
    blobs[level.digest] = json;
  }
  const oci::BlobFetcher fetch = [&](const oci::Descriptor& descriptor) {
    const std::string& json = blobs.at(descriptor.digest);
    return Result<std::vector<std::uint8_t>>(std::vector<std::uint8_t>(json.begin(), json.end()));
  };
  auto diamonds = oci::load_image_tree(level, fetch);
  ASSERT_FALSE(diamonds.ok());
  EXPECT_EQ(diamonds.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(diamonds.error().message.find("more than 4096 manifests and indexes"),
            std::string::npos)
      << diamonds.error().message;
  oci::ImageTreeLimits roomy;
  roomy.max_nodes = 1U << 16U;
  auto walked = oci::load_image_tree(level, fetch, roomy);
  ASSERT_TRUE(walked.ok()) << walked.error().to_string();
  EXPECT_EQ(walked->children.size(), 4U);
}

TEST(ImageTree, PlatformFeaturesAndUnknownFieldsSurviveARoundTrip) {
  const std::string json =
      R"({"manifests":[{"digest":"sha256:)" + std::string(64, 'a') +
      R"(","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"architecture":)"
      R"("amd64","features":["sse4"],"os":"windows","os.features":["win32k"],)"
      R"("os.version":"10.0.17763.1040"},"size":7}],"schemaVersion":2})";
  auto index = oci::parse_index(test::bytes_of(json));
  ASSERT_TRUE(index.ok()) << index.error().to_string();
  const oci::Platform& parsed = *index->manifests.at(0).platform;
  EXPECT_EQ(parsed.os_features, std::vector<std::string>{"win32k"});
  EXPECT_EQ(parsed.os_version, "10.0.17763.1040");
  EXPECT_EQ(parsed.unknown_fields, R"({"features":["sse4"]})");
  EXPECT_EQ(oci::write_index(*index), json);  // the input is already canonical
  const auto bad = R"({"manifests":[{"digest":"sha256:)" + std::string(64, 'a') +
                   R"(","mediaType":"m","platform":{"architecture":"a","os":"o",)"
                   R"("os.features":"win32k"},"size":7}],"schemaVersion":2})";
  auto refused = oci::parse_index(test::bytes_of(bad));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("\"os.features\" is not an array"), std::string::npos);
}

TEST(ImageTree, PlatformNames) {
  auto parsed = oci::parse_platform_name("linux/arm64/v8");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->os, "linux");
  EXPECT_EQ(parsed->architecture, "arm64");
  EXPECT_EQ(parsed->variant, "v8");
  EXPECT_EQ(oci::platform_name(*parsed), "linux/arm64/v8");
  for (const char* bad : {"linux", "linux/", "/amd64", "linux//v8", "a/b/c/d", ""}) {
    EXPECT_FALSE(oci::parse_platform_name(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace strata
