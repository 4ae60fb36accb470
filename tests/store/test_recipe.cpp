// Recipes: tar -> recipe -> replay is byte-identical and hashes to the diff_id, for every reference
// OCI layer (diff_ids from expected.json, made by real tools) and for archives written at test
// time by GNU tar; the builder, the binary form (deterministic, hardened parser) and replay's
// verification of chunk length and SHA-256.
#define XXH_INLINE_ALL
#include <gtest/gtest.h>
#include <xxhash.h>
#include <zstd.h>

#include <map>

#include "core/ingest/layer_recipe_builder.h"
#include "formats/compress/layer_source.h"
#include "strata/recipe.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

// An in-memory chunk store: digest -> bytes.
struct MemoryStore {
  std::map<Digest, std::vector<std::uint8_t>> chunks;
  std::uint64_t stored_bytes = 0;

  ChunkCallback callback() {
    return [this](const Digest& digest, ByteSpan bytes) -> Result<void> {
      auto [it, inserted] = chunks.try_emplace(digest, bytes.begin(), bytes.end());
      if (inserted) stored_bytes += bytes.size();
      return {};
    };
  }
  ChunkProvider provider() const {
    return [this](const Digest& digest, std::uint64_t) -> Result<ByteSpan> {
      const auto it = chunks.find(digest);
      if (it == chunks.end()) return make_error(ErrorCode::kNotFound, digest.to_string());
      return ByteSpan(it->second);
    };
  }
};

ChunkerOptions small_chunks() {
  ChunkerOptions options;
  options.min_size = 2U << 10U;
  options.avg_size = 8U << 10U;
  options.max_size = 32U << 10U;
  return options;
}

Result<std::vector<std::uint8_t>> replay_to_vector(const Recipe& recipe, const MemoryStore& store) {
  std::vector<std::uint8_t> out;
  auto replayed = replay(recipe, store.provider(), [&](ByteSpan bytes) -> Result<void> {
    out.insert(out.end(), bytes.begin(), bytes.end());
    return {};
  });
  if (!replayed.ok()) return std::move(replayed).error();
  return out;
}

// tar -> recipe -> (serialize -> parse) -> replay; returns the layer recipe.
LayerRecipe expect_round_trip(const std::vector<std::uint8_t>& tar, MemoryStore& store,
                              const ChunkerOptions& options = small_chunks()) {
  MemoryByteSource source(tar);
  auto built = build_recipe_from_tar(source, options, store.callback());
  EXPECT_TRUE(built.ok()) << built.error().to_string();
  if (!built.ok()) return {};
  const Recipe& recipe = built->recipe;
  EXPECT_EQ(recipe.total_size(), tar.size());
  EXPECT_EQ(recipe.diff_id(), sha256_of(tar));
  const auto serialized = serialize_recipe(recipe);
  EXPECT_EQ(serialized, serialize_recipe(recipe));
  auto parsed = parse_recipe(serialized);
  EXPECT_TRUE(parsed.ok()) << parsed.error().to_string();
  if (!parsed.ok()) return {};
  EXPECT_EQ(*parsed, recipe);
  auto replayed = replay_to_vector(*parsed, store);
  EXPECT_TRUE(replayed.ok()) << replayed.error().to_string();
  if (replayed.ok()) {
    EXPECT_TRUE(*replayed == tar) << "replay differs from the tar";
  }
  return std::move(*built);
}

