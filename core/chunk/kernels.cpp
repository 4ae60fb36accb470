// Public view of the SIMD dispatch table (include/strata/kernels.h over simd/dispatch.h).
#include "strata/kernels.h"

#include <cstdlib>
#include <string>

#include "simd/dispatch.h"

namespace strata {
namespace {

std::string describe_features(unsigned features) {
  std::string text;
  const auto add = [&text](const char* name) {
    if (!text.empty()) text += ' ';
    text += name;
  };
  if ((features & simd::kCpuAvx2) != 0U) add("avx2");
  if ((features & simd::kCpuBmi2) != 0U) add("bmi2");
  if ((features & simd::kCpuAvx512F) != 0U) add("avx512f");
  if ((features & simd::kCpuAvx512Bw) != 0U) add("avx512bw");
  if ((features & simd::kCpuAvx512Vbmi) != 0U) add("avx512vbmi");
  return text;
}

}  // namespace

std::vector<KernelInfo> list_kernels() {
  const simd::GearKernel& active = simd::active_kernel();
  const simd::GearKernel& fastest = simd::measured_fastest();
  const auto built = simd::built_kernels();
  const auto rates = simd::measured_rates();
  std::vector<KernelInfo> kernels;
  for (std::size_t k = 0; k < built.size(); ++k) {
    const simd::GearKernel& kernel = built[k];
    kernels.push_back(KernelInfo{kernel.name, describe_features(kernel.required_features),
                                 simd::kernel_usable(kernel), &kernel == &active,
                                 k < rates.size() ? rates[k] : 0.0, &kernel == &fastest});
  }
  return kernels;
}

std::string_view active_kernel_choice() {
  switch (simd::active_choice()) {
    case simd::Choice::kMeasured: return "measured";
    case simd::Choice::kEnvironment: return "STRATA_KERNEL";
    case simd::Choice::kSelected: return "select_kernel";
  }
  return "measured";
}

std::string_view active_kernel_name() {
  return simd::active_kernel().name;
}

Result<void> select_kernel(std::string_view name) {
  const simd::GearKernel* kernel = simd::find_kernel(name);
  if (kernel == nullptr) {
    return make_error(ErrorCode::kNotFound,
                      "no SIMD kernel named '" + std::string(name) + "' is built in");
  }
  if (!simd::kernel_usable(*kernel)) {
    return make_error(ErrorCode::kUnsupported,
                      "kernel '" + std::string(name) + "' needs CPU features this machine lacks (" +
                          describe_features(kernel->required_features) + ")");
  }
  simd::set_active_kernel(*kernel);
  return {};
}

Result<void> check_kernel_override() {
  // Without an override there is nothing to check, and the default is not measured here: a
  // command that never chunks (a pull, an export) never pays for the measurement.
  const char* forced = std::getenv("STRATA_KERNEL");
  if (forced == nullptr || *forced == '\0') return {};
  const std::string name(simd::override_name());
  switch (simd::override_status()) {
    case simd::OverrideStatus::kNone:
    case simd::OverrideStatus::kHonoured: return {};
    case simd::OverrideStatus::kUnknownName:
      return make_error(ErrorCode::kNotFound,
                        "STRATA_KERNEL=" + name + " names no built kernel (see 'strata kernels')");
    case simd::OverrideStatus::kNotUsable:
      return make_error(ErrorCode::kUnsupported,
                        "STRATA_KERNEL=" + name + " needs CPU features this machine lacks");
  }
  return {};
}

}  // namespace strata
