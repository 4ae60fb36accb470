// `strata pull REGISTRY/REPO:TAG --store DIR [--layout OUT] [--unpack ROOTFS]`: fetches an image
// from a registry (manifest, config, every layer blob, in parallel, each verified against its
// digest and its diff_id), ingests the layers into a chunk store, optionally writes the image into
// an OCI layout and unpacks its rootfs as the layers land (tools/pull_unpack.h). Chunked layers
// (zstd:chunked, eStargz) fetch only the chunks the store lacks. Reports the bytes received on the
// wire against the layers' sizes, and per layer how it came. Also registers `push`
// (tools/cmd_push.cpp): register_registry_commands() is the one entry point of both.
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "strata/registry.h"
#include "tools/cli_support.h"
#include "tools/commands.h"
#include "tools/pull_unpack.h"

namespace strata::tool {

namespace {

// Where a layer's time went (fastpull::PullStageTimes), in seconds.
nlohmann::json stages_json(const fastpull::PullStageTimes& stages) {
  return {{"toc_s", stages.toc},
          {"fetch_s", stages.fetch},
          {"fetch_wait_s", stages.fetch_wait},
          {"prepare_s", stages.prepare},
          {"decode_s", stages.decode},
          {"hash_s", stages.hash},
          {"diff_id_s", stages.diff_id},
          {"local_s", stages.local},
          {"store_s", stages.store},
          {"check_s", stages.check},
          {"commit_s", stages.commit},
          {"download_s", stages.download},
          {"ingest_s", stages.ingest}};
}

double fetched_percent_of(const registry::PullReport& report) {
  return report.layer_bytes == 0 ? 0.0
                                 : 100.0 * static_cast<double>(report.bytes_fetched) /
                                       static_cast<double>(report.layer_bytes);
}

nlohmann::json pull_json(const registry::ImageReference& source,
                         const registry::PullReport& report) {
  const double fetched_percent = fetched_percent_of(report);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& layer : report.layers) {
    layers.push_back({{"digest", layer.descriptor.digest.to_string()},
                      {"size", layer.descriptor.size},
                      {"diff_id", layer.diff_id.to_string()},
                      {"new_chunks", layer.new_chunks},
                      {"new_stored_bytes", layer.new_stored_bytes},
                      {"already_present", layer.already_present},
                      {"chunked", layer.chunked},
                      {"chunked_format", layer.chunked_format},
                      {"whole_reason", layer.whole_reason},
                      {"bytes_fetched", layer.bytes_fetched},
                      {"chunks_local", layer.chunks_local},
                      {"chunks_fetched", layer.chunks_fetched},
                      {"frames_adopted", layer.frames_adopted},
                      {"fetch_batches", layer.fetch_batches},
                      {"max_batch_bytes", layer.max_batch_bytes},
                      {"metadata_bytes", layer.metadata_bytes},
                      {"delta_chunks", layer.delta_chunks},
                      {"delta_bytes_fetched", layer.delta_bytes_fetched},
                      {"delta_stored_chunks", layer.delta_stored_chunks},
                      {"delta_fallbacks", layer.delta_fallbacks},
                      {"repeat_chunks", layer.repeat_chunks},
                      {"bytes_fetched_without_deltas", layer.bytes_fetched_without_deltas},
                      {"stages", stages_json(layer.stages)}});
  }
  return {{"source", source.to_string()},
          {"manifest_digest", report.manifest_digest.to_string()},
          {"layer_bytes", report.layer_bytes},
          {"bytes_fetched", report.bytes_fetched},
          {"bytes_fetched_without_deltas", report.bytes_fetched_without_deltas},
          {"deltas",
           {{"referrer", report.delta_referrer},
            {"refused", report.delta_refused},
            {"referrer_bytes", report.delta_referrer_bytes}}},
          {"fetched_percent", fetched_percent},
          {"wire_bytes_sent", report.wire.bytes_sent},
          {"requests", report.wire.requests},
          {"retries", report.wire.retries},
          {"layers", std::move(layers)}};
}

void print_pull_text(const registry::ImageReference& source, const registry::PullReport& report) {
  const double fetched_percent = fetched_percent_of(report);
  for (const auto& layer : report.layers) {
    std::cout << "layer " << layer.descriptor.digest.to_string() << " "
              << format_bytes(layer.descriptor.size);
    if (layer.already_present) {
      std::cout << " (already in the store)";
    } else if (layer.chunked) {
      std::cout << " " << layer.chunked_format << ": fetched " << format_bytes(layer.bytes_fetched)
                << ", chunks " << layer.chunks_local << " local / " << layer.chunks_fetched
                << " fetched";
      if (layer.delta_chunks != 0) {
        std::cout << " (" << layer.delta_chunks << " as deltas, "
                  << format_bytes(layer.delta_bytes_fetched) << "; without deltas "
                  << format_bytes(layer.bytes_fetched_without_deltas) << ")";
      }
    } else {
      std::cout << " whole (" << layer.whole_reason << ")";
    }
    std::cout << '\n';
  }
  char percent[32];
  std::snprintf(percent, sizeof percent, "%.1f", fetched_percent);
  std::cout << "pulled " << source.to_string() << " " << report.manifest_digest.to_string()
            << ": fetched " << report.bytes_fetched << " of " << report.layer_bytes << " bytes ("
            << percent << "%)\n";
  if (!report.delta_referrer.empty()) {
    std::cout << "deltas: referrer found (" << report.delta_referrer << "), "
              << report.bytes_fetched_without_deltas << " bytes without deltas\n";
  }
  if (!report.delta_refused.empty()) {
    std::cout << "deltas: referrer not used: " << report.delta_refused << '\n';
  }
}

}  // namespace

