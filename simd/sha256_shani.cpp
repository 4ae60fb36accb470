// SHA-256 kernels on SHA-NI alone (SHA + SSE4.1): one message, and two messages interleaved with
// SHA256MSG1 for the schedule's σ0 (FIPS 180-4 §6.2.2, simd/sha256_shani_rounds.h). Its functions
// target sha and sse4.1 (STRATA_SHA_TARGET); called only after dispatch has seen both in CPUID.
#if defined(__x86_64__)
#include "simd/sha256_shani.h"

#define STRATA_SHA_TARGET __attribute__((target("sha,sse4.1")))

#include "simd/sha256_shani_rounds.h"

namespace strata::simd {

STRATA_SHA_TARGET void compress_sha256_shani(std::uint32_t* h, const std::uint8_t* blocks,
                                             std::size_t count) {
  compress_one(h, blocks, count);
}

STRATA_SHA_TARGET void compress_sha256_pair_shani(std::uint32_t* h_a, const std::uint8_t* blocks_a,
                                                  std::uint32_t* h_b, const std::uint8_t* blocks_b,
                                                  std::size_t count) {
  compress_two<Sigma0ShaMsg1>(h_a, blocks_a, h_b, blocks_b, count);
}

}  // namespace strata::simd
#endif
