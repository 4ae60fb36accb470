// Registration of the tool's subcommands on the CLI11 application. Each command sets `exit_code`
// when it runs; main() returns it.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::tool {

void register_chunk_command(CLI::App& app, int& exit_code);
void register_kernels_command(CLI::App& app, int& exit_code);
// ingest, export, ls, stats, verify, gc
void register_store_commands(CLI::App& app, int& exit_code);
void register_build_command(CLI::App& app, int& exit_code);
void register_inspect_command(CLI::App& app, int& exit_code);
void register_convert_command(CLI::App& app, int& exit_code);
// pull-plan, pull
void register_pull_commands(CLI::App& app, int& exit_code);

}  // namespace strata::tool
