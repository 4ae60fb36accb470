// OCI image JSON and layouts against the reference layouts of shared/testdata/oci (made by skopeo,
// ctr-remote, containers/storage and by hand; their digests and diff_ids listed in
// expected.json were checked by an independent checker): every image loads and verifies with the
// expected digests; parse -> write -> parse is stable and keeps unknown fields; a written layout
// reads back; and each kind of bad layout gets its error code and a message naming the blob.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata {
namespace {

using test::TempDir;

const std::string kLayouts = test::testdata_path("oci/layouts");

nlohmann::json load_expected() {
  return nlohmann::json::parse(test::read_text(test::testdata_path("oci/expected.json")));
}

TEST(OciLayout, ReferenceLayoutsLoadWithExpectedDigests) {
  const nlohmann::json expected = load_expected();
  ASSERT_EQ(expected.size(), 10U);
  for (const auto& [name, want] : expected.items()) {
    SCOPED_TRACE(name);
    const oci::LayoutReference reference = oci::parse_layout_reference(name);
    auto layout = oci::OciLayout::open(kLayouts + "/" + reference.layout);
    ASSERT_TRUE(layout.ok()) << layout.error().to_string();
    auto image = layout->load_image(reference.tag);
    ASSERT_TRUE(image.ok()) << image.error().to_string();
    EXPECT_EQ(image->manifest_descriptor.digest.to_string(), want["manifest_digest"]);
    EXPECT_EQ(image->manifest.config.digest.to_string(), want["config_digest"]);
    ASSERT_EQ(image->manifest.layers.size(), 1U);
    const oci::Descriptor& layer = image->manifest.layers[0];
    EXPECT_EQ(layer.digest.to_string(), want["layer_digest"]);
    EXPECT_EQ(layer.size, want["layer_size"].get<std::uint64_t>());
    EXPECT_EQ(layer.media_type, want["layer_mediaType"]);
    EXPECT_EQ(nlohmann::json(layer.annotations), want["layer_annotations"]);
    ASSERT_EQ(image->config.diff_ids.size(), 1U);
    EXPECT_EQ(image->config.diff_ids[0].to_string(), want["diff_id"]);
    auto verified = layout->verify_image(reference.tag);
    EXPECT_TRUE(verified.ok()) << verified.error().to_string();
  }
}

TEST(OciLayout, DecodedLayerSizeMatchesExpected) {
  const nlohmann::json expected = load_expected();
  for (const std::string name : {"gzip-v1:v1", "zstd-chunked-skopeo:v1", "estargz-ctr-remote:v1"}) {
    SCOPED_TRACE(name);
    const auto& want = expected[name];
    const oci::LayoutReference reference = oci::parse_layout_reference(name);
    const std::string path = kLayouts + "/" + reference.layout + "/blobs/sha256/" +
                             want["layer_digest"].get<std::string>().substr(7);
    auto decoded = oci::decode_layer_file(path, ByteSink());
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_EQ(decoded->uncompressed_size, want["uncompressed_size"].get<std::uint64_t>());
    EXPECT_EQ(decoded->diff_id.to_string(), want["diff_id"]);
    EXPECT_EQ(decoded->digest.to_string(), want["layer_digest"]);
  }
}

// Every JSON blob of every reference layout: manifests, configs and the index.json files.
TEST(OciJson, ParseWriteParseIsStable) {
  int documents = 0;
  for (const auto& layout_entry : std::filesystem::directory_iterator(kLayouts)) {
    const std::string index_text = test::read_text(layout_entry.path().string() + "/index.json");
    auto index = oci::parse_index(test::bytes_of(index_text));
    ASSERT_TRUE(index.ok()) << index.error().to_string();
    const std::string index_written = oci::write_index(*index);
    auto index_again = oci::parse_index(test::bytes_of(index_written));
    ASSERT_TRUE(index_again.ok());
    EXPECT_EQ(*index_again, *index);
    EXPECT_EQ(oci::write_index(*index_again), index_written);
    // Canonical form = compact, sorted keys: what nlohmann writes for the same JSON value.
    EXPECT_EQ(nlohmann::json::parse(index_written), nlohmann::json::parse(index_text));
    ++documents;
    for (const oci::Descriptor& entry : index->manifests) {
      const std::string manifest_text =
          test::read_text(layout_entry.path().string() + "/blobs/sha256/" + entry.digest.hex());
      auto manifest = oci::parse_manifest(test::bytes_of(manifest_text));
      ASSERT_TRUE(manifest.ok()) << manifest.error().to_string();
      const std::string written = oci::write_manifest(*manifest);
      EXPECT_EQ(nlohmann::json::parse(written), nlohmann::json::parse(manifest_text));
      auto again = oci::parse_manifest(test::bytes_of(written));
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(*again, *manifest);
      const std::string config_text = test::read_text(
          layout_entry.path().string() + "/blobs/sha256/" + manifest->config.digest.hex());
      auto config = oci::parse_image_config(test::bytes_of(config_text));
      ASSERT_TRUE(config.ok()) << config.error().to_string();
      const std::string config_written = oci::write_image_config(*config);
      EXPECT_EQ(nlohmann::json::parse(config_written), nlohmann::json::parse(config_text));
      auto config_again = oci::parse_image_config(test::bytes_of(config_written));
      ASSERT_TRUE(config_again.ok());
      EXPECT_EQ(*config_again, *config);
      documents += 2;
    }
  }
  EXPECT_EQ(documents, 6 + 2 * 10);
}

TEST(OciJson, UnknownFieldsAreKeptAndOutputIsCanonical) {
  const std::string text = R"({ "schemaVersion": 2, "zz": [1, {"b": 2, "a": 1}],
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "x-extra": true,
      "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
    "layers": [], "mediaType": "application/vnd.oci.image.manifest.v1+json"})";
  auto manifest = oci::parse_manifest(test::bytes_of(text));
  ASSERT_TRUE(manifest.ok()) << manifest.error().to_string();
  EXPECT_EQ(
      oci::write_manifest(*manifest),
      R"({"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.config.v1+json","size":2,"x-extra":true},"layers":[],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2,"zz":[1,{"a":1,"b":2}]})");
}

