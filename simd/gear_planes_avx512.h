// AVX-512 VBMI helpers shared by the byte-plane gear kernels (simd/gear_scan_avx512.cpp,
// simd/gear_scan_avx512_seq.cpp): the gear table split into byte planes, so that one vpermi2b pair
// looks up one byte of 64 gear entries at once, and the in-register 8x8 byte transpose. They rest
// on AVX-512F/BW/VBMI; every function carries the target attribute (no global -m flags), so callers
// must only run after the dispatch check.
#pragma once

#include <immintrin.h>

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wuninitialized reports
// inside the compiler's own header when they are inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <array>
#include <cstdint>

namespace strata::simd::avx512 {

#define STRATA_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

// The 8x8 byte transpose inside every 64-bit lane: byte c of lane L of out[r] = byte r of lane L
// of in[c]. Unpacks work inside 128-bit lanes, so the last stage re-pairs the two 64-bit lanes.
inline STRATA_TARGET_AVX512 void transpose_bytes_8x8(const __m512i (&in)[8], __m512i (&out)[8]) {
  __m512i even_lane[4];
  __m512i odd_lane[4];
  for (int k = 0; k < 4; ++k) {
    even_lane[k] = _mm512_unpacklo_epi8(in[2 * k], in[2 * k + 1]);
    odd_lane[k] = _mm512_unpackhi_epi8(in[2 * k], in[2 * k + 1]);
  }
  __m512i quads[2][2][2];  // [lane parity][rows 0..3 / 4..7][columns 0..3 / 4..7]
  for (int j = 0; j < 2; ++j) {
    quads[0][j][0] = _mm512_unpacklo_epi16(even_lane[2 * j], even_lane[2 * j + 1]);
    quads[0][j][1] = _mm512_unpackhi_epi16(even_lane[2 * j], even_lane[2 * j + 1]);
    quads[1][j][0] = _mm512_unpacklo_epi16(odd_lane[2 * j], odd_lane[2 * j + 1]);
    quads[1][j][1] = _mm512_unpackhi_epi16(odd_lane[2 * j], odd_lane[2 * j + 1]);
  }
  for (int half = 0; half < 2; ++half) {
    for (int u = 0; u < 2; ++u) {
      const __m512i even = u == 0 ? _mm512_unpacklo_epi32(quads[0][0][half], quads[0][1][half])
                                  : _mm512_unpackhi_epi32(quads[0][0][half], quads[0][1][half]);
      const __m512i odd = u == 0 ? _mm512_unpacklo_epi32(quads[1][0][half], quads[1][1][half])
                                 : _mm512_unpackhi_epi32(quads[1][0][half], quads[1][1][half]);
      out[4 * half + 2 * u] = _mm512_unpacklo_epi64(even, odd);
      out[4 * half + 2 * u + 1] = _mm512_unpackhi_epi64(even, odd);
    }
  }
}

// Gear byte planes: plane q holds byte q of every entry, as four 64-entry registers' worth.
struct GearPlanes {
  alignas(64) std::array<std::array<std::uint8_t, 256>, 8> bytes{};
};

inline STRATA_TARGET_AVX512 void split_gear_into_planes(const std::uint64_t* gear,
                                                        GearPlanes& planes) {
  // Transposing 8 registers of 8 entries leaves entry 8r+j's byte at index 8j+r; vpermb moves it
  // to index 8r+j.
  alignas(64) std::array<std::uint8_t, 64> order{};
  for (unsigned r = 0; r < 8; ++r) {
    for (unsigned j = 0; j < 8; ++j) order[8 * r + j] = static_cast<std::uint8_t>(8 * j + r);
  }
  const __m512i reorder = _mm512_load_si512(order.data());
  for (int group = 0; group < 4; ++group) {
    __m512i entries[8];
    __m512i plane[8];
    for (int r = 0; r < 8; ++r) entries[r] = _mm512_loadu_si512(gear + 64 * group + 8 * r);
    transpose_bytes_8x8(entries, plane);
    for (int q = 0; q < 8; ++q) {
      _mm512_store_si512(planes.bytes[q].data() + 64 * group,
                         _mm512_permutexvar_epi8(reorder, plane[q]));
    }
  }
}

}  // namespace strata::simd::avx512
