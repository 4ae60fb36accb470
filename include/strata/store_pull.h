// Store pulls: a planned chunked layer pulled straight into a chunk store, batch by batch, without
// holding the layer (with the deltas a delta index planned, decoded against the store's chunks);
// the push side's delta referrer, made from a store's delta chunks; and the pull of a whole image
// from a local OCI layout (plans per layer, only the planned ranges read). core/pull/ implements
// it. Rests on strata/pull_plan.h (the plans, the delta index), the chunk store (strata/store.h)
// and the OCI layout (strata/oci.h). A pull from a registry is registry::pull_image()
// (strata/registry.h), which uses pull_chunked_layer_into_store() for chunked layers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/bytes.h"
#include "strata/chunked_layer.h"
#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/pull_plan.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata::fastpull {

// ---- pulling straight into a chunk store --------------------------------------------------------

// Fetches a batch of ranges of the blob (in blob order); returns each range's bytes, exactly its
// length, in the same order. Called once per batch: a registry answers it with multi-range GETs.
using RangeBatchFetcher = std::function<Result<std::vector<std::vector<std::uint8_t>>>(
    std::span<const ByteRange> ranges)>;

// Streams one range of the blob to `sink` front to back as its bytes arrive, each byte once (a
// registry client resumes a dropped transfer where the delivered bytes end). An error from `sink`
// must end the transfer and be returned.
using RangeSink = std::function<Result<void>(ByteSpan bytes)>;
using RangeStreamer = std::function<Result<void>(const ByteRange& range, const RangeSink& sink)>;

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
  // The first batch's limit (at most batch_bytes): the limits double from it up to batch_bytes,
  // and shrink again towards it over the last bytes, so the first piece is decoded soon after the
  // pull starts and little is left to decode after the last byte arrives.
  std::uint64_t first_batch_bytes = std::uint64_t{1} << 20U;
  std::size_t max_ranges_per_batch = 1024;  // c/storage's limit per multi-range GET
  // Optional. A plan range of at least first_batch_bytes (a run of missing chunks, all of a layer
  // the store lacks) is then fetched through it in batches of up to stream_batch_bytes, one
  // request each, its pieces decoded as their bytes arrive rather than once the batch is whole:
  // few requests (a registry spends CPU on each, a CDN a redirect) and no wait for a whole batch
  // at the start or the end. The bytes arrive in units of about first_batch_bytes, at most 16 of
  // them held at once (the stream waits for one to be let go), whatever the batch size. Shorter
  // ranges go in multi-range batches through the fetcher.
  RangeStreamer stream;
  std::uint64_t stream_batch_bytes = std::uint64_t{64} << 20U;
  // With `stream` set: every plan range is streamed, however short (a streamer whose bytes are
  // already on their way, as a registry pull's early stream of a first pull's whole frames
  // region: short ranges fetched apart would cross the wire twice).
  bool stream_every_range = false;
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
  double hash = 0;        // chunk SHA-256 on the rebuild thread (chunks not checked ahead)
  double diff_id = 0;     // SHA-256 of the tar, on its own thread (overlaps the stages above)
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
  std::uint64_t batches = 0;            // fetch batches (one fetcher or streamer call each)
  std::uint64_t max_batch_bytes = 0;    // the largest batch (see stream for what a stream holds)
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
  std::uint64_t repeat_chunks = 0;        // `repeat` pieces: an earlier piece's chunk used again
  PullStageTimes stages;
};

// Pulls a planned chunked layer into `store` without holding the layer: the plan's ranges are
// fetched batch by batch in blob order (the next batches while this one is decoded), each piece
// decoded and checked against its chunk digest on all cores ahead of the rebuild, which puts the
// chunks in order while a thread of its own hashes the tar (the diff_id: the one whole check; the
// TOC's file digests are not hashed again), and the layer recorded as a recipe
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

// ---- delta referrers (docs/DELTA.md) ------------------------------------------------------------

struct DeltaReferrerReport {
  oci::Descriptor referrer;  // the artifact manifest (artifact_type set)
  Digest subject;            // the image (or model) manifest it refers to
  std::uint64_t chunks = 0;  // distinct chunks of the image's chunked layers (model: weight blobs)
  std::uint64_t delta_chunks = 0;
  std::uint64_t frames_bytes = 0;  // the coded deltas, back to back
  std::uint64_t delta_raw_bytes = 0;
  std::uint64_t prefix_chunks = 0;  // deltas coded with their base's neighbours as well
  std::uint64_t index_bytes = 0;
  std::uint64_t no_toc_layers = 0;  // layers without a usable chunked TOC (no deltas for them)
};

struct DeltaReferrerOptions {
  // The zstd level (1..22) each shipped zstd-delta frame is coded at again, with its base as
  // prefix (the floor, `zstd --patch-from`, is -19): kept when smaller than the store's frame,
  // which the ingest made at its own, fast level. 0: the store's frames as they are.
  int level = 19;
  // With a level: the base's neighbours in its file of the base layer (up to this many either
  // side) join its raw bytes as the prefix (DeltaEntry::prefix), when that codes smaller; a file's
  // bytes shift across chunk boundaries between versions, so one base chunk misses part of what
  // the chunk repeats. 0: the base alone. The base layer is found among the store's newest
  // max_base_layers layers that are not the image's own.
  std::size_t prefix_neighbours = 2;
  std::size_t max_base_layers = 8;
  // Layers whose chunks are never prefix neighbours (the receiver lacks them): write_delta_referrer
  // sets the image's own diff_ids.
  std::vector<Digest> own_layers;
  unsigned threads = 0;  // coding threads; 0: one per hardware thread
};

// The store's delta frames as they are, no coding at push (write_delta_referrer_for_chunks'
// default, which `model push` uses).
inline DeltaReferrerOptions delta_frames_as_stored() {
  DeltaReferrerOptions options;
  options.level = 0;
  return options;
}

// Makes the delta referrer of image `tag` of `layout` from `store` and writes it into the layout
// (frames blob, index blob, empty config, artifact manifest with subject = the image manifest),
// tagged with the referrers fallback tag "sha256-<manifest hex>". Every chunk of the image's
// chunked layers that the store holds as a delta (each checked to decode to its SHA-256) goes
// in, coded again at options.level when that is smaller; chunks stored whole do not. A layout
// tag of that name is replaced.
Result<DeltaReferrerReport> write_delta_referrer(const ChunkStore& store, oci::OciLayout& layout,
                                                 std::string_view tag,
                                                 const DeltaReferrerOptions& options = {});

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
Result<DeltaReferrerReport> write_delta_referrer_for_chunks(
    const ChunkStore& store, oci::OciLayout& layout, const oci::Descriptor& subject,
    std::span<const DeltaCandidate> chunks,
    const DeltaReferrerOptions& options = delta_frames_as_stored());

// ---- images from a local layout -----------------------------------------------------------------

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
