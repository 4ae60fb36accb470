// Image conversion through the chunk store (project issue 5, `strata convert`): every layer blob
// is ingested (so its chunks are deduplicated and its recipe recorded), then written again from
// the recipe in the target format. For zstd:chunked the store's zstd frames are copied as the
// chunk frames, so conversion mostly copies (DESIGN.md §1.6). The tar is unchanged, so diff_ids,
// the config and its history stay byte for byte; the manifest gets the new layer descriptors
// (shared/specs/layer-formats.md §1.4 annotations, §3 manifest).
#include <chrono>

#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/store.h"

namespace strata::fastpull {
namespace {

struct ReplayedLayer {
  std::vector<std::uint8_t> tar;
  std::vector<TarChunk> chunks;
};

Result<ReplayedLayer> replay_layer(const ChunkStore& store, const Digest& diff_id) {
  auto record = store.find_layer(diff_id);
  if (!record) return std::move(record).error();
  auto recipe = parse_recipe(record->recipe);
  if (!recipe) return std::move(recipe).error();
  ReplayedLayer layer;
  layer.tar.reserve(recipe->total_size());
  std::uint64_t offset = 0;
  for (const RecipeSegment& segment : recipe->segments()) {
    if (segment.kind == RecipeSegmentKind::kChunk) {
      layer.chunks.push_back(TarChunk{offset, segment.length, segment.digest});
    }
    offset += segment.length;
  }
  std::vector<std::uint8_t> chunk;
  STRATA_TRY(replay(
      *recipe,
      [&](const Digest& digest, std::uint64_t) -> Result<ByteSpan> {
        auto bytes = store.read_chunk(digest);
        if (!bytes) return std::move(bytes).error();
        chunk = std::move(*bytes);
        return ByteSpan(chunk);
      },
      [&](ByteSpan bytes) -> Result<void> {
        layer.tar.insert(layer.tar.end(), bytes.begin(), bytes.end());
        return {};
      }));
  if (sha256_of(layer.tar) != diff_id) {
    return make_error(ErrorCode::kDigestMismatch,
                      "replayed layer differs from its diff_id " + diff_id.to_string());
  }
  return layer;
}

}  // namespace

Result<ConvertTarget> parse_convert_target(std::string_view name) {
  if (name == "tar") return ConvertTarget::kTar;
  if (name == "gzip") return ConvertTarget::kGzip;
  if (name == "zstd") return ConvertTarget::kZstd;
  if (name == "zstd:chunked") return ConvertTarget::kZstdChunked;
  if (name == "zstd:chunked-v1") return ConvertTarget::kZstdChunkedV1;
  if (name == "estargz") return ConvertTarget::kEstargz;
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown target '" + std::string(name) +
                        "' (tar, gzip, zstd, zstd:chunked, zstd:chunked-v1, estargz)");
}

