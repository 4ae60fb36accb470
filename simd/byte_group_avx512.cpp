// AVX-512 byte-grouping kernels (contract: simd/byte_group_kernel.h). VBMI's two-source byte
// permute (vpermt2b) gathers any 64 of 128 bytes in one instruction, so a split is one permute per
// output half-plane and a merge one permute per 64 output bytes (plus a 16-bit two-source permute,
// AVX512BW, for the second interleave of 4-byte elements). Per-function target attributes;
// dispatched only when the CPU has AVX512F+BW+VBMI. Remainders go through the scalar reference.
#if defined(__x86_64__)
#include <immintrin.h>

#include <array>

#include "simd/byte_group_kernel.h"

namespace strata::simd {
namespace {

using Vector = __m512i;
#define STRATA_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))

// Byte indices as a vector: index tables are built once, in plain code, from their definitions.
template <typename Make>
std::array<std::uint8_t, 64> make_index(Make make) {
  std::array<std::uint8_t, 64> index{};
  for (unsigned j = 0; j < 64; ++j) index[j] = static_cast<std::uint8_t>(make(j));
  return index;
}

struct Indexes {
  // split2: plane 0 = even bytes of the 128-byte pair, plane 1 = odd bytes.
  std::array<std::uint8_t, 64> even = make_index([](unsigned j) { return 2 * j; });
  std::array<std::uint8_t, 64> odd = make_index([](unsigned j) { return 2 * j + 1; });
  // split4: low 32 bytes = plane k, high 32 bytes = plane k+1, from 32 elements (128 bytes).
  std::array<std::uint8_t, 64> planes01 =
      make_index([](unsigned j) { return j < 32 ? 4 * j : 4 * (j - 32) + 1; });
  std::array<std::uint8_t, 64> planes23 =
      make_index([](unsigned j) { return j < 32 ? 4 * j + 2 : 4 * (j - 32) + 3; });
  // merge: interleave bytes of a (0..63) and b (64..127), first and second halves.
  std::array<std::uint8_t, 64> interleave_low =
      make_index([](unsigned j) { return (j % 2 == 0 ? 0 : 64) + j / 2; });
  std::array<std::uint8_t, 64> interleave_high =
      make_index([](unsigned j) { return (j % 2 == 0 ? 0 : 64) + 32 + j / 2; });
  // merge4 second step, in 16-bit words: interleave words of a (0..31) and b (32..63).
  std::array<std::uint16_t, 32> words_low{};
  std::array<std::uint16_t, 32> words_high{};
  Indexes() {
    for (unsigned j = 0; j < 32; ++j) {
      words_low[j] = static_cast<std::uint16_t>((j % 2 == 0 ? 0 : 32) + j / 2);
      words_high[j] = static_cast<std::uint16_t>((j % 2 == 0 ? 0 : 32) + 16 + j / 2);
    }
  }
};

const Indexes& indexes() {
  static const Indexes instance;
  return instance;
}

STRATA_AVX512_TARGET inline Vector load(const void* at) {
  return _mm512_loadu_si512(at);
}
STRATA_AVX512_TARGET inline void store(void* at, Vector value) {
  _mm512_storeu_si512(at, value);
}

}  // namespace

STRATA_AVX512_TARGET void split_planes2_avx512(const std::uint8_t* source, std::size_t count,
                                               std::uint8_t* const* planes) {
  const Vector even = load(indexes().even.data());
  const Vector odd = load(indexes().odd.data());
  std::uint8_t* plane0 = planes[0];
  std::uint8_t* plane1 = planes[1];
  std::size_t i = 0;
  for (; i + 64 <= count; i += 64) {
    const Vector a = load(source + 2 * i);
    const Vector b = load(source + 2 * i + 64);
    store(plane0 + i, _mm512_permutex2var_epi8(a, even, b));
    store(plane1 + i, _mm512_permutex2var_epi8(a, odd, b));
  }
  std::uint8_t* const rest[2] = {plane0 + i, plane1 + i};
  split_planes2_scalar(source + 2 * i, count - i, rest);
}

STRATA_AVX512_TARGET void merge_planes2_avx512(const std::uint8_t* const* planes, std::size_t count,
                                               std::uint8_t* destination) {
  const Vector low = load(indexes().interleave_low.data());
  const Vector high = load(indexes().interleave_high.data());
  const std::uint8_t* plane0 = planes[0];
  const std::uint8_t* plane1 = planes[1];
  std::size_t i = 0;
  for (; i + 64 <= count; i += 64) {
    const Vector a = load(plane0 + i);
    const Vector b = load(plane1 + i);
    store(destination + 2 * i, _mm512_permutex2var_epi8(a, low, b));
    store(destination + 2 * i + 64, _mm512_permutex2var_epi8(a, high, b));
  }
  const std::uint8_t* const rest[2] = {plane0 + i, plane1 + i};
  merge_planes2_scalar(rest, count - i, destination + 2 * i);
}

STRATA_AVX512_TARGET void split_planes4_avx512(const std::uint8_t* source, std::size_t count,
                                               std::uint8_t* const* planes) {
  const Vector planes01 = load(indexes().planes01.data());
  const Vector planes23 = load(indexes().planes23.data());
  const Vector low_halves = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11);
  const Vector high_halves = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
  std::size_t i = 0;
  for (; i + 64 <= count; i += 64) {
    const std::uint8_t* at = source + 4 * i;
    const Vector v0 = load(at);
    const Vector v1 = load(at + 64);
    const Vector v2 = load(at + 128);
    const Vector v3 = load(at + 192);
    // Elements 0..31 and 32..63, each vector holding two half-planes.
    const Vector first01 = _mm512_permutex2var_epi8(v0, planes01, v1);
    const Vector first23 = _mm512_permutex2var_epi8(v0, planes23, v1);
    const Vector second01 = _mm512_permutex2var_epi8(v2, planes01, v3);
    const Vector second23 = _mm512_permutex2var_epi8(v2, planes23, v3);
    // Quadwords: low halves of both, then high halves of both.
    store(planes[0] + i, _mm512_permutex2var_epi64(first01, low_halves, second01));
    store(planes[1] + i, _mm512_permutex2var_epi64(first01, high_halves, second01));
    store(planes[2] + i, _mm512_permutex2var_epi64(first23, low_halves, second23));
    store(planes[3] + i, _mm512_permutex2var_epi64(first23, high_halves, second23));
  }
  std::uint8_t* const rest[4] = {planes[0] + i, planes[1] + i, planes[2] + i, planes[3] + i};
  split_planes4_scalar(source + 4 * i, count - i, rest);
}

