// Tensor-aware chunking: every tensor boundary and the header/data boundary is a cut; chunks never
// straddle regions; a changed tensor changes only chunks inside its own byte range; identical
// tensors at shifted offsets give identical chunks; streaming in any pieces equals one call.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/chunk/tensor_chunking.h"
#include "strata/models.h"
#include "tests/test_support.h"

namespace strata {
namespace {

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::size_t elements;
  std::size_t element_size;
};

// A safetensors file (shared/specs/models.md §3) whose tensors are laid out in the given order
// (names chosen so the sorted order is the same) with pseudo-random contents per tensor name.
std::vector<std::uint8_t> build_model(const std::vector<TensorSpec>& specs,
                                      const std::map<std::string, std::uint64_t>& seeds) {
  std::string header = "{";
  std::size_t offset = 0;
  for (const TensorSpec& spec : specs) {
    const std::size_t bytes = spec.elements * spec.element_size;
    if (header.size() > 1) header += ",";
    header += "\"";
    header += spec.name;
    header += "\":{\"dtype\":\"";
    header += spec.dtype;
    header += "\",\"shape\":[";
    header += std::to_string(spec.elements);
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ",";
    header += std::to_string(offset + bytes);
    header += "]}";
    offset += bytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += " ";
  std::vector<std::uint8_t> file;
  for (unsigned i = 0; i < 8; ++i) {
    file.push_back(static_cast<std::uint8_t>(std::uint64_t{header.size()} >> (8U * i)));
  }
  for (const char c : header) file.push_back(static_cast<std::uint8_t>(c));
  for (const TensorSpec& spec : specs) {
    const auto content =
        test::splitmix64_bytes(seeds.at(spec.name), spec.elements * spec.element_size);
    file.insert(file.end(), content.begin(), content.end());
  }
  return file;
}

const std::vector<TensorSpec> kSpecs = {
    {"a.embed", "F32", 90'001, 4},  // 360 KB
    {"b.norm", "F16", 33, 2},       // tiny: one chunk below min size
    {"c.attn", "BF16", 150'000, 2}, {"d.bias", "I8", 5'000, 1}, {"e.proj", "F32", 60'000, 4},
};

std::map<std::string, std::uint64_t> default_seeds() {
  std::map<std::string, std::uint64_t> seeds;
  std::uint64_t seed = 100;
  for (const TensorSpec& spec : kSpecs) seeds[spec.name] = ++seed;
  return seeds;
}

ChunkerOptions small_chunks() {
  ChunkerOptions options;
  options.min_size = 2U << 10U;
  options.avg_size = 8U << 10U;
  options.max_size = 32U << 10U;
  return options;
}

struct Chunked {
  ModelLayout layout;
  std::vector<TensorChunk> chunks;
  std::vector<Digest> digests;
};

Chunked chunk_whole(const std::vector<std::uint8_t>& file) {
  Chunked result;
  auto layout = parse_safetensors(ByteSpan(file), file.size());
  EXPECT_TRUE(layout.ok()) << layout.error().to_string();
  result.layout = std::move(layout).value();
  auto chunker = TensorAwareChunker::create(result.layout, small_chunks());
  EXPECT_TRUE(chunker.ok());
  const TensorAwareChunker::Sink sink = [&](const TensorChunk& chunk, ByteSpan bytes) {
    EXPECT_EQ(bytes.size(), chunk.chunk.length);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), file.begin() + chunk.chunk.offset));
    result.chunks.push_back(chunk);
    result.digests.push_back(sha256_of(bytes));
  };
  EXPECT_TRUE(chunker->feed(ByteSpan(file), sink).ok());
  EXPECT_TRUE(chunker->finish(sink).ok());
  return result;
}

TEST(TensorChunking, EveryTensorBoundaryIsACut) {
  const auto file = build_model(kSpecs, default_seeds());
  const Chunked chunked = chunk_whole(file);
  std::set<std::uint64_t> cuts;
  std::uint64_t covered = 0;
  for (const TensorChunk& chunk : chunked.chunks) {
    ASSERT_EQ(chunk.chunk.offset, covered);
    cuts.insert(chunk.chunk.offset);
    covered += chunk.chunk.length;
  }
  EXPECT_EQ(covered, file.size());
  EXPECT_TRUE(cuts.count(chunked.layout.data_begin));
  for (const TensorInfo& tensor : chunked.layout.tensors) {
    EXPECT_TRUE(cuts.count(tensor.begin)) << tensor.name;
    EXPECT_TRUE(tensor.end == file.size() || cuts.count(tensor.end)) << tensor.name;
  }
  // Each chunk lies inside one region and names it; content-defined cuts happen inside tensors.
  std::size_t inside_large = 0;
  for (const TensorChunk& chunk : chunked.chunks) {
    const std::uint64_t end = chunk.chunk.offset + chunk.chunk.length;
    if (chunk.tensor < 0) {
      EXPECT_LE(end, chunked.layout.data_begin);
      continue;
    }
    const TensorInfo& tensor = chunked.layout.tensors[static_cast<std::size_t>(chunk.tensor)];
    EXPECT_GE(chunk.chunk.offset, tensor.begin);
    EXPECT_LE(end, tensor.end);
    EXPECT_EQ(chunk.element_width, byte_group_width(tensor.dtype));
    if (chunk.element_width != 0) {
      EXPECT_EQ((chunk.chunk.offset - tensor.begin + chunk.element_phase) % chunk.element_width,
                0U);
      EXPECT_LT(chunk.element_phase, chunk.element_width);
    }
    if (tensor.name == "a.embed") ++inside_large;
  }
  EXPECT_GT(inside_large, 10U);
}

TEST(TensorChunking, ChangedTensorOnlyDirtiesItsOwnChunks) {
  const auto original = build_model(kSpecs, default_seeds());
  auto seeds = default_seeds();
  seeds["c.attn"] = 999;  // retrained tensor: same shape, new values
  const auto tuned = build_model(kSpecs, seeds);
  const Chunked before = chunk_whole(original);
  const Chunked after = chunk_whole(tuned);
  const TensorInfo& changed = after.layout.tensors[2];
  ASSERT_EQ(changed.name, "c.attn");
  std::set<Digest> known(before.digests.begin(), before.digests.end());
  for (std::size_t i = 0; i < after.chunks.size(); ++i) {
    const TensorChunk& chunk = after.chunks[i];
    const bool inside = chunk.chunk.offset >= changed.begin &&
                        chunk.chunk.offset + chunk.chunk.length <= changed.end;
    EXPECT_EQ(known.count(after.digests[i]) == 0, inside) << "chunk at " << chunk.chunk.offset;
  }
}

TEST(TensorChunking, ShiftedTensorsKeepTheirChunks) {
  auto seeds = default_seeds();
  std::vector<TensorSpec> grown = kSpecs;
  grown.insert(grown.begin() + 1, TensorSpec{"aa.extra", "F32", 777, 4});
  seeds["aa.extra"] = 5;
  const Chunked before = chunk_whole(build_model(kSpecs, seeds));
  const Chunked after = chunk_whole(build_model(grown, seeds));
  std::set<Digest> known(before.digests.begin(), before.digests.end());
  for (std::size_t i = 0; i < after.chunks.size(); ++i) {
    const TensorChunk& chunk = after.chunks[i];
    if (chunk.tensor < 0) continue;  // the header changed
    const std::string& name = after.layout.tensors[static_cast<std::size_t>(chunk.tensor)].name;
    EXPECT_EQ(known.count(after.digests[i]) == 1, name != "aa.extra") << name;
  }
}

TEST(TensorChunking, StreamingEqualsOneShot) {
  const auto file = build_model(kSpecs, default_seeds());
  const Chunked reference = chunk_whole(file);
  std::mt19937_64 random(3);
  for (const std::size_t max_piece :
       {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{100'000}}) {
    auto chunker = TensorAwareChunker::create(reference.layout, small_chunks());
    ASSERT_TRUE(chunker.ok());
    std::vector<TensorChunk> streamed;
    const TensorAwareChunker::Sink sink = [&](const TensorChunk& chunk, ByteSpan bytes) {
      ASSERT_TRUE(std::equal(bytes.begin(), bytes.end(), file.begin() + chunk.chunk.offset));
      streamed.push_back(chunk);
    };
    std::size_t at = 0;
    while (at < file.size()) {
      const std::size_t piece = std::min(file.size() - at, 1 + random() % max_piece);
      ASSERT_TRUE(chunker->feed(ByteSpan(file).subspan(at, piece), sink).ok());
      at += piece;
    }
    ASSERT_TRUE(chunker->finish(sink).ok());
    ASSERT_EQ(streamed.size(), reference.chunks.size()) << max_piece;
    for (std::size_t i = 0; i < streamed.size(); ++i) {
      EXPECT_EQ(streamed[i].chunk, reference.chunks[i].chunk);
      EXPECT_EQ(streamed[i].tensor, reference.chunks[i].tensor);
      EXPECT_EQ(streamed[i].element_phase, reference.chunks[i].element_phase);
    }
  }
  auto simple = chunk_model_file(ByteSpan(file), reference.layout, small_chunks());
  ASSERT_TRUE(simple.ok());
  EXPECT_EQ(simple->size(), reference.chunks.size());
}

TEST(TensorChunking, RefusesWrongByteCounts) {
  const auto file = build_model(kSpecs, default_seeds());
  auto layout = parse_safetensors(ByteSpan(file), file.size());
  ASSERT_TRUE(layout.ok());
  const TensorAwareChunker::Sink ignore = [](const TensorChunk&, ByteSpan) {};
  auto chunker = TensorAwareChunker::create(*layout, small_chunks());
  ASSERT_TRUE(chunker.ok());
  ASSERT_TRUE(chunker->feed(ByteSpan(file).first(100), ignore).ok());
  auto early = chunker->finish(ignore);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, ErrorCode::kInvalidArgument);
  auto again = TensorAwareChunker::create(*layout, small_chunks());
  ASSERT_TRUE(again.ok());
  std::vector<std::uint8_t> longer = file;
  longer.push_back(0);
  auto too_many = again->feed(ByteSpan(longer), ignore);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message.find("more bytes"), std::string::npos);
}

TEST(TensorChunking, GgufPaddingIsItsOwnRegion) {
  ModelLayout layout;
  layout.format = ModelFormat::kGguf;
  layout.file_size = 1000;
  layout.data_begin = 96;
  layout.tensors.push_back(TensorInfo{"w", TensorDtype::kF16, "F16", {100}, 96, 296});
  layout.tensors.push_back(TensorInfo{"q", TensorDtype::kQuantized, "Q8_0", {32}, 320, 354});
  auto regions = split_model_regions(layout);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 5U);
  EXPECT_EQ((*regions)[0].end, 96U);
  EXPECT_EQ((*regions)[1].element_width, 2U);
  EXPECT_EQ((*regions)[2].begin, 296U);  // padding between tensors
  EXPECT_EQ((*regions)[2].tensor, -1);
  EXPECT_EQ((*regions)[3].element_width, 0U);
  EXPECT_EQ((*regions)[4].end, 1000U);
  layout.tensors[1].begin = 200;  // overlaps "w"
  EXPECT_FALSE(split_model_regions(layout).ok());
}

}  // namespace
}  // namespace strata
