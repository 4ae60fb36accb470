// OCI images: media types, descriptors, manifests, indexes and configs (parse and canonical
// write), the OCI image layout on disk, streaming layer writers (tar, tar+gzip, tar+zstd) and a
// deterministic tar of a directory. Facts from shared/specs/layer-formats.md §3 (image-spec
// v1.1: image-layout.md, manifest.md, config.md, descriptor.md, media-types.md).
//
// Staged like the rest of strata:
//   1. vocabulary: media types, LayerCompression, Descriptor, Manifest, Index, ImageConfig
//   2. JSON: parse_*() (strict on the fields OCI defines, tolerant of unknown ones, which are kept
//      and written back) and write_*() (canonical: compact, object keys sorted bytewise, so the
//      same value always gives the same bytes and digest)
//   3. OciLayout: a layout directory (blobs written atomically and verified on read, tags in
//      index.json), LAYOUT:TAG references; image trees (a tag naming an index of images and
//      further indexes) and platform selection
//   4. layers: LayerWriter (uncompressed tar bytes in, compressed blob out, with digest, size and
//      diff_id), decode_layer() (a layer blob back to its tar), write_directory_tar()
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/result.h"

namespace strata::oci {

// ---- 1. vocabulary ------------------------------------------------------------------------

inline constexpr std::string_view kMediaTypeImageManifest =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kMediaTypeImageIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeImageConfig =
    "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kMediaTypeLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeLayerTarGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeLayerTarZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
// Docker schema 2 equivalents, accepted when reading (skopeo and registries still produce them).
inline constexpr std::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kMediaTypeDockerConfig =
    "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kMediaTypeDockerLayerTarGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kImageLayoutVersion = "1.0.0";

enum class LayerCompression : std::uint8_t { kNone, kGzip, kZstd };

// The layer media type of a compression ("...layer.v1.tar+gzip").
std::string_view layer_media_type(LayerCompression compression) noexcept;
// The compression of a layer media type; kUnsupported for anything that is not a tar layer.
Result<LayerCompression> layer_compression_of(std::string_view media_type);
// OCI or Docker schema 2 media types of an image manifest, an index, an image config.
bool is_manifest_media_type(std::string_view media_type) noexcept;
bool is_index_media_type(std::string_view media_type) noexcept;
bool is_image_config_media_type(std::string_view media_type) noexcept;

using Annotations = std::map<std::string, std::string>;

struct Platform {
  std::string architecture;
  std::string os;
  std::string variant;                   // empty: absent
  std::string os_version;                // empty: absent
  std::vector<std::string> os_features;  // "os.features"; empty: absent
  std::string unknown_fields;            // as in Descriptor
  friend bool operator==(const Platform&, const Platform&) = default;
};

// Fields OCI does not define are kept, as the canonical JSON text of an object holding them
// ("{}" or empty when there are none), and written back unchanged.
struct Descriptor {
  std::string media_type;
  Digest digest;
  std::uint64_t size = 0;
  Annotations annotations;
  std::vector<std::string> urls;
  std::string artifact_type;
  std::optional<Platform> platform;
  std::string unknown_fields;
  friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

struct Manifest {
  std::string media_type = std::string(kMediaTypeImageManifest);
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  Annotations annotations;
  std::string unknown_fields;
  friend bool operator==(const Manifest&, const Manifest&) = default;
};

struct Index {
  std::string media_type = std::string(kMediaTypeImageIndex);
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  Annotations annotations;
  std::string unknown_fields;
  friend bool operator==(const Index&, const Index&) = default;
};

struct HistoryEntry {
  std::string created;  // RFC 3339; empty: absent
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

struct ImageConfig {
  std::string created;  // RFC 3339; empty: absent
  std::string author;
  std::string architecture = "amd64";
  std::string os = "linux";
  std::string variant;
  std::string os_version;
  std::string execution_config;  // the "config" object as canonical JSON text; empty: absent
  std::vector<Digest> diff_ids;  // rootfs.diff_ids, bottom layer first
  std::vector<HistoryEntry> history;
  std::string unknown_fields;
  friend bool operator==(const ImageConfig&, const ImageConfig&) = default;
};

// ---- 2. JSON ----------------------------------------------------------------------------------

// Inputs larger than this are refused (kLimitExceeded) before parsing.
inline constexpr std::size_t kMaxJsonBytes = std::size_t{4} << 20U;

Result<Manifest> parse_manifest(ByteSpan json);
Result<Index> parse_index(ByteSpan json);
Result<ImageConfig> parse_image_config(ByteSpan json);

std::string write_manifest(const Manifest& manifest);
std::string write_index(const Index& index);
std::string write_image_config(const ImageConfig& config);

// A descriptor of bytes already in memory.
Descriptor describe_bytes(std::string_view media_type, ByteSpan bytes);

// ---- 3. the image layout ----------------------------------------------------------------------

// "LAYOUT:TAG" split at the last ':' whose tail is a valid tag; a reference without one names the
// layout's only image (tag empty).
struct LayoutReference {
  std::string layout;
  std::string tag;
};
LayoutReference parse_layout_reference(std::string_view text);
// A tag as OCI distribution allows it: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
bool is_valid_tag(std::string_view tag) noexcept;

// A blob being written into a layout: bytes go to a temporary file in blobs/sha256/ and are
// hashed on the way; commit() fsyncs and renames it to its digest (an existing blob of that name
// has the same bytes, so replacing it is harmless). Destroying an uncommitted writer removes the
// temporary file.
class BlobWriter {
 public:
  BlobWriter(BlobWriter&&) noexcept;
  BlobWriter& operator=(BlobWriter&&) noexcept;
  ~BlobWriter();
  Result<void> write(ByteSpan bytes);
  // The committed blob's descriptor (media type as given, no annotations).
  Result<Descriptor> commit(std::string_view media_type);

