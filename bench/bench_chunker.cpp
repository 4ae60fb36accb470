// Chunker throughput (bytes/second and cycles/byte) for every algorithm and every usable kernel,
// on a warm buffer (512 KiB, fits in L2), a cold one (256 MiB of fixed-seed random bytes, far
// larger than the last-level cache) and a real file (the largest shared library in
// /usr/lib/x86_64-linux-gnu); plus single-core memory read bandwidth for scale (the yardstick of
// shared/specs/chunking.md §6) and parallel chunking on 1 vs 2 threads. cycles/byte are nominal
// cycles: the time-stamp counter's rate (its ticks over wall time, i.e. the CPU's nominal clock,
// not the boosted core clock) times the thread's CPU time per byte, so a shared, busy machine
// inflates them less than wall time would (parallel rows use wall time). At the
// end a summary table gives each kernel's ratio to scalar and the 2-thread/1-thread ratio
// (parallel rows also report the CPU time of all threads, which shows the split's overhead). Run
// through `make bench`; compare numbers measured in the same run only.
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "strata/strata.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <x86intrin.h>
#endif

namespace {

constexpr std::size_t kWarmSize = std::size_t{512} << 10U;
constexpr std::size_t kColdSize = std::size_t{256} << 20U;

std::uint64_t read_timestamp() {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return 0;
#endif
}

const std::vector<std::uint8_t>& random_bytes() {
  static const std::vector<std::uint8_t> bytes = [] {
    std::vector<std::uint8_t> data(kColdSize);
    std::mt19937_64 random(2026);
    for (std::size_t i = 0; i + 8 <= data.size(); i += 8) {
      const std::uint64_t word = random();
      std::memcpy(data.data() + i, &word, 8);
    }
    return data;
  }();
  return bytes;
}

// The largest regular *.so* file in the system library folder: real, mixed content.
const std::pair<std::string, std::vector<std::uint8_t>>& real_file() {
  static const std::pair<std::string, std::vector<std::uint8_t>> file = [] {
    std::pair<std::string, std::vector<std::uint8_t>> found;
    std::error_code error;
    std::uintmax_t largest = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator("/usr/lib/x86_64-linux-gnu", error)) {
      if (!entry.is_regular_file(error) ||
          entry.path().filename().string().find(".so") == std::string::npos) {
        continue;
      }
      const std::uintmax_t size = entry.file_size(error);
      if (!error && size > largest && size <= kColdSize) {
        largest = size;
        found.first = entry.path().string();
      }
    }
    if (!found.first.empty()) {
      std::ifstream stream(found.first, std::ios::binary);
      found.second.assign(std::istreambuf_iterator<char>(stream), {});
    }
    return found;
  }();
  return file;
}

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// Brackets a benchmark loop: time-stamp ticks, wall time and this thread's CPU time.
class CycleClock {
 public:
  CycleClock()
      : ticks_(read_timestamp()),
        wall_(std::chrono::steady_clock::now()),
        cpu_(thread_cpu_seconds()) {}

  // Sets bytes/second and cycles_per_byte for `bytes_per_iteration` bytes per iteration.
  void report(benchmark::State& state, std::size_t bytes_per_iteration, bool wall_time) const {
    const std::uint64_t ticks = read_timestamp() - ticks_;
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
    const double cpu = thread_cpu_seconds() - cpu_;
    const double bytes =
        static_cast<double>(state.iterations()) * static_cast<double>(bytes_per_iteration);
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    if (ticks != 0 && wall > 0) {
      const double ticks_per_second = static_cast<double>(ticks) / wall;
      state.counters["cycles_per_byte"] = ticks_per_second * (wall_time ? wall : cpu) / bytes;
    }
  }

 private:
  std::uint64_t ticks_;
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

void bench_chunk(benchmark::State& state, const std::string& kernel,
                 strata::ChunkAlgorithm algorithm, strata::ByteSpan data) {
  if (!strata::select_kernel(kernel).ok()) {
    state.SkipWithError("kernel not usable on this CPU");
    return;
  }
  if (data.empty()) {
    state.SkipWithError("no input");
    return;
  }
  const strata::ChunkerOptions options = strata::default_chunker_options(algorithm);
  std::size_t chunks = 0;
  const CycleClock clock;
  for (auto _ : state) {
    auto result = strata::chunk_buffer(data, options);
    chunks = result->size();
    benchmark::DoNotOptimize(result->data());
  }
  clock.report(state, data.size(), false);
  state.counters["chunks"] = static_cast<double>(chunks);
}

#if defined(__x86_64__)
// Sums 32-byte words with four independent accumulators: the single-core streaming read rate.
__attribute__((target("avx2"))) std::uint64_t sum_bytes_avx2(const std::uint8_t* data,
                                                             std::size_t size) {
  __m256i sums[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                     _mm256_setzero_si256()};
  for (std::size_t at = 0; at + 128 <= size; at += 128) {
    for (int lane = 0; lane < 4; ++lane) {
      const __m256i word =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + at + 32 * lane));
      sums[lane] = _mm256_add_epi64(sums[lane], word);
    }
  }
  const __m256i total =
      _mm256_add_epi64(_mm256_add_epi64(sums[0], sums[1]), _mm256_add_epi64(sums[2], sums[3]));
  return static_cast<std::uint64_t>(_mm256_extract_epi64(total, 0) ^
                                    _mm256_extract_epi64(total, 3));
}
#endif

void bench_memory_read(benchmark::State& state) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2")) {
    state.SkipWithError("needs AVX2");
    return;
  }
  const auto& bytes = random_bytes();
  const CycleClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(sum_bytes_avx2(bytes.data(), bytes.size()));
  clock.report(state, bytes.size(), false);
