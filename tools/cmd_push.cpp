// `strata push LAYOUT:TAG REGISTRY/REPO:TAG`: uploads an image from an OCI layout to a registry
// through the distribution API (shared/specs/layer-formats.md §3): blobs the repository already
// has are skipped (HEAD), blobs are mounted from --mount-from repositories where the registry
// allows, the rest uploaded (4 at a time by default), then the manifest is PUT. Also holds the
// flags and client set-up shared with `strata pull` (registry reference, --insecure, --creds).
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "strata/fastpull.h"
#include "strata/registry.h"
#include "strata/store.h"
#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {

void add_registry_flags(CLI::App& command, RegistryFlags& flags) {
  command.add_flag("--insecure", flags.insecure, "Plain HTTP to the registry (no TLS)");
  command.add_option("--tls-verify", flags.tls_verify,
                     "Check the registry's TLS certificate (default true)");
  command.add_option("--creds", flags.creds,
                     "user:password (default: $REGISTRY_AUTH_FILE, "
                     "$XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json)");
  command.add_option("--jobs", flags.jobs, "Blobs transferred at once (default 4)")
      ->check(CLI::Range(1U, 64U));
  command.add_option("--chunk-size", flags.chunk_bytes,
                     "Upload in PATCH chunks of this many bytes (default: one PUT)");
  command.add_flag("--json", flags.json, "Machine-readable output");
}

Result<registry::RegistryClient> open_registry_client(const RegistryFlags& flags,
                                                      const std::string& registry_host) {
  registry::ClientOptions options;
  options.plain_http = flags.insecure;
  options.tls_verify = flags.tls_verify;
  options.upload_chunk_bytes = flags.chunk_bytes;
  if (!flags.creds.empty()) {
    auto credentials = registry::parse_credentials(flags.creds);
    if (!credentials.ok()) return std::move(credentials).error();
    options.credentials = *credentials;
  } else {
    auto stored = registry::load_credentials(registry_host);
    if (!stored.ok()) return std::move(stored).error();
    options.credentials = *stored;
  }
  return registry::RegistryClient::create(registry_host, options);
}

