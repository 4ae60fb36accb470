// xet and casync compatibility against the reference data of shared/testdata/cdc/: the generated
// tables equal the shared table files; xet cuts reproduce every block of xet_expected.txt (constant
// data, SplitMix64, the 128 hitting-pattern cases) with every usable kernel; casync reproduces
// casync_expected.txt including the SHA-512/256 chunk ids; streaming in 1-, 37-, 255-byte and
// random pieces equals one call; the gear kernels agree with the scalar reference on xet's mask.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "core/chunk/casync_tables.h"
#include "core/chunk/xet_tables.h"
#include "simd/dispatch.h"
#include "tests/test_support.h"

namespace strata {
namespace {

std::vector<std::uint64_t> read_hex_table(const std::string& name) {
  std::ifstream file(test::testdata_path("cdc/" + name));
  std::vector<std::uint64_t> values;
  std::string line;
  while (std::getline(file, line)) {
    if (line.rfind("0x", 0) == 0) values.push_back(std::stoull(line, nullptr, 16));
  }
  return values;
}

// Blocks of xet_expected.txt: name -> lines of whitespace-separated numbers.
std::map<std::string, std::vector<std::vector<std::uint64_t>>> load_xet_blocks() {
  std::ifstream file(test::testdata_path("cdc/xet_expected.txt"));
  std::map<std::string, std::vector<std::vector<std::uint64_t>>> blocks;
  std::string line;
  std::string current;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      current = line.substr(1, line.find(']') - 1);
      continue;
    }
    std::istringstream fields(line);
    std::vector<std::uint64_t> numbers;
    for (std::uint64_t value = 0; fields >> value;) numbers.push_back(value);
    blocks[current].push_back(numbers);
  }
  return blocks;
}

std::vector<std::uint64_t> chunk_ends(const std::vector<Chunk>& chunks) {
  std::vector<std::uint64_t> ends;
  for (const Chunk& chunk : chunks) ends.push_back(chunk.offset + chunk.length);
  return ends;
}

std::vector<std::string> usable_kernels() {
  std::vector<std::string> names;
  for (const KernelInfo& kernel : list_kernels()) {
    if (kernel.usable) names.push_back(kernel.name);
  }
  return names;
}

TEST(CompatTables, GeneratedTablesEqualSharedFiles) {
  const auto xet_table = read_hex_table("xet_gearhash_table.txt");
  ASSERT_EQ(xet_table.size(), 256U);
  for (std::size_t i = 0; i < 256; ++i) EXPECT_EQ(xet::kGearTable[i], xet_table[i]) << i;
  const auto casync_table = read_hex_table("casync_buzhash_table.txt");
  ASSERT_EQ(casync_table.size(), 256U);
  for (std::size_t i = 0; i < 256; ++i) EXPECT_EQ(casync::kBuzhashTable[i], casync_table[i]) << i;
}

class XetVectors : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(select_kernel(GetParam()).ok()); }
  void TearDown() override { (void)select_kernel(usable_kernels().front()); }
};

TEST_P(XetVectors, KernelIsActive) {
  EXPECT_EQ(active_kernel_name(), GetParam());
}

TEST_P(XetVectors, ConstantAndRandomMegabyte) {
  const auto blocks = load_xet_blocks();
  const ChunkerOptions options = default_chunker_options(ChunkAlgorithm::kXet);
  const std::vector<std::uint8_t> constant(1000000, 59);
  const auto random = test::splitmix64_bytes(0, 1000000);
  ASSERT_EQ(random[0], 175);
  ASSERT_EQ(random[127], 132);
  ASSERT_EQ(random[111111], 118);
  for (const auto& [name, data] :
       {std::pair{"xet_const59_1MB", &constant}, std::pair{"xet_splitmix64_seed0_1MB", &random}}) {
    std::vector<std::uint64_t> expected;
    for (const auto& line : blocks.at(name)) expected.push_back(line.at(0));
    ASSERT_FALSE(expected.empty());
    auto chunks = chunk_buffer(*data, options);
    ASSERT_TRUE(chunks.ok());
    EXPECT_EQ(chunk_ends(*chunks), expected) << name;
  }
}

