// safetensors header parser (shared/specs/models.md §3): u64 LE header length N (capped at
// 100,000,000 as the reference does), N bytes of UTF-8 JSON that must start with '{', then the byte
// buffer. Each entry is {"dtype", "shape", "data_offsets": [begin, end)} relative to the buffer;
// "__metadata__" maps strings to strings. As the reference requires, every tensor's byte length
// equals product(shape) × element size, and the tensors tile the buffer exactly: sorted by begin
// they start at 0, leave no hole, do not overlap, and the last ends at the end of the file.
// Duplicate keys (which JSON parsers silently merge) are refused, since two readers could then
// disagree about the file.
#include "formats/model/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace strata {
namespace safetensors {

std::optional<DtypeSpec> find_dtype(std::string_view name) noexcept {
  struct Entry {
    std::string_view name;
    DtypeSpec spec;
  };
  static constexpr std::array<Entry, 15> kTable = {{
      {"BOOL", {TensorDtype::kBool, 1}},
      {"U8", {TensorDtype::kU8, 1}},
      {"I8", {TensorDtype::kI8, 1}},
      {"F8_E4M3", {TensorDtype::kF8E4M3, 1}},
      {"F8_E5M2", {TensorDtype::kF8E5M2, 1}},
      {"U16", {TensorDtype::kU16, 2}},
      {"I16", {TensorDtype::kI16, 2}},
      {"F16", {TensorDtype::kF16, 2}},
      {"BF16", {TensorDtype::kBF16, 2}},
      {"U32", {TensorDtype::kU32, 4}},
      {"I32", {TensorDtype::kI32, 4}},
      {"F32", {TensorDtype::kF32, 4}},
      {"U64", {TensorDtype::kU64, 8}},
      {"I64", {TensorDtype::kI64, 8}},
      {"F64", {TensorDtype::kF64, 8}},
  }};
  for (const Entry& entry : kTable) {
    if (entry.name == name) return entry.spec;
  }
  return std::nullopt;
}

}  // namespace safetensors

namespace {

using Json = nlohmann::json;

// A name for a message: hostile keys may be megabytes long.
std::string shown_name(std::string_view name) {
  constexpr std::size_t kShown = 64;
  std::string text = "\"";
  text += name.substr(0, kShown);
  text += name.size() > kShown ? "\"..." : "\"";
  return text;
}

// A first, DOM-free pass over the header (nlohmann's SAX interface): bounds nesting and refuses
// duplicate keys, holding one key set per open object. A DOM parse with a callback would do the
// same but rescans the parent object at every object end, which made a header of 30,000 tensors
// take 14 s; this pass and the plain parse after it are both linear.
class HeaderCheck final : public nlohmann::json_sax<Json> {
 public:
  explicit HeaderCheck(std::uint32_t max_nesting) : max_nesting_(max_nesting) {}

  bool null() override { return true; }
  bool boolean(bool /*value*/) override { return true; }
  bool number_integer(number_integer_t /*value*/) override { return true; }
  bool number_unsigned(number_unsigned_t /*value*/) override { return true; }
  bool number_float(number_float_t /*value*/, const string_t& /*text*/) override { return true; }
  bool string(string_t& /*value*/) override { return true; }
  bool binary(binary_t& /*value*/) override { return true; }
  bool start_object(std::size_t /*elements*/) override {
    if (!enter()) return false;
    open_objects_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (open_objects_.back().insert(key).second) return true;
    return reject(ErrorCode::kCorruptInput, "safetensors header: duplicate key " + shown_name(key));
  }
  bool end_object() override {
    open_objects_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t /*elements*/) override { return enter(); }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) override {
    return reject(ErrorCode::kCorruptInput,
                  std::string("safetensors header: invalid JSON: ") + error.what());
  }

  [[nodiscard]] const Error& error() const { return error_; }

 private:
  bool enter() {
    if (++depth_ <= max_nesting_) return true;
    return reject(ErrorCode::kLimitExceeded, "safetensors header: JSON nested deeper than " +
                                                 std::to_string(max_nesting_) + " levels");
  }
  bool reject(ErrorCode code, std::string message) {
    error_ = make_error(code, std::move(message));
    return false;
  }

  std::uint32_t max_nesting_;
  std::uint32_t depth_ = 0;
  std::vector<std::set<std::string>> open_objects_;
  Error error_ = make_error(ErrorCode::kCorruptInput, "safetensors header: invalid JSON");
};

