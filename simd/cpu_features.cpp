// Detects the CPU features the kernels need. __builtin_cpu_supports consults cpuid and XCR0, so a
// feature counts only when the OS also saves its registers; SHA is read from cpuid directly (see
// has_sha_extensions). Non-x86 builds report none.
#include "simd/cpu_features.h"

#include "simd/gear_scan.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace strata::simd {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// CPUID leaf 7, sub-leaf 0, EBX bit 29 (Intel SDM vol. 2A, CPUID): the SHA extensions. Asked
// directly because not every compiler's __builtin_cpu_supports knows "sha"; they work on XMM
// registers, whose state every x86-64 OS saves.
bool has_sha_extensions() noexcept {
  unsigned eax = 0;
  unsigned ebx = 0;
  unsigned ecx = 0;
  unsigned edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ebx & (1U << 29U)) != 0U;
}
#endif

}  // namespace

unsigned detect_cpu_features() noexcept {
  unsigned features = 0;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) features |= kCpuAvx2;
  if (__builtin_cpu_supports("bmi2")) features |= kCpuBmi2;
  if (__builtin_cpu_supports("avx512f")) features |= kCpuAvx512F;
  if (__builtin_cpu_supports("avx512bw")) features |= kCpuAvx512Bw;
  if (__builtin_cpu_supports("avx512vbmi")) features |= kCpuAvx512Vbmi;
  if (has_sha_extensions()) features |= kCpuSha;
  if (__builtin_cpu_supports("sse4.1")) features |= kCpuSse41;
  if (__builtin_cpu_supports("avx512vl")) features |= kCpuAvx512Vl;
#endif
  return features;
}

}  // namespace strata::simd
