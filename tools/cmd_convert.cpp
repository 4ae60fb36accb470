// `strata convert LAYOUT:TAG --to FORMAT --layout OUT --tag T [--store DIR] [--level N]`: rewrites
// every layer of an image through the chunk store into tar, gzip, zstd or zstd:chunked (current
// or old variant, shared/specs/layer-formats.md §1) or eStargz (§2: its tar gains a landmark and
// the TOC entry, so the config gets new diff_ids), keeping the diff_ids otherwise. Without
// --store a temporary store under $TMPDIR is used and removed afterwards (nothing is left behind;
// pass --store to keep the chunks for later dedup and pull planning). A tag naming an image index
// converts the whole tree (or, with --platform, one image of it).
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct ConvertCommandOptions {
  std::string source;
  std::string to = "zstd:chunked";
  std::string layout;
  std::string tag;
  std::string store;
  std::optional<int> level;
  bool store_frames = false;
  bool from_store = false;
  unsigned threads = 0;
  bool json = false;
  std::string platform;
};

// A temporary store directory removed when the command ends.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                          "/strata-convert-store-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

int run_convert(const ConvertCommandOptions& options) {
  auto target = fastpull::parse_convert_target(options.to);
  if (!target) return report_error(target.error());
  if (options.store_frames && *target != fastpull::ConvertTarget::kZstd) {
    return report_error(
        make_error(ErrorCode::kInvalidArgument,
                   "--store-frames applies to --to zstd only, not --to '" + options.to + "'"));
  }
  if (!oci::is_valid_tag(options.tag)) {
    return report_error(
        make_error(ErrorCode::kInvalidArgument, "invalid --tag '" + options.tag + "'"));
  }
  TemporaryDirectory temporary;
  std::string store_path = options.store;
  if (store_path.empty()) {
    if (temporary.path().empty()) {
      return report_error(make_error(ErrorCode::kIo, "cannot create a temporary store"));
    }
    store_path = temporary.path();
  }
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(store_path, store_options);
  if (!store) return report_error(store.error());
  const auto reference = oci::parse_layout_reference(options.source);
  fastpull::ConvertOptions convert;
  convert.target = *target;
  convert.level = options.level;
  convert.reuse_store_frames = options.store_frames;
  convert.from_store = options.from_store;
  convert.threads = options.threads;
  convert.platform = options.platform;
  auto report = fastpull::convert_image(*store, reference.layout, reference.tag, options.layout,
                                        options.tag, convert);
  if (!report) return report_error(report.error());
  if (options.json) {
    nlohmann::json out;
    out["manifest"] = report->manifest_digest.to_string();
    out["seconds"] = report->seconds;
    out["layers"] = nlohmann::json::array();
    for (const auto& layer : report->layers) {
      out["layers"].push_back({{"diff_id", layer.diff_id.to_string()},
                               {"source_digest", layer.source_digest.to_string()},
                               {"source_size", layer.source_size},
                               {"digest", layer.digest.to_string()},
                               {"size", layer.size},
                               {"tar_bytes", layer.tar_bytes},
                               {"reused_frames", layer.reused_frames},
                               {"write_seconds", layer.seconds}});
    }
    out["mediaType"] = report->media_type;
    out["manifests"] = nlohmann::json::array();
    for (const auto& written : report->manifests) {
      out["manifests"].push_back({{"kind", written.kind},
                                  {"platform", written.platform},
                                  {"source_digest", written.source_digest.to_string()},
                                  {"digest", written.digest.to_string()}});
    }
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& layer : report->layers) {
      std::cout << layer.source_digest.to_string() << " -> " << layer.digest.to_string() << " ("
                << format_bytes(layer.size) << ", " << layer.reused_frames
                << " chunk frames reused)\n";
    }
    if (report->manifests.size() > 1) {
      for (const auto& written : report->manifests) {
        std::cout << written.kind << (written.platform.empty() ? "" : " " + written.platform) << " "
                  << written.source_digest.to_string() << " -> " << written.digest.to_string()
                  << "\n";
      }
    }
    std::cout << options.layout << ":" << options.tag << " " << report->manifest_digest.to_string()
              << "\n";
  }
  return kExitOk;
}

}  // namespace

void register_convert_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<ConvertCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "convert",
      "Rewrite an image's layers through the chunk store into another layer format. A tag naming "
      "an index (also nested, also a Docker manifest list) converts every image below it, each "
      "shared layer once, and writes new indexes with the new digests; entries that are not images "
      "(attestations, other artifacts) are copied unchanged, not converted");
  command->add_option("source", options->source, "LAYOUT:TAG of the image to convert")->required();
  command->add_option("--to", options->to,
                      "Target: tar, gzip, zstd, zstd:chunked (default), zstd:chunked-v1, estargz");
  command->add_option("--layout", options->layout, "Output OCI layout (created)")->required();
  command->add_option("--tag", options->tag, "Tag of the converted image")->required();
  command->add_option("--store", options->store,
                      "Chunk store directory (created; default: a temporary store, removed)");
  command->add_option(
      "--level", options->level,
      "Compression level of frames written anew (zstd default 3, zstd:chunked default 7; "
      "gzip ISA-L 0..3). For zstd:chunked targets also the level the store codes "
      "new chunks at: their frames are the layer's (chunks the store already "
      "holds keep their frames)");
  command->add_flag("--store-frames", options->store_frames,
                    "--to zstd: build the layer from the store's per-chunk zstd frames instead of "
                    "compressing the tar again (much faster; the blob is a few % larger)");
  command->add_flag(
      "--from-store", options->from_store,
      "--to tar|gzip|zstd: write each layer by exporting it from the store after "
      "the ingest, not from the tar stream while it is ingested (slower, same bytes)");
  command->add_option("--threads", options->threads,
                      "Ingest and zstd worker threads (default: one per hardware thread)");
  command->add_option("--platform", options->platform,
                      "os/arch[/variant]: when the tag names an index, convert only that image "
                      "and tag its new manifest");
  command->add_flag("--json", options->json, "Machine-readable output");
  command->callback([options, &exit_code] { exit_code = run_convert(*options); });
}

}  // namespace strata::tool
