// Tests of the embedded chunk store (include/strata/store.h, docs/STORE.md): round trips, dedup and
// refcounts, durability failures injected at fsync and pack write (shared/specs/reliability.md
// §5.3 F2-F4), corruption of pack records and of index.db, torn pack tails, gc and healing.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/store/chunk_store_fault.h"
#include "strata/store.h"
#include "tests/test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "strata-store-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  [[nodiscard]] std::string store() const { return path_ + "/store"; }

 private:
  std::string path_;
};

struct TestChunk {
  Digest digest;
  std::vector<std::uint8_t> raw;
  std::vector<std::uint8_t> stored;
  Codec codec = Codec::kZstd;
};

TestChunk make_chunk(std::uint64_t seed, std::size_t size = 3000, Codec codec = Codec::kZstd) {
  TestChunk chunk;
  chunk.raw = test::splitmix64_bytes(seed, size);
  // Repeat the first half so zstd has something to compress.
  std::copy(chunk.raw.begin(), chunk.raw.begin() + static_cast<std::ptrdiff_t>(size / 2),
            chunk.raw.begin() + static_cast<std::ptrdiff_t>(size - size / 2));
  chunk.digest = sha256_of(ByteSpan(chunk.raw.data(), chunk.raw.size()));
  chunk.codec = codec;
  if (codec == Codec::kZstd) {
    auto compressed = compress_chunk_zstd(ByteSpan(chunk.raw.data(), chunk.raw.size()), 3);
    EXPECT_TRUE(compressed.ok());
    chunk.stored = std::move(*compressed);
  } else {
    chunk.stored = chunk.raw;
  }
  return chunk;
}

ByteSpan span_of(const std::vector<std::uint8_t>& bytes) {
  return ByteSpan(bytes.data(), bytes.size());
}

LayerRecord layer_named(std::uint64_t id) {
  LayerRecord layer;
  const std::string name = "layer-" + std::to_string(id);
  layer.diff_id =
      sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(name.data()), name.size()));
  layer.layer_digest = sha256_of(span_of(std::vector<std::uint8_t>(name.rbegin(), name.rend())));
  layer.media_type = "application/vnd.oci.image.layer.v1.tar+zstd";
  layer.recipe = std::vector<std::uint8_t>(name.begin(), name.end());
  layer.size = 1000 + id;
  return layer;
}

ChunkStore open_store(const std::string& path, StoreOptions options = {}) {
  options.create_if_missing = true;
  auto store = ChunkStore::open(path, options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().to_string());
  return std::move(store).value();
}

// Puts `chunks` through `writer`; their digests, in order.
Result<std::vector<Digest>> put_all(StoreWriter& writer, const std::vector<TestChunk>& chunks) {
  std::vector<Digest> digests;
  for (const TestChunk& chunk : chunks) {
    STRATA_TRY(
        writer.put_chunk(chunk.digest, span_of(chunk.raw), span_of(chunk.stored), chunk.codec));
    digests.push_back(chunk.digest);
  }
  return digests;
}

// Puts `chunks` through one writer and commits them as layer `id`.
Result<LayerCommit> ingest(ChunkStore& store, std::uint64_t id,
                           const std::vector<TestChunk>& chunks) {
  auto writer = store.writer();
  if (!writer.ok()) return std::move(writer).error();
  auto digests = put_all(*writer, chunks);
  if (!digests.ok()) return std::move(digests).error();
  return writer->commit_layer(layer_named(id), *digests);
}

std::vector<TestChunk> make_chunks(std::uint64_t first_seed, std::size_t count) {
  std::vector<TestChunk> chunks;
  for (std::size_t i = 0; i < count; ++i) chunks.push_back(make_chunk(first_seed + i));
  return chunks;
}

std::vector<std::string> pack_files(const std::string& store) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(store + "/packs")) {
    names.push_back(entry.path().string());
  }
  return names;
}

void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x10);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&byte, 1);
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void TearDown() override { store_fault::disarm_faults(); }
  TempDir dir_;
};

