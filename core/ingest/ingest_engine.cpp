// Layer ingest (include/strata/engine.h): a TBB parallel_pipeline of three filters over batches
// of about batch_bytes of tar stream, one class per filter:
//   1. BatchReader, serial in order: read the blob (decompressing) into the batch's block through
//      the tar segmenter (core/ingest/tar_segmenter.h: parse the tar, cut entry content at
//      content-defined points and tensor boundaries) and list its inline and chunk items; a chunk
//      that lies in the block is referenced where it is (one that crosses into the next block
//      lies there: the reader carries the tail over), only inline bytes and what the chunker
//      buffered (files held back as possible models, tensor-aware files) are copied;
//   2. ChunkCoder, parallel: SHA-256 each chunk, two at a time (sha256_of_each; or, with
//      TrustMode::kLocal, take the digest of a chunk whose XXH3-128 the store knows), ask the
//      store, and compress chunks nobody stored yet: zstd, or for float-tensor chunks the
//      byte-grouped codec when it is smaller (models.md §1), or a delta against the base layer when
//      that is smaller still;
//   3. BatchWriter, serial in order: hash the whole stream (diff_id), append new chunks to the
//      store writer and the segments to the recipe.
// The segments come from the same segmenter as build_recipe_from_tar's, so the recipe is the same
// for any thread count and batch size; tests/ingest/test_tar_segmenter.cpp checks both against an
// independent reference (tests/ingest/layer_recipe_ref.cpp).
#include <tbb/concurrent_unordered_set.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/base/byte_source.h"
#include "core/base/digest_hash.h"
#include "core/base/thread_count.h"
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
  bool store_it = false;              // a new chunk this batch compresses and puts
  bool in_block = false;              // the bytes lie in Batch::block, not in Batch::bytes
  bool known_by_fingerprint = false;  // named by the store's XXH3-128 map (TrustMode::kLocal)
  std::uint32_t offset = 0;           // in Batch::block or Batch::bytes
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
  bool in_file = false;  // a regular file's content with delta coding on (base_file may be null)
  std::uint64_t file_offset = 0;
  std::uint64_t file_size = 0;
  std::shared_ptr<const DeltaBaseChunk> base;
  bool sketched = false;  // `sketch` holds the content sketch of a new chunk stored whole
  ChunkSketchWords sketch;
};

// Whether `part` lies inside `whole` (compared as addresses: the two may be unrelated arrays).
bool lies_in(ByteSpan part, ByteSpan whole) {
  const auto begin = reinterpret_cast<std::uintptr_t>(whole.data());
  const auto at = reinterpret_cast<std::uintptr_t>(part.data());
  return at >= begin && at - begin <= whole.size() && part.size() <= whole.size() - (at - begin);
}

struct Batch {
  // The tar reader's buffer while this batch was being filled (TarReadBuffers): the stream's
  // bytes in order, read once; chunk items that lie in it are not copied. Kept across reuse.
  std::vector<std::uint8_t> block;
  // Copies: inline bytes, and chunks from outside the block (buffered by the chunker).
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
    item.in_block = lies_in(data, block);
    if (item.in_block) {
      item.offset = static_cast<std::uint32_t>(data.data() - block.data());
    } else {
      bytes.insert(bytes.end(), data.begin(), data.end());
    }
    items.push_back(item);
  }
  [[nodiscard]] ByteSpan bytes_of(const BatchItem& item) const {
    return ByteSpan(item.in_block ? block : bytes).subspan(item.offset, item.length);
  }
};

