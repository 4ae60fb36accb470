// Pull plans: the planner that turns a chunked layer's table of contents (TOC) plus the chunks a
// client already holds into the byte ranges a pull must fetch, the rebuild that turns those
// ranges plus local chunks back into the exact tar (checked chunk by chunk and against the
// diff_id), and the delta index of a delta referrer (docs/DELTA.md), which turns missing chunk
// pieces of a plan into deltas against chunks the client holds. No chunk store appears here (the
// caller says which chunks it has and reads them; only the store's Codec and chunk size limit are
// used); core/pull/ implements it. Rests on strata/chunked_layer.h (formats, TOC, RangeFetcher).
// Byte layouts: shared/specs/layer-formats.md §1 (zstd:chunked) and §2 (eStargz).
//
// Staged: the plan (BlobPiece, PullPlan, plan_pull()), the rebuild into memory
// (rebuild_chunked_layer(), verify_chunked_blob()), then the delta index (parse_delta_index(),
// write_delta_index(), apply_delta_index()). Pulls into a store: strata/store_pull.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/bytes.h"
#include "strata/chunked_layer.h"
#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::fastpull {

// ---- plans --------------------------------------------------------------------------------------

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
  // Index schemaVersion 2, zstd-delta only: the frame was made with the raw bytes of these chunks,
  // in this order, as its prefix (`base` and its neighbours in the base layer's file), not with
  // `base` alone. Empty: the base alone.
  std::vector<Digest> prefix;
};

// A delta's prefix holds at most this many chunks (docs/DELTA.md "Format").
inline constexpr std::size_t kMaxDeltaPrefixChunks = 8;

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
  // Set by apply_delta_index: an earlier piece of this plan brings the same chunk (fetched whole
  // or as a delta); its bytes are kept and used again, nothing is fetched for this piece.
  bool repeat = false;
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
  // apply_delta_index: a missing chunk that the layer holds more than once is fetched once and
  // its raw bytes kept for the repeats, up to this many bytes of such chunks in all (the rest is
  // fetched again each time).
  std::uint64_t max_repeat_bytes = std::uint64_t{64} << 20U;
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
  std::uint64_t repeat_chunks = 0;  // pieces marked `repeat` (nothing fetched for them)
  std::uint64_t fetch_bytes_without_deltas = 0;
  [[nodiscard]] std::uint64_t total_bytes() const noexcept { return metadata_bytes + fetch_bytes; }
};

using HaveChunk = std::function<bool(const Digest& digest)>;
Result<PullPlan> plan_pull(const ChunkedLayerToc& layer, const HaveChunk& have,
                           const PullPlanOptions& options = {});

// ---- rebuilds -----------------------------------------------------------------------------------

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

// Reads the TOC of a whole blob held in memory and rebuilds it with nothing local.
Result<RebuildReport> verify_chunked_blob(ByteSpan blob, const oci::Annotations& annotations,
                                          const std::optional<Digest>& expected_diff_id);

// ---- delta index (docs/DELTA.md) ----------------------------------------------------------------

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
// not used. A missing chunk that comes again later in the layer is asked for once: its later
// pieces are marked `repeat` (up to options.max_repeat_bytes of such chunks) and fetch nothing.
// Sets fetch_bytes_without_deltas.
Result<void> apply_delta_index(PullPlan& plan, const DeltaIndex& index, const HaveChunk& have,
                               const PullPlanOptions& options = {});

}  // namespace strata::fastpull
