// `strata inspect LAYOUT[:TAG]`: the manifest of an image in an OCI layout, with its config
// (os/architecture) and every layer's format, digest, size and diff_id; --json for machines and
// --verify to also decompress every layer and check it against its diff_id. A tag naming an image
// index shows the tree below it (images by platform, nested indexes, artifacts; --json nests the
// same way) and --platform picks one image of it. All JSON blobs are checked against their
// descriptors' digests and sizes while reading (shared/specs/layer-formats.md §3).
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct InspectCommandOptions {
  std::string reference;
  bool json = false;
  bool verify = false;
  std::string platform;
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

nlohmann::json descriptor_json(const oci::Descriptor& descriptor) {
  return {{"digest", descriptor.digest.to_string()},
          {"size", descriptor.size},
          {"mediaType", descriptor.media_type}};
}

nlohmann::json platform_json(const oci::Platform& platform) {
  nlohmann::json json = {{"os", platform.os}, {"architecture", platform.architecture}};
  if (!platform.variant.empty()) json["variant"] = platform.variant;
  if (!platform.os_version.empty()) json["os.version"] = platform.os_version;
  if (!platform.os_features.empty()) json["os.features"] = platform.os_features;
  return json;
}

// The report of one image: its manifest, config and layers (what inspect has always printed).
nlohmann::json image_json(const oci::Image& image) {
  const oci::Manifest& manifest = image.manifest;
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
                            {"diff_id", image.config.diff_ids[i].to_string()}};
    if (!layer.annotations.empty()) entry["annotations"] = layer.annotations;
    layers.push_back(std::move(entry));
  }
  return {{"manifest", descriptor_json(image.manifest_descriptor)},
          {"config", descriptor_json(manifest.config)},
          {"os", image.config.os},
          {"architecture", image.config.architecture},
          {"created", image.config.created},
          {"layers", std::move(layers)},
          {"total_layer_size", total}};
}

void print_image(const nlohmann::json& image, const std::string& indent) {
  std::cout << indent << "manifest " << image["manifest"]["digest"].get<std::string>() << " ("
            << image["manifest"]["size"].get<std::uint64_t>() << " B)\n"
            << indent << "config   " << image["config"]["digest"].get<std::string>() << " ("
            << image["os"].get<std::string>() << "/" << image["architecture"].get<std::string>()
            << ")\n";
  for (const auto& layer : image["layers"]) {
    std::cout << indent << "layer " << layer["index"].get<std::size_t>() << "  "
              << layer["format"].get<std::string>() << "  " << layer["digest"].get<std::string>()
              << "  " << format_bytes(layer["size"].get<std::uint64_t>()) << "  diff_id "
              << layer["diff_id"].get<std::string>() << '\n';
  }
}

// One node of an index tree, nested as the indexes are: images carry image_json()'s fields.
nlohmann::json tree_json(const oci::ImageTree& node) {
  nlohmann::json json = descriptor_json(node.descriptor);
  if (node.descriptor.platform) json["platform"] = platform_json(*node.descriptor.platform);
  if (!node.descriptor.annotations.empty()) json["annotations"] = node.descriptor.annotations;
  if (!node.descriptor.artifact_type.empty()) json["artifactType"] = node.descriptor.artifact_type;
  switch (node.kind) {
    case oci::ImageTreeKind::kImage:
      json["kind"] = "image";
      json.update(image_json(*node.image));
      break;
    case oci::ImageTreeKind::kArtifact:
      json["kind"] = "artifact";
      json["config"] = descriptor_json(node.artifact->config);
      if (!node.artifact->artifact_type.empty()) {
        json["artifactType"] = node.artifact->artifact_type;
      }
      json["layers"] = nlohmann::json::array();
      for (const oci::Descriptor& layer : node.artifact->layers) {
        json["layers"].push_back(descriptor_json(layer));
      }
      break;
    case oci::ImageTreeKind::kIndex:
      json["kind"] = "index";
      json["manifests"] = nlohmann::json::array();
      for (const oci::ImageTree& child : node.children)
        json["manifests"].push_back(tree_json(child));
      break;
  }
  return json;
}

