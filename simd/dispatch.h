// The one dispatch table of gear-scan kernels: names, required CPU features, entry points, and the
// process-wide active choice (STRATA_KERNEL override, else the usable kernel measured fastest on
// this CPU once per process).
#pragma once

#include <span>
#include <string_view>

#include "simd/gear_scan.h"

namespace strata::simd {

// Every kernel compiled into this build; the scalar reference comes first.
std::span<const GearKernel> built_kernels() noexcept;

// Bytes per second each built kernel reached in this process's one-time probe (FastCDC v2020 with
// the default 16/64/256 KiB sizes over a 256 KiB buffer, best of three rounds), in
// built_kernels() order; 0 for kernels this CPU cannot run. The first call runs the probe (about a
// millisecond per usable kernel); later calls only read the result. Thread-safe.
std::span<const double> measured_rates() noexcept;

// The usable kernel with the highest measured rate (scalar when nothing could be measured).
const GearKernel& measured_fastest() noexcept;

// The kernel in use. Chosen on first call; cheap afterwards.
const GearKernel& active_kernel() noexcept;

// Finds a built kernel by name (nullptr when none).
const GearKernel* find_kernel(std::string_view name) noexcept;

bool kernel_usable(const GearKernel& kernel) noexcept;

// Makes `kernel` active (the caller has checked kernel_usable).
void set_active_kernel(const GearKernel& kernel) noexcept;

// How the active kernel was chosen: the probe's pick, STRATA_KERNEL, or set_active_kernel().
enum class Choice { kMeasured, kEnvironment, kSelected };
Choice active_choice() noexcept;

// What STRATA_KERNEL said, and whether it was honoured.
enum class OverrideStatus { kNone, kHonoured, kUnknownName, kNotUsable };
OverrideStatus override_status() noexcept;
std::string_view override_name() noexcept;

}  // namespace strata::simd