Result<ConvertReport> convert_image(ChunkStore& store, const std::string& source,
                                    std::string_view tag, const std::string& destination,
                                    std::string_view destination_tag,
                                    const ConvertOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto input = oci::OciLayout::open(source);
  if (!input) return std::move(input).error();
  auto image = input->load_image(tag);
  if (!image) return std::move(image).error();
  auto output = oci::OciLayout::open_or_create(destination);
  if (!output) return std::move(output).error();

  ConvertReport report;
  oci::Manifest manifest = image->manifest;
  std::vector<Digest> new_diff_ids = image->config.diff_ids;
  for (std::size_t i = 0; i < image->manifest.layers.size(); ++i) {
    const oci::Descriptor& layer = image->manifest.layers[i];
    const Digest& diff_id = image->config.diff_ids[i];
    auto ingested = ingest_layer_file(store, input->blob_path(layer.digest), IngestOptions{});
    if (!ingested) return std::move(ingested).error();
    if (ingested->diff_id != diff_id) {
      return make_error(ErrorCode::kDigestMismatch, "layer " + layer.digest.to_string() +
                                                        " decompresses to " +
                                                        ingested->diff_id.to_string() +
                                                        ", the config says " + diff_id.to_string());
    }
    auto replayed = replay_layer(store, diff_id);
    if (!replayed) return std::move(replayed).error();
    const auto write_started = std::chrono::steady_clock::now();
    auto blob = output->begin_blob();
    if (!blob) return std::move(blob).error();
    const auto sink = [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); };
    ConvertedLayer converted;
    oci::Descriptor descriptor;
    if (options.target == ConvertTarget::kZstdChunked ||
        options.target == ConvertTarget::kZstdChunkedV1) {
      ChunkedWriteOptions write;
      write.format = options.target == ConvertTarget::kZstdChunked ? ChunkedFormat::kZstdChunked
                                                                   : ChunkedFormat::kZstdChunkedV1;
      write.level = options.level.value_or(3);
      auto written = write_zstd_chunked_layer(
          replayed->tar, replayed->chunks,
          [&](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
            auto stored = store.read_stored_chunk(digest);
            if (!stored || stored->codec != Codec::kZstd) return std::vector<std::uint8_t>();
            return std::move(stored->bytes);
          },
          write, sink);
      if (!written) return std::move(written).error();
      auto committed = blob->commit(written->media_type);
      if (!committed) return std::move(committed).error();
      descriptor = std::move(*committed);
      descriptor.annotations = written->annotations;
      converted.reused_frames = written->reused_frames;
    } else if (options.target == ConvertTarget::kEstargz) {
      ChunkedWriteOptions write;
      write.format = ChunkedFormat::kEstargz;
      write.level = options.level.value_or(3);
      auto written = write_estargz_layer(replayed->tar, replayed->chunks, write, sink);
      if (!written) return std::move(written).error();
      auto committed = blob->commit(written->media_type);
      if (!committed) return std::move(committed).error();
      descriptor = std::move(*committed);
      descriptor.annotations = written->annotations;
      new_diff_ids[i] = written->diff_id;
    } else {
      oci::LayerWriterOptions write;
      write.compression = options.target == ConvertTarget::kTar    ? oci::LayerCompression::kNone
                          : options.target == ConvertTarget::kGzip ? oci::LayerCompression::kGzip
                                                                   : oci::LayerCompression::kZstd;
      write.level = options.level;
      auto writer = oci::LayerWriter::create(write, sink);
      if (!writer) return std::move(writer).error();
      STRATA_TRY(writer->write(replayed->tar));
      auto digests = writer->finish();
      if (!digests) return std::move(digests).error();
      auto committed = blob->commit(digests->media_type);
      if (!committed) return std::move(committed).error();
      descriptor = std::move(*committed);
    }
    converted.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - write_started).count();
    converted.diff_id = new_diff_ids[i];
    converted.source_digest = layer.digest;
    converted.source_size = layer.size;
    converted.digest = descriptor.digest;
    converted.size = descriptor.size;
    converted.tar_bytes = replayed->tar.size();
    report.layers.push_back(converted);
    manifest.layers[i] = std::move(descriptor);
  }
  // The config is unchanged (same diff_ids, same history) and copied byte for byte, unless the
  // layers' tars changed (eStargz): then only its diff_ids are replaced.
  auto config = input->read_blob(image->manifest.config);
  if (!config) return std::move(config).error();
  std::string rewritten;
  if (new_diff_ids != image->config.diff_ids) {
    oci::ImageConfig changed = image->config;
    changed.diff_ids = new_diff_ids;
    rewritten = oci::write_image_config(changed);
  }
  const ByteSpan config_bytes =
      rewritten.empty()
          ? ByteSpan(*config)
          : ByteSpan(reinterpret_cast<const std::uint8_t*>(rewritten.data()), rewritten.size());
  auto config_descriptor = output->write_blob(image->manifest.config.media_type, config_bytes);
  if (!config_descriptor) return std::move(config_descriptor).error();
  manifest.config.digest = config_descriptor->digest;
  manifest.config.size = config_descriptor->size;
  const std::string manifest_json = oci::write_manifest(manifest);
  auto manifest_descriptor = output->write_blob(
      manifest.media_type,
      ByteSpan(reinterpret_cast<const std::uint8_t*>(manifest_json.data()), manifest_json.size()));
  if (!manifest_descriptor) return std::move(manifest_descriptor).error();
  manifest_descriptor->platform = image->manifest_descriptor.platform;
  STRATA_TRY(output->set_tag(destination_tag, *manifest_descriptor));
  report.manifest_digest = manifest_descriptor->digest;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace strata::fastpull
