// Image conversion through the chunk store (project issue 5, `strata convert`): every layer blob
// is ingested (so its chunks are deduplicated and its recipe recorded), then written again from
// the recipe in the target format. For zstd:chunked the store's zstd frames are copied as the
// chunk frames, so conversion mostly copies (DESIGN.md §1.6). Every target streams from the
// store: memory does not grow with the layer. The tar is unchanged, so diff_ids,
// the config and its history stay byte for byte; the manifest gets the new layer descriptors
// (shared/specs/layer-formats.md §1.4 annotations, §3 manifest).
#include <algorithm>
#include <chrono>

#include "core/recipe_tar_chunks.h"
#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/store.h"

namespace strata::fastpull {
namespace {

// Pulls the tar out of a recipe one segment at a time: at most one chunk is held, whatever the
// layer size. Chunks are checked by length here and by the store's record checksum; the writer's
// diff_id is compared with the recipe's afterwards.
class RecipeTarReader {
 public:
  RecipeTarReader(const ChunkStore& store, const Recipe& recipe) : store_(store), recipe_(recipe) {}

  Result<std::size_t> read(MutableByteSpan out) {
    const auto& segments = recipe_.segments();
    while (segment_ < segments.size() && used_ == current_.size()) {
      const RecipeSegment& segment = segments[segment_++];
      used_ = 0;
      if (segment.kind == RecipeSegmentKind::kRaw) {
        current_ = recipe_.raw_of(segment);
        continue;
      }
      auto bytes = store_.read_chunk(segment.digest);
      if (!bytes) return std::move(bytes).error();
      if (bytes->size() != segment.length) {
        return make_error(ErrorCode::kCorruptInput, "chunk " + segment.digest.to_string() +
                                                        " has " + std::to_string(bytes->size()) +
                                                        " bytes, the recipe says " +
                                                        std::to_string(segment.length));
      }
      chunk_ = std::move(*bytes);
      current_ = chunk_;
    }
    const std::size_t n = std::min(out.size(), current_.size() - used_);
    if (n != 0) std::copy_n(current_.begin() + static_cast<std::ptrdiff_t>(used_), n, out.begin());
    hash_.update(ByteSpan(out.data(), n));
    used_ += n;
    return n;
  }
  // SHA-256 of the bytes read so far (the layer's diff_id once all are read).
  Digest finish() { return hash_.finish(); }

 private:
  const ChunkStore& store_;
  const Recipe& recipe_;
  std::size_t segment_ = 0;
  std::vector<std::uint8_t> chunk_;
  ByteSpan current_;
  std::size_t used_ = 0;
  Sha256 hash_;
};

Result<void> check_diff_id(const Digest& written, const Digest& diff_id) {
  if (written == diff_id) return {};
  return make_error(ErrorCode::kDigestMismatch, "layer written from the store has diff_id " +
                                                    written.to_string() + ", expected " +
                                                    diff_id.to_string());
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
    auto record = store.find_layer(diff_id);
    if (!record) return std::move(record).error();
    auto recipe = parse_recipe(record->recipe);
    if (!recipe) return std::move(recipe).error();
    const auto write_started = std::chrono::steady_clock::now();
    auto blob = output->begin_blob();
    if (!blob) return std::move(blob).error();
    const auto sink = [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); };
    ConvertedLayer converted;
    converted.tar_bytes = recipe->total_size();
    oci::Descriptor descriptor;
    const bool from_store_frames =
        options.target == ConvertTarget::kZstd && options.reuse_store_frames;
    if (options.target == ConvertTarget::kZstdChunked ||
        options.target == ConvertTarget::kZstdChunkedV1 || from_store_frames) {
      ChunkedWriteOptions write;
      write.format = options.target == ConvertTarget::kZstdChunkedV1 ? ChunkedFormat::kZstdChunkedV1
                                                                     : ChunkedFormat::kZstdChunked;
      write.frames_only = from_store_frames;
      write.level = options.level.value_or(3);
      const std::vector<TarChunk> chunks = tar_chunks_of(*recipe);
      RecipeTarReader reader(store, *recipe);
      auto written = stream_zstd_chunked_layer(
          [&](MutableByteSpan out) { return reader.read(out); }, chunks,
          [&](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
            auto stored = store.read_stored_chunk(digest);
            if (!stored || stored->codec != Codec::kZstd) return std::vector<std::uint8_t>();
            return std::move(stored->bytes);
          },
          write, sink);
      if (!written) return std::move(written).error();
      STRATA_TRY(check_diff_id(written->diff_id, diff_id));
      auto committed = blob->commit(written->media_type);
      if (!committed) return std::move(committed).error();
      descriptor = std::move(*committed);
      descriptor.annotations = written->annotations;
      converted.reused_frames = written->reused_frames;
    } else if (options.target == ConvertTarget::kEstargz) {
      ChunkedWriteOptions write;
      write.format = ChunkedFormat::kEstargz;
      write.level = options.level.value_or(3);
      const std::vector<TarChunk> chunks = tar_chunks_of(*recipe);
      RecipeTarReader reader(store, *recipe);
      auto written = stream_estargz_layer([&](MutableByteSpan out) { return reader.read(out); },
                                          chunks, write, sink);
      if (!written) return std::move(written).error();
      // The eStargz tar is a new one (it drops what follows the end blocks); the tar read from
      // the store must still be the layer's, so the rest is read and hashed too.
      std::vector<std::uint8_t> rest(std::size_t{1} << 16U);
      for (;;) {
        auto got = reader.read(rest);
        if (!got) return std::move(got).error();
        if (*got == 0) break;
      }
      STRATA_TRY(check_diff_id(reader.finish(), diff_id));
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
      // The store's export streams (parallel chunk reads, bounded batches) into the encoder.
      auto exported = export_layer_tar(
          store, diff_id, [&](ByteSpan bytes) -> Result<void> { return writer->write(bytes); });
      if (!exported) return std::move(exported).error();
      auto digests = writer->finish();
      if (!digests) return std::move(digests).error();
      STRATA_TRY(check_diff_id(digests->diff_id, diff_id));
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
