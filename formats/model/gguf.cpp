// GGUF header parser, versions 2 and 3 (shared/specs/models.md §3; ggml docs/gguf.md). Layout,
// all little-endian: "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count pairs of
// (string key, u32 type, value) where a string is u64 length + bytes and an array is u32 item type,
// u64 count, items; then tensor_count infos of (string name, u32 n_dims, u64 dims[n_dims], u32
// ggml_type, u64 offset); zero padding to ALIGNMENT (general.alignment, default 32); tensor data,
// each tensor at data_begin + offset with offset a multiple of ALIGNMENT. Version 1 (u32 counts)
// is refused as unsupported. Every count and length is checked against the bytes that remain
// before it is used, so a hostile count never drives an allocation.
#include "formats/model/gguf.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace strata {
namespace gguf {

std::optional<GgmlTypeSpec> find_ggml_type(std::uint32_t type) noexcept {
  struct Entry {
    std::uint32_t id;
    GgmlTypeSpec spec;
  };
  // Block sizes and bytes per block from ggml's type traits (QK_K = 256).
  static constexpr std::array<Entry, 32> kTable = {{
      {0, {"F32", TensorDtype::kF32, 1, 4}},
      {1, {"F16", TensorDtype::kF16, 1, 2}},
      {2, {"Q4_0", TensorDtype::kQuantized, 32, 18}},
      {3, {"Q4_1", TensorDtype::kQuantized, 32, 20}},
      {6, {"Q5_0", TensorDtype::kQuantized, 32, 22}},
      {7, {"Q5_1", TensorDtype::kQuantized, 32, 24}},
      {8, {"Q8_0", TensorDtype::kQuantized, 32, 34}},
      {9, {"Q8_1", TensorDtype::kQuantized, 32, 36}},
      {10, {"Q2_K", TensorDtype::kQuantized, 256, 84}},
      {11, {"Q3_K", TensorDtype::kQuantized, 256, 110}},
      {12, {"Q4_K", TensorDtype::kQuantized, 256, 144}},
      {13, {"Q5_K", TensorDtype::kQuantized, 256, 176}},
      {14, {"Q6_K", TensorDtype::kQuantized, 256, 210}},
      {15, {"Q8_K", TensorDtype::kQuantized, 256, 292}},
      {16, {"IQ2_XXS", TensorDtype::kQuantized, 256, 66}},
      {17, {"IQ2_XS", TensorDtype::kQuantized, 256, 74}},
      {18, {"IQ3_XXS", TensorDtype::kQuantized, 256, 98}},
      {19, {"IQ1_S", TensorDtype::kQuantized, 256, 50}},
      {20, {"IQ4_NL", TensorDtype::kQuantized, 32, 18}},
      {21, {"IQ3_S", TensorDtype::kQuantized, 256, 110}},
      {22, {"IQ2_S", TensorDtype::kQuantized, 256, 82}},
      {23, {"IQ4_XS", TensorDtype::kQuantized, 256, 136}},
      {24, {"I8", TensorDtype::kI8, 1, 1}},
      {25, {"I16", TensorDtype::kI16, 1, 2}},
      {26, {"I32", TensorDtype::kI32, 1, 4}},
      {27, {"I64", TensorDtype::kI64, 1, 8}},
      {28, {"F64", TensorDtype::kF64, 1, 8}},
      {29, {"IQ1_M", TensorDtype::kQuantized, 256, 56}},
      {30, {"BF16", TensorDtype::kBF16, 1, 2}},
      {34, {"TQ1_0", TensorDtype::kQuantized, 256, 54}},
      {35, {"TQ2_0", TensorDtype::kQuantized, 256, 66}},
      {39, {"MXFP4", TensorDtype::kQuantized, 32, 17}},
  }};
  for (const Entry& entry : kTable) {
    if (entry.id == type) return entry.spec;
  }
  return std::nullopt;
}

}  // namespace gguf

namespace {

// Bounds-checked little-endian reader over the header prefix. Running off the prefix is a
// truncation when the prefix is the whole file and a request for more prefix otherwise.
class HeaderReader {
 public:
  HeaderReader(ByteSpan bytes, std::uint64_t file_size) : bytes_(bytes), file_size_(file_size) {}

  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
  [[nodiscard]] std::uint64_t remaining() const noexcept { return bytes_.size() - offset_; }

