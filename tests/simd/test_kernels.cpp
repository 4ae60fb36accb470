// Kernel dispatch: the scalar reference is always built and usable, exactly one kernel is active,
// the start-up probe measures every usable kernel and picks one of them (whose chunks equal the
// scalar reference's), select_kernel() switches and refuses unknown names, and every usable kernel
// gives the scalar reference's positions and hashes on random data for both scan forms: random
// and FastCDC masks, masks topping out anywhere up to bit 63, gear tables rewritten in place,
// shifted tables built by their owner (shift_gear_tables, GearScanRequest::gear_shifts),
// any hash_in, begin/center/limit anywhere (odd ones too), data flush against a guard page on
// either side, and chunk-level cuts in [min, min+47] where the hash still carries its start.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "core/chunk/fastcdc_tables.h"
#include "simd/dispatch.h"
#include "tests/test_support.h"

namespace strata {
namespace {

TEST(Kernels, ScalarIsAlwaysThere) {
  const auto kernels = list_kernels();
  ASSERT_FALSE(kernels.empty());
  bool has_scalar = false;
  int active = 0;
  for (const KernelInfo& kernel : kernels) {
    if (kernel.name == "scalar") has_scalar = kernel.usable;
    active += kernel.active ? 1 : 0;
  }
  EXPECT_TRUE(has_scalar);
  EXPECT_EQ(active, 1);
}

TEST(Kernels, ProbeMeasuresEveryUsableKernelAndPicksOne) {
  const auto built = simd::built_kernels();
  const auto rates = simd::measured_rates();
  ASSERT_EQ(rates.size(), built.size());
  const simd::GearKernel& fastest = simd::measured_fastest();
  EXPECT_TRUE(simd::kernel_usable(fastest));
  bool in_table = false;
  for (std::size_t k = 0; k < built.size(); ++k) {
    in_table = in_table || &built[k] == &fastest;
    if (simd::kernel_usable(built[k])) {
      EXPECT_GT(rates[k], 0.0) << built[k].name;
    } else {
      EXPECT_EQ(rates[k], 0.0) << built[k].name;
    }
  }
  ASSERT_TRUE(in_table);
  int picked = 0;
  for (const KernelInfo& kernel : list_kernels()) {
    if (!kernel.fastest) continue;
    ++picked;
    EXPECT_EQ(kernel.name, fastest.name);
    EXPECT_TRUE(kernel.usable);
    for (const KernelInfo& other : list_kernels()) {
      EXPECT_LE(other.measured_bytes_per_second, kernel.measured_bytes_per_second) << other.name;
    }
  }
  EXPECT_EQ(picked, 1);
}

TEST(Kernels, PickedKernelChunksLikeScalar) {
  const auto data = test::splitmix64_bytes(41, 3U << 20U);
  const std::string picked = simd::measured_fastest().name;
  for (const ChunkAlgorithm algorithm :
       {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020, ChunkAlgorithm::kXet}) {
    for (std::uint32_t level = 0; level <= 3; ++level) {
      ChunkerOptions options = default_chunker_options(algorithm);
      if (algorithm != ChunkAlgorithm::kXet) {
        options.min_size = 2048;
        options.avg_size = 8192;
        options.max_size = 65536;
        options.level = level;
      } else if (level > 0) {
        continue;
      }
      ASSERT_TRUE(select_kernel("scalar").ok());
      const auto expected = chunk_buffer(data, options);
      ASSERT_TRUE(expected.ok());
      ASSERT_TRUE(select_kernel(picked).ok());
      const auto got = chunk_buffer(data, options);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(*got, *expected) << picked << " " << chunk_algorithm_name(algorithm) << " level "
                                 << level;
    }
  }
  ASSERT_TRUE(select_kernel(picked).ok());
}

TEST(Kernels, SelectSwitchesAndRefusesUnknown) {
  ASSERT_TRUE(select_kernel("scalar").ok());
  EXPECT_EQ(active_kernel_name(), "scalar");
  const auto unknown = select_kernel("quantum");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_NE(unknown.error().message.find("quantum"), std::string::npos);
  EXPECT_EQ(active_kernel_name(), "scalar");
}

TEST(Kernels, EveryKernelMatchesScalarReference) {
  const auto data = test::splitmix64_bytes(11, 1U << 20U);
  std::mt19937_64 random(77);
  std::vector<std::uint64_t> gear(256);
  std::vector<std::uint64_t> gear_shifted(256);
  for (auto& entry : gear) entry = random();
  for (std::size_t i = 0; i < 256; ++i) gear_shifted[i] = gear[i] << 1U;
  for (const simd::GearKernel& kernel : simd::built_kernels()) {
    if (!simd::kernel_usable(kernel)) continue;
    for (int trial = 0; trial < 2000; ++trial) {
      simd::GearScanRequest request;
      request.data = data.data();
      request.begin = random() % 4096;
      request.limit = request.begin + random() % 70000;
      request.center = request.begin + random() % 40000;
      const unsigned small_bits = 6 + static_cast<unsigned>(random() % 12);
      request.mask_small = ((std::uint64_t{1} << small_bits) - 1) << 20U;
      request.mask_large = ((std::uint64_t{1} << (small_bits - 2)) - 1) << 20U;
      request.hash = trial % 3 == 0 ? random() : 0;
      request.gear = gear.data();
      request.gear_shifted = gear_shifted.data();
      const auto expected = simd::scan_gear_scalar(request);
      const auto got = kernel.scan(request);
      ASSERT_EQ(got.position, expected.position) << kernel.name << " trial " << trial;
      ASSERT_EQ(got.hash, expected.hash) << kernel.name << " trial " << trial;
      const auto expected_pairs = simd::scan_gear_pairs_scalar(request);
      const auto got_pairs = kernel.scan_pairs(request);
      ASSERT_EQ(got_pairs.position, expected_pairs.position) << kernel.name << " trial " << trial;
      ASSERT_EQ(got_pairs.hash, expected_pairs.hash) << kernel.name << " trial " << trial;
    }
  }
}

void expect_kernel_matches(const simd::GearKernel& kernel, const simd::GearScanRequest& request,
                           const std::string& what) {
  const auto expected = simd::scan_gear_scalar(request);
  const auto got = kernel.scan(request);
  EXPECT_EQ(got.position, expected.position) << kernel.name << " " << what;
  EXPECT_EQ(got.hash, expected.hash) << kernel.name << " " << what;
  const auto expected_pairs = simd::scan_gear_pairs_scalar(request);
  const auto got_pairs = kernel.scan_pairs(request);
  EXPECT_EQ(got_pairs.position, expected_pairs.position) << kernel.name << " pairs " << what;
  EXPECT_EQ(got_pairs.hash, expected_pairs.hash) << kernel.name << " pairs " << what;
}

TEST(Kernels, EveryKernelMatchesScalarWithFastCdcMasks) {
  const auto data = test::splitmix64_bytes(12, 1U << 20U);
  std::mt19937_64 random(78);
  std::vector<std::uint64_t> gear(fastcdc::kGearTable.begin(), fastcdc::kGearTable.end());
  std::vector<std::uint64_t> gear_shifted(256);
  for (std::size_t i = 0; i < 256; ++i) gear_shifted[i] = gear[i] << 1U;
  for (const simd::GearKernel& kernel : simd::built_kernels()) {
    if (!simd::kernel_usable(kernel)) continue;
    for (int trial = 0; trial < 1500; ++trial) {
      simd::GearScanRequest request;
      request.data = data.data();
      request.begin = random() % 20000;
      request.limit = request.begin + random() % 300000;
      request.center = request.begin + random() % 100000;
      const std::size_t bits = 5 + random() % 19;
      request.mask_small = fastcdc::kMasks[bits + 2];
      request.mask_large = fastcdc::kMasks[bits];
      request.hash = trial % 2 == 0 ? random() : 0;
      request.gear = gear.data();
      request.gear_shifted = gear_shifted.data();
      expect_kernel_matches(kernel, request, "trial " + std::to_string(trial));
      if (HasFailure()) return;
    }
  }
}

// avx512_seq_gather keeps pre-shifted copies of the gear table per thread (each entry shifted
// left by up to 7) and uses them while every mask bit is below 57: a table rewritten in place,
// and masks whose top bit is just below, at or past that bound, must all match the reference.
TEST(Kernels, RewrittenTablesAndHighMaskBitsMatchScalar) {
  const auto data = test::splitmix64_bytes(13, 256U << 10U);
  std::mt19937_64 random(79);
  std::vector<std::uint64_t> gear(256);
  std::vector<std::uint64_t> gear_shifted(256);
  for (const simd::GearKernel& kernel : simd::built_kernels()) {
    if (!simd::kernel_usable(kernel)) continue;
    for (int trial = 0; trial < 400; ++trial) {
      if (trial % 4 == 0) {  // same address, new entries
        for (auto& entry : gear) entry = random();
        for (std::size_t i = 0; i < 256; ++i) gear_shifted[i] = gear[i] << 1U;
      }
      simd::GearScanRequest request;
      request.data = data.data();
      request.begin = random() % 4096;
      request.limit = request.begin + random() % 200000;
      request.center = request.begin + random() % 60000;
      const unsigned top_bits[] = {47, 55, 56, 57, 58, 63};
      const unsigned top = top_bits[random() % std::size(top_bits)];
      const unsigned bits = 8 + static_cast<unsigned>(random() % 7);
      request.mask_small = ((std::uint64_t{1} << bits) - 1) << (top + 1 - bits);
      request.mask_large = ((std::uint64_t{1} << (bits - 2)) - 1) << (top + 3 - bits);
      request.hash = random();
      request.gear = gear.data();
      request.gear_shifted = gear_shifted.data();
      expect_kernel_matches(kernel, request, "trial " + std::to_string(trial));
      if (HasFailure()) return;
    }
  }
}

// shift_gear_tables() writes table s = gear << s, table 1 being the v2020 gear_shifted.
TEST(Kernels, ShiftGearTablesHoldsEachShift) {
  std::mt19937_64 random(81);
  std::vector<std::uint64_t> gear(256);
  for (auto& entry : gear) entry = random();
  std::vector<std::uint64_t> tables(simd::kGearShiftsSize);
  simd::shift_gear_tables(gear.data(), tables.data());
  for (std::size_t shift = 0; shift < 8; ++shift) {
    for (std::size_t b = 0; b < 256; ++b) {
      ASSERT_EQ(tables[256 * shift + b], gear[b] << shift) << "shift " << shift << " byte " << b;
    }
  }
}

// The chunker hands kernels its own shifted tables (GearScanRequest::gear_shifts) so that no scan
// rebuilds or re-checks them: with them, every kernel still matches the reference, for FastCDC
// masks and for masks reaching bit 57 and above (where avx512_seq_gather cannot use them).
TEST(Kernels, OwnerBuiltGearTablesMatchScalar) {
  const auto data = test::splitmix64_bytes(14, 512U << 10U);
  std::mt19937_64 random(80);
  std::vector<std::uint64_t> gear(256);
  std::vector<std::uint64_t> tables(simd::kGearShiftsSize);
  for (const simd::GearKernel& kernel : simd::built_kernels()) {
    if (!simd::kernel_usable(kernel)) continue;
    for (int trial = 0; trial < 300; ++trial) {
      if (trial % 3 == 0) {  // same addresses, new entries: nothing may be cached across calls
        for (auto& entry : gear)
          entry = trial % 2 == 0 ? random() : fastcdc::kGearTable[entry % 256];
        simd::shift_gear_tables(gear.data(), tables.data());
      }
      simd::GearScanRequest request;
      request.data = data.data();
      request.begin = random() % 20000;
      request.limit = request.begin + random() % 300000;
      request.center = request.begin + random() % 100000;
      if (trial % 2 == 0) {
        const std::size_t bits = 5 + random() % 19;
        request.mask_small = fastcdc::kMasks[bits + 2];
        request.mask_large = fastcdc::kMasks[bits];
      } else {
        const unsigned top = 40 + static_cast<unsigned>(random() % 24);
        request.mask_small = std::uint64_t{0xFFF} << (top - 11);
        request.mask_large = std::uint64_t{0x3FF} << (top - 9);
      }
      request.hash = trial % 4 == 0 ? random() : 0;
      request.gear = tables.data();
      request.gear_shifted = tables.data() + 256;
      request.gear_shifts = tables.data();
      expect_kernel_matches(kernel, request, "trial " + std::to_string(trial));
      if (HasFailure()) return;
    }
  }
}

TEST(Kernels, NoKernelReadsOutsideItsRange) {
  // Guard pages on both sides of the data: a read before begin or at/after limit faults.
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t data_pages = 16;
  void* mapping = mmap(nullptr, (data_pages + 2) * page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapping, MAP_FAILED);
  auto* bytes = static_cast<std::uint8_t*>(mapping);
  ASSERT_EQ(0, mprotect(bytes, page, PROT_NONE));
  ASSERT_EQ(0, mprotect(bytes + (data_pages + 1) * page, page, PROT_NONE));
  std::uint8_t* const first = bytes + page;
  const std::size_t size = data_pages * page;
  const auto random_bytes = test::splitmix64_bytes(5, size);
  std::memcpy(first, random_bytes.data(), size);
  std::vector<std::uint64_t> gear(fastcdc::kGearTable.begin(), fastcdc::kGearTable.end());
  std::vector<std::uint64_t> gear_shifted(256);
  for (std::size_t i = 0; i < 256; ++i) gear_shifted[i] = gear[i] << 1U;
  for (const simd::GearKernel& kernel : simd::built_kernels()) {
    if (!simd::kernel_usable(kernel)) continue;
    for (const std::size_t tail :
         {std::size_t{1}, std::size_t{47}, std::size_t{4097}, std::size_t{20001}, size}) {
      for (const std::uint64_t mask : {fastcdc::kMasks[25], ~std::uint64_t{0} << 40U}) {
        simd::GearScanRequest request;
        request.data = first + size - tail;  // begin 0 is the first byte after the front guard
        request.begin = 0;
        request.center = tail / 3;
        request.limit = tail;
        request.mask_small = mask;
        request.mask_large = mask;
        request.gear = gear.data();
        request.gear_shifted = gear_shifted.data();
        expect_kernel_matches(kernel, request, "tail " + std::to_string(tail));
      }
    }
  }
  munmap(mapping, (data_pages + 2) * page);
}

TEST(Kernels, CutsJustAfterMinMatchScalar) {
  // With 64/256/1024 a cut often lands within 48 bytes of min, where the sequential hash started
  // at 0 covers fewer bytes than the mask sees (shared/specs/chunking.md §3.4).
  const auto data = test::splitmix64_bytes(31, 4U << 20U);
  for (const ChunkAlgorithm algorithm :
       {ChunkAlgorithm::kFastCdc2016, ChunkAlgorithm::kFastCdc2020}) {
    ChunkerOptions options;
    options.algorithm = algorithm;
    options.min_size = 64;
    options.avg_size = 256;
    options.max_size = 1024;
    ASSERT_TRUE(select_kernel("scalar").ok());
    auto expected = chunk_buffer(data, options);
    ASSERT_TRUE(expected.ok());
    std::size_t near_min = 0;
    for (const Chunk& chunk : *expected) {
      near_min += chunk.length >= 64 && chunk.length <= 64 + 47 ? 1 : 0;
    }
    EXPECT_GT(near_min, 100U);
    for (const KernelInfo& kernel : list_kernels()) {
      if (!kernel.usable) continue;
      ASSERT_TRUE(select_kernel(kernel.name).ok());
      auto chunks = chunk_buffer(data, options);
      ASSERT_TRUE(chunks.ok());
      EXPECT_EQ(*chunks, *expected) << kernel.name;
    }
  }
  ASSERT_TRUE(select_kernel(list_kernels().front().name).ok());
}

}  // namespace
}  // namespace strata