namespace {

struct PushCommandOptions {
  std::string source;
  std::string destination;
  std::vector<std::string> mount_from;
  std::string delta_store;
  int delta_level = 19;
  RegistryFlags flags;
};

int run_push(const PushCommandOptions& options) {
  const oci::LayoutReference source = oci::parse_layout_reference(options.source);
  auto destination = registry::parse_image_reference(options.destination);
  if (!destination.ok()) return report_error(destination.error());
  if (destination->tag.empty()) {
    return report_error(make_error(ErrorCode::kInvalidArgument,
                                   "push needs a tag in '" + options.destination + "'"));
  }
  auto layout = oci::OciLayout::open(source.layout);
  if (!layout.ok()) return report_error(layout.error());
  // --delta-store: the delta referrer is made (into the layout) before anything is sent, so a
  // store problem stops the push before the image goes out.
  std::optional<fastpull::DeltaReferrerReport> delta;
  if (!options.delta_store.empty()) {
    auto store = ChunkStore::open(options.delta_store);
    if (!store.ok()) return report_error(store.error());
    fastpull::DeltaReferrerOptions delta_options;
    delta_options.level = options.delta_level;
    auto written = fastpull::write_delta_referrer(*store, *layout, source.tag, delta_options);
    if (!written.ok()) return report_error(written.error());
    delta = std::move(*written);
  }
  auto client = open_registry_client(options.flags, destination->registry);
  if (!client.ok()) return report_error(client.error());
  registry::PushOptions push_options;
  push_options.jobs = options.flags.jobs;
  push_options.mount_from = options.mount_from;
  std::mutex progress_mutex;
  std::unique_ptr<ProgressBar> sized_bar;
  auto report =
      registry::push_image(*client, *layout, source.tag, *destination, push_options,
                           [&](const registry::TransferProgress& progress) {
                             std::lock_guard lock(progress_mutex);
                             if (!sized_bar) {
                               sized_bar = std::make_unique<ProgressBar>(
                                   "push " + destination->to_string(), progress.total_bytes);
                             }
                             sized_bar->update(progress.done_bytes);
                           });
  sized_bar.reset();
  if (!report.ok()) return report_error(report.error());
  std::optional<registry::DeltaPushReport> delta_push;
  if (delta) {
    auto pushed = registry::push_delta_referrer(*client, *layout, delta->referrer, *destination);
    if (!pushed.ok()) return report_error(pushed.error());
    delta_push = *pushed;
  }
  if (options.flags.json) {
    nlohmann::json json = {{"destination", destination->to_string()},
                           {"manifest_digest", report->manifest_digest.to_string()},
                           {"blobs", report->blobs},
                           {"blobs_uploaded", report->blobs_uploaded},
                           {"blobs_skipped", report->blobs_skipped},
                           {"blobs_mounted", report->blobs_mounted},
                           {"bytes_uploaded", report->bytes_uploaded},
                           {"bytes_skipped", report->bytes_skipped},
                           {"wire_bytes_sent", report->wire.bytes_sent},
                           {"wire_bytes_received", report->wire.bytes_received},
                           {"requests", report->wire.requests},
                           {"retries", report->wire.retries}};
    if (delta && delta_push) {
      json["delta_referrer"] = {{"digest", delta->referrer.digest.to_string()},
                                {"referrers", delta_push->referrers},
                                {"chunks", delta->chunks},
                                {"delta_chunks", delta->delta_chunks},
                                {"frames_bytes", delta->frames_bytes},
                                {"delta_raw_bytes", delta->delta_raw_bytes},
                                {"prefix_chunks", delta->prefix_chunks},
                                {"delta_level", options.delta_level},
                                {"index_bytes", delta->index_bytes},
                                {"layers_without_toc", delta->no_toc_layers},
                                {"bytes_uploaded", delta_push->bytes_uploaded}};
    }
    std::cout << json.dump(2) << '\n';
  } else {
    std::cout << "pushed " << destination->to_string() << " " << report->manifest_digest.to_string()
              << '\n'
              << "blobs: " << report->blobs_uploaded << " uploaded ("
              << format_bytes(report->bytes_uploaded) << "), " << report->blobs_skipped
              << " already present, " << report->blobs_mounted << " mounted ("
              << format_bytes(report->bytes_skipped) << " not sent)\n";
    if (delta && delta_push) {
      std::cout << "delta referrer " << delta->referrer.digest.to_string() << " ("
                << delta_push->referrers << "): " << delta->delta_chunks << " of " << delta->chunks
                << " chunks as deltas, " << format_bytes(delta->frames_bytes) << " for "
                << format_bytes(delta->delta_raw_bytes) << " of chunks\n";
    }
  }
  return kExitOk;
}

}  // namespace

void register_push_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<PushCommandOptions>();
  CLI::App* command = app.add_subcommand("push", "Push an image from an OCI layout to a registry");
  command->add_option("source", options->source, "LAYOUT:TAG")->required();
  command->add_option("destination", options->destination, "REGISTRY/REPOSITORY:TAG")->required();
  command->add_option("--mount-from", options->mount_from,
                      "Repository on the same registry to mount blobs from (repeatable)");
  command->add_option("--delta-store", options->delta_store,
                      "Also push a delta referrer (docs/DELTA.md) of the chunks this store holds "
                      "as deltas (written into the layout as tag sha256-<manifest hex>)");
  command
      ->add_option("--delta-level", options->delta_level,
                   "zstd level the referrer's deltas are coded at again, base as prefix "
                   "(default 19; 0: as the store holds them)")
      ->check(CLI::Range(0, 22));
  add_registry_flags(*command, options->flags);
  command->callback([options, &exit_code] { exit_code = run_push(*options); });
}

}  // namespace strata::tool
