// `package_model` (include/strata/model_package.h §3): a model directory or (sharded) GGUF file
// into an OCI layout as a Docker Model Runner artifact (config
// application/vnd.docker.ai.model.config.v0.2+json, one raw layer per file with the
// org.cncf.model.filepath annotation, docker/model-runner pkg/distribution builder.FromDirectory)
// or a CNCF ModelPack artifact (artifactType application/vnd.cncf.model.manifest.v1+json, config
// application/vnd.cncf.model.config.v1+json, weight/weight-config/doc .v1.raw layers), plus the
// chunk index referrer of its weight blobs (shared/specs/models.md §8). Config fields (format,
// parameters, quantization, architecture, size, context size) come from the weight headers, as
// Docker's packager derives them. Every timestamp is the fixed `created` option, so equal inputs
// give equal digests.
#include "strata/model_package.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/model/model_delta_base.h"
#include "core/model/model_weight_ingest.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr std::string_view kAnnotationCreated = "org.opencontainers.image.created";
constexpr std::size_t kMaxConfigJsonBytes = std::size_t{16} << 20U;
// GGUF metadata strings longer than this (chat templates, licences) stay out of the config.
constexpr std::size_t kMaxMetadataStringBytes = 1024;

enum class FileKind : std::uint8_t { kSafetensors, kGguf, kLicense, kChatTemplate, kConfig };

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// docker/model-runner pkg/distribution/files.Classify, by file name.
FileKind classify_file(std::string_view relative_path) {
  const auto slash = relative_path.rfind('/');
  const std::string name =
      lowercase(slash == std::string_view::npos ? relative_path : relative_path.substr(slash + 1));
  if (name.ends_with(".gguf")) return FileKind::kGguf;
  if (name.ends_with(".safetensors")) return FileKind::kSafetensors;
  if (name.ends_with(".jinja") || name.find("chat_template") != std::string::npos) {
    return FileKind::kChatTemplate;
  }
  for (const char* pattern : {"license", "licence", "copying", "notice"}) {
    if (name.find(pattern) != std::string::npos) return FileKind::kLicense;
  }
  return FileKind::kConfig;
}

bool is_weight(FileKind kind) {
  return kind == FileKind::kSafetensors || kind == FileKind::kGguf;
}

struct SourceFile {
  std::string relative;  // '/'-separated
  std::string path;      // on disk
};

// Walks `directory` as Go's filepath.Walk does (names sorted per directory), skipping hidden
// entries and anything that is not a regular file or directory (symbolic links included).
Result<void> walk_directory(const fs::path& directory, const std::string& prefix,
                            std::vector<SourceFile>& files, unsigned depth) {
  if (depth > 64) {
    return make_error(ErrorCode::kLimitExceeded, "model directory nests deeper than 64 levels");
  }
  std::error_code error;
  std::vector<std::string> names;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  if (error) {
    return make_error(ErrorCode::kIo, "cannot list " + directory.string() + ": " + error.message());
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (name.starts_with(".")) continue;
    const fs::path path = directory / name;
    const fs::file_status status = fs::symlink_status(path, error);
    if (error) return make_error(ErrorCode::kIo, "cannot stat " + path.string());
    const std::string relative = prefix.empty() ? name : prefix + "/" + name;
    if (fs::is_directory(status)) {
      STRATA_TRY(walk_directory(path, relative, files, depth + 1));
    } else if (fs::is_regular_file(status)) {
      files.push_back(SourceFile{relative, path.string()});
    }
  }
  return {};
}

