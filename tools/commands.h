// Registration of the tool's subcommands on the CLI11 application. Each command sets `exit_code`
// when it runs; main() returns it.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "strata/registry.h"

namespace strata::tool {

void register_chunk_command(CLI::App& app, int& exit_code);
void register_kernels_command(CLI::App& app, int& exit_code);
// ingest, export, ls, stats, verify, gc
void register_store_commands(CLI::App& app, int& exit_code);
void register_build_command(CLI::App& app, int& exit_code);
void register_inspect_command(CLI::App& app, int& exit_code);
void register_unpack_command(CLI::App& app, int& exit_code);
void register_convert_command(CLI::App& app, int& exit_code);
// pull-plan, pull
void register_pull_commands(CLI::App& app, int& exit_code);
// `strata pull --from LAYOUT:TAG`: a lazy pull from a local layout (the `pull` front end is shared
// with the registry pull in cmd_registry_pull.cpp).
int run_layout_pull(const std::string& source, const std::string& store, std::uint64_t gap,
                    std::size_t max_ranges, bool json);

// Registry transport (tools/cmd_push.cpp, tools/cmd_registry_pull.cpp): `push` and `pull`.
struct RegistryFlags {
  bool insecure = false;
  bool tls_verify = true;
  std::string creds;
  unsigned jobs = 4;
  std::uint64_t chunk_bytes = 0;
  bool json = false;
};
void add_registry_flags(CLI::App& command, RegistryFlags& flags);
// A client for `registry_host`: --creds, else the first auth.json naming the host.
Result<registry::RegistryClient> open_registry_client(const RegistryFlags& flags,
                                                      const std::string& registry_host);
struct RegistryPullOptions {
  std::string reference;
  std::string store;
  std::string layout;
  std::string unpack;  // --unpack DIR: the rootfs, written as layers land
  std::string tag;
  std::string os = "linux";
  std::string architecture = "amd64";
  bool whole_layers = false;  // no partial pull of chunked layers
  bool no_deltas = false;     // ignore the image's delta referrer (docs/DELTA.md)
  RegistryFlags flags;
};
int run_registry_pull(const RegistryPullOptions& options);
void register_push_command(CLI::App& app, int& exit_code);
// Registers `push` and `pull REGISTRY/REPO:TAG`.
void register_registry_commands(CLI::App& app, int& exit_code);
void register_model_commands(CLI::App& app, int& exit_code);

}  // namespace strata::tool
