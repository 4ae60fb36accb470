// Layer unpack (include/strata/unpack.h): the OCI changeset rules (entries replace, ".wh.<name>"
// and ".wh..wh..opq" delete from lower layers only) and the breakout cases of
// shared/specs/reliability.md §1a, named after containerd's pkg/archive/tar_test.go where one
// exists. Each attack is unpacked for real into a directory beside an "outside" directory holding
// a sentinel file; the oracle (libarchive's write-disk fuzzer's) is that nothing outside the
// destination changed: same paths, types, modes, sizes, link counts and sentinel bytes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/base/safe_path.h"
#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

using Bytes = std::vector<std::uint8_t>;
using test::append;
using test::append_content;
using test::append_end;
using test::make_header;

// path -> (mode, size, link count, mtime)
using Snapshot = std::map<std::string, std::tuple<unsigned, long long, unsigned long, long long>>;

Snapshot snapshot_outside(const std::string& root, const std::string& skip) {
  Snapshot files;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string path = it->path().string();
    if (path.rfind(skip, 0) == 0) {
      it.disable_recursion_pending();
      continue;
    }
    struct stat info {};
    ::lstat(path.c_str(), &info);
    files[path] = {info.st_mode, static_cast<long long>(info.st_size), info.st_nlink,
                   static_cast<long long>(info.st_mtime)};
  }
  return files;
}

Bytes tar_of(const std::vector<Bytes>& entries) {
  Bytes tar;
  for (const Bytes& entry : entries) append(tar, entry);
  append_end(tar);
  return tar;
}

Bytes file_entry(const std::string& name, const std::string& content) {
  Bytes out = make_header(name, '0', content.size());
  append_content(out, content);
  return out;
}

std::string read_text(const std::string& path) {
  const Bytes bytes = test::read_file(path);
  return {bytes.begin(), bytes.end()};
}

// A scratch root with <root>/outside/secret (the sentinel) and <root>/deep/er/dest (where layers
// are unpacked, deep enough that "../../x" from it still lands inside the scratch root).
class UnpackFixture : public testing::Test {
 protected:
  void SetUp() override {
    outside_ = scratch_.file("outside");
    dest_ = scratch_.file("deep/er/dest");
    std::filesystem::create_directories(outside_);
    std::filesystem::create_directories(dest_);
    test::write_file(outside_ + "/secret", Bytes{'k', 'e', 'e', 'p'});
    ::chmod((outside_ + "/secret").c_str(), 0600);
  }

  Result<UnpackReport> unpack(const std::vector<Bytes>& layers) {
    std::vector<std::string> paths;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      paths.push_back(scratch_.file("layer" + std::to_string(i) + ".tar"));
      test::write_file(paths.back(), layers[i]);
    }
    before_ = snapshot_outside(scratch_.path(), dest_);
    return unpack_layers(paths, dest_);
  }

  void expect_outside_untouched() {
    EXPECT_EQ(snapshot_outside(scratch_.path(), dest_), before_) << "something outside changed";
    EXPECT_EQ(read_text(outside_ + "/secret"), "keep");
  }

  test::ScratchDir scratch_;
  std::string outside_;
  std::string dest_;
  Snapshot before_;
};