Result<Json> parse_header_json(std::string_view text, std::uint32_t max_nesting) {
  try {
    HeaderCheck check(max_nesting);
    if (!Json::sax_parse(text.begin(), text.end(), &check, nlohmann::detail::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false)) {
      return check.error();
    }
    return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::exception& error) {
    return make_error(ErrorCode::kCorruptInput,
                      std::string("safetensors header: invalid JSON: ") + error.what());
  } catch (const std::exception& error) {
    return make_error(
        ErrorCode::kLimitExceeded,
        std::string("safetensors header: cannot hold the parsed header: ") + error.what());
  }
}

Error tensor_error(const std::string& name, const std::string& problem) {
  return make_error(ErrorCode::kCorruptInput,
                    "safetensors tensor " + shown_name(name) + ": " + problem);
}

Result<std::uint64_t> read_unsigned(const Json& value, const std::string& name, const char* what) {
  if (!value.is_number_unsigned()) {
    return tensor_error(name, std::string(what) + " is not a non-negative integer");
  }
  return value.get<std::uint64_t>();
}

Result<TensorInfo> parse_tensor_entry(const std::string& name, const Json& entry,
                                      std::uint64_t buffer_begin) {
  if (!entry.is_object()) return tensor_error(name, "entry is not an object");
  for (const auto& [key, unused] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return tensor_error(name, "unknown field " + shown_name(key));
    }
  }
  const auto dtype_field = entry.find("dtype");
  const auto shape_field = entry.find("shape");
  const auto offsets_field = entry.find("data_offsets");
  if (dtype_field == entry.end() || !dtype_field->is_string()) {
    return tensor_error(name, "missing or non-string \"dtype\"");
  }
  if (shape_field == entry.end() || !shape_field->is_array()) {
    return tensor_error(name, "missing or non-array \"shape\"");
  }
  if (offsets_field == entry.end() || !offsets_field->is_array() || offsets_field->size() != 2) {
    return tensor_error(name, "\"data_offsets\" is not a [begin, end] pair");
  }
  TensorInfo tensor;
  tensor.name = name;
  tensor.dtype_name = dtype_field->get<std::string>();
  const auto spec = safetensors::find_dtype(tensor.dtype_name);
  if (!spec) {
    return make_error(ErrorCode::kUnsupported, "safetensors tensor " + shown_name(name) +
                                                   ": unknown dtype " +
                                                   shown_name(tensor.dtype_name));
  }
  tensor.dtype = spec->dtype;
  std::uint64_t expected_bytes = spec->size;
  for (const Json& dimension : *shape_field) {
    auto size = read_unsigned(dimension, name, "a shape dimension");
    if (!size.ok()) return std::move(size).error();
    tensor.shape.push_back(*size);
    if (__builtin_mul_overflow(expected_bytes, *size, &expected_bytes)) {
      return tensor_error(name, "shape product overflows 64 bits");
    }
  }
  auto begin = read_unsigned((*offsets_field)[0], name, "data_offsets begin");
  if (!begin.ok()) return std::move(begin).error();
  auto end = read_unsigned((*offsets_field)[1], name, "data_offsets end");
  if (!end.ok()) return std::move(end).error();
  if (*end < *begin) {
    return tensor_error(
        name, "data_offsets end " + std::to_string(*end) + " < begin " + std::to_string(*begin));
  }
  if (*end - *begin != expected_bytes) {
    return tensor_error(name, "data_offsets span " + std::to_string(*end - *begin) +
                                  " bytes but dtype and shape need " +
                                  std::to_string(expected_bytes));
  }
  if (__builtin_add_overflow(buffer_begin, *begin, &tensor.begin) ||
      __builtin_add_overflow(buffer_begin, *end, &tensor.end)) {
    return tensor_error(name, "data_offsets overflow 64 bits");
  }
  return tensor;
}