TEST(ChunkCodec, ZstdRoundTripAndStrictDecoding) {
  const auto raw = test::splitmix64_bytes(7, 10000);
  auto frame = compress_chunk_zstd(span_of(raw), 3);
  ASSERT_TRUE(frame.ok());
  auto decoded = decompress_chunk(Codec::kZstd, span_of(*frame), raw.size());
  ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, raw);

  EXPECT_EQ(decompress_chunk(Codec::kZstd, span_of(*frame), raw.size() - 1).error().code,
            ErrorCode::kCorruptInput);
  auto trailing = *frame;
  trailing.push_back(0);
  EXPECT_EQ(decompress_chunk(Codec::kZstd, span_of(trailing), raw.size()).error().code,
            ErrorCode::kCorruptInput);
  EXPECT_EQ(decompress_chunk(static_cast<Codec>(9), span_of(*frame), raw.size()).error().code,
            ErrorCode::kUnsupported);
  EXPECT_EQ(decompress_chunk(Codec::kRaw, span_of(raw), raw.size() + 1).error().code,
            ErrorCode::kCorruptInput);
  EXPECT_EQ(compress_chunk_zstd(span_of(raw), 0).error().code, ErrorCode::kInvalidArgument);

  auto empty_frame = compress_chunk_zstd({}, 3);
  ASSERT_TRUE(empty_frame.ok());
  auto empty = decompress_chunk(Codec::kZstd, span_of(*empty_frame), 0);
  ASSERT_TRUE(empty.ok()) << empty.error().to_string();
  EXPECT_TRUE(empty->empty());
  EXPECT_FALSE(decompress_chunk(Codec::kZstd, {}, 0).ok());
}

TEST_F(ChunkStoreTest, OpenWithoutCreateFailsClearly) {
  auto store = ChunkStore::open(dir_.store());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kNotFound);
}

TEST_F(ChunkStoreTest, PutCommitReadRoundTrip) {
  ChunkStore store = open_store(dir_.store());
  std::vector<TestChunk> chunks = make_chunks(100, 4);
  chunks.push_back(make_chunk(200, 777, Codec::kRaw));
  auto commit = ingest(store, 1, chunks);
  ASSERT_TRUE(commit.ok()) << commit.error().to_string();
  EXPECT_FALSE(commit->already_present);
  EXPECT_EQ(commit->new_chunks, chunks.size());

  for (const TestChunk& chunk : chunks) {
    EXPECT_TRUE(store.contains(chunk.digest));
    auto raw = store.read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok()) << raw.error().to_string();
    EXPECT_EQ(*raw, chunk.raw);
    auto stored = store.read_stored_chunk(chunk.digest);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->codec, chunk.codec);
    EXPECT_EQ(stored->bytes, chunk.stored);
    EXPECT_EQ(stored->raw_length, chunk.raw.size());
  }
  auto layer = store.find_layer(layer_named(1).diff_id);
  ASSERT_TRUE(layer.ok());
  EXPECT_EQ(layer->recipe, layer_named(1).recipe);
  EXPECT_EQ(layer->size, layer_named(1).size);
  EXPECT_GT(layer->created_unix_seconds, 0);
  auto by_blob = store.find_layer(layer_named(1).layer_digest);
  ASSERT_TRUE(by_blob.ok());
  EXPECT_EQ(by_blob->diff_id, layer_named(1).diff_id);

  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, chunks.size());
  EXPECT_EQ(stats->layers, 1U);
  EXPECT_EQ(stats->packs, 1U);
  std::uint64_t raw_bytes = 0;
  for (const TestChunk& chunk : chunks) raw_bytes += chunk.raw.size();
  EXPECT_EQ(stats->raw_bytes, raw_bytes);
  EXPECT_LT(stats->stored_bytes, raw_bytes);
  EXPECT_EQ(store.read_chunk(make_chunk(999).digest).error().code, ErrorCode::kNotFound);
}

