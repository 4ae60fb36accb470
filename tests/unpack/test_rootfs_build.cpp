// RootfsBuild (include/strata/unpack.h), the rootfs of `strata pull --unpack`: layers announced in
// any order are applied bottom first (whiteouts and opaque directories of
// shared/specs/layer-formats.md §3 only make sense that way) and give the tree unpack_store_layers
// gives; the tree appears at DIR only through finish(), and every way a build can end without
// success (an unsafe entry, a layer the store lacks, a diff_id announced twice differently, a
// build dropped mid-way) leaves neither DIR nor "DIR.partial-*".
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes tar_of(const std::vector<Bytes>& entries) {
  Bytes tar;
  for (const Bytes& entry : entries) test::append(tar, entry);
  test::append_end(tar);
  return tar;
}

Bytes file_entry(const std::string& name, const std::string& content) {
  Bytes out = test::make_header(name, '0', content.size());
  test::append_content(out, content);
  return out;
}

// path -> file content, "->target" for a symlink, "/" for a directory.
std::map<std::string, std::string> tree_of(const std::string& root) {
  std::map<std::string, std::string> tree;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string path = it->path().string();
    std::string& value = tree[path.substr(root.size())];
    if (it->is_symlink()) {
      value = "->" + std::filesystem::read_symlink(path).string();
    } else if (it->is_directory()) {
      value = "/";
    } else {
      const Bytes bytes = test::read_file(path);
      value.assign(bytes.begin(), bytes.end());
    }
  }
  return tree;
}

std::vector<std::string> siblings_of(const std::string& parent, const std::string& name) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(parent)) {
    const std::string sibling = entry.path().filename().string();
    if (sibling.rfind(name, 0) == 0) found.push_back(sibling);
  }
  return found;
}

class RootfsBuildTest : public testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.create_if_missing = true;
    auto opened = ChunkStore::open(scratch_.file("store"), options);
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    store_.emplace(std::move(*opened));
  }

  Digest ingest(const Bytes& tar) {
    const std::string path = scratch_.file("layer" + std::to_string(++layers_) + ".tar");
    test::write_file(path, tar);
    auto ingested = ingest_layer_file(*store_, path, IngestOptions{});
    EXPECT_TRUE(ingested.ok()) << ingested.error().to_string();
    return ingested.ok() ? ingested->diff_id : Digest{};
  }

  // Three layers: files and a directory; a whiteout, an opaque directory, a replaced file; a
  // symlink and a hard link.
  std::vector<Digest> ingest_three_layers() {
    return {
        ingest(tar_of({file_entry("a/x", "x"), file_entry("b", "b"), file_entry("d/old", "o"),
                       file_entry("keep", "1")})),
        ingest(tar_of({test::make_header(".wh.b", '0'), test::make_header("d/.wh..wh..opq", '0'),
                       file_entry("d/new", "n"), file_entry("keep", "2")})),
        ingest(tar_of(
            {test::make_header("l", '2', 0, "a/x"), test::make_header("h", '1', 0, "keep")}))};
  }

  void expect_nothing_at(const std::string& name) {
    EXPECT_TRUE(siblings_of(scratch_.path(), name).empty())
        << "left: " << siblings_of(scratch_.path(), name).front();
  }

  test::ScratchDir scratch_;
  std::optional<ChunkStore> store_;
  int layers_ = 0;
};

TEST_F(RootfsBuildTest, LayersAnnouncedOutOfOrderGiveTheTreeOfAStoreUnpack) {
  const std::vector<Digest> layers = ingest_three_layers();
  auto expected = unpack_store_layers(*store_, layers, scratch_.file("expected"));
  ASSERT_TRUE(expected.ok()) << expected.error().to_string();

  const std::string rootfs = scratch_.file("rootfs");
  auto build = RootfsBuild::begin(*store_, rootfs);
  ASSERT_TRUE(build.ok()) << build.error().to_string();
  EXPECT_EQ(build->partial_directory().rfind(rootfs + ".partial-", 0), 0U);
  build->layer_ready(2, layers[2]);
  build->layer_ready(1, layers[1]);
  EXPECT_FALSE(std::filesystem::exists(rootfs));  // nothing at DIR before finish
  build->layer_ready(0, layers[0]);
  auto report = build->finish(layers);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->layers, 3U);
  EXPECT_EQ(report->whiteouts, expected->whiteouts);
  EXPECT_EQ(report->files, expected->files);
  EXPECT_EQ(report->bytes_written, expected->bytes_written);
  const auto tree = tree_of(rootfs);
  EXPECT_EQ(tree, tree_of(scratch_.file("expected")));
  EXPECT_FALSE(tree.count("/b"));
  EXPECT_FALSE(tree.count("/d/old"));
  EXPECT_EQ(tree.at("/keep"), "2");
  EXPECT_EQ(tree.at("/l"), "->a/x");
  struct stat info {};
  ASSERT_EQ(::stat(rootfs.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777U, 0755U);
  ASSERT_EQ(::stat((rootfs + "/h").c_str(), &info), 0);
  EXPECT_EQ(info.st_nlink, 2U);
  EXPECT_EQ(siblings_of(scratch_.path(), "rootfs"), std::vector<std::string>{"rootfs"});
  auto again = build->finish(layers);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(tree_of(rootfs), tree);
}