TEST_F(UnpackFixture, AppliesFilesDirectoriesLinksModesAndTimes) {
  Bytes dir = make_header("etc/", '5');
  test::set_octal(dir, 100, 8, 0750);
  test::set_checksum(dir);
  Bytes script = make_header("etc/run.sh", '0', 3);
  test::set_octal(script, 100, 8, 0755);
  test::set_octal(script, 136, 12, 1234567890);
  test::set_checksum(script);
  append_content(script, "ok\n");
  auto report = unpack({tar_of({dir, script, make_header("etc/link", '2', 0, "run.sh"),
                                make_header("etc/hard", '1', 0, "etc/run.sh")})});
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->files, 1U);
  EXPECT_EQ(report->directories, 1U);
  EXPECT_EQ(report->symlinks, 1U);
  EXPECT_EQ(report->hard_links, 1U);
  EXPECT_EQ(report->bytes_written, 3U);
  EXPECT_EQ(read_text(dest_ + "/etc/run.sh"), "ok\n");
  struct stat info {};
  ASSERT_EQ(::lstat((dest_ + "/etc/run.sh").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777U, 0755U);
  EXPECT_EQ(info.st_mtime, 1234567890);
  EXPECT_EQ(info.st_nlink, 2U);
  ASSERT_EQ(::lstat((dest_ + "/etc").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777U, 0750U);
  EXPECT_EQ(info.st_mtime, 1700000000);
  EXPECT_EQ(std::filesystem::read_symlink(dest_ + "/etc/link"), "run.sh");
}

TEST_F(UnpackFixture, WhiteoutsRemoveLowerLayerEntriesOnly) {
  const Bytes lower = tar_of({file_entry("a/x", "x"), file_entry("a/y", "y"), file_entry("b", "b"),
                              file_entry("d/old", "old"), file_entry("d/sub/deeper", "z")});
  // The same layer creates "a/x" again before whiting it out: the whiteout hides the lower one
  // only, so the new file stays.
  const Bytes upper = tar_of({make_header(".wh.b", '0'), file_entry("d/new", "new"),
                              make_header("d/.wh..wh..opq", '0'), file_entry("a/x", "x2"),
                              make_header("a/.wh.x", '0'), make_header("a/.wh.missing", '0')});
  auto report = unpack({lower, upper});
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->whiteouts, 4U);
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/b"));
  EXPECT_EQ(read_text(dest_ + "/a/x"), "x2");
  EXPECT_EQ(read_text(dest_ + "/a/y"), "y");
  EXPECT_EQ(read_text(dest_ + "/d/new"), "new");
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/d/old"));
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/d/sub"));
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/a/.wh.x"));
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/d/.wh..wh..opq"));
}

TEST_F(UnpackFixture, LaterEntriesReplaceEarlierOnesWithoutWritingThroughThem) {
  // RUSTSEC-2018-0002: a hard link, then a file of the same name, must not overwrite the target.
  const Bytes layer = tar_of({file_entry("orig", "orig"), make_header("alias", '1', 0, "orig"),
                              file_entry("alias", "new"), make_header("dir/", '5'),
                              file_entry("dir", "now a file")});
  auto report = unpack({layer});
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(read_text(dest_ + "/orig"), "orig");
  EXPECT_EQ(read_text(dest_ + "/alias"), "new");
  EXPECT_EQ(read_text(dest_ + "/dir"), "now a file");
}

struct RefusedCase {
  const char* name;
  Bytes layer;
  const char* fragment;
};

TEST_F(UnpackFixture, RefusesAbsoluteAndDotDotPathsWithAClearError) {
  const std::vector<RefusedCase> cases = {
      {"absolute", tar_of({file_entry("/etc/passwd", "root\n")}), "'/etc/passwd' is absolute"},
      {"dotdot", tar_of({file_entry("a/../../x", "x")}), "'a/../../x' has a '..' component"},
      {"hardlink_absolute", tar_of({make_header("shadow", '1', 0, "/etc/shadow")}),
       "hard link target '/etc/shadow' is absolute"},
      {"hardlink_dotdot", tar_of({make_header("up", '1', 0, "../outside/secret")}),
       "hard link target '../outside/secret' has a '..' component"},
      {"whiteout_dotdot", tar_of({make_header("../.wh.outside", '0')}), "has a '..' component"},
      {"root_replaced_by_symlink", tar_of({make_header("./", '2', 0, "/")}),
       "would replace the root with a non-directory"},
  };
  for (const RefusedCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto report = unpack({c.layer});
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.error().code, ErrorCode::kUnsafePath) << report.error().to_string();
    EXPECT_NE(report.error().message.find(c.fragment), std::string::npos) << report.error().message;
    EXPECT_NE(report.error().message.find("layer 0: tar entry at offset 0"), std::string::npos)
        << report.error().message;
    expect_outside_untouched();
    std::filesystem::remove_all(dest_);
    std::filesystem::create_directories(dest_);
  }
}

