// Model fine-tunes pulled as deltas (issue 16, docs/DELTA.md, registry/model_blob_pull.cpp): a
// pusher's store holds a base model and a full and a partial fine-tune coded against it; the
// fine-tunes' delta referrers (write_model_delta_referrer) are served with the layout by the test
// registry (tests/hostile_registry.h serve_layout, which has no referrers API, so each model's
// fallback tag is an index listing its chunk index and delta referrers, as `model push` leaves
// it). A client that pulled the base pulls each fine-tune with and without deltas: far fewer
// bytes with them, the report's "without deltas" equal to the real pull without, files
// byte-identical, the store verified clean; a client without the base fetches every chunk whole. A
// tampered frames blob (every delta decodes to other bytes) falls back to the chunks' own ranges; a
// hostile index is refused and the pull goes on without deltas; a tampered referrer and a registry
// lying about the blob fail the pull naming the chunk, with nothing written to --out.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "strata/strata.h"
#include "tests/hostile_registry.h"
#include "tests/layer_fixtures.h"
#include "tests/model/bf16.h"
#include "tests/test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

using test::from_bf16;
using test::to_bf16;

enum class Tune : std::uint8_t { kBase, kFull, kPartial };

// Tensors "a" (BF16, 128 Ki values), "b" (BF16, 64 Ki values) and "c" (I8, 32 KiB) of normal
// weights. kFull moves every value of a and b by N(0, 0.02 std) and every 64th byte of c;
// kPartial only b.
std::vector<std::uint8_t> model_file(Tune tune) {
  std::mt19937_64 random(21);
  std::normal_distribution<float> weight(0.0F, 0.02F);
  std::mt19937_64 noise_random(22);
  std::normal_distribution<float> noise(0.0F, 0.0004F);
  std::vector<std::uint8_t> data;
  const auto bf16_tensor = [&](int values, bool tuned) {
    for (int i = 0; i < values; ++i) {
      float value = from_bf16(to_bf16(weight(random)));
      if (tuned) value += noise(noise_random);
      const std::uint16_t half = to_bf16(value);
      data.push_back(static_cast<std::uint8_t>(half));
      data.push_back(static_cast<std::uint8_t>(half >> 8U));
    }
  };
  bf16_tensor(128 * 1024, tune == Tune::kFull);
  bf16_tensor(64 * 1024, tune != Tune::kBase);
  const auto bytes = test::splitmix64_bytes(23, 32 * 1024);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const bool tuned = tune == Tune::kFull && i % 64 == 0;
    data.push_back(static_cast<std::uint8_t>(bytes[i] % 16 + (tuned ? 1 : 0)));
  }
  const std::string header =
      R"({"a":{"dtype":"BF16","shape":[128,1024],"data_offsets":[0,262144]},)"
      R"("b":{"dtype":"BF16","shape":[64,1024],"data_offsets":[262144,393216]},)"
      R"("c":{"dtype":"I8","shape":[32768],"data_offsets":[393216,425984]}})";
  return test::safetensors_file(header, data);
}

ByteSpan span_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

ChunkStore open_store(const std::string& path) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = ChunkStore::open(path, options);
  EXPECT_TRUE(store.ok()) << store.error().to_string();
  return std::move(store).value();
}

// The pusher's side, made once: a layout with the base and both fine-tunes (packaged through one
// store, the fine-tunes as deltas against the base) and each fine-tune's delta referrer.
struct Published {
  test::ScratchDir scratch;
  std::string layout;
  std::map<std::string, std::vector<std::uint8_t>> weights;  // tag -> model.safetensors
  std::map<std::string, oci::Descriptor> manifests;          // tag -> model manifest
  std::map<std::string, oci::Descriptor> chunk_indexes;      // tag -> chunk index referrer
  std::map<std::string, fastpull::DeltaReferrerReport> deltas;
};

void package(Published& published, ChunkStore& store, oci::OciLayout& layout,
             const std::string& tag, Tune tune, const std::optional<Digest>& base) {
  const std::string dir = published.scratch.file("src-" + tag);
  fs::create_directories(dir);
  published.weights[tag] = model_file(tune);
  test::write_file(dir + "/model.safetensors", published.weights[tag]);
  test::write_file(dir + "/config.json", std::vector<std::uint8_t>{'{', '}'});
  model::PackageOptions options;
  options.store = &store;
  options.chunker.min_size = 2048;
  options.chunker.avg_size = 8192;
  options.chunker.max_size = 32768;
  if (base) {
    options.delta.base = model::ModelDeltaBaseKind::kFiles;
    options.delta.files = {*base};
  }
  auto report = model::package_model(dir, layout, tag, options);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  if (base) {
    ASSERT_GT(report->delta_chunks, 0U) << tag;
  }
  published.manifests[tag] = report->manifest;
  published.chunk_indexes[tag] = report->chunk_index_manifest;
}

