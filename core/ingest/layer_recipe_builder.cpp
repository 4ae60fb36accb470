// Tar to recipe, single-threaded (core/ingest/layer_recipe_builder.h). Entry content of every entry
// that has content (regular files, and opaque content of unknown types) is chunked, regular files
// tensor-aware when they are model files; the engine's TBB pipeline must give the same recipe as
// this reference, and uses the same EntryContentChunker to do so.
#include "core/ingest/layer_recipe_builder.h"

#include <vector>

namespace strata {

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
  TarReader reader(tar, limits.tar);
  RecipeBuilder builder;
  Sha256 diff_id;
  LayerRecipe result;
  Result<void> chunk_error;
  const EntryChunkSink sink = [&](ByteSpan bytes, std::uint32_t, std::uint32_t) {
    if (!chunk_error.ok()) return;
    const Digest digest = sha256_of(bytes);
    auto stored = on_chunk(digest, bytes);
    if (!stored.ok()) {
      chunk_error = std::move(stored);
      return;
    }
    builder.add_chunk(digest, bytes.size());
    ++result.chunks;
    result.chunked_bytes += bytes.size();
  };
  std::uint64_t raw_bytes = 0;
  const auto add_raw = [&](ByteSpan bytes) -> Result<void> {
    raw_bytes += bytes.size();
    if (raw_bytes > limits.max_raw_bytes) {
      return make_error(ErrorCode::kLimitExceeded, "layer recipe needs more than " +
                                                       std::to_string(limits.max_raw_bytes) +
                                                       " inline bytes (tar headers and padding)");
    }
    builder.add_raw(bytes);
    return {};
  };

  std::uint64_t content_left = 0;
  std::vector<std::uint8_t> trailing;
  bool trailing_chunked = false;
  while (true) {
    auto event = reader.next();
    if (!event.ok()) return std::move(event).error();
    diff_id.update(event->bytes);
    switch (event->kind) {
      case TarEventKind::kHeader:
        ++result.entries;
        content_left = event->entry->size;
        chunker->begin_entry(content_left, event->entry->type == TarEntryType::kRegular);
        STRATA_TRY(add_raw(event->bytes));
        break;
      case TarEventKind::kContent:
        STRATA_TRY(chunker->feed(event->bytes, sink));
        content_left -= event->bytes.size();
        if (content_left == 0) STRATA_TRY(chunker->finish(sink));
        STRATA_TRY(chunk_error);
        break;
      case TarEventKind::kPadding:
      case TarEventKind::kEndOfArchive: STRATA_TRY(add_raw(event->bytes)); break;
      case TarEventKind::kTrailingBytes:
        if (!trailing_chunked &&
            trailing.size() + event->bytes.size() <= limits.max_inline_trailing_bytes) {
          trailing.insert(trailing.end(), event->bytes.begin(), event->bytes.end());
          break;
        }
        if (!trailing_chunked) {
          trailing_chunked = true;
          chunker->begin_plain_stream();
          STRATA_TRY(chunker->feed(trailing, sink));
          trailing.clear();
        }
        STRATA_TRY(chunker->feed(event->bytes, sink));
        STRATA_TRY(chunk_error);
        break;
      case TarEventKind::kDone:
        if (trailing_chunked) {
          STRATA_TRY(chunker->finish(sink));
          STRATA_TRY(chunk_error);
        } else {
          STRATA_TRY(add_raw(trailing));
        }
        result.model_files = chunker->model_files();
        result.recipe = builder.finish();
        result.recipe.set_diff_id(diff_id.finish());
        return result;
    }
  }
}

}  // namespace strata
