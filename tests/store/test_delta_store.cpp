// Delta chunks in the store (DESIGN.md §7, docs/STORE.md "Delta chunks"): the two delta codecs
// round-trip; a layer ingested with --delta-base exports byte-exact, and every chunk leaves the
// store as the same standalone zstd frame a store without deltas hands out (so frame-reusing
// exports -- zstd:chunked, convert --reuse-store-frames, remote-store publish -- are identical);
// gc keeps a base while a delta needs it and drops both after; verify names a corrupt base and
// its delta; a planted chain (two deltas naming each other as base, written with sqlite3) is
// refused with a clear error, never followed. The sqlite3 tool is required
// (scripts/install-deps.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "core/export/recipe_tar_chunks.h"
#include "core/ingest/delta_base.h"
#include "core/ingest/delta_sketch.h"
#include "core/store/chunk_store_fault.h"
#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

bool sqlite3_installed() {
  return std::system("sqlite3 -version >/dev/null 2>&1") == 0;
}

// Output of one sqlite3 query on the store's index.
std::string query(const std::string& store, const std::string& sql) {
  const std::string out = store + "/query.out";
  const std::string command = "sqlite3 '" + store + "/index.db' \"" + sql + "\" > '" + out + "'";
  if (std::system(command.c_str()) != 0) return "<sqlite3 failed>";
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// A rebuilt library in miniature: v2 is v1 with a few bytes changed every 3 KiB (addresses
// moved) and a short insertion; a second file gains a line in the middle; a third is dropped.
struct Versions {
  std::vector<std::uint8_t> v1;
  std::vector<std::uint8_t> v2;
};

std::vector<std::uint8_t> tar_of(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<std::uint8_t> tar;
  for (const auto& [name, content] : files) {
    test::append(tar, test::make_header(name, '0', content.size()));
    test::append_content(tar, content);
  }
  test::append_end(tar);
  return tar;
}

Versions make_versions() {
  // Compressible but not trivially: words drawn from random bytes.
  const auto noise = test::splitmix64_bytes(7, 400000);
  std::string library;
  for (std::uint8_t byte : noise) library.push_back(static_cast<char>('a' + byte % 20));
  std::string library2 = library;
  for (std::size_t at = 100; at + 4 < library2.size(); at += 3000) library2[at] ^= 0x11;
  library2.insert(150000, "inserted in version two");
  const auto doc_noise = test::splitmix64_bytes(9, 150000);
  std::string doc(doc_noise.begin(), doc_noise.end());
  std::string doc2 = doc;
  doc2.insert(70000, "a new line\n");
  const auto gone = test::splitmix64_bytes(11, 60000);
  return {tar_of({{"usr/lib/libx.so.1", library},
                  {"usr/share/doc/x", doc},
                  {"usr/share/old", std::string(gone.begin(), gone.end())}}),
          tar_of({{"usr/lib/libx.so.1", library2}, {"usr/share/doc/x", doc2}})};
}

ChunkStore open_store(const std::string& dir) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = ChunkStore::open(dir, options);
  EXPECT_TRUE(store.ok()) << store.error().to_string();
  return std::move(store).value();
}

IngestOptions small_chunks() {
  IngestOptions options;
  options.chunker.min_size = 4096;
  options.chunker.avg_size = 16384;
  options.chunker.max_size = 65536;
  return options;
}

std::vector<std::uint8_t> export_tar(const ChunkStore& store, const Digest& layer) {
  std::vector<std::uint8_t> out;
  auto exported = export_layer_tar(store, layer, [&out](ByteSpan bytes) -> Result<void> {
    out.insert(out.end(), bytes.begin(), bytes.end());
    return {};
  });
  EXPECT_TRUE(exported.ok()) << exported.error().to_string();
  return out;
}

