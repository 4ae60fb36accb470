// Layer ingest and export (include/strata/engine.h). Ingest is a TBB parallel_pipeline of three
// filters over batches of about batch_bytes of tar stream:
//   1. serial in order: read the blob (decompressing) through the tar segmenter
//      (core/ingest/tar_segmenter.h: parse the tar, cut entry content at content-defined points
//      and tensor boundaries), and copy the stream into the batch as inline or chunk items;
//   2. parallel: SHA-256 each chunk (or, with TrustMode::kLocal, take the digest of a chunk whose
//      XXH3-128 the store knows), ask the store, and compress chunks nobody stored yet: zstd, or
//      for float-tensor chunks the byte-grouped codec when it is smaller (models.md §1);
//   3. serial in order: hash the whole stream (diff_id), append new chunks to the store writer and
//      the segments to the recipe.
// The segments come from the same segmenter as build_recipe_from_tar's, so the recipe is the same
// for any thread count and batch size; tests/test_tar_segmenter.cpp checks both against an
// independent reference (tests/layer_recipe_ref.cpp).
#include <tbb/concurrent_unordered_set.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/base/byte_source.h"
#include "core/base/digest_hash.h"
#include "core/chunk/entry_content_chunker.h"
#include "core/ingest/delta_base.h"
#include "core/ingest/tar_segmenter.h"
#include "core/store/byte_group_codec.h"
#include "formats/compress/layer_source.h"
#include "formats/tar/tar_reader.h"
#include "strata/engine.h"
#include "strata/oci.h"
#include "strata/recipe.h"

namespace strata {
namespace {

// Thread time of one pipeline step, accumulated from any thread.
class StepClock {
 public:
  class Scope {
   public:
    explicit Scope(StepClock& clock) : clock_(clock), started_(std::chrono::steady_clock::now()) {}
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() {
      const auto elapsed = std::chrono::steady_clock::now() - started_;
      clock_.nanoseconds_.fetch_add(
          static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()),
          std::memory_order_relaxed);
    }

   private:
    StepClock& clock_;
    std::chrono::steady_clock::time_point started_;
  };

  [[nodiscard]] double seconds() const noexcept {
    return static_cast<double>(nanoseconds_.load(std::memory_order_relaxed)) / 1e9;
  }

 private:
  std::atomic<std::uint64_t> nanoseconds_{0};
};

struct BatchItem {
  bool is_chunk = false;
  bool store_it = false;     // a new chunk this batch compresses and puts
  std::uint32_t offset = 0;  // in Batch::bytes
  std::uint32_t length = 0;
  Digest digest;
  std::uint32_t stored_offset = 0;  // in Batch::stored
  std::uint32_t stored_length = 0;
  std::uint8_t element_width = 0;  // float tensor element size (2, 4) or 0: plain
  std::uint8_t element_phase = 0;  // leading bytes that finish an element begun before the chunk
  Codec codec = Codec::kZstd;      // of the stored bytes
  // Delta coding (DeltaIngestOptions): the base layer's file at this chunk's path, where the chunk
  // sits in its file, and the base chunk it was coded against.
  const DeltaBaseIndex::File* base_file = nullptr;
  std::uint64_t file_offset = 0;
  std::uint64_t file_size = 0;
  std::shared_ptr<const DeltaBaseChunk> base;
};

struct Batch {
  std::vector<std::uint8_t> bytes;
  std::vector<BatchItem> items;
  std::vector<std::uint8_t> stored;
  std::vector<std::uint8_t> scratch;
  std::uint64_t input_bytes = 0;  // blob bytes read when the batch was closed
  Result<void> status;

  void clear() {
    bytes.clear();
    items.clear();
    stored.clear();
    status = {};
  }
  void add_raw(ByteSpan data) {
    if (data.empty()) return;
    if (!items.empty() && !items.back().is_chunk) {
      items.back().length += static_cast<std::uint32_t>(data.size());
    } else {
      BatchItem item;
      item.offset = static_cast<std::uint32_t>(bytes.size());
      item.length = static_cast<std::uint32_t>(data.size());
      items.push_back(item);
    }
    bytes.insert(bytes.end(), data.begin(), data.end());
  }
  void add_chunk(ByteSpan data, std::uint32_t element_width, std::uint32_t element_phase) {
    BatchItem item;
    item.is_chunk = true;
    item.offset = static_cast<std::uint32_t>(bytes.size());
    item.length = static_cast<std::uint32_t>(data.size());
    item.element_width = static_cast<std::uint8_t>(element_width);
    item.element_phase = static_cast<std::uint8_t>(element_phase);
    items.push_back(item);
    bytes.insert(bytes.end(), data.begin(), data.end());
  }
  [[nodiscard]] ByteSpan bytes_of(const BatchItem& item) const {
    return ByteSpan(bytes).subspan(item.offset, item.length);
  }
};

// Stage 1: the tar segmenter's segments copied into batches, each chunk with its place in its
// file and that file in the delta base (if any).
class LayerSegmenter final : public TarSegmentSink {
 public:
  LayerSegmenter(ByteSource& tar, EntryContentChunker chunker, const DeltaBaseIndex* delta_index)
      : segmenter_(tar, std::move(chunker), LayerRecipeLimits{}), delta_index_(delta_index) {}

