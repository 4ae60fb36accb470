// GGUF parser: files are assembled here field by field per shared/specs/models.md §3 (ggml
// docs/gguf.md), with every metadata value type, so expected fields come from the spec. Hostile
// files each end in a named error code and message.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "formats/model/gguf.h"
#include "strata/models.h"

namespace strata {
namespace {

// Little-endian GGUF writer for tests.
class GgufWriter {
 public:
  GgufWriter& u8(std::uint8_t v) { return raw(v, 1); }
  GgufWriter& u16(std::uint16_t v) { return raw(v, 2); }
  GgufWriter& u32(std::uint32_t v) { return raw(v, 4); }
  GgufWriter& u64(std::uint64_t v) { return raw(v, 8); }
  GgufWriter& f32(float v) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &v, 4);
    return u32(bits);
  }
  GgufWriter& f64(double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, 8);
    return u64(bits);
  }
  GgufWriter& str(const std::string& text) {
    u64(text.size());
    for (const char c : text) bytes.push_back(static_cast<std::uint8_t>(c));
    return *this;
  }
  GgufWriter& header(std::uint32_t version, std::uint64_t tensors, std::uint64_t kvs) {
    return str_magic().u32(version).u64(tensors).u64(kvs);
  }
  GgufWriter& key(const std::string& name, GgufType type) {
    return str(name).u32(static_cast<std::uint32_t>(type));
  }
  GgufWriter& tensor(const std::string& name, std::vector<std::uint64_t> dims, std::uint32_t type,
                     std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (const std::uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  GgufWriter& pad_to(std::size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
    return *this;
  }
  GgufWriter& fill(std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) bytes.push_back(static_cast<std::uint8_t>(i * 13));
    return *this;
  }
  std::vector<std::uint8_t> bytes;

 private:
  GgufWriter& str_magic() {
    for (const char c : std::string("GGUF")) bytes.push_back(static_cast<std::uint8_t>(c));
    return *this;
  }
  GgufWriter& raw(std::uint64_t v, unsigned width) {
    for (unsigned i = 0; i < width; ++i) bytes.push_back(static_cast<std::uint8_t>(v >> (8U * i)));
    return *this;
  }
};

Result<ModelLayout> parse_whole(const std::vector<std::uint8_t>& file) {
  return parse_gguf(ByteSpan(file), file.size());
}

// A v3 file with every metadata value type, alignment 64 and three tensors.
std::vector<std::uint8_t> full_file(std::uint32_t version, std::size_t* data_begin) {
  GgufWriter w;
  w.header(version, 3, 17);
  w.key("general.architecture", GgufType::kString).str("llama");
  w.key("general.alignment", GgufType::kU32).u32(64);
  w.key("t.u8", GgufType::kU8).u8(200);
  w.key("t.i8", GgufType::kI8).u8(0xFE);
  w.key("t.u16", GgufType::kU16).u16(65000);
  w.key("t.i16", GgufType::kI16).u16(0x8000);
  w.key("t.u32", GgufType::kU32).u32(4000000000U);
  w.key("t.i32", GgufType::kI32).u32(0xFFFFFFFFU);
  w.key("t.f32", GgufType::kF32).f32(1.5F);
  w.key("t.bool", GgufType::kBool).u8(1);
  w.key("t.u64", GgufType::kU64).u64(1ULL << 40U);
  w.key("t.i64", GgufType::kI64).u64(static_cast<std::uint64_t>(-5LL));
  w.key("t.f64", GgufType::kF64).f64(-2.25);
  w.key("t.ints", GgufType::kArray).u32(static_cast<std::uint32_t>(GgufType::kI32)).u64(3);
  w.u32(1).u32(static_cast<std::uint32_t>(-2)).u32(3);
  w.key("t.tokens", GgufType::kArray).u32(static_cast<std::uint32_t>(GgufType::kString)).u64(2);
  w.str("<s>").str("hello");
  w.key("t.nested", GgufType::kArray).u32(static_cast<std::uint32_t>(GgufType::kArray)).u64(2);
  w.u32(static_cast<std::uint32_t>(GgufType::kU8)).u64(2).u8(7).u8(8);
  w.u32(static_cast<std::uint32_t>(GgufType::kU8)).u64(0);
  w.key("t.empty", GgufType::kString).str("");
  w.tensor("token_embd.weight", {8, 2}, 0, 0);   // F32: 64 bytes
  w.tensor("blk.0.attn_q.weight", {64}, 8, 64);  // Q8_0: 2 blocks x 34 = 68 bytes
  w.tensor("output.weight", {4, 3}, 30, 192);    // BF16: 24 bytes
  w.pad_to(64);
  *data_begin = w.bytes.size();
  w.fill(216);
  return w.bytes;
}

