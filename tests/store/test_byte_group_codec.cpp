// Byte-grouping kernels and codec: every usable kernel equals the scalar reference (odd sizes, data
// flush against a guard page so an over-read or over-write faults), split then merge is the
// identity, the stored form round-trips for random, float-like and odd-tailed data with every
// phase and layout, choose_codec keeps the smaller form, and corrupt stored forms are refused.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/store/byte_group_codec.h"
#include "simd/byte_group_dispatch.h"
#include "tests/test_support.h"

namespace strata {
namespace {

// `size` bytes ending exactly at a PROT_NONE page.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::size_t size) : size_(size) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t data_pages = (size + page - 1) / page;
    mapping_bytes_ = (data_pages + 1) * page;
    void* mapped =
        mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(mapped, MAP_FAILED);
    base_ = static_cast<std::uint8_t*>(mapped);
    EXPECT_EQ(mprotect(base_ + data_pages * page, page, PROT_NONE), 0);
    data_ = base_ + data_pages * page - size;
  }
  ~GuardedBuffer() { munmap(base_, mapping_bytes_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  std::uint8_t* data() { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::uint8_t* base_ = nullptr;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapping_bytes_ = 0;
};

void check_kernel(const simd::ByteGroupKernel& kernel, std::uint32_t width, std::size_t count) {
  const auto input = test::splitmix64_bytes(count * 31 + width, count * width);
  GuardedBuffer source(count * width);
  std::memcpy(source.data(), input.data(), input.size());
  std::vector<std::unique_ptr<GuardedBuffer>> planes;
  std::vector<std::vector<std::uint8_t>> expected(width, std::vector<std::uint8_t>(count));
  std::array<std::uint8_t*, 4> plane_pointers{};
  std::array<std::uint8_t*, 4> expected_pointers{};
  planes.reserve(width);
  for (std::uint32_t k = 0; k < width; ++k) {
    planes.push_back(std::make_unique<GuardedBuffer>(count));
    plane_pointers[k] = planes[k]->data();
    expected_pointers[k] = expected[k].data();
  }
  (width == 2 ? simd::split_planes2_scalar : simd::split_planes4_scalar)(input.data(), count,
                                                                         expected_pointers.data());
  (width == 2 ? kernel.split2 : kernel.split4)(source.data(), count, plane_pointers.data());
  for (std::uint32_t k = 0; k < width; ++k) {
    // memcmp's pointers must be valid even for zero bytes, and an empty vector has none.
    ASSERT_TRUE(count == 0 || std::memcmp(planes[k]->data(), expected[k].data(), count) == 0)
        << kernel.name << " split width " << width << " count " << count << " plane " << k;
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(expected[k][i], input[i * width + k]);  // the reference is the definition
    }
  }
  GuardedBuffer merged(count * width);
  std::array<const std::uint8_t*, 4> const_planes{};
  for (std::uint32_t k = 0; k < width; ++k) const_planes[k] = planes[k]->data();
  (width == 2 ? kernel.merge2 : kernel.merge4)(const_planes.data(), count, merged.data());
  ASSERT_TRUE(input.empty() || std::memcmp(merged.data(), input.data(), input.size()) == 0)
      << kernel.name << " merge width " << width << " count " << count;
}

TEST(ByteGroupKernels, EveryKernelMatchesScalarAtBufferEnds) {
  std::vector<std::size_t> counts;
  for (std::size_t count = 0; count <= 300; ++count) counts.push_back(count);
  for (const std::size_t count : {1023, 1024, 4097, 65536 + 63}) counts.push_back(count);
  std::size_t usable = 0;
  for (const simd::ByteGroupKernel& kernel : simd::built_byte_group_kernels()) {
    if (!simd::byte_group_kernel_usable(kernel)) continue;
    ++usable;
    for (const std::size_t count : counts) {
      check_kernel(kernel, 2, count);
      check_kernel(kernel, 4, count);
    }
  }
  EXPECT_GE(usable, 1U);
}

TEST(ByteGroupKernels, OverrideNamesTheStartingKernel) {
  EXPECT_STREQ(simd::choose_byte_group_kernel("scalar").name, "scalar");
  const simd::ByteGroupKernel& preferred = simd::choose_byte_group_kernel(nullptr);
  EXPECT_TRUE(simd::byte_group_kernel_usable(preferred));
  EXPECT_EQ(&simd::choose_byte_group_kernel(""), &preferred);
  EXPECT_EQ(&simd::choose_byte_group_kernel("quantum"), &preferred);  // unknown: the default
  for (const simd::ByteGroupKernel& kernel : simd::built_byte_group_kernels()) {
    const simd::ByteGroupKernel& chosen = simd::choose_byte_group_kernel(kernel.name);
    EXPECT_EQ(&chosen, simd::byte_group_kernel_usable(kernel) ? &kernel : &preferred);
  }
}

TEST(ByteGroupKernels, ScalarIsBuiltAndActiveIsUsable) {
  ASSERT_NE(simd::find_byte_group_kernel("scalar"), nullptr);
  EXPECT_EQ(simd::find_byte_group_kernel("quantum"), nullptr);
  EXPECT_TRUE(simd::byte_group_kernel_usable(simd::active_byte_group_kernel()));
}

// Normal-ish weights: what real FP32/BF16/FP16 tensors look like (small magnitudes, few exponents).
std::vector<std::uint8_t> float_like(std::size_t elements, std::uint32_t width,
                                     std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<float> weight(0.0F, 0.05F);
  std::vector<std::uint8_t> bytes(elements * width);
  for (std::size_t i = 0; i < elements; ++i) {
    const float value = weight(random);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    if (width == 2) bits >>= 16U;  // BF16: the high half
    for (std::uint32_t b = 0; b < width; ++b) {
      bytes[i * width + b] = static_cast<std::uint8_t>(bits >> (8U * b));
    }
  }
  return bytes;
}

void expect_round_trip(ByteSpan raw, std::uint32_t width, std::uint32_t phase, PlaneLayout layout) {
  ByteGroupOptions options;
  options.layout = layout;
  auto stored = encode_byte_grouped(raw, width, phase, options);
  ASSERT_TRUE(stored.ok()) << stored.error().to_string();
  auto back = decode_byte_grouped(ByteSpan(*stored));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  ASSERT_EQ(back->size(), raw.size());
  EXPECT_TRUE(std::equal(raw.begin(), raw.end(), back->begin()))
      << "width " << width << " phase " << phase << " size " << raw.size();
}

TEST(ByteGroupCodec, RoundTripsEveryShape) {
  for (const simd::ByteGroupKernel& kernel : simd::built_byte_group_kernels()) {
    if (!simd::byte_group_kernel_usable(kernel)) continue;
    simd::set_active_byte_group_kernel(kernel);
    for (const std::uint32_t width : {2U, 4U}) {
      for (std::uint32_t phase = 0; phase < width; ++phase) {
        for (const std::size_t size :
             {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{5}, std::size_t{130},
              std::size_t{4099}, std::size_t{65537}}) {
          const auto random_bytes = test::splitmix64_bytes(size + phase, size);
          const auto floats = float_like(size / width + 1, width, size);
          for (const PlaneLayout layout :
               {PlaneLayout::kSeparatePlanes, PlaneLayout::kSingleFrame}) {
            expect_round_trip(ByteSpan(random_bytes), width, phase, layout);
            expect_round_trip(ByteSpan(floats).first(size), width, phase, layout);
          }
        }
      }
    }
  }
  simd::set_active_byte_group_kernel(*simd::find_byte_group_kernel("scalar"));
}

TEST(ByteGroupCodec, EveryKernelEncodesTheSameBytes) {
  const auto floats = float_like(20'000, 4, 9);
  std::vector<std::vector<std::uint8_t>> encodings;
  for (const simd::ByteGroupKernel& kernel : simd::built_byte_group_kernels()) {
    if (!simd::byte_group_kernel_usable(kernel)) continue;
    simd::set_active_byte_group_kernel(kernel);
    auto stored = encode_byte_grouped(ByteSpan(floats), 4, 1);
    ASSERT_TRUE(stored.ok());
    encodings.push_back(std::move(stored).value());
  }
  for (const auto& encoding : encodings) EXPECT_EQ(encoding, encodings.front());
  simd::set_active_byte_group_kernel(*simd::find_byte_group_kernel("scalar"));
}

TEST(ByteGroupCodec, ChoosesTheSmallerForm) {
  const auto floats = float_like(64'000, 4, 21);
  auto chosen = choose_codec(ByteSpan(floats), 4, 0);
  ASSERT_TRUE(chosen.ok());
  auto plain = compress_plain(ByteSpan(floats), 3);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(chosen->codec, ChunkCodec::kByteGroupZstd);
  EXPECT_LT(chosen->bytes.size(), plain->size());
  auto back = decode_chunk(chosen->codec, ByteSpan(chosen->bytes), floats.size());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, floats);

  const auto noise = test::splitmix64_bytes(5, 50'000);
  auto noisy = choose_codec(ByteSpan(noise), 2, 0);
  ASSERT_TRUE(noisy.ok());
  EXPECT_EQ(noisy->codec, ChunkCodec::kZstd);  // grouping cannot beat plain on random bytes

  auto plain_only = choose_codec(ByteSpan(floats), 0, 0);
  ASSERT_TRUE(plain_only.ok());
  EXPECT_EQ(plain_only->codec, ChunkCodec::kZstd);
  EXPECT_FALSE(encode_byte_grouped(ByteSpan(floats), 3, 0).ok());
  EXPECT_FALSE(encode_byte_grouped(ByteSpan(floats), 4, 4).ok());
}

std::vector<std::uint8_t> patched(std::vector<std::uint8_t> stored, std::size_t at,
                                  std::uint8_t value) {
  stored[at] = value;
  return stored;
}

TEST(ByteGroupCodec, CorruptStoredFormsAreRefused) {
  const auto floats = float_like(3'000, 4, 33);
  auto encoded = encode_byte_grouped(ByteSpan(floats).first(floats.size() - 1), 4, 2);
  ASSERT_TRUE(encoded.ok());
  const std::vector<std::uint8_t>& good = *encoded;
  // Every truncation fails cleanly.
  for (std::size_t length = 0; length < good.size(); ++length) {
    EXPECT_FALSE(decode_byte_grouped(ByteSpan(good).first(length)).ok()) << length;
  }
  struct Case {
    const char* label;
    std::vector<std::uint8_t> stored;
    ErrorCode code;
    const char* fragment;
  };
  std::vector<std::uint8_t> huge = good;
  huge[15] = 0x7F;
  std::vector<std::uint8_t> trailing = good;
  trailing.push_back(0);
  std::vector<std::uint8_t> long_plane = good;
  long_plane[17] = 0xFF;
  long_plane[18] = 0xFF;
  const std::vector<Case> cases = {
      {"magic", patched(good, 0, 'X'), ErrorCode::kCorruptInput, "bad magic"},
      {"width", patched(good, 4, 3), ErrorCode::kCorruptInput, "not 2 or 4"},
      {"phase", patched(good, 5, 4), ErrorCode::kCorruptInput, "phase"},
      {"layout", patched(good, 6, 2), ErrorCode::kCorruptInput, "unknown layout"},
      {"raw length", huge, ErrorCode::kLimitExceeded, "exceeds the cap"},
      {"plane method", patched(good, 16, 7), ErrorCode::kCorruptInput, "unknown method"},
      {"plane length", long_plane, ErrorCode::kCorruptInput, "runs past the end"},
      {"trailing bytes", trailing, ErrorCode::kCorruptInput, "trailing"},
      {"raw length mismatch", patched(good, 8, static_cast<std::uint8_t>(good[8] + 8)),
       ErrorCode::kCorruptInput, "plane"},
  };
  for (const Case& bad : cases) {
    auto decoded = decode_byte_grouped(ByteSpan(bad.stored));
    ASSERT_FALSE(decoded.ok()) << bad.label;
    EXPECT_EQ(decoded.error().code, bad.code) << bad.label << ": " << decoded.error().to_string();
    EXPECT_NE(decoded.error().message.find(bad.fragment), std::string::npos)
        << bad.label << ": " << decoded.error().message;
  }
  // Flipped payload bytes: an error or a same-size result, never a crash.
  std::mt19937_64 random(1);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<std::uint8_t> flipped = good;
    flipped[16 + random() % (flipped.size() - 16)] ^= static_cast<std::uint8_t>(1 + random() % 255);
    auto decoded = decode_byte_grouped(ByteSpan(flipped));
    if (decoded.ok()) {
      EXPECT_EQ(decoded->size(), floats.size() - 1);
    }
  }
  auto bad_plain = decode_chunk(ChunkCodec::kZstd, ByteSpan(good), floats.size());
  EXPECT_FALSE(bad_plain.ok());
}

}  // namespace
}  // namespace strata
