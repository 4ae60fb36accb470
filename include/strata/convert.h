// Image conversion through a chunk store: convert_image() rewrites every layer of an image (or of
// every image of an index) in an OCI layout into another layer format (tar, gzip, zstd,
// zstd:chunked of either variant, eStargz), and write_chunked_layer_from_tar_file() writes one
// layer tar as a chunked layer cut where an ingest cuts it. core/export/ implements it. Rests on
// strata/chunked_layer.h (the chunked writers) and the chunk store (strata/store.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/bytes.h"
#include "strata/chunked_layer.h"
#include "strata/digest.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::fastpull {

enum class ConvertTarget : std::uint8_t {
  kTar,
  kGzip,
  kZstd,
  kZstdChunked,
  kZstdChunkedV1,
  kEstargz
};
Result<ConvertTarget> parse_convert_target(std::string_view name);

struct ConvertOptions {
  ConvertTarget target = ConvertTarget::kZstdChunked;
  // Compression level; unset: zstd 3, zstd:chunked 7 (its frames are also the level the store
  // codes the layer's new chunks at), the gzip writers their own defaults.
  std::optional<int> level;
  // kZstd: build the layer from the store's per-chunk zstd frames (tar headers compressed in
  // frames of their own) instead of compressing the whole tar again: no compression work for
  // chunks the store holds, at the price of a blob a few per cent larger than one whole-stream
  // frame (each ~64 KiB chunk is compressed alone).
  bool reuse_store_frames = false;
  // tar, gzip and zstd targets are written from the tar stream while it is ingested (the same
  // bytes the recipe records, checked by the same diff_id). true: ingest first, then write the
  // layer by exporting its recipe from the store (slower; the output is byte-identical).
  bool from_store = false;
  unsigned threads = 0;  // ingest pipeline and zstd workers; 0: one per hardware thread
  // "os/arch[/variant]": when the tag names an index, convert only that image of it and tag the
  // new image manifest. Empty: convert every image of the index (and of the indexes it nests).
  std::string platform;
};

struct ConvertedLayer {
  Digest diff_id;
  Digest source_digest;
  Digest digest;
  std::uint64_t source_size = 0;
  std::uint64_t size = 0;
  std::uint64_t tar_bytes = 0;
  std::uint64_t reused_frames = 0;
  double seconds = 0;  // write of the new blob (after ingest)
};

// A manifest or index written (or, for an artifact, copied) into the output layout.
struct ConvertedManifest {
  std::string kind;      // "image", "index" or "artifact" (copied unchanged)
  std::string platform;  // images: os/arch[/variant]
  Digest source_digest;
  Digest digest;
};

struct ConvertReport {
  Digest manifest_digest;              // what the output tag names: an image manifest or an index
  std::string media_type;              // of that blob
  std::vector<ConvertedLayer> layers;  // each distinct source layer once
  std::vector<ConvertedManifest> manifests;  // bottom-up, each distinct blob once
  double seconds = 0;
};

// Converts image `tag` of the layout at `source` into `destination` (created if needed) tagged
// `destination_tag`: every layer is ingested into `store`, then written from its recipe in the
// target format. diff_ids and history stay (eStargz adds its landmark and TOC entries to each tar:
// the config then gets the new diff_ids); the manifest gets the new descriptors. When `tag` names
// an index, every image below it is converted (a layer shared by several images once), and new
// indexes are written bottom-up with the new digests and sizes (platform, annotations and
// artifactType kept); artifacts in it (manifests whose config is not an image config, e.g.
// attestations) are copied unchanged, blobs included.
Result<ConvertReport> convert_image(ChunkStore& store, const std::string& source,
                                    std::string_view tag, const std::string& destination,
                                    std::string_view destination_tag,
                                    const ConvertOptions& options);

// Writes the layer tar held in the file at `tar_path` as a chunked layer (options.format:
// zstd:chunked of either variant, or eStargz) to `sink`, its file content cut exactly where an
// ingest cuts it (the store's FastCDC parameters, tensor cuts in model files), so a later pull
// into a store dedups against chunks ingested there. Without a store (nullptr) one pass over the
// file finds the cuts and a second writes the blob, the writer compressing every frame; with one
// the tar is first ingested into `store` and its stored zstd frames are copied into the blob. The
// file is read, never held: memory is bounded by the largest chunk plus the TOC. Both passes must
// read the same tar (checked by its sha256); the report's diff_id is the written layer's (new for
// eStargz, whose tar gains its landmark and TOC entries).
Result<ChunkedWriteReport> write_chunked_layer_from_tar_file(const std::string& tar_path,
                                                             ChunkStore* store,
                                                             const ChunkedWriteOptions& options,
                                                             const ByteSink& sink);

}  // namespace strata::fastpull