// Batches are recycled: at most `tokens` exist, so memory is tokens x batch size.
class BatchPool {
 public:
  Batch* take() {
    std::lock_guard lock(mutex_);
    if (pool_.empty()) return new Batch();  // NOLINT: ownership returns to the pool in stage 3
    Batch* batch = pool_.back().release();
    pool_.pop_back();
    return batch;
  }
  void give_back(Batch* batch) {
    batch->clear();
    std::lock_guard lock(mutex_);
    pool_.emplace_back(batch);
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Batch>> pool_;
};

// Stage 1 (serial, in order): the tar read into each batch's block (the batch lends it to the tar
// reader as a TarReadBuffers), the segmenter's segments listed as the batch's items, each chunk
// with its place in its file and that file in the delta base (if any). A batch is handed on when
// the reader moves to the next block: the chunker holds no span into a block it has left (it
// copies what it buffers), so every item of the batch lies in its block or its copies. At most
// tokens + 1 batches exist (the one being filled), and one spare block: memory stays
// (tokens + 2) x batch_bytes plus the copies whatever the tar says.
class BatchReader final : public TarSegmentSink, public TarReadBuffers {
 public:
  BatchReader(LayerSource& source, EntryContentChunker chunker, const DeltaBaseIndex* delta_index,
              BatchPool& pool, std::size_t batch_bytes, const std::atomic<bool>& failed)
      : source_(source),
        segmenter_(source, std::move(chunker), LayerRecipeLimits{}, this),
        delta_index_(delta_index),
        pool_(pool),
        batch_bytes_(batch_bytes),
        failed_(failed) {}
  BatchReader(const BatchReader&) = delete;
  BatchReader& operator=(const BatchReader&) = delete;
  ~BatchReader() override {
    if (filling_ != nullptr) pool_.give_back(filling_);
  }

  Batch* operator()(tbb::flow_control& control) {
    if (failed_ || input_done_) {
      control.stop();
      return nullptr;
    }
    const StepClock::Scope timing(clock_);
    if (filling_ == nullptr) filling_ = pool_.take();
    auto filled = fill();
    Batch* batch = std::exchange(ready_, nullptr);
    if (!filled.ok()) {
      input_done_ = true;
      if (batch == nullptr) batch = std::exchange(filling_, nullptr);
      batch->status = std::move(filled).error();
      return batch;
    }
    if (batch == nullptr) {  // the stream is finished: the batch being filled is the last
      input_done_ = true;
      batch = std::exchange(filling_, nullptr);
      if (batch->items.empty()) {
        pool_.give_back(batch);
        control.stop();
        return nullptr;
      }
    }
    batch->input_bytes = source_.compressed_bytes();
    return batch;
  }

  // TarReadBuffers: the reader has filled the current block. A batch with items is ready to hand
  // on and the next batch's block is lent; a batch without any (the reader moved on inside one
  // header group) keeps its place and trades its block for the spare, which nothing refers to.
  MutableByteSpan next_buffer() override {
    if (filling_->items.empty()) {
      std::swap(filling_->block, spare_block_);
    } else {
      ready_ = filling_;
      filling_ = pool_.take();
    }
    if (filling_->block.size() != batch_bytes_) filling_->block.resize(batch_bytes_);
    return filling_->block;
  }

  void begin_entry(const TarEntry& entry) override {
    in_file_ = delta_index_ != nullptr && entry.type == TarEntryType::kRegular;
    base_file_ = in_file_ ? delta_index_->find(entry.path) : nullptr;
  }
  Result<void> add_raw(ByteSpan bytes) override {
    filling_->add_raw(bytes);
    return {};
  }
  Result<void> add_chunk(const TarChunk& chunk) override {
    filling_->add_chunk(chunk.bytes, chunk.element_width, chunk.element_phase);
    BatchItem& item = filling_->items.back();
    item.base_file = chunk.entry != nullptr ? base_file_ : nullptr;
    item.in_file = chunk.entry != nullptr && in_file_;
    item.file_offset = chunk.file_offset;
    item.file_size = chunk.file_size;
    return {};
  }

  [[nodiscard]] const TarSegmenter& segmenter() const noexcept { return segmenter_; }
  [[nodiscard]] double seconds() const noexcept { return clock_.seconds(); }

 private:
  // Reads on until a batch is ready (its block full) or the stream is finished.
  Result<void> fill() {
    while (ready_ == nullptr && !stream_done_) {
      auto more = segmenter_.next(*this);
      if (!more.ok()) return std::move(more).error();
      stream_done_ = !*more;
    }
    return {};
  }

