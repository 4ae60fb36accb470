// Layer export (include/strata/engine.h): replays a stored recipe into the exact uncompressed tar.
// The one recipe reader (core/store/recipe_reader.h) fetches the chunks in batches of about 4 MiB,
// read ahead by worker threads when more than one thread is allowed, each chunk decoded and
// verified by the store (record checksum, length, SHA-256); the bytes go to the sink in order while
// they are hashed, and the result must equal the recorded diff_id (DESIGN.md §3).
#include <chrono>

#include "core/store/recipe_reader.h"
#include "strata/engine.h"
#include "strata/recipe.h"

namespace strata {

Result<ExportReport> export_layer_tar(const ChunkStore& store, const Digest& layer,
                                      const std::function<Result<void>(ByteSpan)>& sink,
                                      unsigned threads) {
  const auto started = std::chrono::steady_clock::now();
  auto record = store.find_layer(layer);
  if (!record.ok()) return std::move(record).error();
  auto parsed = parse_recipe(record->recipe);
  if (!parsed.ok()) {
    return make_error(parsed.error().code, "recipe of layer " + record->diff_id.to_string() + ": " +
                                               parsed.error().message);
  }
  threads = resolve_pipeline_threads(threads);
  RecipeReaderOptions options;
  // One thread reads on the caller's; more read ahead, one batch per thread and one more.
  options.read_ahead = threads > 1 ? threads + 1 : 0;
  RecipeReader reader(*parsed, store_chunks(store, StoreChunkCheck::kFull), options);
  Sha256 hasher;
  std::uint64_t written = 0;
  STRATA_TRY(reader.write_to([&](ByteSpan bytes) -> Result<void> {
    hasher.update(bytes);
    written += bytes.size();
    return sink(bytes);
  }));
  ExportReport report;
  report.diff_id = hasher.finish();
  report.tar_bytes = written;
  if (report.diff_id != record->diff_id) {
    return make_error(ErrorCode::kDigestMismatch, "exported tar of layer " +
                                                      record->diff_id.to_string() + " hashes to " +
                                                      report.diff_id.to_string());
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace strata
