// Raw model-weight files into a chunk index and, optionally, the chunk store
// (core/model/model_weight_ingest.h). The file is read in blocks and cut by TensorAwareChunker
// (every tensor boundary a forced cut, shared/specs/models.md §3) or, when its header does not
// parse, the plain content-defined chunker; chunks are gathered into batches of about 16 MiB whose
// SHA-256 and compression run in parallel (TBB), then put into the store in order. The store
// layer's recipe is the chunk sequence itself, so replaying it gives the raw file back.
#include "core/model/model_weight_ingest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cerrno>

#include "core/base/file_io.h"
#include "core/base/thread_count.h"
#include "core/ingest/delta_base.h"
#include "core/model/model_delta_base.h"
#include "core/store/byte_group_codec.h"
#include "strata/engine.h"
#include "strata/recipe.h"

namespace strata::model {
namespace {

constexpr std::size_t kReadBlockBytes = std::size_t{4} << 20U;
constexpr std::size_t kBatchBytes = std::size_t{16} << 20U;
constexpr std::size_t kFirstPrefixBytes = std::size_t{1} << 20U;
constexpr std::size_t kMaxPrefixBytes = std::size_t{256} << 20U;

std::optional<ModelLayout> parse_header(int fd, std::uint64_t file_size, const std::string& path) {
  std::size_t prefix_size =
      static_cast<std::size_t>(std::min<std::uint64_t>(file_size, kFirstPrefixBytes));
  std::vector<std::uint8_t> prefix;
  while (true) {
    prefix.resize(prefix_size);
    auto got = pread_all(fd, 0, prefix, path, PathQuoting::kBare);
    if (!got.ok() || *got != prefix_size) return std::nullopt;
    auto layout = parse_model_layout(prefix, file_size);
    if (layout.ok()) return std::move(*layout);
    // kInvalidArgument: the header goes on past the prefix; read more.
    if (layout.error().code != ErrorCode::kInvalidArgument || prefix_size >= file_size ||
        prefix_size >= kMaxPrefixBytes) {
      return std::nullopt;
    }
    prefix_size = static_cast<std::size_t>(
        std::min<std::uint64_t>({file_size, std::uint64_t{prefix_size} * 4, kMaxPrefixBytes}));
  }
}

struct PendingChunk {
  std::size_t batch_offset = 0;
  std::uint32_t length = 0;
  std::uint32_t element_width = 0;
  std::uint32_t element_phase = 0;
  std::int64_t tensor = -1;  // index into the layout's tensors; -1 for header and padding bytes
  std::uint64_t file_offset = 0;
  Digest digest;
  bool store_it = false;
  Codec codec = Codec::kZstd;
  std::vector<std::uint8_t> stored;
  std::shared_ptr<const DeltaBaseChunk> base;  // set when `stored` is a delta against it
  Result<void> status;
};

// What a new file's chunks are delta-coded against: per tensor of its layout, the base tensor of
// the same name and dtype (or null), and the base header.
struct DeltaPlan {
  const ModelLayout* layout = nullptr;
  std::vector<const ModelDeltaBase::Tensor*> tensors;
  const DeltaBaseIndex::File* header = nullptr;
  std::optional<DeltaCoder> coder;

  // The base file and the chunk's offset and file size as DeltaCoder::encode takes them: offsets
  // inside a tensor are kept as they are (the file size passed is the base tensor's, so the
  // relative-position scaling is the identity), header offsets scale with the two header sizes.
  struct Target {
    const DeltaBaseIndex::File* file = nullptr;
    std::uint64_t offset = 0;
    std::uint64_t file_size = 0;
  };
  [[nodiscard]] Target target_of(const PendingChunk& chunk) const {
    if (!coder) return {};
    if (chunk.tensor >= 0) {
      const ModelDeltaBase::Tensor* base = tensors[static_cast<std::size_t>(chunk.tensor)];
      if (base == nullptr) return {};
      const TensorInfo& info = layout->tensors[static_cast<std::size_t>(chunk.tensor)];
      return {&base->file, chunk.file_offset - info.begin, base->file.size};
    }
    if (header == nullptr || chunk.file_offset >= layout->data_begin) return {};
    return {header, chunk.file_offset, layout->data_begin};
  }
};

// Chunks gathered for one parallel round: their bytes back to back, and what each becomes.
struct ChunkBatch {
  std::vector<std::uint8_t> bytes;
  std::vector<PendingChunk> chunks;

