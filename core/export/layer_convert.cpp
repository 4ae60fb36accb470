// Image conversion through the chunk store (project issue 5, `strata convert`): every layer blob
// is ingested (so its chunks are deduplicated and its recipe recorded) and written in the target
// format. tar, tar+gzip and tar+zstd are encoded from the tar stream as the ingest records it (the
// bytes its recipe replays, checked by the same diff_id); with ConvertOptions::from_store, and for
// the chunked formats, the layer is written from its recipe afterwards, with the store's zstd
// frames copied as zstd:chunked chunk frames (DESIGN.md §1.6), read ahead by worker threads
// through the one recipe reader (core/store/recipe_reader.h).
// Memory does not grow with the layer. The tar is unchanged, so diff_ids, the config and its
// history stay byte for byte; the manifest gets the new layer descriptors
// (shared/specs/layer-formats.md §1.4 annotations, §3 manifest). A tag naming an index converts
// the tree below it bottom-up: layers, then manifests, then the indexes listing them (§3 index).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "core/base/thread_count.h"
#include "core/export/recipe_tar_chunks.h"
#include "core/store/recipe_reader.h"
#include "strata/convert.h"
#include "strata/engine.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/store.h"

namespace strata::fastpull {
namespace {

// The recipe read for the chunked writers: batches read ahead by worker threads, one per thread
// and one more, so every core can decode while the writer's thread only hashes and writes
// (decoding a batch takes about half as long as writing it). Chunks are checked by the record
// checksum and their length; their content as a whole by the diff_id the writer computes, which
// is compared with the recipe's before committing.
RecipeReaderOptions read_ahead_options(const ConvertOptions& options) {
  RecipeReaderOptions read;
  read.read_ahead = std::max(2U, resolve_pipeline_threads(options.threads) + 1);
  return read;
}

Result<void> check_diff_id(const Digest& written, const Digest& diff_id) {
  if (written == diff_id) return {};
  return make_error(ErrorCode::kDigestMismatch,
                    "layer written from the store has diff_id " + written.to_string() +
                        ", expected " + diff_id.to_string() +
                        " (a damaged chunk in the store: verifying the store names it)");
}

struct LayerConversion {
  ConvertedLayer layer;
  oci::Descriptor descriptor;
};

// Ingests one layer blob of the source image and checks it against the config's diff_id.
Result<void> ingest_checked(ChunkStore& store, const oci::OciLayout& input,
                            const oci::Descriptor& layer, const Digest& diff_id,
                            const IngestOptions& ingest) {
  auto ingested = ingest_layer_file(store, input.blob_path(layer.digest), ingest);
  if (!ingested) return std::move(ingested).error();
  if (ingested->diff_id != diff_id) {
    return make_error(ErrorCode::kDigestMismatch, "layer " + layer.digest.to_string() +
                                                      " decompresses to " +
                                                      ingested->diff_id.to_string() +
                                                      ", the config says " + diff_id.to_string());
  }
  return {};
}

// The plain targets (tar, tar+gzip, tar+zstd) compress the whole tar stream again.
bool is_plain_target(const ConvertOptions& options) {
  return options.target == ConvertTarget::kTar || options.target == ConvertTarget::kGzip ||
         (options.target == ConvertTarget::kZstd && !options.reuse_store_frames);
}

// The targets made of the store's zstd frames: zstd:chunked (both variants), and zstd with
// reuse_store_frames.
bool is_frame_target(const ConvertOptions& options) {
  return options.target == ConvertTarget::kZstdChunked ||
         options.target == ConvertTarget::kZstdChunkedV1 ||
         (options.target == ConvertTarget::kZstd && options.reuse_store_frames);
}

// The zstd level of a frame target's frames, which are the store's frames of the layer's new
// chunks. zstd:chunked is a distribution format, converted once and pulled many times, so it
// defaults to level 7: on the make-run update pair (bench/pull_compare.sh), level 3 gave a layer
// 4 % larger than skopeo's (c/storage's level 10 in klauspost's encoder) and a podman partial
// pull 3 % larger; level 7 gives 2.5 % smaller layers and 3 % smaller partial pulls, still about
// 5x faster than skopeo (3.2 vs 16.7 CPU-s for 155 MB of tar). `--to zstd --store-frames`
// keeps 3: it is the fast path.
int frame_level(const ConvertOptions& options) {
  if (options.level) return *options.level;
  const bool chunked = options.target == ConvertTarget::kZstdChunked ||
                       options.target == ConvertTarget::kZstdChunkedV1;
  return chunked ? 7 : 3;
}

oci::LayerWriterOptions plain_writer_options(const ConvertOptions& options) {
  oci::LayerWriterOptions write;
  write.compression = options.target == ConvertTarget::kTar    ? oci::LayerCompression::kNone
                      : options.target == ConvertTarget::kGzip ? oci::LayerCompression::kGzip
                                                               : oci::LayerCompression::kZstd;
  write.level = options.level;
  // zstd's multi-threaded format is the same for every worker count, so the blob does not depend
  // on the machine; at least two workers keep it that format on a one-core machine too.
  write.threads = std::max(2U, resolve_pipeline_threads(options.threads));
  return write;
}

// A plain target written while the source is ingested: the serial stage of the ingest hands the
// tar bytes (the ones the recipe records and the diff_id hashes) straight to the encoder, so the
// layer is neither decoded from the store nor hashed a second time. zstd compresses in its own
// worker threads beside the ingest pipeline. Nothing is committed unless both succeed.
Result<std::pair<oci::Descriptor, std::uint64_t>> convert_while_ingesting(
    ChunkStore& store, const oci::OciLayout& input, const oci::OciLayout& output,
    const oci::Descriptor& layer, const Digest& diff_id, const ConvertOptions& options) {
  auto blob = output.begin_blob();
  if (!blob) return std::move(blob).error();
  oci::LayerWriterOptions write = plain_writer_options(options);
  write.hash_tar = false;  // the ingest hashes the same bytes for the diff_id
  auto writer = oci::LayerWriter::create(
      write, [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); });
  if (!writer) return std::move(writer).error();
  IngestOptions ingest;
  ingest.threads = options.threads;
  ingest.tar_observer = [&](const IngestedSegment& segment) -> Result<void> {
    return writer->write(segment.bytes);
  };
  STRATA_TRY(ingest_checked(store, input, layer, diff_id, ingest));
  auto digests = writer->finish();
  if (!digests) return std::move(digests).error();
  auto committed = blob->commit(digests->media_type);
  if (!committed) return std::move(committed).error();
  return std::make_pair(std::move(*committed), digests->uncompressed_size);
}

// The tar of an ingest handed to a zstd:chunked writer running on a thread of its own: the
// ingest's serial stage pushes each piece (and announces its chunk, with the frame it stores), the
// writer pulls bytes, looks chunks up and takes frames. At most kFeedBytes wait in the queue; the
// writer never needs to know chunks more than one content unit (8 MiB) ahead of what it has read,
// so with a larger queue the two cannot wait on each other. Either side stopping with an error
// wakes the other, which then fails with that error.
class StreamedLayerFeed {
 public:
  // More than the writer's largest content unit (8 MiB): a producer blocked on a full queue has
  // then always announced every chunk the writer may wait for.
  static constexpr std::size_t kFeedBytes = std::size_t{16} << 20U;

