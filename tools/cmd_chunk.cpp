// `strata chunk FILE...`: content-defined chunking of files with the streaming Chunker, one line
// per chunk (offset, length, SHA-256; casync adds its SHA-512/256 chunk id) and a summary (count,
// mean/min/max size, throughput), or the same as JSON with --json. Sizes left unset take the
// chosen algorithm's reference defaults (xet 8/64/128 KiB). Files are read in 1 MiB blocks, so any
// size fits in bounded memory.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct ChunkCommandOptions {
  std::vector<std::string> files;
  std::string algorithm = "fastcdc2020";
  ChunkerOptions chunker;
  bool min_given = false, avg_given = false, max_given = false;
  bool json = false;
  bool quiet = false;
};

struct FileSummary {
  std::uint64_t bytes = 0;
  std::uint64_t chunks = 0;
  std::uint32_t smallest = std::numeric_limits<std::uint32_t>::max();
  std::uint32_t largest = 0;
  double seconds = 0;
};

int run_chunk(const ChunkCommandOptions& options) {
  ChunkerOptions chunker_options = options.chunker;
  auto algorithm = parse_chunk_algorithm(options.algorithm);
  if (!algorithm.ok()) return report_error(algorithm.error());
  chunker_options.algorithm = *algorithm;
  const ChunkerOptions defaults = default_chunker_options(*algorithm);
  if (!options.min_given) chunker_options.min_size = defaults.min_size;
  if (!options.avg_given) chunker_options.avg_size = defaults.avg_size;
  if (!options.max_given) chunker_options.max_size = defaults.max_size;
  const bool casync_ids = *algorithm == ChunkAlgorithm::kCasync;
  auto chunker = Chunker::create(chunker_options);
  if (!chunker.ok()) return report_error(chunker.error());

  nlohmann::json report = nlohmann::json::array();
  FileSummary total;
  for (const std::string& path : options.files) {
    FileSummary summary;
    nlohmann::json chunk_list = nlohmann::json::array();
    const auto on_chunk = [&](const Chunk& chunk, ByteSpan bytes) {
      const std::string digest = sha256_of(bytes).to_string();
      ++summary.chunks;
      summary.smallest = std::min(summary.smallest, chunk.length);
      summary.largest = std::max(summary.largest, chunk.length);
      const std::string casync_id = casync_ids ? casync_chunk_id(bytes) : std::string();
      if (options.json) {
        nlohmann::json entry = {{"offset", chunk.offset},
                                {"length", chunk.length},
                                {"hash", chunk.hash},
                                {"digest", digest}};
        if (casync_ids) entry["casync_id"] = casync_id;
        chunk_list.push_back(std::move(entry));
      } else if (!options.quiet) {
        std::cout << chunk.offset << ' ' << chunk.length << ' ' << digest;
        if (casync_ids) std::cout << ' ' << casync_id;
        std::cout << '\n';
      }
    };
    const auto started = std::chrono::steady_clock::now();
    std::error_code size_error;
    const auto file_size = std::filesystem::file_size(path, size_error);
    ProgressBar progress("chunk " + path, size_error ? 0 : file_size);
    chunker->reset();
    auto read = read_file_blocks(
        path, std::size_t{1} << 20U, [&](ByteSpan block) { chunker->feed(block, on_chunk); },
        [&](std::uint64_t done) { progress.update(done); });
    if (!read.ok()) return report_error(read.error());
    chunker->finish(on_chunk);
    summary.bytes = *read;
    summary.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (summary.chunks == 0) summary.smallest = 0;
    const double mean = summary.chunks == 0 ? 0.0
                                            : static_cast<double>(summary.bytes) /
                                                  static_cast<double>(summary.chunks);
    const double megabytes_per_second =
        summary.seconds > 0 ? static_cast<double>(summary.bytes) / 1e6 / summary.seconds : 0.0;
    if (options.json) {
      report.push_back({{"path", path},
                        {"bytes", summary.bytes},
                        {"chunks", summary.chunks},
                        {"mean_size", mean},
                        {"min_size", summary.smallest},
                        {"max_size", summary.largest},
                        {"seconds", summary.seconds},
                        {"mb_per_second", megabytes_per_second},
                        {"chunk_list", std::move(chunk_list)}});
    } else {
      std::printf(
          "%s: %llu chunks, %s, mean %.0f B, min %u B, max %u B, %.1f MB/s "
          "(chunking + SHA-256, kernel %s)\n",
          path.c_str(), static_cast<unsigned long long>(summary.chunks),
          format_bytes(summary.bytes).c_str(), mean, summary.smallest, summary.largest,
          megabytes_per_second, std::string(active_kernel_name()).c_str());
    }
    total.bytes += summary.bytes;
    total.chunks += summary.chunks;
    total.seconds += summary.seconds;
  }
  if (options.json) {
    nlohmann::json output = {
        {"algorithm", std::string(chunk_algorithm_name(chunker_options.algorithm))},
        {"min_size", chunker_options.min_size},
        {"avg_size", chunker_options.avg_size},
        {"max_size", chunker_options.max_size},
        {"level", chunker_options.level},
        {"seed", chunker_options.seed},
        {"kernel", std::string(active_kernel_name())},
        {"files", std::move(report)},
        {"total_bytes", total.bytes},
        {"total_chunks", total.chunks}};
    std::cout << output.dump(2) << '\n';
  } else if (options.files.size() > 1) {
    std::printf("total: %llu files, %llu chunks, %s, %.1f MB/s\n",
                static_cast<unsigned long long>(options.files.size()),
                static_cast<unsigned long long>(total.chunks), format_bytes(total.bytes).c_str(),
                total.seconds > 0 ? static_cast<double>(total.bytes) / 1e6 / total.seconds : 0.0);
  }
  return kExitOk;
}

}  // namespace

void register_chunk_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<ChunkCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "chunk", "Cut files into content-defined chunks; print offset, length and SHA-256 of each");
  command->add_option("files", options->files, "Files to chunk")->required();
  command->add_option("--algorithm", options->algorithm,
                      "fastcdc2020 (default), fastcdc2016, xet or casync");
  CLI::Option* min_option =
      command->add_option("--min", options->chunker.min_size, "Minimum chunk size in bytes");
  CLI::Option* avg_option = command->add_option("--avg", options->chunker.avg_size,
                                                "Average (target) chunk size in bytes");
  CLI::Option* max_option =
      command->add_option("--max", options->chunker.max_size, "Maximum chunk size in bytes");
  command->add_option("--level", options->chunker.level, "FastCDC normalization level 0..3");
  command->add_option("--seed", options->chunker.seed, "Gear table seed (hides cut points)");
  command->add_flag("--json", options->json, "Machine-readable output");
  command->add_flag("-q,--quiet", options->quiet, "Only the summary, no per-chunk lines");
  command->callback([options, min_option, avg_option, max_option, &exit_code] {
    options->min_given = min_option->count() > 0;
    options->avg_given = avg_option->count() > 0;
    options->max_given = max_option->count() > 0;
    exit_code = run_chunk(*options);
  });
}

}  // namespace strata::tool