// v1 then v2 into `dir`, v2 delta-coded against v1. Returns v2's report.
IngestReport ingest_pair(ChunkStore& store, const Versions& versions, bool delta) {
  auto first = ingest_layer_bytes(store, versions.v1, small_chunks());
  EXPECT_TRUE(first.ok()) << first.error().to_string();
  IngestOptions options = small_chunks();
  if (delta) {
    options.delta.base = DeltaBase::kLayer;
    options.delta.layer = first->diff_id;
  }
  auto second = ingest_layer_bytes(store, versions.v2, options);
  EXPECT_TRUE(second.ok()) << second.error().to_string();
  return *second;
}

TEST(DeltaCodec, RoundTripsAgainstTheBase) {
  const auto base = test::splitmix64_bytes(1, 50000);
  std::vector<std::uint8_t> raw = base;
  for (std::size_t i = 0; i < raw.size(); i += 997) raw[i] ^= 0x5A;
  std::vector<std::uint8_t> stored;
  ASSERT_TRUE(compress_chunk_delta_into(raw, base, 3, stored).ok());
  auto plain = compress_chunk_zstd(raw, 3);
  ASSERT_TRUE(plain.ok());
  EXPECT_LT(stored.size() * 10, plain->size()) << "the base should make the frame tiny";
  auto decoded = decompress_delta_chunk(Codec::kZstdDelta, stored, base, raw.size());
  ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, raw);
  // Without its base the frame cannot be decoded as a plain chunk.
  auto alone = decompress_chunk(Codec::kZstdDelta, stored, raw.size());
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.error().code, ErrorCode::kInvalidArgument);
  // A wrong base never yields the raw bytes silently.
  const auto other = test::splitmix64_bytes(2, 50000);
  auto wrong = decompress_delta_chunk(Codec::kZstdDelta, stored, other, raw.size());
  EXPECT_TRUE(!wrong.ok() || *wrong != raw);

  // Float tensors: XOR with the base, then byte grouping (a chunk starting mid-element too).
  std::vector<std::uint8_t> weights = test::splitmix64_bytes(3, 8192);
  std::vector<std::uint8_t> tuned = weights;
  for (std::size_t i = 0; i < tuned.size(); i += 2) tuned[i] ^= static_cast<std::uint8_t>(i & 3U);
  for (std::uint32_t phase : {0U, 1U}) {
    auto grouped = encode_chunk_xor_grouped(tuned, weights, 2, phase, 3);
    ASSERT_TRUE(grouped.ok()) << grouped.error().to_string();
    auto back = decompress_delta_chunk(Codec::kXorByteGrouped, *grouped, weights, tuned.size());
    ASSERT_TRUE(back.ok()) << back.error().to_string();
    EXPECT_EQ(*back, tuned);
  }
  // A base shorter than the chunk: the rest is stored as it is.
  auto shorter = encode_chunk_xor_grouped(tuned, ByteSpan(weights).first(1000), 2, 0, 3);
  ASSERT_TRUE(shorter.ok());
  auto back = decompress_delta_chunk(Codec::kXorByteGrouped, *shorter,
                                     ByteSpan(weights).first(1000), tuned.size());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, tuned);
}