STRATA_AVX512_TARGET void merge_planes4_avx512(const std::uint8_t* const* planes, std::size_t count,
                                               std::uint8_t* destination) {
  const Vector low = load(indexes().interleave_low.data());
  const Vector high = load(indexes().interleave_high.data());
  const Vector words_low = load(indexes().words_low.data());
  const Vector words_high = load(indexes().words_high.data());
  std::size_t i = 0;
  for (; i + 64 <= count; i += 64) {
    const Vector p0 = load(planes[0] + i);
    const Vector p1 = load(planes[1] + i);
    const Vector p2 = load(planes[2] + i);
    const Vector p3 = load(planes[3] + i);
    const Vector pairs01_low = _mm512_permutex2var_epi8(p0, low, p1);    // elements 0..31
    const Vector pairs01_high = _mm512_permutex2var_epi8(p0, high, p1);  // 32..63
    const Vector pairs23_low = _mm512_permutex2var_epi8(p2, low, p3);
    const Vector pairs23_high = _mm512_permutex2var_epi8(p2, high, p3);
    std::uint8_t* out = destination + 4 * i;
    store(out, _mm512_permutex2var_epi16(pairs01_low, words_low, pairs23_low));
    store(out + 64, _mm512_permutex2var_epi16(pairs01_low, words_high, pairs23_low));
    store(out + 128, _mm512_permutex2var_epi16(pairs01_high, words_low, pairs23_high));
    store(out + 192, _mm512_permutex2var_epi16(pairs01_high, words_high, pairs23_high));
  }
  const std::uint8_t* const rest[4] = {planes[0] + i, planes[1] + i, planes[2] + i, planes[3] + i};
  merge_planes4_scalar(rest, count - i, destination + 4 * i);
}

#undef STRATA_AVX512_TARGET

}  // namespace strata::simd
#endif