// commit_layer with the recipe given late (what a puller uses to write the index rows while its
// last checks finish): a check that fails rolls back the chunks and the layer, the writer goes on,
// and a check that passes commits the recipe it returns, not layer.recipe.
TEST_F(ChunkStoreTest, ACommitWaitingOnChecksKeepsNothingWhenTheyFail) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(300, 5);
  auto writer = store.writer();
  ASSERT_TRUE(writer.ok()) << writer.error().to_string();
  auto put = put_all(*writer, chunks);
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  const std::vector<Digest>& digests = *put;
  int checks = 0;
  const auto failing = [&]() -> Result<std::vector<std::uint8_t>> {
    ++checks;
    return make_error(ErrorCode::kDigestMismatch, "the tar is not the diff_id");
  };
  auto refused = writer->commit_layer(layer_named(1), digests, failing);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kDigestMismatch);
  EXPECT_EQ(refused.error().message, "the tar is not the diff_id");
  EXPECT_EQ(checks, 1);
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_EQ(stats->chunks, 0U);
  EXPECT_EQ(store.find_layer(layer_named(1).diff_id).error().code, ErrorCode::kNotFound);
  for (const TestChunk& chunk : chunks) EXPECT_FALSE(store.contains(chunk.digest));

  const std::vector<std::uint8_t> late_recipe = {'l', 'a', 't', 'e'};
  auto committed =
      writer->commit_layer(layer_named(1), digests, [&]() -> Result<std::vector<std::uint8_t>> {
        ++checks;
        return late_recipe;
      });
  ASSERT_TRUE(committed.ok()) << committed.error().to_string();
  EXPECT_EQ(checks, 2);
  EXPECT_EQ(committed->new_chunks, chunks.size());
  auto layer = store.find_layer(layer_named(1).diff_id);
  ASSERT_TRUE(layer.ok()) << layer.error().to_string();
  EXPECT_EQ(layer->recipe, late_recipe);
  EXPECT_EQ(layer->size, layer_named(1).size);
  for (const TestChunk& chunk : chunks) {
    auto raw = store.read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok()) << raw.error().to_string();
    EXPECT_EQ(*raw, chunk.raw);
  }

  // The layer is there already: a failing check still keeps the new blob digest out.
  LayerRecord again = layer_named(1);
  again.layer_digest = make_chunk(400).digest;
  auto present = writer->commit_layer(again, digests, failing);
  ASSERT_FALSE(present.ok());
  EXPECT_EQ(checks, 3);
  EXPECT_EQ(store.find_layer(again.layer_digest).error().code, ErrorCode::kNotFound);
}

TEST_F(ChunkStoreTest, RepeatedPutsAreStoredOnceAndCounted) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> shared = make_chunks(1, 3);
  auto writer = store.writer();
  ASSERT_TRUE(writer.ok());
  EXPECT_FALSE(writer->contains(shared[0].digest));
  for (int round = 0; round < 3; ++round) {
    for (const TestChunk& chunk : shared) {
      ASSERT_TRUE(
          writer->put_chunk(chunk.digest, span_of(chunk.raw), span_of(chunk.stored), chunk.codec)
              .ok());
    }
  }
  EXPECT_TRUE(writer->contains(shared[0].digest));  // put in this session
  EXPECT_FALSE(store.contains(shared[0].digest));   // not visible before the commit
  // Repeats in the reference list count once per layer.
  std::vector<Digest> refs = {shared[0].digest, shared[0].digest, shared[1].digest,
                              shared[2].digest};
  auto first = writer->commit_layer(layer_named(1), refs);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(first->new_chunks, 3U);
  // A known chunk needs no bytes at all.
  ASSERT_TRUE(writer->put_chunk(shared[0].digest, {}, {}, Codec::kZstd).ok());
  auto second = writer->commit_layer(layer_named(2), std::vector<Digest>{shared[0].digest});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->new_chunks, 0U);

  auto again = writer->commit_layer(layer_named(2), std::vector<Digest>{shared[1].digest});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_present);

  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, 3U);
  EXPECT_EQ(stats->layers, 2U);
  auto report = store.verify();  // also checks refcounts against the layers' chunk lists
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean()) << report->problems.front();

  // shared[0] is referenced by both layers: removing one keeps it through gc.
  ASSERT_TRUE(store.remove_layer(layer_named(1).diff_id).ok());
  // The writer is still open: gc must defer.
  auto deferred = store.gc();
  ASSERT_TRUE(deferred.ok());
  EXPECT_TRUE(deferred->deferred_for_active_sessions);
  EXPECT_EQ(deferred->chunks_removed, 0U);
  writer = make_error(ErrorCode::kInternal, "closed");  // destroys the session
  auto collected = store.gc();
  ASSERT_TRUE(collected.ok()) << collected.error().to_string();
  EXPECT_EQ(collected->chunks_removed, 2U);
  EXPECT_TRUE(store.read_chunk(shared[0].digest).ok());
  EXPECT_EQ(store.read_chunk(shared[1].digest).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(store.contains(shared[1].digest));
  report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST_F(ChunkStoreTest, AbandonedWriterLeavesNothingVisible) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(10, 5);
  {
    auto writer = store.writer();
    ASSERT_TRUE(writer.ok());
    for (const TestChunk& chunk : chunks) {
      ASSERT_TRUE(
          writer->put_chunk(chunk.digest, span_of(chunk.raw), span_of(chunk.stored), chunk.codec)
              .ok());
    }
  }
  for (const TestChunk& chunk : chunks) EXPECT_FALSE(store.contains(chunk.digest));
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, 0U);
  EXPECT_EQ(stats->layers, 0U);
  EXPECT_TRUE(pack_files(dir_.store()).empty());
}