  void add(ByteSpan raw, const TensorChunk& where) {
    PendingChunk chunk;
    chunk.batch_offset = bytes.size();
    chunk.length = static_cast<std::uint32_t>(raw.size());
    chunk.element_width = where.element_width;
    chunk.element_phase = where.element_phase;
    chunk.tensor = where.tensor;
    chunk.file_offset = where.chunk.offset;
    bytes.insert(bytes.end(), raw.begin(), raw.end());
    chunks.push_back(std::move(chunk));
  }
  [[nodiscard]] ByteSpan bytes_of(const PendingChunk& chunk) const {
    return ByteSpan(bytes).subspan(chunk.batch_offset, chunk.length);
  }
};

// A chunk's digest and, when `store` (nullptr: no store) lacks it, its stored form: byte-grouped
// zstd when its tensor has an element width and grouping pays, else zstd; then a delta against
// its base when `delta` has one and that is smaller.
// The plain stored form of a new chunk: byte-grouped zstd for float tensor bytes when that is
// smaller (models.md §1), else a zstd frame.
Result<void> encode_plain(PendingChunk& chunk, ByteSpan bytes, const ByteGroupOptions& grouping) {
  if (chunk.element_width != 0) {
    auto encoded = choose_codec(bytes, chunk.element_width, chunk.element_phase, grouping);
    if (!encoded.ok()) return std::move(encoded).error();
    chunk.codec = encoded->codec == ChunkCodec::kByteGroupZstd ? Codec::kByteGrouped : Codec::kZstd;
    chunk.stored = std::move(encoded->bytes);
    return {};
  }
  auto compressed = compress_chunk_zstd(bytes, grouping.level);
  if (!compressed.ok()) return std::move(compressed).error();
  chunk.stored = std::move(*compressed);
  return {};
}

void encode_chunk(PendingChunk& chunk, ByteSpan bytes, const ChunkStore* store,
                  const ByteGroupOptions& grouping, DeltaPlan& delta) {
  chunk.digest = sha256_of(bytes);
  if (store == nullptr || store->contains(chunk.digest)) return;
  chunk.store_it = true;
  const DeltaPlan::Target target = delta.target_of(chunk);
  if (target.file == nullptr) {
    if (auto plain = encode_plain(chunk, bytes, grouping); !plain.ok()) chunk.status = plain;
    return;
  }
  auto coded =
      delta.coder->encode(target.file, target.offset, target.file_size, bytes, chunk.element_width,
                          chunk.element_phase, [&]() -> Result<std::size_t> {
                            STRATA_TRY(encode_plain(chunk, bytes, grouping));
                            return chunk.stored.size();
                          });
  if (!coded.ok()) {
    chunk.status = std::move(coded).error();
    return;
  }
  if (*coded) {
    chunk.codec = (*coded)->codec;
    chunk.base = std::move((*coded)->base);
    chunk.stored = std::move((*coded)->stored);
  }
}

// Records a hashed batch in order: the chunk index, the recipe, and the chunks the store lacks.
Result<void> record_batch(const ChunkBatch& batch, StoreWriter* writer, RecipeBuilder& recipe,
                          int level, WeightIngestResult& result) {
  for (const PendingChunk& chunk : batch.chunks) {
    STRATA_TRY(chunk.status);
    ChunkIndexEntry entry;
    entry.offset = recipe.total_size();
    entry.length = chunk.length;
    entry.digest = chunk.digest;
    result.index.chunks.push_back(entry);
    recipe.add_chunk(chunk.digest, chunk.length);
    // A repeat within this file was put by an earlier chunk of it.
    if (!chunk.store_it || writer->contains(chunk.digest)) continue;
    auto put = put_new_chunk(*writer, chunk.digest, batch.bytes_of(chunk), chunk.stored,
                             chunk.codec, chunk.base.get(), level);
    if (!put.ok()) return std::move(put).error();
    ++result.new_chunks;
    result.new_raw_bytes += chunk.length;
    result.new_stored_bytes += put->stored_bytes;
    if (is_delta_codec(put->codec)) {
      ++result.delta_chunks;
      result.delta_stored_bytes += put->stored_bytes;
    }
  }
  return {};
}

// Commits the store layer whose recipe is the file's chunk sequence; a file already stored adds
// nothing new.
Result<void> commit_weight_layer(StoreWriter& writer, RecipeBuilder& recipe,
                                 const std::string& media_type, std::uint64_t file_size,
                                 WeightIngestResult& result) {
  Recipe finished = recipe.finish();
  finished.set_diff_id(result.index.blob_digest);
  LayerRecord record;
  record.diff_id = result.index.blob_digest;
  record.layer_digest = result.index.blob_digest;
  record.media_type = media_type;
  record.recipe = serialize_recipe(finished);
  record.size = file_size;
  auto committed = writer.commit_layer(record, finished.distinct_chunks());
  if (!committed.ok()) return std::move(committed).error();
  if (committed->already_present) {
    result.new_chunks = 0;
    result.new_raw_bytes = 0;
    result.new_stored_bytes = 0;
    result.delta_chunks = 0;
    result.delta_stored_bytes = 0;
  }
  return {};
}

// The tensor-aware chunker when the header parsed, else the plain content-defined one; either
// adds its chunks to `batch`.
class WeightChunker {
 public:
  static Result<WeightChunker> create(const std::optional<ModelLayout>& layout,
                                      const ChunkerOptions& options, ChunkBatch& batch,
                                      TensorAwareChunker::CutPlan plan) {
    WeightChunker chunker(batch);
    if (layout) {
      auto created = TensorAwareChunker::create(*layout, options, std::move(plan));
      if (!created.ok()) return std::move(created).error();
      chunker.tensor_.emplace(std::move(*created));
    } else {
      auto created = Chunker::create(options);
      if (!created.ok()) return std::move(created).error();
      chunker.plain_.emplace(std::move(*created));
    }
    return chunker;
  }
  Result<void> feed(ByteSpan piece) {
    if (tensor_) return tensor_->feed(piece, tensor_sink_);
    plain_->feed(piece, plain_sink_);
    return {};
  }
  Result<void> finish() {
    if (tensor_) return tensor_->finish(tensor_sink_);
    plain_->finish(plain_sink_);
    return {};
  }

