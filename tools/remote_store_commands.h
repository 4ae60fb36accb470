// The remote side of the store commands (tools/cmd_store.cpp): `--store registry://HOST/REPO`
// opens a RemoteStore (docs/remote-store.md) whose cache directory stands in for the local store;
// ls, stats and verify answer from the registry's catalogue; gc is refused.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "strata/remote_store.h"

namespace strata::tool {

struct RemoteStoreFlags {
  bool insecure = false;
  bool tls_verify = true;
  std::string creds;
  std::string cache;  // empty: $XDG_CACHE_HOME/strata/remote/<host>/<repo>
};
void add_remote_store_flags(CLI::App& command, RemoteStoreFlags& flags);

// The store a --store names: a local directory, or a remote store and its cache.
class StoreHandle {
 public:
  // `create`: a local directory is created when missing (a remote store's cache always is).
  // `writable`: the store is opened for ingest (stored forms are already checked by the engine).
  static Result<StoreHandle> open(const std::string& store, const RemoteStoreFlags& flags,
                                  bool create);
  [[nodiscard]] ChunkStore& store() { return remote_ ? remote_->cache() : *local_; }
  [[nodiscard]] registry::RemoteStore* remote() { return remote_ ? &*remote_ : nullptr; }

 private:
  std::optional<ChunkStore> local_;
  std::optional<registry::RemoteStore> remote_;
};

// `ls` output for local and remote stores alike: one line per layer, or (json) the list returned.
nlohmann::json list_layers_output(const std::vector<LayerRecord>& layers, bool json);

int run_remote_ls(registry::RemoteStore& remote, bool json);
int run_remote_stats(registry::RemoteStore& remote, bool json);

}  // namespace strata::tool
