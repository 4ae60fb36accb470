// Store poisoning by a hostile registry (issue 20, hole 1; docs/THREAT_MODEL.md), end to end with
// the real tool against registries started here (tests/hostile_registry.h). A partial pull sees
// only some of a blob's bytes, so the blob digest a manifest names is unverified: the attacker's
// registry serves its own self-consistent zstd:chunked image but names the layer by the digest of
// a legitimate image's layer. Before the fix the store filed the attacker's layer under that
// digest, so a later pull of the legitimate image (even by digest, from an honest registry) said
// "already in the store" and `export` / `unpack --store` / `model pull --out` gave the attacker's
// bytes. Each test checks what the store answers after the attack, that an honest pull then gives
// the honest bytes, and that the store verifies.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/cli_build_helpers.h"
#include "tests/hostile_registry.h"
#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata {
namespace {

using testing::HostileRegistry;
using testing::serve_layout;

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(test::read_text(path));
}

std::string blob_path(const std::string& layout, const std::string& digest) {
  return layout + "/blobs/sha256/" + digest.substr(7);
}

struct BuiltImage {
  std::string manifest_digest;
  std::string manifest_media_type;
  std::string manifest_text;
  std::string layer_digest;
};

// The image tagged `tag` in `layout` (one manifest, one layer).
BuiltImage image_of(const std::string& layout, const std::string& tag) {
  BuiltImage image;
  const nlohmann::json index = read_json(layout + "/index.json");
  for (const auto& entry : index["manifests"]) {
    if (entry["annotations"]["org.opencontainers.image.ref.name"] != tag) continue;
    image.manifest_digest = entry["digest"];
    image.manifest_media_type = entry["mediaType"];
  }
  EXPECT_FALSE(image.manifest_digest.empty()) << layout << ":" << tag;
  image.manifest_text = test::read_text(blob_path(layout, image.manifest_digest));
  const auto manifest = nlohmann::json::parse(image.manifest_text);
  image.layer_digest = manifest["layers"][0]["digest"];
  return image;
}

// The attacker's image (a zstd:chunked build of other files) whose manifest names its layer by
// `victim_digest`; the registry serves the attacker's blob under that digest.
struct Attack {
  test::TempDir dir;
  std::string layout;
  std::map<std::string, std::string> blobs;
  std::map<std::string, std::pair<std::string, std::string>> manifests;
};

