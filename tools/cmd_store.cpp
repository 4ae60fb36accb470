// The store commands of the tool: `strata ingest`, `export`, `ls`, `stats`, `verify`, `gc`. Each
// opens the store directory given by --store (ingest creates it), or a remote store
// (registry://HOST/REPO, tools/remote_store_commands.h), prints a human summary or, with --json,
// one JSON object, and turns library errors into one line on stderr and an exit code.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "strata/engine.h"
#include "tools/cli_support.h"
#include "tools/commands.h"
#include "tools/remote_store_commands.h"

namespace strata::tool {
namespace {

struct StoreCommandOptions {
  std::string store;
  bool json = false;
  RemoteStoreFlags remote;
};

Result<StoreHandle> open_store(const StoreCommandOptions& common, bool create) {
  return StoreHandle::open(common.store, common.remote, create);
}

nlohmann::json publish_json(const registry::RemotePublishReport& report,
                            const registry::TransferCounters& wire) {
  return {{"generation", report.generation},
          {"layers_published", report.layers_published},
          {"chunks_pushed", report.chunks_pushed},
          {"chunks_deduplicated", report.chunks_deduplicated},
          {"packs_pushed", report.packs_pushed},
          {"pack_bytes_pushed", report.pack_bytes_pushed},
          {"catalogue_bytes_pushed", report.catalogue_bytes_pushed},
          {"attempts", report.attempts},
          {"wire_bytes_sent", wire.bytes_sent},
          {"wire_bytes_received", wire.bytes_received}};
}

void print_json(const nlohmann::json& value) {
  std::cout << value.dump(2) << '\n';
}

double ratio(std::uint64_t numerator, std::uint64_t denominator) {
  return denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
}

nlohmann::json ingest_json(const std::string& path, const IngestReport& report) {
  return {{"path", path},
          {"diff_id", report.diff_id.to_string()},
          {"layer_digest", report.layer_digest.to_string()},
          {"media_type", report.media_type},
          {"compression", report.compression},
          {"input_bytes", report.input_bytes},
          {"tar_bytes", report.tar_bytes},
          {"entries", report.entries},
          {"chunks", report.chunks},
          {"chunked_bytes", report.chunked_bytes},
          {"new_chunks", report.new_chunks},
          {"new_raw_bytes", report.new_raw_bytes},
          {"new_stored_bytes", report.new_stored_bytes},
          {"recipe_bytes", report.recipe_bytes},
          {"fingerprint_hits", report.fingerprint_hits},
          {"model_files", report.model_files},
          {"byte_grouped_chunks", report.byte_grouped_chunks},
          {"byte_grouped_stored_bytes", report.byte_grouped_stored_bytes},
          {"delta_base_layer",
           report.delta_base_layer == Digest() ? "" : report.delta_base_layer.to_string()},
          {"delta_chunks", report.delta_chunks},
          {"delta_stored_bytes", report.delta_stored_bytes},
          {"delta_sketch_chunks", report.delta_sketch_chunks},
          {"delta_sketch_index_chunks", report.delta_sketch_index_chunks},
          {"dedup_ratio", ratio(report.tar_bytes, report.new_stored_bytes + report.recipe_bytes)},
          {"already_present", report.already_present},
          {"seconds", report.seconds},
          {"stage_seconds",
           {{"read_and_cut", report.stage_seconds.read_and_cut},
            {"cut_wall", report.stage_seconds.cut_wall},
            {"cut_scan_cpu", report.stage_seconds.cut_scan_cpu},
            {"hash", report.stage_seconds.hash},
            {"compress", report.stage_seconds.compress},
            {"verify", report.stage_seconds.verify},
            {"write", report.stage_seconds.write},
            {"commit", report.stage_seconds.commit}}},
          {"mb_per_second", ratio(report.tar_bytes, 1) / 1e6 / std::max(report.seconds, 1e-9)}};
}

int run_ingest(const StoreCommandOptions& common, const std::vector<std::string>& layers,
               const IngestOptions& options) {
  auto handle = open_store(common, true);
  if (!handle.ok()) return report_error(handle.error());
  ChunkStore* store = &handle->store();
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& path : layers) {
    std::error_code size_error;
    const auto size = path == "-" ? 0 : std::filesystem::file_size(path, size_error);
    ProgressBar bar("ingest " + path, size_error ? 0 : size);
    auto report = ingest_layer_file(*store, path, options, [&bar](const IngestProgress& done) {
      bar.update(done.input_bytes);
    });
    if (!report.ok()) return report_error(report.error());
    if (common.json) {
      results.push_back(ingest_json(path, *report));
      continue;
    }
    std::printf("%s\n  diff_id     %s\n  layer       %s (%s, %s)\n", path.c_str(),
                report->diff_id.to_string().c_str(), report->layer_digest.to_string().c_str(),
                report->compression.c_str(), format_bytes(report->input_bytes).c_str());
    std::printf("  tar         %s in %llu entries, %llu chunk references\n",
                format_bytes(report->tar_bytes).c_str(),
                static_cast<unsigned long long>(report->entries),
                static_cast<unsigned long long>(report->chunks));
    std::printf("  new chunks  %llu, %s raw -> %s stored (+ %s recipe)%s\n",
                static_cast<unsigned long long>(report->new_chunks),
                format_bytes(report->new_raw_bytes).c_str(),
                format_bytes(report->new_stored_bytes).c_str(),
                format_bytes(report->recipe_bytes).c_str(),
                report->already_present ? " [layer was already stored]" : "");
    if (report->model_files != 0) {
      std::printf("  models      %llu files tensor-aware, %llu chunks byte-grouped (%s stored)\n",
                  static_cast<unsigned long long>(report->model_files),
                  static_cast<unsigned long long>(report->byte_grouped_chunks),
                  format_bytes(report->byte_grouped_stored_bytes).c_str());
    }
    if (report->delta_base_layer != Digest()) {
      std::printf("  deltas      %llu chunks coded against layer %s (%s stored)\n",
                  static_cast<unsigned long long>(report->delta_chunks),
                  report->delta_base_layer.to_string().c_str(),
                  format_bytes(report->delta_stored_bytes).c_str());
    }
    const IngestStageSeconds& steps = report->stage_seconds;
    std::printf(
        "  time        %.2f s: read+cut %.2f (cut %.2f; scans %.2f CPU), hash %.2f, compress "
        "%.2f, verify %.2f, write %.2f, commit %.2f (wall seconds summed over threads)\n",
        report->seconds, steps.read_and_cut, steps.cut_wall, steps.cut_scan_cpu, steps.hash,
        steps.compress, steps.verify, steps.write, steps.commit);
    std::printf("  dedup ratio %.2fx (tar bytes / bytes added)   %.1f MB/s\n",
                ratio(report->tar_bytes, report->new_stored_bytes + report->recipe_bytes),
                static_cast<double>(report->tar_bytes) / 1e6 / std::max(report->seconds, 1e-9));
  }
  if (registry::RemoteStore* remote = handle->remote(); remote != nullptr) {
    auto published = remote->publish();
    if (!published.ok()) return report_error(published.error());
    if (common.json) {
      print_json({{"layers", results}, {"publish", publish_json(*published, remote->counters())}});
      return kExitOk;
    }
    std::printf(
        "published generation %llu: %llu layers, %llu new chunks in %llu packs (%s), "
        "%llu chunks already in the registry, catalogue %s, %llu attempts\n",
        static_cast<unsigned long long>(published->generation),
        static_cast<unsigned long long>(published->layers_published),
        static_cast<unsigned long long>(published->chunks_pushed),
        static_cast<unsigned long long>(published->packs_pushed),
        format_bytes(published->pack_bytes_pushed).c_str(),
        static_cast<unsigned long long>(published->chunks_deduplicated),
        format_bytes(published->catalogue_bytes_pushed).c_str(),
        static_cast<unsigned long long>(published->attempts));
    return kExitOk;
  }
  if (common.json) print_json(results.size() == 1 ? results[0] : results);
  return kExitOk;
}

int run_export(const StoreCommandOptions& common, const std::string& layer,
               const std::string& output) {
  auto digest = Digest::parse(layer);
  if (!digest.ok()) return report_error(digest.error());
  auto handle = open_store(common, false);
  if (!handle.ok()) return report_error(handle.error());
  ChunkStore* store = &handle->store();
  registry::RemoteFetchReport fetched;
  if (registry::RemoteStore* remote = handle->remote(); remote != nullptr) {
    auto fetch = remote->fetch_layer(*digest);
    if (!fetch.ok()) return report_error(fetch.error());
    fetched = *fetch;
    if (!common.json) {
      std::fprintf(stderr, "fetched %llu chunks (%s in %llu ranges) from the registry%s\n",
                   static_cast<unsigned long long>(fetched.chunks_fetched),
                   format_bytes(fetched.stored_bytes_fetched).c_str(),
                   static_cast<unsigned long long>(fetched.range_requests),
                   fetched.already_cached ? "; the layer was cached" : "");
    }
  }
  int fd = STDOUT_FILENO;
  std::string temp_path;
  if (output != "-") {
    // A fresh name opened O_EXCL (mkostemp): never a file or symlink someone planted beside the
    // output (docs/THREAT_MODEL.md); mode as a plain create would give it.
    temp_path = output + ".strata-tmp-XXXXXX";
    fd = ::mkostemp(temp_path.data(), O_CLOEXEC);
    if (fd >= 0) {
      const mode_t mask = ::umask(0);
      ::umask(mask);
      ::fchmod(fd, 0644 & ~mask);
    }
    if (fd < 0) {
      return report_error(
          make_error(ErrorCode::kIo, "cannot create '" + temp_path + "': " + std::strerror(errno)));
    }
  } else if (::isatty(STDOUT_FILENO) == 1) {
    return report_error(make_error(ErrorCode::kInvalidArgument,
                                   "refusing to write a tar to a terminal; use -o FILE or a pipe"));
  }
  const auto write_all = [fd](ByteSpan bytes) -> Result<void> {
    while (!bytes.empty()) {
      const ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
      if (wrote < 0) {
        if (errno == EINTR) continue;
        return make_error(ErrorCode::kIo, std::string("write failed: ") + std::strerror(errno));
      }
      bytes = bytes.subspan(static_cast<std::size_t>(wrote));
    }
    return {};
  };
  auto report = export_layer_tar(*store, *digest, write_all);
  if (fd != STDOUT_FILENO) {
    const bool synced = report.ok() && ::fsync(fd) == 0;
    ::close(fd);
    if (!synced || ::rename(temp_path.c_str(), output.c_str()) != 0) {
      ::unlink(temp_path.c_str());
      if (report.ok()) {
        return report_error(
            make_error(ErrorCode::kIo, "cannot finish '" + output + "': " + std::strerror(errno)));
      }
    }
  }
  if (!report.ok()) return report_error(report.error());
  if (common.json) {
    print_json({{"diff_id", report->diff_id.to_string()},
                {"tar_bytes", report->tar_bytes},
                {"seconds", report->seconds},
                {"chunks_fetched", fetched.chunks_fetched},
                {"stored_bytes_fetched", fetched.stored_bytes_fetched},
                {"range_requests", fetched.range_requests}});
  } else if (output != "-") {
    std::printf("exported %s (%s) to %s, %.1f MB/s\n", report->diff_id.to_string().c_str(),
                format_bytes(report->tar_bytes).c_str(), output.c_str(),
                static_cast<double>(report->tar_bytes) / 1e6 / std::max(report->seconds, 1e-9));
  }
  return kExitOk;
}

}  // namespace

