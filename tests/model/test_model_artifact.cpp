// Model artifacts (issue 10, shared/specs/models.md §8): the chunk index round-trips and refuses
// hostile bytes with a named error; `package_model` writes Docker v0.2 and ModelPack artifacts
// whose media types, file-path annotations and config fields follow the two formats, whose digests
// depend only on the inputs and the created time, and whose chunk index referrer tiles every weight
// blob with chunks whose SHA-256 (recomputed here from the file bytes) match; packaging a
// fine-tune next to its base into one store adds exactly the changed tensor's bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata::model {
namespace {

using Json = nlohmann::json;
constexpr std::size_t kTensorElements = 16384;  // F32: 64 KiB per tensor

// Weight-like F32 values from a splitmix64 stream (seeded per tensor name).
std::vector<std::uint8_t> tensor_bytes(const std::string& name, std::size_t elements) {
  std::uint64_t seed = 1469598103934665603ULL;
  for (const char c : name) seed = (seed ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  const auto bits = test::splitmix64_bytes(seed, elements * 4);
  std::vector<std::uint8_t> out(elements * 4);
  for (std::size_t i = 0; i < elements; ++i) {
    std::uint32_t raw = 0;
    std::memcpy(&raw, bits.data() + 4 * i, 4);
    const float value = static_cast<float>((static_cast<double>(raw) / 4294967296.0 - 0.5) * 0.1);
    std::memcpy(out.data() + 4 * i, &value, 4);
  }
  return out;
}

// A safetensors file; tensors named in `changed` get other contents (a fine-tune).
std::vector<std::uint8_t> safetensors_file(const std::vector<std::string>& names,
                                           const std::set<std::string>& changed) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::vector<std::uint8_t> data;
  for (const std::string& name : names) {
    const auto bytes =
        tensor_bytes(changed.contains(name) ? name + "/tuned" : name, kTensorElements);
    header += ",\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(kTensorElements) +
              "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + bytes.size()) + "]}";
    data.insert(data.end(), bytes.begin(), bytes.end());
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  const std::uint64_t length = header.size();
  for (unsigned i = 0; i < 8; ++i) {
    data.insert(data.begin() + i, static_cast<std::uint8_t>(length >> (8U * i)));
  }
  data.insert(data.begin() + 8, header.begin(), header.end());
  return data;
}

