// The dedup engine end to end: every reference OCI layer ingests to its published diff_id and
// exports byte-exact; the TBB pipeline's recipe equals the single-threaded reference path for any
// thread count and batch size (also where the batches' read blocks split header groups, chunks,
// files held back as possible models, and chunked trailing bytes); re-ingesting adds nothing and a
// small change adds little; bad input
// fails with a clear error and leaves the store as it was (no layer, verify clean).
#include <gtest/gtest.h>

#include <array>

#include "core/ingest/layer_recipe_builder.h"
#include "formats/compress/layer_source.h"
#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

ChunkStore open_store(const test::ScratchDir& dir) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = ChunkStore::open(dir.file("store"), options);
  if (!store.ok()) throw std::runtime_error(store.error().to_string());
  return std::move(store).value();
}

std::vector<std::uint8_t> export_bytes(const ChunkStore& store, const Digest& layer) {
  std::vector<std::uint8_t> out;
  auto report = export_layer_tar(store, layer, [&out](ByteSpan bytes) -> Result<void> {
    out.insert(out.end(), bytes.begin(), bytes.end());
    return {};
  });
  EXPECT_TRUE(report.ok()) << report.error().to_string();
  return out;
}

std::vector<std::uint8_t> decompressed(const std::string& blob_path) {
  auto source = LayerSource::open_path(blob_path);
  EXPECT_TRUE(source.ok());
  auto bytes = test::read_all(**source);
  EXPECT_TRUE(bytes.ok());
  return std::move(bytes).value();
}

// A tar of random files (some repeated) made by GNU tar, the independent producer.
std::vector<std::uint8_t> make_random_tar(const test::ScratchDir& dir, std::uint64_t seed,
                                          std::size_t files) {
  const std::string root = dir.file("tree" + std::to_string(seed));
  std::filesystem::create_directories(root + "/sub");
  for (std::size_t i = 0; i < files; ++i) {
    const std::size_t size = (i * 7919 + seed * 104729) % (700U << 10U);
    test::write_file(root + (i % 3 == 0 ? "/sub/f" : "/f") + std::to_string(i),
                     test::splitmix64_bytes(seed * 1000 + i % 5, size));
  }
  EXPECT_TRUE(
      test::shell(root, "tar --sort=name --format=pax -cf ../t" + std::to_string(seed) + ".tar ."));
  return test::read_file(dir.file("t" + std::to_string(seed) + ".tar"));
}

TEST(IngestEngine, ReferenceLayersRoundTripToTheirDiffIds) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  const auto layers = test::reference_layers();
  ASSERT_GE(layers.size(), 8U);
  for (const test::ReferenceLayer& layer : layers) {
    SCOPED_TRACE(layer.name);
    IngestOptions options;
    options.chunker.min_size = 4096;
    options.chunker.avg_size = 16384;
    options.chunker.max_size = 65536;
    auto report = ingest_layer_file(store, layer.blob_path, options);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    EXPECT_EQ(report->diff_id.to_string(), layer.diff_id);
    EXPECT_EQ(report->layer_digest.to_string(), layer.layer_digest);
    EXPECT_EQ(report->tar_bytes, layer.uncompressed_size);
    EXPECT_EQ(report->input_bytes, layer.layer_size);
    // Several blobs (gzip, zstd:chunked, eStargz) carry the same tar: each finds the one layer.
    const auto exported = export_bytes(store, report->layer_digest);
    EXPECT_EQ(exported, decompressed(layer.blob_path));
    EXPECT_EQ(sha256_of(exported).to_string(), layer.diff_id);
  }
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

TEST(IngestEngine, PipelineRecipeEqualsReferencePath) {
  test::ScratchDir dir;
  const auto tar = make_random_tar(dir, 3, 40);
  ChunkerOptions chunker;
  chunker.min_size = 2048;
  chunker.avg_size = 8192;
  chunker.max_size = 32768;
  MemoryByteSource reference_source(tar);
  auto reference = build_recipe_from_tar(
      reference_source, chunker, [](const Digest&, ByteSpan) -> Result<void> { return {}; });
  ASSERT_TRUE(reference.ok()) << reference.error().to_string();
  for (const unsigned threads : {1U, 2U, 5U}) {
    for (const std::size_t batch : {std::size_t{64} << 10U, std::size_t{4} << 20U}) {
      test::ScratchDir store_dir;
      ChunkStore store = open_store(store_dir);
      IngestOptions options;
      options.chunker = chunker;
      options.threads = threads;
      options.batch_bytes = batch;
      auto report = ingest_layer_bytes(store, tar, options);
      ASSERT_TRUE(report.ok()) << report.error().to_string();
      auto record = store.find_layer(report->diff_id);
      ASSERT_TRUE(record.ok());
      auto recipe = parse_recipe(record->recipe);
      ASSERT_TRUE(recipe.ok());
      EXPECT_EQ(*recipe, reference->recipe) << threads << " threads, batch " << batch;
      EXPECT_EQ(report->chunks, reference->chunks);
      EXPECT_EQ(report->entries, reference->entries);
    }
  }
}

