// Layer unpack (include/strata/unpack.h): reads each layer's tar with the hardened TarReader and
// applies its entries under a safe_path::RootDirectory, following the OCI layer changeset rules
// (shared/specs/layer-formats.md: whiteouts ".wh.<name>" and ".wh..wh..opq" apply only to lower
// layers). Every filesystem call is an *at() call on a directory descriptor resolved under the
// root, with NOFOLLOW on the entry's own name, which is what keeps the breakout cases of
// shared/specs/reliability.md §1a (symlink then write, hard link out, whiteout through a symlink,
// "/." replaced by a link) inside the destination.
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "core/base/byte_source.h"
#include "core/base/file_io.h"
#include "core/base/safe_path.h"
#include "core/unpack/layer_applier.h"
#include "formats/compress/layer_source.h"
#include "formats/tar/tar_reader.h"
#include "strata/unpack.h"

namespace strata {

using safe_path::FileDescriptor;
using safe_path::ResolvedParent;
using safe_path::RootDirectory;
using unpack_detail::LayerApplier;

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

std::string child_path(const std::string& directory, const std::string& name) {
  return directory.empty() ? name : directory + "/" + name;
}

// The entry's mtime, with the fraction of a pax "mtime=1700000000.25" record when there is one.
timespec mtime_of(const TarEntry& entry) {
  timespec time{};
  time.tv_sec = static_cast<time_t>(entry.mtime);
  const std::size_t dot = entry.pax_mtime.find('.');
  if (dot != std::string::npos) {
    long nanoseconds = 0;
    int digits = 0;
    for (std::size_t i = dot + 1; i < entry.pax_mtime.size() && digits < 9; ++i, ++digits) {
      const char c = entry.pax_mtime[i];
      if (c < '0' || c > '9') break;
      nanoseconds = nanoseconds * 10 + (c - '0');
    }
    for (; digits < 9; ++digits) nanoseconds *= 10;
    // "-1.25" is 1.25 s before the epoch: the whole part was already rounded toward zero.
    if (!entry.pax_mtime.empty() && entry.pax_mtime.front() == '-' && nanoseconds != 0) {
      time.tv_sec -= 1;
      nanoseconds = 1'000'000'000L - nanoseconds;
    }
    time.tv_nsec = nanoseconds;
  }
  return time;
}

mode_t permissions_of(const TarEntry& entry) {
  return static_cast<mode_t>(static_cast<std::uint64_t>(entry.mode) & 07777U);
}

bool is_running_as_root() {
  return ::geteuid() == 0;
}

}  // namespace

namespace unpack_detail {

LayerApplier::LayerApplier(const RootDirectory& root, const UnpackOptions& options,
                           UnpackReport& report)
    : root_(root), options_(options), report_(report), as_root_(is_running_as_root()) {}

bool LayerApplier::created_in_this_layer(const std::string& path) const {
  // The path itself, or something beneath it (a directory made on the way to a new entry).
  const auto next = created_.lower_bound(path);
  if (next == created_.end()) return false;
  return *next == path || next->rfind(path + "/", 0) == 0;
}

void LayerApplier::forget_directories_under(const std::string& path) {
  directories_.erase(path);
  const std::string prefix = path + "/";
  for (auto it = directories_.lower_bound(prefix);
       it != directories_.end() && it->first.rfind(prefix, 0) == 0;) {
    it = directories_.erase(it);
  }
}

Result<bool> LayerApplier::clear_path(const ResolvedParent& parent, const std::string& path,
                                      bool keep_directory) {
  struct stat info {};
  if (::fstatat(parent.directory.get(), parent.name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return io_error("cannot stat", path, errno);
  }
  if (keep_directory && S_ISDIR(info.st_mode)) return true;
  STRATA_TRY(safe_path::remove_tree_at(parent.directory.get(), parent.name));
  forget_directories_under(path);
  return false;
}

Result<void> LayerApplier::set_xattrs(int fd, const TarEntry& entry, const std::string& path) {
  for (const auto& [name, value] : entry.xattrs) {
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) == 0) continue;
    if (errno == EPERM || errno == ENOTSUP || errno == EACCES) {
      ++report_.xattrs_skipped;
      continue;
    }
    return io_error("cannot set xattr " + name + " on", path, errno);
  }
  return {};
}

