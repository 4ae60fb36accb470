// Kernel dispatch: the scalar reference is always built and usable, exactly one kernel is active,
// select_kernel() switches and refuses unknown names, and every usable kernel gives the scalar
// reference's positions and hashes on random data for both scan forms.
#include <gtest/gtest.h>

#include <random>

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

}  // namespace
}  // namespace strata