  // Producer side (the ingest's serial stage).
  Result<void> push(const IngestedSegment& segment) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return writer_stopped_ || queued_bytes_ < kFeedBytes; });
    if (writer_stopped_) return writer_error_;
    if (segment.chunk != nullptr) {
      chunks_.push_back(TarChunk{segment.tar_offset, segment.bytes.size(), *segment.chunk});
      if (!segment.new_frame.empty() && segment.codec == Codec::kZstd) {
        keep_frame(*segment.chunk, segment.new_frame);
      }
    }
    // Small pieces (tar headers, padding) join the last queued piece.
    if (pieces_.empty() || pieces_.back().size() >= kCoalesceBytes) pieces_.emplace_back();
    pieces_.back().insert(pieces_.back().end(), segment.bytes.begin(), segment.bytes.end());
    queued_bytes_ += segment.bytes.size();
    produced_ = segment.tar_offset + segment.bytes.size();
    lock.unlock();
    changed_.notify_all();
    return {};
  }
  // The end of the tar (ok), or the ingest's error.
  void finish(Result<void> status) {
    {
      const std::lock_guard lock(mutex_);
      ended_ = true;
      producer_status_ = std::move(status);
    }
    changed_.notify_all();
  }

  // Writer side.
  Result<std::size_t> read(MutableByteSpan out) {
    while (used_ == current_.size()) {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return !pieces_.empty() || ended_; });
      if (pieces_.empty()) {
        if (!producer_status_.ok()) return producer_status_.error();
        return std::size_t{0};
      }
      current_ = std::move(pieces_.front());
      pieces_.pop_front();
      queued_bytes_ -= current_.size();
      used_ = 0;
      lock.unlock();
      changed_.notify_all();
    }
    const std::size_t n = std::min(out.size(), current_.size() - used_);
    std::copy_n(current_.begin() + static_cast<std::ptrdiff_t>(used_), n, out.begin());
    used_ += n;
    return n;
  }
  const TarChunk* chunk(std::size_t index, std::uint64_t horizon) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return index < chunks_.size() || produced_ >= horizon || ended_; });
    if (index >= chunks_.size() || chunks_[index].tar_offset >= horizon) return nullptr;
    return &chunks_[index];  // a deque keeps its elements in place as it grows
  }
  std::vector<std::uint8_t> frame_of(const Digest& digest) {
    const std::lock_guard lock(mutex_);
    const auto found = frames_.find(digest);
    if (found == frames_.end()) return {};
    return found->second;
  }
  void stop_writer(Error error) {
    {
      const std::lock_guard lock(mutex_);
      writer_stopped_ = true;
      writer_error_ = std::move(error);
    }
    changed_.notify_all();
  }

 private:
  static constexpr std::size_t kCoalesceBytes = std::size_t{256} << 10U;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<std::uint8_t>> pieces_;
  std::size_t queued_bytes_ = 0;
  std::deque<TarChunk> chunks_;
  // The frames of the chunks this ingest stores, the newest kFrameBytes of them: a chunk that
  // comes again in the same layer (not in the store until the ingest commits) finds its frame here.
  static constexpr std::size_t kFrameBytes = std::size_t{16} << 20U;
  void keep_frame(const Digest& digest, ByteSpan frame) {
    const auto [entry, added] =
        frames_.try_emplace(digest, std::vector<std::uint8_t>(frame.begin(), frame.end()));
    if (!added) return;
    frame_order_.push_back(digest);
    frame_bytes_ += frame.size();
    while (frame_bytes_ > kFrameBytes && frame_order_.size() > 1) {
      const auto oldest = frames_.find(frame_order_.front());
      frame_bytes_ -= oldest->second.size();
      frames_.erase(oldest);
      frame_order_.pop_front();
    }
  }
  std::map<Digest, std::vector<std::uint8_t>> frames_;
  std::deque<Digest> frame_order_;
  std::size_t frame_bytes_ = 0;
  std::uint64_t produced_ = 0;  // every chunk before this is announced
  bool ended_ = false;
  Result<void> producer_status_;
  bool writer_stopped_ = false;
  Error writer_error_;
  // The writer's current piece.
  std::vector<std::uint8_t> current_;
  std::size_t used_ = 0;
};