// The delta is coded first; the plain frame only when the delta does not win outright against
// the plain size its base predicts, and then the smaller one is kept.
TEST(DeltaCoder, CodesThePlainFormOnlyWhenTheDeltaDoesNotWinOutright) {
  test::ScratchDir scratch;
  ChunkStore store = open_store(scratch.path() + "/store");
  const Versions versions = make_versions();
  auto v1 = ingest_layer_bytes(store, versions.v1, small_chunks());
  ASSERT_TRUE(v1.ok()) << v1.error().to_string();
  auto index = DeltaBaseIndex::build(store, v1->diff_id);
  ASSERT_TRUE(index.ok()) << index.error().to_string();
  const DeltaBaseIndex::File* library = index->find("usr/lib/libx.so.1");
  ASSERT_NE(library, nullptr);
  // The first 16 KiB of v2's library (its content starts after one 512-byte tar header).
  const ByteSpan changed = ByteSpan(versions.v2).subspan(512, 16384);
  const std::uint64_t library_size = 400000 + std::string("inserted in version two").size();
  const auto unrelated = test::splitmix64_bytes(99, 16384);

  for (const double skip_ratio : {0.5, 0.0}) {
    DeltaCoderOptions options;
    options.plain_skip_ratio = skip_ratio;
    DeltaCoder coder(store, *index, options);
    int plain_calls = 0;
    std::vector<std::uint8_t> plain;
    auto code_plain = [&](ByteSpan raw) {
      return [&plain_calls, &plain, raw]() -> Result<std::size_t> {
        ++plain_calls;
        STRATA_TRY(compress_chunk_zstd_into(raw, 3, plain));
        return plain.size();
      };
    };
    auto similar = coder.encode(library, 0, library_size, changed, 0, 0, code_plain(changed));
    ASSERT_TRUE(similar.ok()) << similar.error().to_string();
    ASSERT_TRUE(similar->has_value()) << "a lightly edited chunk is stored as a delta";
    EXPECT_EQ(plain_calls, skip_ratio > 0 ? 0 : 1);
    EXPECT_EQ(coder.plain_frames_skipped(), skip_ratio > 0 ? 1U : 0U);
    const DeltaCoded& delta = **similar;
    EXPECT_GT(delta.base->stored_size, 0U);
    auto decoded =
        decompress_delta_chunk(delta.codec, delta.stored, delta.base->raw, changed.size());
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_TRUE(std::equal(decoded->begin(), decoded->end(), changed.begin(), changed.end()));

    // Bytes unlike their base: the plain form is coded once and stands.
    plain_calls = 0;
    auto other = coder.encode(library, 0, library_size, unrelated, 0, 0, code_plain(unrelated));
    ASSERT_TRUE(other.ok()) << other.error().to_string();
    EXPECT_FALSE(other->has_value());
    EXPECT_EQ(plain_calls, 1);
    EXPECT_FALSE(plain.empty());
  }
}

TEST(DeltaStore, ExportsAreByteExactAndFramesStandalone) {
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  ChunkStore delta = open_store(scratch.file("delta"));
  ChunkStore plain = open_store(scratch.file("plain"));
  const IngestReport with = ingest_pair(delta, versions, true);
  const IngestReport without = ingest_pair(plain, versions, false);
  ASSERT_EQ(with.diff_id, without.diff_id);
  EXPECT_GT(with.delta_chunks, 0U);
  EXPECT_LT(with.new_stored_bytes, without.new_stored_bytes);
  auto stats = delta.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->delta_chunks, with.delta_chunks);

  // tar (and so tar+gzip / tar+zstd, which compress the exported tar)
  EXPECT_EQ(export_tar(delta, with.diff_id), versions.v2);

  // Every chunk leaves both stores as the same standalone zstd frame.
  auto layer = delta.find_layer(with.diff_id);
  ASSERT_TRUE(layer.ok());
  auto recipe = parse_recipe(layer->recipe);
  ASSERT_TRUE(recipe.ok());
  for (const Digest& digest : recipe->distinct_chunks()) {
    auto a = delta.read_stored_chunk(digest);
    auto b = plain.read_stored_chunk(digest);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->codec, Codec::kZstd);
    EXPECT_EQ(a->codec, b->codec);
    EXPECT_EQ(a->bytes, b->bytes) << digest.to_string();
  }

  // zstd:chunked written with the store's frames.
  const auto chunks = fastpull::tar_chunks_of(*recipe);
  const auto chunked = [&](const ChunkStore& store) {
    std::vector<std::uint8_t> blob;
    auto written = fastpull::write_zstd_chunked_layer(
        versions.v2, chunks,
        [&store](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
          auto stored = store.read_stored_chunk(digest);
          if (!stored || stored->codec != Codec::kZstd) return std::vector<std::uint8_t>();
          return std::move(stored->bytes);
        },
        fastpull::ChunkedWriteOptions{},
        [&blob](ByteSpan bytes) -> Result<void> {
          blob.insert(blob.end(), bytes.begin(), bytes.end());
          return {};
        });
    EXPECT_TRUE(written.ok()) << written.error().to_string();
    return blob;
  };
  EXPECT_EQ(chunked(delta), chunked(plain));

  auto verified = delta.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();
}

