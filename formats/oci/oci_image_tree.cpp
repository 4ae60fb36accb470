// What an OCI tag names, read to the bottom: an image manifest and its config, or an image index
// (Docker: manifest list) whose entries are images, artifacts (manifests whose config is not an
// image config: attestations, signatures) or further indexes (shared/specs/layer-formats.md §3;
// image-spec image-index.md, manifest.md). Indexes are content-addressed, so a real cycle needs a
// SHA-256 fixed point; the walk still refuses one, and bounds depth and the blobs read in all,
// because the fetcher is the caller's and a diamond repeated at every level grows exponentially.
#include <algorithm>

#include "strata/oci.h"

namespace strata::oci {
namespace {

Error in_blob(const Descriptor& descriptor, const Error& error) {
  return make_error(error.code, "blob " + descriptor.digest.to_string() + ": " + error.message);
}

// Fetches and parses a manifest; a mediaType inside must agree with the descriptor's.
Result<Manifest> read_manifest(const Descriptor& descriptor, const BlobFetcher& fetch) {
  auto bytes = fetch(descriptor);
  if (!bytes.ok()) return std::move(bytes).error();
  auto manifest = parse_manifest(*bytes);
  if (!manifest.ok()) return in_blob(descriptor, manifest.error());
  if (!manifest->media_type.empty() && manifest->media_type != descriptor.media_type) {
    return make_error(ErrorCode::kCorruptInput,
                      "blob " + descriptor.digest.to_string() + " is a '" + manifest->media_type +
                          "' but its descriptor says '" + descriptor.media_type + "'");
  }
  return manifest;
}

Result<Image> read_image_config(const Descriptor& descriptor, Manifest manifest,
                                const BlobFetcher& fetch) {
  Image image;
  image.manifest_descriptor = descriptor;
  image.manifest = std::move(manifest);
  const Descriptor& config_descriptor = image.manifest.config;
  if (!is_image_config_media_type(config_descriptor.media_type)) {
    return make_error(ErrorCode::kUnsupported,
                      "config blob " + config_descriptor.digest.to_string() +
                          " has unknown media type '" + config_descriptor.media_type + "'");
  }
  for (std::size_t i = 0; i < image.manifest.layers.size(); ++i) {
    const Descriptor& layer = image.manifest.layers[i];
    auto compression = layer_compression_of(layer.media_type);
    if (!compression.ok()) {
      return make_error(compression.error().code, "layer " + std::to_string(i) + " (blob " +
                                                      layer.digest.to_string() +
                                                      "): " + compression.error().message);
    }
  }
  auto config_bytes = fetch(config_descriptor);
  if (!config_bytes.ok()) return std::move(config_bytes).error();
  auto config = parse_image_config(*config_bytes);
  if (!config.ok()) return in_blob(config_descriptor, config.error());
  image.config = std::move(*config);
  if (image.config.diff_ids.size() != image.manifest.layers.size()) {
    return make_error(ErrorCode::kCorruptInput,
                      "config blob " + config_descriptor.digest.to_string() + " lists " +
                          std::to_string(image.config.diff_ids.size()) +
                          " diff_ids but the manifest has " +
                          std::to_string(image.manifest.layers.size()) + " layers");
  }
  return image;
}

class TreeWalk {
 public:
  TreeWalk(const BlobFetcher& fetch, const ImageTreeLimits& limits)
      : fetch_(fetch), limits_(limits) {}

  Result<ImageTree> load(const Descriptor& descriptor, std::size_t depth) {
    if (++nodes_ > limits_.max_nodes) {
      return make_error(ErrorCode::kLimitExceeded, "blob " + descriptor.digest.to_string() +
                                                       ": the image tree holds more than " +
                                                       std::to_string(limits_.max_nodes) +
                                                       " manifests and indexes");
    }
    ImageTree node;
    node.descriptor = descriptor;
    if (is_manifest_media_type(descriptor.media_type)) {
      auto manifest = read_manifest(descriptor, fetch_);
      if (!manifest.ok()) return std::move(manifest).error();
      if (!is_image_config_media_type(manifest->config.media_type)) {
        node.kind = ImageTreeKind::kArtifact;
        node.artifact = std::move(*manifest);
        return node;
      }
      auto image = read_image_config(descriptor, std::move(*manifest), fetch_);
      if (!image.ok()) return std::move(image).error();
      node.kind = ImageTreeKind::kImage;
      node.image = std::move(*image);
      return node;
    }
    if (!is_index_media_type(descriptor.media_type)) {
      return make_error(ErrorCode::kUnsupported,
                        "blob " + descriptor.digest.to_string() + " has media type '" +
                            descriptor.media_type.substr(0, 200) +
                            "', neither an image manifest nor an image index");
    }
    if (std::find(path_.begin(), path_.end(), descriptor.digest) != path_.end()) {
      return make_error(ErrorCode::kCorruptInput, "index blob " + descriptor.digest.to_string() +
                                                      " lists itself below itself (a cycle)");
    }
    if (depth >= limits_.max_depth) {
      return make_error(ErrorCode::kLimitExceeded,
                        "index blob " + descriptor.digest.to_string() + " is nested deeper than " +
                            std::to_string(limits_.max_depth) + " indexes");
    }
    auto bytes = fetch_(descriptor);
    if (!bytes.ok()) return std::move(bytes).error();
    auto index = parse_index(*bytes);
    if (!index.ok()) return in_blob(descriptor, index.error());
    if (!index->media_type.empty() && index->media_type != descriptor.media_type) {
      return make_error(ErrorCode::kCorruptInput,
                        "blob " + descriptor.digest.to_string() + " is a '" + index->media_type +
                            "' but its descriptor says '" + descriptor.media_type + "'");
    }
    if (index->manifests.size() > limits_.max_nodes - nodes_) {
      return make_error(ErrorCode::kLimitExceeded,
                        "index blob " + descriptor.digest.to_string() + " lists " +
                            std::to_string(index->manifests.size()) +
                            " entries: the image tree would hold more than " +
                            std::to_string(limits_.max_nodes) + " manifests and indexes");
    }
    path_.push_back(descriptor.digest);
    for (const Descriptor& entry : index->manifests) {
      auto child = load(entry, depth + 1);
      if (!child.ok()) return std::move(child).error();
      node.children.push_back(std::move(*child));
    }
    path_.pop_back();
    STRATA_TRY(check_platforms(descriptor, node.children));
    node.kind = ImageTreeKind::kIndex;
    node.index = std::move(*index);
    return node;
  }