nlohmann::json list_layers_output(const std::vector<LayerRecord>& layers, bool json) {
  nlohmann::json list = nlohmann::json::array();
  for (const LayerRecord& layer : layers) {
    if (json) {
      list.push_back({{"diff_id", layer.diff_id.to_string()},
                      {"layer_digest", layer.layer_digest.to_string()},
                      {"media_type", layer.media_type},
                      {"size", layer.size},
                      {"created", layer.created_unix_seconds}});
    } else {
      std::printf("%s  %10s  %s\n", layer.diff_id.to_string().c_str(),
                  format_bytes(layer.size).c_str(), layer.media_type.c_str());
    }
  }
  return list;
}

namespace {

int run_ls(const StoreCommandOptions& common) {
  auto handle = open_store(common, false);
  if (!handle.ok()) return report_error(handle.error());
  if (handle->remote() != nullptr) return run_remote_ls(*handle->remote(), common.json);
  ChunkStore* store = &handle->store();
  auto layers = store->list_layers();
  if (!layers.ok()) return report_error(layers.error());
  const nlohmann::json list = list_layers_output(*layers, common.json);
  if (common.json) print_json({{"layers", list}});
  return kExitOk;
}

int run_stats(const StoreCommandOptions& common) {
  auto handle = open_store(common, false);
  if (!handle.ok()) return report_error(handle.error());
  if (handle->remote() != nullptr) return run_remote_stats(*handle->remote(), common.json);
  ChunkStore* store = &handle->store();
  auto stats = store->stats();
  if (!stats.ok()) return report_error(stats.error());
  auto layers = store->list_layers();
  if (!layers.ok()) return report_error(layers.error());
  std::uint64_t logical = 0;
  for (const LayerRecord& layer : *layers) logical += layer.size;
  if (common.json) {
    print_json({{"layers", stats->layers},
                {"logical_bytes", logical},
                {"chunks", stats->chunks},
                {"referenced_chunks", stats->referenced_chunks},
                {"corrupt_chunks", stats->corrupt_chunks},
                {"raw_bytes", stats->raw_bytes},
                {"stored_bytes", stats->stored_bytes},
                {"packs", stats->packs},
                {"pack_file_bytes", stats->pack_file_bytes},
                {"dedup_ratio", ratio(logical, stats->stored_bytes)}});
    return kExitOk;
  }
  std::printf("layers        %llu (%s as tars)\n", static_cast<unsigned long long>(stats->layers),
              format_bytes(logical).c_str());
  std::printf("chunks        %llu (%llu referenced, %llu corrupt)\n",
              static_cast<unsigned long long>(stats->chunks),
              static_cast<unsigned long long>(stats->referenced_chunks),
              static_cast<unsigned long long>(stats->corrupt_chunks));
  std::printf("chunk bytes   %s raw, %s stored in %llu packs (%s on disk)\n",
              format_bytes(stats->raw_bytes).c_str(), format_bytes(stats->stored_bytes).c_str(),
              static_cast<unsigned long long>(stats->packs),
              format_bytes(stats->pack_file_bytes).c_str());
  std::printf("dedup ratio   %.2fx (layer bytes / stored bytes)\n",
              ratio(logical, stats->stored_bytes));
  return kExitOk;
}

int run_verify(const StoreCommandOptions& common) {
  auto handle = open_store(common, false);
  if (!handle.ok()) return report_error(handle.error());
  // A remote store's report also names the catalogue generation it checked; its bytes were fetched.
  registry::RemoteStore* remote = handle->remote();
  auto report = remote != nullptr ? remote->verify() : handle->store().verify();
  if (!report.ok()) return report_error(report.error());
  if (common.json) {
    nlohmann::json corrupt = nlohmann::json::array();
    for (const Digest& digest : report->corrupt_chunks) corrupt.push_back(digest.to_string());
    nlohmann::json out = {{"clean", report->clean()},
                          {"chunks_checked", report->chunks_checked},
                          {"layers_checked", report->layers_checked},
                          {"bytes_read", report->bytes_read},
                          {"corrupt_chunks", corrupt},
                          {"problems", report->problems}};
    if (remote != nullptr) out["generation"] = remote->catalogue().generation;
    print_json(out);
  } else {
    for (const std::string& problem : report->problems) {
      std::fprintf(stderr, "problem: %s\n", problem.c_str());
    }
    std::printf("%s: %llu chunks and %llu layers checked, %s %s, %zu problems\n",
                report->clean() ? "clean" : "NOT CLEAN",
                static_cast<unsigned long long>(report->chunks_checked),
                static_cast<unsigned long long>(report->layers_checked),
                format_bytes(report->bytes_read).c_str(), remote != nullptr ? "fetched" : "read",
                report->problems.size());
  }
  return report->clean() ? kExitOk : kExitFailure;
}

int run_gc(const StoreCommandOptions& common) {
  if (registry::names_remote_store(common.store)) {
    return report_error(make_error(
        ErrorCode::kUnsupported,
        "gc is not supported on a remote store (docs/remote-store.md); run it on a local store"));
  }
  auto handle = open_store(common, false);
  if (!handle.ok()) return report_error(handle.error());
  ChunkStore* store = &handle->store();
  auto report = store->gc();
  if (!report.ok()) return report_error(report.error());
  if (common.json) {
    print_json({{"chunks_removed", report->chunks_removed},
                {"packs_deleted", report->packs_deleted},
                {"packs_rewritten", report->packs_rewritten},
                {"orphan_files_removed", report->orphan_files_removed},
                {"bytes_freed", report->bytes_freed},
                {"deferred_for_active_sessions", report->deferred_for_active_sessions}});
  } else {
    std::printf("gc: %llu chunks removed, %llu packs deleted, %llu rewritten, %s freed%s\n",
                static_cast<unsigned long long>(report->chunks_removed),
                static_cast<unsigned long long>(report->packs_deleted),
                static_cast<unsigned long long>(report->packs_rewritten),
                format_bytes(report->bytes_freed).c_str(),
                report->deferred_for_active_sessions ? " (some kept: ingests running)" : "");
  }
  return kExitOk;
}

CLI::App* add_store_command(CLI::App& app, const char* name, const char* description,
                            const std::shared_ptr<StoreCommandOptions>& common) {
  CLI::App* command = app.add_subcommand(name, description);
  command->add_option("--store", common->store, "Chunk store directory, or registry://HOST/REPO")
      ->required();
  command->add_flag("--json", common->json, "Machine-readable output");
  add_remote_store_flags(*command, common->remote);
  return command;
}

}  // namespace