void prepare_attack(Attack& attack, const std::string& victim_digest) {
  const std::string source = attack.dir / "evil-src";
  std::filesystem::create_directories(source + "/app");
  test::write_text(source + "/app/hello.txt", "you have been poisoned\n");
  test::write_bytes(source + "/app/data.bin", test::splitmix64_bytes(666, 150'000));
  attack.layout = attack.dir / "evil-layout";
  test::run_tool_json("build " + source + " --layout " + attack.layout +
                      " --tag v1 --format zstd:chunked --json");
  const BuiltImage evil = image_of(attack.layout, "v1");
  std::string text = evil.manifest_text;
  const auto at = text.find(evil.layer_digest);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, evil.layer_digest.size(), victim_digest);
  attack.blobs[victim_digest] = test::read_text(blob_path(attack.layout, evil.layer_digest));
  attack.manifests["v1"] = {evil.manifest_media_type, text};
}

// Pulls the attacker's image into `store`: it succeeds (the image is self-consistent: its chunks
// and diff_id check out), which is exactly why the unverified blob digest must not be kept.
void pull_attack(const Attack& attack, const std::string& store) {
  HostileRegistry evil(serve_layout(attack.layout, attack.blobs, attack.manifests));
  const auto pulled = test::run_tool("pull " + evil.host() + "/evil/app:v1 --store " + store +
                                     " --insecure --json");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  const auto report = nlohmann::json::parse(pulled.out);
  ASSERT_EQ(report["layers"].size(), 1U);
  EXPECT_TRUE(report["layers"][0]["chunked"].get<bool>()) << pulled.out;
}

class PoisonedPull : public ::testing::TestWithParam<std::string> {};

TEST_P(PoisonedPull, AnUnverifiedBlobDigestNeverAnswersForTheLegitimateLayer) {
  test::TempDir dir;
  const std::string source = dir / "src";
  test::make_build_source(source);
  const std::string legit_layout = dir / "legit";
  test::run_tool_json("build " + source + " --layout " + legit_layout + " --tag v1 --format " +
                      GetParam() + " --json");
  const BuiltImage legit = image_of(legit_layout, "v1");

  Attack attack;
  ASSERT_NO_FATAL_FAILURE(prepare_attack(attack, legit.layer_digest));
  const std::string store = dir / "store";
  ASSERT_NO_FATAL_FAILURE(pull_attack(attack, store));

  // The store does not know the legitimate digest: export and unpack refuse it.
  const auto exported =
      test::run_tool("export --store " + store + " " + legit.layer_digest + " -o " + (dir / "x"));
  EXPECT_NE(exported.exit_code, 0) << "the attacker's layer answered to " << legit.layer_digest;
  EXPECT_NE(exported.err.find("not in the store"), std::string::npos) << exported.err;
  const auto unpacked = test::run_tool("unpack --store " + store + " " + legit.layer_digest + " " +
                                       (dir / "rootfs-poisoned"));
  EXPECT_NE(unpacked.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "rootfs-poisoned/app/hello.txt"));

  // An honest registry, pinned by digest: the layer is fetched (not "already in the store") and
  // the store then gives the legitimate files.
  HostileRegistry honest(serve_layout(legit_layout));
  const auto report =
      test::run_tool_json("pull " + honest.host() + "/legit/app@" + legit.manifest_digest +
                          " --store " + store + " --insecure --json");
  ASSERT_EQ(report["layers"].size(), 1U);
  EXPECT_FALSE(report["layers"][0]["already_present"].get<bool>()) << report.dump();
  const auto unpacked_honest =
      test::run_tool("unpack --store " + store + " " + legit.layer_digest + " " + (dir / "rootfs"));
  ASSERT_EQ(unpacked_honest.exit_code, 0) << unpacked_honest.err;
  EXPECT_EQ(test::read_text(dir / "rootfs/etc/hello.txt"), "hello\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "rootfs/app/hello.txt"));
  const auto verified = test::run_tool("verify --store " + store);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

// A store poisoned by an older strata (which filed the attacker's layer under the legitimate
// blob digest: the rows are written here with the sqlite3 tool) heals when the honest blob is
// pulled whole: a hashed blob digest replaces the unverified mapping.
TEST(PoisonedPull, AStorePoisonedByAnOlderStrataHealsOnAnHonestWholePull) {
  test::TempDir dir;
  const std::string source = dir / "src";
  test::make_build_source(source);
  const std::string legit_layout = dir / "legit";
  test::run_tool_json("build " + source + " --layout " + legit_layout +
                      " --tag v1 --format gzip --json");
  const BuiltImage legit = image_of(legit_layout, "v1");
  Attack attack;
  ASSERT_NO_FATAL_FAILURE(prepare_attack(attack, legit.layer_digest));
  const std::string store = dir / "store";
  ASSERT_NO_FATAL_FAILURE(pull_attack(attack, store));
  const std::string hex = legit.layer_digest.substr(7);
  const std::string sql = "UPDATE layers SET layer_digest = X'" + hex +
                          "'; INSERT INTO layer_blobs SELECT X'" + hex +
                          "', diff_id, media_type FROM layers;";
  ASSERT_EQ(test::shell("sqlite3 '" + store + "/index.db' \"" + sql + "\""), 0);
  const auto poisoned = test::run_tool("unpack --store " + store + " " + legit.layer_digest + " " +
                                       (dir / "rootfs-poisoned"));
  ASSERT_EQ(poisoned.exit_code, 0) << "the simulated old rows do not answer: " << poisoned.err;
  ASSERT_TRUE(std::filesystem::exists(dir / "rootfs-poisoned/app/hello.txt"));

  HostileRegistry honest(serve_layout(legit_layout));
  test::run_tool_json("pull " + honest.host() + "/legit/app@" + legit.manifest_digest +
                      " --store " + store + " --insecure --json");
  const auto healed =
      test::run_tool("unpack --store " + store + " " + legit.layer_digest + " " + (dir / "rootfs"));
  ASSERT_EQ(healed.exit_code, 0) << healed.err;
  EXPECT_EQ(test::read_text(dir / "rootfs/etc/hello.txt"), "hello\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "rootfs/app/hello.txt"));
  const auto verified = test::run_tool("verify --store " + store);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

// "tar": the blob digest is the diff_id, so the poisoned row answered even the pull's own lookup
// ("already in the store"); "gzip": export and unpack by the blob digest gave the attacker's files.
INSTANTIATE_TEST_SUITE_P(LegitimateLayerFormats, PoisonedPull, ::testing::Values("tar", "gzip"));

// A small safetensors file (F32 tensor of smooth values; shared/specs/models.md §3 layout).
std::vector<std::uint8_t> small_safetensors() {
  const std::size_t elements = 50'000;
  std::vector<std::uint8_t> data;
  for (std::size_t i = 0; i < elements; ++i) {
    const auto value = static_cast<float>(0.05 * std::sin(0.37 * static_cast<double>(i)));
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    for (unsigned k = 0; k < 4; ++k) data.push_back(static_cast<std::uint8_t>(bits >> (8 * k)));
  }
  std::string header = R"({"w":{"dtype":"F32","shape":[)" + std::to_string(elements) +
                       R"(],"data_offsets":[0,)" + std::to_string(data.size()) + "]}}";
  return test::safetensors_file(header, data);
}

TEST(PoisonedModelPull, TheStoresCopyIsCheckedBeforeItLandsUnderTheManifestsName) {
  test::TempDir dir;
  const std::string model_dir = dir / "model";
  std::filesystem::create_directories(model_dir);
  const std::vector<std::uint8_t> weights = small_safetensors();
  test::write_bytes(model_dir + "/model.safetensors", weights);
  test::write_text(model_dir + "/config.json", R"({"architectures":["Tiny"]})");
  const std::string model_layout = dir / "model-layout";
  test::run_tool_json("model package " + model_dir + " --layout " + model_layout +
                      " --tag v1 --json");
  const BuiltImage model = image_of(model_layout, "v1");
  std::string weight_digest;
  const auto manifest = nlohmann::json::parse(model.manifest_text);
  for (const auto& layer : manifest["layers"]) {
    if (layer["annotations"].value("org.cncf.model.filepath", "") == "model.safetensors" ||
        layer["mediaType"].get<std::string>().find("safetensors") != std::string::npos) {
      weight_digest = layer["digest"];
    }
  }
  ASSERT_FALSE(weight_digest.empty()) << model.manifest_text;
  ASSERT_EQ(weight_digest, sha256_of(weights).to_string());

  Attack attack;
  ASSERT_NO_FATAL_FAILURE(prepare_attack(attack, weight_digest));
  const std::string store = dir / "store";
  ASSERT_NO_FATAL_FAILURE(pull_attack(attack, store));

  // The layout keeps the chunk-index referrer under its fallback tag as a manifest; a registry
  // serves an index there (model push writes it). Answering 404 makes the pull fetch whole blobs.
  const testing::Handler layout_handler = serve_layout(model_layout);
  HostileRegistry honest([&](const testing::SeenRequest& request) {
    if (request.target.find("/manifests/sha256-") != std::string::npos) {
      testing::Reply missing;
      missing.status = 404;
      missing.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such tag"}]})";
      return missing;
    }
    return layout_handler(request);
  });
  const std::string out = dir / "out";
  const auto pulled = test::run_tool("model pull " + honest.host() + "/models/tiny:v1 --store " +
                                     store + " --out " + out + " --insecure --json");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), weights);
  const auto verified = test::run_tool("verify --store " + store);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

}  // namespace
}  // namespace strata
