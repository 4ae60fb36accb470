// SHA-256 block compression with the x86 SHA extensions (SHA-NI), one message or two at once, and
// the process-wide choice among those kernels. A kernel runs FIPS 180-4 §6.2.2 over whole 64-byte
// blocks on a caller-held state H0..H7; padding and the final digest are the caller's (core/base).
// Two messages are interleaved because SHA256RNDS2 is latency-bound: one message leaves the SHA
// unit idle between dependent rounds, a second fills those cycles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace strata::simd {

// `h` is the intermediate hash value H0..H7 of FIPS 180-4 §6.2 in host order; `blocks` points at
// `count` whole 64-byte message blocks (any alignment).
using Sha256CompressFn = void (*)(std::uint32_t* h, const std::uint8_t* blocks, std::size_t count);
// Two independent messages, `count` blocks of each, compressed interleaved.
using Sha256CompressPairFn = void (*)(std::uint32_t* h_a, const std::uint8_t* blocks_a,
                                      std::uint32_t* h_b, const std::uint8_t* blocks_b,
                                      std::size_t count);

struct Sha256Kernel {
  const char* name;
  unsigned required_features;  // CpuFeature bits (simd/gear_scan.h)
  Sha256CompressFn compress;
  Sha256CompressPairFn compress_pair;
};

// The kernels (simd/sha256_shani.cpp, simd/sha256_shani_avx512.cpp); x86-64 builds only.
void compress_sha256_shani(std::uint32_t* h, const std::uint8_t* blocks, std::size_t count);
void compress_sha256_pair_shani(std::uint32_t* h_a, const std::uint8_t* blocks_a,
                                std::uint32_t* h_b, const std::uint8_t* blocks_b,
                                std::size_t count);
void compress_sha256_pair_shani_avx512(std::uint32_t* h_a, const std::uint8_t* blocks_a,
                                       std::uint32_t* h_b, const std::uint8_t* blocks_b,
                                       std::size_t count);

// Every SHA-256 kernel compiled into this build, in order of preference (empty off x86-64).
std::span<const Sha256Kernel> built_sha256_kernels() noexcept;
bool sha256_kernel_usable(const Sha256Kernel& kernel) noexcept;

// The kernel in use: the first usable one, or nullptr where none is usable or the fallback was
// forced; with nullptr the caller hashes each message alone with its own code (OpenSSL).
const Sha256Kernel* active_sha256_kernel() noexcept;

// Makes `kernel` active (the caller has checked sha256_kernel_usable), or forces the fallback
// with nullptr. Tests run every usable kernel and the fallback through this.
void set_active_sha256_kernel(const Sha256Kernel* kernel) noexcept;

}  // namespace strata::simd
