// Layer writer throughput (uncompressed tar bytes/second) and compression ratio on a real tar:
// the first 32 MiB of a deterministic tar of /usr/lib/x86_64-linux-gnu (shared libraries, made at
// start-up with write_directory_tar), for gzip with ISA-L levels 0..3 and zlib level 6, and zstd
// levels 1 and 3 with 1 and 2 threads. Output goes to a counting sink (no I/O). Compare numbers
// from the same run and machine only.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "strata/strata.h"

namespace {

constexpr std::size_t kTarBytes = std::size_t{32} << 20U;

const std::vector<std::uint8_t>& library_tar() {
  static const std::vector<std::uint8_t> tar = [] {
    std::vector<std::uint8_t> bytes;
    bytes.reserve(kTarBytes);
    // The sink stops the walk once enough bytes are in; the prefix is still real tar content.
    (void)strata::oci::write_directory_tar(
        "/usr/lib/x86_64-linux-gnu", {}, [&bytes](strata::ByteSpan piece) -> strata::Result<void> {
          const std::size_t take = std::min(piece.size(), kTarBytes - bytes.size());
          bytes.insert(bytes.end(), piece.begin(),
                       piece.begin() + static_cast<std::ptrdiff_t>(take));
          if (bytes.size() == kTarBytes) {
            return strata::make_error(strata::ErrorCode::kLimitExceeded, "enough");
          }
          return {};
        });
    return bytes;
  }();
  return tar;
}

void bench_layer_writer(benchmark::State& state, strata::oci::LayerWriterOptions options) {
  const auto& tar = library_tar();
  if (tar.empty()) {
    state.SkipWithError("no tar data (/usr/lib/x86_64-linux-gnu unreadable)");
    return;
  }
  std::uint64_t compressed = 0;
  for (auto _ : state) {
    compressed = 0;
    auto writer = strata::oci::LayerWriter::create(
        options, [&compressed](strata::ByteSpan bytes) -> strata::Result<void> {
          compressed += bytes.size();
          return {};
        });
    if (!writer.ok() || !writer->write(tar).ok() || !writer->finish().ok()) {
      state.SkipWithError("layer writer failed");
      return;
    }
    benchmark::DoNotOptimize(compressed);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * tar.size()));
  state.counters["ratio"] = static_cast<double>(tar.size()) / static_cast<double>(compressed);
}

strata::oci::LayerWriterOptions gzip_options(strata::oci::GzipEngine engine, int level) {
  strata::oci::LayerWriterOptions options;
  options.compression = strata::oci::LayerCompression::kGzip;
  options.gzip_engine = engine;
  options.level = level;
  return options;
}

strata::oci::LayerWriterOptions zstd_options(int level, unsigned threads) {
  strata::oci::LayerWriterOptions options;
  options.compression = strata::oci::LayerCompression::kZstd;
  options.level = level;
  options.threads = threads;
  return options;
}

const int kRegistered = [] {
  for (int level = 0; level <= 3; ++level) {
    benchmark::RegisterBenchmark(("gzip_isal/level:" + std::to_string(level)).c_str(),
                                 bench_layer_writer,
                                 gzip_options(strata::oci::GzipEngine::kIsal, level))
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("gzip_zlib/level:6", bench_layer_writer,
                               gzip_options(strata::oci::GzipEngine::kZlib, 6))
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (const int level : {1, 3}) {
    for (const unsigned threads : {1U, 2U}) {
      benchmark::RegisterBenchmark(
          ("zstd/level:" + std::to_string(level) + "/threads:" + std::to_string(threads)).c_str(),
          bench_layer_writer, zstd_options(level, threads))
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