  Error out_of_bytes(std::string_view what, std::uint64_t needed) const {
    if (bytes_.size() < file_size_) {
      return make_error(ErrorCode::kInvalidArgument,
                        "gguf: " + std::string(what) + " at offset " + std::to_string(offset_) +
                            " needs more than the " + std::to_string(bytes_.size()) +
                            "-byte prefix");
    }
    return make_error(ErrorCode::kCorruptInput,
                      "gguf: truncated " + std::string(what) + " at offset " +
                          std::to_string(offset_) + " (needs " + std::to_string(needed) +
                          " bytes, " + std::to_string(remaining()) + " remain)");
  }

  template <typename T>
  Result<T> read(std::string_view what) {
    if (remaining() < sizeof(T)) return out_of_bytes(what, sizeof(T));
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      value |= std::uint64_t{bytes_[offset_ + i]} << (8U * i);
    }
    offset_ += sizeof(T);
    return static_cast<T>(value);
  }

  Result<std::string> read_string(std::string_view what, std::uint64_t max_length) {
    auto length = read<std::uint64_t>(what);
    if (!length.ok()) return std::move(length).error();
    if (*length > max_length) {
      return make_error(ErrorCode::kLimitExceeded,
                        "gguf: " + std::string(what) + " at offset " + std::to_string(offset_ - 8) +
                            " is " + std::to_string(*length) + " bytes, over the cap of " +
                            std::to_string(max_length));
    }
    if (*length > remaining()) return out_of_bytes(what, *length);
    std::string text(reinterpret_cast<const char*>(bytes_.data() + offset_),
                     static_cast<std::size_t>(*length));
    offset_ += *length;
    return text;
  }

 private:
  ByteSpan bytes_;
  std::uint64_t file_size_;
  std::uint64_t offset_ = 0;
};

// Smallest encoded size of one value of `type`, used to bound counts by the bytes that remain.
std::uint64_t min_encoded_size(GgufType type) noexcept {
  switch (type) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool: return 1;
    case GgufType::kU16:
    case GgufType::kI16: return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32: return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
    case GgufType::kString: return 8;
    case GgufType::kArray: return 12;
  }
  return 1;
}

// A name for a message: hostile keys may be megabytes long.
std::string shown_name(std::string_view name) {
  constexpr std::size_t kShown = 64;
  std::string text = "\"";
  text += name.substr(0, kShown);
  text += name.size() > kShown ? "\"..." : "\"";
  return text;
}