TEST(Gguf, ParsesEveryField) {
  std::size_t data_begin = 0;
  const auto file = full_file(3, &data_begin);
  EXPECT_EQ(detect_model_format(ByteSpan(file)), ModelFormat::kGguf);
  auto layout = parse_whole(file);
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  EXPECT_EQ(layout->format, ModelFormat::kGguf);
  EXPECT_EQ(layout->version, 3U);
  EXPECT_EQ(layout->alignment, 64U);
  EXPECT_EQ(layout->data_begin, data_begin);
  EXPECT_EQ(layout->file_size, file.size());
  ASSERT_EQ(layout->metadata.size(), 17U);
  const auto& m = layout->metadata;
  EXPECT_EQ(m[0].key, "general.architecture");
  EXPECT_EQ(m[0].value.type, GgufType::kString);
  EXPECT_EQ(m[0].value.string_value, "llama");
  EXPECT_EQ(m[1].value.unsigned_value, 64U);
  EXPECT_EQ(m[2].value.type, GgufType::kU8);
  EXPECT_EQ(m[2].value.unsigned_value, 200U);
  EXPECT_EQ(m[3].value.signed_value, -2);
  EXPECT_EQ(m[4].value.unsigned_value, 65000U);
  EXPECT_EQ(m[5].value.signed_value, -32768);
  EXPECT_EQ(m[6].value.unsigned_value, 4000000000U);
  EXPECT_EQ(m[7].value.signed_value, -1);
  EXPECT_EQ(m[8].value.float_value, 1.5);
  EXPECT_EQ(m[9].value.type, GgufType::kBool);
  EXPECT_EQ(m[9].value.unsigned_value, 1U);
  EXPECT_EQ(m[10].value.unsigned_value, 1ULL << 40U);
  EXPECT_EQ(m[11].value.signed_value, -5);
  EXPECT_EQ(m[12].value.float_value, -2.25);
  EXPECT_EQ(m[13].value.type, GgufType::kArray);
  EXPECT_EQ(m[13].value.element_type, GgufType::kI32);
  ASSERT_EQ(m[13].value.items.size(), 3U);
  EXPECT_EQ(m[13].value.items[1].signed_value, -2);
  ASSERT_EQ(m[14].value.items.size(), 2U);
  EXPECT_EQ(m[14].value.items[1].string_value, "hello");
  EXPECT_EQ(m[15].value.element_type, GgufType::kArray);
  ASSERT_EQ(m[15].value.items.size(), 2U);
  ASSERT_EQ(m[15].value.items[0].items.size(), 2U);
  EXPECT_EQ(m[15].value.items[0].items[1].unsigned_value, 8U);
  EXPECT_TRUE(m[15].value.items[1].items.empty());
  EXPECT_EQ(m[16].value.string_value, "");

  ASSERT_EQ(layout->tensors.size(), 3U);
  const TensorInfo& embd = layout->tensors[0];
  EXPECT_EQ(embd.name, "token_embd.weight");
  EXPECT_EQ(embd.dtype, TensorDtype::kF32);
  EXPECT_EQ(embd.dtype_name, "F32");
  EXPECT_EQ(embd.shape, (std::vector<std::uint64_t>{8, 2}));
  EXPECT_EQ(embd.begin, data_begin);
  EXPECT_EQ(embd.end, data_begin + 64);
  const TensorInfo& q = layout->tensors[1];
  EXPECT_EQ(q.dtype, TensorDtype::kQuantized);
  EXPECT_EQ(q.dtype_name, "Q8_0");
  EXPECT_EQ(q.begin, data_begin + 64);
  EXPECT_EQ(q.end, data_begin + 64 + 68);
  EXPECT_EQ(byte_group_width(q.dtype), 0U);
  const TensorInfo& out = layout->tensors[2];
  EXPECT_EQ(out.dtype, TensorDtype::kBF16);
  EXPECT_EQ(out.begin, data_begin + 192);
  EXPECT_EQ(out.end, data_begin + 216);
}

