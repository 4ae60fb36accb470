// `strata model package|push|pull`: AI models as OCI artifacts with a chunk index referrer
// (include/strata/model_artifact.h, shared/specs/models.md §8). package writes a Docker Model
// Runner or CNCF ModelPack artifact into an OCI layout (weights through the store with --store);
// push sends it and its chunk index to a registry (referrers fallback tag where the registry has
// no referrers API), with --delta-store also its delta referrer (docs/DELTA.md); pull fetches only
// the chunks a store lacks (as deltas where a referrer has them) and writes the model files.
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "strata/fastpull.h"
#include "strata/model_artifact.h"
#include "strata/registry.h"
#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct PackageCommandOptions {
  std::string source;
  std::string layout;
  std::string tag;
  std::string format = "docker";
  std::string store;
  std::string created;
  std::string name;
  std::uint32_t avg_chunk = 0;
  unsigned threads = 0;
  std::vector<std::string> delta_base;
  int delta_level = 0;
  bool json = false;
};

// --delta-base: 'auto', or digests of stored weight files (repeated for the shards of a base).
Result<model::ModelDeltaOptions> parse_delta_base(const std::vector<std::string>& values) {
  model::ModelDeltaOptions delta;
  if (values.empty()) return delta;
  if (values.size() == 1 && values.front() == "auto") {
    delta.base = model::ModelDeltaBaseKind::kNewest;
    return delta;
  }
  delta.base = model::ModelDeltaBaseKind::kFiles;
  for (const std::string& value : values) {
    auto digest = Digest::parse(value);
    if (!digest.ok()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--delta-base must be 'auto' or the digest of a stored weight file: " +
                            digest.error().message);
    }
    delta.files.push_back(*digest);
  }
  return delta;
}

Result<ChunkStore> open_store_for(const std::string& path) {
  StoreOptions options;
  options.create_if_missing = true;
  return ChunkStore::open(path, options);
}

double megabytes_per_second(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0;
}

int run_package(const PackageCommandOptions& options) {
  auto format = model::parse_artifact_format(options.format);
  if (!format.ok()) return report_error(format.error());
  model::PackageOptions package;
  package.format = *format;
  package.name = options.name;
  package.threads = options.threads;
  // A fixed time, so the same files always give the same digests: --created, else
  // $SOURCE_DATE_EPOCH (reproducible-builds.org), else the epoch.
  if (!options.created.empty()) {
    package.created = options.created;
  } else if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch != nullptr) {
    char* end = nullptr;
    const long long seconds = std::strtoll(epoch, &end, 10);
    if (end == epoch || *end != '\0' || seconds < 0) {
      return report_error(make_error(ErrorCode::kInvalidArgument,
                                     "SOURCE_DATE_EPOCH is not a non-negative integer"));
    }
    const std::time_t time = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&time, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    package.created = text;
  }
  if (options.avg_chunk != 0) {
    package.chunker.avg_size = options.avg_chunk;
    package.chunker.min_size = std::max<std::uint32_t>(options.avg_chunk / 4, 64);
    package.chunker.max_size = options.avg_chunk * 4;
  }
  auto delta = parse_delta_base(options.delta_base);
  if (!delta.ok()) return report_error(delta.error());
  package.delta = std::move(delta).value();
  package.delta.level = options.delta_level;
  std::optional<ChunkStore> store;
  if (!options.store.empty()) {
    auto opened = open_store_for(options.store);
    if (!opened.ok()) return report_error(opened.error());
    store.emplace(std::move(*opened));
    package.store = &*store;
  }
  auto layout = oci::OciLayout::open_or_create(options.layout);
  if (!layout.ok()) return report_error(layout.error());
  auto report = model::package_model(options.source, *layout, options.tag, package);
  if (!report.ok()) return report_error(report.error());
  if (options.json) {
    nlohmann::json files = nlohmann::json::array();
    for (const model::PackagedFile& file : report->files) {
      files.push_back({{"path", file.path},
                       {"media_type", file.descriptor.media_type},
                       {"digest", file.descriptor.digest.to_string()},
                       {"size", file.descriptor.size},
                       {"weight", file.weight},
                       {"tensor_aware", file.tensor_aware},
                       {"chunks", file.chunks},
                       {"new_chunks", file.new_chunks},
                       {"new_raw_bytes", file.new_raw_bytes},
                       {"new_stored_bytes", file.new_stored_bytes},
                       {"delta_chunks", file.delta_chunks},
                       {"delta_stored_bytes", file.delta_stored_bytes}});
    }
    nlohmann::json delta_bases = nlohmann::json::array();
    for (const Digest& base : report->delta_base_files) delta_bases.push_back(base.to_string());
    const nlohmann::json json = {
        {"manifest_digest", report->manifest.digest.to_string()},
        {"config_digest", report->config.digest.to_string()},
        {"chunk_index_digest", report->chunk_index_manifest.digest.to_string()},
        {"format", options.format},
        {"files", files},
        {"total_bytes", report->total_bytes},
        {"weight_bytes", report->weight_bytes},
        {"new_raw_bytes", report->new_raw_bytes},
        {"new_stored_bytes", report->new_stored_bytes},
        {"delta_base_files", delta_bases},
        {"delta_chunks", report->delta_chunks},
        {"delta_stored_bytes", report->delta_stored_bytes},
        {"seconds", report->seconds},
        {"mb_per_second", megabytes_per_second(report->total_bytes, report->seconds)}};
    std::cout << json.dump(2) << '\n';
  } else {
    std::cout << "packaged " << options.layout << ":" << options.tag << " "
              << report->manifest.digest.to_string() << " (" << options.format << ", "
              << report->files.size() << " files, " << format_bytes(report->total_bytes) << ")\n"
              << "chunk index " << report->chunk_index_manifest.digest.to_string() << '\n';
    if (package.store != nullptr) {
      std::cout << "store: " << format_bytes(report->new_raw_bytes) << " of new chunks ("
                << format_bytes(report->new_stored_bytes) << " stored) of "
                << format_bytes(report->weight_bytes) << " of weights\n";
    }
    if (!report->delta_base_files.empty()) {
      std::cout << "deltas: " << report->delta_chunks << " chunks ("
                << format_bytes(report->delta_stored_bytes) << " stored) against "
                << report->delta_base_files.size() << " stored weight file(s)\n";
    }
  }
  return kExitOk;
}

