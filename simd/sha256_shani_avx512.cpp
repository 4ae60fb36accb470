// The two-message SHA-256 kernel with σ0 of the message schedule (FIPS 180-4 §4.1.2, (4.6):
// σ0(x) = ROTR7(x) ^ ROTR18(x) ^ SHR3(x)) computed with AVX-512VL rotates and a three-way XOR on
// the vector ports instead of SHA256MSG1. With two messages in flight the SHA unit, not latency,
// is the limit, and taking SHA256MSG1 off it measured 2.6 against 2.4 GB/s for two 16 KiB
// messages on Sapphire Rapids. Its functions target sha, sse4.1, avx512f and avx512vl
// (STRATA_SHA_TARGET); dispatched only when CPUID reports all four.
#if defined(__x86_64__)
#include "simd/sha256_shani.h"

#define STRATA_SHA_TARGET __attribute__((target("sha,sse4.1,avx512f,avx512vl")))
#include "simd/sha256_shani_rounds.h"

namespace strata::simd {
namespace {

struct Sigma0Avx512 {
  // W_{t-16} + σ0(W_{t-15}) for four t: the words one position on from w16 are w16's upper three
  // and w12's first.
  STRATA_SHA_TARGET static __m128i add_sigma0(__m128i w16, __m128i w12) {
    const __m128i w15 = _mm_alignr_epi8(w12, w16, 4);
    constexpr int kXor3 = 0x96;  // truth table of a ^ b ^ c
    const __m128i sigma0 = _mm_ternarylogic_epi32(_mm_ror_epi32(w15, 7), _mm_ror_epi32(w15, 18),
                                                  _mm_srli_epi32(w15, 3), kXor3);
    return _mm_add_epi32(w16, sigma0);
  }
};

}  // namespace

STRATA_SHA_TARGET void compress_sha256_pair_shani_avx512(std::uint32_t* h_a,
                                                         const std::uint8_t* blocks_a,
                                                         std::uint32_t* h_b,
                                                         const std::uint8_t* blocks_b,
                                                         std::size_t count) {
  compress_two<Sigma0Avx512>(h_a, blocks_a, h_b, blocks_b, count);
}

}  // namespace strata::simd
#endif
