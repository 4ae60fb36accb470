// Content-defined chunking. Stage 1 (simple): chunk_buffer() cuts one buffer. Stage 2 (explicit
// object): Chunker holds validated options. Stage 3 (streaming): feed() pieces of any size, then
// finish(); the chunks equal those of one chunk_buffer() call on the concatenation. Stage 4
// (parallel): chunk_buffer_parallel() cuts one large buffer on several threads with the same
// result. The gear scans (FastCDC, xet) run through the SIMD dispatch table (strata/kernels.h);
// every kernel gives identical cuts. Algorithms follow shared/specs/chunking.md §1, §4.1, §4.2.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

enum class ChunkAlgorithm : std::uint8_t {
  kFastCdc2016,  // FastCDC, one byte per step (fastcdc-rs v2016 semantics)
  kFastCdc2020,  // FastCDC, "rolling two bytes" (fastcdc-rs v2020 semantics): same cuts as 2016
  // Hugging Face xet-core gear chunker: its own gear table, mask = the top log2(avg) bits, hashing
  // from min-65 with the hit byte included, hits below min ignored. Level and seed do not apply.
  kXet,
  // casync / desync buzhash: 48-byte window, discriminator from avg, inclusive cut after min.
  // Level and seed do not apply.
  kCasync,
};

// "fastcdc2016" / "fastcdc2020" / "xet" / "casync".
std::string_view chunk_algorithm_name(ChunkAlgorithm algorithm) noexcept;
Result<ChunkAlgorithm> parse_chunk_algorithm(std::string_view name);

struct ChunkerOptions {
  static constexpr std::uint32_t kSizeFloor = 64;            // bytes
  static constexpr std::uint32_t kSizeCeiling = 16U << 20U;  // 16 MiB

  ChunkAlgorithm algorithm = ChunkAlgorithm::kFastCdc2020;
  std::uint32_t min_size = 16U << 10U;
  std::uint32_t avg_size = 64U << 10U;
  std::uint32_t max_size = 256U << 10U;
  // FastCDC normalization level 0..3: masks of bits+level before avg and bits-level after it.
  std::uint32_t level = 1;
  // XORed into the gear table (fastcdc-rs >= 3.2 "seed"): a secret seed hides cut points.
  std::uint64_t seed = 0;
};

// The sizes each algorithm's reference implementation uses by default: FastCDC 16/64/256 KiB
// level 1, xet 8/64/128 KiB (xet-core), casync 16/64/256 KiB (casync, desync).
ChunkerOptions default_chunker_options(ChunkAlgorithm algorithm) noexcept;

// Checks ranges (each size in [64 B, 16 MiB], min <= avg <= max, level <= 3, masks available,
// casync's discriminator defined).
Result<void> validate(const ChunkerOptions& options);

struct Chunk {
  std::uint64_t offset = 0;  // from the start of the stream
  std::uint32_t length = 0;
  // Rolling hash after the last byte the cut looked at: the gear hash (FastCDC, xet) or the 32-bit
  // buzhash (casync); 0 when no byte was hashed (a tail too short to test).
  std::uint64_t hash = 0;

  friend bool operator==(const Chunk&, const Chunk&) = default;
};

// Stage 1: all chunks of one buffer.
Result<std::vector<Chunk>> chunk_buffer(ByteSpan data, const ChunkerOptions& options);

// Stage 4: the chunks of chunk_buffer(), computed on up to `threads` threads (0: as many as the
// machine has). The buffer is split into parts chunked independently; the parts are joined where
// a part's cuts meet the sequential chain of cuts, which is exact because every algorithm here
// restarts its hash at each chunk start. Where they never meet (e.g. zero-filled data whose only
// cuts are at max-size multiples), the join chunks that stretch sequentially, so the result is
// always identical to chunk_buffer().
Result<std::vector<Chunk>> chunk_buffer_parallel(ByteSpan data, const ChunkerOptions& options,
                                                 unsigned threads);

// casync's chunk id: SHA-512/256 of the chunk's bytes, 64 lowercase hex digits (desync ChunkID).
[[nodiscard]] std::string casync_chunk_id(ByteSpan bytes);