// A hand-made tar whose parts cross the pipeline's read blocks at small batch sizes: a pax header
// group of 300 KiB, a file that looks like safetensors but never parses (held back, then cut
// plainly), a real safetensors file (cut tensor-aware), files of random bytes, and 1.5 MiB of
// trailing bytes (chunked past the 1 MiB kept inline).
std::vector<std::uint8_t> make_tar_across_blocks() {
  std::vector<std::uint8_t> tar =
      test::make_pax(test::pax_record("SCHILY.xattr.user.big", std::string(300U << 10U, 'x')));
  const auto add_file = [&tar](const std::string& name, const std::vector<std::uint8_t>& bytes) {
    test::append(tar, test::make_header(name, '0', bytes.size()));
    tar.insert(tar.end(), bytes.begin(), bytes.end());
    tar.resize((tar.size() + 511) / 512 * 512, 0);
  };
  add_file("a", test::splitmix64_bytes(1, 200000));
  // The safetensors length prefix (50000) and '{"', then noise: the header never parses.
  std::vector<std::uint8_t> lookalike = test::splitmix64_bytes(2, 300000);
  const std::array<std::uint8_t, 10> prefix = {0x50, 0xC3, 0, 0, 0, 0, 0, 0, '{', '"'};
  std::copy(prefix.begin(), prefix.end(), lookalike.begin());
  add_file("lookalike.safetensors", lookalike);
  const std::string header = R"({"w":{"dtype":"F32","shape":[60000],"data_offsets":[0,240000]}})";
  const auto weights = test::splitmix64_bytes(3, 240000);
  std::vector<std::uint8_t> model(8 + header.size() + weights.size(), 0);
  model[0] = static_cast<std::uint8_t>(header.size());
  std::copy(header.begin(), header.end(), model.begin() + 8);
  std::copy(weights.begin(), weights.end(),
            model.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  add_file("model.safetensors", model);
  for (std::uint64_t i = 0; i < 6; ++i) {
    add_file(std::string(1, static_cast<char>('b' + i)),
             test::splitmix64_bytes(10 + i, 30000 * i + 777));
  }
  test::append_end(tar);
  const auto trailing = test::splitmix64_bytes(4, 1536U << 10U);
  tar.insert(tar.end(), trailing.begin(), trailing.end());
  return tar;
}

TEST(IngestEngine, RecipeAcrossReadBlocksEqualsReferencePath) {
  const auto tar = make_tar_across_blocks();
  EntryChunkingOptions chunking;
  chunking.chunker.min_size = 2048;
  chunking.chunker.avg_size = 8192;
  chunking.chunker.max_size = 32768;
  MemoryByteSource reference_source(tar);
  auto reference = build_recipe_from_tar(
      reference_source, chunking, [](const Digest&, ByteSpan) -> Result<void> { return {}; });
  ASSERT_TRUE(reference.ok()) << reference.error().to_string();
  ASSERT_EQ(reference->model_files, 1U);
  for (const unsigned threads : {1U, 2U}) {
    for (const std::size_t batch : {std::size_t{64} << 10U, std::size_t{100000}}) {
      SCOPED_TRACE(std::to_string(threads) + " threads, batch " + std::to_string(batch));
      test::ScratchDir store_dir;
      ChunkStore store = open_store(store_dir);
      IngestOptions options;
      options.chunker = chunking.chunker;
      options.threads = threads;
      options.batch_bytes = batch;
      auto report = ingest_layer_bytes(store, tar, options);
      ASSERT_TRUE(report.ok()) << report.error().to_string();
      auto record = store.find_layer(report->diff_id);
      ASSERT_TRUE(record.ok());
      auto recipe = parse_recipe(record->recipe);
      ASSERT_TRUE(recipe.ok());
      EXPECT_EQ(*recipe, reference->recipe);
      EXPECT_EQ(report->model_files, 1U);
      EXPECT_EQ(export_bytes(store, report->diff_id), tar);
      auto verified = store.verify();
      ASSERT_TRUE(verified.ok());
      EXPECT_TRUE(verified->clean());
    }
  }
}

TEST(IngestEngine, ReingestAddsNothingAndSmallChangeAddsLittle) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  auto tar = make_random_tar(dir, 5, 30);
  IngestOptions options;
  options.chunker.min_size = 4096;
  options.chunker.avg_size = 16384;
  options.chunker.max_size = 65536;
  auto first = ingest_layer_bytes(store, tar, options);
  ASSERT_TRUE(first.ok());
  EXPECT_GT(first->new_chunks, 0U);
  auto again = ingest_layer_bytes(store, tar, options);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_present);
  EXPECT_EQ(again->new_chunks, 0U);

  // Change 64 bytes in the middle of the largest file's content: the same offsets in the tar.
  auto changed = tar;
  const std::size_t middle = changed.size() / 2;
  for (std::size_t i = 0; i < 64; ++i) changed[middle + i] ^= 0x5A;
  auto second = ingest_layer_bytes(store, changed, options);
  ASSERT_TRUE(second.ok()) << second.error().to_string();
  EXPECT_FALSE(second->already_present);
  EXPECT_GE(second->new_chunks, 1U);
  EXPECT_LE(second->new_chunks, 3U);
  EXPECT_LT(second->new_raw_bytes, 3U * options.chunker.max_size);
  EXPECT_EQ(export_bytes(store, second->diff_id), changed);
  EXPECT_EQ(export_bytes(store, first->diff_id), tar);
}

