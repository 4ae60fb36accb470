// The OCI image layout on disk (image-spec image-layout.md, shared/specs/layer-formats.md §3):
// `oci-layout` = {"imageLayoutVersion":"1.0.0"}, `index.json` (an image index whose entries carry
// tags in org.opencontainers.image.ref.name), and `blobs/sha256/<hex>`, whose content must hash
// to its name. Blobs and index.json are written atomically (temporary file, fsync, rename, fsync
// of the directory); every blob read is checked against its descriptor's size and digest. Tagging
// re-reads index.json under flock() of the layout directory, so concurrent taggers lose nothing.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/base/file_io.h"
#include "strata/oci.h"

namespace strata::oci {
namespace {

constexpr std::size_t kReadBlockBytes = std::size_t{1} << 20U;

std::string unique_temp_name(const std::string& directory, const std::string& stem) {
  static std::atomic<std::uint64_t> counter{0};
  return directory + "/." + stem + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

Result<void> sync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", directory, errno, PathQuoting::kBare);
  const int status = ::fsync(fd);
  ::close(fd);
  if (status != 0) return io_error("cannot fsync directory", directory, errno, PathQuoting::kBare);
  return {};
}

Result<void> write_file_atomically(const std::string& path, std::string_view content) {
  const std::string directory = std::filesystem::path(path).parent_path().string();
  const std::string temp =
      unique_temp_name(directory, std::filesystem::path(path).filename().string());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create", temp, errno, PathQuoting::kBare);
  auto written =
      write_all(fd, ByteSpan(reinterpret_cast<const std::uint8_t*>(content.data()), content.size()),
                temp, PathQuoting::kBare);
  const bool synced = written.ok() && ::fsync(fd) == 0;
  ::close(fd);
  if (!written.ok() || !synced || ::rename(temp.c_str(), path.c_str()) != 0) {
    Error error = written.ok() ? io_error("cannot commit", path, errno, PathQuoting::kBare)
                               : std::move(written).error();
    ::unlink(temp.c_str());
    return error;
  }
  return sync_directory(directory);
}

Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(ErrorCode::kNotFound, path + " does not exist");
    return io_error("cannot open", path, errno, PathQuoting::kBare);
  }
  std::string content;
  char block[65536];
  for (;;) {
    const ssize_t got = ::read(fd, block, sizeof block);
    if (got < 0) {
      if (errno == EINTR) continue;
      Error error = io_error("cannot read", path, errno, PathQuoting::kBare);
      ::close(fd);
      return error;
    }
    if (got == 0) break;
    content.append(block, static_cast<std::size_t>(got));
    if (content.size() > max_bytes) {
      ::close(fd);
      return make_error(ErrorCode::kLimitExceeded,
                        path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return content;
}

ByteSpan as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// Opens a blob and checks its length against the descriptor before anything is read.
Result<int> open_blob(const std::string& path, const Descriptor& descriptor) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return make_error(ErrorCode::kNotFound,
                        "blob " + descriptor.digest.to_string() + " is missing (" + path + ")");
    }
    return io_error("cannot open blob", path, errno, PathQuoting::kBare);
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kCorruptInput, "blob " + path + " is not a regular file");
  }
  if (static_cast<std::uint64_t>(info.st_size) != descriptor.size) {
    ::close(fd);
    return make_error(ErrorCode::kCorruptInput, "blob " + descriptor.digest.to_string() + " is " +
                                                    std::to_string(info.st_size) +
                                                    " bytes but its descriptor says " +
                                                    std::to_string(descriptor.size));
  }
  return fd;
}

Error digest_mismatch(const Descriptor& descriptor, const Digest& actual) {
  return make_error(ErrorCode::kDigestMismatch, "blob " + descriptor.digest.to_string() +
                                                    " does not hash to its name (content is " +
                                                    actual.to_string() + ")");
}

}  // namespace

// ---- references ------------------------------------------------------------------------------

