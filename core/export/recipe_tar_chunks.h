// A recipe's chunk segments as positions in the layer's tar: the cut points the chunked layer
// writers (zstd:chunked, eStargz; include/strata/chunked_layer.h) take, so a layer written from a
// recipe has one chunk frame per chunk the store holds (DESIGN.md §1.5-1.6).
#pragma once

#include <vector>

#include "strata/chunked_layer.h"
#include "strata/recipe.h"

namespace strata::fastpull {

std::vector<TarChunk> tar_chunks_of(const Recipe& recipe);

}  // namespace strata::fastpull
