// AVX-512 gear scan over consecutive positions (no strips, so no warm-up per strip and no work past
// a hit). It rests on the gear recurrence h(p) = (h(p-1) << 1) + G[b(p)] being linear: a 64-byte
// block is eight 8-byte runs, run L in 64-bit lane L, and register r holds position 8L + r of every
// run. Within a run the partial sums S_r = (S_{r-1} << 1) + G_r are plain vertical adds; the run
// ends S_7 are joined by a three-step shifted prefix across lanes (lane shift, shift by 8/16/32,
// add) plus the hash before the block shifted by 8(L+1), which gives the hash C_L before each run;
// then h(8L + r) = (C_L << (r+1)) + S_r. The hash after a block depends only on its 64 bytes, so
// blocks carry nothing serial into each other. A hit test is one vptestnmq per register, OR-ed
// into one lane mask per block; the rare block with a hit takes its lowest position, which is
// exactly the first cut. Positions outside whole blocks run the scalar loop; the returned hash is
// recomputed exactly from the last 64 bytes. Two table lookups are built: vpgatherqq of eight
// entries per register, and the byte planes of simd/gear_planes_avx512.h (vpermi2b) with an unpack
// transpose; simd/dispatch.cpp says which won where. The gathers read eight pre-shifted copies of
// the table (gear << s, s = 0..7) when every mask bit is below 57: register r then holds
// G << (7 - r), the run sums are adds without shifts, and each hash is tested shifted left by
// 7 - r against the mask shifted alike (block_hashes). The two-byte (v2020) form is the one-byte
// recurrence with even positions testing the mask without bit 63 (simd/gear_scan_strips.h
// explains why).
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "simd/gear_planes_avx512.h"
#include "simd/gear_scan.h"

namespace strata::simd {
namespace {

constexpr std::size_t kBlock = 64;
constexpr std::size_t kNoHit = std::numeric_limits<std::size_t>::max();
// Software prefetch: the L2 streamer does not cross 4 KiB pages, and a page start missed in DRAM
// stalls the scan. One line per block goes to L2 four pages ahead (prefetcht1) and one to L1 2 KiB
// ahead (prefetcht0): SPR cold/file 5.33/5.33 GB/s vs 5.19/4.87 with one prefetcht0 4 KiB ahead
// (same process, 5 repetitions), warm unchanged.
constexpr std::size_t kPrefetchFar = 16384;
constexpr std::size_t kPrefetchNear = 2048;

// Gear entries by gathers: register r lane L = gear[bytes[8L + r]], all 64 bits. An in-lane
// byte shuffle zero-extends byte r of every 64-bit lane into the gather's index (the shuffle
// controls are constants: building them per call cost a few hundred cycles per chunk).
class GatherLookup {
 public:
  static constexpr bool kPreShifted = false;

  STRATA_TARGET_AVX512 explicit GatherLookup(const std::uint64_t* gear)
      : table_(reinterpret_cast<const long long*>(gear)) {
    for (int r = 0; r < 8; ++r) pick_[r] = _mm512_load_si512(kPicks[r].data());
  }

  STRATA_TARGET_AVX512 void operator()(const std::uint8_t* bytes, __m512i (&gear)[8]) const {
    const __m512i words = _mm512_loadu_si512(bytes);
    for (int r = 0; r < 8; ++r) {
      gear[r] = _mm512_i64gather_epi64(_mm512_shuffle_epi8(words, pick_[r]), table_, 8);
    }
  }

  // kPicks[r]: byte r of each 64-bit lane to its lowest byte, the other bytes zeroed (0x80).
  alignas(64) static constexpr std::array<std::array<std::uint8_t, 64>, 8> kPicks = [] {
    std::array<std::array<std::uint8_t, 64>, 8> picks{};
    for (unsigned r = 0; r < 8; ++r) {
      for (unsigned j = 0; j < 64; ++j) {
        picks[r][j] = j % 8 == 0 ? static_cast<std::uint8_t>(j % 16 + r) : std::uint8_t{0x80};
      }
    }
    return picks;
  }();