Result<void> LayerApplier::set_owner_at(const ResolvedParent& parent, const TarEntry& entry,
                                        const std::string& path) {
  if (!as_root_) return {};
  if (entry.uid < 0 || entry.gid < 0 || entry.uid >= 0xffffffffLL || entry.gid >= 0xffffffffLL) {
    return make_error(ErrorCode::kCorruptInput, "entry '" + path + "': uid/gid out of range");
  }
  if (::fchownat(parent.directory.get(), parent.name.c_str(), static_cast<uid_t>(entry.uid),
                 static_cast<gid_t>(entry.gid), AT_SYMLINK_NOFOLLOW) != 0) {
    return io_error("cannot chown", path, errno);
  }
  return {};
}

Result<void> LayerApplier::apply_whiteout(const std::vector<std::string>& components) {
  const std::string& marker = components.back();
  const std::string name = marker.substr(kWhiteoutPrefix.size());
  if (name.empty() || name == "." || name == ".." || name.rfind(kWhiteoutPrefix, 0) == 0) {
    return make_error(
        ErrorCode::kCorruptInput,
        "whiteout '" + safe_path::join_components(components) + "' names no removable entry");
  }
  ++report_.whiteouts;
  std::vector<std::string> target = components;
  target.back() = name;
  auto parent = root_.resolve_parent(target, false);
  if (!parent.ok()) {
    // Nothing to delete below a missing directory, or below a file in the way.
    if (parent.error().code == ErrorCode::kNotFound ||
        parent.error().code == ErrorCode::kCorruptInput) {
      return {};
    }
    return std::move(parent).error();
  }
  const std::string path = child_path(parent->directory_path, name);
  // Whiteouts hide lower layers only; an entry of this same layer stays.
  if (created_in_this_layer(path)) return {};
  STRATA_TRY(safe_path::remove_tree_at(parent->directory.get(), name));
  forget_directories_under(path);
  return {};
}