struct PushCommandOptions {
  std::string source;
  std::string destination;
  std::string delta_store;
  RegistryFlags flags;
};

nlohmann::json delta_push_json(const fastpull::DeltaReferrerReport& delta,
                               const registry::DeltaPushReport& pushed) {
  return {{"digest", delta.referrer.digest.to_string()},
          {"referrers", pushed.referrers},
          {"chunks", delta.chunks},
          {"delta_chunks", delta.delta_chunks},
          {"frames_bytes", delta.frames_bytes},
          {"delta_raw_bytes", delta.delta_raw_bytes},
          {"index_bytes", delta.index_bytes},
          {"bytes_uploaded", pushed.bytes_uploaded}};
}

int run_model_push(const PushCommandOptions& options) {
  const oci::LayoutReference source = oci::parse_layout_reference(options.source);
  auto destination = registry::parse_image_reference(options.destination);
  if (!destination.ok()) return report_error(destination.error());
  auto layout = oci::OciLayout::open(source.layout);
  if (!layout.ok()) return report_error(layout.error());
  // --delta-store: the delta referrer is made (into the layout) before anything is sent, so a
  // store problem stops the push before the model goes out.
  std::optional<fastpull::DeltaReferrerReport> delta;
  if (!options.delta_store.empty()) {
    auto store = ChunkStore::open(options.delta_store);
    if (!store.ok()) return report_error(store.error());
    auto written = model::write_model_delta_referrer(*store, *layout, source.tag);
    if (!written.ok()) return report_error(written.error());
    delta = std::move(*written);
  }
  auto client = open_registry_client(options.flags, destination->registry);
  if (!client.ok()) return report_error(client.error());
  auto report = model::push_model(*client, *layout, source.tag, *destination);
  if (!report.ok()) return report_error(report.error());
  std::optional<registry::DeltaPushReport> delta_push;
  if (delta) {
    auto pushed = registry::push_delta_referrer(*client, *layout, delta->referrer, *destination);
    if (!pushed.ok()) return report_error(pushed.error());
    delta_push = *pushed;
  }
  if (options.flags.json) {
    nlohmann::json json = {
        {"destination", destination->to_string()},
        {"manifest_digest", report->manifest_digest.to_string()},
        {"chunk_index_digest",
         report->chunk_index_digest ? report->chunk_index_digest->to_string() : ""},
        {"referrers", report->referrers},
        {"blobs_uploaded", report->blobs_uploaded},
        {"blobs_skipped", report->blobs_skipped},
        {"bytes_uploaded", report->bytes_uploaded}};
    if (delta && delta_push) json["delta_referrer"] = delta_push_json(*delta, *delta_push);
    std::cout << json.dump(2) << '\n';
  } else {
    std::cout << "pushed " << destination->to_string() << " " << report->manifest_digest.to_string()
              << '\n'
              << "blobs: " << report->blobs_uploaded << " uploaded ("
              << format_bytes(report->bytes_uploaded) << "), " << report->blobs_skipped
              << " already present\n";
    if (report->chunk_index_digest) {
      std::cout << "chunk index " << report->chunk_index_digest->to_string() << " ("
                << (report->referrers == "api"
                        ? "referrers API"
                        : "fallback tag " + model::referrers_fallback_tag(report->manifest_digest))
                << ")\n";
    }
    if (delta && delta_push) {
      std::cout << "delta referrer " << delta->referrer.digest.to_string() << " ("
                << delta_push->referrers << "): " << delta->delta_chunks << " of " << delta->chunks
                << " chunks as deltas, " << format_bytes(delta->frames_bytes) << " for "
                << format_bytes(delta->delta_raw_bytes) << " of chunks\n";
    }
  }
  return kExitOk;
}

