// Recognising a model file from its first bytes and dispatching to its header parser
// (shared/specs/models.md §3). GGUF announces itself with a magic and a version; safetensors has
// no magic, so it is recognised by a header length that fits the format's cap followed by '{'.
#include <cstring>

#include "formats/model/gguf.h"
#include "formats/model/safetensors.h"
#include "strata/model_formats.h"

namespace strata {

std::string_view model_format_name(ModelFormat format) noexcept {
  switch (format) {
    case ModelFormat::kSafetensors: return "safetensors";
    case ModelFormat::kGguf: return "gguf";
    case ModelFormat::kUnknown: break;
  }
  return "unknown";
}

ModelFormat detect_model_format(ByteSpan prefix) noexcept {
  if (prefix.size() >= 8 && std::memcmp(prefix.data(), "GGUF", 4) == 0) {
    const std::uint32_t version = prefix[4] | (std::uint32_t{prefix[5]} << 8U) |
                                  (std::uint32_t{prefix[6]} << 16U) |
                                  (std::uint32_t{prefix[7]} << 24U);
    return version == 2 || version == 3 ? ModelFormat::kGguf : ModelFormat::kUnknown;
  }
  if (prefix.size() >= 10) {
    std::uint64_t length = 0;
    for (std::size_t i = 0; i < 8; ++i) length |= std::uint64_t{prefix[i]} << (8U * i);
    // The smallest header is "{}"; the first key follows '{' (optionally after spaces).
    if (length >= 2 && length <= safetensors::kMaxHeaderBytes && prefix[8] == '{' &&
        (prefix[9] == '"' || prefix[9] == '}' || prefix[9] == ' ' || prefix[9] == '\n')) {
      return ModelFormat::kSafetensors;
    }
  }
  return ModelFormat::kUnknown;
}

Result<ModelLayout> parse_model_layout(ByteSpan prefix, std::uint64_t file_size,
                                       const ModelParseLimits& limits) {
  switch (detect_model_format(prefix)) {
    case ModelFormat::kSafetensors: return parse_safetensors(prefix, file_size, limits);
    case ModelFormat::kGguf: return parse_gguf(prefix, file_size, limits);
    case ModelFormat::kUnknown: break;
  }
  return make_error(ErrorCode::kUnsupported, "model file: neither safetensors nor GGUF");
}

std::uint32_t byte_group_width(TensorDtype dtype) noexcept {
  switch (dtype) {
    case TensorDtype::kF16:
    case TensorDtype::kBF16: return 2;
    case TensorDtype::kF32: return 4;
    default: return 0;
  }
}

}  // namespace strata