struct BadJsonCase {
  const char* text;
  ErrorCode code;
  const char* fragment;
};

TEST(OciJson, BadManifestsGetClearErrors) {
  const BadJsonCase cases[] = {
      {"not json", ErrorCode::kCorruptInput, "not valid JSON"},
      {"[]", ErrorCode::kCorruptInput, "not a JSON object"},
      {R"({"schemaVersion":3,"config":{},"layers":[]})", ErrorCode::kUnsupported,
       "schemaVersion 3"},
      {R"({"schemaVersion":2,"layers":[]})", ErrorCode::kCorruptInput, "missing \"config\""},
      {R"({"schemaVersion":2,"mediaType":"text/plain","config":{},"layers":[]})",
       ErrorCode::kUnsupported, "not a manifest"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:00","size":1},"layers":[]})",
       ErrorCode::kCorruptInput, "64"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","digest":"sha512:00","size":1},"layers":[]})",
       ErrorCode::kUnsupported, "only sha256"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","size":-1,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]})",
       ErrorCode::kCorruptInput, "manifest.config.size: not a non-negative integer"},
      {R"({"schemaVersion":2,"config":{"mediaType":"a","size":1,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":"a","size":1,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","annotations":{"k":1}}]})",
       ErrorCode::kCorruptInput, "manifest.layers[0]: annotation \"k\" is not a string"},
  };
  for (const BadJsonCase& bad : cases) {
    SCOPED_TRACE(bad.text);
    auto manifest = oci::parse_manifest(test::bytes_of(bad.text));
    ASSERT_FALSE(manifest.ok());
    EXPECT_EQ(manifest.error().code, bad.code) << manifest.error().message;
    EXPECT_NE(manifest.error().message.find(bad.fragment), std::string::npos)
        << manifest.error().message;
  }
  const std::string huge(oci::kMaxJsonBytes + 1, ' ');
  auto too_big = oci::parse_manifest(test::bytes_of(huge));
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error().code, ErrorCode::kLimitExceeded);
}