// Keys and tensor names must be UTF-8 (docs/gguf.md); string values are not checked, since real
// tokenizer vocabularies hold byte-level tokens that are not.
bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<std::uint8_t>(text[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    }
    if (lead >= 0xC2 && lead <= 0xDF) {
      extra = 1;
      code = lead & 0x1FU;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      extra = 2;
      code = lead & 0x0FU;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      extra = 3;
      code = lead & 0x07U;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<std::uint8_t>(text[i + k]);
      if ((next & 0xC0U) != 0x80U) return false;
      code = (code << 6U) | (next & 0x3FU);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000) || code > 0x10FFFF ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

bool is_known_type(std::uint32_t type) noexcept {
  return type <= static_cast<std::uint32_t>(GgufType::kF64);
}

class GgufParser {
 public:
  GgufParser(ByteSpan prefix, std::uint64_t file_size, const ModelParseLimits& limits)
      : reader_(prefix, file_size), file_size_(file_size), limits_(limits) {}

  Result<ModelLayout> parse();

 private:
  Result<GgufValue> read_value(GgufType type, std::uint32_t depth);
  Result<TensorInfo> read_tensor_info(std::uint64_t index);
  Result<void> check_header_cap() const;
  Result<void> place_tensors(ModelLayout& layout);

  HeaderReader reader_;
  std::uint64_t file_size_;
  const ModelParseLimits& limits_;
  std::vector<std::uint64_t> offsets_;  // relative offsets, parallel to layout.tensors
  std::uint64_t array_items_ = 0;       // items of every metadata array so far
};

// Errors name the value, not the key (parse() adds the key): an array of a million items must not
// build a million messages.
Result<GgufValue> GgufParser::read_value(GgufType type, std::uint32_t depth) {
  GgufValue value;
  value.type = type;
  constexpr std::string_view what = "metadata value";
  switch (type) {
    case GgufType::kU8: {
      auto v = reader_.read<std::uint8_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.unsigned_value = *v;
      break;
    }
    case GgufType::kI8: {
      auto v = reader_.read<std::uint8_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.signed_value = static_cast<std::int8_t>(*v);
      break;
    }
    case GgufType::kU16: {
      auto v = reader_.read<std::uint16_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.unsigned_value = *v;
      break;
    }
    case GgufType::kI16: {
      auto v = reader_.read<std::uint16_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.signed_value = static_cast<std::int16_t>(*v);
      break;
    }
    case GgufType::kU32: {
      auto v = reader_.read<std::uint32_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.unsigned_value = *v;
      break;
    }
    case GgufType::kI32: {
      auto v = reader_.read<std::uint32_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.signed_value = static_cast<std::int32_t>(*v);
      break;
    }
    case GgufType::kU64: {
      auto v = reader_.read<std::uint64_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.unsigned_value = *v;
      break;
    }
    case GgufType::kI64: {
      auto v = reader_.read<std::uint64_t>(what);
      if (!v.ok()) return std::move(v).error();
      value.signed_value = static_cast<std::int64_t>(*v);
      break;
    }
    case GgufType::kF32: {
      auto v = reader_.read<std::uint32_t>(what);
      if (!v.ok()) return std::move(v).error();
      float number = 0;
      static_assert(sizeof(number) == 4);
      std::memcpy(&number, &*v, 4);
      value.float_value = number;
      break;
    }
    case GgufType::kF64: {
      auto v = reader_.read<std::uint64_t>(what);
      if (!v.ok()) return std::move(v).error();
      std::memcpy(&value.float_value, &*v, 8);
      break;
    }
    case GgufType::kBool: {
      const std::uint64_t at = reader_.offset();
      auto v = reader_.read<std::uint8_t>(what);
      if (!v.ok()) return std::move(v).error();
      if (*v > 1) {
        return make_error(ErrorCode::kCorruptInput, "gguf: bool value at offset " +
                                                        std::to_string(at) + " is " +
                                                        std::to_string(*v) + ", not 0 or 1");
      }
      value.unsigned_value = *v;
      break;
    }
    case GgufType::kString: {
      auto text = reader_.read_string(what, limits_.max_header_bytes);
      if (!text.ok()) return std::move(text).error();
      value.string_value = std::move(text).value();
      break;
    }
    case GgufType::kArray: {
      if (depth >= limits_.max_nesting) {
        return make_error(
            ErrorCode::kLimitExceeded,
            "gguf: metadata value nests arrays deeper than " + std::to_string(limits_.max_nesting));
      }
      const std::uint64_t at = reader_.offset();
      auto item_type = reader_.read<std::uint32_t>("array item type");
      if (!item_type.ok()) return std::move(item_type).error();
      if (!is_known_type(*item_type)) {
        return make_error(ErrorCode::kCorruptInput, "gguf: array at offset " + std::to_string(at) +
                                                        " has unknown array item type " +
                                                        std::to_string(*item_type));
      }
      value.element_type = static_cast<GgufType>(*item_type);
      auto count = reader_.read<std::uint64_t>("array length");
      if (!count.ok()) return std::move(count).error();
      // Each item takes at least min_encoded_size bytes, so a larger count cannot fit.
      if (*count > reader_.remaining() / min_encoded_size(value.element_type)) {
        return reader_.out_of_bytes("array of " + std::to_string(*count) + " items", *count);
      }
      if (*count > limits_.max_array_items - array_items_) {
        return make_error(ErrorCode::kLimitExceeded,
                          "gguf: array brings the metadata array items past the cap of " +
                              std::to_string(limits_.max_array_items));
      }
      array_items_ += *count;
      value.items.reserve(static_cast<std::size_t>(*count));
      for (std::uint64_t i = 0; i < *count; ++i) {
        auto item = read_value(value.element_type, depth + 1);
        if (!item.ok()) return std::move(item).error();
        value.items.push_back(std::move(item).value());
      }
      break;
    }
  }
  return value;
}

Result<TensorInfo> GgufParser::read_tensor_info(std::uint64_t index) {
  const std::string what = "tensor info " + std::to_string(index);
  TensorInfo tensor;
  auto name = reader_.read_string("tensor name", limits_.max_header_bytes);
  if (!name.ok()) return std::move(name).error();
  tensor.name = std::move(name).value();
  if (tensor.name.size() > gguf::kMaxTensorNameBytes) {
    return make_error(ErrorCode::kCorruptInput, "gguf: " + what + " name is " +
                                                    std::to_string(tensor.name.size()) +
                                                    " bytes, over the 64-byte limit");
  }
  if (!is_valid_utf8(tensor.name)) {
    return make_error(ErrorCode::kCorruptInput, "gguf: " + what + " name is not valid UTF-8");
  }
  const std::string named = "tensor \"" + tensor.name + "\"";
  auto dims = reader_.read<std::uint32_t>(named + " n_dims");
  if (!dims.ok()) return std::move(dims).error();
  if (*dims > gguf::kMaxDims) {
    return make_error(ErrorCode::kCorruptInput, "gguf: " + named + " has " + std::to_string(*dims) +
                                                    " dimensions (max " +
                                                    std::to_string(gguf::kMaxDims) + ")");
  }
  for (std::uint32_t d = 0; d < *dims; ++d) {
    auto size = reader_.read<std::uint64_t>(named + " dimension");
    if (!size.ok()) return std::move(size).error();
    tensor.shape.push_back(*size);
  }
  auto type = reader_.read<std::uint32_t>(named + " type");
  if (!type.ok()) return std::move(type).error();
  const auto spec = gguf::find_ggml_type(*type);
  if (!spec) {
    return make_error(ErrorCode::kUnsupported,
                      "gguf: " + named + " has unknown ggml type " + std::to_string(*type));
  }
  tensor.dtype = spec->dtype;
  tensor.dtype_name = std::string(spec->name);
  auto offset = reader_.read<std::uint64_t>(named + " offset");
  if (!offset.ok()) return std::move(offset).error();
  offsets_.push_back(*offset);
  // Byte size: elements / block_elements × block_bytes, rows must hold whole blocks.
  std::uint64_t elements = 1;
  for (const std::uint64_t size : tensor.shape) {
    if (__builtin_mul_overflow(elements, size, &elements)) {
      return make_error(ErrorCode::kCorruptInput,
                        "gguf: " + named + " element count overflows 64 bits");
    }
  }
  if (!tensor.shape.empty() && tensor.shape[0] % spec->block_elements != 0) {
    return make_error(ErrorCode::kCorruptInput,
                      "gguf: " + named + " row of " + std::to_string(tensor.shape[0]) +
                          " elements is not a whole number of " + tensor.dtype_name + " blocks (" +
                          std::to_string(spec->block_elements) + ")");
  }
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements / spec->block_elements, std::uint64_t{spec->block_bytes},
                             &bytes)) {
    return make_error(ErrorCode::kCorruptInput, "gguf: " + named + " byte size overflows 64 bits");
  }
  tensor.end = bytes;  // a length until place_tensors() makes the range absolute
  return tensor;
}

