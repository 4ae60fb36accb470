// A layer tar file written as a chunked layer (fastpull.h write_chunked_layer_from_tar_file, used
// by `strata build --format zstd:chunked|zstd:chunked-v1|estargz`, project issue 6). The writers
// need the chunk list before the first frame, and a tar streamed from a directory cannot be
// re-read, so the caller spools it to a file: pass 1 cuts it (build_recipe_from_tar, over the same
// tar segmenter as the ingest pipeline, or the ingest itself when a store is given), pass 2 streams
// it through the writer. Chunk frames: shared/specs/layer-formats.md §1.2 (zstd:chunked), §2
// (eStargz); the cut points: DESIGN.md §1.2.
#include "core/base/byte_source.h"
#include "core/export/recipe_tar_chunks.h"
#include "core/ingest/layer_recipe_builder.h"
#include "strata/convert.h"
#include "strata/engine.h"
#include "strata/store.h"

namespace strata::fastpull {
namespace {

struct TarCuts {
  std::vector<TarChunk> chunks;
  Digest diff_id;
};

// Pass 1 without a store: the chunks' digests are all the writer needs, so nothing is kept.
Result<TarCuts> cut_tar_file(const std::string& tar_path) {
  auto source = FdByteSource::open(tar_path);
  if (!source) return std::move(source).error();
  auto built = build_recipe_from_tar(*source, ChunkerOptions{},
                                     [](const Digest&, ByteSpan) -> Result<void> { return {}; });
  if (!built) return std::move(built).error();
  return TarCuts{tar_chunks_of(built->recipe), built->recipe.diff_id()};
}

// Pass 1 with a store: the store's recipe gives the cuts (and its frames are reused in pass 2).
// The store codes new chunks at the writer's level when its frames are the layer's (zstd:chunked).
Result<TarCuts> ingest_tar_file(ChunkStore& store, const std::string& tar_path,
                                const ChunkedWriteOptions& options) {
  IngestOptions ingest;
  if (options.format != ChunkedFormat::kEstargz) ingest.zstd_level = options.level;
  auto ingested = ingest_layer_file(store, tar_path, ingest);
  if (!ingested) return std::move(ingested).error();
  auto record = store.find_layer(ingested->diff_id);
  if (!record) return std::move(record).error();
  auto recipe = parse_recipe(record->recipe);
  if (!recipe) return std::move(recipe).error();
  return TarCuts{tar_chunks_of(*recipe), ingested->diff_id};
}

}  // namespace

Result<ChunkedWriteReport> write_chunked_layer_from_tar_file(const std::string& tar_path,
                                                             ChunkStore* store,
                                                             const ChunkedWriteOptions& options,
                                                             const ByteSink& sink) {
  if (options.frames_only) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "a chunked layer from a tar file is written with its TOC (frames_only unset)");
  }
  auto cuts =
      store != nullptr ? ingest_tar_file(*store, tar_path, options) : cut_tar_file(tar_path);
  if (!cuts) return std::move(cuts).error();
  auto source = FdByteSource::open(tar_path);
  if (!source) return std::move(source).error();
  // The tar is hashed as pass 2 reads it: the eStargz writer reports the new tar's diff_id, and a
  // file changed between the passes would not match its cuts.
  Sha256 read_hash;
  const TarStreamReader reader = [&](MutableByteSpan out) -> Result<std::size_t> {
    auto got = source->read(out);
    if (got) read_hash.update(ByteSpan(out.data(), *got));
    return got;
  };
  auto written =
      options.format == ChunkedFormat::kEstargz
          ? stream_estargz_layer(reader, cuts->chunks, options, sink)
          : stream_zstd_chunked_layer(
                reader, cuts->chunks,
                [store](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
                  if (store == nullptr) return std::vector<std::uint8_t>();
                  auto stored = store->read_stored_chunk(digest);
                  if (!stored || stored->codec != Codec::kZstd) return std::vector<std::uint8_t>();
                  return std::move(stored->bytes);
                },
                options, sink);
  if (!written) return std::move(written).error();
  // eStargz stops at the end blocks; whatever follows is still part of the tar that was cut.
  std::vector<std::uint8_t> rest(std::size_t{1} << 16U);
  for (;;) {
    auto got = reader(rest);
    if (!got) return std::move(got).error();
    if (*got == 0) break;
  }
  if (const Digest read = read_hash.finish(); read != cuts->diff_id) {
    return make_error(ErrorCode::kDigestMismatch,
                      "tar file " + tar_path + " changed while it was written: sha256 " +
                          read.to_string() + ", cut as " + cuts->diff_id.to_string());
  }
  return written;
}

}  // namespace strata::fastpull