 private:
  const long long* table_;
  __m512i pick_[8];
};

// The gear table pre-shifted for the run sums (shift_gear_tables, simd/gear_scan.h): the request's
// own copy when its owner built one (the chunker does, once), else one built per thread and gear
// table (16 KiB; a 2 KiB compare finds it again on the next call).
struct ShiftedTables {
  alignas(64) std::array<std::uint64_t, 256> source{};
  alignas(64) std::array<std::uint64_t, kGearShiftsSize> shifted{};
  bool built = false;
};

const std::uint64_t* shifted_tables(const GearScanRequest& request) {
  if (request.gear_shifts != nullptr) return request.gear_shifts;
  const std::uint64_t* const gear = request.gear;
  thread_local ShiftedTables cache;
  if (!cache.built || std::memcmp(cache.source.data(), gear, sizeof cache.source) != 0) {
    std::memcpy(cache.source.data(), gear, sizeof cache.source);
    shift_gear_tables(gear, cache.shifted.data());
    cache.built = true;
  }
  return cache.shifted.data();
}

// Gear entries by gathers from the pre-shifted tables: register r lane L =
// gear[bytes[8L + r]] << (7 - r), so the run sums need adds only (find_in_blocks, kPreShifted).
class ShiftedGatherLookup {
 public:
  static constexpr bool kPreShifted = true;

  STRATA_TARGET_AVX512 explicit ShiftedGatherLookup(const GearScanRequest& request)
      : tables_(reinterpret_cast<const long long*>(shifted_tables(request))) {
    for (int r = 0; r < 8; ++r) pick_[r] = _mm512_load_si512(GatherLookup::kPicks[r].data());
  }

  STRATA_TARGET_AVX512 void operator()(const std::uint8_t* bytes, __m512i (&gear)[8]) const {
    const __m512i words = _mm512_loadu_si512(bytes);
    for (int r = 0; r < 8; ++r) {
      gear[r] =
          _mm512_i64gather_epi64(_mm512_shuffle_epi8(words, pick_[r]), tables_ + 256 * (7 - r), 8);
    }
  }

 private:
  const long long* tables_;
  __m512i pick_[8];
};

// Gear entries by byte planes: the low kPlanes bytes of gear[bytes[8L + r]] in register r lane L
// (6 planes hold bits 0..47, all a FastCDC mask looks at). The unpack transpose below leaves input
// byte 16l + 2k + e in register k lane 2l + e; the in-lane shuffle first moves byte 16l + 8e + k
// there, so register k lane L ends up with byte 8L + k.
template <int kPlanes>
class PlaneLookup {
 public:
  static constexpr bool kPreShifted = false;

  STRATA_TARGET_AVX512 explicit PlaneLookup(const std::uint64_t* gear) {
    avx512::GearPlanes planes;
    avx512::split_gear_into_planes(gear, planes);
    for (int q = 0; q < kPlanes; ++q) {
      for (int part = 0; part < 4; ++part) {
        table_[q][part] = _mm512_load_si512(planes.bytes[q].data() + 64 * part);
      }
    }
    alignas(64) std::array<std::uint8_t, 64> order{};
    for (unsigned j = 0; j < 64; ++j) {
      const unsigned in_lane = j % 16;
      order[j] = static_cast<std::uint8_t>(8 * (in_lane % 2) + in_lane / 2);
    }
    order_ = _mm512_load_si512(order.data());
  }

  STRATA_TARGET_AVX512 void operator()(const std::uint8_t* bytes, __m512i (&gear)[8]) const {
    const __m512i data = _mm512_shuffle_epi8(_mm512_loadu_si512(bytes), order_);
    const __mmask64 upper_half = _mm512_movepi8_mask(data);
    __m512i plane[8];
    for (int q = 0; q < 8; ++q) {
      if (q < kPlanes) {
        const __m512i low = _mm512_permutex2var_epi8(table_[q][0], data, table_[q][1]);
        const __m512i high = _mm512_permutex2var_epi8(table_[q][2], data, table_[q][3]);
        plane[q] = _mm512_mask_blend_epi8(upper_half, low, high);
      } else {
        plane[q] = _mm512_setzero_si512();
      }
    }
    __m512i words[4][2];  // plane pair, low/high half of each 128-bit lane
    for (int pair = 0; pair < 4; ++pair) {
      words[pair][0] = _mm512_unpacklo_epi8(plane[2 * pair], plane[2 * pair + 1]);
      words[pair][1] = _mm512_unpackhi_epi8(plane[2 * pair], plane[2 * pair + 1]);
    }
    __m512i dwords[2][4];  // planes 0..3 / 4..7, quarter of each 128-bit lane
    for (int group = 0; group < 2; ++group) {
      for (int half = 0; half < 2; ++half) {
        dwords[group][2 * half] =
            _mm512_unpacklo_epi16(words[2 * group][half], words[2 * group + 1][half]);
        dwords[group][2 * half + 1] =
            _mm512_unpackhi_epi16(words[2 * group][half], words[2 * group + 1][half]);
      }
    }
    for (int quarter = 0; quarter < 4; ++quarter) {
      gear[2 * quarter] = _mm512_unpacklo_epi32(dwords[0][quarter], dwords[1][quarter]);
      gear[2 * quarter + 1] = _mm512_unpackhi_epi32(dwords[0][quarter], dwords[1][quarter]);
    }
  }

