// The one recipe reader: walks a recipe's segments in order, fetches the chunk bytes (from the
// chunk store, or from a caller's provider) and hands out the tar they rebuild, piece by piece.
// Segments are fetched in batches of about 4 MiB, optionally read ahead on worker threads, so
// memory is bounded by the batches in flight whatever the layer size. Every way a chunk is read
// and decoded for a recipe lives here (fetch_store_chunk), so a new chunk coding (DESIGN.md §7)
// has one place to go. Rests on the recipe invariant of DESIGN.md §3: the pieces, in order, are
// the layer's tar byte for byte.
#pragma once

#include <tbb/task_arena.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include "strata/recipe.h"
#include "strata/store.h"

namespace strata {

// A chunk as fetched for the reader: its raw bytes and, where the source kept it, the stored
// zstd frame (for writers that copy frames instead of compressing again).
struct RecipeChunk {
  std::vector<std::uint8_t> owned;  // the raw bytes, when the source hands them over
  ByteSpan borrowed;                // else a view the source keeps valid until its next fetch
  std::vector<std::uint8_t> frame;  // empty when the chunk is not stored as a zstd frame

  [[nodiscard]] ByteSpan bytes() const { return owned.empty() ? borrowed : ByteSpan(owned); }
};

// Fetches one chunk segment of the recipe; called on worker threads when reading ahead.
using RecipeChunkFetch = std::function<Result<RecipeChunk>(const RecipeSegment& segment)>;

// How a chunk read from the store is checked.
enum class StoreChunkCheck {
  // ChunkStore::read_chunk: record checksum, decode, XXH3-128, SHA-256; then the recipe's length.
  kFull,
  // Record checksum, decode and the recipe's length only: the caller checks the content as a
  // whole by the diff_id (a per-chunk SHA-256 would repeat it). The zstd frame is kept.
  kDecodeWithFrame,
};

// The chunk of `segment` from the store, checked as `check` says.
Result<RecipeChunk> fetch_store_chunk(const ChunkStore& store, const RecipeSegment& segment,
                                      StoreChunkCheck check);
RecipeChunkFetch store_chunks(const ChunkStore& store, StoreChunkCheck check);
// Chunks from a provider (replay()), each checked against the recipe's length and SHA-256. The
// provider's span is borrowed: read it with batch_bytes 0 and no read-ahead.
RecipeChunkFetch provided_chunks(const ChunkProvider& provider);

struct RecipeReaderOptions {
  static constexpr std::uint64_t kDefaultBatchBytes = std::uint64_t{4} << 20U;
  // Segments are fetched in batches of at least this many bytes (the last may be smaller); 0:
  // one segment a batch. A batch is handed out only once all of it is fetched.
  std::uint64_t batch_bytes = kDefaultBatchBytes;
  // Batches fetched ahead on worker threads; 0: fetched on the caller's thread when needed.
  unsigned read_ahead = 0;
  // Worker threads fetching those batches (a TBB arena the reader keeps for its life, so no thread
  // is started per batch); 0: read_ahead - 1, at least 1. The caller's thread, which consumes the
  // pieces, counts as the remaining one.
  unsigned fetch_threads = 0;
};

class RecipeReader {
 public:
  RecipeReader(const Recipe& recipe, RecipeChunkFetch fetch, RecipeReaderOptions options = {});
  RecipeReader(const RecipeReader&) = delete;
  RecipeReader& operator=(const RecipeReader&) = delete;
  ~RecipeReader();  // waits for the batches in flight

  // The next piece of the tar (one segment's bytes, valid until the next call), or an empty span
  // at the end. After a failure every later call fails the same way.
  Result<ByteSpan> next();
  // Copies up to out.size() bytes of the tar into `out`; 0 at the end.
  Result<std::size_t> read(MutableByteSpan out);
  // Hands every remaining piece to `sink`, in order; stops at the first error of either side.
  Result<void> write_to(const ByteSink& sink);
  // The stored zstd frame of a chunk read lately (the current batch or the two before it), or
  // nothing: the writer then compresses the chunk itself.
  [[nodiscard]] std::vector<std::uint8_t> frame_of(const Digest& digest) const;

 private:
  struct Batch {
    std::size_t first_segment = 0;
    std::size_t end_segment = 0;
    std::vector<RecipeChunk> chunks;  // one per segment (empty for raw segments)
    Result<void> status;
  };

  // A batch read ahead: fetched by whichever thread claims it first, a worker or the caller
  // (which fetches batches still waiting for a worker rather than sit idle), then `done` is set.
  struct Pending {
    std::unique_ptr<Batch> batch;
    std::atomic<bool> claimed{false};
    std::promise<void> done;
    std::shared_future<void> finished;
  };

  std::unique_ptr<Batch> cut_batch();
  void fetch_batch(Batch& batch) const;
  void fill_pipeline();
  std::unique_ptr<Batch> take_batch();
  // Fetches `pending` if no other thread has claimed it; false when one had (`reader` is then not
  // touched: it may be gone).
  static bool claim_and_fetch(const RecipeReader* reader, Pending& pending);
  // Ends every batch in flight: claims the unclaimed (fetching nothing), waits for the others.
  void drain();

  const Recipe& recipe_;
  const RecipeChunkFetch fetch_;
  const RecipeReaderOptions options_;
  std::size_t next_segment_ = 0;            // first segment not yet in a batch
  std::unique_ptr<tbb::task_arena> arena_;  // the fetch workers, when reading ahead
  std::deque<std::shared_ptr<Pending>> pending_;
  // Enqueued tasks not yet finished (a task that lost its claim still runs, briefly): the
  // destructor waits for 0 so no task outlives the arena holding its batch.
  std::atomic<int> tasks_running_{0};
  std::unique_ptr<Batch> current_batch_;
  std::deque<std::unique_ptr<Batch>> retired_;  // the last two, for frame_of
  std::size_t segment_ = 0;                     // next segment of current_batch_ to hand out
  Result<void> failure_;
  ByteSpan current_;  // what read() has not copied yet of the current piece
};

// A stored layer replayed through the reader: its tar handed to `sink` in order and hashed, the
// hash checked against the recorded diff_id (kDigestMismatch otherwise). The one replay of a stored
// layer, shared by export (export_layer_tar) and the store's own verify.
struct StoredLayerReplay {
  Digest diff_id;
  std::uint64_t tar_bytes = 0;
};
Result<StoredLayerReplay> replay_stored_layer(const ChunkStore& store, const Digest& layer,
                                              const ByteSink& sink, unsigned read_ahead);

}  // namespace strata
