// Entry point of the `strata` command-line tool: parses the command line with CLI11, checks the
// STRATA_KERNEL override, and dispatches to the subcommands. Library errors become one line on
// stderr and a non-zero exit code (1 for failures, 2 for usage errors).
#include <cstdio>

#include "tools/cli_support.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace strata::tool;
  CLI::App app{"strata: content-defined chunking, dedup and fast-pull OCI layers"};
  app.name("strata");
  app.set_version_flag("--version", std::string("strata ") + strata::kVersion);
  app.require_subcommand(1);
  int exit_code = kExitOk;
  register_chunk_command(app, exit_code);
  register_kernels_command(app, exit_code);
  register_store_commands(app, exit_code);
  register_build_command(app, exit_code);
  register_inspect_command(app, exit_code);
  register_unpack_command(app, exit_code);
  register_registry_commands(app, exit_code);
  register_convert_command(app, exit_code);
  register_pull_commands(app, exit_code);
  register_model_commands(app, exit_code);
  CLI::App* help_command = app.add_subcommand("help", "Show this help");
  const std::string main_help = app.help();
  help_command->callback([&main_help] { std::fputs(main_help.c_str(), stdout); });

  if (auto override_check = strata::check_kernel_override(); !override_check.ok()) {
    return report_error(override_check.error());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForVersion& version) {
    return app.exit(version);
  } catch (const CLI::ParseError& error) {
    std::fprintf(stderr, "strata: error: %s\n", error.what());
    std::fprintf(stderr, "run 'strata help' for usage\n");
    return kExitUsage;
  }
  return exit_code;
}
