// `strata build DIR|TAR... --layout OUT --tag T`: one layer per argument (a directory becomes a
// deterministic tar; a tar, tar.gz or tar.zst file is decompressed and re-encoded), then an image
// config (os/architecture, rootfs.diff_ids, one history entry per layer) and a manifest, written
// into an OCI image layout and tagged in its index.json. The same inputs and options give the
// same digests: tar mtimes are fixed (--mtime, else SOURCE_DATE_EPOCH, else 0) and `created` is
// that same instant. The chunked formats (zstd:chunked, zstd:chunked-v1, eStargz) spool each tar
// to a temporary file in the layout, cut it as a store ingest would (or ingest it into --store)
// and write it with its TOC; their annotations go on the manifest's layer descriptors. Facts:
// shared/specs/layer-formats.md §3 (images), §1.4 and §2 (chunked layers and their annotations).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli_support.h"
#include "tools/commands.h"

namespace strata::tool {
namespace {

struct BuildCommandOptions {
  std::vector<std::string> inputs;
  std::string layout;
  std::string tag;
  std::string format = "gzip";
  std::string store;
  std::optional<int> level;
  unsigned threads = 1;
  std::optional<std::int64_t> mtime;
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  bool json = false;
};

// How each layer is encoded: a LayerWriter format, or a chunked one.
struct LayerEncoding {
  oci::LayerWriterOptions plain;
  std::optional<fastpull::ChunkedWriteOptions> chunked;
};

Result<LayerEncoding> layer_encoding_from(const BuildCommandOptions& options) {
  LayerEncoding encoding;
  if (options.format == "zstd:chunked" || options.format == "zstd:chunked-v1" ||
      options.format == "estargz") {
    fastpull::ChunkedWriteOptions chunked;
    chunked.format = options.format == "estargz"           ? fastpull::ChunkedFormat::kEstargz
                     : options.format == "zstd:chunked-v1" ? fastpull::ChunkedFormat::kZstdChunkedV1
                                                           : fastpull::ChunkedFormat::kZstdChunked;
    // zstd:chunked defaults to level 7, as `strata convert` does (core/export/layer_convert.cpp
    // says why); eStargz's level is ISA-L's.
    chunked.level =
        options.level.value_or(chunked.format == fastpull::ChunkedFormat::kEstargz ? 3 : 7);
    encoding.chunked = chunked;
    return encoding;
  }
  if (!options.store.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--store applies to --format zstd:chunked, zstd:chunked-v1 and estargz only");
  }
  oci::LayerWriterOptions& layer = encoding.plain;
  if (options.format == "tar") {
    layer.compression = oci::LayerCompression::kNone;
  } else if (options.format == "gzip") {
    layer.compression = oci::LayerCompression::kGzip;
  } else if (options.format == "gzip-zlib") {
    layer.compression = oci::LayerCompression::kGzip;
    layer.gzip_engine = oci::GzipEngine::kZlib;
  } else if (options.format == "zstd") {
    layer.compression = oci::LayerCompression::kZstd;
  } else {
    return make_error(ErrorCode::kInvalidArgument,
                      "unknown --format '" + options.format +
                          "' (tar, gzip, gzip-zlib, zstd, zstd:chunked, zstd:chunked-v1, estargz)");
  }
  layer.level = options.level;
  layer.threads = options.threads;
  return encoding;
}

Result<std::int64_t> resolve_mtime(const BuildCommandOptions& options) {
  if (options.mtime) return *options.mtime;
  const char* epoch = std::getenv("SOURCE_DATE_EPOCH");
  if (epoch == nullptr || *epoch == '\0') return std::int64_t{0};
  char* end = nullptr;
  const long long value = std::strtoll(epoch, &end, 10);
  if (*end != '\0') {
    return make_error(ErrorCode::kInvalidArgument,
                      std::string("SOURCE_DATE_EPOCH '") + epoch + "' is not an integer");
  }
  return static_cast<std::int64_t>(value);
}

std::string rfc3339_utc(std::int64_t seconds) {
  const auto time = static_cast<std::time_t>(seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::uint64_t bytes_under(const std::string& directory) {
  std::uint64_t total = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(directory, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error) && !it->is_symlink(error)) total += it->file_size(error);
  }
  return total;
}

// A layer written into the layout: its descriptor (annotations included) and its tar's digest.
struct BuiltLayer {
  oci::Descriptor descriptor;
  Digest diff_id;
  std::uint64_t uncompressed_size = 0;
  std::uint64_t reused_frames = 0;  // chunked formats: chunk frames copied from --store
};

// The layer's tar, from a directory (written deterministically) or a layer file (decoded), to
// `sink`, with a progress bar. The bar counts tar bytes against the source size (file bytes, or
// the layer file's size), so it is an estimate: headers and compression make the two differ,
// hence the clamp.
Result<void> stream_layer_tar(const std::string& input, const oci::DirectoryTarOptions& tar_options,
                              const ByteSink& sink) {
  std::error_code error;
  const bool is_directory = std::filesystem::is_directory(input, error);
  const std::uint64_t total =
      is_directory ? bytes_under(input) : std::filesystem::file_size(input, error);
  std::uint64_t done = 0;
  ProgressBar progress("layer " + input, error ? 0 : total);
  const ByteSink counted = [&](ByteSpan bytes) {
    done += bytes.size();
    progress.update(std::min(done, total));
    return sink(bytes);
  };
  if (is_directory) {
    auto tar = oci::write_directory_tar(input, tar_options, counted);
    if (!tar.ok()) return std::move(tar).error();
    return {};
  }
  auto decoded = oci::decode_layer_file(input, counted);
  if (!decoded.ok()) return std::move(decoded).error();
  return {};
}

Result<BuiltLayer> build_plain_layer(const oci::OciLayout& layout, const std::string& input,
                                     const oci::LayerWriterOptions& layer_options,
                                     const oci::DirectoryTarOptions& tar_options) {
  auto blob = layout.begin_blob();
  if (!blob.ok()) return std::move(blob).error();
  auto writer = oci::LayerWriter::create(layer_options,
                                         [&blob](ByteSpan bytes) { return blob->write(bytes); });
  if (!writer.ok()) return std::move(writer).error();
  STRATA_TRY(
      stream_layer_tar(input, tar_options, [&](ByteSpan bytes) { return writer->write(bytes); }));
  auto digests = writer->finish();
  if (!digests.ok()) return std::move(digests).error();
  auto committed = blob->commit(digests->media_type);
  if (!committed.ok()) return std::move(committed).error();
  return BuiltLayer{std::move(*committed), digests->diff_id, digests->uncompressed_size, 0};
}

// The tar spooled for the chunked writers (they need the cut points before the first frame, and a
// directory's tar cannot be read twice without writing it again): a hidden file in the layout,
// on the blobs' file system, removed when the layer is written.
class SpooledTar {
 public:
  explicit SpooledTar(const std::string& layout_directory)
      : path_(layout_directory + "/.strata-build-tar-XXXXXX") {
    const int fd = ::mkstemp(path_.data());
    if (fd < 0) {
      path_.clear();
    } else {
      ::close(fd);
    }
  }
  ~SpooledTar() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  SpooledTar(const SpooledTar&) = delete;
  SpooledTar& operator=(const SpooledTar&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

Result<BuiltLayer> build_chunked_layer(const oci::OciLayout& layout, const std::string& input,
                                       ChunkStore* store,
                                       const fastpull::ChunkedWriteOptions& write_options,
                                       const oci::DirectoryTarOptions& tar_options) {
  const SpooledTar spooled(layout.directory());
  if (spooled.path().empty()) {
    return make_error(ErrorCode::kIo, "cannot create a temporary tar in " + layout.directory());
  }
  {
    std::ofstream file(spooled.path(), std::ios::binary | std::ios::trunc);
    STRATA_TRY(stream_layer_tar(input, tar_options, [&](ByteSpan bytes) -> Result<void> {
      file.write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
      if (!file) return make_error(ErrorCode::kIo, "cannot write " + spooled.path());
      return {};
    }));
    file.close();
    if (!file) return make_error(ErrorCode::kIo, "cannot write " + spooled.path());
  }
  auto blob = layout.begin_blob();
  if (!blob.ok()) return std::move(blob).error();
  auto written = fastpull::write_chunked_layer_from_tar_file(
      spooled.path(), store, write_options, [&](ByteSpan bytes) { return blob->write(bytes); });
  if (!written.ok()) return std::move(written).error();
  auto committed = blob->commit(written->media_type);
  if (!committed.ok()) return std::move(committed).error();
  committed->annotations = written->annotations;
  return BuiltLayer{std::move(*committed), written->diff_id, written->uncompressed_size,
                    written->reused_frames};
}

int run_build(const BuildCommandOptions& options) {
  if (!oci::is_valid_tag(options.tag)) {
    return report_error(
        make_error(ErrorCode::kInvalidArgument, "'" + options.tag + "' is not a valid tag"));
  }
  auto encoding = layer_encoding_from(options);
  if (!encoding.ok()) return report_error(encoding.error());
  auto mtime = resolve_mtime(options);
  if (!mtime.ok()) return report_error(mtime.error());
  oci::DirectoryTarOptions tar_options;
  tar_options.mtime = *mtime;
  auto layout = oci::OciLayout::open_or_create(options.layout);
  if (!layout.ok()) return report_error(layout.error());
  auto opened_store = open_optional_store(options.store);
  if (!opened_store.ok()) return report_error(opened_store.error());
  std::optional<ChunkStore>& store = *opened_store;

  const std::string created = rfc3339_utc(*mtime);
  oci::ImageConfig config;
  config.created = created;
  config.os = options.os;
  config.architecture = options.architecture;
  config.variant = options.variant;
  oci::Manifest manifest;
  nlohmann::json layer_report = nlohmann::json::array();
  for (const std::string& input : options.inputs) {
    auto layer = encoding->chunked
                     ? build_chunked_layer(*layout, input, store ? &*store : nullptr,
                                           *encoding->chunked, tar_options)
                     : build_plain_layer(*layout, input, encoding->plain, tar_options);
    if (!layer.ok()) return report_error(layer.error());
    manifest.layers.push_back(layer->descriptor);
    config.diff_ids.push_back(layer->diff_id);
    oci::HistoryEntry history;
    history.created = created;
    history.created_by =
        "strata build " + std::filesystem::path(input).lexically_normal().filename().string();
    config.history.push_back(std::move(history));
    layer_report.push_back({{"source", input},
                            {"mediaType", layer->descriptor.media_type},
                            {"digest", layer->descriptor.digest.to_string()},
                            {"size", layer->descriptor.size},
                            {"diff_id", layer->diff_id.to_string()},
                            {"uncompressed_size", layer->uncompressed_size},
                            {"reused_frames", layer->reused_frames}});
  }
  const std::string config_json = oci::write_image_config(config);
  auto config_descriptor = layout->write_blob(
      oci::kMediaTypeImageConfig,
      ByteSpan(reinterpret_cast<const std::uint8_t*>(config_json.data()), config_json.size()));
  if (!config_descriptor.ok()) return report_error(config_descriptor.error());
  manifest.config = *config_descriptor;
  const std::string manifest_json = oci::write_manifest(manifest);
  auto manifest_descriptor = layout->write_blob(
      oci::kMediaTypeImageManifest,
      ByteSpan(reinterpret_cast<const std::uint8_t*>(manifest_json.data()), manifest_json.size()));
  if (!manifest_descriptor.ok()) return report_error(manifest_descriptor.error());
  if (auto tagged = layout->set_tag(options.tag, *manifest_descriptor); !tagged.ok()) {
    return report_error(tagged.error());
  }
  if (options.json) {
    const nlohmann::json report = {{"layout", options.layout},
                                   {"tag", options.tag},
                                   {"manifest_digest", manifest_descriptor->digest.to_string()},
                                   {"manifest_size", manifest_descriptor->size},
                                   {"config_digest", config_descriptor->digest.to_string()},
                                   {"layers", std::move(layer_report)}};
    std::cout << report.dump(2) << '\n';
  } else {
    for (const auto& layer : layer_report) {
      std::cout << "layer " << layer["digest"].get<std::string>() << " "
                << format_bytes(layer["size"].get<std::uint64_t>()) << " ("
                << layer["source"].get<std::string>() << ")\n";
    }
    std::cout << options.layout << ":" << options.tag << " "
              << manifest_descriptor->digest.to_string() << '\n';
  }
  return kExitOk;
}

}  // namespace

void register_build_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<BuildCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "build", "Build an OCI image (one layer per directory or tar) into an image layout");
  command->add_option("inputs", options->inputs, "Directories or tar / tar.gz / tar.zst files")
      ->required();
  command->add_option("--layout", options->layout, "OCI image layout directory (created)")
      ->required();
  command->add_option("--tag", options->tag, "Tag written to index.json")->required();
  command->add_option("--format", options->format,
                      "Layer format: tar, gzip (ISA-L, default), gzip-zlib, zstd, zstd:chunked, "
                      "zstd:chunked-v1, estargz");
  command->add_option("--level", options->level,
                      "Compression level (ISA-L 0..3, default 1; zlib 0..9, default 6; zstd "
                      "default 3; zstd:chunked default 7; estargz ISA-L 0..3, default 3)");
  command->add_option("--store", options->store,
                      "Chunked formats: ingest each layer into this chunk store (created) and copy "
                      "its stored chunk frames into the blob");
  command->add_option("--threads", options->threads, "zstd worker threads (default 1)")
      ->check(CLI::Range(1U, 256U));
  command->add_option("--mtime", options->mtime,
                      "mtime of every tar entry (default SOURCE_DATE_EPOCH, else 0)");
  command->add_option("--os", options->os, "Config os (default linux)");
  command->add_option("--arch", options->architecture, "Config architecture (default amd64)");
  command->add_option("--variant", options->variant, "Config architecture variant");
  command->add_flag("--json", options->json, "Machine-readable output");
  command->callback([options, &exit_code] { exit_code = run_build(*options); });
}

}  // namespace strata::tool
