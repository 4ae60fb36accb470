// AI models as OCI artifacts (shared/specs/models.md §8): packaging a directory of safetensors
// shards and config/tokenizer files, or a (sharded) GGUF file, as a Docker Model Runner artifact
// (config v0.2, one raw layer per file) or a CNCF ModelPack artifact; a chunk index of every weight
// blob published beside the model as an OCI 1.1 referrer (its `subject` is the model manifest;
// registries without the referrers API get the tag-schema fallback tag "sha256-<hex>"); pushing
// both; and pulling a model so that only the chunks a local store lacks cross the wire, as range
// GETs on the untouched raw blobs.
//
// Staged like the rest of strata (1-3 live in strata/model_package.h, which this header includes;
// 4 is implemented in registry/):
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
#include "strata/model_package.h"
#include "strata/oci.h"
#include "strata/registry.h"
#include "strata/result.h"
#include "strata/store.h"
#include "strata/store_pull.h"

namespace strata::model {

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

// The layout tag of a model's delta referrer: "sha256-<manifest hex>.delta" (the fallback tag
// itself holds the chunk index referrer in a model layout).
std::string model_delta_referrer_tag(const Digest& subject);

// Makes the delta referrer (docs/DELTA.md; the image's format, subject = the model manifest) of
// the model tagged `tag` in `layout` from `store`: every chunk of its indexed weight blobs that
// the store holds as a delta smaller than the chunk goes in (fastpull::
// write_delta_referrer_for_chunks), tagged model_delta_referrer_tag() in the layout. The model
// must have been packaged with that store (`model package --store`), so its chunk digests are
// the store's. Push it with registry::push_delta_referrer after push_model.
Result<fastpull::DeltaReferrerReport> write_model_delta_referrer(const ChunkStore& store,
                                                                 oci::OciLayout& layout,
                                                                 std::string_view tag);

struct ModelPullOptions {
  std::string out_directory;  // empty: files are only verified and stored, not written
  // Missing bytes fetched per round (bounds memory); merged ranges per request.
  std::uint64_t window_bytes = std::uint64_t{32} << 20U;
  std::size_t max_ranges_per_request = 64;
  // Range batches of a window in flight at once (each on its own connection of the client's
  // pool, its chunks verified, compressed and written by the thread that fetched them), and the
  // most missing bytes one batch asks for. Bytes in flight stay under window_bytes.
  std::size_t fetch_jobs = 4;
  std::uint64_t batch_bytes = std::uint64_t{8} << 20U;
  int zstd_level = 3;
  // Use the model's delta referrer (docs/DELTA.md) when there is one: a missing chunk whose base
  // the store holds comes as its delta.
  bool deltas = true;
};

// Where a model pull's time went, in seconds. Stages that run on the fetch threads (fetch,
// verify, decode, store, write) are summed over those threads, so with several batches in flight
// they can add up to more than the pull's wall time; the others run on the pulling thread.
struct ModelPullStages {
  double fetch = 0;      // inside range GETs and whole-blob downloads
  double verify = 0;     // chunk SHA-256 before a chunk is written or stored
  double decode = 0;     // deltas decoded with their base (the base's read included)
  double store = 0;      // chunk compression and puts into the write session
  double write = 0;      // positioned writes of fetched chunks into the file being assembled
  double local = 0;      // chunks the store or the file already held: read, checked, written
  double blob_hash = 0;  // SHA-256 of the assembled file, in blob order
  double commit = 0;     // fsync and the store layer commit
  double ingest = 0;     // a blob fetched whole, chunked into the store
  double exported = 0;   // a blob the store held whole, exported and hashed
  ModelPullStages& operator+=(const ModelPullStages& other);
};

struct PulledModelFile {
  std::string path;
  oci::Descriptor descriptor;
  bool indexed = false;         // fetched by chunk ranges
  bool already_stored = false;  // the store held the whole blob
  std::uint64_t chunks = 0;
  std::uint64_t chunks_fetched = 0;  // chunks received (whole or as deltas)
  std::uint64_t bytes_fetched = 0;   // blob and frames bytes received for this file
  // Deltas: chunks decoded from a fetched delta and a base the store held, the frames bytes
  // fetched for them (in bytes_fetched), of those kept in the store as the delta itself, deltas
  // that failed (the chunk fetched whole instead; the first reason), and what bytes_fetched would
  // have been without deltas.
  std::uint64_t delta_chunks = 0;
  std::uint64_t delta_bytes_fetched = 0;
  std::uint64_t delta_stored_chunks = 0;
  std::uint64_t delta_fallbacks = 0;
  std::string delta_fallback_reason;
  std::uint64_t bytes_fetched_without_deltas = 0;
  ModelPullStages stages;
  double seconds = 0;  // wall time of this file
};

struct ModelPullReport {
  Digest manifest_digest;
  std::string format;     // "docker" | "modelpack"
  std::string referrers;  // where the chunk index came from: "api" | "tag" | "" (none)
  std::vector<PulledModelFile> files;
  std::uint64_t total_bytes = 0;    // sum of the layers' sizes
  std::uint64_t bytes_fetched = 0;  // config, indexes, referrers, blob and frames bytes received
  // The delta referrer: where it was found ("api" | "tag" | ""), why one found was not used, the
  // bytes of its manifest and index (in bytes_fetched), and bytes_fetched with every file's delta
  // work replaced by its ranges without deltas and the referrer bytes taken out.
  std::string delta_referrer;
  std::string delta_refused;
  std::uint64_t delta_referrer_bytes = 0;
  std::uint64_t bytes_fetched_without_deltas = 0;
  registry::TransferCounters wire;
  ModelPullStages stages;  // the files' stages summed
  double seconds = 0;      // wall time of the whole pull
};

// Pulls the model `source` into `store` (and `out_directory`): chunks the store lacks are fetched
// as merged byte ranges of the raw blobs, each verified against its SHA-256, every assembled file
// against its blob digest; layers without a chunk index are fetched whole. With a delta referrer
// and options.deltas, a missing chunk whose base the store holds comes as its delta (merged
// ranges of the frames blob), decoded and checked against its SHA-256; a delta that fails is
// replaced by the chunk's own range. Files are moved into `out_directory` only once every file
// is complete, so a pull that fails while fetching leaves none of them there. File paths come from
// the file-path annotations; absolute paths, '..' and empty components are refused (kUnsafePath).
Result<ModelPullReport> pull_model(registry::RegistryClient& client,
                                   const registry::ImageReference& source, ChunkStore& store,
                                   const ModelPullOptions& options);

}  // namespace strata::model
