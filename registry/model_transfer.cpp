// Pushing and pulling model artifacts with their chunk index (include/strata/model_artifact.h §4,
// shared/specs/models.md §8). Push: blobs, the model manifest, the chunk index referrer (subject =
// the model manifest), then, where GET /v2/<repo>/referrers/<digest> is 404 (no referrers API,
// e.g. Debian's docker-registry 2.8), the tag-schema fallback: an image index tagged
// "sha256-<hex>" listing the referrer (distribution-spec v1.1 "Referrers Tag Schema"). Pull: the
// manifest, the chunk index (referrers API first, then the fallback tag), and for each weight blob
// only the chunks the store lacks, as merged range GETs (registry/model_blob_pull.cpp), or as
// deltas where the model has a delta referrer (docs/DELTA.md; write_model_delta_referrer makes
// one from a store, in the image's format); every chunk is checked against its SHA-256 and every
// assembled file against its blob digest before the store layer is committed, and files move
// into --out only when all are complete.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "core/base/file_io.h"
#include "core/base/safe_path.h"
#include "core/model/model_weight_ingest.h"
#include "registry/model_blob_pull.h"
#include "strata/engine.h"
#include "strata/model_artifact.h"
#include "strata/recipe.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using registry::RegistryClient;

constexpr std::uint64_t kMaxConfigBytes = std::uint64_t{16} << 20U;
constexpr std::uint64_t kMaxChunkIndexBytes = std::uint64_t{256} << 20U;
constexpr std::size_t kMaxPathBytes = 4096;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ByteSpan as_span(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// ---- push -------------------------------------------------------------------------------------

Result<void> push_layout_blob(RegistryClient& client, const oci::OciLayout& layout,
                              const std::string& repository, const oci::Descriptor& blob,
                              ModelPushReport& report) {
  auto present = client.stat_blob(repository, blob.digest);
  if (!present.ok()) return std::move(present).error();
  if (*present && (*present)->size == blob.size) {
    ++report.blobs_skipped;
    return {};
  }
  const std::string path = layout.blob_path(blob.digest);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  FileDescriptor file(fd);
  const registry::BlobReader reader = [fd, &path](std::uint64_t offset,
                                                  MutableByteSpan out) -> Result<std::size_t> {
    const ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0) return make_error(ErrorCode::kIo, "cannot read " + path);
    return static_cast<std::size_t>(n);
  };
  STRATA_TRY(client.push_blob(repository, blob.digest, blob.size, reader));
  ++report.blobs_uploaded;
  report.bytes_uploaded += blob.size;
  return {};
}

Result<std::pair<oci::Manifest, std::vector<std::uint8_t>>> read_manifest(
    const oci::OciLayout& layout, const oci::Descriptor& descriptor) {
  auto bytes = layout.read_blob(descriptor);
  if (!bytes.ok()) return std::move(bytes).error();
  auto manifest = oci::parse_manifest(*bytes);
  if (!manifest.ok()) {
    return make_error(manifest.error().code,
                      descriptor.digest.to_string() + ": " + manifest.error().message);
  }
  return std::make_pair(std::move(*manifest), std::move(*bytes));
}

Result<void> push_manifest_with_blobs(RegistryClient& client, const oci::OciLayout& layout,
                                      const std::string& repository,
                                      const oci::Descriptor& descriptor,
                                      const std::string& reference, ModelPushReport& report) {
  auto manifest = read_manifest(layout, descriptor);
  if (!manifest.ok()) return std::move(manifest).error();
  STRATA_TRY(push_layout_blob(client, layout, repository, manifest->first.config, report));
  for (const oci::Descriptor& layer : manifest->first.layers) {
    STRATA_TRY(push_layout_blob(client, layout, repository, layer, report));
  }
  auto pushed =
      client.push_manifest(repository, reference, descriptor.media_type, manifest->second);
  if (!pushed.ok()) return std::move(pushed).error();
  return {};
}

