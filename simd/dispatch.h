// The one dispatch table of gear-scan kernels: names, required CPU features, entry points, and the
// process-wide active choice (STRATA_KERNEL override, else the default for this CPU).
#pragma once

#include <span>
#include <string_view>

#include "simd/gear_scan.h"

namespace strata::simd {

// Every kernel compiled into this build, in order of preference for the default choice.
std::span<const GearKernel> built_kernels() noexcept;

// The kernel in use. Chosen on first call; cheap afterwards.
const GearKernel& active_kernel() noexcept;

// Finds a built kernel by name (nullptr when none).
const GearKernel* find_kernel(std::string_view name) noexcept;

bool kernel_usable(const GearKernel& kernel) noexcept;

// Makes `kernel` active (the caller has checked kernel_usable).
void set_active_kernel(const GearKernel& kernel) noexcept;

// What STRATA_KERNEL said, and whether it was honoured.
enum class OverrideStatus { kNone, kHonoured, kUnknownName, kNotUsable };
OverrideStatus override_status() noexcept;
std::string_view override_name() noexcept;

}  // namespace strata::simd
