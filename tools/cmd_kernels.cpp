// `strata kernels`: the gear-scan kernels built into this binary, whether this CPU can run each,
// and which one is active (STRATA_KERNEL forces one).
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {

void register_kernels_command(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<bool>(false);
  CLI::App* command =
      app.add_subcommand("kernels", "List the SIMD kernels built in, usable here, and active");
  command->add_flag("--json", *json, "Machine-readable output");
  command->callback([json, &exit_code] {
    const std::vector<KernelInfo> kernels = list_kernels();
    if (*json) {
      nlohmann::json list = nlohmann::json::array();
      for (const KernelInfo& kernel : kernels) {
        list.push_back({{"name", kernel.name},
                        {"requires", kernel.required_features},
                        {"usable", kernel.usable},
                        {"active", kernel.active}});
      }
      std::cout << nlohmann::json{{"kernels", list}}.dump(2) << '\n';
    } else {
      for (const KernelInfo& kernel : kernels) {
        std::printf(
            "%-12s %-8s %-6s %s\n", kernel.name.c_str(), kernel.usable ? "usable" : "no-cpu",
            kernel.active ? "active" : "",
            kernel.required_features.empty() ? "(portable)" : kernel.required_features.c_str());
      }
    }
    exit_code = kExitOk;
  });
}

}  // namespace strata::tool
