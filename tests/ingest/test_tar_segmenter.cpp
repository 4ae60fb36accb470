// The one tar segmenter (core/ingest/tar_segmenter.h) and its two entry points: for layers made by
// GNU tar here (pax and GNU long names, links, empty files, a safetensors model, trailing bytes
// kept inline and chunked) and for every reference OCI layer of shared/testdata/oci,
// build_recipe_from_tar and the ingest pipeline (several threads, small batches) give the recipe
// of the independent reference loop (tests/ingest/layer_recipe_ref.cpp), byte for byte once
// serialized. The segmenter's own contract: segments concatenate to the tar, chunks know their
// entry and place, a failing sink stops it, and a finished segmenter hands out nothing more.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "core/ingest/layer_recipe_builder.h"
#include "core/ingest/tar_segmenter.h"
#include "formats/compress/layer_source.h"
#include "strata/strata.h"
#include "tests/ingest/layer_recipe_ref.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

EntryChunkingOptions small_chunks() {
  EntryChunkingOptions options;
  options.chunker.min_size = 2U << 10U;
  options.chunker.avg_size = 8U << 10U;
  options.chunker.max_size = 32U << 10U;
  return options;
}

struct NamedTar {
  std::string name;
  std::vector<std::uint8_t> bytes;
};

// A tree with what layers hold: repeated, empty and long-named files, links, a directory and a
// safetensors model; tarred by GNU tar in pax and GNU formats, then with trailing bytes.
std::vector<NamedTar> fixture_tars(const test::ScratchDir& dir) {
  const std::string root = dir.file("tree");
  std::filesystem::create_directories(root + "/sub/" + std::string(120, 'd'));
  for (std::size_t i = 0; i < 24; ++i) {
    const std::size_t size = (i * 7919 + 104729) % (300U << 10U);
    test::write_file(root + (i % 3 == 0 ? "/sub/f" : "/f") + std::to_string(i),
                     test::splitmix64_bytes(i % 5, size));
  }
  test::write_file(root + "/empty", {});
  test::write_file(root + "/sub/" + std::string(120, 'd') + "/" + std::string(90, 'n'),
                   test::splitmix64_bytes(7, 50'000));
  const auto weights = test::splitmix64_bytes(11, std::size_t{4} * 30'000);
  test::write_file(root + "/model.safetensors",
                   test::safetensors_file(R"({"a":{"dtype":"F32","shape":[10000],)"
                                          R"("data_offsets":[0,40000]},)"
                                          R"("b":{"dtype":"F32","shape":[20000],)"
                                          R"("data_offsets":[40000,120000]}})",
                                          weights));
  EXPECT_TRUE(test::shell(root, "ln -s f1 link && ln f2 hard"));
  EXPECT_TRUE(test::shell(root, "tar --sort=name --format=pax -cf ../pax.tar ."));
  EXPECT_TRUE(test::shell(root, "tar --sort=name --format=gnu -cf ../gnu.tar ."));
  std::vector<NamedTar> tars;
  tars.push_back({"pax", test::read_file(dir.file("pax.tar"))});
  tars.push_back({"gnu", test::read_file(dir.file("gnu.tar"))});
  NamedTar inline_tail{"pax + 3000 trailing bytes", tars[0].bytes};
  const auto tail = test::splitmix64_bytes(13, 3000);
  inline_tail.bytes.insert(inline_tail.bytes.end(), tail.begin(), tail.end());
  NamedTar chunked_tail{"pax + 3 MiB trailing bytes", tars[0].bytes};
  const auto long_tail = test::splitmix64_bytes(17, 3U << 20U);
  chunked_tail.bytes.insert(chunked_tail.bytes.end(), long_tail.begin(), long_tail.end());
  tars.push_back(std::move(inline_tail));
  tars.push_back(std::move(chunked_tail));
  return tars;
}

// The uncompressed tar of every reference OCI layer, one per diff_id.
std::vector<NamedTar> reference_tars() {
  std::vector<NamedTar> tars;
  std::set<std::string> seen;
  for (const test::ReferenceLayer& layer : test::reference_layers()) {
    if (!seen.insert(layer.diff_id).second) continue;
    auto source = LayerSource::open_path(layer.blob_path);
    EXPECT_TRUE(source.ok()) << layer.name;
    if (!source.ok()) continue;
    auto bytes = test::read_all(**source);
    EXPECT_TRUE(bytes.ok()) << layer.name;
    if (bytes.ok()) tars.push_back({layer.name, std::move(bytes).value()});
  }
  return tars;
}

// build_recipe_from_tar and ingest_layer_bytes against the reference loop, on one tar.
void expect_entry_points_match_reference(const NamedTar& tar) {
  SCOPED_TRACE(tar.name);
  const EntryChunkingOptions chunking = small_chunks();
  MemoryByteSource ref_source(tar.bytes);
  auto reference = test::build_recipe_from_tar_ref(ref_source, chunking);
  ASSERT_TRUE(reference.ok()) << reference.error().to_string();
  ASSERT_EQ(reference->recipe.diff_id(), sha256_of(tar.bytes));

  MemoryByteSource source(tar.bytes);
  std::uint64_t handed = 0;
  auto built = build_recipe_from_tar(source, chunking, [&](const Digest& digest, ByteSpan bytes) {
    EXPECT_EQ(digest, sha256_of(bytes));
    ++handed;
    return Result<void>();
  });
  ASSERT_TRUE(built.ok()) << built.error().to_string();
  EXPECT_EQ(serialize_recipe(built->recipe), serialize_recipe(reference->recipe));
  EXPECT_EQ(built->entries, reference->entries);
  EXPECT_EQ(built->chunks, reference->chunks);
  EXPECT_EQ(handed, reference->chunks);
  EXPECT_EQ(built->chunked_bytes, reference->chunked_bytes);
  EXPECT_EQ(built->model_files, reference->model_files);

  test::ScratchDir store_dir;
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(store_dir.file("store"), store_options);
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  IngestOptions options;
  options.chunker = chunking.chunker;
  options.threads = 2;
  options.batch_bytes = 64U << 10U;
  auto report = ingest_layer_bytes(*store, tar.bytes, options);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto record = store->find_layer(report->diff_id);
  ASSERT_TRUE(record.ok()) << record.error().to_string();
  EXPECT_EQ(record->recipe, serialize_recipe(reference->recipe));
  EXPECT_EQ(report->entries, reference->entries);
  EXPECT_EQ(report->chunks, reference->chunks);
  EXPECT_EQ(report->chunked_bytes, reference->chunked_bytes);
  EXPECT_EQ(report->model_files, reference->model_files);
}

TEST(TarSegmenter, BothEntryPointsGiveTheReferenceRecipeForFixtureLayers) {
  test::ScratchDir dir;
  const auto tars = fixture_tars(dir);
  ASSERT_EQ(tars.size(), 4U);
  for (const NamedTar& tar : tars) expect_entry_points_match_reference(tar);
}

TEST(TarSegmenter, BothEntryPointsGiveTheReferenceRecipeForReferenceOciLayers) {
  const auto tars = reference_tars();
  ASSERT_GE(tars.size(), 3U);
  for (const NamedTar& tar : tars) expect_entry_points_match_reference(tar);
}

// Records every segment; chunks are checked against the entry they come from.
class RecordingSink final : public TarSegmentSink {
 public:
  void begin_entry(const TarEntry& entry) override {
    ++entries;
    entry_ = &entry;
    expected_offset_ = 0;
  }
  Result<void> add_raw(ByteSpan bytes) override {
    stream.insert(stream.end(), bytes.begin(), bytes.end());
    return {};
  }
  Result<void> add_chunk(const TarChunk& chunk) override {
    stream.insert(stream.end(), chunk.bytes.begin(), chunk.bytes.end());
    ++chunks;
    if (chunk.entry == nullptr) {
      trailing_chunked_bytes += chunk.bytes.size();
      return {};
    }
    EXPECT_EQ(chunk.entry, entry_);
    EXPECT_EQ(chunk.file_size, entry_->size);
    EXPECT_EQ(chunk.file_offset, expected_offset_);
    expected_offset_ += chunk.bytes.size();
    EXPECT_LE(expected_offset_, chunk.file_size);
    if (chunk.element_width != 0) ++float_chunks;
    return {};
  }

  std::vector<std::uint8_t> stream;
  std::uint64_t entries = 0;
  std::uint64_t chunks = 0;
  std::uint64_t float_chunks = 0;
  std::uint64_t trailing_chunked_bytes = 0;

 private:
  const TarEntry* entry_ = nullptr;
  std::uint64_t expected_offset_ = 0;
};

TEST(TarSegmenter, SegmentsConcatenateToTheTarAndPlaceEachChunk) {
  test::ScratchDir dir;
  const auto tars = fixture_tars(dir);
  const NamedTar& tar = tars.back();  // with 3 MiB of trailing bytes, chunked
  MemoryByteSource source(tar.bytes);
  auto chunker = EntryContentChunker::create(small_chunks());
  ASSERT_TRUE(chunker.ok());
  TarSegmenter segmenter(source, std::move(chunker).value(), LayerRecipeLimits{});
  RecordingSink sink;
  std::uint64_t calls = 0;
  while (true) {
    auto more = segmenter.next(sink);
    ASSERT_TRUE(more.ok()) << more.error().to_string();
    ++calls;
    if (!*more) break;
  }
  EXPECT_TRUE(sink.stream == tar.bytes) << "segments do not concatenate to the tar";
  EXPECT_EQ(sink.entries, segmenter.entries());
  EXPECT_GT(sink.entries, 30U);
  EXPECT_GT(sink.chunks, sink.entries);
  EXPECT_EQ(segmenter.model_files(), 1U);
  EXPECT_GT(sink.float_chunks, 0U);
  // What follows the end blocks: GNU tar's record padding (records of 10240 bytes), then ours.
  EXPECT_GE(sink.trailing_chunked_bytes, 3U << 20U);
  EXPECT_LT(sink.trailing_chunked_bytes, (3U << 20U) + 10240U);
  EXPECT_GT(calls, sink.entries);

  // Finished: further calls hand out nothing.
  const std::size_t size = sink.stream.size();
  auto again = segmenter.next(sink);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(sink.stream.size(), size);
}

class FailingSink final : public TarSegmentSink {
 public:
  Result<void> add_raw(ByteSpan) override { return {}; }
  Result<void> add_chunk(const TarChunk&) override {
    ++chunks;
    if (chunks == 3) return make_error(ErrorCode::kIo, "disk full at the third chunk");
    return {};
  }
  std::uint64_t chunks = 0;
};

TEST(TarSegmenter, FailingSinkStopsItWithTheSinksError) {
  test::ScratchDir dir;
  const auto tars = fixture_tars(dir);
  MemoryByteSource source(tars.front().bytes);
  auto chunker = EntryContentChunker::create(small_chunks());
  ASSERT_TRUE(chunker.ok());
  TarSegmenter segmenter(source, std::move(chunker).value(), LayerRecipeLimits{});
  FailingSink sink;
  Result<bool> more = true;
  while (more.ok() && *more) more = segmenter.next(sink);
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.error().code, ErrorCode::kIo);
  EXPECT_EQ(more.error().message, "disk full at the third chunk");
  EXPECT_EQ(sink.chunks, 3U);  // chunks cut after the failure are not handed out

  MemoryByteSource again(tars.front().bytes);
  auto built = build_recipe_from_tar(again, small_chunks(), [](const Digest&, ByteSpan) {
    return Result<void>(make_error(ErrorCode::kIo, "store refused the chunk"));
  });
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message, "store refused the chunk");
}

}  // namespace
}  // namespace strata