Result<void> GgufParser::check_header_cap() const {
  if (reader_.offset() <= limits_.max_header_bytes) return {};
  return make_error(
      ErrorCode::kLimitExceeded,
      "gguf: header exceeds the cap of " + std::to_string(limits_.max_header_bytes) + " bytes");
}

Result<void> GgufParser::place_tensors(ModelLayout& layout) {
  std::vector<std::size_t> order(layout.tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    TensorInfo& tensor = layout.tensors[i];
    const std::uint64_t length = tensor.end;
    const std::string named = "gguf: tensor \"" + tensor.name + "\"";
    if (offsets_[i] % layout.alignment != 0) {
      return make_error(ErrorCode::kCorruptInput, named + " offset " + std::to_string(offsets_[i]) +
                                                      " is not a multiple of the alignment " +
                                                      std::to_string(layout.alignment));
    }
    if (__builtin_add_overflow(layout.data_begin, offsets_[i], &tensor.begin) ||
        __builtin_add_overflow(tensor.begin, length, &tensor.end) ||
        tensor.end > layout.file_size) {
      return make_error(ErrorCode::kCorruptInput,
                        named + " data [offset " + std::to_string(offsets_[i]) + ", +" +
                            std::to_string(length) + ") runs past the end of the " +
                            std::to_string(layout.file_size) + "-byte file");
    }
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return layout.tensors[a].begin < layout.tensors[b].begin;
  });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& previous = layout.tensors[order[k - 1]];
    const TensorInfo& current = layout.tensors[order[k]];
    if (current.begin < previous.end) {
      return make_error(
          ErrorCode::kCorruptInput,
          "gguf: tensor \"" + current.name + "\" overlaps tensor \"" + previous.name + "\"");
    }
  }
  return {};
}

