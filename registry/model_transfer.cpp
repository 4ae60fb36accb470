// Pushing and pulling model artifacts with their chunk index (include/strata/model_artifact.h §4,
// shared/specs/models.md §8). Push: blobs, the model manifest, the chunk index referrer (subject =
// the model manifest), then, where GET /v2/<repo>/referrers/<digest> is 404 (no referrers API,
// e.g. Debian's docker-registry 2.8), the tag-schema fallback: an image index tagged
// "sha256-<hex>" listing the referrer (distribution-spec v1.1 "Referrers Tag Schema"). Pull: the
// manifest, the chunk index (referrers API first, then the fallback tag), and for each weight blob
// only the chunks the store lacks, as merged range GETs; every chunk is checked against its
// SHA-256 and every assembled file against its blob digest before the store layer is committed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "core/base/file_io.h"
#include "core/base/safe_path.h"
#include "core/model/model_weight_ingest.h"
#include "strata/engine.h"
#include "strata/model_artifact.h"
#include "strata/recipe.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using registry::ByteRange;
using registry::RegistryClient;

constexpr std::uint64_t kMaxConfigBytes = std::uint64_t{16} << 20U;
constexpr std::uint64_t kMaxChunkIndexBytes = std::uint64_t{256} << 20U;
constexpr std::size_t kMaxPathBytes = 4096;