  // Fills `batch` with at least `target` bytes unless the stream ends first. Returns false once
  // the stream is finished and nothing was added.
  Result<bool> fill(Batch& batch, std::size_t target) {
    batch_ = &batch;
    while (!done_ && batch.bytes.size() < target) {
      auto more = segmenter_.next(*this);
      if (!more.ok()) return std::move(more).error();
      done_ = !*more;
    }
    return !batch.items.empty();
  }

  void begin_entry(const TarEntry& entry) override {
    base_file_ = delta_index_ != nullptr && entry.type == TarEntryType::kRegular
                     ? delta_index_->find(entry.path)
                     : nullptr;
  }
  Result<void> add_raw(ByteSpan bytes) override {
    batch_->add_raw(bytes);
    return {};
  }
  Result<void> add_chunk(const TarChunk& chunk) override {
    batch_->add_chunk(chunk.bytes, chunk.element_width, chunk.element_phase);
    BatchItem& item = batch_->items.back();
    item.base_file = chunk.entry != nullptr ? base_file_ : nullptr;
    item.file_offset = chunk.file_offset;
    item.file_size = chunk.file_size;
    return {};
  }

  [[nodiscard]] std::uint64_t entries() const noexcept { return segmenter_.entries(); }
  [[nodiscard]] std::uint64_t model_files() const noexcept { return segmenter_.model_files(); }
  [[nodiscard]] double cut_seconds() const noexcept { return segmenter_.cut_seconds(); }

 private:
  TarSegmenter segmenter_;
  const DeltaBaseIndex* delta_index_;
  Batch* batch_ = nullptr;                           // the batch being filled
  const DeltaBaseIndex::File* base_file_ = nullptr;  // the current entry's path in the base layer
  bool done_ = false;
};

}  // namespace

unsigned resolve_pipeline_threads(unsigned requested) {
  // TBB never runs more workers than its process-wide limit (the hardware threads by default);
  // asking an arena for more only makes TBB print a warning, so the request is clamped.
  const auto available = static_cast<unsigned>(std::max(1, tbb::info::default_concurrency()));
  return requested == 0 ? available : std::min(requested, available);
}