void write_text(const std::string& path, const std::string& text) {
  test::write_file(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

// A two-shard safetensors model with config, tokenizer, README and LICENSE files.
void write_model(const std::string& directory, const std::set<std::string>& changed = {}) {
  std::filesystem::create_directories(directory + "/sub");
  test::write_file(directory + "/model-00001-of-00002.safetensors",
                   safetensors_file({"a.q", "a.k", "a.v"}, changed));
  test::write_file(directory + "/model-00002-of-00002.safetensors",
                   safetensors_file({"b.q", "b.k", "b.v"}, changed));
  write_text(directory + "/config.json", R"({"max_position_embeddings":2048})");
  write_text(directory + "/sub/tokenizer.json", R"({"model":{"type":"BPE"}})");
  write_text(directory + "/README.md", "# test model\n");
  write_text(directory + "/LICENSE", "MIT\n");
  write_text(directory + "/.hidden", "left out\n");
}

ChunkerOptions small_chunks() {
  ChunkerOptions options;
  options.min_size = 4U << 10U;
  options.avg_size = 16U << 10U;
  options.max_size = 64U << 10U;
  return options;
}

struct Packaged {
  oci::Manifest manifest;
  Json config;
  PackageReport report;
};

Packaged package(const std::string& source, const std::string& layout_dir,
                 const PackageOptions& options, const std::string& tag = "v1") {
  auto layout = oci::OciLayout::open_or_create(layout_dir);
  EXPECT_TRUE(layout.ok());
  auto report = package_model(source, *layout, tag, options);
  if (!report.ok()) {
    ADD_FAILURE() << report.error().to_string();
    return {};
  }
  Packaged out;
  out.report = *report;
  const auto manifest_bytes = test::read_file(layout->blob_path(report->manifest.digest));
  out.manifest = *oci::parse_manifest(manifest_bytes);
  const auto config_bytes = test::read_file(layout->blob_path(report->config.digest));
  out.config = Json::parse(config_bytes.begin(), config_bytes.end());
  return out;
}

std::map<std::string, oci::Descriptor> layers_by_path(const oci::Manifest& manifest) {
  std::map<std::string, oci::Descriptor> out;
  for (const oci::Descriptor& layer : manifest.layers) {
    out[layer.annotations.at(std::string(kAnnotationFilePath))] = layer;
  }
  return out;
}

TEST(ChunkIndex, RoundTrips) {
  ChunkIndex index;
  index.chunker = small_chunks();
  index.tensor_aware = true;
  index.blob_size = 10000;
  index.blob_digest = sha256_of(std::vector<std::uint8_t>{1, 2, 3});
  for (std::uint32_t length : {4000U, 5000U, 1000U}) {
    ChunkIndexEntry entry;
    entry.offset =
        index.chunks.empty() ? 0 : index.chunks.back().offset + index.chunks.back().length;
    entry.length = length;
    entry.digest = sha256_of(std::vector<std::uint8_t>(length, static_cast<std::uint8_t>(length)));
    index.chunks.push_back(entry);
  }
  const auto bytes = serialize_chunk_index(index);
  EXPECT_EQ(bytes.size(), 88U + 3U * 36U);
  auto parsed = parse_chunk_index(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed->blob_digest, index.blob_digest);
  EXPECT_EQ(parsed->blob_size, index.blob_size);
  EXPECT_TRUE(parsed->tensor_aware);
  EXPECT_EQ(parsed->chunker.algorithm, index.chunker.algorithm);
  EXPECT_EQ(parsed->chunker.min_size, index.chunker.min_size);
  EXPECT_EQ(parsed->chunker.avg_size, index.chunker.avg_size);
  EXPECT_EQ(parsed->chunker.max_size, index.chunker.max_size);
  EXPECT_EQ(parsed->chunker.level, index.chunker.level);
  EXPECT_EQ(parsed->chunks, index.chunks);
}

TEST(ChunkIndex, RefusesHostileBytes) {
  ChunkIndex index;
  index.chunker = small_chunks();
  index.blob_size = 3000;
  index.chunks = {{0, 1000, {}}, {1000, 2000, {}}};
  const auto good = serialize_chunk_index(index);
  ASSERT_TRUE(parse_chunk_index(good).ok());
  const auto expect_error = [](std::vector<std::uint8_t> bytes, const std::string& needle) {
    auto parsed = parse_chunk_index(bytes);
    ASSERT_FALSE(parsed.ok()) << needle;
    EXPECT_NE(parsed.error().message.find(needle), std::string::npos) << parsed.error().message;
  };
  expect_error({good.begin(), good.begin() + 40}, "shorter than its 88-byte header");
  auto bad = good;
  bad[0] = 'X';
  expect_error(bad, "bad magic");
  bad = good;
  bad[8] = 9;
  expect_error(bad, "version 9");
  bad = good;
  bad[80] = 200;  // chunk count far above what the bytes hold
  expect_error(bad, "says 200 chunks");
  expect_error({good.begin(), good.end() - 1}, "bytes of entries");
  bad = good;
  bad[88] = bad[89] = 0;  // first chunk: length 0
  expect_error(bad, "chunk 0 has length 0");
  bad = good;
  bad[40] = 0xFF;  // blob size no longer the sum of the lengths
  expect_error(bad, "chunks cover 3000 bytes");
  bad = good;
  bad[24] = 0;
  bad[25] = 0;
  bad[26] = 0;  // avg size 0 < min size
  expect_error(bad, "chunker parameters");
  bad = good;
  bad[12] = 4;
  expect_error(bad, "unknown flags");
}

TEST(ModelPackage, DockerFormatFollowsModelRunner) {
  test::ScratchDir dir;
  write_model(dir.file("model"));
  PackageOptions options;
  options.chunker = small_chunks();
  options.created = "2025-06-01T12:00:00Z";
  const Packaged packaged = package(dir.file("model"), dir.file("layout"), options);
  const oci::Manifest& manifest = packaged.manifest;
  EXPECT_EQ(manifest.media_type, oci::kMediaTypeImageManifest);
  EXPECT_EQ(manifest.config.media_type, kMediaTypeDockerConfigV02);
  EXPECT_TRUE(manifest.artifact_type.empty());
  const auto layers = layers_by_path(manifest);
  ASSERT_EQ(layers.size(), 6U);  // .hidden left out
  EXPECT_EQ(layers.at("model-00001-of-00002.safetensors").media_type, kMediaTypeDockerSafetensors);
  EXPECT_EQ(layers.at("model-00002-of-00002.safetensors").media_type, kMediaTypeDockerSafetensors);
  EXPECT_EQ(layers.at("config.json").media_type, kMediaTypeDockerModelFile);
  EXPECT_EQ(layers.at("sub/tokenizer.json").media_type, kMediaTypeDockerModelFile);
  EXPECT_EQ(layers.at("README.md").media_type, kMediaTypeDockerModelFile);
  EXPECT_EQ(layers.at("LICENSE").media_type, kMediaTypeDockerLicense);
  // Layers are the raw files: their digests are the files' SHA-256.
  for (const auto& [path, layer] : layers) {
    const auto bytes = test::read_file(dir.file("model/" + path));
    EXPECT_EQ(layer.digest, sha256_of(bytes)) << path;
    EXPECT_EQ(layer.size, bytes.size()) << path;
  }
  const Json& config = packaged.config["config"];
  EXPECT_EQ(config["format"], "safetensors");
  EXPECT_EQ(config["quantization"], "F32");
  EXPECT_EQ(config["parameters"], "98.30K");  // 6 tensors x 16384 elements
  EXPECT_EQ(config["context_size"], 2048);
  EXPECT_EQ(config["safetensors"]["tensor_count"], "6");
  EXPECT_EQ(packaged.config["descriptor"]["created"], "2025-06-01T12:00:00Z");
  EXPECT_EQ(packaged.config["rootfs"]["type"], "rootfs");
  ASSERT_EQ(packaged.config["rootfs"]["diff_ids"].size(), manifest.layers.size());
  for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
    EXPECT_EQ(packaged.config["rootfs"]["diff_ids"][i], manifest.layers[i].digest.to_string());
  }
  const std::uint64_t weights = layers.at("model-00001-of-00002.safetensors").size +
                                layers.at("model-00002-of-00002.safetensors").size;
  char size[32];
  std::snprintf(size, sizeof size, "%.2fkB", static_cast<double>(weights) / 1000.0);
  EXPECT_EQ(config["size"], size);
}

TEST(ModelPackage, ModelPackFormatUsesCncfTypes) {
  test::ScratchDir dir;
  write_model(dir.file("model"));
  PackageOptions options;
  options.format = ArtifactFormat::kModelPack;
  options.chunker = small_chunks();
  options.name = "tiny";
  const Packaged packaged = package(dir.file("model"), dir.file("layout"), options);
  EXPECT_EQ(packaged.manifest.artifact_type, kArtifactTypeModelPack);
  EXPECT_EQ(packaged.manifest.config.media_type, kMediaTypeModelPackConfig);
  const auto layers = layers_by_path(packaged.manifest);
  EXPECT_EQ(layers.at("model-00001-of-00002.safetensors").media_type, kMediaTypeModelPackWeightRaw);
  EXPECT_EQ(layers.at("config.json").media_type, kMediaTypeModelPackWeightConfigRaw);
  EXPECT_EQ(layers.at("sub/tokenizer.json").media_type, kMediaTypeModelPackWeightConfigRaw);
  EXPECT_EQ(layers.at("README.md").media_type, kMediaTypeModelPackDocRaw);
  EXPECT_EQ(layers.at("LICENSE").media_type, kMediaTypeModelPackDocRaw);
  EXPECT_EQ(packaged.config["descriptor"]["createdAt"], "1970-01-01T00:00:00Z");
  EXPECT_EQ(packaged.config["descriptor"]["name"], "tiny");
  EXPECT_EQ(packaged.config["modelfs"]["type"], "layers");
  EXPECT_EQ(packaged.config["modelfs"]["diffIds"].size(), 6U);
  EXPECT_EQ(packaged.config["config"]["format"], "safetensors");
  EXPECT_EQ(packaged.config["config"]["paramSize"], "98.30k");
  EXPECT_EQ(packaged.config["config"]["precision"], "f32");
}

TEST(ModelPackage, DigestsDependOnlyOnInputsAndCreatedTime) {
  test::ScratchDir dir;
  write_model(dir.file("model"));
  PackageOptions options;
  options.chunker = small_chunks();
  const Packaged first = package(dir.file("model"), dir.file("one"), options);
  std::filesystem::last_write_time(dir.file("model/config.json"),
                                   std::filesystem::file_time_type::clock::now());
  const Packaged second = package(dir.file("model"), dir.file("two"), options);
  EXPECT_EQ(first.report.manifest.digest, second.report.manifest.digest);
  EXPECT_EQ(first.report.chunk_index_manifest.digest, second.report.chunk_index_manifest.digest);
  options.created = "2030-01-01T00:00:00Z";
  const Packaged third = package(dir.file("model"), dir.file("three"), options);
  EXPECT_NE(first.report.manifest.digest, third.report.manifest.digest);
  options.created = "yesterday";
  auto layout = oci::OciLayout::open_or_create(dir.file("four"));
  ASSERT_TRUE(layout.ok());
  auto refused = package_model(dir.file("model"), *layout, "v1", options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
}

TEST(ModelPackage, ChunkIndexReferrerTilesEveryWeightBlob) {
  test::ScratchDir dir;
  write_model(dir.file("model"));
  PackageOptions options;
  options.chunker = small_chunks();
  const Packaged packaged = package(dir.file("model"), dir.file("layout"), options);
  auto layout = oci::OciLayout::open(dir.file("layout"));
  ASSERT_TRUE(layout.ok());
  auto referrer = layout->resolve(referrers_fallback_tag(packaged.report.manifest.digest));
  ASSERT_TRUE(referrer.ok()) << referrer.error().to_string();
  EXPECT_EQ(referrer->artifact_type, kArtifactTypeChunkIndex);
  auto manifest = oci::parse_manifest(*layout->read_blob(*referrer));
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->artifact_type, kArtifactTypeChunkIndex);
  ASSERT_TRUE(manifest->subject.has_value());
  EXPECT_EQ(manifest->subject->digest, packaged.report.manifest.digest);
  EXPECT_EQ(manifest->config.media_type, kMediaTypeEmptyJson);
  ASSERT_EQ(manifest->layers.size(), 2U);  // the two shards
  for (const oci::Descriptor& layer : manifest->layers) {
    EXPECT_EQ(layer.media_type, kMediaTypeChunkIndex);
    auto index = parse_chunk_index(test::read_file(layout->blob_path(layer.digest)));
    ASSERT_TRUE(index.ok()) << index.error().to_string();
    EXPECT_EQ(layer.annotations.at(std::string(kAnnotationIndexedBlob)),
              index->blob_digest.to_string());
    const auto file = test::read_file(
        dir.file("model/" + layer.annotations.at(std::string(kAnnotationFilePath))));
    EXPECT_EQ(index->blob_digest, sha256_of(file));
    EXPECT_EQ(index->blob_size, file.size());
    EXPECT_TRUE(index->tensor_aware);
    std::set<std::uint64_t> cuts;
    for (const ChunkIndexEntry& chunk : index->chunks) {
      ASSERT_LE(chunk.offset + chunk.length, file.size());
      EXPECT_EQ(chunk.digest, sha256_of(ByteSpan(file).subspan(chunk.offset, chunk.length)));
      cuts.insert(chunk.offset);
    }
    // Every tensor starts a chunk (tensor-aware cuts).
    auto header = parse_model_layout(file, file.size());
    ASSERT_TRUE(header.ok());
    for (const TensorInfo& tensor : header->tensors) EXPECT_TRUE(cuts.contains(tensor.begin));
  }
}

TEST(ModelPackage, FineTuneNextToItsBaseAddsOnlyTheChangedTensor) {
  test::ScratchDir dir;
  write_model(dir.file("base"));
  write_model(dir.file("tuned"), {"b.k"});
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(dir.file("store"), store_options);
  ASSERT_TRUE(store.ok());
  PackageOptions options;
  options.chunker = small_chunks();
  options.store = &*store;
  const Packaged base = package(dir.file("base"), dir.file("layout"), options, "base");
  EXPECT_EQ(base.report.new_raw_bytes, base.report.weight_bytes);
  const Packaged tuned = package(dir.file("tuned"), dir.file("layout"), options, "tuned");
  EXPECT_EQ(tuned.report.new_raw_bytes, kTensorElements * 4);
  // The store holds each weight file as a layer that exports back byte for byte.
  for (const PackagedFile& file : tuned.report.files) {
    if (!file.weight) continue;
    std::vector<std::uint8_t> exported;
    auto done = export_layer_tar(*store, file.descriptor.digest, [&](ByteSpan bytes) {
      exported.insert(exported.end(), bytes.begin(), bytes.end());
      return Result<void>();
    });
    ASSERT_TRUE(done.ok()) << done.error().to_string();
    EXPECT_EQ(exported, test::read_file(dir.file("tuned/" + file.path)));
  }
}

// A GGUF v3 file: architecture, file type Q8_0 (7), context length, two F32 tensors.
std::vector<std::uint8_t> gguf_file() {
  std::vector<std::uint8_t> out;
  const auto raw = [&out](std::uint64_t value, unsigned width) {
    for (unsigned i = 0; i < width; ++i)
      out.push_back(static_cast<std::uint8_t>(value >> (8U * i)));
  };
  const auto text = [&](const std::string& value) {
    raw(value.size(), 8);
    out.insert(out.end(), value.begin(), value.end());
  };
  out = {'G', 'G', 'U', 'F'};
  raw(3, 4);
  raw(2, 8);  // tensors
  raw(3, 8);  // metadata entries
  text("general.architecture");
  raw(8, 4);
  text("llama");
  text("general.file_type");
  raw(4, 4);
  raw(7, 4);
  text("llama.context_length");
  raw(4, 4);
  raw(4096, 4);
  text("token_embd.weight");
  raw(2, 4);
  raw(64, 8);
  raw(32, 8);
  raw(0, 4);  // F32
  raw(0, 8);
  text("output.weight");
  raw(1, 4);
  raw(1024, 8);
  raw(0, 4);
  raw(64 * 32 * 4, 8);
  while (out.size() % 32 != 0) out.push_back(0);
  const auto data = tensor_bytes("gguf", 64 * 32 + 1024);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

TEST(ModelPackage, ShardedGgufFileTakesItsSiblings) {
  test::ScratchDir dir;
  std::filesystem::create_directories(dir.file("g"));
  test::write_file(dir.file("g/tiny-00001-of-00002.gguf"), gguf_file());
  test::write_file(dir.file("g/tiny-00002-of-00002.gguf"), gguf_file());
  PackageOptions options;
  options.chunker = small_chunks();
  const Packaged packaged =
      package(dir.file("g/tiny-00001-of-00002.gguf"), dir.file("layout"), options);
  ASSERT_EQ(packaged.manifest.layers.size(), 2U);
  for (const oci::Descriptor& layer : packaged.manifest.layers) {
    EXPECT_EQ(layer.media_type, kMediaTypeDockerGguf);
  }
  const Json& config = packaged.config["config"];
  EXPECT_EQ(config["format"], "gguf");
  EXPECT_EQ(config["architecture"], "llama");
  EXPECT_EQ(config["quantization"], "Q8_0");
  EXPECT_EQ(config["context_size"], 4096);
  EXPECT_EQ(config["parameters"], "6.14K");  // two shards x (64 x 32 + 1024)
  EXPECT_EQ(config["gguf"]["general.architecture"], "llama");

  std::filesystem::remove(dir.file("g/tiny-00002-of-00002.gguf"));
  auto layout = oci::OciLayout::open_or_create(dir.file("layout2"));
  ASSERT_TRUE(layout.ok());
  auto incomplete = package_model(dir.file("g/tiny-00001-of-00002.gguf"), *layout, "v1", options);
  ASSERT_FALSE(incomplete.ok());
  EXPECT_NE(incomplete.error().message.find("incomplete shard set"), std::string::npos);
}

TEST(ModelPackage, RefusesADirectoryWithoutWeights) {
  test::ScratchDir dir;
  std::filesystem::create_directories(dir.file("empty"));
  write_text(dir.file("empty/config.json"), "{}");
  auto layout = oci::OciLayout::open_or_create(dir.file("layout"));
  ASSERT_TRUE(layout.ok());
  auto refused = package_model(dir.file("empty"), *layout, "v1", PackageOptions{});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("no weight files"), std::string::npos);
}

}  // namespace
}  // namespace strata::model
