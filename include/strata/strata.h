// The one header to include. Staged like zstd.h: each stage below uses only what the stages above
// it introduce, and the includes come in that order. A header that serves two stages stands at the
// first one (chunker.h holds chunk_buffer() and the Chunker object; engine.h holds ingest and
// export and, as an advanced option, delta coding).
//
//   1. vocabulary: Result/Error, byte spans, ranges and sinks, padded buffers, SHA-256 digests
//   2. simple API, one call each: chunk_buffer() (chunker.h); ingest_layer_file() and
//      export_layer_tar() (engine.h); convert_image() and write_chunked_layer_from_tar_file()
//      (convert.h)
//   3. explicit objects: Chunker (chunker.h), ChunkStore and StoreWriter (store.h), layer recipes
//      (recipe.h), OciLayout and LayerWriter (oci.h), the unpacker (unpack.h), RegistryClient and
//      image push/pull (registry.h)
//   4. streaming, feed/finish in pieces: Chunker::feed/finish, LayerWriter::write/finish, the
//      chunked-layer writers and TOC readers (chunked_layer.h), pull plans and rebuilds
//      (pull_plan.h), pulls into a store batch by batch (store_pull.h)
//   5. advanced parameters: SIMD kernel listing and forcing (kernels.h), model file layouts and
//      tensor-aware chunking (model_formats.h, models.h)
//   6. experimental (formats and APIs that may still change between minor versions): model
//      packaging and its chunk index (model_package.h), model artifact transfer
//      (model_artifact.h), the registry-backed remote store (remote_store.h). Delta coding is
//      experimental too, though it lives in stage 2-4 headers: in the store
//      (IngestOptions::delta in engine.h, Codec::kZstdDelta/kXorByteGrouped in store.h) and over
//      the wire (the delta index in pull_plan.h, write_delta_referrer() in store_pull.h,
//      registry::push_delta_referrer() and PullOptions::deltas in registry.h; docs/DELTA.md).
//
// strata/fastpull.h, an older umbrella over chunked_layer.h, pull_plan.h, store_pull.h and
// convert.h, adds nothing beyond them. The C ABI is strata/strata_c.h.
#pragma once

// The order is the staging above, not the alphabet.
// clang-format off
// 1. vocabulary
#include "strata/result.h"
#include "strata/bytes.h"
#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/version.h"

// 2. simple API
#include "strata/chunker.h"
#include "strata/engine.h"
#include "strata/convert.h"

// 3. explicit objects
#include "strata/store.h"
#include "strata/recipe.h"
#include "strata/oci.h"
#include "strata/unpack.h"
#include "strata/registry.h"

// 4. streaming
#include "strata/chunked_layer.h"
#include "strata/pull_plan.h"
#include "strata/store_pull.h"

// 5. advanced parameters
#include "strata/kernels.h"
#include "strata/model_formats.h"
#include "strata/models.h"

// 6. experimental
#include "strata/model_package.h"
#include "strata/model_artifact.h"
#include "strata/remote_store.h"
// clang-format on
