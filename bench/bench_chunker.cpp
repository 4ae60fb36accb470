// Chunker throughput (bytes/second) for every usable kernel and each FastCDC variant, on a warm
// size (fits in L2) and a cold one (far larger than the last-level cache), fixed-seed random data.
// Run through `make bench`; compare kernels measured in the same run only.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "strata/strata.h"

namespace {

const std::vector<std::uint8_t>& random_bytes(std::size_t size) {
  static std::vector<std::uint8_t> bytes = [] {
    std::vector<std::uint8_t> data(std::size_t{512} << 20U);
    std::mt19937_64 random(2026);
    for (std::size_t i = 0; i + 8 <= data.size(); i += 8) {
      const std::uint64_t word = random();
      std::memcpy(data.data() + i, &word, 8);
    }
    return data;
  }();
  (void)size;
  return bytes;
}

void bench_chunk(benchmark::State& state, std::string kernel, strata::ChunkAlgorithm algorithm,
                 std::size_t size) {
  if (!strata::select_kernel(kernel).ok()) {
    state.SkipWithError("kernel not usable on this CPU");
    return;
  }
  const auto& bytes = random_bytes(size);
  const strata::ByteSpan data(bytes.data(), size);
  strata::ChunkerOptions options;
  options.algorithm = algorithm;
  std::size_t chunks = 0;
  for (auto _ : state) {
    auto result = strata::chunk_buffer(data, options);
    chunks = result->size();
    benchmark::DoNotOptimize(result->data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(size));
  state.counters["chunks"] = static_cast<double>(chunks);
}

int register_all() {
  for (const strata::KernelInfo& kernel : strata::list_kernels()) {
    if (!kernel.usable) continue;
    for (const auto& [algorithm, name] :
         {std::pair{strata::ChunkAlgorithm::kFastCdc2016, "fastcdc2016"},
          std::pair{strata::ChunkAlgorithm::kFastCdc2020, "fastcdc2020"}}) {
      for (const auto& [size, temperature] : {std::pair{std::size_t{256} << 10U, "warm"},
                                              std::pair{std::size_t{512} << 20U, "cold"}}) {
        benchmark::RegisterBenchmark(
            ("chunk/" + std::string(name) + "/" + kernel.name + "/" + temperature).c_str(),
            [kernel_name = kernel.name, algorithm = algorithm, size = size](benchmark::State& s) {
              bench_chunk(s, kernel_name, algorithm, size);
            })
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
