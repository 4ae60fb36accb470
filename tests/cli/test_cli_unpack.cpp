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
#include "tests/tree_snapshot.h"

namespace strata {
namespace {

using test::describe_tree;

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

  const auto expected =
      describe_tree(scratch.file("bundle/rootfs"), test::DirectoryTimes::kIgnored);
  const auto actual = describe_tree(ours, test::DirectoryTimes::kIgnored);
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