  LayerSource& source_;
  TarSegmenter segmenter_;
  const DeltaBaseIndex* delta_index_;
  BatchPool& pool_;
  std::size_t batch_bytes_;
  const std::atomic<bool>& failed_;
  StepClock clock_;
  Batch* filling_ = nullptr;                         // the batch whose block the reader reads into
  Batch* ready_ = nullptr;                           // a filled batch not handed on yet
  std::vector<std::uint8_t> spare_block_;            // see next_buffer()
  const DeltaBaseIndex::File* base_file_ = nullptr;  // the current entry's path in the base layer
  bool in_file_ = false;                             // the current entry is a regular file
  bool stream_done_ = false;
  bool input_done_ = false;
};

// Stage 2 (parallel): names each chunk by SHA-256 (or, with TrustMode::kLocal, by the digest of a
// chunk whose XXH3-128 the store knows) and compresses the chunks nobody stored yet: zstd, the
// byte-grouped codec for float tensors when it is smaller (models.md §1), or a delta against the
// base layer's chunk at the same place of the same file when that is smaller still.
class ChunkCoder {
 public:
  ChunkCoder(const ChunkStore& store, const IngestOptions& options, DeltaCoder* delta_coder)
      : store_(store),
        delta_coder_(delta_coder),
        level_(options.zstd_level),
        trust_local_(options.trust == TrustMode::kLocal),
        verify_frames_(options.verify_frames),
        keep_sketches_(options.delta.keep_sketches),
        byte_grouping_(options.byte_grouping != ByteGrouping::kOff) {
    grouping_.level = level_;
    grouping_.choice = options.byte_grouping == ByteGrouping::kGroupingFirst
                           ? CodecChoice::kGroupingFirst
                           : CodecChoice::kSmaller;
  }

  Batch* operator()(Batch* batch) {
    if (!batch->status.ok()) return batch;
    name_chunks(*batch);
    for (BatchItem& item : batch->items) {
      if (!item.is_chunk || !claim(item)) continue;
      const ByteSpan bytes = batch->bytes_of(item);
      auto coded = encode(item, bytes, batch->scratch);
      if (coded.ok() && verify_frames_) coded = check_frame(item, bytes, batch->scratch);
      if (coded.ok() && keep_sketches_ && !item.base) sketch(item, bytes);
      if (!coded.ok()) {
        batch->status = std::move(coded);
        return batch;
      }
      item.store_it = true;
      item.stored_offset = static_cast<std::uint32_t>(batch->stored.size());
      item.stored_length = static_cast<std::uint32_t>(batch->scratch.size());
      batch->stored.insert(batch->stored.end(), batch->scratch.begin(), batch->scratch.end());
    }
    return batch;
  }

  [[nodiscard]] std::uint64_t fingerprint_hits() const noexcept { return fingerprint_hits_; }
  void report_seconds(IngestStageSeconds& seconds) const {
    seconds.hash = hash_clock_.seconds();
    seconds.compress = compress_clock_.seconds();
    seconds.verify = verify_clock_.seconds();
  }

 private:
  // Names every chunk of the batch. The SHA-256 digests come from one sha256_of_each call, which
  // hashes two chunks at once where the CPU has SHA-NI.
  void name_chunks(Batch& batch) {
    const StepClock::Scope timing(hash_clock_);
    std::vector<ByteSpan> inputs;
    std::vector<BatchItem*> hashed;
    for (BatchItem& item : batch.items) {
      if (!item.is_chunk) continue;
      const ByteSpan bytes = batch.bytes_of(item);
      if (trust_local_) {
        // Trusted input: a chunk the store knows by XXH3-128 skips SHA-256.
        if (auto known = store_.find_by_fingerprint(fingerprint_of(bytes))) {
          item.digest = *known;
          item.known_by_fingerprint = true;
          ++fingerprint_hits_;
          continue;
        }
      }
      inputs.push_back(bytes);
      hashed.push_back(&item);
    }
    std::vector<Digest> digests(inputs.size());
    sha256_of_each(inputs, digests);
    for (std::size_t i = 0; i < hashed.size(); ++i) hashed[i]->digest = digests[i];
  }

  // True when this ingest is the one to store the (named) chunk.
  bool claim(const BatchItem& item) {
    const StepClock::Scope timing(hash_clock_);
    if (item.known_by_fingerprint) return false;
    return !store_.contains(item.digest) && claimed_.insert(item.digest).second;
  }