// The per-step times account for the work actually done: a verify time only when frames were
// decoded again, no compression time when nothing new was stored.
TEST(IngestEngine, StageTimesFollowTheWorkDone) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  auto tar = make_random_tar(dir, 11, 12);
  IngestOptions options;
  options.verify_frames = false;
  auto unverified = ingest_layer_bytes(store, tar, options);
  ASSERT_TRUE(unverified.ok()) << unverified.error().to_string();
  ASSERT_GT(unverified->new_chunks, 0U);
  EXPECT_GT(unverified->stage_seconds.compress, 0.0);
  EXPECT_GT(unverified->stage_seconds.hash, 0.0);
  EXPECT_GT(unverified->stage_seconds.cut_wall, 0.0);
  EXPECT_GE(unverified->stage_seconds.read_and_cut, unverified->stage_seconds.cut_wall);
  EXPECT_GT(unverified->stage_seconds.cut_scan_cpu, 0.0);
  EXPECT_GT(unverified->stage_seconds.write, 0.0);
  EXPECT_GT(unverified->stage_seconds.commit, 0.0);
  EXPECT_EQ(unverified->stage_seconds.verify, 0.0);

  auto other = make_random_tar(dir, 12, 12);
  options.verify_frames = true;
  auto verified = ingest_layer_bytes(store, other, options);
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();
  ASSERT_GT(verified->new_chunks, 0U);
  EXPECT_GT(verified->stage_seconds.verify, 0.0);

  auto again = ingest_layer_bytes(store, other, options);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->stage_seconds.compress, 0.0);
  EXPECT_EQ(again->stage_seconds.verify, 0.0);
}

TEST(IngestEngine, TrustLocalNamesKnownChunksByFingerprint) {
  test::ScratchDir dir;
  const auto tar = make_random_tar(dir, 11, 30);
  auto changed = tar;
  for (std::size_t i = 0; i < 64; ++i) changed[changed.size() / 3 + i] ^= 0xA5;
  IngestOptions options;
  options.chunker.min_size = 4096;
  options.chunker.avg_size = 16384;
  options.chunker.max_size = 65536;

  test::ScratchDir trusted_dir;
  ChunkStore trusted = open_store(trusted_dir);
  ASSERT_TRUE(ingest_layer_bytes(trusted, tar, options).ok());
  options.trust = TrustMode::kLocal;
  auto fast = ingest_layer_bytes(trusted, changed, options);
  ASSERT_TRUE(fast.ok()) << fast.error().to_string();
  EXPECT_GT(fast->fingerprint_hits, fast->chunks / 2);
  EXPECT_LE(fast->new_chunks, 3U);

  // The same recipe as a fully verified ingest of the same bytes.
  test::ScratchDir verified_dir;
  ChunkStore verified = open_store(verified_dir);
  options.trust = TrustMode::kVerify;
  auto slow = ingest_layer_bytes(verified, changed, options);
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(slow->fingerprint_hits, 0U);
  EXPECT_EQ(slow->diff_id, fast->diff_id);
  EXPECT_EQ(trusted.find_layer(fast->diff_id)->recipe, verified.find_layer(slow->diff_id)->recipe);
  EXPECT_EQ(export_bytes(trusted, fast->diff_id), changed);
}

