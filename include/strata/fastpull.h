// Fast pulls: lazy-pull layer formats (zstd:chunked, both variants, and eStargz), the
// planner that turns a layer's table of contents (TOC) plus a chunk store into the byte ranges a
// pull must fetch, the rebuild that turns those ranges plus local chunks back into the exact tar,
// and image conversion through the chunk store. Byte layouts: shared/specs/layer-formats.md §1
// (zstd:chunked blob, footer, TOC, tar-split, annotations) and §2 (eStargz footer, TOC).
//
// Staged like the rest of strata (1-3, the formats themselves, live in strata/chunked_layer.h,
// which this header includes):
//   1. vocabulary: formats, annotation keys, TOC entries
//   2. writing: write_zstd_chunked_layer() (tar + chunk cut points -> blob, TOC, tar-split),
//      write_estargz_layer()
//   3. reading: footers, TOC JSON, read_chunked_toc() through a range fetcher
//   4. planning and rebuilding: plan_pull(), rebuild_chunked_layer(), verify_chunked_layer()
//   4c. deltas over the wire (docs/DELTA.md): the delta index of a delta referrer, applied to a
//      plan; write_delta_referrer() makes the referrer from a store's delta chunks
//   5. images through a store: convert_image(), write_chunked_layer_from_tar_file(),
//      plan_image_pull(), pull_layout_image()
// The registry client plugs in through RangeFetcher: fetch(offset, length) -> bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/chunked_layer.h"
#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::fastpull {

// ---- 4. planning and rebuilding ---------------------------------------------------------------

// One chunk of a delta referrer's index (docs/DELTA.md): `chunk` is coded against `base` with a
// delta codec; its coded bytes are [offset, offset + length) of the referrer's frames blob and
// decode to raw_length bytes.
struct DeltaEntry {
  Digest chunk;
  Digest base;
  Codec codec = Codec::kZstdDelta;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint64_t raw_length = 0;
};

// A piece of the blob's data region, in blob order; the pieces tile [0, data_end).
struct BlobPiece {
  std::uint64_t offset = 0;
  std::uint64_t end = 0;
  bool is_chunk = false;      // decompresses to exactly one chunk of file content
  bool chunk_prefix = false;  // decompresses to a chunk followed by tar bytes (eStargz style)
  Digest digest;              // chunk only
  std::uint64_t chunk_size = 0;
  bool zeros = false;
  bool local = false;  // the chunk is taken from the local store (or made, for zeros)
  std::string name;
  std::uint64_t chunk_offset = 0;
  std::optional<Digest> file_digest;  // set on a file's last chunk
  std::uint64_t file_size = 0;
  // Set by apply_delta_index: the chunk comes as this delta from the frames blob (decoded with
  // its base from the store), not from this piece of the layer blob.
  std::optional<DeltaEntry> delta;
};

struct PullPlanOptions {
  std::uint64_t gap_bridge_bytes = 4096;      // gaps smaller than this are fetched, not split
  std::size_t max_ranges_per_request = 1024;  // c/storage's limit per multi-range GET
  // With a tar-split (current zstd:chunked), tar headers and padding come from it: only chunk
  // frames are fetched, as c/storage does.
  bool headers_from_tar_split = true;
  // Sizes in a TOC are the registry's word, not facts (docs/THREAT_MODEL.md): a TOC whose files
  // add up to more than this, or with a "zeros" chunk (bytes made locally, never fetched) larger
  // than max_zeros_chunk_bytes, is refused before anything is fetched or generated. The caller
  // then fetches the layer whole, where the decompression cap (LayerSourceOptions) applies.
  std::uint64_t max_tar_bytes = std::uint64_t{64} << 30U;         // as a whole layer's cap
  std::uint64_t max_zeros_chunk_bytes = std::uint64_t{1} << 30U;  // a 1 GiB hole per chunk
};

struct PullPlan {
  ChunkedFormat format = ChunkedFormat::kZstdChunked;
  std::vector<BlobPiece> pieces;
  std::vector<ByteRange> ranges;                 // merged, in blob order
  std::vector<std::vector<ByteRange>> requests;  // ranges grouped per request
  std::uint64_t blob_size = 0;
  std::uint64_t metadata_bytes = 0;  // footer / TOC / tar-split fetched before planning
  std::uint64_t fetch_bytes = 0;     // sum of ranges (bridged gaps included)
  std::uint64_t chunks = 0;
  std::uint64_t local_chunks = 0;
  std::uint64_t local_chunk_bytes = 0;  // uncompressed
  std::uint64_t missing_chunks = 0;
  bool headers_from_tar_split = false;  // gap pieces are not fetched: the tar-split has them
  // apply_delta_index: the frames blob's ranges (merged, in blob order) for the pieces that come
  // as deltas, and what fetch_bytes was before (the layer-blob ranges without deltas).
  std::vector<ByteRange> delta_ranges;
  std::uint64_t delta_fetch_bytes = 0;
  std::uint64_t delta_chunks = 0;
  std::uint64_t fetch_bytes_without_deltas = 0;
  [[nodiscard]] std::uint64_t total_bytes() const noexcept { return metadata_bytes + fetch_bytes; }
};