TEST(DeltaStore, AutoBaseIsTheNewestLayerAndReopensAsFormatTwo) {
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  const std::string dir = scratch.file("store");
  {
    ChunkStore store = open_store(dir);
    ASSERT_TRUE(ingest_layer_bytes(store, versions.v1, small_chunks()).ok());
    IngestOptions options = small_chunks();
    options.delta.base = DeltaBase::kNewest;
    auto report = ingest_layer_bytes(store, versions.v2, options);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    EXPECT_NE(report->delta_base_layer, Digest());
    EXPECT_GT(report->delta_chunks, 0U);
  }
  if (sqlite3_installed()) {
    EXPECT_EQ(query(dir, "SELECT value FROM meta WHERE key = 'format_version'"), "2");
  }
  auto reopened = ChunkStore::open(dir);
  ASSERT_TRUE(reopened.ok()) << reopened.error().to_string();
  auto layers = reopened->list_layers();
  ASSERT_TRUE(layers.ok() && layers->size() == 2);
  EXPECT_EQ(export_tar(*reopened, layers->back().diff_id), versions.v2);
}

TEST(DeltaSketch, SimilarChunksShareSuperFeaturesAndUnrelatedOnesNone) {
  const auto bytes = test::splitmix64_bytes(21, 65536);
  auto edited = bytes;
  for (std::size_t at = 500; at < edited.size(); at += 8000) edited[at] ^= 0x33U;
  const ChunkSketch a = sketch_of(bytes);
  EXPECT_FALSE(a.empty);
  EXPECT_EQ(sketch_similarity(a, sketch_of(bytes)), static_cast<int>(kSuperFeatures));
  EXPECT_GE(sketch_similarity(a, sketch_of(edited)), 2);
  EXPECT_EQ(sketch_similarity(a, sketch_of(test::splitmix64_bytes(22, 65536))), 0);
  EXPECT_TRUE(sketch_of(ByteSpan(bytes).first(32)).empty);  // shorter than the window

  SketchIndex index(2);
  EXPECT_TRUE(index.add(sha256_of(bytes), a));
  EXPECT_TRUE(
      index.add(sha256_of(ByteSpan(bytes).first(1)), sketch_of(test::splitmix64_bytes(23, 65536))));
  EXPECT_FALSE(index.add(sha256_of(ByteSpan(bytes).first(2)), sketch_of(edited)));  // bounded
  EXPECT_EQ(index.chunks(), 2U);
  const Digest* found = index.best(sketch_of(edited));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, sha256_of(bytes));
  EXPECT_EQ(index.best(sketch_of(test::splitmix64_bytes(24, 65536))), nullptr);
}

