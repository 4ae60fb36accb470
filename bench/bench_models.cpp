// Byte-grouping throughput and ratio: split/merge bytes per second for every usable kernel, 2- and
// 4-byte elements, on a warm size (64 KiB chunk, in L2) and a cold one (64 MiB); then the codec
// (encode = split + zstd per plane, decode = zstd + merge) against plain zstd at levels 3 and 19
// on synthetic normal-distributed weights, with the compression ratio as a counter. Real weights
// are measured by bench/model_weights.sh. Compare kernels measured in the same run only.
#include <benchmark/benchmark.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/store/byte_group_codec.h"
#include "simd/byte_group_dispatch.h"

namespace {

// Normal(0, 0.05) weights as F32, or their high halves as BF16: the exponent byte repeats few
// values, as in trained weights (shared/specs/models.md §1).
std::vector<std::uint8_t> synthetic_weights(std::size_t bytes, std::uint32_t width) {
  std::vector<std::uint8_t> out(bytes);
  std::mt19937_64 random(2026);
  std::normal_distribution<float> weight(0.0F, 0.05F);
  for (std::size_t i = 0; i + width <= bytes; i += width) {
    const float value = weight(random);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    if (width == 2) bits >>= 16U;
    for (std::uint32_t b = 0; b < width; ++b)
      out[i + b] = static_cast<std::uint8_t>(bits >> (8U * b));
  }
  return out;
}

void bench_split(benchmark::State& state, const strata::simd::ByteGroupKernel* kernel,
                 std::uint32_t width, std::size_t bytes, bool merge) {
  const auto input = synthetic_weights(bytes, width);
  std::vector<std::uint8_t> planes(bytes);
  std::vector<std::uint8_t> output(bytes);
  const std::size_t count = bytes / width;
  std::array<std::uint8_t*, 4> plane_pointers{};
  std::array<const std::uint8_t*, 4> const_planes{};
  for (std::uint32_t k = 0; k < width; ++k) {
    plane_pointers[k] = planes.data() + k * count;
    const_planes[k] = plane_pointers[k];
  }
  const auto split = width == 2 ? kernel->split2 : kernel->split4;
  const auto join = width == 2 ? kernel->merge2 : kernel->merge4;
  split(input.data(), count, plane_pointers.data());
  for (auto _ : state) {
    if (merge) {
      join(const_planes.data(), count, output.data());
      benchmark::DoNotOptimize(output.data());
    } else {
      split(input.data(), count, plane_pointers.data());
      benchmark::DoNotOptimize(planes.data());
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes));
}

// Codec over 64 KiB chunks of 8 MiB of weights (the chunker's default average size).
void bench_codec(benchmark::State& state, const std::string& codec, std::uint32_t width, int level,
                 bool decode) {
  constexpr std::size_t kTotal = std::size_t{8} << 20U;
  constexpr std::size_t kChunk = std::size_t{64} << 10U;
  const auto input = synthetic_weights(kTotal, width);
  strata::ByteGroupOptions options;
  options.level = level;
  options.layout = codec == "bg-single-frame" ? strata::PlaneLayout::kSingleFrame
                                              : strata::PlaneLayout::kSeparatePlanes;
  const bool plain = codec == "zstd";
  std::vector<std::vector<std::uint8_t>> stored;
  std::size_t stored_bytes = 0;
  for (std::size_t at = 0; at < kTotal; at += kChunk) {
    const strata::ByteSpan chunk(input.data() + at, kChunk);
    auto encoded = plain ? strata::compress_plain(chunk, level)
                         : strata::encode_byte_grouped(chunk, width, 0, options);
    stored_bytes += encoded->size();
    stored.push_back(std::move(encoded).value());
  }
  for (auto _ : state) {
    for (std::size_t i = 0; i < stored.size(); ++i) {
      if (decode) {
        auto raw = plain ? strata::decompress_plain(strata::ByteSpan(stored[i]))
                         : strata::decode_byte_grouped(strata::ByteSpan(stored[i]));
        benchmark::DoNotOptimize(raw->data());
      } else {
        const strata::ByteSpan chunk(input.data() + i * kChunk, kChunk);
        auto encoded = plain ? strata::compress_plain(chunk, level)
                             : strata::encode_byte_grouped(chunk, width, 0, options);
        benchmark::DoNotOptimize(encoded->data());
      }
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kTotal));
  state.counters["ratio"] = static_cast<double>(kTotal) / static_cast<double>(stored_bytes);
}

int register_all() {
  for (const strata::simd::ByteGroupKernel& kernel : strata::simd::built_byte_group_kernels()) {
    if (!strata::simd::byte_group_kernel_usable(kernel)) continue;
    for (const std::uint32_t width : {2U, 4U}) {
      for (const auto& [bytes, temperature] :
           {std::pair{std::size_t{64} << 10U, "warm"}, std::pair{std::size_t{64} << 20U, "cold"}}) {
        for (const bool merge : {false, true}) {
          const std::string name = std::string("byte_group/") + (merge ? "merge" : "split") +
                                   std::to_string(width) + "/" + kernel.name + "/" + temperature;
          benchmark::RegisterBenchmark(name.c_str(), bench_split, &kernel, width, bytes, merge);
        }
      }
    }
  }
  for (const char* codec : {"zstd", "bg-planes", "bg-single-frame"}) {
    for (const auto& [width, dtype] : {std::pair{2U, "bf16"}, std::pair{4U, "f32"}}) {
      for (const int level : {3, 19}) {
        for (const bool decode : {false, true}) {
          if (level == 19 && !decode && std::string(codec) == "bg-single-frame") continue;
          const std::string name = std::string("codec/") + codec + "/" + dtype + "/zstd" +
                                   std::to_string(level) + "/" + (decode ? "decode" : "encode");
          benchmark::RegisterBenchmark(name.c_str(), bench_codec, std::string(codec), width, level,
                                       decode);
        }
      }
    }
  }
  return 0;
}

const int kRegistered = register_all();

}  // namespace

BENCHMARK_MAIN();