class Chunker {
 public:
  // Called once per chunk, in order, with the chunk's bytes (valid only during the call).
  using Sink = std::function<void(const Chunk& chunk, ByteSpan bytes)>;

  static Result<Chunker> create(const ChunkerOptions& options);

  [[nodiscard]] const ChunkerOptions& options() const noexcept { return options_; }

  // Length of the first chunk of `data`, treating `data` as the rest of the stream when
  // `at_end` is true and as a prefix of it otherwise (then data.size() must be >= max_size).
  [[nodiscard]] Chunk cut(ByteSpan data, bool at_end) const;

  // Stage 3: streaming. Chunks whose end is certain are emitted during feed(); the rest at
  // finish().
  void feed(ByteSpan piece, const Sink& sink);
  // Cuts the chunks of `piece` whose end is certain (while max_size bytes are left), in place, and
  // returns how many bytes they cover: the caller brings the rest back at the front of its next
  // piece (or to finish()), so nothing is buffered. With bytes buffered already it is
  // feed(piece) and returns piece.size().
  std::size_t feed_certain(ByteSpan piece, const Sink& sink);
  void finish(const Sink& sink);
  // feed(last_piece) then finish(), without copying the piece's tail into the buffer first: the
  // chunks are those of the two calls.
  void finish(ByteSpan last_piece, const Sink& sink);
  // Forgets buffered bytes and restarts offsets at 0.
  void reset();

  // Bytes fed but not yet emitted as chunks.
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return pending_.size(); }

  // Thread CPU time (CLOCK_THREAD_CPUTIME_ID) that feed() and finish() spent finding cut points,
  // summed over every call of this object's life (reset() keeps it): the scans only, not the
  // buffering or the sinks. Calls whose cuts need no scan (a tail at most min_size) are not timed.
  [[nodiscard]] double scan_cpu_seconds() const noexcept;

 private:
  explicit Chunker(const ChunkerOptions& options);

  void emit(const Chunk& chunk, ByteSpan bytes, const Sink& sink);
  // Cuts up to out.size() chunks off the front of `data` (at_end: until it is used up; otherwise
  // while at least max_size bytes are left) and adds the scans' thread CPU time to
  // scan_nanoseconds_. Returns how many chunks it cut.
  std::size_t cut_run(ByteSpan data, bool at_end, std::span<Chunk> out);
  // Cuts through `bytes` in place, emitting every chunk (at_end: all of them; otherwise while at
  // least max_size bytes are left). Returns the bytes consumed.
  std::size_t cut_in_place(ByteSpan bytes, bool at_end, const Sink& sink);
  // feed()'s first step: completes the chunks buffered bytes begin with `piece`. Returns where
  // `piece` continues unbuffered, or piece.size() + 1 when all of it went into the buffer.
  std::size_t drain_pending(ByteSpan piece, const Sink& sink);

  [[nodiscard]] Chunk cut_fastcdc(ByteSpan data, bool at_end) const;
  [[nodiscard]] Chunk cut_xet(ByteSpan data) const;
  [[nodiscard]] Chunk cut_casync(ByteSpan data) const;

  ChunkerOptions options_;
  std::uint64_t mask_small_ = 0;
  std::uint64_t mask_large_ = 0;
  std::uint32_t discriminator_ = 0;          // casync
  std::uint64_t discriminator_inverse_ = 0;  // 2^64 / discriminator_, rounded up (fast modulo)
  // The gear table (seeded FastCDC or xet) and its shifted copies, built once: table s (entries
  // 256s .. 256s + 255) holds gear << s for s = 0..7, so table 0 is the gear table, table 1 the
  // v2020 gear_shifted, and the consecutive-position kernels gather from all eight without
  // rebuilding or re-checking them per scan (simd::shift_gear_tables).
  std::vector<std::uint64_t> gear_tables_;
  std::vector<std::uint8_t> pending_;
  std::uint64_t stream_offset_ = 0;
  std::uint64_t scan_nanoseconds_ = 0;
};

}  // namespace strata