TEST_F(RootfsBuildTest, FinishAloneAnnouncesEveryLayer) {
  const std::vector<Digest> layers = ingest_three_layers();
  const std::string rootfs = scratch_.file("rootfs");
  std::filesystem::create_directories(rootfs);  // an empty directory is replaced
  auto build = RootfsBuild::begin(*store_, rootfs);
  ASSERT_TRUE(build.ok()) << build.error().to_string();
  auto report = build->finish(layers);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(tree_of(rootfs).at("/d/new"), "n");
}

TEST_F(RootfsBuildTest, ANonEmptyOrNonDirectoryTargetIsRefusedAtOnce) {
  const std::string full = scratch_.file("full");
  std::filesystem::create_directories(full);
  test::write_file(full + "/mine", {'m'});
  auto refused = RootfsBuild::begin(*store_, full);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("is not empty"), std::string::npos);
  test::write_file(scratch_.file("file"), {'f'});
  auto not_directory = RootfsBuild::begin(*store_, scratch_.file("file"));
  ASSERT_FALSE(not_directory.ok());
  EXPECT_NE(not_directory.error().message.find("not a directory"), std::string::npos);
  EXPECT_TRUE(siblings_of(scratch_.path(), "full.").empty());
  EXPECT_TRUE(siblings_of(scratch_.path(), "file.").empty());
}

TEST_F(RootfsBuildTest, AnUnsafeEntryEndsTheBuildAndLeavesNothing) {
  const std::vector<Digest> layers = {ingest(tar_of({file_entry("ok", "fine")})),
                                      ingest(tar_of({file_entry("../escape", "evil")}))};
  auto build = RootfsBuild::begin(*store_, scratch_.file("rootfs"));
  ASSERT_TRUE(build.ok()) << build.error().to_string();
  build->layer_ready(0, layers[0]);
  build->layer_ready(1, layers[1]);
  auto report = build->finish(layers);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code, ErrorCode::kUnsafePath) << report.error().to_string();
  EXPECT_NE(report.error().message.find("layer 1"), std::string::npos);
  expect_nothing_at("rootfs");
  EXPECT_FALSE(std::filesystem::exists(scratch_.file("escape")));
}

TEST_F(RootfsBuildTest, ALayerTheStoreLacksOrAMismatchedAnnouncementFails) {
  const std::vector<Digest> layers = ingest_three_layers();
  const Bytes unknown{'n', 'o', 'p', 'e'};
  {
    auto build = RootfsBuild::begin(*store_, scratch_.file("rootfs"));
    ASSERT_TRUE(build.ok());
    auto report = build->finish({layers[0], sha256_of(unknown)});
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.error().code, ErrorCode::kNotFound) << report.error().to_string();
  }
  expect_nothing_at("rootfs");
  {
    auto build = RootfsBuild::begin(*store_, scratch_.file("rootfs"));
    ASSERT_TRUE(build.ok());
    build->layer_ready(1, layers[2]);
    auto report = build->finish(layers);
    ASSERT_FALSE(report.ok());
    EXPECT_NE(report.error().message.find("announced"), std::string::npos);
  }
  expect_nothing_at("rootfs");
}

TEST_F(RootfsBuildTest, ABuildDroppedWithoutFinishRemovesItsPartialTree) {
  const std::vector<Digest> layers = ingest_three_layers();
  std::string partial;
  {
    auto build = RootfsBuild::begin(*store_, scratch_.file("rootfs"));
    ASSERT_TRUE(build.ok());
    partial = build->partial_directory();
    EXPECT_TRUE(std::filesystem::is_directory(partial));
    build->layer_ready(0, layers[0]);
    build->layer_ready(1, layers[1]);
  }
  EXPECT_FALSE(std::filesystem::exists(partial));
  expect_nothing_at("rootfs");
}

}  // namespace
}  // namespace strata
