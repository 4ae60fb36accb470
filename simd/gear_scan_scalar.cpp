// Scalar reference gear scan: the plain FastCDC loops of fastcdc-rs (v2016 one byte per step, v2020
// two bytes per step), shared/specs/chunking.md §1.1. About one cycle per byte on Zen 4, bounded by
// the shift-add dependency chain; every SIMD kernel must reproduce its positions and hashes
// exactly.
#include "simd/gear_scan.h"

namespace strata::simd {

GearScanResult scan_gear_scalar(const GearScanRequest& request) {
  const std::uint8_t* const data = request.data;
  const std::uint64_t* const gear = request.gear;
  std::uint64_t hash = request.hash;
  std::size_t index = request.begin;
  const std::size_t center = request.center < request.limit ? request.center : request.limit;
  const std::uint64_t mask_small = request.mask_small;
  for (; index < center; ++index) {
    hash = (hash << 1U) + gear[data[index]];
    if ((hash & mask_small) == 0) {
      return {index, hash};
    }
  }
  const std::uint64_t mask_large = request.mask_large;
  for (; index < request.limit; ++index) {
    hash = (hash << 1U) + gear[data[index]];
    if ((hash & mask_large) == 0) {
      return {index, hash};
    }
  }
  return {request.limit, hash};
}

GearScanResult scan_gear_pairs_scalar(const GearScanRequest& request) {
  const std::uint8_t* const data = request.data;
  const std::uint64_t* const gear = request.gear;
  const std::uint64_t* const gear_shifted = request.gear_shifted;
  std::uint64_t hash = request.hash;
  std::size_t pair = request.begin / 2;
  const std::size_t center_pairs = request.center / 2;
  const std::size_t limit_pairs = request.limit / 2;
  const std::size_t first_end = center_pairs < limit_pairs ? center_pairs : limit_pairs;
  const std::uint64_t mask_small = request.mask_small;
  const std::uint64_t mask_small_shifted = mask_small << 1U;
  for (; pair < first_end; ++pair) {
    const std::size_t at = pair * 2;
    hash = (hash << 2U) + gear_shifted[data[at]];
    if ((hash & mask_small_shifted) == 0) {
      return {at, hash};
    }
    hash += gear[data[at + 1]];
    if ((hash & mask_small) == 0) {
      return {at + 1, hash};
    }
  }
  const std::uint64_t mask_large = request.mask_large;
  const std::uint64_t mask_large_shifted = mask_large << 1U;
  for (; pair < limit_pairs; ++pair) {
    const std::size_t at = pair * 2;
    hash = (hash << 2U) + gear_shifted[data[at]];
    if ((hash & mask_large_shifted) == 0) {
      return {at, hash};
    }
    hash += gear[data[at + 1]];
    if ((hash & mask_large) == 0) {
      return {at + 1, hash};
    }
  }
  return {request.limit, hash};
}

}  // namespace strata::simd