// Adds `referrer` to the index tagged "sha256-<subject hex>" (created when absent).
Result<void> update_fallback_tag(RegistryClient& client, const std::string& repository,
                                 const Digest& subject, const oci::Descriptor& referrer) {
  const std::string tag = referrers_fallback_tag(subject);
  oci::Index index;
  auto existing = client.fetch_manifest(repository, tag);
  if (existing.ok()) {
    auto parsed = oci::parse_index(existing->bytes);
    if (!parsed.ok()) {
      return make_error(parsed.error().code,
                        repository + ":" + tag + ": " + parsed.error().message);
    }
    index = std::move(*parsed);
  } else if (existing.error().code != ErrorCode::kNotFound) {
    return std::move(existing).error();
  }
  for (const oci::Descriptor& entry : index.manifests) {
    if (entry.digest == referrer.digest) return {};
  }
  oci::Descriptor entry;
  entry.media_type = referrer.media_type;
  entry.digest = referrer.digest;
  entry.size = referrer.size;
  entry.artifact_type = referrer.artifact_type;
  index.manifests.push_back(entry);
  auto pushed = client.push_manifest(repository, tag, oci::kMediaTypeImageIndex,
                                     as_span(oci::write_index(index)));
  if (!pushed.ok()) return std::move(pushed).error();
  return {};
}

// ---- pull -------------------------------------------------------------------------------------

Result<void> check_relative_path(const std::string& path) {
  const auto unsafe = [&path](const std::string& why) {
    return make_error(ErrorCode::kUnsafePath,
                      "model file path '" + path.substr(0, 200) + "' " + why);
  };
  if (path.empty()) return unsafe("is empty");
  if (path.size() > kMaxPathBytes) return unsafe("is too long");
  if (path.front() == '/') return unsafe("is absolute");
  if (path.find('\0') != std::string::npos) return unsafe("holds a NUL byte");
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const std::string part =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty()) return unsafe("has an empty component");
    if (part == "." || part == "..") return unsafe("has a '" + part + "' component");
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return {};
}

