// AVX-512 VBMI gear scan: eight strips hashed side by side in the 64-bit lanes of one register
// (simd/gear_scan_strips.h has the exactness argument). Zen 4 gathers are too slow for a table
// load per byte (shared/specs/chunking.md §8), so the gear table is split into byte planes and
// looked up 64 bytes at a time with vpermi2b (two 128-entry halves, blended on bit 7); an 8x8
// byte transpose turns the planes back into one gear value per lane and step. Only the planes the
// mask can see are looked up (6 for FastCDC's bits 16..47, 8 for a top-bits mask such as xet's).
#include <array>
#include <bit>

#include "simd/gear_planes_avx512.h"
#include "simd/gear_scan_strips.h"

namespace strata::simd {
namespace {

using avx512::GearPlanes;
using avx512::split_gear_into_planes;
using avx512::transpose_bytes_8x8;

template <int kPlanes>
STRATA_TARGET_AVX512 std::size_t find_hit_in_strips(const strips::StripBlock& block,
                                                    const GearPlanes& planes) {
  constexpr std::size_t kLanes = 8;
  __m512i table[kPlanes][4];
  for (int q = 0; q < kPlanes; ++q) {
    for (int part = 0; part < 4; ++part) {
      table[q][part] = _mm512_load_si512(planes.bytes[q].data() + 64 * part);
    }
  }
  alignas(64) std::array<long long, kLanes> first_reads{};
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    first_reads[lane] = static_cast<long long>(block.start + lane * block.length - block.warm);
  }
  __m512i offsets = _mm512_load_si512(first_reads.data());
  const __m512i step_offsets = _mm512_set1_epi64(8);
  const __m512i mask_first = _mm512_set1_epi64(static_cast<long long>(block.mask_first));
  const __m512i mask_second = _mm512_set1_epi64(static_cast<long long>(block.mask_second));
  const std::size_t warm_groups = block.warm / 8;
  const std::size_t groups = warm_groups + block.length / 8;

  __m512i hash = _mm512_setzero_si512();
  std::array<std::size_t, kLanes> first_hit{};
  unsigned found = 0;
  // Eight short streams defeat the hardware prefetcher, so each group fetches one 64-byte line of
  // the next block in software (a block is 8 * length bytes, a strip length / 8 groups).
  const std::uint8_t* const next_block = block.data + block.start + kLanes * block.length;
  for (std::size_t group = 0; group < groups; ++group) {
    __builtin_prefetch(next_block + 64 * group);
    const __m512i bytes = _mm512_i64gather_epi64(offsets, block.data, 1);
    offsets = _mm512_add_epi64(offsets, step_offsets);
    const __mmask64 upper_half = _mm512_movepi8_mask(bytes);
    __m512i plane[8];
    for (int q = 0; q < 8; ++q) {
      if (q < kPlanes) {
        const __m512i low = _mm512_permutex2var_epi8(table[q][0], bytes, table[q][1]);
        const __m512i high = _mm512_permutex2var_epi8(table[q][2], bytes, table[q][3]);
        plane[q] = _mm512_mask_blend_epi8(upper_half, low, high);
      } else {
        plane[q] = _mm512_setzero_si512();
      }
    }
    __m512i gear_values[8];
    transpose_bytes_8x8(plane, gear_values);
    if (group < warm_groups) {
      for (const __m512i& value : gear_values) {
        hash = _mm512_add_epi64(_mm512_add_epi64(hash, hash), value);
      }
      continue;
    }
    __mmask8 hits[8];
    __mmask8 any = 0;
    for (int step = 0; step < 8; ++step) {
      hash = _mm512_add_epi64(_mm512_add_epi64(hash, hash), gear_values[step]);
      hits[step] = _mm512_testn_epi64_mask(hash, step % 2 == 0 ? mask_first : mask_second);
      any = static_cast<__mmask8>(any | hits[step]);
    }
    const unsigned fresh = static_cast<unsigned>(any) & ~found;
    if (fresh == 0) continue;
    const std::size_t group_start = (group - warm_groups) * 8;
    for (unsigned lane = 0; lane < kLanes; ++lane) {
      if ((fresh & (1U << lane)) == 0) continue;
      for (int step = 0; step < 8; ++step) {
        if ((hits[step] & (1U << lane)) != 0) {
          first_hit[lane] =
              block.start + lane * block.length + group_start + static_cast<std::size_t>(step);
          break;
        }
      }
    }
    found |= fresh;
    if ((found & 1U) != 0) break;  // strip 0 hit: no later strip can hold an earlier position
  }
  if (found == 0) return strips::kNoHit;
  return first_hit[static_cast<unsigned>(std::countr_zero(found))];
}

class Avx512Strips {
 public:
  static constexpr std::size_t kLanes = 8;
  static constexpr std::size_t kStripLength = 256;

  Avx512Strips(const std::uint64_t* gear, unsigned window) : wide_(window > 48) {
    split_gear_into_planes(gear, planes_);
  }

  [[nodiscard]] std::size_t find(const strips::StripBlock& block) const {
    return wide_ ? find_hit_in_strips<8>(block, planes_) : find_hit_in_strips<6>(block, planes_);
  }

 private:
  bool wide_;
  GearPlanes planes_;
};

}  // namespace

GearScanResult scan_gear_avx512(const GearScanRequest& request) {
  return strips::scan_in_strips<Avx512Strips>(request, false);
}

GearScanResult scan_gear_pairs_avx512(const GearScanRequest& request) {
  return strips::scan_in_strips<Avx512Strips>(request, true);
}

}  // namespace strata::simd