 private:
  explicit WeightChunker(ChunkBatch& batch)
      : tensor_sink_(
            [&batch](const TensorChunk& chunk, ByteSpan bytes) { batch.add(bytes, chunk); }),
        plain_sink_([&batch](const Chunk& chunk, ByteSpan bytes) {
          batch.add(bytes, TensorChunk{chunk, -1, 0, 0});
        }) {}

  TensorAwareChunker::Sink tensor_sink_;
  Chunker::Sink plain_sink_;
  std::optional<TensorAwareChunker> tensor_;
  std::optional<Chunker> plain_;
};

}  // namespace

std::optional<ModelLayout> read_model_header(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const FileDescriptor file(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
  return parse_header(fd, static_cast<std::uint64_t>(info.st_size), path);
}

Result<WeightIngestResult> ingest_weight_file(const std::string& path,
                                              const WeightIngestOptions& options,
                                              const std::function<Result<void>(ByteSpan)>& copy) {
  STRATA_TRY(validate(options.chunker));
  if (options.zstd_level < 1 || options.zstd_level > 19) {
    return make_error(ErrorCode::kInvalidArgument,
                      "zstd level " + std::to_string(options.zstd_level) + " is outside 1..19");
  }
  const int delta_level = options.delta.level == 0 ? options.zstd_level : options.delta.level;
  if (delta_level < 1 || delta_level > 19) {
    return make_error(ErrorCode::kInvalidArgument,
                      "delta zstd level " + std::to_string(delta_level) + " is outside 1..19");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path, errno, PathQuoting::kBare);
  const FileDescriptor file(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) return io_error("cannot stat", path, errno, PathQuoting::kBare);
  if (!S_ISREG(info.st_mode)) {
    return make_error(ErrorCode::kInvalidArgument, path + " is not a regular file");
  }
  const auto file_size = static_cast<std::uint64_t>(info.st_size);

  WeightIngestResult result;
  result.layout = parse_header(fd, file_size, path);
  result.index.chunker = options.chunker;
  result.index.tensor_aware = result.layout.has_value();
  result.index.blob_size = file_size;

  std::optional<StoreWriter> writer;
  if (options.store != nullptr) {
    auto opened = options.store->writer();
    if (!opened.ok()) return std::move(opened).error();
    writer.emplace(std::move(*opened));
  }
  DeltaPlan delta;
  TensorAwareChunker::CutPlan plan;
  if (writer && result.layout && options.delta_base != nullptr) {
    delta.layout = &*result.layout;
    delta.tensors.reserve(result.layout->tensors.size());
    for (const TensorInfo& tensor : result.layout->tensors) {
      delta.tensors.push_back(options.delta_base->find(tensor));
    }
    delta.header = options.delta_base->header(result.layout->format);
    DeltaCoderOptions coder;
    coder.level = delta_level;
    coder.max_ratio = options.delta.max_ratio;
    coder.cache_bytes = options.delta.cache_bytes;
    delta.coder.emplace(*options.store, coder);
    // Tensors with a base are cut where the base was (at most one cut per byte of the tensor,
    // whatever the header claims).
    plan = [&delta](std::size_t tensor) -> std::optional<std::vector<std::uint64_t>> {
      const ModelDeltaBase::Tensor* base = delta.tensors[tensor];
      if (base == nullptr) return std::nullopt;
      const TensorInfo& layout_tensor = delta.layout->tensors[tensor];
      return ModelDeltaBase::cuts_within(*base, layout_tensor.end - layout_tensor.begin);
    };
  }
  ChunkBatch batch;
  auto chunker = WeightChunker::create(result.layout, options.chunker, batch, std::move(plan));
  if (!chunker.ok()) return std::move(chunker).error();
  ByteGroupOptions grouping;
  grouping.level = options.zstd_level;
  tbb::task_arena arena(static_cast<int>(resolve_pipeline_threads(options.threads)));
  RecipeBuilder recipe;

  // Hashes (and compresses what the store lacks) in parallel, then records in order.
  const auto flush_batch = [&]() -> Result<void> {
    const ChunkStore* store = writer ? options.store : nullptr;
    arena.execute([&] {
      tbb::parallel_for(std::size_t{0}, batch.chunks.size(), [&](std::size_t i) {
        encode_chunk(batch.chunks[i], batch.bytes_of(batch.chunks[i]), store, grouping, delta);
      });
    });
    STRATA_TRY(
        record_batch(batch, writer ? &*writer : nullptr, recipe, options.zstd_level, result));
    batch.bytes.clear();
    batch.chunks.clear();
    return {};
  };

  Sha256 file_hash;
  std::vector<std::uint8_t> block(kReadBlockBytes);
  std::uint64_t offset = 0;
  while (offset < file_size) {
    auto got = pread_all(fd, offset, block, path, PathQuoting::kBare);
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) {
      return make_error(ErrorCode::kIo,
                        path + " shrank while being read (at byte " + std::to_string(offset) + ")");
    }
    const ByteSpan piece(
        block.data(), static_cast<std::size_t>(std::min<std::uint64_t>(*got, file_size - offset)));
    offset += piece.size();
    file_hash.update(piece);
    if (copy) STRATA_TRY(copy(piece));
    STRATA_TRY(chunker->feed(piece));
    if (batch.bytes.size() >= kBatchBytes) STRATA_TRY(flush_batch());
  }
  STRATA_TRY(chunker->finish());
  STRATA_TRY(flush_batch());
  result.index.blob_digest = file_hash.finish();
  if (writer) {
    STRATA_TRY(commit_weight_layer(*writer, recipe, options.media_type, file_size, result));
  }
  return result;
}

}  // namespace strata::model
