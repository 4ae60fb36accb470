// OCI JSON documents (descriptor, image manifest, image index, image config): parsing with
// nlohmann-json's non-throwing parser, strict on the fields image-spec v1.1 defines (types,
// schemaVersion 2, sha256 digests, non-negative integer sizes, string-to-string annotations) and
// tolerant of fields it does not know, which are kept and written back. Writing is canonical:
// compact, keys sorted bytewise (nlohmann's default std::map object), no insignificant whitespace,
// so equal values give equal bytes and digests. Facts: shared/specs/layer-formats.md §3.
#include <nlohmann/json.hpp>

#include "strata/oci.h"

namespace strata::oci {
namespace {

using Json = nlohmann::json;

// "\"key\"", built by appending: GCC 12 warns falsely (-Wrestrict) on literal + std::string.
std::string quote_key(std::string_view key) {
  std::string text;
  text.reserve(key.size() + 2);
  text += '"';
  text += key;
  text += '"';
  return text;
}

Error json_error(const std::string& where, const std::string& what) {
  return make_error(ErrorCode::kCorruptInput, where + ": " + what);
}

Result<Json> parse_json_object(ByteSpan bytes, const std::string& what) {
  if (bytes.size() > kMaxJsonBytes) {
    return make_error(ErrorCode::kLimitExceeded, what + ": " + std::to_string(bytes.size()) +
                                                     " bytes is larger than the " +
                                                     std::to_string(kMaxJsonBytes) + " allowed");
  }
  Json json = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return json_error(what, "not valid JSON");
  if (!json.is_object()) return json_error(what, "not a JSON object");
  return json;
}

// Removes `key` from `object` and returns it; null when absent.
Json take(Json& object, std::string_view key) {
  const auto found = object.find(key);
  if (found == object.end()) return Json();
  Json value = std::move(*found);
  object.erase(found);
  return value;
}

Result<std::string> take_string(Json& object, std::string_view key, const std::string& where,
                                bool required) {
  Json value = take(object, key);
  if (value.is_null()) {
    if (required) return json_error(where, "missing " + quote_key(key));
    return std::string();
  }
  if (!value.is_string()) {
    return json_error(where, quote_key(key) + " is not a string");
  }
  return value.get<std::string>();
}

Result<std::uint64_t> as_size(const Json& value, const std::string& where) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto number = value.get<std::int64_t>();
    if (number >= 0) return static_cast<std::uint64_t>(number);
  }
  return json_error(where, "not a non-negative integer");
}

Result<Annotations> take_annotations(Json& object, const std::string& where) {
  Json value = take(object, "annotations");
  Annotations annotations;
  if (value.is_null()) return annotations;
  if (!value.is_object()) return json_error(where, "\"annotations\" is not an object");
  for (auto& [key, entry] : value.items()) {
    if (!entry.is_string()) {
      return json_error(where, "annotation " + quote_key(key) + " is not a string");
    }
    annotations.emplace(key, entry.get<std::string>());
  }
  return annotations;
}

