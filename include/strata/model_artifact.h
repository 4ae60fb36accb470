// AI models as OCI artifacts (shared/specs/models.md §8): packaging a directory of safetensors
// shards and config/tokenizer files, or a (sharded) GGUF file, as a Docker Model Runner artifact
// (config v0.2, one raw layer per file) or a CNCF ModelPack artifact; a chunk index of every weight
// blob published beside the model as an OCI 1.1 referrer (its `subject` is the model manifest;
// registries without the referrers API get the tag-schema fallback tag "sha256-<hex>"); pushing
// both; and pulling a model so that only the chunks a local store lacks cross the wire, as range
// GETs on the untouched raw blobs.
//
// Staged like the rest of strata:
//   1. vocabulary: media types, annotations
//   2. the chunk index: a compact, versioned binary description of one blob's chunks
//   3. packaging into an OCI layout (weights through the chunk store when one is given)
//   4. transfer: push a packaged model (and its chunk index), pull one into a store and a directory
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/chunker.h"
#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/registry.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::model {

// ---- 1. vocabulary ------------------------------------------------------------------------

// Docker Model Runner (docker/model-runner pkg/distribution/types).
inline constexpr std::string_view kMediaTypeDockerConfigV01 =
    "application/vnd.docker.ai.model.config.v0.1+json";
inline constexpr std::string_view kMediaTypeDockerConfigV02 =
    "application/vnd.docker.ai.model.config.v0.2+json";
inline constexpr std::string_view kMediaTypeDockerGguf = "application/vnd.docker.ai.gguf.v3";
inline constexpr std::string_view kMediaTypeDockerSafetensors =
    "application/vnd.docker.ai.safetensors";
inline constexpr std::string_view kMediaTypeDockerLicense = "application/vnd.docker.ai.license";
inline constexpr std::string_view kMediaTypeDockerChatTemplate =
    "application/vnd.docker.ai.chat.template.jinja";
inline constexpr std::string_view kMediaTypeDockerModelFile =
    "application/vnd.docker.ai.model.file";

// CNCF ModelPack (modelpack/model-spec specs-go/v1).
inline constexpr std::string_view kArtifactTypeModelPack =
    "application/vnd.cncf.model.manifest.v1+json";
inline constexpr std::string_view kMediaTypeModelPackConfig =
    "application/vnd.cncf.model.config.v1+json";
inline constexpr std::string_view kMediaTypeModelPackWeightRaw =
    "application/vnd.cncf.model.weight.v1.raw";
inline constexpr std::string_view kMediaTypeModelPackWeightConfigRaw =
    "application/vnd.cncf.model.weight.config.v1.raw";
inline constexpr std::string_view kMediaTypeModelPackDocRaw =
    "application/vnd.cncf.model.doc.v1.raw";

// Both formats name each layer's file with this annotation (relative, '/'-separated).
inline constexpr std::string_view kAnnotationFilePath = "org.cncf.model.filepath";
inline constexpr std::string_view kAnnotationFileMetadata = "org.cncf.model.file.metadata+json";
inline constexpr std::string_view kAnnotationMediaTypeUntested =
    "org.cncf.model.file.mediatype.untested";

// strata's chunk index referrer: an OCI image manifest with this artifactType, the empty config,
// one layer per indexed weight blob (media type kMediaTypeChunkIndex) annotated with the blob's
// digest, and `subject` = the model manifest.
inline constexpr std::string_view kArtifactTypeChunkIndex =
    "application/vnd.strata.model.chunk-index.v1+json";
inline constexpr std::string_view kMediaTypeChunkIndex = "application/vnd.strata.chunk-index.v1";
inline constexpr std::string_view kAnnotationIndexedBlob = "io.strata.chunk-index.blob";
// OCI 1.1's empty descriptor ("{}") for artifacts without a config.
inline constexpr std::string_view kMediaTypeEmptyJson = "application/vnd.oci.empty.v1+json";

enum class ArtifactFormat : std::uint8_t { kDocker, kModelPack };
// "docker" / "modelpack".
std::string_view artifact_format_name(ArtifactFormat format) noexcept;
Result<ArtifactFormat> parse_artifact_format(std::string_view name);

// The referrers tag-schema fallback tag of a manifest digest: "sha256-<hex>".
std::string referrers_fallback_tag(const Digest& subject);

// ---- 2. the chunk index -------------------------------------------------------------------

// Binary form, version 1 (all integers little-endian; offsets are not stored: chunk i starts
// where chunk i-1 ends, so the chunks tile the blob with no gap or overlap by construction):
//   0   8  magic "STRATACX"
//   8   4  version (1)
//   12  4  flags (bit 0: tensor-aware cuts; other bits 0)
//   16  1  chunk algorithm (0 fastcdc2016, 1 fastcdc2020, 2 xet, 3 casync)
//   17  1  FastCDC normalization level
//   18  2  zero
//   20  4  min size; 24 4 avg size; 28 4 max size
//   32  8  gear seed
//   40  8  blob size
//   48 32  blob SHA-256
//   80  8  chunk count N
//   88  N x 36: chunk length (u32) and its SHA-256 (32 bytes)
// The file ends right after the last chunk. About 36 bytes per chunk: 0.06% of a 64 KiB chunk.
inline constexpr std::string_view kChunkIndexMagic = "STRATACX";
inline constexpr std::uint32_t kChunkIndexVersion = 1;