  // The chunk's stored form into `stored`, its codec (and delta base) into `item`.
  Result<void> encode(BatchItem& item, ByteSpan bytes, std::vector<std::uint8_t>& stored) {
    const StepClock::Scope timing(compress_clock_);
    if (delta_coder_ == nullptr || !item.in_file) return encode_plain(item, bytes, stored);
    auto coded =
        delta_coder_->encode(item.base_file, item.file_offset, item.file_size, bytes,
                             item.element_width, item.element_phase, [&]() -> Result<std::size_t> {
                               STRATA_TRY(encode_plain(item, bytes, stored));
                               return stored.size();
                             });
    if (!coded.ok()) return std::move(coded).error();
    if (*coded) {
      item.codec = (*coded)->codec;
      item.base = std::move((*coded)->base);
      stored = std::move((*coded)->stored);
    }
    return {};
  }

  // The plain stored form: a zstd frame, or the byte-grouped codec for float tensor bytes when
  // that is smaller (models.md §1).
  Result<void> encode_plain(BatchItem& item, ByteSpan bytes, std::vector<std::uint8_t>& stored) {
    item.codec = Codec::kZstd;
    if (byte_grouping_ && item.element_width != 0) {
      auto encoded = choose_codec(bytes, item.element_width, item.element_phase, grouping_);
      if (!encoded.ok()) return std::move(encoded).error();
      if (encoded->codec == ChunkCodec::kByteGroupZstd) item.codec = Codec::kByteGrouped;
      stored = std::move(encoded->bytes);
      return {};
    }
    return compress_chunk_zstd_into(bytes, level_, stored);
  }

  // The content sketch a later delta ingest finds this chunk by (delta_sketch.h).
  void sketch(BatchItem& item, ByteSpan bytes) {
    const StepClock::Scope timing(compress_clock_);
    const ChunkSketch sketch = sketch_of(bytes);
    item.sketched = !sketch.empty;
    item.sketch.super = sketch.super;
  }

  // Decodes what will be stored and compares it with the input, here in the parallel stage
  // (reliability.md §3.8 P3), so the serial writer need not.
  Result<void> check_frame(const BatchItem& item, ByteSpan bytes, ByteSpan stored) {
    const StepClock::Scope timing(verify_clock_);
    auto decoded = item.base ? decompress_delta_chunk(item.codec, stored, ByteSpan(item.base->raw),
                                                      bytes.size())
                             : decompress_chunk(item.codec, stored, bytes.size());
    if (decoded.ok() && std::equal(decoded->begin(), decoded->end(), bytes.begin(), bytes.end())) {
      return {};
    }
    return make_error(ErrorCode::kInternal, "chunk " + item.digest.to_string() +
                                                " does not decode back to its bytes after " +
                                                std::string(codec_name(item.codec)) +
                                                " compression");
  }

  const ChunkStore& store_;
  DeltaCoder* delta_coder_;
  int level_;
  bool trust_local_;
  bool verify_frames_;
  bool keep_sketches_;
  bool byte_grouping_;
  ByteGroupOptions grouping_;
  tbb::concurrent_unordered_set<Digest, DigestHash> claimed_;  // chunks this ingest stores
  std::atomic<std::uint64_t> fingerprint_hits_{0};
  StepClock hash_clock_;
  StepClock compress_clock_;
  StepClock verify_clock_;
};

// Stage 3 (serial, in order): hashes the whole stream (diff_id), shows each segment to the tar
// observer, appends the segments to the recipe and the new chunks to the store writer.
class BatchWriter {
 public:
  BatchWriter(StoreWriter& writer, const IngestOptions& options, const IngestProgressFn& progress,
              BatchPool& pool)
      : writer_(writer), options_(options), progress_(progress), pool_(pool) {}

  void operator()(Batch* batch) {
    const StepClock::Scope timing(clock_);
    if (!failed_ && !batch->status.ok()) fail(std::move(batch->status));
    if (!failed_) {
      for (const BatchItem& item : batch->items) {
        auto written = write_item(*batch, item);
        if (!written.ok()) {
          fail(std::move(written));
          break;
        }
      }
      report_.tar_bytes = builder_.total_size();
      if (progress_) progress_(IngestProgress{batch->input_bytes, report_.tar_bytes});
    }
    pool_.give_back(batch);
  }