using HaveChunk = std::function<bool(const Digest& digest)>;
Result<PullPlan> plan_pull(const ChunkedLayerToc& layer, const HaveChunk& have,
                           const PullPlanOptions& options = {});

using LocalChunkReader = std::function<Result<std::vector<std::uint8_t>>(const Digest& digest)>;

struct RebuildReport {
  Digest diff_id;
  std::uint64_t tar_bytes = 0;
  std::uint64_t fetched_bytes = 0;  // by the ranges (metadata not included)
  std::uint64_t local_chunks = 0;
  std::uint64_t entries_checked = 0;
};

// Fetches the plan's ranges, decompresses and verifies every piece (chunk and file digests), and
// rebuilds the tar into `tar` (at most max_tar_bytes). Then checks: sha256(tar) = expected_diff_id
// (when given), the TOC describes the tar's entries, and the tar-split (when present) rebuilds the
// tar byte for byte with the same entries.
Result<RebuildReport> rebuild_chunked_layer(const ChunkedLayerToc& layer, const PullPlan& plan,
                                            const RangeFetcher& fetch,
                                            const LocalChunkReader& local,
                                            const std::optional<Digest>& expected_diff_id,
                                            std::vector<std::uint8_t>& tar,
                                            std::uint64_t max_tar_bytes = std::uint64_t{8} << 30U);

// ---- 4b. pulling straight into a chunk store --------------------------------------------------

// Fetches a batch of ranges of the blob (in blob order); returns each range's bytes, exactly its
// length, in the same order. Called once per batch: a registry answers it with multi-range GETs.
using RangeBatchFetcher = std::function<Result<std::vector<std::vector<std::uint8_t>>>(
    std::span<const ByteRange> ranges)>;

// Deltas for a StorePull (docs/DELTA.md): pieces the plan marks `delta` take their bytes from the
// frames blob through `fetch` (batched like the layer's ranges); a delta that does not decode to
// its chunk's SHA-256 is replaced by the chunk's own piece of the layer blob through
// `fetch_chunk` (a single range), or, without it, is an error naming the chunk.
struct DeltaPullSource {
  RangeBatchFetcher fetch;
  std::uint64_t frames_size = 0;  // the frames blob's size (its descriptor's)
  RangeFetcher fetch_chunk;
};

struct StorePullOptions {
  // Fetched bytes held at once: the plan's ranges are cut at piece boundaries into batches of at
  // most this much (a single piece larger than this is a batch of its own).
  // Small enough that decoding starts soon after the first bytes arrive, and several are in flight.
  std::uint64_t batch_bytes = std::uint64_t{8} << 20U;
  std::size_t max_ranges_per_batch = 1024;  // c/storage's limit per multi-range GET
  // Fetch the next batches on other threads while this one is decoded (batches_in_flight + 1
  // batches held at most). With batches_in_flight 1 the fetcher is never called twice at once;
  // with more it is called from several threads at once (a registry client's connection pool).
  bool prefetch = true;
  std::size_t batches_in_flight = 1;
  int zstd_level = 3;  // for chunks that cannot keep their fetched frame
  // Recorded with the layer: the media type of the blob it was pulled from (unset: a plain tar).
  // The blob's own digest is never recorded: a partial pull sees only some of the blob's bytes, so
  // that digest is unverified and must not become a key the store answers to (a hostile registry
  // could otherwise file its content under another image's blob digest; docs/THREAT_MODEL.md).
  // The layer is known by its diff_id, which the pull hashed.
  std::string media_type;
  // Set when the plan has delta pieces (apply_delta_index).
  const DeltaPullSource* deltas = nullptr;
};

