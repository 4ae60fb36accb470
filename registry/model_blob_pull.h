// One weight blob of a model pulled by its chunk index (internal, not installed; docs/
// MODEL_ARTIFACTS.md "strata model pull", docs/DELTA.md): in windows of missing bytes, the chunks
// the store lacks come as merged range GETs of the raw blob, or, where the model's delta referrer
// lists a chunk whose base the store holds, as its delta from the frames blob (merged ranges of
// it, the same multi-range requests), decoded with the base and checked against the chunk's
// SHA-256; a delta that fails comes whole instead. Several range batches are in flight at once,
// each chunk checked, stored and written at its offset by the thread that fetched it. Rests on
// registry/delta_transfer.h (the referrer, found and checked) and the store's delta codecs
// (strata/store.h).
#pragma once

#include <string>

#include "registry/delta_transfer.h"
#include "strata/model_artifact.h"

namespace strata::model::detail {

struct IndexedBlobSource {
  registry::RegistryClient& client;
  const std::string& repository;
  ChunkStore& store;
  const ModelPullOptions& options;
  // The model's delta referrer; null, or without an index, when deltas are not used.
  const registry::detail::FoundDeltas* deltas = nullptr;
};

// Fetches what `store` lacks of `layer` (described by `index`), writes the whole blob to
// `assembly` (created; each chunk at its offset), checks it in blob order against the layer digest
// and commits it to the store as a layer whose recipe is the chunk list. Counts go into `file`.
Result<void> pull_indexed_blob(const IndexedBlobSource& source, const oci::Descriptor& layer,
                               const ChunkIndex& index, const std::string& assembly,
                               PulledModelFile& file);

}  // namespace strata::model::detail