  [[nodiscard]] const std::atomic<bool>& failed() const noexcept { return failed_; }
  Error take_failure() { return std::move(failure_).error(); }
  // The recipe with its diff_id; the report so far (chunk counts, new chunks, write time).
  Recipe finish_recipe() {
    Recipe recipe = builder_.finish();
    recipe.set_diff_id(diff_id_.finish());
    return recipe;
  }
  IngestReport& report() noexcept { return report_; }
  [[nodiscard]] double seconds() const noexcept { return clock_.seconds(); }

 private:
  void fail(Result<void> failure) {
    failure_ = std::move(failure);
    failed_ = true;
  }

  Result<void> write_item(const Batch& batch, const BatchItem& item) {
    const ByteSpan bytes = batch.bytes_of(item);
    diff_id_.update(bytes);
    if (options_.tar_observer) {
      IngestedSegment segment;
      segment.bytes = bytes;
      segment.tar_offset = builder_.total_size();
      if (item.is_chunk) segment.chunk = &item.digest;
      if (item.is_chunk && item.store_it) {
        segment.new_frame = ByteSpan(batch.stored).subspan(item.stored_offset, item.stored_length);
        segment.codec = item.codec;
      }
      STRATA_TRY(options_.tar_observer(segment));
    }
    if (!item.is_chunk) {
      builder_.add_raw(bytes);
      return {};
    }
    builder_.add_chunk(item.digest, item.length);
    ++report_.chunks;
    report_.chunked_bytes += item.length;
    if (!item.store_it) return {};
    return put_chunk(batch, item, bytes);
  }

  Result<void> put_chunk(const Batch& batch, const BatchItem& item, ByteSpan bytes) {
    const ByteSpan stored = ByteSpan(batch.stored).subspan(item.stored_offset, item.stored_length);
    auto put = put_new_chunk(writer_, item.digest, bytes, stored, item.codec, item.base.get(),
                             options_.zstd_level);
    if (!put.ok()) return std::move(put).error();
    const Codec codec = put->codec;
    if (item.sketched && !is_delta_codec(codec))
      STRATA_TRY(writer_.put_sketch(item.digest, item.sketch));
    ++report_.new_chunks;
    report_.new_raw_bytes += item.length;
    report_.new_stored_bytes += put->stored_bytes;
    if (is_delta_codec(codec)) {
      ++report_.delta_chunks;
      report_.delta_stored_bytes += put->stored_bytes;
    }
    if (item.codec == Codec::kByteGrouped) {
      ++report_.byte_grouped_chunks;
      report_.byte_grouped_stored_bytes += item.stored_length;
    }
    return {};
  }