TEST_F(ChunkStoreTest, CommittedLayersSurviveReopen) {
  const std::vector<TestChunk> chunks = make_chunks(20, 6);
  {
    ChunkStore store = open_store(dir_.store());
    ASSERT_TRUE(ingest(store, 1, chunks).ok());
  }
  auto reopened = ChunkStore::open(dir_.store());
  ASSERT_TRUE(reopened.ok()) << reopened.error().to_string();
  auto layers = reopened->list_layers();
  ASSERT_TRUE(layers.ok());
  ASSERT_EQ(layers->size(), 1U);
  EXPECT_EQ(layers->front().diff_id, layer_named(1).diff_id);
  for (const TestChunk& chunk : chunks) {
    EXPECT_TRUE(reopened->contains(chunk.digest));
    auto raw = reopened->read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(*raw, chunk.raw);
  }
  auto report = reopened->verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->chunks_checked, chunks.size());
  EXPECT_EQ(report->layers_checked, 1U);
}

TEST_F(ChunkStoreTest, PutRejectsLyingChunks) {
  ChunkStore store = open_store(dir_.store());
  auto writer = store.writer();
  ASSERT_TRUE(writer.ok());
  TestChunk chunk = make_chunk(30);
  const Digest other = make_chunk(31).digest;
  EXPECT_EQ(writer->put_chunk(other, span_of(chunk.raw), span_of(chunk.stored), Codec::kZstd)
                .error()
                .code,
            ErrorCode::kDigestMismatch);
  std::vector<std::uint8_t> bad_frame = chunk.stored;
  bad_frame[bad_frame.size() / 2] ^= 0xFF;
  EXPECT_FALSE(
      writer->put_chunk(chunk.digest, span_of(chunk.raw), span_of(bad_frame), Codec::kZstd).ok());
  EXPECT_EQ(writer
                ->put_chunk(chunk.digest, span_of(chunk.raw), span_of(chunk.stored),
                            static_cast<Codec>(9))
                .error()
                .code,
            ErrorCode::kUnsupported);
  // Without its bytes, a chunk the store does not hold cannot be put.
  EXPECT_EQ(writer->put_chunk(chunk.digest, {}, {}, Codec::kZstd).error().code,
            ErrorCode::kInvalidArgument);
  // Committing a reference to a chunk that was never put fails and shows nothing.
  auto commit = writer->commit_layer(layer_named(1), std::vector<Digest>{chunk.digest});
  ASSERT_FALSE(commit.ok());
  EXPECT_EQ(commit.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store.find_layer(layer_named(1).diff_id).error().code, ErrorCode::kNotFound);
}

TEST_F(ChunkStoreTest, BitFlipInPackIsDetectedReportedAndHealed) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(40, 3);
  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  const auto packs = pack_files(dir_.store());
  ASSERT_EQ(packs.size(), 1U);
  // Pack header (16) + first record header (48): flip a byte inside the first chunk's payload.
  flip_byte(packs.front(), 16 + 48 + 5);

  auto read = store.read_chunk(chunks[0].digest);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(read.error().message.find(chunks[0].digest.hex()), std::string::npos);
  EXPECT_NE(read.error().message.find(fs::path(packs.front()).filename().string()),
            std::string::npos);
  EXPECT_FALSE(store.read_stored_chunk(chunks[0].digest).ok());
  flip_byte(packs.front(), 2);  // the pack file's magic
  EXPECT_TRUE(store.read_chunk(chunks[1].digest).ok());

  auto report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->clean());
  ASSERT_EQ(report->corrupt_chunks.size(), 1U);
  EXPECT_EQ(report->corrupt_chunks.front(), chunks[0].digest);
  ASSERT_EQ(report->problems.size(), 2U);  // the record and the pack header
  EXPECT_NE(report->problems[0].find("bad magic"), std::string::npos);
  flip_byte(packs.front(), 2);
  EXPECT_FALSE(store.contains(chunks[0].digest));
  EXPECT_EQ(store.stats()->corrupt_chunks, 1U);

  // A dedup hit on the corrupt chunk is refused; putting the content again heals it.
  {
    auto writer = store.writer();
    ASSERT_TRUE(writer.ok());
    auto refused = writer->commit_layer(layer_named(2), std::vector<Digest>{chunks[0].digest});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::kCorruptInput);
  }
  ASSERT_TRUE(ingest(store, 2, {chunks[0]}).ok());
  report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean()) << report->problems.front();
  auto healed = store.read_chunk(chunks[0].digest);
  ASSERT_TRUE(healed.ok());
  EXPECT_EQ(*healed, chunks[0].raw);
  EXPECT_EQ(store.stats()->corrupt_chunks, 0U);
}

