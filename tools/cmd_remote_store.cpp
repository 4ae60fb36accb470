// `--store registry://HOST[:PORT]/REPO` for the store commands (docs/remote-store.md): opening a
// remote store (client flags as `strata push`/`pull` take them, a cache directory), and ls, stats
// and verify answered from the registry's newest catalogue and its pack blobs.
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"
#include "tools/remote_store_commands.h"

namespace strata::tool {

void add_remote_store_flags(CLI::App& command, RemoteStoreFlags& flags) {
  command.add_flag("--insecure", flags.insecure,
                   "registry:// stores: plain HTTP to the registry (no TLS)");
  command.add_option("--tls-verify", flags.tls_verify,
                     "registry:// stores: check the registry's TLS certificate (default true)");
  command.add_option("--creds", flags.creds,
                     "registry:// stores: user:password (default: the auth.json files `pull` "
                     "reads)");
  command.add_option("--cache", flags.cache,
                     "registry:// stores: local cache directory (default "
                     "$XDG_CACHE_HOME/strata/remote/HOST/REPO)");
}

Result<StoreHandle> StoreHandle::open(const std::string& store, const RemoteStoreFlags& flags,
                                      bool create) {
  StoreHandle handle;
  StoreOptions options;
  options.create_if_missing = create;
  // Ingest decodes and compares every new chunk in its parallel stage (IngestOptions::
  // verify_frames), and a remote store's fetches verify every record: the store's serial re-check
  // would only repeat them.
  options.verify_puts = !create && !registry::names_remote_store(store);
  if (!registry::names_remote_store(store)) {
    auto local = ChunkStore::open(store, options);
    if (!local.ok()) return std::move(local).error();
    handle.local_.emplace(std::move(*local));
    return handle;
  }
  auto location = registry::parse_remote_store_location(store);
  if (!location.ok()) return std::move(location).error();
  RegistryFlags registry_flags;
  registry_flags.insecure = flags.insecure;
  registry_flags.tls_verify = flags.tls_verify;
  registry_flags.creds = flags.creds;
  auto client = open_registry_client(registry_flags, location->registry);
  if (!client.ok()) return std::move(client).error();
  registry::RemoteStoreOptions remote_options;
  remote_options.cache_directory = flags.cache;
  remote_options.cache = options;
  auto remote = registry::RemoteStore::open(std::move(*client), *location, remote_options);
  if (!remote.ok()) return std::move(remote).error();
  handle.remote_.emplace(std::move(*remote));
  return handle;
}

int run_remote_ls(registry::RemoteStore& remote, bool json) {
  std::vector<LayerRecord> layers;
  for (const registry::CatalogueLayer& layer : remote.catalogue().layers) {
    layers.push_back(LayerRecord{layer.diff_id,
                                 layer.layer_digest,
                                 layer.media_type,
                                 {},
                                 layer.size,
                                 layer.created_unix_seconds});
  }
  const nlohmann::json list = list_layers_output(layers, json);
  if (json) {
    std::cout
        << nlohmann::json{{"generation", remote.catalogue().generation}, {"layers", list}}.dump(2)
        << '\n';
  }
  return kExitOk;
}

int run_remote_stats(registry::RemoteStore& remote, bool json) {
  const registry::StoreCatalogue& catalogue = remote.catalogue();
  std::uint64_t logical = 0;
  std::uint64_t raw = 0;
  std::uint64_t stored = 0;
  std::uint64_t pack_bytes = 0;
  for (const registry::CatalogueLayer& layer : catalogue.layers) logical += layer.size;
  for (const registry::CatalogueChunk& chunk : catalogue.chunks) {
    raw += chunk.raw_length;
    stored += chunk.stored_length;
  }
  for (const registry::CataloguePack& pack : catalogue.packs) pack_bytes += pack.size;
  const double ratio =
      stored == 0 ? 0.0 : static_cast<double>(logical) / static_cast<double>(stored);
  if (json) {
    std::cout << nlohmann::json{{"generation", catalogue.generation},
                                {"layers", catalogue.layers.size()},
                                {"logical_bytes", logical},
                                {"chunks", catalogue.chunks.size()},
                                {"raw_bytes", raw},
                                {"stored_bytes", stored},
                                {"packs", catalogue.packs.size()},
                                {"pack_blob_bytes", pack_bytes},
                                {"dedup_ratio", ratio}}
                     .dump(2)
              << '\n';
    return kExitOk;
  }
  std::printf("generation    %llu\n", static_cast<unsigned long long>(catalogue.generation));
  std::printf("layers        %zu (%s as tars)\n", catalogue.layers.size(),
              format_bytes(logical).c_str());
  std::printf("chunks        %zu\n", catalogue.chunks.size());
  std::printf("chunk bytes   %s raw, %s stored in %zu pack blobs (%s)\n", format_bytes(raw).c_str(),
              format_bytes(stored).c_str(), catalogue.packs.size(),
              format_bytes(pack_bytes).c_str());
  std::printf("dedup ratio   %.2fx (layer bytes / stored bytes)\n", ratio);
  return kExitOk;
}

}  // namespace strata::tool
