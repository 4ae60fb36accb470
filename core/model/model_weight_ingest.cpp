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

  std::optional<TensorAwareChunker> tensor_chunker;
  std::optional<Chunker> plain_chunker;
  if (result.layout) {
    auto created = TensorAwareChunker::create(*result.layout, options.chunker);
    if (!created.ok()) return std::move(created).error();
    tensor_chunker.emplace(std::move(*created));
  } else {
    auto created = Chunker::create(options.chunker);
    if (!created.ok()) return std::move(created).error();
    plain_chunker.emplace(std::move(*created));
  }

  std::optional<StoreWriter> writer;
  if (options.store != nullptr) {
    auto opened = options.store->writer();
    if (!opened.ok()) return std::move(opened).error();
    writer.emplace(std::move(*opened));
  }
  ByteGroupOptions grouping;
  grouping.level = options.zstd_level;
  tbb::task_arena arena(static_cast<int>(resolve_pipeline_threads(options.threads)));

  std::vector<std::uint8_t> batch;
  std::vector<PendingChunk> pending;
  RecipeBuilder recipe;
  const auto add_chunk = [&](ByteSpan bytes, std::uint32_t width, std::uint32_t phase) {
    PendingChunk chunk;
    chunk.batch_offset = batch.size();
    chunk.length = static_cast<std::uint32_t>(bytes.size());
    chunk.element_width = width;
    chunk.element_phase = phase;
    batch.insert(batch.end(), bytes.begin(), bytes.end());
    pending.push_back(std::move(chunk));
  };
  const TensorAwareChunker::Sink tensor_sink = [&](const TensorChunk& chunk, ByteSpan bytes) {
    add_chunk(bytes, chunk.element_width, chunk.element_phase);
  };
  const Chunker::Sink plain_sink = [&](const Chunk&, ByteSpan bytes) { add_chunk(bytes, 0, 0); };

  // Hashes (and compresses what the store lacks) in parallel, then records in order.
  const auto flush_batch = [&]() -> Result<void> {
    arena.execute([&] {
      tbb::parallel_for(std::size_t{0}, pending.size(), [&](std::size_t i) {
        PendingChunk& chunk = pending[i];
        const ByteSpan bytes = ByteSpan(batch).subspan(chunk.batch_offset, chunk.length);
        chunk.digest = sha256_of(bytes);
        if (!writer || options.store->contains(chunk.digest)) return;
        chunk.store_it = true;
        if (chunk.element_width != 0) {
          auto encoded = choose_codec(bytes, chunk.element_width, chunk.element_phase, grouping);
          if (!encoded.ok()) {
            chunk.status = std::move(encoded).error();
            return;
          }
          chunk.codec =
              encoded->codec == ChunkCodec::kByteGroupZstd ? Codec::kByteGrouped : Codec::kZstd;
          chunk.stored = std::move(encoded->bytes);
        } else {
          auto compressed = compress_chunk_zstd(bytes, options.zstd_level);
          if (!compressed.ok()) {
            chunk.status = std::move(compressed).error();
            return;
          }
          chunk.stored = std::move(*compressed);
        }
      });
    });
    for (PendingChunk& chunk : pending) {
      STRATA_TRY(chunk.status);
      ChunkIndexEntry entry;
      entry.offset = recipe.total_size();
      entry.length = chunk.length;
      entry.digest = chunk.digest;
      result.index.chunks.push_back(entry);
      recipe.add_chunk(chunk.digest, chunk.length);
      // A repeat within this file was put by an earlier chunk of it.
      if (!chunk.store_it || writer->contains(chunk.digest)) continue;
      const ByteSpan bytes = ByteSpan(batch).subspan(chunk.batch_offset, chunk.length);
      STRATA_TRY(writer->put_chunk(chunk.digest, bytes, chunk.stored, chunk.codec));
      ++result.new_chunks;
      result.new_raw_bytes += chunk.length;
      result.new_stored_bytes += chunk.stored.size();
    }
    batch.clear();
    pending.clear();
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
    if (tensor_chunker) {
      STRATA_TRY(tensor_chunker->feed(piece, tensor_sink));
    } else {
      plain_chunker->feed(piece, plain_sink);
    }
    if (batch.size() >= kBatchBytes) STRATA_TRY(flush_batch());
  }
  if (tensor_chunker) {
    STRATA_TRY(tensor_chunker->finish(tensor_sink));
  } else {
    plain_chunker->finish(plain_sink);
  }
  STRATA_TRY(flush_batch());
  result.index.blob_digest = file_hash.finish();

  if (writer) {
    Recipe finished = recipe.finish();
    finished.set_diff_id(result.index.blob_digest);
    LayerRecord record;
    record.diff_id = result.index.blob_digest;
    record.layer_digest = result.index.blob_digest;
    record.media_type = options.media_type;
    record.recipe = serialize_recipe(finished);
    record.size = file_size;
    auto committed = writer->commit_layer(record, finished.distinct_chunks());
    if (!committed.ok()) return std::move(committed).error();
    if (committed->already_present) {
      result.new_chunks = 0;
      result.new_raw_bytes = 0;
      result.new_stored_bytes = 0;
    }
  }
  return result;
}

}  // namespace strata::model
