// Portable interleaved gear scan: three strips hashed by plain scalar code in one loop, so three
// independent shift-add chains share the core instead of one (the scalar loop is bound by the
// one-cycle latency of that chain, shared/specs/chunking.md §6). Exactness comes from
// simd/gear_scan_strips.h. Each byte costs two loads (byte, gear entry); Zen 4 issues three per
// cycle.
#include <array>

#include "simd/gear_scan_strips.h"

namespace strata::simd {
namespace {

class InterleavedStrips {
 public:
  static constexpr std::size_t kLanes = 3;
  static constexpr std::size_t kStripLength = 1024;
  static constexpr std::size_t kLineSize = 64;

  InterleavedStrips(const std::uint64_t* gear, unsigned /*window*/) : gear_(gear) {}

  [[nodiscard]] std::size_t find(const strips::StripBlock& block) const {
    const std::uint64_t* const gear = gear_;
    const std::size_t length = block.length;
    const std::uint8_t* const first = block.data + block.start;
    const std::uint8_t* const second = first + length;
    const std::uint8_t* const third = second + length;
    std::uint64_t hash0 = 0;
    std::uint64_t hash1 = 0;
    std::uint64_t hash2 = 0;
    for (std::size_t back = block.warm; back > 0; --back) {
      hash0 = (hash0 << 1U) + gear[*(first - back)];
      hash1 = (hash1 << 1U) + gear[*(second - back)];
      hash2 = (hash2 << 1U) + gear[*(third - back)];
    }
    const std::uint64_t masks[2] = {block.mask_first, block.mask_second};
    std::size_t step = 0;
    std::size_t lane = 0;  // the strip that hit first in time (0: none yet)
    // Three short streams defeat the hardware prefetcher's training, so each 64-byte line of the
    // next block (same strip offset, kLanes strips further on) is fetched in software while this
    // block runs. The inner loop is unrolled by two so each half uses a fixed mask
    // (positions alternate parity). Hand-written for three strips: a generic lane loop measured
    // 10-30 % slower here.
    for (std::size_t line = 0; line < length && lane == 0; line += kLineSize) {
      const std::size_t ahead = kLanes * length + line;
      __builtin_prefetch(first + ahead);
      __builtin_prefetch(second + ahead);
      __builtin_prefetch(third + ahead);
      const std::size_t line_end = line + kLineSize < length ? line + kLineSize : length;
      for (step = line; step < line_end; step += 2) {
        hash0 = (hash0 << 1U) + gear[first[step]];
        hash1 = (hash1 << 1U) + gear[second[step]];
        hash2 = (hash2 << 1U) + gear[third[step]];
        if ((hash0 & masks[0]) == 0) return block.start + step;
        if ((hash1 & masks[0]) == 0) {
          lane = 1;
          break;
        }
        if ((hash2 & masks[0]) == 0) {
          lane = 2;
          break;
        }
        hash0 = (hash0 << 1U) + gear[first[step + 1]];
        hash1 = (hash1 << 1U) + gear[second[step + 1]];
        hash2 = (hash2 << 1U) + gear[third[step + 1]];
        if ((hash0 & masks[1]) == 0) return block.start + step + 1;
        if ((hash1 & masks[1]) == 0) {
          lane = 1;
          ++step;
          break;
        }
        if ((hash2 & masks[1]) == 0) {
          lane = 2;
          ++step;
          break;
        }
      }
    }
    if (lane == 0) return strips::kNoHit;
    // A later strip hit first in time; earlier strips may still hit later in their own range.
    const std::array<const std::uint8_t*, 2> earlier = {first, second};
    const std::array<std::uint64_t, 2> hashes = {hash0, hash1};
    for (std::size_t previous = 0; previous < lane; ++previous) {
      std::uint64_t hash = hashes[previous];
      const std::uint8_t* const bytes = earlier[previous];
      for (std::size_t later = step + 1; later < length; ++later) {
        hash = (hash << 1U) + gear[bytes[later]];
        if ((hash & masks[later % 2]) == 0) return block.start + previous * length + later;
      }
    }
    return block.start + lane * length + step;
  }

 private:
  const std::uint64_t* gear_;
};

}  // namespace

GearScanResult scan_gear_interleaved(const GearScanRequest& request) {
  return strips::scan_in_strips<InterleavedStrips>(request, false);
}

GearScanResult scan_gear_pairs_interleaved(const GearScanRequest& request) {
  return strips::scan_in_strips<InterleavedStrips>(request, true);
}

}  // namespace strata::simd
