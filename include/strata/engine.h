// The dedup engine: ingest a layer blob (tar, tar+gzip, tar+zstd; file or pipe) into a chunk store
// as an exact recipe plus only its new chunks, and export a stored layer back, byte for byte.
// Ingest runs as a TBB parallel_pipeline (DESIGN.md §1): a serial in-order reader that parses the
// tar and cuts file content into chunks, parallel stages that hash each chunk (SHA-256), look it up
// and compress the new ones (zstd, one frame per chunk; float-tensor chunks of model files
// byte-grouped when that is smaller), and a serial in-order writer that appends
// to the store, records the recipe and hashes the whole stream (the diff_id). Memory stays bounded
// by tokens x batch size whatever the layer size.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "strata/chunker.h"
#include "strata/digest.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata {

enum class TrustMode : std::uint8_t {
  // Every chunk is named by its SHA-256, computed here: untrusted input cannot poison the store.
  kVerify,
  // A chunk whose XXH3-128 fingerprint the store already knows takes that chunk's SHA-256 without
  // hashing it again. Only for input from a trusted, local source (collisions are not defended).
  kLocal,
};

// Which store codec float-tensor chunks of model files get (shared/specs/models.md §1).
enum class ByteGrouping : std::uint8_t {
  kOff,            // plain zstd for every chunk
  kSmaller,        // byte-grouped or plain zstd, whichever is smaller (about twice the zstd work)
  kGroupingFirst,  // byte-grouped when it saves >= 1/32 of the raw bytes; else also try plain
};

// One piece of a layer's tar as the ingest records it, in tar order.
struct IngestedSegment {
  ByteSpan bytes;                 // the tar bytes
  std::uint64_t tar_offset = 0;   // where they start in the tar
  const Digest* chunk = nullptr;  // a chunk's digest; nullptr for raw bytes (headers, padding)
  ByteSpan new_frame;             // a chunk this ingest stores: its stored form (codec below)
  Codec codec = Codec::kRaw;
};

// Delta coding of new chunks against a layer the store already holds (DESIGN.md §7; docs/STORE.md
// "Delta chunks"). For a new chunk of a regular file whose path the base layer also holds, the
// base chunk at the same relative position of that file is read (once, through a bounded cache)
// and the chunk is stored as a delta when that is below max_ratio x its plain stored form. Layer
// bytes are unaffected: every reader decodes through the base and checks the SHA-256.
enum class DeltaBase : std::uint8_t {
  kNone,    // no delta coding
  kLayer,   // against DeltaIngestOptions::layer
  kNewest,  // against the layer committed last to the store (none: no delta coding)
};

struct DeltaIngestOptions {
  DeltaBase base = DeltaBase::kNone;
  Digest layer;  // kLayer: the base layer's diff_id or a blob digest it was ingested from
  double max_ratio = 0.9;
  std::size_t cache_bytes = std::size_t{64} << 20U;  // raw bytes of base chunks kept in memory
  // A file whose path the base layer lacks (renamed, moved) finds its base chunks by content
  // sketch in an index of the base layer's chunks, built on first need from at most
  // sketch_index_chunks of them (its bound in time and memory; 0: no sketches).
  std::size_t sketch_index_chunks = std::size_t{1} << 16U;
  // Keep the content sketch of every new chunk stored whole (whether or not this ingest codes
  // deltas), so that a later ingest delta-coded against this layer builds its sketch index from
  // the store instead of reading every chunk of the layer. Costs one pass over the new bytes.
  bool keep_sketches = true;
};

struct IngestOptions {
  ChunkerOptions chunker;
  int zstd_level = 3;
  unsigned threads = 0;  // 0: one per hardware thread
  TrustMode trust = TrustMode::kVerify;
  // Bomb protection: the uncompressed tar may not exceed this.
  std::uint64_t max_uncompressed_bytes = std::uint64_t{64} << 30U;
  // Decode every new chunk's stored form and compare it with the chunk before storing it. This
  // runs in the parallel stage; a store opened for ingest can then leave StoreOptions::verify_puts
  // off (the tool does), which would repeat the check in the serial writer.
  bool verify_frames = true;
  // Bytes of tar stream per pipeline token; live tokens are 3 x threads.
  std::size_t batch_bytes = std::size_t{4} << 20U;
  // Regular files recognised as safetensors or GGUF are chunked with every tensor boundary as a
  // forced cut, so a changed tensor never dirties its neighbours' chunks. A file whose header does
  // not parse is chunked plainly. Export is unaffected: the layer's bytes are the same either way.
  bool model_aware = true;
  ByteGrouping byte_grouping = ByteGrouping::kSmaller;
  DeltaIngestOptions delta;
  // Called from the serial writer stage with every piece of the uncompressed tar, in order (the
  // bytes the diff_id hashes and the recipe replays, with their chunk digests and new frames). A
  // layer converter writes its output from here instead of exporting the recipe again afterwards.
  // An error stops the ingest and nothing of the layer is committed.
  std::function<Result<void>(const IngestedSegment&)> tar_observer;
};

