// FastCDC exactness against the fastcdc-rs reference vectors (shared/testdata/cdc/
// sekien_expected.txt): every v2016 and v2020 block, offsets, lengths and gear hashes, once per
// kernel this CPU can run, one-shot and streaming; plus the all-zeros sanity vector.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/test_support.h"

namespace strata {
namespace {

std::vector<std::string> usable_kernels() {
  std::vector<std::string> names;
  for (const KernelInfo& kernel : list_kernels()) {
    if (kernel.usable) names.push_back(kernel.name);
  }
  return names;
}

class FastCdcVectors : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(select_kernel(GetParam()).ok()); }
  void TearDown() override { (void)select_kernel(usable_kernels().front()); }
};

ChunkerOptions options_for(const test::ExpectedBlock& block) {
  ChunkerOptions options;
  options.algorithm = block.variant == "fastcdc-v2016" ? ChunkAlgorithm::kFastCdc2016
                                                       : ChunkAlgorithm::kFastCdc2020;
  options.min_size = block.min_size;
  options.avg_size = block.avg_size;
  options.max_size = block.max_size;
  options.level = block.level;
  options.seed = block.seed;
  return options;
}

TEST_P(FastCdcVectors, KernelIsActive) {
  EXPECT_EQ(active_kernel_name(), GetParam());
}

TEST_P(FastCdcVectors, SekienBlocksOneShot) {
  const auto data = test::read_file(test::testdata_path("cdc/SekienAkashita.jpg"));
  ASSERT_EQ(data.size(), 109466U);
  int checked_blocks = 0;
  for (const test::ExpectedBlock& block : test::load_sekien_blocks()) {
    if (block.variant == "ronomon") continue;  // ronomon's 31-bit variant is not a strata algorithm
    SCOPED_TRACE(block.variant + " " + std::to_string(block.min_size) + "/" +
                 std::to_string(block.avg_size) + "/" + std::to_string(block.max_size) + " nc" +
                 std::to_string(block.level) + " seed " + std::to_string(block.seed));
    auto chunks = chunk_buffer(data, options_for(block));
    ASSERT_TRUE(chunks.ok()) << chunks.error().to_string();
    ASSERT_EQ(chunks->size(), block.chunks.size());
    for (std::size_t i = 0; i < block.chunks.size(); ++i) {
      EXPECT_EQ((*chunks)[i].offset, block.chunks[i].offset) << "chunk " << i;
      EXPECT_EQ((*chunks)[i].length, block.chunks[i].length) << "chunk " << i;
      EXPECT_EQ((*chunks)[i].hash, block.chunks[i].hash) << "chunk " << i;
    }
    ++checked_blocks;
  }
  EXPECT_EQ(checked_blocks, 11);
}

TEST_P(FastCdcVectors, SekienBlocksStreamingInOddPieces) {
  const auto data = test::read_file(test::testdata_path("cdc/SekienAkashita.jpg"));
  for (const test::ExpectedBlock& block : test::load_sekien_blocks()) {
    if (block.variant == "ronomon") continue;
    for (const std::size_t piece : {std::size_t{1}, std::size_t{37}, std::size_t{255},
                                    std::size_t{4096}, std::size_t{65536}}) {
      auto chunker = Chunker::create(options_for(block));
      ASSERT_TRUE(chunker.ok());
      std::vector<Chunk> got;
      const auto sink = [&](const Chunk& chunk, ByteSpan bytes) {
        ASSERT_EQ(bytes.size(), chunk.length);
        ASSERT_EQ(0, std::memcmp(bytes.data(), data.data() + chunk.offset, chunk.length));
        got.push_back(chunk);
      };
      for (std::size_t at = 0; at < data.size(); at += piece) {
        chunker->feed(ByteSpan(data).subspan(at, std::min(piece, data.size() - at)), sink);
      }
      chunker->finish(sink);
      ASSERT_EQ(got.size(), block.chunks.size()) << "piece " << piece;
      for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].offset, block.chunks[i].offset);
        EXPECT_EQ(got[i].length, block.chunks[i].length);
        EXPECT_EQ(got[i].hash, block.chunks[i].hash);
      }
    }
  }
}

TEST_P(FastCdcVectors, AllZerosVector) {
  // 10240 zero bytes, 64/256/1024, level 1: ten chunks of 1024, each with the same hash.
  const std::vector<std::uint8_t> zeros(10240, 0);
  for (const ChunkAlgorithm algorithm :
       {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020}) {
    ChunkerOptions options;
    options.algorithm = algorithm;
    options.min_size = 64;
    options.avg_size = 256;
    options.max_size = 1024;
    options.level = 1;
    auto chunks = chunk_buffer(zeros, options);
    ASSERT_TRUE(chunks.ok());
    ASSERT_EQ(chunks->size(), 10U);
    for (std::size_t i = 0; i < chunks->size(); ++i) {
      EXPECT_EQ((*chunks)[i].offset, i * 1024);
      EXPECT_EQ((*chunks)[i].length, 1024U);
      EXPECT_EQ((*chunks)[i].hash, 14169102344523991076ULL);
    }
  }
}

TEST_P(FastCdcVectors, V2020CutsEqualV2016Cuts) {
  // The paper's claim, checked on random data across parameter sets with even min sizes.
  const auto data = test::splitmix64_bytes(7, 3U << 20U);
  for (std::uint32_t level = 0; level <= 3; ++level) {
    for (const std::uint32_t avg : {256U, 4096U, 16384U, 65536U}) {
      ChunkerOptions options;
      options.min_size = avg / 4;
      options.avg_size = avg;
      options.max_size = avg * 4;
      options.level = level;
      options.algorithm = ChunkAlgorithm::kFastCdc2016;
      auto old_cuts = chunk_buffer(data, options);
      options.algorithm = ChunkAlgorithm::kFastCdc2020;
      auto new_cuts = chunk_buffer(data, options);
      ASSERT_TRUE(old_cuts.ok() && new_cuts.ok());
      ASSERT_EQ(old_cuts->size(), new_cuts->size()) << "avg " << avg << " level " << level;
      for (std::size_t i = 0; i < old_cuts->size(); ++i) {
        EXPECT_EQ((*old_cuts)[i].offset, (*new_cuts)[i].offset);
        EXPECT_EQ((*old_cuts)[i].length, (*new_cuts)[i].length);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, FastCdcVectors, ::testing::ValuesIn(usable_kernels()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace strata