 private:
  __m512i table_[kPlanes][4];
  __m512i order_;
};

// The hashes at a block's 64 positions from its gear entries and the hash before it: register r
// lane L for position 8L + r. Pre-shifted entries (gear << (7 - r)) give each hash shifted left by
// 7 - r: the run sums are then plain adds, and h(8L + r) << (7 - r) = (C_L << 8) + P_r exactly
// mod 2^64, so one shift of the carry serves all registers. `runs` gets the run-sum prefix, whose
// lane 7 is the hash after the block whatever came before it.
template <bool kPreShifted>
STRATA_TARGET_AVX512 inline void block_hashes(const __m512i (&gear)[8], __m512i before,
                                              __m512i (&hashes)[8], __m512i& runs) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i run_shifts = _mm512_set_epi64(64, 56, 48, 40, 32, 24, 16, 8);
  __m512i sums[8];
  sums[0] = gear[0];
  for (int r = 1; r < 8; ++r) {
    const __m512i carried = kPreShifted ? sums[r - 1] : _mm512_add_epi64(sums[r - 1], sums[r - 1]);
    sums[r] = _mm512_add_epi64(carried, gear[r]);
  }
  runs = sums[7];
  runs = _mm512_add_epi64(runs, _mm512_slli_epi64(_mm512_alignr_epi64(runs, zero, 7), 8));
  runs = _mm512_add_epi64(runs, _mm512_slli_epi64(_mm512_alignr_epi64(runs, zero, 6), 16));
  runs = _mm512_add_epi64(runs, _mm512_slli_epi64(_mm512_alignr_epi64(runs, zero, 4), 32));
  const __m512i run_ends = _mm512_add_epi64(runs, _mm512_sllv_epi64(before, run_shifts));
  const __m512i carry = _mm512_alignr_epi64(run_ends, before, 7);
  if constexpr (kPreShifted) {
    const __m512i shifted_carry = _mm512_slli_epi64(carry, 8);
    for (int r = 0; r < 7; ++r) hashes[r] = _mm512_add_epi64(shifted_carry, sums[r]);
  } else {
    hashes[0] = _mm512_add_epi64(_mm512_add_epi64(carry, carry), sums[0]);
    hashes[1] = _mm512_add_epi64(_mm512_slli_epi64(carry, 2), sums[1]);
    hashes[2] = _mm512_add_epi64(_mm512_slli_epi64(carry, 3), sums[2]);
    hashes[3] = _mm512_add_epi64(_mm512_slli_epi64(carry, 4), sums[3]);
    hashes[4] = _mm512_add_epi64(_mm512_slli_epi64(carry, 5), sums[4]);
    hashes[5] = _mm512_add_epi64(_mm512_slli_epi64(carry, 6), sums[5]);
    hashes[6] = _mm512_add_epi64(_mm512_slli_epi64(carry, 7), sums[6]);
  }
  hashes[7] = run_ends;
}

// Scans whole 64-byte blocks from `position` while they fit before `end`. `hash` is the hash
// before `position` (exact in the bits the lookup provides) and is updated as blocks pass.
// mask_even / mask_odd apply to positions of the same / other parity as `position`; with a
// pre-shifting lookup they must lie below bit 57 (each is shifted left by up to 7). Returns the
// first hit, or kNoHit with `position` at the first byte not scanned.
template <class Lookup>
STRATA_TARGET_AVX512 std::size_t find_in_blocks(const std::uint8_t* data, std::size_t& position,
                                                std::size_t end, std::uint64_t& hash,
                                                std::uint64_t mask_even, std::uint64_t mask_odd,
                                                const Lookup& lookup) {
  if (end - position < kBlock) return kNoHit;
  const __m512i last_lane = _mm512_set1_epi64(7);
  __m512i masks[8];  // register r tests mask << (7 - r) when pre-shifted
  for (unsigned r = 0; r < 8; ++r) {
    const std::uint64_t mask = r % 2 == 0 ? mask_even : mask_odd;
    masks[r] = _mm512_set1_epi64(static_cast<long long>(mask << (Lookup::kPreShifted ? 7 - r : 0)));
  }
  __m512i before = _mm512_set1_epi64(static_cast<long long>(hash));
  for (; end - position >= kBlock; position += kBlock) {
    __builtin_prefetch(data + position + kPrefetchFar, 0, 2);
    __builtin_prefetch(data + position + kPrefetchNear);
    __m512i gear[8];
    lookup(data + position, gear);
    __m512i hashes[8];
    __m512i runs;
    block_hashes<Lookup::kPreShifted>(gear, before, hashes, runs);
    // Lanes with no hit yet, narrowed register by register (masked vptestmq): the chain stays in
    // mask registers, where OR-ing vptestnmq results went through general registers.
    __mmask8 clear = _mm512_test_epi64_mask(hashes[0], masks[0]);
    for (int r = 1; r < 8; ++r) clear = _mm512_mask_test_epi64_mask(clear, hashes[r], masks[r]);
    if (static_cast<unsigned>(clear) != 0xFFU) [[unlikely]] {
      std::size_t first = kBlock;
      for (int r = 0; r < 8; ++r) {
        unsigned lanes = _mm512_testn_epi64_mask(hashes[r], masks[r]);
        if (lanes == 0) continue;
        const std::size_t at =
            8 * static_cast<std::size_t>(std::countr_zero(lanes)) + static_cast<std::size_t>(r);
        if (at < first) first = at;
      }
      return position + first;
    }
    before = _mm512_permutexvar_epi64(last_lane, runs);  // lane 7 does not depend on `before`
  }
  hash = static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm512_castsi512_si128(before)));
  return kNoHit;
}

