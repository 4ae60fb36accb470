// The SHA-256 kernel table and the process-wide choice (simd/sha256_shani.h). Preference is by
// measurement on Sapphire Rapids: the pair kernel with σ0 on the vector ports first, then plain
// SHA-NI. Where neither is usable the active kernel is nullptr and callers use OpenSSL.
#include <array>
#include <atomic>

#include "simd/cpu_features.h"
#include "simd/gear_scan.h"
#include "simd/sha256_shani.h"

namespace strata::simd {
namespace {

#if defined(__x86_64__)
constexpr std::array kKernels = {
    Sha256Kernel{"shani_avx512", kCpuSha | kCpuSse41 | kCpuAvx512F | kCpuAvx512Vl,
                 &compress_sha256_shani, &compress_sha256_pair_shani_avx512},
    Sha256Kernel{"shani", kCpuSha | kCpuSse41, &compress_sha256_shani, &compress_sha256_pair_shani},
};
#else
constexpr std::array<Sha256Kernel, 0> kKernels = {};
#endif

const Sha256Kernel* first_usable_kernel() noexcept {
  for (const Sha256Kernel& kernel : kKernels) {
    if (sha256_kernel_usable(kernel)) return &kernel;
  }
  return nullptr;
}

std::atomic<const Sha256Kernel*>& active_slot() noexcept {
  static std::atomic<const Sha256Kernel*> slot{first_usable_kernel()};
  return slot;
}

}  // namespace

std::span<const Sha256Kernel> built_sha256_kernels() noexcept {
  return kKernels;
}

bool sha256_kernel_usable(const Sha256Kernel& kernel) noexcept {
  static const unsigned features = detect_cpu_features();
  return (kernel.required_features & ~features) == 0U;
}

const Sha256Kernel* active_sha256_kernel() noexcept {
  return active_slot().load(std::memory_order_relaxed);
}

void set_active_sha256_kernel(const Sha256Kernel* kernel) noexcept {
  active_slot().store(kernel, std::memory_order_relaxed);
}

}  // namespace strata::simd
