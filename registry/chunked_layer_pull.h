// Partial pull of one chunked layer from a registry (internal, not installed): the TOC through
// range GETs, a plan against the chunk store, only the missing chunk frames fetched (merged
// ranges, multi-range GETs in bounded batches), then the fastpull rebuild that checks every chunk
// and the diff_id before the tar is ingested. Facts: shared/specs/layer-formats.md §1 (zstd:chunked
// footer, TOC, tar-split), §2 (eStargz), §3 (Range GETs).
#pragma once

#include <mutex>
#include <string>

#include "strata/registry.h"

namespace strata::registry::detail {

// Pulls `descriptor` (a layer whose annotations name a chunked format) into `store`. Returns true
// when the layer is in the store, false when it must be fetched whole instead (layer.whole_reason
// says why: not chunked, TOC unreadable, a TOC feature the planner does not support). Corrupt
// data (a chunk or the diff_id not matching) is an error: nothing is ingested. `store_mutex`
// serialises store access with the other layers' workers.
Result<bool> pull_chunked_layer(RegistryClient& client, const std::string& repository,
                                const oci::Descriptor& descriptor, const Digest& diff_id,
                                ChunkStore& store, std::mutex& store_mutex, PulledLayer& layer);

}  // namespace strata::registry::detail
