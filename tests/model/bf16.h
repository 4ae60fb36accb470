// BF16 conversions for the model-delta tests (shared/specs/models.md: bfloat16 is the top 16 bits
// of an IEEE float32): to_bf16 rounds to nearest even, as torch does; from_bf16 widens exactly.
#pragma once

#include <cstdint>
#include <cstring>

namespace strata::test {

inline std::uint16_t to_bf16(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  bits += 0x7FFFU + ((bits >> 16U) & 1U);
  return static_cast<std::uint16_t>(bits >> 16U);
}

inline float from_bf16(std::uint16_t half) {
  const std::uint32_t bits = std::uint32_t{half} << 16U;
  float value = 0;
  std::memcpy(&value, &bits, 4);
  return value;
}

}  // namespace strata::test