// zstd:chunked (or a plain zstd layer of chunk frames) written while the source is ingested: the
// writer takes the tar, the chunk cuts and the frames of new chunks from the ingest as it goes
// (frames of chunks the store held before come from the store), so the layer is not read back
// and decoded afterwards, and its diff_id is hashed once, by the ingest.
Result<std::pair<oci::Descriptor, ChunkedWriteReport>> convert_chunked_while_ingesting(
    ChunkStore& store, const oci::OciLayout& input, const oci::OciLayout& output,
    const oci::Descriptor& layer, const Digest& diff_id, const ConvertOptions& options) {
  auto blob = output.begin_blob();
  if (!blob) return std::move(blob).error();
  ChunkedWriteOptions write;
  write.format = options.target == ConvertTarget::kZstdChunkedV1 ? ChunkedFormat::kZstdChunkedV1
                                                                 : ChunkedFormat::kZstdChunked;
  write.frames_only = options.target == ConvertTarget::kZstd;
  write.level = frame_level(options);
  write.hash_tar = false;  // the ingest hashes the same bytes for the diff_id
  StreamedLayerFeed feed;
  Result<ChunkedWriteReport> written = make_error(ErrorCode::kInternal, "writer did not run");
  std::thread writer_thread([&] {
    written = stream_zstd_chunked_layer_as_cut(
        [&](MutableByteSpan out) { return feed.read(out); },
        [&](std::size_t index, std::uint64_t horizon) { return feed.chunk(index, horizon); },
        [&](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
          std::vector<std::uint8_t> frame = feed.frame_of(digest);
          if (!frame.empty()) return frame;
          auto stored = store.read_stored_chunk(digest);  // a chunk the store held before
          if (!stored || stored->codec != Codec::kZstd) return std::vector<std::uint8_t>();
          return std::move(stored->bytes);
        },
        write, [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); });
    feed.stop_writer(
        written ? make_error(ErrorCode::kInternal, "zstd:chunked writer ended before the tar did")
                : written.error());
  });
  IngestOptions ingest;
  ingest.threads = options.threads;
  // The store's frames of new chunks are the layer's frames: they take the level asked for.
  ingest.zstd_level = frame_level(options);
  ingest.tar_observer = [&](const IngestedSegment& segment) { return feed.push(segment); };
  Result<void> ingested = ingest_checked(store, input, layer, diff_id, ingest);
  feed.finish(ingested.ok() ? Result<void>() : Result<void>(ingested.error()));
  writer_thread.join();
  if (!ingested) return std::move(ingested).error();
  if (!written) return std::move(written).error();
  auto committed = blob->commit(written->media_type);
  if (!committed) return std::move(committed).error();
  return std::make_pair(std::move(*committed), std::move(*written));
}

