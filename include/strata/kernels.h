// Which SIMD kernels this build holds, which the running CPU can use, and which one is active.
// The active kernel is chosen once per process: the STRATA_KERNEL environment variable forces one
// by name; otherwise every usable kernel is timed on a small buffer (a few milliseconds, on first
// use) and the fastest is kept. Every kernel gives identical chunks, so the choice affects speed
// only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "strata/result.h"

namespace strata {

struct KernelInfo {
  std::string name;               // "scalar", "avx2", ...
  std::string required_features;  // "" for portable kernels, e.g. "avx2" or "avx512f avx512bw"
  bool usable = false;            // the running CPU has every required feature
  bool active = false;
  // Bytes per second in this process's one-time probe (0 when not usable); the probe runs on the
  // first list_kernels() call or, without STRATA_KERNEL, on first use of any gear chunker.
  double measured_bytes_per_second = 0;
  bool fastest = false;  // the probe's pick: active unless STRATA_KERNEL or select_kernel() chose
};

[[nodiscard]] std::vector<KernelInfo> list_kernels();
[[nodiscard]] std::string_view active_kernel_name();

// How the active kernel was chosen: "measured", "STRATA_KERNEL" or "select_kernel".
[[nodiscard]] std::string_view active_kernel_choice();

// Makes `name` the active kernel for this process. Fails (kNotFound / kUnsupported) with a
// message naming the kernel when it is not built or the CPU lacks a feature it needs.
Result<void> select_kernel(std::string_view name);

// The problem with STRATA_KERNEL, if it named a kernel that cannot run (the default is used then).
// Tools call this at start-up to turn a bad override into a clear message.
Result<void> check_kernel_override();

}  // namespace strata