void publish(Published& p) {
  p.layout = p.scratch.file("layout");
  auto layout = oci::OciLayout::open_or_create(p.layout);
  ASSERT_TRUE(layout.ok());
  ChunkStore store = open_store(p.scratch.file("pusher"));
  package(p, store, *layout, "base", Tune::kBase, std::nullopt);
  const Digest base = sha256_of(p.weights["base"]);
  package(p, store, *layout, "full", Tune::kFull, base);
  package(p, store, *layout, "partial", Tune::kPartial, base);
  for (const std::string tag : {"full", "partial"}) {
    auto written = model::write_model_delta_referrer(store, *layout, tag);
    ASSERT_TRUE(written.ok()) << written.error().to_string();
    p.deltas[tag] = *written;
  }
}

const Published& published() {
  static Published made;
  static const bool done = [] {
    publish(made);
    return true;
  }();
  (void)done;
  return made;
}

// Fallback-tag indexes as `model push` leaves them on a registry without the referrers API: each
// model's chunk index referrer, and for a fine-tune `delta` (default: its own) unless null.
using Overrides = std::map<std::string, std::pair<std::string, std::string>>;

Overrides fallback_tags(const std::map<std::string, const oci::Descriptor*>& delta_for = {}) {
  const Published& p = published();
  Overrides overrides;
  for (const auto& [tag, manifest] : p.manifests) {
    oci::Index index;
    oci::Descriptor chunk_index = p.chunk_indexes.at(tag);
    chunk_index.artifact_type = std::string(model::kArtifactTypeChunkIndex);
    index.manifests.push_back(chunk_index);
    const oci::Descriptor* delta = nullptr;
    if (const auto own = p.deltas.find(tag); own != p.deltas.end()) delta = &own->second.referrer;
    if (const auto other = delta_for.find(tag); other != delta_for.end()) delta = other->second;
    if (delta != nullptr) {
      oci::Descriptor entry = *delta;
      entry.artifact_type = std::string(fastpull::kArtifactTypeDelta);
      index.manifests.push_back(entry);
    }
    overrides[model::referrers_fallback_tag(manifest.digest)] = {
        std::string(oci::kMediaTypeImageIndex), oci::write_index(index)};
  }
  return overrides;
}

// A client store holding the base model (pulled from the registry), copied to `dir`.
class Client {
 public:
  explicit Client(const std::string& host) : host_(host) {}

  Result<model::ModelPullReport> pull(
      const std::string& store_dir, const std::string& tag, const std::string& out,
      bool deltas = true, std::size_t ranges_per_request = 64,
      const std::function<void(model::ModelPullOptions&)>& tweak = {}) {
    auto client = registry::RegistryClient::create(host_, plain());
    if (!client.ok()) return std::move(client).error();
    auto reference = registry::parse_image_reference(host_ + "/models/tiny:" + tag);
    if (!reference.ok()) return std::move(reference).error();
    ChunkStore store = open_store(store_dir);
    model::ModelPullOptions options;
    options.out_directory = out;
    options.deltas = deltas;
    options.max_ranges_per_request = ranges_per_request;
    if (tweak) tweak(options);
    return model::pull_model(*client, *reference, store, options);
  }

 private:
  static registry::ClientOptions plain() {
    registry::ClientOptions options;
    options.plain_http = true;
    return options;
  }
  std::string host_;
};

// `scratch`/NAME: a store that pulled the base model from `host`.
std::string store_with_base(const test::ScratchDir& scratch, const std::string& host,
                            const std::string& name) {
  const std::string dir = scratch.file(name);
  auto pulled = Client(host).pull(dir, "base", "");
  EXPECT_TRUE(pulled.ok()) << pulled.error().to_string();
  return dir;
}

void expect_clean(const std::string& store_dir) {
  auto store = ChunkStore::open(store_dir);
  ASSERT_TRUE(store.ok());
  auto verified = store->verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();
}

std::uint64_t delta_chunks(const model::ModelPullReport& report) {
  std::uint64_t total = 0;
  for (const model::PulledModelFile& file : report.files) total += file.delta_chunks;
  return total;
}