TEST(Gguf, VersionTwoHasTheSameLayout) {
  std::size_t data_begin = 0;
  auto layout = parse_whole(full_file(2, &data_begin));
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  EXPECT_EQ(layout->version, 2U);
  EXPECT_EQ(layout->tensors[2].end, data_begin + 216);
}

TEST(Gguf, DefaultAlignmentIs32) {
  GgufWriter w;
  w.header(3, 2, 0);
  w.tensor("a", {3}, 0, 0);   // 12 bytes
  w.tensor("b", {5}, 1, 32);  // F16, 10 bytes at the next multiple of 32
  w.pad_to(32);
  const std::size_t data_begin = w.bytes.size();
  w.fill(42);
  auto layout = parse_whole(w.bytes);
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  EXPECT_EQ(layout->alignment, 32U);
  EXPECT_EQ(layout->data_begin, data_begin);
  EXPECT_EQ(layout->tensors[1].begin, data_begin + 32);
  EXPECT_EQ(layout->tensors[1].end, data_begin + 42);
}

TEST(Gguf, AcceptsMultiByteUtf8Names) {
  GgufWriter w;
  w.header(3, 1, 1).key("général.名前", GgufType::kString).str("\xFF raw token bytes");
  w.tensor("blk.0.é😀", {4}, 0, 0).pad_to(32).fill(16);
  auto layout = parse_whole(w.bytes);
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  EXPECT_EQ(layout->metadata[0].key, "général.名前");
  EXPECT_EQ(layout->tensors[0].name, "blk.0.é😀");
}

TEST(Gguf, ShortPrefixAsksForMore) {
  std::size_t data_begin = 0;
  const auto file = full_file(3, &data_begin);
  auto partial = parse_gguf(ByteSpan(file).first(40), file.size());
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(partial.error().message.find("prefix"), std::string::npos);
  auto header_only = parse_gguf(ByteSpan(file).first(data_begin), file.size());
  ASSERT_TRUE(header_only.ok()) << header_only.error().to_string();
}

TEST(Gguf, GgmlTypeTable) {
  EXPECT_EQ(gguf::find_ggml_type(12)->block_bytes, 144U);  // Q4_K
  EXPECT_EQ(gguf::find_ggml_type(2)->block_elements, 32U);
  EXPECT_FALSE(gguf::find_ggml_type(4).has_value());  // retired Q4_2
  EXPECT_FALSE(gguf::find_ggml_type(1000).has_value());
}

struct HostileCase {
  const char* label;
  std::vector<std::uint8_t> file;
  ErrorCode code;
  const char* fragment;
  ModelParseLimits limits{};
};

std::vector<std::uint8_t> one_kv(const std::string& key, GgufType type,
                                 const std::function<void(GgufWriter&)>& value) {
  GgufWriter w;
  w.header(3, 0, 1).key(key, type);
  value(w);
  return w.bytes;
}

