// Chunked layer writer throughput (uncompressed tar bytes/second), the write half of `strata
// convert` (shared/specs/layer-formats.md §1, §2): a deterministic tar of 32 MiB of
// /usr/lib/x86_64-linux-gnu (its first files, copied to a temporary directory) is ingested once
// into a temporary store (FastCDC chunks, zstd frames), then written from its recipe as
// zstd:chunked reusing the store's frames (what convert does), as zstd:chunked compressing every
// frame itself (level 3), and as eStargz (ISA-L level 1). Output goes to a counting sink (no I/O).
// The convert/ cases run the whole `strata convert` (library convert_image) of the same tar held
// as a gzip image in an OCI layout: into the store already holding it ("warm") or into an empty
// store ("cold"), writing tar+zstd while ingesting, from the store (--from-store), and
// zstd:chunked. Compare numbers from the same run and machine only.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "strata/strata.h"

namespace {

constexpr std::size_t kTarBytes = std::size_t{32} << 20U;

struct Corpus {
  std::vector<std::uint8_t> tar;
  std::vector<strata::fastpull::TarChunk> chunks;
  std::string directory;
  std::optional<strata::ChunkStore> store;
  std::string layout;  // the tar as a gzip image, tag "v1"
  std::string error;
  Corpus() = default;
  Corpus(Corpus&&) = default;
  Corpus& operator=(Corpus&&) = delete;
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;
  ~Corpus() {
    store.reset();
    std::error_code ignored;
    if (!directory.empty()) std::filesystem::remove_all(directory, ignored);
  }
};

// Copies the first regular files (in name order) of the library directory up to kTarBytes.
void copy_library_files(const std::string& root) {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/usr/lib/x86_64-linux-gnu", error)) {
    if (entry.is_regular_file(error) && !entry.is_symlink(error)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::uintmax_t total = 0;
  for (const auto& file : files) {
    const std::uintmax_t size = std::filesystem::file_size(file, error);
    if (error || total + size > kTarBytes) continue;
    if (std::filesystem::copy_file(file, root + "/" + file.filename().string(), error)) {
      total += size;
    }
  }
}

// The tar as a one-layer gzip image (zlib level 6, as docker writes them) tagged v1.
strata::Result<void> write_gzip_image(const std::string& directory,
                                      const std::vector<std::uint8_t>& tar) {
  auto layout = strata::oci::OciLayout::open_or_create(directory);
  if (!layout.ok()) return std::move(layout).error();
  auto blob = layout->begin_blob();
  if (!blob.ok()) return std::move(blob).error();
  strata::oci::LayerWriterOptions gzip;
  gzip.gzip_engine = strata::oci::GzipEngine::kZlib;
  auto writer = strata::oci::LayerWriter::create(
      gzip, [&](strata::ByteSpan bytes) -> strata::Result<void> { return blob->write(bytes); });
  if (!writer.ok()) return std::move(writer).error();
  STRATA_TRY(writer->write(tar));
  auto digests = writer->finish();
  if (!digests.ok()) return std::move(digests).error();
  auto layer = blob->commit(digests->media_type);
  if (!layer.ok()) return std::move(layer).error();
  strata::oci::ImageConfig config;
  config.os = "linux";
  config.architecture = "amd64";
  config.diff_ids.push_back(digests->diff_id);
  const std::string config_json = strata::oci::write_image_config(config);
  auto config_descriptor =
      layout->write_blob(strata::oci::kMediaTypeImageConfig,
                         strata::ByteSpan(reinterpret_cast<const std::uint8_t*>(config_json.data()),
                                          config_json.size()));
  if (!config_descriptor.ok()) return std::move(config_descriptor).error();
  strata::oci::Manifest manifest;
  manifest.config = *config_descriptor;
  manifest.layers.push_back(*layer);
  const std::string manifest_json = strata::oci::write_manifest(manifest);
  auto manifest_descriptor = layout->write_blob(
      manifest.media_type,
      strata::ByteSpan(reinterpret_cast<const std::uint8_t*>(manifest_json.data()),
                       manifest_json.size()));
  if (!manifest_descriptor.ok()) return std::move(manifest_descriptor).error();
  return layout->set_tag("v1", *manifest_descriptor);
}

Corpus make_corpus() {
  Corpus made;
  char name[] = "/tmp/strata_bench_chunked_XXXXXX";
  if (mkdtemp(name) == nullptr) {
    made.error = "mkdtemp failed";
    return made;
  }
  made.directory = name;
  const std::string root = made.directory + "/root";
  std::filesystem::create_directories(root);
  copy_library_files(root);
  auto written = strata::oci::write_directory_tar(
      root, {}, [&made](strata::ByteSpan piece) -> strata::Result<void> {
        made.tar.insert(made.tar.end(), piece.begin(), piece.end());
        return {};
      });
  if (!written.ok()) {
    made.error = written.error().message;
    return made;
  }
  strata::StoreOptions options;
  options.create_if_missing = true;
  auto store = strata::ChunkStore::open(made.directory + "/store", options);
  if (!store.ok()) {
    made.error = store.error().message;
    return made;
  }
  made.store.emplace(std::move(*store));
  auto ingested = strata::ingest_layer_bytes(*made.store, made.tar, strata::IngestOptions{});
  if (!ingested.ok()) {
    made.error = ingested.error().message;
    return made;
  }
  auto record = made.store->find_layer(ingested->diff_id);
  if (!record.ok()) {
    made.error = record.error().message;
    return made;
  }
  auto recipe = strata::parse_recipe(record->recipe);
  if (!recipe.ok()) {
    made.error = recipe.error().message;
    return made;
  }
  auto layout = write_gzip_image(made.directory + "/layout", made.tar);
  if (!layout.ok()) {
    made.error = layout.error().message;
    return made;
  }
  made.layout = made.directory + "/layout";
  std::uint64_t offset = 0;
  for (const strata::RecipeSegment& segment : recipe->segments()) {
    if (segment.kind == strata::RecipeSegmentKind::kChunk) {
      made.chunks.push_back({offset, segment.length, segment.digest});
    }
    offset += segment.length;
  }
  return made;
}

Corpus& corpus() {
  static Corpus corpus = make_corpus();
  return corpus;
}

enum class Target { kZstdChunkedReusingFrames, kZstdChunkedCompressing, kEstargz };

void bench_chunked_writer(benchmark::State& state, Target target) {
  Corpus& data = corpus();
  if (!data.error.empty() || data.tar.empty()) {
    state.SkipWithError(("no corpus: " + data.error).c_str());
    return;
  }
  std::uint64_t compressed = 0;
  const auto sink = [&compressed](strata::ByteSpan bytes) -> strata::Result<void> {
    compressed += bytes.size();
    return {};
  };
  const strata::fastpull::ChunkFrameProvider frames =
      [&data](const strata::Digest& digest,
              strata::ByteSpan) -> strata::Result<std::vector<std::uint8_t>> {
    auto stored = data.store->read_stored_chunk(digest);
    if (!stored.ok() || stored->codec != strata::Codec::kZstd) return std::vector<std::uint8_t>();
    return std::move(stored->bytes);
  };
  strata::fastpull::ChunkedWriteOptions options;
  for (auto _ : state) {
    compressed = 0;
    bool ok = false;
    if (target == Target::kEstargz) {
      options.format = strata::fastpull::ChunkedFormat::kEstargz;
      options.level = 1;
      ok = strata::fastpull::write_estargz_layer(data.tar, data.chunks, options, sink).ok();
    } else {
      ok = strata::fastpull::write_zstd_chunked_layer(data.tar, data.chunks,
                                                      target == Target::kZstdChunkedReusingFrames
                                                          ? frames
                                                          : strata::fastpull::ChunkFrameProvider{},
                                                      options, sink)
               .ok();
    }
    if (!ok) {
      state.SkipWithError("writer failed");
      return;
    }
    benchmark::DoNotOptimize(compressed);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.tar.size()));
  state.counters["ratio"] = static_cast<double>(data.tar.size()) /
                            static_cast<double>(std::max<std::uint64_t>(compressed, 1));
}

enum class ConvertCase { kZstd, kZstdFromStore, kZstdChunked };

// One whole convert_image per iteration; the output layout (and, cold, the store) are removed
// between iterations outside the timed part.
void bench_convert(benchmark::State& state, ConvertCase which, bool cold) {
  Corpus& data = corpus();
  if (!data.error.empty() || data.tar.empty()) {
    state.SkipWithError(("no corpus: " + data.error).c_str());
    return;
  }
  strata::fastpull::ConvertOptions options;
  options.target = which == ConvertCase::kZstdChunked
                       ? strata::fastpull::ConvertTarget::kZstdChunked
                       : strata::fastpull::ConvertTarget::kZstd;
  options.from_store = which == ConvertCase::kZstdFromStore;
  const std::string out = data.directory + "/converted";
  const std::string cold_store = data.directory + "/cold-store";
  for (auto _ : state) {
    state.PauseTiming();
    std::error_code ignored;
    std::filesystem::remove_all(out, ignored);
    std::filesystem::remove_all(cold_store, ignored);
    std::optional<strata::ChunkStore> fresh;
    if (cold) {
      strata::StoreOptions store_options;
      store_options.create_if_missing = true;
      auto opened = strata::ChunkStore::open(cold_store, store_options);
      if (!opened.ok()) {
        state.SkipWithError(opened.error().message.c_str());
        return;
      }
      fresh.emplace(std::move(*opened));
    }
    state.ResumeTiming();
    auto report = strata::fastpull::convert_image(cold ? *fresh : *data.store, data.layout, "v1",
                                                  out, "v1", options);
    if (!report.ok()) {
      state.SkipWithError(report.error().message.c_str());
      return;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.tar.size()));
}

const int kRegistered = [] {
  benchmark::RegisterBenchmark("zstd_chunked/reuse_store_frames", bench_chunked_writer,
                               Target::kZstdChunkedReusingFrames)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("zstd_chunked/compress_level:3", bench_chunked_writer,
                               Target::kZstdChunkedCompressing)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("estargz/isal_level:1", bench_chunked_writer, Target::kEstargz)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (const bool cold : {false, true}) {
    const std::string store = cold ? "cold" : "warm";
    benchmark::RegisterBenchmark(("convert/gzip_to_zstd/" + store).c_str(), bench_convert,
                                 ConvertCase::kZstd, cold)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("convert/gzip_to_zstd_from_store/" + store).c_str(),
                                 bench_convert, ConvertCase::kZstdFromStore, cold)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("convert/gzip_to_zstd_chunked/" + store).c_str(), bench_convert,
                                 ConvertCase::kZstdChunked, cold)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
