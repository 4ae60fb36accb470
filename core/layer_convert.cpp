// Image conversion through the chunk store (project issue 5, `strata convert`): every layer blob
// is ingested (so its chunks are deduplicated and its recipe recorded), then written again from
// the recipe in the target format. For zstd:chunked the store's zstd frames are copied as the
// chunk frames, so conversion mostly copies (DESIGN.md §1.6). Every target streams from the
// store: memory does not grow with the layer. The tar is unchanged, so diff_ids,
// the config and its history stay byte for byte; the manifest gets the new layer descriptors
// (shared/specs/layer-formats.md §1.4 annotations, §3 manifest). A tag naming an index converts
// the tree below it bottom-up: layers, then manifests, then the indexes listing them (§3 index).
#include <algorithm>
#include <chrono>
#include <map>

#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/store.h"

namespace strata::fastpull {
namespace {

// The recipe's chunk segments as positions in the tar (the zstd:chunked writer's cut points).
std::vector<TarChunk> chunks_of(const Recipe& recipe) {
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

namespace {

// One conversion: remembers what it has written, so a layer, image or index listed more than
// once in a tree (platforms sharing a base layer, an image in two nested indexes) is written
// once and its new descriptor reused.
class TreeConverter {
 public:
  TreeConverter(ChunkStore& store, const oci::OciLayout& input, const oci::OciLayout& output,
                const ConvertOptions& options, ConvertReport& report)
      : store_(store), input_(input), output_(output), options_(options), report_(report) {}

  // The new blob of `node` (media type as in the source; no platform or annotations).
  Result<oci::Descriptor> convert(const oci::ImageTree& node) {
    const auto done = converted_.find(node.descriptor.digest);
    if (done != converted_.end()) return done->second;
    ConvertedManifest entry;
    entry.source_digest = node.descriptor.digest;
    Result<oci::Descriptor> written = oci::Descriptor{};
    if (node.kind == oci::ImageTreeKind::kImage) {
      entry.kind = "image";
      entry.platform = oci::platform_name(oci::platform_of(node));
      written = convert_image(*node.image);
    } else if (node.kind == oci::ImageTreeKind::kIndex) {
      entry.kind = "index";
      written = convert_index(node);
    } else {
      entry.kind = "artifact";
      written = copy_artifact(node);
    }
    if (!written) return std::move(written).error();
    entry.digest = written->digest;
    report_.manifests.push_back(std::move(entry));
    converted_.emplace(node.descriptor.digest, *written);
    return written;
  }

 private:
  struct LayerResult {
    Digest source_diff_id;
    Digest diff_id;
    oci::Descriptor descriptor;
  };

  Result<LayerResult> convert_layer(const oci::Descriptor& layer, const Digest& diff_id) {
    const auto done = layers_.find(layer.digest);
    if (done != layers_.end()) {
      if (done->second.source_diff_id != diff_id) {
        return make_error(ErrorCode::kDigestMismatch,
                          "layer " + layer.digest.to_string() + " has diff_id " +
                              done->second.source_diff_id.to_string() + " in one config and " +
                              diff_id.to_string() + " in another");
      }
      return done->second;
    }
    auto ingested = ingest_layer_file(store_, input_.blob_path(layer.digest), IngestOptions{});
    if (!ingested) return std::move(ingested).error();
    if (ingested->diff_id != diff_id) {
      return make_error(ErrorCode::kDigestMismatch, "layer " + layer.digest.to_string() +
                                                        " decompresses to " +
                                                        ingested->diff_id.to_string() +
                                                        ", the config says " + diff_id.to_string());
    }
    auto record = store_.find_layer(diff_id);
    if (!record) return std::move(record).error();
    auto recipe = parse_recipe(record->recipe);
    if (!recipe) return std::move(recipe).error();
    const auto write_started = std::chrono::steady_clock::now();
    auto blob = output_.begin_blob();
    if (!blob) return std::move(blob).error();
    const auto sink = [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); };
    ConvertedLayer converted;
    converted.tar_bytes = recipe->total_size();
    LayerResult result{diff_id, diff_id, {}};
    oci::Descriptor& descriptor = result.descriptor;
    const bool from_store_frames =
        options_.target == ConvertTarget::kZstd && options_.reuse_store_frames;
    if (options_.target == ConvertTarget::kZstdChunked ||
        options_.target == ConvertTarget::kZstdChunkedV1 || from_store_frames) {
      ChunkedWriteOptions write;
      write.format = options_.target == ConvertTarget::kZstdChunkedV1
                         ? ChunkedFormat::kZstdChunkedV1
                         : ChunkedFormat::kZstdChunked;
      write.frames_only = from_store_frames;
      write.level = options_.level.value_or(3);
      const std::vector<TarChunk> chunks = chunks_of(*recipe);
      RecipeTarReader reader(store_, *recipe);
      auto written = stream_zstd_chunked_layer(
          [&](MutableByteSpan out) { return reader.read(out); }, chunks,
          [&](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
            auto stored = store_.read_stored_chunk(digest);
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
    } else if (options_.target == ConvertTarget::kEstargz) {
      ChunkedWriteOptions write;
      write.format = ChunkedFormat::kEstargz;
      write.level = options_.level.value_or(3);
      const std::vector<TarChunk> chunks = chunks_of(*recipe);
      RecipeTarReader reader(store_, *recipe);
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
      result.diff_id = written->diff_id;
    } else {
      oci::LayerWriterOptions write;
      write.compression = options_.target == ConvertTarget::kTar    ? oci::LayerCompression::kNone
                          : options_.target == ConvertTarget::kGzip ? oci::LayerCompression::kGzip
                                                                    : oci::LayerCompression::kZstd;
      write.level = options_.level;
      auto writer = oci::LayerWriter::create(write, sink);
      if (!writer) return std::move(writer).error();
      // The store's export streams (parallel chunk reads, bounded batches) into the encoder.
      auto exported = export_layer_tar(
          store_, diff_id, [&](ByteSpan bytes) -> Result<void> { return writer->write(bytes); });
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
    converted.diff_id = result.diff_id;
    converted.source_digest = layer.digest;
    converted.source_size = layer.size;
    converted.digest = descriptor.digest;
    converted.size = descriptor.size;
    report_.layers.push_back(converted);
    layers_.emplace(layer.digest, result);
    return result;
  }

  Result<oci::Descriptor> convert_image(const oci::Image& image) {
    oci::Manifest manifest = image.manifest;
    std::vector<Digest> new_diff_ids = image.config.diff_ids;
    for (std::size_t i = 0; i < image.manifest.layers.size(); ++i) {
      auto converted = convert_layer(image.manifest.layers[i], image.config.diff_ids[i]);
      if (!converted) return std::move(converted).error();
      manifest.layers[i] = converted->descriptor;
      new_diff_ids[i] = converted->diff_id;
    }
    // The config is unchanged (same diff_ids, same history) and copied byte for byte, unless the
    // layers' tars changed (eStargz): then only its diff_ids are replaced.
    auto config = input_.read_blob(image.manifest.config);
    if (!config) return std::move(config).error();
    std::string rewritten;
    if (new_diff_ids != image.config.diff_ids) {
      oci::ImageConfig changed = image.config;
      changed.diff_ids = new_diff_ids;
      rewritten = oci::write_image_config(changed);
    }
    const ByteSpan config_bytes = rewritten.empty() ? ByteSpan(*config) : bytes_of(rewritten);
    auto config_descriptor = output_.write_blob(image.manifest.config.media_type, config_bytes);
    if (!config_descriptor) return std::move(config_descriptor).error();
    manifest.config.digest = config_descriptor->digest;
    manifest.config.size = config_descriptor->size;
    return output_.write_blob(image.manifest_descriptor.media_type,
                              bytes_of(oci::write_manifest(manifest)));
  }

  // An artifact is not an image: its manifest and every blob it names are copied as they are.
  Result<oci::Descriptor> copy_artifact(const oci::ImageTree& node) {
    STRATA_TRY(copy_blob(node.artifact->config));
    for (const oci::Descriptor& layer : node.artifact->layers) STRATA_TRY(copy_blob(layer));
    STRATA_TRY(copy_blob(node.descriptor));
    oci::Descriptor copied = node.descriptor;
    copied.platform.reset();
    copied.annotations.clear();
    copied.artifact_type.clear();
    copied.urls.clear();
    copied.unknown_fields.clear();
    return copied;
  }

  Result<void> copy_blob(const oci::Descriptor& descriptor) {
    auto blob = output_.begin_blob();
    if (!blob) return std::move(blob).error();
    STRATA_TRY(input_.stream_blob(
        descriptor, [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); }));
    auto committed = blob->commit(descriptor.media_type);
    if (!committed) return std::move(committed).error();
    return {};
  }

  // Children first, so every entry can carry its new digest and size; everything else an entry
  // says (platform, annotations, artifactType, urls, unknown fields) is kept.
  Result<oci::Descriptor> convert_index(const oci::ImageTree& node) {
    oci::Index index = *node.index;
    for (std::size_t i = 0; i < node.children.size(); ++i) {
      auto written = convert(node.children[i]);
      if (!written) return std::move(written).error();
      index.manifests[i].digest = written->digest;
      index.manifests[i].size = written->size;
    }
    return output_.write_blob(node.descriptor.media_type, bytes_of(oci::write_index(index)));
  }

  static ByteSpan bytes_of(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
  }

  ChunkStore& store_;
  const oci::OciLayout& input_;
  const oci::OciLayout& output_;
  const ConvertOptions& options_;
  ConvertReport& report_;
  std::map<Digest, oci::Descriptor> converted_;  // by source digest
  std::map<Digest, LayerResult> layers_;         // by source layer digest
};

}  // namespace

Result<ConvertReport> convert_image(ChunkStore& store, const std::string& source,
                                    std::string_view tag, const std::string& destination,
                                    std::string_view destination_tag,
                                    const ConvertOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto input = oci::OciLayout::open(source);
  if (!input) return std::move(input).error();
  auto tree = input->load_tree(tag);
  if (!tree) return std::move(tree).error();
  const oci::ImageTree* root = &*tree;
  if (!options.platform.empty()) {
    auto wanted = oci::parse_platform_name(options.platform);
    if (!wanted) return std::move(wanted).error();
    auto selected = oci::select_platform(*tree, *wanted);
    if (!selected) return std::move(selected).error();
    root = *selected;
  }
  if (root->kind == oci::ImageTreeKind::kArtifact) {
    return make_error(ErrorCode::kUnsupported,
                      "blob " + root->descriptor.digest.to_string() + " is an artifact (config '" +
                          root->artifact->config.media_type + "'), not an image or an index");
  }
  auto output = oci::OciLayout::open_or_create(destination);
  if (!output) return std::move(output).error();

  ConvertReport report;
  TreeConverter converter(store, *input, *output, options, report);
  auto written = converter.convert(*root);
  if (!written) return std::move(written).error();
  oci::Descriptor tagged = *written;
  tagged.platform = root->descriptor.platform;
  STRATA_TRY(output->set_tag(destination_tag, tagged));
  report.manifest_digest = tagged.digest;
  report.media_type = tagged.media_type;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace strata::fastpull
