// The gear-scan kernel contract shared by every implementation in simd/ (scalar reference, AVX2,
// AVX-512, ...). A kernel finds the first position where a gear hash h = (h << 1) + gear[byte]
// (wrapping 64-bit; FastCDC, shared/specs/chunking.md §1.1) satisfies (h & mask) == 0. Kernels know
// bytes and tables only, never chunks or options. They never read outside [begin, limit).
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::simd {

struct GearScanRequest {
  const std::uint8_t* data = nullptr;
  std::size_t begin = 0;   // first byte hashed
  std::size_t center = 0;  // positions < center test mask_small, positions >= center mask_large
  std::size_t limit = 0;   // one past the last position that may be hashed
  std::uint64_t mask_small = 0;
  std::uint64_t mask_large = 0;
  std::uint64_t hash = 0;                       // hash state before data[begin]
  const std::uint64_t* gear = nullptr;          // 256 entries
  const std::uint64_t* gear_shifted = nullptr;  // 256 entries, gear << 1 (two-byte variant only)
  // Optional: the eight shifted copies of `gear` that shift_gear_tables() builds, made once by
  // the table's owner. Null: a kernel that uses them builds its own per thread and compares the
  // 2 KiB table on every call (1-2 % of an ingest's scan time).
  const std::uint64_t* gear_shifts = nullptr;
};

// Entries in the tables shift_gear_tables() writes.
inline constexpr std::size_t kGearShiftsSize = 256 * 8;

// Writes table s (entries 256s .. 256s + 255) = gear << s (mod 2^64) for s = 0..7: table 0 is
// `gear` itself and table 1 the two-byte variant's gear_shifted.
constexpr void shift_gear_tables(const std::uint64_t* gear, std::uint64_t* out) noexcept {
  for (std::size_t shift = 0; shift < 8; ++shift) {
    for (std::size_t b = 0; b < 256; ++b) out[256 * shift + b] = gear[b] << shift;
  }
}

struct GearScanResult {
  std::size_t position = 0;  // index of the byte whose hash hit the mask, or limit when none did
  std::uint64_t hash = 0;    // hash after that byte (or after the last byte hashed)
};

// One byte per step (fastcdc-rs v2016 semantics): for i in [begin, limit): h = (h<<1)+gear[d[i]],
// hit if (h & (i < center ? mask_small : mask_large)) == 0.
using GearScanFn = GearScanResult (*)(const GearScanRequest& request);

// Two bytes per step (fastcdc-rs v2020 semantics): pairs a = 2k for k in [begin/2, limit/2):
// h = (h<<2)+gear_shifted[d[a]], hit at a if (h & mask<<1) == 0; h += gear[d[a+1]], hit at a+1 if
// (h & mask) == 0; the mask is mask_small while k < center/2. An odd trailing byte is not hashed.
using GearScanPairsFn = GearScanResult (*)(const GearScanRequest& request);

// CPU features a kernel may require (bit flags).
enum CpuFeature : unsigned {
  kCpuAvx2 = 1U << 0U,
  kCpuBmi2 = 1U << 1U,
  kCpuAvx512F = 1U << 2U,
  kCpuAvx512Bw = 1U << 3U,
  kCpuAvx512Vbmi = 1U << 4U,
  kCpuSha = 1U << 5U,
  kCpuSse41 = 1U << 6U,
  kCpuAvx512Vl = 1U << 7U,
};

struct GearKernel {
  const char* name;
  unsigned required_features;
  GearScanFn scan;
  GearScanPairsFn scan_pairs;
};

// The scalar reference: the definition every other kernel is tested against.
GearScanResult scan_gear_scalar(const GearScanRequest& request);
GearScanResult scan_gear_pairs_scalar(const GearScanRequest& request);

// Strip kernels (simd/gear_scan_strips.h); the two-byte forms rely on gear_shifted[b] == gear[b]
// << 1, which every caller's tables satisfy (a seed XORed into both keeps it).
GearScanResult scan_gear_interleaved(const GearScanRequest& request);
GearScanResult scan_gear_pairs_interleaved(const GearScanRequest& request);
GearScanResult scan_gear_avx2(const GearScanRequest& request);
GearScanResult scan_gear_pairs_avx2(const GearScanRequest& request);
GearScanResult scan_gear_avx512(const GearScanRequest& request);
GearScanResult scan_gear_pairs_avx512(const GearScanRequest& request);

// Consecutive-position kernels (simd/gear_scan_avx512_seq.cpp): exact from hash_in, no strips; the
// table lookup by gathers or by byte planes.
GearScanResult scan_gear_avx512_seq_gather(const GearScanRequest& request);
GearScanResult scan_gear_pairs_avx512_seq_gather(const GearScanRequest& request);
GearScanResult scan_gear_avx512_seq_planes(const GearScanRequest& request);
GearScanResult scan_gear_pairs_avx512_seq_planes(const GearScanRequest& request);

}  // namespace strata::simd