bool is_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "PREFIX-0000k-of-0000n.gguf" (or .safetensors), the shard names llama.cpp's gguf-split and
// Hugging Face use (five digits each).
struct ShardName {
  std::string prefix;
  int count = 0;
  std::string extension;
};
std::optional<ShardName> parse_shard_name(const std::string& name) {
  constexpr std::size_t kSuffix = 15;  // "-00001-of-00003"
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  ShardName shard;
  shard.extension = name.substr(dot + 1);
  if (shard.extension != "gguf" && shard.extension != "safetensors") return std::nullopt;
  const std::string_view stem = std::string_view(name).substr(0, dot);
  if (stem.size() <= kSuffix) return std::nullopt;
  const std::string_view tail = stem.substr(stem.size() - kSuffix);
  if (tail[0] != '-' || !is_digits(tail.substr(1, 5)) || tail.substr(6, 4) != "-of-" ||
      !is_digits(tail.substr(10, 5))) {
    return std::nullopt;
  }
  shard.prefix = std::string(stem.substr(0, stem.size() - kSuffix));
  shard.count = std::stoi(std::string(tail.substr(10, 5)));
  return shard;
}

// A directory, or one GGUF/safetensors file with its "-0000k-of-0000n" shard siblings.
Result<std::vector<SourceFile>> list_source_files(const std::string& source) {
  std::error_code error;
  const fs::file_status status = fs::status(source, error);
  if (error || !fs::exists(status)) {
    return make_error(ErrorCode::kNotFound, "model source " + source + " does not exist");
  }
  std::vector<SourceFile> files;
  if (fs::is_directory(status)) {
    STRATA_TRY(walk_directory(source, "", files, 0));
    return files;
  }
  const fs::path path(source);
  const std::string name = path.filename().string();
  if (!is_weight(classify_file(name))) {
    return make_error(ErrorCode::kInvalidArgument,
                      source + " is neither a directory nor a .gguf/.safetensors file");
  }
  const std::optional<ShardName> shard_set = parse_shard_name(name);
  if (!shard_set) {
    files.push_back(SourceFile{name, source});
    return files;
  }
  for (int i = 1; i <= shard_set->count; ++i) {
    char shard[32];
    std::snprintf(shard, sizeof shard, "-%05d-of-%05d.", i, shard_set->count);
    const std::string shard_name = shard_set->prefix + shard + shard_set->extension;
    const fs::path shard_path = path.parent_path() / shard_name;
    if (!fs::is_regular_file(shard_path, error)) {
      return make_error(ErrorCode::kNotFound,
                        "incomplete shard set: " + shard_name + " is missing next to " + name);
    }
    files.push_back(SourceFile{shard_name, shard_path.string()});
  }
  return files;
}