Result<void> check_tiling(const ModelLayout& layout) {
  std::vector<const TensorInfo*> sorted;
  sorted.reserve(layout.tensors.size());
  for (const TensorInfo& tensor : layout.tensors) sorted.push_back(&tensor);
  std::sort(sorted.begin(), sorted.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = layout.data_begin;
  for (const TensorInfo* tensor : sorted) {
    if (tensor->begin < covered) {
      return tensor_error(tensor->name,
                          "data overlaps the previous tensor (begins at buffer offset " +
                              std::to_string(tensor->begin - layout.data_begin) + ")");
    }
    if (tensor->begin > covered) {
      return tensor_error(tensor->name, "hole of " + std::to_string(tensor->begin - covered) +
                                            " bytes before the tensor's data");
    }
    covered = tensor->end;
  }
  if (covered != layout.file_size) {
    return make_error(ErrorCode::kCorruptInput, "safetensors: tensors end at byte " +
                                                    std::to_string(covered) + " but the file has " +
                                                    std::to_string(layout.file_size) + " bytes");
  }
  return {};
}

}  // namespace

Result<ModelLayout> parse_safetensors(ByteSpan prefix, std::uint64_t file_size,
                                      const ModelParseLimits& limits) {
  if (prefix.size() > file_size) {
    return make_error(ErrorCode::kInvalidArgument, "safetensors: prefix is longer than the file");
  }
  if (file_size < safetensors::kLengthFieldBytes) {
    return make_error(ErrorCode::kCorruptInput,
                      "safetensors: file of " + std::to_string(file_size) +
                          " bytes is shorter than the 8-byte header length");
  }
  if (prefix.size() < safetensors::kLengthFieldBytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      "safetensors: prefix must hold at least the 8-byte header length");
  }
  std::uint64_t header_length = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    header_length |= std::uint64_t{prefix[i]} << (8U * i);
  }
  const std::uint64_t cap = std::min(limits.max_header_bytes, safetensors::kMaxHeaderBytes);
  if (header_length > cap) {
    return make_error(ErrorCode::kLimitExceeded, "safetensors: header length " +
                                                     std::to_string(header_length) +
                                                     " exceeds the cap of " + std::to_string(cap));
  }
  const std::uint64_t data_begin = safetensors::kLengthFieldBytes + header_length;
  if (data_begin > file_size) {
    return make_error(ErrorCode::kCorruptInput,
                      "safetensors: header length " + std::to_string(header_length) +
                          " runs past the end of the " + std::to_string(file_size) + "-byte file");
  }
  if (data_begin > prefix.size()) {
    return make_error(ErrorCode::kInvalidArgument, "safetensors: header needs a prefix of " +
                                                       std::to_string(data_begin) + " bytes, got " +
                                                       std::to_string(prefix.size()));
  }
  const std::string_view text(reinterpret_cast<const char*>(prefix.data()) + 8,
                              static_cast<std::size_t>(header_length));
  if (text.empty() || text.front() != '{') {
    return make_error(ErrorCode::kCorruptInput,
                      "safetensors header: does not start with '{' (at byte 8)");
  }
  auto parsed = parse_header_json(text, limits.max_nesting);
  if (!parsed.ok()) return std::move(parsed).error();
  const Json& header = *parsed;
  if (!header.is_object()) {
    return make_error(ErrorCode::kCorruptInput, "safetensors header: not a JSON object");
  }

  ModelLayout layout;
  layout.format = ModelFormat::kSafetensors;
  layout.file_size = file_size;
  layout.data_begin = data_begin;
  layout.alignment = 8;
  for (const auto& [key, value] : header.items()) {
    if (key == safetensors::kMetadataKey) {
      if (!value.is_object()) {
        return make_error(ErrorCode::kCorruptInput,
                          "safetensors header: \"__metadata__\" is not an object");
      }
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          return make_error(
              ErrorCode::kCorruptInput,
              "safetensors header: __metadata__ " + shown_name(meta_key) + " is not a string");
        }
        MetadataEntry entry;
        entry.key = meta_key;
        entry.value.type = GgufType::kString;
        entry.value.string_value = meta_value.get<std::string>();
        layout.metadata.push_back(std::move(entry));
      }
      continue;
    }
    if (layout.tensors.size() >= limits.max_tensors) {
      return make_error(
          ErrorCode::kLimitExceeded,
          "safetensors header: more than " + std::to_string(limits.max_tensors) + " tensors");
    }
    auto tensor = parse_tensor_entry(key, value, data_begin);
    if (!tensor.ok()) return std::move(tensor).error();
    layout.tensors.push_back(std::move(tensor).value());
  }
  STRATA_TRY(check_tiling(layout));
  return layout;
}

}  // namespace strata