void register_store_commands(CLI::App& app, int& exit_code) {
  {
    auto common = std::make_shared<StoreCommandOptions>();
    auto layers = std::make_shared<std::vector<std::string>>();
    auto options = std::make_shared<IngestOptions>();
    auto trust = std::make_shared<std::string>("verify");
    auto grouping = std::make_shared<std::string>("smaller");
    auto plain_models = std::make_shared<bool>(false);
    auto delta_base = std::make_shared<std::string>();
    CLI::App* command = add_store_command(
        app, "ingest",
        "Store a layer (tar, tar+gzip, tar+zstd; '-' for stdin) as new chunks + recipe", common);
    command->add_option("layers", *layers, "Layer blobs")->required();
    command->add_option("--level", options->zstd_level, "zstd level for new chunks (1..19)");
    command->add_option("--threads", options->threads, "Worker threads (0: all cores)");
    command->add_option("--min", options->chunker.min_size, "Minimum chunk size");
    command->add_option("--avg", options->chunker.avg_size, "Average chunk size");
    command->add_option("--max", options->chunker.max_size, "Maximum chunk size");
    command->add_option("--trust", *trust,
                        "verify (default: SHA-256 every chunk) or local (trusted input)");
    command->add_flag("--no-model-aware", *plain_models,
                      "Chunk safetensors/GGUF files like any file (no tensor-boundary cuts)");
    command->add_option("--byte-grouping", *grouping,
                        "Codec for float-tensor chunks: smaller (default: byte-grouped or zstd, "
                        "whichever is smaller), first (byte-grouped when it clearly wins), off");
    command->add_option("--delta-base", *delta_base,
                        "Store new chunks as deltas against the same paths of a stored layer: "
                        "its diff_id (sha256:...), or 'auto' for the layer stored last");
    command->callback([=, &exit_code] {
      options->model_aware = !*plain_models;
      if (*delta_base == "auto") {
        options->delta.base = DeltaBase::kNewest;
      } else if (!delta_base->empty()) {
        auto digest = Digest::parse(*delta_base);
        if (!digest.ok()) {
          exit_code = report_error(make_error(
              ErrorCode::kInvalidArgument,
              "--delta-base must be 'auto' or a layer digest: " + digest.error().message));
          return;
        }
        options->delta.base = DeltaBase::kLayer;
        options->delta.layer = *digest;
      }
      if (*grouping == "off") {
        options->byte_grouping = ByteGrouping::kOff;
      } else if (*grouping == "first") {
        options->byte_grouping = ByteGrouping::kGroupingFirst;
      } else if (*grouping != "smaller") {
        exit_code = report_error(make_error(
            ErrorCode::kInvalidArgument,
            "--byte-grouping must be 'smaller', 'first' or 'off', not '" + *grouping + "'"));
        return;
      }
      if (*trust == "local") {
        options->trust = TrustMode::kLocal;
      } else if (*trust != "verify") {
        exit_code =
            report_error(make_error(ErrorCode::kInvalidArgument,
                                    "--trust must be 'verify' or 'local', not '" + *trust + "'"));
        return;
      }
      exit_code = run_ingest(*common, *layers, *options);
    });
  }
  {
    auto common = std::make_shared<StoreCommandOptions>();
    auto layer = std::make_shared<std::string>();
    auto output = std::make_shared<std::string>("-");
    auto format = std::make_shared<std::string>("tar");
    CLI::App* command =
        add_store_command(app, "export", "Write a stored layer back out, byte for byte", common);
    command->add_option("layer", *layer, "diff_id or layer digest (sha256:...)")->required();
    command->add_option("-o,--output", *output, "Output file ('-': stdout)");
    command->add_option("--format", *format, "tar");
    command->callback([=, &exit_code] {
      if (*format != "tar") {
        exit_code = report_error(make_error(
            ErrorCode::kInvalidArgument,
            "export --format " + *format + " is not built yet; only 'tar' is available"));
        return;
      }
      exit_code = run_export(*common, *layer, *output);
    });
  }
  {
    auto common = std::make_shared<StoreCommandOptions>();
    add_store_command(app, "ls", "List the layers in a store", common)
        ->callback([common, &exit_code] { exit_code = run_ls(*common); });
  }
  {
    auto common = std::make_shared<StoreCommandOptions>();
    add_store_command(app, "stats", "Sizes and dedup ratio of a store", common)
        ->callback([common, &exit_code] { exit_code = run_stats(*common); });
  }
  {
    auto common = std::make_shared<StoreCommandOptions>();
    add_store_command(app, "verify", "Re-read and re-hash every chunk and recipe", common)
        ->callback([common, &exit_code] { exit_code = run_verify(*common); });
  }
  {
    auto common = std::make_shared<StoreCommandOptions>();
    add_store_command(app, "gc", "Remove chunks no layer references", common)
        ->callback([common, &exit_code] { exit_code = run_gc(*common); });
  }
}

}  // namespace strata::tool