int run_registry_pull(const RegistryPullOptions& options) {
  auto source = registry::parse_image_reference(options.reference);
  if (!source.ok()) return report_error(source.error());
  if (options.store.empty() && options.layout.empty() && options.unpack.empty()) {
    return report_error(
        make_error(ErrorCode::kInvalidArgument, "pull needs --store, --layout and/or --unpack"));
  }
  // --unpack without --store: the layers go through a scratch store beside DIR.
  std::unique_ptr<ScratchStore> scratch;
  if (!options.unpack.empty() && options.store.empty()) {
    auto made = ScratchStore::create(options.unpack);
    if (!made.ok()) return report_error(made.error());
    scratch = std::move(*made);
  }
  auto opened_store = open_optional_store(scratch ? scratch->path() : options.store);
  if (!opened_store.ok()) return report_error(opened_store.error());
  std::optional<ChunkStore>& store = *opened_store;
  // Before anything is fetched: DIR must be empty or absent.
  std::unique_ptr<PullUnpack> unpack;
  if (!options.unpack.empty()) {
    auto begun = PullUnpack::begin(*store, options.unpack);
    if (!begun.ok()) return report_error(begun.error());
    unpack = std::move(*begun);
  }
  std::optional<oci::OciLayout> layout;
  std::string tag = options.tag.empty() ? source->tag : options.tag;
  if (tag.empty()) tag = "latest";
  if (!options.layout.empty()) {
    auto opened = oci::OciLayout::open_or_create(options.layout);
    if (!opened.ok()) return report_error(opened.error());
    layout.emplace(std::move(*opened));
  }
  auto client = open_registry_client(options.flags, source->registry);
  if (!client.ok()) return report_error(client.error());
  registry::PullOptions pull_options;
  pull_options.jobs = options.flags.jobs;
  pull_options.os = options.os;
  pull_options.architecture = options.architecture;
  pull_options.partial = !options.whole_layers;
  pull_options.deltas = !options.no_deltas;
  if (unpack) {
    pull_options.layer_stored = [&unpack](std::size_t index, const Digest& diff_id) {
      unpack->layer_stored(index, diff_id);
    };
  }
  std::mutex progress_mutex;
  std::unique_ptr<ProgressBar> bar;
  auto report = registry::pull_image(
      *client, *source, store ? &*store : nullptr, layout ? &*layout : nullptr, tag, pull_options,
      [&](const registry::TransferProgress& progress) {
        std::lock_guard lock(progress_mutex);
        if (!bar) {
          bar = std::make_unique<ProgressBar>("pull " + source->to_string(), progress.total_bytes);
        }
        bar->update(progress.done_bytes);
      });
  bar.reset();
  // A failed pull drops the unpack: its partial directory goes, DIR is never made.
  if (!report.ok()) return report_error(report.error());
  std::optional<UnpackReport> unpacked;
  if (unpack) {
    auto finished = unpack->finish(*store, *report);
    if (!finished.ok()) return report_error(finished.error());
    unpacked = *finished;
  }
  if (options.flags.json) {
    nlohmann::json json = pull_json(*source, *report);
    if (unpacked) json["unpack"] = unpack_json(*unpack, *unpacked);
    std::cout << json.dump(2) << '\n';
  } else {
    print_pull_text(*source, *report);
    if (unpacked) std::cout << unpack_text(*unpack, *unpacked) << '\n';
  }
  return kExitOk;
}

