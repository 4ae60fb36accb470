// Content-defined chunking. Stage 1 (simple): chunk_buffer() cuts one buffer. Stage 2 (explicit
// object): Chunker holds validated options. Stage 3 (streaming): feed() pieces of any size, then
// finish(); the chunks equal those of one chunk_buffer() call on the concatenation. The gear scan
// runs through the SIMD dispatch table (strata/kernels.h); every kernel gives identical cuts.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

enum class ChunkAlgorithm : std::uint8_t {
  kFastCdc2016,  // FastCDC, one byte per step (fastcdc-rs v2016 semantics)
  kFastCdc2020,  // FastCDC, "rolling two bytes" (fastcdc-rs v2020 semantics): same cuts as 2016
};

// "fastcdc2016" / "fastcdc2020".
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

// Checks ranges (each size in [64 B, 16 MiB], min <= avg <= max, level <= 3, masks available).
Result<void> validate(const ChunkerOptions& options);

struct Chunk {
  std::uint64_t offset = 0;  // from the start of the stream
  std::uint32_t length = 0;
  std::uint64_t hash = 0;  // gear hash at the cut (0 for a tail shorter than min)

  friend bool operator==(const Chunk&, const Chunk&) = default;
};

// Stage 1: all chunks of one buffer.
Result<std::vector<Chunk>> chunk_buffer(ByteSpan data, const ChunkerOptions& options);

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
  void finish(const Sink& sink);
  // Forgets buffered bytes and restarts offsets at 0.
  void reset();

  // Bytes fed but not yet emitted as chunks.
  [[nodiscard]] std::size_t buffered_bytes() const noexcept { return pending_.size(); }

 private:
  explicit Chunker(const ChunkerOptions& options);

  void emit(const Chunk& chunk, ByteSpan bytes, const Sink& sink);

  ChunkerOptions options_;
  std::uint64_t mask_small_ = 0;
  std::uint64_t mask_large_ = 0;
  std::vector<std::uint64_t> gear_;          // seeded table, 256 entries
  std::vector<std::uint64_t> gear_shifted_;  // gear_[i] << 1 (seed << 1 applied), for v2020
  std::vector<std::uint8_t> pending_;
  std::uint64_t stream_offset_ = 0;
};

}  // namespace strata
