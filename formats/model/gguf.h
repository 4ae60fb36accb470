// GGUF layout facts (shared/specs/models.md §3, "GGUF v3"): magic "GGUF", u32 version, u64 tensor
// count, u64 metadata count, typed key/values, tensor infos, zero padding to general.alignment
// (default 32), then tensor data. The parser itself is parse_gguf() in
// include/strata/model_formats.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "strata/model_formats.h"

namespace strata::gguf {

inline constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr std::uint32_t kDefaultAlignment = 32;
inline constexpr std::uint64_t kMaxTensorNameBytes = 64;  // GGML_MAX_NAME
inline constexpr std::uint32_t kMaxDims = 4;              // GGML_MAX_DIMS
inline constexpr std::string_view kAlignmentKey = "general.alignment";

// A ggml tensor type: `block_elements` weights are stored in `block_bytes` bytes.
struct GgmlTypeSpec {
  std::string_view name;
  TensorDtype dtype;
  std::uint32_t block_elements;
  std::uint32_t block_bytes;
};

// The spec of ggml_type `type`, or nullopt for an unknown or retired type id.
std::optional<GgmlTypeSpec> find_ggml_type(std::uint32_t type) noexcept;

}  // namespace strata::gguf