template <class Lookup>
GearScanResult scan_consecutive(const GearScanRequest& request, bool pairs, const Lookup& lookup) {
  const std::uint8_t* const data = request.data;
  const std::uint64_t* const gear = request.gear;
  const std::size_t begin = pairs ? request.begin / 2 * 2 : request.begin;
  const std::size_t limit = pairs ? request.limit / 2 * 2 : request.limit;
  if (begin >= limit) return {request.limit, request.hash};
  std::size_t center = pairs ? request.center / 2 * 2 : request.center;
  if (center > limit) center = limit;
  if (center < begin) center = begin;
  constexpr std::uint64_t kBelowTop = ~(std::uint64_t{1} << 63U);
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
  const auto hit_at = [&](std::size_t position) {
    const std::uint64_t hash = hash_after(position + 1);
    return GearScanResult{position, pairs && position % 2 == 0 ? hash << 1U : hash};
  };
  std::uint64_t hash = request.hash;
  std::size_t position = begin;
  const std::size_t ends[2] = {center, limit};
  const std::uint64_t odd_masks[2] = {request.mask_small, request.mask_large};
  for (int region = 0; region < 2; ++region) {
    const std::size_t end = ends[region];
    const std::uint64_t odd_mask = odd_masks[region];
    const std::uint64_t even_mask = pairs ? odd_mask & kBelowTop : odd_mask;
    const bool even_start = position % 2 == 0;
    const std::size_t hit =
        find_in_blocks(data, position, end, hash, even_start ? even_mask : odd_mask,
                       even_start ? odd_mask : even_mask, lookup);
    if (hit != kNoHit) return hit_at(hit);
    for (; position < end; ++position) {
      hash = (hash << 1U) + gear[data[position]];
      if ((hash & (position % 2 == 0 ? even_mask : odd_mask)) == 0) return hit_at(position);
    }
  }
  return {request.limit, hash_after(limit)};
}

// Byte planes: six hold bits 0..47, all a FastCDC mask looks at; a wider mask (xet's top bits)
// needs all eight.
GearScanResult scan_planes(const GearScanRequest& request, bool pairs) {
  const std::uint64_t mask = request.mask_small | request.mask_large;
  if (mask >> 48U != 0) return scan_consecutive(request, pairs, PlaneLookup<8>(request.gear));
  return scan_consecutive(request, pairs, PlaneLookup<6>(request.gear));
}

// Gathers: pre-shifted tables while every mask bit stays below bit 57 (FastCDC's stay below 48),
// the plain table for masks reaching higher (xet's top bits).
GearScanResult scan_gather(const GearScanRequest& request, bool pairs) {
  const std::uint64_t mask = request.mask_small | request.mask_large;
  if (mask >> 57U == 0) return scan_consecutive(request, pairs, ShiftedGatherLookup(request));
  return scan_consecutive(request, pairs, GatherLookup(request.gear));
}

}  // namespace

GearScanResult scan_gear_avx512_seq_gather(const GearScanRequest& request) {
  return scan_gather(request, false);
}

GearScanResult scan_gear_pairs_avx512_seq_gather(const GearScanRequest& request) {
  return scan_gather(request, true);
}

GearScanResult scan_gear_avx512_seq_planes(const GearScanRequest& request) {
  return scan_planes(request, false);
}

GearScanResult scan_gear_pairs_avx512_seq_planes(const GearScanRequest& request) {
  return scan_planes(request, true);
}

}  // namespace strata::simd