namespace {

std::string media_type_for(LayerCompression compression) {
  switch (compression) {
    case LayerCompression::kGzip: return std::string(oci::kMediaTypeLayerTarGzip);
    case LayerCompression::kZstd: return std::string(oci::kMediaTypeLayerTarZstd);
    case LayerCompression::kNone: break;
  }
  return std::string(oci::kMediaTypeLayerTar);
}

Result<IngestReport> ingest_from_source(ChunkStore& store, std::unique_ptr<LayerSource> source,
                                        const IngestOptions& options,
                                        const IngestProgressFn& progress) {
  const auto started = std::chrono::steady_clock::now();
  EntryChunkingOptions chunking;
  chunking.chunker = options.chunker;
  chunking.model_aware = options.model_aware;
  auto chunker = EntryContentChunker::create(chunking);
  if (!chunker.ok()) return std::move(chunker).error();
  if (options.zstd_level < 1 || options.zstd_level > 19) {
    return make_error(ErrorCode::kInvalidArgument,
                      "zstd level " + std::to_string(options.zstd_level) + " is outside 1..19");
  }
  std::optional<DeltaCoder> delta_coder;
  Digest delta_base_layer;
  if (options.delta.base != DeltaBase::kNone) {
    if (options.delta.base == DeltaBase::kLayer) {
      delta_base_layer = options.delta.layer;
    } else {
      auto layers = store.list_layers();
      if (!layers.ok()) return std::move(layers).error();
      if (!layers->empty()) delta_base_layer = layers->back().diff_id;
    }
    if (delta_base_layer != Digest()) {
      auto index = DeltaBaseIndex::build(store, delta_base_layer);
      if (!index.ok()) return std::move(index).error();
      DeltaCoderOptions coder_options;
      coder_options.level = options.zstd_level;
      coder_options.max_ratio = options.delta.max_ratio;
      coder_options.cache_bytes = options.delta.cache_bytes;
      delta_coder.emplace(store, std::move(index).value(), coder_options);
    }
  }
  auto writer = store.writer();
  if (!writer.ok()) return std::move(writer).error();

  StepClock read_clock;
  StepClock hash_clock;
  StepClock compress_clock;
  StepClock verify_clock;
  StepClock write_clock;
  LayerSegmenter segmenter(*source, std::move(chunker).value(),
                           delta_coder ? &delta_coder->index() : nullptr);
  const unsigned threads = resolve_pipeline_threads(options.threads);
  const std::size_t tokens = std::max<std::size_t>(4, std::size_t{3} * threads);
  const std::size_t batch_bytes = std::max<std::size_t>(options.batch_bytes, 64U << 10U);

  // Batches are recycled: at most `tokens` exist, so memory is tokens x batch size.
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Batch>> pool;
  const auto take_batch = [&]() -> Batch* {
    std::lock_guard lock(pool_mutex);
    if (pool.empty()) return new Batch();  // NOLINT: ownership returns to `pool` in stage 3
    Batch* batch = pool.back().release();
    pool.pop_back();
    return batch;
  };
  const auto give_back = [&](Batch* batch) {
    batch->clear();
    std::lock_guard lock(pool_mutex);
    pool.emplace_back(batch);
  };

  tbb::concurrent_unordered_set<Digest, DigestHash> claimed;  // chunks this ingest stores
  Result<void> failure;
  std::atomic<bool> failed{false};
  bool input_done = false;
  RecipeBuilder builder;
  Sha256 diff_id;
  IngestReport report;
  std::vector<Digest> referenced;
  const int level = options.zstd_level;
  const bool trust_local = options.trust == TrustMode::kLocal;
  const bool verify_frames = options.verify_frames;
  std::atomic<std::uint64_t> fingerprint_hits{0};
  ByteGroupOptions grouping;
  grouping.level = level;
  grouping.choice = options.byte_grouping == ByteGrouping::kGroupingFirst
                        ? CodecChoice::kGroupingFirst
                        : CodecChoice::kSmaller;
  const bool byte_grouping = options.byte_grouping != ByteGrouping::kOff;

  tbb::task_arena arena(static_cast<int>(threads));
  arena.execute([&] {
    tbb::parallel_pipeline(
        tokens,
        tbb::make_filter<void, Batch*>(tbb::filter_mode::serial_in_order,
                                       [&](tbb::flow_control& control) -> Batch* {
                                         if (failed || input_done) {
                                           control.stop();
                                           return nullptr;
                                         }
                                         const StepClock::Scope timing(read_clock);
                                         Batch* batch = take_batch();
                                         auto filled = segmenter.fill(*batch, batch_bytes);
                                         if (!filled.ok()) {
                                           batch->status = std::move(filled).error();
                                           input_done = true;
                                         } else if (!*filled) {
                                           give_back(batch);
                                           control.stop();
                                           return nullptr;
                                         }
                                         batch->input_bytes = source->compressed_bytes();
                                         return batch;
                                       }) &
            tbb::make_filter<Batch*, Batch*>(
                tbb::filter_mode::parallel,
                [&](Batch* batch) -> Batch* {
                  if (!batch->status.ok()) return batch;
                  for (BatchItem& item : batch->items) {
                    if (!item.is_chunk) continue;
                    const ByteSpan bytes = batch->bytes_of(item);
                    {
                      const StepClock::Scope timing(hash_clock);
                      if (trust_local) {
                        // Trusted input: a chunk the store knows by XXH3-128 skips SHA-256.
                        if (auto known = store.find_by_fingerprint(fingerprint_of(bytes))) {
                          item.digest = *known;
                          ++fingerprint_hits;
                          continue;
                        }
                      }
                      item.digest = sha256_of(bytes);
                      if (store.contains(item.digest) || !claimed.insert(item.digest).second) {
                        continue;
                      }
                    }
                    std::optional<StepClock::Scope> compress_timing(std::in_place, compress_clock);
                    item.codec = Codec::kZstd;
                    if (byte_grouping && item.element_width != 0) {
                      auto encoded =
                          choose_codec(bytes, item.element_width, item.element_phase, grouping);
                      if (!encoded.ok()) {
                        batch->status = std::move(encoded).error();
                        return batch;
                      }
                      if (encoded->codec == ChunkCodec::kByteGroupZstd) {
                        item.codec = Codec::kByteGrouped;
                      }
                      batch->scratch = std::move(encoded->bytes);
                    } else {
                      auto compressed = compress_chunk_zstd_into(bytes, level, batch->scratch);
                      if (!compressed.ok()) {
                        batch->status = std::move(compressed).error();
                        return batch;
                      }
                    }
                    if (delta_coder && item.base_file != nullptr) {
                      auto coded = delta_coder->encode(*item.base_file, item.file_offset,
                                                       item.file_size, bytes, item.element_width,
                                                       item.element_phase, batch->scratch.size());
                      if (!coded.ok()) {
                        batch->status = std::move(coded).error();
                        return batch;
                      }
                      if (*coded) {
                        item.codec = (*coded)->codec;
                        item.base = std::move((*coded)->base);
                        batch->scratch = std::move((*coded)->stored);
                      }
                    }
                    compress_timing.reset();
                    if (verify_frames) {
                      const StepClock::Scope timing(verify_clock);
                      // Decode what will be stored and compare it with the input, here in the
                      // parallel stage (reliability.md §3.8 P3), so the serial writer need not.
                      auto decoded =
                          item.base ? decompress_delta_chunk(item.codec, batch->scratch,
                                                             ByteSpan(item.base->raw), bytes.size())
                                    : decompress_chunk(item.codec, batch->scratch, bytes.size());
                      if (!decoded.ok() || !std::equal(decoded->begin(), decoded->end(),
                                                       bytes.begin(), bytes.end())) {
                        batch->status =
                            make_error(ErrorCode::kInternal,
                                       "chunk " + item.digest.to_string() +
                                           " does not decode back to its bytes after " +
                                           std::string(codec_name(item.codec)) + " compression");
                        return batch;
                      }
                    }
                    item.store_it = true;
                    item.stored_offset = static_cast<std::uint32_t>(batch->stored.size());
                    item.stored_length = static_cast<std::uint32_t>(batch->scratch.size());
                    batch->stored.insert(batch->stored.end(), batch->scratch.begin(),
                                         batch->scratch.end());
                  }
                  return batch;
                }) &
            tbb::make_filter<Batch*, void>(tbb::filter_mode::serial_in_order, [&](Batch* batch) {
              const StepClock::Scope timing(write_clock);
              if (!failed && !batch->status.ok()) {
                failure = std::move(batch->status);
                failed = true;
              }
              if (!failed) {
                for (const BatchItem& item : batch->items) {
                  const ByteSpan bytes = batch->bytes_of(item);
                  diff_id.update(bytes);
                  if (options.tar_observer) {
                    IngestedSegment segment;
                    segment.bytes = bytes;
                    segment.tar_offset = builder.total_size();
                    if (item.is_chunk) segment.chunk = &item.digest;
                    if (item.is_chunk && item.store_it) {
                      segment.new_frame =
                          ByteSpan(batch->stored).subspan(item.stored_offset, item.stored_length);
                      segment.codec = item.codec;
                    }
                    auto observed = options.tar_observer(segment);
                    if (!observed.ok()) {
                      failure = std::move(observed);
                      failed = true;
                      break;
                    }
                  }
                  if (!item.is_chunk) {
                    builder.add_raw(bytes);
                    continue;
                  }
                  builder.add_chunk(item.digest, item.length);
                  ++report.chunks;
                  report.chunked_bytes += item.length;
                  if (!item.store_it) continue;
                  ByteSpan stored =
                      ByteSpan(batch->stored).subspan(item.stored_offset, item.stored_length);
                  Result<void> put;
                  Codec codec = item.codec;
                  std::vector<std::uint8_t> whole;
                  if (item.base) {
                    put = writer->put_delta_chunk(item.digest, bytes, stored, item.codec,
                                                  item.base->digest, ByteSpan(item.base->raw));
                    if (!put.ok() && put.error().code == ErrorCode::kInvalidArgument) {
                      // The base cannot serve (it turned into one, or this chunk is a base):
                      // the chunk is stored whole instead.
                      auto plain = compress_chunk_zstd(bytes, level);
                      if (!plain.ok()) {
                        put = std::move(plain).error();
                      } else {
                        whole = std::move(plain).value();
                        stored = ByteSpan(whole.data(), whole.size());
                        codec = Codec::kZstd;
                        put = writer->put_chunk(item.digest, bytes, stored, codec);
                      }
                    }
                  } else {
                    put = writer->put_chunk(item.digest, bytes, stored, item.codec);
                  }
                  if (!put.ok()) {
                    failure = std::move(put);
                    failed = true;
                    break;
                  }
                  ++report.new_chunks;
                  report.new_raw_bytes += item.length;
                  report.new_stored_bytes += stored.size();
                  if (is_delta_codec(codec)) {
                    ++report.delta_chunks;
                    report.delta_stored_bytes += stored.size();
                  }
                  if (item.codec == Codec::kByteGrouped) {
                    ++report.byte_grouped_chunks;
                    report.byte_grouped_stored_bytes += item.stored_length;
                  }
                }
                report.tar_bytes = builder.total_size();
                if (progress) progress(IngestProgress{batch->input_bytes, report.tar_bytes});
              }
              give_back(batch);
            }));
  });
  if (failed) return std::move(failure).error();

  Recipe recipe = builder.finish();
  recipe.set_diff_id(diff_id.finish());
  report.diff_id = recipe.diff_id();
  report.entries = segmenter.entries();
  report.fingerprint_hits = fingerprint_hits.load();
  report.delta_base_layer = delta_coder ? delta_base_layer : Digest();
  report.model_files = segmenter.model_files();
  report.compression = std::string(layer_compression_name(source->compression()));
  report.media_type = media_type_for(source->compression());
  report.input_bytes = source->compressed_bytes();
  if (source->compression() == LayerCompression::kNone) {
    report.layer_digest = report.diff_id;
  } else {
    auto blob_digest = source->compressed_digest();
    if (!blob_digest.ok()) return std::move(blob_digest).error();
    report.layer_digest = *blob_digest;
  }
  const std::vector<std::uint8_t> recipe_bytes = serialize_recipe(recipe);
  report.recipe_bytes = recipe_bytes.size();
  LayerRecord record;
  record.diff_id = report.diff_id;
  record.layer_digest = report.layer_digest;
  record.media_type = report.media_type;
  record.recipe = recipe_bytes;
  record.size = report.tar_bytes;
  const std::vector<Digest> chunks = recipe.distinct_chunks();
  const auto commit_started = std::chrono::steady_clock::now();
  auto committed = writer->commit_layer(record, chunks);
  report.stage_seconds.commit =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count();
  report.stage_seconds.read_and_cut = read_clock.seconds();
  report.stage_seconds.cut = segmenter.cut_seconds();
  report.stage_seconds.hash = hash_clock.seconds();
  report.stage_seconds.compress = compress_clock.seconds();
  report.stage_seconds.verify = verify_clock.seconds();
  report.stage_seconds.write = write_clock.seconds();
  if (!committed.ok()) return std::move(committed).error();
  report.already_present = committed->already_present;
  if (committed->already_present) {
    report.new_chunks = 0;
    report.new_raw_bytes = 0;
    report.new_stored_bytes = 0;
    report.byte_grouped_chunks = 0;
    report.byte_grouped_stored_bytes = 0;
    report.delta_chunks = 0;
    report.delta_stored_bytes = 0;
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace

Result<IngestReport> ingest_layer_file(ChunkStore& store, const std::string& path,
                                       const IngestOptions& options,
                                       const IngestProgressFn& progress) {
  LayerSourceOptions source_options;
  source_options.max_uncompressed_bytes = options.max_uncompressed_bytes;
  source_options.hash_plain_tar = false;  // its blob digest is the diff_id, hashed in stage 3
  source_options.decode_ahead = true;     // inflating overlaps with stage 1's parsing and cutting
  auto source = LayerSource::open_path(path, source_options);
  if (!source.ok()) return std::move(source).error();
  return ingest_from_source(store, std::move(source).value(), options, progress);
}

Result<IngestReport> ingest_layer_bytes(ChunkStore& store, ByteSpan blob,
                                        const IngestOptions& options,
                                        const IngestProgressFn& progress) {
  LayerSourceOptions source_options;
  source_options.max_uncompressed_bytes = options.max_uncompressed_bytes;
  source_options.hash_plain_tar = false;  // its blob digest is the diff_id, hashed in stage 3
  source_options.decode_ahead = true;     // inflating overlaps with stage 1's parsing and cutting
  auto source = LayerSource::open(std::make_unique<MemoryByteSource>(blob), source_options);
  if (!source.ok()) return std::move(source).error();
  return ingest_from_source(store, std::move(source).value(), options, progress);
}

}  // namespace strata
