// `strata unpack LAYOUT[:TAG] DIR`: verifies an image of an OCI layout and applies its layers in
// order into DIR with the OCI whiteout rules, never writing outside DIR (include/strata/unpack.h
// holds the policy: unsafe paths refused, devices skipped unless --devices, owners only as root).
// `strata unpack --store S DIGEST[,DIGEST...] DIR` does the same for layers of a chunk store.
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct UnpackCommandOptions {
  std::string reference;
  std::string directory;
  std::string store;
  bool devices = false;
  bool json = false;
};

int run_unpack(const UnpackCommandOptions& options) {
  UnpackOptions unpack_options;
  unpack_options.devices = options.devices;
  Result<UnpackReport> report = make_error(ErrorCode::kInternal, "nothing unpacked");
  if (!options.store.empty()) {
    std::vector<Digest> layers;
    std::size_t start = 0;
    while (start <= options.reference.size()) {
      std::size_t comma = options.reference.find(',', start);
      if (comma == std::string::npos) comma = options.reference.size();
      auto digest = Digest::parse(std::string_view(options.reference).substr(start, comma - start));
      if (!digest.ok()) return report_error(digest.error());
      layers.push_back(*digest);
      start = comma + 1;
    }
    StoreOptions store_options;
    auto store = ChunkStore::open(options.store, store_options);
    if (!store.ok()) return report_error(store.error());
    report = unpack_store_layers(*store, layers, options.directory, unpack_options);
  } else {
    const oci::LayoutReference reference = oci::parse_layout_reference(options.reference);
    auto layout = oci::OciLayout::open(reference.layout);
    if (!layout.ok()) return report_error(layout.error());
    report = unpack_image(*layout, reference.tag, options.directory, unpack_options);
  }
  if (!report.ok()) return report_error(report.error());
  if (options.json) {
    const nlohmann::json out = {{"layers", report->layers},
                                {"entries", report->entries},
                                {"files", report->files},
                                {"directories", report->directories},
                                {"symlinks", report->symlinks},
                                {"hard_links", report->hard_links},
                                {"whiteouts", report->whiteouts},
                                {"bytes_written", report->bytes_written},
                                {"devices_skipped", report->devices_skipped},
                                {"xattrs_skipped", report->xattrs_skipped}};
    std::cout << out.dump(2) << '\n';
    return kExitOk;
  }
  std::cout << "unpacked " << report->layers << " layers into " << options.directory << ": "
            << report->files << " files (" << format_bytes(report->bytes_written) << "), "
            << report->directories << " directories, " << report->symlinks << " symlinks, "
            << report->hard_links << " hard links, " << report->whiteouts << " whiteouts";
  if (report->devices_skipped != 0) {
    std::cout << ", " << report->devices_skipped << " devices skipped (use --devices as root)";
  }
  if (report->xattrs_skipped != 0) std::cout << ", " << report->xattrs_skipped << " xattrs skipped";
  std::cout << '\n';
  return kExitOk;
}

}  // namespace

void register_unpack_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<UnpackCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "unpack", "Apply an image's layers (whiteouts included) into a directory, safely");
  command
      ->add_option("reference", options->reference,
                   "LAYOUT:TAG (or LAYOUT with one image); with --store, DIGEST[,DIGEST...] "
                   "bottom layer first")
      ->required();
  command->add_option("--store", options->store, "Unpack layers of this chunk store");
  command->add_option("directory", options->directory, "Destination (created when missing)")
      ->required();
  command->add_flag("--devices", options->devices,
                    "Create character and block devices (needs root); skipped by default");
  command->add_flag("--json", options->json, "Machine-readable report");
  command->callback([options, &exit_code] { exit_code = run_unpack(*options); });
}

}  // namespace strata::tool
