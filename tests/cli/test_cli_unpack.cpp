// `strata unpack LAYOUT:TAG DIR` checked against an independent unpacker: a two-layer gzip image
// built by `strata build` (random tree with long names, symlinks and hard links below; files,
// ".wh.<name>" and ".wh..wh..opq" whiteouts above, per shared/specs/layer-formats.md) must unpack
// to the same tree as `umoci unpack --rootless` gives: same paths, types, permission bits, sizes,
// bytes, symlink targets, link counts and file mtimes. Skipped when umoci is not installed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>

#include "tests/layer_fixtures.h"
#include "tests/test_support.h"

namespace strata {
namespace {

struct TreeEntry {
  unsigned mode = 0;  // type and permission bits
  long long size = 0;
  unsigned long links = 0;
  long long mtime = 0;  // files and symlinks only: umoci and strata both set directory times
  std::string content;  // file bytes or symlink target
  friend bool operator==(const TreeEntry&, const TreeEntry&) = default;
};

void PrintTo(const TreeEntry& entry, std::ostream* out) {
  *out << "mode " << std::oct << entry.mode << std::dec << " size " << entry.size << " links "
       << entry.links << " mtime " << entry.mtime;
}

std::map<std::string, TreeEntry> describe_tree(const std::string& root) {
  std::map<std::string, TreeEntry> tree;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string path = it->path().string();
    struct stat info {};
    ::lstat(path.c_str(), &info);
    TreeEntry entry;
    entry.mode = info.st_mode;
    entry.links = S_ISDIR(info.st_mode) ? 0 : info.st_nlink;
    if (S_ISREG(info.st_mode)) {
      entry.size = static_cast<long long>(info.st_size);
      const auto bytes = test::read_file(path);
      entry.content.assign(bytes.begin(), bytes.end());
    }
    if (S_ISLNK(info.st_mode)) entry.content = std::filesystem::read_symlink(path).string();
    if (!S_ISDIR(info.st_mode)) entry.mtime = static_cast<long long>(info.st_mtime);
    tree[path.substr(root.size())] = std::move(entry);
  }
  return tree;
}

bool umoci_installed() {
  return std::system("umoci --version >/dev/null 2>&1") == 0;
}

TEST(CliUnpack, GivesTheSameTreeAsUmoci) {
  // scripts/install-deps.sh installs umoci: without it this check must fail, not vanish.
  ASSERT_TRUE(umoci_installed()) << "umoci is not installed (scripts/install-deps.sh)";
  test::ScratchDir scratch;
  const std::string lower = scratch.file("lower");
  const std::string upper = scratch.file("upper");
  test::make_random_tree(lower, 7, 40);
  test::write_file(lower + "/gone", {'g'});
  std::filesystem::create_directories(lower + "/opq/sub");
  test::write_file(lower + "/opq/old", {'o'});
  test::write_file(lower + "/opq/sub/older", {'o'});
  test::write_file(lower + "/keep.txt", {'k'});
  std::filesystem::permissions(lower + "/keep.txt", std::filesystem::perms(0750));
  std::filesystem::create_directories(upper + "/opq");
  test::write_file(upper + "/.wh.gone", {});
  test::write_file(upper + "/opq/.wh..wh..opq", {});
  test::write_file(upper + "/opq/new", {'n'});
  test::write_file(upper + "/keep.txt", {'K', '2'});
  const std::string layout = scratch.file("layout");
  auto built = test::run_tool("build '" + lower + "' '" + upper + "' --layout '" + layout +
                              "' --tag t --format gzip --mtime 1600000000");
  ASSERT_EQ(built.exit_code, 0) << built.err;

  const std::string ours = scratch.file("ours");
  auto unpacked = test::run_tool("unpack '" + layout + ":t' '" + ours + "'");
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.err;
  EXPECT_NE(unpacked.out.find("unpacked 2 layers"), std::string::npos) << unpacked.out;
  ASSERT_TRUE(
      test::shell(scratch.path(), "umoci unpack --rootless --image '" + layout + ":t' bundle"));

  const auto expected = describe_tree(scratch.file("bundle/rootfs"));
  const auto actual = describe_tree(ours);
  EXPECT_GT(expected.size(), 40U);
  EXPECT_EQ(actual, expected);
  EXPECT_FALSE(actual.count("/gone"));
  EXPECT_FALSE(actual.count("/opq/old"));
  EXPECT_TRUE(actual.count("/opq/new"));
  EXPECT_EQ(actual.at("/keep.txt").content, "K2");
}

TEST(CliUnpack, ErrorsAreOneLine) {
  test::ScratchDir scratch;
  auto missing =
      test::run_tool("unpack '" + scratch.file("nope") + ":t' '" + scratch.file("out") + "'");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(scratch.file("out")));
}

}  // namespace
}  // namespace strata