struct IngestProgress {
  std::uint64_t input_bytes = 0;  // bytes read from the blob (compressed)
  std::uint64_t tar_bytes = 0;    // uncompressed bytes done
};

// Where an ingest spent its time. reliability.md §5 asks for the cost of hashing, CDC, compression
// and verify-before-commit separately. The step clocks are wall-clock seconds of each step's calls,
// summed over the threads that ran them (so parallel steps may add up to more than the ingest's
// wall time, and a machine busy with other work inflates them: a thread waiting for a core still
// counts); cut_scan_cpu alone is CPU time.
struct IngestStageSeconds {
  double read_and_cut = 0;  // stage 1 (serial): read, decompress, parse the tar, cut, batch
  // Of which: entry content through the segmenter: the chunker's scans, tensor cuts, the bytes it
  // buffers (files held back as possible models; tensor-aware files), and the listing of each
  // chunk in its batch (a chunk lies in the batch's read block: copied only when it does not). The
  // tail a chunk carries from one read block into the next is copied by the tar reader, in
  // read_and_cut but not here.
  double cut_wall = 0;
  // Thread CPU time (CLOCK_THREAD_CPUTIME_ID) of the content-defined scans alone, summed over the
  // threads that ran them: the cost of the chunking kernel (strata/kernels.h) in this ingest.
  double cut_scan_cpu = 0;
  double hash = 0;      // stage 2 (parallel): SHA-256 (or XXH3-128 lookups) of each chunk
  double compress = 0;  // stage 2: zstd / byte-grouped / delta encoding of new chunks, and their
                        // content sketches (DeltaIngestOptions::keep_sketches)
  double verify = 0;    // stage 2: decoding each new chunk's stored form again (P3)
  double write = 0;     // stage 3 (serial): diff_id hashing, pack appends, recipe
  double commit = 0;    // after the pipeline: fsync of packs, the index transaction
};

struct IngestReport {
  Digest diff_id;       // SHA-256 of the uncompressed tar
  Digest layer_digest;  // SHA-256 of the blob as read (equals diff_id for a plain tar)
  std::string media_type;
  std::string compression;        // "none" | "gzip" | "zstd"
  std::uint64_t input_bytes = 0;  // blob bytes read
  std::uint64_t tar_bytes = 0;
  std::uint64_t entries = 0;
  std::uint64_t chunks = 0;                     // chunk references in the recipe
  std::uint64_t chunked_bytes = 0;              // tar bytes covered by chunks (the rest is inline)
  std::uint64_t new_chunks = 0;                 // chunks this ingest added to the store
  std::uint64_t new_raw_bytes = 0;              // their uncompressed size
  std::uint64_t new_stored_bytes = 0;           // their size in the store (compressed)
  std::uint64_t recipe_bytes = 0;               // serialized recipe size
  std::uint64_t model_files = 0;                // entries chunked tensor-aware
  std::uint64_t byte_grouped_chunks = 0;        // new chunks stored with Codec::kByteGrouped
  std::uint64_t byte_grouped_stored_bytes = 0;  // their size in the store
  std::uint64_t fingerprint_hits = 0;    // TrustMode::kLocal: chunks named by XXH3-128, not hashed
  Digest delta_base_layer;               // the layer new chunks were delta-coded against (or zero)
  std::uint64_t delta_chunks = 0;        // new chunks stored as a delta against a base chunk
  std::uint64_t delta_stored_bytes = 0;  // their size in the store
  // New chunks of files whose path the base layer lacks, coded against a base found by content
  // sketch (core/ingest/delta_sketch.h), and the base chunks the sketch index held.
  std::uint64_t delta_sketch_chunks = 0;
  std::uint64_t delta_sketch_index_chunks = 0;
  bool already_present = false;  // the store had this layer already
  double seconds = 0;
  IngestStageSeconds stage_seconds;
};

using IngestProgressFn = std::function<void(const IngestProgress&)>;

// Ingests the layer blob at `path` ("-": standard input) into `store`.
Result<IngestReport> ingest_layer_file(ChunkStore& store, const std::string& path,
                                       const IngestOptions& options,
                                       const IngestProgressFn& progress = {});

// Ingests a layer held in memory.
Result<IngestReport> ingest_layer_bytes(ChunkStore& store, ByteSpan blob,
                                        const IngestOptions& options,
                                        const IngestProgressFn& progress = {});

struct ExportReport {
  Digest diff_id;
  std::uint64_t tar_bytes = 0;
  double seconds = 0;
};

// Writes the uncompressed tar of the layer named by its diff_id or layer digest to `sink`, every
// chunk verified, and checks the result against the recorded diff_id.
Result<ExportReport> export_layer_tar(const ChunkStore& store, const Digest& layer,
                                      const ByteSink& sink, unsigned threads = 0);

}  // namespace strata