#else
  state.SkipWithError("x86-64 only");
#endif
}

void bench_parallel(benchmark::State& state, unsigned threads) {
  const auto& bytes = random_bytes();
  const strata::ChunkerOptions options;
  const CycleClock clock;
  timespec process_start{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &process_start);
  for (auto _ : state) {
    auto result = strata::chunk_buffer_parallel(bytes, options, threads);
    benchmark::DoNotOptimize(result->data());
  }
  clock.report(state, bytes.size(), true);
  // CPU time of all threads per iteration: on a busy machine wall time cannot show the scaling,
  // but equal work at 1 and 2 threads shows the split and join add little.
  timespec process_end{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &process_end);
  const double process_seconds =
      static_cast<double>(process_end.tv_sec - process_start.tv_sec) +
      static_cast<double>(process_end.tv_nsec - process_start.tv_nsec) * 1e-9;
  state.counters["all_threads_cpu_ms"] =
      process_seconds * 1e3 / static_cast<double>(state.iterations());
}

void register_all() {
  const std::string default_kernel(strata::active_kernel_name());
  const std::pair<strata::ChunkAlgorithm, bool> algorithms[] = {
      {strata::ChunkAlgorithm::kFastCdc2016, true},
      {strata::ChunkAlgorithm::kFastCdc2020, true},
      {strata::ChunkAlgorithm::kXet, true},
      {strata::ChunkAlgorithm::kCasync, false}};  // casync's buzhash does not use gear kernels
  for (const auto& [algorithm, uses_kernels] : algorithms) {
    for (const strata::KernelInfo& kernel : strata::list_kernels()) {
      if (!kernel.usable || (!uses_kernels && kernel.name != "scalar")) continue;
      const std::string prefix =
          "chunk/" + std::string(strata::chunk_algorithm_name(algorithm)) + "/" + kernel.name;
      const std::string name = kernel.name;
      const strata::ChunkAlgorithm chosen = algorithm;
      benchmark::RegisterBenchmark((prefix + "/warm").c_str(), [=](benchmark::State& state) {
        bench_chunk(state, name, chosen, strata::ByteSpan(random_bytes()).first(kWarmSize));
      });
      benchmark::RegisterBenchmark((prefix + "/cold").c_str(), [=](benchmark::State& state) {
        bench_chunk(state, name, chosen, random_bytes());
      })->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((prefix + "/file").c_str(), [=](benchmark::State& state) {
        bench_chunk(state, name, chosen, real_file().second);
      })->Unit(benchmark::kMillisecond);
    }
  }
  // The parallel runs use whichever kernel is the default for this CPU.
  for (const unsigned threads : {1U, 2U}) {
    benchmark::RegisterBenchmark(
        ("parallel/fastcdc2020/" + default_kernel + "/threads:" + std::to_string(threads)).c_str(),
        [threads](benchmark::State& state) { bench_parallel(state, threads); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("memory/read_avx2/cold", bench_memory_read)
      ->Unit(benchmark::kMillisecond);
}

// The console table, then a summary: GB/s, cycles/byte and the ratio to scalar per row.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      Row row;
      const auto rate = run.counters.find("bytes_per_second");
      if (rate != run.counters.end()) row.gigabytes_per_second = rate->second.value / 1e9;
      const auto cycles = run.counters.find("cycles_per_byte");
      if (cycles != run.counters.end()) row.cycles_per_byte = cycles->second.value;
      rows_[run.benchmark_name()] = row;
      order_.push_back(run.benchmark_name());
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n%-48s %9s %12s %10s\n", "summary", "GB/s", "cycles/byte", "ratio");
    for (const std::string& name : order_) {
      const Row& row = rows_[name];
      std::string ratio;
      if (const auto baseline = baseline_of(name); baseline && *baseline > 0) {
        char text[32];
        std::snprintf(text, sizeof text, "%.2fx", row.gigabytes_per_second / *baseline);
        ratio = text;
      }
      std::printf("%-48s %9.2f %12.3f %10s\n", name.c_str(), row.gigabytes_per_second,
                  row.cycles_per_byte, ratio.c_str());
    }
    std::printf(
        "ratio: chunk rows vs the scalar kernel on the same algorithm and data; parallel rows vs "
        "threads:1. cycles/byte: time-stamp-counter (nominal clock) cycles per byte of thread CPU "
        "time (wall time for parallel rows).\n");
  }

 private:
  struct Row {
    double gigabytes_per_second = 0;
    double cycles_per_byte = 0;
  };

  // chunk/<algorithm>/<kernel>/<data> -> the scalar row; parallel/.../threads:N -> threads:1.
  std::optional<double> baseline_of(const std::string& name) {
    std::vector<std::string> parts;
    const std::string plain = name.substr(0, name.find("/real_time"));
    for (std::size_t start = 0;;) {
      const std::size_t slash = plain.find('/', start);
      parts.push_back(plain.substr(start, slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    std::string baseline;
    if (parts.size() == 4 && parts[0] == "chunk") {
      baseline = parts[0] + "/" + parts[1] + "/scalar/" + parts[3];
    } else if (parts.size() == 4 && parts[0] == "parallel") {
      baseline = parts[0] + "/" + parts[1] + "/" + parts[2] + "/threads:1";
    } else {
      return std::nullopt;
    }
    auto found = rows_.find(baseline);
    if (found == rows_.end()) found = rows_.find(baseline + "/real_time");
    if (found == rows_.end()) return std::nullopt;
    return found->second.gigabytes_per_second;
  }

  std::map<std::string, Row> rows_;
  std::vector<std::string> order_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  if (!real_file().first.empty()) std::printf("real file: %s\n", real_file().first.c_str());
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