// Where a pull's time went, in seconds of wall time of the thread that rebuilds the tar (each
// second counted in one stage only), plus `fetch` and `prepare`, which run beside it: the time
// spent inside the fetcher (batches in flight overlap the rest) and the time worker threads spent
// decoding and hashing chunks ahead of the rebuild. `fetch_wait` is the rebuild waiting for
// bytes: the part of the fetch nothing overlapped.
struct PullStageTimes {
  double fetch_wait = 0;  // waiting for fetched bytes (or chunks prepared ahead)
  double decode = 0;      // zstd / gzip decoding of fetched pieces on the rebuild thread
  double hash = 0;        // chunk and file SHA-256 on the rebuild thread
  double diff_id = 0;     // SHA-256 of the tar (sequential by nature)
  double local = 0;       // chunks the store holds, read and decoded on the rebuild thread
  double store = 0;       // puts into the write session (pack append; compression where needed)
  double check = 0;       // the TOC and tar-split checked against the rebuilt tar
  double commit = 0;      // pack fsync and the index transaction
  double fetch = 0;       // inside the fetcher, on fetch threads (overlaps the stages above)
  double prepare = 0;     // decoding, reading and hashing chunks ahead, on worker threads
  // Set by registry pulls: reading the footer, TOC and tar-split and planning; and for a layer
  // fetched whole, its download and its ingest (which overlap when the ingest streams).
  double toc = 0;
  double download = 0;
  double ingest = 0;
  PullStageTimes& operator+=(const PullStageTimes& other);
};

struct StorePullReport {
  Digest diff_id;
  std::uint64_t tar_bytes = 0;
  std::uint64_t fetched_bytes = 0;      // by the ranges (metadata not included)
  std::uint64_t batches = 0;            // fetch batches (each one RangeBatchFetcher call)
  std::uint64_t max_batch_bytes = 0;    // the largest batch (two are held at most)
  std::uint64_t adopted_frames = 0;     // chunks stored with their fetched zstd frame as-is
  std::uint64_t compressed_chunks = 0;  // chunks compressed here (eStargz gzip, odd frames, splits)
  std::uint64_t local_chunks = 0;       // chunks taken from the store (or zeros made)
  std::uint64_t new_chunks = 0;         // chunks the commit added to the store
  std::uint64_t new_stored_bytes = 0;
  std::uint64_t entries_checked = 0;
  bool already_present = false;           // the store had this layer already
  std::uint64_t delta_chunks = 0;         // chunks decoded from a fetched delta and its base
  std::uint64_t delta_fetched_bytes = 0;  // frames-blob bytes fetched (also in fetched_bytes)
  std::uint64_t delta_stored_chunks = 0;  // of those, stored as the delta itself
  std::uint64_t delta_fallbacks = 0;      // deltas that failed: the chunk fetched whole instead
  PullStageTimes stages;
};

// Pulls a planned chunked layer into `store` without holding the layer: the plan's ranges are
// fetched batch by batch in blob order (the next batches while this one is decoded), each piece
// decoded and checked (chunk digest, file digest) on all cores ahead of the rebuild, which hashes
// the tar and puts the chunks in order, and the layer recorded as a recipe
// whose chunks are the TOC's chunks, so the next pull of that image plans against exactly the
// digests the store now holds. A zstd:chunked chunk whose fetched bytes are one zstd frame of
// exactly that chunk is stored as that frame (no recompression; a frame without a content size
// gets it inserted in its header, blocks untouched); other chunks (eStargz gzip members, frames
// holding more than the chunk, chunks over the store's kMaxStoredChunkBytes, which are split) are
// compressed here. Tar headers and padding (from the tar-split, or the decoded gap pieces) become
// inline recipe bytes. The tar's SHA-256 is computed on the way and must equal
// `expected_diff_id`, and the TOC (and tar-split) must describe the tar, before the one commit:
// on any error nothing becomes visible in the store.
Result<StorePullReport> pull_chunked_layer_into_store(ChunkStore& store,
                                                      const ChunkedLayerToc& layer,
                                                      const PullPlan& plan,
                                                      const RangeBatchFetcher& fetch,
                                                      const Digest& expected_diff_id,
                                                      const StorePullOptions& options = {});

// ---- 4c. deltas over the wire (docs/DELTA.md) -------------------------------------------------

inline constexpr std::string_view kArtifactTypeDelta = "application/vnd.strata.delta.v1";
inline constexpr std::string_view kMediaTypeDeltaIndex =
    "application/vnd.strata.delta.index.v1+json";
inline constexpr std::string_view kMediaTypeDeltaFrames = "application/vnd.strata.delta.frames.v1";

// The index blob of a delta referrer: which frames blob it describes and one entry per chunk,
// sorted by chunk digest (each chunk once).
struct DeltaIndex {
  Digest frames_digest;
  std::uint64_t frames_size = 0;
  std::vector<DeltaEntry> entries;
  [[nodiscard]] const DeltaEntry* find(const Digest& chunk) const;
};

// What the parser accepts: the JSON's size is checked before parsing, the entry count before the
// entries are read, every size and offset before anything is allocated or fetched for it.
struct DeltaIndexLimits {
  std::size_t max_json_bytes = std::size_t{64} << 20U;
  std::size_t max_entries = std::size_t{1} << 20U;
};