void print_tree(const oci::ImageTree& node, const nlohmann::json& json, const std::string& indent) {
  const std::string heading = json["digest"].get<std::string>() + " (" +
                              std::to_string(json["size"].get<std::uint64_t>()) + " B)";
  switch (node.kind) {
    case oci::ImageTreeKind::kImage:
      std::cout << indent << "image " << oci::platform_name(oci::platform_of(node)) << '\n';
      print_image(json, indent + "  ");
      break;
    case oci::ImageTreeKind::kArtifact:
      std::cout << indent << "artifact " << heading << "  config "
                << node.artifact->config.media_type << "  (not an image: copied as is)\n";
      break;
    case oci::ImageTreeKind::kIndex:
      std::cout << indent << "index " << heading << "  " << node.descriptor.media_type << '\n';
      for (std::size_t i = 0; i < node.children.size(); ++i) {
        print_tree(node.children[i], json["manifests"][i], indent + "  ");
      }
      break;
  }
}

void collect_images(const oci::ImageTree& node, std::vector<const oci::Image*>& images) {
  if (node.kind == oci::ImageTreeKind::kImage) images.push_back(&*node.image);
  for (const oci::ImageTree& child : node.children) collect_images(child, images);
}

int run_inspect(const InspectCommandOptions& options) {
  const oci::LayoutReference reference = oci::parse_layout_reference(options.reference);
  auto layout = oci::OciLayout::open(reference.layout);
  if (!layout.ok()) return report_error(layout.error());
  auto tree = layout->load_tree(reference.tag);
  if (!tree.ok()) return report_error(tree.error());
  const oci::ImageTree* node = &*tree;
  if (!options.platform.empty()) {
    auto wanted = oci::parse_platform_name(options.platform);
    if (!wanted.ok()) return report_error(wanted.error());
    auto selected = oci::select_platform(*tree, *wanted);
    if (!selected.ok()) return report_error(selected.error());
    node = *selected;
  }
  std::vector<const oci::Image*> images;
  collect_images(*node, images);
  if (options.verify) {
    for (const oci::Image* image : images) {
      if (auto verified = layout->verify_layers(*image); !verified.ok()) {
        return report_error(verified.error());
      }
    }
  }
  if (node->kind == oci::ImageTreeKind::kImage) {
    nlohmann::json report = image_json(*node->image);
    if (options.json) {
      report["reference"] = options.reference;
      report["verified"] = options.verify;
      std::cout << report.dump(2) << '\n';
      return kExitOk;
    }
    print_image(report, "");
    std::cout << report["layers"].size() << " layers, "
              << format_bytes(report["total_layer_size"].get<std::uint64_t>())
              << (options.verify ? ", every layer verified against its diff_id" : "") << '\n';
    return kExitOk;
  }
  nlohmann::json report = tree_json(*node);
  if (options.json) {
    report["reference"] = options.reference;
    report["verified"] = options.verify;
    std::cout << report.dump(2) << '\n';
    return kExitOk;
  }
  print_tree(*node, report, "");
  std::cout << images.size() << " images"
            << (options.verify ? ", every layer verified against its diff_id" : "") << '\n';
  return kExitOk;
}

}  // namespace

void register_inspect_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<InspectCommandOptions>();
  CLI::App* command =
      app.add_subcommand("inspect",
                         "Show an image of an OCI layout: manifest, layers, diff_ids (an index: "
                         "the tree of its images, nested indexes and artifacts)");
  command->add_option("reference", options->reference, "LAYOUT:TAG (or LAYOUT with one image)")
      ->required();
  command->add_option("--platform", options->platform,
                      "os/arch[/variant]: when the tag names an index, show only that image");
  command->add_flag("--json", options->json, "Machine-readable output");
  command->add_flag("--verify", options->verify,
                    "Decompress every layer and check it against its diff_id");
  command->callback([options, &exit_code] { exit_code = run_inspect(*options); });
}

}  // namespace strata::tool