TEST(OciJson, BadConfigsGetClearErrors) {
  const BadJsonCase cases[] = {
      {R"({"os":"linux","rootfs":{"type":"layers","diff_ids":[]}})", ErrorCode::kCorruptInput,
       "missing \"architecture\""},
      {R"({"os":"linux","architecture":"amd64"})", ErrorCode::kCorruptInput, "rootfs"},
      {R"({"os":"linux","architecture":"amd64","rootfs":{"type":"x","diff_ids":[]}})",
       ErrorCode::kCorruptInput, "not 'layers'"},
      {R"({"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:zz"]}})",
       ErrorCode::kCorruptInput, "config.rootfs.diff_ids[0]"},
      {R"({"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]},"history":[{"empty_layer":"yes"}]})",
       ErrorCode::kCorruptInput, "config.history[0]"},
  };
  for (const BadJsonCase& bad : cases) {
    SCOPED_TRACE(bad.text);
    auto config = oci::parse_image_config(test::bytes_of(bad.text));
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.error().code, bad.code) << config.error().message;
    EXPECT_NE(config.error().message.find(bad.fragment), std::string::npos)
        << config.error().message;
  }
}

TEST(OciLayout, ReferencesSplitAtTheTag) {
  auto reference = oci::parse_layout_reference("out/dir:v1.2-rc");
  EXPECT_EQ(reference.layout, "out/dir");
  EXPECT_EQ(reference.tag, "v1.2-rc");
  reference = oci::parse_layout_reference("/a:b/layout");
  EXPECT_EQ(reference.layout, "/a:b/layout");
  EXPECT_EQ(reference.tag, "");
  EXPECT_FALSE(oci::is_valid_tag(".hidden"));
  EXPECT_FALSE(oci::is_valid_tag(std::string(129, 'a')));
  EXPECT_TRUE(oci::is_valid_tag(std::string(128, 'a')));
}

// A one-layer image written with the public API.
oci::Descriptor write_test_image(oci::OciLayout& layout, const std::string& tag,
                                 const std::string& payload) {
  auto blob = layout.begin_blob();
  EXPECT_TRUE(blob.ok());
  auto writer =
      oci::LayerWriter::create({}, [&blob](ByteSpan bytes) { return blob->write(bytes); });
  EXPECT_TRUE(writer.ok());
  EXPECT_TRUE(writer->write(test::bytes_of(payload)).ok());
  auto layer = writer->finish();
  EXPECT_TRUE(layer.ok());
  auto committed = blob->commit(layer->media_type);
  EXPECT_TRUE(committed.ok());
  EXPECT_EQ(committed->digest, layer->digest);
  oci::ImageConfig config;
  config.diff_ids.push_back(layer->diff_id);
  auto config_descriptor = layout.write_blob(oci::kMediaTypeImageConfig,
                                             test::bytes_of(oci::write_image_config(config)));
  EXPECT_TRUE(config_descriptor.ok());
  oci::Manifest manifest;
  manifest.config = *config_descriptor;
  manifest.layers.push_back(*committed);
  auto manifest_descriptor = layout.write_blob(oci::kMediaTypeImageManifest,
                                               test::bytes_of(oci::write_manifest(manifest)));
  EXPECT_TRUE(manifest_descriptor.ok());
  EXPECT_TRUE(layout.set_tag(tag, *manifest_descriptor).ok());
  return *manifest_descriptor;
}

TEST(OciLayout, WrittenLayoutReadsBack) {
  TempDir temp;
  auto layout = oci::OciLayout::open_or_create(temp / "layout");
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  const oci::Descriptor first = write_test_image(*layout, "t", std::string(5000, 'a'));
  const oci::Descriptor second = write_test_image(*layout, "t", std::string(5000, 'b'));
  write_test_image(*layout, "other", "other");
  EXPECT_EQ(test::read_text(temp / "layout/oci-layout"), R"({"imageLayoutVersion":"1.0.0"})");
  auto reopened = oci::OciLayout::open(temp / "layout");
  ASSERT_TRUE(reopened.ok());
  ASSERT_EQ(reopened->index().manifests.size(), 2U);  // re-tagging replaced the first entry
  auto resolved = reopened->resolve("t");
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->digest, second.digest);
  EXPECT_NE(resolved->digest, first.digest);
  EXPECT_TRUE(reopened->verify_image("t").ok());
  auto ambiguous = reopened->resolve("");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.error().code, ErrorCode::kNotFound);
  auto missing = reopened->resolve("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("'nope' not found"), std::string::npos);
  // No temporary files are left behind in blobs/sha256.
  for (const auto& entry : std::filesystem::directory_iterator(temp / "layout/blobs/sha256")) {
    EXPECT_EQ(entry.path().filename().string().size(), 64U) << entry.path();
  }
}

