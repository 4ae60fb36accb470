// Path resolution that can never leave a destination directory, for anything that writes files
// named by untrusted input (layer unpack, model files written to an --out directory). Archive
// paths are split into components and refused when absolute or holding "..". Directories are
// walked one component at a time with openat(O_NOFOLLOW) from descriptors already held; a symlink
// met on the way is read and resolved as if the root were "/" (its ".." stops at the root), the way
// openat2(RESOLVE_IN_ROOT), Go's securejoin and containerd resolve layer paths, so a link planted
// by one layer can redirect a later write only to somewhere inside the root
// (shared/specs/reliability.md §1a: CVE-2025-45582, CVE-2021-29136, containerd breakout tests).
// The last component is never followed: callers act on it with *at() calls and NOFOLLOW flags.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/base/file_io.h"
#include "strata/result.h"

namespace strata::safe_path {

using strata::FileDescriptor;

// "./a//b/" -> {"a", "b"}. kUnsafePath when `path` is absolute, has a ".." component or a NUL;
// an empty list means the root itself. `what` names the path in the error ("entry path").
Result<std::vector<std::string>> split_relative_path(std::string_view path, std::string_view what);

// Components joined with '/' ("" for the root).
std::string join_components(const std::vector<std::string>& components);

// What resolve_parent does with a symbolic link met on the way.
enum class Symlinks {
  kResolveInRoot,  // follow it, as if the root were "/" (layer unpack: links are content)
  kRefuse,         // kUnsafePath (model pull: a link in --out is never part of a file path)
};

// The directory that holds a path's last component, resolved under the root.
struct ResolvedParent {
  FileDescriptor directory;    // opened O_PATH | O_DIRECTORY
  std::string directory_path;  // where it lies under the root, symlinks resolved ("" = root)
  std::string name;            // the last component, to be used with *at() calls
};

class RootDirectory {
 public:
  // Opens `directory` (creating it, and its parents, when `create` is set).
  static Result<RootDirectory> open(const std::string& directory, bool create);

  [[nodiscard]] int fd() const noexcept { return root_.get(); }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Resolves every component but the last of a non-empty `components` under the root, following
  // symlinks inside it (at most 255 of them; with Symlinks::kRefuse any symlink is kUnsafePath)
  // and creating missing directories (mode 0755) when `create_missing` is set. A component that
  // exists and is neither a directory nor a symlink is kCorruptInput (a file in the way),
  // kNotFound when missing and not created.
  Result<ResolvedParent> resolve_parent(const std::vector<std::string>& components,
                                        bool create_missing,
                                        Symlinks symlinks = Symlinks::kResolveInRoot) const;

 private:
  RootDirectory() = default;
  FileDescriptor root_;
  std::string path_;
};

// A directory no one else can have prepared, for files in flight (downloads): created under
// `parent` with a random name and mode 0700 the way mkdtemp(3) does (never an existing one, so a
// name planted in a shared directory such as /tmp cannot be reused), held by descriptor, and
// removed with all it holds when destroyed.
class PrivateDirectory {
 public:
  // `parent` must exist; the name is `prefix` followed by 16 random hex digits.
  static Result<PrivateDirectory> create(const std::string& parent, std::string_view prefix);
  PrivateDirectory(PrivateDirectory&&) noexcept = default;
  PrivateDirectory& operator=(PrivateDirectory&&) = delete;
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;
  ~PrivateDirectory();

  [[nodiscard]] int fd() const noexcept { return directory_.get(); }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Gives the directory `mode` and renames it to `name` in the same parent, atomically: an empty
  // directory there is replaced; a non-empty one or anything else is kInvalidArgument naming it
  // (a symlink there is never followed). From then on it is no longer removed on destruction.
  Result<void> publish_as(const std::string& name, unsigned mode);

 private:
  PrivateDirectory() = default;
  FileDescriptor parent_;
  FileDescriptor directory_;
  std::string name_;
  std::string path_;
};

// Moves the file `from_name` in `from_directory` to `to` (renameat: a symlink at either end is
// never followed; an existing regular file is replaced). A target that exists and is not a
// regular file is kUnsafePath. `shown` names the target in errors.
Result<void> rename_into(int from_directory, const std::string& from_name, const ResolvedParent& to,
                         const std::string& shown);

// Removes `name` in `directory_fd`, recursing into directories, never following a symlink.
// A name that does not exist is not an error.
Result<void> remove_tree_at(int directory_fd, const std::string& name);

}  // namespace strata::safe_path