TEST(RecipeRoundTrip, ReferenceOciLayers) {
  MemoryStore store;
  std::map<std::string, std::vector<Digest>> chunks_of;
  for (const auto& layer : test::reference_layers()) {
    SCOPED_TRACE(layer.name);
    auto source = LayerSource::open_path(layer.blob_path);
    ASSERT_TRUE(source.ok());
    auto tar = test::read_all(**source);
    ASSERT_TRUE(tar.ok()) << tar.error().to_string();
    ASSERT_EQ(sha256_of(*tar).to_string(), layer.diff_id);
    const LayerRecipe built = expect_round_trip(*tar, store);
    EXPECT_EQ(built.recipe.diff_id().to_string(), layer.diff_id);
    EXPECT_GT(built.chunks, 10U);
    // Headers, padding and end blocks only: the file data (3.7 MB) is all in chunks.
    EXPECT_LT(built.recipe.raw_bytes().size(), 32U << 10U);
    chunks_of[layer.name] = built.recipe.distinct_chunks();
  }
  // v2 changes one small file and 16 bytes of random-hex.txt: most chunks are shared.
  const auto& v1 = chunks_of["gzip-v1:v1"];
  const auto& v2 = chunks_of["gzip-v2:v2"];
  std::vector<Digest> shared;
  std::set_intersection(v1.begin(), v1.end(), v2.begin(), v2.end(), std::back_inserter(shared));
  EXPECT_GE(shared.size() + 6, v1.size());
  EXPECT_LT(shared.size(), v1.size());
  // The zstd:chunked layers made by c/storage decompress to the same tar as gzip-v1.
  EXPECT_EQ(chunks_of["zstd-chunked-cstorage-v2format:v1"], v1);
}

class RecipeGnuTar : public ::testing::TestWithParam<std::string> {
 protected:
  test::ScratchDir scratch_;
};

TEST_P(RecipeGnuTar, RandomTreeWithLinksDevicesAndPadding) {
  const std::string format = GetParam();
  const std::string root = scratch_.file("root");
  test::make_random_tree(root, 99, 25, format != "ustar");
  test::shell(root, "mknod null c 1 3 || mkfifo null");
  if (format != "ustar") {
    std::filesystem::create_directories(root + "/" + std::string(200, 'x'));
    test::write_file(root + "/" + std::string(200, 'x') + "/" + std::string(150, 'y'),
                     test::splitmix64_bytes(5, 100000));
  }
  // Default 10 KiB records, plus bytes after the archive.
  ASSERT_TRUE(test::shell(
      scratch_.path(),
      "tar --format=" + format + " --sort=name -C root -cf out.tar . && printf 'tail' >> out.tar"));
  const auto tar = test::read_file(scratch_.file("out.tar"));
  MemoryStore store;
  const LayerRecipe built = expect_round_trip(tar, store);
  EXPECT_GT(built.entries, 25U);
}

INSTANTIATE_TEST_SUITE_P(Formats, RecipeGnuTar, ::testing::Values("gnu", "ustar", "pax"));

TEST(RecipeRoundTrip, PaxXattrsEmptyFilesAndChunkCoverage) {
  test::ScratchDir scratch;
  const std::string root = scratch.file("root");
  std::filesystem::create_directories(root);
  test::write_file(root + "/empty", {});
  test::write_file(root + "/data", test::splitmix64_bytes(8, 1U << 20U));
  ASSERT_TRUE(test::shell(scratch.path(),
                          "tar --format=pax --pax-option=SCHILY.xattr.user.a:=b "
                          "--sort=name -C root -cf out.tar ."));
  const auto tar = test::read_file(scratch.file("out.tar"));
  MemoryStore store;
  const LayerRecipe built = expect_round_trip(tar, store);
  // Only file content is chunked.
  EXPECT_EQ(built.chunked_bytes, 1U << 20U);
  EXPECT_EQ(built.recipe.raw_bytes().size(), tar.size() - (1U << 20U));
}

TEST(RecipeRoundTrip, LargeTrailingBytesAreChunkedNotInlined) {
  std::vector<std::uint8_t> tar = test::make_header("a", '0', 3);
  test::append_content(tar, "abc");
  test::append_end(tar);
  const std::size_t archive_size = tar.size();
  const auto garbage = test::splitmix64_bytes(77, 3U << 20U);
  tar.insert(tar.end(), garbage.begin(), garbage.end());
  MemoryStore store;
  const LayerRecipe built = expect_round_trip(tar, store);
  EXPECT_LE(built.recipe.raw_bytes().size(), archive_size);
  EXPECT_EQ(built.chunked_bytes, 3U + garbage.size());
}

