// Tar to recipe, the reference loop (tests/ingest/layer_recipe_ref.h): each tar event is handled
// where it arrives; chunks are named by SHA-256 and the whole stream is hashed for the diff_id.
#include "tests/ingest/layer_recipe_ref.h"

#include <vector>

namespace strata::test {

Result<LayerRecipe> build_recipe_from_tar_ref(ByteSource& tar, const EntryChunkingOptions& chunking,
                                              const LayerRecipeLimits& limits) {
  auto chunker = EntryContentChunker::create(chunking);
  if (!chunker.ok()) return std::move(chunker).error();
  TarReader reader(tar, limits.tar);
  RecipeBuilder builder;
  Sha256 diff_id;
  LayerRecipe result;
  const EntryChunkSink sink = [&](ByteSpan bytes, std::uint32_t, std::uint32_t) {
    builder.add_chunk(sha256_of(bytes), bytes.size());
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
        break;
      case TarEventKind::kDone:
        if (trailing_chunked) {
          STRATA_TRY(chunker->finish(sink));
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

}  // namespace strata::test
