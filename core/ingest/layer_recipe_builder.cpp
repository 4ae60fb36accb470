// Tar to recipe in one thread (core/ingest/layer_recipe_builder.h): a loop over the tar segmenter
// whose sink names each chunk by SHA-256, hands it to the caller, and appends the segments to a
// RecipeBuilder while hashing the whole stream (the segments concatenate to the tar, so their
// hash is the diff_id).
#include "core/ingest/layer_recipe_builder.h"

#include <utility>

#include "strata/digest.h"

namespace strata {
namespace {

class RecipeSink final : public TarSegmentSink {
 public:
  RecipeSink(const ChunkCallback& on_chunk, LayerRecipe& result)
      : on_chunk_(on_chunk), result_(result) {}

  Result<void> add_raw(ByteSpan bytes) override {
    diff_id_.update(bytes);
    builder_.add_raw(bytes);
    return {};
  }

  Result<void> add_chunk(const TarChunk& chunk) override {
    diff_id_.update(chunk.bytes);
    const Digest digest = sha256_of(chunk.bytes);
    STRATA_TRY(on_chunk_(digest, chunk.bytes));
    builder_.add_chunk(digest, chunk.bytes.size());
    ++result_.chunks;
    result_.chunked_bytes += chunk.bytes.size();
    return {};
  }

  Recipe finish() {
    Recipe recipe = builder_.finish();
    recipe.set_diff_id(diff_id_.finish());
    return recipe;
  }

 private:
  const ChunkCallback& on_chunk_;
  LayerRecipe& result_;
  RecipeBuilder builder_;
  Sha256 diff_id_;
};

}  // namespace

Result<LayerRecipe> build_recipe_from_tar(ByteSource& tar, const ChunkerOptions& options,
                                          const ChunkCallback& on_chunk,
                                          const LayerRecipeLimits& limits) {
  EntryChunkingOptions chunking;
  chunking.chunker = options;
  return build_recipe_from_tar(tar, chunking, on_chunk, limits);
}

Result<LayerRecipe> build_recipe_from_tar(ByteSource& tar, const EntryChunkingOptions& chunking,
                                          const ChunkCallback& on_chunk,
                                          const LayerRecipeLimits& limits) {
  auto chunker = EntryContentChunker::create(chunking);
  if (!chunker.ok()) return std::move(chunker).error();
  TarSegmenter segmenter(tar, std::move(chunker).value(), limits);
  LayerRecipe result;
  RecipeSink sink(on_chunk, result);
  while (true) {
    auto more = segmenter.next(sink);
    if (!more.ok()) return std::move(more).error();
    if (!*more) break;
  }
  result.entries = segmenter.entries();
  result.model_files = segmenter.model_files();
  result.recipe = sink.finish();
  return result;
}

}  // namespace strata