TEST(OciLayout, TagsFromAnotherWriterAreKept) {
  TempDir temp;
  auto first = oci::OciLayout::open_or_create(temp / "layout");
  auto second = oci::OciLayout::open(temp / "layout");
  ASSERT_TRUE(first.ok() && second.ok());
  write_test_image(*first, "a", "one");
  write_test_image(*second, "b", "two");  // `second` read index.json before "a" existed
  EXPECT_EQ(second->index().manifests.size(), 2U);
  auto reopened = oci::OciLayout::open(temp / "layout");
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE(reopened->resolve("a").ok());
  EXPECT_TRUE(reopened->resolve("b").ok());
}

// A copy of the gzip-v1 fixture that a test may damage.
class DamagedLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::copy(kLayouts + "/gzip-v1", path_, std::filesystem::copy_options::recursive);
    auto layout = oci::OciLayout::open(path_);
    ASSERT_TRUE(layout.ok());
    auto image = layout->load_image("v1");
    ASSERT_TRUE(image.ok());
    image_ = *image;
  }
  std::string blob(const Digest& digest) const { return path_ + "/blobs/sha256/" + digest.hex(); }
  // Writes `manifest` (and optionally a config) as new blobs and tags the result "bad".
  void tag_manifest(oci::Manifest manifest, const oci::ImageConfig* config = nullptr) {
    auto layout = oci::OciLayout::open(path_);
    ASSERT_TRUE(layout.ok());
    if (config != nullptr) {
      auto descriptor = layout->write_blob(oci::kMediaTypeImageConfig,
                                           test::bytes_of(oci::write_image_config(*config)));
      ASSERT_TRUE(descriptor.ok());
      manifest.config = *descriptor;
    }
    auto descriptor = layout->write_blob(oci::kMediaTypeImageManifest,
                                         test::bytes_of(oci::write_manifest(manifest)));
    ASSERT_TRUE(descriptor.ok());
    ASSERT_TRUE(layout->set_tag("bad", *descriptor).ok());
  }
  Error verify_error(std::string_view tag) const {
    auto layout = oci::OciLayout::open(path_);
    EXPECT_TRUE(layout.ok());
    auto verified = layout->verify_image(tag);
    EXPECT_FALSE(verified.ok());
    return verified.ok() ? Error{} : verified.error();
  }

  TempDir temp_;
  std::string path_ = temp_ / "layout";
  oci::Image image_;
};

TEST_F(DamagedLayout, LayerBlobThatDoesNotHashToItsName) {
  const Digest layer = image_.manifest.layers[0].digest;
  std::string content = test::read_text(blob(layer));
  content[content.size() / 2] = static_cast<char>(content[content.size() / 2] ^ 0x40);
  test::write_text(blob(layer), content);
  const Error error = verify_error("v1");
  // Either the inflater notices the damage or the digest check does; both name the blob.
  EXPECT_TRUE(error.code == ErrorCode::kDigestMismatch || error.code == ErrorCode::kCorruptInput)
      << error.to_string();
  EXPECT_NE(error.message.find(layer.to_string()), std::string::npos) << error.message;
}

TEST_F(DamagedLayout, ManifestBlobThatDoesNotHashToItsName) {
  const Digest manifest = image_.manifest_descriptor.digest;
  std::string content = test::read_text(blob(manifest));
  content[content.find("layers")] = 'L';
  test::write_text(blob(manifest), content);
  const Error error = verify_error("v1");
  EXPECT_EQ(error.code, ErrorCode::kDigestMismatch);
  EXPECT_NE(error.message.find(manifest.to_string() + " does not hash to its name"),
            std::string::npos)
      << error.message;
}

