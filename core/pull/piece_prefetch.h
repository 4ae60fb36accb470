// The pipeline that runs ahead of a chunked-layer rebuild (core/pull/chunked_layer_store_pull.cpp;
// internal): a TBB parallel_pipeline on its own thread takes the plan's pieces in the order the
// rebuild will, fetches their bytes in blob order (serial), decodes and SHA-256-checks each chunk
// against its TOC digest on all cores (parallel; chunks the store holds are read there too),
// and hands the pieces over in order through a bounded queue. The rebuild is left the store puts
// and the recipe (the tar's SHA-256 runs beside it, diff_id_hasher.h).
// Memory stays bounded whatever the TOC says: a few tokens, a short queue, and chunks over
// kMaxPreparedChunkBytes are left to the rebuild, which streams them. Facts:
// shared/specs/layer-formats.md §1.1 (one zstd frame per zstd:chunked chunk), §1.5/§1.6 (TOC
// chunkDigest per chunk), §2 (eStargz gzip members).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "strata/pull_plan.h"
#include "strata/store.h"

namespace strata::fastpull::detail {

// A chunk larger than this is not prepared ahead (the rebuild decodes it as it streams).
inline constexpr std::uint64_t kMaxPreparedChunkBytes = std::uint64_t{16} << 20U;

// Fetched bytes and what keeps them alive (the batch they came in).
struct HeldBytes {
  ByteSpan bytes;
  std::shared_ptr<const void> owner;
};
using HeldBytesSource = std::function<Result<HeldBytes>(std::uint64_t offset, std::uint64_t end)>;

// One piece as the rebuild takes it.
struct PreparedPiece {
  std::size_t index = 0;  // into PullPlan::pieces
  HeldBytes fetched;      // its bytes, when it is fetched (neither local nor a delta)
  bool ready = false;     // `raw` is the chunk (zeros: empty), checked against its SHA-256
  // The decoded chunk: a buffer of its own (not zero-filled first), shared with the diff_id's
  // thread and the store put without a copy.
  std::shared_ptr<std::uint8_t[]> raw;
  std::size_t raw_size = 0;
  [[nodiscard]] ByteSpan raw_bytes() const noexcept { return {raw.get(), raw_size}; }
  [[nodiscard]] MutableByteSpan raw_span() const noexcept { return {raw.get(), raw_size}; }
  ByteSpan frame;  // a ready fetched chunk's zstd frame, to store as fetched ({}: compress)
  std::vector<std::uint8_t> sized_frame;  // backs `frame` when its header got the content size
  std::optional<Error> error;             // what failed here; the rebuild reports it in order
};

class PiecePrefetch {
 public:
  // `order`: indexes of plan.pieces in the order the rebuild takes them. Starts the pipeline.
  PiecePrefetch(const ChunkStore& store, const ChunkedLayerToc& layer, const PullPlan& plan,
                std::vector<std::size_t> order, HeldBytesSource bytes_of);
  ~PiecePrefetch();  // stops the pipeline and waits for it
  PiecePrefetch(const PiecePrefetch&) = delete;
  PiecePrefetch& operator=(const PiecePrefetch&) = delete;

  // The next piece, which must be plan.pieces[index]; waits for it.
  Result<std::unique_ptr<PreparedPiece>> next(std::size_t index);
  // Worker-thread seconds spent preparing (decode, store reads, chunk and file hashes).
  [[nodiscard]] double prepare_seconds() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// RFC 8878 §3.1.1.1: `frame` (a zstd frame without Frame_Content_Size) with the content size
// `size` inserted into its header, the blocks untouched. False when the frame is not one to
// rewrite (a dictionary or reserved bit, a size field already there).
bool with_content_size(ByteSpan frame, std::uint64_t size, std::vector<std::uint8_t>& out);

}  // namespace strata::fastpull::detail