void register_registry_commands(CLI::App& app, int& exit_code) {
  register_push_command(app, exit_code);
  auto options = std::make_shared<RegistryPullOptions>();
  auto from = std::make_shared<std::string>();
  auto gap = std::make_shared<std::uint64_t>(4096);
  auto max_ranges = std::make_shared<std::size_t>(1024);
  CLI::App* command = app.add_subcommand(
      "pull",
      "Pull an image from a registry (REFERENCE) or, fetching only the chunks the store lacks, "
      "from a local layout (--from LAYOUT:TAG) into a chunk store (and with --unpack DIR, its "
      "rootfs into DIR)");
  command->add_option("reference", options->reference, "REGISTRY/REPOSITORY[:TAG][@DIGEST]");
  command->add_option("--from", *from, "LAYOUT:TAG: lazy pull from a local OCI layout");
  command->add_option("--gap", *gap, "--from: gaps smaller than this are fetched (default 4096)");
  command->add_option("--max-ranges", *max_ranges, "--from: ranges per request at most")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20U));
  command->add_option("--store", options->store, "Chunk store directory (created)");
  command->add_option("--layout", options->layout, "Also write the image into this OCI layout");
  command->add_option("--unpack", options->unpack,
                      "Also write the image's rootfs into this empty or absent directory (layers "
                      "applied as they land; DIR appears only when all are verified)");
  command->add_option("--tag", options->tag, "Tag in --layout (default: the reference's tag)");
  command->add_option("--os", options->os, "Platform picked from an index (default linux)");
  command->add_option("--arch", options->architecture,
                      "Platform picked from an index (default amd64)");
  command->add_flag("--whole-layers", options->whole_layers,
                    "Fetch chunked layers whole instead of only the chunks the store lacks");
  command->add_flag("--no-deltas", options->no_deltas,
                    "Ignore the image's delta referrer: fetch missing chunks whole");
  add_registry_flags(*command, options->flags);
  command->callback([options, from, gap, max_ranges, &exit_code] {
    if (!from->empty() && !options->reference.empty()) {
      exit_code = report_error(
          make_error(ErrorCode::kInvalidArgument, "give a registry reference or --from, not both"));
    } else if (!from->empty()) {
      if (options->store.empty()) {
        exit_code =
            report_error(make_error(ErrorCode::kInvalidArgument, "pull --from needs --store DIR"));
        return;
      }
      if (!options->unpack.empty()) {
        exit_code = report_error(make_error(
            ErrorCode::kInvalidArgument,
            "pull --from does not unpack: pull it, then `strata unpack LAYOUT:TAG DIR`"));
        return;
      }
      exit_code = run_layout_pull(*from, options->store, *gap, *max_ranges, options->flags.json);
    } else if (options->reference.empty()) {
      exit_code = report_error(make_error(ErrorCode::kInvalidArgument,
                                          "pull needs a registry reference or --from LAYOUT:TAG"));
    } else {
      exit_code = run_registry_pull(*options);
    }
  });
}

}  // namespace strata::tool
