// The single-threaded reference path from a layer tar to its recipe: the tar reader splits the
// stream into header groups, content, padding and end bytes; entry content is cut per entry by
// EntryContentChunker (content-defined cuts, plus forced cuts at tensor boundaries in model files;
// headers and padding never shift a boundary, DESIGN.md §1.2), every chunk is named by SHA-256 and
// handed to the caller (who stores it), and everything else stays inline in the recipe. The whole
// stream is hashed on the way: the diff_id.
#pragma once

#include <cstdint>
#include <functional>

#include "core/base/byte_source.h"
#include "core/chunk/entry_content_chunker.h"
#include "formats/tar/tar_reader.h"
#include "strata/chunker.h"
#include "strata/recipe.h"

namespace strata {

struct LayerRecipeLimits {
  TarLimits tar;
  // Inline bytes a recipe may hold (headers, padding, end blocks): entry-count bombs stop here.
  std::uint64_t max_raw_bytes = 256ULL << 20U;
  // Trailing bytes after the end blocks up to this size stay inline; past it they are chunked
  // like content, so gigabytes of padding (CVE-2017-14992) cost bounded memory.
  std::size_t max_inline_trailing_bytes = 1U << 20U;
};

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