bool is_valid_tag(std::string_view tag) noexcept {
  if (tag.empty() || tag.size() > 128) return false;
  for (std::size_t i = 0; i < tag.size(); ++i) {
    const char c = tag[i];
    const bool word =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

LayoutReference parse_layout_reference(std::string_view text) {
  const std::size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && is_valid_tag(text.substr(colon + 1))) {
    return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
  }
  return {std::string(text), std::string()};
}

// ---- BlobWriter ------------------------------------------------------------------------------

struct BlobWriter::State {
  int fd = -1;
  std::string temp_path;
  std::string blob_directory;
  Sha256 hasher;
  std::uint64_t size = 0;

  ~State() {
    if (fd >= 0) {
      ::close(fd);
      ::unlink(temp_path.c_str());
    }
  }
};

BlobWriter::BlobWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
BlobWriter::BlobWriter(BlobWriter&&) noexcept = default;
BlobWriter& BlobWriter::operator=(BlobWriter&&) noexcept = default;
BlobWriter::~BlobWriter() = default;

Result<void> BlobWriter::write(ByteSpan bytes) {
  if (!state_ || state_->fd < 0) {
    return make_error(ErrorCode::kInvalidArgument, "blob writer already committed");
  }
  STRATA_TRY(write_all(state_->fd, bytes, state_->temp_path, PathQuoting::kBare));
  state_->hasher.update(bytes);
  state_->size += bytes.size();
  return {};
}

Result<Descriptor> BlobWriter::commit(std::string_view media_type) {
  if (!state_ || state_->fd < 0) {
    return make_error(ErrorCode::kInvalidArgument, "blob writer already committed");
  }
  State& state = *state_;
  Descriptor descriptor;
  descriptor.media_type = std::string(media_type);
  descriptor.digest = state.hasher.finish();
  descriptor.size = state.size;
  const bool synced = ::fsync(state.fd) == 0;
  ::close(state.fd);
  state.fd = -1;
  const std::string final_path = state.blob_directory + "/" + descriptor.digest.hex();
  if (!synced || ::rename(state.temp_path.c_str(), final_path.c_str()) != 0) {
    Error error = io_error("cannot commit blob", final_path, errno, PathQuoting::kBare);
    ::unlink(state.temp_path.c_str());
    return error;
  }
  STRATA_TRY(sync_directory(state.blob_directory));
  return descriptor;
}

// ---- OciLayout -------------------------------------------------------------------------------

Result<OciLayout> OciLayout::open(const std::string& directory) {
  auto marker = read_small_file(directory + "/oci-layout", 4096);
  if (!marker.ok()) {
    return make_error(marker.error().code,
                      directory + " is not an OCI image layout: " + marker.error().message);
  }
  const nlohmann::json version =
      nlohmann::json::parse(*marker, nullptr, /*allow_exceptions=*/false);
  if (!version.is_object() || !version.contains("imageLayoutVersion") ||
      version["imageLayoutVersion"] != std::string(kImageLayoutVersion)) {
    return make_error(
        ErrorCode::kUnsupported,
        directory + "/oci-layout: imageLayoutVersion is not " + std::string(kImageLayoutVersion));
  }
  auto index_text = read_small_file(directory + "/index.json", kMaxJsonBytes);
  if (!index_text.ok()) return std::move(index_text).error();
  auto index = parse_index(as_bytes(*index_text));
  if (!index.ok()) {
    return make_error(index.error().code, directory + "/index.json: " + index.error().message);
  }
  OciLayout layout;
  layout.directory_ = directory;
  layout.index_ = std::move(*index);
  return layout;
}

Result<OciLayout> OciLayout::open_or_create(const std::string& directory) {
  std::error_code error;
  std::filesystem::create_directories(directory + "/blobs/sha256", error);
  if (error) {
    return make_error(ErrorCode::kIo, "cannot create layout " + directory + ": " + error.message());
  }
  if (!std::filesystem::exists(directory + "/oci-layout", error)) {
    STRATA_TRY(write_file_atomically(
        directory + "/oci-layout",
        "{\"imageLayoutVersion\":\"" + std::string(kImageLayoutVersion) + "\"}"));
  }
  if (!std::filesystem::exists(directory + "/index.json", error)) {
    STRATA_TRY(write_file_atomically(directory + "/index.json", write_index(Index{})));
  }
  return open(directory);
}

std::string OciLayout::blob_path(const Digest& digest) const {
  return directory_ + "/blobs/sha256/" + digest.hex();
}

Result<BlobWriter> OciLayout::begin_blob() const {
  auto state = std::make_unique<BlobWriter::State>();
  state->blob_directory = directory_ + "/blobs/sha256";
  std::error_code error;
  std::filesystem::create_directories(state->blob_directory, error);
  if (error) {
    return make_error(ErrorCode::kIo,
                      "cannot create " + state->blob_directory + ": " + error.message());
  }
  state->temp_path = unique_temp_name(state->blob_directory, "blob");
  state->fd = ::open(state->temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (state->fd < 0) return io_error("cannot create", state->temp_path, errno, PathQuoting::kBare);
  return BlobWriter(std::move(state));
}

Result<Descriptor> OciLayout::write_blob(std::string_view media_type, ByteSpan bytes) const {
  auto writer = begin_blob();
  if (!writer.ok()) return std::move(writer).error();
  STRATA_TRY(writer->write(bytes));
  return writer->commit(media_type);
}

Result<std::vector<std::uint8_t>> OciLayout::read_blob(const Descriptor& descriptor,
                                                       std::size_t max_bytes) const {
  if (descriptor.size > max_bytes) {
    return make_error(ErrorCode::kLimitExceeded, "blob " + descriptor.digest.to_string() + " is " +
                                                     std::to_string(descriptor.size) +
                                                     " bytes, more than the " +
                                                     std::to_string(max_bytes) + " allowed here");
  }
  std::vector<std::uint8_t> content;
  content.reserve(descriptor.size);
  STRATA_TRY(stream_blob(descriptor, [&content](ByteSpan block) -> Result<void> {
    content.insert(content.end(), block.begin(), block.end());
    return {};
  }));
  return content;
}

Result<void> OciLayout::stream_blob(const Descriptor& descriptor, const ByteSink& consume) const {
  const std::string path = blob_path(descriptor.digest);
  auto fd = open_blob(path, descriptor);
  if (!fd.ok()) return std::move(fd).error();
  Sha256 hasher;
  std::vector<std::uint8_t> block(kReadBlockBytes);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t got = ::read(*fd, block.data(), block.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      Error error = io_error("cannot read blob", path, errno, PathQuoting::kBare);
      ::close(*fd);
      return error;
    }
    if (got == 0) break;
    const ByteSpan piece(block.data(), static_cast<std::size_t>(got));
    total += piece.size();
    if (total > descriptor.size) break;
    hasher.update(piece);
    auto consumed = consume(piece);
    if (!consumed.ok()) {
      ::close(*fd);
      return consumed;
    }
  }
  ::close(*fd);
  if (total != descriptor.size) {
    return make_error(ErrorCode::kCorruptInput,
                      "blob " + descriptor.digest.to_string() + " changed size while being read");
  }
  const Digest actual = hasher.finish();
  if (actual != descriptor.digest) return digest_mismatch(descriptor, actual);
  return {};
}

Result<Descriptor> OciLayout::resolve(std::string_view tag) const {
  if (tag.empty()) {
    if (index_.manifests.size() == 1) return index_.manifests.front();
    return make_error(ErrorCode::kNotFound, "layout " + directory_ + " holds " +
                                                std::to_string(index_.manifests.size()) +
                                                " images; name one as LAYOUT:TAG");
  }
  const Descriptor* found = nullptr;
  for (const Descriptor& entry : index_.manifests) {
    const auto name = entry.annotations.find(std::string(kAnnotationRefName));
    if (name == entry.annotations.end() || name->second != tag) continue;
    if (found != nullptr) {
      return make_error(ErrorCode::kCorruptInput, "layout " + directory_ + ": tag '" +
                                                      std::string(tag) + "' names two images");
    }
    found = &entry;
  }
  if (found == nullptr) {
    return make_error(ErrorCode::kNotFound,
                      "tag '" + std::string(tag) + "' not found in layout " + directory_);
  }
  return *found;
}

Result<Image> OciLayout::load_image(std::string_view tag) const {
  auto descriptor = resolve(tag);
  if (!descriptor.ok()) return std::move(descriptor).error();
  return load_image_from(*descriptor, [this](const Descriptor& blob) { return read_blob(blob); });
}

Result<ImageTree> OciLayout::load_tree(std::string_view tag, const ImageTreeLimits& limits) const {
  auto descriptor = resolve(tag);
  if (!descriptor.ok()) return std::move(descriptor).error();
  return load_image_tree(
      *descriptor, [this](const Descriptor& blob) { return read_blob(blob); }, limits);
}

Result<void> OciLayout::verify_image(std::string_view tag) const {
  auto image = load_image(tag);
  if (!image.ok()) return std::move(image).error();
  return verify_layers(*image);
}

Result<void> OciLayout::verify_layers(const Image& image) const {
  for (std::size_t i = 0; i < image.manifest.layers.size(); ++i) {
    const Descriptor& layer = image.manifest.layers[i];
    const std::string path = blob_path(layer.digest);
    auto fd = open_blob(path, layer);
    if (!fd.ok()) return std::move(fd).error();
    const int descriptor_fd = *fd;
    const ByteSource source = [descriptor_fd, &path](MutableByteSpan into) -> Result<std::size_t> {
      for (;;) {
        const ssize_t got = ::read(descriptor_fd, into.data(), into.size());
        if (got >= 0) return static_cast<std::size_t>(got);
        if (errno != EINTR) return io_error("cannot read blob", path, errno, PathQuoting::kBare);
      }
    };
    auto decoded = decode_layer(*layer_compression_of(layer.media_type), source, ByteSink());
    ::close(descriptor_fd);
    if (!decoded.ok()) {
      // A blob that is not what its descriptor names fails to decode too; its size or digest
      // is the real problem, so that is reported first (reliability.md §0 item 1).
      auto intact = stream_blob(layer, [](ByteSpan) -> Result<void> { return {}; });
      if (!intact.ok()) return std::move(intact).error();
      return make_error(decoded.error().code, "layer " + std::to_string(i) + " (blob " +
                                                  layer.digest.to_string() +
                                                  "): " + decoded.error().message);
    }
    if (decoded->digest != layer.digest) return digest_mismatch(layer, decoded->digest);
    if (decoded->diff_id != image.config.diff_ids[i]) {
      return make_error(ErrorCode::kDigestMismatch,
                        "layer " + std::to_string(i) + " (blob " + layer.digest.to_string() +
                            ") decompresses to " + decoded->diff_id.to_string() +
                            " but the config's diff_id is " + image.config.diff_ids[i].to_string());
    }
  }
  return {};
}

Result<void> OciLayout::set_tag(std::string_view tag, const Descriptor& manifest) {
  if (!is_valid_tag(tag)) {
    // Built by appending: GCC 12 warns falsely (-Wrestrict) on literal + std::string here.
    std::string message = "'";
    message += tag.substr(0, 200);
    message += "' is not a valid tag";
    return make_error(ErrorCode::kInvalidArgument, std::move(message));
  }
  // Another process (or another OciLayout of this directory) may have tagged since this one read
  // index.json: re-read it under an exclusive lock on the layout directory, so no tag is lost.
  const int lock_fd = ::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd < 0) return io_error("cannot open layout", directory_, errno, PathQuoting::kBare);
  if (::flock(lock_fd, LOCK_EX) != 0) {
    Error error = io_error("cannot lock layout", directory_, errno, PathQuoting::kBare);
    ::close(lock_fd);
    return error;
  }
  auto updated = update_index(tag, manifest);
  ::close(lock_fd);  // releases the lock
  if (!updated.ok()) return std::move(updated).error();
  index_ = std::move(*updated);
  return {};
}

Result<Index> OciLayout::update_index(std::string_view tag, const Descriptor& manifest) const {
  const std::string index_path = directory_ + "/index.json";
  auto index_text = read_small_file(index_path, kMaxJsonBytes);
  if (!index_text.ok()) return std::move(index_text).error();
  auto index = parse_index(as_bytes(*index_text));
  if (!index.ok()) return make_error(index.error().code, index_path + ": " + index.error().message);
  std::erase_if(index->manifests, [tag](const Descriptor& entry) {
    const auto name = entry.annotations.find(std::string(kAnnotationRefName));
    return name != entry.annotations.end() && name->second == tag;
  });
  Descriptor entry = manifest;
  entry.annotations[std::string(kAnnotationRefName)] = std::string(tag);
  index->manifests.push_back(std::move(entry));
  STRATA_TRY(write_file_atomically(index_path, write_index(*index)));
  return index;
}

}  // namespace strata::oci