// Attacks that are unpacked (links stay links; writes through them are resolved inside dest_).
TEST_F(UnpackFixture, SymlinkThenWriteAcrossLayersStaysInside) {
  // CVE-2025-45582: layer 1 plants links to the outside, layer 2 writes through them.
  const Bytes plant =
      tar_of({make_header("abs", '2', 0, outside_), make_header("rel", '2', 0, "../../../outside"),
              make_header("chain", '2', 0, "rel")});
  const Bytes write = tar_of({file_entry("abs/secret", "pwned"), file_entry("rel/new", "pwned"),
                              file_entry("chain/secret", "pwned")});
  auto report = unpack({plant, write});
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  expect_outside_untouched();
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/new"));
  // The links resolved as if dest_ were "/": the files landed under it.
  EXPECT_EQ(read_text(dest_ + outside_ + "/secret"), "pwned");
  EXPECT_EQ(read_text(dest_ + "/outside/new"), "pwned");
  EXPECT_EQ(read_text(dest_ + "/outside/secret"), "pwned");
}

TEST_F(UnpackFixture, LinkBreakoutsOfContainerdsSuiteStayInside) {
  struct Attack {
    const char* name;
    Bytes layer;
  };
  Bytes chmod_dir = make_header("dirlink/", '5');
  test::set_octal(chmod_dir, 100, 8, 0777);
  test::set_checksum(chmod_dir);
  const std::vector<Attack> attacks = {
      // SymlinkOverrideDirectory / CVE-2026-33056: a directory entry over a link replaces the
      // link instead of chmodding its target.
      {"DirectoryOverrideSymlink", tar_of({make_header("dirlink", '2', 0, outside_), chmod_dir})},
      {"WhiteoutSymlink",
       tar_of({make_header("wl", '2', 0, outside_), make_header("wl/.wh.secret", '0')})},
      {"WhiteoutSymlinkOpaque",
       tar_of({make_header("wl", '2', 0, outside_), make_header("wl/.wh..wh..opq", '0')})},
      {"WhiteoutTheLinkItself",
       tar_of({make_header("wl", '2', 0, outside_ + "/secret"), make_header(".wh.wl", '0')})},
      {"SymlinkEmptyFileWrite",
       tar_of({make_header("f", '2', 0, outside_ + "/secret"), file_entry("f", "over")})},
      {"HardlinkThroughSymlink",
       tar_of({make_header("hl", '2', 0, outside_), make_header("stolen", '1', 0, "hl/secret")})},
      {"HardlinkToSymlinkThenWrite",
       tar_of({make_header("s", '2', 0, outside_ + "/secret"), make_header("h", '1', 0, "s"),
               file_entry("h", "over")})},
      {"SymlinkUpAndOut", tar_of({make_header("up", '2', 0, "../../../../../../../../"),
                                  file_entry("up/outside/secret", "over")})},
  };
  for (const Attack& attack : attacks) {
    SCOPED_TRACE(attack.name);
    auto report = unpack({attack.layer});
    // A hard link through a link to the outside finds no such file inside: an error. Everything
    // else is accepted and lands inside.
    if (!report.ok()) {
      EXPECT_EQ(std::string(attack.name), "HardlinkThroughSymlink") << report.error().to_string();
      EXPECT_NE(report.error().message.find("hard link 'stolen' to 'hl/secret'"), std::string::npos)
          << report.error().message;
    }
    expect_outside_untouched();
    struct stat info {};
    ASSERT_EQ(::stat((outside_ + "/secret").c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777U, 0600U);
    EXPECT_EQ(info.st_nlink, 1U);
    std::filesystem::remove_all(dest_);
    std::filesystem::create_directories(dest_);
  }
}

TEST_F(UnpackFixture, DevicesAreSkippedByDefault) {
  Bytes device = make_header("dev/null", '3');
  test::set_octal(device, 329, 8, 1);
  test::set_octal(device, 337, 8, 3);
  test::set_checksum(device);
  auto report = unpack({tar_of({device, make_header("pipe", '6')})});
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->devices_skipped, 1U);
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/dev/null"));
  EXPECT_TRUE(std::filesystem::is_fifo(dest_ + "/pipe"));
}

