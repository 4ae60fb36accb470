// Detects the CPU features the kernels need. __builtin_cpu_supports consults cpuid and XCR0, so a
// feature counts only when the OS also saves its registers. Non-x86 builds report none.
#include "simd/cpu_features.h"

#include "simd/gear_scan.h"

namespace strata::simd {

unsigned detect_cpu_features() noexcept {
  unsigned features = 0;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) features |= kCpuAvx2;
  if (__builtin_cpu_supports("bmi2")) features |= kCpuBmi2;
  if (__builtin_cpu_supports("avx512f")) features |= kCpuAvx512F;
  if (__builtin_cpu_supports("avx512bw")) features |= kCpuAvx512Bw;
  if (__builtin_cpu_supports("avx512vbmi")) features |= kCpuAvx512Vbmi;
#endif
  return features;
}

}  // namespace strata::simd