struct ChunkIndexEntry {
  std::uint64_t offset = 0;  // derived on parse
  std::uint32_t length = 0;
  Digest digest;
  friend bool operator==(const ChunkIndexEntry&, const ChunkIndexEntry&) = default;
};

struct ChunkIndex {
  Digest blob_digest;
  std::uint64_t blob_size = 0;
  ChunkerOptions chunker;
  bool tensor_aware = false;
  std::vector<ChunkIndexEntry> chunks;
};

std::vector<std::uint8_t> serialize_chunk_index(const ChunkIndex& index);
// Refuses (kCorruptInput, naming the field or chunk) bad magic, unknown version or flags, invalid
// chunker parameters, a chunk count that does not match the bytes present, a chunk of length 0
// or above the max size, lengths that do not add up to the blob size.
Result<ChunkIndex> parse_chunk_index(ByteSpan bytes);

// ---- 3. packaging -------------------------------------------------------------------------

struct PackageOptions {
  ArtifactFormat format = ArtifactFormat::kDocker;
  // descriptor.created (Docker) / descriptor.createdAt (ModelPack) and the file-metadata mtime:
  // fixed, so the same inputs always give the same digests.
  std::string created = "1970-01-01T00:00:00Z";
  std::string name;  // ModelPack descriptor.name; empty: absent
  ChunkerOptions chunker;
  // Weight files are also ingested into this store (tensor-aware chunks, dedup); may be null.
  ChunkStore* store = nullptr;
  int zstd_level = 3;
  unsigned threads = 0;  // 0: one per hardware thread
};

struct PackagedFile {
  std::string path;  // relative, '/'-separated
  oci::Descriptor descriptor;
  bool weight = false;
  std::uint64_t chunks = 0;
  std::uint64_t new_chunks = 0;        // chunks the store did not have
  std::uint64_t new_raw_bytes = 0;     // their raw size
  std::uint64_t new_stored_bytes = 0;  // their compressed size in the store
  bool tensor_aware = false;           // the header parsed: tensor boundaries were forced cuts
};

struct PackageReport {
  oci::Descriptor manifest;
  oci::Descriptor config;
  oci::Descriptor chunk_index_manifest;  // the referrer (also in index.json)
  std::vector<PackagedFile> files;
  std::uint64_t total_bytes = 0;   // all files
  std::uint64_t weight_bytes = 0;  // weight files
  std::uint64_t new_raw_bytes = 0;
  std::uint64_t new_stored_bytes = 0;
  double seconds = 0;
};

// Packages `source` (a directory, or one .gguf file whose "-0000k-of-0000n" siblings are taken
// along) into `layout` as the image `tag`, with its chunk index as a referrer tagged
// referrers_fallback_tag(manifest digest). Files are ordered by path; hidden files and directories
// (leading '.') and symbolic links are left out, as Docker's packager does.
Result<PackageReport> package_model(const std::string& source, oci::OciLayout& layout,
                                    std::string_view tag, const PackageOptions& options);

// Which file kinds a relative path is: weight (safetensors/GGUF), license, chat template, doc or
// other config; and the layer media type each format gives it.
std::string layer_media_type_for(std::string_view relative_path, ArtifactFormat format);

// ---- 4. transfer --------------------------------------------------------------------------

struct ModelPushReport {
  Digest manifest_digest;
  std::optional<Digest> chunk_index_digest;
  std::string referrers;  // "api" (registry lists referrers) | "tag" (fallback tag written) | ""
  std::uint64_t blobs_uploaded = 0;
  std::uint64_t blobs_skipped = 0;
  std::uint64_t bytes_uploaded = 0;
};

// Pushes the model tagged `tag` in `layout` (blobs the repository has are skipped), then its chunk
// index referrer, and where the registry has no referrers API, the fallback tag's index.
Result<ModelPushReport> push_model(registry::RegistryClient& client, const oci::OciLayout& layout,
                                   std::string_view tag,
                                   const registry::ImageReference& destination);

struct ModelPullOptions {
  std::string out_directory;  // empty: files are only verified and stored, not written
  // Missing bytes fetched per round (bounds memory); merged ranges per request.
  std::uint64_t window_bytes = std::uint64_t{32} << 20U;
  std::size_t max_ranges_per_request = 64;
  int zstd_level = 3;
};

struct PulledModelFile {
  std::string path;
  oci::Descriptor descriptor;
  bool indexed = false;         // fetched by chunk ranges
  bool already_stored = false;  // the store held the whole blob
  std::uint64_t chunks = 0;
  std::uint64_t chunks_fetched = 0;
  std::uint64_t bytes_fetched = 0;
};

struct ModelPullReport {
  Digest manifest_digest;
  std::string format;     // "docker" | "modelpack"
  std::string referrers;  // where the chunk index came from: "api" | "tag" | "" (none)
  std::vector<PulledModelFile> files;
  std::uint64_t total_bytes = 0;    // sum of the layers' sizes
  std::uint64_t bytes_fetched = 0;  // blob bytes received (ranges and whole blobs)
  registry::TransferCounters wire;
};

// Pulls the model `source` into `store` (and `out_directory`): chunks the store lacks are fetched
// as merged byte ranges of the raw blobs, each verified against its SHA-256, every assembled file
// against its blob digest; layers without a chunk index are fetched whole. File paths come from
// the file-path annotations; absolute paths, '..' and empty components are refused (kUnsafePath).
Result<ModelPullReport> pull_model(registry::RegistryClient& client,
                                   const registry::ImageReference& source, ChunkStore& store,
                                   const ModelPullOptions& options);

}  // namespace strata::model