  StoreWriter& writer_;
  const IngestOptions& options_;
  const IngestProgressFn& progress_;
  BatchPool& pool_;
  StepClock clock_;
  RecipeBuilder builder_;
  Sha256 diff_id_;
  IngestReport report_;
  Result<void> failure_;
  std::atomic<bool> failed_{false};
};

std::string media_type_for(LayerCompression compression) {
  switch (compression) {
    case LayerCompression::kGzip: return std::string(oci::kMediaTypeLayerTarGzip);
    case LayerCompression::kZstd: return std::string(oci::kMediaTypeLayerTarZstd);
    case LayerCompression::kNone: break;
  }
  return std::string(oci::kMediaTypeLayerTar);
}

// The delta coder of DeltaIngestOptions: left empty without a base (none asked for, or an empty
// store); `base_layer` names the base layer chosen.
Result<void> open_delta_coder(const ChunkStore& store, const IngestOptions& options,
                              std::optional<DeltaCoder>& coder, Digest& base_layer) {
  if (options.delta.base == DeltaBase::kNone) return {};
  if (options.delta.base == DeltaBase::kLayer) {
    base_layer = options.delta.layer;
  } else {
    auto layers = store.list_layers();
    if (!layers.ok()) return std::move(layers).error();
    if (!layers->empty()) base_layer = layers->back().diff_id;
  }
  if (base_layer == Digest()) return {};
  auto index = DeltaBaseIndex::build(store, base_layer);
  if (!index.ok()) return std::move(index).error();
  DeltaCoderOptions coder_options;
  coder_options.level = options.zstd_level;
  coder_options.max_ratio = options.delta.max_ratio;
  coder_options.cache_bytes = options.delta.cache_bytes;
  coder_options.sketch_index_chunks = options.delta.sketch_index_chunks;
  coder_options.sketch_layer = base_layer;
  coder.emplace(store, std::move(index).value(), coder_options);
  return {};
}

// Steps 2-4 of DESIGN.md §1 over the whole stream: reader -> coder -> writer, `threads` workers,
// tokens ≈ 3 x threads batches alive at most.
void run_pipeline(unsigned threads, BatchReader& reader, ChunkCoder& coder, BatchWriter& writer) {
  const std::size_t tokens = std::max<std::size_t>(4, std::size_t{3} * threads);
  tbb::task_arena arena(static_cast<int>(threads));
  arena.execute([&] {
    tbb::parallel_pipeline(
        tokens,
        tbb::make_filter<void, Batch*>(
            tbb::filter_mode::serial_in_order,
            [&reader](tbb::flow_control& control) { return reader(control); }) &
            tbb::make_filter<Batch*, Batch*>(tbb::filter_mode::parallel,
                                             [&coder](Batch* batch) { return coder(batch); }) &
            tbb::make_filter<Batch*, void>(tbb::filter_mode::serial_in_order,
                                           [&writer](Batch* batch) { writer(batch); }));
  });
}

// The blob's identity (compression, media type, digests) into `report`.
Result<void> describe_blob(LayerSource& source, IngestReport& report) {
  report.compression = std::string(layer_compression_name(source.compression()));
  report.media_type = media_type_for(source.compression());
  report.input_bytes = source.compressed_bytes();
  if (source.compression() == LayerCompression::kNone) {
    report.layer_digest = report.diff_id;
    return {};
  }
  auto blob_digest = source.compressed_digest();
  if (!blob_digest.ok()) return std::move(blob_digest).error();
  report.layer_digest = *blob_digest;
  return {};
}

// Records the layer (its recipe and the chunks it references) in one store transaction. A layer
// the store had already adds nothing: the report's new-chunk counts drop to zero.
Result<void> commit_recipe(StoreWriter& writer, const Recipe& recipe, IngestReport& report) {
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
  auto committed = writer.commit_layer(record, chunks);
  report.stage_seconds.commit =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count();
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
    report.delta_sketch_chunks = 0;
  }
  return {};
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
  STRATA_TRY(open_delta_coder(store, options, delta_coder, delta_base_layer));
  auto store_writer = store.writer();
  if (!store_writer.ok()) return std::move(store_writer).error();

  BatchPool pool;
  BatchWriter writer(*store_writer, options, progress, pool);
  BatchReader reader(*source, std::move(chunker).value(),
                     delta_coder ? &delta_coder->index() : nullptr, pool,
                     std::max<std::size_t>(options.batch_bytes, 64U << 10U), writer.failed());
  ChunkCoder coder(store, options, delta_coder ? &*delta_coder : nullptr);
  run_pipeline(resolve_pipeline_threads(options.threads), reader, coder, writer);
  if (writer.failed()) return writer.take_failure();

  const Recipe recipe = writer.finish_recipe();
  IngestReport report = std::move(writer.report());
  report.diff_id = recipe.diff_id();
  report.entries = reader.segmenter().entries();
  report.model_files = reader.segmenter().model_files();
  report.fingerprint_hits = coder.fingerprint_hits();
  report.delta_base_layer = delta_coder ? delta_base_layer : Digest();
  if (delta_coder) {
    report.delta_sketch_chunks = delta_coder->sketch_based();
    report.delta_sketch_index_chunks = delta_coder->sketch_index_chunks();
  }
  STRATA_TRY(describe_blob(*source, report));
  auto committed = commit_recipe(*store_writer, recipe, report);
  report.stage_seconds.read_and_cut = reader.seconds();
  report.stage_seconds.cut_wall = reader.segmenter().cut_wall_seconds();
  report.stage_seconds.cut_scan_cpu = reader.segmenter().cut_scan_cpu_seconds();
  coder.report_seconds(report.stage_seconds);
  report.stage_seconds.write = writer.seconds();
  if (!committed.ok()) return std::move(committed).error();
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
