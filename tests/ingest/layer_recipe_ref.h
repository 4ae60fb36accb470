// The test oracle for the tar segmenter (DESIGN.md §2: a second copy of a mechanism lives in
// tests/ with a _ref name): tar to recipe written as one plain loop over the tar reader's events,
// independent of core/ingest/tar_segmenter.cpp, with the same rules (entry content chunked per
// entry by EntryContentChunker, everything else inline, trailing bytes inline up to the limit and
// chunked past it). tests/ingest/test_tar_segmenter.cpp compares both entry points with it.
#pragma once

#include "core/ingest/layer_recipe_builder.h"

namespace strata::test {

Result<LayerRecipe> build_recipe_from_tar_ref(ByteSource& tar, const EntryChunkingOptions& chunking,
                                              const LayerRecipeLimits& limits = {});

}  // namespace strata::test