std::uint64_t delta_fallbacks(const model::ModelPullReport& report) {
  std::uint64_t total = 0;
  for (const model::PulledModelFile& file : report.files) total += file.delta_fallbacks;
  return total;
}

TEST(ModelDeltaPull, FineTunesComeAsDeltasByteExactAndFarSmaller) {
  testing::HostileRegistry registry(testing::serve_layout(published().layout, {}, fallback_tags()));
  test::ScratchDir scratch;
  const std::string held = store_with_base(scratch, registry.host(), "held");
  for (const std::string tag : {"full", "partial"}) {
    SCOPED_TRACE(tag);
    const fastpull::DeltaReferrerReport& referrer = published().deltas.at(tag);
    ASSERT_GT(referrer.delta_chunks, 0U);
    const std::string with_store = scratch.file(tag + "-with");
    const std::string without_store = scratch.file(tag + "-without");
    fs::copy(held, with_store, fs::copy_options::recursive);
    fs::copy(held, without_store, fs::copy_options::recursive);
    const std::string out = scratch.file(tag + "-out");
    auto with = Client(registry.host()).pull(with_store, tag, out);
    ASSERT_TRUE(with.ok()) << with.error().to_string();
    auto without = Client(registry.host()).pull(without_store, tag, "", false);
    ASSERT_TRUE(without.ok()) << without.error().to_string();

    EXPECT_EQ(with->delta_referrer, "tag");
    EXPECT_EQ(with->delta_refused, "");
    EXPECT_EQ(delta_chunks(*with), referrer.delta_chunks);
    EXPECT_EQ(delta_fallbacks(*with), 0U);
    EXPECT_EQ(without->delta_referrer, "");
    EXPECT_EQ(delta_chunks(*without), 0U);
    // The pull's own figure without deltas is what the pull without them fetched.
    EXPECT_EQ(with->bytes_fetched_without_deltas, without->bytes_fetched);
    EXPECT_LT(with->bytes_fetched * 2, without->bytes_fetched)
        << with->bytes_fetched << " bytes with deltas, " << without->bytes_fetched << " without";
    EXPECT_EQ(test::read_file(out + "/model.safetensors"), published().weights.at(tag));
    for (const std::string& store : {with_store, without_store}) expect_clean(store);
    std::uint64_t stored_as_deltas = 0;
    for (const auto& file : with->files) stored_as_deltas += file.delta_stored_chunks;
    EXPECT_EQ(stored_as_deltas, referrer.delta_chunks);
  }
}

TEST(ModelDeltaPull, WithoutTheBaseEveryChunkComesWhole) {
  testing::HostileRegistry registry(testing::serve_layout(published().layout, {}, fallback_tags()));
  test::ScratchDir scratch;
  const std::string out = scratch.file("out");
  auto pulled = Client(registry.host()).pull(scratch.file("fresh"), "full", out);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(pulled->delta_referrer, "tag");  // found, but no base is held
  EXPECT_EQ(delta_chunks(*pulled), 0U);
  EXPECT_EQ(delta_fallbacks(*pulled), 0U);
  EXPECT_EQ(pulled->bytes_fetched_without_deltas + pulled->delta_referrer_bytes,
            pulled->bytes_fetched);
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), published().weights.at("full"));
  expect_clean(scratch.file("fresh"));
}

// A copy of `tag`'s delta referrer in the layout whose frames blob has one byte of every delta
// flipped, with an index and manifest consistent with it (so only decoding can tell).
oci::Descriptor tampered_referrer(const std::string& tag) {
  const Published& p = published();
  auto layout = oci::OciLayout::open(p.layout);
  EXPECT_TRUE(layout.ok());
  auto manifest_bytes = layout->read_blob(p.deltas.at(tag).referrer);
  EXPECT_TRUE(manifest_bytes.ok());
  auto manifest = oci::parse_manifest(*manifest_bytes);
  EXPECT_TRUE(manifest.ok());
  auto index_bytes = layout->read_blob(manifest->layers[0]);
  auto frames = layout->read_blob(manifest->layers[1]);
  EXPECT_TRUE(index_bytes.ok() && frames.ok());
  auto index = fastpull::parse_delta_index(*index_bytes);
  EXPECT_TRUE(index.ok());
  for (const fastpull::DeltaEntry& entry : index->entries) {
    (*frames)[entry.offset + entry.length / 2] ^= 0x5A;
  }
  auto frames_blob = layout->write_blob(fastpull::kMediaTypeDeltaFrames, *frames);
  EXPECT_TRUE(frames_blob.ok());
  index->frames_digest = frames_blob->digest;
  const std::string index_json = fastpull::write_delta_index(*index);
  auto index_blob = layout->write_blob(fastpull::kMediaTypeDeltaIndex, span_of(index_json));
  EXPECT_TRUE(index_blob.ok());
  manifest->layers = {*index_blob, *frames_blob};
  auto written =
      layout->write_blob(oci::kMediaTypeImageManifest, span_of(oci::write_manifest(*manifest)));
  EXPECT_TRUE(written.ok());
  return *written;
}

