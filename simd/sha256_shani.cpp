// SHA-256 kernels on SHA-NI alone (SHA + SSE4.1): one message, and two messages interleaved with
// SHA256MSG1 for the schedule's σ0 (FIPS 180-4 §6.2.2, simd/sha256_shani_rounds.h). Compiled with
// -msha -msse4.1 (simd/CMakeLists.txt) and called only after dispatch has seen both in CPUID.
#if defined(__x86_64__)
#include "simd/sha256_shani.h"

#include "simd/sha256_shani_rounds.h"

namespace strata::simd {

void compress_sha256_shani(std::uint32_t* h, const std::uint8_t* blocks, std::size_t count) {
  compress_one(h, blocks, count);
}

void compress_sha256_pair_shani(std::uint32_t* h_a, const std::uint8_t* blocks_a,
                                std::uint32_t* h_b, const std::uint8_t* blocks_b,
                                std::size_t count) {
  compress_two<Sigma0ShaMsg1>(h_a, blocks_a, h_b, blocks_b, count);
}

}  // namespace strata::simd
#endif