// The directory under --out that will hold `relative` (checked by check_relative_path), created
// as needed and resolved from a descriptor of --out one component at a time with O_NOFOLLOW: a
// symbolic link anywhere on the way is refused (core/base/safe_path.h), so a link planted in --out,
// or a directory swapped for one while the pull runs, cannot redirect a write.
Result<safe_path::ResolvedParent> output_parent(const safe_path::RootDirectory& root,
                                                const std::string& relative) {
  auto components = safe_path::split_relative_path(relative, "model file path");
  if (!components.ok()) return std::move(components).error();
  auto parent = root.resolve_parent(*components, true, safe_path::Symlinks::kRefuse);
  if (!parent.ok()) {
    return make_error(parent.error().code,
                      "model file '" + relative + "': " + parent.error().message);
  }
  struct stat info {};
  if (::fstatat(parent->directory.get(), parent->name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
      !S_ISREG(info.st_mode)) {
    return make_error(ErrorCode::kUnsafePath, "model file '" + relative + "' under '" +
                                                  root.path() +
                                                  "' exists and is not a regular file");
  }
  return parent;
}

struct FoundIndexes {
  std::string source;  // "api" | "tag" | ""
  std::map<Digest, ChunkIndex> by_blob;
};

Result<FoundIndexes> find_chunk_indexes(RegistryClient& client, const std::string& repository,
                                        const Digest& manifest_digest,
                                        std::uint64_t& bytes_fetched) {
  FoundIndexes found;
  std::optional<oci::Index> referrers;
  auto listed = client.fetch_referrers(repository, manifest_digest);
  if (!listed.ok()) return std::move(listed).error();
  if (*listed) {
    referrers = std::move(**listed);
    found.source = "api";
  }
  const bool api_lists_index =
      referrers && std::any_of(referrers->manifests.begin(), referrers->manifests.end(),
                               [](const oci::Descriptor& entry) {
                                 return entry.artifact_type == kArtifactTypeChunkIndex;
                               });
  if (!api_lists_index) {
    auto tagged = client.fetch_manifest(repository, referrers_fallback_tag(manifest_digest));
    if (tagged.ok()) {
      auto index = oci::parse_index(tagged->bytes);
      if (!index.ok()) {
        return make_error(index.error().code, "referrers fallback tag of " +
                                                  manifest_digest.to_string() + ": " +
                                                  index.error().message);
      }
      referrers = std::move(*index);
      found.source = "tag";
    } else if (tagged.error().code != ErrorCode::kNotFound) {
      return std::move(tagged).error();
    }
  }
  if (!referrers) return found;
  bool any = false;
  for (const oci::Descriptor& entry : referrers->manifests) {
    if (entry.artifact_type != kArtifactTypeChunkIndex) continue;
    auto response = client.fetch_manifest(repository, entry.digest.to_string());
    if (!response.ok()) return std::move(response).error();
    auto manifest = oci::parse_manifest(response->bytes);
    if (!manifest.ok()) {
      return make_error(manifest.error().code, "chunk index manifest " + entry.digest.to_string() +
                                                   ": " + manifest.error().message);
    }
    if (!manifest->subject || manifest->subject->digest != manifest_digest) {
      return make_error(ErrorCode::kCorruptInput,
                        "chunk index manifest " + entry.digest.to_string() + " does not refer to " +
                            manifest_digest.to_string());
    }
    for (const oci::Descriptor& layer : manifest->layers) {
      if (layer.media_type != kMediaTypeChunkIndex) continue;
      auto bytes = client.fetch_blob(repository, layer.digest, kMaxChunkIndexBytes);
      if (!bytes.ok()) return std::move(bytes).error();
      bytes_fetched += bytes->size();
      auto index = parse_chunk_index(*bytes);
      if (!index.ok()) {
        return make_error(index.error().code,
                          "blob " + layer.digest.to_string() + ": " + index.error().message);
      }
      const auto named = layer.annotations.find(std::string(kAnnotationIndexedBlob));
      if (named == layer.annotations.end() || named->second != index->blob_digest.to_string()) {
        return make_error(ErrorCode::kCorruptInput,
                          "chunk index " + layer.digest.to_string() +
                              " describes a blob its annotation does not name");
      }
      found.by_blob[index->blob_digest] = std::move(*index);
      any = true;
    }
  }
  if (!any) found.source.clear();
  return found;
}

Result<std::string> model_format_of(const oci::Manifest& manifest, const std::string& shown) {
  const std::string& config_type = manifest.config.media_type;
  if (config_type == kMediaTypeDockerConfigV01 || config_type == kMediaTypeDockerConfigV02) {
    return std::string("docker");
  }
  if (config_type == kMediaTypeModelPackConfig ||
      manifest.artifact_type == kArtifactTypeModelPack) {
    return std::string("modelpack");
  }
  return make_error(
      ErrorCode::kUnsupported,
      shown + " is not a model artifact (config media type '" + config_type.substr(0, 100) + "')");
}

// Each layer's file path (annotation, else the digest's hex), checked before anything is written.
Result<std::vector<std::string>> model_file_paths(const oci::Manifest& manifest) {
  std::vector<std::string> paths;
  std::set<std::string> seen;
  for (const oci::Descriptor& layer : manifest.layers) {
    const auto named = layer.annotations.find(std::string(kAnnotationFilePath));
    std::string path = named != layer.annotations.end() ? named->second : layer.digest.hex();
    STRATA_TRY(check_relative_path(path));
    if (!seen.insert(path).second) {
      return make_error(ErrorCode::kCorruptInput, "two layers name the file '" + path + "'");
    }
    paths.push_back(std::move(path));
  }
  return paths;
}

// Where files are assembled: a fresh private directory (core/base/safe_path.h PrivateDirectory:
// never a name planted in advance), inside --out so that moving them into place is a rename on
// one file system, else in the temp directory; it goes, with anything left in it, when the pull
// ends.
struct PullTarget {
  std::optional<safe_path::RootDirectory> out_root;
  std::optional<safe_path::PrivateDirectory> work;
};

Result<PullTarget> open_pull_target(const ModelPullOptions& options) {
  PullTarget target;
  std::string work_parent = options.out_directory;
  if (!options.out_directory.empty()) {
    auto root = safe_path::RootDirectory::open(options.out_directory, true);
    if (!root.ok()) return std::move(root).error();
    target.out_root.emplace(std::move(*root));
  } else {
    std::error_code error;
    work_parent = fs::temp_directory_path(error).string();
    if (error) return make_error(ErrorCode::kIo, "no temporary directory: " + error.message());
  }
  auto work = safe_path::PrivateDirectory::create(work_parent, ".strata-model-pull-");
  if (!work.ok()) return std::move(work).error();
  target.work.emplace(std::move(*work));
  return target;
}

// A weight file the store holds whole, exported and hashed again before it lands under the
// manifest's name.
Result<void> export_stored_file(const ChunkStore& store, const oci::Descriptor& layer,
                                const safe_path::PrivateDirectory& work, const std::string& name,
                                const std::string& shown) {
  const std::string partial = work.path() + "/" + name;
  const int fd =
      ::openat(work.fd(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(ErrorCode::kIo, "cannot create " + partial);
  FileDescriptor out(fd);
  Sha256 exported_hash;
  auto exported = export_layer_tar(store, layer.digest, [&](ByteSpan bytes) {
    exported_hash.update(bytes);
    return write_all(fd, bytes, partial);
  });
  if (!exported.ok()) return std::move(exported).error();
  if (const Digest got = exported_hash.finish(); got != layer.digest) {
    return make_error(ErrorCode::kDigestMismatch,
                      "model file '" + shown + "': the store's copy of " +
                          layer.digest.to_string() + " hashes to " + got.to_string() +
                          " (run strata verify on the store)");
  }
  return {};
}

struct ModelPullContext {
  RegistryClient& client;
  const std::string& repository;
  ChunkStore& store;
  const ModelPullOptions& options;
  const FoundIndexes& indexes;
  const registry::detail::FoundDeltas* deltas;
  const safe_path::PrivateDirectory& work;
};

// One layer into the work directory as `name`: exported from the store, by chunk ranges (and
// deltas), or fetched whole and ingested (so the next pull dedups).
Result<void> pull_model_file(const ModelPullContext& context, const oci::Descriptor& layer,
                             const std::string& name, PulledModelFile& file) {
  const std::string partial = context.work.path() + "/" + name;
  // A weight file is stored as a layer whose diff_id is the file's own digest (it is not
  // compressed), so only a layer filed under that diff_id can stand for it.
  if (context.store.find_layer_by_diff_id(layer.digest).ok()) {
    file.already_stored = true;
    const auto start = std::chrono::steady_clock::now();
    auto exported = export_stored_file(context.store, layer, context.work, name, file.path);
    file.stages.exported += seconds_since(start);
    return exported;
  }
  const auto index = context.indexes.by_blob.find(layer.digest);
  if (index != context.indexes.by_blob.end() && index->second.blob_size == layer.size) {
    file.indexed = true;
    file.chunks = index->second.chunks.size();
    const detail::IndexedBlobSource source{context.client, context.repository, context.store,
                                           context.options, context.deltas};
    return detail::pull_indexed_blob(source, layer, index->second, partial, file);
  }
  auto start = std::chrono::steady_clock::now();
  auto fetched =
      context.client.fetch_blob_to_file(context.repository, layer.digest, layer.size, partial);
  file.stages.fetch += seconds_since(start);
  if (!fetched.ok()) return std::move(fetched).error();
  file.bytes_fetched += *fetched;
  file.bytes_fetched_without_deltas += *fetched;
  if (is_weight_media_type(layer.media_type)) {
    WeightIngestOptions ingest;
    ingest.store = &context.store;
    ingest.media_type = layer.media_type;
    ingest.zstd_level = context.options.zstd_level;
    start = std::chrono::steady_clock::now();
    auto ingested = ingest_weight_file(partial, ingest, {});
    file.stages.ingest += seconds_since(start);
    if (!ingested.ok()) return std::move(ingested).error();
    file.chunks = ingested->index.chunks.size();
  }
  return {};
}

// The model's delta referrer, looked for only where a weight blob will come by chunk ranges.
std::optional<registry::detail::FoundDeltas> find_model_deltas(
    RegistryClient& client, const std::string& repository, const oci::Manifest& manifest,
    const Digest& subject, const FoundIndexes& indexes, const ChunkStore& store) {
  const bool any_ranges =
      std::any_of(manifest.layers.begin(), manifest.layers.end(), [&](const oci::Descriptor& l) {
        return indexes.by_blob.contains(l.digest) && !store.find_layer_by_diff_id(l.digest).ok();
      });
  if (!any_ranges) return std::nullopt;
  return registry::detail::find_delta_referrer(client, repository, subject);
}

}  // namespace

ModelPullStages& ModelPullStages::operator+=(const ModelPullStages& other) {
  fetch += other.fetch;
  verify += other.verify;
  decode += other.decode;
  store += other.store;
  write += other.write;
  local += other.local;
  blob_hash += other.blob_hash;
  commit += other.commit;
  ingest += other.ingest;
  exported += other.exported;
  return *this;
}

Result<ModelPushReport> push_model(RegistryClient& client, const oci::OciLayout& layout,
                                   std::string_view tag,
                                   const registry::ImageReference& destination) {
  ModelPushReport report;
  auto descriptor = layout.resolve(tag);
  if (!descriptor.ok()) return std::move(descriptor).error();
  const std::string& repository = destination.repository;
  STRATA_TRY(push_manifest_with_blobs(client, layout, repository, *descriptor,
                                      destination.reference(), report));
  report.manifest_digest = descriptor->digest;
  auto referrer = layout.resolve(referrers_fallback_tag(descriptor->digest));
  if (!referrer.ok()) {
    if (referrer.error().code == ErrorCode::kNotFound) return report;  // packaged elsewhere
    return std::move(referrer).error();
  }
  STRATA_TRY(push_manifest_with_blobs(client, layout, repository, *referrer,
                                      referrer->digest.to_string(), report));
  report.chunk_index_digest = referrer->digest;
  auto listed = client.fetch_referrers(repository, descriptor->digest);
  if (!listed.ok()) return std::move(listed).error();
  const bool api_lists_it =
      *listed &&
      std::any_of((*listed)->manifests.begin(), (*listed)->manifests.end(),
                  [&](const oci::Descriptor& entry) { return entry.digest == referrer->digest; });
  if (api_lists_it) {
    report.referrers = "api";
    return report;
  }
  oci::Descriptor entry = *referrer;
  entry.artifact_type = std::string(kArtifactTypeChunkIndex);
  STRATA_TRY(update_fallback_tag(client, repository, descriptor->digest, entry));
  report.referrers = "tag";
  return report;
}

Result<fastpull::DeltaReferrerReport> write_model_delta_referrer(const ChunkStore& store,
                                                                 oci::OciLayout& layout,
                                                                 std::string_view tag) {
  auto descriptor = layout.resolve(tag);
  if (!descriptor.ok()) return std::move(descriptor).error();
  auto manifest = read_manifest(layout, *descriptor);
  if (!manifest.ok()) return std::move(manifest).error();
  auto referrer = layout.resolve(referrers_fallback_tag(descriptor->digest));
  if (!referrer.ok()) {
    return make_error(referrer.error().code,
                      "model " + std::string(tag) + " has no chunk index in the layout (" +
                          referrer.error().message + "); package it with --store");
  }
  auto index_manifest = read_manifest(layout, *referrer);
  if (!index_manifest.ok()) return std::move(index_manifest).error();
  std::map<Digest, ChunkIndex> by_blob;
  for (const oci::Descriptor& blob : index_manifest->first.layers) {
    if (blob.media_type != kMediaTypeChunkIndex) continue;
    auto bytes = layout.read_blob(blob);
    if (!bytes.ok()) return std::move(bytes).error();
    auto index = parse_chunk_index(*bytes);
    if (!index.ok()) {
      return make_error(index.error().code,
                        "chunk index " + blob.digest.to_string() + ": " + index.error().message);
    }
    by_blob[index->blob_digest] = std::move(*index);
  }
  // The chunks in the order a pull asks for them: layer by layer, blob order.
  std::vector<fastpull::DeltaCandidate> candidates;
  for (const oci::Descriptor& layer : manifest->first.layers) {
    const auto index = by_blob.find(layer.digest);
    if (index == by_blob.end() || index->second.blob_size != layer.size) continue;
    for (const ChunkIndexEntry& chunk : index->second.chunks) {
      candidates.push_back(fastpull::DeltaCandidate{chunk.digest, chunk.length, chunk.length});
    }
  }
  oci::Descriptor subject = *descriptor;
  if (subject.media_type.empty()) subject.media_type = std::string(oci::kMediaTypeImageManifest);
  auto report = fastpull::write_delta_referrer_for_chunks(store, layout, subject, candidates);
  if (!report.ok()) return report;
  STRATA_TRY(layout.set_tag(model_delta_referrer_tag(subject.digest), report->referrer));
  return report;
}

std::string model_delta_referrer_tag(const Digest& subject) {
  return referrers_fallback_tag(subject) + ".delta";
}

Result<ModelPullReport> pull_model(RegistryClient& client, const registry::ImageReference& source,
                                   ChunkStore& store, const ModelPullOptions& options) {
  const auto pull_start = std::chrono::steady_clock::now();
  ModelPullReport report;
  const std::string& repository = source.repository;
  auto response = client.fetch_manifest(repository, source.reference());
  if (!response.ok()) return std::move(response).error();
  auto manifest = oci::parse_manifest(response->bytes);
  if (!manifest.ok()) {
    return make_error(manifest.error().code, source.to_string() + ": " + manifest.error().message);
  }
  report.manifest_digest = response->digest;
  auto format = model_format_of(*manifest, source.to_string());
  if (!format.ok()) return std::move(format).error();
  report.format = *format;
  auto config = client.fetch_blob(repository, manifest->config.digest, kMaxConfigBytes);
  if (!config.ok()) return std::move(config).error();
  report.bytes_fetched += config->size();

  auto indexes =
      find_chunk_indexes(client, repository, report.manifest_digest, report.bytes_fetched);
  if (!indexes.ok()) return std::move(indexes).error();
  report.referrers = indexes->source;
  std::optional<registry::detail::FoundDeltas> deltas;
  if (options.deltas) {
    deltas =
        find_model_deltas(client, repository, *manifest, report.manifest_digest, *indexes, store);
  }
  if (deltas) {
    report.delta_referrer = deltas->index ? deltas->source : "";
    report.delta_refused = deltas->refused;
    report.delta_referrer_bytes = deltas->bytes_fetched;
    report.bytes_fetched += deltas->bytes_fetched;
  }

  auto target = open_pull_target(options);
  if (!target.ok()) return std::move(target).error();
  auto paths = model_file_paths(*manifest);
  if (!paths.ok()) return std::move(paths).error();
  // Refused before any download, and again (the directory may have changed) before each move.
  for (const std::string& path : *paths) {
    if (!target->out_root) break;
    auto parent = output_parent(*target->out_root, path);
    if (!parent.ok()) return std::move(parent).error();
  }
  const ModelPullContext context{client,       repository,
                                 store,        options,
                                 *indexes,     deltas && deltas->index ? &*deltas : nullptr,
                                 *target->work};
  std::uint64_t without = report.bytes_fetched - report.delta_referrer_bytes;
  for (std::size_t l = 0; l < manifest->layers.size(); ++l) {
    PulledModelFile file;
    file.path = (*paths)[l];
    file.descriptor = manifest->layers[l];
    report.total_bytes += file.descriptor.size;
    const std::string name = "file-" + std::to_string(l);
    const auto file_start = std::chrono::steady_clock::now();
    STRATA_TRY(pull_model_file(context, file.descriptor, name, file));
    file.seconds = seconds_since(file_start);
    report.stages += file.stages;
    if (!target->out_root) {
      std::error_code ignored;
      fs::remove(target->work->path() + "/" + name, ignored);
    }
    report.bytes_fetched += file.bytes_fetched;
    without += file.bytes_fetched_without_deltas;
    report.files.push_back(std::move(file));
  }
  report.bytes_fetched_without_deltas = without;
  // Every file is complete and checked: only now do they move into --out.
  for (std::size_t l = 0; target->out_root && l < report.files.size(); ++l) {
    const std::string& path = report.files[l].path;
    auto parent = output_parent(*target->out_root, path);
    if (!parent.ok()) return std::move(parent).error();
    STRATA_TRY(safe_path::rename_into(target->work->fd(), "file-" + std::to_string(l), *parent,
                                      options.out_directory + "/" + path));
  }
  report.wire = client.counters();
  report.seconds = seconds_since(pull_start);
  return report;
}

}  // namespace strata::model
