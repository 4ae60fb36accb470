// safetensors layout facts (shared/specs/models.md §3): an 8-byte little-endian header length N,
// N bytes of UTF-8 JSON starting with '{' (space padded), then the byte buffer that the tensors'
// data_offsets index. The parser itself is parse_safetensors() in include/strata/model_formats.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "strata/model_formats.h"

namespace strata::safetensors {

inline constexpr std::uint64_t kLengthFieldBytes = 8;
// The reference implementation refuses headers larger than this (safetensors/src/tensor.rs).
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr std::string_view kMetadataKey = "__metadata__";

struct DtypeSpec {
  TensorDtype dtype;
  std::uint32_t size;  // bytes per element
};

// The element type named by a safetensors "dtype" string, or nullopt when strata does not know it.
std::optional<DtypeSpec> find_dtype(std::string_view name) noexcept;

}  // namespace strata::safetensors