ByteSpan as_span(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

Result<void> read_all_at(int fd, std::uint64_t offset, MutableByteSpan out,
                         const std::string& path) {
  auto read = pread_all(fd, offset, out, path);
  if (!read.ok()) return std::move(read).error();
  if (*read != out.size()) return make_error(ErrorCode::kIo, "cannot read back " + path);
  return {};
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

// One weight blob by chunk ranges: windows of about window_bytes of missing chunks are fetched
// (adjacent chunks merged into one range), verified, stored, and written in order to `assembly`.
Result<void> pull_indexed_blob(RegistryClient& client, const std::string& repository,
                               const oci::Descriptor& layer, const ChunkIndex& index,
                               ChunkStore& store, const ModelPullOptions& options,
                               const std::string& assembly, PulledModelFile& file) {
  const std::string& where = file.path;
  auto writer = store.writer();
  if (!writer.ok()) return std::move(writer).error();
  const int fd = ::open(assembly.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(ErrorCode::kIo, "cannot create " + assembly + ": " + std::strerror(errno));
  }
  FileDescriptor out(fd);
  Sha256 blob_hash;
  std::map<Digest, std::uint64_t> written_at;  // chunks fetched earlier: where the file holds them
  const auto& chunks = index.chunks;
  std::size_t next = 0;
  while (next < chunks.size()) {
    // The window: chunks from `next` until about window_bytes of them are missing.
    std::size_t end = next;
    std::uint64_t missing_bytes = 0;
    std::vector<std::size_t> missing;
    std::set<Digest> wanted;
    while (end < chunks.size() && (end == next || missing_bytes < options.window_bytes)) {
      const ChunkIndexEntry& chunk = chunks[end];
      if (!store.contains(chunk.digest) && !written_at.contains(chunk.digest) &&
          wanted.insert(chunk.digest).second) {
        missing.push_back(end);
        missing_bytes += chunk.length;
      }
      ++end;
    }
    // Adjacent missing chunks become one range.
    std::vector<ByteRange> ranges;
    std::vector<std::vector<std::size_t>> range_chunks;
    for (const std::size_t i : missing) {
      if (!ranges.empty() && ranges.back().offset + ranges.back().length == chunks[i].offset) {
        ranges.back().length += chunks[i].length;
        range_chunks.back().push_back(i);
      } else {
        ranges.push_back(ByteRange{chunks[i].offset, chunks[i].length});
        range_chunks.push_back({i});
      }
    }
    std::map<Digest, std::vector<std::uint8_t>> fetched;
    const std::size_t per_request = std::max<std::size_t>(1, options.max_ranges_per_request);
    for (std::size_t first = 0; first < ranges.size(); first += per_request) {
      const std::size_t count = std::min(per_request, ranges.size() - first);
      auto bodies = client.fetch_ranges(repository, layer.digest,
                                        std::span<const ByteRange>(ranges).subspan(first, count));
      if (!bodies.ok()) return std::move(bodies).error();
      for (std::size_t r = 0; r < count; ++r) {
        const std::vector<std::uint8_t>& body = (*bodies)[r];
        if (body.size() != ranges[first + r].length) {
          return make_error(ErrorCode::kCorruptInput,
                            where + ": range at " + std::to_string(ranges[first + r].offset) +
                                " came back with " + std::to_string(body.size()) + " bytes");
        }
        file.bytes_fetched += body.size();
        std::size_t at = 0;
        for (const std::size_t i : range_chunks[first + r]) {
          const ChunkIndexEntry& chunk = chunks[i];
          const ByteSpan bytes = ByteSpan(body).subspan(at, chunk.length);
          at += chunk.length;
          if (sha256_of(bytes) != chunk.digest) {
            return make_error(ErrorCode::kDigestMismatch,
                              where + ": chunk " + std::to_string(i) + " at offset " +
                                  std::to_string(chunk.offset) + " does not hash to " +
                                  chunk.digest.to_string() + " as its chunk index says");
          }
          auto stored = compress_chunk_zstd(bytes, options.zstd_level);
          if (!stored.ok()) return std::move(stored).error();
          STRATA_TRY(writer->put_chunk(chunk.digest, bytes, *stored, Codec::kZstd));
          ++file.chunks_fetched;
          fetched.emplace(chunk.digest, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
        }
      }
    }
    // Write the window out in order, from this round's fetch, the file itself, or the store.
    std::vector<std::uint8_t> reread;
    for (std::size_t i = next; i < end; ++i) {
      const ChunkIndexEntry& chunk = chunks[i];
      ByteSpan bytes;
      std::vector<std::uint8_t> from_store;
      if (const auto got = fetched.find(chunk.digest); got != fetched.end()) {
        bytes = got->second;
        written_at.emplace(chunk.digest, chunk.offset);
      } else if (const auto earlier = written_at.find(chunk.digest); earlier != written_at.end()) {
        reread.resize(chunk.length);
        STRATA_TRY(read_all_at(fd, earlier->second, reread, assembly));
        if (sha256_of(reread) != chunk.digest) {
          return make_error(
              ErrorCode::kDigestMismatch,
              assembly + " changed while being written (chunk " + std::to_string(i) + ")");
        }
        bytes = reread;
      } else {
        auto read = store.read_chunk(chunk.digest);
        if (!read.ok()) return std::move(read).error();
        if (read->size() != chunk.length) {
          return make_error(ErrorCode::kCorruptInput,
                            where + ": chunk " + std::to_string(i) + " has " +
                                std::to_string(read->size()) + " bytes in the store, " +
                                std::to_string(chunk.length) + " in the index");
        }
        from_store = std::move(*read);
        bytes = from_store;
      }
      blob_hash.update(bytes);
      STRATA_TRY(write_all(fd, bytes, assembly));
    }
    next = end;
  }
  const Digest digest = blob_hash.finish();
  if (digest != layer.digest) {
    return make_error(ErrorCode::kDigestMismatch, where + ": assembled file hashes to " +
                                                      digest.to_string() + ", the manifest says " +
                                                      layer.digest.to_string());
  }
  if (::fsync(fd) != 0) {
    return make_error(ErrorCode::kIo, "cannot fsync " + assembly + ": " + std::strerror(errno));
  }
  RecipeBuilder builder;
  for (const ChunkIndexEntry& chunk : chunks) builder.add_chunk(chunk.digest, chunk.length);
  Recipe recipe = builder.finish();
  recipe.set_diff_id(layer.digest);
  LayerRecord record;
  record.diff_id = layer.digest;
  record.layer_digest = layer.digest;
  record.media_type = layer.media_type;
  record.recipe = serialize_recipe(recipe);
  record.size = layer.size;
  auto committed = writer->commit_layer(record, recipe.distinct_chunks());
  if (!committed.ok()) return std::move(committed).error();
  return {};
}

}  // namespace

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

Result<ModelPullReport> pull_model(RegistryClient& client, const registry::ImageReference& source,
                                   ChunkStore& store, const ModelPullOptions& options) {
  ModelPullReport report;
  const std::string& repository = source.repository;
  auto response = client.fetch_manifest(repository, source.reference());
  if (!response.ok()) return std::move(response).error();
  auto manifest = oci::parse_manifest(response->bytes);
  if (!manifest.ok()) {
    return make_error(manifest.error().code, source.to_string() + ": " + manifest.error().message);
  }
  report.manifest_digest = response->digest;
  const std::string& config_type = manifest->config.media_type;
  if (config_type == kMediaTypeDockerConfigV01 || config_type == kMediaTypeDockerConfigV02) {
    report.format = "docker";
  } else if (config_type == kMediaTypeModelPackConfig ||
             manifest->artifact_type == kArtifactTypeModelPack) {
    report.format = "modelpack";
  } else {
    return make_error(ErrorCode::kUnsupported, source.to_string() +
                                                   " is not a model artifact (config media type '" +
                                                   config_type.substr(0, 100) + "')");
  }
  auto config = client.fetch_blob(repository, manifest->config.digest, kMaxConfigBytes);
  if (!config.ok()) return std::move(config).error();
  report.bytes_fetched += config->size();

  auto indexes =
      find_chunk_indexes(client, repository, report.manifest_digest, report.bytes_fetched);
  if (!indexes.ok()) return std::move(indexes).error();
  report.referrers = indexes->source;

  // Files are assembled in a fresh private directory (core/base/safe_path.h PrivateDirectory: never
  // a name planted in advance), inside --out so that moving them into place is a rename on one file
  // system, else in the temp directory; it goes, with anything left in it, when the pull ends.
  std::optional<safe_path::RootDirectory> out_root;
  std::string work_parent = options.out_directory;
  if (!options.out_directory.empty()) {
    auto root = safe_path::RootDirectory::open(options.out_directory, true);
    if (!root.ok()) return std::move(root).error();
    out_root.emplace(std::move(*root));
  } else {
    std::error_code error;
    work_parent = fs::temp_directory_path(error).string();
    if (error) {
      return make_error(ErrorCode::kIo, "no temporary directory: " + error.message());
    }
  }
  auto work = safe_path::PrivateDirectory::create(work_parent, ".strata-model-pull-");
  if (!work.ok()) return std::move(work).error();
  // Check every path before writing anything.
  std::vector<std::string> paths;
  std::set<std::string> seen;
  for (const oci::Descriptor& layer : manifest->layers) {
    report.total_bytes += layer.size;
    const auto named = layer.annotations.find(std::string(kAnnotationFilePath));
    std::string path = named != layer.annotations.end() ? named->second : layer.digest.hex();
    STRATA_TRY(check_relative_path(path));
    if (!seen.insert(path).second) {
      return make_error(ErrorCode::kCorruptInput, "two layers name the file '" + path + "'");
    }
    paths.push_back(std::move(path));
  }

  for (std::size_t l = 0; l < manifest->layers.size(); ++l) {
    const oci::Descriptor& layer = manifest->layers[l];
    PulledModelFile file;
    file.path = paths[l];
    file.descriptor = layer;
    if (out_root) {
      // Refused before the download, and again (the directory may have changed) before the move.
      auto parent = output_parent(*out_root, file.path);
      if (!parent.ok()) return std::move(parent).error();
    }
    const std::string partial_name = "file-" + std::to_string(l);
    const std::string partial = work->path() + "/" + partial_name;
    struct Cleanup {
      std::string path;
      ~Cleanup() {
        std::error_code ignored;
        fs::remove(path, ignored);
      }
    } cleanup{partial};

    const auto index = indexes->by_blob.find(layer.digest);
    // A weight file is stored as a layer whose diff_id is the file's own digest (it is not
    // compressed), so only a layer filed under that diff_id can stand for it, and what the store
    // gives back is hashed again before it lands under the manifest's name.
    if (store.find_layer_by_diff_id(layer.digest).ok()) {
      file.already_stored = true;
      const int fd = ::openat(work->fd(), partial_name.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
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
                          "model file '" + file.path + "': the store's copy of " +
                              layer.digest.to_string() + " hashes to " + got.to_string() +
                              " (run strata verify on the store)");
      }
    } else if (index != indexes->by_blob.end() && index->second.blob_size == layer.size) {
      file.indexed = true;
      file.chunks = index->second.chunks.size();
      STRATA_TRY(pull_indexed_blob(client, repository, layer, index->second, store, options,
                                   partial, file));
    } else {
      auto fetched = client.fetch_blob_to_file(repository, layer.digest, layer.size, partial);
      if (!fetched.ok()) return std::move(fetched).error();
      file.bytes_fetched += *fetched;
      if (is_weight_media_type(layer.media_type)) {
        WeightIngestOptions ingest;
        ingest.store = &store;
        ingest.media_type = layer.media_type;
        ingest.zstd_level = options.zstd_level;
        auto ingested = ingest_weight_file(partial, ingest, {});
        if (!ingested.ok()) return std::move(ingested).error();
        file.chunks = ingested->index.chunks.size();
      }
    }
    report.bytes_fetched += file.bytes_fetched;
    if (out_root) {
      auto parent = output_parent(*out_root, file.path);
      if (!parent.ok()) return std::move(parent).error();
      STRATA_TRY(safe_path::rename_into(work->fd(), partial_name, *parent,
                                        options.out_directory + "/" + file.path));
    }
    report.files.push_back(std::move(file));
  }
  report.wire = client.counters();
  return report;
}

}  // namespace strata::model
