// AVX2 gear scan: four strips hashed side by side in the 64-bit lanes of one register
// (simd/gear_scan_strips.h has the exactness argument), the srijs/rust-gearhash layout of
// shared/specs/chunking.md §3.3. AVX2 has no byte-wide table permute over 256 entries, so each
// step gathers four gear entries with vpgatherqq; every strip's next eight bytes arrive in one
// gather too.
#include <immintrin.h>

#include <array>
#include <bit>

#include "simd/gear_scan_strips.h"

namespace strata::simd {
namespace {

#define STRATA_TARGET_AVX2 __attribute__((target("avx2")))

STRATA_TARGET_AVX2 std::size_t find_hit_in_four_strips(const strips::StripBlock& block,
                                                       const std::uint64_t* gear) {
  constexpr std::size_t kLanes = 4;
  const auto* const table = reinterpret_cast<const long long*>(gear);
  const auto* const bytes_base = reinterpret_cast<const long long*>(block.data);
  __m256i offsets =
      _mm256_set_epi64x(static_cast<long long>(block.start + 3 * block.length - block.warm),
                        static_cast<long long>(block.start + 2 * block.length - block.warm),
                        static_cast<long long>(block.start + block.length - block.warm),
                        static_cast<long long>(block.start - block.warm));
  const __m256i step_offsets = _mm256_set1_epi64x(8);
  const __m256i low_byte = _mm256_set1_epi64x(0xff);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i mask_first = _mm256_set1_epi64x(static_cast<long long>(block.mask_first));
  const __m256i mask_second = _mm256_set1_epi64x(static_cast<long long>(block.mask_second));
  const std::size_t warm_groups = block.warm / 8;
  const std::size_t groups = warm_groups + block.length / 8;

  __m256i hash = zero;
  std::array<std::size_t, kLanes> first_hit{};
  unsigned found = 0;
  for (std::size_t group = 0; group < groups; ++group) {
    const __m256i bytes = _mm256_i64gather_epi64(bytes_base, offsets, 1);
    offsets = _mm256_add_epi64(offsets, step_offsets);
    const bool testing = group >= warm_groups;
    unsigned hits = 0;  // bit 4*step + lane
    for (int step = 0; step < 8; ++step) {
      const __m256i index = _mm256_and_si256(_mm256_srli_epi64(bytes, 8 * step), low_byte);
      const __m256i value = _mm256_i64gather_epi64(table, index, 8);
      hash = _mm256_add_epi64(_mm256_add_epi64(hash, hash), value);
      if (testing) {
        const __m256i masked = _mm256_and_si256(hash, step % 2 == 0 ? mask_first : mask_second);
        const int lanes_hit =
            _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(masked, zero)));
        hits |= static_cast<unsigned>(lanes_hit) << (4 * step);
      }
    }
    if (hits == 0) continue;
    const std::size_t group_start = (group - warm_groups) * 8;
    for (unsigned lane = 0; lane < kLanes; ++lane) {
      if ((found & (1U << lane)) != 0) continue;
      for (unsigned step = 0; step < 8; ++step) {
        if ((hits & (1U << (4 * step + lane))) != 0) {
          first_hit[lane] = block.start + lane * block.length + group_start + step;
          found |= 1U << lane;
          break;
        }
      }
    }
    if ((found & 1U) != 0) break;  // strip 0 hit: no later strip can hold an earlier position
  }
  if (found == 0) return strips::kNoHit;
  return first_hit[static_cast<unsigned>(std::countr_zero(found))];
}

class Avx2Strips {
 public:
  static constexpr std::size_t kLanes = 4;
  static constexpr std::size_t kStripLength = 512;

  Avx2Strips(const std::uint64_t* gear, unsigned /*window*/) : gear_(gear) {}

  [[nodiscard]] std::size_t find(const strips::StripBlock& block) const {
    return find_hit_in_four_strips(block, gear_);
  }

 private:
  const std::uint64_t* gear_;
};

}  // namespace

GearScanResult scan_gear_avx2(const GearScanRequest& request) {
  return strips::scan_in_strips<Avx2Strips>(request, false);
}

GearScanResult scan_gear_pairs_avx2(const GearScanRequest& request) {
  return strips::scan_in_strips<Avx2Strips>(request, true);
}

}  // namespace strata::simd
