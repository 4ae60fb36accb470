// A layer tar to its recipe in one thread, for callers that need no store pipeline (zstd:chunked
// from a tar, the fuzz target, tests): the tar segmenter (core/ingest/tar_segmenter.h) cuts the
// stream into inline bytes and chunks, every chunk is named by SHA-256 and handed to the caller
// (who stores it), and the whole stream is hashed on the way: the diff_id. The ingest pipeline
// pulls from the same segmenter, so both give the same recipe.
#pragma once

#include <cstdint>
#include <functional>

#include "core/base/byte_source.h"
#include "core/chunk/entry_content_chunker.h"
#include "core/ingest/tar_segmenter.h"
#include "strata/chunker.h"
#include "strata/recipe.h"

namespace strata {

struct LayerRecipe {
  Recipe recipe;                    // diff_id set
  std::uint64_t entries = 0;        // tar entries (pax 'g' headers included)
  std::uint64_t chunks = 0;         // chunk references (with repeats)
  std::uint64_t chunked_bytes = 0;  // bytes covered by chunk references
  std::uint64_t model_files = 0;    // entries chunked tensor-aware
};

// Called once per chunk, in stream order, with its digest and bytes (valid during the call).
using ChunkCallback = std::function<Result<void>(const Digest& digest, ByteSpan bytes)>;

Result<LayerRecipe> build_recipe_from_tar(ByteSource& tar, const EntryChunkingOptions& chunking,
                                          const ChunkCallback& on_chunk,
                                          const LayerRecipeLimits& limits = {});
// The same with the default EntryChunkingOptions (model-aware, as IngestOptions) around `options`.
Result<LayerRecipe> build_recipe_from_tar(ByteSource& tar, const ChunkerOptions& options,
                                          const ChunkCallback& on_chunk,
                                          const LayerRecipeLimits& limits = {});

}  // namespace strata