struct PullCommandOptions {
  std::string source;
  std::string store;
  std::string out;
  bool no_deltas = false;
  std::size_t fetch_jobs = model::ModelPullOptions{}.fetch_jobs;
  RegistryFlags flags;
};

nlohmann::json stages_json(const model::ModelPullStages& stages) {
  return {{"fetch", stages.fetch},         {"verify", stages.verify}, {"decode", stages.decode},
          {"store", stages.store},         {"write", stages.write},   {"local", stages.local},
          {"blob_hash", stages.blob_hash}, {"commit", stages.commit}, {"ingest", stages.ingest},
          {"export", stages.exported}};
}

nlohmann::json pulled_file_json(const model::PulledModelFile& file) {
  return {{"path", file.path},
          {"digest", file.descriptor.digest.to_string()},
          {"size", file.descriptor.size},
          {"indexed", file.indexed},
          {"already_stored", file.already_stored},
          {"chunks", file.chunks},
          {"chunks_fetched", file.chunks_fetched},
          {"bytes_fetched", file.bytes_fetched},
          {"delta_chunks", file.delta_chunks},
          {"delta_bytes_fetched", file.delta_bytes_fetched},
          {"delta_stored_chunks", file.delta_stored_chunks},
          {"delta_fallbacks", file.delta_fallbacks},
          {"delta_fallback_reason", file.delta_fallback_reason},
          {"bytes_fetched_without_deltas", file.bytes_fetched_without_deltas},
          {"seconds", file.seconds},
          {"stages", stages_json(file.stages)}};
}

int run_model_pull(const PullCommandOptions& options) {
  auto source = registry::parse_image_reference(options.source);
  if (!source.ok()) return report_error(source.error());
  auto store = open_store_for(options.store);
  if (!store.ok()) return report_error(store.error());
  auto client = open_registry_client(options.flags, source->registry);
  if (!client.ok()) return report_error(client.error());
  model::ModelPullOptions pull;
  pull.out_directory = options.out;
  pull.deltas = !options.no_deltas;
  pull.fetch_jobs = options.fetch_jobs;
  auto report = model::pull_model(*client, *source, *store, pull);
  if (!report.ok()) return report_error(report.error());
  std::uint64_t delta_chunks = 0;
  std::uint64_t delta_bytes = 0;
  std::uint64_t delta_fallbacks = 0;
  nlohmann::json files = nlohmann::json::array();
  for (const model::PulledModelFile& file : report->files) {
    files.push_back(pulled_file_json(file));
    delta_chunks += file.delta_chunks;
    delta_bytes += file.delta_bytes_fetched;
    delta_fallbacks += file.delta_fallbacks;
  }
  if (options.flags.json) {
    const nlohmann::json json = {
        {"source", source->to_string()},
        {"manifest_digest", report->manifest_digest.to_string()},
        {"format", report->format},
        {"referrers", report->referrers},
        {"files", files},
        {"total_bytes", report->total_bytes},
        {"bytes_fetched", report->bytes_fetched},
        {"bytes_fetched_without_deltas", report->bytes_fetched_without_deltas},
        {"deltas",
         {{"enabled", pull.deltas},
          {"referrer", report->delta_referrer},
          {"refused", report->delta_refused},
          {"referrer_bytes", report->delta_referrer_bytes},
          {"chunks", delta_chunks},
          {"bytes_fetched", delta_bytes},
          {"fallbacks", delta_fallbacks}}},
        {"wire_bytes_received", report->wire.bytes_received},
        {"requests", report->wire.requests},
        {"seconds", report->seconds},
        {"stages", stages_json(report->stages)}};
    std::cout << json.dump(2) << '\n';
  } else {
    std::cout << "pulled " << source->to_string() << " " << report->manifest_digest.to_string()
              << " (" << report->format
              << ", chunk index: " << (report->referrers.empty() ? "none" : report->referrers)
              << ")\n"
              << "fetched " << format_bytes(report->bytes_fetched) << " of "
              << format_bytes(report->total_bytes) << '\n';
    if (!report->delta_referrer.empty()) {
      std::cout << "deltas: " << delta_chunks << " chunks (" << format_bytes(delta_bytes) << "), "
                << delta_fallbacks << " fetched whole instead; "
                << format_bytes(report->bytes_fetched_without_deltas) << " without deltas\n";
    } else if (!report->delta_refused.empty()) {
      std::cout << "delta referrer not used: " << report->delta_refused << '\n';
    }
  }
  return kExitOk;
}

}  // namespace