// Parses and checks an index (docs/DELTA.md "Checks"): known delta codecs only, 0 < raw_length <=
// kMaxStoredChunkBytes, 0 < length <= raw_length, [offset, offset + length) inside frames_size,
// no chunk twice, no chunk its own base, no base that is itself a chunk of the index (chains and
// cycles). Anything else is kCorruptInput / kLimitExceeded naming the entry.
Result<DeltaIndex> parse_delta_index(ByteSpan json, const DeltaIndexLimits& limits = {});
std::string write_delta_index(const DeltaIndex& index);

// Marks the plan's missing chunk pieces that `index` lists with a base the store holds (`have`)
// as delta pieces: they leave the layer-blob ranges (recomputed as plan_pull does) and their
// deltas become plan.delta_ranges (merged across gaps below options.gap_bridge_bytes). A delta no
// smaller than the piece it replaces, or whose raw_length differs from the TOC's chunk size, is
// not used. Sets fetch_bytes_without_deltas.
Result<void> apply_delta_index(PullPlan& plan, const DeltaIndex& index, const HaveChunk& have,
                               const PullPlanOptions& options = {});

struct DeltaReferrerReport {
  oci::Descriptor referrer;  // the artifact manifest (artifact_type set)
  Digest subject;            // the image (or model) manifest it refers to
  std::uint64_t chunks = 0;  // distinct chunks of the image's chunked layers (model: weight blobs)
  std::uint64_t delta_chunks = 0;
  std::uint64_t frames_bytes = 0;  // the coded deltas, back to back
  std::uint64_t delta_raw_bytes = 0;
  std::uint64_t index_bytes = 0;
  std::uint64_t no_toc_layers = 0;  // layers without a usable chunked TOC (no deltas for them)
};

// Makes the delta referrer of image `tag` of `layout` from `store` and writes it into the layout
// (frames blob, index blob, empty config, artifact manifest with subject = the image manifest),
// tagged with the referrers fallback tag "sha256-<manifest hex>". Every chunk of the image's
// chunked layers that the store holds as a delta (each checked to decode to its SHA-256) goes
// in; chunks stored whole do not. A layout tag of that name is replaced.
Result<DeltaReferrerReport> write_delta_referrer(const ChunkStore& store, oci::OciLayout& layout,
                                                 std::string_view tag);

// One chunk a delta referrer may carry: its digest, its raw length, and the bytes a receiver
// fetches for it without deltas (its frame in a chunked layer; its raw bytes in a model blob).
struct DeltaCandidate {
  Digest chunk;
  std::uint64_t raw_length = 0;
  std::uint64_t fetch_length = 0;
};

// The referrer writer both callers share: of `chunks` (in the order a pull asks for them;
// repeats counted once), each one `store` holds as a delta smaller than its fetch_length, with
// the raw length given, goes in (checked to decode to its SHA-256 first). Writes the frames,
// index, empty config and artifact manifest (subject = `subject`) into the layout and tags
// nothing: write_delta_referrer tags the image's, `model push` its own (docs/DELTA.md).
Result<DeltaReferrerReport> write_delta_referrer_for_chunks(const ChunkStore& store,
                                                            oci::OciLayout& layout,
                                                            const oci::Descriptor& subject,
                                                            std::span<const DeltaCandidate> chunks);

// Reads the TOC of a whole blob held in memory and rebuilds it with nothing local.
Result<RebuildReport> verify_chunked_blob(ByteSpan blob, const oci::Annotations& annotations,
                                          const std::optional<Digest>& expected_diff_id);

// ---- 5. images through a store ----------------------------------------------------------------

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

struct LayerPullPlan {
  Digest layer_digest;
  Digest diff_id;
  bool chunked = false;  // false: a plain layer, fetched whole
  PullPlan plan;         // chunked only
  std::uint64_t size = 0;
};

// Plans the pull of every layer of `tag` in the layout at `source` against `store`.
Result<std::vector<LayerPullPlan>> plan_image_pull(const ChunkStore& store,
                                                   const std::string& source, std::string_view tag,
                                                   const PullPlanOptions& options = {});

// What pull_layout_image() did (a pull from a registry reports in registry::PullReport).
struct LayoutPullReport {
  std::vector<LayerPullPlan> layers;
  std::uint64_t bytes_read = 0;  // blob bytes read from the source, metadata included
  std::uint64_t tar_bytes = 0;
};

// Applies the plans against the local layout (reading only the planned ranges), rebuilds each
// layer, checks its diff_id and ingests it into `store`.
Result<LayoutPullReport> pull_layout_image(ChunkStore& store, const std::string& source,
                                           std::string_view tag,
                                           const PullPlanOptions& options = {});

}  // namespace strata::fastpull