// read_stored_chunks gives, slot by slot, what read_stored_chunk gives: chunks from two packs in
// a shuffled order with a repeat, raw and zstd records, a digest the store lacks, and a record
// with a flipped byte among good neighbours it is read together with.
TEST_F(ChunkStoreTest, ReadStoredChunksGiveWhatOneByOneReadsGive) {
  ChunkStore store = open_store(dir_.store());
  std::vector<TestChunk> first = make_chunks(300, 30);
  for (std::size_t i = 0; i < first.size(); i += 3)
    first[i] = make_chunk(300 + i, 5000, Codec::kRaw);
  const std::vector<TestChunk> second = make_chunks(400, 20);
  ASSERT_TRUE(ingest(store, 1, first).ok());
  ASSERT_TRUE(ingest(store, 2, second).ok());
  std::vector<Digest> asked;
  for (std::size_t i = 0; i < 20; ++i) {
    asked.push_back(second[(i * 7) % second.size()].digest);
    asked.push_back(first[(i * 11) % first.size()].digest);
  }
  asked.push_back(first[4].digest);         // asked twice
  asked.push_back(make_chunk(999).digest);  // not in the store
  asked.push_back(first[4].digest);

  const auto check_all = [&] {
    const auto batch = store.read_stored_chunks(asked);
    ASSERT_EQ(batch.size(), asked.size());
    for (std::size_t i = 0; i < asked.size(); ++i) {
      SCOPED_TRACE(i);
      const auto alone = store.read_stored_chunk(asked[i]);
      ASSERT_EQ(batch[i].ok(), alone.ok());
      if (!alone.ok()) {
        EXPECT_EQ(batch[i].error().code, alone.error().code);
        EXPECT_EQ(batch[i].error().message, alone.error().message);
        continue;
      }
      EXPECT_EQ(batch[i]->codec, alone->codec);
      EXPECT_EQ(batch[i]->raw_length, alone->raw_length);
      EXPECT_TRUE(std::equal(batch[i]->bytes.begin(), batch[i]->bytes.end(), alone->bytes.begin(),
                             alone->bytes.end()));
    }
  };
  check_all();
  EXPECT_EQ(store.read_stored_chunks(asked)[asked.size() - 2].error().code, ErrorCode::kNotFound);

  // A byte of first[4]'s payload flipped: its slots report the record checksum, the records
  // around it (read in the same run) stay good.
  std::string pack_of_first;
  for (const std::string& pack : pack_files(dir_.store())) {
    std::ifstream file(pack, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
    const std::string needle(first[4].stored.begin(), first[4].stored.begin() + 64);
    if (const auto at = bytes.find(needle); at != std::string::npos) {
      flip_byte(pack, at + 10);
      pack_of_first = pack;
    }
  }
  ASSERT_FALSE(pack_of_first.empty());
  check_all();
  const auto batch = store.read_stored_chunks(asked);
  EXPECT_EQ(batch.back().error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(batch.back().error().message.find("checksum"), std::string::npos)
      << batch.back().error().to_string();
  EXPECT_TRUE(batch[1].ok() || asked[1] == first[4].digest);
  EXPECT_TRUE(store.read_stored_chunks({}).empty());
}

TEST_F(ChunkStoreTest, DamagedIndexGivesAClearError) {
  {
    ChunkStore store = open_store(dir_.store());
    ASSERT_TRUE(ingest(store, 1, make_chunks(50, 40)).ok());
  }
  const std::string index = dir_.store() + "/index.db";
  ASSERT_FALSE(fs::exists(index + "-wal") && fs::file_size(index + "-wal") > 0);
  const auto size = fs::file_size(index);
  ASSERT_GT(size, 4096U * 2);
  {
    // Overwrite every page after the first (the schema root survives, the tables do not).
    std::fstream file(index, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);
    const std::string garbage(size - 4096, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto store = ChunkStore::open(dir_.store());
  if (!store.ok()) {
    EXPECT_EQ(store.error().code, ErrorCode::kCorruptInput) << store.error().to_string();
    EXPECT_NE(store.error().message.find("index.db"), std::string::npos);
    return;
  }
  auto report = store->verify();
  if (report.ok()) {
    EXPECT_FALSE(report->clean());
  } else {
    EXPECT_EQ(report.error().code, ErrorCode::kCorruptInput) << report.error().to_string();
  }
}

TEST_F(ChunkStoreTest, MissingPackIsReportedAndHealed) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(850, 3);
  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  const auto packs = pack_files(dir_.store());
  ASSERT_EQ(packs.size(), 1U);
  fs::remove(packs.front());
  auto read = store.read_chunk(chunks[0].digest);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(read.error().message.find(fs::path(packs.front()).filename().string()),
            std::string::npos);
  auto report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->corrupt_chunks.size(), chunks.size());
  ASSERT_TRUE(ingest(store, 2, chunks).ok());
  report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
  for (const TestChunk& chunk : chunks) {
    auto raw = store.read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(*raw, chunk.raw);
  }
}

TEST_F(ChunkStoreTest, RandomBitFlipsInIndexNeverCrash) {
  const std::string pristine = dir_.store() + "-pristine";
  {
    ChunkStore store = open_store(pristine);
    ASSERT_TRUE(ingest(store, 1, make_chunks(860, 20)).ok());
    ASSERT_TRUE(ingest(store, 2, make_chunks(870, 20)).ok());
  }
  std::uint64_t state = 99;
  for (int trial = 0; trial < 12; ++trial) {
    fs::remove_all(dir_.store());
    fs::copy(pristine, dir_.store(), fs::copy_options::recursive);
    const std::string index = dir_.store() + "/index.db";
    const auto size = fs::file_size(index);
    const auto noise = test::splitmix64_bytes(state++, 64);
    for (int flip = 0; flip < 4; ++flip) {
      std::uint64_t where = 0;
      std::memcpy(&where, noise.data() + 8 * flip, sizeof(where));
      flip_byte(index, 100 + where % (size - 100));
    }
    // Every call either works or returns an error that says something; none may crash.
    auto store = ChunkStore::open(dir_.store());
    if (!store.ok()) {
      EXPECT_FALSE(store.error().message.empty());
      continue;
    }
    auto report = store->verify();
    if (!report.ok()) {
      EXPECT_FALSE(report.error().message.empty());
    }
    auto layers = store->list_layers();
    if (!layers.ok()) {
      EXPECT_FALSE(layers.error().message.empty());
    }
    for (std::uint64_t seed = 860; seed < 890; ++seed) {
      auto raw = store->read_chunk(make_chunk(seed).digest);
      if (!raw.ok()) {
        EXPECT_FALSE(raw.error().message.empty());
      }
    }
  }
  fs::remove_all(pristine);
}

TEST_F(ChunkStoreTest, TornPackTailLeavesEarlierLayerIntact) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> first = make_chunks(60, 4);
  const std::vector<TestChunk> second = make_chunks(70, 4);
  auto writer = store.writer();
  ASSERT_TRUE(writer.ok());
  auto first_digests = put_all(*writer, first);
  ASSERT_TRUE(first_digests.ok());
  ASSERT_TRUE(writer->commit_layer(layer_named(1), *first_digests).ok());
  const auto packs = pack_files(dir_.store());
  ASSERT_EQ(packs.size(), 1U);
  const auto committed_size = fs::file_size(packs.front());

  // The second layer's records reach the pack torn (half written, then an I/O error).
  auto second_digests = put_all(*writer, second);
  ASSERT_TRUE(second_digests.ok());
  store_fault::arm_fault(store_fault::FaultPoint::kPackWrite, 1);
  auto torn = writer->commit_layer(layer_named(2), *second_digests);
  ASSERT_FALSE(torn.ok());
  EXPECT_EQ(torn.error().code, ErrorCode::kIo);
  EXPECT_GT(fs::file_size(packs.front()), committed_size);
  // And a crash cut the file mid-record.
  fs::resize_file(packs.front(), committed_size + 30);
  writer = make_error(ErrorCode::kInternal, "closed");

  auto reopened = ChunkStore::open(dir_.store());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->find_layer(layer_named(2).diff_id).error().code, ErrorCode::kNotFound);
  for (const TestChunk& chunk : second) EXPECT_FALSE(reopened->contains(chunk.digest));
  for (const TestChunk& chunk : first) {
    auto raw = reopened->read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok()) << raw.error().to_string();
    EXPECT_EQ(*raw, chunk.raw);
  }
  auto report = reopened->verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
  // The same ingest succeeds afterwards.
  ASSERT_TRUE(ingest(*reopened, 2, second).ok());
  report = reopened->verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST_F(ChunkStoreTest, FailedFsyncMakesNothingVisible) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(80, 3);
  auto writer = store.writer();
  ASSERT_TRUE(writer.ok());
  auto put = put_all(*writer, chunks);
  ASSERT_TRUE(put.ok());
  const std::vector<Digest>& digests = *put;
  store_fault::arm_fault(store_fault::FaultPoint::kFsync, 1);
  auto commit = writer->commit_layer(layer_named(1), digests);
  ASSERT_FALSE(commit.ok());
  EXPECT_EQ(commit.error().code, ErrorCode::kIo);
  EXPECT_NE(commit.error().message.find("fsync"), std::string::npos);
  // The writer is spent: no retry-and-trust after a failed fsync.
  auto retry = writer->commit_layer(layer_named(1), digests);
  ASSERT_FALSE(retry.ok());
  EXPECT_EQ(retry.error().code, ErrorCode::kIo);
  EXPECT_EQ(store.find_layer(layer_named(1).diff_id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store.stats()->chunks, 0U);
  for (const TestChunk& chunk : chunks) EXPECT_FALSE(store.contains(chunk.digest));
  writer = make_error(ErrorCode::kInternal, "closed");

  // The directory fsync of a new pack is guarded the same way.
  store_fault::arm_fault(store_fault::FaultPoint::kFsync, 2);
  auto directory_failure = ingest(store, 1, chunks);
  ASSERT_FALSE(directory_failure.ok());
  EXPECT_EQ(store.stats()->layers, 0U);

  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  auto report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST_F(ChunkStoreTest, GcRewritesMostlyDeadPacksAndKeepsReferencedChunks) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> first = make_chunks(100, 10);
  std::vector<TestChunk> second(first.begin() + 7, first.end());
  for (const TestChunk& chunk : make_chunks(200, 2)) second.push_back(chunk);
  ASSERT_TRUE(ingest(store, 1, first).ok());
  ASSERT_TRUE(ingest(store, 2, second).ok());
  ASSERT_EQ(pack_files(dir_.store()).size(), 2U);
  // A crashed writer's pack and a crashed gc's temp file.
  std::ofstream(dir_.store() + "/packs/00000000deadbeef-0.pack") << "partial";
  std::ofstream(dir_.store() + "/packs/gc-00000000deadbeef.pack.tmp") << "partial";

  ASSERT_TRUE(store.remove_layer(layer_named(1).diff_id).ok());
  EXPECT_EQ(store.remove_layer(layer_named(1).diff_id).error().code, ErrorCode::kNotFound);
  const auto before = store.stats();
  ASSERT_TRUE(before.ok());
  auto report = store.gc();
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_FALSE(report->deferred_for_active_sessions);
  EXPECT_EQ(report->chunks_removed, 7U);
  EXPECT_EQ(report->packs_rewritten, 1U);
  EXPECT_EQ(report->orphan_files_removed, 2U);
  EXPECT_GT(report->bytes_freed, 0U);
  const auto after = store.stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->chunks, 5U);
  EXPECT_EQ(before->pack_file_bytes - after->pack_file_bytes, report->bytes_freed);
  for (const TestChunk& chunk : second) {
    auto raw = store.read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok()) << raw.error().to_string();
    EXPECT_EQ(*raw, chunk.raw);
  }
  for (std::size_t i = 0; i < 7; ++i) EXPECT_FALSE(store.contains(first[i].digest));
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());

  // Removing the last layer empties the store down to no packs.
  ASSERT_TRUE(store.remove_layer(layer_named(2).diff_id).ok());
  report = store.gc();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->chunks_removed, 5U);
  EXPECT_TRUE(pack_files(dir_.store()).empty());
  EXPECT_EQ(store.stats()->chunks, 0U);
}