 private:
  // Several images in one index are told apart only by their platforms (image-index.md).
  static Result<void> check_platforms(const Descriptor& index,
                                      const std::vector<ImageTree>& children) {
    const auto images = std::count_if(children.begin(), children.end(), [](const ImageTree& c) {
      return c.kind == ImageTreeKind::kImage;
    });
    if (images < 2) return {};
    for (std::size_t i = 0; i < children.size(); ++i) {
      const ImageTree& child = children[i];
      if (child.kind == ImageTreeKind::kImage && !child.descriptor.platform) {
        return make_error(ErrorCode::kCorruptInput,
                          "index blob " + index.digest.to_string() + ": entry " +
                              std::to_string(i) + " (image " + child.descriptor.digest.to_string() +
                              ") has no platform, but the index holds " + std::to_string(images) +
                              " images");
      }
    }
    return {};
  }

  const BlobFetcher& fetch_;
  const ImageTreeLimits& limits_;
  std::size_t nodes_ = 0;
  std::vector<Digest> path_;  // the indexes above the node being read
};

void collect_images(const ImageTree& node, std::vector<const ImageTree*>& images) {
  if (node.kind == ImageTreeKind::kImage) images.push_back(&node);
  for (const ImageTree& child : node.children) collect_images(child, images);
}

std::string platform_list(const std::vector<const ImageTree*>& images) {
  std::string text;
  for (const ImageTree* image : images) {
    if (!text.empty()) text += ", ";
    text += platform_name(platform_of(*image));
  }
  return text.empty() ? "no images" : text;
}

}  // namespace

Result<Image> load_image_from(const Descriptor& manifest, const BlobFetcher& fetch) {
  if (!is_manifest_media_type(manifest.media_type)) {
    return make_error(ErrorCode::kUnsupported, "blob " + manifest.digest.to_string() +
                                                   " has media type '" + manifest.media_type +
                                                   "', not an image manifest");
  }
  auto parsed = read_manifest(manifest, fetch);
  if (!parsed.ok()) return std::move(parsed).error();
  return read_image_config(manifest, std::move(*parsed), fetch);
}

Result<ImageTree> load_image_tree(const Descriptor& root, const BlobFetcher& fetch,
                                  const ImageTreeLimits& limits) {
  TreeWalk walk(fetch, limits);
  return walk.load(root, 0);
}

Result<Platform> parse_platform_name(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  const bool empty_part =
      std::any_of(parts.begin(), parts.end(), [](const std::string& part) { return part.empty(); });
  if (parts.size() < 2 || parts.size() > 3 || empty_part) {
    return make_error(ErrorCode::kInvalidArgument, "platform '" + std::string(text.substr(0, 200)) +
                                                       "' is not os/arch or os/arch/variant");
  }
  Platform platform;
  platform.os = parts[0];
  platform.architecture = parts[1];
  if (parts.size() == 3) platform.variant = parts[2];
  return platform;
}

std::string platform_name(const Platform& platform) {
  std::string name = platform.os + "/" + platform.architecture;
  if (!platform.variant.empty()) name += "/" + platform.variant;
  return name;
}

Platform platform_of(const ImageTree& node) {
  if (node.descriptor.platform) return *node.descriptor.platform;
  Platform platform;
  if (node.image) {
    platform.os = node.image->config.os;
    platform.architecture = node.image->config.architecture;
    platform.variant = node.image->config.variant;
    platform.os_version = node.image->config.os_version;
  }
  return platform;
}

Result<const ImageTree*> select_platform(const ImageTree& tree, const Platform& wanted) {
  std::vector<const ImageTree*> images;
  collect_images(tree, images);
  std::vector<const ImageTree*> matches;
  for (const ImageTree* image : images) {
    const Platform platform = platform_of(*image);
    if (platform.os != wanted.os || platform.architecture != wanted.architecture) continue;
    if (!wanted.variant.empty() && platform.variant != wanted.variant) continue;
    // The same image listed twice (by two nested indexes) is one match.
    const bool seen = std::any_of(matches.begin(), matches.end(), [image](const ImageTree* m) {
      return m->descriptor.digest == image->descriptor.digest;
    });
    if (!seen) matches.push_back(image);
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) {
    return make_error(ErrorCode::kNotFound, "no image for platform " + platform_name(wanted) +
                                                " (there are: " + platform_list(images) + ")");
  }
  return make_error(ErrorCode::kInvalidArgument,
                    std::to_string(matches.size()) + " images match platform " +
                        platform_name(wanted) + " (" + platform_list(matches) +
                        "); name the variant");
}

}  // namespace strata::oci
