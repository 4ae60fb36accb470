// Model-weight file layouts (safetensors, GGUF): recognising a file from its first bytes and
// parsing its header into a tensor layout (dtypes, shapes, byte ranges, metadata). Byte layouts
// only, on strata's vocabulary (buffer, result): formats/model/ implements all of it, and
// include/strata/models.h adds the tensor-aware chunker on top. Facts: shared/specs/models.md §3.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

enum class ModelFormat : std::uint8_t { kUnknown, kSafetensors, kGguf };

// "unknown" / "safetensors" / "gguf".
std::string_view model_format_name(ModelFormat format) noexcept;

// Recognises a model file from its first bytes (16 are enough): GGUF by magic and version,
// safetensors by a plausible header length followed by '{'. Never fails; kUnknown when unsure.
ModelFormat detect_model_format(ByteSpan prefix) noexcept;

// Element types of both formats, merged. Quantized GGUF block types are one kind: they are never
// byte-grouped (shared/specs/models.md §3, "Transforms must be block-aware").
enum class TensorDtype : std::uint8_t {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kU16,
  kI16,
  kF16,
  kBF16,
  kU32,
  kI32,
  kF32,
  kU64,
  kI64,
  kF64,
  kQuantized,  // a GGUF block type (Q4_0, Q8_0, Q4_K, IQ*, TQ*, MXFP4, ...)
};

// Width in bytes the byte-grouping codec splits elements of `dtype` into planes: 2 for F16/BF16,
// 4 for F32, 0 for everything that stays plain (integers, 8-bit floats, quantized blocks, F64).
std::uint32_t byte_group_width(TensorDtype dtype) noexcept;

struct TensorInfo {
  std::string name;
  TensorDtype dtype = TensorDtype::kU8;
  std::string dtype_name;            // as the file spells it: "BF16" (safetensors), "Q4_K" (GGUF)
  std::vector<std::uint64_t> shape;  // safetensors: row-major; GGUF: ggml order, innermost first
  std::uint64_t begin = 0;           // absolute byte range in the file, end exclusive
  std::uint64_t end = 0;
};

// GGUF metadata value types (shared/specs/models.md §3, "GGUF v3").
enum class GgufType : std::uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::kU8;
  std::uint64_t unsigned_value = 0;       // kU8, kU16, kU32, kU64, kBool
  std::int64_t signed_value = 0;          // kI8, kI16, kI32, kI64
  double float_value = 0;                 // kF32, kF64
  std::string string_value;               // kString
  GgufType element_type = GgufType::kU8;  // kArray: type of the items
  std::vector<GgufValue> items;           // kArray
};

struct MetadataEntry {
  std::string key;
  GgufValue value;  // safetensors "__metadata__" entries are kString values
};

struct ModelLayout {
  ModelFormat format = ModelFormat::kUnknown;
  std::uint32_t version = 0;  // GGUF version; 0 for safetensors
  std::uint64_t file_size = 0;
  std::uint64_t data_begin = 0;     // first byte of the tensor data region (header + padding end)
  std::uint32_t alignment = 0;      // GGUF general.alignment (default 32); 8 for safetensors
  std::vector<TensorInfo> tensors;  // GGUF: header order; safetensors: by name (JSON keys)
  std::vector<MetadataEntry> metadata;
};

// Hard caps every parse applies, whatever the file says.
struct ModelParseLimits {
  std::uint64_t max_header_bytes = 100'000'000;  // safetensors' own cap (specs/models.md §3)
  std::uint64_t max_tensors = 1U << 20U;
  std::uint64_t max_metadata_entries = 1U << 20U;
  std::uint32_t max_nesting = 8;  // JSON depth / nested GGUF arrays
  // Items of all GGUF metadata arrays together (a vocabulary of 262k tokens uses ~1M). Each parsed
  // item costs ~100 bytes, so this bounds the memory a tiny-item array can make the parser use.
  std::uint64_t max_array_items = 1U << 21U;
};

// Parses the header of a model file of `file_size` bytes from `prefix`, its first bytes (the whole
// header must be inside the prefix). Errors: kCorruptInput (bytes break the format; the message
// names what and the offset or tensor), kLimitExceeded (a cap), kUnsupported (valid but unknown
// dtype or version), kInvalidArgument (the prefix ends before the header does, but the file does
// not: call again with a longer prefix).
Result<ModelLayout> parse_safetensors(ByteSpan prefix, std::uint64_t file_size,
                                      const ModelParseLimits& limits = {});
Result<ModelLayout> parse_gguf(ByteSpan prefix, std::uint64_t file_size,
                               const ModelParseLimits& limits = {});
// detect_model_format() then the matching parser; kUnsupported for an unknown format.
Result<ModelLayout> parse_model_layout(ByteSpan prefix, std::uint64_t file_size,
                                       const ModelParseLimits& limits = {});

}  // namespace strata
