// The byte-grouping kernel table and the process-wide choice, kept apart from the gear-scan table
// (simd/dispatch.cpp) so the two kernel families evolve independently. Preference order is by
// measurement on Zen 4 (bench/bench_models.cpp): AVX-512 VBMI, then AVX2, then scalar.
#include "simd/byte_group_dispatch.h"

#include <array>
#include <atomic>
#include <cstdlib>

#include "simd/cpu_features.h"
#include "simd/gear_scan.h"

namespace strata::simd {
namespace {

constexpr std::array kKernels = {
#if defined(__x86_64__)
    ByteGroupKernel{"avx512vbmi", kCpuAvx512F | kCpuAvx512Bw | kCpuAvx512Vbmi,
                    &split_planes2_avx512, &merge_planes2_avx512, &split_planes4_avx512,
                    &merge_planes4_avx512},
    ByteGroupKernel{"avx2", kCpuAvx2, &split_planes2_avx2, &merge_planes2_avx2, &split_planes4_avx2,
                    &merge_planes4_avx2},
#endif
    ByteGroupKernel{"scalar", 0U, &split_planes2_scalar, &merge_planes2_scalar,
                    &split_planes4_scalar, &merge_planes4_scalar},
};

std::atomic<const ByteGroupKernel*>& active_slot() noexcept {
  static std::atomic<const ByteGroupKernel*> slot{
      &choose_byte_group_kernel(std::getenv("STRATA_BYTE_GROUP_KERNEL"))};
  return slot;
}

}  // namespace

const ByteGroupKernel& choose_byte_group_kernel(const char* forced) noexcept {
  if (forced != nullptr && *forced != '\0') {
    const ByteGroupKernel* kernel = find_byte_group_kernel(forced);
    if (kernel != nullptr && byte_group_kernel_usable(*kernel)) return *kernel;
  }
  for (const ByteGroupKernel& kernel : kKernels) {
    if (byte_group_kernel_usable(kernel)) return kernel;
  }
  return kKernels.back();  // scalar needs nothing
}

std::span<const ByteGroupKernel> built_byte_group_kernels() noexcept {
  return kKernels;
}

const ByteGroupKernel* find_byte_group_kernel(std::string_view name) noexcept {
  for (const ByteGroupKernel& kernel : kKernels) {
    if (name == kernel.name) return &kernel;
  }
  return nullptr;
}

bool byte_group_kernel_usable(const ByteGroupKernel& kernel) noexcept {
  static const unsigned features = detect_cpu_features();
  return (kernel.required_features & features) == kernel.required_features;
}

const ByteGroupKernel& active_byte_group_kernel() noexcept {
  return *active_slot().load(std::memory_order_acquire);
}

void set_active_byte_group_kernel(const ByteGroupKernel& kernel) noexcept {
  active_slot().store(&kernel, std::memory_order_release);
}

}  // namespace strata::simd
