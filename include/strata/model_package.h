// AI models as OCI artifacts, the part below the registry: the media types and annotations of
// Docker Model Runner and CNCF ModelPack artifacts, strata's chunk index of a weight blob (a
// compact, versioned binary layout), and packaging a model directory or (sharded) GGUF file into
// an OCI layout, weights through the chunk store when one is given. core/model/ implements it, on
// the chunker, the store and the OCI layout; include/strata/model_artifact.h adds the transfer
// (push, partial pull) through the registry client. Facts: shared/specs/models.md §8.
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

// Weight media types of both formats (safetensors, GGUF, ModelPack raw weights): the store layers
// whose recipe is one weight file's chunk list.
[[nodiscard]] bool is_weight_media_type(std::string_view media_type) noexcept;

// Delta coding of a fine-tune's new chunks against a base model the store holds (DESIGN.md §7;
// docs/STORE.md "Delta chunks"). Bases are found by tensor name: each tensor of the new file
// whose name and dtype a base weight file also has is cut where the base tensor was cut, and each
// of its new chunks is coded against the base chunk at the same offset of that tensor (floats:
// XOR + byte groups; other dtypes and the header: zstd with the base as prefix), kept only below
// max_ratio x its plain stored form. A base is a weight file stored by `model package --store` or
// `model pull` (a store layer whose recipe is the file's chunk list, diff_id = its SHA-256).
enum class ModelDeltaBaseKind : std::uint8_t {
  kNone,    // no delta coding
  kFiles,   // against ModelDeltaOptions::files
  kNewest,  // against the newest weight files of the store (up to kMaxNewestDeltaBaseFiles)
};
inline constexpr std::size_t kMaxNewestDeltaBaseFiles = 8;

struct ModelDeltaOptions {
  ModelDeltaBaseKind base = ModelDeltaBaseKind::kNone;
  // kFiles: SHA-256 digests of stored weight files (the shards of a sharded base); a tensor name
  // several of them hold is taken from the first listed. kNewest: newest first.
  std::vector<Digest> files;
  double max_ratio = 0.9;
  std::size_t cache_bytes = std::size_t{64} << 20U;  // raw bytes of base chunks kept in memory
  int level = 0;  // zstd level of the delta forms; 0: PackageOptions::zstd_level
};

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
  unsigned threads = 0;     // 0: one per hardware thread
  ModelDeltaOptions delta;  // needs `store`
};

struct PackagedFile {
  std::string path;  // relative, '/'-separated
  oci::Descriptor descriptor;
  bool weight = false;
  std::uint64_t chunks = 0;
  std::uint64_t new_chunks = 0;          // chunks the store did not have
  std::uint64_t new_raw_bytes = 0;       // their raw size
  std::uint64_t new_stored_bytes = 0;    // their compressed size in the store
  bool tensor_aware = false;             // the header parsed: tensor boundaries were forced cuts
  std::uint64_t delta_chunks = 0;        // new chunks stored as a delta against a base chunk
  std::uint64_t delta_stored_bytes = 0;  // their size in the store
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
  std::vector<Digest> delta_base_files;  // the stored weight files deltas were coded against
  std::uint64_t delta_chunks = 0;
  std::uint64_t delta_stored_bytes = 0;
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

}  // namespace strata::model
