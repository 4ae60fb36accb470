// Resolution of untrusted paths under a root directory without ever leaving it (safe_path.h).
// Every directory is opened relative to a descriptor already held, with O_NOFOLLOW, and symlink
// targets are resolved by hand with ".." clamped at the root, so neither a link planted by an
// earlier layer nor a directory swapped concurrently can redirect a write outside the root
// (shared/specs/reliability.md §1a: "resolve every path component inside the root with no symlink
// following").
#include "core/base/safe_path.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>

namespace strata::safe_path {
namespace {

// Linux's own limit on symlinks followed in one lookup is 40; a layer may legitimately chain a few.
constexpr int kMaxSymlinks = 255;
// Deeper trees are refused by remove_tree_at, which recurses and holds one descriptor per level.
constexpr int kMaxRemoveDepth = 512;

Error io_error(std::string_view what, const std::string& path, int error_number) {
  return make_error(ErrorCode::kIo,
                    std::string(what) + " '" + path + "': " + std::strerror(error_number));
}

// 'path' (built by appending: GCC 12 misreports "'" + std::string&& under -Wrestrict).
std::string quoted(const std::string& path) {
  std::string text = "'";
  text += path;
  text += '\'';
  return text;
}

std::vector<std::string> split_link_target(std::string_view target) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= target.size()) {
    std::size_t slash = target.find('/', start);
    if (slash == std::string_view::npos) slash = target.size();
    if (slash > start) parts.emplace_back(target.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

Result<void> remove_tree_at_depth(int directory_fd, const std::string& name, int depth) {
  struct stat info {};
  if (::fstatat(directory_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return io_error("cannot stat", name, errno);
  }
  if (S_ISDIR(info.st_mode)) {
    if (depth >= kMaxRemoveDepth) {
      return make_error(ErrorCode::kLimitExceeded,
                        "directory tree at '" + name + "' is too deep to remove");
    }
    const int fd =
        ::openat(directory_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open directory", name, errno);
    // Owner rwx so the entries can be listed and removed whatever mode the layer gave it.
    ::fchmod(fd, (info.st_mode & 07777U) | S_IRWXU);
    DIR* listing = ::fdopendir(fd);
    if (listing == nullptr) {
      const int error_number = errno;
      ::close(fd);
      return io_error("cannot list", name, error_number);
    }
    std::vector<std::string> children;
    while (const dirent* child = ::readdir(listing)) {
      const std::string_view child_name = child->d_name;
      if (child_name != "." && child_name != "..") children.emplace_back(child_name);
    }
    Result<void> status;
    for (const std::string& child : children) {
      status = remove_tree_at_depth(::dirfd(listing), child, depth + 1);
      if (!status.ok()) break;
    }
    ::closedir(listing);
    if (!status.ok()) return status;
    if (::unlinkat(directory_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return io_error("cannot remove directory", name, errno);
    }
    return {};
  }
  if (::unlinkat(directory_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return io_error("cannot remove", name, errno);
  }
  return {};
}

}  // namespace

Result<std::vector<std::string>> split_relative_path(std::string_view path, std::string_view what) {
  const auto refuse = [&](std::string_view why) {
    return make_error(ErrorCode::kUnsafePath,
                      std::string(what) + " '" + std::string(path) + "' " + std::string(why));
  };
  if (path.find('\0') != std::string_view::npos) return refuse("contains a NUL byte");
  if (!path.empty() && path.front() == '/') return refuse("is absolute");
  std::vector<std::string> components;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view component = path.substr(start, slash - start);
    if (component == "..") return refuse("has a '..' component");
    if (!component.empty() && component != ".") components.emplace_back(component);
    start = slash + 1;
  }
  return components;
}

std::string join_components(const std::vector<std::string>& components) {
  std::string joined;
  for (const std::string& component : components) {
    if (!joined.empty()) joined += '/';
    joined += component;
  }
  return joined;
}

Result<RootDirectory> RootDirectory::open(const std::string& directory, bool create) {
  if (create) {
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) {
      return make_error(ErrorCode::kIo,
                        "cannot create directory '" + directory + "': " + error.message());
    }
  }
  const int fd = ::open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return make_error(ErrorCode::kNotFound, "directory '" + directory + "' does not exist");
    }
    return io_error("cannot open directory", directory, errno);
  }
  RootDirectory root;
  root.root_ = FileDescriptor(fd);
  root.path_ = directory;
  return root;
}

Result<ResolvedParent> RootDirectory::resolve_parent(const std::vector<std::string>& components,
                                                     bool create_missing, Symlinks symlinks) const {
  if (components.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "the root directory has no parent");
  }
  std::vector<FileDescriptor> opened;  // opened[i]: the directory named by names[0..i]
  std::vector<std::string> names;
  std::deque<std::string> pending(components.begin(), components.end() - 1);
  int followed = 0;
  const auto current = [&] { return opened.empty() ? root_.get() : opened.back().get(); };
  const auto where = [&](const std::string& name) {
    std::string path = join_components(names);
    return path.empty() ? name : path + "/" + name;
  };
  while (!pending.empty()) {
    const std::string name = std::move(pending.front());
    pending.pop_front();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (!opened.empty()) {
        opened.pop_back();
        names.pop_back();
      }
      continue;
    }
    int fd = ::openat(current(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create_missing) {
      if (::mkdirat(current(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        return io_error("cannot create directory", where(name), errno);
      }
      fd = ::openat(current(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      if (errno == ENOENT) {
        return make_error(ErrorCode::kNotFound, quoted(where(name)) + " does not exist");
      }
      return io_error("cannot open", where(name), errno);
    }
    FileDescriptor step(fd);
    struct stat info {};
    if (::fstat(step.get(), &info) != 0) return io_error("cannot stat", where(name), errno);
    if (S_ISDIR(info.st_mode)) {
      opened.push_back(std::move(step));
      names.push_back(name);
      continue;
    }
    if (!S_ISLNK(info.st_mode)) {
      return make_error(ErrorCode::kCorruptInput,
                        quoted(where(name)) + " is in the way: not a directory");
    }
    if (symlinks == Symlinks::kRefuse) {
      return make_error(ErrorCode::kUnsafePath, quoted(where(name)) + " under '" + path_ +
                                                    "' is a symbolic link (refused)");
    }
    if (++followed > kMaxSymlinks) {
      return make_error(ErrorCode::kUnsafePath,
                        "too many symbolic links resolving '" + join_components(components) + "'");
    }
    std::string target(PATH_MAX, '\0');
    const ssize_t length = ::readlinkat(step.get(), "", target.data(), target.size());
    if (length < 0) return io_error("cannot read symbolic link", where(name), errno);
    target.resize(static_cast<std::size_t>(length));
    if (!target.empty() && target.front() == '/') {
      opened.clear();
      names.clear();
    }
    const std::vector<std::string> parts = split_link_target(target);
    pending.insert(pending.begin(), parts.begin(), parts.end());
  }
  ResolvedParent parent;
  if (opened.empty()) {
    const int fd = ::openat(root_.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open directory", path_, errno);
    parent.directory = FileDescriptor(fd);
  } else {
    parent.directory = std::move(opened.back());
  }
  parent.directory_path = join_components(names);
  parent.name = components.back();
  return parent;
}

Result<PrivateDirectory> PrivateDirectory::create(const std::string& parent,
                                                  std::string_view prefix) {
  const int parent_fd = ::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd < 0) return io_error("cannot open directory", parent, errno);
  PrivateDirectory made;
  made.parent_ = FileDescriptor(parent_fd);
  // 64 random bits per try: a clash means someone is guessing; a few more tries, then give up.
  constexpr int kAttempts = 8;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::string name(prefix);
    name += random_hex_token();
    if (::mkdirat(parent_fd, name.c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;
      return io_error("cannot create directory", parent + "/" + name, errno);
    }
    made.name_ = name;
    made.path_ = parent + "/" + name;
    const int fd =
        ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open directory", made.path_, errno);
    made.directory_ = FileDescriptor(fd);
    return made;
  }
  return make_error(ErrorCode::kIo, "cannot create a fresh directory in '" + parent + "': " +
                                        std::to_string(kAttempts) + " random names all taken");
}

PrivateDirectory::~PrivateDirectory() {
  if (parent_.valid() && !name_.empty()) (void)remove_tree_at(parent_.get(), name_);
}

Result<void> PrivateDirectory::publish_as(const std::string& name, unsigned mode) {
  const std::string shown = path_.substr(0, path_.size() - name_.size()) + name;
  if (::fchmod(directory_.get(), static_cast<mode_t>(mode)) != 0) {
    return io_error("cannot chmod", path_, errno);
  }
  if (::renameat(parent_.get(), name_.c_str(), parent_.get(), name.c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST) {
      return make_error(ErrorCode::kInvalidArgument, quoted(shown) + " is not empty");
    }
    if (errno == ENOTDIR) {
      return make_error(ErrorCode::kInvalidArgument,
                        quoted(shown) + " exists and is not a directory");
    }
    const std::string& from = path_;
    return io_error("cannot rename " + quoted(from) + " to", shown, errno);
  }
  name_.clear();
  path_ = shown;
  return {};
}

Result<void> rename_into(int from_directory, const std::string& from_name, const ResolvedParent& to,
                         const std::string& shown) {
  struct stat info {};
  if (::fstatat(to.directory.get(), to.name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
      !S_ISREG(info.st_mode)) {
    return make_error(ErrorCode::kUnsafePath, quoted(shown) + " exists and is not a regular file");
  }
  if (::renameat(from_directory, from_name.c_str(), to.directory.get(), to.name.c_str()) != 0) {
    return io_error("cannot move a file into place at", shown, errno);
  }
  return {};
}

Result<void> remove_tree_at(int directory_fd, const std::string& name) {
  return remove_tree_at_depth(directory_fd, name, 0);
}

}  // namespace strata::safe_path