TEST_F(UnpackFixture, MalformedWhiteoutsAndHardLinksAreErrors) {
  auto dot = unpack({tar_of({make_header("a/.wh..", '0')})});
  ASSERT_FALSE(dot.ok());
  EXPECT_EQ(dot.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(dot.error().message.find("names no removable entry"), std::string::npos);
  auto dangling = unpack({tar_of({make_header("h", '1', 0, "missing")})});
  ASSERT_FALSE(dangling.ok());
  EXPECT_NE(dangling.error().message.find("hard link 'h' to 'missing'"), std::string::npos)
      << dangling.error().message;
  expect_outside_untouched();
}

TEST_F(UnpackFixture, StoreLayersUnpackLikeTheirFiles) {
  const Bytes lower = tar_of({file_entry("a/x", std::string(200000, 'x')), file_entry("b", "b"),
                              make_header("l", '2', 0, outside_)});
  const Bytes upper = tar_of({make_header(".wh.b", '0'), file_entry("l/secret", "pwned")});
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(scratch_.file("store"), store_options);
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  std::vector<Digest> layers;
  for (const Bytes* layer : {&lower, &upper}) {
    auto ingested = ingest_layer_bytes(*store, *layer, IngestOptions{});
    ASSERT_TRUE(ingested.ok()) << ingested.error().to_string();
    layers.push_back(ingested->diff_id);
  }
  before_ = snapshot_outside(scratch_.path(), dest_);
  auto report = unpack_store_layers(*store, layers, dest_);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->layers, 2U);
  EXPECT_EQ(report->whiteouts, 1U);
  EXPECT_EQ(read_text(dest_ + "/a/x"), std::string(200000, 'x'));
  EXPECT_FALSE(std::filesystem::exists(dest_ + "/b"));
  EXPECT_EQ(read_text(dest_ + outside_ + "/secret"), "pwned");
  expect_outside_untouched();

  auto missing = unpack_store_layers(*store, {sha256_of(Bytes{1, 2, 3})}, dest_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << missing.error().to_string();
}

TEST(SafePath, SplitsCleanPathsAndRefusesEscapes) {
  auto clean = safe_path::split_relative_path("./a//b/./c/", "path");
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(*clean, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(safe_path::split_relative_path("./", "path")->empty());
  EXPECT_EQ(safe_path::split_relative_path("/a", "path").error().code, ErrorCode::kUnsafePath);
  EXPECT_EQ(safe_path::split_relative_path("a/..", "path").error().code, ErrorCode::kUnsafePath);
  EXPECT_EQ(safe_path::split_relative_path(std::string("a\0b", 3), "path").error().code,
            ErrorCode::kUnsafePath);
}

TEST(SafePath, SymlinkLoopsEndInAnError) {
  test::ScratchDir scratch;
  ASSERT_EQ(::symlink("b", scratch.file("a").c_str()), 0);
  ASSERT_EQ(::symlink("a", scratch.file("b").c_str()), 0);
  auto root = safe_path::RootDirectory::open(scratch.path(), false);
  ASSERT_TRUE(root.ok());
  auto parent = root->resolve_parent({"a", "x"}, true);
  ASSERT_FALSE(parent.ok());
  EXPECT_EQ(parent.error().code, ErrorCode::kUnsafePath);
  EXPECT_NE(parent.error().message.find("too many symbolic links"), std::string::npos);
}

}  // namespace
}  // namespace strata