TEST_F(ChunkStoreTest, GcDuringIngestKeepsChunksTheSessionReuses) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(300, 4);
  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  ASSERT_TRUE(store.remove_layer(layer_named(1).diff_id).ok());

  auto writer = store.writer();
  ASSERT_TRUE(writer.ok());
  std::vector<Digest> digests;
  for (const TestChunk& chunk : chunks) {
    EXPECT_TRUE(store.contains(chunk.digest));  // the session reuses them without writing
    ASSERT_TRUE(writer->put_chunk(chunk.digest, {}, {}, Codec::kZstd).ok());
    digests.push_back(chunk.digest);
  }
  // gc in another process instance of the same store, while the session is open.
  auto other = ChunkStore::open(dir_.store());
  ASSERT_TRUE(other.ok());
  auto report = other->gc();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->deferred_for_active_sessions);
  EXPECT_EQ(report->chunks_removed, 0U);
  ASSERT_TRUE(writer->commit_layer(layer_named(2), digests).ok());
  writer = make_error(ErrorCode::kInternal, "closed");
  for (const TestChunk& chunk : chunks) EXPECT_TRUE(other->read_chunk(chunk.digest).ok());
  auto verified = other->verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
}

TEST_F(ChunkStoreTest, GcMergesSmallPacks) {
  ChunkStore store = open_store(dir_.store());
  std::vector<TestChunk> all;
  for (std::uint64_t layer = 1; layer <= 5; ++layer) {
    const std::vector<TestChunk> chunks = make_chunks(700 + layer * 10, 3);
    ASSERT_TRUE(ingest(store, layer, chunks).ok());
    all.insert(all.end(), chunks.begin(), chunks.end());
  }
  ASSERT_EQ(pack_files(dir_.store()).size(), 5U);
  auto report = store.gc();
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->packs_rewritten, 5U);
  EXPECT_EQ(report->chunks_removed, 0U);
  EXPECT_EQ(pack_files(dir_.store()).size(), 1U);
  EXPECT_EQ(store.stats()->packs, 1U);
  for (const TestChunk& chunk : all) {
    auto raw = store.read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok()) << raw.error().to_string();
    EXPECT_EQ(*raw, chunk.raw);
  }
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean());
  // Nothing left to do: a second gc rewrites nothing.
  report = store.gc();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->packs_rewritten, 0U);
}

