// chunk_buffer_parallel() equals chunk_buffer() for every algorithm and many thread counts: random
// data, zero-filled data (no natural cut points, the case where desync-style re-sync degenerates),
// zeros with a random prefix that shifts every later cut off the part grid, small inputs that stay
// sequential, and bad options.
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace strata {
namespace {

ChunkerOptions small_options(ChunkAlgorithm algorithm) {
  ChunkerOptions options = default_chunker_options(algorithm);
  options.min_size = 256;
  options.avg_size = 1024;
  options.max_size = 4096;
  return options;
}

constexpr ChunkAlgorithm kAlgorithms[] = {ChunkAlgorithm::kFastCdc2016,
                                          ChunkAlgorithm::kFastCdc2020, ChunkAlgorithm::kXet,
                                          ChunkAlgorithm::kCasync};

void expect_parallel_equals_sequential(const std::vector<std::uint8_t>& data,
                                       const std::string& what) {
  for (const ChunkAlgorithm algorithm : kAlgorithms) {
    const ChunkerOptions options = small_options(algorithm);
    auto sequential = chunk_buffer(data, options);
    ASSERT_TRUE(sequential.ok());
    for (const unsigned threads : {0U, 1U, 2U, 3U, 4U, 7U, 16U}) {
      auto parallel = chunk_buffer_parallel(data, options, threads);
      ASSERT_TRUE(parallel.ok());
      ASSERT_EQ(*parallel, *sequential)
          << what << " " << chunk_algorithm_name(algorithm) << " threads " << threads;
    }
  }
}

TEST(ChunkerParallel, RandomDataMatchesSequential) {
  expect_parallel_equals_sequential(test::splitmix64_bytes(17, 3U << 20U), "random");
}

TEST(ChunkerParallel, ZeroFilledDataMatchesSequential) {
  expect_parallel_equals_sequential(std::vector<std::uint8_t>(5U << 20U, 0), "zeros");
}

TEST(ChunkerParallel, ZerosAfterOddPrefixMatchSequential) {
  // The prefix moves the zero run's max-size cuts off the part grid: parts never meet the true
  // chain there, so the join has to cut on its own and must still be exact.
  auto data = test::splitmix64_bytes(3, 1237);
  data.resize(4U << 20U, 0);
  expect_parallel_equals_sequential(data, "prefix+zeros");
}

TEST(ChunkerParallel, SmallInputsMatchSequential) {
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{1}, std::size_t{255}, std::size_t{4097}, std::size_t{300000}}) {
    expect_parallel_equals_sequential(test::splitmix64_bytes(size, size),
                                      "size " + std::to_string(size));
  }
}

TEST(ChunkerParallel, DefaultSizesOnLargerInput) {
  const auto data = test::splitmix64_bytes(99, 24U << 20U);
  const ChunkerOptions options;
  auto sequential = chunk_buffer(data, options);
  auto parallel = chunk_buffer_parallel(data, options, 2);
  ASSERT_TRUE(sequential.ok() && parallel.ok());
  EXPECT_EQ(*parallel, *sequential);
}

TEST(ChunkerParallel, BadOptionsAreRefused) {
  ChunkerOptions options;
  options.min_size = 1;
  const auto result = chunk_buffer_parallel(std::vector<std::uint8_t>(10), options, 2);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
