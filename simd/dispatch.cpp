// The kernel table and the process-wide choice. Modelled on simdjson's implementation list: a
// constant table in preference order, a check of each entry against the detected CPU, and an
// environment override (STRATA_KERNEL=<name>). The default is the first usable entry, so the table
// order encodes what measurement found fastest on each CPU class (see bench/bench_chunker.cpp).
#include "simd/dispatch.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <string>

#include "simd/cpu_features.h"

namespace strata::simd {
namespace {

// Preference order, from bench/bench_chunker.cpp on AMD Zen 4 (EPYC, 2 vCPUs; default sizes,
// whole chunker, ratio to scalar over warm/cold/file data): fastcdc2020 interleaved 0.81-1.02x,
// avx512 0.80-0.82x, avx2 0.30-0.49x; fastcdc2016 interleaved 1.00-1.27x; xet interleaved
// 1.09-1.34x. The strip kernels pay a warm-up per strip and the work past a hit for every chunk,
// which eats most of their raw-scan gain, so the plain scalar loop stays the default here, as borg
// found (shared/specs/chunking.md §3.3).
constexpr std::array kKernels = {
    GearKernel{"scalar", 0U, &scan_gear_scalar, &scan_gear_pairs_scalar},
    GearKernel{"interleaved", 0U, &scan_gear_interleaved, &scan_gear_pairs_interleaved},
    GearKernel{"avx512", kCpuAvx512F | kCpuAvx512Bw | kCpuAvx512Vbmi, &scan_gear_avx512,
               &scan_gear_pairs_avx512},
    GearKernel{"avx2", kCpuAvx2, &scan_gear_avx2, &scan_gear_pairs_avx2},
};

struct Selection {
  std::atomic<const GearKernel*> active{nullptr};
  OverrideStatus status = OverrideStatus::kNone;
  std::string requested;
};

Selection& selection() noexcept {
  static Selection instance;
  return instance;
}

const GearKernel* choose_default() noexcept {
  for (const GearKernel& kernel : kKernels) {
    if (kernel_usable(kernel)) return &kernel;
  }
  return kKernels.data();  // scalar needs nothing
}

const GearKernel* initial_choice() noexcept {
  Selection& state = selection();
  const char* forced = std::getenv("STRATA_KERNEL");
  if (forced == nullptr || *forced == '\0') return choose_default();
  state.requested = forced;
  const GearKernel* kernel = find_kernel(state.requested);
  if (kernel == nullptr) {
    state.status = OverrideStatus::kUnknownName;
    return choose_default();
  }
  if (!kernel_usable(*kernel)) {
    state.status = OverrideStatus::kNotUsable;
    return choose_default();
  }
  state.status = OverrideStatus::kHonoured;
  return kernel;
}

}  // namespace

std::span<const GearKernel> built_kernels() noexcept {
  return kKernels;
}

const GearKernel* find_kernel(std::string_view name) noexcept {
  for (const GearKernel& kernel : kKernels) {
    if (name == kernel.name) return &kernel;
  }
  return nullptr;
}

bool kernel_usable(const GearKernel& kernel) noexcept {
  static const unsigned features = detect_cpu_features();
  return (kernel.required_features & features) == kernel.required_features;
}

const GearKernel& active_kernel() noexcept {
  Selection& state = selection();
  const GearKernel* kernel = state.active.load(std::memory_order_acquire);
  if (kernel == nullptr) {
    static const GearKernel* const first = initial_choice();
    const GearKernel* expected = nullptr;
    state.active.compare_exchange_strong(expected, first, std::memory_order_acq_rel);
    kernel = state.active.load(std::memory_order_acquire);
  }
  return *kernel;
}

void set_active_kernel(const GearKernel& kernel) noexcept {
  (void)active_kernel();  // settle the initial choice first so it cannot overwrite this one
  selection().active.store(&kernel, std::memory_order_release);
}

OverrideStatus override_status() noexcept {
  (void)active_kernel();
  return selection().status;
}

std::string_view override_name() noexcept {
  (void)active_kernel();
  return selection().requested;
}

}  // namespace strata::simd
