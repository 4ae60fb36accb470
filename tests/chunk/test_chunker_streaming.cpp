// Chunker invariants beyond the reference vectors: streaming in random piece sizes equals one call
// (also when the last piece is cut in place by finish(last_piece)), the scan clock counts scans,
// every chunk respects min/max (the last may be shorter), chunks tile the input, empty input gives
// no chunk, data ending flush against the end of an allocation is read safely, bad options fail.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "tests/test_support.h"

namespace strata {
namespace {

// Feeds `data` in random pieces of 1..max_piece bytes; with `last_in_place` the last piece goes
// through finish(last_piece) (cut in place) instead of feed() and finish().
std::vector<Chunk> stream_in_pieces(const std::vector<std::uint8_t>& data,
                                    const ChunkerOptions& options, std::mt19937_64& random,
                                    std::size_t max_piece, bool last_in_place = false) {
  auto chunker = Chunker::create(options);
  EXPECT_TRUE(chunker.ok());
  std::vector<Chunk> chunks;
  const auto sink = [&](const Chunk& chunk, ByteSpan bytes) {
    EXPECT_EQ(bytes.size(), chunk.length);
    EXPECT_EQ(0, std::memcmp(bytes.data(), data.data() + chunk.offset, chunk.length));
    chunks.push_back(chunk);
  };
  std::size_t at = 0;
  while (at < data.size()) {
    const std::size_t piece = std::min<std::size_t>(data.size() - at, 1 + random() % max_piece);
    if (last_in_place && at + piece == data.size()) {
      chunker->finish(ByteSpan(data).subspan(at, piece), sink);
      return chunks;
    }
    chunker->feed(ByteSpan(data).subspan(at, piece), sink);
    at += piece;
  }
  chunker->finish(sink);
  return chunks;
}

TEST(ChunkerStreaming, RandomPieceSizesMatchOneShot) {
  const auto data = test::splitmix64_bytes(42, 2U << 20U);
  std::mt19937_64 random(1234);
  for (const ChunkAlgorithm algorithm :
       {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020}) {
    for (const std::uint32_t avg : {1024U, 16384U}) {
      ChunkerOptions options;
      options.algorithm = algorithm;
      options.min_size = avg / 4;
      options.avg_size = avg;
      options.max_size = avg * 4;
      auto expected = chunk_buffer(data, options);
      ASSERT_TRUE(expected.ok());
      for (const std::size_t max_piece :
           {std::size_t{3}, std::size_t{777}, std::size_t{70000}, std::size_t{1} << 20U}) {
        const auto got = stream_in_pieces(data, options, random, max_piece);
        ASSERT_EQ(got, *expected) << "avg " << avg << " max piece " << max_piece;
      }
    }
  }
}

// finish(last_piece) cuts the last piece in place; the chunks equal feed() + finish() for every
// algorithm, for inputs shorter than min, around max, and for any split before the last piece.
TEST(ChunkerStreaming, FinishWithLastPieceMatchesOneShot) {
  std::mt19937_64 random(99);
  for (const ChunkAlgorithm algorithm : {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020,
                                         ChunkAlgorithm::kXet, ChunkAlgorithm::kCasync}) {
    ChunkerOptions options = default_chunker_options(algorithm);
    options.min_size = 1024;
    options.avg_size = 4096;
    options.max_size = 16384;
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1024},
                                   std::size_t{16384}, std::size_t{16385}, std::size_t{300000}}) {
      const auto data = test::splitmix64_bytes(size + 7, size);
      auto expected = chunk_buffer(data, options);
      ASSERT_TRUE(expected.ok());
      for (const std::size_t max_piece :
           {std::size_t{5}, std::size_t{5000}, std::size_t{40000}, std::size_t{1} << 20U}) {
        const auto got = stream_in_pieces(data, options, random, max_piece, true);
        ASSERT_EQ(got, *expected) << chunk_algorithm_name(algorithm) << " size " << size
                                  << " max piece " << max_piece;
      }
    }
  }
}

// The scan clock counts scans only: nothing for input too short to scan, something once a scan
// ran, and it keeps counting across finish() and reset().
TEST(ChunkerStreaming, ScanClockCountsOnlyScans) {
  auto chunker = Chunker::create(ChunkerOptions{});
  ASSERT_TRUE(chunker.ok());
  const auto ignore = [](const Chunk&, ByteSpan) {};
  const auto tiny = test::splitmix64_bytes(1, 1000);
  chunker->feed(tiny, ignore);
  chunker->finish(ignore);
  EXPECT_EQ(chunker->scan_cpu_seconds(), 0.0);
  const auto data = test::splitmix64_bytes(2, 8U << 20U);
  chunker->feed(data, ignore);
  chunker->finish(ignore);
  const double after_one = chunker->scan_cpu_seconds();
  EXPECT_GT(after_one, 0.0);
  chunker->reset();
  chunker->finish(data, ignore);
  EXPECT_GT(chunker->scan_cpu_seconds(), after_one);
}