TEST_P(XetVectors, HittingPatterns) {
  const auto blocks = load_xet_blocks();
  const auto& base_line = blocks.at("xet_hit_base_128").at(0);
  ASSERT_EQ(base_line.size(), 128U);
  const auto& cases = blocks.at("xet_hit_65536");
  ASSERT_EQ(cases.size(), 128U);
  const ChunkerOptions options = default_chunker_options(ChunkAlgorithm::kXet);
  for (std::size_t pad = 0; pad < 128; ++pad) {
    const auto& line = cases[pad];
    ASSERT_EQ(line.at(0), pad);
    std::vector<std::uint8_t> pattern(base_line.begin(), base_line.end());
    pattern.resize(128 + pad, 0);
    std::vector<std::uint8_t> data(65536);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = pattern[i % pattern.size()];
    ASSERT_EQ(data[11111], line.at(1)) << "pad " << pad;
    auto chunks = chunk_buffer(data, options);
    ASSERT_TRUE(chunks.ok());
    EXPECT_EQ(chunk_ends(*chunks), std::vector<std::uint64_t>(line.begin() + 2, line.end()))
        << "pad " << pad;
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, XetVectors, ::testing::ValuesIn(usable_kernels()),
                         [](const auto& param_info) { return param_info.param; });

TEST(CasyncVectors, DesyncLargeFileWithChunkIds) {
  const auto data = test::read_file(test::testdata_path("cdc/desync_chunker.input"));
  ASSERT_EQ(data.size(), 1048576U);
  std::ifstream file(test::testdata_path("cdc/casync_expected.txt"));
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::string>> expected;
  std::string line;
  ChunkerOptions options = default_chunker_options(ChunkAlgorithm::kCasync);
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    if (line[0] == '[') {
      std::string name;
      fields.ignore(1);
      fields >> name >> options.min_size >> options.avg_size >> options.max_size;
      EXPECT_EQ(name, "casync");
      continue;
    }
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
    std::string id;
    fields >> offset >> length >> id;
    expected.emplace_back(offset, length, id);
  }
  ASSERT_EQ(expected.size(), 20U);
  auto chunks = chunk_buffer(data, options);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const Chunk& chunk = (*chunks)[i];
    EXPECT_EQ(chunk.offset, std::get<0>(expected[i])) << i;
    EXPECT_EQ(chunk.length, std::get<1>(expected[i])) << i;
    EXPECT_EQ(casync_chunk_id(ByteSpan(data).subspan(chunk.offset, chunk.length)),
              std::get<2>(expected[i]))
        << i;
  }
}

// casync's chunking written straight from shared/specs/chunking.md §4.2 (window recomputed per
// position, `%` for the test): the oracle for sizes the reference file does not cover.
std::vector<std::uint64_t> naive_casync_ends(const std::vector<std::uint8_t>& data,
                                             std::size_t min_size, std::uint32_t avg_size,
                                             std::size_t max_size) {
  const auto discriminator = static_cast<std::uint32_t>(static_cast<double>(avg_size) /
                                                        (-1.42888852e-7 * avg_size + 1.33237515));
  std::vector<std::uint64_t> ends;
  std::size_t start = 0;
  while (start < data.size()) {
    std::size_t length = std::min(data.size() - start, max_size);
    for (std::size_t size = min_size; size <= length; ++size) {
      std::uint32_t hash = 0;
      for (std::size_t j = 0; j < 48; ++j) {
        hash ^= std::rotl(casync::kBuzhashTable[data[start + size - 48 + j]],
                          static_cast<int>((47 - j) % 32));
      }
      if (hash % discriminator == discriminator - 1) {
        length = size;
        break;
      }
    }
    start += length;
    ends.push_back(start);
  }
  return ends;
}

TEST(CasyncVectors, MatchesNaiveFormulaForOtherSizes) {
  auto data = test::splitmix64_bytes(77, 200000);
  for (std::size_t i = 150000; i < 160000; ++i) data[i] = 0xff;  // long runs, extreme hashes
  for (const std::uint32_t avg : {256U, 1000U, 4096U, 20000U}) {
    ChunkerOptions options = default_chunker_options(ChunkAlgorithm::kCasync);
    options.min_size = avg / 4;
    options.avg_size = avg;
    options.max_size = avg * 4;
    auto chunks = chunk_buffer(data, options);
    ASSERT_TRUE(chunks.ok());
    EXPECT_EQ(chunk_ends(*chunks), naive_casync_ends(data, avg / 4, avg, avg * 4)) << avg;
  }
}

TEST(CasyncVectors, DiscriminatorOutsideFormulaIsRefused) {
  ChunkerOptions options = default_chunker_options(ChunkAlgorithm::kCasync);
  options.min_size = 1U << 20U;
  options.avg_size = 12U << 20U;
  options.max_size = 16U << 20U;
  const auto checked = validate(options);
  ASSERT_FALSE(checked.ok());
  EXPECT_NE(checked.error().message.find("discriminator"), std::string::npos);
}