TEST(RecipeRoundTrip, HandMadeEdgeCases) {
  // pax size over ustar size 0, an 'L' long name, a symlink with a bogus size, a global header.
  std::vector<std::uint8_t> tar = test::make_pax(test::pax_record("comment", "g"), 'g');
  test::append(tar, test::make_pax(test::pax_record("size", "70000")));
  test::append(tar, test::make_header("f", '0', 0));
  const auto content = test::splitmix64_bytes(3, 70000);
  tar.insert(tar.end(), content.begin(), content.end());
  tar.resize((tar.size() + 511) / 512 * 512, 0xAB);  // non-zero padding is kept too
  test::append(tar, test::make_header("././@LongLink", 'L', 300));
  test::append_content(tar, std::string(300, 'L'));
  test::append(tar, test::make_header("s", '2', 512, "t"));
  test::append_end(tar);
  MemoryStore store;
  const LayerRecipe built = expect_round_trip(tar, store);
  EXPECT_EQ(built.entries, 3U);
  EXPECT_EQ(built.chunked_bytes, 70000U);
}

TEST(LayerRecipeBuilder, ErrorsPropagate) {
  std::vector<std::uint8_t> tar = test::make_header("a", '0', 100000);
  const auto content = test::splitmix64_bytes(1, 100000);
  tar.insert(tar.end(), content.begin(), content.end());
  tar.resize((tar.size() + 511) / 512 * 512, 0);
  test::append_end(tar);
  {
    MemoryByteSource source(tar);
    int calls = 0;
    auto built =
        build_recipe_from_tar(source, small_chunks(), [&](const Digest&, ByteSpan) -> Result<void> {
          if (++calls == 2) {
            return make_error(ErrorCode::kIo, "disk full");
          }
          return {};
        });
    ASSERT_FALSE(built.ok());
    EXPECT_EQ(built.error().code, ErrorCode::kIo);
    EXPECT_EQ(calls, 2);
  }
  {
    const std::vector<std::uint8_t> cut(tar.begin(), tar.begin() + 50000);
    MemoryByteSource source(cut);
    MemoryStore store;
    auto built = build_recipe_from_tar(source, small_chunks(), store.callback());
    ASSERT_FALSE(built.ok());
    EXPECT_EQ(built.error().code, ErrorCode::kCorruptInput);
    EXPECT_NE(built.error().message.find("truncated"), std::string::npos);
  }
  {
    MemoryByteSource source(tar);
    MemoryStore store;
    LayerRecipeLimits limits;
    limits.max_raw_bytes = 1000;
    auto built = build_recipe_from_tar(source, small_chunks(), store.callback(), limits);
    ASSERT_FALSE(built.ok());
    EXPECT_EQ(built.error().code, ErrorCode::kLimitExceeded);
    EXPECT_NE(built.error().message.find("1000 inline bytes"), std::string::npos);
  }
  {
    MemoryByteSource source(tar);
    ChunkerOptions bad;
    bad.min_size = 1;
    auto built = build_recipe_from_tar(source, bad, MemoryStore().callback());
    ASSERT_FALSE(built.ok());
    EXPECT_EQ(built.error().code, ErrorCode::kInvalidArgument);
  }
}

// --- Builder, binary form, replay ---

