// Layer unpack target with libarchive's write-disk oracle (shared/specs/reliability.md §0.10):
// the input is unpacked twice into one destination (as two layers, so a symlink planted by the
// first pass is there for the second to write through), beside an "outside" directory holding a
// sentinel file. Whatever the input, nothing may crash or hang, and afterwards the scratch root
// must still hold exactly the destination and the untouched sentinel (same bytes, mode, link
// count). Scratch space lives under /tmp, the one directory OSS-Fuzz lets a target write.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/base/safe_path.h"
#include "strata/unpack.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

// Made once per process and removed at exit (each input removes its destination itself).
struct ScratchRoot {
  std::string path;
  ScratchRoot() {
    char name[] = "/tmp/strata_fuzz_unpack_XXXXXX";
    check(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~ScratchRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  ScratchRoot(const ScratchRoot&) = delete;
  ScratchRoot& operator=(const ScratchRoot&) = delete;
};

const std::string& scratch_root() {
  static const ScratchRoot root;
  return root.path;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& root = scratch_root();
  const std::string outside = root + "/outside";
  const std::string secret = outside + "/secret";
  const std::string dest = root + "/dest";
  const std::string layer = root + "/layer";
  std::filesystem::create_directories(outside);
  {
    std::ofstream out(secret, std::ios::binary | std::ios::trunc);
    out << "keep";
  }
  ::chmod(secret.c_str(), 0600);
  {
    std::ofstream out(layer, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  strata::UnpackOptions options;
  options.max_uncompressed_bytes = 8U << 20U;
  (void)strata::unpack_layers({layer, layer}, dest, options);

  struct stat info {};
  check(::lstat(secret.c_str(), &info) == 0);
  check(S_ISREG(info.st_mode) && (info.st_mode & 07777U) == 0600U && info.st_nlink == 1);
  check(read_text(secret) == "keep");
  std::size_t outside_entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(outside)) {
    check(entry.path() == secret);
    ++outside_entries;
  }
  check(outside_entries == 1);
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const std::string path = entry.path().string();
    check(path == outside || path == dest || path == layer);
  }

  auto root_fd = strata::safe_path::RootDirectory::open(root, false);
  check(root_fd.ok());
  check(strata::safe_path::remove_tree_at(root_fd->fd(), "dest").ok());
  return 0;
}
