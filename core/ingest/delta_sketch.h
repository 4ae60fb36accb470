// Content sketches for finding a delta base by similarity (DESIGN.md §7 "Finding a base", its
// second rule; issue 16 step 1). A sketch is a few super-features in the N-transform style of
// Shilane et al. ("WAN Optimized Replication of Backup Datasets Using Stream-Informed Delta
// Compression", FAST'12) as Finesse (FAST'19) also groups them: a gear rolling fingerprint over
// the chunk, sampled where its low bits are zero; for each of kSketchFeatures linear transforms
// the largest transformed fingerprint is a feature; each super-feature hashes kFeaturesPerSuper
// features. Two chunks that differ in a few places share most super-features; unrelated chunks
// share none. SketchIndex maps super-features to the chunks of a base layer, bounded in entries.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"

namespace strata {

inline constexpr std::size_t kSuperFeatures = 4;

struct ChunkSketch {
  std::array<std::uint64_t, kSuperFeatures> super{};
  bool empty = true;  // too few sampled positions (a tiny chunk): matches nothing
};

// A sketch covers at most this many leading bytes of a chunk. Content-defined boundaries make a
// chunk's start stable under edits elsewhere, so the prefix of a chunk stands for it; and an
// ingest sketches every new chunk it stores (DeltaIngestOptions::keep_sketches), where the whole
// of a 64 KiB chunk cost 12-18 % of a cold ingest's CPU time (300 MB of /usr, this machine).
inline constexpr std::size_t kSketchPrefixBytes = std::size_t{16} << 10U;

// The sketch of `bytes` (one pass over the first kSketchPrefixBytes: a table lookup, shift and
// add per byte).
ChunkSketch sketch_of(ByteSpan bytes);

// Super-features the two sketches share (0..kSuperFeatures); 0 when either is empty.
int sketch_similarity(const ChunkSketch& a, const ChunkSketch& b) noexcept;

// Chunks of a base by super-feature. At most `max_chunks` chunks are added (add() returns false
// after that), so its memory is bounded whatever the base holds.
class SketchIndex {
 public:
  explicit SketchIndex(std::size_t max_chunks) : max_chunks_(max_chunks) {}
  bool add(const Digest& chunk, const ChunkSketch& sketch);
  // The chunk sharing the most super-features with `sketch` (at least `min_shared`), or nullptr.
  [[nodiscard]] const Digest* best(const ChunkSketch& sketch, int min_shared = 1) const;
  [[nodiscard]] std::size_t chunks() const noexcept { return chunks_.size(); }

 private:
  std::size_t max_chunks_;
  std::vector<Digest> chunks_;
  std::vector<ChunkSketch> sketches_;
  std::array<std::unordered_multimap<std::uint64_t, std::uint32_t>, kSuperFeatures> by_feature_;
};

}  // namespace strata