std::string dump_canonical(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string leftover_fields(const Json& object) {
  return object.empty() ? std::string() : dump_canonical(object);
}

// Starts an output object from the kept unknown fields; known fields are then set over them.
Json object_with_unknown(const std::string& unknown_fields) {
  if (!unknown_fields.empty()) {
    Json kept = Json::parse(unknown_fields, nullptr, /*allow_exceptions=*/false);
    if (kept.is_object()) return kept;
  }
  return Json::object();
}

Result<Platform> parse_platform(Json value, const std::string& where) {
  if (!value.is_object()) return json_error(where, "\"platform\" is not an object");
  Platform platform;
  auto architecture = take_string(value, "architecture", where + ".platform", true);
  if (!architecture.ok()) return std::move(architecture).error();
  auto os = take_string(value, "os", where + ".platform", true);
  if (!os.ok()) return std::move(os).error();
  auto variant = take_string(value, "variant", where + ".platform", false);
  if (!variant.ok()) return std::move(variant).error();
  auto os_version = take_string(value, "os.version", where + ".platform", false);
  if (!os_version.ok()) return std::move(os_version).error();
  Json features = take(value, "os.features");
  if (!features.is_null()) {
    if (!features.is_array()) return json_error(where, "\"os.features\" is not an array");
    for (const Json& feature : features) {
      if (!feature.is_string()) return json_error(where, "\"os.features\" holds a non-string");
      platform.os_features.push_back(feature.get<std::string>());
    }
  }
  platform.architecture = std::move(*architecture);
  platform.os = std::move(*os);
  platform.variant = std::move(*variant);
  platform.os_version = std::move(*os_version);
  platform.unknown_fields = leftover_fields(value);
  return platform;
}

Json platform_to_json(const Platform& platform) {
  Json json = object_with_unknown(platform.unknown_fields);
  json["architecture"] = platform.architecture;
  json["os"] = platform.os;
  if (!platform.variant.empty()) json["variant"] = platform.variant;
  if (!platform.os_version.empty()) json["os.version"] = platform.os_version;
  if (!platform.os_features.empty()) json["os.features"] = platform.os_features;
  return json;
}

Result<Descriptor> parse_descriptor(Json object, const std::string& where) {
  if (!object.is_object()) return json_error(where, "descriptor is not an object");
  Descriptor descriptor;
  auto media_type = take_string(object, "mediaType", where, true);
  if (!media_type.ok()) return std::move(media_type).error();
  descriptor.media_type = std::move(*media_type);
  auto digest_text = take_string(object, "digest", where, true);
  if (!digest_text.ok()) return std::move(digest_text).error();
  if (digest_text->rfind("sha256:", 0) != 0) {
    return make_error(ErrorCode::kUnsupported, where + ": digest algorithm of '" +
                                                   digest_text->substr(0, 80) +
                                                   "' is not supported (only sha256)");
  }
  auto digest = Digest::parse(*digest_text);
  if (!digest.ok()) return json_error(where, digest.error().message);
  descriptor.digest = *digest;
  Json size = take(object, "size");
  if (size.is_null()) return json_error(where, "missing \"size\"");
  auto size_value = as_size(size, where + ".size");
  if (!size_value.ok()) return std::move(size_value).error();
  descriptor.size = *size_value;
  auto annotations = take_annotations(object, where);
  if (!annotations.ok()) return std::move(annotations).error();
  descriptor.annotations = std::move(*annotations);
  Json urls = take(object, "urls");
  if (!urls.is_null()) {
    if (!urls.is_array()) return json_error(where, "\"urls\" is not an array");
    for (const Json& url : urls) {
      if (!url.is_string()) return json_error(where, "\"urls\" holds a non-string");
      descriptor.urls.push_back(url.get<std::string>());
    }
  }
  auto artifact_type = take_string(object, "artifactType", where, false);
  if (!artifact_type.ok()) return std::move(artifact_type).error();
  descriptor.artifact_type = std::move(*artifact_type);
  Json platform = take(object, "platform");
  if (!platform.is_null()) {
    auto parsed = parse_platform(std::move(platform), where);
    if (!parsed.ok()) return std::move(parsed).error();
    descriptor.platform = std::move(*parsed);
  }
  descriptor.unknown_fields = leftover_fields(object);
  return descriptor;
}

Json descriptor_to_json(const Descriptor& descriptor) {
  Json json = object_with_unknown(descriptor.unknown_fields);
  json["mediaType"] = descriptor.media_type;
  json["digest"] = descriptor.digest.to_string();
  json["size"] = descriptor.size;
  if (!descriptor.annotations.empty()) json["annotations"] = descriptor.annotations;
  if (!descriptor.urls.empty()) json["urls"] = descriptor.urls;
  if (!descriptor.artifact_type.empty()) json["artifactType"] = descriptor.artifact_type;
  if (descriptor.platform) json["platform"] = platform_to_json(*descriptor.platform);
  return json;
}

Result<void> check_schema_version(Json& object, const std::string& where) {
  Json version = take(object, "schemaVersion");
  if (version.is_null()) return json_error(where, "missing \"schemaVersion\"");
  if (!version.is_number_integer() || version.get<std::int64_t>() != 2) {
    return make_error(ErrorCode::kUnsupported,
                      where + ": schemaVersion " + dump_canonical(version) + " (only 2 is known)");
  }
  return {};
}

Result<std::vector<Descriptor>> take_descriptor_list(Json& object, std::string_view key,
                                                     const std::string& where) {
  Json list = take(object, key);
  std::vector<Descriptor> descriptors;
  if (list.is_null()) return json_error(where, "missing " + quote_key(key));
  if (!list.is_array()) return json_error(where, quote_key(key) + " is not an array");
  std::string list_where = where;
  list_where += '.';
  list_where += key;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto descriptor =
        parse_descriptor(std::move(list[i]), list_where + "[" + std::to_string(i) + "]");
    if (!descriptor.ok()) return std::move(descriptor).error();
    descriptors.push_back(std::move(*descriptor));
  }
  return descriptors;
}

