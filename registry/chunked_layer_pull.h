// Partial pull of one chunked layer from a registry (internal, not installed): the TOC through
// range GETs, a plan against the chunk store, only the missing chunk frames fetched (merged
// ranges: short ones in multi-range GETs in bounded batches, long runs streamed), put into the
// store by
// fastpull::pull_chunked_layer_into_store, which checks every chunk and the diff_id before the
// one commit. Facts: shared/specs/layer-formats.md §1 (zstd:chunked
// footer, TOC, tar-split), §2 (eStargz), §3 (Range GETs).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "registry/delta_transfer.h"
#include "strata/pull_plan.h"
#include "strata/registry.h"

namespace strata::registry::detail {

// A chunked layer's TOC (read through range GETs) and its plan against a store.
struct ChunkedLayerPlan {
  fastpull::ChunkedFormat format = fastpull::ChunkedFormat::kZstdChunked;
  fastpull::ChunkedLayerToc toc;
  fastpull::PullPlan plan;
};

// Reads the TOC of `descriptor` and plans it against `store`: what pull_chunked_layer() does
// before it fetches a chunk, and what plan_image_pull() reports. nullopt when the layer must be
// fetched whole (`whole_reason` says why: not chunked, TOC unreadable, not plannable). The bytes
// the TOC reads received are added to `metadata_bytes` either way.
std::optional<ChunkedLayerPlan> plan_chunked_layer(
    RegistryClient& client, const std::string& repository, const oci::Descriptor& descriptor,
    const ChunkStore& store, std::uint64_t& metadata_bytes, std::string& whole_reason);

// The bytes a pull of `descriptor` by `plan` fetches beyond the plan's ranges (and its metadata):
// on a first pull (see pull_chunked_layer) the chunk frames region is streamed whole from the
// start, and what lies between and after the plan's ranges comes too.
std::uint64_t early_stream_extra_bytes(bool first_pull, const oci::Descriptor& descriptor,
                                       const fastpull::PullPlan& plan);

// Pulls `descriptor` (a layer whose annotations name a chunked format) into `store`. Returns true
// when the layer is in the store, false when it must be fetched whole instead (layer.whole_reason
// says why: not chunked, TOC unreadable, a TOC feature the planner does not support). Corrupt
// data (a chunk or the diff_id not matching) is an error: nothing is committed. The store is
// thread-safe, and each layer has its own write session, so layers pull in parallel. With
// `deltas` holding a usable index, missing chunks whose base the store holds come as deltas from
// its frames blob (a delta that fails is replaced by the chunk's own range). `deltas` is asked
// once the layer is planned (the lookup may still be on the wire while the TOC is read); it may
// return null.
using DeltasWhenPlanned = std::function<const FoundDeltas*()>;
// `stream_batch_bytes`: PullOptions::stream_batch_bytes. `first_pull`: the store held no chunk
// when the image's pull began (ChunkStore::holds_no_chunks), so the layer's chunk frames are
// streamed from the start, beside its TOC's read (registry/early_stream.h).
Result<bool> pull_chunked_layer(RegistryClient& client, const std::string& repository,
                                const oci::Descriptor& descriptor, const Digest& diff_id,
                                ChunkStore& store, const DeltasWhenPlanned& deltas,
                                std::uint64_t stream_batch_bytes, bool first_pull,
                                PulledLayer& layer);

}  // namespace strata::registry::detail
