// `strata kernels`: the gear-scan kernels built into this binary, whether this CPU can run each,
// the rate each reached in this process's start-up probe, the probe's pick, and the active one
// (the pick unless STRATA_KERNEL forces another).
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {

void register_kernels_command(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "kernels", "List the SIMD kernels built in, usable here, their measured rates and the pick");
  command->add_flag("--json", *json, "Machine-readable output");
  command->callback([json, &exit_code] {
    const std::vector<KernelInfo> kernels = list_kernels();
    const std::string choice(active_kernel_choice());
    if (*json) {
      nlohmann::json list = nlohmann::json::array();
      for (const KernelInfo& kernel : kernels) {
        list.push_back({{"name", kernel.name},
                        {"requires", kernel.required_features},
                        {"usable", kernel.usable},
                        {"active", kernel.active},
                        {"fastest", kernel.fastest},
                        {"measured_gb_per_s", kernel.measured_bytes_per_second / 1e9}});
      }
      std::cout << nlohmann::json{{"kernels", list}, {"choice", choice}}.dump(2) << '\n';
    } else {
      std::printf("%-18s %-8s %-6s %-8s %10s  %s\n", "kernel", "cpu", "", "", "GB/s", "requires");
      for (const KernelInfo& kernel : kernels) {
        std::printf(
            "%-18s %-8s %-6s %-8s %10.2f  %s\n", kernel.name.c_str(),
            kernel.usable ? "usable" : "no-cpu", kernel.active ? "active" : "",
            kernel.fastest ? "fastest" : "", kernel.measured_bytes_per_second / 1e9,
            kernel.required_features.empty() ? "(portable)" : kernel.required_features.c_str());
      }
      std::printf(
          "active kernel chosen by: %s (rates: FastCDC v2020, default sizes, 256 KiB probe at "
          "start-up)\n",
          choice.c_str());
    }
    exit_code = kExitOk;
  });
}

}  // namespace strata::tool
