// Runtime CPU feature detection for kernel dispatch (cpuid plus OS support of the register state,
// as reported by the compiler's __builtin_cpu_supports).
#pragma once

namespace strata::simd {

// Bit set of CpuFeature flags (simd/gear_scan.h) that this CPU and OS support.
unsigned detect_cpu_features() noexcept;

}  // namespace strata::simd
