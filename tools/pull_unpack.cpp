// `strata pull … --unpack DIR` (tools/pull_unpack.h): the scratch store, the rootfs build fed by
// the pull's layer_stored callback, its wait with a progress bar (tar bytes of the layers applied,
// from the store's layer records), and its report. The policy (DIR empty or absent, the tree built
// in "<DIR>.partial-<hex>" and renamed only once every layer is applied and verified) is the
// library's: strata::RootfsBuild, include/strata/unpack.h.
#include "tools/pull_unpack.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "tools/cli_support.h"

namespace strata::tool {

Result<std::unique_ptr<ScratchStore>> ScratchStore::create(const std::string& unpack_directory) {
  std::filesystem::path target(unpack_directory);
  if (!target.has_filename()) target = target.parent_path();
  std::error_code error;
  if (!target.parent_path().empty())
    std::filesystem::create_directories(target.parent_path(), error);
  if (error) {
    return make_error(ErrorCode::kIo,
                      "cannot create the parent of '" + unpack_directory + "': " + error.message());
  }
  std::string pattern = target.string() + ".store-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return make_error(ErrorCode::kIo, "cannot create a scratch store beside '" + unpack_directory +
                                          "': " + std::strerror(errno));
  }
  return std::unique_ptr<ScratchStore>(new ScratchStore(pattern));
}

ScratchStore::~ScratchStore() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// The bar is drawn from the build's thread; it exists only while finish() waits.
struct PullUnpack::Progress {
  std::mutex mutex;
  std::vector<std::uint64_t> layer_bytes;  // tar sizes, known once the pull has ended
  std::size_t layers_done = 0;
  std::unique_ptr<ProgressBar> bar;

  void draw() {  // caller holds `mutex`
    if (!bar) return;
    std::uint64_t done = 0;
    for (std::size_t i = 0; i < layers_done && i < layer_bytes.size(); ++i) done += layer_bytes[i];
    bar->update(done);
  }
};

PullUnpack::PullUnpack(std::string directory, std::shared_ptr<Progress> progress, RootfsBuild build)
    : directory_(std::move(directory)), progress_(std::move(progress)), build_(std::move(build)) {}

Result<std::unique_ptr<PullUnpack>> PullUnpack::begin(const ChunkStore& store,
                                                      const std::string& directory) {
  auto progress = std::make_shared<Progress>();
  auto build =
      RootfsBuild::begin(store, directory, UnpackOptions{}, [progress](std::size_t layers_done) {
        std::lock_guard lock(progress->mutex);
        progress->layers_done = layers_done;
        progress->draw();
      });
  if (!build.ok()) return std::move(build).error();
  return std::unique_ptr<PullUnpack>(new PullUnpack(directory, progress, std::move(*build)));
}

void PullUnpack::layer_stored(std::size_t index, const Digest& diff_id) {
  build_.layer_ready(index, diff_id);
}

Result<UnpackReport> PullUnpack::finish(const ChunkStore& store,
                                        const registry::PullReport& pulled) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<Digest> diff_ids;
  std::uint64_t total = 0;
  {
    std::lock_guard lock(progress_->mutex);
    for (const registry::PulledLayer& layer : pulled.layers) {
      diff_ids.push_back(layer.diff_id);
      auto record = store.find_layer_by_diff_id(layer.diff_id);
      progress_->layer_bytes.push_back(record.ok() ? record->size : 0);
      total += progress_->layer_bytes.back();
    }
    progress_->bar = std::make_unique<ProgressBar>("unpack " + directory_, total);
    progress_->draw();
  }
  auto report = build_.finish(diff_ids);
  {
    std::lock_guard lock(progress_->mutex);
    progress_->bar.reset();
  }
  tail_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

nlohmann::json unpack_json(const PullUnpack& unpack, const UnpackReport& report) {
  return {{"directory", unpack.directory()},
          {"layers", report.layers},
          {"entries", report.entries},
          {"files", report.files},
          {"directories", report.directories},
          {"symlinks", report.symlinks},
          {"hard_links", report.hard_links},
          {"whiteouts", report.whiteouts},
          {"bytes_written", report.bytes_written},
          {"devices_skipped", report.devices_skipped},
          {"xattrs_skipped", report.xattrs_skipped},
          // unpack_s: the build's thread applying layers (mostly while the pull ran); tail_s: the
          // wait after the pull ended, what the unpack added to its wall time.
          {"stages", {{"unpack_s", report.seconds}, {"tail_s", unpack.tail_seconds()}}}};
}

std::string unpack_text(const PullUnpack& unpack, const UnpackReport& report) {
  std::string text =
      "unpacked " + std::to_string(report.layers) + " layers into " + unpack.directory() + ": " +
      std::to_string(report.files) + " files (" + format_bytes(report.bytes_written) + "), " +
      std::to_string(report.directories) + " directories, " + std::to_string(report.symlinks) +
      " symlinks, " + std::to_string(report.whiteouts) + " whiteouts";
  if (report.devices_skipped != 0) {
    text += ", " + std::to_string(report.devices_skipped) + " devices skipped";
  }
  return text;
}

}  // namespace strata::tool