TEST(ModelDeltaPull, DeltasDecodingToOtherBytesFallBackToTheirChunks) {
  const oci::Descriptor tampered = tampered_referrer("full");
  testing::HostileRegistry registry(
      testing::serve_layout(published().layout, {}, fallback_tags({{"full", &tampered}})));
  test::ScratchDir scratch;
  const std::string store = store_with_base(scratch, registry.host(), "held");
  const std::string out = scratch.file("out");
  // One range per request: every frames range is a 206 answer, nothing checks it but decoding.
  auto pulled = Client(registry.host()).pull(store, "full", out, true, 1);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(pulled->delta_referrer, "tag");
  EXPECT_EQ(delta_chunks(*pulled), 0U);
  EXPECT_EQ(delta_fallbacks(*pulled), published().deltas.at("full").delta_chunks);
  const model::PulledModelFile& weights = pulled->files.back();
  EXPECT_NE(weights.delta_fallback_reason.find("chunk sha256:"), std::string::npos)
      << weights.delta_fallback_reason;
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), published().weights.at("full"));
  expect_clean(store);
}

TEST(ModelDeltaPull, AHostileIndexIsRefusedAndThePullGoesOnWithoutDeltas) {
  const Published& p = published();
  auto layout = oci::OciLayout::open(p.layout);
  ASSERT_TRUE(layout.ok());
  auto manifest = oci::parse_manifest(*layout->read_blob(p.deltas.at("partial").referrer));
  ASSERT_TRUE(manifest.ok());
  auto index = fastpull::parse_delta_index(*layout->read_blob(manifest->layers[0]));
  ASSERT_TRUE(index.ok());
  index->entries.front().base = index->entries.front().chunk;  // a chunk its own base
  auto index_blob = layout->write_blob(fastpull::kMediaTypeDeltaIndex,
                                       span_of(fastpull::write_delta_index(*index)));
  ASSERT_TRUE(index_blob.ok());
  manifest->layers[0] = *index_blob;
  auto hostile =
      layout->write_blob(oci::kMediaTypeImageManifest, span_of(oci::write_manifest(*manifest)));
  ASSERT_TRUE(hostile.ok());
  // And a referrer of another model offered for "full": its subject is not full's manifest.
  const oci::Descriptor& foreign = p.deltas.at("partial").referrer;
  testing::HostileRegistry registry(testing::serve_layout(
      p.layout, {}, fallback_tags({{"partial", &*hostile}, {"full", &foreign}})));
  test::ScratchDir scratch;
  const std::string store = store_with_base(scratch, registry.host(), "held");
  for (const std::string tag : {"partial", "full"}) {
    const std::string out = scratch.file("out-" + tag);
    auto pulled = Client(registry.host()).pull(store, tag, out);
    ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
    EXPECT_EQ(pulled->delta_referrer, "");
    EXPECT_NE(pulled->delta_refused.find(tag == "partial" ? "names itself as its base"
                                                          : "as its subject"),
              std::string::npos)
        << pulled->delta_refused;
    EXPECT_EQ(delta_chunks(*pulled), 0U);
    EXPECT_EQ(test::read_file(out + "/model.safetensors"), published().weights.at(tag));
  }
  expect_clean(store);
}

