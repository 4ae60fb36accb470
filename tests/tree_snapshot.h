// A directory tree as the unpack tests compare it: every entry below a root with its type and
// permission bits, size, link count, mtime and content (file bytes or symlink target), keyed by
// its path under the root. Rests on std::filesystem and lstat(2); shared by the CLI unpack suites.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <utility>

#include "tests/test_support.h"

namespace strata::test {

struct TreeEntry {
  unsigned mode = 0;  // type and permission bits
  long long size = 0;
  unsigned long links = 0;
  long long mtime = 0;
  std::string content;  // file bytes or symlink target
  friend bool operator==(const TreeEntry&, const TreeEntry&) = default;
};

inline void PrintTo(const TreeEntry& entry, std::ostream* out) {
  *out << "mode " << std::oct << entry.mode << std::dec << " size " << entry.size << " links "
       << entry.links << " mtime " << entry.mtime;
}

// Whether directories' mtimes are part of the snapshot (a tree compared with umoci's leaves them
// out: each tool sets directory times its own way).
enum class DirectoryTimes { kCompared, kIgnored };

inline std::map<std::string, TreeEntry> describe_tree(
    const std::string& root, DirectoryTimes directory_times = DirectoryTimes::kCompared) {
  std::map<std::string, TreeEntry> tree;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string path = it->path().string();
    struct stat info {};
    ::lstat(path.c_str(), &info);
    TreeEntry entry;
    entry.mode = info.st_mode;
    entry.links = S_ISDIR(info.st_mode) ? 0 : info.st_nlink;
    if (!S_ISDIR(info.st_mode) || directory_times == DirectoryTimes::kCompared) {
      entry.mtime = static_cast<long long>(info.st_mtime);
    }
    if (S_ISREG(info.st_mode)) {
      entry.size = static_cast<long long>(info.st_size);
      const auto bytes = read_file(path);
      entry.content.assign(bytes.begin(), bytes.end());
    }
    if (S_ISLNK(info.st_mode)) entry.content = std::filesystem::read_symlink(path).string();
    tree[path.substr(root.size())] = std::move(entry);
  }
  return tree;
}

}  // namespace strata::test