TEST_F(DamagedLayout, ManifestWithWrongSize) {
  oci::Manifest manifest = image_.manifest;
  manifest.layers[0].size += 1;
  tag_manifest(manifest);
  const Error error = verify_error("bad");
  EXPECT_EQ(error.code, ErrorCode::kCorruptInput);
  EXPECT_NE(error.message.find(manifest.layers[0].digest.to_string()), std::string::npos);
  EXPECT_NE(error.message.find("descriptor says " + std::to_string(manifest.layers[0].size)),
            std::string::npos)
      << error.message;
}

TEST_F(DamagedLayout, IndexWithWrongManifestSize) {
  std::string index = test::read_text(path_ + "/index.json");
  const std::string size = "\"size\":" + std::to_string(image_.manifest_descriptor.size);
  ASSERT_NE(index.find(size), std::string::npos) << index;
  index.replace(index.find(size), size.size(), "\"size\":7");
  test::write_text(path_ + "/index.json", index);
  const Error error = verify_error("v1");
  EXPECT_EQ(error.code, ErrorCode::kCorruptInput);
  EXPECT_NE(error.message.find(image_.manifest_descriptor.digest.to_string()), std::string::npos)
      << error.message;
}

TEST_F(DamagedLayout, ConfigWhoseDiffIdDisagreesWithTheLayer) {
  oci::ImageConfig config = image_.config;
  config.diff_ids[0] = sha256_of(test::bytes_of("something else"));
  tag_manifest(image_.manifest, &config);
  const Error error = verify_error("bad");
  EXPECT_EQ(error.code, ErrorCode::kDigestMismatch);
  EXPECT_NE(error.message.find("diff_id"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find(image_.manifest.layers[0].digest.to_string()), std::string::npos);
}

TEST_F(DamagedLayout, ConfigWithTooFewDiffIds) {
  oci::ImageConfig config = image_.config;
  config.diff_ids.clear();
  tag_manifest(image_.manifest, &config);
  const Error error = verify_error("bad");
  EXPECT_EQ(error.code, ErrorCode::kCorruptInput);
  EXPECT_NE(error.message.find("lists 0 diff_ids but the manifest has 1 layers"), std::string::npos)
      << error.message;
}

TEST_F(DamagedLayout, UnknownLayerMediaType) {
  oci::Manifest manifest = image_.manifest;
  manifest.layers[0].media_type = "application/x-unknown";
  tag_manifest(manifest);
  const Error error = verify_error("bad");
  EXPECT_EQ(error.code, ErrorCode::kUnsupported);
  EXPECT_NE(error.message.find("unknown layer media type 'application/x-unknown'"),
            std::string::npos)
      << error.message;
  EXPECT_NE(error.message.find(manifest.layers[0].digest.to_string()), std::string::npos);
}

TEST_F(DamagedLayout, UnknownConfigMediaType) {
  oci::Manifest manifest = image_.manifest;
  manifest.config.media_type = "application/x-config";
  tag_manifest(manifest);
  const Error error = verify_error("bad");
  EXPECT_EQ(error.code, ErrorCode::kUnsupported);
  EXPECT_NE(error.message.find(manifest.config.digest.to_string()), std::string::npos);
}

TEST_F(DamagedLayout, MissingLayerBlob) {
  std::filesystem::remove(blob(image_.manifest.layers[0].digest));
  const Error error = verify_error("v1");
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_NE(error.message.find(image_.manifest.layers[0].digest.to_string() + " is missing"),
            std::string::npos)
      << error.message;
}

TEST_F(DamagedLayout, NotALayout) {
  std::filesystem::remove(path_ + "/oci-layout");
  auto layout = oci::OciLayout::open(path_);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.error().code, ErrorCode::kNotFound);
  EXPECT_NE(layout.error().message.find("is not an OCI image layout"), std::string::npos);
  test::write_text(path_ + "/oci-layout", R"({"imageLayoutVersion":"2.0.0"})");
  layout = oci::OciLayout::open(path_);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.error().code, ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace strata
