// SHA-256 over a layer's worth of chunks: one sha256_of call per chunk (OpenSSL, one message at a
// time) against sha256_of_each over the same list on every SHA-256 kernel this CPU can run
// (simd/sha256_shani.h; "openssl" is the forced fallback), and one message streamed in 8 KiB
// updates (the diff_id's case) on OpenSSL and each kernel alone. Chunk sizes are mixed 4 KiB..256
// KiB from a fixed seed, as a content-defined chunker leaves them; the warm list (1 MiB) stays in
// L2, the cold one (64 MiB) does not. Bytes per second; compare within one run.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "simd/sha256_shani.h"
#include "strata/digest.h"

namespace {

using strata::ByteSpan;
using strata::Digest;

struct ChunkList {
  std::vector<std::uint8_t> bytes;
  std::vector<ByteSpan> chunks;
};

const ChunkList& chunk_list(std::size_t total) {
  static std::vector<std::pair<std::size_t, ChunkList>> lists;
  for (const auto& [size, list] : lists) {
    if (size == total) return list;
  }
  ChunkList list;
  std::mt19937_64 random(20261207);
  list.bytes.resize(total);
  for (auto& byte : list.bytes) byte = static_cast<std::uint8_t>(random());
  std::uniform_int_distribution<std::size_t> size(4U << 10U, 256U << 10U);
  for (std::size_t at = 0; at < total;) {
    const std::size_t length = std::min(size(random), total - at);
    list.chunks.emplace_back(list.bytes.data() + at, length);
    at += length;
  }
  lists.emplace_back(total, std::move(list));
  return lists.back().second;
}

void BM_Sha256OfPerChunk(benchmark::State& state) {
  const ChunkList& list = chunk_list(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    for (const ByteSpan chunk : list.chunks) benchmark::DoNotOptimize(strata::sha256_of(chunk));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
  state.counters["chunks"] = static_cast<double>(list.chunks.size());
}

void BM_Sha256OfEach(benchmark::State& state, const strata::simd::Sha256Kernel* kernel) {
  if (kernel != nullptr && !strata::simd::sha256_kernel_usable(*kernel)) {
    state.SkipWithError("this CPU lacks what the kernel needs");
    return;
  }
  const strata::simd::Sha256Kernel* previous = strata::simd::active_sha256_kernel();
  strata::simd::set_active_sha256_kernel(kernel);
  const ChunkList& list = chunk_list(static_cast<std::size_t>(state.range(0)));
  std::vector<Digest> digests(list.chunks.size());
  for (auto _ : state) {
    strata::sha256_of_each(list.chunks, digests);
    benchmark::DoNotOptimize(digests.data());
  }
  strata::simd::set_active_sha256_kernel(previous);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
  state.counters["chunks"] = static_cast<double>(list.chunks.size());
}

// One message of `total` bytes fed in 8 KiB updates, as the diff_id's thread does: OpenSSL's
// streaming Sha256 against a kernel's single-message compression.
void BM_Sha256Stream(benchmark::State& state, const strata::simd::Sha256Kernel* kernel) {
  if (kernel != nullptr && !strata::simd::sha256_kernel_usable(*kernel)) {
    state.SkipWithError("this CPU lacks what the kernel needs");
    return;
  }
  const ChunkList& list = chunk_list(static_cast<std::size_t>(state.range(0)));
  constexpr std::size_t kStep = std::size_t{8} << 10U;
  for (auto _ : state) {
    if (kernel == nullptr) {
      strata::Sha256 hash;
      for (std::size_t at = 0; at < list.bytes.size(); at += kStep) {
        hash.update(ByteSpan(list.bytes).subspan(at, std::min(kStep, list.bytes.size() - at)));
      }
      benchmark::DoNotOptimize(hash.finish());
    } else {
      std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
      for (std::size_t at = 0; at + kStep <= list.bytes.size(); at += kStep) {
        kernel->compress(h, list.bytes.data() + at, kStep / 64);
      }
      benchmark::DoNotOptimize(h);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

// `benchmark` as NAME/openssl (the forced fallback) and NAME/<kernel> for each SHA-256 kernel
// built.
template <typename Benchmark>
void register_per_kernel(const std::string& name, Benchmark benchmark, std::int64_t warm,
                         std::int64_t cold) {
  benchmark::RegisterBenchmark((name + "/openssl").c_str(), benchmark, nullptr)
      ->Arg(warm)
      ->Arg(cold);
  for (const strata::simd::Sha256Kernel& kernel : strata::simd::built_sha256_kernels()) {
    benchmark::RegisterBenchmark((name + "/" + kernel.name).c_str(), benchmark, &kernel)
        ->Arg(warm)
        ->Arg(cold);
  }
}

void register_benchmarks() {
  constexpr std::int64_t kWarm = 1 << 20;
  constexpr std::int64_t kCold = 64 << 20;
  benchmark::RegisterBenchmark("sha256_of_per_chunk", BM_Sha256OfPerChunk)->Arg(kWarm)->Arg(kCold);
  register_per_kernel("sha256_stream", BM_Sha256Stream, kWarm, kCold);
  register_per_kernel("sha256_of_each", BM_Sha256OfEach, kWarm, kCold);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
