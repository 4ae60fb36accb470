// Finding a base for delta coding by path (DESIGN.md §7 "Finding a base", its first rule: the same
// path in the previous version of the layer). DeltaBaseIndex reads a stored layer's recipe only —
// no chunk is read: tar headers are inline bytes of the recipe, so a TarReader over the recipe
// with every chunk segment replaced by zeros yields each entry's path and where its content sits
// in the tar, and the chunk segments inside that range are the file's chunks with their offsets.
// DeltaBaseCache keeps the raw bytes of recently used bases (bounded in bytes, thread-safe), so an
// ingest reads each base chunk about once. DeltaCoder ties them together for the ingest engine:
// for one new chunk it picks the base chunk at the same relative position of the same path,
// codes the chunk against it (zstd with the base as prefix; XOR + byte grouping for float tensor
// chunks) and keeps the delta only when it is clearly smaller than the plain stored form. Content
// sketches (delta_sketch.h) pick among the neighbours of that chunk, and find a base for a file
// whose path the base layer lacks (a renamed file).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/base/digest_hash.h"
#include "core/ingest/delta_sketch.h"
#include "strata/digest.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata {

class Recipe;

class DeltaBaseIndex {
 public:
  struct FileChunk {
    std::uint64_t offset = 0;  // in the file
    std::uint64_t length = 0;
    Digest digest;
  };
  struct File {
    std::uint64_t size = 0;
    std::vector<FileChunk> chunks;  // by offset
  };

  // The regular files of the layer `layer` (diff_id or blob digest) of `store`, from its recipe.
  static Result<DeltaBaseIndex> build(const ChunkStore& store, const Digest& layer);
  // The same from a recipe already parsed.
  static Result<DeltaBaseIndex> from_recipe(const Recipe& recipe);

  // The file at `path` in the base layer, or nullptr.
  [[nodiscard]] const File* find(std::string_view path) const;
  [[nodiscard]] std::size_t files() const noexcept { return files_.size(); }
  // Every file of the base layer (in no particular order).
  [[nodiscard]] const std::unordered_map<std::string, File>& all_files() const noexcept {
    return files_;
  }

  // The chunk of `file` that overlaps most with [offset, offset + length) of a new file of
  // `new_size` bytes once that range is scaled to the base file's size (the same relative
  // position); nullptr when the file has no chunks.
  static const FileChunk* pick(const File& file, std::uint64_t offset, std::uint64_t length,
                               std::uint64_t new_size);

 private:
  std::unordered_map<std::string, File> files_;
};

// Raw bytes of base chunks, most recently used kept up to `max_bytes`. Thread-safe.
class DeltaBaseCache {
 public:
  DeltaBaseCache(const ChunkStore& store, std::size_t max_bytes)
      : store_(store), max_bytes_(max_bytes) {}
  // The base to code a chunk similar to `digest` against (ChunkStore::read_delta_base).
  Result<std::shared_ptr<const DeltaBaseChunk>> get(const Digest& digest);

 private:
  const ChunkStore& store_;
  std::size_t max_bytes_;
  std::mutex mutex_;
  std::list<Digest> order_;  // most recent first
  struct Entry {
    std::shared_ptr<const DeltaBaseChunk> base;
    std::list<Digest>::iterator position;
  };
  std::unordered_map<Digest, Entry, DigestHash> entries_;
  std::size_t bytes_ = 0;
};

// One new chunk coded against a base (DeltaCoder::encode).
struct DeltaCoded {
  Codec codec = Codec::kZstdDelta;
  std::shared_ptr<const DeltaBaseChunk> base;
  std::vector<std::uint8_t> stored;
  bool by_sketch = false;  // the base came from the sketch index
};

struct DeltaCoderOptions {
  int level = 3;
  // A delta is kept only when its stored size is below this fraction of the plain stored form.
  double max_ratio = 0.9;
  // A delta below this fraction of the plain size its base predicts is kept without coding the
  // plain form to compare (DeltaCoder::encode); 0 always codes both.
  double plain_skip_ratio = 0.5;
  std::size_t cache_bytes = std::size_t{64} << 20U;
  // Content sketches (core/ingest/delta_sketch.h) for a file whose path the base layer lacks: a
  // sketch index of the base layer's chunks, built on first need from at most
  // sketch_index_chunks chunks and sketch_index_bytes of their raw bytes (the bound on the time
  // and memory it takes), gives the base. (Choosing among the neighbours of the same-path chunk
  // by sketch was tried on the Debian pair of bench/delta_wire.sh: no smaller deltas.)
  bool sketches = true;
  std::size_t sketch_index_chunks = std::size_t{1} << 16U;
  std::uint64_t sketch_index_bytes = std::uint64_t{1} << 30U;
  // The base layer whose kept sketches (ChunkStore::layer_sketches) form the sketch index; a
  // layer with none (put by an older strata, or by a pull) has its chunks read and sketched.
  Digest sketch_layer;
};

