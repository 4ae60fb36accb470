// safetensors parser: files are written here byte by byte per shared/specs/models.md §3 (u64 LE
// header length, space-padded JSON, buffer), so every expected field comes from the spec, not from
// the parser. Hostile headers each end in a named error code and message.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "formats/model/safetensors.h"
#include "strata/models.h"

namespace strata {
namespace {

// The reference writer's layout: header padded with spaces to a multiple of 8.
std::vector<std::uint8_t> make_safetensors(std::string header, std::size_t buffer_bytes,
                                           bool pad = true) {
  if (pad) {
    while (header.size() % 8 != 0) header.push_back(' ');
  }
  std::vector<std::uint8_t> file;
  for (unsigned i = 0; i < 8; ++i) {
    file.push_back(static_cast<std::uint8_t>(std::uint64_t{header.size()} >> (8U * i)));
  }
  for (const char c : header) file.push_back(static_cast<std::uint8_t>(c));
  for (std::size_t i = 0; i < buffer_bytes; ++i) file.push_back(static_cast<std::uint8_t>(i * 7));
  return file;
}

Result<ModelLayout> parse_whole(const std::vector<std::uint8_t>& file) {
  return parse_safetensors(ByteSpan(file), file.size());
}

TEST(Safetensors, ParsesEveryField) {
  const std::string header = R"({"__metadata__":{"format":"pt","note":"derived"},)"
                             R"("b.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                             R"("a.bias":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},)"
                             R"("scalar":{"dtype":"I8","shape":[],"data_offsets":[32,33]},)"
                             R"("empty":{"dtype":"F16","shape":[0,5],"data_offsets":[33,33]}})";
  const auto file = make_safetensors(header, 33);
  const std::uint64_t data_begin = 8 + ((header.size() + 7) / 8) * 8;
  EXPECT_EQ(detect_model_format(ByteSpan(file)), ModelFormat::kSafetensors);
  auto layout = parse_whole(file);
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  EXPECT_EQ(layout->format, ModelFormat::kSafetensors);
  EXPECT_EQ(layout->file_size, file.size());
  EXPECT_EQ(layout->data_begin, data_begin);
  EXPECT_EQ(layout->data_begin % 8, 0U);
  ASSERT_EQ(layout->tensors.size(), 4U);
  // JSON objects are unordered; the parser lists tensors by name.
  const TensorInfo& bias = layout->tensors[0];
  EXPECT_EQ(bias.name, "a.bias");
  EXPECT_EQ(bias.dtype, TensorDtype::kBF16);
  EXPECT_EQ(bias.dtype_name, "BF16");
  EXPECT_EQ(bias.shape, (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(bias.begin, data_begin + 24);
  EXPECT_EQ(bias.end, data_begin + 32);
  const TensorInfo& weight = layout->tensors[1];
  EXPECT_EQ(weight.name, "b.weight");
  EXPECT_EQ(weight.dtype, TensorDtype::kF32);
  EXPECT_EQ(weight.shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(weight.begin, data_begin);
  EXPECT_EQ(weight.end, data_begin + 24);
  EXPECT_EQ(layout->tensors[2].name, "empty");
  EXPECT_EQ(layout->tensors[2].begin, layout->tensors[2].end);
  EXPECT_EQ(layout->tensors[3].name, "scalar");
  EXPECT_TRUE(layout->tensors[3].shape.empty());
  EXPECT_EQ(layout->tensors[3].end - layout->tensors[3].begin, 1U);
  ASSERT_EQ(layout->metadata.size(), 2U);
  EXPECT_EQ(layout->metadata[0].key, "format");
  EXPECT_EQ(layout->metadata[0].value.string_value, "pt");
  EXPECT_EQ(layout->metadata[1].value.string_value, "derived");
  EXPECT_EQ(byte_group_width(weight.dtype), 4U);
  EXPECT_EQ(byte_group_width(bias.dtype), 2U);
  EXPECT_EQ(byte_group_width(TensorDtype::kI8), 0U);
}

TEST(Safetensors, EmptyModelAndUnpaddedHeader) {
  auto empty = parse_whole(make_safetensors("{}", 0, /*pad=*/false));
  ASSERT_TRUE(empty.ok()) << empty.error().to_string();
  EXPECT_TRUE(empty->tensors.empty());
  EXPECT_EQ(empty->data_begin, 10U);
}

TEST(Safetensors, ShortPrefixAsksForMore) {
  const auto file = make_safetensors(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4);
  auto partial = parse_safetensors(ByteSpan(file).first(20), file.size());
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(partial.error().message.find("needs a prefix of"), std::string::npos);
  auto layout = parse_safetensors(ByteSpan(file).first(file.size() - 4), file.size());
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  EXPECT_EQ(layout->tensors[0].end, file.size());
}

TEST(Safetensors, DetectRejectsOtherBytes) {
  const std::vector<std::uint8_t> tar_like(512, 0);
  EXPECT_EQ(detect_model_format(ByteSpan(tar_like)), ModelFormat::kUnknown);
  const std::vector<std::uint8_t> tiny = {1, 2, 3};
  EXPECT_EQ(detect_model_format(ByteSpan(tiny)), ModelFormat::kUnknown);
  auto unknown = parse_model_layout(ByteSpan(tar_like), tar_like.size());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kUnsupported);
}

struct HostileCase {
  const char* label;
  std::vector<std::uint8_t> file;
  ErrorCode code;
  const char* fragment;
};

std::vector<std::uint8_t> with_length(std::uint64_t length, const std::string& rest) {
  std::vector<std::uint8_t> file;
  for (unsigned i = 0; i < 8; ++i) file.push_back(static_cast<std::uint8_t>(length >> (8U * i)));
  for (const char c : rest) file.push_back(static_cast<std::uint8_t>(c));
  return file;
}

// Appends only: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
std::string tensor(const std::string& name, const std::string& dtype, const std::string& shape,
                   const std::string& offsets) {
  std::string entry = "\"";
  entry += name;
  entry += R"(":{"dtype":")";
  entry += dtype;
  entry += R"(","shape":)";
  entry += shape;
  entry += R"(,"data_offsets":)";
  entry += offsets;
  entry += "}";
  return entry;
}

std::string object(const std::vector<std::string>& entries) {
  std::string text = "{";
  for (const std::string& entry : entries) {
    if (text.size() > 1) text += ",";
    text += entry;
  }
  text += "}";
  return text;
}

TEST(Safetensors, HostileHeadersGetNamedErrors) {
  std::string deep = "{\"a\":";
  for (int i = 0; i < 20; ++i) deep += "[";
  for (int i = 0; i < 20; ++i) deep += "]";
  deep += "}";
  const std::vector<HostileCase> cases = {
      {"shorter than length field", {1, 0, 0}, ErrorCode::kCorruptInput, "shorter than the 8-byte"},
      {"header over cap", with_length(100'000'001, "{}"), ErrorCode::kLimitExceeded,
       "exceeds the cap"},
      {"header past file end", with_length(4096, "{}"), ErrorCode::kCorruptInput,
       "runs past the end"},
      {"no brace", make_safetensors("[1,2]", 0), ErrorCode::kCorruptInput, "start with '{'"},
      {"broken JSON", make_safetensors("{\"a\":", 0), ErrorCode::kCorruptInput, "invalid JSON"},
      {"invalid UTF-8 key", make_safetensors("{\"\xC3\x28\":{}}", 0), ErrorCode::kCorruptInput,
       "invalid JSON"},
      {"duplicate key",
       make_safetensors(
           object({tensor("t", "U8", "[1]", "[0,1]"), tensor("t", "U8", "[1]", "[1,2]")}), 2),
       ErrorCode::kCorruptInput, "duplicate key \"t\""},
      {"deep nesting", make_safetensors(deep, 0), ErrorCode::kLimitExceeded, "nested deeper"},
      {"unknown dtype", make_safetensors(object({tensor("t", "F4", "[2]", "[0,1]")}), 1),
       ErrorCode::kUnsupported, "unknown dtype \"F4\""},
      {"shape overflow",
       make_safetensors(object({tensor("t", "F32", "[4294967296,4294967296]", "[0,4]")}), 4),
       ErrorCode::kCorruptInput, "overflows"},
      {"size mismatch", make_safetensors(object({tensor("t", "F32", "[3]", "[0,8]")}), 8),
       ErrorCode::kCorruptInput, "dtype and shape need 12"},
      {"end before begin", make_safetensors(object({tensor("t", "U8", "[0]", "[4,0]")}), 4),
       ErrorCode::kCorruptInput, "< begin"},
      {"overlap",
       make_safetensors(
           object({tensor("a", "U8", "[4]", "[0,4]"), tensor("b", "U8", "[4]", "[2,6]")}), 6),
       ErrorCode::kCorruptInput, "overlaps"},
      {"hole",
       make_safetensors(
           object({tensor("a", "U8", "[2]", "[0,2]"), tensor("b", "U8", "[2]", "[4,6]")}), 6),
       ErrorCode::kCorruptInput, "hole of 2 bytes"},
      {"bytes after tensors", make_safetensors(object({tensor("a", "U8", "[2]", "[0,2]")}), 5),
       ErrorCode::kCorruptInput, "tensors end at byte"},
      {"negative dimension", make_safetensors(object({tensor("a", "U8", "[-2]", "[0,2]")}), 2),
       ErrorCode::kCorruptInput, "non-negative integer"},
      {"fractional offset", make_safetensors(object({tensor("a", "U8", "[2]", "[0,2.0]")}), 2),
       ErrorCode::kCorruptInput, "non-negative integer"},
      {"offsets not a pair", make_safetensors(object({tensor("a", "U8", "[2]", "[0]")}), 2),
       ErrorCode::kCorruptInput, "[begin, end] pair"},
      {"metadata not string", make_safetensors(R"({"__metadata__":{"k":1}})", 0),
       ErrorCode::kCorruptInput, "is not a string"},
      {"extra field",
       make_safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1),
       ErrorCode::kCorruptInput, "unknown field \"x\""},
  };
  for (const HostileCase& hostile : cases) {
    auto layout = parse_whole(hostile.file);
    ASSERT_FALSE(layout.ok()) << hostile.label;
    EXPECT_EQ(layout.error().code, hostile.code)
        << hostile.label << ": " << layout.error().to_string();
    EXPECT_NE(layout.error().message.find(hostile.fragment), std::string::npos)
        << hostile.label << ": " << layout.error().message;
  }
}

// A header of tens of thousands of tensors (small adapters, per-expert MoE weights) parses whole
// and in order of its offsets; the duplicate check still looks inside every entry.
TEST(Safetensors, HeaderOfManyTensorsParsesWhole) {
  constexpr int kTensors = 30000;
  std::vector<std::string> entries;
  entries.reserve(kTensors);
  for (int i = 0; i < kTensors; ++i) {
    std::string name = "layer.";
    name += std::to_string(i);
    std::string offsets = "[";
    offsets += std::to_string(4 * i);
    offsets += ",";
    offsets += std::to_string(4 * i + 4);
    offsets += "]";
    entries.push_back(tensor(name, "BF16", "[2]", offsets));
  }
  auto layout = parse_whole(make_safetensors(object(entries), 4 * kTensors));
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  ASSERT_EQ(layout->tensors.size(), static_cast<std::size_t>(kTensors));
  std::uint64_t lowest = layout->tensors.front().begin;
  for (const TensorInfo& info : layout->tensors) lowest = std::min(lowest, info.begin);
  std::vector<bool> seen(kTensors, false);
  for (const TensorInfo& info : layout->tensors) {
    const std::size_t index = std::stoul(info.name.substr(std::string("layer.").size()));
    ASSERT_LT(index, seen.size()) << info.name;
    seen[index] = true;
    EXPECT_EQ(info.shape, std::vector<std::uint64_t>{2}) << info.name;
    EXPECT_EQ(info.begin - lowest, 4 * index) << info.name;
    EXPECT_EQ(info.end - info.begin, 4U) << info.name;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), kTensors);

  entries.back() = R"("dup":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  auto refused = parse_whole(make_safetensors(object(entries), 4 * kTensors));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("duplicate key \"dtype\""), std::string::npos)
      << refused.error().message;
}

TEST(Safetensors, DtypeTableMatchesSpec) {
  EXPECT_EQ(safetensors::find_dtype("BF16")->size, 2U);
  EXPECT_EQ(safetensors::find_dtype("F8_E4M3")->size, 1U);
  EXPECT_EQ(safetensors::find_dtype("I64")->size, 8U);
  EXPECT_FALSE(safetensors::find_dtype("bf16").has_value());
}

}  // namespace
}  // namespace strata
