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

#include "core/pack_file.h"
#include "strata/result.h"

namespace strata::safe_path {

using pack_file::FileDescriptor;

// "./a//b/" -> {"a", "b"}. kUnsafePath when `path` is absolute, has a ".." component or a NUL;
// an empty list means the root itself. `what` names the path in the error ("entry path").
Result<std::vector<std::string>> split_relative_path(std::string_view path, std::string_view what);

// Components joined with '/' ("" for the root).
std::string join_components(const std::vector<std::string>& components);

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
  // symlinks inside it (at most 255 of them) and creating missing directories (mode 0755) when
  // `create_missing` is set. A component that exists and is neither a directory nor a symlink is
  // kUnsafePath when it is a file in the way, kNotFound when missing and not created.
  Result<ResolvedParent> resolve_parent(const std::vector<std::string>& components,
                                        bool create_missing) const;

 private:
  RootDirectory() = default;
  FileDescriptor root_;
  std::string path_;
};

// Removes `name` in `directory_fd`, recursing into directories, never following a symlink.
// A name that does not exist is not an error.
Result<void> remove_tree_at(int directory_fd, const std::string& name);

}  // namespace strata::safe_path