class DeltaCoder {
 public:
  DeltaCoder(const ChunkStore& store, DeltaBaseIndex index, const DeltaCoderOptions& options)
      : store_(store),
        index_(std::move(index)),
        cache_(store, options.cache_bytes),
        options_(options) {}
  // A coder whose caller finds the base files itself (model tensors by name,
  // core/model/model_delta_base.h): index() is empty.
  DeltaCoder(const ChunkStore& store, const DeltaCoderOptions& options)
      : store_(store), cache_(store, options.cache_bytes), options_(options) {}

  [[nodiscard]] const DeltaBaseIndex& index() const noexcept { return index_; }

  // Codes the plain stored form of a chunk into the caller's buffer and gives its size.
  using PlainCoder = std::function<Result<std::size_t>()>;

  // Chooses the stored form of `raw` (bytes [offset, offset + raw.size()) of a file of
  // `file_size` bytes whose path the base layer holds as `file`): a delta against the base chunk
  // at the same relative position, or the plain form `code_plain` writes. `file` null: a file the
  // base layer has no path for, whose base comes from the sketch index
  // (DeltaCoderOptions::sketches), e.g. a renamed file. The delta is coded first; when it is below
  // plain_skip_ratio x the plain size its base predicts (the base's own stored/raw ratio), it is
  // kept without coding the plain form at all (on an update of a library most new chunks are such
  // deltas, and coding both forms doubled the ingest's compression time). Otherwise code_plain
  // runs and the delta is kept only below max_ratio x the plain size. Returns the delta when it
  // is kept; empty means code_plain ran and its form stands. element_width/phase as the chunker
  // gave them (0: not float tensor bytes). Thread-safe.
  Result<std::optional<DeltaCoded>> encode(const DeltaBaseIndex::File* file, std::uint64_t offset,
                                           std::uint64_t file_size, ByteSpan raw,
                                           std::uint32_t element_width, std::uint32_t element_phase,
                                           const PlainCoder& code_plain);

  // Plain frames not coded because the delta won outright (see encode).
  [[nodiscard]] std::uint64_t plain_frames_skipped() const noexcept { return plain_skipped_; }

  // Chunks coded against a base the sketch index gave, and the chunks that index holds (0 until
  // it is first needed).
  [[nodiscard]] std::uint64_t sketch_based() const noexcept { return sketch_based_; }
  [[nodiscard]] std::size_t sketch_index_chunks() const;

 private:
  // The base for `raw`: the same path's chunk at the same relative position, else the sketch
  // index's choice (`by_sketch`), else none.
  Result<const Digest*> choose_base(const DeltaBaseIndex::File* file, std::uint64_t offset,
                                    std::uint64_t file_size, ByteSpan raw, bool& by_sketch);
  Result<const SketchIndex*> layer_sketches();
  // `raw` coded against its base; empty when it has none (or the base cannot be read).
  Result<std::optional<DeltaCoded>> code(const DeltaBaseIndex::File* file, std::uint64_t offset,
                                         std::uint64_t file_size, ByteSpan raw,
                                         std::uint32_t element_width, std::uint32_t element_phase);

  const ChunkStore& store_;
  DeltaBaseIndex index_;
  DeltaBaseCache cache_;
  DeltaCoderOptions options_;
  std::atomic<std::uint64_t> sketch_based_{0};
  std::atomic<std::uint64_t> plain_skipped_{0};
  std::mutex sketch_mutex_;  // guards the index build
  std::optional<SketchIndex> layer_index_;
  bool layer_index_built_ = false;
};

// What put_new_chunk stored.
struct PutChunkOutcome {
  Codec codec = Codec::kZstd;
  std::size_t stored_bytes = 0;
};

// Puts a new chunk whose stored form is `stored` in `codec`: a delta against `base` when `base` is
// set, else whole. The store refuses a base that can no longer serve (it became a delta since it
// was read, or this chunk is some delta's base); the chunk then goes in whole, one zstd frame at
// `level`. Other errors pass through.
Result<PutChunkOutcome> put_new_chunk(StoreWriter& writer, const Digest& digest, ByteSpan raw,
                                      ByteSpan stored, Codec codec, const DeltaBaseChunk* base,
                                      int level);

}  // namespace strata
