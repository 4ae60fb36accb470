// Layer export (include/strata/engine.h): replays a stored recipe into the exact uncompressed tar.
// A TBB parallel_pipeline keeps it streaming and bounded: a serial stage groups recipe segments
// into batches of about 4 MiB, a parallel stage reads, decodes and verifies their chunks from the
// store (record checksum, length, SHA-256), and a serial stage writes the bytes to the sink in
// order while hashing them; the result must equal the recorded diff_id (DESIGN.md §3).
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "strata/engine.h"
#include "strata/recipe.h"

namespace strata {
namespace {

constexpr std::uint64_t kExportBatchBytes = std::uint64_t{4} << 20U;

struct ExportBatch {
  std::size_t first_segment = 0;
  std::size_t end_segment = 0;
  std::vector<std::vector<std::uint8_t>> chunk_bytes;  // one per segment (empty for raw)
  Result<void> status;
};

}  // namespace

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
  const Recipe& recipe = *parsed;
  const auto& segments = recipe.segments();
  threads = resolve_pipeline_threads(threads);

  std::size_t next_segment = 0;
  Sha256 hasher;
  std::uint64_t written = 0;
  Result<void> failure;
  std::atomic<bool> failed{false};
  tbb::task_arena arena(static_cast<int>(threads));
  arena.execute([&] {
    tbb::parallel_pipeline(
        std::size_t{3} * threads + 1,
        tbb::make_filter<void, ExportBatch*>(
            tbb::filter_mode::serial_in_order,
            [&](tbb::flow_control& control) -> ExportBatch* {
              if (failed || next_segment >= segments.size()) {
                control.stop();
                return nullptr;
              }
              auto* batch = new ExportBatch();  // NOLINT: deleted by the last stage
              batch->first_segment = next_segment;
              std::uint64_t bytes = 0;
              while (next_segment < segments.size() && bytes < kExportBatchBytes) {
                bytes += segments[next_segment].length;
                ++next_segment;
              }
              batch->end_segment = next_segment;
              batch->chunk_bytes.resize(batch->end_segment - batch->first_segment);
              return batch;
            }) &
            tbb::make_filter<ExportBatch*, ExportBatch*>(
                tbb::filter_mode::parallel,
                [&](ExportBatch* batch) -> ExportBatch* {
                  for (std::size_t i = batch->first_segment; i < batch->end_segment; ++i) {
                    const RecipeSegment& segment = segments[i];
                    if (segment.kind != RecipeSegmentKind::kChunk) continue;
                    auto bytes = store.read_chunk(segment.digest);
                    if (!bytes.ok()) {
                      batch->status = std::move(bytes).error();
                      return batch;
                    }
                    if (bytes->size() != segment.length) {
                      batch->status = make_error(ErrorCode::kCorruptInput,
                                                 "chunk " + segment.digest.to_string() + " has " +
                                                     std::to_string(bytes->size()) +
                                                     " bytes, the recipe expects " +
                                                     std::to_string(segment.length));
                      return batch;
                    }
                    batch->chunk_bytes[i - batch->first_segment] = std::move(bytes).value();
                  }
                  return batch;
                }) &
            tbb::make_filter<ExportBatch*, void>(
                tbb::filter_mode::serial_in_order, [&](ExportBatch* batch) {
                  if (!failed && !batch->status.ok()) {
                    failure = std::move(batch->status);
                    failed = true;
                  }
                  for (std::size_t i = batch->first_segment; i < batch->end_segment && !failed;
                       ++i) {
                    const RecipeSegment& segment = segments[i];
                    const ByteSpan bytes =
                        segment.kind == RecipeSegmentKind::kRaw
                            ? recipe.raw_of(segment)
                            : ByteSpan(batch->chunk_bytes[i - batch->first_segment]);
                    hasher.update(bytes);
                    written += bytes.size();
                    auto sent = sink(bytes);
                    if (!sent.ok()) {
                      failure = std::move(sent);
                      failed = true;
                    }
                  }
                  delete batch;  // NOLINT: allocated by the first stage
                }));
  });
  if (failed) return std::move(failure).error();
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