Result<std::optional<Descriptor>> take_subject(Json& object, const std::string& where) {
  Json subject = take(object, "subject");
  if (subject.is_null()) return std::optional<Descriptor>();
  auto descriptor = parse_descriptor(std::move(subject), where + ".subject");
  if (!descriptor.ok()) return std::move(descriptor).error();
  return std::optional<Descriptor>(std::move(*descriptor));
}

}  // namespace

std::string_view layer_media_type(LayerCompression compression) noexcept {
  switch (compression) {
    case LayerCompression::kNone: return kMediaTypeLayerTar;
    case LayerCompression::kGzip: return kMediaTypeLayerTarGzip;
    case LayerCompression::kZstd: return kMediaTypeLayerTarZstd;
  }
  return kMediaTypeLayerTar;
}

Result<LayerCompression> layer_compression_of(std::string_view media_type) {
  if (media_type == kMediaTypeLayerTar) return LayerCompression::kNone;
  if (media_type == kMediaTypeLayerTarGzip || media_type == kMediaTypeDockerLayerTarGzip) {
    return LayerCompression::kGzip;
  }
  if (media_type == kMediaTypeLayerTarZstd) return LayerCompression::kZstd;
  return make_error(ErrorCode::kUnsupported,
                    "unknown layer media type '" + std::string(media_type.substr(0, 200)) + "'");
}

bool is_manifest_media_type(std::string_view media_type) noexcept {
  return media_type == kMediaTypeImageManifest || media_type == kMediaTypeDockerManifest;
}

bool is_index_media_type(std::string_view media_type) noexcept {
  return media_type == kMediaTypeImageIndex || media_type == kMediaTypeDockerManifestList;
}

bool is_image_config_media_type(std::string_view media_type) noexcept {
  return media_type == kMediaTypeImageConfig || media_type == kMediaTypeDockerConfig;
}

Descriptor describe_bytes(std::string_view media_type, ByteSpan bytes) {
  Descriptor descriptor;
  descriptor.media_type = std::string(media_type);
  descriptor.digest = sha256_of(bytes);
  descriptor.size = bytes.size();
  return descriptor;
}

Result<Manifest> parse_manifest(ByteSpan json) {
  const std::string where = "manifest";
  auto parsed = parse_json_object(json, where);
  if (!parsed.ok()) return std::move(parsed).error();
  Json& object = *parsed;
  STRATA_TRY(check_schema_version(object, where));
  Manifest manifest;
  auto media_type = take_string(object, "mediaType", where, false);
  if (!media_type.ok()) return std::move(media_type).error();
  if (!media_type->empty() && *media_type != kMediaTypeImageManifest &&
      *media_type != kMediaTypeDockerManifest) {
    return make_error(ErrorCode::kUnsupported,
                      where + ": mediaType '" + media_type->substr(0, 200) + "' is not a manifest");
  }
  manifest.media_type = std::move(*media_type);
  auto artifact_type = take_string(object, "artifactType", where, false);
  if (!artifact_type.ok()) return std::move(artifact_type).error();
  manifest.artifact_type = std::move(*artifact_type);
  Json config = take(object, "config");
  if (config.is_null()) return json_error(where, "missing \"config\"");
  auto config_descriptor = parse_descriptor(std::move(config), where + ".config");
  if (!config_descriptor.ok()) return std::move(config_descriptor).error();
  manifest.config = std::move(*config_descriptor);
  auto layers = take_descriptor_list(object, "layers", where);
  if (!layers.ok()) return std::move(layers).error();
  manifest.layers = std::move(*layers);
  auto subject = take_subject(object, where);
  if (!subject.ok()) return std::move(subject).error();
  manifest.subject = std::move(*subject);
  auto annotations = take_annotations(object, where);
  if (!annotations.ok()) return std::move(annotations).error();
  manifest.annotations = std::move(*annotations);
  manifest.unknown_fields = leftover_fields(object);
  return manifest;
}

