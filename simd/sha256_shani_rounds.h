// The SHA-256 compression function of FIPS 180-4 §6.2.2 in SHA-NI intrinsics, shared by the two
// kernel files that include it. Each of those defines STRATA_SHA_TARGET (the target attribute of
// its instruction set) before including it, and every function here carries it; everything has
// internal linkage as well, so every file keeps its own copy and the linker can never hand code
// built for wider hardware to a caller that only checked for SHA-NI. The schedule's σ0 step is a
// policy (Sigma0), because SHA256MSG1 competes with SHA256RNDS2 for the SHA unit and a kernel may
// compute σ0 on the vector ports instead.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#ifndef STRATA_SHA_TARGET
#error "define STRATA_SHA_TARGET (the kernel's target attribute) before including this header"
#endif

namespace strata::simd {
namespace {  // NOLINT(cert-dcl59-cpp,google-build-namespaces): one copy per -m flag set, see above

// FIPS 180-4 §4.2.2: the sixty-four round constants K0..K63.
alignas(16) constexpr std::uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// The working variables a..h (§6.2.2 step 2) as SHA256RNDS2 holds them: {a,b,e,f} and {c,d,g,h},
// the first-named variable in the top lane.
struct ShaState {
  __m128i abef;
  __m128i cdgh;
};

// H0..H7 in host order to the two SHA256RNDS2 registers.
STRATA_SHA_TARGET inline ShaState load_sha_state(const std::uint32_t* h) {
  const __m128i dcba =
      _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0xB1);
  const __m128i hgfe =
      _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4)), 0x1B);
  return ShaState{_mm_alignr_epi8(dcba, hgfe, 8), _mm_blend_epi16(hgfe, dcba, 0xF0)};
}

STRATA_SHA_TARGET inline void store_sha_state(const ShaState& state, std::uint32_t* h) {
  const __m128i feba = _mm_shuffle_epi32(state.abef, 0x1B);
  const __m128i dchg = _mm_shuffle_epi32(state.cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4), _mm_alignr_epi8(dchg, feba, 8));
}

// §5.2.1 and §6.2.2 step 1 for t < 16: W0..W15 are the block's big-endian 32-bit words, four per
// register.
STRATA_SHA_TARGET inline void load_message_words(const std::uint8_t* block, __m128i* words) {
  const __m128i big_endian = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  for (int i = 0; i < 4; ++i) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * i));
    words[i] = _mm_shuffle_epi8(raw, big_endian);
  }
}

// σ0 by SHA256MSG1: returns W_{t-16} + σ0(W_{t-15}) for the four t of `w16`'s successors.
struct Sigma0ShaMsg1 {
  STRATA_SHA_TARGET static __m128i add_sigma0(__m128i w16, __m128i w12) {
    return _mm_sha256msg1_epu32(w16, w12);
  }
};

// §6.2.2 step 1 for t >= 16, four words at once: W_t = σ1(W_{t-2}) + W_{t-7} + σ0(W_{t-15}) +
// W_{t-16}; w16..w4 hold W_{t-16..t-13}, ..., W_{t-4..t-1}. SHA256MSG2 adds σ1, including the
// σ1 of the words it produces itself.
template <typename Sigma0>
STRATA_SHA_TARGET inline __m128i next_message_words(__m128i w16, __m128i w12, __m128i w8,
                                                    __m128i w4) {
  const __m128i partial = _mm_add_epi32(Sigma0::add_sigma0(w16, w12), _mm_alignr_epi8(w4, w8, 4));
  return _mm_sha256msg2_epu32(partial, w4);
}

// §6.2.2 step 3 for rounds 4g..4g+3: SHA256RNDS2 runs two rounds on W+K from its third operand's
// low half.
STRATA_SHA_TARGET inline void run_four_rounds(ShaState& state, __m128i words, int group) {
  const __m128i constants =
      _mm_load_si128(reinterpret_cast<const __m128i*>(kRoundConstants + 4 * group));
  const __m128i sum = _mm_add_epi32(words, constants);
  state.cdgh = _mm_sha256rnds2_epu32(state.cdgh, state.abef, sum);
  state.abef = _mm_sha256rnds2_epu32(state.abef, state.cdgh, _mm_shuffle_epi32(sum, 0x0E));
}

// §6.2.2 step 4: H(i) = working variables + H(i-1).
STRATA_SHA_TARGET inline void add_previous_hash(ShaState& state, const ShaState& previous) {
  state.abef = _mm_add_epi32(state.abef, previous.abef);
  state.cdgh = _mm_add_epi32(state.cdgh, previous.cdgh);
}

// One message: each block's rounds depend on the last, so this runs at SHA256RNDS2's latency.
STRATA_SHA_TARGET inline void compress_one(std::uint32_t* h, const std::uint8_t* blocks,
                                           std::size_t count) {
  ShaState state = load_sha_state(h);
  for (; count > 0; --count, blocks += 64) {
    const ShaState previous = state;
    __m128i w[4];
    load_message_words(blocks, w);
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {
      if (g >= 4) {
        w[g % 4] = next_message_words<Sigma0ShaMsg1>(w[g % 4], w[(g + 1) % 4], w[(g + 2) % 4],
                                                     w[(g + 3) % 4]);
      }
      run_four_rounds(state, w[g % 4], g);
    }
    add_previous_hash(state, previous);
  }
  store_sha_state(state, h);
}

// Two messages: the rounds of A and B alternate in groups of four, so the core always has an
// independent SHA256RNDS2 to issue while the other message's result is in flight.
template <typename Sigma0>
STRATA_SHA_TARGET inline void compress_two(std::uint32_t* h_a, const std::uint8_t* blocks_a,
                                           std::uint32_t* h_b, const std::uint8_t* blocks_b,
                                           std::size_t count) {
  ShaState a = load_sha_state(h_a);
  ShaState b = load_sha_state(h_b);
  for (; count > 0; --count, blocks_a += 64, blocks_b += 64) {
    const ShaState previous_a = a;
    const ShaState previous_b = b;
    __m128i wa[4];
    __m128i wb[4];
    load_message_words(blocks_a, wa);
    load_message_words(blocks_b, wb);
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {
      if (g >= 4) {
        wa[g % 4] = next_message_words<Sigma0>(wa[g % 4], wa[(g + 1) % 4], wa[(g + 2) % 4],
                                               wa[(g + 3) % 4]);
        wb[g % 4] = next_message_words<Sigma0>(wb[g % 4], wb[(g + 1) % 4], wb[(g + 2) % 4],
                                               wb[(g + 3) % 4]);
      }
      run_four_rounds(a, wa[g % 4], g);
      run_four_rounds(b, wb[g % 4], g);
    }
    add_previous_hash(a, previous_a);
    add_previous_hash(b, previous_b);
  }
  store_sha_state(a, h_a);
  store_sha_state(b, h_b);
}

}  // namespace
}  // namespace strata::simd