Digest digest_of(const std::string& text) {
  return sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

ByteSpan span_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

Recipe sample_recipe() {
  RecipeBuilder builder;
  builder.add_raw(span_of("head"));
  builder.add_raw(span_of("er"));
  builder.add_chunk(digest_of("chunk-one"), 9);
  builder.add_chunk(digest_of("chunk-two"), 9);
  builder.add_chunk(digest_of("chunk-one"), 9);
  builder.add_raw(span_of("tail"));
  builder.add_chunk(digest_of("never"), 0);
  builder.add_raw({});
  Recipe recipe = builder.finish();
  recipe.set_diff_id(digest_of("headerchunk-onechunk-twochunk-onetail"));
  return recipe;
}

TEST(Recipe, BuilderMergesRawAndSkipsEmptySegments) {
  const Recipe recipe = sample_recipe();
  ASSERT_EQ(recipe.segments().size(), 5U);
  EXPECT_EQ(recipe.segments()[0].kind, RecipeSegmentKind::kRaw);
  EXPECT_EQ(recipe.segments()[0].length, 6U);
  EXPECT_EQ(recipe.segments()[4].raw_offset, 6U);
  EXPECT_EQ(recipe.total_size(), 6U + 27U + 4U);
  const auto raw = recipe.raw_of(recipe.segments()[4]);
  EXPECT_EQ(std::string(raw.begin(), raw.end()), "tail");
  const auto distinct = recipe.distinct_chunks();
  ASSERT_EQ(distinct.size(), 2U);
  EXPECT_LT(distinct[0], distinct[1]);
}

TEST(Recipe, ReplayRebuildsAndVerifies) {
  const Recipe recipe = sample_recipe();
  std::map<Digest, std::string> chunks = {{digest_of("chunk-one"), "chunk-one"},
                                          {digest_of("chunk-two"), "chunk-two"}};
  std::string out;
  const ByteSink sink = [&](ByteSpan bytes) -> Result<void> {
    out.append(bytes.begin(), bytes.end());
    return {};
  };
  const ChunkProvider honest = [&](const Digest& digest, std::uint64_t) -> Result<ByteSpan> {
    return span_of(chunks.at(digest));
  };
  ASSERT_TRUE(replay(recipe, honest, sink).ok());
  EXPECT_EQ(out, "headerchunk-onechunk-twochunk-onetail");
  EXPECT_EQ(digest_of(out), recipe.diff_id());

  std::string evil = "chunk-0ne";
  const ChunkProvider lying = [&](const Digest&, std::uint64_t) -> Result<ByteSpan> {
    return span_of(evil);
  };
  auto mismatch = replay(recipe, lying, sink);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.error().code, ErrorCode::kDigestMismatch);
  EXPECT_NE(mismatch.error().message.find(digest_of("chunk-one").to_string()), std::string::npos);

  std::string short_chunk = "chunk";
  const ChunkProvider truncating = [&](const Digest&, std::uint64_t) -> Result<ByteSpan> {
    return span_of(short_chunk);
  };
  auto wrong_length = replay(recipe, truncating, sink);
  ASSERT_FALSE(wrong_length.ok());
  EXPECT_EQ(wrong_length.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(wrong_length.error().message.find("has 5 bytes, the recipe expects 9"),
            std::string::npos);

  const ChunkProvider missing = [&](const Digest& digest, std::uint64_t) -> Result<ByteSpan> {
    return make_error(ErrorCode::kNotFound, "no chunk " + digest.to_string());
  };
  auto not_found = replay(recipe, missing, sink);
  ASSERT_FALSE(not_found.ok());
  EXPECT_EQ(not_found.error().code, ErrorCode::kNotFound);
}

TEST(RecipeBinary, RoundTripAndDeterminism) {
  const Recipe recipe = sample_recipe();
  const auto bytes = serialize_recipe(recipe);
  EXPECT_EQ(bytes, serialize_recipe(sample_recipe()));
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "STRATARC");
  auto parsed = parse_recipe(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(*parsed, recipe);
  auto empty = parse_recipe(serialize_recipe(Recipe()));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->total_size(), 0U);
}

TEST(RecipeBinary, EveryTruncationAndBitFlipIsRefused) {
  const auto bytes = serialize_recipe(sample_recipe());
  for (std::size_t keep = 0; keep < bytes.size(); ++keep) {
    auto parsed = parse_recipe(ByteSpan(bytes).first(keep));
    ASSERT_FALSE(parsed.ok()) << keep;
    EXPECT_EQ(parsed.error().code, ErrorCode::kCorruptInput) << parsed.error().to_string();
  }
  for (std::size_t i = 9; i < bytes.size(); ++i) {
    auto flipped = bytes;
    flipped[i] ^= 0x10;
    auto parsed = parse_recipe(flipped);
    ASSERT_FALSE(parsed.ok()) << i;
  }
}

