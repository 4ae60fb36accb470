// The dispatch table of byte-grouping kernels (simd/byte_group_kernel.h): names, required CPU
// features, and the process-wide active choice (STRATA_BYTE_GROUP_KERNEL=<name> forces one, else
// the first usable entry of the table, which is ordered by measured speed).
#pragma once

#include <span>
#include <string_view>

#include "simd/byte_group_kernel.h"

namespace strata::simd {

// Every byte-grouping kernel compiled into this build, in order of preference.
std::span<const ByteGroupKernel> built_byte_group_kernels() noexcept;

const ByteGroupKernel* find_byte_group_kernel(std::string_view name) noexcept;
bool byte_group_kernel_usable(const ByteGroupKernel& kernel) noexcept;

// The kernel a process starts with when STRATA_BYTE_GROUP_KERNEL holds `forced` (nullptr or ""
// when unset): the named kernel when it is built and usable, else the first usable one.
const ByteGroupKernel& choose_byte_group_kernel(const char* forced) noexcept;

// The kernel in use, chosen on first call (honouring STRATA_BYTE_GROUP_KERNEL when it names a
// usable kernel).
const ByteGroupKernel& active_byte_group_kernel() noexcept;

// Makes `kernel` active (the caller has checked byte_group_kernel_usable).
void set_active_byte_group_kernel(const ByteGroupKernel& kernel) noexcept;

}  // namespace strata::simd