Result<void> LayerApplier::apply_opaque(const std::vector<std::string>& components) {
  ++report_.whiteouts;
  auto parent = root_.resolve_parent(components, true);
  if (!parent.ok()) return std::move(parent).error();
  const int fd = ::openat(parent->directory.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", parent->directory_path, errno);
  DIR* listing = ::fdopendir(fd);
  if (listing == nullptr) {
    const int error_number = errno;
    ::close(fd);
    return io_error("cannot list", parent->directory_path, error_number);
  }
  std::vector<std::string> hidden;
  while (const dirent* child = ::readdir(listing)) {
    const std::string name = child->d_name;
    if (name == "." || name == "..") continue;
    if (!created_in_this_layer(child_path(parent->directory_path, name))) hidden.push_back(name);
  }
  ::closedir(listing);
  for (const std::string& name : hidden) {
    STRATA_TRY(safe_path::remove_tree_at(parent->directory.get(), name));
    forget_directories_under(child_path(parent->directory_path, name));
  }
  return {};
}

Result<void> LayerApplier::write_content(ByteSpan bytes) {
  if (!file_.fd.valid()) return {};
  STRATA_TRY(write_all(file_.fd.get(), bytes, file_.path));
  report_.bytes_written += bytes.size();
  return {};
}

Result<void> LayerApplier::close_file() {
  if (!file_.fd.valid()) return {};
  const int fd = file_.fd.get();
  const TarEntry& entry = file_entry_;
  if (as_root_ && ::fchown(fd, static_cast<uid_t>(entry.uid), static_cast<gid_t>(entry.gid)) != 0) {
    return io_error("cannot chown", file_.path, errno);
  }
  // After chown, which clears set-user-ID bits.
  if (::fchmod(fd, permissions_of(entry)) != 0) return io_error("cannot chmod", file_.path, errno);
  STRATA_TRY(set_xattrs(fd, entry, file_.path));
  const timespec times[2] = {mtime_of(entry), mtime_of(entry)};
  if (::futimens(fd, times) != 0) return io_error("cannot set times of", file_.path, errno);
  file_.fd = FileDescriptor();
  return {};
}

Result<void> LayerApplier::apply_entry(const TarEntry& entry) {
  ++report_.entries;
  if (entry.type == TarEntryType::kGlobalHeader || entry.type == TarEntryType::kOther) return {};
  auto components = safe_path::split_relative_path(entry.path, "entry path");
  if (!components.ok()) return std::move(components).error();
  if (components->empty()) {
    // The root itself ("./"): it stays the destination directory, whatever the layer says.
    if (entry.type == TarEntryType::kDirectory) return {};
    return make_error(ErrorCode::kUnsafePath,
                      "entry '" + entry.path + "' would replace the root with a non-directory");
  }
  const std::string& base = components->back();
  if (base == kOpaqueWhiteout) return apply_opaque(*components);
  if (base.rfind(kWhiteoutPrefix, 0) == 0) return apply_whiteout(*components);

  auto parent = root_.resolve_parent(*components, true);
  if (!parent.ok()) return std::move(parent).error();
  const std::string path = child_path(parent->directory_path, parent->name);
  const int directory = parent->directory.get();
  const char* name = parent->name.c_str();
  const timespec times[2] = {mtime_of(entry), mtime_of(entry)};

  switch (entry.type) {
    case TarEntryType::kDirectory: {
      auto kept = clear_path(*parent, path, true);
      if (!kept.ok()) return std::move(kept).error();
      // Owner rwx until finish_directories(), so later entries can be written into it.
      if (!*kept && ::mkdirat(directory, name, 0700) != 0) {
        return io_error("cannot create directory", path, errno);
      }
      STRATA_TRY(set_owner_at(*parent, entry, path));
      const int fd = ::openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return io_error("cannot open directory", path, errno);
      const FileDescriptor opened(fd);
      ::fchmod(fd, permissions_of(entry) | S_IRWXU);
      STRATA_TRY(set_xattrs(fd, entry, path));
      directories_[path] = DirectoryMetadata{permissions_of(entry), mtime_of(entry)};
      ++report_.directories;
      break;
    }
    case TarEntryType::kRegular: {
      STRATA_TRY(clear_path(*parent, path, false));
      const int fd =
          ::openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0) return io_error("cannot create", path, errno);
      file_.fd = FileDescriptor(fd);
      file_.path = path;
      file_entry_ = entry;
      ++report_.files;
      break;
    }
    case TarEntryType::kSymlink: {
      STRATA_TRY(clear_path(*parent, path, false));
      if (::symlinkat(entry.link_path.c_str(), directory, name) != 0) {
        return io_error("cannot create symbolic link", path, errno);
      }
      STRATA_TRY(set_owner_at(*parent, entry, path));
      if (!entry.xattrs.empty()) report_.xattrs_skipped += entry.xattrs.size();
      if (::utimensat(directory, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
        return io_error("cannot set times of", path, errno);
      }
      ++report_.symlinks;
      break;
    }
    case TarEntryType::kHardLink: {
      auto target = safe_path::split_relative_path(entry.link_path, "hard link target");
      if (!target.ok()) return std::move(target).error();
      if (target->empty()) {
        return make_error(ErrorCode::kCorruptInput,
                          "hard link '" + entry.path + "' points at the root directory");
      }
      auto source = root_.resolve_parent(*target, false);
      if (!source.ok()) {
        return make_error(source.error().code, "hard link '" + entry.path + "' to '" +
                                                   entry.link_path +
                                                   "': " + source.error().message);
      }
      struct stat info {};
      if (::fstatat(source->directory.get(), source->name.c_str(), &info, AT_SYMLINK_NOFOLLOW) !=
              0 ||
          S_ISDIR(info.st_mode)) {
        return make_error(ErrorCode::kCorruptInput, "hard link '" + entry.path + "' to '" +
                                                        entry.link_path +
                                                        "': no such file in the tree");
      }
      if (child_path(source->directory_path, source->name) == path) break;  // a link to itself
      STRATA_TRY(clear_path(*parent, path, false));
      // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself.
      if (::linkat(source->directory.get(), source->name.c_str(), directory, name, 0) != 0) {
        return io_error("cannot create hard link", path, errno);
      }
      ++report_.hard_links;
      break;
    }
    case TarEntryType::kCharDevice:
    case TarEntryType::kBlockDevice:
    case TarEntryType::kFifo: {
      if (entry.type != TarEntryType::kFifo && !options_.devices) {
        ++report_.devices_skipped;
        return {};
      }
      STRATA_TRY(clear_path(*parent, path, false));
      const mode_t kind = entry.type == TarEntryType::kFifo         ? S_IFIFO
                          : entry.type == TarEntryType::kCharDevice ? S_IFCHR
                                                                    : S_IFBLK;
      const dev_t device =
          makedev(static_cast<unsigned>(entry.dev_major), static_cast<unsigned>(entry.dev_minor));
      if (::mknodat(directory, name, kind | permissions_of(entry), device) != 0) {
        return io_error("cannot create device or fifo", path, errno);
      }
      STRATA_TRY(set_owner_at(*parent, entry, path));
      if (::fchmodat(directory, name, permissions_of(entry), AT_SYMLINK_NOFOLLOW) != 0) {
        return io_error("cannot chmod", path, errno);
      }
      if (::utimensat(directory, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
        return io_error("cannot set times of", path, errno);
      }
      break;
    }
    case TarEntryType::kGlobalHeader:
    case TarEntryType::kOther: break;
  }
  created_.insert(path);
  return {};
}

Result<void> LayerApplier::apply_tar(ByteSource& tar) {
  created_.clear();
  TarReader reader(tar);
  while (true) {
    auto event = reader.next();
    if (!event.ok()) return std::move(event).error();
    switch (event->kind) {
      case TarEventKind::kHeader: {
        STRATA_TRY(close_file());
        auto applied = apply_entry(*event->entry);
        if (!applied.ok()) {
          return make_error(applied.error().code, "tar entry at offset " +
                                                      std::to_string(event->entry->header_offset) +
                                                      ": " + applied.error().message);
        }
        break;
      }
      case TarEventKind::kContent: STRATA_TRY(write_content(event->bytes)); break;
      case TarEventKind::kPadding:
      case TarEventKind::kEndOfArchive:
      case TarEventKind::kTrailingBytes: STRATA_TRY(close_file()); break;
      case TarEventKind::kDone: return close_file();
    }
  }
}

Result<void> LayerApplier::finish_directories() {
  for (auto it = directories_.rbegin(); it != directories_.rend(); ++it) {
    auto components = safe_path::split_relative_path(it->first, "directory");
    if (!components.ok()) return std::move(components).error();
    auto parent = root_.resolve_parent(*components, false);
    if (!parent.ok()) {
      if (parent.error().code == ErrorCode::kNotFound) continue;
      return std::move(parent).error();
    }
    // Replaced by something else since (a symlink is not followed): nothing to fix up.
    const int fd = ::openat(parent->directory.get(), parent->name.c_str(),
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    const FileDescriptor opened(fd);
    if (::fchmod(fd, it->second.mode) != 0) return io_error("cannot chmod", it->first, errno);
    const timespec times[2] = {it->second.mtime, it->second.mtime};
    if (::futimens(fd, times) != 0) return io_error("cannot set times of", it->first, errno);
  }
  return {};
}

}  // namespace unpack_detail

namespace {

// Runs `apply(applier, i)` for layers 0..count-1 under one root, then fixes up directories.
Result<UnpackReport> unpack_each(
    std::size_t count, const std::string& directory, const UnpackOptions& options,
    const std::function<Result<void>(LayerApplier&, std::size_t)>& apply) {
  auto root = RootDirectory::open(directory, true);
  if (!root.ok()) return std::move(root).error();
  UnpackReport report;
  LayerApplier applier(*root, options, report);
  for (std::size_t i = 0; i < count; ++i) {
    auto applied = apply(applier, i);
    if (!applied.ok()) {
      return make_error(applied.error().code,
                        "layer " + std::to_string(i) + ": " + applied.error().message);
    }
    ++report.layers;
  }
  STRATA_TRY(applier.finish_directories());
  return report;
}

}  // namespace

Result<UnpackReport> unpack_layers(const std::vector<std::string>& layer_paths,
                                   const std::string& directory, const UnpackOptions& options) {
  return unpack_each(layer_paths.size(), directory, options,
                     [&](LayerApplier& applier, std::size_t i) -> Result<void> {
                       LayerSourceOptions source_options;
                       source_options.max_uncompressed_bytes = options.max_uncompressed_bytes;
                       source_options.hash_compressed = false;
                       auto source = LayerSource::open_path(layer_paths[i], source_options);
                       if (!source.ok()) return std::move(source).error();
                       return applier.apply_tar(**source);
                     });
}

Result<UnpackReport> unpack_store_layers(const ChunkStore& store, const std::vector<Digest>& layers,
                                         const std::string& directory,
                                         const UnpackOptions& options) {
  for (const Digest& layer : layers) STRATA_TRY(store.find_layer(layer));
  return unpack_each(layers.size(), directory, options, [&](LayerApplier& applier, std::size_t i) {
    return unpack_detail::apply_store_layer(applier, store, layers[i], {});
  });
}

Result<UnpackReport> unpack_image(const oci::OciLayout& layout, std::string_view tag,
                                  const std::string& directory, const UnpackOptions& options) {
  auto image = layout.load_image(tag);
  if (!image.ok()) return std::move(image).error();
  STRATA_TRY(layout.verify_image(tag));
  std::vector<std::string> paths;
  for (const oci::Descriptor& layer : image->manifest.layers) {
    STRATA_TRY(oci::layer_compression_of(layer.media_type));
    paths.push_back(layout.blob_path(layer.digest));
  }
  return unpack_layers(paths, directory, options);
}

}  // namespace strata