TEST(DeltaStore, ARenamedFileFindsItsBaseBySketch) {
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  // v2's library under a new name (a soname bump): no path in v1 to take a base from.
  Versions renamed = versions;
  const std::string old_name = "usr/lib/libx.so.1";
  const auto at =
      std::search(renamed.v2.begin(), renamed.v2.end(), old_name.begin(), old_name.end());
  ASSERT_NE(at, renamed.v2.end());
  *(at + static_cast<std::ptrdiff_t>(old_name.size()) - 1) = '2';
  // The header checksum covers the name: recompute it (octal, 6 digits, NUL, space).
  const auto header = static_cast<std::size_t>(at - renamed.v2.begin());
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < 512; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : renamed.v2[header + i];
  }
  char field[8];
  std::snprintf(field, sizeof field, "%06o", sum);
  std::copy_n(field, 7, renamed.v2.begin() + static_cast<std::ptrdiff_t>(header + 148));
  renamed.v2[header + 155] = ' ';

  ChunkStore store = open_store(scratch.file("sketch"));
  const IngestReport with = ingest_pair(store, renamed, true);
  EXPECT_GT(with.delta_sketch_chunks, 0U);
  EXPECT_GT(with.delta_sketch_index_chunks, 0U);
  EXPECT_GE(with.delta_chunks, with.delta_sketch_chunks);
  EXPECT_EQ(export_tar(store, with.diff_id), renamed.v2);
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());

  // Without sketches the renamed file has no base: fewer deltas, none by sketch.
  ChunkStore plain = open_store(scratch.file("nosketch"));
  auto first = ingest_layer_bytes(plain, renamed.v1, small_chunks());
  ASSERT_TRUE(first.ok());
  IngestOptions options = small_chunks();
  options.delta.base = DeltaBase::kLayer;
  options.delta.layer = first->diff_id;
  options.delta.sketch_index_chunks = 0;
  auto without = ingest_layer_bytes(plain, renamed.v2, options);
  ASSERT_TRUE(without.ok()) << without.error().to_string();
  EXPECT_EQ(without->delta_sketch_chunks, 0U);
  EXPECT_LT(without->delta_chunks, with.delta_chunks);
  EXPECT_GT(without->new_stored_bytes, with.new_stored_bytes);

  // A bounded index: at most 3 base chunks are sketched, whatever the base layer holds.
  ChunkStore bounded = open_store(scratch.file("bounded"));
  auto base = ingest_layer_bytes(bounded, renamed.v1, small_chunks());
  ASSERT_TRUE(base.ok());
  options.delta.layer = base->diff_id;
  options.delta.sketch_index_chunks = 3;
  auto small = ingest_layer_bytes(bounded, renamed.v2, options);
  ASSERT_TRUE(small.ok()) << small.error().to_string();
  EXPECT_LE(small->delta_sketch_index_chunks, 3U);
  EXPECT_GT(small->delta_sketch_index_chunks, 0U);
  EXPECT_EQ(export_tar(bounded, small->diff_id), renamed.v2);

  // A base layer put without kept sketches (an older strata, a pull): its chunks are read and
  // sketched instead, and the renamed file finds the same bases.
  ChunkStore unkept = open_store(scratch.file("unkept"));
  IngestOptions no_sketches = small_chunks();
  no_sketches.delta.keep_sketches = false;
  auto old_base = ingest_layer_bytes(unkept, renamed.v1, no_sketches);
  ASSERT_TRUE(old_base.ok());
  auto none = unkept.layer_sketches(old_base->diff_id, 1000);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  options.delta.layer = old_base->diff_id;
  options.delta.sketch_index_chunks = std::size_t{1} << 16U;
  auto read_back = ingest_layer_bytes(unkept, renamed.v2, options);
  ASSERT_TRUE(read_back.ok()) << read_back.error().to_string();
  EXPECT_EQ(read_back->delta_sketch_chunks, with.delta_sketch_chunks);
  EXPECT_EQ(read_back->new_stored_bytes, with.new_stored_bytes);
  EXPECT_EQ(export_tar(unkept, read_back->diff_id), renamed.v2);
}

// Every new chunk stored whole keeps its sketch, found again by layer (also by a blob digest the
// layer was ingested from); gc drops the sketches of the chunks it removes.
TEST(DeltaStore, KeptSketchesFollowTheLayersChunks) {
  test::ScratchDir scratch;
  ChunkStore store = open_store(scratch.file("store"));
  const Versions versions = make_versions();
  auto v1 = ingest_layer_bytes(store, versions.v1, small_chunks());
  ASSERT_TRUE(v1.ok()) << v1.error().to_string();
  auto kept = store.layer_sketches(v1->diff_id, 1000);
  ASSERT_TRUE(kept.ok()) << kept.error().to_string();
  EXPECT_EQ(kept->size(), v1->new_chunks);
  for (const auto& [digest, words] : *kept) {
    auto raw = store.read_chunk(digest);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(words.super, sketch_of(*raw).super) << digest.to_string();
  }
  auto limited = store.layer_sketches(v1->diff_id, 2);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 2U);
  ASSERT_TRUE(store.remove_layer(v1->diff_id).ok());
  auto collected = store.gc();
  ASSERT_TRUE(collected.ok()) << collected.error().to_string();
  ASSERT_TRUE(sqlite3_installed()) << "sqlite3 is not installed (scripts/install-deps.sh)";
  EXPECT_EQ(query(scratch.file("store"), "SELECT COUNT(*) FROM chunk_sketches"), "0");
  auto gone = store.layer_sketches(v1->diff_id, 1000);
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->empty());
}

