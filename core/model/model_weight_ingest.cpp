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
  Digest digest;
  bool store_it = false;
  Codec codec = Codec::kZstd;
  std::vector<std::uint8_t> stored;
  Result<void> status;
};

// Chunks gathered for one parallel round: their bytes back to back, and what each becomes.
struct ChunkBatch {
  std::vector<std::uint8_t> bytes;
  std::vector<PendingChunk> chunks;

  void add(ByteSpan raw, std::uint32_t width, std::uint32_t phase) {
    PendingChunk chunk;
    chunk.batch_offset = bytes.size();
    chunk.length = static_cast<std::uint32_t>(raw.size());
    chunk.element_width = width;
    chunk.element_phase = phase;
    bytes.insert(bytes.end(), raw.begin(), raw.end());
    chunks.push_back(std::move(chunk));
  }
  [[nodiscard]] ByteSpan bytes_of(const PendingChunk& chunk) const {
    return ByteSpan(bytes).subspan(chunk.batch_offset, chunk.length);
  }
};

// A chunk's digest and, when `store` (nullptr: no store) lacks it, its stored form: byte-grouped
// zstd when its tensor has an element width and grouping pays, else zstd.
void encode_chunk(PendingChunk& chunk, ByteSpan bytes, const ChunkStore* store,
                  const ByteGroupOptions& grouping) {
  chunk.digest = sha256_of(bytes);
  if (store == nullptr || store->contains(chunk.digest)) return;
  chunk.store_it = true;
  if (chunk.element_width != 0) {
    auto encoded = choose_codec(bytes, chunk.element_width, chunk.element_phase, grouping);
    if (!encoded.ok()) {
      chunk.status = std::move(encoded).error();
      return;
    }
    chunk.codec = encoded->codec == ChunkCodec::kByteGroupZstd ? Codec::kByteGrouped : Codec::kZstd;
    chunk.stored = std::move(encoded->bytes);
  } else {
    auto compressed = compress_chunk_zstd(bytes, grouping.level);
    if (!compressed.ok()) {
      chunk.status = std::move(compressed).error();
      return;
    }
    chunk.stored = std::move(*compressed);
  }
}

// Records a hashed batch in order: the chunk index, the recipe, and the chunks the store lacks.
Result<void> record_batch(const ChunkBatch& batch, StoreWriter* writer, RecipeBuilder& recipe,
                          WeightIngestResult& result) {
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
    STRATA_TRY(writer->put_chunk(chunk.digest, batch.bytes_of(chunk), chunk.stored, chunk.codec));
    ++result.new_chunks;
    result.new_raw_bytes += chunk.length;
    result.new_stored_bytes += chunk.stored.size();
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
  }
  return {};
}

// The tensor-aware chunker when the header parsed, else the plain content-defined one; either
// adds its chunks to `batch`.
class WeightChunker {
 public:
  static Result<WeightChunker> create(const std::optional<ModelLayout>& layout,
                                      const ChunkerOptions& options, ChunkBatch& batch) {
    WeightChunker chunker(batch);
    if (layout) {
      auto created = TensorAwareChunker::create(*layout, options);
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
      : tensor_sink_([&batch](const TensorChunk& chunk, ByteSpan bytes) {
          batch.add(bytes, chunk.element_width, chunk.element_phase);
        }),
        plain_sink_([&batch](const Chunk&, ByteSpan bytes) { batch.add(bytes, 0, 0); }) {}

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

  ChunkBatch batch;
  auto chunker = WeightChunker::create(result.layout, options.chunker, batch);
  if (!chunker.ok()) return std::move(chunker).error();
  std::optional<StoreWriter> writer;
  if (options.store != nullptr) {
    auto opened = options.store->writer();
    if (!opened.ok()) return std::move(opened).error();
    writer.emplace(std::move(*opened));
  }
  ByteGroupOptions grouping;
  grouping.level = options.zstd_level;
  tbb::task_arena arena(static_cast<int>(resolve_pipeline_threads(options.threads)));
  RecipeBuilder recipe;

  // Hashes (and compresses what the store lacks) in parallel, then records in order.
  const auto flush_batch = [&]() -> Result<void> {
    const ChunkStore* store = writer ? options.store : nullptr;
    arena.execute([&] {
      tbb::parallel_for(std::size_t{0}, batch.chunks.size(), [&](std::size_t i) {
        encode_chunk(batch.chunks[i], batch.bytes_of(batch.chunks[i]), store, grouping);
      });
    });
    STRATA_TRY(record_batch(batch, writer ? &*writer : nullptr, recipe, result));
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