Result<ModelLayout> GgufParser::parse() {
  ModelLayout layout;
  layout.format = ModelFormat::kGguf;
  layout.file_size = file_size_;
  auto magic = reader_.read<std::uint32_t>("magic");
  if (!magic.ok()) return std::move(magic).error();
  if (*magic != gguf::kMagic) {
    return make_error(ErrorCode::kCorruptInput, "gguf: bad magic at offset 0 (not \"GGUF\")");
  }
  auto version = reader_.read<std::uint32_t>("version");
  if (!version.ok()) return std::move(version).error();
  if (*version != 2 && *version != 3) {
    return make_error(ErrorCode::kUnsupported,
                      "gguf: version " + std::to_string(*version) + " (only 2 and 3 are read)");
  }
  layout.version = *version;
  auto tensor_count = reader_.read<std::uint64_t>("tensor count");
  if (!tensor_count.ok()) return std::move(tensor_count).error();
  auto kv_count = reader_.read<std::uint64_t>("metadata count");
  if (!kv_count.ok()) return std::move(kv_count).error();
  if (*tensor_count > limits_.max_tensors) {
    return make_error(ErrorCode::kLimitExceeded,
                      "gguf: tensor count " + std::to_string(*tensor_count) +
                          " exceeds the cap of " + std::to_string(limits_.max_tensors));
  }
  if (*kv_count > limits_.max_metadata_entries) {
    return make_error(ErrorCode::kLimitExceeded,
                      "gguf: metadata count " + std::to_string(*kv_count) + " exceeds the cap of " +
                          std::to_string(limits_.max_metadata_entries));
  }
  std::set<std::string> keys;
  layout.alignment = gguf::kDefaultAlignment;
  for (std::uint64_t i = 0; i < *kv_count; ++i) {
    STRATA_TRY(check_header_cap());
    auto key = reader_.read_string("metadata key", limits_.max_header_bytes);
    if (!key.ok()) return std::move(key).error();
    if (!is_valid_utf8(*key)) {
      return make_error(ErrorCode::kCorruptInput,
                        "gguf: metadata key " + std::to_string(i) + " is not valid UTF-8");
    }
    if (!keys.insert(*key).second) {
      return make_error(ErrorCode::kCorruptInput,
                        "gguf: duplicate metadata key " + shown_name(*key));
    }
    const std::uint64_t type_at = reader_.offset();
    auto type = reader_.read<std::uint32_t>("metadata type");
    if (!type.ok()) return std::move(type).error();
    if (!is_known_type(*type)) {
      return make_error(ErrorCode::kCorruptInput, "gguf: metadata " + shown_name(*key) +
                                                      " at offset " + std::to_string(type_at) +
                                                      " has unknown value type " +
                                                      std::to_string(*type));
    }
    auto value = read_value(static_cast<GgufType>(*type), 0);
    if (!value.ok()) {
      Error error = std::move(value).error();
      error.message = "gguf: metadata " + shown_name(*key) + ": " + error.message.substr(6);
      return error;
    }
    if (*key == gguf::kAlignmentKey) {
      if (value->type != GgufType::kU32 || value->unsigned_value == 0 ||
          value->unsigned_value % 8 != 0) {
        return make_error(ErrorCode::kCorruptInput,
                          "gguf: general.alignment must be a u32 multiple of 8");
      }
      layout.alignment = static_cast<std::uint32_t>(value->unsigned_value);
    }
    layout.metadata.push_back(MetadataEntry{std::move(key).value(), std::move(value).value()});
  }
  std::set<std::string> names;
  for (std::uint64_t i = 0; i < *tensor_count; ++i) {
    STRATA_TRY(check_header_cap());
    auto tensor = read_tensor_info(i);
    if (!tensor.ok()) return std::move(tensor).error();
    if (!names.insert(tensor->name).second) {
      return make_error(ErrorCode::kCorruptInput,
                        "gguf: duplicate tensor name \"" + tensor->name + "\"");
    }
    layout.tensors.push_back(std::move(tensor).value());
  }
  STRATA_TRY(check_header_cap());
  // Tensor data starts at the next multiple of the alignment; a file without tensors may end
  // before that padding.
  const std::uint64_t header_end = reader_.offset();
  const std::uint64_t padding =
      (layout.alignment - header_end % layout.alignment) % layout.alignment;
  layout.data_begin = header_end + padding;
  if (layout.data_begin > layout.file_size) {
    if (!layout.tensors.empty()) {
      return make_error(ErrorCode::kCorruptInput,
                        "gguf: tensor data would begin at byte " +
                            std::to_string(layout.data_begin) + ", past the end of the " +
                            std::to_string(layout.file_size) + "-byte file");
    }
    layout.data_begin = layout.file_size;
  }
  STRATA_TRY(place_tensors(layout));
  return layout;
}

}  // namespace

Result<ModelLayout> parse_gguf(ByteSpan prefix, std::uint64_t file_size,
                               const ModelParseLimits& limits) {
  if (prefix.size() > file_size) {
    return make_error(ErrorCode::kInvalidArgument, "gguf: prefix is longer than the file");
  }
  GgufParser parser(prefix, file_size, limits);
  return parser.parse();
}

}  // namespace strata
