// Delta referrers over the distribution API (docs/DELTA.md). Push: the referrer's blobs (frames,
// index, empty config), then its manifest by digest, then, unless GET
// /v2/<repo>/referrers/<subject> already lists it, the "Referrers Tag Schema" fallback of
// distribution-spec v1.1 (an image index tagged sha256-<subject hex> listing the referrer with its
// artifactType; Debian's docker-registry 2.8 has no referrers API and needs it). Pull: the same two
// places, in that order; the referrer manifest must name the image manifest as its subject and
// carry one index and one frames blob; the index is fetched only when its descriptor's size is
// within the parser's limit, then parsed and checked (fastpull::parse_delta_index) against the
// frames descriptor. Specs: shared/specs/layer-formats.md §3, OCI image-spec v1.1 manifest.md
// ("subject", "artifactType").
#include "registry/delta_transfer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/base/file_io.h"

namespace strata::registry {
namespace {

ByteSpan as_span(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string fallback_tag(const Digest& subject) {
  return "sha256-" + subject.hex();
}

bool lists_delta(const std::optional<oci::Index>& index) {
  return index && std::any_of(index->manifests.begin(), index->manifests.end(),
                              [](const oci::Descriptor& entry) {
                                return entry.artifact_type == fastpull::kArtifactTypeDelta;
                              });
}

Result<void> push_layout_blob(RegistryClient& client, const oci::OciLayout& layout,
                              const std::string& repository, const oci::Descriptor& blob,
                              DeltaPushReport& report) {
  auto present = client.stat_blob(repository, blob.digest);
  if (!present) return std::move(present).error();
  if (*present && (*present)->size == blob.size) return {};
  const std::string path = layout.blob_path(blob.digest);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path, errno);
  const FileDescriptor file(fd);
  STRATA_TRY(client.push_blob(repository, blob.digest, blob.size,
                              [fd, &path](std::uint64_t offset, MutableByteSpan out) {
                                return pread_all(fd, offset, out, path);
                              }));
  report.bytes_uploaded += blob.size;
  return {};
}

}  // namespace

Result<DeltaPushReport> push_delta_referrer(RegistryClient& client, const oci::OciLayout& layout,
                                            const oci::Descriptor& referrer,
                                            const ImageReference& destination) {
  const std::string& repository = destination.repository;
  auto bytes = layout.read_blob(referrer);
  if (!bytes) return std::move(bytes).error();
  auto manifest = oci::parse_manifest(*bytes);
  if (!manifest) return std::move(manifest).error();
  if (!manifest->subject) {
    return make_error(ErrorCode::kInvalidArgument,
                      "delta referrer " + referrer.digest.to_string() + " has no subject");
  }
  DeltaPushReport report;
  report.referrer_digest = referrer.digest;
  STRATA_TRY(push_layout_blob(client, layout, repository, manifest->config, report));
  for (const oci::Descriptor& blob : manifest->layers) {
    STRATA_TRY(push_layout_blob(client, layout, repository, blob, report));
  }
  auto pushed = client.push_manifest(repository, referrer.digest.to_string(),
                                     oci::kMediaTypeImageManifest, *bytes);
  if (!pushed) return std::move(pushed).error();
  const Digest subject = manifest->subject->digest;
  auto listed = client.fetch_referrers(repository, subject);
  if (!listed) return std::move(listed).error();
  if (*listed &&
      std::any_of((*listed)->manifests.begin(), (*listed)->manifests.end(),
                  [&](const oci::Descriptor& e) { return e.digest == referrer.digest; })) {
    report.referrers = "api";
    return report;
  }
  // The fallback tag's index, with this referrer added (distribution-spec v1.1: clients without
  // a referrers API read, update and push it).
  const std::string tag = fallback_tag(subject);
  oci::Index index;
  auto existing = client.fetch_manifest(repository, tag);
  if (existing) {
    auto parsed = oci::parse_index(existing->bytes);
    if (!parsed) {
      return make_error(parsed.error().code,
                        repository + ":" + tag + ": " + parsed.error().message);
    }
    index = std::move(*parsed);
  } else if (existing.error().code != ErrorCode::kNotFound) {
    return std::move(existing).error();
  }
  const bool listed_already =
      std::any_of(index.manifests.begin(), index.manifests.end(),
                  [&](const oci::Descriptor& e) { return e.digest == referrer.digest; });
  if (!listed_already) {
    oci::Descriptor entry;
    entry.media_type = std::string(oci::kMediaTypeImageManifest);
    entry.digest = referrer.digest;
    entry.size = referrer.size;
    entry.artifact_type = std::string(fastpull::kArtifactTypeDelta);
    index.manifests.push_back(entry);
    auto tagged = client.push_manifest(repository, tag, oci::kMediaTypeImageIndex,
                                       as_span(oci::write_index(index)));
    if (!tagged) return std::move(tagged).error();
  }
  report.referrers = "tag";
  return report;
}

namespace detail {

FoundDeltas find_delta_referrer(RegistryClient& client, const std::string& repository,
                                const Digest& subject) {
  FoundDeltas found;
  std::optional<oci::Index> referrers;
  auto listed = client.fetch_referrers(repository, subject);
  if (listed && *listed) {
    referrers = std::move(**listed);
    found.source = "api";
  }
  if (!lists_delta(referrers)) {
    referrers.reset();
    found.source.clear();
    auto tagged = client.fetch_manifest(repository, fallback_tag(subject));
    if (tagged) {
      found.bytes_fetched += tagged->bytes.size();
      auto index = oci::parse_index(tagged->bytes);
      if (!index) {
        found.refused = "referrers fallback tag: " + index.error().message;
        return found;
      }
      referrers = std::move(*index);
      found.source = "tag";
    } else if (tagged.error().code != ErrorCode::kNotFound) {
      found.refused = "referrers fallback tag: " + tagged.error().message;
      return found;
    }
  }
  if (!lists_delta(referrers)) {
    found.source.clear();
    return found;
  }
  const auto entry = std::find_if(
      referrers->manifests.begin(), referrers->manifests.end(),
      [](const oci::Descriptor& e) { return e.artifact_type == fastpull::kArtifactTypeDelta; });
  const std::string what = "delta referrer " + entry->digest.to_string();
  if (entry->size > oci::kMaxJsonBytes) {
    found.refused = what + ": manifest of " + std::to_string(entry->size) + " bytes is too large";
    return found;
  }
  auto response = client.fetch_manifest(repository, entry->digest.to_string());
  if (!response) {
    found.refused = what + ": " + response.error().message;
    return found;
  }
  found.bytes_fetched += response->bytes.size();
  auto manifest = oci::parse_manifest(response->bytes);
  if (!manifest) {
    found.refused = what + ": " + manifest.error().message;
    return found;
  }
  if (!manifest->subject || manifest->subject->digest != subject) {
    found.refused = what + " does not name " + subject.to_string() + " as its subject";
    return found;
  }
  if (manifest->artifact_type != fastpull::kArtifactTypeDelta) {
    found.refused = what + " has artifactType '" + manifest->artifact_type.substr(0, 100) + "'";
    return found;
  }
  const oci::Descriptor* index_blob = nullptr;
  const oci::Descriptor* frames_blob = nullptr;
  for (const oci::Descriptor& layer : manifest->layers) {
    if (layer.media_type == fastpull::kMediaTypeDeltaIndex && index_blob == nullptr) {
      index_blob = &layer;
    } else if (layer.media_type == fastpull::kMediaTypeDeltaFrames && frames_blob == nullptr) {
      frames_blob = &layer;
    }
  }
  if (index_blob == nullptr || frames_blob == nullptr) {
    found.refused = what + " lacks an index or a frames blob";
    return found;
  }
  const fastpull::DeltaIndexLimits limits;
  if (index_blob->size > limits.max_json_bytes) {
    found.refused = what + ": index of " + std::to_string(index_blob->size) +
                    " bytes is over the limit of " + std::to_string(limits.max_json_bytes);
    return found;
  }
  auto bytes = client.fetch_blob(repository, index_blob->digest, index_blob->size);
  if (!bytes) {
    found.refused = what + ": index: " + bytes.error().message;
    return found;
  }
  found.bytes_fetched += bytes->size();
  auto index = fastpull::parse_delta_index(*bytes, limits);
  if (!index) {
    found.refused = what + ": " + index.error().message;
    return found;
  }
  if (index->frames_digest != frames_blob->digest || index->frames_size != frames_blob->size) {
    found.refused = what + ": index describes another frames blob than the manifest's";
    return found;
  }
  found.referrer = entry->digest;
  found.frames = *frames_blob;
  found.index = std::move(*index);
  return found;
}

}  // namespace detail
}  // namespace strata::registry