std::string write_manifest(const Manifest& manifest) {
  Json json = object_with_unknown(manifest.unknown_fields);
  json["schemaVersion"] = 2;
  if (!manifest.media_type.empty()) json["mediaType"] = manifest.media_type;
  if (!manifest.artifact_type.empty()) json["artifactType"] = manifest.artifact_type;
  json["config"] = descriptor_to_json(manifest.config);
  json["layers"] = Json::array();
  for (const Descriptor& layer : manifest.layers)
    json["layers"].push_back(descriptor_to_json(layer));
  if (manifest.subject) json["subject"] = descriptor_to_json(*manifest.subject);
  if (!manifest.annotations.empty()) json["annotations"] = manifest.annotations;
  return dump_canonical(json);
}

Result<Index> parse_index(ByteSpan json) {
  const std::string where = "index";
  auto parsed = parse_json_object(json, where);
  if (!parsed.ok()) return std::move(parsed).error();
  Json& object = *parsed;
  STRATA_TRY(check_schema_version(object, where));
  Index index;
  auto media_type = take_string(object, "mediaType", where, false);
  if (!media_type.ok()) return std::move(media_type).error();
  if (!media_type->empty() && *media_type != kMediaTypeImageIndex &&
      *media_type != kMediaTypeDockerManifestList) {
    return make_error(ErrorCode::kUnsupported,
                      where + ": mediaType '" + media_type->substr(0, 200) + "' is not an index");
  }
  index.media_type = std::move(*media_type);
  auto artifact_type = take_string(object, "artifactType", where, false);
  if (!artifact_type.ok()) return std::move(artifact_type).error();
  index.artifact_type = std::move(*artifact_type);
  auto manifests = take_descriptor_list(object, "manifests", where);
  if (!manifests.ok()) return std::move(manifests).error();
  index.manifests = std::move(*manifests);
  auto subject = take_subject(object, where);
  if (!subject.ok()) return std::move(subject).error();
  index.subject = std::move(*subject);
  auto annotations = take_annotations(object, where);
  if (!annotations.ok()) return std::move(annotations).error();
  index.annotations = std::move(*annotations);
  index.unknown_fields = leftover_fields(object);
  return index;
}

std::string write_index(const Index& index) {
  Json json = object_with_unknown(index.unknown_fields);
  json["schemaVersion"] = 2;
  if (!index.media_type.empty()) json["mediaType"] = index.media_type;
  if (!index.artifact_type.empty()) json["artifactType"] = index.artifact_type;
  json["manifests"] = Json::array();
  for (const Descriptor& entry : index.manifests) {
    json["manifests"].push_back(descriptor_to_json(entry));
  }
  if (index.subject) json["subject"] = descriptor_to_json(*index.subject);
  if (!index.annotations.empty()) json["annotations"] = index.annotations;
  return dump_canonical(json);
}