TEST(ChunkerStreaming, ChunksTileInputAndRespectBounds) {
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{10}, std::size_t{4096},
                                 std::size_t{50000}, std::size_t{1} << 20U}) {
    const auto data = test::splitmix64_bytes(size, size);
    ChunkerOptions options;
    options.min_size = 2048;
    options.avg_size = 8192;
    options.max_size = 32768;
    auto chunks = chunk_buffer(data, options);
    ASSERT_TRUE(chunks.ok());
    std::uint64_t expected_offset = 0;
    for (std::size_t i = 0; i < chunks->size(); ++i) {
      const Chunk& chunk = (*chunks)[i];
      EXPECT_EQ(chunk.offset, expected_offset);
      EXPECT_LE(chunk.length, options.max_size);
      if (i + 1 < chunks->size()) {
        EXPECT_GE(chunk.length, options.min_size);
      }
      EXPECT_GT(chunk.length, 0U);
      expected_offset += chunk.length;
    }
    EXPECT_EQ(expected_offset, size);
    if (size == 0) {
      EXPECT_TRUE(chunks->empty());
    }
  }
}

TEST(ChunkerStreaming, ZeroFilledInputsCoverEveryByte) {
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{10}, std::size_t{4096}, std::size_t{50000}}) {
    const std::vector<std::uint8_t> zeros(size, 0);
    ChunkerOptions options;
    options.min_size = 64;
    options.avg_size = 256;
    options.max_size = 1024;
    auto chunks = chunk_buffer(zeros, options);
    ASSERT_TRUE(chunks.ok());
    std::uint64_t covered = 0;
    for (const Chunk& chunk : *chunks) covered += chunk.length;
    EXPECT_EQ(covered, size);
  }
}

TEST(ChunkerStreaming, DataFlushAgainstEndOfMapping) {
  // The input ends exactly at a page followed by an inaccessible guard page: any over-read faults.
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t data_pages = 64;
  void* mapping = mmap(nullptr, (data_pages + 1) * page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapping, MAP_FAILED);
  auto* bytes = static_cast<std::uint8_t*>(mapping);
  ASSERT_EQ(0, mprotect(bytes + data_pages * page, page, PROT_NONE));
  const auto random = test::splitmix64_bytes(99, data_pages * page);
  std::memcpy(bytes, random.data(), random.size());
  for (const std::size_t tail :
       {std::size_t{1}, std::size_t{63}, std::size_t{4097}, data_pages * page}) {
    const ByteSpan data(bytes + data_pages * page - tail, tail);
    for (const ChunkAlgorithm algorithm :
         {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020}) {
      for (const KernelInfo& kernel : list_kernels()) {
        if (!kernel.usable) continue;
        ASSERT_TRUE(select_kernel(kernel.name).ok());
        ChunkerOptions options;
        options.algorithm = algorithm;
        options.min_size = 64;
        options.avg_size = 1024;
        options.max_size = 8192;
        auto chunks = chunk_buffer(data, options);
        ASSERT_TRUE(chunks.ok());
        EXPECT_EQ(chunks->back().offset + chunks->back().length, tail);
      }
    }
  }
  munmap(mapping, (data_pages + 1) * page);
}

TEST(ChunkerOptionsValidation, RejectsOutOfRangeWithClearMessages) {
  const auto expect_invalid = [](ChunkerOptions options, const std::string& fragment) {
    const auto checked = validate(options);
    ASSERT_FALSE(checked.ok());
    EXPECT_EQ(checked.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(checked.error().message.find(fragment), std::string::npos) << checked.error().message;
    EXPECT_FALSE(Chunker::create(options).ok());
  };
  ChunkerOptions options;
  options.min_size = 32;
  expect_invalid(options, "minimum chunk size 32");
  options = {};
  options.max_size = (16U << 20U) + 1;
  expect_invalid(options, "maximum chunk size");
  options = {};
  options.min_size = 128 << 10;
  expect_invalid(options, "min <= avg <= max");
  options = {};
  options.level = 4;
  expect_invalid(options, "normalization level 4");
  options = {};
  options.min_size = 64;
  options.avg_size = 64;
  options.max_size = 1024;
  options.level = 2;
  expect_invalid(options, "5..25 bits");
  options = {};
  options.min_size = 64;
  options.avg_size = 64;
  options.max_size = 16U << 20U;
  EXPECT_TRUE(validate(options).ok());
  options.min_size = 16U << 20U;
  options.avg_size = 16U << 20U;
  EXPECT_TRUE(validate(options).ok());
}

TEST(ChunkerAlgorithmNames, ParseAndName) {
  EXPECT_EQ(*parse_chunk_algorithm("fastcdc2016"), ChunkAlgorithm::kFastCdc2016);
  EXPECT_EQ(*parse_chunk_algorithm("fastcdc2020"), ChunkAlgorithm::kFastCdc2020);
  EXPECT_EQ(chunk_algorithm_name(ChunkAlgorithm::kFastCdc2016), "fastcdc2016");
  const auto unknown = parse_chunk_algorithm("rabin");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("rabin"), std::string::npos);
}

}  // namespace
}  // namespace strata
