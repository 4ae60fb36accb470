// AVX2 byte-grouping kernels (contract: simd/byte_group_kernel.h). Split: an in-lane pshufb
// gathers each lane's bytes by position within the element, then cross-lane permutes assemble
// whole planes. Merge: byte/word unpacks interleave the planes back, then 128-bit permutes restore
// element order. Compiled with per-function target attributes; dispatched only when the CPU has
// AVX2. Remainders go through the scalar reference.
#if defined(__x86_64__)
#include <immintrin.h>

#include "simd/byte_group_kernel.h"

namespace strata::simd {
namespace {

using Vector = __m256i;

__attribute__((target("avx2"))) inline Vector load(const std::uint8_t* at) {
  return _mm256_loadu_si256(reinterpret_cast<const Vector*>(at));
}

__attribute__((target("avx2"))) inline void store(std::uint8_t* at, Vector value) {
  _mm256_storeu_si256(reinterpret_cast<Vector*>(at), value);
}

}  // namespace

__attribute__((target("avx2"))) void split_planes2_avx2(const std::uint8_t* source,
                                                        std::size_t count,
                                                        std::uint8_t* const* planes) {
  // Per 128-bit lane: 8 low bytes then 8 high bytes.
  const Vector gather = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2,
                                         4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  std::uint8_t* plane0 = planes[0];
  std::uint8_t* plane1 = planes[1];
  std::size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    // Quadwords [lo0 hi0 lo1 hi1] -> [lo0 lo1 hi0 hi1].
    const Vector a =
        _mm256_permute4x64_epi64(_mm256_shuffle_epi8(load(source + 2 * i), gather), 0xD8);
    const Vector b =
        _mm256_permute4x64_epi64(_mm256_shuffle_epi8(load(source + 2 * i + 32), gather), 0xD8);
    store(plane0 + i, _mm256_permute2x128_si256(a, b, 0x20));
    store(plane1 + i, _mm256_permute2x128_si256(a, b, 0x31));
  }
  std::uint8_t* const rest[2] = {plane0 + i, plane1 + i};
  split_planes2_scalar(source + 2 * i, count - i, rest);
}

__attribute__((target("avx2"))) void merge_planes2_avx2(const std::uint8_t* const* planes,
                                                        std::size_t count,
                                                        std::uint8_t* destination) {
  const std::uint8_t* plane0 = planes[0];
  const std::uint8_t* plane1 = planes[1];
  std::size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const Vector low = load(plane0 + i);
    const Vector high = load(plane1 + i);
    const Vector first = _mm256_unpacklo_epi8(low, high);   // elements 0..7 | 16..23
    const Vector second = _mm256_unpackhi_epi8(low, high);  // elements 8..15 | 24..31
    store(destination + 2 * i, _mm256_permute2x128_si256(first, second, 0x20));
    store(destination + 2 * i + 32, _mm256_permute2x128_si256(first, second, 0x31));
  }
  const std::uint8_t* const rest[2] = {plane0 + i, plane1 + i};
  merge_planes2_scalar(rest, count - i, destination + 2 * i);
}

__attribute__((target("avx2"))) void split_planes4_avx2(const std::uint8_t* source,
                                                        std::size_t count,
                                                        std::uint8_t* const* planes) {
  // Per lane: 4 bytes of plane 0, then planes 1, 2, 3; then dwords [0 4 1 5 2 6 3 7] make each
  // quadword hold 8 bytes of one plane.
  const Vector gather = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4,
                                         8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const Vector pair_lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const std::uint8_t* at = source + 4 * i;
    const Vector v0 =
        _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load(at), gather), pair_lanes);
    const Vector v1 =
        _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load(at + 32), gather), pair_lanes);
    const Vector v2 =
        _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load(at + 64), gather), pair_lanes);
    const Vector v3 =
        _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load(at + 96), gather), pair_lanes);
    // 4x4 transpose of quadwords.
    const Vector t0 = _mm256_unpacklo_epi64(v0, v1);  // v0.P0 v1.P0 | v0.P2 v1.P2
    const Vector t1 = _mm256_unpackhi_epi64(v0, v1);  // v0.P1 v1.P1 | v0.P3 v1.P3
    const Vector t2 = _mm256_unpacklo_epi64(v2, v3);
    const Vector t3 = _mm256_unpackhi_epi64(v2, v3);
    store(planes[0] + i, _mm256_permute2x128_si256(t0, t2, 0x20));
    store(planes[1] + i, _mm256_permute2x128_si256(t1, t3, 0x20));
    store(planes[2] + i, _mm256_permute2x128_si256(t0, t2, 0x31));
    store(planes[3] + i, _mm256_permute2x128_si256(t1, t3, 0x31));
  }
  std::uint8_t* const rest[4] = {planes[0] + i, planes[1] + i, planes[2] + i, planes[3] + i};
  split_planes4_scalar(source + 4 * i, count - i, rest);
}

__attribute__((target("avx2"))) void merge_planes4_avx2(const std::uint8_t* const* planes,
                                                        std::size_t count,
                                                        std::uint8_t* destination) {
  std::size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const Vector p0 = load(planes[0] + i);
    const Vector p1 = load(planes[1] + i);
    const Vector p2 = load(planes[2] + i);
    const Vector p3 = load(planes[3] + i);
    const Vector a = _mm256_unpacklo_epi8(p0, p1);  // byte pairs 0..7 | 16..23
    const Vector b = _mm256_unpackhi_epi8(p0, p1);  // 8..15 | 24..31
    const Vector c = _mm256_unpacklo_epi8(p2, p3);
    const Vector d = _mm256_unpackhi_epi8(p2, p3);
    const Vector r0 = _mm256_unpacklo_epi16(a, c);  // elements 0..3 | 16..19
    const Vector r1 = _mm256_unpackhi_epi16(a, c);  // 4..7 | 20..23
    const Vector r2 = _mm256_unpacklo_epi16(b, d);  // 8..11 | 24..27
    const Vector r3 = _mm256_unpackhi_epi16(b, d);  // 12..15 | 28..31
    std::uint8_t* out = destination + 4 * i;
    store(out, _mm256_permute2x128_si256(r0, r1, 0x20));
    store(out + 32, _mm256_permute2x128_si256(r2, r3, 0x20));
    store(out + 64, _mm256_permute2x128_si256(r0, r1, 0x31));
    store(out + 96, _mm256_permute2x128_si256(r2, r3, 0x31));
  }
  const std::uint8_t* const rest[4] = {planes[0] + i, planes[1] + i, planes[2] + i, planes[3] + i};
  merge_planes4_scalar(rest, count - i, destination + 4 * i);
}

}  // namespace strata::simd
#endif