TEST(IngestEngine, BadInputLeavesStoreUntouched) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  const auto tar = make_random_tar(dir, 7, 10);
  struct Case {
    std::string name;
    std::vector<std::uint8_t> bytes;
    ErrorCode code;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"truncated in content", {tar.begin(), tar.begin() + 5000}, ErrorCode::kCorruptInput});
  cases.push_back({"empty", {}, ErrorCode::kCorruptInput});
  auto gzip_bad = test::read_file(test::reference_layers().front().blob_path);
  gzip_bad[gzip_bad.size() / 2] ^= 0xFF;
  cases.push_back({"corrupt gzip", gzip_bad, ErrorCode::kCorruptInput});
  for (const Case& bad : cases) {
    SCOPED_TRACE(bad.name);
    auto report = ingest_layer_bytes(store, bad.bytes, IngestOptions{});
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.error().code, bad.code) << report.error().to_string();
    EXPECT_FALSE(report.error().message.empty());
  }
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_EQ(stats->chunks, 0U);
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

TEST(IngestEngine, TarObserverSeesExactlyTheTarAndCanStopTheIngest) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  const auto tar = make_random_tar(dir, 11, 12);
  std::vector<std::uint8_t> seen;
  IngestOptions options;
  options.threads = 2;
  options.batch_bytes = 64U << 10U;  // many batches, so order across them is exercised
  std::uint64_t chunk_bytes = 0;
  std::uint64_t new_frames = 0;
  options.tar_observer = [&](const IngestedSegment& segment) -> Result<void> {
    EXPECT_EQ(segment.tar_offset, seen.size());
    seen.insert(seen.end(), segment.bytes.begin(), segment.bytes.end());
    if (segment.chunk != nullptr) {
      EXPECT_EQ(*segment.chunk, sha256_of(segment.bytes));
      chunk_bytes += segment.bytes.size();
      if (!segment.new_frame.empty()) {
        ++new_frames;
        auto decoded = decompress_chunk(segment.codec, segment.new_frame, segment.bytes.size());
        EXPECT_TRUE(decoded.ok() && ByteSpan(*decoded).size() == segment.bytes.size() &&
                    std::equal(decoded->begin(), decoded->end(), segment.bytes.begin()));
      }
    } else {
      EXPECT_TRUE(segment.new_frame.empty());
    }
    return {};
  };
  auto report = ingest_layer_bytes(store, tar, options);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(seen, tar);
  EXPECT_EQ(sha256_of(seen), report->diff_id);
  EXPECT_EQ(chunk_bytes, report->chunked_bytes);
  EXPECT_EQ(new_frames, report->new_chunks);  // every chunk stored came with its frame

  // An observer that fails part-way stops the ingest: nothing of that layer is committed.
  test::ScratchDir other_dir;
  ChunkStore other = open_store(other_dir);
  std::uint64_t observed = 0;
  options.tar_observer = [&](const IngestedSegment& segment) -> Result<void> {
    observed += segment.bytes.size();
    if (observed > tar.size() / 2) return make_error(ErrorCode::kIo, "disk full (test)");
    return {};
  };
  auto stopped = ingest_layer_bytes(other, tar, options);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().code, ErrorCode::kIo);
  EXPECT_NE(stopped.error().message.find("disk full"), std::string::npos);
  auto stats = other.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_FALSE(other.find_layer(report->diff_id).ok());
  auto verified = other.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

TEST(IngestEngine, DecompressionBombStopsAtTheCap) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  // 64 MiB of zeros as a tar member, gzip'ed by the real tool: a few dozen KiB on the wire.
  ASSERT_TRUE(test::shell(dir.path(),
                          "head -c 67108864 /dev/zero > zeros && tar -cf - zeros | "
                          "gzip -1 > bomb.tar.gz"));
  IngestOptions options;
  options.max_uncompressed_bytes = 16U << 20U;
  auto report = ingest_layer_file(store, dir.file("bomb.tar.gz"), options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ErrorCode::kLimitExceeded) << report.error().to_string();
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
}

TEST(IngestEngine, BadOptionsAreRefused) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  const auto tar = make_random_tar(dir, 9, 2);
  IngestOptions options;
  options.zstd_level = 40;
  auto report = ingest_layer_bytes(store, tar, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ErrorCode::kInvalidArgument);
  options = {};
  options.chunker.min_size = 1;
  report = ingest_layer_bytes(store, tar, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ErrorCode::kInvalidArgument);
}

TEST(IngestEngine, ExportOfUnknownLayerIsNotFound) {
  test::ScratchDir dir;
  ChunkStore store = open_store(dir);
  auto report = export_layer_tar(store, sha256_of({}), [](ByteSpan) -> Result<void> { return {}; });
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace strata
