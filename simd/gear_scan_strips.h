// Exact gear scan from independent strips, shared by the SIMD kernels (shared/specs/chunking.md
// §3.3, §3.4). Bit j of a gear hash depends only on the last j+1 bytes, because the shift-add only
// carries upward. A mask whose highest bit is w-1 therefore tests a value that a lane started w-1
// bytes earlier (from 0) reproduces exactly. Positions closer than that to `begin` still carry
// hash_in or a short history, so they run the exact sequential loop; the rest is cut into strips
// that a kernel hashes side by side. The returned 64-bit hash depends only on the last 64 bytes (or
// on hash_in within 64 bytes of begin) and is recomputed exactly. The two-byte form (v2020) is the
// one-byte recurrence in disguise when gear_shifted[b] == gear[b] << 1: after an odd byte its hash
// equals the one-byte hash, after an even byte twice it, so even positions test mask without
// bit 63.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "simd/gear_scan.h"

namespace strata::simd::strips {

inline constexpr std::size_t kNoHit = std::numeric_limits<std::size_t>::max();

// One block of strips for a kernel: strip L tests positions [start + L*length, start +
// (L+1)*length), hashing from `warm` bytes before its first position with hash 0. All bytes read
// lie in [start - warm, start + lanes*length). `length` and `warm` are multiples of 8.
struct StripBlock {
  const std::uint8_t* data = nullptr;
  std::size_t start = 0;
  std::size_t length = 0;
  std::size_t warm = 0;
  std::uint64_t mask_first = 0;   // mask for positions of the same parity as `start`
  std::uint64_t mask_second = 0;  // mask for positions of the other parity
};

// Mask bits a hit test looks at: 1 + index of the highest set bit (0 when no bit is set).
inline unsigned window_of(std::uint64_t mask) noexcept {
  return mask == 0 ? 0U : 64U - static_cast<unsigned>(std::countl_zero(mask));
}

// Scans `request` with `Kernel`, which provides: static constexpr std::size_t kLanes, kStripLength
// (multiples of 8); a constructor from (gear table, window bits); std::size_t find(const
// StripBlock&) returning the first hit position of the block or kNoHit.
template <class Kernel>
GearScanResult scan_in_strips(const GearScanRequest& request, bool pairs) {
  const std::uint8_t* const data = request.data;
  const std::uint64_t* const gear = request.gear;
  const std::size_t begin = pairs ? request.begin / 2 * 2 : request.begin;
  const std::size_t limit = pairs ? request.limit / 2 * 2 : request.limit;
  if (begin >= limit) return {request.limit, request.hash};
  std::size_t center = pairs ? request.center / 2 * 2 : request.center;
  if (center > limit) center = limit;
  constexpr std::uint64_t kBelowTop = ~(std::uint64_t{1} << 63U);
  const std::uint64_t small_even = pairs ? request.mask_small & kBelowTop : request.mask_small;
  const std::uint64_t large_even = pairs ? request.mask_large & kBelowTop : request.mask_large;
  const auto mask_at = [&](std::size_t position) {
    const bool even = position % 2 == 0;
    if (position < center) return even ? small_even : request.mask_small;
    return even ? large_even : request.mask_large;
  };
  // The exact one-byte hash after bytes [begin, end): only the last 64 bytes still count.
  const auto hash_after = [&](std::size_t end) {
    std::size_t from = begin;
    std::uint64_t hash = request.hash;
    if (end - begin > 64) {
      from = end - 64;
      hash = 0;
    }
    for (; from < end; ++from) hash = (hash << 1U) + gear[data[from]];
    return hash;
  };
  const auto hit_at = [&](std::size_t position, std::uint64_t hash) {
    return GearScanResult{position, pairs && position % 2 == 0 ? hash << 1U : hash};
  };
  const auto scan_exact = [&](std::size_t from, std::size_t to, std::uint64_t& hash) {
    for (; from < to; ++from) {
      hash = (hash << 1U) + gear[data[from]];
      if ((hash & mask_at(from)) == 0) return from;
    }
    return kNoHit;
  };

  const unsigned window = window_of(request.mask_small | request.mask_large);
  const std::size_t warm = (std::size_t{window} + 6U) / 8U * 8U;  // >= window - 1, multiple of 8
  std::uint64_t hash = request.hash;
  const std::size_t head_end = begin + warm < limit ? begin + warm : limit;
  if (const std::size_t hit = scan_exact(begin, head_end, hash); hit != kNoHit) {
    return hit_at(hit, hash);
  }
  const Kernel kernel(gear, window);
  const std::size_t bounds[3] = {head_end, center > head_end ? center : head_end, limit};
  for (int region = 0; region < 2; ++region) {
    std::size_t position = bounds[region];
    const std::size_t end = bounds[region + 1];
    const std::uint64_t odd_mask = region == 0 ? request.mask_small : request.mask_large;
    const std::uint64_t even_mask = region == 0 ? small_even : large_even;
    while (end - position >= Kernel::kLanes * Kernel::kStripLength) {
      StripBlock block;
      block.data = data;
      block.start = position;
      block.length = Kernel::kStripLength;
      block.warm = warm;
      block.mask_first = position % 2 == 0 ? even_mask : odd_mask;
      block.mask_second = position % 2 == 0 ? odd_mask : even_mask;
      if (const std::size_t hit = kernel.find(block); hit != kNoHit) {
        return hit_at(hit, hash_after(hit + 1));
      }
      position += Kernel::kLanes * Kernel::kStripLength;
    }
    if (position < end) {
      hash = hash_after(position);
      if (const std::size_t hit = scan_exact(position, end, hash); hit != kNoHit) {
        return hit_at(hit, hash);
      }
    }
  }
  return {request.limit, hash_after(limit)};
}

}  // namespace strata::simd::strips