// Builds "STRATARC" 1 <body> <xxh3> so the checksum passes and the body checks are reached.
std::vector<std::uint8_t> with_checksum(const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(body.size() + 17);
  for (const char c : std::string_view("STRATARC")) bytes.push_back(static_cast<std::uint8_t>(c));
  bytes.push_back(1);
  for (const std::uint8_t byte : body) bytes.push_back(byte);
  const std::uint64_t sum = XXH3_64bits(bytes.data(), bytes.size());
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  return bytes;
}

void expect_refused(const std::vector<std::uint8_t>& body, const std::string& fragment) {
  auto parsed = parse_recipe(with_checksum(body));
  ASSERT_FALSE(parsed.ok()) << fragment;
  EXPECT_EQ(parsed.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(parsed.error().message.find(fragment), std::string::npos) << parsed.error().to_string();
}

TEST(RecipeBinary, GarbledBodiesAreRefused) {
  std::vector<std::uint8_t> diff(32, 0);
  const auto body = [&](std::vector<std::uint8_t> head, std::vector<std::uint8_t> tail) {
    std::vector<std::uint8_t> out = std::move(head);
    out.insert(out.end(), diff.begin(), diff.end());
    out.insert(out.end(), tail.begin(), tail.end());
    return out;
  };
  // total 3, raw 3, a huge segment count: refused before any allocation.
  expect_refused(body({3}, {3, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 'a', 'b', 'c'}), "cannot fit");
  // raw size larger than what is present.
  expect_refused(body({3}, {100, 1, 0, 3, 'a', 'b', 'c'}), "exceeds");
  // two adjacent raw segments.
  expect_refused(body({3}, {3, 2, 0, 1, 0, 2, 'a', 'b', 'c'}), "not canonical");
  // an empty segment.
  expect_refused(body({0}, {0, 1, 0, 0}), "is empty");
  // lengths not adding up to the total.
  expect_refused(body({4}, {3, 1, 0, 3, 'a', 'b', 'c'}), "do not add up");
  // an unknown segment kind.
  expect_refused(body({3}, {3, 1, 7, 3, 'a', 'b', 'c'}), "unknown kind 7");
  // a varint that is not in shortest form.
  expect_refused(body({0x83, 0x00}, {0, 0}), "shortest form");
  // bytes after the raw area.
  expect_refused(body({3}, {3, 1, 0, 3, 'a', 'b', 'c', 'd'}), "unexpected bytes");
  auto wrong_magic = with_checksum({0});
  wrong_magic[0] = 'X';
  EXPECT_EQ(parse_recipe(wrong_magic).error().code, ErrorCode::kCorruptInput);
  auto future = with_checksum({0});
  future[8] = 3;
  EXPECT_EQ(parse_recipe(future).error().code, ErrorCode::kUnsupported);
}

// Version 2 (what serialize_recipe writes): "STRATARC" 2 | varint body size | zstd frame of the
// body | xxh3. body_of() undoes it; compressed() builds one around any frame and announced size.
std::vector<std::uint8_t> body_of(const std::vector<std::uint8_t>& recipe) {
  std::size_t at = 9;
  std::uint64_t size = 0;
  for (unsigned shift = 0;; shift += 7) {
    size |= static_cast<std::uint64_t>(recipe[at] & 0x7FU) << shift;
    if ((recipe[at++] & 0x80U) == 0) break;
  }
  std::vector<std::uint8_t> body(size);
  const std::size_t decoded =
      ZSTD_decompress(body.data(), body.size(), recipe.data() + at, recipe.size() - at - 8);
  EXPECT_EQ(decoded, size);
  return body;
}

std::vector<std::uint8_t> frame_of(const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> frame(ZSTD_compressBound(body.size()));
  frame.resize(ZSTD_compress(frame.data(), frame.size(), body.data(), body.size(), 3));
  return frame;
}

std::vector<std::uint8_t> compressed(const std::vector<std::uint8_t>& frame,
                                     std::uint64_t announced) {
  std::vector<std::uint8_t> bytes;
  for (const char c : std::string_view("STRATARC")) bytes.push_back(static_cast<std::uint8_t>(c));
  bytes.push_back(2);
  for (; announced >= 0x80; announced >>= 7U) {
    bytes.push_back(static_cast<std::uint8_t>(announced | 0x80U));
  }
  bytes.push_back(static_cast<std::uint8_t>(announced));
  bytes.insert(bytes.end(), frame.begin(), frame.end());
  const std::uint64_t sum = XXH3_64bits(bytes.data(), bytes.size());
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  return bytes;
}

// Stores written before recipes were compressed hold version 1: still read, to the same recipe.
// The compressed form is what makes a recipe of tar headers small (the raw area compresses).
TEST(RecipeBinary, VersionOneStillParsesAndVersionTwoIsSmaller) {
  RecipeBuilder builder;
  for (int file = 0; file < 200; ++file) {
    const std::string header = "usr/lib/python3/dist-packages/numpy/core/file" +
                               std::to_string(file) + ".py\0000644\0000000\0000000\0" +
                               std::string(400, '\0');
    const ByteSpan bytes(reinterpret_cast<const std::uint8_t*>(header.data()), header.size());
    builder.add_raw(bytes);
    builder.add_chunk(sha256_of(bytes), 4096);
  }
  const Recipe recipe = builder.finish();
  const auto version2 = serialize_recipe(recipe);
  EXPECT_EQ(version2[8], 2);
  const auto version1 = with_checksum(body_of(version2));
  auto parsed = parse_recipe(version1);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(*parsed, recipe);
  EXPECT_LT(version2.size() * 4, version1.size());
}

void expect_refused_frame(const std::vector<std::uint8_t>& bytes, const std::string& fragment) {
  auto parsed = parse_recipe(bytes);
  ASSERT_FALSE(parsed.ok()) << fragment;
  EXPECT_EQ(parsed.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(parsed.error().message.find(fragment), std::string::npos) << parsed.error().to_string();
}

// The compressed body of a registry's or a damaged store's recipe is checked like any input: the
// announced size is bounded before anything is allocated, the frame must decode to exactly that
// many bytes and end the recipe, and the body it gives is then checked as in version 1.
TEST(RecipeBinary, CompressedBodiesAreChecked) {
  const auto body = body_of(serialize_recipe(sample_recipe()));
  const auto frame = frame_of(body);
  ASSERT_TRUE(parse_recipe(compressed(frame, body.size())).ok());
  expect_refused_frame(compressed(frame, (std::uint64_t{1} << 30U) + 1), "exceeds");
  expect_refused_frame(compressed(frame, body.size() + 1), "announced");
  expect_refused_frame(compressed(frame, body.size() - 1), "more than the");
  auto trailing = frame;
  trailing.push_back(0);
  expect_refused_frame(compressed(trailing, body.size()), "after the body frame");
  const std::vector<std::uint8_t> cut(frame.begin(), frame.end() - 3);
  auto truncated = parse_recipe(compressed(cut, body.size()));
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.error().code, ErrorCode::kCorruptInput);
  expect_refused_frame(compressed({1, 2, 3, 4, 5, 6, 7, 8}, body.size()), "does not decode");
  // A frame of a garbled body: the version-1 checks apply to what it decodes to.
  std::vector<std::uint8_t> garbled = {3};
  garbled.insert(garbled.end(), 32, 0);
  garbled.insert(garbled.end(), {3, 1, 7, 3, 'a', 'b', 'c'});
  expect_refused_frame(compressed(frame_of(garbled), garbled.size()), "unknown kind 7");
}

}  // namespace
}  // namespace strata