// One layer of the image in the target format, as a descriptor for the new manifest.
Result<LayerConversion> write_layer(ChunkStore& store, const oci::OciLayout& input,
                                    const oci::OciLayout& output, const oci::Descriptor& layer,
                                    const Digest& diff_id, const ConvertOptions& options) {
  const auto write_started = std::chrono::steady_clock::now();
  ConvertedLayer converted;
  converted.diff_id = diff_id;  // eStargz writes a new tar: replaced below
  oci::Descriptor descriptor;
  if (is_plain_target(options) && !options.from_store) {
    auto written = convert_while_ingesting(store, input, output, layer, diff_id, options);
    if (!written) return std::move(written).error();
    descriptor = std::move(written->first);
    converted.tar_bytes = written->second;
  } else if (is_frame_target(options) && !options.from_store) {
    auto written = convert_chunked_while_ingesting(store, input, output, layer, diff_id, options);
    if (!written) return std::move(written).error();
    descriptor = std::move(written->first);
    descriptor.annotations = written->second.annotations;
    converted.tar_bytes = written->second.uncompressed_size;
    converted.reused_frames = written->second.reused_frames;
  } else {
    IngestOptions ingest;
    ingest.threads = options.threads;
    if (is_frame_target(options)) ingest.zstd_level = frame_level(options);
    STRATA_TRY(ingest_checked(store, input, layer, diff_id, ingest));
    auto record = store.find_layer(diff_id);
    if (!record) return std::move(record).error();
    auto recipe = parse_recipe(record->recipe);
    if (!recipe) return std::move(recipe).error();
    auto blob = output.begin_blob();
    if (!blob) return std::move(blob).error();
    const auto sink = [&](ByteSpan bytes) -> Result<void> { return blob->write(bytes); };
    converted.tar_bytes = recipe->total_size();
    const bool from_store_frames =
        options.target == ConvertTarget::kZstd && options.reuse_store_frames;
    if (options.target == ConvertTarget::kZstdChunked ||
        options.target == ConvertTarget::kZstdChunkedV1 || from_store_frames) {
      ChunkedWriteOptions write;
      write.format = options.target == ConvertTarget::kZstdChunkedV1 ? ChunkedFormat::kZstdChunkedV1
                                                                     : ChunkedFormat::kZstdChunked;
      write.frames_only = from_store_frames;
      write.level = frame_level(options);
      const std::vector<TarChunk> chunks = tar_chunks_of(*recipe);
      RecipeReader reader(*recipe, store_chunks(store, StoreChunkCheck::kDecodeWithFrame),
                          read_ahead_options(options));
      auto written = stream_zstd_chunked_layer(
          [&](MutableByteSpan out) { return reader.read(out); }, chunks,
          [&](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
            return reader.frame_of(digest);
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
      RecipeReader reader(*recipe, store_chunks(store, StoreChunkCheck::kDecodeWithFrame),
                          read_ahead_options(options));
      Sha256 tar_hash;
      const auto read_hashed = [&](MutableByteSpan out) -> Result<std::size_t> {
        auto got = reader.read(out);
        if (got) tar_hash.update(ByteSpan(out.data(), *got));
        return got;
      };
      auto written = stream_estargz_layer(read_hashed, chunks, write, sink);
      if (!written) return std::move(written).error();
      // The eStargz tar is a new one (it drops what follows the end blocks); the tar read from
      // the store must still be the layer's, so the rest is read and hashed too.
      std::vector<std::uint8_t> rest(std::size_t{1} << 16U);
      for (;;) {
        auto got = read_hashed(rest);
        if (!got) return std::move(got).error();
        if (*got == 0) break;
      }
      STRATA_TRY(check_diff_id(tar_hash.finish(), diff_id));
      auto committed = blob->commit(written->media_type);
      if (!committed) return std::move(committed).error();
      descriptor = std::move(*committed);
      descriptor.annotations = written->annotations;
      converted.diff_id = written->diff_id;
    } else {
      auto writer = oci::LayerWriter::create(plain_writer_options(options), sink);
      if (!writer) return std::move(writer).error();
      // The store's export streams (parallel chunk reads, bounded batches) into the encoder.
      auto exported = export_layer_tar(
          store, diff_id, [&](ByteSpan bytes) -> Result<void> { return writer->write(bytes); },
          options.threads);
      if (!exported) return std::move(exported).error();
      auto digests = writer->finish();
      if (!digests) return std::move(digests).error();
      STRATA_TRY(check_diff_id(digests->diff_id, diff_id));
      auto committed = blob->commit(digests->media_type);
      if (!committed) return std::move(committed).error();
      descriptor = std::move(*committed);
    }
  }
  converted.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_started).count();
  converted.source_digest = layer.digest;
  converted.source_size = layer.size;
  converted.digest = descriptor.digest;
  converted.size = descriptor.size;
  return LayerConversion{std::move(converted), std::move(descriptor)};
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
    auto written = write_layer(store_, input_, output_, layer, diff_id, options_);
    if (!written) return std::move(written).error();
    LayerResult result{diff_id, written->layer.diff_id, std::move(written->descriptor)};
    report_.layers.push_back(written->layer);
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
