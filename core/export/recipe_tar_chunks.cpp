// A recipe's chunk segments as tar positions (core/export/recipe_tar_chunks.h): every segment, raw
// or chunk, advances the tar offset by its length, so a chunk's offset is the sum of what precedes
// it.
#include "core/export/recipe_tar_chunks.h"

namespace strata::fastpull {

std::vector<TarChunk> tar_chunks_of(const Recipe& recipe) {
  std::vector<TarChunk> chunks;
  std::uint64_t offset = 0;
  for (const RecipeSegment& segment : recipe.segments()) {
    if (segment.kind == RecipeSegmentKind::kChunk) {
      chunks.push_back(TarChunk{offset, segment.length, segment.digest});
    }
    offset += segment.length;
  }
  return chunks;
}

}  // namespace strata::fastpull
