// The byte-grouping kernel contract (shared/specs/models.md §1 and §0: ZipNN/Xet byte grouping).
// split: `count` elements of `width` bytes at `source` become `width` planes, plane k holding byte
// k of every element in order. merge: the inverse. Kernels read exactly count × width bytes and
// write exactly that many: no over-read, no over-write, so any buffer may be passed. Every kernel
// must produce the scalar reference's bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::simd {

using SplitPlanesFn = void (*)(const std::uint8_t* source, std::size_t count,
                               std::uint8_t* const* planes);
using MergePlanesFn = void (*)(const std::uint8_t* const* planes, std::size_t count,
                               std::uint8_t* destination);

struct ByteGroupKernel {
  const char* name;
  unsigned required_features;  // CpuFeature bits (simd/gear_scan.h)
  SplitPlanesFn split2;
  MergePlanesFn merge2;
  SplitPlanesFn split4;
  MergePlanesFn merge4;
};

// The scalar reference, and the tails every vector kernel finishes with.
void split_planes2_scalar(const std::uint8_t* source, std::size_t count,
                          std::uint8_t* const* planes);
void merge_planes2_scalar(const std::uint8_t* const* planes, std::size_t count,
                          std::uint8_t* destination);
void split_planes4_scalar(const std::uint8_t* source, std::size_t count,
                          std::uint8_t* const* planes);
void merge_planes4_scalar(const std::uint8_t* const* planes, std::size_t count,
                          std::uint8_t* destination);

#if defined(__x86_64__)
void split_planes2_avx2(const std::uint8_t* source, std::size_t count, std::uint8_t* const* planes);
void merge_planes2_avx2(const std::uint8_t* const* planes, std::size_t count,
                        std::uint8_t* destination);
void split_planes4_avx2(const std::uint8_t* source, std::size_t count, std::uint8_t* const* planes);
void merge_planes4_avx2(const std::uint8_t* const* planes, std::size_t count,
                        std::uint8_t* destination);
void split_planes2_avx512(const std::uint8_t* source, std::size_t count,
                          std::uint8_t* const* planes);
void merge_planes2_avx512(const std::uint8_t* const* planes, std::size_t count,
                          std::uint8_t* destination);
void split_planes4_avx512(const std::uint8_t* source, std::size_t count,
                          std::uint8_t* const* planes);
void merge_planes4_avx512(const std::uint8_t* const* planes, std::size_t count,
                          std::uint8_t* destination);
#endif

}  // namespace strata::simd