TEST(ModelDeltaPull, ABadDeltaAndALyingBlobFailNamingTheChunkAndLeaveOutEmpty) {
  const Published& p = published();
  const oci::Descriptor tampered = tampered_referrer("partial");
  // The registry serves other bytes of the fine-tune's weight blob (same size).
  std::vector<std::uint8_t> lie = p.weights.at("partial");
  for (std::size_t i = 0; i < lie.size(); i += 512) lie[i] ^= 0x01;
  const std::string weight_digest = sha256_of(p.weights.at("partial")).to_string();
  testing::HostileRegistry registry(
      testing::serve_layout(p.layout, {{weight_digest, std::string(lie.begin(), lie.end())}},
                            fallback_tags({{"partial", &tampered}})));
  test::ScratchDir scratch;
  const std::string store = store_with_base(scratch, registry.host(), "held");
  const std::string out = scratch.file("out");
  auto pulled = Client(registry.host()).pull(store, "partial", out, true, 1);
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.error().code, ErrorCode::kDigestMismatch) << pulled.error().to_string();
  EXPECT_NE(pulled.error().message.find("model.safetensors: chunk "), std::string::npos)
      << pulled.error().message;
  EXPECT_NE(pulled.error().message.find("sha256:"), std::string::npos) << pulled.error().message;
  // config.json came before the weights, but nothing moves into --out before every file is whole.
  ASSERT_TRUE(fs::is_directory(out));
  EXPECT_TRUE(fs::is_empty(out)) << fs::directory_iterator(out)->path();
  expect_clean(store);
}

// Small windows and batches, several in flight (registry/model_blob_pull.cpp): each window's
// chunks come in many batches fetched, checked and written at their offsets by four threads at
// once, and held chunks are read back in slices of the window's size.
void small_batches(model::ModelPullOptions& options) {
  options.fetch_jobs = 4;
  options.batch_bytes = 16 * 1024;
  options.window_bytes = 64 * 1024;
}

TEST(ModelDeltaPull, BatchesInFlightAtOnceGiveTheSameFilesAndStore) {
  const Published& p = published();
  testing::HostileRegistry registry(testing::serve_layout(p.layout, {}, fallback_tags()));
  test::ScratchDir scratch;
  // Cold: every chunk of the base comes whole, in many batches.
  const std::string cold = scratch.file("cold");
  const std::string cold_out = scratch.file("cold-out");
  auto pulled = Client(registry.host()).pull(cold, "base", cold_out, true, 2, small_batches);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  const model::PulledModelFile& weights = pulled->files.back();
  ASSERT_TRUE(weights.indexed);
  EXPECT_GT(weights.chunks_fetched, 8U);
  EXPECT_GT(pulled->wire.requests, 8U);
  EXPECT_EQ(test::read_file(cold_out + "/model.safetensors"), p.weights.at("base"));
  expect_clean(cold);
  // Base held: the full fine-tune's deltas come in batches too, decoded on the fetch threads.
  const std::string out = scratch.file("out");
  auto tuned = Client(registry.host()).pull(cold, "full", out, true, 2, small_batches);
  ASSERT_TRUE(tuned.ok()) << tuned.error().to_string();
  EXPECT_GT(delta_chunks(*tuned), 1U);
  EXPECT_EQ(delta_fallbacks(*tuned), 0U);
  EXPECT_EQ(test::read_file(out + "/model.safetensors"), p.weights.at("full"));
  expect_clean(cold);
}

TEST(ModelDeltaPull, OneFailingBatchOfSeveralFailsNamingTheBlobAndLeavesOutEmpty) {
  const Published& p = published();
  const std::string weight_digest = sha256_of(p.weights.at("base")).to_string();
  const std::uint64_t half = p.weights.at("base").size() / 2;
  testing::Handler layout = testing::serve_layout(p.layout, {}, fallback_tags());
  // Ranges of the weight blob starting in its second half are refused (403, not retried).
  testing::HostileRegistry registry(
      [layout, weight_digest, half](const testing::SeenRequest& seen) {
        const auto range = seen.headers.find("range");
        if (seen.target.find(weight_digest) != std::string::npos && range != seen.headers.end() &&
            std::stoull(range->second.substr(range->second.find('=') + 1)) >= half) {
          return testing::error_reply(403, "DENIED", "no ranges past the middle");
        }
        return layout(seen);
      });
  test::ScratchDir scratch;
  const std::string store = scratch.file("store");
  const std::string out = scratch.file("out");
  auto pulled = Client(registry.host()).pull(store, "base", out, true, 2, small_batches);
  ASSERT_FALSE(pulled.ok());
  EXPECT_NE(pulled.error().message.find("model.safetensors: blob " + weight_digest),
            std::string::npos)
      << pulled.error().message;
  ASSERT_TRUE(fs::is_directory(out));
  EXPECT_TRUE(fs::is_empty(out)) << fs::directory_iterator(out)->path();
  expect_clean(store);
  // Nothing of the weight blob was committed: the next pull fetches it again.
  auto store_after = ChunkStore::open(store);
  ASSERT_TRUE(store_after.ok());
  EXPECT_FALSE(store_after->find_layer_by_diff_id(sha256_of(p.weights.at("base"))).ok());
}

}  // namespace
}  // namespace strata