 private:
  friend class OciLayout;
  struct State;
  explicit BlobWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// An image read from a layout, every JSON blob verified against its descriptor.
struct Image {
  Descriptor manifest_descriptor;
  Manifest manifest;
  ImageConfig config;
};

// Reads the blob a descriptor names, checked against the descriptor's size and digest
// (OciLayout::read_blob does; a registry fetch may).
using BlobFetcher = std::function<Result<std::vector<std::uint8_t>>(const Descriptor&)>;

// Loads and checks an image manifest and its config: digests, sizes, media types, diff_ids count.
Result<Image> load_image_from(const Descriptor& manifest, const BlobFetcher& fetch);

enum class ImageTreeKind : std::uint8_t {
  kImage,     // an image manifest whose config is an image config
  kIndex,     // an image index (or Docker manifest list); children are its entries, in order
  kArtifact,  // a manifest whose config is something else (attestations, other artifacts)
};

// What a tag names, read to the bottom: an image, an artifact, or an index of further trees.
struct ImageTree {
  ImageTreeKind kind = ImageTreeKind::kImage;
  Descriptor descriptor;             // as its parent lists it (platform, annotations, ...)
  std::optional<Image> image;        // kImage
  std::optional<Index> index;        // kIndex
  std::optional<Manifest> artifact;  // kArtifact
  std::vector<ImageTree> children;   // kIndex: one per entry of index->manifests
};

struct ImageTreeLimits {
  std::size_t max_depth = 8;     // indexes on the way down (the top one counts)
  std::size_t max_nodes = 4096;  // manifests and indexes read in all
};

// Reads the tree below `root`. Every entry of an index must be a manifest or an index; images in
// an index with several images must name their platform. Errors name the offending blob: unknown
// media types, cycles (an index listing one of its ancestors), nesting deeper than max_depth, more
// than max_nodes blobs (fan-out, or a diamond repeated at every level), and whatever the fetcher
// reports (size or digest mismatch, missing blob).
Result<ImageTree> load_image_tree(const Descriptor& root, const BlobFetcher& fetch,
                                  const ImageTreeLimits& limits = {});

// "os/arch[/variant]" both ways.
Result<Platform> parse_platform_name(std::string_view text);
std::string platform_name(const Platform& platform);
// The platform an image node runs on: its descriptor's platform, else its config's.
Platform platform_of(const ImageTree& node);
// The one image in `tree` whose os and architecture (and variant, when `wanted` names one)
// match; an error when none or several do.
Result<const ImageTree*> select_platform(const ImageTree& tree, const Platform& wanted);

class OciLayout {
 public:
  // Opens an existing layout: oci-layout must say 1.0.0 and index.json must parse.
  static Result<OciLayout> open(const std::string& directory);
  // Opens the layout, or creates an empty one (directory, oci-layout, index.json, blobs/sha256).
  static Result<OciLayout> open_or_create(const std::string& directory);

  [[nodiscard]] const std::string& directory() const noexcept { return directory_; }
  [[nodiscard]] const Index& index() const noexcept { return index_; }
  [[nodiscard]] std::string blob_path(const Digest& digest) const;

  Result<BlobWriter> begin_blob() const;
  Result<Descriptor> write_blob(std::string_view media_type, ByteSpan bytes) const;
  // Reads a blob (at most max_bytes) and checks it has the descriptor's size and digest.
  Result<std::vector<std::uint8_t>> read_blob(const Descriptor& descriptor,
                                              std::size_t max_bytes = kMaxJsonBytes) const;
  // Streams a blob through `consume` in blocks, then checks its size and digest.
  Result<void> stream_blob(const Descriptor& descriptor, const ByteSink& consume) const;