TEST(DeltaStore, GcKeepsABaseWhileADeltaNeedsIt) {
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  ChunkStore store = open_store(scratch.file("store"));
  const IngestReport v2 = ingest_pair(store, versions, true);
  ASSERT_GT(v2.delta_chunks, 0U);
  auto layers = store.list_layers();
  ASSERT_TRUE(layers.ok());
  const Digest v1 = layers->front().diff_id;

  ASSERT_TRUE(store.remove_layer(v1).ok());
  auto collected = store.gc();
  ASSERT_TRUE(collected.ok()) << collected.error().to_string();
  EXPECT_GT(collected->chunks_removed, 0U) << "v1's chunks that no delta needs go";
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->chunks, stats->referenced_chunks) << "bases with no layer stay";
  EXPECT_EQ(export_tar(store, v2.diff_id), versions.v2);
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();

  ASSERT_TRUE(store.remove_layer(v2.diff_id).ok());
  ASSERT_TRUE(store.gc().ok());
  stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, 0U);
  EXPECT_EQ(stats->delta_chunks, 0U);
}

// A delta ingest that fails at the disk (a torn pack write, then a failed fsync) leaves the store
// as it was: v2 and its delta rows invisible, v1 whole, verify clean; the same ingest then lands.
TEST(DeltaStore, AFailedDeltaIngestLeavesNothingHalfWritten) {
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  const std::string dir = scratch.file("store");
  ChunkStore store = open_store(dir);
  auto v1 = ingest_layer_bytes(store, versions.v1, small_chunks());
  ASSERT_TRUE(v1.ok()) << v1.error().to_string();
  auto before = store.stats();
  ASSERT_TRUE(before.ok());
  IngestOptions options = small_chunks();
  options.delta.base = DeltaBase::kLayer;
  options.delta.layer = v1->diff_id;

  for (const auto point : {store_fault::FaultPoint::kPackWrite, store_fault::FaultPoint::kFsync}) {
    store_fault::arm_fault(point, 1);
    auto failed = ingest_layer_bytes(store, versions.v2, options);
    store_fault::disarm_faults();
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().code, ErrorCode::kIo) << failed.error().to_string();
    auto reopened = ChunkStore::open(dir);
    ASSERT_TRUE(reopened.ok()) << reopened.error().to_string();
    auto stats = reopened->stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->layers, 1U);
    EXPECT_EQ(stats->chunks, before->chunks);
    EXPECT_EQ(stats->delta_chunks, 0U);
    EXPECT_EQ(export_tar(*reopened, v1->diff_id), versions.v1);
    auto verified = reopened->verify();
    ASSERT_TRUE(verified.ok());
    EXPECT_TRUE(verified->clean()) << verified->problems.front();
  }

  auto landed = ingest_layer_bytes(store, versions.v2, options);
  ASSERT_TRUE(landed.ok()) << landed.error().to_string();
  EXPECT_GT(landed->delta_chunks, 0U);
  auto reopened = ChunkStore::open(dir);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(export_tar(*reopened, landed->diff_id), versions.v2);
  auto verified = reopened->verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();
}

