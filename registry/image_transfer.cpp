// Whole images between an OCI layout / chunk store and a registry, in the order the distribution
// spec requires (shared/specs/layer-formats.md §3: a registry rejects a manifest naming unknown
// blobs, so blobs go first): push = HEAD each blob (skip what is there), mount from named
// repositories, upload the rest, then PUT the manifest; pull = manifest (an index resolved to one
// platform), config, layers fetched in parallel and each verified before it is ingested into the
// store (engine.h) or written into a layout, and its diff_id checked against the config. Chunked
// layers (zstd:chunked, eStargz) going into a store fetch only the chunks it lacks
// (registry/chunked_layer_pull.h); the others, and those whose TOC cannot be used, come whole.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "core/base/safe_path.h"
#include "registry/chunked_layer_pull.h"
#include "registry/parallel_work.h"
#include "strata/chunked_layer.h"
#include "strata/engine.h"
#include "strata/registry.h"
#include "strata/store.h"

namespace strata::registry {
namespace {

using detail::run_parallel;

class FileReader {
 public:
  static Result<std::shared_ptr<FileReader>> open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
    return std::make_shared<FileReader>(fd, path);
  }
  FileReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileReader() { ::close(fd_); }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  Result<std::size_t> read(std::uint64_t offset, MutableByteSpan out) const {
    while (true) {
      const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return make_error(ErrorCode::kIo, path_ + ": read failed: " + std::strerror(errno));
      return static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
  std::string path_;
};

bool is_index_media_type(std::string_view media_type) {
  return media_type == oci::kMediaTypeImageIndex || media_type == oci::kMediaTypeDockerManifestList;
}

TransferCounters counters_since(const TransferCounters& before, const TransferCounters& after) {
  return TransferCounters{after.bytes_received - before.bytes_received,
                          after.bytes_sent - before.bytes_sent, after.requests - before.requests,
                          after.retries - before.retries};
}

}  // namespace

Result<PushReport> push_image(RegistryClient& client, const oci::OciLayout& layout,
                              std::string_view tag, const ImageReference& destination,
                              const PushOptions& options, const TransferProgressFn& progress) {
  auto image = layout.load_image(tag);
  if (!image.ok()) return std::move(image).error();
  const TransferCounters wire_before = client.counters();
  std::vector<oci::Descriptor> blobs{image->manifest.config};
  for (const auto& layer : image->manifest.layers) {
    const bool seen = std::any_of(blobs.begin(), blobs.end(), [&](const oci::Descriptor& blob) {
      return blob.digest == layer.digest;
    });
    if (!seen) blobs.push_back(layer);
  }
  PushReport report;
  report.blobs = blobs.size();
  std::uint64_t total = 0;
  for (const auto& blob : blobs) total += blob.size;
  std::mutex report_mutex;
  std::atomic<std::uint64_t> done{0};
  const auto advance = [&](std::uint64_t bytes) {
    const std::uint64_t now = done.fetch_add(bytes) + bytes;
    if (progress) progress(TransferProgress{now, total});
  };
  const std::string& repository = destination.repository;
  auto pushed = run_parallel(blobs.size(), options.jobs, [&](std::size_t i) -> Result<void> {
    const oci::Descriptor& blob = blobs[i];
    auto present = client.stat_blob(repository, blob.digest);
    if (!present.ok()) return std::move(present).error();
    if (*present) {
      std::lock_guard lock(report_mutex);
      ++report.blobs_skipped;
      report.bytes_skipped += blob.size;
      advance(blob.size);
      return {};
    }
    for (const std::string& from : options.mount_from) {
      if (from == repository) continue;
      auto mounted = client.mount_blob(repository, blob.digest, from);
      if (!mounted.ok()) return std::move(mounted).error();
      if (*mounted) {
        std::lock_guard lock(report_mutex);
        ++report.blobs_mounted;
        report.bytes_skipped += blob.size;
        advance(blob.size);
        return {};
      }
    }
    auto reader = FileReader::open(layout.blob_path(blob.digest));
    if (!reader.ok()) return std::move(reader).error();
    std::uint64_t reported = 0;
    STRATA_TRY(client.push_blob(
        repository, blob.digest, blob.size,
        [file = *reader](std::uint64_t offset, MutableByteSpan out) {
          return file->read(offset, out);
        },
        [&](std::uint64_t sent) {
          // A retried upload starts again at 0: only growth counts as progress.
          if (sent > reported) {
            advance(sent - reported);
            reported = sent;
          }
        }));
    if (reported < blob.size) advance(blob.size - reported);
    std::lock_guard lock(report_mutex);
    ++report.blobs_uploaded;
    report.bytes_uploaded += blob.size;
    return {};
  });
  if (!pushed.ok()) return std::move(pushed).error();

  auto manifest_bytes = layout.read_blob(image->manifest_descriptor);
  if (!manifest_bytes.ok()) return std::move(manifest_bytes).error();
  const std::string reference = destination.reference();
  auto digest = client.push_manifest(repository, reference, image->manifest_descriptor.media_type,
                                     *manifest_bytes);
  if (!digest.ok()) return std::move(digest).error();
  if (*digest != image->manifest_descriptor.digest) {
    return make_error(ErrorCode::kInternal, "pushed manifest hashes differently from the layout's");
  }
  report.manifest_digest = *digest;
  report.wire = counters_since(wire_before, client.counters());
  return report;
}

namespace {

// Resolves a fetched manifest or index to an image manifest for the wanted platform.
Result<ManifestResponse> resolve_platform_manifest(RegistryClient& client,
                                                   const std::string& repository,
                                                   ManifestResponse fetched,
                                                   const PullOptions& options) {
  if (!is_index_media_type(fetched.media_type)) return fetched;
  auto index = oci::parse_index(fetched.bytes);
  if (!index.ok()) return std::move(index).error();
  for (const auto& entry : index->manifests) {
    if (!entry.platform || entry.platform->os != options.os ||
        entry.platform->architecture != options.architecture) {
      continue;
    }
    auto chosen = client.fetch_manifest(repository, entry.digest.to_string());
    if (!chosen.ok()) return std::move(chosen).error();
    if (is_index_media_type(chosen->media_type)) {
      return make_error(ErrorCode::kUnsupported, "nested image index in " + repository);
    }
    return chosen;
  }
  return make_error(ErrorCode::kNotFound, repository + ": index has no manifest for " + options.os +
                                              "/" + options.architecture);
}

// What a pull reads before any layer: the image manifest (an index resolved to the platform)
// and its config, with the config's diff_ids matching the layers one to one.
struct ImageMetadata {
  ManifestResponse resolved;
  oci::Manifest manifest;
  std::vector<std::uint8_t> config_bytes;
  oci::ImageConfig config;
};

Result<ImageMetadata> fetch_image_metadata(RegistryClient& client, const ImageReference& source,
                                           const PullOptions& options) {
  const std::string& repository = source.repository;
  auto fetched = client.fetch_manifest(repository, source.reference());
  if (!fetched.ok()) return std::move(fetched).error();
  if (source.digest && fetched->digest != *source.digest) {
    return make_error(ErrorCode::kDigestMismatch,
                      source.to_string() + ": manifest hashes to " + fetched->digest.to_string());
  }
  auto resolved = resolve_platform_manifest(client, repository, std::move(*fetched), options);
  if (!resolved.ok()) return std::move(resolved).error();
  auto manifest = oci::parse_manifest(resolved->bytes);
  if (!manifest.ok()) return std::move(manifest).error();
  auto config_bytes = client.fetch_blob(repository, manifest->config.digest, oci::kMaxJsonBytes);
  if (!config_bytes.ok()) return std::move(config_bytes).error();
  if (config_bytes->size() != manifest->config.size) {
    return make_error(ErrorCode::kCorruptInput, "config size differs from its descriptor");
  }
  auto config = oci::parse_image_config(*config_bytes);
  if (!config.ok()) return std::move(config).error();
  if (config->diff_ids.size() != manifest->layers.size()) {
    return make_error(ErrorCode::kCorruptInput,
                      source.to_string() + ": config lists " +
                          std::to_string(config->diff_ids.size()) + " diff_ids for " +
                          std::to_string(manifest->layers.size()) + " layers");
  }
  return ImageMetadata{std::move(*resolved), std::move(*manifest), std::move(*config_bytes),
                       std::move(*config)};
}

// Downloads in flight go to a fresh private directory (mode 0700, a random name made like
// mkdtemp's, never one that already exists: another user cannot have planted it, or a symlink
// in it), removed with its contents when the pull ends.
Result<safe_path::PrivateDirectory> make_work_directory(const PullOptions& options) {
  std::error_code fs_error;
  const std::string work_parent = options.work_directory.empty()
                                      ? std::filesystem::temp_directory_path(fs_error).string()
                                      : options.work_directory;
  if (fs_error) return make_error(ErrorCode::kIo, "no temporary directory: " + fs_error.message());
  std::filesystem::create_directories(work_parent, fs_error);
  return safe_path::PrivateDirectory::create(work_parent, "strata-pull-");
}

Error diff_id_mismatch(const oci::Descriptor& descriptor, const Digest& got,
                       const Digest& expected) {
  return make_error(ErrorCode::kDigestMismatch, "layer " + descriptor.digest.to_string() +
                                                    " decompresses to " + got.to_string() +
                                                    ", the config says " + expected.to_string());
}

// A whole layer blob, downloaded to `path`: ingested into the store, or only decoded, and its
// diff_id checked against the config's.
Result<void> take_whole_layer(ChunkStore* store, std::mutex& store_mutex, const std::string& path,
                              const Digest& diff_id, PulledLayer& layer) {
  const oci::Descriptor& descriptor = layer.descriptor;
  if (store != nullptr) {
    std::lock_guard lock(store_mutex);
    auto ingested = ingest_layer_file(*store, path, IngestOptions{});
    if (!ingested.ok()) return std::move(ingested).error();
    if (ingested->diff_id != diff_id) {
      return diff_id_mismatch(descriptor, ingested->diff_id, diff_id);
    }
    layer.new_chunks = ingested->new_chunks;
    layer.new_stored_bytes = ingested->new_stored_bytes;
    layer.already_present = ingested->already_present;
    return {};
  }
  auto decoded = oci::decode_layer_file(path, {});
  if (!decoded.ok()) return std::move(decoded).error();
  if (decoded->diff_id != diff_id) return diff_id_mismatch(descriptor, decoded->diff_id, diff_id);
  return {};
}

// Config, manifest and tag into the layout, once every layer blob is there.
Result<void> write_pulled_image(oci::OciLayout& layout, const ImageMetadata& image,
                                std::string_view tag) {
  auto config_written = layout.write_blob(image.manifest.config.media_type, image.config_bytes);
  if (!config_written.ok()) return std::move(config_written).error();
  auto manifest_written = layout.write_blob(image.resolved.media_type.empty()
                                                ? std::string(oci::kMediaTypeImageManifest)
                                                : image.resolved.media_type,
                                            image.resolved.bytes);
  if (!manifest_written.ok()) return std::move(manifest_written).error();
  oci::Descriptor manifest_descriptor = *manifest_written;
  if (manifest_descriptor.media_type.empty()) {
    manifest_descriptor.media_type = image.manifest.media_type;
  }
  return layout.set_tag(tag, manifest_descriptor);
}

}  // namespace

Result<PullPlanReport> plan_image_pull(RegistryClient& client, const ImageReference& source,
                                       const ChunkStore& store, const PullOptions& options) {
  const TransferCounters wire_before = client.counters();
  auto metadata = fetch_image_metadata(client, source, options);
  if (!metadata.ok()) return std::move(metadata).error();
  PullPlanReport report;
  report.image_bytes = client.counters().bytes_received - wire_before.bytes_received;
  report.manifest_digest = metadata->resolved.digest;
  report.manifest = metadata->manifest;
  const auto& layers = metadata->manifest.layers;
  report.layers.resize(layers.size());
  // The delta referrer, as pull_image() looks for it: its deltas change what a layer fetches.
  std::optional<detail::FoundDeltas> deltas;
  if (options.partial && options.deltas) {
    deltas = detail::find_delta_referrer(client, source.repository, metadata->resolved.digest);
    report.delta_referrer = deltas->index ? deltas->source : "";
    report.delta_refused = deltas->refused;
    report.delta_referrer_bytes = deltas->bytes_fetched;
  }
  std::mutex store_mutex;  // layer lookups are serialised, as pull_image() does
  const bool first_pull = store.holds_no_chunks();  // as pull_image() decides it
  // Layers are planned in parallel as pull_image() pulls them (one TOC read per chunked layer).
  auto planned = run_parallel(layers.size(), options.jobs, [&](std::size_t i) -> Result<void> {
    const oci::Descriptor& descriptor = layers[i];
    PlannedLayer& layer = report.layers[i];
    layer.descriptor = descriptor;
    layer.diff_id = metadata->config.diff_ids[i];
    // The same decisions in the same order as pull_image() with a store and no layout.
    {
      std::lock_guard lock(store_mutex);
      if (store.find_layer_by_diff_id(layer.diff_id).ok()) {
        layer.already_present = true;
        return {};
      }
    }
    if (!fastpull::chunked_format_of(descriptor.annotations)) {
      layer.whole_reason = "not a chunked layer";
    } else if (!options.partial) {
      layer.whole_reason = "partial pull turned off";
    } else if (auto chunked =
                   detail::plan_chunked_layer(client, source.repository, descriptor, store,
                                              layer.metadata_bytes, layer.whole_reason)) {
      layer.chunked = true;
      layer.chunked_format = std::string(fastpull::chunked_format_name(chunked->format));
      layer.chunks = chunked->plan.chunks;
      layer.chunks_local = chunked->plan.local_chunks;
      layer.chunks_missing = chunked->plan.missing_chunks;
      if (deltas && deltas->index) {
        STRATA_TRY(fastpull::apply_delta_index(
            chunked->plan, *deltas->index,
            [&](const Digest& chunk) { return store.contains(chunk); }));
        layer.delta_chunks = chunked->plan.delta_chunks;
        layer.delta_fetch_bytes = chunked->plan.delta_fetch_bytes;
      }
      layer.chunks_missing = chunked->plan.missing_chunks - chunked->plan.repeat_chunks;
      layer.ranges = chunked->plan.ranges.size();
      layer.fetch_bytes = layer.metadata_bytes + chunked->plan.fetch_bytes +
                          chunked->plan.delta_fetch_bytes +
                          detail::early_stream_extra_bytes(first_pull, descriptor, chunked->plan);
      return {};
    }
    // Whole: the TOC bytes read before giving up are fetched by a pull too.
    layer.fetch_bytes = layer.metadata_bytes + descriptor.size;
    return {};
  });
  if (!planned.ok()) return std::move(planned).error();
  for (const auto& layer : report.layers) {
    report.layer_bytes += layer.descriptor.size;
    report.fetch_bytes += layer.fetch_bytes;
  }
  report.wire = counters_since(wire_before, client.counters());
  return report;
}

Result<PullReport> pull_image(RegistryClient& client, const ImageReference& source,
                              ChunkStore* store, oci::OciLayout* layout, std::string_view tag,
                              const PullOptions& options, const TransferProgressFn& progress) {
  const TransferCounters wire_before = client.counters();
  const std::string& repository = source.repository;
  auto image = fetch_image_metadata(client, source, options);
  if (!image.ok()) return std::move(image).error();
  const oci::Manifest& manifest = image->manifest;
  const oci::ImageConfig& config = image->config;
  auto work_directory = make_work_directory(options);
  if (!work_directory.ok()) return std::move(work_directory).error();
  const std::filesystem::path work = work_directory->path();

  PullReport report;
  report.manifest_digest = image->resolved.digest;
  report.manifest = manifest;
  report.layers.resize(manifest.layers.size());
  std::uint64_t total = 0;
  for (const auto& layer : manifest.layers) total += layer.size;
  report.layer_bytes = total;
  std::atomic<std::uint64_t> done{0};
  std::mutex store_mutex;
  // The delta referrer, looked for only where deltas can be used: partial pulls into a store.
  // Looked for beside the layers' TOC reads and plans (its round trips are off the critical
  // path); a layer waits for it only once planned.
  std::shared_future<detail::FoundDeltas> deltas;
  if (store != nullptr && layout == nullptr && options.partial && options.deltas) {
    deltas =
        std::async(std::launch::async, [&client, &repository, subject = image->resolved.digest] {
          return detail::find_delta_referrer(client, repository, subject);
        }).share();
  }
  const detail::DeltasWhenPlanned deltas_when_planned = [&]() -> const detail::FoundDeltas* {
    if (!deltas.valid()) return nullptr;
    const std::shared_future<detail::FoundDeltas> own = deltas;  // one copy per thread
    return &own.get();  // lives in the shared state, which `deltas` keeps
  };
  const auto report_deltas = [&] {
    if (!deltas.valid()) return;
    const detail::FoundDeltas& found = deltas.get();
    report.delta_referrer = found.index ? found.source : "";
    report.delta_refused = found.refused;
    report.delta_referrer_bytes = found.bytes_fetched;
  };
  // Layer i is in the store, its diff_id checked.
  const auto stored = [&](std::size_t i) -> Result<void> {
    if (store != nullptr && options.layer_stored) options.layer_stored(i, config.diff_ids[i]);
    return {};
  };
  // A store that holds no chunk yet: each layer's chunk frames stream from the start.
  const bool first_pull = store != nullptr && store->holds_no_chunks();
  auto pulled =
      run_parallel(manifest.layers.size(), options.jobs, [&](std::size_t i) -> Result<void> {
        const oci::Descriptor& descriptor = manifest.layers[i];
        PulledLayer& layer = report.layers[i];
        layer.descriptor = descriptor;
        layer.diff_id = config.diff_ids[i];
        // Layers the store already holds are not fetched again (unless a layout wants the blob).
        if (store != nullptr && layout == nullptr) {
          std::lock_guard lock(store_mutex);
          if (auto known = store->find_layer_by_diff_id(config.diff_ids[i]); known.ok()) {
            layer.already_present = true;
            const std::uint64_t now = done.fetch_add(descriptor.size) + descriptor.size;
            if (progress) progress(TransferProgress{now, total});
            return stored(i);
          }
        }
        // Chunked layers into a store: only the chunks the store lacks cross the wire. With a
        // layout the exact blob is wanted, so it is fetched whole.
        if (!fastpull::chunked_format_of(descriptor.annotations)) {
          layer.whole_reason = "not a chunked layer";
        } else if (store != nullptr && layout == nullptr && options.partial) {
          auto partial = detail::pull_chunked_layer(client, repository, descriptor,
                                                    config.diff_ids[i], *store, deltas_when_planned,
                                                    options.stream_batch_bytes, first_pull, layer);
          if (!partial.ok()) return std::move(partial).error();
          if (*partial) {
            const std::uint64_t now = done.fetch_add(descriptor.size) + descriptor.size;
            if (progress) progress(TransferProgress{now, total});
            return stored(i);
          }
        } else if (store == nullptr || layout != nullptr) {
          layer.whole_reason = "the layout needs the whole blob";
        } else {
          layer.whole_reason = "partial pull turned off";
        }
        // With a layout, the download lands in its blobs/ directly (renamed into place only once
        // verified); otherwise in the work directory, removed at the end.
        const std::string path = layout != nullptr ? layout->blob_path(descriptor.digest)
                                                   : (work / descriptor.digest.hex()).string();
        std::uint64_t reported = 0;
        const auto download_start = std::chrono::steady_clock::now();
        auto size = client.fetch_blob_to_file(
            repository, descriptor.digest, descriptor.size, path, [&](std::uint64_t received) {
              if (received > reported) {
                const std::uint64_t now =
                    done.fetch_add(received - reported) + (received - reported);
                reported = received;
                if (progress) progress(TransferProgress{now, total});
              }
            });
        if (!size.ok()) return std::move(size).error();
        const auto ingest_start = std::chrono::steady_clock::now();
        layer.stages.download +=
            std::chrono::duration<double>(ingest_start - download_start).count();
        layer.bytes_fetched += *size;
        if (*size != descriptor.size) {
          return make_error(ErrorCode::kCorruptInput,
                            descriptor.digest.to_string() + ": blob has " + std::to_string(*size) +
                                " bytes, its descriptor says " + std::to_string(descriptor.size));
        }
        auto taken = take_whole_layer(store, store_mutex, path, config.diff_ids[i], layer);
        layer.stages.ingest +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - ingest_start).count();
        if (!taken.ok()) return taken;
        return stored(i);
      });
  report_deltas();
  if (!pulled.ok()) return std::move(pulled).error();

  if (layout != nullptr) STRATA_TRY(write_pulled_image(*layout, *image, tag));
  report.wire = counters_since(wire_before, client.counters());
  report.bytes_fetched = report.wire.bytes_received;
  std::uint64_t without =
      report.bytes_fetched - std::min(report.bytes_fetched, report.delta_referrer_bytes);
  for (const PulledLayer& layer : report.layers) {
    if (!layer.chunked) continue;
    without = without - std::min(without, layer.bytes_fetched) + layer.bytes_fetched_without_deltas;
  }
  report.bytes_fetched_without_deltas = without;
  return report;
}

}  // namespace strata::registry