TEST_F(ChunkStoreTest, LeaseOfAKilledWriterIsRecovered) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(800, 3);
  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  ASSERT_TRUE(store.remove_layer(layer_named(1).diff_id).ok());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A writer process that dies without running any destructor (as under kill -9).
    auto other = ChunkStore::open(dir_.store());
    if (!other.ok()) ::_exit(2);
    auto writer = other->writer();
    if (!writer.ok()) ::_exit(3);
    const TestChunk extra = make_chunk(900);
    if (!writer->put_chunk(extra.digest, span_of(extra.raw), span_of(extra.stored), extra.codec)
             .ok())
      ::_exit(4);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  // The dead process's lease no longer blocks collection.
  auto report = store.gc();
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_FALSE(report->deferred_for_active_sessions);
  EXPECT_EQ(report->chunks_removed, chunks.size());
  EXPECT_EQ(report->orphan_files_removed, 1U);  // the pack file the dead writer had started
  EXPECT_EQ(store.stats()->chunks, 0U);
  EXPECT_TRUE(pack_files(dir_.store()).empty());
}

TEST_F(ChunkStoreTest, PacksRollOverAtTheSizeLimit) {
  StoreOptions options;
  options.max_pack_bytes = 8192;
  ChunkStore store = open_store(dir_.store(), options);
  const std::vector<TestChunk> chunks = make_chunks(400, 20);
  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  EXPECT_GT(pack_files(dir_.store()).size(), 2U);
  for (const TestChunk& chunk : chunks) {
    auto raw = store.read_chunk(chunk.digest);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(*raw, chunk.raw);
  }
  auto report = store.verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST_F(ChunkStoreTest, ConcurrentReadersWhileAWriterCommits) {
  ChunkStore store = open_store(dir_.store());
  const std::vector<TestChunk> chunks = make_chunks(500, 16);
  ASSERT_TRUE(ingest(store, 1, chunks).ok());
  std::vector<int> failures(4, 0);
  std::vector<std::thread> readers;
  for (std::size_t t = 0; t < failures.size(); ++t) {
    readers.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (const TestChunk& chunk : chunks) {
          auto raw = store.read_chunk(chunk.digest);
          if (!raw.ok() || *raw != chunk.raw || !store.contains(chunk.digest)) ++failures[t];
        }
      }
    });
  }
  for (std::uint64_t layer = 2; layer < 6; ++layer) {
    ASSERT_TRUE(ingest(store, layer, make_chunks(600 + layer * 10, 5)).ok());
  }
  for (std::thread& reader : readers) reader.join();
  for (int count : failures) EXPECT_EQ(count, 0);
}

}  // namespace
}  // namespace strata
