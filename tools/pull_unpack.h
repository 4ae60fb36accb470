// `strata pull … --unpack DIR` in the tool: the store the pull fills when no --store is given (a
// scratch one beside DIR, removed at the end), the rootfs build started before the pull and fed
// as layers land (strata::RootfsBuild, include/strata/unpack.h), its wait with a progress bar on
// a terminal, and its report (text and --json). Rests on the public headers only.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "strata/registry.h"
#include "strata/store.h"
#include "strata/unpack.h"

namespace strata::tool {

// A store directory made for one pull ("<DIR>.store-XXXXXX" beside DIR, so its packs land on the
// rootfs's filesystem rather than in a memory-backed /tmp), removed with its contents at the end.
class ScratchStore {
 public:
  static Result<std::unique_ptr<ScratchStore>> create(const std::string& unpack_directory);
  ~ScratchStore();
  ScratchStore(const ScratchStore&) = delete;
  ScratchStore& operator=(const ScratchStore&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  explicit ScratchStore(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// The rootfs side of a pull: begun before the pull (DIR checked before anything is fetched),
// announced each layer as the pull stores it, finished after it.
class PullUnpack {
 public:
  static Result<std::unique_ptr<PullUnpack>> begin(const ChunkStore& store,
                                                   const std::string& directory);
  // For PullOptions::layer_stored.
  void layer_stored(std::size_t index, const Digest& diff_id);
  // Waits for the rootfs of the pulled image (a progress bar on a terminal meanwhile).
  Result<UnpackReport> finish(const ChunkStore& store, const registry::PullReport& pulled);
  // Seconds finish() waited after the pull ended: what the unpack added to the pull's wall time.
  [[nodiscard]] double tail_seconds() const { return tail_seconds_; }
  [[nodiscard]] const std::string& directory() const { return directory_; }

 private:
  struct Progress;
  PullUnpack(std::string directory, std::shared_ptr<Progress> progress, RootfsBuild build);
  std::string directory_;
  std::shared_ptr<Progress> progress_;
  RootfsBuild build_;
  double tail_seconds_ = 0;
};

nlohmann::json unpack_json(const PullUnpack& unpack, const UnpackReport& report);
std::string unpack_text(const PullUnpack& unpack, const UnpackReport& report);

}  // namespace strata::tool