std::vector<std::uint8_t> one_tensor(const std::string& name, std::vector<std::uint64_t> dims,
                                     std::uint32_t type, std::uint64_t offset,
                                     std::size_t data_bytes) {
  GgufWriter w;
  w.header(3, 1, 0).tensor(name, std::move(dims), type, offset).pad_to(32).fill(data_bytes);
  return w.bytes;
}

TEST(Gguf, HostileFilesGetNamedErrors) {
  std::vector<HostileCase> cases;
  {
    GgufWriter w;
    w.u32(0x46554746).u32(3).u64(0).u64(0);
    cases.push_back({"bad magic", w.bytes, ErrorCode::kCorruptInput, "bad magic"});
  }
  {
    GgufWriter w;
    w.header(1, 0, 0);
    cases.push_back({"version 1", w.bytes, ErrorCode::kUnsupported, "version 1"});
  }
  {
    auto file = one_kv("k", GgufType::kString, [](GgufWriter& w) { w.str("abcdef"); });
    file.resize(file.size() - 2);
    cases.push_back({"truncated string", file, ErrorCode::kCorruptInput, "truncated"});
  }
  cases.push_back({"huge string length",
                   one_kv("k", GgufType::kString, [](GgufWriter& w) { w.u64(1ULL << 62U); }),
                   ErrorCode::kLimitExceeded, "over the cap"});
  cases.push_back({"huge array length",
                   one_kv("k", GgufType::kArray,
                          [](GgufWriter& w) {
                            w.u32(static_cast<std::uint32_t>(GgufType::kU64)).u64(1ULL << 61U);
                          }),
                   ErrorCode::kCorruptInput, "array of"});
  cases.push_back({"unknown value type",
                   one_kv("k", static_cast<GgufType>(13), [](GgufWriter& w) { w.u32(0); }),
                   ErrorCode::kCorruptInput, "unknown value type 13"});
  cases.push_back({"bool out of range",
                   one_kv("k", GgufType::kBool, [](GgufWriter& w) { w.u8(2); }),
                   ErrorCode::kCorruptInput, "not 0 or 1"});
  cases.push_back({"unknown array item type",
                   one_kv("k", GgufType::kArray, [](GgufWriter& w) { w.u32(77).u64(0); }),
                   ErrorCode::kCorruptInput, "unknown array item type 77"});
  cases.push_back({"arrays nested too deep",
                   one_kv("k", GgufType::kArray,
                          [](GgufWriter& w) {
                            for (int i = 0; i < 12; ++i) {
                              w.u32(9).u64(1);
                            }
                            w.u32(0).u64(0);
                          }),
                   ErrorCode::kLimitExceeded, "deeper than"});
  {
    GgufWriter w;
    w.header(3, 0, 2).key("k", GgufType::kU8).u8(1).key("k", GgufType::kU8).u8(2);
    cases.push_back({"duplicate key", w.bytes, ErrorCode::kCorruptInput, "duplicate metadata key"});
  }
  cases.push_back({"alignment not multiple of 8",
                   one_kv("general.alignment", GgufType::kU32, [](GgufWriter& w) { w.u32(12); }),
                   ErrorCode::kCorruptInput, "general.alignment"});
  cases.push_back({"alignment wrong type",
                   one_kv("general.alignment", GgufType::kU64, [](GgufWriter& w) { w.u64(32); }),
                   ErrorCode::kCorruptInput, "general.alignment"});
  cases.push_back({"long tensor name", one_tensor(std::string(65, 'n'), {4}, 0, 0, 16),
                   ErrorCode::kCorruptInput, "64-byte limit"});
  cases.push_back({"five dimensions", one_tensor("t", {1, 1, 1, 1, 1}, 0, 0, 4),
                   ErrorCode::kCorruptInput, "5 dimensions"});
  cases.push_back({"unknown ggml type", one_tensor("t", {4}, 99, 0, 16), ErrorCode::kUnsupported,
                   "unknown ggml type 99"});
  cases.push_back({"misaligned offset", one_tensor("t", {4}, 0, 4, 32), ErrorCode::kCorruptInput,
                   "not a multiple of the alignment"});
  cases.push_back({"data past end", one_tensor("t", {64}, 0, 0, 100), ErrorCode::kCorruptInput,
                   "runs past the end"});
  cases.push_back({"offset overflow", one_tensor("t", {4}, 0, ~std::uint64_t{31}, 16),
                   ErrorCode::kCorruptInput, "runs past the end"});
  cases.push_back({"partial quant block", one_tensor("t", {40}, 8, 0, 68), ErrorCode::kCorruptInput,
                   "whole number of Q8_0 blocks"});
  cases.push_back({"element count overflow",
                   one_tensor("t", {1ULL << 32U, 1ULL << 32U, 2}, 0, 0, 16),
                   ErrorCode::kCorruptInput, "overflows"});
  {
    GgufWriter w;
    w.header(3, 2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad_to(32).fill(32);
    cases.push_back({"overlapping tensors", w.bytes, ErrorCode::kCorruptInput, "overlaps"});
  }
  {
    GgufWriter w;
    w.header(3, 2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad_to(32).fill(64);
    cases.push_back(
        {"duplicate tensor name", w.bytes, ErrorCode::kCorruptInput, "duplicate tensor name"});
  }
  {
    GgufWriter w;
    w.header(3, 1U << 30U, 0);
    cases.push_back({"tensor count over cap", w.bytes, ErrorCode::kLimitExceeded, "tensor count"});
  }
  {
    ModelParseLimits tight;
    tight.max_array_items = 4;
    cases.push_back(
        {"array items over budget",
         one_kv("k", GgufType::kArray, [](GgufWriter& w) { w.u32(0).u64(5).u32(0).u32(0).u8(0); }),
         ErrorCode::kLimitExceeded, "array items past the cap", tight});
  }
  {
    GgufWriter w;
    w.header(3, 1, 0).tensor("t", {4}, 0, 0);  // header ends with no padding and no data
    cases.push_back({"data region missing", w.bytes, ErrorCode::kCorruptInput, "past the end"});
  }
  {
    const std::string long_key(100'000, 'k');
    GgufWriter w;
    w.header(3, 0, 2).key(long_key, GgufType::kU8).u8(1).key(long_key, GgufType::kU8).u8(2);
    cases.push_back({"duplicate long key (message stays short)", w.bytes, ErrorCode::kCorruptInput,
                     "kkk\"..."});
  }
  {
    GgufWriter w;
    w.header(3, 0, 1).key("bad\xC3\x28", GgufType::kU8).u8(1);
    cases.push_back({"key not UTF-8", w.bytes, ErrorCode::kCorruptInput, "not valid UTF-8"});
  }
  cases.push_back({"overlong UTF-8 tensor name", one_tensor("\xC0\xAF", {4}, 0, 0, 16),
                   ErrorCode::kCorruptInput, "not valid UTF-8"});
  cases.push_back({"surrogate in tensor name", one_tensor("\xED\xA0\x80", {4}, 0, 0, 16),
                   ErrorCode::kCorruptInput, "not valid UTF-8"});
  ASSERT_GE(cases.size(), 15U);
  for (const HostileCase& hostile : cases) {
    auto layout = parse_gguf(ByteSpan(hostile.file), hostile.file.size(), hostile.limits);
    ASSERT_FALSE(layout.ok()) << hostile.label;
    EXPECT_EQ(layout.error().code, hostile.code)
        << hostile.label << ": " << layout.error().to_string();
    EXPECT_NE(layout.error().message.find(hostile.fragment), std::string::npos)
        << hostile.label << ": " << layout.error().message;
    EXPECT_LT(layout.error().message.size(), 300U) << hostile.label;
  }
}

}  // namespace
}  // namespace strata