  // The manifest descriptor tagged `tag` (or, for an empty tag, the only manifest).
  Result<Descriptor> resolve(std::string_view tag) const;
  // Loads and checks manifest + config: digests, sizes, media types, diff_ids count.
  Result<Image> load_image(std::string_view tag) const;
  // Additionally decompresses every layer and checks it against its diff_id.
  Result<void> verify_image(std::string_view tag) const;
  // Decompresses every layer of a loaded image and checks it against its diff_id.
  Result<void> verify_layers(const Image& image) const;
  // The tree `tag` names (an image, or an index read to the bottom), blobs read with read_blob.
  Result<ImageTree> load_tree(std::string_view tag, const ImageTreeLimits& limits = {}) const;
  // Points `tag` at `manifest` (replacing an older entry of that tag) and rewrites index.json
  // atomically. index.json is re-read under an exclusive lock of the layout directory first, so
  // tags set meanwhile by other processes are kept; index() then shows the merged index.
  Result<void> set_tag(std::string_view tag, const Descriptor& manifest);

 private:
  OciLayout() = default;
  Result<Index> update_index(std::string_view tag, const Descriptor& manifest) const;
  std::string directory_;
  Index index_;
};

// ---- 4. layers --------------------------------------------------------------------------------

enum class GzipEngine : std::uint8_t {
  kIsal,  // ISA-L igzip, levels 0..3 (fast)
  kZlib,  // zlib deflate, levels 0..9 (default 6): the same bytes as other zlib users at that
          // level and zlib version (e.g. Python's zlib), for those who need them; not GNU gzip's
};

struct LayerWriterOptions {
  LayerCompression compression = LayerCompression::kGzip;
  GzipEngine gzip_engine = GzipEngine::kIsal;
  // Unset: the codec's default (ISA-L 1, zlib 6, zstd 3). Ranges: ISA-L 0..3, zlib 0..9, zstd
  // ZSTD_minCLevel()..ZSTD_maxCLevel() (negative levels are zstd's fast modes).
  std::optional<int> level;
  // zstd only: > 1 uses that many zstd worker threads. zstd's multi-threaded output does not
  // depend on the worker count (jobs are cut by size), but differs from the single-threaded one.
  unsigned threads = 1;
  // false: the caller hashes the tar itself (an ingest that sees the same bytes), so the writer
  // does not spend a second SHA-256 pass on it; LayerDigests::diff_id is then left empty.
  bool hash_tar = true;
};

struct LayerDigests {
  std::string media_type;
  Digest digest;  // of the blob
  std::uint64_t size = 0;
  Digest diff_id;  // of the uncompressed tar
  std::uint64_t uncompressed_size = 0;
};

// Takes a layer's uncompressed tar stream in pieces of any size and gives the blob to `sink` in
// bounded blocks. The output depends only on the bytes and the options, never on how the input
// was split.
class LayerWriter {
 public:
  static Result<LayerWriter> create(const LayerWriterOptions& options, ByteSink sink);
  LayerWriter(LayerWriter&&) noexcept;
  LayerWriter& operator=(LayerWriter&&) noexcept;
  ~LayerWriter();

  Result<void> write(ByteSpan tar_bytes);
  Result<LayerDigests> finish();

 private:
  struct State;
  explicit LayerWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The compression a blob starts with (gzip and zstd magic), else kNone.
LayerCompression detect_compression(ByteSpan head) noexcept;

// Decompresses a layer blob read through `source` (which fills its span and returns the count,
// 0 at the end) into `tar_sink` (may be empty), returning the blob's and the tar's digests.
// Output beyond max_uncompressed bytes is refused (decompression bombs).
using ByteSource = std::function<Result<std::size_t>(MutableByteSpan)>;
Result<LayerDigests> decode_layer(LayerCompression compression, const ByteSource& source,
                                  const ByteSink& tar_sink,
                                  std::uint64_t max_uncompressed = std::uint64_t{1} << 42U);
Result<LayerDigests> decode_layer_file(const std::string& path, const ByteSink& tar_sink);

struct DirectoryTarOptions {
  // Every entry gets this mtime (seconds since the epoch). Unset: each file's own mtime.
  std::optional<std::int64_t> mtime = 0;
  // Owner ids written for every entry. Unset: the file's own numeric ids.
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  // Extended attributes (security.capability, user.*, ...) as PAX SCHILY.xattr.<name> records.
  bool xattrs = true;
};

struct DirectoryTarStats {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;  // the tar's length
};

// A deterministic PAX tar of a directory's contents (the directory itself is not an entry):
// names relative and sorted bytewise per directory, directories ending in '/', numeric owners
// only, hard links as typeflag '1' to the first name in that order, symlinks, fifos and devices,
// extended attributes as PAX SCHILY.xattr records; sockets are refused. Ends with two zero blocks
// and no record padding.
Result<DirectoryTarStats> write_directory_tar(const std::string& directory,
                                              const DirectoryTarOptions& options,
                                              const ByteSink& sink);

}  // namespace strata::oci