Result<ImageConfig> parse_image_config(ByteSpan json) {
  const std::string where = "config";
  auto parsed = parse_json_object(json, where);
  if (!parsed.ok()) return std::move(parsed).error();
  Json& object = *parsed;
  ImageConfig config;
  for (auto [key, field] : {std::pair{"created", &config.created},
                            {"author", &config.author},
                            {"architecture", &config.architecture},
                            {"os", &config.os},
                            {"variant", &config.variant},
                            {"os.version", &config.os_version}}) {
    const bool required = std::string_view(key) == "architecture" || std::string_view(key) == "os";
    auto value = take_string(object, key, where, required);
    if (!value.ok()) return std::move(value).error();
    *field = std::move(*value);
  }
  Json execution = take(object, "config");
  if (!execution.is_null()) {
    if (!execution.is_object()) return json_error(where, "\"config\" is not an object");
    config.execution_config = dump_canonical(execution);
  }
  Json rootfs = take(object, "rootfs");
  if (!rootfs.is_object()) return json_error(where, "missing \"rootfs\" object");
  auto rootfs_type = take_string(rootfs, "type", where + ".rootfs", true);
  if (!rootfs_type.ok()) return std::move(rootfs_type).error();
  if (*rootfs_type != "layers") {
    return json_error(where, "rootfs.type is '" + rootfs_type->substr(0, 80) + "', not 'layers'");
  }
  Json diff_ids = take(rootfs, "diff_ids");
  if (!diff_ids.is_array()) return json_error(where, "rootfs.diff_ids is not an array");
  for (std::size_t i = 0; i < diff_ids.size(); ++i) {
    const std::string item_where = where + ".rootfs.diff_ids[" + std::to_string(i) + "]";
    if (!diff_ids[i].is_string()) return json_error(item_where, "not a string");
    auto digest = Digest::parse(diff_ids[i].get<std::string>());
    if (!digest.ok()) return json_error(item_where, digest.error().message);
    config.diff_ids.push_back(*digest);
  }
  if (!rootfs.empty()) return json_error(where, "rootfs has unknown fields");
  Json history = take(object, "history");
  if (!history.is_null()) {
    if (!history.is_array()) return json_error(where, "\"history\" is not an array");
    for (std::size_t i = 0; i < history.size(); ++i) {
      const std::string item_where = where + ".history[" + std::to_string(i) + "]";
      Json& item = history[i];
      if (!item.is_object()) return json_error(item_where, "not an object");
      HistoryEntry entry;
      for (auto [key, field] : {std::pair{"created", &entry.created},
                                {"created_by", &entry.created_by},
                                {"author", &entry.author},
                                {"comment", &entry.comment}}) {
        auto value = take_string(item, key, item_where, false);
        if (!value.ok()) return std::move(value).error();
        *field = std::move(*value);
      }
      Json empty_layer = take(item, "empty_layer");
      if (!empty_layer.is_null()) {
        if (!empty_layer.is_boolean()) {
          return json_error(item_where, "\"empty_layer\" is not a boolean");
        }
        entry.empty_layer = empty_layer.get<bool>();
      }
      config.history.push_back(std::move(entry));
    }
  }
  config.unknown_fields = leftover_fields(object);
  return config;
}

std::string write_image_config(const ImageConfig& config) {
  Json json = object_with_unknown(config.unknown_fields);
  json["architecture"] = config.architecture;
  json["os"] = config.os;
  if (!config.created.empty()) json["created"] = config.created;
  if (!config.author.empty()) json["author"] = config.author;
  if (!config.variant.empty()) json["variant"] = config.variant;
  if (!config.os_version.empty()) json["os.version"] = config.os_version;
  if (!config.execution_config.empty()) {
    Json execution = Json::parse(config.execution_config, nullptr, /*allow_exceptions=*/false);
    if (execution.is_object()) json["config"] = std::move(execution);
  }
  Json diff_ids = Json::array();
  for (const Digest& diff_id : config.diff_ids) diff_ids.push_back(diff_id.to_string());
  json["rootfs"] = {{"type", "layers"}, {"diff_ids", std::move(diff_ids)}};
  if (!config.history.empty()) {
    Json history = Json::array();
    for (const HistoryEntry& entry : config.history) {
      Json item = Json::object();
      if (!entry.created.empty()) item["created"] = entry.created;
      if (!entry.created_by.empty()) item["created_by"] = entry.created_by;
      if (!entry.author.empty()) item["author"] = entry.author;
      if (!entry.comment.empty()) item["comment"] = entry.comment;
      if (entry.empty_layer) item["empty_layer"] = true;
      history.push_back(std::move(item));
    }
    json["history"] = std::move(history);
  }
  return dump_canonical(json);
}

}  // namespace strata::oci
