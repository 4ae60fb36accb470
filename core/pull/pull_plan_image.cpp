// Image-level pulls against a local OCI layout standing in for a registry: each layer's chunked
// TOC is read through a file-backed range fetcher (so every byte read is counted, as a registry
// would bill it), planned against the chunk store (its chunk digests are SHA-256 of the
// uncompressed chunk, what zstd:chunked and eStargz TOCs name, shared/specs/layer-formats.md §1.5),
// and pulled straight into the store (fastpull::pull_chunked_layer_into_store: batches of ranges,
// every chunk checked, the TOC's chunks and frames kept, the diff_id checked before the commit).
// A registry client plugs into the same planner and store pull with its own fetchers.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "strata/engine.h"
#include "strata/oci.h"
#include "strata/store.h"
#include "strata/store_pull.h"

namespace strata::fastpull {
namespace {

// Reads ranges of one blob file with pread, counting the bytes.
class FileRangeReader {
 public:
  static Result<FileRangeReader> open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(ErrorCode::kIo, "open " + path + ": " + std::strerror(errno));
    return FileRangeReader(fd, path);
  }
  FileRangeReader(FileRangeReader&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), bytes_(other.bytes_) {}
  FileRangeReader& operator=(FileRangeReader&&) = delete;
  FileRangeReader(const FileRangeReader&) = delete;
  FileRangeReader& operator=(const FileRangeReader&) = delete;
  ~FileRangeReader() {
    if (fd_ >= 0) ::close(fd_);
  }

  RangeFetcher fetcher() {
    return [this](std::uint64_t offset, std::uint64_t length) -> Result<std::vector<std::uint8_t>> {
      if (length > (std::uint64_t{1} << 32U)) {
        return make_error(ErrorCode::kLimitExceeded, "range request over 4 GiB");
      }
      std::vector<std::uint8_t> out(length);
      std::size_t done = 0;
      while (done < out.size()) {
        const ssize_t n =
            ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(ErrorCode::kIo, "read " + path_ + ": " + std::strerror(errno));
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
      }
      out.resize(done);
      bytes_ += done;
      return out;
    };
  }
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  FileRangeReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  std::uint64_t bytes_ = 0;
};

struct LoadedImage {
  oci::OciLayout layout;
  oci::Image image;
};

Result<LoadedImage> load(const std::string& source, std::string_view tag) {
  auto layout = oci::OciLayout::open(source);
  if (!layout) return std::move(layout).error();
  auto image = layout->load_image(tag);
  if (!image) return std::move(image).error();
  return LoadedImage{std::move(*layout), std::move(*image)};
}

}  // namespace

Result<std::vector<LayerPullPlan>> plan_image_pull(const ChunkStore& store,
                                                   const std::string& source, std::string_view tag,
                                                   const PullPlanOptions& options) {
  auto loaded = load(source, tag);
  if (!loaded) return std::move(loaded).error();
  std::vector<LayerPullPlan> plans;
  const auto& layers = loaded->image.manifest.layers;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    LayerPullPlan plan;
    plan.layer_digest = layers[i].digest;
    plan.diff_id = loaded->image.config.diff_ids[i];
    plan.size = layers[i].size;
    if (chunked_format_of(layers[i].annotations)) {
      auto reader = FileRangeReader::open(loaded->layout.blob_path(layers[i].digest));
      if (!reader) return std::move(reader).error();
      auto toc = read_chunked_toc(layers[i].size, layers[i].annotations, reader->fetcher());
      if (!toc) return std::move(toc).error();
      auto planned = plan_pull(
          *toc, [&](const Digest& digest) { return store.contains(digest); }, options);
      if (!planned) return std::move(planned).error();
      plan.chunked = true;
      plan.plan = std::move(*planned);
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

Result<LayoutPullReport> pull_layout_image(ChunkStore& store, const std::string& source,
                                           std::string_view tag, const PullPlanOptions& options) {
  auto loaded = load(source, tag);
  if (!loaded) return std::move(loaded).error();
  LayoutPullReport report;
  const auto& layers = loaded->image.manifest.layers;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    LayerPullPlan plan;
    plan.layer_digest = layers[i].digest;
    plan.diff_id = loaded->image.config.diff_ids[i];
    plan.size = layers[i].size;
    const std::string path = loaded->layout.blob_path(layers[i].digest);
    if (!chunked_format_of(layers[i].annotations)) {
      // A plain layer is fetched whole.
      auto ingested = ingest_layer_file(store, path, IngestOptions{});
      if (!ingested) return std::move(ingested).error();
      if (ingested->diff_id != plan.diff_id) {
        return make_error(ErrorCode::kDigestMismatch,
                          "layer " + plan.layer_digest.to_string() + " differs from its diff_id");
      }
      report.bytes_read += ingested->input_bytes;
      report.tar_bytes += ingested->tar_bytes;
      report.layers.push_back(std::move(plan));
      continue;
    }
    auto reader = FileRangeReader::open(path);
    if (!reader) return std::move(reader).error();
    auto toc = read_chunked_toc(layers[i].size, layers[i].annotations, reader->fetcher());
    if (!toc) return std::move(toc).error();
    auto planned = plan_pull(
        *toc, [&](const Digest& digest) { return store.contains(digest); }, options);
    if (!planned) return std::move(planned).error();
    const RangeFetcher fetch_range = reader->fetcher();
    const RangeBatchFetcher fetch_batch =
        [&](std::span<const ByteRange> ranges) -> Result<std::vector<std::vector<std::uint8_t>>> {
      std::vector<std::vector<std::uint8_t>> out;
      out.reserve(ranges.size());
      for (const ByteRange& range : ranges) {
        auto bytes = fetch_range(range.offset, range.length);
        if (!bytes) return std::move(bytes).error();
        out.push_back(std::move(*bytes));
      }
      return out;
    };
    StorePullOptions store_options;
    store_options.media_type = layers[i].media_type;
    auto pulled = pull_chunked_layer_into_store(store, *toc, *planned, fetch_batch, plan.diff_id,
                                                store_options);
    if (!pulled) {
      return make_error(pulled.error().code,
                        "layer " + plan.layer_digest.to_string() + ": " + pulled.error().message);
    }
    report.bytes_read += reader->bytes();
    report.tar_bytes += pulled->tar_bytes;
    plan.chunked = true;
    plan.plan = std::move(*planned);
    report.layers.push_back(std::move(plan));
  }
  return report;
}

}  // namespace strata::fastpull