std::vector<Chunk> stream_chunks(const std::vector<std::uint8_t>& data,
                                 const ChunkerOptions& options, std::mt19937_64* random,
                                 std::size_t piece) {
  auto chunker = Chunker::create(options);
  EXPECT_TRUE(chunker.ok());
  std::vector<Chunk> chunks;
  const auto sink = [&](const Chunk& chunk, ByteSpan bytes) {
    EXPECT_EQ(bytes.size(), chunk.length);
    EXPECT_EQ(0, std::memcmp(bytes.data(), data.data() + chunk.offset, chunk.length));
    chunks.push_back(chunk);
  };
  for (std::size_t at = 0; at < data.size();) {
    const std::size_t size = random != nullptr ? 1 + (*random)() % piece : piece;
    const std::size_t taken = std::min(size, data.size() - at);
    chunker->feed(ByteSpan(data).subspan(at, taken), sink);
    at += taken;
  }
  chunker->finish(sink);
  return chunks;
}

TEST(ChunkerStreamingAllAlgorithms, PiecesMatchOneShot) {
  const auto data = test::splitmix64_bytes(5, 600000);
  std::mt19937_64 random(3);
  for (const ChunkAlgorithm algorithm : {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020,
                                         ChunkAlgorithm::kXet, ChunkAlgorithm::kCasync}) {
    ChunkerOptions options = default_chunker_options(algorithm);
    options.min_size = 2048;
    options.avg_size = 8192;
    options.max_size = 32768;
    auto expected = chunk_buffer(data, options);
    ASSERT_TRUE(expected.ok());
    ASSERT_GT(expected->size(), 20U);
    const std::string name(chunk_algorithm_name(algorithm));
    for (const std::size_t piece : {std::size_t{1}, std::size_t{37}, std::size_t{255}}) {
      EXPECT_EQ(stream_chunks(data, options, nullptr, piece), *expected) << name << " " << piece;
    }
    EXPECT_EQ(stream_chunks(data, options, &random, 100000), *expected) << name << " random";
  }
}

TEST(ChunkerBoundsAllAlgorithms, ChunksRespectMinAndMax) {
  const auto data = test::splitmix64_bytes(8, 1U << 20U);
  for (const ChunkAlgorithm algorithm : {ChunkAlgorithm::kXet, ChunkAlgorithm::kCasync}) {
    ChunkerOptions options = default_chunker_options(algorithm);
    options.min_size = 1024;
    options.avg_size = 4096;
    options.max_size = 8192;
    auto chunks = chunk_buffer(data, options);
    ASSERT_TRUE(chunks.ok());
    std::uint64_t covered = 0;
    for (std::size_t i = 0; i < chunks->size(); ++i) {
      EXPECT_EQ((*chunks)[i].offset, covered);
      EXPECT_LE((*chunks)[i].length, options.max_size);
      if (i + 1 < chunks->size()) {
        EXPECT_GE((*chunks)[i].length, options.min_size);
      }
      covered += (*chunks)[i].length;
    }
    EXPECT_EQ(covered, data.size());
  }
}

TEST(XetKernels, EveryKernelMatchesScalarOnXetScans) {
  // xet's scan: top-bits mask (window 64), hash carried in from the 64 bytes before min-1.
  const auto data = test::splitmix64_bytes(21, 1U << 20U);
  std::mt19937_64 random(9);
  std::vector<std::uint64_t> gear(xet::kGearTable.begin(), xet::kGearTable.end());
  std::vector<std::uint64_t> gear_shifted(256);
  for (std::size_t i = 0; i < 256; ++i) gear_shifted[i] = gear[i] << 1U;
  for (const simd::GearKernel& kernel : simd::built_kernels()) {
    if (!simd::kernel_usable(kernel)) continue;
    for (int trial = 0; trial < 1500; ++trial) {
      simd::GearScanRequest request;
      request.data = data.data();
      request.begin = random() % 8192;
      request.center = request.begin;
      request.limit = request.begin + random() % 140000;
      const unsigned bits = 4 + static_cast<unsigned>(random() % 14);
      request.mask_small = request.mask_large = ~std::uint64_t{0} << (64U - bits);
      request.hash = random();
      request.gear = gear.data();
      request.gear_shifted = gear_shifted.data();
      const auto expected = simd::scan_gear_scalar(request);
      const auto got = kernel.scan(request);
      ASSERT_EQ(got.position, expected.position) << kernel.name << " trial " << trial;
      ASSERT_EQ(got.hash, expected.hash) << kernel.name << " trial " << trial;
    }
  }
}

}  // namespace
}  // namespace strata