TEST(DeltaStore, VerifyNamesACorruptBaseAndItsDelta) {
  ASSERT_TRUE(sqlite3_installed()) << "sqlite3 is not installed (scripts/install-deps.sh)";
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  const std::string dir = scratch.file("store");
  Digest v2;
  {
    ChunkStore store = open_store(dir);
    v2 = ingest_pair(store, versions, true).diff_id;
  }
  const std::string base_hex = query(dir, "SELECT lower(hex(base)) FROM chunk_bases LIMIT 1");
  const std::string delta_hex = query(
      dir, "SELECT lower(hex(digest)) FROM chunk_bases WHERE base = x'" + base_hex + "' LIMIT 1");
  const std::string pack = query(dir,
                                 "SELECT p.name FROM chunks c JOIN packs p ON p.id = c.pack_id "
                                 "WHERE c.digest = x'" +
                                     base_hex + "'");
  const std::string offset =
      query(dir, "SELECT offset + 60 FROM chunks WHERE digest = x'" + base_hex + "'");
  ASSERT_EQ(base_hex.size(), 64U);
  {
    std::fstream file(dir + "/packs/" + pack, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.good());
    file.seekg(std::stoll(offset));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x40);
    file.seekp(std::stoll(offset));
    file.write(&byte, 1);
  }
  auto store = ChunkStore::open(dir);
  ASSERT_TRUE(store.ok());
  auto verified = store->verify();
  ASSERT_TRUE(verified.ok());
  ASSERT_FALSE(verified->clean());
  bool base_named = false;
  bool delta_named = false;
  for (const std::string& problem : verified->problems) {
    base_named = base_named || problem.find("chunk sha256:" + base_hex) == 0;
    delta_named =
        delta_named || (problem.find("chunk sha256:" + delta_hex) == 0 &&
                        problem.find("base chunk sha256:" + base_hex) != std::string::npos);
  }
  EXPECT_TRUE(base_named) << verified->problems.front();
  EXPECT_TRUE(delta_named) << verified->problems.front();
  std::vector<std::uint8_t> ignored;
  auto exported = export_layer_tar(*store, v2, [](ByteSpan) -> Result<void> { return {}; });
  EXPECT_FALSE(exported.ok());
}

TEST(DeltaStore, APlantedDeltaChainIsRefused) {
  ASSERT_TRUE(sqlite3_installed()) << "sqlite3 is not installed (scripts/install-deps.sh)";
  test::ScratchDir scratch;
  const Versions versions = make_versions();
  const std::string dir = scratch.file("store");
  Digest v2;
  {
    ChunkStore store = open_store(dir);
    const IngestReport report = ingest_pair(store, versions, true);
    ASSERT_GE(report.delta_chunks, 2U);
    v2 = report.diff_id;
  }
  const std::string first =
      query(dir, "SELECT lower(hex(digest)) FROM chunk_bases ORDER BY digest LIMIT 1");
  const std::string second =
      query(dir, "SELECT lower(hex(digest)) FROM chunk_bases ORDER BY digest LIMIT 1 OFFSET 1");
  ASSERT_EQ(first.size(), 64U);
  ASSERT_EQ(second.size(), 64U);
  // Each delta now names the other as its base: a loop, had the reader followed it.
  ASSERT_EQ(
      std::system(("sqlite3 '" + dir + "/index.db' \"UPDATE chunk_bases SET base = x'" + second +
                   "' WHERE digest = x'" + first + "'; UPDATE chunk_bases SET base = x'" + first +
                   "' WHERE digest = x'" + second + "'\"")
                      .c_str()),
      0);
  auto store = ChunkStore::open(dir);
  ASSERT_TRUE(store.ok());
  auto read = store->read_chunk(*Digest::parse("sha256:" + first));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(read.error().message.find("delta chains deeper than 1 are refused"), std::string::npos)
      << read.error().message;
  auto stored = store->read_stored_chunk(*Digest::parse("sha256:" + second));
  EXPECT_FALSE(stored.ok());
  auto exported = export_layer_tar(*store, v2, [](ByteSpan) -> Result<void> { return {}; });
  EXPECT_FALSE(exported.ok());
  auto verified = store->verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_FALSE(verified->clean());
  // A chunk coded against itself is refused the same way.
  ASSERT_EQ(
      std::system(
          ("sqlite3 '" + dir + "/index.db' \"UPDATE chunk_bases SET base = digest\"").c_str()),
      0);
  auto again = ChunkStore::open(dir);
  ASSERT_TRUE(again.ok());
  auto self = again->read_chunk(*Digest::parse("sha256:" + first));
  ASSERT_FALSE(self.ok());
  EXPECT_NE(self.error().message.find("the chunk itself"), std::string::npos)
      << self.error().message;
}

}  // namespace
}  // namespace strata
