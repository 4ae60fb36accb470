// fastpull::pull_chunked_layer_into_store: a planned chunked layer streamed into the chunk store.
// Layers made by real tools (shared/testdata/oci: skopeo, containers/storage, ctr-remote) and by
// strata's own writers are pulled through a batch fetcher over the blob; the store must then
// export the exact tar (its SHA-256 equals the diff_id recorded independently in expected.json or
// computed here from the tar we wrote) and pass verify; zstd:chunked frames must be stored exactly
// as fetched; a corrupt frame must leave nothing committed; and the fetch must go in batches no
// larger than asked (the structure that bounds memory).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/pull/batched_blob.h"
#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/store.h"
#include "tests/layer_fixtures.h"
#include "tests/test_support.h"

namespace strata::fastpull {
namespace {

struct ChunkedBlob {
  std::string key;
  std::vector<std::uint8_t> blob;
  oci::Annotations annotations;
  Digest diff_id;
};

std::vector<ChunkedBlob> load_fixture_blobs() {
  const auto expected_bytes = test::read_file(test::testdata_path("oci/expected.json"));
  const auto expected = nlohmann::json::parse(expected_bytes.begin(), expected_bytes.end());
  std::vector<ChunkedBlob> layers;
  for (const auto& [key, value] : expected.items()) {
    if (key.starts_with("gzip-")) continue;
    const auto colon = key.find(':');
    const std::string layout_dir = test::testdata_path("oci/layouts/" + key.substr(0, colon));
    ChunkedBlob layer;
    layer.key = key;
    layer.blob = test::read_file(layout_dir + "/blobs/sha256/" +
                                 value["layer_digest"].get<std::string>().substr(7));
    for (const auto& [name, text] : value["layer_annotations"].items()) {
      layer.annotations[name] = text.get<std::string>();
    }
    layer.diff_id = *Digest::parse(value["diff_id"].get<std::string>());
    layers.push_back(std::move(layer));
  }
  return layers;
}

RangeFetcher memory_fetcher(const std::vector<std::uint8_t>& blob) {
  return [&blob](std::uint64_t offset, std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
    if (offset > blob.size() || length > blob.size() - offset) {
      return make_error(ErrorCode::kCorruptInput, "range outside the blob");
    }
    return std::vector<std::uint8_t>(blob.begin() + static_cast<std::ptrdiff_t>(offset),
                                     blob.begin() + static_cast<std::ptrdiff_t>(offset + length));
  };
}

struct BatchLog {
  std::uint64_t calls = 0;
  std::uint64_t bytes = 0;
  std::vector<std::uint64_t> batch_bytes;  // per call, in call order
};

RangeBatchFetcher batch_fetcher(const std::vector<std::uint8_t>& blob, BatchLog& log) {
  return [&blob, &log](
             std::span<const ByteRange> ranges) -> Result<std::vector<std::vector<std::uint8_t>>> {
    ++log.calls;
    log.batch_bytes.push_back(0);
    std::vector<std::vector<std::uint8_t>> out;
    for (const ByteRange& range : ranges) {
      auto bytes = memory_fetcher(blob)(range.offset, range.length);
      if (!bytes) return std::move(bytes).error();
      log.bytes += bytes->size();
      log.batch_bytes.back() += bytes->size();
      out.push_back(std::move(*bytes));
    }
    return out;
  };
}

class StoreDir {
 public:
  StoreDir()
      : path_(
            (std::filesystem::temp_directory_path() /
             ("strata-store-pull-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                .string()) {
    std::filesystem::remove_all(path_);
  }
  ~StoreDir() { std::filesystem::remove_all(path_); }
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;
  [[nodiscard]] ChunkStore open() const {
    StoreOptions options;
    options.create_if_missing = true;
    auto store = ChunkStore::open(path_, options);
    EXPECT_TRUE(store.ok()) << store.error().to_string();
    return std::move(store).value();
  }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

Digest exported_diff_id(const ChunkStore& store, const Digest& layer) {
  Sha256 hash;
  auto exported = export_layer_tar(store, layer, [&](ByteSpan bytes) -> Result<void> {
    hash.update(bytes);
    return {};
  });
  EXPECT_TRUE(exported.ok()) << exported.error().to_string();
  return hash.finish();
}

// The store exports `tar` under `diff_id` and verifies clean.
void expect_holds_the_tar(ChunkStore& store, const Digest& diff_id,
                          const std::vector<std::uint8_t>& tar) {
  EXPECT_EQ(exported_diff_id(store, diff_id), sha256_of(tar));
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

struct Pulled {
  Result<StorePullReport> report = make_error(ErrorCode::kInternal, "not pulled");
  PullPlan plan;
  ChunkedLayerToc toc;
  BatchLog log;
};

Pulled pull(ChunkStore& store, const ChunkedBlob& layer, const StorePullOptions& options = {},
            const PullPlanOptions& plan_options = {}) {
  Pulled pulled;
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  EXPECT_TRUE(toc.ok()) << toc.error().to_string();
  if (!toc) return pulled;
  pulled.toc = std::move(*toc);
  auto plan = plan_pull(
      pulled.toc, [&](const Digest& digest) { return store.contains(digest); }, plan_options);
  EXPECT_TRUE(plan.ok()) << plan.error().to_string();
  if (!plan) return pulled;
  pulled.plan = std::move(*plan);
  pulled.report =
      pull_chunked_layer_into_store(store, pulled.toc, pulled.plan,
                                    batch_fetcher(layer.blob, pulled.log), layer.diff_id, options);
  return pulled;
}

// A tar of `files` regular files of pseudo-random content, and the chunk cut points (every
// `chunk_bytes` of each file) a writer gets.
struct MadeTar {
  std::vector<std::uint8_t> tar;
  std::vector<TarChunk> chunks;
};

MadeTar make_tar(std::uint64_t seed, int files, std::size_t file_bytes, std::size_t chunk_bytes) {
  MadeTar made;
  test::append(made.tar, test::make_header("dir/", '5'));
  for (int i = 0; i < files; ++i) {
    const auto content = test::splitmix64_bytes(seed + static_cast<std::uint64_t>(i), file_bytes);
    test::append(made.tar, test::make_header("dir/file" + std::to_string(i), '0', file_bytes));
    for (std::size_t at = 0; at < file_bytes; at += chunk_bytes) {
      const std::size_t length = std::min(chunk_bytes, file_bytes - at);
      const ByteSpan piece = ByteSpan(content).subspan(at, length);
      made.chunks.push_back(TarChunk{made.tar.size() + at, length, sha256_of(piece)});
    }
    test::append(made.tar, content);
    made.tar.resize((made.tar.size() + 511) / 512 * 512, 0);
  }
  test::append_end(made.tar);
  return made;
}

ChunkedBlob write_layer(const MadeTar& made, ChunkedFormat format) {
  ChunkedBlob layer;
  ChunkedWriteOptions options;
  options.format = format;
  const auto sink = [&](ByteSpan bytes) -> Result<void> {
    layer.blob.insert(layer.blob.end(), bytes.begin(), bytes.end());
    return {};
  };
  auto report = format == ChunkedFormat::kEstargz
                    ? write_estargz_layer(made.tar, made.chunks, options, sink)
                    : write_zstd_chunked_layer(made.tar, made.chunks, {}, options, sink);
  EXPECT_TRUE(report.ok()) << report.error().to_string();
  layer.annotations = report->annotations;
  layer.diff_id = report->diff_id;
  layer.key = std::string(chunked_format_name(format));
  return layer;
}

TEST(ChunkedStorePull, EveryFixtureLayerExportsItsDiffIdAndVerifies) {
  const auto layers = load_fixture_blobs();
  ASSERT_EQ(layers.size(), 8U);
  for (const ChunkedBlob& layer : layers) {
    SCOPED_TRACE(layer.key);
    StoreDir dir;
    ChunkStore store = dir.open();
    const Pulled pulled = pull(store, layer);
    ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
    EXPECT_EQ(pulled.report->diff_id, layer.diff_id);
    EXPECT_GT(pulled.report->entries_checked, 10U);
    EXPECT_EQ(pulled.report->fetched_bytes, pulled.plan.fetch_bytes);
    EXPECT_EQ(pulled.log.bytes, pulled.plan.fetch_bytes);
    EXPECT_EQ(exported_diff_id(store, layer.diff_id), layer.diff_id);
    // Only some of the blob's bytes were fetched, so its digest was never checked: the layer is
    // filed under its diff_id alone, never under the blob digest (docs/THREAT_MODEL.md).
    auto by_blob = store.find_layer(sha256_of(layer.blob));
    ASSERT_FALSE(by_blob.ok());
    EXPECT_EQ(by_blob.error().code, ErrorCode::kNotFound);
    auto by_diff_id = store.find_layer_by_diff_id(layer.diff_id);
    ASSERT_TRUE(by_diff_id.ok()) << by_diff_id.error().to_string();
    EXPECT_EQ(by_diff_id->layer_digest, layer.diff_id);
    auto verified = store.verify();
    ASSERT_TRUE(verified.ok()) << verified.error().to_string();
    EXPECT_TRUE(verified->clean());
    EXPECT_EQ(verified->layers_checked, 1U);
    // Every chunk the TOC names is in the store under its own digest (so a second pull of the
    // image fetches no chunk), and a zstd frame it was fetched as is stored with the same blocks:
    // at most a content size (2, 4 or 8 bytes) inserted after the 6-byte header start.
    std::uint64_t same_blocks = 0;
    for (const BlobPiece& piece : pulled.plan.pieces) {
      if (!piece.is_chunk || piece.zeros) continue;
      EXPECT_TRUE(store.contains(piece.digest)) << piece.name;
      auto stored = store.read_stored_chunk(piece.digest);
      ASSERT_TRUE(stored.ok()) << stored.error().to_string();
      const std::size_t fetched = piece.end - piece.offset;
      const std::size_t added = stored->bytes.size() - fetched;
      if (layer.key.starts_with("estargz") || stored->bytes.size() < fetched ||
          (added != 0 && added != 2 && added != 4 && added != 8)) {
        continue;
      }
      const auto blob_frame = layer.blob.begin() + static_cast<std::ptrdiff_t>(piece.offset);
      if (std::equal(blob_frame, blob_frame + 4, stored->bytes.begin()) &&
          std::equal(blob_frame + 6, blob_frame + static_cast<std::ptrdiff_t>(fetched),
                     stored->bytes.begin() + 6 + static_cast<std::ptrdiff_t>(added))) {
        ++same_blocks;
      }
    }
    if (layer.key.find("cstorage") != std::string::npos ||
        layer.key.find("skopeo") != std::string::npos) {
      // containers/storage writes one frame per chunk (larger ones without a content size in
      // the header): every fetched chunk keeps its frame; only the zeros chunk is compressed here.
      EXPECT_GT(pulled.report->adopted_frames, 20U);
      EXPECT_EQ(same_blocks, pulled.report->adopted_frames);
      EXPECT_LE(pulled.report->compressed_chunks, 1U);
    }
  }
}

TEST(ChunkedStorePull, ZstdChunkedFramesAreStoredAsFetched) {
  const MadeTar made = make_tar(7, 3, 300'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  const Pulled pulled = pull(store, layer);
  ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
  EXPECT_EQ(pulled.report->compressed_chunks, 0U);
  std::uint64_t compared = 0;
  for (const BlobPiece& piece : pulled.plan.pieces) {
    if (!piece.is_chunk || piece.zeros) continue;
    auto stored = store.read_stored_chunk(piece.digest);
    ASSERT_TRUE(stored.ok()) << stored.error().to_string();
    EXPECT_EQ(stored->codec, Codec::kZstd);
    const std::vector<std::uint8_t> frame(
        layer.blob.begin() + static_cast<std::ptrdiff_t>(piece.offset),
        layer.blob.begin() + static_cast<std::ptrdiff_t>(piece.end));
    EXPECT_EQ(stored->bytes, frame) << piece.name << " at chunkOffset " << piece.chunk_offset;
    ++compared;
  }
  EXPECT_EQ(compared, made.chunks.size());
  EXPECT_EQ(pulled.report->adopted_frames, made.chunks.size());
  EXPECT_EQ(exported_diff_id(store, layer.diff_id), sha256_of(made.tar));
}

TEST(ChunkedStorePull, ACorruptFrameIsRefusedAndNothingIsCommitted) {
  const MadeTar made = make_tar(11, 2, 200'000, 65'536);
  ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, {});
  ASSERT_TRUE(plan.ok());
  // Damage the last chunk's frame: earlier chunks are put into the session before it is reached.
  const BlobPiece* last = nullptr;
  for (const BlobPiece& piece : plan->pieces) {
    if (piece.is_chunk) last = &piece;
  }
  ASSERT_NE(last, nullptr);
  layer.blob[(last->offset + last->end) / 2] ^= 0x5AU;
  StoreDir dir;
  ChunkStore store = dir.open();
  const Pulled pulled = pull(store, layer);
  ASSERT_FALSE(pulled.report.ok());
  EXPECT_TRUE(pulled.report.error().code == ErrorCode::kCorruptInput ||
              pulled.report.error().code == ErrorCode::kDigestMismatch)
      << pulled.report.error().to_string();
  EXPECT_NE(pulled.report.error().message.find("dir/file1"), std::string::npos)
      << pulled.report.error().message;
  auto layers = store.list_layers();
  ASSERT_TRUE(layers.ok());
  EXPECT_TRUE(layers->empty());
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, 0U);
  EXPECT_FALSE(store.contains(made.chunks.front().digest));
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

// A TOC naming a chunk by another digest than its bytes hash to (the frame itself intact): the
// prepared chunks' SHA-256 check (done for a group of chunks at once) names that chunk, whichever
// place in its group it has, and nothing is committed.
TEST(ChunkedStorePull, AChunkWhoseBytesDoNotHashToItsTocDigestIsNamedAndNothingIsCommitted) {
  const MadeTar made = make_tar(17, 3, 300'000, 65'536);
  ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok()) << toc.error().to_string();
  std::vector<std::size_t> chunk_entries;
  for (std::size_t i = 0; i < toc->toc.entries.size(); ++i) {
    if (toc->toc.entries[i].chunk_digest) chunk_entries.push_back(i);
  }
  ASSERT_GE(chunk_entries.size(), 8U);
  for (const std::size_t victim : {chunk_entries[1], chunk_entries[6], chunk_entries.back()}) {
    SCOPED_TRACE(victim);
    ChunkedLayerToc lying = *toc;
    TocEntry& entry = lying.toc.entries[victim];
    entry.chunk_digest = sha256_of(ByteSpan(made.tar).first(100 + victim));
    if (entry.type == "reg" && entry.digest) entry.digest = entry.chunk_digest;
    StoreDir dir;
    ChunkStore store = dir.open();
    auto plan = plan_pull(lying, [&](const Digest& digest) { return store.contains(digest); });
    ASSERT_TRUE(plan.ok()) << plan.error().to_string();
    BatchLog log;
    auto report = pull_chunked_layer_into_store(store, lying, *plan, batch_fetcher(layer.blob, log),
                                                layer.diff_id, {});
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.error().code, ErrorCode::kDigestMismatch) << report.error().to_string();
    EXPECT_NE(report.error().message.find(entry.chunk_digest->to_string()), std::string::npos)
        << report.error().to_string();
    EXPECT_NE(report.error().message.find(entry.name), std::string::npos)
        << report.error().to_string();
    auto stats = store.stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->layers, 0U);
    EXPECT_EQ(stats->chunks, 0U);
  }
}

TEST(ChunkedStorePull, AWrongDiffIdCommitsNothing) {
  const MadeTar made = make_tar(13, 2, 100'000, 65'536);
  ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  layer.diff_id = sha256_of(ByteSpan(made.tar).first(512));
  StoreDir dir;
  ChunkStore store = dir.open();
  const Pulled pulled = pull(store, layer);
  ASSERT_FALSE(pulled.report.ok());
  EXPECT_EQ(pulled.report.error().code, ErrorCode::kDigestMismatch);
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, 0U);
  EXPECT_EQ(stats->layers, 0U);
}

TEST(ChunkedStorePull, FetchesInBatchesNoLargerThanAsked) {
  // About 2.4 MiB of incompressible chunks: many batches of at most 256 KiB.
  const MadeTar made = make_tar(17, 4, 600'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  StorePullOptions options;
  options.batch_bytes = 256 << 10;
  const Pulled pulled = pull(store, layer, options);
  ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
  EXPECT_GT(pulled.plan.fetch_bytes, std::uint64_t{2} << 20U);
  // One merged range for a cold pull, cut into batches; the bytes stay those of the plan.
  EXPECT_GE(pulled.report->batches, pulled.plan.fetch_bytes / options.batch_bytes);
  EXPECT_EQ(pulled.report->batches, pulled.log.calls);
  EXPECT_LE(pulled.report->max_batch_bytes, options.batch_bytes);
  EXPECT_EQ(pulled.log.bytes, pulled.plan.fetch_bytes);
  EXPECT_EQ(exported_diff_id(store, layer.diff_id), sha256_of(made.tar));
}

TEST(ChunkedStorePull, BatchesRampUpFromTheFirstLimitAndDownOverTheLastBytes) {
  // About 2.3 MiB of incompressible 16 KiB chunks: one merged range for a cold pull.
  const MadeTar made = make_tar(19, 4, 600'000, 16'384);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  StorePullOptions options;
  options.first_batch_bytes = 64 << 10;
  options.batch_bytes = 512 << 10;
  const Pulled pulled = pull(store, layer, options);
  ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
  const std::vector<std::uint64_t>& sizes = pulled.log.batch_bytes;
  ASSERT_GT(sizes.size(), 6U);
  // Each limit at most doubles the one before, from the first; the largest reaches the top.
  std::uint64_t limit = options.first_batch_bytes;
  for (const std::uint64_t size : sizes) {
    EXPECT_LE(size, limit);
    limit = std::min<std::uint64_t>(limit * 2, options.batch_bytes);
  }
  EXPECT_GT(*std::max_element(sizes.begin(), sizes.end()), options.batch_bytes / 2);
  // The last bytes come in batches no larger than the first.
  EXPECT_LE(sizes.back(), options.first_batch_bytes);
  EXPECT_LE(sizes[sizes.size() - 2], options.first_batch_bytes);
  EXPECT_EQ(pulled.log.bytes, pulled.plan.fetch_bytes);
  EXPECT_EQ(exported_diff_id(store, layer.diff_id), sha256_of(made.tar));
}

TEST(ChunkedStorePull, ASecondVersionFetchesOnlyWhatChanged) {
  MadeTar first = make_tar(23, 4, 200'000, 65'536);
  const ChunkedBlob v1 = write_layer(first, ChunkedFormat::kZstdChunked);
  // v2: file 2 rewritten, the others unchanged.
  MadeTar second = make_tar(23, 4, 200'000, 65'536);
  const MadeTar changed = make_tar(99, 4, 200'000, 65'536);
  const std::uint64_t file_stride = 512 + 200'192;  // header + padded content
  const std::uint64_t file2 = 512 + 2 * file_stride + 512;
  std::copy_n(changed.tar.begin() + static_cast<std::ptrdiff_t>(file2), 200'000,
              second.tar.begin() + static_cast<std::ptrdiff_t>(file2));
  for (TarChunk& chunk : second.chunks) {
    if (chunk.tar_offset >= file2 && chunk.tar_offset < file2 + 200'000) {
      chunk.digest = sha256_of(ByteSpan(second.tar).subspan(chunk.tar_offset, chunk.length));
    }
  }
  const ChunkedBlob v2 = write_layer(second, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  ASSERT_TRUE(pull(store, v1).report.ok());
  const Pulled pulled = pull(store, v2);
  ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
  EXPECT_EQ(pulled.report->local_chunks, 12U);  // 3 unchanged files x 4 chunks
  EXPECT_EQ(pulled.report->adopted_frames, 4U);
  EXPECT_LT(pulled.plan.fetch_bytes, v2.blob.size() / 3);
  EXPECT_EQ(exported_diff_id(store, v2.diff_id), sha256_of(second.tar));
  expect_holds_the_tar(store, v1.diff_id, first.tar);
}

// A tar of one regular file per entry of `contents`, cut every `chunk_bytes` of each file.
MadeTar make_tar_of(const std::vector<std::vector<std::uint8_t>>& contents,
                    std::size_t chunk_bytes) {
  MadeTar made;
  for (std::size_t i = 0; i < contents.size(); ++i) {
    const std::vector<std::uint8_t>& content = contents[i];
    test::append(made.tar, test::make_header("file" + std::to_string(i), '0', content.size()));
    for (std::size_t at = 0; at < content.size(); at += chunk_bytes) {
      const std::size_t length = std::min(chunk_bytes, content.size() - at);
      made.chunks.push_back(
          TarChunk{made.tar.size() + at, length, sha256_of(ByteSpan(content).subspan(at, length))});
    }
    test::append(made.tar, content);
    made.tar.resize((made.tar.size() + 511) / 512 * 512, 0);
  }
  test::append_end(made.tar);
  return made;
}

TEST(ChunkedStorePull, AChunkTheLayerRepeatsIsFetchedOnce) {
  // file0 and file2 are the same 4 chunks: the plan asks for them once (apply_delta_index, here
  // with an empty index), the pull keeps their bytes for the repeat.
  const auto same = test::splitmix64_bytes(5, 200'000);
  const MadeTar made = make_tar_of({same, test::splitmix64_bytes(6, 100'000), same}, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok()) << toc.error().to_string();
  auto plan = plan_pull(*toc, [&](const Digest& digest) { return store.contains(digest); });
  ASSERT_TRUE(plan.ok());
  const std::uint64_t asked_twice = plan->fetch_bytes;
  ASSERT_TRUE(apply_delta_index(*plan, DeltaIndex{}, {}).ok());
  EXPECT_EQ(plan->repeat_chunks, 4U);
  std::uint64_t repeated_frames = 0;
  for (const BlobPiece& piece : plan->pieces) {
    if (piece.repeat) repeated_frames += piece.end - piece.offset;
  }
  EXPECT_GT(repeated_frames, 200'000U);  // incompressible bytes: frames as large as the chunks
  EXPECT_LE(plan->fetch_bytes, asked_twice - repeated_frames);  // (and the gaps bridged to them)
  BatchLog log;
  auto report = pull_chunked_layer_into_store(store, *toc, *plan, batch_fetcher(layer.blob, log),
                                              layer.diff_id);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->repeat_chunks, 4U);
  EXPECT_EQ(log.bytes, plan->fetch_bytes);  // no frame of file2 crossed the wire
  EXPECT_EQ(exported_diff_id(store, layer.diff_id), sha256_of(made.tar));
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());

  // With a cap below one chunk, nothing is kept: every piece is fetched, as before.
  PullPlanOptions capped;
  capped.max_repeat_bytes = 1000;
  ASSERT_TRUE(apply_delta_index(*plan, DeltaIndex{}, {}, capped).ok());
  EXPECT_EQ(plan->repeat_chunks, 0U);
  EXPECT_EQ(plan->fetch_bytes, asked_twice);
}

TEST(ChunkedStorePull, ADeltaTheLayerRepeatsIsFetchedAndDecodedOnce) {
  // v1 holds file X; v2 holds X' twice (X with a few bytes changed in every chunk): each chunk of
  // X' is a delta against the chunk of X at the same place, shipped once in the frames blob.
  const auto x = test::splitmix64_bytes(7, 4 * 65'536);
  auto changed = x;
  for (std::size_t at = 100; at < changed.size(); at += 65'536) changed[at] ^= 0x5AU;
  const MadeTar first = make_tar_of({x}, 65'536);
  const MadeTar second = make_tar_of({changed, changed}, 65'536);
  const ChunkedBlob v1 = write_layer(first, ChunkedFormat::kZstdChunked);
  const ChunkedBlob v2 = write_layer(second, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  ASSERT_TRUE(pull(store, v1).report.ok());
  DeltaIndex index;
  std::vector<std::uint8_t> frames;
  for (std::size_t i = 0; i < 4; ++i) {
    const ByteSpan raw = ByteSpan(changed).subspan(i * 65'536, 65'536);
    const ByteSpan base = ByteSpan(x).subspan(i * 65'536, 65'536);
    std::vector<std::uint8_t> coded;
    ASSERT_TRUE(compress_chunk_delta_into(raw, base, 19, coded).ok());
    index.entries.push_back(DeltaEntry{sha256_of(raw),
                                       sha256_of(base),
                                       Codec::kZstdDelta,
                                       frames.size(),
                                       coded.size(),
                                       raw.size(),
                                       {}});
    frames.insert(frames.end(), coded.begin(), coded.end());
  }
  std::sort(index.entries.begin(), index.entries.end(),
            [](const DeltaEntry& a, const DeltaEntry& b) { return a.chunk < b.chunk; });
  index.frames_size = frames.size();
  auto toc = read_chunked_toc(v2.blob.size(), v2.annotations, memory_fetcher(v2.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, [&](const Digest& digest) { return store.contains(digest); });
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(
      apply_delta_index(*plan, index, [&](const Digest& d) { return store.contains(d); }).ok());
  EXPECT_EQ(plan->delta_chunks, 4U);
  EXPECT_EQ(plan->repeat_chunks, 4U);
  EXPECT_EQ(plan->delta_fetch_bytes, frames.size());
  EXPECT_EQ(plan->fetch_bytes, 0U);
  BatchLog layer_log;
  BatchLog frames_log;
  DeltaPullSource source;
  source.frames_size = frames.size();
  source.fetch = batch_fetcher(frames, frames_log);
  StorePullOptions options;
  options.deltas = &source;
  auto report = pull_chunked_layer_into_store(store, *toc, *plan, batch_fetcher(v2.blob, layer_log),
                                              v2.diff_id, options);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->delta_chunks, 4U);
  EXPECT_EQ(report->repeat_chunks, 4U);
  EXPECT_EQ(frames_log.bytes, frames.size());  // each delta crossed the wire once
  EXPECT_EQ(layer_log.bytes, 0U);
  expect_holds_the_tar(store, v2.diff_id, second.tar);
}

TEST(ChunkedStorePull, ADeltaAgainstAPrefixOfBaseChunksDecodesAndIsStoredWhole) {
  // v2's file is v1's with 30000 bytes inserted at the front: every v2 chunk straddles two v1
  // chunks, so a delta against the base chunk alone misses half of it, one against the base's
  // neighbours as well (DeltaEntry::prefix) does not.
  const auto x = test::splitmix64_bytes(8, 4 * 65'536);
  std::vector<std::uint8_t> shifted = test::splitmix64_bytes(9, 30'000);
  shifted.insert(shifted.end(), x.begin(), x.end() - 30'000);
  const MadeTar first = make_tar_of({x}, 65'536);
  const MadeTar second = make_tar_of({shifted}, 65'536);
  const ChunkedBlob v1 = write_layer(first, ChunkedFormat::kZstdChunked);
  const ChunkedBlob v2 = write_layer(second, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  ASSERT_TRUE(pull(store, v1).report.ok());
  std::vector<Digest> bases;
  for (std::size_t i = 0; i < 4; ++i)
    bases.push_back(sha256_of(ByteSpan(x).subspan(i * 65'536, 65'536)));
  DeltaIndex index;
  std::vector<std::uint8_t> frames;
  std::size_t single_bytes = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const ByteSpan raw = ByteSpan(shifted).subspan(i * 65'536, 65'536);
    std::vector<std::uint8_t> coded;
    ASSERT_TRUE(
        compress_chunk_delta_into(raw, ByteSpan(x).subspan(i * 65'536, 65'536), 19, coded).ok());
    single_bytes += coded.size();
    ASSERT_TRUE(compress_chunk_delta_into(raw, x, 19, coded).ok());  // the four chunks, in order
    index.entries.push_back(DeltaEntry{sha256_of(raw), bases[i], Codec::kZstdDelta, frames.size(),
                                       coded.size(), raw.size(), bases});
    frames.insert(frames.end(), coded.begin(), coded.end());
  }
  EXPECT_LT(frames.size() * 2, single_bytes);  // the point of a prefix
  std::sort(index.entries.begin(), index.entries.end(),
            [](const DeltaEntry& a, const DeltaEntry& b) { return a.chunk < b.chunk; });
  index.frames_size = frames.size();
  auto toc = read_chunked_toc(v2.blob.size(), v2.annotations, memory_fetcher(v2.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, [&](const Digest& digest) { return store.contains(digest); });
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(
      apply_delta_index(*plan, index, [&](const Digest& d) { return store.contains(d); }).ok());
  EXPECT_EQ(plan->delta_chunks, 4U);
  BatchLog layer_log;
  BatchLog frames_log;
  DeltaPullSource source;
  source.frames_size = frames.size();
  source.fetch = batch_fetcher(frames, frames_log);
  StorePullOptions options;
  options.deltas = &source;
  auto report = pull_chunked_layer_into_store(store, *toc, *plan, batch_fetcher(v2.blob, layer_log),
                                              v2.diff_id, options);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->delta_chunks, 4U);
  EXPECT_EQ(report->delta_stored_chunks, 0U);  // no single base to store them against
  EXPECT_EQ(frames_log.bytes, frames.size());
  EXPECT_EQ(layer_log.bytes, 0U);
  expect_holds_the_tar(store, v2.diff_id, second.tar);
}

TEST(ChunkedStorePull, OtherFormatsAndHeadersFromTheBlob) {
  const MadeTar made = make_tar(31, 3, 150'000, 65'536);
  struct Case {
    ChunkedFormat format;
    bool headers_from_tar_split;
  };
  for (const Case& c :
       {Case{ChunkedFormat::kZstdChunkedV1, true}, Case{ChunkedFormat::kZstdChunked, false},
        Case{ChunkedFormat::kEstargz, true}}) {
    const ChunkedBlob layer = write_layer(made, c.format);
    SCOPED_TRACE(layer.key + (c.headers_from_tar_split ? "" : " headers from the blob"));
    StoreDir dir;
    ChunkStore store = dir.open();
    PullPlanOptions plan_options;
    plan_options.headers_from_tar_split = c.headers_from_tar_split;
    const Pulled pulled = pull(store, layer, {}, plan_options);
    ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
    EXPECT_EQ(exported_diff_id(store, layer.diff_id), layer.diff_id);
    if (c.format == ChunkedFormat::kEstargz) {
      EXPECT_EQ(pulled.report->adopted_frames, 0U);  // gzip members: compressed with zstd here
      // The writer's `.no.prefetch.landmark` entry is one more one-byte file.
      EXPECT_EQ(pulled.report->compressed_chunks, made.chunks.size() + 1);
    } else {
      EXPECT_EQ(pulled.report->adopted_frames, made.chunks.size());
    }
    auto verified = store.verify();
    ASSERT_TRUE(verified.ok());
    EXPECT_TRUE(verified->clean());
  }
}

// A tar-split whose file claims far more content than the TOC's chunks hold (1 TiB here) fails
// with the rebuild's error naming the tar-split line, before any shape of that size is replayed,
// and nothing is committed.
TEST(ChunkedStorePull, ATarSplitClaimingMoreContentThanTheTocFailsAtOnce) {
  const MadeTar made = make_tar(41, 2, 100'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok()) << toc.error().to_string();
  std::string text(toc->tar_split.begin(), toc->tar_split.end());
  const auto size_at = text.find("\"size\":");
  ASSERT_NE(size_at, std::string::npos);
  const auto size_end = text.find(',', size_at);
  text.replace(size_at, size_end - size_at, "\"size\":1099511627776");
  toc->tar_split.assign(text.begin(), text.end());
  auto plan = plan_pull(*toc, [&](const Digest& digest) { return store.contains(digest); });
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  BatchLog log;
  auto report = pull_chunked_layer_into_store(store, *toc, *plan, batch_fetcher(layer.blob, log),
                                              layer.diff_id, {});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(report.error().message.find("tar-split line"), std::string::npos)
      << report.error().message;
  EXPECT_FALSE(store.find_layer_by_diff_id(layer.diff_id).ok());
}

TEST(ChunkedStorePull, AChunkOverTheStoreLimitIsStoredInPieces) {
  // One file of 72 MiB of zeros: the writer merges its 8 MiB chunks into one zeros chunk, larger
  // than the store takes as one chunk.
  const std::size_t file_bytes = std::size_t{72} << 20U;
  const std::size_t cut = std::size_t{8} << 20U;
  MadeTar made;
  test::append(made.tar, test::make_header("zeros.bin", '0', file_bytes));
  const Digest zeros = sha256_of(std::vector<std::uint8_t>(cut, 0));
  for (std::size_t at = 0; at < file_bytes; at += cut) {
    made.chunks.push_back(TarChunk{512 + at, cut, zeros});
  }
  made.tar.resize(512 + file_bytes, 0);
  test::append_end(made.tar);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  const Pulled pulled = pull(store, layer);
  ASSERT_TRUE(pulled.report.ok()) << pulled.report.error().to_string();
  const BlobPiece* largest = &pulled.plan.pieces.front();
  for (const BlobPiece& piece : pulled.plan.pieces) {
    if (piece.chunk_size > largest->chunk_size) largest = &piece;
  }
  ASSERT_GT(largest->chunk_size, kMaxStoredChunkBytes);
  // Stored as 8 MiB pieces (docs/PULL.md), under their own digest, not the TOC's.
  EXPECT_FALSE(store.contains(largest->digest));
  EXPECT_TRUE(store.contains(zeros));
  expect_holds_the_tar(store, layer.diff_id, made.tar);
}

// A hostile TOC (issue 20, hole 5): sizes come only from the TOC, and "zeros" chunks are made
// locally, so a TOC claiming a 2^50-byte file of zeros made the store pull generate zeros for
// days. The planner now refuses it before anything is fetched or generated (the registry pull then
// fetches the layer whole, under the decompression cap), and so does the store pull when handed
// such a plan directly.
TEST(ChunkedStorePull, AHostileTocWithPetabytesOfZerosIsRefusedBeforeAnythingRuns) {
  const MadeTar made = make_tar(17, 1, 70'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok()) << toc.error().to_string();
  const std::uint64_t huge = std::uint64_t{1} << 50U;
  TocEntry zeros;
  zeros.type = "reg";
  zeros.name = "dir/huge-zeros";
  zeros.size = huge;
  zeros.chunk_type = "zeros";
  zeros.digest = sha256_of(std::vector<std::uint8_t>(16, 0));
  ChunkedLayerToc hostile = *toc;
  hostile.toc.entries.push_back(zeros);
  auto planned = plan_pull(hostile, {});
  ASSERT_FALSE(planned.ok());
  EXPECT_EQ(planned.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(planned.error().message.find("dir/huge-zeros"), std::string::npos)
      << planned.error().message;

  // One zeros chunk over the per-chunk limit, in a file the total allows, is refused too.
  PullPlanOptions small;
  small.max_zeros_chunk_bytes = 4096;
  ChunkedLayerToc hole = *toc;
  zeros.size = 8192;
  zeros.digest = sha256_of(std::vector<std::uint8_t>(8192, 0));
  hole.toc.entries.insert(hole.toc.entries.begin(), zeros);
  auto hole_plan = plan_pull(hole, {}, small);
  ASSERT_FALSE(hole_plan.ok());
  EXPECT_EQ(hole_plan.error().code, ErrorCode::kLimitExceeded);
  auto default_plan = plan_pull(hole, {});  // 8 KiB of zeros is fine under the default limits
  EXPECT_TRUE(default_plan.ok()) << default_plan.error().to_string();

  // A plan made by hand with the same shape: the store pull refuses it before fetching anything.
  auto plan = plan_pull(*toc, {});
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  BlobPiece forged;
  forged.is_chunk = true;
  forged.zeros = true;
  forged.local = true;
  forged.chunk_size = huge;
  forged.name = "dir/huge-zeros";
  forged.digest = *zeros.digest;
  PullPlan hostile_plan = *plan;
  hostile_plan.pieces.push_back(forged);
  StoreDir dir;
  ChunkStore store = dir.open();
  BatchLog log;
  auto pulled = pull_chunked_layer_into_store(store, *toc, hostile_plan,
                                              batch_fetcher(layer.blob, log), layer.diff_id, {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.error().code, ErrorCode::kLimitExceeded) << pulled.error().to_string();
  EXPECT_EQ(log.calls, 0U);
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_EQ(stats->chunks, 0U);
}

// A fetcher that several threads may call at once (StorePullOptions::batches_in_flight > 1):
// `fail_call` (counted from 1) answers with an error, as a registry whose range stalls past the
// client's limits does, or, with `short_answer`, with its last range one byte short.
RangeBatchFetcher shared_fetcher(const std::vector<std::uint8_t>& blob, std::mutex& mutex,
                                 BatchLog& log, std::uint64_t fail_call = 0,
                                 bool short_answer = false) {
  return [&blob, &mutex, &log, fail_call, short_answer](
             std::span<const ByteRange> ranges) -> Result<std::vector<std::vector<std::uint8_t>>> {
    std::uint64_t call = 0;
    {
      std::lock_guard lock(mutex);
      call = ++log.calls;
    }
    if (call == fail_call && !short_answer) {
      return make_error(ErrorCode::kIo, "range GET stalled (no byte for 30 s)");
    }
    std::vector<std::vector<std::uint8_t>> out;
    for (const ByteRange& range : ranges) {
      auto bytes = memory_fetcher(blob)(range.offset, range.length);
      if (!bytes) return std::move(bytes).error();
      std::lock_guard lock(mutex);
      log.bytes += bytes->size();
      out.push_back(std::move(*bytes));
    }
    if (call == fail_call && !out.empty() && !out.back().empty()) out.back().pop_back();
    return out;
  };
}

TEST(ChunkedStorePull, SeveralBatchesInFlightRebuildTheSameLayer) {
  const MadeTar made = make_tar(41, 6, 400'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, {});
  ASSERT_TRUE(plan.ok());
  StorePullOptions options;
  options.batch_bytes = 128 << 10;
  options.batches_in_flight = 4;
  std::mutex mutex;
  BatchLog log;
  auto pulled = pull_chunked_layer_into_store(
      store, *toc, *plan, shared_fetcher(layer.blob, mutex, log), layer.diff_id, options);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(pulled->batches, log.calls);
  EXPECT_GT(pulled->batches, 10U);
  EXPECT_LE(pulled->max_batch_bytes, options.batch_bytes);
  EXPECT_EQ(log.bytes, plan->fetch_bytes);
  EXPECT_EQ(pulled->adopted_frames, made.chunks.size());
  expect_holds_the_tar(store, layer.diff_id, made.tar);
}

// A layer pulled with several batches in flight, for the tests that make one batch fail: its TOC,
// its plan and how many batch calls a clean pull makes with `options`.
struct BatchedPull {
  ChunkedBlob layer;
  ChunkedLayerToc toc;
  PullPlan plan;
  std::uint64_t batches = 0;
};

BatchedPull batched_pull(std::uint64_t seed, const StorePullOptions& options) {
  const MadeTar made = make_tar(seed, 6, 400'000, 65'536);
  BatchedPull pull{write_layer(made, ChunkedFormat::kZstdChunked), {}, {}, 0};
  auto toc = read_chunked_toc(pull.layer.blob.size(), pull.layer.annotations,
                              memory_fetcher(pull.layer.blob));
  EXPECT_TRUE(toc.ok());
  if (!toc.ok()) return pull;
  pull.toc = std::move(*toc);
  auto plan = plan_pull(pull.toc, {});
  EXPECT_TRUE(plan.ok());
  if (!plan.ok()) return pull;
  pull.plan = std::move(*plan);
  StoreDir dir;
  ChunkStore store = dir.open();
  std::mutex mutex;
  BatchLog log;
  auto pulled = pull_chunked_layer_into_store(store, pull.toc, pull.plan,
                                              shared_fetcher(pull.layer.blob, mutex, log),
                                              pull.layer.diff_id, options);
  EXPECT_TRUE(pulled.ok()) << pulled.error().to_string();
  if (pulled.ok()) pull.batches = pulled->batches;
  return pull;
}

void expect_nothing_committed(const ChunkStore& store) {
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_EQ(stats->chunks, 0U);
}

TEST(ChunkedStorePull, AFailedBatchAmongSeveralInFlightCommitsNothing) {
  StorePullOptions options;
  options.batch_bytes = 128 << 10;
  options.batches_in_flight = 4;
  const BatchedPull pull = batched_pull(43, options);
  const std::uint64_t batches = pull.batches;
  ASSERT_GT(batches, 4U);
  // The first, a middle and the last batch failing: each ends the pull with the fetcher's error.
  for (const std::uint64_t fail_call : {std::uint64_t{1}, batches / 2, batches}) {
    SCOPED_TRACE("failing call " + std::to_string(fail_call));
    StoreDir dir;
    ChunkStore store = dir.open();
    std::mutex mutex;
    BatchLog log;
    auto pulled = pull_chunked_layer_into_store(
        store, pull.toc, pull.plan, shared_fetcher(pull.layer.blob, mutex, log, fail_call),
        pull.layer.diff_id, options);
    ASSERT_FALSE(pulled.ok());
    EXPECT_EQ(pulled.error().code, ErrorCode::kIo) << pulled.error().to_string();
    EXPECT_NE(pulled.error().message.find("stalled"), std::string::npos);
    EXPECT_GE(log.calls, fail_call);
    expect_nothing_committed(store);
  }
}

// A range answered one byte short in a batch among several in flight (the first, a middle or
// the last call) ends the pull with an error saying which range came back short; nothing is
// committed.
TEST(ChunkedStorePull, AShortRangeAmongSeveralInFlightCommitsNothing) {
  StorePullOptions options;
  options.first_batch_bytes = 64 << 10;
  options.batch_bytes = 256 << 10;
  options.batches_in_flight = 3;
  const BatchedPull pull = batched_pull(45, options);
  const std::uint64_t batches = pull.batches;
  ASSERT_GT(batches, 4U);
  for (const std::uint64_t short_call : {std::uint64_t{1}, batches / 2, batches}) {
    SCOPED_TRACE("short call " + std::to_string(short_call));
    StoreDir dir;
    ChunkStore store = dir.open();
    std::mutex mutex;
    BatchLog log;
    auto pulled = pull_chunked_layer_into_store(
        store, pull.toc, pull.plan, shared_fetcher(pull.layer.blob, mutex, log, short_call, true),
        pull.layer.diff_id, options);
    ASSERT_FALSE(pulled.ok());
    EXPECT_EQ(pulled.error().code, ErrorCode::kIo) << pulled.error().to_string();
    EXPECT_NE(pulled.error().message.find("range at "), std::string::npos)
        << pulled.error().to_string();
    EXPECT_NE(pulled.error().message.find("bytes"), std::string::npos);
    expect_nothing_committed(store);
  }
}

// The TOC's file digests are not what proves a file in a store pull: every chunk is checked against
// its chunk digest and the whole tar against the diff_id before anything is committed, so each
// byte is hashed once besides the diff_id. A file digest the TOC gets wrong (its chunks and the
// tar right) therefore does not stop the pull; what is stored is the diff_id's tar.
TEST(ChunkedStorePull, AWrongTocFileDigestIsNotWhatProvesTheFile) {
  const MadeTar made = make_tar(47, 3, 300'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, {});
  ASSERT_TRUE(plan.ok());
  BlobPiece* last_of_file1 = nullptr;
  for (BlobPiece& piece : plan->pieces) {
    if (piece.is_chunk && piece.name == "dir/file1" && piece.file_digest) last_of_file1 = &piece;
  }
  ASSERT_NE(last_of_file1, nullptr);
  ASSERT_GT(last_of_file1->chunk_offset, 0U);  // several chunks
  last_of_file1->file_digest = sha256_of(std::vector<std::uint8_t>{1, 2, 3});
  StoreDir dir;
  ChunkStore store = dir.open();
  BatchLog log;
  auto pulled = pull_chunked_layer_into_store(store, *toc, *plan, batch_fetcher(layer.blob, log),
                                              layer.diff_id, {});
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(exported_diff_id(store, layer.diff_id), sha256_of(made.tar));
}

// A layer that is consistent in itself (frames, TOC chunk and file digests, tar-split) but whose
// tar is not the one the config names: `tampered` differs from `made` in one file body or one tar
// header. The diff_id refuses it, naming both digests, and nothing is committed.
void expect_refused_by_the_diff_id(const MadeTar& made, const MadeTar& tampered,
                                   ChunkedFormat format) {
  ChunkedBlob layer = write_layer(tampered, format);
  ASSERT_NE(layer.diff_id, sha256_of(made.tar));
  layer.diff_id = sha256_of(made.tar);  // the config's
  StoreDir dir;
  ChunkStore store = dir.open();
  const Pulled pulled = pull(store, layer);
  ASSERT_FALSE(pulled.report.ok());
  EXPECT_EQ(pulled.report.error().code, ErrorCode::kDigestMismatch)
      << pulled.report.error().to_string();
  EXPECT_NE(pulled.report.error().message.find("differs from diff_id " + layer.diff_id.to_string()),
            std::string::npos)
      << pulled.report.error().message;
  expect_nothing_committed(store);
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

TEST(ChunkedStorePull, ATamperedFileIsRefusedByTheDiffIdAndNothingIsCommitted) {
  const MadeTar made = make_tar(59, 3, 300'000, 65'536);
  for (const ChunkedFormat format : {ChunkedFormat::kZstdChunked, ChunkedFormat::kEstargz}) {
    SCOPED_TRACE(std::string(chunked_format_name(format)));
    MadeTar tampered = made;
    TarChunk& chunk = tampered.chunks[4];  // the last of dir/file0's five chunks
    ASSERT_GT(chunk.tar_offset, made.chunks[3].tar_offset);
    tampered.tar[chunk.tar_offset + 1000] ^= 0x01U;
    chunk.digest = sha256_of(ByteSpan(tampered.tar).subspan(chunk.tar_offset, chunk.length));
    expect_refused_by_the_diff_id(made, tampered, format);
  }
}

TEST(ChunkedStorePull, ATamperedTarHeaderIsRefusedByTheDiffIdAndNothingIsCommitted) {
  const MadeTar made = make_tar(61, 2, 200'000, 65'536);
  for (const ChunkedFormat format : {ChunkedFormat::kZstdChunked, ChunkedFormat::kEstargz}) {
    SCOPED_TRACE(std::string(chunked_format_name(format)));
    MadeTar tampered = made;
    // The first file's header (after the directory's): another mtime, its checksum made right.
    std::vector<std::uint8_t> header(tampered.tar.begin() + 512, tampered.tar.begin() + 1024);
    test::set_octal(header, 136, 12, 1700000001);
    test::set_checksum(header);
    std::copy(header.begin(), header.end(), tampered.tar.begin() + 512);
    expect_refused_by_the_diff_id(made, tampered, format);
  }
}

// A TOC whose one piece is larger than a pull holds at once: refused as unsupported (a registry
// pull then fetches the layer whole, streamed) before a byte is fetched.
TEST(ChunkedStorePull, APieceLargerThanAPullHoldsIsRefusedBeforeAnyFetch) {
  const MadeTar made = make_tar(53, 2, 100'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, {});
  ASSERT_TRUE(plan.ok());
  const std::uint64_t huge = std::uint64_t{200} << 20U;
  BlobPiece* first = nullptr;
  for (BlobPiece& piece : plan->pieces) {
    if (piece.is_chunk && first == nullptr) first = &piece;
  }
  ASSERT_NE(first, nullptr);
  first->end = first->offset + huge;
  plan->ranges = {ByteRange{first->offset, huge}};
  StoreDir dir;
  ChunkStore store = dir.open();
  BatchLog log;
  auto pulled = pull_chunked_layer_into_store(store, *toc, *plan, batch_fetcher(layer.blob, log),
                                              layer.diff_id, {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.error().code, ErrorCode::kUnsupported) << pulled.error().to_string();
  EXPECT_EQ(log.calls, 0U);
}

// The same shape as a whole blob, kept in the fuzz corpus (fuzz/corpus/fuzz_zstd_chunked/
// toc-zeros-2p50, replayed by fuzz_zstd_chunked_replay): its TOC reads, and the planner refuses it.
TEST(ChunkedStorePull, TheFuzzSeedWithPetabytesOfZerosIsRefusedByThePlanner) {
  const std::string seed =
      std::string(STRATA_SOURCE_DIR) + "/fuzz/corpus/fuzz_zstd_chunked/toc-zeros-2p50";
  const std::vector<std::uint8_t> blob = test::read_file(seed);
  ASSERT_FALSE(blob.empty()) << seed;
  TocReadOptions options;
  options.allow_unverified = true;
  auto toc = read_chunked_toc(blob.size(), {}, memory_fetcher(blob), options);
  ASSERT_TRUE(toc.ok()) << toc.error().to_string();
  auto plan = plan_pull(*toc, {});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code, ErrorCode::kLimitExceeded) << plan.error().to_string();
}

// ---- streamed batches (StorePullOptions::stream) ------------------------------------------------

struct StreamLog {
  std::uint64_t calls = 0;
  std::uint64_t bytes = 0;
  std::vector<std::uint64_t> lengths;  // per call, in call order
};

// A RangeStreamer over a blob in memory: each range is handed to the sink in `slice`-byte parts.
// Call `fail_call` (counted from 1) breaks off after half its bytes with an error (a connection
// the retries could not save) or, with `short_answer`, returns having delivered one byte less.
RangeStreamer memory_streamer(const std::vector<std::uint8_t>& blob, std::mutex& mutex,
                              StreamLog& log, std::size_t slice, std::uint64_t fail_call = 0,
                              bool short_answer = false) {
  return [&blob, &mutex, &log, slice, fail_call, short_answer](
             const ByteRange& range, const RangeSink& sink) -> Result<void> {
    std::uint64_t call = 0;
    {
      std::lock_guard lock(mutex);
      call = ++log.calls;
      log.lengths.push_back(range.length);
    }
    if (range.offset > blob.size() || range.length > blob.size() - range.offset) {
      return make_error(ErrorCode::kCorruptInput, "range outside the blob");
    }
    std::uint64_t end = range.length;
    if (call == fail_call) end = short_answer ? range.length - 1 : range.length / 2;
    for (std::uint64_t at = 0; at < end; at += slice) {
      const std::uint64_t n = std::min<std::uint64_t>(slice, end - at);
      STRATA_TRY(sink(ByteSpan(blob).subspan(range.offset + at, n)));
      std::lock_guard lock(mutex);
      log.bytes += n;
    }
    if (call == fail_call && !short_answer) {
      return make_error(ErrorCode::kIo, "connection reset mid-range, retries spent");
    }
    return {};
  };
}

// A layer's TOC and its plan against an empty store.
struct ColdPlan {
  ChunkedLayerToc toc;
  PullPlan plan;
};

ColdPlan cold_plan(const ChunkedBlob& layer) {
  ColdPlan cold;
  auto toc = read_chunked_toc(layer.blob.size(), layer.annotations, memory_fetcher(layer.blob));
  EXPECT_TRUE(toc.ok());
  if (!toc.ok()) return cold;
  cold.toc = std::move(*toc);
  auto plan = plan_pull(cold.toc, {});
  EXPECT_TRUE(plan.ok());
  if (plan.ok()) cold.plan = std::move(*plan);
  return cold;
}

TEST(ChunkedStorePull, ALongRunStreamsInFewRequestsAndRebuildsTheSameLayer) {
  const MadeTar made = make_tar(51, 6, 400'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  const ColdPlan cold = cold_plan(layer);
  const PullPlan* const plan = &cold.plan;
  ASSERT_EQ(plan->ranges.size(), 1U);  // a cold pull: one run of missing chunks
  // Without prefetch (fetched on the asking thread), one request at a time, and two in flight.
  for (const std::size_t in_flight : {std::size_t{0}, std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("in flight " + std::to_string(in_flight));
    StoreDir dir;
    ChunkStore store = dir.open();
    std::mutex mutex;
    StreamLog streamed;
    BatchLog batched;
    StorePullOptions options;
    options.batch_bytes = 128 << 10;
    options.stream_batch_bytes = 1 << 20;
    options.prefetch = in_flight != 0;
    options.batches_in_flight = std::max<std::size_t>(in_flight, 1);
    options.stream = memory_streamer(layer.blob, mutex, streamed, 4093);
    auto pulled = pull_chunked_layer_into_store(
        store, cold.toc, *plan, shared_fetcher(layer.blob, mutex, batched), layer.diff_id, options);
    ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
    EXPECT_EQ(batched.calls, 0U);
    // About 2.4 MiB in requests of at most 1 MiB: three, not the twenty 128 KiB batches.
    EXPECT_EQ(streamed.calls,
              (plan->fetch_bytes + options.stream_batch_bytes - 1) / options.stream_batch_bytes);
    for (const std::uint64_t length : streamed.lengths) {
      EXPECT_LE(length, options.stream_batch_bytes);
    }
    EXPECT_EQ(pulled->batches, streamed.calls);
    EXPECT_LE(pulled->max_batch_bytes, options.stream_batch_bytes);
    EXPECT_EQ(streamed.bytes, plan->fetch_bytes);
    EXPECT_EQ(pulled->adopted_frames, made.chunks.size());
    expect_holds_the_tar(store, layer.diff_id, made.tar);
  }
}

TEST(ChunkedStorePull, AStreamThatBreaksOffOrComesUpShortCommitsNothing) {
  const MadeTar made = make_tar(53, 6, 400'000, 65'536);
  const ChunkedBlob layer = write_layer(made, ChunkedFormat::kZstdChunked);
  const ColdPlan cold = cold_plan(layer);
  const PullPlan* const plan = &cold.plan;
  StorePullOptions options;
  options.batch_bytes = 128 << 10;
  options.stream_batch_bytes = 512 << 10;
  options.batches_in_flight = 2;
  const std::uint64_t requests =
      (plan->fetch_bytes + options.stream_batch_bytes - 1) / options.stream_batch_bytes;
  ASSERT_GT(requests, 3U);
  for (const bool short_answer : {false, true}) {
    for (const std::uint64_t bad_call : {std::uint64_t{1}, requests / 2, requests}) {
      SCOPED_TRACE((short_answer ? "short call " : "broken call ") + std::to_string(bad_call));
      StoreDir dir;
      ChunkStore store = dir.open();
      std::mutex mutex;
      StreamLog streamed;
      BatchLog batched;
      options.stream = memory_streamer(layer.blob, mutex, streamed, 8191, bad_call, short_answer);
      auto pulled = pull_chunked_layer_into_store(store, cold.toc, *plan,
                                                  shared_fetcher(layer.blob, mutex, batched),
                                                  layer.diff_id, options);
      ASSERT_FALSE(pulled.ok());
      EXPECT_EQ(pulled.error().code, ErrorCode::kIo) << pulled.error().to_string();
      EXPECT_NE(pulled.error().message.find(short_answer ? "bytes" : "connection reset"),
                std::string::npos)
          << pulled.error().to_string();
      EXPECT_GE(streamed.calls, bad_call);
      expect_nothing_committed(store);
    }
  }
}

TEST(ChunkedStorePull, ShortRangesGoInMultiRangeBatchesBesideStreams) {
  // v2: all of file 2 rewritten (four 64 KiB chunks: one run of 256 KiB, streamed) and the second
  // chunk of file 0 (one 64 KiB range, under the first batch limit: a multi-range batch).
  const MadeTar first = make_tar(57, 4, 262'144, 65'536);
  const ChunkedBlob v1 = write_layer(first, ChunkedFormat::kZstdChunked);
  MadeTar second = make_tar(57, 4, 262'144, 65'536);
  const MadeTar changed = make_tar(157, 4, 262'144, 65'536);  // seeds 157.. are new content
  const std::uint64_t file_stride = 512 + 262'144;
  const auto rewrite = [&](std::uint64_t at, std::uint64_t length) {
    std::copy_n(changed.tar.begin() + static_cast<std::ptrdiff_t>(at), length,
                second.tar.begin() + static_cast<std::ptrdiff_t>(at));
  };
  const std::uint64_t file0 = 512 + 512;
  const std::uint64_t file2 = 512 + 2 * file_stride + 512;
  rewrite(file0 + 65'536, 65'536);
  rewrite(file2, 262'144);
  for (TarChunk& chunk : second.chunks) {
    chunk.digest = sha256_of(ByteSpan(second.tar).subspan(chunk.tar_offset, chunk.length));
  }
  const ChunkedBlob v2 = write_layer(second, ChunkedFormat::kZstdChunked);
  StoreDir dir;
  ChunkStore store = dir.open();
  ASSERT_TRUE(pull(store, v1).report.ok());
  auto toc = read_chunked_toc(v2.blob.size(), v2.annotations, memory_fetcher(v2.blob));
  ASSERT_TRUE(toc.ok());
  auto plan = plan_pull(*toc, [&](const Digest& digest) { return store.contains(digest); });
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->ranges.size(), 2U);
  StorePullOptions options;
  options.first_batch_bytes = 128 << 10;
  options.batches_in_flight = 2;
  std::mutex mutex;
  StreamLog streamed;
  BatchLog batched;
  options.stream = memory_streamer(v2.blob, mutex, streamed, 1000);
  auto pulled = pull_chunked_layer_into_store(
      store, *toc, *plan, shared_fetcher(v2.blob, mutex, batched), v2.diff_id, options);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(batched.calls, 1U);
  EXPECT_EQ(batched.bytes, plan->ranges[0].length);
  ASSERT_EQ(streamed.calls, 1U);
  EXPECT_EQ(streamed.lengths[0], plan->ranges[1].length);
  EXPECT_EQ(pulled->adopted_frames, 5U);
  expect_holds_the_tar(store, v2.diff_id, second.tar);
}

// The batches themselves (detail::BatchedBlob): a piece of a streamed batch is served as soon as
// its bytes are in, while the rest of the batch is still on its way.
TEST(BatchedBlob, APieceIsServedOnceItsBytesArriveNotWhenItsBatchEnds) {
  const std::vector<std::uint8_t> blob = test::splitmix64_bytes(61, 1000);
  std::mutex mutex;
  std::condition_variable resume;
  bool served_first = false;
  bool stream_resumed = false;
  const RangeStreamer stream = [&](const ByteRange& range, const RangeSink& sink) -> Result<void> {
    STRATA_TRY(sink(ByteSpan(blob).subspan(range.offset, 400)));
    {
      // Held until the first piece was served (or 10 s: a serve that waits for the whole batch
      // then fails the test below instead of hanging it).
      std::unique_lock lock(mutex);
      resume.wait_for(lock, std::chrono::seconds(10), [&] { return served_first; });
      stream_resumed = true;
    }
    return sink(ByteSpan(blob).subspan(range.offset + 400, range.length - 400));
  };
  const RangeBatchFetcher unused = [](std::span<const ByteRange>) {
    return Result<std::vector<std::vector<std::uint8_t>>>(
        make_error(ErrorCode::kInternal, "no multi-range batch here"));
  };
  StorePullReport report;
  detail::BatchedBlob batched(unused, stream,
                              {detail::FetchBatch{{ByteRange{0, 1000}}, true, {300, 1000}}},
                              blob.size(), 2, report);
  batched.start();
  auto first = batched.bytes_of(0, 300);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  {
    std::lock_guard lock(mutex);
    EXPECT_FALSE(stream_resumed);
    served_first = true;
  }
  resume.notify_all();
  EXPECT_TRUE(std::equal(first->bytes.begin(), first->bytes.end(), blob.begin()));
  auto rest = batched.bytes_of(300, 1000);
  ASSERT_TRUE(rest.ok()) << rest.error().to_string();
  EXPECT_TRUE(std::equal(rest->bytes.begin(), rest->bytes.end(), blob.begin() + 300));
  EXPECT_EQ(report.batches, 1U);
  EXPECT_EQ(report.fetched_bytes, 1000U);
}

// A stream that fails after every byte its pieces needed arrived is still an error: the next
// piece asked for (in a later batch) gets it.
TEST(BatchedBlob, AStreamFailingAfterItsLastPieceIsReportedWhenTheAskerMovesOn) {
  const std::vector<std::uint8_t> blob = test::splitmix64_bytes(63, 1000);
  const RangeStreamer stream = [&](const ByteRange& range, const RangeSink& sink) -> Result<void> {
    STRATA_TRY(sink(ByteSpan(blob).subspan(range.offset, range.length)));
    if (range.offset == 0) return make_error(ErrorCode::kIo, "trailer of the first request lost");
    return {};
  };
  const RangeBatchFetcher unused = [](std::span<const ByteRange>) {
    return Result<std::vector<std::vector<std::uint8_t>>>(
        make_error(ErrorCode::kInternal, "no multi-range batch here"));
  };
  StorePullReport report;
  detail::BatchedBlob batched(unused, stream,
                              {detail::FetchBatch{{ByteRange{0, 500}}, true, {500}},
                               detail::FetchBatch{{ByteRange{500, 500}}, true, {500}}},
                              blob.size(), 1, report);
  batched.start();
  auto first = batched.bytes_of(0, 500);
  if (first.ok()) {  // served before the stream ended, or the stream's error: either is right
    auto next = batched.bytes_of(500, 600);
    ASSERT_FALSE(next.ok());
    EXPECT_NE(next.error().message.find("trailer"), std::string::npos) << next.error().message;
  } else {
    EXPECT_NE(first.error().message.find("trailer"), std::string::npos) << first.error().message;
  }
}

// A streamed batch of many units: the stream waits once kMaxStreamedUnits are held and goes on
// as the asker lets them go (on threads); fetched on the asking thread it is written whole first.
TEST(BatchedBlob, AStreamHoldsAtMostItsUnitBoundAndGoesOnAsUnitsAreLetGo) {
  constexpr std::size_t kUnits = 3 * detail::kMaxStreamedUnits;
  constexpr std::uint64_t kUnitBytes = 100;
  const std::vector<std::uint8_t> blob = test::splitmix64_bytes(65, kUnits * kUnitBytes);
  detail::FetchBatch batch{{ByteRange{0, blob.size()}}, true, {}};
  for (std::size_t unit = 1; unit <= kUnits; ++unit) batch.unit_ends.push_back(unit * kUnitBytes);
  const RangeBatchFetcher unused = [](std::span<const ByteRange>) {
    return Result<std::vector<std::vector<std::uint8_t>>>(
        make_error(ErrorCode::kInternal, "no multi-range batch here"));
  };
  for (const std::size_t in_flight : {std::size_t{1}, std::size_t{0}}) {
    SCOPED_TRACE("in flight " + std::to_string(in_flight));
    std::atomic<std::uint64_t> delivered{0};
    const RangeStreamer stream = [&](const ByteRange& range,
                                     const RangeSink& sink) -> Result<void> {
      for (std::uint64_t at = 0; at < range.length; at += kUnitBytes) {
        STRATA_TRY(sink(ByteSpan(blob).subspan(range.offset + at, kUnitBytes)));
        delivered += kUnitBytes;
      }
      return {};
    };
    StorePullReport report;
    {
      detail::BatchedBlob batched(unused, stream, {batch}, blob.size(), in_flight, report);
      batched.start();
      if (in_flight != 0) {
        // Nothing asked for yet: the stream stops once it holds the bound (however long it is
        // given).
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        EXPECT_LE(delivered.load(), (detail::kMaxStreamedUnits + 1) * kUnitBytes);
      }
      for (std::size_t unit = 0; unit < kUnits; ++unit) {
        auto bytes = batched.bytes_of(unit * kUnitBytes, (unit + 1) * kUnitBytes);
        ASSERT_TRUE(bytes.ok()) << bytes.error().to_string();
        EXPECT_TRUE(std::equal(bytes->bytes.begin(), bytes->bytes.end(),
                               blob.begin() + static_cast<std::ptrdiff_t>(unit * kUnitBytes)));
      }
    }  // waits for the stream, which counts a unit only after the asker may already have it
    EXPECT_EQ(delivered.load(), blob.size());
  }
}

}  // namespace
}  // namespace strata::fastpull
