// `strata pull-plan LAYOUT:TAG --store DIR [--json]` and `strata pull --from LAYOUT:TAG --store
// DIR`: the lazy-pull planner and puller against a local layout standing in for a registry
// (shared/specs/layer-formats.md §1.5): which chunks the store has, which compressed ranges must
// be fetched (merged, small gaps bridged, grouped per request), and the bytes that costs; the
// pull reads only those ranges, rebuilds each layer, checks its diff_id and ingests it.
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct PullCommandOptions {
  std::string source;
  std::string store;
  std::uint64_t gap = 4096;
  std::size_t max_ranges = 1024;
  bool json = false;
};

nlohmann::json plan_json(const fastpull::LayerPullPlan& layer) {
  nlohmann::json out;
  out["digest"] = layer.layer_digest.to_string();
  out["diff_id"] = layer.diff_id.to_string();
  out["size"] = layer.size;
  out["chunked"] = layer.chunked;
  if (!layer.chunked) {
    out["fetch_bytes"] = layer.size;
    return out;
  }
  const auto& plan = layer.plan;
  out["format"] = std::string(fastpull::chunked_format_name(plan.format));
  out["chunks"] = plan.chunks;
  out["local_chunks"] = plan.local_chunks;
  out["local_chunk_bytes"] = plan.local_chunk_bytes;
  out["missing_chunks"] = plan.missing_chunks;
  out["metadata_bytes"] = plan.metadata_bytes;
  out["fetch_bytes"] = plan.fetch_bytes;
  out["total_bytes"] = plan.total_bytes();
  out["requests"] = nlohmann::json::array();
  for (const auto& request : plan.requests) {
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& range : request) ranges.push_back({range.offset, range.length});
    out["requests"].push_back(std::move(ranges));
  }
  return out;
}

fastpull::PullPlanOptions plan_options(const PullCommandOptions& options) {
  fastpull::PullPlanOptions plan;
  plan.gap_bridge_bytes = options.gap;
  plan.max_ranges_per_request = options.max_ranges;
  return plan;
}

int run_pull_plan(const PullCommandOptions& options) {
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(options.store, store_options);
  if (!store) return report_error(store.error());
  const auto reference = oci::parse_layout_reference(options.source);
  auto plans =
      fastpull::plan_image_pull(*store, reference.layout, reference.tag, plan_options(options));
  if (!plans) return report_error(plans.error());
  nlohmann::json out;
  out["layers"] = nlohmann::json::array();
  std::uint64_t total = 0;
  for (const auto& layer : *plans) {
    out["layers"].push_back(plan_json(layer));
    total += layer.chunked ? layer.plan.total_bytes() : layer.size;
  }
  out["total_bytes"] = total;
  if (options.json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& layer : *plans) {
    if (!layer.chunked) {
      std::cout << layer.layer_digest.to_string() << ": not chunked, fetch whole "
                << format_bytes(layer.size) << "\n";
      continue;
    }
    const auto& plan = layer.plan;
    std::cout << layer.layer_digest.to_string() << " ("
              << fastpull::chunked_format_name(plan.format) << "): " << plan.local_chunks << "/"
              << plan.chunks << " chunks local, fetch " << plan.fetch_bytes << " B in "
              << plan.ranges.size() << " ranges (" << plan.requests.size() << " requests) + "
              << plan.metadata_bytes << " B TOC/footer = " << plan.total_bytes() << " B\n";
  }
  std::cout << "total " << total << " B\n";
  return kExitOk;
}

int run_pull(const PullCommandOptions& options) {
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(options.store, store_options);
  if (!store) return report_error(store.error());
  const auto reference = oci::parse_layout_reference(options.source);
  auto report =
      fastpull::pull_layout_image(*store, reference.layout, reference.tag, plan_options(options));
  if (!report) return report_error(report.error());
  if (options.json) {
    nlohmann::json out;
    out["bytes_read"] = report->bytes_read;
    out["tar_bytes"] = report->tar_bytes;
    out["layers"] = nlohmann::json::array();
    for (const auto& layer : report->layers) out["layers"].push_back(plan_json(layer));
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "pulled " << report->layers.size() << " layers, read " << report->bytes_read
              << " B of blobs, rebuilt " << report->tar_bytes << " B of tar (diff_ids verified)\n";
  }
  return kExitOk;
}

void add_plan_options(CLI::App* command, PullCommandOptions& options) {
  command->add_option("--store", options.store, "Chunk store directory (created)")->required();
  command->add_option("--gap", options.gap, "Gaps smaller than this are fetched (default 4096)");
  command
      ->add_option("--max-ranges", options.max_ranges, "Ranges per request at most (default 1024)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20U));
  command->add_flag("--json", options.json, "Machine-readable output");
}

}  // namespace

int run_layout_pull(const std::string& source, const std::string& store, std::uint64_t gap,
                    std::size_t max_ranges, bool json) {
  PullCommandOptions options;
  options.source = source;
  options.store = store;
  options.gap = gap;
  options.max_ranges = max_ranges;
  options.json = json;
  return run_pull(options);
}

void register_pull_commands(CLI::App& app, int& exit_code) {
  auto plan = std::make_shared<PullCommandOptions>();
  CLI::App* plan_command = app.add_subcommand(
      "pull-plan", "Show what a lazy pull of an image would fetch given a chunk store");
  plan_command->add_option("source", plan->source, "LAYOUT:TAG")->required();
  add_plan_options(plan_command, *plan);
  plan_command->callback([plan, &exit_code] { exit_code = run_pull_plan(*plan); });
}

}  // namespace strata::tool
