// Layer export (include/strata/engine.h): replays a stored recipe into the exact uncompressed tar.
// The one recipe reader (core/store/recipe_reader.h) fetches the chunks in batches of about 4 MiB,
// read ahead by worker threads when more than one thread is allowed, each chunk decoded and
// verified by the store (record checksum, length, SHA-256); the bytes go to the sink in order while
// they are hashed, and the result must equal the recorded diff_id (DESIGN.md §3).
#include <chrono>

#include "core/base/thread_count.h"
#include "core/store/recipe_reader.h"
#include "strata/engine.h"

namespace strata {

Result<ExportReport> export_layer_tar(const ChunkStore& store, const Digest& layer,
                                      const ByteSink& sink, unsigned threads) {
  const auto started = std::chrono::steady_clock::now();
  threads = resolve_pipeline_threads(threads);
  // One thread reads on the caller's; more read ahead, one batch per thread and one more.
  auto replay = replay_stored_layer(store, layer, sink, threads > 1 ? threads + 1 : 0);
  if (!replay.ok()) return std::move(replay).error();
  ExportReport report;
  report.diff_id = replay->diff_id;
  report.tar_bytes = replay->tar_bytes;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace strata