// go-units CustomSize("%.2f%s", value, 1000, units), as Docker formats parameters and sizes.
std::string format_units(double value, const std::vector<const char*>& units) {
  std::size_t unit = 0;
  while (value >= 1000.0 && unit + 1 < units.size()) {
    value /= 1000.0;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.2f%s", value, units[unit]);
  return text;
}

// llama.cpp's LLAMA_FTYPE names (general.file_type), as gguf-parser and Docker print them.
std::string gguf_file_type_name(std::uint64_t file_type) {
  static const std::map<std::uint64_t, const char*> kNames = {
      {0, "F32"},      {1, "F16"},      {2, "Q4_0"},      {3, "Q4_1"},    {7, "Q8_0"},
      {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},     {11, "Q3_K_S"}, {12, "Q3_K_M"},
      {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"},   {16, "Q5_K_S"}, {17, "Q5_K_M"},
      {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"},   {21, "Q2_K_S"}, {22, "IQ3_XS"},
      {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"},   {26, "IQ3_S"},  {27, "IQ3_M"},
      {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"},   {31, "IQ1_M"},  {32, "BF16"},
      {36, "TQ1_0"},   {37, "TQ2_0"},   {38, "MXFP4_MOE"}};
  const auto found = kNames.find(file_type);
  return found == kNames.end() ? std::string() : std::string(found->second);
}

std::optional<std::string> metadata_string(const GgufValue& value) {
  switch (value.type) {
    case GgufType::kU8:
    case GgufType::kU16:
    case GgufType::kU32:
    case GgufType::kU64: return std::to_string(value.unsigned_value);
    case GgufType::kI8:
    case GgufType::kI16:
    case GgufType::kI32:
    case GgufType::kI64: return std::to_string(value.signed_value);
    case GgufType::kF32:
    case GgufType::kF64: {
      std::ostringstream text;
      text << value.float_value;
      return text.str();
    }
    case GgufType::kBool: return value.unsigned_value != 0 ? "true" : "false";
    case GgufType::kString:
      if (value.string_value.size() > kMaxMetadataStringBytes) return std::nullopt;
      return value.string_value;
    case GgufType::kArray: break;
  }
  return std::nullopt;
}

const GgufValue* find_metadata(const ModelLayout& layout, std::string_view key) {
  for (const MetadataEntry& entry : layout.metadata) {
    if (entry.key == key) return &entry.value;
  }
  return nullptr;
}

// What the weight headers say about the model, merged over all weight files.
struct ModelFacts {
  std::string format;  // "gguf" | "safetensors"
  std::uint64_t parameters = 0;
  std::uint64_t weight_bytes = 0;
  std::string architecture;
  std::string quantization;
  std::string precision;  // ModelPack: the one float dtype of safetensors weights, lowercased
  std::optional<std::int64_t> context_size;
  std::map<std::string, std::string> metadata;  // Docker's "gguf" / "safetensors" map
  bool any_parsed = false;
};

ModelFacts collect_facts(
    const std::vector<std::pair<FileKind, std::optional<ModelLayout>>>& weights,
    std::uint64_t weight_bytes) {
  ModelFacts facts;
  facts.weight_bytes = weight_bytes;
  std::set<std::string> dtypes;
  std::uint64_t tensors = 0;
  for (const auto& [kind, layout] : weights) {
    if (facts.format.empty()) facts.format = kind == FileKind::kGguf ? "gguf" : "safetensors";
    if (!layout) continue;
    facts.any_parsed = true;
    tensors += layout->tensors.size();
    for (const TensorInfo& tensor : layout->tensors) {
      std::uint64_t elements = 1;
      for (const std::uint64_t dimension : tensor.shape) elements *= dimension;
      facts.parameters += elements;
      dtypes.insert(tensor.dtype_name);
    }
    if (layout->format == ModelFormat::kGguf) {
      for (const MetadataEntry& entry : layout->metadata) {
        if (auto text = metadata_string(entry.value)) facts.metadata.emplace(entry.key, *text);
      }
      if (const GgufValue* arch = find_metadata(*layout, "general.architecture");
          arch != nullptr && facts.architecture.empty()) {
        facts.architecture = arch->string_value;
      }
      if (const GgufValue* file_type = find_metadata(*layout, "general.file_type");
          file_type != nullptr && facts.quantization.empty()) {
        facts.quantization = gguf_file_type_name(file_type->unsigned_value);
      }
      if (!facts.architecture.empty() && !facts.context_size) {
        if (const GgufValue* context =
                find_metadata(*layout, facts.architecture + ".context_length")) {
          facts.context_size = static_cast<std::int64_t>(context->unsigned_value);
        }
      }
    } else {
      for (const MetadataEntry& entry : layout->metadata) {
        facts.metadata.emplace(entry.key, entry.value.string_value);
        if (entry.key == "architecture" && facts.architecture.empty()) {
          facts.architecture = entry.value.string_value;
        }
      }
    }
  }
  if (facts.format == "safetensors" && facts.any_parsed) {
    facts.metadata["tensor_count"] = std::to_string(tensors);
    facts.quantization = dtypes.size() == 1 ? *dtypes.begin() : "mixed";
    if (dtypes.size() == 1) facts.precision = lowercase(*dtypes.begin());
  } else if (facts.format == "gguf" && facts.quantization.empty() && dtypes.size() == 1) {
    facts.quantization = *dtypes.begin();
  }
  return facts;
}

// HuggingFace config.json keys holding the context length, in Docker's order of preference.
std::optional<std::int64_t> read_context_size(const std::string& config_path) {
  std::ifstream in(config_path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(kMaxConfigJsonBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxConfigJsonBytes) return std::nullopt;
  const Json document = Json::parse(text, nullptr, false);
  if (document.is_discarded() || !document.is_object()) return std::nullopt;
  for (const char* key : {"max_position_embeddings", "n_ctx", "n_positions", "max_length",
                          "max_sequence_length", "model_max_length"}) {
    const auto found = document.find(key);
    if (found == document.end() || !found->is_number_integer()) continue;
    const auto value = found->get<std::int64_t>();
    if (value > 0 && value <= INT32_MAX) return value;
  }
  return std::nullopt;
}

std::string write_docker_config(const ModelFacts& facts, const std::string& created,
                                const std::vector<Digest>& diff_ids) {
  Json config = Json::object();
  config["format"] = facts.format;
  if (!facts.quantization.empty()) config["quantization"] = facts.quantization;
  if (facts.any_parsed) {
    config["parameters"] =
        format_units(static_cast<double>(facts.parameters), {"", "K", "M", "B", "T"});
  }
  if (!facts.architecture.empty()) config["architecture"] = facts.architecture;
  config["size"] = format_units(static_cast<double>(facts.weight_bytes),
                                {"B", "kB", "MB", "GB", "TB", "PB", "EB"});
  if (!facts.metadata.empty()) config[facts.format] = facts.metadata;
  if (facts.context_size) config["context_size"] = *facts.context_size;
  Json ids = Json::array();
  for (const Digest& id : diff_ids) ids.push_back(id.to_string());
  const Json document = {{"config", config},
                         {"descriptor", {{"created", created}}},
                         {"rootfs", {{"type", "rootfs"}, {"diff_ids", ids}}}};
  return document.dump();
}

std::string write_modelpack_config(const ModelFacts& facts, const std::string& created,
                                   const std::string& name, const std::vector<Digest>& diff_ids) {
  Json descriptor = {{"createdAt", created}};
  if (!facts.architecture.empty()) descriptor["family"] = facts.architecture;
  if (!name.empty()) descriptor["name"] = name;
  Json config = Json::object();
  if (!facts.architecture.empty()) config["architecture"] = facts.architecture;
  config["format"] = facts.format;
  if (facts.any_parsed) {
    config["paramSize"] =
        lowercase(format_units(static_cast<double>(facts.parameters), {"", "K", "M", "B", "T"}));
  }
  if (!facts.precision.empty()) config["precision"] = facts.precision;
  if (facts.format == "gguf" && !facts.quantization.empty()) {
    config["quantization"] = facts.quantization;
  }
  Json ids = Json::array();
  for (const Digest& id : diff_ids) ids.push_back(id.to_string());
  const Json document = {{"descriptor", descriptor},
                         {"modelfs", {{"type", "layers"}, {"diffIds", ids}}},
                         {"config", config}};
  return document.dump();
}

// Docker's file metadata annotation (Go field order: name, mode, uid, gid, size, mtime,
// typeflag), with the fixed creation time as mtime so digests do not depend on the file system.
std::string file_metadata_json(const std::string& relative, std::uint32_t mode, std::uint64_t size,
                               const std::string& created) {
  const auto slash = relative.rfind('/');
  const std::string name = slash == std::string::npos ? relative : relative.substr(slash + 1);
  return "{\"name\":" + Json(name).dump() + ",\"mode\":" + std::to_string(mode) +
         ",\"uid\":0,\"gid\":0,\"size\":" + std::to_string(size) +
         ",\"mtime\":" + Json(created).dump() + ",\"typeflag\":0}";
}

Result<oci::Descriptor> copy_file_to_blob(const oci::OciLayout& layout, const std::string& path,
                                          std::string_view media_type) {
  auto writer = layout.begin_blob();
  if (!writer.ok()) return std::move(writer).error();
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIo, "cannot open " + path);
  std::vector<std::uint8_t> block(std::size_t{1} << 20U);
  while (in) {
    in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(block.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) break;
    STRATA_TRY(writer->write(ByteSpan(block.data(), got)));
  }
  if (in.bad()) return make_error(ErrorCode::kIo, "cannot read " + path);
  return writer->commit(media_type);
}

// "YYYY-MM-DDTHH:MM:SS[.fraction]Z".
bool is_valid_rfc3339_utc(const std::string& text) {
  const std::string_view view(text);
  if (view.size() < 20 || view.size() > 30 || view.back() != 'Z') return false;
  if (!is_digits(view.substr(0, 4)) || view[4] != '-' || !is_digits(view.substr(5, 2)) ||
      view[7] != '-' || !is_digits(view.substr(8, 2)) || view[10] != 'T' ||
      !is_digits(view.substr(11, 2)) || view[13] != ':' || !is_digits(view.substr(14, 2)) ||
      view[16] != ':' || !is_digits(view.substr(17, 2))) {
    return false;
  }
  const std::string_view fraction = view.substr(19, view.size() - 20);
  return fraction.empty() || (fraction[0] == '.' && is_digits(fraction.substr(1)));
}

// The base tensors PackageOptions::delta names (nullopt: no delta coding, or `auto` found no
// stored weight file).
Result<std::optional<ModelDeltaBase>> open_delta_base(const PackageOptions& options) {
  if (options.delta.base == ModelDeltaBaseKind::kNone) return std::optional<ModelDeltaBase>();
  if (options.store == nullptr) {
    return make_error(ErrorCode::kInvalidArgument, "delta coding needs a store (--store)");
  }
  std::vector<Digest> files = options.delta.files;
  if (options.delta.base == ModelDeltaBaseKind::kNewest) {
    auto newest = ModelDeltaBase::newest_weight_files(*options.store, kMaxNewestDeltaBaseFiles);
    if (!newest.ok()) return std::move(newest).error();
    files = std::move(newest).value();
  } else if (files.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "no delta base file named");
  }
  if (files.empty()) return std::optional<ModelDeltaBase>();
  auto base = ModelDeltaBase::build(*options.store, files);
  if (!base.ok()) return std::move(base).error();
  return std::optional<ModelDeltaBase>(std::move(base).value());
}

}  // namespace

std::string_view artifact_format_name(ArtifactFormat format) noexcept {
  return format == ArtifactFormat::kModelPack ? "modelpack" : "docker";
}

Result<ArtifactFormat> parse_artifact_format(std::string_view name) {
  if (name == "docker") return ArtifactFormat::kDocker;
  if (name == "modelpack" || name == "cncf") return ArtifactFormat::kModelPack;
  return make_error(ErrorCode::kInvalidArgument, "unknown model artifact format '" +
                                                     std::string(name.substr(0, 100)) +
                                                     "' (docker or modelpack)");
}

std::string referrers_fallback_tag(const Digest& subject) {
  return "sha256-" + subject.hex();
}

bool is_weight_media_type(std::string_view media_type) noexcept {
  return media_type == kMediaTypeDockerGguf || media_type == kMediaTypeDockerSafetensors ||
         media_type == kMediaTypeModelPackWeightRaw ||
         media_type == "application/vnd.cncf.model.weight.v1.gguf" ||
         media_type == "application/vnd.cncf.model.weight.v1.safetensors";
}

std::string layer_media_type_for(std::string_view relative_path, ArtifactFormat format) {
  const FileKind kind = classify_file(relative_path);
  if (format == ArtifactFormat::kDocker) {
    switch (kind) {
      case FileKind::kGguf: return std::string(kMediaTypeDockerGguf);
      case FileKind::kSafetensors: return std::string(kMediaTypeDockerSafetensors);
      case FileKind::kLicense: return std::string(kMediaTypeDockerLicense);
      case FileKind::kChatTemplate: return std::string(kMediaTypeDockerChatTemplate);
      case FileKind::kConfig: break;
    }
    return std::string(kMediaTypeDockerModelFile);
  }
  if (is_weight(kind)) return std::string(kMediaTypeModelPackWeightRaw);
  if (kind == FileKind::kLicense || lowercase(relative_path).ends_with(".md")) {
    return std::string(kMediaTypeModelPackDocRaw);
  }
  return std::string(kMediaTypeModelPackWeightConfigRaw);
}

Result<PackageReport> package_model(const std::string& source, oci::OciLayout& layout,
                                    std::string_view tag, const PackageOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (!oci::is_valid_tag(tag)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + std::string(tag.substr(0, 200)) + "' is not a valid tag");
  }
  if (!is_valid_rfc3339_utc(options.created)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "created time '" + options.created.substr(0, 100) +
                          "' is not RFC 3339 UTC (2025-01-31T12:00:00Z)");
  }
  STRATA_TRY(validate(options.chunker));
  auto files = list_source_files(source);
  if (!files.ok()) return std::move(files).error();
  if (files->empty()) return make_error(ErrorCode::kNotFound, "no files found in " + source);
  const bool any_weight = std::any_of(files->begin(), files->end(), [](const SourceFile& file) {
    return is_weight(classify_file(file.relative));
  });
  if (!any_weight) {
    return make_error(ErrorCode::kNotFound,
                      "no weight files (safetensors or GGUF) found in " + source);
  }

  PackageReport report;
  auto delta_base = open_delta_base(options);
  if (!delta_base.ok()) return std::move(delta_base).error();
  if (*delta_base) report.delta_base_files = (*delta_base)->files();
  std::vector<std::pair<FileKind, std::optional<ModelLayout>>> weight_headers;
  std::vector<ChunkIndex> indexes;
  std::vector<std::string> indexed_paths;
  std::optional<std::int64_t> config_context;
  oci::Manifest manifest;
  std::vector<Digest> diff_ids;
  for (const SourceFile& file : *files) {
    const FileKind kind = classify_file(file.relative);
    const std::string media_type = layer_media_type_for(file.relative, options.format);
    PackagedFile packaged;
    packaged.path = file.relative;
    packaged.weight = is_weight(kind);
    if (packaged.weight) {
      auto writer = layout.begin_blob();
      if (!writer.ok()) return std::move(writer).error();
      WeightIngestOptions ingest;
      ingest.chunker = options.chunker;
      ingest.store = options.store;
      ingest.media_type = media_type;
      ingest.zstd_level = options.zstd_level;
      ingest.threads = options.threads;
      ingest.delta_base = delta_base->has_value() ? &**delta_base : nullptr;
      ingest.delta = options.delta;
      auto ingested = ingest_weight_file(
          file.path, ingest, [&writer](ByteSpan bytes) { return writer->write(bytes); });
      if (!ingested.ok()) {
        return make_error(ingested.error().code, file.relative + ": " + ingested.error().message);
      }
      auto descriptor = writer->commit(media_type);
      if (!descriptor.ok()) return std::move(descriptor).error();
      packaged.descriptor = std::move(*descriptor);
      packaged.chunks = ingested->index.chunks.size();
      packaged.new_chunks = ingested->new_chunks;
      packaged.new_raw_bytes = ingested->new_raw_bytes;
      packaged.new_stored_bytes = ingested->new_stored_bytes;
      packaged.tensor_aware = ingested->index.tensor_aware;
      packaged.delta_chunks = ingested->delta_chunks;
      packaged.delta_stored_bytes = ingested->delta_stored_bytes;
      report.weight_bytes += packaged.descriptor.size;
      report.new_raw_bytes += packaged.new_raw_bytes;
      report.new_stored_bytes += packaged.new_stored_bytes;
      report.delta_chunks += packaged.delta_chunks;
      report.delta_stored_bytes += packaged.delta_stored_bytes;
      weight_headers.emplace_back(kind, std::move(ingested->layout));
      indexes.push_back(std::move(ingested->index));
      indexed_paths.push_back(file.relative);
    } else {
      auto descriptor = copy_file_to_blob(layout, file.path, media_type);
      if (!descriptor.ok()) return std::move(descriptor).error();
      packaged.descriptor = std::move(*descriptor);
      if (file.relative == "config.json") config_context = read_context_size(file.path);
    }
    struct stat info {};
    const std::uint32_t mode =
        ::stat(file.path.c_str(), &info) == 0 ? (info.st_mode & 07777U) : 0644U;
    packaged.descriptor.annotations[std::string(kAnnotationFilePath)] = file.relative;
    packaged.descriptor.annotations[std::string(kAnnotationFileMetadata)] =
        file_metadata_json(file.relative, mode, packaged.descriptor.size, options.created);
    packaged.descriptor.annotations[std::string(kAnnotationMediaTypeUntested)] = "false";
    report.total_bytes += packaged.descriptor.size;
    diff_ids.push_back(packaged.descriptor.digest);
    manifest.layers.push_back(packaged.descriptor);
    report.files.push_back(std::move(packaged));
  }

  ModelFacts facts = collect_facts(weight_headers, report.weight_bytes);
  if (!facts.context_size) facts.context_size = config_context;
  std::string config_json;
  std::string_view config_media_type;
  if (options.format == ArtifactFormat::kDocker) {
    config_json = write_docker_config(facts, options.created, diff_ids);
    config_media_type = kMediaTypeDockerConfigV02;
  } else {
    config_json = write_modelpack_config(facts, options.created, options.name, diff_ids);
    config_media_type = kMediaTypeModelPackConfig;
    manifest.artifact_type = std::string(kArtifactTypeModelPack);
  }
  const auto as_span = [](const std::string& text) {
    return ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  };
  auto config = layout.write_blob(config_media_type, as_span(config_json));
  if (!config.ok()) return std::move(config).error();
  report.config = *config;
  manifest.config = *config;
  auto manifest_descriptor =
      layout.write_blob(oci::kMediaTypeImageManifest, as_span(oci::write_manifest(manifest)));
  if (!manifest_descriptor.ok()) return std::move(manifest_descriptor).error();
  report.manifest = *manifest_descriptor;
  report.manifest.artifact_type = manifest.artifact_type;

  // The chunk index referrer: one layer per weight blob, subject = the model manifest.
  oci::Manifest referrer;
  referrer.artifact_type = std::string(kArtifactTypeChunkIndex);
  auto empty = layout.write_blob(kMediaTypeEmptyJson, as_span("{}"));
  if (!empty.ok()) return std::move(empty).error();
  referrer.config = *empty;
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    const std::vector<std::uint8_t> bytes = serialize_chunk_index(indexes[i]);
    auto blob = layout.write_blob(kMediaTypeChunkIndex, bytes);
    if (!blob.ok()) return std::move(blob).error();
    blob->annotations[std::string(kAnnotationIndexedBlob)] = indexes[i].blob_digest.to_string();
    blob->annotations[std::string(kAnnotationFilePath)] = indexed_paths[i];
    referrer.layers.push_back(std::move(*blob));
  }
  oci::Descriptor subject;
  subject.media_type = report.manifest.media_type;
  subject.digest = report.manifest.digest;
  subject.size = report.manifest.size;
  referrer.subject = subject;
  referrer.annotations[std::string(kAnnotationCreated)] = options.created;
  auto referrer_descriptor =
      layout.write_blob(oci::kMediaTypeImageManifest, as_span(oci::write_manifest(referrer)));
  if (!referrer_descriptor.ok()) return std::move(referrer_descriptor).error();
  referrer_descriptor->artifact_type = std::string(kArtifactTypeChunkIndex);
  report.chunk_index_manifest = *referrer_descriptor;

  STRATA_TRY(layout.set_tag(tag, report.manifest));
  STRATA_TRY(
      layout.set_tag(referrers_fallback_tag(report.manifest.digest), report.chunk_index_manifest));
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace strata::model