void register_model_commands(CLI::App& app, int& exit_code) {
  CLI::App* model = app.add_subcommand("model", "AI models as OCI artifacts with a chunk index");
  model->require_subcommand(1);

  auto package = std::make_shared<PackageCommandOptions>();
  CLI::App* package_command = model->add_subcommand(
      "package", "Package a model directory or (sharded) GGUF file into an OCI layout");
  package_command->add_option("source", package->source, "DIR or FILE.gguf")->required();
  package_command->add_option("--layout", package->layout, "OCI layout to write")->required();
  package_command->add_option("--tag", package->tag, "Tag of the model in the layout")->required();
  package_command->add_option("--format", package->format, "docker (default) or modelpack");
  package_command->add_option("--store", package->store,
                              "Chunk store the weights are ingested into (dedup report)");
  package_command->add_option("--created", package->created,
                              "Creation time, RFC 3339 UTC (default: $SOURCE_DATE_EPOCH, else "
                              "1970-01-01T00:00:00Z)");
  package_command->add_option("--name", package->name, "ModelPack descriptor.name");
  package_command->add_option("--avg-chunk", package->avg_chunk,
                              "Average chunk size in bytes (min = avg/4, max = 4 x avg)");
  package_command->add_option("--threads", package->threads, "Worker threads (0: all)");
  package_command->add_option(
      "--delta-base", package->delta_base,
      "Store new weight chunks as deltas against a base model in --store, found by tensor name: "
      "'auto' (the newest stored weight files) or the digest of a stored weight file (repeat for "
      "the shards of a sharded base)");
  package_command->add_option("--delta-level", package->delta_level,
                              "zstd level of the delta forms, 1..19 (default: the store level, 3)");
  package_command->add_flag("--json", package->json, "Machine-readable output");
  package_command->callback([package, &exit_code] { exit_code = run_package(*package); });

  auto push = std::make_shared<PushCommandOptions>();
  CLI::App* push_command = model->add_subcommand(
      "push", "Push a packaged model and its chunk index from an OCI layout to a registry");
  push_command->add_option("source", push->source, "LAYOUT:TAG")->required();
  push_command->add_option("destination", push->destination, "REGISTRY/REPOSITORY:TAG")->required();
  push_command->add_option("--delta-store", push->delta_store,
                           "Also push a delta referrer (docs/DELTA.md) of the weight chunks this "
                           "store holds as deltas (written into the layout as tag "
                           "sha256-<manifest hex>.delta)");
  add_registry_flags(*push_command, push->flags);
  push_command->callback([push, &exit_code] { exit_code = run_model_push(*push); });

  auto pull = std::make_shared<PullCommandOptions>();
  CLI::App* pull_command =
      model->add_subcommand("pull", "Pull a model, fetching only the chunks the store lacks");
  pull_command->add_option("source", pull->source, "REGISTRY/REPOSITORY:TAG")->required();
  pull_command->add_option("--store", pull->store, "Chunk store (created when missing)")
      ->required();
  pull_command->add_option("--out", pull->out, "Directory to write the model files into");
  pull_command->add_flag("--no-deltas", pull->no_deltas,
                         "Do not use the model's delta referrer (fetch changed chunks whole)");
  pull_command
      ->add_option("--fetch-jobs", pull->fetch_jobs,
                   "Range batches in flight at once, each verified and written by its own thread")
      ->check(CLI::Range(1, 16));
  add_registry_flags(*pull_command, pull->flags);
  pull_command->callback([pull, &exit_code] { exit_code = run_model_pull(*pull); });
}

}  // namespace strata::tool
