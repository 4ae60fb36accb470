// `strata inspect LAYOUT[:TAG]`: the manifest of an image in an OCI layout, with its config
// (os/architecture) and every layer's format, digest, size and diff_id; --json for machines and
// --verify to also decompress every layer and check it against its diff_id. All JSON blobs are
// checked against their descriptors' digests and sizes while reading.
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct InspectCommandOptions {
  std::string reference;
  bool json = false;
  bool verify = false;
};

std::string_view format_name(std::string_view media_type) {
  auto compression = oci::layer_compression_of(media_type);
  if (!compression.ok()) return "unknown";
  switch (*compression) {
    case oci::LayerCompression::kNone: return "tar";
    case oci::LayerCompression::kGzip: return "gzip";
    case oci::LayerCompression::kZstd: return "zstd";
  }
  return "unknown";
}

int run_inspect(const InspectCommandOptions& options) {
  const oci::LayoutReference reference = oci::parse_layout_reference(options.reference);
  auto layout = oci::OciLayout::open(reference.layout);
  if (!layout.ok()) return report_error(layout.error());
  auto image = layout->load_image(reference.tag);
  if (!image.ok()) return report_error(image.error());
  if (options.verify) {
    if (auto verified = layout->verify_image(reference.tag); !verified.ok()) {
      return report_error(verified.error());
    }
  }
  const oci::Manifest& manifest = image->manifest;
  std::uint64_t total = 0;
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < manifest.layers.size(); ++i) {
    const oci::Descriptor& layer = manifest.layers[i];
    total += layer.size;
    nlohmann::json entry = {{"index", i},
                            {"mediaType", layer.media_type},
                            {"format", std::string(format_name(layer.media_type))},
                            {"digest", layer.digest.to_string()},
                            {"size", layer.size},
                            {"diff_id", image->config.diff_ids[i].to_string()}};
    if (!layer.annotations.empty()) entry["annotations"] = layer.annotations;
    layers.push_back(std::move(entry));
  }
  if (options.json) {
    const nlohmann::json report = {{"reference", options.reference},
                                   {"manifest",
                                    {{"digest", image->manifest_descriptor.digest.to_string()},
                                     {"size", image->manifest_descriptor.size},
                                     {"mediaType", image->manifest_descriptor.media_type}}},
                                   {"config",
                                    {{"digest", manifest.config.digest.to_string()},
                                     {"size", manifest.config.size},
                                     {"mediaType", manifest.config.media_type}}},
                                   {"os", image->config.os},
                                   {"architecture", image->config.architecture},
                                   {"created", image->config.created},
                                   {"layers", std::move(layers)},
                                   {"total_layer_size", total},
                                   {"verified", options.verify}};
    std::cout << report.dump(2) << '\n';
    return kExitOk;
  }
  std::cout << "manifest " << image->manifest_descriptor.digest.to_string() << " ("
            << image->manifest_descriptor.size << " B)\n"
            << "config   " << manifest.config.digest.to_string() << " (" << image->config.os << "/"
            << image->config.architecture << ")\n";
  for (const auto& layer : layers) {
    std::cout << "layer " << layer["index"].get<std::size_t>() << "  "
              << layer["format"].get<std::string>() << "  " << layer["digest"].get<std::string>()
              << "  " << format_bytes(layer["size"].get<std::uint64_t>()) << "  diff_id "
              << layer["diff_id"].get<std::string>() << '\n';
  }
  std::cout << manifest.layers.size() << " layers, " << format_bytes(total)
            << (options.verify ? ", every layer verified against its diff_id" : "") << '\n';
  return kExitOk;
}

}  // namespace

void register_inspect_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<InspectCommandOptions>();
  CLI::App* command =
      app.add_subcommand("inspect", "Show an image of an OCI layout: manifest, layers, diff_ids");
  command->add_option("reference", options->reference, "LAYOUT:TAG (or LAYOUT with one image)")
      ->required();
  command->add_flag("--json", options->json, "Machine-readable output");
  command->add_flag("--verify", options->verify,
                    "Decompress every layer and check it against its diff_id");
  command->callback([options, &exit_code] { exit_code = run_inspect(*options); });
}

}  // namespace strata::tool
