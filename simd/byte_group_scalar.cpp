// Scalar reference byte-grouping kernels (simd/byte_group_kernel.h): the definition every vector
// kernel is tested against, and the tail loop they finish with.
#include "simd/byte_group_kernel.h"

namespace strata::simd {

void split_planes2_scalar(const std::uint8_t* source, std::size_t count,
                          std::uint8_t* const* planes) {
  std::uint8_t* plane0 = planes[0];
  std::uint8_t* plane1 = planes[1];
  for (std::size_t i = 0; i < count; ++i) {
    plane0[i] = source[2 * i];
    plane1[i] = source[2 * i + 1];
  }
}

void merge_planes2_scalar(const std::uint8_t* const* planes, std::size_t count,
                          std::uint8_t* destination) {
  const std::uint8_t* plane0 = planes[0];
  const std::uint8_t* plane1 = planes[1];
  for (std::size_t i = 0; i < count; ++i) {
    destination[2 * i] = plane0[i];
    destination[2 * i + 1] = plane1[i];
  }
}

void split_planes4_scalar(const std::uint8_t* source, std::size_t count,
                          std::uint8_t* const* planes) {
  std::uint8_t* plane0 = planes[0];
  std::uint8_t* plane1 = planes[1];
  std::uint8_t* plane2 = planes[2];
  std::uint8_t* plane3 = planes[3];
  for (std::size_t i = 0; i < count; ++i) {
    plane0[i] = source[4 * i];
    plane1[i] = source[4 * i + 1];
    plane2[i] = source[4 * i + 2];
    plane3[i] = source[4 * i + 3];
  }
}

void merge_planes4_scalar(const std::uint8_t* const* planes, std::size_t count,
                          std::uint8_t* destination) {
  const std::uint8_t* plane0 = planes[0];
  const std::uint8_t* plane1 = planes[1];
  const std::uint8_t* plane2 = planes[2];
  const std::uint8_t* plane3 = planes[3];
  for (std::size_t i = 0; i < count; ++i) {
    destination[4 * i] = plane0[i];
    destination[4 * i + 1] = plane1[i];
    destination[4 * i + 2] = plane2[i];
    destination[4 * i + 3] = plane3[i];
  }
}

}  // namespace strata::simd
